//! `hidvm shell [SCENARIO]`: a kernel booted with an interactive shell on
//! this terminal, with a scenario's devices created and programs in.
use hidvm::kernel::cell;
use hidvm::kernel::spec::Target;
use hidvm::run::suite::Suite;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The cell (default: the first of the run's cells).
    #[arg(long)]
    cell: Option<String>,
    /// Create this scenario's devices and put its programs in: a path to a
    /// scenario file of yours, or a catalogue name from `hidvm list`
    /// (without the target prefix).
    #[arg(long = "scenario", value_name = "PATH|NAME")]
    scenario_flag: Option<String>,
    /// The same as --scenario.
    #[arg(value_name = "SCENARIO", conflicts_with = "scenario_flag")]
    scenario: Option<String>,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    let kernel = suite.kernels.first().ok_or_else(|| hidvm::Error::Other("no kernel selected".into()))?;
    let cell = match args.cell {
        Some(c) => cell::find(&suite.all_cells, &c)?.name.clone(),
        None => suite.cells.first().ok_or_else(|| hidvm::Error::Other("no cell selected".into()))?.name.clone(),
    };
    let scenario = args.scenario.or(args.scenario_flag);
    let code = hidvm::run::shell::run(suite, &Target::new(&kernel.name, &cell), scenario.as_deref(), None)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
