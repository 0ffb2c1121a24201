//! This machine.

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
