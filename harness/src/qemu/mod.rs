//! QEMU: the VM is the sum of its features (the lmb/vimto idea): each
//! feature contributes QEMU arguments and kernel command-line arguments.
pub mod accel;
pub mod boot;
pub mod feature;
pub mod qmp;
pub mod snapshot;
pub mod vm;

pub use accel::Accel;
pub use feature::Feature;
pub use vm::{Vm, VmOutcome};
