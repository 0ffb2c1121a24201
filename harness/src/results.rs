//! Machine-readable results: one record per test (kernel, cell, scenario,
//! verdict, failure kind and class, time, run directory), written as JSON
//! (`--json FILE`), as JSON lines appended by each test process
//! (`HIDVM_RESULTS_JSONL`, what nextest runs use) and as KTAP (`--ktap
//! FILE`, the kernel's own test-result format). `hidvm summary` merges the
//! files of many jobs into one matrix, with compiler- and kernel-dependent
//! rows flagged, as text or Markdown (for `$GITHUB_STEP_SUMMARY`).
use crate::error::{Error, Result};
use crate::kernels::Target;
use crate::matrix::Matrix;
use crate::report::RunReport;
use crate::verdict::{split_verdict, Verdict};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What became of one test.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// Failed exactly as a known kernel bug says.
    Known,
    /// Did not run here, with a reason.
    Skip,
    /// hidvm could not run it (bad input, a build that failed).
    Error,
    /// Passed in some of a `--repeat` run's rounds, not all.
    Flaky,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TestRecord {
    /// `6.12-gcc::mouse_invert_y_close_link`.
    pub test: String,
    /// The matrix row: `mouse_invert_y_close_link`, `progs::X`, `selftest::x`.
    pub row: String,
    pub kernel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_version: Option<String>,
    pub cell: String,
    pub status: Status,
    /// Failure kind ("check-failed", "kernel-crash", …) and class ("bug").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Why it failed, was skipped or was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<PathBuf>,
    /// Race steps: rounds whose window the kernel saw open, of rounds run
    /// (summed over the scenario's race steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u32>,
}

impl TestRecord {
    pub fn target(&self) -> Target {
        Target::new(&self.kernel, &self.cell)
    }

    pub fn from_report(row: &str, r: &RunReport) -> TestRecord {
        let (status, kind, class, reason) = match (&r.verdict, &r.known) {
            (Verdict::Pass, _) => (Status::Pass, None, None, None),
            (Verdict::Fail { reason, .. }, known) => {
                let token = r.verdict.token();
                let (kind, class) = split_verdict(&token);
                let status =
                    if matches!(known, crate::known::Known::Failed(..)) { Status::Known } else { Status::Fail };
                (status, Some(kind.to_string()), class.map(str::to_string), Some(reason.clone()))
            }
        };
        let races = r.guest.steps.iter().filter_map(|s| s.race.as_ref());
        TestRecord {
            test: r.test.clone(),
            row: row.to_string(),
            kernel: r.kernel.clone(),
            kernel_version: Some(r.kernel_version.clone()),
            cell: r.cell.clone(),
            status,
            kind,
            class,
            reason,
            seconds: Some(r.vm_seconds),
            run_dir: Some(r.run_dir.clone()),
            hits: races.clone().map(|x| x.hits).reduce(|a, b| a + b),
            rounds: races.map(|x| x.rounds).reduce(|a, b| a + b),
        }
    }

    /// A test that did not run (`skip`) or could not be run (`error`).
    pub fn without_run(test: &str, row: &str, target: &Target, status: Status, reason: &str) -> TestRecord {
        TestRecord {
            test: test.to_string(),
            row: row.to_string(),
            kernel: target.kernel.clone(),
            kernel_version: None,
            cell: target.cell.clone(),
            status,
            kind: None,
            class: None,
            reason: Some(reason.to_string()),
            seconds: None,
            run_dir: None,
            hits: None,
            rounds: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Results {
    /// The hidvm version that wrote them.
    pub hidvm: String,
    pub records: Vec<TestRecord>,
}

impl Results {
    pub fn new(records: Vec<TestRecord>) -> Results {
        Results { hidvm: env!("CARGO_PKG_VERSION").to_string(), records }
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("results serialize");
        crate::layout::write_atomic(path, text.as_bytes()).map_err(Error::io(format!("writing {}", path.display())))
    }

    /// KTAP version 1: one top-level result per test, `# SKIP` for skips,
    /// `# XFAIL` for known kernel bugs, the reason as a diagnostic line.
    pub fn to_ktap(&self) -> String {
        let mut out = format!("KTAP version 1\n1..{}\n", self.records.len());
        for (i, r) in self.records.iter().enumerate() {
            let n = i + 1;
            let reason = r.reason.as_deref().map(one_line).unwrap_or_default();
            if matches!(r.status, Status::Fail | Status::Error | Status::Flaky) && !reason.is_empty() {
                out.push_str(&format!("# {}: {reason}\n", r.test));
            }
            let line = match r.status {
                Status::Pass => format!("ok {n} {}", r.test),
                Status::Skip => format!("ok {n} {} # SKIP {reason}", r.test),
                Status::Known => format!("not ok {n} {} # XFAIL known kernel bug: {reason}", r.test),
                Status::Fail | Status::Error | Status::Flaky => format!("not ok {n} {}", r.test),
            };
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn write_ktap(&self, path: &Path) -> Result<()> {
        crate::layout::write_atomic(path, self.to_ktap().as_bytes())
            .map_err(Error::io(format!("writing {}", path.display())))
    }

    /// Read a `--json` file or a `HIDVM_RESULTS_JSONL` file (one record per
    /// line). An unreadable file, a bad line or no record at all is an error.
    pub fn read(path: &Path) -> Result<Results> {
        let bad = |m: String| Error::Other(format!("results file {}: {m}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let results = if text.trim_start().starts_with('{') && text.contains("\"records\"") {
            serde_json::from_str::<Results>(&text).map_err(|e| bad(e.to_string()))?
        } else {
            let records = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| serde_json::from_str::<TestRecord>(l).map_err(|e| bad(format!("line {}: {e}", i + 1))))
                .collect::<Result<Vec<_>>>()?;
            Results::new(records)
        };
        if results.records.is_empty() {
            return Err(bad("holds no test record".into()));
        }
        Ok(results)
    }

    /// Several jobs' results as one. The same test reported twice with
    /// different outcomes is an error (two jobs ran one target).
    pub fn merge(parts: Vec<Results>) -> Result<Results> {
        let mut records: Vec<TestRecord> = Vec::new();
        for p in parts {
            for r in p.records {
                if let Some(other) = records.iter().find(|o| o.test == r.test) {
                    if other.status != r.status {
                        return Err(Error::Other(format!(
                            "{} is in two results files, once {:?} and once {:?}: each target belongs to one job",
                            r.test, other.status, r.status
                        )));
                    }
                    continue;
                }
                records.push(r);
            }
        }
        Ok(Results::new(records))
    }

    /// The scenario x target matrix of these records, targets kernel-major.
    pub fn matrix(&self) -> Matrix {
        let mut targets: Vec<Target> = self.records.iter().map(TestRecord::target).collect();
        targets.sort_by(|a, b| {
            let series = |t: &Target| crate::kernels::parse_series(&t.kernel).unwrap_or((u32::MAX, u32::MAX));
            series(a).cmp(&series(b)).then(a.kernel.cmp(&b.kernel)).then(a.cell.cmp(&b.cell))
        });
        targets.dedup();
        let mut m = Matrix::new(targets);
        for r in &self.records {
            let t = r.target();
            let token = |status: &str| match (&r.kind, &r.class) {
                (Some(k), Some(c)) => format!("{status} ({k}: {c})"),
                (Some(k), None) => format!("{status} ({k})"),
                _ => status.to_string(),
            };
            match r.status {
                Status::Pass => m.record_text(&r.row, &t, "pass".into(), true),
                Status::Fail => m.record_text(&r.row, &t, token("FAIL"), false),
                Status::Known => m.record_known_text(&r.row, &t, token("KNOWN")),
                Status::Error => m.record_text(&r.row, &t, "ERROR".into(), false),
                Status::Flaky => m.record_text(&r.row, &t, "FLAKY".into(), false),
                Status::Skip => m.record_skip(&r.row, &t, r.reason.as_deref().unwrap_or("no reason given")),
            }
        }
        m
    }
}

/// Append one record to the JSON-lines file `HIDVM_RESULTS_JSONL` names,
/// if it is set (each nextest test process adds its own line; one small
/// O_APPEND write per record keeps concurrent writers' lines whole).
pub fn append_to_env_file(record: &TestRecord) -> Result<()> {
    let Some(path) = std::env::var_os("HIDVM_RESULTS_JSONL").filter(|p| !p.is_empty()) else { return Ok(()) };
    use std::io::Write;
    let mut line = serde_json::to_string(record).expect("record serializes");
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(Error::io(format!("opening HIDVM_RESULTS_JSONL={}", PathBuf::from(&path).display())))?;
    f.write_all(line.as_bytes()).map_err(Error::io("appending to HIDVM_RESULTS_JSONL"))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kernel: &str, cell: &str, row: &str, status: Status) -> TestRecord {
        let target = Target::new(kernel, cell);
        let mut r = TestRecord::without_run(&format!("{}::{row}", target.label()), row, &target, status, "why");
        if status == Status::Fail {
            r.kind = Some("check-failed".into());
        }
        r
    }

    /// What the CI summary job does: per-job files merged into one matrix;
    /// a row that fails on LLVM and passes on gcc must be flagged.
    #[test]
    fn merged_job_results_flag_a_compiler_dependent_row() {
        let d = tempfile::tempdir().unwrap();
        let gcc = Results::new(vec![
            rec("6.12", "gcc", "mouse_invert_y_close_link", Status::Pass),
            rec("6.12", "gcc", "keyboard_swallow_key", Status::Pass),
        ]);
        gcc.write_json(&d.path().join("gcc.json")).unwrap();
        // The llvm job wrote JSON lines (nextest, HIDVM_RESULTS_JSONL).
        let llvm = [
            rec("6.12", "llvm", "mouse_invert_y_close_link", Status::Fail),
            rec("6.12", "llvm", "keyboard_swallow_key", Status::Pass),
        ];
        let lines: String = llvm.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        std::fs::write(d.path().join("llvm.jsonl"), lines).unwrap();

        let merged = Results::merge(vec![
            Results::read(&d.path().join("gcc.json")).unwrap(),
            Results::read(&d.path().join("llvm.jsonl")).unwrap(),
        ])
        .unwrap();
        let m = merged.matrix();
        assert_eq!(m.compiler_dependent(), vec!["mouse_invert_y_close_link"]);
        assert!(m.kernel_dependent().is_empty());
        let md = m.render_markdown();
        assert!(md.contains("| mouse_invert_y_close_link | pass | FAIL (check-failed) | compiler-dependent"), "{md}");
        assert!(!m.all_passed());
    }

    #[test]
    fn a_row_failing_on_one_kernel_is_kernel_dependent_in_the_merge() {
        let merged = Results::merge(vec![
            Results::new(vec![rec("6.12", "gcc", "x", Status::Pass), rec("6.12", "llvm", "x", Status::Pass)]),
            Results::new(vec![rec("7.3", "gcc", "x", Status::Fail), rec("7.3", "llvm", "x", Status::Fail)]),
        ])
        .unwrap();
        let m = merged.matrix();
        assert!(m.compiler_dependent().is_empty());
        assert_eq!(m.kernel_dependent(), vec!["x"]);
        assert_eq!(
            m.targets.iter().map(|t| t.label()).collect::<Vec<_>>(),
            ["6.12-gcc", "6.12-llvm", "7.3-gcc", "7.3-llvm"]
        );
    }

    #[test]
    fn conflicting_duplicates_and_empty_files_are_errors() {
        let a = Results::new(vec![rec("6.12", "gcc", "x", Status::Pass)]);
        let b = Results::new(vec![rec("6.12", "gcc", "x", Status::Fail)]);
        assert!(Results::merge(vec![a, b]).unwrap_err().to_string().contains("in two results files"));
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("e.jsonl"), "\n").unwrap();
        assert!(Results::read(&d.path().join("e.jsonl")).unwrap_err().to_string().contains("no test record"));
        std::fs::write(d.path().join("bad.jsonl"), "{nope\n").unwrap();
        assert!(Results::read(&d.path().join("bad.jsonl")).unwrap_err().to_string().contains("line 1"));
    }

    /// The KTAP file parses back with the same parser `hidvm selftests`
    /// uses for the kernel's own KTAP, with the same outcomes.
    #[test]
    fn ktap_output_parses_as_ktap() {
        let r = Results::new(vec![
            rec("6.12", "gcc", "a", Status::Pass),
            rec("6.12", "gcc", "b", Status::Fail),
            rec("6.12", "gcc", "c", Status::Skip),
            rec("6.12", "gcc", "d", Status::Known),
        ]);
        let text = r.to_ktap();
        assert!(text.starts_with("KTAP version 1\n1..4\n"), "{text}");
        let lines: Vec<String> = text.lines().map(String::from).collect();
        let (plan, parsed) = crate::kselftest::parse_ktap(&lines);
        assert_eq!(plan, Some(4));
        use crate::kselftest::Outcome;
        assert_eq!(parsed[0].outcome, Outcome::Pass);
        assert!(matches!(parsed[1].outcome, Outcome::Fail(_)));
        assert_eq!(parsed[2].outcome, Outcome::Skip("why".into()));
        assert!(matches!(&parsed[3].outcome, Outcome::Fail(w) if w.starts_with("XFAIL")));
        assert_eq!(parsed[1].name, "6.12-gcc::b");
    }
}
