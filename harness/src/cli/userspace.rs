//! `hidvm userspace`: the hid-tools userspace image built into the cache
//! if it is missing (part of `make setup`; needs root and the network).
use hidvm::run::suite::Suite;
use hidvm::vm::userspace;
use std::process::ExitCode;

pub fn run(suite: &Suite) -> hidvm::Result<ExitCode> {
    let (path, built) = userspace::ensure(&suite.repo, &suite.cache)?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let pip = std::fs::read_to_string(format!("{}.pip-manifest", path.display())).unwrap_or_default();
    let pick = |name: &str| pip.lines().find(|l| l.to_lowercase().starts_with(name)).unwrap_or(name).to_string();
    println!(
        "hid-tools userspace{}: {} ({:.1} MB; {}, {}, {})",
        if built { " built" } else { "" },
        path.display(),
        size as f64 / 1e6,
        pick("hid-tools "),
        pick("pytest "),
        pick("libevdev ")
    );
    Ok(ExitCode::SUCCESS)
}
