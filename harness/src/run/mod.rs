//! Running things: what each command of `hidvm` does, over the layers
//! below.
//!
//! Bottom to top (a module imports only those above it in this list):
//! * [`suite`]: the run's kernels and cells, kernel trees and builds, the catalogue;
//! * [`kernels`]: `hidvm kernels` and `hidvm fetch`: exact sources and the lock;
//! * [`plan`]: targets x catalogue entries, with skip reasons;
//! * [`prepare`]: kernels built and tests prepared before anything boots;
//! * [`bless`]: `--bless`, replay expectations written;
//! * [`one_test`]: one scenario on one target, end to end;
//! * [`pool`]: many tests at once;
//! * [`pipeline`]: kernels built one at a time while the ready targets' tests run;
//! * [`repeat`]: how a test's rounds ended, and flaky tests;
//! * [`batch`]: `vm-test` and `test`: build, prepare, rounds, matrix, results files;
//! * [`kselftest`]: the kernel's own HID selftests;
//! * [`hidtools`]: the kernel's hid-tools pytest suite;
//! * [`shell`]: an interactive guest;
//! * [`inspect`]: a program's HID_BPF_CONFIG, its matches and its probe's answers;
//! * [`doctor`]: this machine checked;
//! * [`bench_cold`]: a fresh clone's `make vm-test`, and kernels rebuilt after a point release;
//! * [`bench_goals`]: the speed goals beside what was measured;
//! * [`robustness`], [`bench`]: the commands that print the README's numbers.
pub mod batch;
pub mod bench;
pub mod bench_cold;
pub mod bench_goals;
pub mod bless;
pub mod doctor;
pub mod hidtools;
pub mod inspect;
pub mod kernels;
pub mod kselftest;
pub mod one_test;
pub mod pipeline;
pub mod plan;
pub mod pool;
pub mod prepare;
pub mod repeat;
pub mod robustness;
pub mod shell;
pub mod suite;
