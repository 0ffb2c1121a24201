//! One nextest test per scenario x kernel x cell (`6.12-gcc::…`,
//! `7.3-llvm::…`, `selftest::6.12-gcc::…`), each booting its own VM; pick
//! a slice with `-E 'test(/^7.3-llvm::/)'`.
//!
//! Listing is cheap and never boots, builds or fetches anything: names come
//! from guest-image/kernels.toml, cells.toml and the scenario file names.
//! A test that does not apply to a kernel (`min_kernel`) is listed as
//! ignored (nextest: SKIP), and fails with its reason if forced to run. Each test builds
//! what it needs (kernel cells are cached and locked, so concurrent tests
//! share one build) and fails with the scenario's step log and the kernel
//! console tail. Nothing vanishes from the list: a catalogue that cannot
//! be read becomes one failing test, `catalogue::readable`, and a file
//! naming an unknown cell lists tests that fail with that message.
//!
//! `example::…` tests run examples/acme-wheel-mouse the way a program's
//! author does (`hidvm test <dir>`), from a copy outside the repository:
//! as written it must pass on every cell; with its rewrite broken, or its
//! probe rejecting the device, it must fail with that precise message.
#[path = "bisect.rs"]
mod bisect;

use hidvm::catalogue::scenarios;
use hidvm::run::suite::{Options, Suite};
use hidvm::run::{one_test, plan};
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::Path;
use std::sync::Arc;

/// The example as its author would have it, copied out of the repository
/// and changed by `edit` (file, from, to).
fn example_copy(suite: &Suite, edit: Option<(&str, &str, &str)>) -> Result<tempfile::TempDir, Failed> {
    let src = suite.repo.root.join("examples/acme-wheel-mouse");
    let dir = tempfile::Builder::new().prefix("hidvm-example-").tempdir().map_err(|e| Failed::from(e.to_string()))?;
    for e in std::fs::read_dir(&src).map_err(|e| Failed::from(format!("{}: {e}", src.display())))? {
        let p = e.map_err(|e| Failed::from(e.to_string()))?.path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).map_err(|e| Failed::from(e.to_string()))?;
    }
    if let Some((file, from, to)) = edit {
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| Failed::from(e.to_string()))?;
        if !text.contains(from) {
            return Err(format!("{file} no longer contains `{from}`: update this test").into());
        }
        std::fs::write(&path, text.replace(from, to)).map_err(|e| Failed::from(e.to_string()))?;
    }
    Ok(dir)
}

/// Run `file` (or every scenario) of a copy on every selected target.
/// `expect`: None = every run passes; Some(texts) = every run fails and
/// its rendering contains each text.
fn run_example(suite: &Suite, dir: &Path, file: Option<&str>, expect: Option<&[&str]>) -> Result<(), Failed> {
    let path = file.map(|f| dir.join(f)).unwrap_or_else(|| dir.to_path_buf());
    let entries =
        scenarios::entries_for_paths(&[path], &suite.defined_cells).map_err(|e| Failed::from(e.to_string()))?;
    let mut problems = Vec::new();
    for target in plan::default_targets(suite) {
        for entry in &entries {
            let report = one_test::run(suite, &target, entry).map_err(|e| Failed::from(format!("error: {e}")))?;
            let text = report.render();
            match expect {
                None if !report.verdict.passed() => problems.push(text),
                Some(_) if report.verdict.passed() => problems.push(format!("expected a failure, it passed:\n{text}")),
                Some(want) => {
                    for w in want.iter().filter(|w| !text.contains(**w)) {
                        problems.push(format!("the failure does not say `{w}`:\n{text}"));
                    }
                }
                None => {}
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

fn example_trials(suite: &Arc<Suite>) -> Vec<Trial> {
    type Case = (
        &'static str,
        Option<(&'static str, &'static str, &'static str)>,
        Option<&'static str>,
        Option<&'static [&'static str]>,
    );
    const CASES: &[Case] = &[
        ("example::acme_wheel_mouse_passes_outside_the_repo", None, None, None),
        (
            "example::acme_wheel_mouse_wrong_rewrite_is_caught",
            Some(("Acme__Wheel-Mouse.bpf.c", "data[3] = (__u8)(-(__s8)data[3]);", "data[2] = (__u8)(-(__s8)data[2]);")),
            Some("acme_wheel.toml"),
            Some(&["step 3 (inject) failed: hidraw", "expected 01 05 fd ff, saw 01 05 03 01"]),
        ),
        (
            "example::acme_wheel_mouse_probe_rejection_is_reported",
            Some(("Acme__Wheel-Mouse.bpf.c", "ctx->rdesc_size != 52", "ctx->rdesc_size != 53")),
            Some("acme_wheel.toml"),
            Some(&["step 2 (attach) failed: probe", "saw probe: EINVAL", "acme: probe: 52-byte report descriptor"]),
        ),
    ];
    CASES
        .iter()
        .map(|&(name, edit, file, expect)| {
            let suite = suite.clone();
            Trial::test(name, move || {
                let dir = example_copy(&suite, edit)?;
                run_example(&suite, dir.path(), file, expect)
            })
        })
        .collect()
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let suite = match Suite::new(Options::default()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let trials = scenario_trials(&suite);
    let per_kernel = per_kernel_trials(&suite);
    let kselftests = kselftest_trials(&suite);
    let shell = {
        let suite = suite.clone();
        Trial::test("shell::your_scenario_attached_a_typed_command_answers_and_exit_leaves_no_qemu", move || {
            shell_trial(suite)
        })
    };
    let trials = trials.into_iter().chain(example_trials(&suite)).chain(per_kernel).chain(kselftests).chain([shell]);
    let snapshot = {
        let suite = suite.clone();
        Trial::test("snapshot::a_crash_in_one_restored_guest_does_not_reach_the_next", move || {
            snapshot_isolation(&suite)
        })
    };
    let trials = trials
        .chain([snapshot, bisect::trial(&suite)])
        .chain(masking_trials(&suite))
        .chain(hidtools_trials(&suite))
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

/// The kernel's hid-tools pytest suite: one trial per target and module or
/// class of the subset `make vm-test` runs (`hidtools::6.12-gcc::test_mouse.py`),
/// each appending its tests' records to HIDVM_RESULTS_JSONL; the whole
/// suite per target, opt-in (`--run-ignored only -E 'test(/^hidtools::.*::all$/)'`);
/// and the self-test of udev-hid-bpf's remove check. The list is fixed
/// data: listing never boots, builds or collects, and a class the tree no
/// longer has fails its trial loudly.
fn hidtools_trials(suite: &Arc<Suite>) -> Vec<Trial> {
    use hidvm::run::hidtools::{self, Selection, SUBSET};
    let err = |e: hidvm::Error| Failed::from(format!("error: {e}"));
    let mut trials = Vec::new();
    for target in plan::default_targets(suite) {
        for selection in SUBSET {
            let (suite, target) = (suite.clone(), target.clone());
            trials.push(Trial::test(format!("hidtools::{}::{selection}", target.label()), move || {
                let run = hidtools::run_one(&suite, &target, selection, false).map_err(err)?;
                hidtools_verdict(std::slice::from_ref(&run), &[target])
            }));
        }
        let (s, t) = (suite.clone(), target.clone());
        trials.push(
            Trial::test(format!("hidtools::{}::all", target.label()), move || {
                let sel = Selection { all: true, ..Default::default() };
                let runs =
                    hidtools::run(&s, std::slice::from_ref(&t), &sel, hidvm::run::pool::default_vms()).map_err(err)?;
                hidtools_verdict(&runs, &[t])
            })
            .with_ignored_flag(true),
        );
    }
    let s = suite.clone();
    trials.push(Trial::test("selftest::hidtools::a_remove_that_leaves_the_program_attached_fails", move || {
        broken_remove_is_caught(&s)
    }));
    trials
}

/// Print the matrix, append every record, pass only if everything did.
fn hidtools_verdict(
    runs: &[hidvm::run::hidtools::TargetRun],
    targets: &[hidvm::kernel::spec::Target],
) -> Result<(), Failed> {
    use hidvm::results::records::append_to_env_file;
    let ok = hidvm::run::hidtools::report::print(targets, runs);
    for r in hidvm::run::hidtools::report::records(runs) {
        append_to_env_file(&r).map_err(|e| Failed::from(format!("error: {e}")))?;
    }
    let failures: Vec<String> = runs.iter().flat_map(|r| r.judged.failures.clone()).collect();
    if ok && failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n").into())
    }
}

/// `udev-hid-bpf remove` made to leave the links pinned (the job's
/// `broken_remove`) on the FR-TEC Raptor Mach 2 class: every test that
/// loaded the program must fail in its teardown, saying the link is still
/// in the kernel. Were the remove's check gone, they would pass, and so
/// would fail this trial.
fn broken_remove_is_caught(suite: &Suite) -> Result<(), Failed> {
    use hidvm::judge::tap::Cell;
    let target = plan::default_targets(suite).into_iter().next().ok_or("no default target")?;
    let class = hidvm::run::hidtools::HID_BPF_CLASSES[3];
    let run =
        hidvm::run::hidtools::run_one(suite, &target, class, true).map_err(|e| Failed::from(format!("error: {e}")))?;
    let rows = &run.judged.rows;
    let caught = |r: &&hidvm::run::hidtools::outcome::TestRow| {
        r.cell == Cell::Fail
            && r.reason.as_deref().is_some_and(|w| w.contains("teardown failed") && w.contains("still in the kernel"))
    };
    let ran: Vec<_> = rows.iter().filter(|r| !matches!(r.cell, Cell::Skip(_))).collect();
    let missed: Vec<String> =
        ran.iter().filter(|r| !caught(r)).map(|r| format!("{}: {:?} {:?}", r.id, r.cell, r.reason)).collect();
    if ran.is_empty() || !missed.is_empty() || run.judged.run_ok {
        return Err(format!(
            "with a remove that leaves the program attached, every test of {class} must fail in its teardown (link still in the kernel) and the run with them; {} of {} ran, not caught: {}",
            ran.len(),
            rows.len(),
            missed.join("; ")
        )
        .into());
    }
    Ok(())
}

/// The catalogue's `race_attach_vs_destroy`: it crashes its kernel in
/// every run (rate "always": a NULL dereference in check_init_srcu_struct
/// or a WARNING in cleanup_srcu_struct), a real crash to mask with.
fn attach_race(suite: &Suite) -> Result<scenarios::Entry, Failed> {
    suite
        .catalogue()
        .map_err(|e| Failed::from(format!("error: {e}")))?
        .into_iter()
        .find(|e| e.name == "race_attach_vs_destroy")
        .ok_or_else(|| "no race_attach_vs_destroy in the catalogue".into())
}

/// Each way a known kernel bug could mask another failure, tried for real:
/// a different crash in a known row, and a user's scenario that shares a
/// known row's name (a patched tree is another kernel: the opt-in trial
/// below builds one; the `judge::known` unit tests cover each rule).
fn masking_trials(suite: &Arc<Suite>) -> Vec<Trial> {
    let s2 = suite.clone();
    vec![
        Trial::test("masking::a_different_crash_in_a_known_row_fails", different_crash_in_a_known_row),
        Trial::test("masking::a_users_scenario_named_like_a_known_row_is_never_known", move || {
            let target = plan::default_targets(&s2).into_iter().next().ok_or("no default target")?;
            let dir =
                tempfile::Builder::new().prefix("hidvm-masking-").tempdir().map_err(|e| Failed::from(e.to_string()))?;
            let copy = dir.path().join("race_attach_vs_destroy.toml");
            std::fs::copy(&attach_race(&s2)?.path, &copy).map_err(|e| Failed::from(e.to_string()))?;
            let entry = scenarios::entries_for_paths(&[copy], &s2.defined_cells)
                .map_err(|e| Failed::from(format!("error: {e}")))?
                .remove(0);
            let report = one_test::run(&s2, &target, &entry).map_err(|e| Failed::from(format!("error: {e}")))?;
            if report.verdict.passed() {
                return Err(format!(
                    "the race did not crash this time (it always has): run it again\n{}",
                    report.render()
                )
                .into());
            }
            if report.known != hidvm::judge::known::Known::None || report.acceptable() {
                return Err(format!("a user's scenario must never be a known kernel bug:\n{}", report.render()).into());
            }
            Ok(())
        }),
        Trial::test("masking::a_known_row_on_a_patched_tree_is_not_known", patched_tree_is_another_kernel)
            .with_ignored_flag(true),
    ]
}

/// race_attach_vs_destroy, with a known-failures list whose entry for it
/// (on this very kernel) records another bug's signature: its own crash
/// must fail, and say both.
fn different_crash_in_a_known_row() -> Result<(), Failed> {
    let err = |e: hidvm::Error| Failed::from(format!("error: {e}"));
    let mut suite = Suite::new(Options::default()).map_err(err)?;
    let target = plan::default_targets(&suite).into_iter().next().ok_or("no default target")?;
    let label = suite.source(&target.kernel).map_err(err)?.label;
    suite.known = hidvm::judge::known::KnownFailures::parse(
        &format!(
            "[[known]]\ntest = \"race_attach_vs_destroy\"\nkernels = [\"{label}\"]\ncells = [\"*\"]\nrate = \"always\"\n\
             reason = \"a stand-in entry: another bug's signature\"\n[[known.signature]]\nends_as = \"kernel-crash\"\n\
             title = \"BUG: unable to handle page fault in __srcu_read_unlock\"\nstack = [\"dispatch_hid_bpf_output_report\"]\n"
        ),
        "masking trial",
    )
    .map_err(err)?;
    let report = one_test::run(&suite, &target, &attach_race(&suite)?).map_err(err)?;
    let text = report.render();
    if report.verdict.passed() {
        return Err(format!("the race did not crash this time (it always has): run it again\n{text}").into());
    }
    let (hidvm::judge::known::Known::Mismatch(_, expects, seen), false) = (&report.known, report.acceptable()) else {
        return Err(format!("a different crash in a known row must fail as not the known bug:\n{text}").into());
    };
    // Whatever face of the race this run met, the report names the
    // stand-in entry's signature and the crash this run showed.
    let named = |t: &str| text.contains("NOT the known kernel bug") && text.contains(t);
    if !named(expects) || !named(seen) || !expects.contains("__srcu_read_unlock") {
        return Err(format!("the report must name the entry's signature and what was seen:\n{text}").into());
    }
    Ok(())
}

/// The catalogue's race_attach_vs_destroy (KNOWN on the stock kernels) on
/// the first kernel with a series that changes nothing but a comment: the
/// tree is another kernel, so its crash is a failure, not KNOWN. Builds a
/// kernel: opt-in (`--run-ignored only -E 'test(masking::)'`).
fn patched_tree_is_another_kernel() -> Result<(), Failed> {
    let err = |e: hidvm::Error| Failed::from(format!("error: {e}"));
    let dir = tempfile::Builder::new().prefix("hidvm-series-").tempdir().map_err(|e| Failed::from(e.to_string()))?;
    std::fs::write(
        dir.path().join("0001-comment.patch"),
        "From: hidvm <hidvm@example.org>\nSubject: [PATCH] HID: bpf: a comment\n\n---\n\
         diff --git a/drivers/hid/bpf/hid_bpf_dispatch.c b/drivers/hid/bpf/hid_bpf_dispatch.c\n\
         --- a/drivers/hid/bpf/hid_bpf_dispatch.c\n+++ b/drivers/hid/bpf/hid_bpf_dispatch.c\n\
         @@ -1,3 +1,4 @@\n // SPDX-License-Identifier: GPL-2.0-only\n+/* hidvm: a series that changes nothing but this line */\n \n /*\n",
    )
    .map_err(|e| Failed::from(e.to_string()))?;
    let patched = Suite::new(Options { patches: Some(dir.path().to_path_buf()), ..Options::default() }).map_err(err)?;
    let target = plan::default_targets(&patched).into_iter().next().ok_or("no default target")?;
    let entry = patched
        .catalogue()
        .map_err(err)?
        .into_iter()
        .find(|e| e.name == "race_attach_vs_destroy")
        .ok_or("no race_attach_vs_destroy in the catalogue")?;
    let report = one_test::run(&patched, &target, &entry).map_err(err)?;
    if report.known != hidvm::judge::known::Known::None || report.verdict.passed() {
        return Err(format!(
            "on {} the known entry must not apply and the race must fail:\n{}",
            report.kernel_source,
            report.render()
        )
        .into());
    }
    Ok(())
}

/// One trial per scenario x target of the catalogue (skipped ones
/// ignored, with their reason), or one failing trial saying why there is
/// none.
fn scenario_trials(suite: &Arc<Suite>) -> Vec<Trial> {
    let targets = plan::default_targets(suite);
    match plan::tests(suite, &targets, None) {
        Ok(work) if !work.is_empty() => work
            .into_iter()
            .map(|case| {
                let suite = suite.clone();
                let skipped = case.skip.is_some();
                Trial::test(case.name(), move || {
                    if let Some(why) = &case.skip {
                        return Err(format!("skipped: {why}").into());
                    }
                    use hidvm::results::records::{append_to_env_file, Status, TestRecord};
                    // CI's summary job merges these lines from every job:
                    // every run writes one, an error too, so none vanishes.
                    let report = match one_test::run(&suite, &case.target, &case.entry) {
                        Ok(r) => r,
                        Err(e) => {
                            let row = case.entry.row();
                            let record = TestRecord::without_run(
                                &case.name(),
                                &row,
                                &case.target,
                                Status::Error,
                                &e.to_string(),
                            );
                            let written = append_to_env_file(&record).err().map(|w| format!(" (and its record: {w})"));
                            return Err(format!("error: {e}{}", written.unwrap_or_default()).into());
                        }
                    };
                    let rate = report.known.entry().map(|i| suite.known.known[i].rate.clone());
                    let record = TestRecord::from_report(&case.entry.row(), &report, rate);
                    append_to_env_file(&record).map_err(|e| Failed::from(format!("error: {e}")))?;
                    // A known kernel bug (tests/known-failures.toml) failing
                    // exactly as recorded is not a test failure; its report
                    // says so.
                    if report.acceptable() {
                        // nextest shows this with --success-output / --no-capture.
                        print!("{}", report.render());
                        Ok(())
                    } else {
                        Err(report.render().into())
                    }
                })
                .with_ignored_flag(skipped)
            })
            .collect(),
        Ok(_) => vec![Trial::test("catalogue::readable", move || {
            let labels: Vec<String> = targets.iter().map(|t| t.label()).collect();
            Err(format!("no test on {}: the catalogue is empty", labels.join(", ")).into())
        })],
        Err(e) => vec![Trial::test("catalogue::readable", move || Err(format!("error: {e}").into()))],
    }
}

/// Per kernel: every program of its tree has a scenario, and every
/// scenario that applies to it loads against its tree.
fn per_kernel_trials(suite: &Arc<Suite>) -> Vec<Trial> {
    suite
        .kernels
        .iter()
        .flat_map(|k| {
            let (s1, s2, k1, k2) = (suite.clone(), suite.clone(), k.name.clone(), k.name.clone());
            [
                Trial::test(format!("catalogue::{}::every_kernel_program_has_a_scenario", k.name), move || {
                    let tree = s1.source(&k1).map_err(|e| Failed::from(format!("error: {e}")))?.root;
                    let entries = s1.catalogue().map_err(|e| Failed::from(format!("error: {e}")))?;
                    let missing = scenarios::uncovered_kernel_programs(&tree, &entries)
                        .map_err(|e| Failed::from(format!("error: {e}")))?;
                    if missing.is_empty() {
                        Ok(())
                    } else {
                        Err(format!(
                            "no scenario in tests/kernel-progs/ loads {} of {}/drivers/hid/bpf/progs/: {}",
                            missing.len(),
                            tree.display(),
                            missing.join(", ")
                        )
                        .into())
                    }
                }),
                Trial::test(format!("catalogue::{}::every_scenario_loads", k.name), move || {
                    let spec = s2.spec(&k2).map_err(|e| Failed::from(format!("error: {e}")))?;
                    let entries = s2.catalogue().map_err(|e| Failed::from(format!("error: {e}")))?;
                    let errors: Vec<String> = entries
                        .iter()
                        .filter(|e| e.skip_reason(spec).is_none())
                        .filter_map(|e| s2.load(e, &k2).err().map(|err| err.to_string()))
                        .collect();
                    if errors.is_empty() {
                        Ok(())
                    } else {
                        Err(errors.join("\n").into())
                    }
                }),
            ]
        })
        .collect()
}

/// The kernel's own HID selftests, one trial per program and target;
/// opt-in (ignored unless asked for): `cargo nextest run --run-ignored
/// only -E 'test(/^kselftest::/)'`.
fn kselftest_trials(suite: &Arc<Suite>) -> Vec<Trial> {
    plan::default_targets(suite)
        .into_iter()
        .flat_map(|target| hidvm::run::kselftest::PROGRAMS.iter().map(move |p| (target.clone(), p.to_string())))
        .map(|(target, program)| {
            let suite = suite.clone();
            Trial::test(format!("kselftest::{}::{program}", target.label()), move || {
                let err = |e: hidvm::Error| Failed::from(format!("error: {e}"));
                let known = hidvm::judge::tap::KnownResults::load(&suite.repo.root.join("tests/kselftest-known.toml"))
                    .map_err(err)?;
                let built = hidvm::run::kselftest::build(&suite, &target).map_err(err)?;
                let run = hidvm::run::kselftest::run(&suite, &target, &built, &program).map_err(err)?;
                let judged = hidvm::run::kselftest::judge(&run, &known);
                for n in &judged.notes {
                    println!("{n}");
                }
                if judged.ok() {
                    println!("{} results, {:.1} s of VM time", run.results.len(), run.vm_seconds);
                    Ok(())
                } else {
                    Err(judged.failures.join("\n").into())
                }
            })
            .with_ignored_flag(true)
        })
        .collect()
}

/// Tests share a snapshot, never a guest: a guest that panics (lkdtm
/// PANIC, a self-test that must end as a crash) is followed, from the same
/// snapshot, by the reference scenario, which must pass with a clean
/// console of its own; and both must really have come from the snapshot.
fn snapshot_isolation(suite: &Suite) -> Result<(), Failed> {
    if !hidvm::vm::snapshot::enabled() {
        return Err("HIDVM_SNAPSHOT=off: this test is about snapshots; run it without".into());
    }
    let target = plan::default_targets(suite).into_iter().next().ok_or("no default target")?;
    let entries = suite.catalogue().map_err(|e| Failed::from(format!("error: {e}")))?;
    let find = |name: &str| {
        entries.iter().find(|e| e.name == name).cloned().ok_or_else(|| Failed::from(format!("no entry {name}")))
    };
    let crash = one_test::run(suite, &target, &find("lkdtm_panic_is_a_crash")?)
        .map_err(|e| Failed::from(format!("error: {e}")))?;
    let after = one_test::run(suite, &target, &find("mouse_invert_y_close_link")?)
        .map_err(|e| Failed::from(format!("error: {e}")))?;
    let mut problems = Vec::new();
    if !crash.verdict.passed() {
        problems.push(format!("the panicking self-test did not end as it states:\n{}", crash.render()));
    }
    if !after.verdict.passed() {
        problems.push(format!("the scenario after a panicked guest failed:\n{}", after.render()));
    }
    if !crash.started_from.starts_with("snapshot ") || crash.started_from != after.started_from {
        problems.push(format!(
            "both must start from the same snapshot: {:?} and {:?}",
            crash.started_from, after.started_from
        ));
    }
    // What the next guest printed after its restore (its console log
    // starts with the snapshot's boot log, which names lkdtm too).
    let console = std::fs::read_to_string(after.run_dir.join("console.log")).unwrap_or_default();
    let own = hidvm::vm::boot::restored_part(&console).unwrap_or("");
    if own.is_empty() {
        problems.push("the next test's console has no restore marker".into());
    }
    if own.contains("Kernel panic") || own.contains("lkdtm: Performing") {
        problems.push("the next test's console shows the previous test's panic".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

/// A pseudo-terminal: (master, slave).
fn open_pty() -> std::io::Result<(std::fs::File, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain libc calls on fds this function owns.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        if m < 0 || libc::grantpt(m) != 0 || libc::unlockpt(m) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let master = std::fs::File::from_raw_fd(m);
        let mut name = [0 as libc::c_char; 128];
        if libc::ptsname_r(m, name.as_mut_ptr(), name.len()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let s = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
        if s < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((master, std::os::fd::OwnedFd::from_raw_fd(s)))
    }
}

/// Read `master` until `text` appears (true) or `deadline` passes.
fn read_until(master: &mut std::fs::File, seen: &mut Vec<u8>, text: &str, deadline: std::time::Instant) -> bool {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    while std::time::Instant::now() < deadline {
        if String::from_utf8_lossy(seen).contains(text) {
            return true;
        }
        let mut pfd = libc::pollfd { fd: master.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 200) } <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match master.read(&mut buf) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(seen).contains(text),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    false
}

/// `hidvm shell my/acme_wheel.toml` through a pseudo-terminal, as a
/// program's author uses it, from a copy of the example outside the
/// repository: the device is created and the program attached before the
/// prompt comes, a typed command answers, `exit` ends the VM and leaves
/// no QEMU process behind.
fn shell_trial(suite: Arc<Suite>) -> Result<(), Failed> {
    use std::io::Write;
    let target = plan::default_targets(&suite).into_iter().next().ok_or_else(|| Failed::from("no target selected"))?;
    let (mut master, slave) = open_pty().map_err(|e| Failed::from(format!("pty: {e}")))?;
    let example = example_copy(&suite, None)?;
    let scenario = example.path().join("acme_wheel.toml").display().to_string();
    let s = suite.clone();
    let t = target.clone();
    let vm = std::thread::spawn(move || hidvm::run::shell::run(&s, &t, Some(&scenario), Some(slave)));
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let transcript = |seen: &[u8]| {
        String::from_utf8_lossy(seen).chars().rev().take(2000).collect::<String>().chars().rev().collect::<String>()
    };
    if !read_until(&mut master, &mut seen, "hidvm# ", deadline) {
        return Err(format!("no shell prompt; the terminal showed:\n{}", transcript(&seen)).into());
    }
    let attached = "Acme__Wheel-Mouse.bpf.c to mouse as link `acme`: attached";
    if !String::from_utf8_lossy(&seen).contains(attached) {
        return Err(format!("the program was not attached; the terminal showed:\n{}", transcript(&seen)).into());
    }
    master
        .write_all(b"cat /sys/bus/hid/devices/*/uevent | grep -c 'HID_NAME=Acme Wheel Mouse'; echo answer-$((6*7))\r")
        .map_err(|e| Failed::from(e.to_string()))?;
    if !read_until(&mut master, &mut seen, "answer-42", deadline) {
        return Err(format!("the typed command did not answer; the terminal showed:\n{}", transcript(&seen)).into());
    }
    // The hid-tools userspace (built by `make setup`): hid-tools' tools and bpftool.
    master
        .write_all(b"hid-decode --help >/dev/null && hid-recorder --help >/dev/null && echo decode-$((2*3)); bpftool version >/dev/null && echo bpftool-$((3*3))\r")
        .map_err(|e| Failed::from(e.to_string()))?;
    if !read_until(&mut master, &mut seen, "bpftool-9", deadline)
        || !String::from_utf8_lossy(&seen).contains("decode-6")
    {
        return Err(format!(
            "hid-decode, hid-recorder or bpftool did not run in the shell; the terminal showed:\n{}",
            transcript(&seen)
        )
        .into());
    }
    master.write_all(b"exit\r").map_err(|e| Failed::from(e.to_string()))?;
    let code = vm
        .join()
        .map_err(|_| Failed::from("the shell thread panicked"))?
        .map_err(|e| Failed::from(format!("error: {e}")))?;
    let runs = suite.repo.runs_dir().join(target.label()).join("shell");
    let left: Vec<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("qemu-system") && c.contains(&runs.display().to_string()))
        .collect();
    if code != 0 || !left.is_empty() {
        return Err(format!("QEMU exited {code}; QEMU processes left: {left:?}").into());
    }
    Ok(())
}
