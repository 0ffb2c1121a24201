//! Reading and judging a test program that reports KTAP/TAP (the kernel's HID
//! selftests, the hid-tools pytest suite): one row per result, plus a
//! `<program>.(run)` row for the run itself.
//!
//! Nothing passes by being absent. The run row fails when the plan line
//! is missing or promised results never came, when the exit status
//! disagrees with the results (non-zero with nothing failed, zero with a
//! failure), when every test skipped itself, when a test skipped itself
//! for a reason no entry lists, when the guest was not this run's (nonce)
//! or not the cell's kernel (banner), and on any kernel report. A failure
//! is KNOWN only when an entry of the known list names its test, its exact
//! kernel and the text it fails with.
use crate::base::error::{toml_error, Error, Result};
use serde::Deserialize;
use std::path::Path;

/// One KTAP result line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
    /// `ok N name # XFAIL reason`: failed as expected (kselftest's
    /// `ksft_test_result_xfail`, and hidvm's known kernel bugs).
    XFail(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtapResult {
    /// `hid_bpf.test_create_uhid` (fixture.test, as the harness names it).
    pub name: String,
    pub outcome: Outcome,
}

/// The plan (`1..N`) and every `ok`/`not ok` line of a KTAP (or TAP 13)
/// stream, top level only (indented subtest lines are the harness's).
pub fn parse(lines: &[String]) -> (Option<usize>, Vec<KtapResult>) {
    let mut plan = None;
    let mut results = Vec::new();
    // Diagnostics since the last result: a failure without a directive is
    // explained by the harness's assertion line ("hid_bpf.c:154:...:Expected ...").
    let mut since: Vec<&str> = Vec::new();
    for line in lines {
        if let Some(n) = line.strip_prefix("1..") {
            plan = n.trim().parse().ok();
            continue;
        }
        if let Some(d) = line.strip_prefix("# ") {
            since.push(d.trim());
        }
        let (ok, rest) = if let Some(r) = line.strip_prefix("not ok ") {
            (false, r)
        } else if let Some(r) = line.strip_prefix("ok ") {
            (true, r)
        } else {
            continue;
        };
        // "<n> <name>[ # <directive>]"
        let rest = rest.split_once(' ').map(|(_, r)| r).unwrap_or("");
        let (name, directive) = match rest.split_once(" # ") {
            Some((n, d)) => (n.trim(), Some(d.trim())),
            None => (rest.trim(), None),
        };
        let outcome = match directive {
            Some(d) if d.to_ascii_uppercase().starts_with("SKIP") => {
                Outcome::Skip(d[4..].trim().trim_start_matches(':').trim().to_string())
            }
            // `not ok … # XFAIL` is a failure whatever it says: kselftest
            // writes an expected failure as `ok`.
            Some(d) if ok && d.to_ascii_uppercase().starts_with("XFAIL") => {
                Outcome::XFail(d[5..].trim().trim_start_matches(':').trim().to_string())
            }
            // TAP 13's TODO (pytest-tap's xfail): a `not ok` TODO failed as
            // expected; an `ok` one passed unexpectedly, which is a pass.
            Some(d) if d.to_ascii_uppercase().starts_with("TODO") => {
                let why = d[4..].trim().trim_start_matches(':').trim().to_string();
                if ok {
                    Outcome::Pass
                } else {
                    Outcome::XFail(why)
                }
            }
            _ if ok => Outcome::Pass,
            Some(d) if !d.is_empty() => Outcome::Fail(d.to_string()),
            _ => Outcome::Fail(
                since
                    .iter()
                    .find(|l| l.contains(":Expected ") || l.contains("assert"))
                    .or_else(|| since.iter().rev().find(|l| !l.trim_start().starts_with("FAIL")))
                    .map(|l| l.to_string())
                    .unwrap_or_default(),
            ),
        };
        since.clear();
        results.push(KtapResult { name: name.to_string(), outcome });
    }
    (plan, results)
}

/// A known result: a test that fails, or skips itself, on a kernel, and why.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct KnownResult {
    /// `hid_bpf.test_name`, `test_mouse.py::TestX::test_y`; a trailing `*`
    /// matches every test whose name starts with what comes before it
    /// (`test_tablet.py::TestXPPen_Artist24_28bd_093a::*`).
    pub test: String,
    /// Exact kernel source labels (`6.12.118-1`), as known kernel bugs name them.
    pub kernels: Vec<String>,
    /// Cells, or ["*"].
    pub cells: Vec<String>,
    /// The test fails, and its failure's text contains this.
    #[serde(default)]
    pub fails_with: Option<String>,
    /// The test skips itself, and its reason contains this.
    #[serde(default)]
    pub skips_with: Option<String>,
    pub reason: String,
}

impl KnownResult {
    /// Whether the entry's `test` names `test` (exactly, or by its prefix
    /// before a trailing `*`).
    pub fn names(&self, test: &str) -> bool {
        match self.test.strip_suffix('*') {
            Some(prefix) => test.starts_with(prefix),
            None => self.test == test,
        }
    }
}

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct KnownResults {
    #[serde(default)]
    pub known: Vec<KnownResult>,
}

impl KnownResults {
    pub fn load(path: &Path) -> Result<KnownResults> {
        let text = std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, name: &str) -> Result<KnownResults> {
        let bad = |m: String| Error::Other(format!("{name}: {m}"));
        let k: KnownResults = toml::from_str(text).map_err(|e| bad(toml_error(text, &e)))?;
        for (i, e) in k.known.iter().enumerate() {
            let entry = |m: &str| bad(format!("entry {} ({}): {m}", i + 1, e.test));
            if e.reason.trim().is_empty() || e.kernels.is_empty() || e.cells.is_empty() || e.test.trim().is_empty() {
                return Err(entry("needs test, kernels, cells and a reason"));
            }
            if e.fails_with.is_some() == e.skips_with.is_some() {
                return Err(entry(
                    "needs exactly one of `fails_with` (text its failure shows) and `skips_with` (its skip reason)",
                ));
            }
            if e.test.strip_suffix('*').is_some_and(|p| p.len() < 8 || p.contains('*')) {
                return Err(entry("a wildcard test name is a prefix of 8 characters or more and one trailing `*`"));
            }
            if e.fails_with.as_deref().or(e.skips_with.as_deref()).is_some_and(|t| t.trim().len() < 8) {
                return Err(entry("`fails_with`/`skips_with` must be a distinctive text (8 characters or more)"));
            }
            if let Some(k) = e.kernels.iter().find(|k| *k == "*" || k.matches('.').count() < 2) {
                return Err(entry(&format!(
                    "kernel `{k}` is not an exact source label (`6.12.118-1`, as `hidvm kernels` and reports show it)"
                )));
            }
        }
        Ok(k)
    }

    /// The entry for `test` on this kernel and cell.
    pub fn find(&self, test: &str, kernel_label: &str, cell: &str) -> Option<&KnownResult> {
        self.known.iter().find(|k| {
            k.names(test)
                && k.cells.iter().any(|c| c == "*" || c == cell)
                && k.kernels.iter().any(|v| v == kernel_label)
        })
    }
}

/// A run of a TAP-reporting program, as the host saw it.
pub struct TapRun<'a> {
    /// `hid_bpf`, `test_mouse.py`: the run row is `<program>.(run)`.
    pub program: &'a str,
    pub plan: Option<usize>,
    pub results: &'a [KtapResult],
    /// The program's exit status was 0 (None: no verdict came).
    pub exit_ok: Option<bool>,
    /// What went wrong with the run itself (timeout, no verdict, another
    /// run's results, the wrong kernel).
    pub problems: Vec<String>,
    /// Kernel reports on the console, one line each.
    pub splats: Vec<String>,
}

/// How one result shows in the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Pass,
    /// Failed as the known list says it does on this kernel.
    Known,
    Skip(String),
    Fail,
}

/// A run judged: one row per result plus the run row.
pub struct Judged {
    pub rows: Vec<(String, Cell)>,
    /// Why each failing row failed.
    pub failures: Vec<String>,
    /// Known results that did not happen (fixed in this kernel?).
    pub notes: Vec<String>,
}

impl Judged {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Judge `run` on the kernel labelled `kernel_label`, cell `cell`; `row`
/// turns a result's name into its matrix row (`kselftest::hid_bpf.x`).
pub fn judge(
    run: &TapRun<'_>,
    known: &KnownResults,
    kernel_label: &str,
    cell: &str,
    row: impl Fn(&str) -> String,
) -> Judged {
    let mut j = Judged { rows: Vec::new(), failures: Vec::new(), notes: Vec::new() };
    let mut unlisted_skips = Vec::new();
    for res in run.results {
        let entry = known.find(&res.name, kernel_label, cell);
        let cell_of = match (&res.outcome, entry) {
            // A wildcard entry names many tests; most of them pass.
            (Outcome::Pass, Some(k)) if k.test.ends_with('*') => Cell::Pass,
            (Outcome::Pass, Some(k)) => {
                j.notes.push(format!(
                    "known result of {} did not happen on {kernel_label} ({cell}): it passed; remove the entry once it keeps passing ({})",
                    res.name, k.reason
                ));
                Cell::Pass
            }
            (Outcome::Pass, None) | (Outcome::XFail(_), _) => Cell::Pass,
            (Outcome::Skip(why), Some(KnownResult { skips_with: Some(want), .. })) if why.contains(want.as_str()) => {
                Cell::Skip(format!("the test skipped itself: {why}"))
            }
            (Outcome::Skip(why), _) => {
                unlisted_skips.push(format!("{} ({why})", res.name));
                Cell::Skip(format!("the test skipped itself, for a reason no entry lists: {why}"))
            }
            (Outcome::Fail(why), Some(KnownResult { fails_with: Some(want), .. })) if why.contains(want.as_str()) => {
                Cell::Known
            }
            (Outcome::Fail(why), Some(k)) => {
                j.failures.push(format!(
                    "{} failed on {kernel_label} ({cell}) otherwise than its known entry says: it expects `{}`, the test said `{why}`",
                    res.name,
                    k.fails_with.as_deref().or(k.skips_with.as_deref()).unwrap_or_default()
                ));
                Cell::Fail
            }
            (Outcome::Fail(why), None) => {
                j.failures.push(format!("{} failed on {kernel_label} ({cell}): {why}", res.name));
                Cell::Fail
            }
        };
        j.rows.push((row(&res.name), cell_of));
    }
    let problems = run_problems(run, &unlisted_skips);
    let run_row = row(&format!("{}.(run)", run.program));
    if problems.is_empty() {
        j.rows.push((run_row, Cell::Pass));
    } else {
        j.failures.push(format!("{} on {kernel_label} ({cell}): {}", run.program, problems.join("; ")));
        j.rows.push((run_row, Cell::Fail));
    }
    j
}

/// Everything wrong with the run as a whole (see the module's rules).
fn run_problems(run: &TapRun<'_>, unlisted_skips: &[String]) -> Vec<String> {
    let mut p = run.problems.clone();
    match run.plan {
        None => p.push("no plan line (`1..N`): the output was cut short or is not KTAP".into()),
        Some(n) if n > run.results.len() => {
            p.push(format!("{} of the {n} planned results never came", n - run.results.len()))
        }
        Some(n) if n < run.results.len() => p.push(format!("{} results for a plan of {n}", run.results.len())),
        Some(_) => {}
    }
    let failed = run.results.iter().any(|r| matches!(r.outcome, Outcome::Fail(_)));
    match run.exit_ok {
        Some(false) if !failed => p.push("the program exited non-zero, though no result failed".into()),
        Some(true) if failed => p.push("the program exited 0, though a result failed".into()),
        _ => {}
    }
    if !run.results.is_empty() && run.results.iter().all(|r| matches!(r.outcome, Outcome::Skip(_))) {
        p.push(format!("every one of its {} tests skipped itself: nothing was tested", run.results.len()));
    }
    if !unlisted_skips.is_empty() {
        p.push(format!("skipped for a reason no known entry lists: {}", unlisted_skips.join(", ")));
    }
    p.extend(run.splats.iter().map(|s| format!("kernel report: {s}")));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, outcome: Outcome) -> KtapResult {
        KtapResult { name: name.into(), outcome }
    }

    fn tap<'a>(results: &'a [KtapResult], plan: Option<usize>, exit_ok: Option<bool>) -> TapRun<'a> {
        TapRun { program: "hid_bpf", plan, results, exit_ok, problems: vec![], splats: vec![] }
    }

    const KNOWN: &str = r#"
[[known]]
test = "hid_bpf.test_overflow"
kernels = ["6.12.118-1"]
cells = ["*"]
fails_with = "Expected 0 (0) == err (-22)"
reason = "r"

[[known]]
test = "hid_bpf.test_wq"
kernels = ["6.12.118-1"]
cells = ["*"]
skips_with = "bpf_wq unsupported"
reason = "r"
"#;

    fn judged(run: &TapRun<'_>) -> Judged {
        judge(run, &KnownResults::parse(KNOWN, "t").unwrap(), "6.12.118-1", "gcc", |n| format!("kselftest::{n}"))
    }

    fn run_row(j: &Judged) -> &Cell {
        &j.rows.last().unwrap().1
    }

    #[test]
    fn a_complete_consistent_run_passes() {
        let res = [r("hid_bpf.a", Outcome::Pass), r("hid_bpf.test_wq", Outcome::Skip("bpf_wq unsupported".into()))];
        let j = judged(&tap(&res, Some(2), Some(true)));
        assert!(j.ok(), "{:?}", j.failures);
        assert_eq!(run_row(&j), &Cell::Pass);
    }

    #[test]
    fn truncated_empty_inconsistent_and_all_skipped_runs_fail_the_run_row() {
        let pass = [r("hid_bpf.a", Outcome::Pass)];
        let cases: Vec<(TapRun<'_>, &str)> = vec![
            (tap(&pass, None, Some(true)), "no plan line"),
            (tap(&pass, Some(3), Some(true)), "2 of the 3 planned results never came"),
            (tap(&[], Some(0), Some(true)), ""),
            (tap(&pass, Some(1), Some(false)), "exited non-zero"),
            (tap(&pass, Some(1), None), ""),
        ];
        for (run, want) in cases.iter().filter(|(_, w)| !w.is_empty()) {
            let j = judged(run);
            assert_eq!(run_row(&j), &Cell::Fail, "{want}");
            assert!(j.failures.iter().any(|f| f.contains(want)), "{want}: {:?}", j.failures);
        }
        let skipped = [r("hid_bpf.test_wq", Outcome::Skip("bpf_wq unsupported".into()))];
        let j = judged(&tap(&skipped, Some(1), Some(true)));
        assert!(j.failures.iter().any(|f| f.contains("skipped itself: nothing was tested")), "{:?}", j.failures);
        let failed = [r("hid_bpf.a", Outcome::Fail("boom".into()))];
        let j = judged(&tap(&failed, Some(1), Some(true)));
        assert!(j.failures.iter().any(|f| f.contains("exited 0, though a result failed")), "{:?}", j.failures);
        // A run problem the caller found (no verdict, another run's nonce).
        let mut run = tap(&pass, Some(1), Some(true));
        run.problems.push("the results are not this run's".into());
        assert_eq!(run_row(&judged(&run)), &Cell::Fail);
    }

    #[test]
    fn an_unlisted_skip_fails_the_run_row() {
        let res = [r("hid_bpf.a", Outcome::Pass), r("hid_bpf.b", Outcome::Skip("udev-hid-bpf not found".into()))];
        let j = judged(&tap(&res, Some(2), Some(true)));
        assert!(j.failures.iter().any(|f| f.contains("no known entry lists: hid_bpf.b (udev-hid-bpf not found)")));
        // A listed test skipping for another reason is unlisted too.
        let res = [r("hid_bpf.a", Outcome::Pass), r("hid_bpf.test_wq", Outcome::Skip("no memory".into()))];
        assert!(!judged(&tap(&res, Some(2), Some(true))).ok());
    }

    #[test]
    fn a_known_failure_must_fail_with_its_text() {
        let known = [
            r("hid_bpf.a", Outcome::Pass),
            r("hid_bpf.test_overflow", Outcome::Fail("hid_bpf.c:154:x:Expected 0 (0) == err (-22)".into())),
        ];
        let j = judged(&tap(&known, Some(2), Some(false)));
        assert!(j.ok(), "{:?}", j.failures);
        assert_eq!(j.rows[1].1, Cell::Known);
        let other = [r("hid_bpf.a", Outcome::Pass), r("hid_bpf.test_overflow", Outcome::Fail("timeout".into()))];
        let j = judged(&tap(&other, Some(2), Some(false)));
        assert!(j.failures.iter().any(|f| f.contains("otherwise than its known entry says")), "{:?}", j.failures);
        // On another kernel the entry does not apply.
        let j = judge(
            &tap(&known, Some(2), Some(false)),
            &KnownResults::parse(KNOWN, "t").unwrap(),
            "7.3.4-1~bpo13+1",
            "gcc",
            |n| n.to_string(),
        );
        assert!(!j.ok());
    }

    #[test]
    fn tap13_todo_is_an_expected_failure_or_an_unexpected_pass() {
        let lines: Vec<String> = [
            "1..3",
            "not ok 1 tests/x.py::T.test_a # TODO expected failure: reason",
            "ok 2 tests/x.py::T.test_b # TODO unexpected success: reason",
            "not ok 3 tests/x.py::T.test_c",
        ]
        .map(String::from)
        .to_vec();
        let (plan, r) = parse(&lines);
        assert_eq!(plan, Some(3));
        assert_eq!(r[0].outcome, Outcome::XFail("expected failure: reason".into()));
        assert_eq!(r[1].outcome, Outcome::Pass);
        assert!(matches!(r[2].outcome, Outcome::Fail(_)));
    }

    #[test]
    fn a_trailing_star_names_every_test_with_that_prefix() {
        let known = KnownResults::parse(
            "[[known]]\ntest = \"test_tablet.py::TestXPPen_Artist24_28bd_093a::*\"\nkernels = [\"6.12.118-1\"]\ncells = [\"*\"]\nskips_with = \"Device not compatible, missing\"\nreason = \"r\"\n",
            "t",
        )
        .unwrap();
        let k = known.find("test_tablet.py::TestXPPen_Artist24_28bd_093a::test_x[a-b]", "6.12.118-1", "gcc");
        assert!(k.is_some());
        assert!(known
            .find("test_tablet.py::TestXPPen_ArtistPro16Gen2_28bd_095b::test_x", "6.12.118-1", "gcc")
            .is_none());
        // A wildcard must still say which tests it is about.
        let bad = "[[known]]\ntest = \"test_*\"\nkernels = [\"6.12.118-1\"]\ncells = [\"*\"]\nskips_with = \"Device not compatible\"\nreason = \"r\"\n";
        assert!(KnownResults::parse(bad, "t").unwrap_err().to_string().contains("wildcard"));
        let inner = bad.replace("test_*", "test_tablet.py::*::test_x*");
        assert!(KnownResults::parse(&inner, "t").unwrap_err().to_string().contains("wildcard"));
    }

    #[test]
    fn malformed_known_lists_are_refused() {
        let bad = |body: &str| {
            KnownResults::parse(
                &format!(
                    "[[known]]\ntest = \"a.b\"\nkernels = [\"6.12.118-1\"]\ncells = [\"*\"]\nreason = \"r\"\n{body}"
                ),
                "t",
            )
            .unwrap_err()
            .to_string()
        };
        assert!(bad("").contains("exactly one of"));
        assert!(bad("fails_with = \"x\"").contains("distinctive"));
        assert!(bad("fails_with = \"long enough\"\nskips_with = \"long enough\"").contains("exactly one of"));
        let prefix = KnownResults::parse(
            "[[known]]\ntest = \"a.b\"\nkernels = [\"6.12\"]\ncells = [\"*\"]\nreason = \"r\"\nfails_with = \"long enough\"",
            "t",
        );
        assert!(prefix.unwrap_err().to_string().contains("not an exact source label"));
    }
}
