//! `hidvm packages`: the Debian packages hidvm needs (for setup scripts).
use hidvm::kernel::packages::all_packages;
use std::process::ExitCode;

pub fn run() -> hidvm::Result<ExitCode> {
    println!("{}", all_packages().join(" "));
    Ok(ExitCode::SUCCESS)
}
