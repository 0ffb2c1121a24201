//! `hidvm bench`: builds, VM boots and the warm suite, measured.
use hidvm::run::bench::{self, BenchOptions};
use hidvm::run::suite::Suite;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Also time a fresh clone's `make vm-test` from an empty cache (four
    /// kernel builds: about half an hour on 2 cores): the first-verdict and
    /// whole-matrix rows.
    #[arg(long)]
    cold: bool,
    /// Also time rebuilding every default kernel after a point release
    /// (each tree copied with its SUBLEVEL raised, built from nothing).
    #[arg(long)]
    rebuild: bool,
    /// Where `--cold` and `--rebuild` work, kept afterwards (about 8 GB);
    /// default: a temporary directory, removed.
    #[arg(long, value_name = "DIR")]
    scratch: Option<std::path::PathBuf>,
    /// Repetitions of the single-VM timings.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    let all_passed = bench::run(
        suite,
        &BenchOptions { cold: args.cold, rebuild: args.rebuild, runs: args.runs, scratch: args.scratch },
    )?;
    Ok(crate::cli::tests_exit(all_passed))
}
