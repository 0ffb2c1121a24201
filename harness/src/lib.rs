//! hidvm host harness: builds one kernel per cell, boots it in QEMU with the
//! guest agent and a scenario, and decides pass/fail.
//!
//! The folders are layers, bottom to top; a module imports only its own
//! layer and those below it, never in a circle (`harness/tests/layers.rs`
//! checks it; docs/design.md has the table):
//! * [`base`]: errors, paths, locks, output, host tools, cores;
//! * [`kernel`]: kernels and cells, their trees, patches and cached builds;
//! * [`vm`]: QEMU: features, the KVM probe, snapshots, booting a guest;
//! * [`judge`]: splats, the guest's report, the verdict, known failures;
//! * [`catalogue`]: scenarios, their programs and recordings (what to test);
//! * [`results`]: reports, the matrix, results files, KTAP (what was found);
//! * [`run`]: what each command does over the layers below.
//!
//! The `hidvm` binary's `cli/` sits on top: one file per subcommand.
pub mod base;
pub mod catalogue;
pub mod judge;
pub mod kernel;
pub mod results;
pub mod run;
pub mod vm;

pub use base::error::{Error, Result};
