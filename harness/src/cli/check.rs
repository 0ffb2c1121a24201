//! `hidvm check [PATH...]`: kernels, cells, fragments and every scenario
//! (the catalogue's, or the files named) validated without booting.
use hidvm::catalogue::scenarios::{self, Entry, LoadOptions};
use hidvm::run::suite::Suite;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Do not unpack or fetch kernel trees: `kernel:` programs are not
    /// resolved (a quick lint; the full check resolves them).
    #[arg(long)]
    without_trees: bool,
    /// Scenario files or directories of your own (default: the catalogue).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    let (entries, what) = if args.paths.is_empty() {
        (suite.catalogue()?, "scenario files")
    } else {
        (suite.user_entries(&args.paths)?, "scenario files of yours")
    };
    if args.without_trees {
        load_without_trees(suite, &entries)?;
        println!(
            "{} kernels, {} cells, {} {what}: ok (without kernel trees: `kernel:` programs not resolved)",
            suite.all_kernels.len(),
            suite.all_cells.len(),
            entries.len()
        );
    } else {
        let loaded = suite.load_each(&entries)?;
        println!(
            "{} kernels ({} in this run), {} cells ({} in this run), {} {what}, {loaded} scenario x kernel loads: ok",
            suite.all_kernels.len(),
            suite.kernels.len(),
            suite.all_cells.len(),
            suite.cells.len(),
            entries.len(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn load_without_trees(suite: &Suite, entries: &[Entry]) -> hidvm::Result<()> {
    for e in entries {
        scenarios::load(&suite.repo, e, LoadOptions { kernel_tree: None, bless: false })?;
    }
    Ok(())
}
