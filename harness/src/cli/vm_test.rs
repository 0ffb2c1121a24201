//! `hidvm vm-test`: the catalogue on every kernel x cell, and the matrix.
use crate::cli::run_opts::RunOpts;
use crate::cli::tests_exit;
use hidvm::run::batch;
use hidvm::run::plan::load_all;
use hidvm::run::suite::Suite;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    run: RunOpts,
    /// Run the whole suite this many times and report flaky tests.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    // Malformed scenarios stop everything before any build or boot.
    load_all(suite)?;
    let entries = suite.catalogue()?;
    Ok(tests_exit(batch::run(suite, entries, &args.run.batch(args.repeat.max(1)))?))
}
