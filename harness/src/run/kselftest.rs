//! The kernel's own HID selftests (tools/testing/selftests/hid) as a second
//! suite: `hid_bpf` and `hidraw`, built from the tree under test with the
//! target's toolchain against its vmlinux, run in the same kind of VM as
//! the scenarios, each KTAP result reported as a test.
//!
//! The shell tests (hid-*.sh) need Python's hid-tools in the guest and are
//! not run. Programs are linked statically (`TARGET_ARCH=-static`, which
//! only the selftest link rule uses; libbpf's shared library must not get
//! it), so the guest needs nothing but the binary.
use crate::base::error::{one_line, Error, Result};
use crate::base::layout::{new_run_dir, sha256_parts, write_atomic};
use crate::base::lock::{FileLock, Mode};
use crate::base::tools;
use crate::judge::console;
use crate::judge::tap::{self, Cell, KnownResults, KtapResult, TapRun};
use crate::kernel::spec::Target;
use crate::run::pool::in_parallel;
use crate::run::suite::Suite;
use crate::vm::boot;
use crate::vm::initramfs::Initramfs;
use hidvm_proto::job::PROGRAM_DIR;
use hidvm_proto::{Job, JobMode, JOB_PATH};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The selftest programs hidvm's guest can run.
pub const PROGRAMS: &[&str] = &["hid_bpf", "hidraw"];

/// The programs built for one target.
pub struct Built {
    pub dir: PathBuf,
}

impl Built {
    pub fn program(&self, name: &str) -> PathBuf {
        self.dir.join("out").join(name)
    }
}

/// Build `hid_bpf` and `hidraw` for `target` (cached by the kernel build
/// and the tree); the log is in the cache directory.
pub fn build(suite: &Suite, target: &Target) -> Result<Built> {
    let kernel = suite.kernel(target)?;
    let source = suite.source(&target.kernel)?;
    let cell = crate::kernel::cell::find(&suite.all_cells, &target.cell)?;
    let key = sha256_parts([
        kernel.record.request_key.as_bytes(),
        source.identity.as_bytes(),
        serde_json::to_string(cell).unwrap_or_default().as_bytes(),
        b"kselftest-1",
    ]);
    let dir = suite.cache.join("kselftest").join(format!("{}-{}", target.label(), &key[..12]));
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let _lock = FileLock::acquire(&dir.join("lock"), Mode::Exclusive, "the kernel selftests build")
        .map_err(Error::io("kselftest lock"))?;
    let done = dir.join("done");
    if done.exists() && PROGRAMS.iter().all(|p| dir.join("out").join(p).is_file()) {
        return Ok(Built { dir });
    }
    tools::require_all(&[tools::CLANG, tools::PYTHON])?;
    let log_path = dir.join("build.log");
    let progress = crate::base::output::start(crate::base::output::Phase::Work {
        what: &format!(
            "{target}: building the kernel's HID selftests ({}); log: {}",
            PROGRAMS.join(", "),
            log_path.display()
        ),
    });
    let run = |args: Vec<String>| make_logged(target, &log_path, args);
    let _ = std::fs::remove_file(&log_path);
    let tree = source.root.display().to_string();
    let usr = dir.join("usr");
    let hdr_obj = dir.join("hdr-obj");
    std::fs::create_dir_all(&hdr_obj).map_err(Error::io("creating the headers dir"))?;
    // The UAPI headers, installed into our own directory (no .config needed).
    run(vec![
        "-s".into(),
        "-C".into(),
        tree.clone(),
        format!("O={}", hdr_obj.display()),
        "headers_install".into(),
        format!("INSTALL_HDR_PATH={}", usr.display()),
    ])?;
    let out = dir.join("out");
    std::fs::create_dir_all(&out).map_err(Error::io("creating the output dir"))?;
    let mut args = vec![
        "-C".into(),
        format!("{tree}/tools/testing/selftests/hid"),
        format!("OUTPUT={}", out.display()),
        format!("VMLINUX_BTF={}", kernel.vmlinux.display()),
        format!("KHDR_INCLUDES=-isystem {}/include", usr.display()),
        format!("-j{}", crate::base::host::cores()),
        "TARGET_ARCH=-static".into(),
    ];
    // The cell's compiler for the programs; BPF is always clang.
    args.extend(cell.make_args());
    if !cell.make.contains_key("LLVM") {
        args.extend(["CLANG=clang-19".into(), "LLVM_STRIP=llvm-strip-19".into()]);
    }
    args.extend(PROGRAMS.iter().map(|p| out.join(p).display().to_string()));
    run(args)?;
    write_atomic(&done, b"").map_err(Error::io("writing the done marker"))?;
    progress.finish("built");
    Ok(Built { dir })
}

/// `make <args>`, its output appended to the build log; a failure names
/// the first error line.
fn make_logged(target: &Target, log_path: &Path, args: Vec<String>) -> Result<()> {
    let out = duct::cmd("make", &args)
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .map_err(Error::io("running make"))?;
    let mut log = std::fs::read(log_path).unwrap_or_default();
    log.extend_from_slice(format!("$ make {}\n", args.join(" ")).as_bytes());
    log.extend_from_slice(&out.stdout);
    let _ = std::fs::write(log_path, log);
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        let first_error = text.lines().find(|l| l.contains("error")).unwrap_or("").to_string();
        return Err(Error::Other(format!(
            "{target}: building the kernel's HID selftests failed: {}; see {}",
            one_line(&first_error, 1),
            log_path.display()
        )));
    }
    Ok(())
}

/// One program's run on one target.
pub struct ProgramRun {
    pub target: Target,
    pub program: String,
    pub plan: Option<usize>,
    pub results: Vec<KtapResult>,
    /// Kernel reports on the console (none is the only good answer).
    pub splats: Vec<String>,
    /// What went wrong with the run itself: a timeout, no verdict, another
    /// run's results, the wrong kernel.
    pub problems: Vec<String>,
    /// The program exited 0 (None: no verdict came).
    pub exit_ok: Option<bool>,
    /// The tree's exact source label (known results name kernels by it).
    pub kernel_label: String,
    pub vm_seconds: f64,
    pub run_dir: PathBuf,
}

impl ProgramRun {
    /// Results the plan promised but never came (a crash mid-run).
    pub fn missing(&self) -> usize {
        self.plan.map_or(0, |p| p.saturating_sub(self.results.len()))
    }
}

/// Boot `target`'s kernel with `program` and collect its KTAP results.
pub fn run(suite: &Suite, target: &Target, built: &Built, program: &str) -> Result<ProgramRun> {
    let kernel = suite.kernel(target)?;
    let qemu = tools::require(&tools::QEMU)?;
    let agent_bin = crate::vm::agent::ensure(&suite.repo)?;
    let agent = std::fs::read(&agent_bin).map_err(Error::io(format!("reading {}", agent_bin.display())))?;
    let label = target.label();
    let run_dir = new_run_dir(&suite.repo.runs_dir().join(&label).join(format!("kselftest-{program}")))?;
    let probe =
        crate::vm::boot::accelerator(&suite.cache, &qemu, &kernel.boot_image, &kernel.cell.name, &agent, &run_dir)?;
    let mut fs = Initramfs::with_agent(&agent);
    let bin = built.program(program);
    let guest = format!("{PROGRAM_DIR}/{program}");
    fs.add_host_file(&guest, 0o755, &bin).map_err(Error::io(format!("reading {}", bin.display())))?;
    // The selftests run for minutes under TCG; a hang still ends.
    let deadline = std::env::var("HIDVM_VM_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(60 + 60 * probe.accel.slowness() as u64));
    let nonce = format!(
        "kselftest-{}-{}-{:x}",
        std::process::id(),
        label,
        std::time::UNIX_EPOCH.elapsed().unwrap_or_default().as_nanos()
    );
    let job = Job {
        cell: target.cell.clone(),
        nonce: nonce.clone(),
        deadline_ms: deadline.as_millis() as u64,
        detectors: kernel.detectors()?,
        mode: JobMode::Command { argv: vec![guest.clone()], cwd: PROGRAM_DIR.into() },
    };
    fs.file(JOB_PATH, 0o644, serde_json::to_vec_pretty(&job).expect("job serializes"));
    let booted = boot::boot(&qemu, &kernel.boot_image, &fs, probe.accel, deadline, &run_dir, Vec::new())?;
    let report = crate::judge::guest::GuestReport::parse(&booted.results_text);
    let _ = std::fs::write(run_dir.join("output.txt"), report.output.join("\n") + "\n");
    let (plan, results) = tap::parse(&report.output);
    let (splats, _) = suite.allow.filter(&target.cell, console::find_splats(&booted.console_text));
    let problems = run_problems(&report, &nonce, &kernel.cell.banner, booted.outcome.timed_out, deadline, &run_dir);
    Ok(ProgramRun {
        target: target.clone(),
        program: program.to_string(),
        plan,
        results,
        splats: splats.iter().map(|s| format!("{} ({})", s.line.trim(), s.class)).collect(),
        problems,
        exit_ok: report.done.as_ref().map(|(passed, _)| *passed),
        kernel_label: suite.source(&target.kernel)?.label,
        vm_seconds: booted.outcome.elapsed.as_secs_f64(),
        run_dir,
    })
}

/// The run itself: it ended in time with a verdict, from this run's guest
/// (nonce), on the cell's kernel (banner), on a legible channel.
pub fn run_problems(
    report: &crate::judge::guest::GuestReport,
    nonce: &str,
    banner: &str,
    timed_out: bool,
    deadline: Duration,
    run_dir: &Path,
) -> Vec<String> {
    let mut p = Vec::new();
    if timed_out {
        p.push(format!("the VM timed out after {deadline:?} (see {})", run_dir.display()));
    }
    match &report.hello {
        None => p.push(format!("the guest agent never answered (see {}/console.log)", run_dir.display())),
        Some((_, proc_version)) if !proc_version.contains(banner) => {
            p.push(format!("the guest runs another kernel than the cell's (`{banner}` not in: {proc_version})"))
        }
        Some(_) => {}
    }
    if report.hello.is_some() && report.nonce.as_deref() != Some(nonce) {
        p.push(format!("the results are not this run's (nonce {:?}, expected {nonce})", report.nonce));
    }
    if !report.garbled.is_empty() {
        p.push(format!("the result channel carried garbled lines: {}", report.garbled.join(" | ")));
    }
    if report.done.is_none() && !timed_out {
        p.push(format!("no verdict from the guest (see {}/console.log)", run_dir.display()));
    }
    if report.done_count > 1 {
        p.push(format!("the guest sent {} verdicts", report.done_count));
    }
    p
}

/// A program run judged against the known results (`judge::tap`): one
/// row per result plus `<program>.(run)`.
pub fn judge(run: &ProgramRun, known: &KnownResults) -> tap::Judged {
    let tap_run = TapRun {
        program: &run.program,
        plan: run.plan,
        results: &run.results,
        exit_ok: run.exit_ok,
        problems: run.problems.clone(),
        splats: run.splats.clone(),
    };
    let mut j = tap::judge(&tap_run, known, &run.kernel_label, &run.target.cell, |n| format!("kselftest::{n}"));
    for f in &mut j.failures {
        f.push_str(&format!(" (output: {}/output.txt)", run.run_dir.display()));
    }
    j
}

/// `hidvm selftests`: build for every target first (so a build failure
/// stops everything before any boot), run each program on each target,
/// `jobs` VMs at a time, print the test x target matrix (known failures
/// as KNOWN) and each program's per-test cost. Returns whether every
/// result passed, was skipped with a reason, or failed as known.
pub fn run_all(suite: &Suite, targets: &[Target], filter: Option<&str>, jobs: usize) -> Result<bool> {
    let known = KnownResults::load(&suite.repo.root.join("tests/kselftest-known.toml"))?;
    if targets.is_empty() {
        return Err(Error::NoTests("no target selected: name kernels and cells that exist (`hidvm list`)".into()));
    }
    let programs: Vec<&str> =
        PROGRAMS.iter().copied().filter(|p| filter.is_none_or(|f| p.contains(f) || f.contains(p))).collect();
    if programs.is_empty() {
        return Err(Error::Other(format!(
            "no selftest program matches `{}`; the programs are {}",
            filter.unwrap_or_default(),
            PROGRAMS.join(", ")
        )));
    }
    let mut work = Vec::new();
    for t in targets {
        let built = build(suite, t)?;
        for p in &programs {
            work.push((t.clone(), built.dir.clone(), p.to_string()));
        }
    }
    let runs = run_work(suite, &work, jobs);
    report(targets, &runs, &known)
}

/// Every (target, built programs, program) of `work`, `jobs` VMs at a
/// time, each announced as it ends; in `work` order.
fn run_work(suite: &Suite, work: &[(Target, PathBuf, String)], jobs: usize) -> Vec<Result<ProgramRun>> {
    in_parallel(work, jobs, |(t, dir, p)| {
        let r = run(suite, t, &Built { dir: dir.clone() }, p);
        match &r {
            Ok(run) => crate::base::output::note(format!(
                "  ran   kselftest::{}::{p}: {} results in {:.1} s{}",
                t.label(),
                run.results.len(),
                run.vm_seconds,
                if run.problems.is_empty() { String::new() } else { format!(" ({})", run.problems.join("; ")) }
            )),
            Err(e) => crate::base::output::note(format!("  ERROR kselftest::{}::{p}: {e}", t.label())),
        }
        r
    })
}

/// The test x target matrix, the failures and notes, and each program's
/// cost per test; whether everything passed (or failed as known).
fn report(targets: &[Target], runs: &[Result<ProgramRun>], known: &KnownResults) -> Result<bool> {
    let mut matrix = crate::results::matrix::Matrix::new(targets.to_vec());
    let mut notes = Vec::new();
    let mut ok = true;
    for r in runs {
        let run = match r {
            Ok(run) => run,
            Err(e) => {
                ok = false;
                notes.push(format!("error: {e}"));
                continue;
            }
        };
        let judged = judge(run, known);
        for (row, cell) in &judged.rows {
            match cell {
                Cell::Pass => matrix.record_text(row, &run.target, "pass".into(), true),
                Cell::Known => matrix.record_known(row, &run.target),
                Cell::Skip(why) => matrix.record_skip(row, &run.target, why),
                Cell::Fail => matrix.record_text(row, &run.target, "FAIL".into(), false),
            }
        }
        ok &= judged.ok();
        notes.extend(judged.failures);
        notes.extend(judged.notes);
    }
    println!("\n{}", matrix.render());
    let ok = ok && matrix.all_passed();
    for n in &notes {
        println!("{n}");
    }
    // The per-test cost the README compares with the scenarios'.
    for run in runs.iter().flatten() {
        let n = run.results.len().max(1);
        println!(
            "cost: kselftest {} on {}: {} tests in {:.1} s of VM time ({:.2} s per test)",
            run.program,
            run.target,
            run.results.len(),
            run.vm_seconds,
            run.vm_seconds / n as f64
        );
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::tap::Outcome;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(String::from).collect()
    }

    #[test]
    fn ktap_results_plan_and_directives_are_read() {
        let out = lines(
            "TAP version 13\n1..4\n# Starting 4 tests from 2 test cases.\n#  RUN           hid_bpf.test_create_uhid ...\n\
             #            OK  hid_bpf.test_create_uhid\nok 1 hid_bpf.test_create_uhid\nnot ok 2 hid_bpf.test_attach # assertion failed\n\
             # hid_bpf.c:154:test_fixup:Expected 0 (0) == err (-22)\n# test_fixup: Test terminated by assertion\nnot ok 4 hid_bpf.test_fixup\n\
             ok 3 hid_bpf.test_wq # SKIP bpf_wq unsupported\n  ok 1 nested.sub\n# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0\n",
        );
        let (plan, r) = tap::parse(&out);
        assert_eq!(plan, Some(4));
        assert_eq!(r.len(), 4, "indented subtests are not top-level results");
        let fixup = r.iter().find(|x| x.name == "hid_bpf.test_fixup").unwrap();
        assert_eq!(fixup.outcome, Outcome::Fail("hid_bpf.c:154:test_fixup:Expected 0 (0) == err (-22)".into()));
        assert_eq!(r[0], KtapResult { name: "hid_bpf.test_create_uhid".into(), outcome: Outcome::Pass });
        assert_eq!(r[1].outcome, Outcome::Fail("assertion failed".into()));
        assert_eq!(
            r.iter().find(|x| x.name == "hid_bpf.test_wq").unwrap().outcome,
            Outcome::Skip("bpf_wq unsupported".into())
        );
    }

    fn run_of(results: Vec<KtapResult>, plan: Option<usize>, exit_ok: Option<bool>) -> ProgramRun {
        ProgramRun {
            target: Target::new("6.12", "gcc"),
            program: "hid_bpf".into(),
            plan,
            results,
            splats: vec![],
            problems: vec![],
            exit_ok,
            kernel_label: "6.12.118-1".into(),
            vm_seconds: 1.0,
            run_dir: PathBuf::new(),
        }
    }

    #[test]
    fn a_run_with_a_missing_plan_a_bad_exit_or_only_skips_fails_its_run_row() {
        let known = KnownResults::default();
        let pass = || vec![KtapResult { name: "hid_bpf.a".into(), outcome: Outcome::Pass }];
        assert!(judge(&run_of(pass(), Some(1), Some(true)), &known).ok());
        for run in [
            run_of(pass(), None, Some(true)),
            run_of(pass(), Some(1), Some(false)),
            run_of(pass(), Some(2), Some(true)),
            run_of(
                vec![KtapResult { name: "hid_bpf.a".into(), outcome: Outcome::Skip("no".into()) }],
                Some(1),
                Some(true),
            ),
        ] {
            let j = judge(&run, &known);
            assert!(!j.ok());
            assert_eq!(j.rows.last().unwrap(), &("kselftest::hid_bpf.(run)".to_string(), Cell::Fail));
        }
    }

    #[test]
    fn the_repository_known_list_parses() {
        KnownResults::load(&crate::base::layout::Repo::locate().root.join("tests/kselftest-known.toml")).unwrap();
    }
}
