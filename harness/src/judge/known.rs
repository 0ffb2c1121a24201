//! Known kernel bugs (`tests/known-failures.toml`): a scenario that exposes
//! a kernel bug on purpose fails on every kernel that has it. An entry
//! names the test, the kernels and cells, how the run must end (verdict
//! tokens) and why. A run that ends exactly so is shown as KNOWN: not a
//! pass, and not a failure of the command. A run that ends any other way
//! fails as usual, and an entry whose test passed is reported (fixed in
//! this kernel, or a race that did not hit its window this time).
use crate::base::error::{toml_error, Error, Result};
use crate::judge::verdict::{split_verdict, validate_expected_verdict, Verdict};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KnownFailure {
    /// The matrix row: `race_attach_vs_destroy`, `progs::X`, `selftest::x`.
    pub test: String,
    /// Kernel versions it applies to ("6.12" matches 6.12.117), or ["*"].
    pub kernels: Vec<String>,
    /// Cells it applies to, or ["*"].
    pub cells: Vec<String>,
    /// The verdicts the bug produces: "kernel-crash", "kernel-splat: warning".
    pub ends_as: Vec<String>,
    /// What the bug is, with a reference.
    pub reason: String,
}

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct KnownFailures {
    #[serde(default)]
    pub known: Vec<KnownFailure>,
}

impl KnownFailure {
    fn applies(&self, row: &str, cell: &str, kernel: &str) -> bool {
        let kernel_matches = |k: &String| k == "*" || kernel == k || kernel.starts_with(&format!("{k}."));
        self.test == row && self.cells.iter().any(|c| c == "*" || c == cell) && self.kernels.iter().any(kernel_matches)
    }

    fn ends_as(&self, verdict: &Verdict) -> bool {
        let token = verdict.token();
        let (kind, class) = split_verdict(&token);
        self.ends_as.iter().any(|want| {
            let (want_kind, want_class) = split_verdict(want);
            want_kind == kind && (want_class.is_none() || want_class == class)
        })
    }
}

/// How a run relates to the known failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// No entry applies.
    None,
    /// An entry applies and the run ended as it says (entry index, reason).
    Failed(usize, String),
    /// An entry applies but the run passed.
    Passed(usize),
}

impl KnownFailures {
    pub fn load(file: &Path) -> Result<KnownFailures> {
        if !file.exists() {
            return Ok(KnownFailures::default());
        }
        let text = std::fs::read_to_string(file).map_err(Error::io(format!("reading {}", file.display())))?;
        let list: KnownFailures = toml::from_str(&text).map_err(|e| {
            Error::Other(format!("known failures {}: {}; fix the entry", file.display(), toml_error(&text, &e)))
        })?;
        for (i, k) in list.known.iter().enumerate() {
            let bad = |m: String| Error::Other(format!("known failures {} entry {}: {m}", file.display(), i + 1));
            if k.reason.trim().is_empty()
                || k.test.trim().is_empty()
                || k.kernels.is_empty()
                || k.cells.is_empty()
                || k.ends_as.is_empty()
            {
                return Err(bad("`test`, `kernels`, `cells`, `ends_as` and `reason` must not be empty".into()));
            }
            for v in &k.ends_as {
                validate_expected_verdict(v).map_err(|e| bad(e.replace("expect_verdict", "ends_as")))?;
                if v.trim() == "pass" {
                    return Err(bad("`ends_as` cannot be `pass`".into()));
                }
            }
        }
        Ok(list)
    }

    /// Classify a run of test `row` on `cell` of kernel `kernel`.
    pub fn classify(&self, row: &str, cell: &str, kernel: &str, verdict: &Verdict) -> Known {
        for (i, k) in self.known.iter().enumerate().filter(|(_, k)| k.applies(row, cell, kernel)) {
            if verdict.passed() {
                return Known::Passed(i);
            }
            if k.ends_as(verdict) {
                return Known::Failed(i, k.reason.clone());
            }
        }
        Known::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::verdict::FailureKind;

    fn list() -> KnownFailures {
        toml::from_str(
            r#"[[known]]
test = "race_attach_vs_destroy"
kernels = ["6.12"]
cells = ["*"]
ends_as = ["kernel-crash", "kernel-splat: warning"]
reason = "hid_bpf_reg() does not check hdev->bpf.destroyed"
"#,
        )
        .unwrap()
    }

    fn fail(kind: FailureKind, class: Option<&str>) -> Verdict {
        Verdict::Fail { kind, class: class.map(String::from), reason: "r".into() }
    }

    #[test]
    fn only_the_stated_end_on_the_stated_kernel_is_known() {
        let l = list();
        let crash = fail(FailureKind::KernelCrash, Some("bug"));
        assert!(matches!(l.classify("race_attach_vs_destroy", "llvm", "6.12.117", &crash), Known::Failed(0, _)));
        // Another kernel, another test, another way of failing: a real failure.
        assert_eq!(l.classify("race_attach_vs_destroy", "llvm", "7.3.4", &crash), Known::None);
        assert_eq!(l.classify("race_destroy_vs_event", "gcc", "6.12.117", &crash), Known::None);
        assert_eq!(
            l.classify("race_attach_vs_destroy", "gcc", "6.12.117", &fail(FailureKind::Check, None)),
            Known::None
        );
        assert_eq!(
            l.classify("race_attach_vs_destroy", "gcc", "6.12.117", &fail(FailureKind::KernelSplat, Some("kasan"))),
            Known::None
        );
        assert!(matches!(
            l.classify("race_attach_vs_destroy", "gcc", "6.12.117", &fail(FailureKind::KernelSplat, Some("warning"))),
            Known::Failed(..)
        ));
        // A pass is reported, so a fixed kernel's entry gets removed.
        assert_eq!(l.classify("race_attach_vs_destroy", "gcc", "6.12.117", &Verdict::Pass), Known::Passed(0));
        assert_eq!(l.classify("race_attach_vs_destroy", "gcc", "6.120.1", &crash), Known::None, "6.12 is not 6.120");
    }

    #[test]
    fn the_repository_list_is_valid() {
        KnownFailures::load(&crate::base::layout::Repo::locate().root.join("tests/known-failures.toml")).unwrap();
    }
}
