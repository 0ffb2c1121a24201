//! Deciding pass/fail. Success is only ever the agent's explicit verdict,
//! on the kernel the cell claims to be, with a clean console; QEMU exiting
//! 0 proves nothing (a panic with panic=-1 exits 0 too).
use crate::allowlist::AllowList;
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
                Some(Ok(GuestMsg::Hello { kernel_release, proc_version, .. })) => {
                    r.hello = Some((kernel_release, proc_version))
                }
                Some(Ok(m @ GuestMsg::Step { .. })) => r.steps.push(m),
                Some(Ok(GuestMsg::Done { passed, summary })) => r.done = Some((passed, summary)),
                Some(Ok(GuestMsg::Health { taint_before, taint_after, kmemleak })) => {
                    r.taint = Some((taint_before, taint_after));
                    r.kmemleak = kmemleak;
                }
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
}

/// Check a self-test's `expect_verdict` text: "<kind>" or "<kind>: <class>".
pub fn validate_expected_verdict(text: &str) -> Result<(), String> {
    let (kind, class) = match text.split_once(':') {
        Some((k, c)) => (k.trim(), Some(c.trim())),
        None => (text.trim(), None),
    };
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

pub fn judge(
    cell: &KernelCell,
    scenario: &Scenario,
    vm: &VmOutcome,
    report: &GuestReport,
    console_text: &str,
    allow: &AllowList,
) -> Judgement {
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
    let raw = judge_run(cell, vm, report, &splats);
    let verdict = if scenario.is_selftest() { judge_selftest(scenario, report, &raw, console_text) } else { raw };
    Judgement { verdict, allowed }
}

/// The verdict as for any scenario: the most fundamental problem first.
fn judge_run(cell: &KernelCell, vm: &VmOutcome, report: &GuestReport, splats: &[Splat]) -> Verdict {
    // A crash explains everything after it.
    if splats.iter().any(|s| s.fatal) {
        let first = &splats[0];
        return Verdict::fail_class(FailureKind::KernelCrash, first.class, describe_splats(splats));
    }
    if let Some(first) = splats.first() {
        return Verdict::fail_class(FailureKind::KernelSplat, first.class, describe_splats(splats));
    }
    if vm.timed_out {
        let last = report.steps.last().map(step_name).unwrap_or_else(|| "before the first step".into());
        return Verdict::fail(FailureKind::Timeout, format!("VM did not finish within {:.0} s (last reported: {last})", vm.elapsed.as_secs_f64()));
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
    if !report.kmemleak.is_empty() {
        return Verdict::fail_class(
            FailureKind::KernelSplat,
            "kmemleak",
            format!("kmemleak found new unreferenced objects: {}", report.kmemleak.iter().take(6).cloned().collect::<Vec<_>>().join(" | ")),
        );
    }
    let Some((passed, summary)) = &report.done else {
        let last = report.steps.last().map(step_name).unwrap_or_else(|| "before the first step".into());
        return Verdict::fail(FailureKind::NoVerdict, format!("the guest stopped without a verdict (last reported: {last})"));
    };
    if *passed {
        Verdict::Pass
    } else {
        Verdict::fail(FailureKind::Check, summary.clone())
    }
}

/// A self-test passes when the run failed exactly the way it states.
fn judge_selftest(scenario: &Scenario, report: &GuestReport, raw: &Verdict, console_text: &str) -> Verdict {
    let mut problems = Vec::new();
    match &scenario.expect_verdict {
        Some(want) => {
            let got = raw.token();
            let (want_kind, want_class) = match want.split_once(':') {
                Some((k, c)) => (k.trim().to_string(), Some(c.trim().to_string())),
                None => (want.trim().to_string(), None),
            };
            let (got_kind, got_class) = match got.split_once(':') {
                Some((k, c)) => (k.trim().to_string(), Some(c.trim().to_string())),
                None => (got.clone(), None),
            };
            if want_kind != got_kind || (want_class.is_some() && want_class != got_class) {
                let why = match raw {
                    Verdict::Fail { reason, .. } => format!(" ({reason})"),
                    Verdict::Pass => String::new(),
                };
                problems.push(format!("expected the run to end as `{want}`, it ended as `{got}`{why}"));
            }
        }
        None if !scenario.expect_failure.is_empty() => {
            if !matches!(raw, Verdict::Fail { kind: FailureKind::Check, .. }) {
                problems.push(format!("expected failing checks, the run ended as `{}`", raw.token()));
            }
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

    fn cell() -> KernelCell {
        KernelCell {
            name: "llvm".into(),
            summary: String::new(),
            make: Default::default(),
            compiler: "clang-19".into(),
            banner: "clang version 19".into(),
            needs: vec![],
            fragments: vec![],
            default_run: true,
        }
    }

    fn scenario(selftest: bool) -> Scenario {
        let mut s: Scenario = serde_json::from_str(
            r#"{"summary":"s","device":[],"step":[{"op":"sleep","ms":1}]}"#,
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

    fn kind(j: Judgement) -> Option<FailureKind> {
        match j.verdict {
            Verdict::Pass => None,
            Verdict::Fail { kind, .. } => Some(kind),
        }
    }

    fn judge(c: &KernelCell, s: &Scenario, v: &VmOutcome, r: &GuestReport, console: &str) -> Judgement {
        super::judge(c, s, v, r, console, &AllowList::default())
    }

    #[test]
    fn only_an_explicit_verdict_on_the_right_kernel_with_a_clean_console_passes() {
        let report = GuestReport::parse(&format!("{HELLO}\n{DONE_OK}\n"));
        assert_eq!(judge(&cell(), &scenario(false), &vm(false), &report, "").verdict, Verdict::Pass);
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
        assert_eq!(judge(&cell(), &scenario(true), &vm(false), &expected, "").verdict, Verdict::Pass);
        let nothing_failed = with(step("hidraw /dev/hidraw0", true));
        assert_eq!(kind(judge(&cell(), &scenario(true), &vm(false), &nothing_failed, "")), Some(FailureKind::SelftestMismatch));
        let other = with(step("evdev /dev/input/event0", false));
        assert_eq!(kind(judge(&cell(), &scenario(true), &vm(false), &other, "")), Some(FailureKind::SelftestMismatch));
    }
}

#[cfg(test)]
mod health_tests {
    use super::*;

    fn cell() -> KernelCell {
        KernelCell {
            name: "gcc".into(),
            summary: String::new(),
            make: Default::default(),
            compiler: "gcc".into(),
            banner: "gcc".into(),
            needs: vec![],
            fragments: vec![],
            default_run: true,
        }
    }

    fn scenario(expect_verdict: Option<&str>) -> Scenario {
        let mut s: Scenario = serde_json::from_str(r#"{"summary":"s","device":[],"step":[{"op":"sleep","ms":1}]}"#).unwrap();
        s.expect_verdict = expect_verdict.map(String::from);
        s
    }

    fn vm() -> VmOutcome {
        VmOutcome { status: None, timed_out: false, elapsed: std::time::Duration::from_secs(1), qemu_output: String::new(), command: String::new() }
    }

    const HELLO: &str = r#"@hidvm {"msg":"hello","agent":"0","kernel_release":"6.12","proc_version":"Linux version 6.12 (gcc 12)"}"#;

    fn guest(health: &str) -> GuestReport {
        GuestReport::parse(&format!("{HELLO}\n{health}\n@hidvm {{\"msg\":\"done\",\"passed\":true,\"summary\":\"ok\"}}\n"))
    }

    #[test]
    fn new_taint_and_kmemleak_reports_fail_a_passing_scenario() {
        let allow = AllowList::default();
        let tainted = guest(r#"@hidvm {"msg":"health","taint_before":0,"taint_after":512}"#);
        let j = judge(&cell(), &scenario(None), &vm(), &tainted, "", &allow);
        assert_eq!(j.verdict.token(), "kernel-splat: taint");
        let leaked = guest(r#"@hidvm {"msg":"health","taint_before":0,"taint_after":0,"kmemleak":["unreferenced object 0xffff (size 64):"]}"#);
        assert_eq!(judge(&cell(), &scenario(None), &vm(), &leaked, "", &allow).verdict.token(), "kernel-splat: kmemleak");
        let clean = guest(r#"@hidvm {"msg":"health","taint_before":512,"taint_after":512}"#);
        assert!(judge(&cell(), &scenario(None), &vm(), &clean, "", &allow).verdict.passed());
    }

    #[test]
    fn crashes_are_classified_by_their_first_splat_and_allowed_splats_are_excused() {
        let g = guest("");
        let console = "[ 1.0] hidvm: step 1: provoke BUG through lkdtm\n[ 1.1] kernel BUG at drivers/misc/lkdtm/bugs.c:80!\n[ 1.1] Oops: invalid opcode: 0000 [#1] SMP\n[ 1.2] Kernel panic - not syncing: Fatal exception\n";
        let j = judge(&cell(), &scenario(None), &vm(), &g, console, &AllowList::default());
        assert_eq!(j.verdict.token(), "kernel-crash: bug");
        let warn = "[ 1.0] WARNING: CPU: 0 PID: 1 at drivers/foo.c:12 foo+0x1/0x2\n";
        let allow: AllowList = toml::from_str("[[allow]]\nclass = \"warning\"\ncontains = \"drivers/foo.c:12\"\ncells = [\"gcc\"]\nreason = \"known\"\n").unwrap();
        let j = judge(&cell(), &scenario(None), &vm(), &g, warn, &allow);
        assert!(j.verdict.passed());
        assert_eq!(j.allowed.len(), 1);
    }

    #[test]
    fn expected_verdicts_are_checked_by_kind_and_class() {
        let g = guest("");
        let warn = "[ 1.0] WARNING: CPU: 0 PID: 1 at drivers/misc/lkdtm/bugs.c:1 lkdtm_WARNING\n";
        let allow = AllowList::default();
        assert!(judge(&cell(), &scenario(Some("kernel-splat: warning")), &vm(), &g, warn, &allow).verdict.passed());
        assert!(judge(&cell(), &scenario(Some("kernel-splat")), &vm(), &g, warn, &allow).verdict.passed());
        let wrong = judge(&cell(), &scenario(Some("kernel-crash: panic")), &vm(), &g, warn, &allow).verdict;
        assert_eq!(wrong.token().split(':').next(), Some("selftest-mismatch"));
        // A self-test expecting a splat fails when the kernel stays clean.
        assert!(!judge(&cell(), &scenario(Some("kernel-splat: warning")), &vm(), &g, "", &allow).verdict.passed());
        assert!(validate_expected_verdict("kernel-splat: hung-task").is_ok());
        assert!(validate_expected_verdict("kernel-melt").unwrap_err().contains("unknown kind"));
        assert!(validate_expected_verdict("timeout: nope").unwrap_err().contains("unknown class"));
    }
}
