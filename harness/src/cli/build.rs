//! `hidvm build`: the kernels of each kernel x cell, and the guest agent.
use hidvm::run::plan::selected_targets;
use hidvm::run::prepare::build_targets;
use hidvm::run::suite::Suite;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Cells to build (default: the default cells, or HIDVM_CELLS).
    #[arg(long = "cell")]
    cells: Vec<String>,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    build_targets(suite, &selected_targets(suite, &args.cells)?)?;
    Ok(ExitCode::SUCCESS)
}
