//! The GitHub step summary: the first lines say how many failed, which rows
//! differ between compilers and between kernels, which targets are missing;
//! then the rows that need a look; passing rows collapsed.
use super::model::{CellStatus, FlagKind, Group, Report, Row};
use std::fmt::Write;

/// Stands for the HTML report's address when [`Report::html_link`] is not
/// set (CI replaces it once the artifact is uploaded).
pub const REPORT_LINK_PLACEHOLDER: &str = "{{HIDVM_HTML_REPORT_URL}}";

/// At most this many names in one of the first lines.
const LIST: usize = 12;

pub fn render_markdown_summary(report: &Report) -> String {
    let c = report.counts();
    let good = c.all_good() && report.problems.is_empty();
    let mut headline = c.headline();
    if !report.problems.is_empty() {
        headline = format!("{} problem(s) with the run, {headline}", report.problems.len());
    }
    let mut out = format!(
        "## {} {}: {}\n\n",
        if good { CellStatus::Pass.symbol() } else { CellStatus::Fail.symbol() },
        md(&report.title),
        md(&headline)
    );
    for p in &report.problems {
        let _ = writeln!(out, "- **Problem:** {}", md(p));
    }
    let failed: Vec<String> = report
        .rows
        .iter()
        .flat_map(|r| {
            r.cells
                .iter()
                .zip(&report.targets)
                .filter(|(c, _)| c.status.is_problem())
                .map(move |(c, t)| format!("{} ({})", code(&format!("{}::{}", t.label, r.name)), md(&c.label)))
        })
        .collect();
    let flagged = |kind: FlagKind| -> Vec<String> {
        report
            .rows
            .iter()
            .filter_map(|r| {
                let f = r.flags.iter().find(|f| f.kind == kind)?;
                Some(format!("{} (on {})", code(&r.name), md(&f.on.join(", "))))
            })
            .collect()
    };
    let line = |out: &mut String, what: &str, items: &[String]| {
        if items.is_empty() {
            let _ = writeln!(out, "- **{what}:** none");
        } else {
            let more = if items.len() > LIST { format!(" and {} more", items.len() - LIST) } else { String::new() };
            let shown: Vec<&str> = items.iter().take(LIST).map(String::as_str).collect();
            let _ = writeln!(out, "- **{what}:** {}{more}", shown.join(", "));
        }
    };
    line(&mut out, &format!("Failed ({})", failed.len()), &failed);
    line(&mut out, "Differ between compilers", &flagged(FlagKind::CompilerDependent));
    line(&mut out, "Differ between kernels", &flagged(FlagKind::KernelDependent));
    let baseline = flagged(FlagKind::DiffersFromBaseline);
    if !baseline.is_empty() {
        line(&mut out, "Differ from the baseline", &baseline);
    }
    let missing: Vec<String> = c.missing_targets.iter().map(|t| code(t)).collect();
    line(&mut out, "Targets missing", &missing);
    let link = report.html_link.as_deref().unwrap_or(REPORT_LINK_PLACEHOLDER);
    let _ = writeln!(
        out,
        "- {} tests: {} passed, {} failed, {} known kernel bugs, {} skipped, {} could not run, {} flaky. \
         [The full report (HTML)]({link}): every cell with its console and step log.\n",
        c.tests, c.passed, c.failed, c.known, c.skipped, c.errors, c.flaky
    );

    let needs_look: Vec<(usize, &Row)> =
        [Group::Problem, Group::Differs, Group::Known].iter().flat_map(|g| report.rows_in(*g)).collect();
    if !needs_look.is_empty() {
        out.push_str(&table(report, &needs_look));
        out.push('\n');
    }
    let fine = report.rows_in(Group::Fine);
    if !fine.is_empty() {
        let _ = write!(
            out,
            "<details><summary>{} rows passing or skipped everywhere</summary>\n\n{}\n</details>\n",
            fine.len(),
            table(report, &fine)
        );
    }
    out
}

fn table(report: &Report, rows: &[(usize, &Row)]) -> String {
    let cols = report.shown_columns();
    let mut t = format!(
        "| scenario | {} | differs |\n|---|{}---|\n",
        cols.iter().map(|i| md(&report.targets[*i].label)).collect::<Vec<_>>().join(" | "),
        "---|".repeat(cols.len())
    );
    for (_, row) in rows {
        let cells: Vec<String> = cols
            .iter()
            .map(|i| {
                let c = &row.cells[*i];
                if c.status == CellStatus::Pass {
                    "✔".into()
                } else {
                    format!("{} {}", c.status.symbol(), md(&c.label))
                }
            })
            .collect();
        let flags: Vec<String> = row.flags.iter().map(|f| md(&f.text())).collect();
        let _ = writeln!(t, "| {} | {} | {} |", code(&row.name), cells.join(" | "), flags.join("; "));
    }
    t
}

/// Text in Markdown: punctuation that could format, link or split a table
/// cell is escaped, line breaks become spaces.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '<' | '>' | '|' | '#' | '!' | '~' | '&' => {
                out.push('\\');
                out.push(ch);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A name as code (a pipe still needs its backslash inside a table); a
/// name with characters HTML would read is plain escaped text instead.
fn code(s: &str) -> String {
    if s.contains(['`', '\n', '<', '>', '&']) {
        return md(s);
    }
    format!("`{}`", s.replace('|', "\\|"))
}
