//! hidvm host harness: builds one kernel per cell, boots it in QEMU with the
//! guest agent and a scenario, and decides pass/fail.
//!
//! One concern per module:
//! * [`layout`]: where the repository and the cache live;
//! * [`lock`]: file locks shared by concurrent test processes;
//! * [`tools`]: host tools and the apt packages that provide them;
//! * [`kernels`]: kernels (`guest-image/kernels.toml`) and targets (kernel x cell);
//! * [`kernel_src`]: a kernel's tree (a Debian tarball, or `HIDVM_KERNEL_SRC`);
//! * [`debian`]: Debian source packages, fetched without installing anything;
//! * [`cell`]: kernel cells (`guest-image/cells.toml`);
//! * [`kconfig`]: fragment merging and the requested-vs-resolved check;
//! * [`kbuild`]: per-cell cached kernel builds;
//! * [`fixtures`]: HID-BPF fixtures compiled against a cell's BTF;
//! * [`agent`]: the static guest agent binary;
//! * [`initramfs`]: the guest's cpio archive;
//! * [`qemu`]: VM features, the KVM probe and running a VM;
//! * [`scenarios`]: loading scenarios (the catalogue, or files given to `hidvm test`);
//! * [`recording`]: hid-recorder files (devices and their reports);
//! * [`console`]: splat patterns and step attribution in the kernel log;
//! * [`allowlist`]: known, accepted splats;
//! * [`known`]: known kernel bugs a scenario shows on purpose;
//! * [`verdict`]: turning a VM's output into pass/fail;
//! * [`suite`]: one scenario on one cell, end to end;
//! * [`report`]: what a run found, rendered as a step log;
//! * [`matrix`]: the scenario x cell summary;
//! * [`bench`], [`robustness`]: the commands that print the README's numbers.
pub mod base;
pub mod catalogue;
pub mod judge;
pub mod kernel;
pub mod results;
pub mod run;
pub mod vm;

pub use base::error::{Error, Result};
