//! `hidvm list`: every test name, with its summary or why it is skipped.
use hidvm::run::plan::{selected_targets, tests};
use hidvm::run::suite::Suite;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Also print each scenario's summary (or why it is skipped).
    #[arg(long)]
    long: bool,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    for case in tests(suite, &selected_targets(suite, &[])?, None)? {
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
