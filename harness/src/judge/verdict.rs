//! The words of a verdict: failure kinds, their tokens ("kernel-crash:
//! bug") and how a self-test's `expect_verdict` is checked against them.
use crate::judge::console;

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
    pub fn fail(kind: FailureKind, reason: impl Into<String>) -> Verdict {
        Verdict::Fail { kind, class: None, reason: reason.into() }
    }
    pub fn fail_class(kind: FailureKind, class: &str, reason: impl Into<String>) -> Verdict {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_verdicts_name_known_kinds_and_classes() {
        assert!(validate_expected_verdict("kernel-splat: hung-task").is_ok());
        assert!(validate_expected_verdict("unchecked").is_ok());
        assert!(validate_expected_verdict("kernel-melt").unwrap_err().contains("unknown kind"));
        assert!(validate_expected_verdict("timeout: nope").unwrap_err().contains("unknown class"));
    }
}
