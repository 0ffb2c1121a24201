//! Running things: what each command of `hidvm` does, over the layers
//! below.
//!
//! Bottom to top (a module imports only those above it in this list):
//! * [`suite`]: the run's kernels and cells, kernel trees and builds, the catalogue;
//! * [`plan`]: targets x catalogue entries, with skip reasons;
//! * [`prepare`]: kernels built and tests prepared before anything boots;
//! * [`bless`]: `--bless`, replay expectations written;
//! * [`one_test`]: one scenario on one target, end to end;
//! * [`pool`]: many tests at once;
//! * [`repeat`]: how a test's rounds ended, and flaky tests;
//! * [`batch`]: `vm-test` and `test`: build, prepare, rounds, matrix, results files;
//! * [`kselftest`]: the kernel's own HID selftests;
//! * [`hidtools`]: the kernel's hid-tools pytest suite;
//! * [`shell`]: an interactive guest;
//! * [`doctor`]: this machine checked;
//! * [`robustness`], [`bench`]: the commands that print the README's numbers.
pub mod batch;
pub mod bench;
pub mod bless;
pub mod doctor;
pub mod hidtools;
pub mod kselftest;
pub mod one_test;
pub mod plan;
pub mod pool;
pub mod prepare;
pub mod repeat;
pub mod robustness;
pub mod shell;
pub mod suite;
