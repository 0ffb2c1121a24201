//! Machine-readable results: one record per test (kernel, cell, scenario,
//! verdict, failure kind and class, time, run directory), written as JSON
//! (`--json FILE`), as JSON lines appended by each test process
//! (`HIDVM_RESULTS_JSONL`, what nextest runs use) and as KTAP (`--ktap
//! FILE`, the kernel's own test-result format). `hidvm summary` merges the
//! files of many jobs into one matrix, with compiler- and kernel-dependent
//! rows flagged, as text or Markdown (for `$GITHUB_STEP_SUMMARY`).
use crate::base::error::{Error, Result};
use crate::judge::known::Known;
use crate::judge::verdict::{split_verdict, Verdict};
use crate::kernel::spec::Target;
use crate::results::report::{RaceCount, RunReport};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What became of one test.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// Failed exactly as a known kernel bug says.
    Known,
    /// Did not run here, with a reason.
    Skip,
    /// hidvm could not run it (bad input, a build that failed); also what
    /// a record that says nothing else is.
    #[default]
    Error,
    /// Passed in some of a `--repeat` run's rounds, not all.
    Flaky,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
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
    /// The kernel's exact source label (`6.12.118-1`, `tree:6.13.0@1a2b3c4d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_source: Option<String>,
    /// Titles of the kernel reports that counted (`judge::title`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crashes: Vec<String>,
    /// The known kernel bug entry that applied, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known: Option<KnownRef>,
    /// How the VM started: `snapshot <key>`, `cold boot`, or a cold boot
    /// after a failed restore, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_from: Option<String>,
    /// A race scenario's rounds and those whose window the kernel saw open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub race: Option<RaceCount>,
    /// `--repeat`: how each round ended, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<Status>,
}

/// A known-failures entry as a record names it: enough for `hidvm
/// summary` to pool a race's hits across jobs against its recorded rate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KnownRef {
    /// 1-based, in tests/known-failures.toml.
    pub entry: usize,
    /// `always`, `1 in 20`.
    pub rate: String,
    /// Whether the run ended as the entry's signatures say (false: a pass,
    /// or a failure of another kind).
    pub matched: bool,
}

impl TestRecord {
    pub fn target(&self) -> Target {
        Target::new(&self.kernel, &self.cell)
    }

    /// `rate` of the entry that applied (`known` names it), if any.
    pub fn from_report(row: &str, r: &RunReport, rate: Option<String>) -> TestRecord {
        let (status, kind, class, reason) = match (&r.verdict, &r.known) {
            (Verdict::Pass, _) => (Status::Pass, None, None, None),
            (Verdict::Fail { reason, .. }, known) => {
                let token = r.verdict.token();
                let (kind, class) = split_verdict(&token);
                let (status, reason) = match known {
                    Known::Failed(..) => (Status::Known, reason.clone()),
                    Known::Mismatch(i, expected, seen) => (
                        Status::Fail,
                        format!("{reason} [not the known bug of entry {}: it expects {expected}; seen {seen}]", i + 1),
                    ),
                    _ => (Status::Fail, reason.clone()),
                };
                (status, Some(kind.to_string()), class.map(str::to_string), Some(reason))
            }
        };
        let known = r.known.entry().map(|i| KnownRef {
            entry: i + 1,
            rate: rate.unwrap_or_else(|| "always".into()),
            matched: matches!(r.known, Known::Failed(..)),
        });
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
            kernel_source: Some(r.kernel_source.clone()),
            crashes: r.crashes.iter().map(|c| c.title.clone()).collect(),
            known,
            started_from: Some(r.started_from.clone()),
            race: r.race(),
            rounds: Vec::new(),
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
            ..Default::default()
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
        crate::base::layout::write_atomic(path, text.as_bytes())
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

/// A record for tests: `why` as its reason, failures as `check-failed`.
#[cfg(test)]
pub(crate) fn test_record(kernel: &str, cell: &str, row: &str, status: Status) -> TestRecord {
    let target = Target::new(kernel, cell);
    let mut r = TestRecord::without_run(&format!("{}::{row}", target.label()), row, &target, status, "why");
    if status == Status::Fail {
        r.kind = Some("check-failed".into());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_malformed_files_are_errors() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("e.jsonl"), "\n").unwrap();
        assert!(Results::read(&d.path().join("e.jsonl")).unwrap_err().to_string().contains("no test record"));
        std::fs::write(d.path().join("bad.jsonl"), "{nope\n").unwrap();
        assert!(Results::read(&d.path().join("bad.jsonl")).unwrap_err().to_string().contains("line 1"));
    }
}
