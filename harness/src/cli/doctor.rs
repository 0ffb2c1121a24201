//! `hidvm doctor`: this machine checked, and what to fix.
use hidvm::base::error::exit;
use hidvm::run::doctor;
use hidvm::run::suite::Suite;
use std::process::ExitCode;

pub fn run(suite: &Suite) -> hidvm::Result<ExitCode> {
    let fine = doctor::report(&doctor::check(suite));
    Ok(if fine { ExitCode::SUCCESS } else { ExitCode::from(exit::COULD_NOT_RUN) })
}
