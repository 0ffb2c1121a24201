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
        /// Each fixture the scenario names -> its object file in the guest.
        fixtures: BTreeMap<String, String>,
    },
}
