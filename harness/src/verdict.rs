//! Deciding pass/fail. Success is only ever the agent's explicit verdict,
//! on the kernel the cell claims to be, with a clean console; QEMU exiting
//! 0 proves nothing (a panic with panic=-1 exits 0 too).
use crate::allowlist::AllowList;
use crate::error::one_line;
use crate::cell::KernelCell;
use crate::console::{self, Splat};
use crate::qemu::VmOutcome;
use hidvm_proto::{GuestMsg, Scenario};

/// What the guest said, parsed from the result channel.
#[derive(Debug, Default, Clone)]
pub struct GuestReport {
    pub hello: Option<(String, String)>,
    /// The nonce the guest echoed (must be this run's).
    pub nonce: Option<String>,
    /// How many verdicts arrived (exactly one is valid; the first counts).
    pub done_count: usize,
    /// BPF object counts before/after the scenario.
    pub bpf_objects: Option<(String, String)>,
    pub steps: Vec<GuestMsg>,
    pub done: Option<(bool, String)>,
    /// Taint flags (before, after) the scenario.
    pub taint: Option<(u64, u64)>,
    pub kmemleak: Vec<String>,
    /// Lines with our prefix that did not parse (a truncated last line when
    /// the VM died mid-write, typically).
    pub garbled: Vec<String>,
}

impl GuestReport {
    pub fn parse(text: &str) -> GuestReport {
        let mut r = GuestReport::default();
        for line in text.lines() {
            match GuestMsg::from_line(line) {
                None => {}
                Some(Err(e)) => r.garbled.push(e),
                Some(Ok(GuestMsg::Hello { kernel_release, proc_version, nonce, .. })) => {
                    r.hello = Some((kernel_release, proc_version));
                    r.nonce = Some(nonce);
                }
                Some(Ok(m @ GuestMsg::Step { .. })) => r.steps.push(m),
                Some(Ok(GuestMsg::Done { passed, summary })) => {
                    r.done_count += 1;
                    if r.done.is_none() {
                        r.done = Some((passed, summary));
                    }
                }
                Some(Ok(GuestMsg::Health { taint_before, taint_after, kmemleak, bpf_objects_before, bpf_objects_after })) => {
                    r.taint = Some((taint_before, taint_after));
                    r.kmemleak = kmemleak;
                    r.bpf_objects = Some((bpf_objects_before, bpf_objects_after));
                }
            }
        }
        r
    }

    /// (step, check description) of every failed check; a step that failed
    /// without a failed check counts as (step, "error").
    /// The last step the guest reported, for timeout and no-verdict messages.
    fn last_step(&self) -> String {
        self.steps.last().map(step_name).unwrap_or_else(|| "before the first step".into())
    }

    pub fn failed_checks(&self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for m in &self.steps {
            if let GuestMsg::Step { index, ok: false, checks, .. } = m {
                let failed: Vec<_> = checks.iter().filter(|c| !c.ok).collect();
                if failed.is_empty() {
                    out.push((*index, "error".to_string()));
                }
                out.extend(failed.into_iter().map(|c| (*index, c.what.clone())));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A scenario check saw something other than what it expected.
    Check,
    /// A self-test did not fail the way it states.
    SelftestMismatch,
    /// The kernel crashed (panic, or an oops that panics).
    KernelCrash,
    /// A non-fatal splat (WARNING, BUG, KASAN, ...), a taint change or a
    /// kmemleak report.
    KernelSplat,
    /// The VM ran out of time.
    Timeout,
    /// The guest never said hello: boot, agent or channel broke.
    NoAnswer,
    /// The guest said hello but stopped before its verdict.
    NoVerdict,
    /// The booted kernel was not built by the cell's compiler.
    WrongKernel,
}

impl FailureKind {
    /// Human label, and the token self-tests use in `expect_verdict`.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Check => "check failed",
            FailureKind::SelftestMismatch => "self-test mismatch",
            FailureKind::KernelCrash => "kernel crash",
            FailureKind::KernelSplat => "kernel splat",
            FailureKind::Timeout => "timeout",
            FailureKind::NoAnswer => "guest never answered",
            FailureKind::NoVerdict => "no verdict",
            FailureKind::WrongKernel => "wrong kernel",
        }
    }

    pub fn token(self) -> &'static str {
        match self {
            FailureKind::Check => "check-failed",
            FailureKind::SelftestMismatch => "selftest-mismatch",
            FailureKind::KernelCrash => "kernel-crash",
            FailureKind::KernelSplat => "kernel-splat",
            FailureKind::Timeout => "timeout",
            FailureKind::NoAnswer => "no-answer",
            FailureKind::NoVerdict => "no-verdict",
            FailureKind::WrongKernel => "wrong-kernel",
        }
    }

    pub const ALL: [FailureKind; 8] = [
        FailureKind::Check,
        FailureKind::SelftestMismatch,
        FailureKind::KernelCrash,
        FailureKind::KernelSplat,
        FailureKind::Timeout,
        FailureKind::NoAnswer,
        FailureKind::NoVerdict,
        FailureKind::WrongKernel,
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail { kind: FailureKind, class: Option<String>, reason: String },
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Pass)
    }
    fn fail(kind: FailureKind, reason: impl Into<String>) -> Verdict {
        Verdict::Fail { kind, class: None, reason: reason.into() }
    }
    fn fail_class(kind: FailureKind, class: &str, reason: impl Into<String>) -> Verdict {
        Verdict::Fail { kind, class: Some(class.to_string()), reason: reason.into() }
    }
    /// "kernel-crash: bug", "timeout", "pass".
    pub fn token(&self) -> String {
        match self {
            Verdict::Pass => "pass".into(),
            Verdict::Fail { kind, class: Some(c), .. } => format!("{}: {c}", kind.token()),
            Verdict::Fail { kind, class: None, .. } => kind.token().into(),
        }
    }
}

/// A verdict and the allow-list entries that excused splats on the way.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub verdict: Verdict,
    /// (allow-list entry index, splat headline).
    pub allowed: Vec<(usize, String)>,
    /// The first splat the allow-list did not excuse: its headline and the
    /// lines after it (empty when there was none).
    pub splat: Vec<String>,
}

/// "<kind>" or "<kind>: <class>" (a verdict token, or a self-test's
/// `expect_verdict`) -> (kind, class).
fn split_verdict(text: &str) -> (&str, Option<&str>) {
    match text.split_once(':') {
        Some((k, c)) => (k.trim(), Some(c.trim())),
        None => (text.trim(), None),
    }
}

/// Check a self-test's `expect_verdict` text: "<kind>" or "<kind>: <class>".
pub fn validate_expected_verdict(text: &str) -> Result<(), String> {
    let (kind, class) = split_verdict(text);
    if !FailureKind::ALL.iter().any(|k| k.token() == kind) {
        return Err(format!(
            "field `expect_verdict`: unknown kind `{kind}` (known: {})",
            FailureKind::ALL.iter().map(|k| k.token()).collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(c) = class {
        let classes = console::classes();
        if !classes.contains(&c) {
            return Err(format!("field `expect_verdict`: unknown class `{c}` (known: {})", classes.join(", ")));
        }
    }
    Ok(())
}

/// What the host knows about the run it started.
pub struct RunContext<'a> {
    pub cell: &'a KernelCell,
    pub scenario: &'a Scenario,
    /// The nonce this run put into the guest's job.
    pub nonce: &'a str,
}

pub fn judge(
    ctx: &RunContext<'_>,
    vm: &VmOutcome,
    report: &GuestReport,
    console_text: &str,
    allow: &AllowList,
) -> Judgement {
    let (cell, scenario) = (ctx.cell, ctx.scenario);
    let mut allowed = Vec::new();
    let splats: Vec<Splat> = console::find_splats(console_text)
        .into_iter()
        .filter(|s| match allow.accepts(&cell.name, s) {
            Some(i) => {
                allowed.push((i, s.line.clone()));
                false
            }
            None => true,
        })
        .collect();
    let raw = judge_run(ctx, vm, report, &splats, console_text);
    let verdict = if scenario.is_selftest() { judge_selftest(scenario, report, &raw, console_text, &splats) } else { raw };
    let splat = splats.into_iter().next().map(|s| s.context).unwrap_or_default();
    Judgement { verdict, allowed, splat }
}

/// The verdict as for any scenario: the most fundamental problem first.
fn judge_run(ctx: &RunContext<'_>, vm: &VmOutcome, report: &GuestReport, splats: &[Splat], console_text: &str) -> Verdict {
    let cell = ctx.cell;
    // A crash explains everything after it.
    if splats.iter().any(|s| s.fatal) {
        let first = &splats[0];
        return Verdict::fail_class(FailureKind::KernelCrash, first.class, describe_splats(splats));
    }
    if let Some(first) = splats.first() {
        return Verdict::fail_class(FailureKind::KernelSplat, first.class, describe_splats(splats));
    }
    if vm.timed_out {
        return Verdict::fail(
            FailureKind::Timeout,
            format!("VM did not finish within {:.0} s (last reported: {})", vm.elapsed.as_secs_f64(), report.last_step()),
        );
    }
    let Some((_, proc_version)) = &report.hello else {
        let qemu = if vm.qemu_output.is_empty() { String::new() } else { format!("; QEMU said: {}", one_line(&vm.qemu_output, 3)) };
        let exit = vm.status.and_then(|s| s.code()).map(|c| c.to_string()).unwrap_or_else(|| "none".into());
        return Verdict::fail(
            FailureKind::NoAnswer,
            format!("the guest agent never answered on the result channel (QEMU exit status {exit}){qemu}"),
        );
    };
    if report.nonce.as_deref() != Some(ctx.nonce) {
        return Verdict::fail(
            FailureKind::NoAnswer,
            format!(
                "the results are not this run's (nonce {:?}, expected {}): another run wrote them; do not run the same test twice at once",
                report.nonce, ctx.nonce
            ),
        );
    }
    if !report.garbled.is_empty() {
        return Verdict::fail(FailureKind::NoVerdict, format!("the result channel carried garbled lines: {}", report.garbled.join(" | ")));
    }
    if !proc_version.contains(&cell.banner) {
        return Verdict::fail(
            FailureKind::WrongKernel,
            format!("cell {} expects /proc/version to contain `{}`, the guest runs: {proc_version}", cell.name, cell.banner),
        );
    }
    if let Some((before, after)) = report.taint {
        let new = after & !before;
        if new != 0 {
            return Verdict::fail_class(
                FailureKind::KernelSplat,
                "taint",
                format!(
                    "the kernel became tainted during the scenario: {before:#x} ({}) -> {after:#x} ({})",
                    console::taint_letters(before),
                    console::taint_letters(after)
                ),
            );
        }
    }
    if let Some((before, after)) = &report.bpf_objects {
        if before != after {
            return Verdict::fail_class(
                FailureKind::KernelSplat,
                "bpf-leak",
                format!("BPF objects outlived the scenario: {before} before it, {after} after its teardown"),
            );
        }
    }
    if !report.kmemleak.is_empty() {
        return Verdict::fail_class(
            FailureKind::KernelSplat,
            "kmemleak",
            format!("kmemleak found new unreferenced objects: {}", report.kmemleak.iter().take(6).cloned().collect::<Vec<_>>().join(" | ")),
        );
    }
    let Some((passed, summary)) = &report.done else {
        return Verdict::fail(FailureKind::NoVerdict, format!("the guest stopped without a verdict (last reported: {})", report.last_step()));
    };
    if report.done_count > 1 {
        return Verdict::fail(FailureKind::NoVerdict, format!("the guest sent {} verdicts; the first said: {summary}", report.done_count));
    }
    if !passed {
        return Verdict::fail(FailureKind::Check, summary.clone());
    }
    // A passing verdict must agree with everything else the guest said.
    let failed_steps: Vec<String> =
        report.steps.iter().filter(|m| matches!(m, GuestMsg::Step { ok: false, .. })).map(step_name).collect();
    if !failed_steps.is_empty() {
        return Verdict::fail(FailureKind::NoVerdict, format!("the guest said passed but reported failed steps: {}", failed_steps.join(", ")));
    }
    let expected_steps = ctx.scenario.steps.len() + 1; // + device creation
    if report.steps.len() != expected_steps {
        return Verdict::fail(
            FailureKind::NoVerdict,
            format!("the guest said passed after {} step reports, the scenario has {expected_steps}", report.steps.len()),
        );
    }
    if report.taint.is_none() {
        return Verdict::fail(FailureKind::NoVerdict, "the guest sent no kernel health report before its verdict");
    }
    if !console_text.contains("hidvm: scenario done") {
        return Verdict::fail(
            FailureKind::NoVerdict,
            "the console capture lacks the agent's final marker (`hidvm: scenario done`): the console was lost, so splats could have been missed",
        );
    }
    Verdict::Pass
}

/// A self-test passes when the run failed exactly the way it states.
fn judge_selftest(scenario: &Scenario, report: &GuestReport, raw: &Verdict, console_text: &str, splats: &[Splat]) -> Verdict {
    let mut problems = Vec::new();
    // A provoked fault must be the one reported: the first splat has to
    // come at or after the step that provoked it, not from boot.
    if let Some(lkdtm_step) = scenario.steps.iter().position(|s| matches!(s, hidvm_proto::Step::Lkdtm { .. })) {
        if let Some(first) = splats.first() {
            let step = first.step_number();
            if step.is_none_or(|n| n < lkdtm_step + 1) {
                problems.push(format!("the first splat came {}, before the lkdtm step {} provoked anything", first.during, lkdtm_step + 1));
            }
        }
    }
    match &scenario.expect_verdict {
        Some(want) => {
            let got = raw.token();
            let (want_kind, want_class) = split_verdict(want);
            let (got_kind, got_class) = split_verdict(&got);
            if want_kind != got_kind || (want_class.is_some() && want_class != got_class) {
                let why = match raw {
                    Verdict::Fail { reason, .. } => format!(" ({reason})"),
                    Verdict::Pass => String::new(),
                };
                problems.push(format!("expected the run to end as `{want}`, it ended as `{got}`{why}"));
            }
        }
        None if !scenario.expect_failure.is_empty() && !matches!(raw, Verdict::Fail { kind: FailureKind::Check, .. }) => {
            problems.push(format!("expected failing checks, the run ended as `{}`", raw.token()));
        }
        None => {}
    }
    if !scenario.expect_failure.is_empty() {
        let failed = report.failed_checks();
        for want in &scenario.expect_failure {
            let hit = failed.iter().any(|(step, what)| *step == want.step && what.starts_with(&want.check));
            if !hit {
                problems.push(format!("step {} check `{}…` did not fail", want.step, want.check));
            }
            if let Some(text) = &want.notes_contain {
                let notes_hit = report.steps.iter().any(|m| {
                    matches!(m, GuestMsg::Step { index, notes, .. } if *index == want.step && notes.iter().any(|n| n.contains(text.as_str())))
                });
                if !notes_hit {
                    problems.push(format!("step {} notes do not contain `{text}`", want.step));
                }
            }
        }
        for (step, what) in &failed {
            let expected = scenario.expect_failure.iter().any(|w| w.step == *step && what.starts_with(&w.check));
            if !expected {
                problems.push(format!("unexpected failure at step {step}: {what}"));
            }
        }
    }
    for text in &scenario.expect_console {
        if !console_text.contains(text.as_str()) {
            problems.push(format!("the console does not show `{text}`"));
        }
    }
    if problems.is_empty() {
        Verdict::Pass
    } else {
        Verdict::fail(FailureKind::SelftestMismatch, problems.join("; "))
    }
}

fn describe_splats(splats: &[Splat]) -> String {
    let first = &splats[0];
    let mut classes: Vec<&str> = splats.iter().map(|s| s.class).collect();
    classes.dedup();
    format!(
        "{} {}, console line {}: {}{}",
        first.class,
        first.during,
        first.line_no,
        first.line,
        if classes.len() > 1 { format!(" (then: {})", classes[1..].join(", ")) } else { String::new() }
    )
}

fn step_name(m: &GuestMsg) -> String {
    match m {
        GuestMsg::Step { index, what, ok, .. } => format!("step {index} {what} ({})", if *ok { "ok" } else { "failed" }),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hidvm_proto::msg::Check;

    fn cell(name: &str, banner: &str) -> KernelCell {
        KernelCell {
            name: name.into(),
            summary: String::new(),
            make: Default::default(),
            compiler: "cc".into(),
            banner: banner.into(),
            needs: vec![],
            fragments: vec![],
            default_run: true,
            boot: Default::default(),
        }
    }

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
        VmOutcome { status: None, timed_out, elapsed: std::time::Duration::from_secs(1), qemu_output: String::new() }
    }

    fn step(index: usize, ok: bool, check: Option<&str>) -> String {
        GuestMsg::Step {
            index,
            what: "x".into(),
            ok,
            ms: 0,
            checks: check.map(|c| vec![Check { what: c.into(), expected: "a".into(), seen: "b".into(), ok }]).unwrap_or_default(),
            notes: vec![],
        }
        .to_line()
    }

    const HEALTHY: &str = r#"@hidvm {"msg":"health","taint_before":0,"taint_after":0}"#;
    const CONSOLE_OK: &str = "[ 1.0] hidvm: step 1: provoke WARNING through lkdtm\n[ 1.1] hidvm: scenario done: ok\n";

    /// A complete, well-formed run of the one-step scenario.
    fn run(banner: &str, nonce: &str, step1_ok: bool, health: &str, passed: bool) -> GuestReport {
        GuestReport::parse(&format!(
            "@hidvm {{\"msg\":\"hello\",\"agent\":\"0\",\"kernel_release\":\"6.12\",\"proc_version\":\"Linux version 6.12 ({banner})\",\"nonce\":\"{nonce}\"}}\n{}{}{health}\n@hidvm {{\"msg\":\"done\",\"passed\":{passed},\"summary\":\"s\"}}\n",
            step(0, true, None),
            step(1, step1_ok, Some("hidraw /dev/hidraw0")),
        ))
    }

    fn token(c: &KernelCell, s: &Scenario, v: &VmOutcome, r: &GuestReport, console: &str) -> String {
        judge(&RunContext { cell: c, scenario: s, nonce: "n" }, v, r, console, &AllowList::default()).verdict.token()
    }

    #[test]
    fn only_a_complete_consistent_run_on_the_right_kernel_with_a_clean_console_passes() {
        let gcc = cell("gcc", "gcc");
        let s = scenario(None, false);
        let good = run("gcc 12", "n", true, HEALTHY, true);
        assert_eq!(token(&gcc, &s, &vm(false), &good, CONSOLE_OK), "pass");
        // Same guest output, but the console shows a panic: QEMU exits 0 all the same.
        let panic = format!("{CONSOLE_OK}[ 1.2] Kernel panic - not syncing: Attempted to kill init!\n");
        assert_eq!(token(&gcc, &s, &vm(false), &good, &panic), "kernel-crash: panic");
        let warn = format!("[ 1.0] WARNING: CPU: 0 PID: 1 at kernel/foo.c:1 bar+0x0/0x1\n{CONSOLE_OK}");
        assert_eq!(token(&gcc, &s, &vm(false), &good, &warn), "kernel-splat: warning");
    }

    #[test]
    fn silence_timeouts_foreign_results_and_inconsistent_verdicts_fail() {
        let gcc = cell("gcc", "gcc");
        let s = scenario(None, false);
        let none = GuestReport::parse("");
        assert_eq!(token(&gcc, &s, &vm(false), &none, ""), "no-answer");
        assert_eq!(token(&gcc, &s, &vm(true), &none, ""), "timeout");
        assert_eq!(token(&gcc, &s, &vm(false), &run("gcc 12", "other-run", true, HEALTHY, true), CONSOLE_OK), "no-answer");
        assert_eq!(token(&cell("llvm", "clang version 19"), &s, &vm(false), &run("gcc 12", "n", true, HEALTHY, true), CONSOLE_OK), "wrong-kernel");
        assert_eq!(token(&gcc, &s, &vm(false), &run("gcc 12", "n", true, HEALTHY, false), CONSOLE_OK), "check-failed");
        // "passed" contradicted by a failed step, a missing health report, a lost console.
        assert_eq!(token(&gcc, &s, &vm(false), &run("gcc 12", "n", false, HEALTHY, true), CONSOLE_OK), "no-verdict");
        assert_eq!(token(&gcc, &s, &vm(false), &run("gcc 12", "n", true, "", true), CONSOLE_OK), "no-verdict");
        assert_eq!(token(&gcc, &s, &vm(false), &run("gcc 12", "n", true, HEALTHY, true), ""), "no-verdict");
        // Two verdicts: the first counts, and the run fails.
        let mut twice = run("gcc 12", "n", true, HEALTHY, true);
        twice.done_count = 2;
        assert_eq!(token(&gcc, &s, &vm(false), &twice, CONSOLE_OK), "no-verdict");
    }

    #[test]
    fn health_reports_fail_a_passing_scenario() {
        let gcc = cell("gcc", "gcc");
        let s = scenario(None, false);
        let tainted = run("gcc 12", "n", true, r#"@hidvm {"msg":"health","taint_before":0,"taint_after":512}"#, true);
        assert_eq!(token(&gcc, &s, &vm(false), &tainted, CONSOLE_OK), "kernel-splat: taint");
        let leaked = run("gcc 12", "n", true, r#"@hidvm {"msg":"health","taint_before":0,"taint_after":0,"kmemleak":["unreferenced object 0xffff (size 64):"]}"#, true);
        assert_eq!(token(&gcc, &s, &vm(false), &leaked, CONSOLE_OK), "kernel-splat: kmemleak");
        let objects = run("gcc 12", "n", true, r#"@hidvm {"msg":"health","taint_before":0,"taint_after":0,"bpf_objects_before":"0 programs","bpf_objects_after":"1 programs"}"#, true);
        assert_eq!(token(&gcc, &s, &vm(false), &objects, CONSOLE_OK), "kernel-splat: bpf-leak");
        let old_taint = run("gcc 12", "n", true, r#"@hidvm {"msg":"health","taint_before":512,"taint_after":512}"#, true);
        assert_eq!(token(&gcc, &s, &vm(false), &old_taint, CONSOLE_OK), "pass");
    }

    #[test]
    fn crashes_are_classified_by_their_first_splat_and_allowed_splats_are_excused() {
        let gcc = cell("gcc", "gcc");
        let s = scenario(None, false);
        let good = run("gcc 12", "n", true, HEALTHY, true);
        let console = "[ 1.0] hidvm: step 1: provoke BUG through lkdtm\n[ 1.1] kernel BUG at drivers/misc/lkdtm/bugs.c:80!\n[ 1.1] Oops: invalid opcode: 0000 [#1] SMP\n[ 1.2] Kernel panic - not syncing: Fatal exception\n";
        assert_eq!(token(&gcc, &s, &vm(false), &good, console), "kernel-crash: bug");
        let warn = format!("[ 1.0] WARNING: CPU: 0 PID: 1 at drivers/foo.c:12 foo+0x1/0x2\n{CONSOLE_OK}");
        let allow: AllowList = toml::from_str("[[allow]]\nclass = \"warning\"\ncontains = \"drivers/foo.c:12\"\ncells = [\"gcc\"]\nreason = \"known\"\n").unwrap();
        let j = judge(&RunContext { cell: &gcc, scenario: &s, nonce: "n" }, &vm(false), &good, &warn, &allow);
        assert!(j.verdict.passed());
        assert_eq!(j.allowed.len(), 1);
        assert!(j.splat.is_empty(), "an excused splat is not the run's kernel report");
        let j = judge(&RunContext { cell: &gcc, scenario: &s, nonce: "n" }, &vm(false), &good, console, &allow);
        assert!(j.splat[0].ends_with("kernel BUG at drivers/misc/lkdtm/bugs.c:80!"), "{:?}", j.splat);
    }

    #[test]
    fn selftests_pass_only_when_failing_exactly_as_stated() {
        let gcc = cell("gcc", "gcc");
        let check_test = scenario(None, true);
        let failed_hidraw = run("gcc 12", "n", false, HEALTHY, false);
        assert_eq!(token(&gcc, &check_test, &vm(false), &failed_hidraw, CONSOLE_OK), "pass");
        let nothing_failed = run("gcc 12", "n", true, HEALTHY, true);
        assert!(token(&gcc, &check_test, &vm(false), &nothing_failed, CONSOLE_OK).starts_with("selftest-mismatch"));

        let warn_test = scenario(Some("kernel-splat: warning"), false);
        let provoked = format!("[ 1.0] hidvm: step 1: provoke WARNING through lkdtm\n[ 1.1] WARNING: CPU: 0 PID: 1 at drivers/misc/lkdtm/bugs.c:1 lkdtm_WARNING\n{CONSOLE_OK}");
        assert_eq!(token(&gcc, &warn_test, &vm(false), &nothing_failed, &provoked), "pass");
        // A WARNING during boot is not the provoked one.
        let at_boot = format!("[ 0.5] WARNING: CPU: 0 PID: 1 at arch/x86/foo.c:1 foo\n{CONSOLE_OK}");
        assert!(token(&gcc, &warn_test, &vm(false), &nothing_failed, &at_boot).starts_with("selftest-mismatch"));
        // Expecting a splat, getting a clean kernel: mismatch.
        assert!(token(&gcc, &warn_test, &vm(false), &nothing_failed, CONSOLE_OK).starts_with("selftest-mismatch"));
        let panic_test = scenario(Some("kernel-crash: panic"), false);
        assert!(token(&gcc, &panic_test, &vm(false), &nothing_failed, &provoked).starts_with("selftest-mismatch"));
        assert!(validate_expected_verdict("kernel-splat: hung-task").is_ok());
        assert!(validate_expected_verdict("kernel-melt").unwrap_err().contains("unknown kind"));
        assert!(validate_expected_verdict("timeout: nope").unwrap_err().contains("unknown class"));
    }
}
