//! `hidvm summary`: results files merged into one matrix, held against
//! what the run was planned to have.
use crate::cli::tests_exit;
use hidvm::kernel::spec::Target;
use hidvm::results::html::{from_results, render_markdown_summary, Context};
use hidvm::results::records::{Results, Status};
use hidvm::results::summary::{describe_missing, known_changes, matrix_with, merge, missing, Planned};
use hidvm::run::plan;
use hidvm::run::suite::Suite;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Results files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Also append the step summary (Markdown: how many failed, which rows
    /// differ between compilers and kernels, which targets are missing, then
    /// the rows that need a look; passing rows collapsed) to this file, e.g.
    /// $GITHUB_STEP_SUMMARY.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Where the HTML report will be, linked from the Markdown summary
    /// (default: a placeholder, {{HIDVM_HTML_REPORT_URL}}, to replace).
    #[arg(long, value_name = "URL")]
    report_url: Option<String>,
    /// Also write the HTML report to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// The targets the run was planned to have (`6.12-gcc,7.3-llvm`): every
    /// catalogue test that runs on them must have a record, and a target
    /// missing or short of tests fails the summary, by name.
    #[arg(long, value_name = "TARGETS", value_delimiter = ',')]
    expect: Vec<String>,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    let parts = args.files.iter().map(|f| Results::read(f)).collect::<hidvm::Result<Vec<_>>>()?;
    let merged = merge(parts)?;
    let planned = planned(suite, &args.expect)?;
    let lacking = missing(&merged, &planned);
    let changes = known_changes(&merged);
    let changed: Vec<usize> = changes.iter().map(|(e, _)| *e).collect();
    let baseline = suite.opts.baseline.as_deref();
    if let Some(b) = baseline.filter(|b| !merged.records.iter().any(|r| &r.kernel == b)) {
        return Err(hidvm::Error::Other(format!("--baseline {b}: no record of the results files is of kernel {b}")));
    }
    let matrix = matrix_with(&merged, &lacking, &changed, baseline);
    let mut problems = describe_missing(&planned, &lacking);
    problems.extend(changes.iter().map(|(_, why)| why.clone()));
    // One run's own file holds every planned test; so do files held
    // against --expect, which names each one missing (`problems`).
    let complete = !args.expect.is_empty() || args.files.len() == 1;
    if let Some(p) = &args.html {
        hidvm::results::html::write_report_with(&merged, p, &args.expect, baseline, complete, &problems)?;
    }
    println!("{}", matrix.render());
    for p in &problems {
        println!("{p}");
    }
    if let Some(md) = args.markdown {
        let ctx = Context {
            title: "hidvm".into(),
            expected_targets: args.expect.clone(),
            baseline_kernel: baseline.map(str::to_string),
            problems: problems.clone(),
            complete,
            html_link: args.report_url.clone(),
            ..Default::default()
        };
        let text = render_markdown_summary(&from_results(&merged, &ctx));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&md)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(hidvm::Error::io(format!("writing {}", md.display())))?;
    }
    if merged.records.iter().all(|r| r.status == Status::Skip) && lacking.is_empty() {
        return Err(hidvm::Error::NoTests(format!(
            "the {} record(s) of {} are all skipped: nothing ran",
            merged.records.len(),
            args.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(tests_exit(matrix.all_passed() && problems.is_empty()))
}

/// Every catalogue test that runs on the `expect`ed targets.
fn planned(suite: &Suite, expect: &[String]) -> hidvm::Result<Vec<Planned>> {
    let mut targets = Vec::new();
    for label in expect {
        let t = Target::parse(label).ok_or_else(|| {
            hidvm::Error::Other(format!("--expect: `{label}` is not a target like 6.12-gcc or 7.3-llvm-debug"))
        })?;
        hidvm::kernel::spec::find(&suite.all_kernels, &t.kernel)
            .map_err(|e| hidvm::Error::Other(format!("--expect {label}: {e}")))?;
        hidvm::kernel::cell::find(&suite.all_cells, &t.cell)
            .map_err(|e| hidvm::Error::Other(format!("--expect {label}: {e}")))?;
        targets.push(t);
    }
    Ok(plan::tests(suite, &targets, None)?
        .into_iter()
        .filter(|c| c.skip.is_none())
        .map(|c| Planned { test: c.name(), row: c.entry.row(), target: c.target.clone() })
        .collect())
}
