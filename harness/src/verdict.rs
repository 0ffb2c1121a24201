//! Deciding pass/fail. Success is only ever the agent's explicit verdict,
//! on the kernel the cell claims to be, with a clean console; QEMU exiting
//! 0 proves nothing (a panic with panic=-1 exits 0 too).
use crate::cell::KernelCell;
use crate::console::{self, Splat};
use crate::error::one_line;
use crate::qemu::VmOutcome;
use hidvm_proto::job::Detectors;
use hidvm_proto::{GuestMsg, Health, Kmemleak, Reading, Scenario, StepReport};

/// What the guest said, parsed from the result channel.
#[derive(Debug, Default, Clone)]
pub struct GuestReport {
    /// (kernel release, /proc/version).
    pub hello: Option<(String, String)>,
    /// The nonce the guest echoed (must be this run's).
    pub nonce: Option<String>,
    pub steps: Vec<StepReport>,
    pub health: Option<Health>,
    /// What programs printed with bpf_printk.
    pub trace: Option<Vec<String>>,
    /// What a `Command` job's program printed.
    pub output: Vec<String>,
    pub done: Option<(bool, String)>,
    /// How many verdicts arrived (exactly one is valid; the first counts).
    pub done_count: usize,
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
                Some(Ok(GuestMsg::Step(s))) => r.steps.push(s),
                Some(Ok(GuestMsg::Health(h))) => r.health = Some(h),
                Some(Ok(GuestMsg::Trace { lines })) => r.trace = Some(lines),
                Some(Ok(GuestMsg::Output { line })) => r.output.push(line),
                // Sent before a template is frozen; never in a test's own results.
                Some(Ok(GuestMsg::AwaitingDelivery)) => {
                    r.garbled.push("awaiting_delivery: a snapshot template's message among a test's results".into())
                }
                Some(Ok(GuestMsg::Done { passed, summary })) => {
                    r.done_count += 1;
                    if r.done.is_none() {
                        r.done = Some((passed, summary));
                    }
                }
            }
        }
        r
    }

    /// The last step the guest reported, for timeout and no-verdict messages.
    fn last_step(&self) -> String {
        self.steps.last().map(step_name).unwrap_or_else(|| "before the first step".into())
    }

    /// (step, check description) of every failed check, as the host
    /// computes them; a failed step without a failed check counts as
    /// (step, "error") or (step, "no check").
    pub fn failed_checks(&self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for s in self.steps.iter().filter(|s| !s.ok()) {
            let failed: Vec<_> = s.checks.iter().filter(|c| !c.ok()).collect();
            if s.error.is_some() {
                out.push((s.index, "error".to_string()));
            } else if s.checks.is_empty() {
                out.push((s.index, "no check".to_string()));
            }
            out.extend(failed.into_iter().map(|c| (s.index, c.what.clone())));
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
    /// A health check could not look (taint unreadable, BPF objects not
    /// enumerable, kmemleak scan failed): nothing is known, so no pass.
    Unchecked,
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
            FailureKind::Unchecked => "could not check",
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
            FailureKind::Unchecked => "unchecked",
        }
    }

    pub const ALL: [FailureKind; 9] = [
        FailureKind::Check,
        FailureKind::SelftestMismatch,
        FailureKind::KernelCrash,
        FailureKind::KernelSplat,
        FailureKind::Timeout,
        FailureKind::NoAnswer,
        FailureKind::NoVerdict,
        FailureKind::WrongKernel,
        FailureKind::Unchecked,
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

/// A verdict, and the first kernel report behind it.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub verdict: Verdict,
    /// The first splat that counted: its headline and the lines after it
    /// (empty when there was none).
    pub splat: Vec<String>,
}

/// "<kind>" or "<kind>: <class>" (a verdict token, or a self-test's
/// `expect_verdict`) -> (kind, class).
pub fn split_verdict(text: &str) -> (&str, Option<&str>) {
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
    /// The detectors the kernel's config has (they must answer).
    pub detectors: Detectors,
}

/// Judge a run. `splats` are the console's splats the allow-list did not
/// excuse (`AllowList::filter`).
pub fn judge(
    ctx: &RunContext<'_>,
    vm: &VmOutcome,
    report: &GuestReport,
    console_text: &str,
    splats: &[Splat],
) -> Judgement {
    let raw = judge_run(ctx, vm, report, splats, console_text);
    let verdict =
        if ctx.scenario.is_selftest() { judge_selftest(ctx.scenario, report, &raw, console_text, splats) } else { raw };
    let splat = splats.first().map(|s| s.context.clone()).unwrap_or_default();
    Judgement { verdict, splat }
}

/// The verdict as for any scenario: the most fundamental problem first.
fn judge_run(
    ctx: &RunContext<'_>,
    vm: &VmOutcome,
    report: &GuestReport,
    splats: &[Splat],
    console_text: &str,
) -> Verdict {
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
            format!(
                "VM did not finish within {:.0} s (last reported: {})",
                vm.elapsed.as_secs_f64(),
                report.last_step()
            ),
        );
    }
    if vm.stuck_after_verdict {
        return Verdict::fail(
            FailureKind::Timeout,
            "the guest sent its verdict but did not shut down within 3 s: stopped (a kernel that cannot reboot; the console shows where it is stuck)",
        );
    }
    let Some((_, proc_version)) = &report.hello else {
        let qemu = if vm.qemu_output.is_empty() {
            String::new()
        } else {
            format!("; QEMU said: {}", one_line(&vm.qemu_output, 3))
        };
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
        return Verdict::fail(
            FailureKind::NoVerdict,
            format!("the result channel carried garbled lines: {}", report.garbled.join(" | ")),
        );
    }
    if !proc_version.contains(&cell.banner) {
        return Verdict::fail(
            FailureKind::WrongKernel,
            format!(
                "cell {} expects /proc/version to contain `{}`, the guest runs: {proc_version}",
                cell.name, cell.banner
            ),
        );
    }
    if let Some(h) = &report.health {
        if let Some(v) = judge_health(h, ctx.detectors) {
            return v;
        }
    }
    let Some((passed, summary)) = &report.done else {
        return Verdict::fail(
            FailureKind::NoVerdict,
            format!("the guest stopped without a verdict (last reported: {})", report.last_step()),
        );
    };
    if report.done_count > 1 {
        return Verdict::fail(
            FailureKind::NoVerdict,
            format!("the guest sent {} verdicts; the first said: {summary}", report.done_count),
        );
    }
    if !passed {
        return Verdict::fail(FailureKind::Check, summary.clone());
    }
    // A passing verdict must agree with everything else the guest said;
    // each step's verdict is recomputed here from its checks.
    let failed_steps: Vec<String> = report.steps.iter().filter(|s| !s.ok()).map(step_name).collect();
    if !failed_steps.is_empty() {
        return Verdict::fail(
            FailureKind::NoVerdict,
            format!("the guest said passed but reported failed steps: {}", failed_steps.join(", ")),
        );
    }
    // Device creation, the scenario's steps, the final "nothing arrived late".
    let expected_steps = ctx.scenario.steps.len() + 2;
    if report.steps.len() != expected_steps {
        return Verdict::fail(
            FailureKind::NoVerdict,
            format!(
                "the guest said passed after {} step reports, the scenario has {expected_steps}",
                report.steps.len()
            ),
        );
    }
    if report.health.is_none() {
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

/// Taint, BPF objects and kmemleak: a reading that could not be taken
/// fails the run as `unchecked`, never as "no change".
fn judge_health(h: &Health, detectors: Detectors) -> Option<Verdict> {
    let unchecked = |what: &str, why: &str| Some(Verdict::fail(FailureKind::Unchecked, format!("{what}: {why}")));
    let (before, after) = match (&h.taint_before, &h.taint_after) {
        (Reading::Value(b), Reading::Value(a)) => (*b, *a),
        (Reading::Error(e), _) | (_, Reading::Error(e)) => return unchecked("the kernel's taint could not be read", e),
    };
    let new = after & !before;
    if new != 0 {
        return Some(Verdict::fail_class(
            FailureKind::KernelSplat,
            "taint",
            format!(
                "the kernel became tainted during the scenario: {before:#x} ({}) -> {after:#x} ({})",
                console::taint_letters(before),
                console::taint_letters(after)
            ),
        ));
    }
    match (&h.bpf_objects_before, &h.bpf_objects_after) {
        (Reading::Value(b), Reading::Value(a)) if b != a => {
            return Some(Verdict::fail_class(
                FailureKind::KernelSplat,
                "bpf-leak",
                format!("BPF objects outlived the scenario: {b} before it, {a} after its teardown"),
            ))
        }
        (Reading::Value(_), Reading::Value(_)) => {}
        (Reading::Error(e), _) | (_, Reading::Error(e)) => {
            return unchecked("the kernel's BPF objects could not be counted", e)
        }
    }
    match &h.kmemleak {
        Kmemleak::Failed { reason } => unchecked("kmemleak could not scan", reason),
        Kmemleak::NotBuilt if detectors.kmemleak => unchecked(
            "kmemleak did not answer",
            "the cell's config has CONFIG_DEBUG_KMEMLEAK=y but the guest has no /sys/kernel/debug/kmemleak",
        ),
        Kmemleak::Scanned { leaks, .. } if !leaks.is_empty() => Some(Verdict::fail_class(
            FailureKind::KernelSplat,
            "kmemleak",
            format!(
                "kmemleak found new unreferenced objects: {}",
                leaks.iter().take(6).cloned().collect::<Vec<_>>().join(" | ")
            ),
        )),
        _ => None,
    }
}

/// A self-test passes when the run failed exactly the way it states.
fn judge_selftest(
    scenario: &Scenario,
    report: &GuestReport,
    raw: &Verdict,
    console_text: &str,
    splats: &[Splat],
) -> Verdict {
    let mut problems = Vec::new();
    // A provoked fault must be the one reported: the first splat has to
    // come at or after the step that provoked it, not from boot.
    // (An lkdtm step, or a race with an lkdtm racer.)
    if let Some(provoking) = scenario.steps.iter().position(hidvm_proto::Step::provokes) {
        if let Some(first) = splats.first() {
            let step = first.step_number();
            if step.is_none_or(|n| n < provoking + 1) {
                problems.push(format!(
                    "the first splat came {}, before step {} ({}) provoked anything",
                    first.during,
                    provoking + 1,
                    scenario.steps[provoking].op()
                ));
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
        // Validation makes every self-test state its end; never guess one.
        None => problems.push("the self-test does not state what its run must end as (`expect_verdict`)".into()),
    }
    if !scenario.expect_failure.is_empty() {
        let failed = report.failed_checks();
        for want in &scenario.expect_failure {
            let hit = failed.iter().any(|(step, what)| *step == want.step && what.starts_with(&want.check));
            if !hit {
                problems.push(format!("step {} check `{}…` did not fail", want.step, want.check));
            }
            if let Some(text) = &want.notes_contain {
                let notes_hit = report
                    .steps
                    .iter()
                    .any(|s| s.index == want.step && s.notes.iter().any(|n| n.contains(text.as_str())));
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

fn step_name(s: &StepReport) -> String {
    format!("step {} {} ({})", s.index, s.what, if s.ok() { "ok" } else { "failed" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowlist::AllowList;
    use hidvm_proto::{Check, ObjectCounts};

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
            s.expect_failure =
                vec![hidvm_proto::ExpectedFailure { step: 1, check: "hidraw".into(), notes_contain: None }];
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
            kmemleak: Kmemleak::Scanned {
                leaks: vec!["unreferenced object 0xffff (size 64):".into()],
                waited_ms: 5200,
            },
            ..healthy()
        });
        assert_eq!(token(&gcc, &s, &vm(false), &leaked, CONSOLE_OK), "kernel-splat: kmemleak");
        let objects = with(Health {
            bpf_objects_after: Reading::Value(ObjectCounts { progs: 1, maps: 0, links: 0 }),
            ..healthy()
        });
        assert_eq!(token(&gcc, &s, &vm(false), &objects, CONSOLE_OK), "kernel-splat: bpf-leak");
        let old_taint =
            with(Health { taint_before: Reading::Value(512), taint_after: Reading::Value(512), ..healthy() });
        assert_eq!(token(&gcc, &s, &vm(false), &old_taint, CONSOLE_OK), "pass");
    }

    #[test]
    fn a_health_reading_that_could_not_be_taken_fails_as_unchecked() {
        let gcc = cell("gcc", "gcc");
        let s = scenario(None, false);
        let with = |h: Health| run("gcc 12", "n", true, &health(h), true);
        let taint = with(Health { taint_before: Reading::Error("EACCES".into()), ..healthy() });
        assert_eq!(token(&gcc, &s, &vm(false), &taint, CONSOLE_OK), "unchecked");
        let objects =
            with(Health { bpf_objects_after: Reading::Error("BPF_LINK_GET_NEXT_ID: EPERM".into()), ..healthy() });
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
        assert!(validate_expected_verdict("kernel-splat: hung-task").is_ok());
        assert!(validate_expected_verdict("unchecked").is_ok());
        assert!(validate_expected_verdict("kernel-melt").unwrap_err().contains("unknown kind"));
        assert!(validate_expected_verdict("timeout: nope").unwrap_err().contains("unknown class"));
    }
}
