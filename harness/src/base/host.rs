//! This machine.

/// Cores on this machine: kernel build jobs.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}
