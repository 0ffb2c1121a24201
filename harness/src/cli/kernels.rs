//! `hidvm kernels [--update]`: every kernel with its exact source label,
//! what the lock says and where its source is; `--update` moves the lock
//! to what Debian's suites carry now and says what changed.
use hidvm::run::kernels;
use hidvm::run::suite::Suite;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Move guest-image/kernels.lock to the newest version each kernel's
    /// suite carries (`newest`: the highest linux-source-X.Y of the suites
    /// kernels.toml lists), fetching what is new; print what changed.
    #[arg(long)]
    update: bool,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    if args.update {
        let file = suite.repo.kernels_file();
        let (pins, changes) = kernels::update(&suite.cache, &file, &suite.pins, suite.index())?;
        for (name, change) in &changes {
            println!("{}", change.describe(name));
        }
        if pins != suite.pins {
            kernels::write(suite, &pins)?;
            println!("wrote {}", hidvm::kernel::lockfile::path_for(&file).display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let shown = kernels::show(suite);
    let w = |f: fn(&kernels::Shown) -> &str| shown.iter().map(|s| f(s).len()).max().unwrap_or(0);
    let (wn, wl) = (w(|s| &s.name).max(6), w(|s| &s.label).max(5));
    println!("{:<wn$}  {:<wl$}  lock / source", "kernel", "label");
    for s in &shown {
        println!("{:<wn$}  {:<wl$}  {}", s.name, s.label, s.lock);
        if !s.place.is_empty() {
            println!("{:<wn$}  {:<wl$}  {}", "", "", s.place);
        }
    }
    Ok(ExitCode::SUCCESS)
}
