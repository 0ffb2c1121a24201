//! The report to look at: one self-contained HTML file per run (inline CSS
//! and SVG, no script, no font or URL fetched), and the Markdown step
//! summary CI shows beside it.
//!
//! The renderers take a view model ([`Report`]) and nothing of the
//! harness's internals: [`from_results`] builds one from a results file's
//! records ([`crate::results::records::Results`]), reading what the records do not
//! carry yet through [`extras_of`].
//!
//! Rows are ordered by what needs a look: failures (errors, flaky tests, a
//! target that reported nothing for a test) first, then rows whose verdict
//! differs between compilers, kernels or a baseline run, then known kernel
//! bugs, then passing and skipped rows, collapsed.
mod charts;
mod convert;
mod markdown;
mod model;
mod render;

pub use convert::{extras_of, from_results, from_results_with, utc_now, Context, RecordExtras};
pub use markdown::{render_markdown_summary, REPORT_LINK_PLACEHOLDER};
pub use model::*;
pub use render::{byte_diff, render_html, ByteCmp};

/// Write the HTML report of `results`, a run's own records (every planned
/// test, skips included: [`Context::complete`]), to `path` (links to run
/// files relative to its directory); `expected_targets` (`6.12-gcc`)
/// without a record are reported missing; rows whose outcome differs from
/// the `baseline` kernel's are flagged.
pub fn write_report(
    results: &crate::results::records::Results,
    path: &std::path::Path,
    expected_targets: &[String],
    baseline: Option<&str>,
) -> crate::Result<()> {
    write_report_with(results, path, expected_targets, baseline, true, &[])
}

/// [`write_report`], with what is wrong with the run besides its cells
/// ([`Report::problems`]).
pub fn write_report_with(
    results: &crate::results::records::Results,
    path: &std::path::Path,
    expected_targets: &[String],
    baseline: Option<&str>,
    complete: bool,
    problems: &[String],
) -> crate::Result<()> {
    let path = std::path::absolute(path).map_err(crate::Error::io(format!("resolving {}", path.display())))?;
    let ctx = Context {
        title: "hidvm report".into(),
        generated_at: Some(utc_now()),
        expected_targets: expected_targets.to_vec(),
        baseline_kernel: baseline.map(str::to_string),
        link_dir: path.parent().map(std::path::Path::to_path_buf),
        problems: problems.to_vec(),
        complete,
        ..Default::default()
    };
    let html = render_html(&from_results(results, &ctx));
    crate::base::layout::write_atomic(&path, html.as_bytes())
        .map_err(crate::Error::io(format!("writing {}", path.display())))
}
