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
