//! Steps that poke the kernel itself: sysctls, lkdtm faults, waiting.
use crate::run::Outcome;
use std::time::Duration;

const LKDTM: &str = "/sys/kernel/debug/provoke-crash/DIRECT";

pub fn sleep(ms: u64) -> Outcome {
    std::thread::sleep(Duration::from_millis(ms));
    Outcome::default()
}

pub fn sysctl(name: &str, value: &str) -> Outcome {
    let mut o = Outcome::default();
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    match std::fs::write(&path, value) {
        Ok(()) => o.check(format!("write {path}"), value, value, true),
        Err(e) => o.check(format!("write {path}"), value, e.to_string(), false),
    }
    o
}

/// Write the crash type to lkdtm from a thread: some (HUNG_TASK, PANIC)
/// never return. The step itself succeeds once the write was issued; what
/// the kernel does about it is the host's to judge from the console.
pub fn lkdtm(crash: &str, wait_ms: u64) -> Outcome {
    let mut o = Outcome::default();
    if !std::path::Path::new(LKDTM).exists() {
        return Outcome::fail(format!("{LKDTM} is missing: the kernel needs CONFIG_LKDTM and debugfs"));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let crash_type = crash.to_string();
    std::thread::spawn(move || {
        let r = std::fs::write(LKDTM, &crash_type);
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_millis(wait_ms)) {
        Ok(Ok(())) => o.notes.push(format!("lkdtm {crash}: the write returned")),
        Ok(Err(e)) => o.error = Some(format!("lkdtm refused {crash}: {e} (see /sys/kernel/debug/provoke-crash/ for the crash types this kernel has)")),
        Err(_) => o.notes.push(format!("lkdtm {crash}: the write is still blocked after {wait_ms} ms")),
    }
    o
}
