//! What the host hands the guest: written as JSON into the initramfs.
use crate::{DeviceDef, Scenario};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where the job sits in the guest's initramfs.
pub const JOB_PATH: &str = "/hidvm/job.json";
/// Directory holding the compiled fixtures.
pub const FIXTURE_DIR: &str = "/hidvm/fixtures";
/// Directory holding the kernel modules a cell built (cells.toml `modules`).
pub const MODULE_DIR: &str = "/hidvm/modules";

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Kernel cell name, echoed in logs.
    pub cell: String,
    /// Random per run, echoed in Hello: results from any other run (a
    /// stale or shared file) are rejected by the host.
    pub nonce: String,
    /// The host's deadline for the whole VM; the agent sizes its own waits
    /// below it so a stuck step is reported as a failed check, not as a
    /// VM timeout.
    pub deadline_ms: u64,
    /// What the kernel was built with, from its resolved .config: a
    /// detector the config has must answer, or the run fails.
    pub detectors: Detectors,
    pub mode: JobMode,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Detectors {
    /// CONFIG_DEBUG_KMEMLEAK=y.
    pub kmemleak: bool,
}

// One job is built per VM and read once: boxing the scenario buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobMode {
    /// Say hello and end the VM: proves boot, agent and channel work
    /// (used to probe whether KVM actually runs guests).
    Probe,
    Scenario {
        scenario: Scenario,
        /// The scenario's devices, resolved by the host (id -> definition).
        devices: BTreeMap<String, DeviceDef>,
        /// Each fixture the scenario names -> its object in the guest.
        fixtures: BTreeMap<String, GuestFixture>,
        /// What each replay step injects and expects. (A list, not a map by
        /// step: integer map keys do not survive serde's internally tagged
        /// enums in JSON.)
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        replays: Vec<ReplayData>,
        /// `hidvm test --bless`: replay steps record what they see instead of
        /// comparing it; the host writes it to the expectation files.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        bless: bool,
    },
    /// Run a program from the initramfs (the kernel's own selftests:
    /// `hid_bpf`, `hidraw`) and stream its output lines; the host reads its
    /// KTAP results. `passed` in Done is its exit status 0.
    Command {
        argv: Vec<String>,
        /// The working directory (the programs look for files next to them).
        cwd: String,
    },
    /// `hidvm shell`: create these devices, attach the programs of these
    /// attach steps (a scenario's, before its first release), then run an interactive
    /// shell (busybox) on the console until it exits.
    Shell {
        devices: BTreeMap<String, DeviceDef>,
        /// Banner lines shown before the prompt (kernel, fixtures, devices).
        banner: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attach: Vec<crate::steps::Attach>,
        /// The programs the attach steps name.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        fixtures: BTreeMap<String, GuestFixture>,
        /// The hid-tools userspace is attached ([`USERSPACE_DISK`]) with its
        /// bundle: the shell is bash inside it (hid-tools, bpftool, …).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        userspace: bool,
    },
    /// The kernel's hid-tools pytest suite (`hidvm hid-tools`): the
    /// userspace image ([`USERSPACE_DISK`]) under an overlay, the bundle
    /// ([`BUNDLE_DIR`]) laid over it, pytest run chrooted as PID 1's child
    /// with its lines streamed as `Output`; then the health report. `passed`
    /// in Done is pytest's exit status 0.
    Pytest {
        /// pytest's arguments (after `python3 -m pytest` and hidvm's own).
        args: Vec<String>,
        /// Self-test: `udev-hid-bpf remove` leaves the links pinned (its
        /// checks still run, and must fail the test).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        broken_remove: bool,
    },
}

/// The read-only disk holding the hid-tools userspace (erofs).
pub const USERSPACE_DISK: &str = "/dev/vda";
/// Where the host puts the per-kernel bundle in the initramfs: `tree/`
/// (the tree's `tools/testing/selftests/hid/tests` and its compiled
/// `drivers/hid/bpf/progs/*.bpf.o`), `modules/` (`lib/modules/<release>/`
/// as `make modules_install` wrote it), `python/` (the pytest plugin).
/// Inside the userspace it is `/hidvm`.
pub const BUNDLE_DIR: &str = "/hidvm/bundle";
/// pytest's working directory inside the userspace.
pub const PYTEST_DIR: &str = "/hidvm/tree/tools/testing/selftests/hid";
/// The loader's name: the agent binary run under it is udev-hid-bpf.
pub const UDEV_HID_BPF: &str = "udev-hid-bpf";
/// Set (to 1) in pytest's environment by `broken_remove`.
pub const BROKEN_REMOVE_ENV: &str = "HIDVM_UDEV_HID_BPF_BROKEN_REMOVE";

/// Where `hidvm shell` puts busybox.
pub const BUSYBOX_PATH: &str = "/bin/busybox";

/// Where `Command` jobs' programs sit in the initramfs.
pub const PROGRAM_DIR: &str = "/hidvm/programs";

/// A compiled program as the guest loads it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GuestFixture {
    /// The object file in the initramfs.
    pub path: String,
    /// Its HID_BPF_CONFIG table, read from the object's BTF by the host
    /// (empty: the program has none and attaches wherever it is told).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<DeviceMatch>,
}

/// One HID_BPF_CONFIG entry, HID_DEVICE(bus, group, vendor, product); 0 is
/// "any" in every field (udev-hid-bpf's BUS_ANY, HID_GROUP_ANY, ...).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeviceMatch {
    pub bus: u16,
    pub group: u16,
    pub vendor: u32,
    pub product: u32,
}

impl DeviceMatch {
    /// Whether a device with these ids (its modalias) matches the entry.
    pub fn matches(&self, bus: u16, group: u16, vendor: u32, product: u32) -> bool {
        (self.bus == 0 || self.bus == bus)
            && (self.group == 0 || self.group == group)
            && (self.vendor == 0 || self.vendor == vendor)
            && (self.product == 0 || self.product == product)
    }

    /// The same without the group, which only the kernel knows (it scans
    /// the descriptor): what the host can check before booting.
    pub fn matches_ids(&self, bus: u16, vendor: u32, product: u32) -> bool {
        self.matches(bus, self.group, vendor, product)
    }
}

impl std::fmt::Display for DeviceMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let any = |v: u32, w: usize| if v == 0 { "*".repeat(w) } else { format!("{v:0w$X}") };
        write!(
            f,
            "b{}g{}v{}p{}",
            any(self.bus.into(), 4),
            any(self.group.into(), 4),
            any(self.vendor, 8),
            any(self.product, 8)
        )
    }
}

/// A replay step, resolved by the host from the recording and the
/// expectation files.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReplayData {
    /// The replay step this is for (1-based).
    pub step: usize,
    /// The reports to inject, in order.
    pub events: Vec<crate::HexBytes>,
    /// Expected evdev frame per report (see `steps::Frame`); None when
    /// blessing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evdev: Option<Vec<String>>,
    /// Expected hidraw bytes per report ("none" for a dropped one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidraw: Option<Vec<String>>,
}
