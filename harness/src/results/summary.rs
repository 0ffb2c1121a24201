//! `hidvm summary`: the results files of many runs or CI jobs merged into
//! one scenario x target matrix, with compiler- and kernel-dependent rows
//! flagged.
use crate::base::error::{Error, Result};
use crate::kernel::spec::Target;
use crate::results::matrix::Matrix;
use crate::results::records::{Results, Status, TestRecord};

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

/// A test the run was planned to have: its name, row and target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub test: String,
    pub row: String,
    pub target: Target,
}

/// What the merged files lack against the plan: per target, the planned
/// tests without a record (a job that died before writing, a test whose
/// run errored before its record). Nothing may silently disappear.
pub fn missing(results: &Results, planned: &[Planned]) -> Vec<Planned> {
    planned.iter().filter(|p| !results.records.iter().any(|r| r.test == p.test)).cloned().collect()
}

/// One line per target short of tests: "7.3-llvm: no results at all (77
/// planned)" or "6.12-gcc: 3 of 77 planned tests have no result (a, b, c)".
pub fn describe_missing(planned: &[Planned], missing: &[Planned]) -> Vec<String> {
    // One line per target, in the order the targets first lack a test
    // (the plan interleaves targets: a sorted-only dedup would repeat them).
    let mut targets: Vec<&Target> = Vec::new();
    for m in missing {
        if !targets.contains(&&m.target) {
            targets.push(&m.target);
        }
    }
    targets
        .into_iter()
        .map(|t| {
            let of_target =
                |v: &[Planned]| v.iter().filter(|p| &p.target == t).map(|p| p.row.clone()).collect::<Vec<_>>();
            let (want, lack) = (of_target(planned), of_target(missing));
            if want.len() == lack.len() {
                format!("{}: no results at all ({} tests planned): its job did not run or died", t.label(), want.len())
            } else {
                let shown: Vec<&str> = lack.iter().take(5).map(String::as_str).collect();
                let more = if lack.len() > 5 { format!(" and {} more", lack.len() - 5) } else { String::new() };
                format!(
                    "{}: {} of {} planned tests have no result ({}{more})",
                    t.label(),
                    lack.len(),
                    want.len(),
                    shown.join(", ")
                )
            }
        })
        .collect()
}

/// Known races pooled over every record: an entry whose bug showed far
/// more often than its recorded rate, across jobs and rounds, is a change
/// (entry number, why). A record's `rounds` count each round; a record
/// without them is one run.
pub fn known_changes(results: &Results) -> Vec<(usize, String)> {
    let mut pooled: std::collections::BTreeMap<usize, (String, u32, u32)> = Default::default();
    for r in &results.records {
        let Some(k) = &r.known else { continue };
        let (hits, runs) = if r.rounds.is_empty() {
            (u32::from(r.status == Status::Known), 1)
        } else {
            (r.rounds.iter().filter(|s| **s == Status::Known).count() as u32, r.rounds.len() as u32)
        };
        let e = pooled.entry(k.entry).or_insert((k.rate.clone(), 0, 0));
        e.1 += hits;
        e.2 += runs;
    }
    pooled
        .into_iter()
        .filter_map(|(entry, (rate, hits, runs))| {
            let p = crate::judge::known::far_more_often(crate::judge::known::Rate::parse(&rate).ok()?, hits, runs)?;
            Some((
                entry,
                format!(
                    "known kernel bug {entry} ended as recorded in {hits} of {runs} runs where it applies; its recorded rate is {rate} (the chance of {hits} or more is {p:.1e}): far more often than recorded, a change, not KNOWN"
                ),
            ))
        })
        .collect()
}

/// The scenario x target matrix of these records, targets kernel-major;
/// `missing` planned tests show as MISSING (a failure), and records of a
/// known bug that changed ([`known_changes`]) as CHANGED.
pub fn matrix_with(results: &Results, missing: &[Planned], changed: &[usize], baseline: Option<&str>) -> Matrix {
    let mut m = matrix(results);
    m.baseline = baseline.map(str::to_string);
    for p in missing {
        if !m.targets.contains(&p.target) {
            m.targets.push(p.target.clone());
        }
        m.record_text(&p.row, &p.target, "MISSING".into(), false);
    }
    for r in results.records.iter().filter(|r| r.status == Status::Known) {
        if r.known.as_ref().is_some_and(|k| changed.contains(&k.entry)) {
            m.record_text(&r.row, &r.target(), "CHANGED (known bug far more often)".into(), false);
        }
    }
    m
}

/// The scenario x target matrix of these records, targets kernel-major.
pub fn matrix(results: &Results) -> Matrix {
    let mut targets: Vec<Target> = results.records.iter().map(TestRecord::target).collect();
    targets.sort_by(|a, b| {
        let series = |t: &Target| crate::kernel::spec::parse_series(&t.kernel).unwrap_or((u32::MAX, u32::MAX));
        series(a).cmp(&series(b)).then(a.kernel.cmp(&b.kernel)).then(a.cell.cmp(&b.cell))
    });
    targets.dedup();
    let mut m = Matrix::new(targets);
    for r in &results.records {
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
        m.note_record(r);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::records::test_record;

    /// What the CI summary job does: per-job files merged into one matrix;
    /// a row that fails on LLVM and passes on gcc must be flagged.
    #[test]
    fn merged_job_results_flag_a_compiler_dependent_row() {
        let d = tempfile::tempdir().unwrap();
        let gcc = Results::new(vec![
            test_record("6.12", "gcc", "mouse_invert_y_close_link", Status::Pass),
            test_record("6.12", "gcc", "keyboard_swallow_key", Status::Pass),
        ]);
        gcc.write_json(&d.path().join("gcc.json")).unwrap();
        // The llvm job wrote JSON lines (nextest, HIDVM_RESULTS_JSONL).
        let llvm = [
            test_record("6.12", "llvm", "mouse_invert_y_close_link", Status::Fail),
            test_record("6.12", "llvm", "keyboard_swallow_key", Status::Pass),
        ];
        let lines: String = llvm.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        std::fs::write(d.path().join("llvm.jsonl"), lines).unwrap();

        let merged = merge(vec![
            Results::read(&d.path().join("gcc.json")).unwrap(),
            Results::read(&d.path().join("llvm.jsonl")).unwrap(),
        ])
        .unwrap();
        let m = matrix(&merged);
        assert_eq!(m.compiler_dependent(), vec!["mouse_invert_y_close_link"]);
        assert!(m.kernel_dependent().is_empty());
        let md = m.render_markdown();
        assert!(md.contains("| mouse_invert_y_close_link | pass | FAIL (check-failed) | compiler-dependent"), "{md}");
        assert!(!m.all_passed());
    }

    #[test]
    fn a_row_failing_on_one_kernel_is_kernel_dependent_in_the_merge() {
        let merged = merge(vec![
            Results::new(vec![
                test_record("6.12", "gcc", "x", Status::Pass),
                test_record("6.12", "llvm", "x", Status::Pass),
            ]),
            Results::new(vec![
                test_record("7.3", "gcc", "x", Status::Fail),
                test_record("7.3", "llvm", "x", Status::Fail),
            ]),
        ])
        .unwrap();
        let m = matrix(&merged);
        assert!(m.compiler_dependent().is_empty());
        assert_eq!(m.kernel_dependent(), vec!["x"]);
        assert_eq!(
            m.targets.iter().map(|t| t.label()).collect::<Vec<_>>(),
            ["6.12-gcc", "6.12-llvm", "7.3-gcc", "7.3-llvm"]
        );
    }

    #[test]
    fn a_target_whose_job_died_or_a_missing_record_fails_the_summary_by_name() {
        let planned: Vec<Planned> = ["6.12-gcc", "7.3-llvm"]
            .iter()
            .flat_map(|t| {
                let (k, c) = t.split_once('-').unwrap();
                ["x", "y"].map(|row| Planned {
                    test: format!("{t}::{row}"),
                    row: row.into(),
                    target: Target::new(k, c),
                })
            })
            .collect();
        // 6.12-gcc wrote one of its two records; 7.3-llvm's job wrote nothing.
        let results = Results::new(vec![test_record("6.12", "gcc", "x", Status::Pass)]);
        let lack = missing(&results, &planned);
        assert_eq!(lack.len(), 3);
        let lines = describe_missing(&planned, &lack);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("6.12-gcc: 1 of 2 planned tests have no result (y)"), "{lines:?}");
        assert!(lines[1].starts_with("7.3-llvm: no results at all (2 tests planned)"), "{lines:?}");
        let m = matrix_with(&results, &lack, &[], None);
        assert!(!m.all_passed(), "a missing record is a failure");
        assert!(m.render().contains("MISSING"));
        // Without a plan, the same records pass: the plan is what catches it.
        assert!(matrix(&results).all_passed());
        // The plan as `plan::tests` gives it, targets interleaved row by row:
        // still one line per target.
        let mut interleaved = planned.clone();
        interleaved.sort_by(|a, b| a.row.cmp(&b.row));
        let lack = missing(&results, &interleaved);
        assert_eq!(describe_missing(&interleaved, &lack).len(), 2, "{:?}", describe_missing(&interleaved, &lack));
    }

    #[test]
    fn a_known_race_hit_everywhere_is_a_change_in_the_merged_summary() {
        let known = |kernel: &str, cell: &str, status| {
            let mut r = test_record(kernel, cell, "race_x", status);
            r.known = Some(crate::results::records::KnownRef { entry: 5, rate: "1 in 20".into(), matched: true });
            r
        };
        let one = Results::new(vec![known("6.12", "gcc", Status::Known), known("6.12", "llvm", Status::Pass)]);
        assert!(known_changes(&one).is_empty(), "one hit in two runs is luck at 1 in 20");
        let all = Results::new(
            ["gcc", "llvm"].iter().flat_map(|c| ["6.12", "7.3"].map(|k| known(k, c, Status::Known))).collect(),
        );
        let changes = known_changes(&all);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(changes[0].1.contains("4 of 4 runs"), "{changes:?}");
        assert!(!matrix_with(&all, &[], &[5], None).all_passed());
    }

    /// `hidvm summary --baseline 6.12`: records know their kernel and
    /// source, so merged files are held against the baseline too.
    #[test]
    fn merged_results_are_held_against_a_baseline_kernel() {
        let mut rows = Vec::new();
        for k in ["6.12", "6.12+fix"] {
            let mut race =
                test_record(k, "gcc", "race_attach_vs_destroy", if k == "6.12" { Status::Known } else { Status::Pass });
            race.kernel_source = Some(format!("{k}-label"));
            rows.push(race);
            rows.push(test_record(k, "gcc", "mouse", Status::Pass));
            let mut srcu = test_record(k, "gcc", "race_srcu", if k == "6.12" { Status::Pass } else { Status::Known });
            srcu.known = Some(crate::results::records::KnownRef { entry: 6, rate: "2 in 80".into(), matched: true });
            rows.push(srcu);
        }
        let m = matrix_with(&Results::new(rows), &[], &[], Some("6.12"));
        assert_eq!(m.differs_from_baseline(), ["race_attach_vs_destroy"], "{}", m.render());
        assert!(m.render().contains("kernel 6.12+fix: 6.12+fix-label"), "{}", m.render());
    }

    #[test]
    fn conflicting_duplicates_are_errors() {
        let a = Results::new(vec![test_record("6.12", "gcc", "x", Status::Pass)]);
        let b = Results::new(vec![test_record("6.12", "gcc", "x", Status::Fail)]);
        assert!(merge(vec![a, b]).unwrap_err().to_string().contains("in two results files"));
    }
}
