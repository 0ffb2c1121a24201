//! Choosing the accelerator. /dev/kvm existing proves nothing: on some
//! hosts QEMU cannot set an MSR, on others the guest dies at its first
//! XSAVE. So KVM is used only after a timed probe boot answered, and the
//! probe's result, good or bad, is remembered per host boot (boot_id) and
//! QEMU version: one probe per machine boot, however many tests run.
use crate::base::layout::{sha256_parts, write_atomic};
use crate::base::lock::{FileLock, Mode};
use crate::vm::feature::Feature;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
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

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ProbeRecord {
    pub accel: Accel,
    pub reason: String,
}

/// Why a KVM probe boot failed. `qemu_ran`: QEMU started and gave its
/// answer (remembered for this host boot); false when the probe failed
/// before QEMU ran (an unwritable run directory, say: try again next time).
#[derive(Debug)]
pub struct ProbeFailure {
    pub reason: String,
    pub qemu_ran: bool,
}

/// Where probe results live, and the device that must open for KVM.
pub struct ProbeStore {
    pub dir: PathBuf,
    pub kvm_device: PathBuf,
}

impl ProbeStore {
    pub fn new(cache: &Path) -> ProbeStore {
        ProbeStore { dir: cache.join("probes"), kvm_device: PathBuf::from("/dev/kvm") }
    }

    fn record_path(&self, qemu_version: &str) -> PathBuf {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let key = &sha256_parts([boot_id.trim().as_bytes(), qemu_version.as_bytes()])[..16];
        self.dir.join(format!("accel-{key}.json"))
    }

    /// The remembered result for this host boot and QEMU, if any.
    pub fn remembered(&self, qemu_version: &str) -> Option<ProbeRecord> {
        std::fs::read_to_string(self.record_path(qemu_version)).ok().and_then(|t| serde_json::from_str(&t).ok())
    }

    /// Forget every remembered probe (`hidvm accel --reprobe`).
    pub fn forget(&self) -> std::io::Result<usize> {
        let mut n = 0;
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("accel-") && name.ends_with(".json") {
                std::fs::remove_file(e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// `HIDVM_ACCEL=kvm|tcg` forces a choice; otherwise TCG unless the KVM
    /// device opens and `probe_kvm` (a real boot under KVM) succeeds, or
    /// succeeded earlier in this host boot.
    pub fn select(
        &self,
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
        if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(&self.kvm_device) {
            return Ok(ProbeRecord {
                accel: Accel::Tcg,
                reason: format!("{} not usable ({e})", self.kvm_device.display()),
            });
        }
        let path = self.record_path(qemu_version);
        let lock = FileLock::acquire(&path.with_extension("lock"), Mode::Exclusive, "the KVM probe")
            .map_err(crate::Error::io("KVM probe lock"))?;
        if let Some(r) = self.remembered(qemu_version) {
            return Ok(r);
        }
        let progress = crate::base::output::start(crate::base::output::Phase::Work {
            what: &format!(
                "probing KVM with a timed boot (at most {} s, once per host boot)",
                PROBE_DEADLINE.as_secs()
            ),
        });
        let (record, remember) = match probe_kvm() {
            Ok(()) => (ProbeRecord { accel: Accel::Kvm, reason: "a probe boot under KVM answered".into() }, true),
            Err(f) => (
                ProbeRecord {
                    accel: Accel::Tcg,
                    reason: format!("KVM probe boot failed ({}); using TCG until the host reboots (`hidvm accel --reprobe` to try again)", f.reason),
                },
                f.qemu_ran,
            ),
        };
        if remember {
            write_atomic(&path, serde_json::to_string(&record).expect("record serializes").as_bytes())
                .map_err(crate::Error::io(format!("remembering the KVM probe in {}", path.display())))?;
        }
        drop(lock);
        progress.finish(&format!("accelerator {}: {}", record.accel.name(), record.reason));
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_that_failed_before_qemu_ran_is_tried_again() {
        if std::env::var("HIDVM_ACCEL").is_ok() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let kvm = d.path().join("kvm");
        std::fs::write(&kvm, "").unwrap();
        let store = ProbeStore { dir: d.path().join("probes"), kvm_device: kvm };
        let failing = || Err(ProbeFailure { reason: "could not write the initramfs".into(), qemu_ran: false });
        assert_eq!(store.select("q", failing).unwrap().accel, Accel::Tcg);
        assert!(store.remembered("q").is_none());
    }
}
