//! Deciding pass/fail. Success is only ever the agent's explicit verdict,
//! on the kernel the cell claims to be, with a clean console; QEMU exiting
//! 0 proves nothing (a panic with panic=-1 exits 0 too).
use crate::cell::KernelCell;
use crate::console::{self, Splat};
use crate::qemu::VmOutcome;
use hidvm_proto::{GuestMsg, Scenario};

/// What the guest said, parsed from the result channel.
#[derive(Debug, Default, Clone)]
pub struct GuestReport {
    pub hello: Option<(String, String)>,
    pub steps: Vec<GuestMsg>,
    pub done: Option<(bool, String)>,
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
                Some(Ok(GuestMsg::Hello { kernel_release, proc_version, .. })) => {
                    r.hello = Some((kernel_release, proc_version))
                }
                Some(Ok(m @ GuestMsg::Step { .. })) => r.steps.push(m),
                Some(Ok(GuestMsg::Done { passed, summary })) => r.done = Some((passed, summary)),
            }
        }
        r
    }

    /// (step, check description) of every failed check; a step that failed
    /// without a failed check counts as (step, "error").
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
    /// The guest's verdict was success but a self-test expected failures,
    /// or failures differed from the expected ones.
    SelftestMismatch,
    /// The kernel crashed (panic/oops).
    KernelCrash,
    /// A non-fatal splat (WARNING, BUG, KASAN, ...).
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail { kind: FailureKind, reason: String },
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Pass)
    }
    fn fail(kind: FailureKind, reason: impl Into<String>) -> Verdict {
        Verdict::Fail { kind, reason: reason.into() }
    }
}

pub fn judge(cell: &KernelCell, scenario: &Scenario, vm: &VmOutcome, report: &GuestReport, console_text: &str) -> Verdict {
    let splats = console::find_splats(console_text);
    // A crash explains everything after it: report it first.
    if let Some(s) = splats.iter().find(|s| matches!(s.class, "panic" | "oops")) {
        return Verdict::fail(FailureKind::KernelCrash, describe_splat(s));
    }
    if vm.timed_out {
        let last = report.steps.last().map(step_name).unwrap_or_else(|| "before the first step".into());
        return Verdict::fail(
            FailureKind::Timeout,
            format!("VM did not finish within its deadline (last reported: {last})"),
        );
    }
    let Some((_, proc_version)) = &report.hello else {
        let qemu = if vm.qemu_output.is_empty() { String::new() } else { format!("; QEMU said: {}", vm.qemu_output) };
        return Verdict::fail(
            FailureKind::NoAnswer,
            format!("the guest agent never answered on the result channel (QEMU exit {:?}){qemu}", vm.status.and_then(|s| s.code())),
        );
    };
    if !proc_version.contains(&cell.banner) {
        return Verdict::fail(
            FailureKind::WrongKernel,
            format!("cell {} expects /proc/version to contain `{}`, the guest runs: {proc_version}", cell.name, cell.banner),
        );
    }
    if let Some(s) = splats.first() {
        return Verdict::fail(FailureKind::KernelSplat, describe_splat(s));
    }
    let Some((passed, summary)) = &report.done else {
        let last = report.steps.last().map(step_name).unwrap_or_else(|| "before the first step".into());
        return Verdict::fail(FailureKind::NoVerdict, format!("the guest stopped without a verdict (last reported: {last})"));
    };
    if scenario.is_selftest() {
        return judge_selftest(scenario, report);
    }
    if *passed {
        Verdict::Pass
    } else {
        Verdict::fail(FailureKind::Check, summary.clone())
    }
}

/// A self-test passes when exactly the expected checks failed.
fn judge_selftest(scenario: &Scenario, report: &GuestReport) -> Verdict {
    let failed = report.failed_checks();
    let mut problems = Vec::new();
    for want in &scenario.expect_failure {
        let hit = failed.iter().any(|(step, what)| *step == want.step && what.starts_with(&want.check));
        if !hit {
            problems.push(format!("step {} check `{}…` did not fail", want.step, want.check));
        }
        if let Some(text) = &want.notes_contain {
            let notes_hit = report.steps.iter().any(|m| matches!(m, GuestMsg::Step { index, notes, .. } if *index == want.step && notes.iter().any(|n| n.contains(text.as_str()))));
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
    if problems.is_empty() {
        Verdict::Pass
    } else {
        Verdict::fail(FailureKind::SelftestMismatch, problems.join("; "))
    }
}

fn describe_splat(s: &Splat) -> String {
    format!("{} on the console, line {}: {}", s.class, s.line_no, s.line.trim())
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

    fn cell() -> KernelCell {
        KernelCell {
            name: "llvm".into(),
            summary: String::new(),
            make: Default::default(),
            compiler: "clang-19".into(),
            banner: "clang version 19".into(),
            needs: vec![],
            fragments: vec![],
        }
    }

    fn scenario(selftest: bool) -> Scenario {
        let mut s: Scenario = serde_json::from_str(
            r#"{"summary":"s","device":[],"step":[{"op":"release","link":"l","how":"close"}]}"#,
        )
        .unwrap();
        if selftest {
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
            command: String::new(),
        }
    }

    const HELLO: &str = r#"@hidvm {"msg":"hello","agent":"0","kernel_release":"6.12","proc_version":"Linux version 6.12 (clang version 19.1.7)"}"#;
    const DONE_OK: &str = r#"@hidvm {"msg":"done","passed":true,"summary":"ok"}"#;

    fn kind(v: Verdict) -> Option<FailureKind> {
        match v {
            Verdict::Pass => None,
            Verdict::Fail { kind, .. } => Some(kind),
        }
    }

    #[test]
    fn only_an_explicit_verdict_on_the_right_kernel_with_a_clean_console_passes() {
        let report = GuestReport::parse(&format!("{HELLO}\n{DONE_OK}\n"));
        assert_eq!(judge(&cell(), &scenario(false), &vm(false), &report, ""), Verdict::Pass);
        // Same guest output, but the console shows a panic: QEMU exited 0 all the same.
        let console = "[ 1.0] Kernel panic - not syncing: Attempted to kill init!\n";
        assert_eq!(kind(judge(&cell(), &scenario(false), &vm(false), &report, console)), Some(FailureKind::KernelCrash));
        let console = "[ 1.0] WARNING: CPU: 0 PID: 1 at kernel/foo.c:1 bar+0x0/0x1\n";
        assert_eq!(kind(judge(&cell(), &scenario(false), &vm(false), &report, console)), Some(FailureKind::KernelSplat));
    }

    #[test]
    fn silence_timeouts_missing_verdicts_and_wrong_kernels_fail() {
        let none = GuestReport::parse("");
        assert_eq!(kind(judge(&cell(), &scenario(false), &vm(false), &none, "")), Some(FailureKind::NoAnswer));
        assert_eq!(kind(judge(&cell(), &scenario(false), &vm(true), &none, "")), Some(FailureKind::Timeout));
        let no_done = GuestReport::parse(HELLO);
        assert_eq!(kind(judge(&cell(), &scenario(false), &vm(false), &no_done, "")), Some(FailureKind::NoVerdict));
        let gcc_kernel = GuestReport::parse(&format!("{}\n{DONE_OK}", HELLO.replace("clang version 19.1.7", "gcc 12.2.0")));
        assert_eq!(kind(judge(&cell(), &scenario(false), &vm(false), &gcc_kernel, "")), Some(FailureKind::WrongKernel));
        let failed = GuestReport::parse(&format!("{HELLO}\n{}", DONE_OK.replace("true", "false")));
        assert_eq!(kind(judge(&cell(), &scenario(false), &vm(false), &failed, "")), Some(FailureKind::Check));
    }

    #[test]
    fn selftests_pass_only_when_exactly_the_expected_checks_fail() {
        let step = |what: &str, ok: bool| GuestMsg::Step {
            index: 1,
            what: "inject".into(),
            ok,
            ms: 0,
            checks: vec![Check { what: what.into(), expected: "a".into(), seen: "b".into(), ok }],
            notes: vec![],
        };
        let with = |m: GuestMsg| {
            GuestReport::parse(&format!("{HELLO}\n{}{}\n", m.to_line(), DONE_OK.replace("true", "false")))
        };
        let expected = with(step("hidraw /dev/hidraw0", false));
        assert_eq!(judge(&cell(), &scenario(true), &vm(false), &expected, ""), Verdict::Pass);
        let nothing_failed = with(step("hidraw /dev/hidraw0", true));
        assert_eq!(kind(judge(&cell(), &scenario(true), &vm(false), &nothing_failed, "")), Some(FailureKind::SelftestMismatch));
        let other = with(step("evdev /dev/input/event0", false));
        assert_eq!(kind(judge(&cell(), &scenario(true), &vm(false), &other, "")), Some(FailureKind::SelftestMismatch));
    }
}
