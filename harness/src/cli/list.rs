//! `hidvm list [PATH...]`: every test name, with its summary or why it is
//! skipped; with paths, the tests of those scenario files.
use hidvm::run::plan::{selected_targets, tests_of};
use hidvm::run::suite::Suite;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Also print each scenario's summary (or why it is skipped).
    #[arg(long)]
    long: bool,
    /// Cells to list (repeatable; default: the run's cells).
    #[arg(long = "cell")]
    cells: Vec<String>,
    /// Scenario files or directories of your own (default: the catalogue).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    let entries = if args.paths.is_empty() { suite.catalogue()? } else { suite.user_entries(&args.paths)? };
    for case in tests_of(suite, entries, &selected_targets(suite, &args.cells)?, None)? {
        match (&case.skip, args.long) {
            (Some(why), true) => println!("{}\tSKIP: {why}", case.name()),
            (None, true) => {
                let summary = suite
                    .load(&case.entry, &case.target.kernel)
                    .map(|l| l.scenario.summary)
                    .unwrap_or_else(|e| format!("INVALID: {e}"));
                println!("{}\t{summary}", case.name());
            }
            (_, false) => println!("{}", case.name()),
        }
    }
    Ok(ExitCode::SUCCESS)
}
