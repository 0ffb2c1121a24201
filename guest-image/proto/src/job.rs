//! What the host hands the guest: written as JSON into the initramfs.
use crate::Scenario;
use serde::{Deserialize, Serialize};

/// Where the job sits in the guest's initramfs.
pub const JOB_PATH: &str = "/hidvm/job.json";
/// Directory holding the compiled fixtures (`<name>.bpf.o`).
pub const FIXTURE_DIR: &str = "/hidvm/fixtures";

#[derive(Serialize, Deserialize, Clone, Debug)]
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
    pub mode: JobMode,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum JobMode {
    /// Say hello and end the VM: proves boot, agent and channel work
    /// (used to probe whether KVM actually runs guests).
    Probe,
    Scenario { scenario: Scenario },
}
