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
pub mod agent;
pub mod allowlist;
pub mod bench;
pub mod cell;
pub mod console;
pub mod debian;
pub mod doctor;
pub mod error;
pub mod fixtures;
pub mod initramfs;
pub mod kbuild;
pub mod kconfig;
pub mod kernel_src;
pub mod kernels;
pub mod known;
pub mod kselftest;
pub mod layout;
pub mod lock;
pub mod matrix;
pub mod output;
pub mod patches;
pub mod prebuilt;
pub mod qemu;
pub mod recording;
pub mod repeat;
pub mod report;
pub mod results;
pub mod robustness;
pub mod scenarios;
pub mod shell;
pub mod suite;
pub mod symbolize;
pub mod title;
pub mod toolfloor;
pub mod tools;
pub mod verdict;

pub use error::{Error, Result};

/// Cores on this machine: kernel build jobs.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// VMs at a time by default: one and a half per core. A test's guest spends
/// much of its time waiting (for work items, settles, quiet periods), not
/// computing: with one VM per core the 6.12 catalogue used 59% of two cores
/// under TCG and took 188-202 s; with three VMs, 139 s; with four, 126 s
/// and race rounds slowed by the contention (docs/measurements.md).
pub fn default_vms() -> usize {
    let c = cores();
    c + c.div_ceil(2)
}
