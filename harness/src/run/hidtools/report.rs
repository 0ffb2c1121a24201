//! What a hid-tools run found, for people and machines: one line per
//! session as it ends, the test x target matrix (compiler- and
//! kernel-dependent rows flagged; with thousands of rows, only those that
//! did not pass everywhere), the failures, the time per module and per
//! target, and one results record per test.
use crate::judge::tap::Cell;
use crate::kernel::spec::Target;
use crate::results::matrix::Matrix;
use crate::results::records::{Status, TestRecord};
use crate::run::hidtools::outcome::ROW_PREFIX;
use crate::run::hidtools::session::SessionRun;
use crate::run::hidtools::TargetRun;
use std::collections::{BTreeMap, BTreeSet};

/// Above this many rows the printed matrix keeps only rows that failed or
/// were known somewhere (every row is in the results files).
const PRINT_ALL_ROWS: usize = 400;
/// Failures printed at most (every one is in the results files).
const PRINT_FAILURES: usize = 40;

/// Every row of every target as a results record, the run rows included.
pub fn records(runs: &[TargetRun]) -> Vec<TestRecord> {
    let mut out = Vec::new();
    for run in runs {
        for r in &run.judged.rows {
            let row = format!("{ROW_PREFIX}{}", r.id);
            let status = match &r.cell {
                Cell::Pass => Status::Pass,
                Cell::Known => Status::Known,
                Cell::Skip(_) => Status::Skip,
                Cell::Fail => Status::Fail,
            };
            let mut rec = record(run, &row, status, r.reason.as_deref().unwrap_or(""));
            if status == Status::Fail {
                let splat = r.reason.as_deref().is_some_and(|w| w.contains("kernel report during this test"));
                rec.kind = Some(if splat { "kernel-splat" } else { "check-failed" }.into());
            }
            rec.reason = r.reason.clone();
            rec.seconds = r.seconds;
            rec.run_dir = r.run_dir.clone();
            out.push(rec);
        }
        let status = if run.judged.run_ok { Status::Pass } else { Status::Fail };
        let why = if run.judged.run_ok { "" } else { "the run itself failed (see the failures)" };
        let mut rec = record(run, &run.run_row, status, why);
        rec.seconds = Some(run.collect_seconds + run.sessions.iter().flatten().map(|s| s.vm_seconds).sum::<f64>());
        if !run.judged.run_ok {
            rec.kind = Some("check-failed".into());
            rec.reason = run.judged.failures.iter().find(|f| f.starts_with(run.run_row.as_str())).cloned();
        }
        out.push(rec);
    }
    out
}

fn record(run: &TargetRun, row: &str, status: Status, reason: &str) -> TestRecord {
    let mut rec = TestRecord::without_run(&format!("{}::{row}", run.target.label()), row, &run.target, status, reason);
    rec.kernel_version = Some(run.kernel_version.clone());
    rec.kernel_source = Some(run.kernel_label.clone());
    rec.started_from = Some("cold boot".into());
    if reason.is_empty() {
        rec.reason = None;
    }
    rec
}

/// The test x target matrix of `runs` (only `rows`, if given).
pub fn matrix(targets: &[Target], runs: &[TargetRun], rows: Option<&BTreeSet<String>>) -> Matrix {
    let mut m = Matrix::new(targets.to_vec());
    for run in runs {
        let t = &run.target;
        for r in run.judged.rows.iter().filter(|r| rows.is_none_or(|rs| rs.contains(&r.id))) {
            let row = format!("{ROW_PREFIX}{}", r.id);
            match &r.cell {
                Cell::Pass => m.record_text(&row, t, "pass".into(), true),
                Cell::Known => m.record_known(&row, t),
                Cell::Skip(why) => m.record_skip(&row, t, why),
                Cell::Fail => m.record_text(&row, t, "FAIL".into(), false),
            }
        }
        m.record_text(&run.run_row, t, if run.judged.run_ok { "pass" } else { "FAIL" }.into(), run.judged.run_ok);
    }
    m
}

/// Print the matrix, the failures and notes, and the times; whether
/// everything passed (or failed as known).
pub fn print(targets: &[Target], runs: &[TargetRun]) -> bool {
    let full = matrix(targets, runs, None);
    let ids: BTreeSet<&String> = runs.iter().flat_map(|r| r.judged.rows.iter().map(|r| &r.id)).collect();
    if ids.len() <= PRINT_ALL_ROWS {
        println!("\n{}", full.render());
    } else {
        let shown: BTreeSet<String> = runs
            .iter()
            .flat_map(|r| r.judged.rows.iter())
            .filter(|r| matches!(r.cell, Cell::Fail | Cell::Known))
            .map(|r| r.id.clone())
            .collect();
        println!(
            "\n{} hid-tools tests; the rows that did not pass everywhere (all are in --json/--ktap/--junit/--html):",
            ids.len()
        );
        println!("{}", matrix(targets, runs, Some(&shown)).render());
        println!("all rows: {}", full.render().lines().rev().find(|l| l.contains(" passed")).unwrap_or_default());
    }
    let failures: Vec<&String> = runs.iter().flat_map(|r| &r.judged.failures).collect();
    for f in failures.iter().take(PRINT_FAILURES) {
        println!("{f}");
    }
    if failures.len() > PRINT_FAILURES {
        println!("… and {} more failures (all in the results files)", failures.len() - PRINT_FAILURES);
    }
    for n in runs.iter().flat_map(|r| &r.judged.notes) {
        println!("{n}");
    }
    print_times(runs);
    full.all_passed()
}

/// Tests and seconds per module and target (from the kernel-log markers),
/// and each target's VM time and tests collected vs run.
fn print_times(runs: &[TargetRun]) {
    for run in runs {
        let mut per_module: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
        for r in &run.judged.rows {
            let m = per_module.entry(r.id.split("::").next().unwrap_or_default()).or_default();
            m.0 += 1;
            m.1 += r.seconds.unwrap_or(0.0);
        }
        let sessions: Vec<&SessionRun> = run.sessions.iter().flatten().collect();
        let vm: f64 = run.collect_seconds + sessions.iter().map(|s| s.vm_seconds).sum::<f64>();
        let ran = run.judged.rows.iter().filter(|r| r.run_dir.is_some()).count();
        println!(
            "time: hid-tools on {}: {} tests collected, {ran} ran, in {} VMs: {:.0} s of VM time (collection {:.0} s)",
            run.target,
            run.collected.len(),
            sessions.len() + usize::from(run.collect_seconds > 0.0),
            vm,
            run.collect_seconds
        );
        for (module, (n, secs)) in per_module {
            println!("time:   {module}: {n} tests, {secs:.1} s in tests ({:.2} s per test)", secs / n.max(1) as f64);
        }
    }
}
