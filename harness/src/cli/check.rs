//! `hidvm check`: kernels, cells, fragments and every scenario validated
//! without booting.
use hidvm::catalogue::scenarios::{self, LoadOptions};
use hidvm::run::plan::load_all;
use hidvm::run::suite::Suite;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Do not unpack or fetch kernel trees: `kernel:` programs are not
    /// resolved (a quick lint; the full check resolves them).
    #[arg(long)]
    without_trees: bool,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    if args.without_trees {
        let entries = suite.catalogue()?;
        for e in &entries {
            scenarios::load(&suite.repo, e, LoadOptions { kernel_tree: None, bless: false })?;
        }
        println!(
            "{} kernels, {} cells, {} scenario files: ok (without kernel trees: `kernel:` programs not resolved)",
            suite.all_kernels.len(),
            suite.all_cells.len(),
            entries.len()
        );
    } else {
        let loaded = load_all(suite)?;
        println!(
            "{} kernels ({} in this run), {} cells ({} in this run), {} scenario files, {loaded} scenario x kernel loads: ok",
            suite.all_kernels.len(),
            suite.kernels.len(),
            suite.all_cells.len(),
            suite.cells.len(),
            suite.catalogue()?.len(),
        );
    }
    Ok(ExitCode::SUCCESS)
}
