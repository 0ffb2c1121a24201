//! The judge against hand-made guest reports and consoles.
use super::*;
use crate::judge::allowlist::AllowList;
use hidvm_proto::{Check, GuestMsg, ObjectCounts, StepReport};

fn cell(name: &str, banner: &str) -> KernelCell {
    KernelCell {
        name: name.into(),
        summary: String::new(),
        make: Default::default(),
        compiler: "cc".into(),
        banner: banner.into(),
        needs: vec![],
        fragments: vec![],
        modules: vec![],
        default_run: true,
        boot: Default::default(),
    }
}

/// A one-step self-test (lkdtm) or scenario stand-in.
fn scenario(expect_verdict: Option<&str>, expect_failure: bool) -> Scenario {
    let mut s: Scenario =
        serde_json::from_str(r#"{"summary":"s","device":[],"step":[{"op":"lkdtm","crash":"WARNING"}]}"#).unwrap();
    s.expect_verdict = expect_verdict.map(String::from);
    if expect_failure {
        s.expect_failure = vec![hidvm_proto::ExpectedFailure { step: 1, check: "hidraw".into(), notes_contain: None }];
    }
    s
}

fn vm(timed_out: bool) -> VmOutcome {
    VmOutcome {
        status: None,
        timed_out,
        elapsed: std::time::Duration::from_secs(1),
        qemu_output: String::new(),
        restore_failed: None,
        stuck_after_verdict: false,
        first_answer: None,
        phases: Vec::new(),
    }
}

fn step(index: usize, checks: Vec<Check>) -> String {
    GuestMsg::Step(StepReport {
        index,
        what: "x".into(),
        ms: 0,
        checks,
        notes: vec![],
        error: None,
        observed: None,
        race: None,
    })
    .to_line()
}

fn health(h: Health) -> String {
    GuestMsg::Health(h).to_line()
}

fn healthy() -> Health {
    Health {
        taint_before: Reading::Value(0),
        taint_after: Reading::Value(0),
        bpf_objects_before: Reading::Value(ObjectCounts::default()),
        bpf_objects_after: Reading::Value(ObjectCounts::default()),
        kmemleak: Kmemleak::NotBuilt,
    }
}

const CONSOLE_OK: &str = "[ 1.0] hidvm: step 1: provoke WARNING through lkdtm\n[ 1.1] hidvm: scenario done: ok\n";

/// A complete, well-formed run of the one-step scenario: device
/// creation, step 1 (its hidraw check passing or not), the final step.
fn run(banner: &str, nonce: &str, step1_ok: bool, health_line: &str, passed: bool) -> GuestReport {
    let hidraw = Check::equal("hidraw /dev/hidraw0", "a", if step1_ok { "a" } else { "b" });
    GuestReport::parse(&format!(
        "@hidvm {{\"msg\":\"hello\",\"agent\":\"0\",\"kernel_release\":\"6.12\",\"proc_version\":\"Linux version 6.12 ({banner})\",\"nonce\":\"{nonce}\"}}\n{}{}{}{health_line}@hidvm {{\"msg\":\"done\",\"passed\":{passed},\"summary\":\"s\"}}\n",
        step(0, vec![Check::equal("devices", 0, 0)]),
        step(1, vec![hidraw]),
        step(2, vec![Check::equal("late", "nothing", "nothing")]),
    ))
}

fn good() -> GuestReport {
    run("gcc 12", "n", true, &health(healthy()), true)
}

fn judge_with(
    c: &KernelCell,
    s: &Scenario,
    v: &VmOutcome,
    r: &GuestReport,
    console: &str,
    allow: &AllowList,
    kmemleak: bool,
) -> Judgement {
    let (splats, _) = allow.filter(&c.name, console::find_splats(console));
    let ctx = RunContext { cell: c, scenario: s, nonce: "n", detectors: Detectors { kmemleak } };
    judge(&ctx, v, r, console, &splats)
}

fn token(c: &KernelCell, s: &Scenario, v: &VmOutcome, r: &GuestReport, console: &str) -> String {
    judge_with(c, s, v, r, console, &AllowList::default(), false).verdict.token()
}

#[test]
fn only_a_complete_consistent_run_on_the_right_kernel_with_a_clean_console_passes() {
    let gcc = cell("gcc", "gcc");
    let s = scenario(None, false);
    assert_eq!(token(&gcc, &s, &vm(false), &good(), CONSOLE_OK), "pass");
    // Same guest output, but the console shows a panic: QEMU exits 0 all the same.
    let panic = format!("{CONSOLE_OK}[ 1.2] Kernel panic - not syncing: Attempted to kill init!\n");
    assert_eq!(token(&gcc, &s, &vm(false), &good(), &panic), "kernel-crash: panic");
    let warn = format!("[ 1.0] WARNING: CPU: 0 PID: 1 at kernel/foo.c:1 bar+0x0/0x1\n{CONSOLE_OK}");
    assert_eq!(token(&gcc, &s, &vm(false), &good(), &warn), "kernel-splat: warning");
}

#[test]
fn silence_timeouts_foreign_results_and_inconsistent_verdicts_fail() {
    let gcc = cell("gcc", "gcc");
    let s = scenario(None, false);
    let ok = health(healthy());
    let none = GuestReport::parse("");
    assert_eq!(token(&gcc, &s, &vm(false), &none, ""), "no-answer");
    assert_eq!(token(&gcc, &s, &vm(true), &none, ""), "timeout");
    assert_eq!(token(&gcc, &s, &vm(false), &run("gcc 12", "other-run", true, &ok, true), CONSOLE_OK), "no-answer");
    assert_eq!(token(&cell("llvm", "clang version 19"), &s, &vm(false), &good(), CONSOLE_OK), "wrong-kernel");
    assert_eq!(token(&gcc, &s, &vm(false), &run("gcc 12", "n", true, &ok, false), CONSOLE_OK), "check-failed");
    // "passed" contradicted by a failed step, a missing health report, a lost console.
    assert_eq!(token(&gcc, &s, &vm(false), &run("gcc 12", "n", false, &ok, true), CONSOLE_OK), "no-verdict");
    assert_eq!(token(&gcc, &s, &vm(false), &run("gcc 12", "n", true, "", true), CONSOLE_OK), "no-verdict");
    assert_eq!(token(&gcc, &s, &vm(false), &good(), ""), "no-verdict");
    // Two verdicts: the first counts, and the run fails.
    let mut twice = good();
    twice.done_count = 2;
    assert_eq!(token(&gcc, &s, &vm(false), &twice, CONSOLE_OK), "no-verdict");
    // A passing run whose guest then never shut down is not a pass.
    let stuck = VmOutcome { stuck_after_verdict: true, ..vm(false) };
    assert_eq!(token(&gcc, &s, &vm(false), &good(), CONSOLE_OK), "pass");
    assert_eq!(token(&gcc, &s, &stuck, &good(), CONSOLE_OK), "timeout");
}

#[test]
fn step_verdicts_are_recomputed_from_checks_not_taken_from_the_guest() {
    let gcc = cell("gcc", "gcc");
    let s = scenario(None, false);
    // A step with no checks at all, in a run the guest calls passed.
    let mut r = good();
    r.steps[1].checks.clear();
    assert_eq!(token(&gcc, &s, &vm(false), &r, CONSOLE_OK), "no-verdict");
    assert_eq!(r.failed_checks(), vec![(1, "no check".to_string())]);
    // A check whose seen differs from expected cannot pass, whatever
    // the guest thought of it.
    let mut r = good();
    r.steps[1].checks[0].seen = "b".into();
    assert_eq!(token(&gcc, &s, &vm(false), &r, CONSOLE_OK), "no-verdict");
    // The final "nothing arrived late" step is required.
    let mut r = good();
    r.steps.pop();
    assert_eq!(token(&gcc, &s, &vm(false), &r, CONSOLE_OK), "no-verdict");
}

#[test]
fn health_reports_fail_a_passing_scenario() {
    let gcc = cell("gcc", "gcc");
    let s = scenario(None, false);
    let with = |h: Health| run("gcc 12", "n", true, &health(h), true);
    let tainted = with(Health { taint_after: Reading::Value(512), ..healthy() });
    assert_eq!(token(&gcc, &s, &vm(false), &tainted, CONSOLE_OK), "kernel-splat: taint");
    let leaked = with(Health {
        kmemleak: Kmemleak::Scanned { leaks: vec!["unreferenced object 0xffff (size 64):".into()], waited_ms: 5200 },
        ..healthy()
    });
    assert_eq!(token(&gcc, &s, &vm(false), &leaked, CONSOLE_OK), "kernel-splat: kmemleak");
    let objects =
        with(Health { bpf_objects_after: Reading::Value(ObjectCounts { progs: 1, maps: 0, links: 0 }), ..healthy() });
    assert_eq!(token(&gcc, &s, &vm(false), &objects, CONSOLE_OK), "kernel-splat: bpf-leak");
    let old_taint = with(Health { taint_before: Reading::Value(512), taint_after: Reading::Value(512), ..healthy() });
    assert_eq!(token(&gcc, &s, &vm(false), &old_taint, CONSOLE_OK), "pass");
}

#[test]
fn a_health_reading_that_could_not_be_taken_fails_as_unchecked() {
    let gcc = cell("gcc", "gcc");
    let s = scenario(None, false);
    let with = |h: Health| run("gcc 12", "n", true, &health(h), true);
    let taint = with(Health { taint_before: Reading::Error("EACCES".into()), ..healthy() });
    assert_eq!(token(&gcc, &s, &vm(false), &taint, CONSOLE_OK), "unchecked");
    let objects = with(Health { bpf_objects_after: Reading::Error("BPF_LINK_GET_NEXT_ID: EPERM".into()), ..healthy() });
    assert_eq!(token(&gcc, &s, &vm(false), &objects, CONSOLE_OK), "unchecked");
    let scan = with(Health { kmemleak: Kmemleak::Failed { reason: "scan: EBUSY".into() }, ..healthy() });
    assert_eq!(token(&gcc, &s, &vm(false), &scan, CONSOLE_OK), "unchecked");
    // A cell built with kmemleak whose guest has none could not look either.
    let absent = judge_with(&gcc, &s, &vm(false), &good(), CONSOLE_OK, &AllowList::default(), true);
    assert_eq!(absent.verdict.token(), "unchecked");
    let clean = with(Health { kmemleak: Kmemleak::Scanned { leaks: vec![], waited_ms: 5200 }, ..healthy() });
    assert_eq!(
        judge_with(&gcc, &s, &vm(false), &clean, CONSOLE_OK, &AllowList::default(), true).verdict.token(),
        "pass"
    );
}

#[test]
fn crashes_are_classified_by_their_first_splat_and_allowed_splats_are_excused() {
    let gcc = cell("gcc", "gcc");
    let s = scenario(None, false);
    let console = "[ 1.0] hidvm: step 1: provoke BUG through lkdtm\n[ 1.1] kernel BUG at drivers/misc/lkdtm/bugs.c:80!\n[ 1.1] Oops: invalid opcode: 0000 [#1] SMP\n[ 1.2] Kernel panic - not syncing: Fatal exception\n";
    assert_eq!(token(&gcc, &s, &vm(false), &good(), console), "kernel-crash: bug");
    let warn = format!("[ 1.0] WARNING: CPU: 0 PID: 1 at drivers/foo.c:12 foo+0x1/0x2\n{CONSOLE_OK}");
    let allow: AllowList = toml::from_str(
        "[[allow]]\nclass = \"warning\"\ncontains = \"drivers/foo.c:12\"\ncells = [\"gcc\"]\nreason = \"known\"\n",
    )
    .unwrap();
    let (_, excused) = allow.filter("gcc", console::find_splats(&warn));
    assert_eq!(excused.len(), 1);
    let j = judge_with(&gcc, &s, &vm(false), &good(), &warn, &allow, false);
    assert!(j.verdict.passed());
    assert!(j.splat.is_empty(), "an excused splat is not the run's kernel report");
    let j = judge_with(&gcc, &s, &vm(false), &good(), console, &allow, false);
    assert!(j.splat[0].ends_with("kernel BUG at drivers/misc/lkdtm/bugs.c:80!"), "{:?}", j.splat);
}

#[test]
fn selftests_pass_only_when_failing_exactly_as_stated() {
    let gcc = cell("gcc", "gcc");
    let ok = health(healthy());
    let check_test = scenario(Some("check-failed"), true);
    let failed_hidraw = run("gcc 12", "n", false, &ok, false);
    assert_eq!(token(&gcc, &check_test, &vm(false), &failed_hidraw, CONSOLE_OK), "pass");
    assert!(token(&gcc, &check_test, &vm(false), &good(), CONSOLE_OK).starts_with("selftest-mismatch"));

    let warn_test = scenario(Some("kernel-splat: warning"), false);
    let provoked = format!("[ 1.0] hidvm: step 1: provoke WARNING through lkdtm\n[ 1.1] WARNING: CPU: 0 PID: 1 at drivers/misc/lkdtm/bugs.c:1 lkdtm_WARNING\n{CONSOLE_OK}");
    assert_eq!(token(&gcc, &warn_test, &vm(false), &good(), &provoked), "pass");
    // A WARNING during boot is not the provoked one.
    let at_boot = format!("[ 0.5] WARNING: CPU: 0 PID: 1 at arch/x86/foo.c:1 foo\n{CONSOLE_OK}");
    assert!(token(&gcc, &warn_test, &vm(false), &good(), &at_boot).starts_with("selftest-mismatch"));
    // Expecting a splat, getting a clean kernel: mismatch.
    assert!(token(&gcc, &warn_test, &vm(false), &good(), CONSOLE_OK).starts_with("selftest-mismatch"));
    let panic_test = scenario(Some("kernel-crash: panic"), false);
    assert!(token(&gcc, &panic_test, &vm(false), &good(), &provoked).starts_with("selftest-mismatch"));
    // A self-test that only names console text: its run's end is not
    // stated, so nothing it could end as counts as a pass.
    let mut console_only = scenario(None, false);
    console_only.expect_console = vec!["lkdtm".into()];
    assert!(token(&gcc, &console_only, &vm(false), &good(), &provoked).starts_with("selftest-mismatch"));
}
