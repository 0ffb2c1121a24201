//! `hidvm shell`: a kernel booted with an interactive shell on this terminal.
use hidvm::kernel::cell;
use hidvm::kernel::spec::Target;
use hidvm::run::suite::Suite;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The cell (default: the first of the run's cells).
    #[arg(long)]
    cell: Option<String>,
    /// Create this scenario's devices and put its programs in (a name
    /// from `hidvm list`, without the target prefix).
    #[arg(long)]
    scenario: Option<String>,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    let kernel = suite.kernels.first().ok_or_else(|| hidvm::Error::Other("no kernel selected".into()))?;
    let cell = match args.cell {
        Some(c) => cell::find(&suite.all_cells, &c)?.name.clone(),
        None => suite.cells.first().ok_or_else(|| hidvm::Error::Other("no cell selected".into()))?.name.clone(),
    };
    let code = hidvm::run::shell::run(suite, &Target::new(&kernel.name, &cell), args.scenario.as_deref(), None)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
