//! `hidvm fetch`: the run's Debian kernel sources, exactly as
//! guest-image/kernels.lock pins them, into the cache (or found there or
//! installed).
use hidvm::run::kernels;
use hidvm::run::suite::Suite;
use std::process::ExitCode;

pub fn run(suite: &Suite) -> hidvm::Result<ExitCode> {
    for line in kernels::fetch(suite, suite.index())? {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
