//! Deciding pass/fail. Success is only ever the agent's explicit verdict,
//! on the kernel the cell claims to be, with a clean console; QEMU exiting
//! 0 proves nothing (a panic with panic=-1 exits 0 too).
use crate::base::error::one_line;
use crate::judge::console::{self, Splat};
use crate::judge::guest::{step_name, GuestReport};
use crate::judge::title::{self, CrashReport};
use crate::judge::verdict::{split_verdict, FailureKind, Verdict};
use crate::kernel::cell::KernelCell;
use crate::vm::machine::VmOutcome;
use hidvm_proto::job::Detectors;
use hidvm_proto::{Health, Kmemleak, Reading, Scenario};

/// A verdict, and the first kernel report behind it.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub verdict: Verdict,
    /// The first splat that counted: its headline and the lines after it
    /// (empty when there was none).
    pub splat: Vec<String>,
    /// Every kernel report that counted, titled (one per report: a BUG and
    /// its Oops line are one), in console order.
    pub crashes: Vec<CrashReport>,
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
    Judgement { verdict, splat, crashes: crash_reports(console_text, splats) }
}

/// The titled reports behind `splats` (which the allow-list left), one per
/// report.
pub fn crash_reports(console_text: &str, splats: &[Splat]) -> Vec<CrashReport> {
    let mut out: Vec<CrashReport> = Vec::new();
    for s in splats {
        let r = title::report_for_splat(console_text, s);
        if !out.iter().any(|o| o.lines == r.lines || o.lines.contains(&(s.line_no.saturating_sub(1)))) {
            out.push(r);
        }
    }
    out
}

/// The verdict as for any scenario: the most fundamental problem first
/// (the kernel and the VM, then the result channel, then the guest's
/// health, then whether its verdict agrees with everything it said).
fn judge_run(
    ctx: &RunContext<'_>,
    vm: &VmOutcome,
    report: &GuestReport,
    splats: &[Splat],
    console_text: &str,
) -> Verdict {
    kernel_and_vm(vm, report, splats)
        .or_else(|| channel(ctx, vm, report))
        .or_else(|| report.health.as_ref().and_then(|h| judge_health(h, ctx.detectors)))
        .or_else(|| consistency(ctx, report, console_text))
        .unwrap_or(Verdict::Pass)
}

/// A crash or splat explains everything after it; then the deadline.
fn kernel_and_vm(vm: &VmOutcome, report: &GuestReport, splats: &[Splat]) -> Option<Verdict> {
    if splats.iter().any(|s| s.fatal) {
        let first = &splats[0];
        return Some(Verdict::fail_class(FailureKind::KernelCrash, first.class, describe_splats(splats)));
    }
    if let Some(first) = splats.first() {
        return Some(Verdict::fail_class(FailureKind::KernelSplat, first.class, describe_splats(splats)));
    }
    if vm.timed_out {
        return Some(Verdict::fail(
            FailureKind::Timeout,
            format!(
                "VM did not finish within {:.0} s (last reported: {})",
                vm.elapsed.as_secs_f64(),
                report.last_step()
            ),
        ));
    }
    if vm.stuck_after_verdict {
        return Some(Verdict::fail(
            FailureKind::Timeout,
            "the guest sent its verdict but did not shut down within 3 s: stopped (a kernel that cannot reboot; the console shows where it is stuck)",
        ));
    }
    None
}

/// The result channel: this run's guest answered, legibly, on the cell's kernel.
fn channel(ctx: &RunContext<'_>, vm: &VmOutcome, report: &GuestReport) -> Option<Verdict> {
    let cell = ctx.cell;
    let Some((_, proc_version)) = &report.hello else {
        let qemu = if vm.qemu_output.is_empty() {
            String::new()
        } else {
            format!("; QEMU said: {}", one_line(&vm.qemu_output, 3))
        };
        let exit = vm.status.and_then(|s| s.code()).map(|c| c.to_string()).unwrap_or_else(|| "none".into());
        return Some(Verdict::fail(
            FailureKind::NoAnswer,
            format!("the guest agent never answered on the result channel (QEMU exit status {exit}){qemu}"),
        ));
    };
    if report.nonce.as_deref() != Some(ctx.nonce) {
        return Some(Verdict::fail(
            FailureKind::NoAnswer,
            format!(
                "the results are not this run's (nonce {:?}, expected {}): another run wrote them; do not run the same test twice at once",
                report.nonce, ctx.nonce
            ),
        ));
    }
    if !report.garbled.is_empty() {
        return Some(Verdict::fail(
            FailureKind::NoVerdict,
            format!("the result channel carried garbled lines: {}", report.garbled.join(" | ")),
        ));
    }
    if !proc_version.contains(&cell.banner) {
        return Some(Verdict::fail(
            FailureKind::WrongKernel,
            format!(
                "cell {} expects /proc/version to contain `{}`, the guest runs: {proc_version}",
                cell.name, cell.banner
            ),
        ));
    }
    None
}

/// Exactly one verdict, and a passing one must agree with everything else
/// the guest said; each step's verdict is recomputed here from its checks.
fn consistency(ctx: &RunContext<'_>, report: &GuestReport, console_text: &str) -> Option<Verdict> {
    let no_verdict = |reason: String| Some(Verdict::fail(FailureKind::NoVerdict, reason));
    let Some((passed, summary)) = &report.done else {
        return no_verdict(format!("the guest stopped without a verdict (last reported: {})", report.last_step()));
    };
    if report.done_count > 1 {
        return no_verdict(format!("the guest sent {} verdicts; the first said: {summary}", report.done_count));
    }
    if !passed {
        return Some(Verdict::fail(FailureKind::Check, summary.clone()));
    }
    let failed_steps: Vec<String> = report.steps.iter().filter(|s| !s.ok()).map(step_name).collect();
    if !failed_steps.is_empty() {
        return no_verdict(format!("the guest said passed but reported failed steps: {}", failed_steps.join(", ")));
    }
    // Device creation, the scenario's steps, the final "nothing arrived late".
    let expected_steps = ctx.scenario.steps.len() + 2;
    if report.steps.len() != expected_steps {
        return no_verdict(format!(
            "the guest said passed after {} step reports, the scenario has {expected_steps}",
            report.steps.len()
        ));
    }
    if report.health.is_none() {
        return no_verdict("the guest sent no kernel health report before its verdict".into());
    }
    if !console_text.contains("hidvm: scenario done") {
        return no_verdict(
            "the console capture lacks the agent's final marker (`hidvm: scenario done`): the console was lost, so splats could have been missed".into(),
        );
    }
    None
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

#[cfg(test)]
mod tests;
