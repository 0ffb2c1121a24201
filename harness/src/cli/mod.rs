//! One file per subcommand: its flags (`Args`) and a thin `run` over the
//! library. `main.rs` parses and dispatches.
pub mod accel;
pub mod bench;
pub mod build;
pub mod cache_key;
pub mod check;
pub mod doctor;
pub mod fetch;
pub mod hid_tools;
pub mod inspect;
pub mod kernels;
pub mod list;
pub mod packages;
pub mod robustness;
pub mod run;
pub mod run_opts;
pub mod selftests;
pub mod shell;
pub mod summary;
pub mod test;
pub mod titles;
pub mod userspace;
pub mod vm_test;

use hidvm::base::error::exit;
use std::process::ExitCode;

/// 0 when everything passed (or failed as known kernel bugs), else 100.
pub fn tests_exit(all_passed: bool) -> ExitCode {
    if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::TESTS_FAILED)
    }
}
