//! The HTML page: inline CSS and SVG, no script, nothing fetched.
use super::charts;
use super::model::{esc, Cell, CellStatus, Group, Report, Row};
use std::collections::BTreeMap;
use std::fmt::Write;

const CSS: &str = r#"
:root { --pass:#17692e; --pass-bg:#e3f3e6; --fail:#a4161a; --fail-bg:#fbd9d6; --known:#6f5200; --known-bg:#fff0b3;
  --skip:#5b6470; --skip-bg:#eef0f2; --error:#6a1b9a; --error-bg:#efdcf7; --flaky:#8f4400; --flaky-bg:#ffe1bd;
  --missing:#666; --missing-bg:#f4f4f4; --line:#d8dce0; --muted:#5b6470; }
* { box-sizing: border-box; }
body { font: 14px/1.4 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #1d2125; margin: 0 24px 40px; }
h1 { font-size: 22px; margin: 18px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 2px solid var(--line); padding-bottom: 3px; }
h3 { font-size: 15px; margin: 16px 0 6px; } code, pre, .mono { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 12.5px; }
a { color: #0b57b0; } .muted { color: var(--muted); }
.verdict { display: inline-block; padding: 1px 10px; border-radius: 12px; font-size: 15px; vertical-align: 2px; margin-left: 8px; }
.headline { font-size: 16px; font-weight: bold; margin: 6px 0 8px; }
.chips span { display: inline-block; margin: 0 6px 4px 0; padding: 1px 8px; border-radius: 10px; border: 1px solid var(--line); }
table { border-collapse: collapse; }
table.targets td, table.targets th { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
table.targets tr.missing td { background: var(--missing-bg); color: var(--missing); font-style: italic; }
table.m { width: 100%; table-layout: fixed; margin-bottom: 4px; }
table.m th { text-align: left; font-weight: bold; padding: 4px 6px; border-bottom: 2px solid var(--line); background: #f7f8fa; }
table.m td { border-bottom: 1px solid var(--line); padding: 3px 6px; vertical-align: top; overflow-wrap: anywhere; }
table.m td.name { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 12.5px; }
td.c { border-left: 2px solid #fff; }
.c .lbl { font-weight: bold; text-decoration: none; color: inherit; }
.c .sym { display: inline-block; width: 1.2em; text-align: center; font-weight: bold; }
.c .secs { color: var(--muted); font-size: 12px; margin-left: 4px; }
.c .lk { font-size: 11.5px; } .c .lk a { margin-right: 6px; }
.pass { background: var(--pass-bg); color: var(--pass); } .fail { background: var(--fail-bg); color: var(--fail); }
.known { background: var(--known-bg); color: var(--known); } .skip { background: var(--skip-bg); color: var(--skip); }
.error { background: var(--error-bg); color: var(--error); } .flaky { background: var(--flaky-bg); color: var(--flaky); }
.missing { background: repeating-linear-gradient(135deg, #f4f4f4 0 6px, #e9e9e9 6px 12px); color: var(--missing); }
.flag { display: inline-block; white-space: nowrap; font-size: 12px; padding: 0 6px; margin: 1px 2px 1px 0; border-radius: 8px; border: 1px solid #8a8f96; background: #fff; color: #1d2125; }
.flag.compiler { border-color: #a4161a; color: #a4161a; font-weight: bold; } .flag.kernel { border-color: #0b57b0; color: #0b57b0; }
details > summary { cursor: pointer; } details.group > summary { font-size: 15px; font-weight: bold; margin: 16px 0 6px; }
.legend { font-size: 13px; } .legend span { margin-right: 10px; white-space: nowrap; }
.legend .sym { display: inline-block; width: 1.5em; text-align: center; border-radius: 3px; font-weight: bold; }
.detail { border: 1px solid var(--line); border-left-width: 5px; border-radius: 4px; margin: 8px 0; padding: 4px 10px 8px; }
.detail.fail { border-left-color: var(--fail); } .detail.error { border-left-color: var(--error); }
.detail.flaky { border-left-color: var(--flaky); } .detail.known { border-left-color: var(--known); }
.detail.missing { border-left-color: var(--missing); }
.detail, .detail.fail, .detail.known, .detail.error, .detail.flaky, .detail.missing { background: #fff; color: #1d2125; }
.detail > summary { font-weight: bold; padding: 3px 0; }
.detail dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0; }
.detail dt { color: var(--muted); } .detail dd { margin: 0; overflow-wrap: anywhere; white-space: pre-wrap; }
table.diff { margin: 4px 0 8px; } table.diff th { text-align: right; padding: 1px 8px 1px 0; color: var(--muted); font-weight: normal; }
table.diff td { padding: 1px 0; }
.bytes span { display: inline-block; padding: 0 2px; margin-right: 2px; border-radius: 2px; }
.bytes span.d { background: #a4161a; color: #fff; font-weight: bold; text-decoration: underline; }
.bytes span.x { background: #6a1b9a; color: #fff; font-weight: bold; text-decoration: underline; }
.charts { display: flex; flex-wrap: wrap; gap: 18px; }
svg text { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
table.race td, table.race th { padding: 3px 10px 3px 0; text-align: left; }
table.race td.name { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 12.5px; }
ul.notes li { margin-bottom: 3px; }
@media print { details > summary { list-style: none; } }
"#;

/// One self-contained HTML page of the report.
pub fn render_html(report: &Report) -> String {
    let mut h = String::new();
    let title = esc(&report.title);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
    );

    h.push_str(&header(report, &title));
    h.push_str(&matrix_section(report));
    h.push_str(&details_section(report));
    if let Some(svg) = charts::race_chart(report) {
        let _ = writeln!(
            h,
            "<section id=\"races\">\n<h2>Race scenarios: how often the window was hit</h2>\n{svg}</section>"
        );
    }
    if let Some(map) = charts::repeat_heat_map(report) {
        let _ = writeln!(h, "<section id=\"repeat\">\n<h2>Rounds (--repeat)</h2>\n{map}</section>");
    }
    if let Some(hist) = charts::duration_histograms(report) {
        let _ = writeln!(h, "<section id=\"durations\">\n<h2>Test durations</h2>\n{hist}</section>");
    }
    h.push_str(&notes_section(report));
    h.push_str("</body>\n</html>\n");
    h
}

/// The page's header: the verdict, the totals, the targets.
fn header(report: &Report, title: &str) -> String {
    let counts = report.counts();
    let mut h = String::new();
    let (verdict_class, verdict) = if counts.all_good() && report.problems.is_empty() {
        ("pass", format!("{} all good", CellStatus::Pass.symbol()))
    } else if counts.failed + counts.errors + counts.flaky + counts.lost > 0 {
        ("fail", format!("{} {}", CellStatus::Fail.symbol(), "needs a look"))
    } else {
        ("known", format!("{} incomplete", CellStatus::Missing.symbol()))
    };
    let _ = writeln!(h, "<header>\n<h1>{title}<span class=\"verdict {verdict_class}\">{}</span></h1>", esc(&verdict));
    let mut meta = Vec::new();
    if let Some(at) = &report.generated_at {
        meta.push(esc(at));
    }
    meta.push(esc(&report.generated_by));
    meta.push(format!(
        "{} tests on {} targets, {} rows",
        counts.tests,
        report.targets.iter().filter(|t| !t.missing).count(),
        report.rows.len()
    ));
    let _ = writeln!(h, "<div class=\"muted\">{}</div>", meta.join(" · "));
    let _ = writeln!(h, "<p class=\"headline\">{}</p>", esc(&counts.headline()));
    for p in &report.problems {
        let _ = writeln!(h, "<p class=\"headline\"><b>Problem:</b> {}</p>", esc(p));
    }
    let chip = |s: CellStatus, n: usize, what: &str| {
        format!("<span class=\"{}\"><b>{}</b> {n} {what}</span>", s.word(), esc(s.symbol()))
    };
    let _ = writeln!(
        h,
        "<div class=\"chips\">{}{}{}{}{}{}{}</div>",
        chip(CellStatus::Fail, counts.failed, "failed"),
        chip(CellStatus::Error, counts.errors, "could not run"),
        chip(CellStatus::Flaky, counts.flaky, "flaky"),
        chip(CellStatus::Known, counts.known, "known kernel bugs"),
        chip(CellStatus::Pass, counts.passed, "passed"),
        chip(CellStatus::Skip, counts.skipped, "skipped"),
        if counts.lost > 0 { chip(CellStatus::Missing, counts.lost, "without a result") } else { String::new() },
    );
    h.push_str(&targets_table(report));
    h.push_str("</header>\n");
    h
}

/// The matrix, grouped.
fn matrix_section(report: &Report) -> String {
    let mut h = String::new();
    h.push_str("<section id=\"matrix\">\n<h2>Scenario × target</h2>\n");
    h.push_str(&legend());
    for group in Group::ALL {
        let rows = report.rows_in(group);
        if rows.is_empty() {
            continue;
        }
        let table = matrix_table(report, &rows);
        if group == Group::Fine {
            let pass = rows.iter().filter(|(_, r)| r.cells.iter().any(|c| c.status == CellStatus::Pass)).count();
            let _ = writeln!(
                h,
                "<details class=\"group\" id=\"g-fine\"><summary>{} ({} rows: {} with passes, {} skipped everywhere)</summary>\n{table}</details>",
                group.title(),
                rows.len(),
                pass,
                rows.len() - pass
            );
        } else {
            let id = match group {
                Group::Problem => "g-problem",
                Group::Differs => "g-differs",
                _ => "g-known",
            };
            let _ = writeln!(h, "<h3 id=\"{id}\">{} ({} rows)</h3>\n{table}", group.title(), rows.len());
        }
    }
    h.push_str("</section>\n");
    h
}

fn targets_table(report: &Report) -> String {
    let mut t = String::from(
        "<table class=\"targets\">\n<tr><th>target</th><th>kernel source</th><th>accelerator</th><th>results</th></tr>\n",
    );
    for (i, target) in report.targets.iter().enumerate() {
        if target.missing {
            let _ = writeln!(
                t,
                "<tr class=\"missing\"><td><b>{}</b></td><td colspan=\"3\">{} missing: no result came from this target</td></tr>",
                esc(&target.label),
                CellStatus::Missing.symbol()
            );
            continue;
        }
        let mut by: BTreeMap<CellStatus, usize> = BTreeMap::new();
        for row in &report.rows {
            if let Some(c) = row.cells.get(i) {
                *by.entry(c.status).or_default() += 1;
            }
        }
        let summary: Vec<String> = CellStatus::ALL
            .iter()
            .filter_map(|s| by.get(s).map(|n| format!("<span class=\"{}\">{} {n}</span>", s.word(), esc(s.symbol()))))
            .collect();
        let _ = writeln!(
            t,
            "<tr><td><b>{}</b></td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&target.label),
            esc(target.source.as_deref().unwrap_or("(not recorded)")),
            esc(target.accel.as_deref().unwrap_or("(not recorded)")),
            summary.join(" ")
        );
    }
    t.push_str("</table>\n");
    t
}

fn legend() -> String {
    let mut l = String::from("<p class=\"legend\">");
    for (s, what) in [
        (CellStatus::Pass, "passed"),
        (CellStatus::Fail, "failed"),
        (CellStatus::Known, "known kernel bug, as recorded"),
        (CellStatus::Flaky, "flaky (some rounds failed)"),
        (CellStatus::Error, "could not run"),
        (CellStatus::Skip, "skipped"),
        (CellStatus::Missing, "no result"),
    ] {
        let _ = write!(l, "<span><span class=\"sym {}\">{}</span> {what}</span>", s.word(), esc(s.symbol()));
    }
    l.push_str(
        "<span class=\"muted\">Hover a cell for its reason; a failing cell's label leads to its details.</span></p>\n",
    );
    l
}

/// An id for a cell's details.
fn detail_id(row: usize, col: usize) -> String {
    format!("d-{row}-{col}")
}

fn has_detail(c: &Cell) -> bool {
    c.status.is_problem() || c.status == CellStatus::Known || !c.checks.is_empty()
}

fn matrix_table(report: &Report, rows: &[(usize, &Row)]) -> String {
    let cols = report.shown_columns();
    let n = cols.len().max(1);
    let mut t = String::from("<table class=\"m\">\n<colgroup><col style=\"width:22%\">");
    for _ in 0..n {
        let _ = write!(t, "<col style=\"width:{:.2}%\">", 60.0 / n as f64);
    }
    t.push_str("<col style=\"width:18%\"></colgroup>\n<tr><th>scenario</th>");
    for &ci in &cols {
        let _ = write!(t, "<th>{}</th>", esc(&report.targets[ci].label));
    }
    t.push_str("<th>differs</th></tr>\n");
    for (ri, row) in rows {
        let _ = write!(t, "<tr id=\"r-{ri}\"><td class=\"name\">{}</td>", esc(&row.name));
        for &ci in &cols {
            t.push_str(&cell_html(&row.cells[ci], *ri, ci));
        }
        let flags: Vec<String> = row
            .flags
            .iter()
            .map(|f| {
                let kind = match f.kind {
                    super::model::FlagKind::CompilerDependent => "compiler",
                    super::model::FlagKind::KernelDependent => "kernel",
                    super::model::FlagKind::DiffersFromBaseline => "baseline",
                };
                format!("<span class=\"flag {kind}\">{}</span>", esc(&f.text()))
            })
            .collect();
        let _ = writeln!(t, "<td>{}</td></tr>", flags.join(" "));
    }
    t.push_str("</table>\n");
    t
}

fn cell_html(c: &Cell, row: usize, col: usize) -> String {
    let mut tip = c.reason.clone().unwrap_or_default();
    if let Some(title) = &c.crash_title {
        tip = format!("{title}\n{tip}");
    }
    let title = if tip.trim().is_empty() { String::new() } else { format!(" title=\"{}\"", esc(tip.trim())) };
    let label = format!("<span class=\"sym\">{}</span>{}", esc(c.status.symbol()), esc(&c.label));
    let label = if has_detail(c) {
        format!("<a class=\"lbl\" href=\"#{}\">{label}</a>", detail_id(row, col))
    } else {
        format!("<span class=\"lbl\">{label}</span>")
    };
    let secs = c.seconds.map(|s| format!("<span class=\"secs\">{s:.1} s</span>")).unwrap_or_default();
    let links = if c.links.is_empty() {
        String::new()
    } else {
        let l: Vec<String> =
            c.links.iter().map(|l| format!("<a href=\"{}\">{}</a>", esc(&l.href), esc(&l.label))).collect();
        format!("<div class=\"lk\">{}</div>", l.join(""))
    };
    format!("<td class=\"c {}\"{title}>{label}{secs}{links}</td>", c.status.word())
}

/// One box per failing (then known) cell: reason, crash, checks with byte
/// diffs, how it started, its files.
fn details_section(report: &Report) -> String {
    let mut problems = String::new();
    let mut known = String::new();
    let (mut np, mut nk) = (0, 0);
    for (ri, row) in report.ordered_rows() {
        for (ci, cell) in row.cells.iter().enumerate() {
            let lost = cell.status == CellStatus::Missing && !report.targets.get(ci).is_some_and(|t| t.missing);
            if !has_detail(cell) && !lost {
                continue;
            }
            let target = report.targets.get(ci).map(|t| t.label.as_str()).unwrap_or("?");
            let is_problem = cell.status.is_problem() || lost;
            let out = if is_problem { &mut problems } else { &mut known };
            if is_problem {
                np += 1;
            } else {
                nk += 1;
            }
            let _ = writeln!(
                out,
                "<details class=\"detail {}\" id=\"{}\"{}><summary>{} {}::{} — {}</summary>\n<dl>",
                cell.status.word(),
                detail_id(ri, ci),
                if is_problem { " open" } else { "" },
                esc(cell.status.symbol()),
                esc(target),
                esc(&row.name),
                esc(&cell.label)
            );
            detail_terms(out, cell, lost);
            out.push_str("</dl>\n");
            detail_checks_and_files(out, cell);
            out.push_str("</details>\n");
        }
    }
    if np + nk == 0 {
        return String::new();
    }
    let mut s = String::from("<section id=\"details\">\n");
    if np > 0 {
        let _ = writeln!(s, "<h2>What failed ({np})</h2>\n{problems}");
    }
    if nk > 0 {
        let _ = writeln!(s, "<h2>Known kernel bugs ({nk})</h2>\n{known}");
    }
    s.push_str("</section>\n");
    s
}

/// The terms of a cell's details box: why (lost, crash, reason), race
/// hits, rounds, how it started, its time.
fn detail_terms(out: &mut String, cell: &Cell, lost: bool) {
    let mut dd = |k: &str, v: &str| {
        let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
    };
    if lost {
        dd("result", "this target reported other tests but not this one");
    }
    if let Some(t) = &cell.crash_title {
        dd("kernel report", t);
    }
    if let Some(r) = &cell.reason {
        dd("reason", r);
    }
    if let Some(r) = &cell.race {
        dd("race window hit", &format!("{} of {} rounds", r.hits, r.rounds));
    }
    if !cell.rounds.is_empty() {
        let s: String = cell.rounds.iter().map(|r| r.symbol()).collect::<Vec<_>>().join(" ");
        dd("rounds", &s);
    }
    if let Some(s) = &cell.started_from {
        dd("started from", s);
    }
    if let Some(s) = cell.seconds {
        dd("VM time", &format!("{s:.1} s"));
    }
}

/// A cell's checks (with byte diffs) and its files, under its terms.
fn detail_checks_and_files(out: &mut String, cell: &Cell) {
    for check in &cell.checks {
        let _ = writeln!(
            out,
            "<div><b>{}</b>: {}</div>{}",
            esc(&check.step),
            esc(&check.what),
            check_html(&check.expected, &check.seen)
        );
    }
    if !cell.links.is_empty() {
        let l: Vec<String> =
            cell.links.iter().map(|l| format!("<a href=\"{}\">{}</a>", esc(&l.href), esc(&l.label))).collect();
        let _ = writeln!(out, "<div>files: {}</div>", l.join(" · "));
    }
}

/// Expected vs seen: byte by byte when both are hex bytes, else as text.
fn check_html(expected: &str, seen: &str) -> String {
    match byte_diff(expected, seen) {
        Some(cmp) => {
            let side = |pick: fn(&ByteCmp) -> Option<&str>| {
                cmp.iter()
                    .filter_map(|b| {
                        pick(b).map(|v| {
                            let class = if b.expected.is_none() || b.seen.is_none() {
                                " class=\"x\""
                            } else if b.differs {
                                " class=\"d\""
                            } else {
                                ""
                            };
                            format!("<span{class}>{}</span>", esc(v))
                        })
                    })
                    .collect::<String>()
            };
            let n = cmp.iter().filter(|b| b.differs).count();
            format!(
                "<table class=\"diff\"><tr><th>expected</th><td class=\"bytes mono\">{}</td></tr>\
                 <tr><th>seen</th><td class=\"bytes mono\">{}</td></tr>\
                 <tr><th></th><td class=\"muted\">{n} of {} bytes differ</td></tr></table>",
                side(|b| b.expected.as_deref()),
                side(|b| b.seen.as_deref()),
                cmp.len()
            )
        }
        None => format!(
            "<table class=\"diff\"><tr><th>expected</th><td><pre>{}</pre></td></tr>\
             <tr><th>seen</th><td><pre>{}</pre></td></tr></table>",
            esc(expected),
            esc(seen)
        ),
    }
}

/// One byte position of a hex comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByteCmp {
    /// `fd`, `..` (any byte), or none when expected is shorter.
    pub expected: Option<String>,
    /// None when seen is shorter.
    pub seen: Option<String>,
    pub differs: bool,
}

/// Expected vs seen hex bytes (`01 05 fd ff` vs `01 05 03 01`), position by
/// position; `..` in expected matches any byte. None unless both sides are
/// hex bytes.
pub fn byte_diff(expected: &str, seen: &str) -> Option<Vec<ByteCmp>> {
    let tokens = |s: &str, wild: bool| -> Option<Vec<String>> {
        let v: Vec<String> = s.split_whitespace().map(str::to_ascii_lowercase).collect();
        let ok = |t: &String| t.len() == 2 && (t.bytes().all(|b| b.is_ascii_hexdigit()) || (wild && t == ".."));
        (!v.is_empty() && v.iter().all(ok)).then_some(v)
    };
    let (e, s) = (tokens(expected, true)?, tokens(seen, false)?);
    Some(
        (0..e.len().max(s.len()))
            .map(|i| {
                let (a, b) = (e.get(i).cloned(), s.get(i).cloned());
                let differs = match (&a, &b) {
                    (Some(a), Some(b)) => a != ".." && a != b,
                    _ => true,
                };
                ByteCmp { expected: a, seen: b, differs }
            })
            .collect(),
    )
}

fn notes_section(report: &Report) -> String {
    let mut items: Vec<String> = report.notes.iter().map(|n| esc(n)).collect();
    // Each skip reason once, with how many tests and a few of them.
    let mut skips: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for row in &report.rows {
        for (c, t) in row.cells.iter().zip(&report.targets) {
            if c.status == CellStatus::Skip {
                skips
                    .entry(c.reason.as_deref().unwrap_or("no reason given"))
                    .or_default()
                    .push(format!("{}::{}", t.label, row.name));
            }
        }
    }
    for (why, tests) in skips {
        let shown = tests.iter().take(3).map(|t| esc(t)).collect::<Vec<_>>().join(", ");
        let more = if tests.len() > 3 { format!(" and {} more", tests.len() - 3) } else { String::new() };
        items.push(format!("skipped ({}): {}: <span class=\"mono\">{shown}</span>{more}", tests.len(), esc(why)));
    }
    if items.is_empty() {
        return String::new();
    }
    format!(
        "<section id=\"notes\">\n<h2>Notes</h2>\n<ul class=\"notes\">\n{}</ul>\n</section>\n",
        items.iter().map(|i| format!("<li>{i}</li>\n")).collect::<String>()
    )
}
