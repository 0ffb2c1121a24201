//! The one-screen summary: scenario x (kernel x cell) -> pass/fail/skip,
//! with rows whose verdict differs between the compilers of a kernel
//! flagged compiler-dependent, and between the kernels of a compiler
//! flagged kernel-dependent.
use crate::judge::verdict::Verdict;
use crate::kernel::spec::Target;
use crate::results::report::RunReport;
use std::collections::BTreeMap;

fn v_token(v: &Verdict) -> String {
    format!("({})", v.token())
}

pub struct Matrix {
    /// Columns: kernel x cell, kernel-major.
    pub targets: Vec<Target>,
    /// Rows keep insertion order.
    rows: Vec<String>,
    cells_of: BTreeMap<(String, Target), String>,
    /// (row, target) -> whether the test passed (what "differs" compares);
    /// skipped tests have none.
    verdicts: BTreeMap<(String, Target), bool>,
    /// (row, target) -> failed exactly as a known kernel bug says.
    known: BTreeMap<(String, Target), bool>,
    /// (row, target) -> why it was skipped.
    pub skipped: BTreeMap<(String, Target), String>,
    /// Cells whose outcome was chance: a race that hit its known kernel bug
    /// in some rounds of a `--repeat` run. They take no side in the
    /// differences (one compiler's hit in 20 rounds says nothing about the
    /// compiler).
    chance: std::collections::BTreeSet<(String, Target)>,
}

/// How a row's verdicts vary across the matrix.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Differences {
    /// Kernels on which the compilers disagree ("fails on LLVM, passes on gcc").
    pub between_compilers: Vec<String>,
    /// Cells on which the kernels disagree (a kernel change).
    pub between_kernels: Vec<String>,
}

impl Differences {
    pub fn any(&self) -> bool {
        !self.between_compilers.is_empty() || !self.between_kernels.is_empty()
    }
}

impl Matrix {
    pub fn new(targets: Vec<Target>) -> Matrix {
        Matrix {
            targets,
            rows: Vec::new(),
            cells_of: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            known: BTreeMap::new(),
            skipped: BTreeMap::new(),
            chance: Default::default(),
        }
    }

    pub fn record(&mut self, row: &str, target: &Target, outcome: std::result::Result<&RunReport, &str>) {
        let (text, ok, known) = match outcome {
            Ok(r) => match (&r.verdict, &r.known) {
                (Verdict::Pass, _) => ("pass".to_string(), true, false),
                (Verdict::Fail { .. }, crate::judge::known::Known::Failed(..)) => {
                    (format!("KNOWN {}", v_token(&r.verdict)), false, true)
                }
                (Verdict::Fail { .. }, crate::judge::known::Known::Mismatch(..)) => {
                    (format!("FAIL ({}; not the known bug)", r.verdict.token()), false, false)
                }
                (Verdict::Fail { .. }, _) => (format!("FAIL {}", v_token(&r.verdict)), false, false),
            },
            Err(_) => ("ERROR".to_string(), false, false),
        };
        // A test that could not start from its snapshot says so in its cell.
        let text = match outcome {
            Ok(r) if r.started_from.starts_with("cold boot (") => format!("{text} [cold]"),
            _ => text,
        };
        self.record_text(row, target, text, ok);
        self.known.insert((row.to_string(), target.clone()), known);
    }

    /// A failure a known-failures list explains (shown as KNOWN: not a
    /// pass, not a failure of the command).
    pub fn record_known(&mut self, row: &str, target: &Target) {
        self.record_known_text(row, target, "KNOWN".into());
    }

    pub fn record_known_text(&mut self, row: &str, target: &Target, text: String) {
        self.record_text(row, target, text, false);
        self.known.insert((row.to_string(), target.clone()), true);
    }

    /// A test that did not run on `target`, and why (not a pass, not a
    /// failure: it does not count in "passed" nor in the differences).
    pub fn record_skip(&mut self, row: &str, target: &Target, reason: &str) {
        self.add_row(row);
        self.cells_of.insert((row.to_string(), target.clone()), "skip".into());
        self.skipped.insert((row.to_string(), target.clone()), reason.to_string());
    }

    /// Record a cell's text directly (e.g. "FLAKY 19/20" for repeated runs).
    pub fn record_text(&mut self, row: &str, target: &Target, text: String, ok: bool) {
        self.add_row(row);
        self.cells_of.insert((row.to_string(), target.clone()), text);
        self.verdicts.insert((row.to_string(), target.clone()), ok);
        // A cell recorded again (a known bug that changed) is what it says now.
        self.known.remove(&(row.to_string(), target.clone()));
        self.chance.remove(&(row.to_string(), target.clone()));
    }

    /// A known kernel bug hit in some rounds only (`KNOWN 3/20`).
    pub fn record_known_by_chance(&mut self, row: &str, target: &Target, text: String) {
        self.record_known_text(row, target, text);
        self.chance.insert((row.to_string(), target.clone()));
    }

    fn add_row(&mut self, row: &str) {
        if !self.rows.iter().any(|r| r == row) {
            self.rows.push(row.to_string());
        }
    }

    fn is_known(&self, key: &(String, Target)) -> bool {
        self.known.get(key).copied().unwrap_or(false)
    }

    /// Where a row's verdicts disagree: between the cells of one kernel
    /// (compiler-dependent), between the kernels of one cell
    /// (kernel-dependent). Skipped tests take no side.
    pub fn differences(&self, row: &str) -> Differences {
        let mixed = |group: &[&Target]| {
            let v: Vec<bool> = group
                .iter()
                .map(|t| (row.to_string(), (*t).clone()))
                .filter(|key| !self.chance.contains(key))
                .filter_map(|key| self.verdicts.get(&key).copied())
                .collect();
            v.iter().any(|x| *x) && v.iter().any(|x| !*x)
        };
        let mut d = Differences::default();
        let mut kernels: Vec<&str> = self.targets.iter().map(|t| t.kernel.as_str()).collect();
        kernels.dedup();
        for k in kernels {
            let group: Vec<&Target> = self.targets.iter().filter(|t| t.kernel == k).collect();
            if mixed(&group) {
                d.between_compilers.push(k.to_string());
            }
        }
        let mut cells: Vec<&str> = self.targets.iter().map(|t| t.cell.as_str()).collect();
        cells.sort();
        cells.dedup();
        for c in cells {
            let group: Vec<&Target> = self.targets.iter().filter(|t| t.cell == c).collect();
            if mixed(&group) {
                d.between_kernels.push(c.to_string());
            }
        }
        d
    }

    /// Rows whose verdict differs between the compilers of some kernel.
    pub fn compiler_dependent(&self) -> Vec<&str> {
        self.rows.iter().filter(|r| !self.differences(r).between_compilers.is_empty()).map(String::as_str).collect()
    }

    /// Rows whose verdict differs between the kernels of some cell.
    pub fn kernel_dependent(&self) -> Vec<&str> {
        self.rows.iter().filter(|r| !self.differences(r).between_kernels.is_empty()).map(String::as_str).collect()
    }

    /// Every test that ran passed, or failed exactly as a known kernel bug says.
    pub fn all_passed(&self) -> bool {
        self.verdicts.iter().all(|(k, v)| *v || self.is_known(k))
    }

    /// The one-line tally under the matrix.
    fn tally(&self) -> String {
        let passed = self.verdicts.values().filter(|v| **v).count();
        let mut out = format!("{passed}/{} passed", self.verdicts.len());
        let known = self.known.values().filter(|k| **k).count();
        if known > 0 {
            out.push_str(&format!("; {known} known kernel bug(s)"));
        }
        if !self.skipped.is_empty() {
            out.push_str(&format!("; {} skipped", self.skipped.len()));
        }
        let (c, k) = (self.compiler_dependent().len(), self.kernel_dependent().len());
        if c > 0 {
            out.push_str(&format!("; {c} compiler-dependent difference(s)"));
        }
        if k > 0 {
            out.push_str(&format!("; {k} kernel-dependent difference(s)"));
        }
        out
    }

    /// The matrix as a Markdown table (CI's `$GITHUB_STEP_SUMMARY`): rows
    /// that differ first, so the one thing hidvm exists to show is at the top.
    pub fn render_markdown(&self) -> String {
        let mut out = format!(
            "| scenario | {} | differs |\n",
            self.targets.iter().map(|t| t.label()).collect::<Vec<_>>().join(" | ")
        );
        out.push_str(&format!("|---|{}---|\n", "---|".repeat(self.targets.len())));
        let mut rows: Vec<&String> = self.rows.iter().collect();
        rows.sort_by_key(|r| !self.differences(r).any());
        for row in rows {
            let cells: Vec<&str> = self
                .targets
                .iter()
                .map(|t| self.cells_of.get(&(row.clone(), t.clone())).map(String::as_str).unwrap_or("-"))
                .collect();
            let d = self.differences(row);
            let mut flags = Vec::new();
            if !d.between_compilers.is_empty() {
                flags.push(format!("compiler-dependent ({})", d.between_compilers.join(", ")));
            }
            if !d.between_kernels.is_empty() {
                flags.push(format!("kernel-dependent ({})", d.between_kernels.join(", ")));
            }
            out.push_str(&format!("| {row} | {} | {} |\n", cells.join(" | "), flags.join("; ")));
        }
        out.push_str(&format!("\n{}\n", self.tally()));
        out
    }

    pub fn render(&self) -> String {
        let width = self.rows.iter().map(|r| r.len()).max().unwrap_or(8).max(8);
        // Columns as wide as their widest cell (a known failure's text is
        // long), two spaces apart.
        let cw = self
            .cells_of
            .values()
            .map(|s| s.len())
            .chain(self.targets.iter().map(|t| t.label().len()))
            .max()
            .unwrap_or(20)
            + 2;
        let col = |s: &str| format!("{s:<cw$}");
        let header: String = self.targets.iter().map(|t| col(&t.label())).collect();
        let mut out = format!("{:<width$}  {}\n", "scenario", header.trim_end());
        for row in &self.rows {
            let cells: String = self
                .targets
                .iter()
                .map(|t| col(self.cells_of.get(&(row.clone(), t.clone())).map(String::as_str).unwrap_or("-")))
                .collect();
            let d = self.differences(row);
            let mut flags = Vec::new();
            if !d.between_compilers.is_empty() {
                flags.push(format!(
                    "differs between compilers on {}: compiler-dependent",
                    d.between_compilers.join(", ")
                ));
            }
            if !d.between_kernels.is_empty() {
                flags.push(format!("differs between kernels on {}: kernel-dependent", d.between_kernels.join(", ")));
            }
            let flag = if flags.is_empty() { String::new() } else { format!("  <- {}", flags.join("; ")) };
            out.push_str(&format!("{row:<width$}  {}{flag}\n", cells.trim_end()));
        }
        out.push_str(&self.tally());
        out.push('\n');
        // Each distinct skip reason once, with the tests it covers.
        let mut reasons: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for ((row, t), why) in &self.skipped {
            reasons.entry(why.as_str()).or_default().push(format!("{}::{row}", t.label()));
        }
        for (why, tests) in reasons {
            let shown: Vec<&String> = tests.iter().take(3).collect();
            let more = if tests.len() > 3 { format!(" and {} more", tests.len() - 3) } else { String::new() };
            out.push_str(&format!(
                "skipped: {why}: {}{more}\n",
                shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(k: &str, c: &str) -> Target {
        Target::new(k, c)
    }

    fn matrix() -> Matrix {
        Matrix::new(vec![t("6.12", "gcc"), t("6.12", "llvm"), t("7.3", "gcc"), t("7.3", "llvm")])
    }

    #[test]
    fn a_known_race_hit_in_some_rounds_takes_no_side() {
        let mut m = matrix();
        for target in &m.targets.clone() {
            m.record_text("race", target, "pass".into(), true);
        }
        m.record_known_by_chance("race", &t("7.3", "gcc"), "KNOWN 1/20".into());
        assert!(!m.differences("race").any(), "{}", m.render());
        assert!(m.all_passed());
        // A flaky cell does take a side: it failed unexpectedly.
        m.record_text("race", &t("7.3", "llvm"), "FLAKY 1/20 failed".into(), false);
        assert_eq!(m.differences("race").between_kernels, vec!["llvm"]);
    }

    #[test]
    fn fails_on_llvm_passes_on_gcc_is_compiler_dependent() {
        let mut m = matrix();
        for target in &m.targets.clone() {
            m.record_text("a", target, "pass".into(), true);
        }
        assert!(!m.differences("a").any());
        m.record_text("a", &t("6.12", "llvm"), "FAIL".into(), false);
        let d = m.differences("a");
        assert_eq!(d.between_compilers, vec!["6.12"]);
        // llvm also differs between kernels (6.12 fails, 7.3 passes).
        assert_eq!(d.between_kernels, vec!["llvm"]);
        assert_eq!(m.compiler_dependent(), vec!["a"]);
        let r = m.render();
        assert!(r.contains("differs between compilers on 6.12: compiler-dependent"), "{r}");
        assert!(r.contains("1 compiler-dependent difference(s)"), "{r}");
        assert!(!m.all_passed());
    }

    #[test]
    fn failing_on_one_kernel_with_both_compilers_is_kernel_dependent_only() {
        let mut m = matrix();
        m.record_text("b", &t("6.12", "gcc"), "pass".into(), true);
        m.record_text("b", &t("6.12", "llvm"), "pass".into(), true);
        m.record_text("b", &t("7.3", "gcc"), "FAIL".into(), false);
        m.record_text("b", &t("7.3", "llvm"), "FAIL".into(), false);
        let d = m.differences("b");
        assert!(d.between_compilers.is_empty());
        assert_eq!(d.between_kernels, vec!["gcc", "llvm"]);
        assert!(m.render().contains("differs between kernels on gcc, llvm: kernel-dependent"));
        assert!(m.compiler_dependent().is_empty());
    }

    #[test]
    fn a_skip_is_neither_pass_nor_difference_and_says_why() {
        let mut m = matrix();
        m.record_skip("c", &t("6.12", "gcc"), "needs Linux >= 6.15");
        m.record_skip("c", &t("6.12", "llvm"), "needs Linux >= 6.15");
        m.record_text("c", &t("7.3", "gcc"), "pass".into(), true);
        m.record_text("c", &t("7.3", "llvm"), "pass".into(), true);
        assert!(!m.differences("c").any());
        assert!(m.all_passed());
        let r = m.render();
        assert!(r.contains("2/2 passed; 2 skipped"), "{r}");
        assert!(r.contains("skipped: needs Linux >= 6.15: 6.12-gcc::c, 6.12-llvm::c"), "{r}");
    }

    #[test]
    fn errors_on_every_target_are_not_a_difference() {
        let mut m = matrix();
        for target in &m.targets.clone() {
            m.record("e", target, Err("x"));
        }
        assert!(!m.differences("e").any());
        assert!(!m.all_passed());
    }
}
