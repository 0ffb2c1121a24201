//! `hidvm cache-key`: each target's kernel cache key, for naming CI caches.
use hidvm::run::plan::selected_targets;
use hidvm::run::suite::Suite;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long = "cell")]
    cells: Vec<String>,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    for t in selected_targets(suite, &args.cells)? {
        println!("{t} {}", &suite.kernel_cache_key(&t)?[..20]);
    }
    Ok(ExitCode::SUCCESS)
}
