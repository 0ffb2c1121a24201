//! Choosing the accelerator. /dev/kvm existing proves nothing: on some
//! hosts KVM guests hang in firmware, or `-cpu host` aborts QEMU. So KVM is
//! used only after a timed probe boot answered, and the probe's result is
//! remembered per host boot (boot_id) and QEMU version.
use super::Feature;
use crate::layout::{sha256_parts, write_atomic};
use crate::lock::{FileLock, Mode};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// Rough slowdown factor used to scale deadlines.
    pub fn slowness(self) -> u32 {
        match self {
            Accel::Kvm => 1,
            Accel::Tcg => 10,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl Feature for Accel {
    fn qemu_args(&self) -> Vec<String> {
        match self {
            Accel::Kvm => vec!["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()],
            // Multi-threaded TCG: one host thread per vCPU.
            Accel::Tcg => vec!["-accel".into(), "tcg,thread=multi".into()],
        }
    }
}

/// How long a KVM probe boot may take before KVM is declared unusable.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(20);

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ProbeRecord {
    pub accel: Accel,
    pub reason: String,
}

/// Why a KVM probe boot failed, and whether KVM itself is to blame (then
/// the result is remembered for this host boot; otherwise the next run
/// probes again).
pub struct ProbeFailure {
    pub reason: String,
    pub kvm_at_fault: bool,
}

/// `HIDVM_ACCEL=kvm|tcg` forces a choice; otherwise TCG unless /dev/kvm is
/// usable and `probe_kvm` (a real boot under KVM) succeeds.
pub fn select(
    cache: &Path,
    qemu_version: &str,
    probe_kvm: impl FnOnce() -> Result<(), ProbeFailure>,
) -> crate::Result<ProbeRecord> {
    match std::env::var("HIDVM_ACCEL").as_deref() {
        Ok("kvm") => return Ok(ProbeRecord { accel: Accel::Kvm, reason: "forced by HIDVM_ACCEL=kvm".into() }),
        Ok("tcg") => return Ok(ProbeRecord { accel: Accel::Tcg, reason: "forced by HIDVM_ACCEL=tcg".into() }),
        Ok("") | Err(_) => {}
        Ok(other) => {
            return Err(crate::Error::Other(format!(
                "HIDVM_ACCEL={other} is not an accelerator: use `kvm`, `tcg`, or unset it to probe"
            )))
        }
    }
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return Ok(ProbeRecord { accel: Accel::Tcg, reason: format!("/dev/kvm not usable ({e})") });
    }
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let key = &sha256_parts([boot_id.trim().as_bytes(), qemu_version.as_bytes()])[..16];
    let path = cache.join("probes").join(format!("accel-{key}.json"));
    let lock = FileLock::acquire(&path.with_extension("lock"), Mode::Exclusive, "the KVM probe");
    if let Some(r) = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()) {
        return Ok(r);
    }
    eprintln!("hidvm: probing KVM with a timed boot (at most {} s, once per host boot)", PROBE_DEADLINE.as_secs());
    let (record, remember) = match probe_kvm() {
        Ok(()) => (ProbeRecord { accel: Accel::Kvm, reason: "a probe boot under KVM answered".into() }, true),
        Err(f) => (ProbeRecord { accel: Accel::Tcg, reason: format!("KVM probe boot failed ({}); using TCG", f.reason) }, f.kvm_at_fault),
    };
    if remember {
        let _ = write_atomic(&path, serde_json::to_string(&record).unwrap_or_default().as_bytes());
    }
    drop(lock);
    eprintln!("hidvm: accelerator {}: {}", record.accel.name(), record.reason);
    Ok(record)
}
