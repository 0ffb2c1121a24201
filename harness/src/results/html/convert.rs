//! From a results file's records to the report's view model.
//!
//! What a [`TestRecord`] carries today (status, kind, class, reason, time,
//! run directory, kernel version) is used directly. What it does not carry
//! yet comes through [`extras_of`], one accessor per field, each reading the
//! best source there is today (the run directory's files, the `--repeat`
//! tally line): once `TestRecord` has the field, its accessor returns it.
use super::model::{Cell, CellStatus, FailedCheck, Flag, FlagKind, Link, RaceHits, Report, Row, TargetInfo};
use crate::kernel::spec::Target;
use crate::results::matrix::Matrix;
use crate::results::records::{Results, Status, TestRecord};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// What the report says beyond the records.
#[derive(Clone, Debug, Default)]
pub struct Context<'a> {
    pub title: String,
    /// When the run happened (default: not shown).
    pub generated_at: Option<String>,
    /// Targets the run was meant to cover (`7.3-llvm`): those without a
    /// record are shown as missing.
    pub expected_targets: Vec<String>,
    /// An earlier run: rows whose outcome changed are flagged.
    pub baseline: Option<&'a Results>,
    /// The kernel the others are held against (`--baseline 6.12`): rows
    /// whose outcome on another kernel differs from its are flagged.
    pub baseline_kernel: Option<String>,
    /// The directory the HTML file is written to: links to run files are
    /// relative to it (absolute when not given, or nothing is shared).
    pub link_dir: Option<PathBuf>,
    pub notes: Vec<String>,
    /// The results hold every test planned on each target that reported
    /// (skips included), as `vm-test` and `test` write them: a test absent
    /// on such a target is not one of its tests (a cell's own self-test), not
    /// a lost result.
    pub complete: bool,
    /// What is wrong with the run besides its cells ([`super::Report::problems`]).
    pub problems: Vec<String>,
    /// Where the HTML report will be (for the Markdown summary).
    pub html_link: Option<String>,
}

/// What the report shows of a record that `TestRecord` does not hold yet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordExtras {
    /// Each round's outcome in a `--repeat` run, in order.
    pub rounds: Vec<CellStatus>,
    /// A race scenario's hits of its window.
    pub race: Option<RaceHits>,
    /// The checks that failed (inject expected vs seen).
    pub checks: Vec<FailedCheck>,
    /// The kernel's crash report headline.
    pub crash_title: Option<String>,
    /// `snapshot <key>`, `cold boot (…)`.
    pub started_from: Option<String>,
    /// The kernel source exactly (`linux-source-7.3 7.3.4-1~bpo13+1 sha256:…`).
    pub source: Option<String>,
    /// `tcg (no /dev/kvm)`.
    pub accel: Option<String>,
}

/// Each extra field from the record itself, where the record carries it
/// (results files written before a field existed fall back to what the
/// run directory says).
pub fn extras_of(r: &TestRecord) -> RecordExtras {
    let files = r.run_dir.as_deref().map(|d| RunFiles::read(d, r.status != Status::Pass)).unwrap_or_default();
    RecordExtras {
        rounds: r.rounds.iter().map(|s| cell_status(*s)).collect(),
        race: r.race.map(|c| RaceHits { hits: c.hits, rounds: c.rounds }),
        checks: files.checks,
        crash_title: r.crashes.first().cloned().or_else(|| crash_title_of(r)),
        started_from: r.started_from.clone().or(files.started_from),
        source: r.kernel_source.clone().or_else(|| r.kernel_version.as_ref().map(|v| format!("Linux {v}"))),
        accel: files.accel,
    }
}

/// A round's status as a cell shows it.
fn cell_status(s: Status) -> CellStatus {
    match s {
        Status::Pass => CellStatus::Pass,
        Status::Fail => CellStatus::Fail,
        Status::Known => CellStatus::Known,
        Status::Skip => CellStatus::Skip,
        Status::Error => CellStatus::Error,
        Status::Flaky => CellStatus::Flaky,
    }
}

/// For records without crash titles: the console line quoted in a
/// kernel-crash or kernel-splat reason.
fn crash_title_of(r: &TestRecord) -> Option<String> {
    let kind = r.kind.as_deref()?;
    if kind != "kernel-crash" && kind != "kernel-splat" {
        return None;
    }
    let reason = r.reason.as_deref()?;
    let after = reason.find("console line ").map(|i| &reason[i + "console line ".len()..]);
    let title = after.and_then(|a| a.split_once(": ").map(|(_, t)| t)).unwrap_or(reason);
    let title = title.split(" (then: ").next().unwrap_or(title);
    Some(title.lines().next().unwrap_or_default().trim().to_string())
}

/// `--repeat`'s tally line (`20 runs: 17 passed, 3 failed as a known kernel
/// bug says, 0 failed otherwise`, `run::repeat::Tally::describe`): passed,
/// known, failed.
fn tally_of(reason: &str) -> Option<(usize, usize, usize)> {
    let (_, rest) = reason.split_once(" runs: ")?;
    let mut n = rest.split(", ").map(|part| part.split_whitespace().next()?.parse::<usize>().ok());
    Some((n.next()??, n.next()??, n.next()??))
}

/// What a run directory holds that the record does not: the step log's
/// failed checks (`results.jsonl`), how the guest started and on what
/// accelerator (`report.json`).
#[derive(Default)]
struct RunFiles {
    checks: Vec<FailedCheck>,
    started_from: Option<String>,
    accel: Option<String>,
}

impl RunFiles {
    fn read(dir: &Path, with_checks: bool) -> RunFiles {
        let mut f = RunFiles::default();
        if let Ok(text) = std::fs::read_to_string(dir.join("report.json")) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                let s = |k: &str| v.get(k).and_then(|x| x.as_str()).filter(|x| !x.is_empty()).map(str::to_string);
                f.started_from = s("started_from");
                f.accel = s("accel").map(|a| match s("accel_reason") {
                    Some(why) => format!("{a} ({why})"),
                    None => a,
                });
            }
        }
        if with_checks {
            if let Ok(text) = std::fs::read_to_string(dir.join("results.jsonl")) {
                for line in text.lines() {
                    let Some(Ok(hidvm_proto::GuestMsg::Step(s))) = hidvm_proto::GuestMsg::from_line(line) else {
                        continue;
                    };
                    let step = format!("step {} ({})", s.index, s.what);
                    for c in s.checks.iter().filter(|c| !c.ok()) {
                        f.checks.push(FailedCheck {
                            step: step.clone(),
                            what: c.what.clone(),
                            expected: c.expected.clone(),
                            seen: c.seen.clone(),
                        });
                    }
                    if let Some(e) = &s.error {
                        f.checks.push(FailedCheck {
                            step: step.clone(),
                            what: "error".into(),
                            expected: "no error".into(),
                            seen: e.clone(),
                        });
                    }
                }
            }
        }
        f
    }
}

/// The report of `results`, with today's extras ([`extras_of`]).
pub fn from_results(results: &Results, ctx: &Context) -> Report {
    from_results_with(results, ctx, extras_of)
}

/// The report of `results`, each record's extras from `extras`.
pub fn from_results_with(results: &Results, ctx: &Context, extras: impl Fn(&TestRecord) -> RecordExtras) -> Report {
    // Columns: every target with a record, and every expected one, kernel-major.
    let mut targets: Vec<Target> = results.records.iter().map(TestRecord::target).collect();
    targets.extend(ctx.expected_targets.iter().map(|l| target_of_label(l)));
    let series = |t: &Target| crate::kernel::spec::parse_series(&t.kernel).unwrap_or((u32::MAX, u32::MAX));
    targets.sort_by(|a, b| series(a).cmp(&series(b)).then(a.kernel.cmp(&b.kernel)).then(a.cell.cmp(&b.cell)));
    targets.dedup();
    let present: Vec<Target> =
        targets.iter().filter(|t| results.records.iter().any(|r| &r.target() == *t)).cloned().collect();

    let mut infos: Vec<TargetInfo> = targets
        .iter()
        .map(|t| TargetInfo {
            label: t.label(),
            kernel: t.kernel.clone(),
            cell: t.cell.clone(),
            source: None,
            accel: None,
            missing: !present.contains(t),
        })
        .collect();

    let mut rows: Vec<Row> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut matrix = Matrix::new(present.clone());
    matrix.baseline = ctx.baseline_kernel.clone();
    for r in &results.records {
        let x = extras(r);
        let col = targets.iter().position(|t| *t == r.target()).expect("every record's target is a column");
        let info = &mut infos[col];
        if info.source.is_none() {
            info.source = x.source.clone();
        }
        if info.accel.is_none() {
            info.accel = x.accel.clone();
        }
        let i = *index.entry(r.row.clone()).or_insert_with(|| {
            rows.push(Row { name: r.row.clone(), cells: vec![Cell::missing(); targets.len()], flags: Vec::new() });
            rows.len() - 1
        });
        let chance = record_in_matrix(&mut matrix, r, &x);
        let mut cell = cell_of(r, x, ctx.link_dir.as_deref());
        if chance {
            cell.reason = Some(format!(
                "{} (a race that hits its window only sometimes: not counted as a difference)",
                cell.reason.unwrap_or_default()
            ));
        }
        rows[i].cells[col] = cell;
    }

    if ctx.complete {
        for row in &mut rows {
            for (cell, t) in row.cells.iter_mut().zip(&infos) {
                if cell.status == CellStatus::Missing && !t.missing {
                    let mut c = Cell::new(CellStatus::NotHere, "n/a");
                    c.reason = Some("not a test of this target (another cell's own test)".into());
                    *cell = c;
                }
            }
        }
    }

    flag_rows(&mut rows, &matrix, results, ctx, &present);

    Report {
        title: if ctx.title.is_empty() { "hidvm report".into() } else { ctx.title.clone() },
        generated_by: format!("hidvm {}", results.hidvm),
        generated_at: ctx.generated_at.clone(),
        targets: infos,
        rows,
        notes: ctx.notes.clone(),
        problems: ctx.problems.clone(),
        html_link: ctx.html_link.clone(),
    }
}

/// Each row's flags: where compilers, kernels or the baseline kernel
/// disagree ([`Matrix::differences`]), and where an earlier run differs.
fn flag_rows(rows: &mut [Row], matrix: &Matrix, results: &Results, ctx: &Context, present: &[Target]) {
    for row in rows.iter_mut() {
        let d = matrix.differences(&row.name);
        if !d.between_compilers.is_empty() {
            row.flags.push(Flag { kind: FlagKind::CompilerDependent, on: d.between_compilers });
        }
        if !d.between_kernels.is_empty() {
            row.flags.push(Flag { kind: FlagKind::KernelDependent, on: d.between_kernels });
        }
        if !d.from_baseline.is_empty() {
            row.flags.push(Flag { kind: FlagKind::DiffersFromBaseline, on: d.from_baseline });
        }
        if let Some(base) = ctx.baseline {
            let changed: Vec<String> = present
                .iter()
                .filter(|t| {
                    let now = results.records.iter().find(|r| r.row == row.name && r.target() == **t);
                    let then = base.records.iter().find(|r| r.row == row.name && r.target() == **t);
                    match (now, then) {
                        (Some(a), Some(b)) => outcome_class(a.status) != outcome_class(b.status),
                        _ => false,
                    }
                })
                .map(Target::label)
                .collect();
            if !changed.is_empty() {
                row.flags.push(Flag { kind: FlagKind::DiffersFromBaseline, on: changed });
            }
        }
    }
}

/// What the baseline comparison compares: a skip compares with nothing.
fn outcome_class(s: Status) -> Option<u8> {
    match s {
        Status::Pass => Some(0),
        Status::Known => Some(1),
        Status::Fail | Status::Error | Status::Flaky => Some(2),
        Status::Skip => None,
    }
}

/// `7.3-llvm-debug` -> kernel 7.3, cell llvm-debug (kernel names have no dash).
fn target_of_label(label: &str) -> Target {
    match label.split_once('-') {
        Some((k, c)) => Target::new(k, c),
        None => Target::new(label, ""),
    }
}

/// Feed the one definition of "differs" ([`Matrix::differences`]); returns
/// whether the cell was chance (a race that hit its known bug in some
/// rounds and passed in the others), which takes no side.
fn record_in_matrix(m: &mut Matrix, r: &TestRecord, x: &RecordExtras) -> bool {
    let t = r.target();
    // A known bug that shows only sometimes (a measured rate, or known in
    // some rounds and passing in others) says nothing about a compiler.
    let sometimes = r.known.as_ref().is_some_and(|k| k.rate != "always");
    let chance = r.status == Status::Known
        && (sometimes || (x.rounds.contains(&CellStatus::Known) && x.rounds.contains(&CellStatus::Pass)));
    match r.status {
        Status::Pass => m.record_text(&r.row, &t, "pass".into(), true),
        Status::Known if chance => m.record_known_by_chance(&r.row, &t, "KNOWN".into()),
        Status::Known => m.record_known_text(&r.row, &t, "KNOWN".into()),
        Status::Skip => m.record_skip(&r.row, &t, r.reason.as_deref().unwrap_or_default()),
        Status::Fail | Status::Error | Status::Flaky => m.record_text(&r.row, &t, "FAIL".into(), false),
    }
    m.note_record(r);
    chance
}

fn cell_of(r: &TestRecord, x: RecordExtras, link_dir: Option<&Path>) -> Cell {
    let token = |word: &str| match (&r.kind, &r.class) {
        (Some(k), Some(c)) => format!("{word} ({k}: {c})"),
        (Some(k), None) => format!("{word} ({k})"),
        _ => word.to_string(),
    };
    let tally = r.reason.as_deref().and_then(tally_of).or_else(|| {
        (!x.rounds.is_empty()).then(|| {
            let n = |s| x.rounds.iter().filter(|r| **r == s).count();
            (n(CellStatus::Pass), n(CellStatus::Known), x.rounds.len() - n(CellStatus::Pass) - n(CellStatus::Known))
        })
    });
    let (status, label) = match r.status {
        Status::Pass => (CellStatus::Pass, "pass".to_string()),
        Status::Fail => (CellStatus::Fail, token("FAIL")),
        Status::Known => match tally {
            Some((p, k, f)) if p + f > 0 => (CellStatus::Known, format!("KNOWN {k}/{}", p + k + f)),
            _ => (CellStatus::Known, token("KNOWN")),
        },
        Status::Skip => (CellStatus::Skip, "skip".to_string()),
        Status::Error => (CellStatus::Error, "ERROR".to_string()),
        Status::Flaky => match tally {
            Some((p, k, f)) => (CellStatus::Flaky, format!("FLAKY {f}/{} failed", p + k + f)),
            None => (CellStatus::Flaky, "FLAKY".to_string()),
        },
    };
    let mut cell = Cell::new(status, label);
    cell.reason = r.reason.clone();
    cell.seconds = r.seconds;
    cell.links = r.run_dir.as_deref().map(|d| links_of(d, link_dir)).unwrap_or_default();
    cell.checks = x.checks;
    cell.race = x.race;
    cell.rounds = x.rounds;
    cell.crash_title = x.crash_title;
    cell.started_from = x.started_from;
    cell
}

/// The run's files: when its directory is here, those that exist; when it
/// is not (results merged from CI jobs), the two every run writes.
fn links_of(run_dir: &Path, link_dir: Option<&Path>) -> Vec<Link> {
    let here = run_dir.is_dir();
    [
        ("console", "console.log", true),
        ("report", "report.json", true),
        ("steps", "results.jsonl", false),
        ("trace", "trace.txt", false),
    ]
    .into_iter()
    .filter(|(_, file, always)| if here { run_dir.join(file).is_file() } else { *always })
    .map(|(label, file, _)| Link { label: label.into(), href: href_of(&run_dir.join(file), link_dir) })
    .collect()
}

/// A link to a file: relative to the report's directory when they share
/// more than `/`, percent-encoded.
fn href_of(file: &Path, link_dir: Option<&Path>) -> String {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let rel = link_dir.and_then(|d| std::path::absolute(d).ok()).and_then(|d| relative(&file, &d));
    let path = rel.unwrap_or(file);
    let mut s = String::new();
    for (i, c) in path.components().enumerate() {
        match c {
            Component::RootDir => s.push('/'),
            Component::ParentDir => s.push_str("../"),
            Component::CurDir => s.push_str("./"),
            Component::Normal(n) => {
                let n = n.to_string_lossy();
                // A first segment with a colon would read as a URL scheme.
                if i == 0 && n.contains(':') {
                    s.push_str("./");
                }
                s.push_str(&percent_encode(&n));
                s.push('/');
            }
            Component::Prefix(_) => {}
        }
    }
    if s.len() > 1 && s.ends_with('/') {
        s.pop();
    }
    s
}

/// `file` from `dir`, both absolute, when they share more than the root.
fn relative(file: &Path, dir: &Path) -> Option<PathBuf> {
    let f: Vec<Component> = file.components().collect();
    let d: Vec<Component> = dir.components().collect();
    let common = f.iter().zip(&d).take_while(|(a, b)| a == b).count();
    if common < 2 {
        return None;
    }
    let mut out = PathBuf::new();
    for _ in common..d.len() {
        out.push("..");
    }
    for c in &f[common..] {
        out.push(c.as_os_str());
    }
    Some(out)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'@' | b',' | b'=') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The time now, `2026-12-07 13:35 UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repeat_tally_line_parses() {
        // As run::repeat::Tally::describe writes it (results may not import run).
        let line = "3 runs: 2 passed, 1 failed as a known kernel bug says, 0 failed otherwise";
        assert_eq!(tally_of(line), Some((2, 1, 0)));
        assert_eq!(tally_of("check-failed: expected 1"), None);
    }

    #[test]
    fn crash_titles_come_from_the_quoted_console_line() {
        let target = Target::new("7.3", "llvm");
        let mut r = TestRecord::without_run("7.3-llvm::race_x", "race_x", &target, Status::Known,
            "bug during step 4 (race), console line 812: BUG: kernel NULL pointer dereference, address: 0000000000000010 (then: oops)");
        r.kind = Some("kernel-crash".into());
        assert_eq!(
            crash_title_of(&r).as_deref(),
            Some("BUG: kernel NULL pointer dereference, address: 0000000000000010")
        );
        r.kind = Some("check-failed".into());
        assert_eq!(crash_title_of(&r), None);
    }

    #[test]
    fn links_are_relative_to_the_report_and_encoded() {
        let file = Path::new("/w/target/hidvm/runs/6.12-gcc/a b#1/console.log");
        assert_eq!(href_of(file, Some(Path::new("/w/target/hidvm"))), "runs/6.12-gcc/a%20b%231/console.log");
        assert_eq!(href_of(file, Some(Path::new("/w/out"))), "../target/hidvm/runs/6.12-gcc/a%20b%231/console.log");
        assert_eq!(href_of(file, Some(Path::new("/elsewhere"))), "/w/target/hidvm/runs/6.12-gcc/a%20b%231/console.log");
        assert_eq!(href_of(Path::new("/w/x:y/f"), Some(Path::new("/w"))), "./x%3Ay/f");
    }

    #[test]
    fn utc_now_is_a_date() {
        let now = utc_now();
        assert!(now.ends_with(" UTC") && now.len() == "2026-12-07 13:35 UTC".len(), "{now}");
    }
}
