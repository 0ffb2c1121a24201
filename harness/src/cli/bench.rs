//! `hidvm bench`: builds, VM boots and the warm suite, measured.
use hidvm::run::bench::{self, BenchOptions};
use hidvm::run::suite::Suite;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Also time cold kernel builds (each cell into an empty cache).
    #[arg(long)]
    cold: bool,
    /// Repetitions of the single-VM timings.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    let all_passed = bench::run(suite, &BenchOptions { cold: args.cold, runs: args.runs })?;
    Ok(crate::cli::tests_exit(all_passed))
}
