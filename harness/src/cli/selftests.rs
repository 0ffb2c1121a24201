//! `hidvm selftests`: the kernel's own HID selftests on every kernel x cell.
use crate::cli::tests_exit;
use hidvm::base::host::cores;
use hidvm::run::kselftest;
use hidvm::run::plan::selected_targets;
use hidvm::run::suite::Suite;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long = "cell")]
    cells: Vec<String>,
    /// Only this program (hid_bpf or hidraw).
    #[arg(long)]
    program: Option<String>,
    /// VMs at once (default: number of cores).
    #[arg(long)]
    jobs: Option<usize>,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    let targets = selected_targets(suite, &args.cells)?;
    let ok = kselftest::run_all(suite, &targets, args.program.as_deref(), args.jobs.unwrap_or_else(cores))?;
    Ok(tests_exit(ok))
}
