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
    fn conflicting_duplicates_are_errors() {
        let a = Results::new(vec![test_record("6.12", "gcc", "x", Status::Pass)]);
        let b = Results::new(vec![test_record("6.12", "gcc", "x", Status::Fail)]);
        assert!(merge(vec![a, b]).unwrap_err().to_string().contains("in two results files"));
    }
}
