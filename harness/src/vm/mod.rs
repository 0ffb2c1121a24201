//! Virtual machines: QEMU is the sum of its features (the lmb/vimto idea:
//! each feature contributes QEMU arguments and kernel command-line
//! arguments), started with a deadline, restored from a snapshot or booted
//! cold, with the guest's files in an initramfs.
//!
//! Bottom to top (a module imports only those above it in this list):
//! * [`feature`]: VM features as values;
//! * [`qmp`]: the QEMU monitor;
//! * [`process`]: QEMU as a child process that dies with hidvm;
//! * [`accel`]: KVM or TCG, and the remembered probe result;
//! * [`initramfs`]: the guest's cpio archive;
//! * [`agent`]: the static guest agent binary;
//! * [`userspace`]: the hid-tools userspace image (built, cached, found);
//! * [`snapshot_prune`]: removing snapshots no run has used for a week;
//! * [`snapshot`]: freezing a booted guest and restoring it;
//! * [`machine`]: one VM run with a deadline, and its outcome;
//! * [`boot`]: booting one guest (cold, restored, or the KVM probe).
pub mod accel;
pub mod agent;
pub mod boot;
pub mod feature;
pub mod initramfs;
pub mod machine;
pub mod process;
pub mod qmp;
pub mod snapshot;
pub mod snapshot_prune;
pub mod userspace;
