//! `hidvm test PATH...`: the user's scenario files, and their matrix.
use crate::cli::run_opts::RunOpts;
use crate::cli::tests_exit;
use hidvm::run::batch;
use hidvm::run::suite::Suite;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario files or directories.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    run: RunOpts,
    /// Write what replay steps observe into their `evdev_file` /
    /// `hidraw_file` instead of comparing; review the files before
    /// committing them. Refused when CI is set.
    #[arg(long)]
    pub bless: bool,
}

/// `--bless` writes expected output, which a person reviews: never in CI.
pub fn refuse_bless_under_ci() -> hidvm::Result<()> {
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
        return Err(hidvm::Error::Other(
            "refusing --bless with CI set: expected output is written by a person and reviewed, never by CI on its own"
                .into(),
        ));
    }
    Ok(())
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    let entries = suite.user_entries(&args.paths)?;
    // Malformed files stop everything before any build or boot.
    suite.load_each(&entries)?;
    Ok(tests_exit(batch::run(suite, entries, &args.run.batch(1))?))
}
