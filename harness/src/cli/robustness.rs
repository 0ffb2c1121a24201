//! `hidvm robustness`: splat classes, QEMU after forced stops, concurrent builds.
use crate::cli::tests_exit;
use hidvm::run::robustness::{self, RobustnessOptions};
use hidvm::run::suite::Suite;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Concurrent `hidvm build` requesters on an empty cache (one cold build).
    #[arg(long, default_value_t = 0)]
    builds: usize,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    let all_caught = robustness::run(suite, &RobustnessOptions { builds: args.builds })?;
    Ok(tests_exit(all_caught))
}
