//! Known kernel bugs (`tests/known-failures.toml`): a catalogue scenario
//! that exposes a kernel bug on purpose fails on every kernel that has it.
//!
//! An entry is trusted only as far as it is precise, so it names:
//! * the catalogue row, and the kernels by their exact source label
//!   (`6.12.118-1`, the Debian package's version: a patched or user tree
//!   has another label and is another kernel, unless the entry names it);
//! * one or more *signatures*, each how the bug shows: a crash or splat by
//!   its title and functions its stack must contain (`BUG: unable to handle
//!   page fault in __srcu_read_unlock`, via `dispatch_hid_bpf_output_report`),
//!   or a failed check by its name and what it saw;
//! * how often it shows (`always`, or a measured `1 in 20` for races).
//!
//! A run is KNOWN only when everything that went wrong in it matches the
//! entry's signatures: every kernel report, every failed check. A
//! different crash, a bare kind, a timeout, a leak or a could-not-look in
//! a known row is a failure, and the report names both the entry and what
//! was seen ([`Known::Mismatch`]). Entries never apply to a user's own
//! scenarios (`hidvm test`), even with the same row name.
use crate::base::error::{toml_error, Error, Result};
use crate::judge::guest::FailedCheck;
use crate::judge::title::CrashReport;
use crate::judge::verdict::{FailureKind, Verdict};
use serde::Deserialize;
use std::path::Path;

/// How often a known bug shows where it applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Every run (a deterministic bug).
    Always,
    /// `hits` runs in `runs`, as measured (a race).
    Measured { hits: u32, runs: u32 },
}

impl Rate {
    pub fn parse(text: &str) -> std::result::Result<Rate, String> {
        let t = text.trim();
        if t == "always" {
            return Ok(Rate::Always);
        }
        let bad = || format!("field `rate`: `{t}` is not `always` or `N in M` (measured, e.g. \"1 in 20\")");
        let (h, r) = t.split_once(" in ").ok_or_else(bad)?;
        let (hits, runs): (u32, u32) = (h.trim().parse().map_err(|_| bad())?, r.trim().parse().map_err(|_| bad())?);
        if hits == 0 || runs == 0 || hits > runs {
            return Err(format!("field `rate`: `{t}` must be N in M with 0 < N <= M"));
        }
        if hits == runs {
            return Ok(Rate::Always);
        }
        Ok(Rate::Measured { hits, runs })
    }

    /// The chance one run shows the bug.
    pub fn p(self) -> f64 {
        match self {
            Rate::Always => 1.0,
            Rate::Measured { hits, runs } => f64::from(hits) / f64::from(runs),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::Always => write!(f, "always"),
            Rate::Measured { hits, runs } => write!(f, "{hits} in {runs}"),
        }
    }
}

/// One way a known bug shows.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// "kernel-crash", "kernel-splat" or "check-failed".
    pub ends_as: String,
    /// kernel-crash/-splat: the report's title (`judge::title`), exactly;
    /// or a family of functions of one kind, `<kind> in <glob>` (see
    /// [`title_matches`]).
    #[serde(default)]
    pub title: Option<String>,
    /// kernel-crash/-splat: functions the report's stack must contain.
    #[serde(default)]
    pub stack: Vec<String>,
    /// check-failed: the failed check, `step N: <what>`.
    #[serde(default)]
    pub check: Option<String>,
    /// check-failed: what the check saw, exactly …
    #[serde(default)]
    pub seen: Option<String>,
    /// … or texts it must all contain (for long values such as a verifier log).
    #[serde(default)]
    pub seen_contains: Vec<String>,
}

/// What went wrong in a run, one item each, as signatures describe it.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// A kernel report on the console.
    Report { ends_as: &'static str, title: String, stack: Vec<String> },
    /// A failed check: `step N: <what>`, what it saw and its detail.
    Check { check: String, seen: String, detail: String },
    /// Anything no signature can name: a timeout, a leak, a could-not-look.
    Other { token: String, reason: String },
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seen::Report { ends_as, title, stack } => {
                let head: Vec<&str> = stack.iter().take(6).map(String::as_str).collect();
                write!(f, "{ends_as}: \"{title}\" (stack: {})", head.join(" <- "))
            }
            Seen::Check { check, seen, detail } if detail.is_empty() => {
                write!(f, "check-failed: {check}: saw {}", shorten(seen, 160))
            }
            Seen::Check { check, seen, detail } => {
                write!(f, "check-failed: {check}: saw {} ({})", shorten(seen, 160), shorten(detail, 160))
            }
            Seen::Other { token, reason } => write!(f, "{token}: {}", shorten(reason, 160)),
        }
    }
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

impl Signature {
    fn validate(&self) -> std::result::Result<(), String> {
        match self.ends_as.as_str() {
            "kernel-crash" | "kernel-splat" => {
                if self.title.as_deref().is_none_or(|t| t.trim().is_empty()) || self.stack.is_empty() {
                    return Err(format!(
                        "a `{}` signature needs `title` (the crash title, e.g. \"BUG: unable to handle page fault in __srcu_read_unlock\") and `stack` (functions its call trace must contain)",
                        self.ends_as
                    ));
                }
                if self.check.is_some() || self.seen.is_some() || !self.seen_contains.is_empty() {
                    return Err("`check`/`seen` belong to check-failed signatures".into());
                }
                validate_title(self.title.as_deref().unwrap_or_default())?;
            }
            "check-failed" => {
                if self.check.as_deref().is_none_or(|c| c.trim().is_empty())
                    || (self.seen.is_none() && self.seen_contains.is_empty())
                {
                    return Err("a `check-failed` signature needs `check` (\"step N: <what>\") and `seen` (or `seen_contains`)".into());
                }
                if self.title.is_some() || !self.stack.is_empty() {
                    return Err("`title`/`stack` belong to kernel-crash and kernel-splat signatures".into());
                }
            }
            other => {
                return Err(format!(
                    "`ends_as = \"{other}\"` cannot be known: only kernel-crash, kernel-splat and check-failed have a signature (a timeout, a leak or a could-not-look says nothing about which bug it was)"
                ))
            }
        }
        Ok(())
    }

    fn matches(&self, seen: &Seen) -> bool {
        match seen {
            Seen::Report { ends_as, title, stack } => {
                self.ends_as == *ends_as
                    && self.title.as_deref().is_some_and(|want| title_matches(want, title))
                    && self.stack.iter().all(|f| stack.iter().any(|s| s == crate::judge::title::strip_suffixes(f)))
            }
            Seen::Check { check, seen, detail } => {
                // A rejected load says "load: EACCES"; the verifier's
                // reason (which access, which line) is in the detail.
                self.ends_as == "check-failed"
                    && self.check.as_deref() == Some(check.as_str())
                    && self.seen.as_ref().is_none_or(|want| want == seen)
                    && self
                        .seen_contains
                        .iter()
                        .all(|part| seen.contains(part.as_str()) || detail.contains(part.as_str()))
            }
            Seen::Other { .. } => false,
        }
    }

    fn describe(&self) -> String {
        match (&self.title, &self.check) {
            (Some(t), _) => format!("{}: \"{t}\" via {}", self.ends_as, self.stack.join(", ")),
            (_, Some(c)) => match (&self.seen, self.seen_contains.is_empty()) {
                (Some(s), _) => format!("check-failed: {c}: saw {}", shorten(s, 120)),
                (None, _) => format!("check-failed: {c}: saw …{}…", self.seen_contains.join("…")),
            },
            _ => self.ends_as.clone(),
        }
    }
}

/// The fewest literal characters a title's function glob must keep, so a
/// glob names a family of functions ("*srcu*"), never any function.
const FUNCTION_GLOB_LITERALS: usize = 4;

/// A signature's title is exact, or `<kind> in <glob>`: the kind stays
/// exact and `*` in the function part stands for any characters. One bug
/// can fault in several functions of one subsystem (a cleaned-up SRCU
/// struct faults in whichever SRCU function touches it first), which
/// syzbot would title as separate crashes; the glob keeps "which kind, in
/// which subsystem, via which caller" without listing every face seen so
/// far. A kind wildcard or a glob with too little left of the name would
/// take in any crash, so it is refused at load.
fn validate_title(title: &str) -> std::result::Result<(), String> {
    if !title.contains('*') {
        return Ok(());
    }
    let Some((kind, function)) = title.rsplit_once(" in ") else {
        return Err(format!(
            "title `{title}` has a `*` but no ` in `: only the function part of `<kind> in <function>` may be a glob"
        ));
    };
    if kind.contains('*') || kind.trim().is_empty() {
        return Err(format!(
            "title `{title}`: the kind (before ` in `) must be exact; only the function may be a glob"
        ));
    }
    let literals = function.chars().filter(|c| *c != '*').count();
    if literals < FUNCTION_GLOB_LITERALS {
        return Err(format!(
            "title `{title}`: the function glob `{function}` keeps {literals} literal characters; keep at least {FUNCTION_GLOB_LITERALS} (e.g. `*srcu*`) so it names a family of functions, not any"
        ));
    }
    Ok(())
}

/// Whether a seen title matches a signature's title: exactly, or by its
/// function glob ([`validate_title`]).
pub fn title_matches(want: &str, seen: &str) -> bool {
    if !want.contains('*') {
        return want == seen;
    }
    let (Some((want_kind, glob)), Some((seen_kind, function))) = (want.rsplit_once(" in "), seen.rsplit_once(" in "))
    else {
        return false;
    };
    want_kind == seen_kind && glob_matches(glob, function)
}

/// `*` matches any run of characters; everything else itself.
fn glob_matches(glob: &str, text: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return glob == text;
    }
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KnownFailure {
    /// The catalogue's matrix row: `race_attach_vs_destroy`, `progs::X`, `selftest::x`.
    pub test: String,
    /// Exact kernel source labels (`6.12.118-1`; see `kernel::source`).
    pub kernels: Vec<String>,
    /// Cells it applies to, or ["*"].
    pub cells: Vec<String>,
    /// How often it shows: "always", or measured ("1 in 20").
    pub rate: String,
    /// What the bug is, with a reference.
    pub reason: String,
    #[serde(rename = "signature", default)]
    pub signatures: Vec<Signature>,
}

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct KnownFailures {
    #[serde(default)]
    pub known: Vec<KnownFailure>,
}

impl KnownFailure {
    fn applies(&self, row: &str, cell: &str, kernel_label: &str) -> bool {
        self.test == row
            && self.cells.iter().any(|c| c == "*" || c == cell)
            && self.kernels.iter().any(|k| k == kernel_label)
    }

    pub fn rate(&self) -> Rate {
        Rate::parse(&self.rate).unwrap_or(Rate::Always)
    }

    /// The entry's signatures, one per line, for reports.
    pub fn describe(&self) -> String {
        self.signatures.iter().map(Signature::describe).collect::<Vec<_>>().join("; or ")
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.reason.trim().is_empty()
            || self.test.trim().is_empty()
            || self.kernels.is_empty()
            || self.cells.is_empty()
        {
            return Err("`test`, `kernels`, `cells` and `reason` must not be empty".into());
        }
        for k in &self.kernels {
            if k == "*" || k.trim().is_empty() || k.matches('.').count() < 2 {
                return Err(format!(
                    "kernel `{k}` is not an exact source label: name each kernel by its source label, as `hidvm kernels` and every report show it, e.g. \"6.12.118-1\"; a wildcard or a series (\"6.12\") would take in kernels nobody checked"
                ));
            }
        }
        Rate::parse(&self.rate)?;
        if self.signatures.is_empty() {
            return Err("no `[[known.signature]]`: an entry must say how the bug shows (a crash title and stack functions, or a check and what it saw)".into());
        }
        for (i, s) in self.signatures.iter().enumerate() {
            s.validate().map_err(|e| format!("signature {}: {e}", i + 1))?;
        }
        Ok(())
    }
}

/// How a run relates to the known failures.
#[derive(Debug, Clone, PartialEq)]
pub enum Known {
    /// No entry applies.
    None,
    /// An entry applies and everything that went wrong matches its
    /// signatures (entry index, reason).
    Failed(usize, String),
    /// An entry applies but the run passed.
    Passed(usize),
    /// An entry applies and the run failed otherwise: (entry index, what
    /// the entry expects, what was seen). A failure like any other.
    Mismatch(usize, String, String),
}

impl Known {
    /// The entry that applied, if any.
    pub fn entry(&self) -> Option<usize> {
        match self {
            Known::None => None,
            Known::Failed(i, _) | Known::Passed(i) | Known::Mismatch(i, ..) => Some(*i),
        }
    }
}

/// What went wrong in a run: its verdict, the kernel reports that counted
/// and its failed checks (`step N: <what>`, seen).
pub fn seen_in(verdict: &Verdict, crashes: &[CrashReport], failed_checks: &[FailedCheck]) -> Vec<Seen> {
    let Verdict::Fail { kind, reason, .. } = verdict else { return Vec::new() };
    match kind {
        FailureKind::KernelCrash | FailureKind::KernelSplat if !crashes.is_empty() => crashes
            .iter()
            .map(|c| {
                // Each report by its own nature: one that ended in a panic
                // is a crash, one the kernel survived a splat.
                let fatal = c.panicked || c.class == "panic";
                let ends_as = if fatal { FailureKind::KernelCrash } else { FailureKind::KernelSplat }.token();
                Seen::Report { ends_as, title: c.title.clone(), stack: c.stack.clone() }
            })
            .collect(),
        FailureKind::Check if !failed_checks.is_empty() => failed_checks
            .iter()
            .map(|c| Seen::Check { check: c.check.clone(), seen: c.seen.clone(), detail: c.detail.clone() })
            .collect(),
        _ => vec![Seen::Other { token: verdict.token(), reason: reason.clone() }],
    }
}

impl KnownFailures {
    pub fn load(file: &Path) -> Result<KnownFailures> {
        if !file.exists() {
            return Ok(KnownFailures::default());
        }
        let text = std::fs::read_to_string(file).map_err(Error::io(format!("reading {}", file.display())))?;
        Self::parse(&text, &file.display().to_string())
    }

    pub fn parse(text: &str, name: &str) -> Result<KnownFailures> {
        let list: KnownFailures = toml::from_str(text)
            .map_err(|e| Error::Other(format!("known failures {name}: {}; fix the entry", toml_error(text, &e))))?;
        for (i, k) in list.known.iter().enumerate() {
            k.validate()
                .map_err(|e| Error::Other(format!("known failures {name} entry {} ({}): {e}", i + 1, k.test)))?;
        }
        Ok(list)
    }

    /// Classify a run of catalogue row `row` on `cell` of the kernel
    /// labelled `kernel_label` (`KernelSource::label`), given what went
    /// wrong in it ([`seen_in`]).
    pub fn classify(&self, row: &str, cell: &str, kernel_label: &str, verdict: &Verdict, seen: &[Seen]) -> Known {
        let Some((i, k)) = self.known.iter().enumerate().find(|(_, k)| k.applies(row, cell, kernel_label)) else {
            return Known::None;
        };
        if verdict.passed() {
            return Known::Passed(i);
        }
        let unmatched: Vec<&Seen> = seen.iter().filter(|s| !k.signatures.iter().any(|sig| sig.matches(s))).collect();
        if seen.is_empty() || !unmatched.is_empty() {
            let what = if unmatched.is_empty() {
                verdict.token()
            } else {
                unmatched.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("; ")
            };
            return Known::Mismatch(i, k.describe(), what);
        }
        Known::Failed(i, k.reason.clone())
    }
}

/// The chance of `k` or more of `n` runs showing a bug whose rate is `p`
/// (the binomial tail), to tell a known race hit by chance from one that
/// now hits far more often than recorded.
pub fn tail_probability(k: u32, n: u32, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    // Sum P(X = j) for j in k..=n, in logs for stability.
    let ln_choose = |n: u32, j: u32| -> f64 { (1..=j).map(|i| (f64::from(n - j + i) / f64::from(i)).ln()).sum() };
    (k..=n).map(|j| (ln_choose(n, j) + f64::from(j) * p.ln() + f64::from(n - j) * (1.0 - p).ln()).exp()).sum()
}

/// Below this chance, a known race's count of hits is a change, not luck.
pub const CHANGE_THRESHOLD: f64 = 0.001;

/// Whether `hits` of `runs` is far more often than `rate` says (the
/// chance of as many or more is under [`CHANGE_THRESHOLD`]); the chance.
pub fn far_more_often(rate: Rate, hits: u32, runs: u32) -> Option<f64> {
    match rate {
        Rate::Always => None,
        Rate::Measured { .. } => {
            let p = tail_probability(hits, runs, rate.p());
            (p < CHANGE_THRESHOLD).then_some(p)
        }
    }
}

#[cfg(test)]
mod tests;
