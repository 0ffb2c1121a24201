//! Inline SVG charts: race hit rates, the `--repeat` heat map, durations.
use super::model::{esc, CellStatus, Report};
use std::fmt::Write;

/// Fill and symbol colour of a status in the charts (readable in greyscale:
/// the fills go from light to dark, and each square carries its symbol).
fn fill(s: CellStatus) -> (&'static str, &'static str) {
    match s {
        CellStatus::Pass => ("#bfe3c7", "#17692e"),
        CellStatus::Known => ("#e8c34a", "#3d2d00"),
        CellStatus::Skip => ("#eef0f2", "#5b6470"),
        CellStatus::Missing | CellStatus::NotHere => ("#f4f4f4", "#666666"),
        CellStatus::Flaky => ("#e08a2e", "#2b1400"),
        CellStatus::Fail => ("#a4161a", "#ffffff"),
        CellStatus::Error => ("#6a1b9a", "#ffffff"),
    }
}

/// Race scenarios: per target, the share of rounds that hit the window.
pub fn race_chart(report: &Report) -> Option<String> {
    let rows: Vec<_> = report.rows.iter().filter(|r| r.cells.iter().any(|c| c.race.is_some())).collect();
    if rows.is_empty() {
        return None;
    }
    const W: f64 = 150.0;
    let mut t = String::from(
        "<p class=\"muted\">A hit is a round that ended as the race's known kernel bug. \
         A race hit in some rounds only is chance and does not count as a difference.</p>\n\
         <table class=\"race\">\n<tr><th>scenario</th>",
    );
    let cols = report.shown_columns();
    for &ci in &cols {
        let _ = write!(t, "<th>{}</th>", esc(&report.targets[ci].label));
    }
    t.push_str("</tr>\n");
    for row in rows {
        let _ = write!(t, "<tr><td class=\"name\">{}</td>", esc(&row.name));
        for cell in cols.iter().map(|ci| &row.cells[*ci]) {
            let Some(r) = cell.race.filter(|r| r.rounds > 0) else {
                t.push_str("<td class=\"muted\">–</td>");
                continue;
            };
            let share = f64::from(r.hits) / f64::from(r.rounds);
            let w = (W * share).round();
            let _ = write!(
                t,
                "<td><svg width=\"{W}\" height=\"14\" viewBox=\"0 0 {W} 14\" role=\"img\" aria-label=\"{h} of {n} rounds hit\">\
                 <rect x=\"0\" y=\"1\" width=\"{W}\" height=\"12\" fill=\"#eef0f2\" stroke=\"#c4c9cf\"/>\
                 <rect x=\"0\" y=\"1\" width=\"{w}\" height=\"12\" fill=\"#b8860b\"/></svg> \
                 <span class=\"mono\">{h}/{n}</span> <span class=\"muted\">({pct:.0}%)</span></td>",
                h = r.hits,
                n = r.rounds,
                pct = share * 100.0
            );
        }
        t.push_str("</tr>\n");
    }
    t.push_str("</table>\n");
    Some(t)
}

/// Side of a square of the `--repeat` heat map, and the gap between two.
const SQ: usize = 16;
const GAP: usize = 2;

/// `--repeat`: one line of squares per test and target that did not pass
/// every round; present only when cells carry rounds.
pub fn repeat_heat_map(report: &Report) -> Option<String> {
    let (with_rounds, lines) = rounds_not_all_passed(report)?;
    let rounds = lines.iter().map(|(_, r)| r.len()).max().unwrap_or(0);
    let mut out = format!(
        "<p>{} of {with_rounds} tests passed every round; {} did not:</p>\n",
        with_rounds - lines.len(),
        lines.len()
    );
    if lines.is_empty() {
        return Some(out);
    }
    let label_w = lines.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(10) * 7 + 12;
    let tally_w = 230;
    let width = label_w + rounds * (SQ + GAP) + tally_w;
    let height = 18 + lines.len() * (SQ + GAP) + 4;
    let _ = writeln!(
        out,
        "<svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"test by round heat map\">"
    );
    for r in 0..rounds {
        if r == 0 || (r + 1) % 5 == 0 {
            let x = label_w + r * (SQ + GAP) + SQ / 2;
            let _ = writeln!(
                out,
                "<text x=\"{x}\" y=\"12\" font-size=\"10\" text-anchor=\"middle\" fill=\"#5b6470\">{}</text>",
                r + 1
            );
        }
    }
    for (i, (label, ends)) in lines.iter().enumerate() {
        heat_map_line(&mut out, 18 + i * (SQ + GAP), label, ends, label_w, rounds);
    }
    out.push_str("</svg>\n");
    Some(out)
}

/// A line of the heat map: its test and target label, how each round ended.
type HeatMapLine<'a> = (String, &'a [CellStatus]);

/// How many cells carry rounds, and the test and target label and rounds
/// of each that did not pass every round: those whose rounds varied first
/// (flaky tests, races that hit sometimes), then those that ended the same
/// way every time. None when no cell carries rounds.
fn rounds_not_all_passed(report: &Report) -> Option<(usize, Vec<HeatMapLine<'_>>)> {
    let mut with_rounds = 0;
    let mut lines: Vec<HeatMapLine<'_>> = Vec::new();
    for row in &report.rows {
        for (cell, target) in row.cells.iter().zip(&report.targets) {
            if cell.rounds.is_empty() {
                continue;
            }
            with_rounds += 1;
            if cell.varied_or_failed_rounds() {
                lines.push((format!("{}::{}", target.label, row.name), &cell.rounds));
            }
        }
    }
    if with_rounds == 0 {
        return None;
    }
    lines.sort_by_key(|(_, ends)| ends.iter().all(|e| *e == ends[0]));
    Some((with_rounds, lines))
}

/// One line of the heat map at height `y`: its label, a square per round,
/// and the tally after the last of `rounds` columns.
fn heat_map_line(out: &mut String, y: usize, label: &str, ends: &[CellStatus], label_w: usize, rounds: usize) {
    let _ = writeln!(
        out,
        "<text x=\"0\" y=\"{}\" font-size=\"12\" font-family=\"DejaVu Sans Mono, monospace\" fill=\"#1d2125\">{}</text>",
        y + 12,
        esc(label)
    );
    for (r, end) in ends.iter().enumerate() {
        let (bg, fg) = fill(*end);
        let x = label_w + r * (SQ + GAP);
        let _ = writeln!(
            out,
            "<g><title>round {}: {}</title><rect x=\"{x}\" y=\"{y}\" width=\"{SQ}\" height=\"{SQ}\" rx=\"2\" fill=\"{bg}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"{fg}\">{}</text></g>",
            r + 1,
            end.word(),
            x + SQ / 2,
            y + 12,
            esc(end.symbol())
        );
    }
    let count = |s| ends.iter().filter(|e| **e == s).count();
    let failed = ends.len() - count(CellStatus::Pass) - count(CellStatus::Known);
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"#1d2125\">{} passed, {} known, {failed} failed</text>",
        label_w + rounds * (SQ + GAP) + 8,
        y + 12,
        count(CellStatus::Pass),
        count(CellStatus::Known),
    );
}

/// Bucket edges in seconds (roughly logarithmic).
const EDGES: [f64; 7] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0];
const BUCKETS: [&str; 8] = ["<1", "1–2", "2–5", "5–10", "10–20", "20–50", "50–100", "≥100"];

fn bucket(s: f64) -> usize {
    EDGES.iter().position(|e| s < *e).unwrap_or(EDGES.len())
}

/// Per target, how many tests took how long (VM seconds), log-ish buckets.
pub fn duration_histograms(report: &Report) -> Option<String> {
    let per_target: Vec<Vec<f64>> = (0..report.targets.len())
        .map(|i| report.rows.iter().filter_map(|r| r.cells.get(i).and_then(|c| c.seconds)).collect())
        .collect();
    if per_target.iter().all(Vec::is_empty) {
        return None;
    }
    let (w, h, top, bottom, left) = (310.0, 170.0, 30.0, 34.0, 8.0);
    let bw = (w - left * 2.0) / BUCKETS.len() as f64;
    let mut out = String::from("<div class=\"charts\">\n");
    for (target, secs) in report.targets.iter().zip(&per_target) {
        if secs.is_empty() {
            continue;
        }
        let mut counts = [0usize; BUCKETS.len()];
        secs.iter().for_each(|s| counts[bucket(*s)] += 1);
        let max = *counts.iter().max().unwrap_or(&1) as f64;
        let mut sorted = secs.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let median = sorted[sorted.len() / 2];
        let total: f64 = secs.iter().sum();
        let _ = writeln!(
            out,
            "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"durations on {l}\">\
             <text x=\"{left}\" y=\"14\" font-size=\"13\" font-weight=\"bold\" fill=\"#1d2125\">{l}</text>\
             <text x=\"{}\" y=\"14\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6470\">{} tests, median {median:.1} s, sum {total:.0} s</text>",
            w - left,
            secs.len(),
            l = esc(&target.label)
        );
        let base = h - bottom;
        for (i, n) in counts.iter().enumerate() {
            let x = left + i as f64 * bw;
            let bh = if max > 0.0 { (base - top - 12.0) * (*n as f64) / max } else { 0.0 };
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#5b7fa6\"/>",
                x + 2.0,
                base - bh,
                bw - 4.0
            );
            if *n > 0 {
                let _ = write!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#1d2125\">{n}</text>",
                    x + bw / 2.0,
                    base - bh - 3.0
                );
            }
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#5b6470\">{}</text>",
                x + bw / 2.0,
                base + 13.0,
                BUCKETS[i]
            );
        }
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#8a8f96\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#5b6470\">seconds (VM time)</text></svg>",
            w - left,
            w / 2.0,
            h - 4.0
        );
    }
    out.push_str("</div>\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log_ish() {
        assert_eq!(bucket(0.4), 0);
        assert_eq!(bucket(1.0), 1);
        assert_eq!(bucket(4.9), 2);
        assert_eq!(bucket(60.0), 6);
        assert_eq!(bucket(150.0), 7);
    }
}
