//! `hidvm summary`: results files merged into one matrix.
use crate::cli::tests_exit;
use hidvm::results::records::Results;
use hidvm::results::summary::{matrix, merge};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Results files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Also append the matrix as Markdown to this file (e.g. $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Also write the HTML report to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

pub fn run(args: Args) -> hidvm::Result<ExitCode> {
    let parts = args.files.iter().map(|f| Results::read(f)).collect::<hidvm::Result<Vec<_>>>()?;
    let merged = merge(parts)?;
    if let Some(p) = &args.html {
        hidvm::results::html::write_report(&merged, p, &[])?;
    }
    let matrix = matrix(&merged);
    println!("{}", matrix.render());
    if let Some(md) = args.markdown {
        let text = format!("## hidvm: {} tests\n\n{}\n", merged.records.len(), matrix.render_markdown());
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&md)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(hidvm::Error::io(format!("writing {}", md.display())))?;
    }
    Ok(tests_exit(matrix.all_passed()))
}
