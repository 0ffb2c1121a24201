//! The report's view model: what the renderers draw, built by `convert`.

/// A test's outcome on one target, as the report shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CellStatus {
    Pass,
    Fail,
    /// Failed exactly as a known kernel bug says.
    Known,
    Skip,
    /// hidvm could not run it.
    Error,
    /// Failed unexpectedly in some rounds of a `--repeat` run, not all.
    Flaky,
    /// No result for this test on this target.
    Missing,
    /// Not a test of this target (a cell's own self-test): the results are
    /// known to hold every planned test ([`super::Context::complete`]).
    NotHere,
}

impl CellStatus {
    /// A symbol that tells the statuses apart without colour.
    pub fn symbol(self) -> &'static str {
        match self {
            CellStatus::Pass => "✔",
            CellStatus::Fail => "✘",
            CellStatus::Known => "K",
            CellStatus::Skip => "–",
            CellStatus::Error => "!",
            CellStatus::Flaky => "≈",
            CellStatus::Missing => "?",
            CellStatus::NotHere => "",
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            CellStatus::Pass => "pass",
            CellStatus::Fail => "fail",
            CellStatus::Known => "known",
            CellStatus::Skip => "skip",
            CellStatus::Error => "error",
            CellStatus::Flaky => "flaky",
            CellStatus::Missing => "missing",
            CellStatus::NotHere => "not-here",
        }
    }

    /// What needs a look: an unexpected failure, an error, flakiness.
    pub fn is_problem(self) -> bool {
        matches!(self, CellStatus::Fail | CellStatus::Error | CellStatus::Flaky)
    }

    pub const ALL: [CellStatus; 7] = [
        CellStatus::Fail,
        CellStatus::Error,
        CellStatus::Flaky,
        CellStatus::Known,
        CellStatus::Pass,
        CellStatus::Skip,
        CellStatus::Missing,
    ];
}

/// A column: a kernel built by a cell (`7.3-llvm`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetInfo {
    /// `7.3-llvm`.
    pub label: String,
    pub kernel: String,
    pub cell: String,
    /// The kernel source exactly (`linux-source-7.3 7.3.4-1~bpo13+1 sha256:…`).
    pub source: Option<String>,
    /// `kvm`, `tcg`, with why when known.
    pub accel: Option<String>,
    /// Expected in this run but no result came from it.
    pub missing: bool,
}

/// Why a row is flagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagKind {
    CompilerDependent,
    KernelDependent,
    DiffersFromBaseline,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flag {
    pub kind: FlagKind,
    /// Where: the kernels whose compilers disagree, the cells whose kernels
    /// disagree, the targets that changed since the baseline.
    pub on: Vec<String>,
}

impl Flag {
    pub fn text(&self) -> String {
        let what = match self.kind {
            FlagKind::CompilerDependent => "compiler-dependent",
            FlagKind::KernelDependent => "kernel-dependent",
            FlagKind::DiffersFromBaseline => "differs from baseline",
        };
        if self.on.is_empty() {
            what.to_string()
        } else {
            format!("{what} ({})", self.on.join(", "))
        }
    }
}

/// A file of the run's (its console, step log, trace), by a path relative
/// to the report or absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub label: String,
    pub href: String,
}

/// A check that failed: for an inject, expected and seen are hex bytes and
/// the report shows which differ.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailedCheck {
    /// `step 3 (inject report)`.
    pub step: String,
    pub what: String,
    pub expected: String,
    pub seen: String,
}

/// How often a race scenario hit its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaceHits {
    pub hits: u32,
    pub rounds: u32,
}

/// One test on one target.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub status: CellStatus,
    /// The cell's text (`FAIL (check-failed)`, `KNOWN 3/20`).
    pub label: String,
    /// Why it failed, was skipped or is known.
    pub reason: Option<String>,
    pub seconds: Option<f64>,
    pub links: Vec<Link>,
    pub checks: Vec<FailedCheck>,
    pub race: Option<RaceHits>,
    /// Each round's outcome, for `--repeat` runs.
    pub rounds: Vec<CellStatus>,
    /// The first line of the kernel's crash report.
    pub crash_title: Option<String>,
    /// `snapshot <key>`, `cold boot`, or why a restore fell back to one.
    pub started_from: Option<String>,
}

impl Cell {
    pub fn new(status: CellStatus, label: impl Into<String>) -> Cell {
        Cell {
            status,
            label: label.into(),
            reason: None,
            seconds: None,
            links: Vec::new(),
            checks: Vec::new(),
            race: None,
            rounds: Vec::new(),
            crash_title: None,
            started_from: None,
        }
    }

    pub fn missing() -> Cell {
        Cell::new(CellStatus::Missing, "no result")
    }

    /// Not every round passed.
    pub fn varied_or_failed_rounds(&self) -> bool {
        self.rounds.iter().any(|r| *r != CellStatus::Pass)
    }
}

/// A matrix row: one scenario, one cell per target (in [`Report::targets`] order).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub name: String,
    pub cells: Vec<Cell>,
    pub flags: Vec<Flag>,
}

/// Where a row goes in the report, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// A failure, an error, a flaky test, or no result from a target that reported.
    Problem,
    /// Verdicts differ between compilers, kernels, or from the baseline.
    Differs,
    /// A known kernel bug, as recorded.
    Known,
    /// Passed or skipped everywhere.
    Fine,
}

impl Group {
    pub const ALL: [Group; 4] = [Group::Problem, Group::Differs, Group::Known, Group::Fine];

    pub fn title(self) -> &'static str {
        match self {
            Group::Problem => "Failures",
            Group::Differs => "Differences",
            Group::Known => "Known kernel bugs",
            Group::Fine => "Passing and skipped",
        }
    }
}

impl Row {
    pub fn group(&self, targets: &[TargetInfo]) -> Group {
        let lost = self.cells.iter().zip(targets).any(|(c, t)| c.status == CellStatus::Missing && !t.missing);
        if lost || self.cells.iter().any(|c| c.status.is_problem()) {
            Group::Problem
        } else if !self.flags.is_empty() {
            Group::Differs
        } else if self.cells.iter().any(|c| c.status == CellStatus::Known) {
            Group::Known
        } else {
            Group::Fine
        }
    }

    pub fn has(&self, kind: FlagKind) -> bool {
        self.flags.iter().any(|f| f.kind == kind)
    }
}

/// The whole run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub title: String,
    /// `hidvm 0.1.0`.
    pub generated_by: String,
    /// `2026-12-07 13:35 UTC`.
    pub generated_at: Option<String>,
    pub targets: Vec<TargetInfo>,
    /// In the order results came (the catalogue's); the renderers group them.
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    /// What is wrong with the run besides its cells (a planned target short
    /// of tests, a known bug seen far more often than recorded): each one
    /// fails the run and is said first.
    pub problems: Vec<String>,
    /// Where the HTML report is, for the Markdown summary (else a placeholder).
    pub html_link: Option<String>,
}

/// The totals the header leads with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Test results (cells that are not missing).
    pub tests: usize,
    pub passed: usize,
    pub failed: usize,
    pub known: usize,
    pub skipped: usize,
    pub errors: usize,
    pub flaky: usize,
    /// Cells without a result on targets that did report.
    pub lost: usize,
    pub compiler_dependent: Vec<String>,
    pub kernel_dependent: Vec<String>,
    pub baseline_differs: Vec<String>,
    pub missing_targets: Vec<String>,
}

impl Counts {
    /// "3 failed, 1 differs between compilers, …" (what a reader needs first).
    pub fn headline(&self) -> String {
        let mut parts = Vec::new();
        if self.failed + self.errors + self.flaky + self.lost == 0 {
            parts.push("nothing failed".to_string());
        }
        if self.failed > 0 {
            parts.push(format!("{} failed", self.failed));
        }
        if self.errors > 0 {
            parts.push(format!("{} could not run", self.errors));
        }
        if self.flaky > 0 {
            parts.push(format!("{} flaky", self.flaky));
        }
        if self.lost > 0 {
            parts.push(format!("{} without a result", self.lost));
        }
        let rows = |n: usize| if n == 1 { "1 row differs".to_string() } else { format!("{n} rows differ") };
        parts.push(format!("{} between compilers", rows(self.compiler_dependent.len())));
        parts.push(format!("{} between kernels", rows(self.kernel_dependent.len())));
        if !self.baseline_differs.is_empty() {
            parts.push(format!("{} from the baseline", rows(self.baseline_differs.len())));
        }
        if !self.missing_targets.is_empty() {
            parts.push(format!("targets missing: {}", self.missing_targets.join(", ")));
        }
        parts.join(", ")
    }

    pub fn all_good(&self) -> bool {
        self.failed + self.errors + self.flaky + self.lost == 0 && self.missing_targets.is_empty()
    }
}

impl Report {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for row in &self.rows {
            for (cell, t) in row.cells.iter().zip(&self.targets) {
                match cell.status {
                    CellStatus::Pass => c.passed += 1,
                    CellStatus::Fail => c.failed += 1,
                    CellStatus::Known => c.known += 1,
                    CellStatus::Skip => c.skipped += 1,
                    CellStatus::Error => c.errors += 1,
                    CellStatus::Flaky => c.flaky += 1,
                    CellStatus::Missing if !t.missing => c.lost += 1,
                    CellStatus::Missing | CellStatus::NotHere => {}
                }
                if !matches!(cell.status, CellStatus::Missing | CellStatus::NotHere) {
                    c.tests += 1;
                }
            }
            let named = |kind| row.has(kind).then(|| row.name.clone());
            c.compiler_dependent.extend(named(FlagKind::CompilerDependent));
            c.kernel_dependent.extend(named(FlagKind::KernelDependent));
            c.baseline_differs.extend(named(FlagKind::DiffersFromBaseline));
        }
        c.missing_targets = self.targets.iter().filter(|t| t.missing).map(|t| t.label.clone()).collect();
        c
    }

    /// The columns the matrix shows: targets that sent results (a missing
    /// target is said in the header, not as a column of "no result").
    pub fn shown_columns(&self) -> Vec<usize> {
        (0..self.targets.len()).filter(|i| !self.targets[*i].missing).collect()
    }

    /// The rows of one group (index into [`Report::rows`], row), in the order they came.
    pub fn rows_in(&self, group: Group) -> Vec<(usize, &Row)> {
        self.rows.iter().enumerate().filter(|(_, r)| r.group(&self.targets) == group).collect()
    }

    /// Every row in report order: problems, differences, known, fine.
    pub fn ordered_rows(&self) -> Vec<(usize, &Row)> {
        Group::ALL.iter().flat_map(|g| self.rows_in(*g)).collect()
    }
}

/// Text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
