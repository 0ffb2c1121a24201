//! Waiting budgets derived from the host's VM deadline: the agent gives up
//! on a wait early enough to report the failed check itself, instead of
//! leaving the host with a bare VM timeout.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static VM_DEADLINE_MS: AtomicU64 = AtomicU64::new(60_000);

pub fn set_vm_deadline(d: Duration) {
    if !d.is_zero() {
        VM_DEADLINE_MS.store(d.as_millis() as u64, Ordering::SeqCst);
    }
}

/// `fraction` of the VM deadline, capped at `cap`.
pub fn share(fraction: u64, cap: Duration) -> Duration {
    Duration::from_millis(VM_DEADLINE_MS.load(Ordering::SeqCst) / fraction).min(cap)
}

/// How long to wait for device nodes after a (re-)probe.
pub fn node_wait() -> Duration {
    share(6, Duration::from_secs(10))
}
