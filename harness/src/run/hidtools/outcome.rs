//! A target's hid-tools sessions judged into one row per test
//! (`hidtools::<node id>`) and one `hidtools::(run)` row: `judge::tap`'s
//! rules per session (plan, exit status, skips a known entry lists, known
//! failures by text), plus what only the whole target can say: every
//! collected test got exactly one result, the HID-BPF classes ran, and a
//! kernel report or taint during a test fails that test.
use crate::judge::console;
use crate::judge::pytest::short_id;
use crate::judge::tap::{self, Cell, KnownResults, KtapResult, Outcome, TapRun};
use crate::run::hidtools::session::{health_problems, SessionRun};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The prefix of every row.
pub const ROW_PREFIX: &str = "hidtools::";
/// The run row of a target's run (a nextest trial's is
/// `hidtools::<selection>::(run)`).
pub const RUN_ROW: &str = "hidtools::(run)";

/// One test's row.
#[derive(Clone, Debug)]
pub struct TestRow {
    /// Short node id: `test_mouse.py::TestSimpleMouse::test_creation`.
    pub id: String,
    pub cell: Cell,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    pub seconds: Option<f64>,
    pub run_dir: Option<PathBuf>,
}

/// Everything a target's sessions said.
#[derive(Debug, Default)]
pub struct Judged {
    pub rows: Vec<TestRow>,
    pub run_ok: bool,
    /// Why rows (or the run) failed.
    pub failures: Vec<String>,
    /// Known results that did not happen, programs that did not compile.
    pub notes: Vec<String>,
}

/// What the judging needs about the target.
pub struct Context<'a> {
    pub known: &'a KnownResults,
    pub kernel_label: &'a str,
    pub cell: &'a str,
    /// The selected node ids the collection listed (short), if collected.
    pub expected: Option<&'a [String]>,
    /// HID-BPF classes in the selection: each must run a test.
    pub hid_bpf_classes: &'a [&'a str],
    /// The run's own row ([`RUN_ROW`], or a trial's).
    pub run_row: &'a str,
}

/// Judge every session of one target.
pub fn judge(ctx: &Context<'_>, sessions: &[Result<SessionRun, String>], mut run_problems: Vec<String>) -> Judged {
    let mut j = Judged::default();
    for s in sessions {
        match s {
            Ok(s) => judge_session(ctx, s, &mut j, &mut run_problems),
            Err(e) => run_problems.push(format!("a session could not run: {e}")),
        }
    }
    run_problems.extend(completeness(ctx, &mut j));
    j.run_ok = run_problems.is_empty();
    if !j.run_ok {
        j.failures.push(format!("{} on {} ({}): {}", ctx.run_row, ctx.kernel_label, ctx.cell, run_problems.join("; ")));
    }
    j
}

/// A kernel report or a taint change while a test ran fails that test;
/// reports outside any test go to the run.
fn attribute(s: &SessionRun, results: &mut [KtapResult]) -> Vec<String> {
    let mut outside = Vec::new();
    let mut fail = |id: &str, why: String| match results.iter_mut().find(|r| r.name == short_id(id)) {
        Some(r) => {
            r.outcome = match &r.outcome {
                Outcome::Fail(w) => Outcome::Fail(format!("{w}; {why}")),
                _ => Outcome::Fail(why),
            }
        }
        None => outside.push(format!("{why} (in {id}, which has no result)")),
    };
    let mut run_splats = Vec::new();
    for sp in &s.splats {
        match console::pytest_test(sp) {
            Some(id) => fail(id, format!("kernel report during this test: {} ({})", sp.line.trim(), sp.class)),
            None => run_splats.push(format!("{} ({}, {})", sp.line.trim(), sp.class, sp.during)),
        }
    }
    let mut prev = s.health.as_ref().and_then(|h| h.taint_before.value().ok().copied()).unwrap_or(0);
    for (id, t) in &s.read.taint_after {
        if *t != prev {
            fail(id, format!("the kernel's taint became {t} ({}) during this test", console::taint_letters(*t)));
            prev = *t;
        }
    }
    outside.extend(run_splats.into_iter().map(|l| format!("kernel report outside any test: {l}")));
    outside
}

fn judge_session(ctx: &Context<'_>, s: &SessionRun, j: &mut Judged, run_problems: &mut Vec<String>) {
    let mut results = s.read.results.clone();
    let mut problems = s.problems.clone();
    problems.extend(s.read.problems.iter().cloned());
    problems.extend(attribute(s, &mut results));
    problems.extend(health_problems(s.health.as_ref()));
    let run = TapRun {
        program: &s.spec.label,
        plan: s.read.plan,
        results: &results,
        exit_ok: s.exit_ok,
        problems,
        splats: vec![],
    };
    let judged = tap::judge(&run, ctx.known, ctx.kernel_label, ctx.cell, |n| format!("{ROW_PREFIX}{n}"));
    let (test_rows, run_row) = judged.rows.split_at(judged.rows.len() - 1);
    for (r, (_, cell)) in results.iter().zip(test_rows) {
        let reason = match &r.outcome {
            Outcome::Fail(w) | Outcome::Skip(w) | Outcome::XFail(w) => Some(w.clone()),
            Outcome::Pass => None,
        };
        j.rows.push(TestRow {
            id: r.name.clone(),
            cell: cell.clone(),
            reason,
            seconds: s.seconds.get(&r.name).copied(),
            run_dir: Some(s.run_dir.clone()),
        });
    }
    let run_failed = run_row.first().is_some_and(|(_, c)| *c != Cell::Pass);
    for f in judged.failures {
        // The run's own failure is reported once, in the target's run row.
        if run_failed && f.starts_with(&format!("{} on ", s.spec.label)) {
            run_problems.push(format!("{} (output: {}/output.txt)", f, s.run_dir.display()));
        } else {
            j.failures.push(format!("{f} (output: {}/output.txt)", s.run_dir.display()));
        }
    }
    j.notes.extend(judged.notes);
}

/// Every collected test exactly once, none that was not collected, and
/// each HID-BPF class ran (did not only skip).
fn completeness(ctx: &Context<'_>, j: &mut Judged) -> Vec<String> {
    let mut p = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &j.rows {
        *seen.entry(r.id.as_str()).or_default() += 1;
    }
    let twice: Vec<String> = seen.iter().filter(|(_, n)| **n > 1).map(|(id, n)| format!("{id} ({n} times)")).collect();
    if !twice.is_empty() {
        p.push(format!("{} test(s) reported more than once: {}", twice.len(), twice.join(", ")));
    }
    let mut missing = Vec::new();
    if let Some(expected) = ctx.expected {
        let extra: Vec<&str> = seen.keys().filter(|id| !expected.iter().any(|e| e == *id)).copied().collect();
        if !extra.is_empty() {
            p.push(format!("{} result(s) for tests the collection did not list: {}", extra.len(), extra.join(", ")));
        }
        missing = expected.iter().filter(|e| !seen.contains_key(e.as_str())).cloned().collect();
    }
    for class in ctx.hid_bpf_classes {
        let prefix = format!("{class}::");
        let ran = j.rows.iter().any(|r| r.id.starts_with(&prefix) && !matches!(r.cell, Cell::Skip(_)));
        if !ran {
            p.push(format!("the HID-BPF class {class} ran no test (every one skipped, or none came)"));
        }
    }
    if !missing.is_empty() {
        p.push(format!(
            "{} of the {} collected tests got no result (first: {})",
            missing.len(),
            ctx.expected.map_or(0, <[String]>::len),
            missing[0]
        ));
        for id in missing {
            j.failures
                .push(format!("{ROW_PREFIX}{id} on {} ({}): collected, but never ran", ctx.kernel_label, ctx.cell));
            j.rows.push(TestRow {
                id,
                cell: Cell::Fail,
                reason: Some("collected, but never ran".into()),
                seconds: None,
                run_dir: None,
            });
        }
    }
    p
}
