//! The one-screen summary: scenario x (kernel x cell) -> pass/fail/skip,
//! with rows whose verdict differs between the compilers of a kernel
//! flagged compiler-dependent, and between the kernels of a compiler
//! flagged kernel-dependent; with a baseline kernel, each kernel is held
//! against the baseline on the same cell instead ("differs from baseline
//! 6.12"): pass, known kernel bug and failure differ, and so do two
//! failures with different crash titles.
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
    /// Cells where a known race with a measured rate (`1 in 20`) hit in a
    /// single run: no side in the baseline comparison (a hit in one run
    /// says nothing about the kernel; `--repeat` does).
    rare: std::collections::BTreeSet<(String, Target)>,
    /// (row, target) -> the crash titles of a failure.
    titles: BTreeMap<(String, Target), Vec<String>>,
    /// The kernel every other kernel is held against (`--baseline`).
    pub baseline: Option<String>,
    /// Kernel -> its exact source (`6.12.118-1~deb12u1 = linux-source-6.12 …`).
    pub sources: BTreeMap<String, String>,
}

/// How a row's verdicts vary across the matrix.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Differences {
    /// Kernels on which the compilers disagree ("fails on LLVM, passes on gcc").
    pub between_compilers: Vec<String>,
    /// Cells on which the kernels disagree (a kernel change); none with a
    /// baseline, whose comparison says it target by target.
    pub between_kernels: Vec<String>,
    /// Targets whose outcome differs from the baseline kernel's on their cell.
    pub from_baseline: Vec<String>,
}

impl Differences {
    pub fn any(&self) -> bool {
        !self.between_compilers.is_empty() || !self.between_kernels.is_empty() || !self.from_baseline.is_empty()
    }
}

/// What the baseline comparison compares.
#[derive(Debug, PartialEq, Eq)]
enum Outcome<'a> {
    Pass,
    Known,
    Fail(&'a [String]),
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
            rare: Default::default(),
            titles: BTreeMap::new(),
            baseline: None,
            sources: BTreeMap::new(),
        }
    }

    /// The crash titles of a failed cell (compared with the baseline's).
    pub fn record_titles(&mut self, row: &str, target: &Target, titles: Vec<String>) {
        self.titles.insert((row.to_string(), target.clone()), titles);
    }

    /// What a results record says beyond its status: its crash titles,
    /// whether it was a race known to hit sometimes that hit in one run,
    /// and its kernel's source.
    pub fn note_record(&mut self, r: &crate::results::records::TestRecord) {
        let t = r.target();
        self.record_titles(&r.row, &t, r.crashes.clone());
        let measured = r.known.as_ref().is_some_and(|k| k.rate != "always");
        if r.status == crate::results::records::Status::Known && r.rounds.len() <= 1 && measured {
            self.mark_rare(&r.row, &t);
        }
        if let Some(source) = &r.kernel_source {
            self.sources.entry(r.kernel.clone()).or_insert_with(|| source.clone());
        }
    }

    /// A known race with a measured rate hit in one run (see `rare`).
    pub fn mark_rare(&mut self, row: &str, target: &Target) {
        self.rare.insert((row.to_string(), target.clone()));
    }

    fn outcome(&self, key: &(String, Target)) -> Option<Outcome<'_>> {
        if self.chance.contains(key) || self.rare.contains(key) {
            return None;
        }
        let ok = *self.verdicts.get(key)?;
        Some(match (ok, self.is_known(key)) {
            (true, _) => Outcome::Pass,
            (false, true) => Outcome::Known,
            (false, false) => Outcome::Fail(self.titles.get(key).map(Vec::as_slice).unwrap_or_default()),
        })
    }

    /// The targets of other kernels whose outcome in `row` differs from
    /// the baseline kernel's on the same cell.
    fn changed_since_baseline(&self, row: &str, base: &str) -> Vec<String> {
        let key = |t: &Target| (row.to_string(), t.clone());
        self.targets
            .iter()
            .filter(|t| t.kernel != base)
            .filter(|t| {
                let b = self.outcome(&key(&Target::new(base, &t.cell)));
                let o = self.outcome(&key(t));
                matches!((b, o), (Some(b), Some(o)) if b != o)
            })
            .map(Target::label)
            .collect()
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
        if let Ok(r) = outcome {
            self.record_titles(row, target, r.crashes.iter().map(|c| c.title.clone()).collect());
        }
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
        self.rare.remove(&(row.to_string(), target.clone()));
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
        if let Some(base) = &self.baseline {
            d.from_baseline = self.changed_since_baseline(row, base);
            return d;
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

    /// Rows whose outcome on some kernel differs from the baseline's.
    pub fn differs_from_baseline(&self) -> Vec<&str> {
        self.rows.iter().filter(|r| !self.differences(r).from_baseline.is_empty()).map(String::as_str).collect()
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
        if let Some(base) = &self.baseline {
            out.push_str(&format!("; {} row(s) differ from baseline {base}", self.differs_from_baseline().len()));
        }
        out
    }

    /// A row's flags, as words (`compiler-dependent (6.12)`).
    fn flag_words(&self, d: &Differences, long: bool) -> Vec<String> {
        let mut flags = Vec::new();
        if !d.between_compilers.is_empty() {
            flags.push(match long {
                true => format!("differs between compilers on {}: compiler-dependent", d.between_compilers.join(", ")),
                false => format!("compiler-dependent ({})", d.between_compilers.join(", ")),
            });
        }
        if !d.between_kernels.is_empty() {
            flags.push(match long {
                true => format!("differs between kernels on {}: kernel-dependent", d.between_kernels.join(", ")),
                false => format!("kernel-dependent ({})", d.between_kernels.join(", ")),
            });
        }
        if let (false, Some(base)) = (d.from_baseline.is_empty(), &self.baseline) {
            flags.push(format!("differs from baseline {base} on {}", d.from_baseline.join(", ")));
        }
        flags
    }

    /// Each kernel's exact source, one line each (under the matrix).
    fn sources_text(&self) -> String {
        let mut kernels: Vec<&str> = self.targets.iter().map(|t| t.kernel.as_str()).collect();
        kernels.dedup();
        kernels.iter().filter_map(|k| self.sources.get(*k).map(|s| format!("kernel {k}: {s}\n"))).collect()
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
            let flags = self.flag_words(&self.differences(row), false);
            out.push_str(&format!("| {row} | {} | {} |\n", cells.join(" | "), flags.join("; ")));
        }
        out.push_str(&format!("\n{}\n", self.tally()));
        let sources = self.sources_text();
        if !sources.is_empty() {
            out.push_str(&format!("\n{}", sources.lines().map(|l| format!("- {l}\n")).collect::<String>()));
        }
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
            let flags = self.flag_words(&self.differences(row), true);
            let flag = if flags.is_empty() { String::new() } else { format!("  <- {}", flags.join("; ")) };
            out.push_str(&format!("{row:<width$}  {}{flag}\n", cells.trim_end()));
        }
        out.push_str(&self.tally());
        out.push('\n');
        out.push_str(&self.sources_text());
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

    /// `--baseline 6.12`: a series that turns a known bug into a pass, a
    /// pass into a known bug, or one crash into another is flagged, row by
    /// row; the same outcome, a skip or a race hit by chance is not.
    #[test]
    fn rows_that_differ_from_the_baseline_are_flagged_and_nothing_else() {
        let targets = vec![t("6.12", "gcc"), t("6.12", "llvm"), t("6.12+fix", "gcc"), t("6.12+fix", "llvm")];
        let mut m = Matrix::new(targets.clone());
        m.baseline = Some("6.12".into());
        m.sources.insert("6.12+fix".into(), "6.12.118-1~deb12u1+fix@1a2b3c4d".into());
        for target in &targets {
            m.record_text("same", target, "pass".into(), true);
            m.record_known("known_everywhere", target);
            m.record_skip("skipped", target, "needs Linux >= 6.15");
        }
        for c in ["gcc", "llvm"] {
            m.record_known("race_fixed", &t("6.12", c));
            m.record_text("race_fixed", &t("6.12+fix", c), "pass".into(), true);
            m.record_text("crash", &t("6.12", c), "FAIL".into(), false);
            m.record_titles("crash", &t("6.12", c), vec!["BUG: kernel NULL pointer dereference in a".into()]);
            m.record_text("crash", &t("6.12+fix", c), "FAIL".into(), false);
            m.record_titles("crash", &t("6.12+fix", c), vec!["BUG: kernel NULL pointer dereference in a".into()]);
            m.record_text("rare_race", &t("6.12", c), "pass".into(), true);
        }
        // A known race (measured rate) that hit once in the series' column: chance.
        m.record_known("rare_race", &t("6.12+fix", "gcc"));
        m.mark_rare("rare_race", &t("6.12+fix", "gcc"));
        m.record_text("rare_race", &t("6.12+fix", "llvm"), "pass".into(), true);
        // The same failure with another crash title is a difference.
        m.record_titles("crash", &t("6.12+fix", "llvm"), vec!["WARNING in cleanup_srcu_struct".into()]);
        // Known where the baseline passes: news, not KNOWN.
        m.record_text("newly_known", &t("6.12", "gcc"), "pass".into(), true);
        m.record_known("newly_known", &t("6.12+fix", "gcc"));
        assert_eq!(m.differs_from_baseline(), ["race_fixed", "crash", "newly_known"]);
        assert_eq!(m.differences("race_fixed").from_baseline, ["6.12+fix-gcc", "6.12+fix-llvm"]);
        assert!(m.kernel_dependent().is_empty(), "the baseline comparison replaces the kernel flag");
        let r = m.render();
        assert!(r.contains("<- differs from baseline 6.12 on 6.12+fix-gcc, 6.12+fix-llvm"), "{r}");
        assert!(r.contains("3 row(s) differ from baseline 6.12"), "{r}");
        assert!(r.contains("kernel 6.12+fix: 6.12.118-1~deb12u1+fix@1a2b3c4d"), "{r}");
        assert!(!r.lines().any(|l| l.starts_with("same") && l.contains("<-")), "{r}");
        assert!(m.render_markdown().contains("| differs from baseline 6.12 on 6.12+fix-gcc, 6.12+fix-llvm |"));
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
