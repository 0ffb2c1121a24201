//! Booting one guest: the VM's features, its files in a run directory, and
//! the KVM probe boot.
use crate::base::error::{Error, Result};
use crate::base::tools;
use crate::vm::accel::{self, Accel, ProbeFailure, ProbeRecord, ProbeStore};
use crate::vm::feature::{
    Console, DeliveryPort, ExitOnReboot, ExtraKernelArgs, Feature, Initramfs as InitrdFeature, Kernel, MicroVm,
    PanicEndsVm, QmpMonitor, RamFile, ReliableTsc, ResultPort,
};
use crate::vm::initramfs::Initramfs;
use crate::vm::machine::{Vm, VmOutcome};
use crate::vm::snapshot::{self, Restore, Snapshot, Template, VmPaths};
use hidvm_proto::job::Detectors;
use hidvm_proto::{GuestMsg, Job, JobMode, JOB_PATH};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a boot left behind: QEMU's outcome, the result channel and the console.
pub struct BootResult {
    pub outcome: VmOutcome,
    pub results_text: String,
    pub console_text: String,
}

/// Every hidvm VM's features; `template` adds the delivery port of
/// snapshot templates and their restored copies.
fn features(image: &Path, accel: Accel, paths: &VmPaths, template: bool) -> Vec<Box<dyn Feature>> {
    let mut f: Vec<Box<dyn Feature>> = vec![
        Box::new(MicroVm { memory_mib: MEMORY_MIB, cpus: 2 }),
        Box::new(accel),
        Box::new(Kernel { image: image.to_path_buf() }),
        Box::new(InitrdFeature { cpio: paths.initrd.clone() }),
        Box::new(Console { socket: paths.console_socket.clone() }),
        Box::new(QmpMonitor { socket: paths.qmp_socket.clone() }),
        Box::new(ResultPort { file: paths.results.clone() }),
        Box::new(ExitOnReboot),
        Box::new(PanicEndsVm),
        Box::new(ReliableTsc),
        Box::new(ExtraKernelArgs::from_env()),
    ];
    if template {
        f.push(Box::new(DeliveryPort { socket: paths.delivery_socket.clone() }));
        f.push(Box::new(RamFile { path: paths.ram.clone(), memory_mib: MEMORY_MIB, share: paths.ram_shared }));
    }
    f
}

/// Guest memory.
const MEMORY_MIB: u32 = 512;

/// This run's paths: files in `dir`, sockets in `sockets` (unix socket
/// paths are limited to 108 bytes, so those live in /tmp).
fn run_paths(dir: &Path, sockets: &Path, initrd: PathBuf, ram: PathBuf) -> VmPaths {
    VmPaths {
        initrd,
        ram,
        // Only a template writes its RAM file; a test's view is private.
        ram_shared: false,
        console_socket: sockets.join("console"),
        qmp_socket: sockets.join("qmp"),
        results: dir.join("results.jsonl"),
        delivery_socket: sockets.join("delivery"),
    }
}

fn socket_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("hidvm-").tempdir_in("/tmp").map_err(Error::io("socket directory"))
}

/// Boot `image` with initramfs `fs`; console and results land in `dir`.
/// `extra` replaces a default feature of the same kind (a [`MicroVm`] with
/// more memory) or adds one (a disk).
pub fn boot(
    qemu: &Path,
    image: &Path,
    fs: &Initramfs,
    accel: Accel,
    deadline: Duration,
    dir: &Path,
    extra: Vec<Box<dyn Feature>>,
) -> Result<BootResult> {
    let sockets = socket_dir()?;
    let paths = run_paths(dir, sockets.path(), dir.join("initramfs.cpio"), PathBuf::new());
    let bytes = fs.to_bytes().map_err(Error::io("assembling the initramfs"))?;
    std::fs::write(&paths.initrd, bytes).map_err(Error::io(format!("writing {}", paths.initrd.display())))?;
    let mut f = features(image, accel, &paths, false);
    for e in extra {
        let kind = feature_kind(e.as_ref());
        f.retain(|d| feature_kind(d.as_ref()) != kind);
        f.push(e);
    }
    run_vm(qemu, f, &paths, deadline, dir, None, "")
}

/// A feature's type name (`MicroVm { memory_mib: 512, .. }` -> `MicroVm`).
fn feature_kind(f: &dyn Feature) -> String {
    let debug = format!("{f:?}");
    debug.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or_default().to_string()
}

fn run_vm(
    qemu: &Path,
    features: Vec<Box<dyn Feature>>,
    paths: &VmPaths,
    deadline: Duration,
    dir: &Path,
    restore: Option<Restore>,
    console_before: &str,
) -> Result<BootResult> {
    let console_log = dir.join("console.log");
    let vm = Vm {
        qemu: qemu.to_path_buf(),
        features,
        deadline,
        console_socket: paths.console_socket.clone(),
        console_log: console_log.clone(),
        qmp_socket: Some(paths.qmp_socket.clone()),
        restore,
        results: Some(paths.results.clone()),
    };
    let _ = std::fs::write(dir.join("qemu-command.txt"), vm.args().join("\n"));
    let outcome = vm.run().map_err(Error::io(format!("running {}", qemu.display())))?;
    let results_text = std::fs::read_to_string(&paths.results).unwrap_or_default();
    let after = String::from_utf8_lossy(&std::fs::read(&console_log).unwrap_or_default()).into_owned();
    let console_text = format!("{console_before}{after}");
    if !console_before.is_empty() {
        let _ = std::fs::write(&console_log, &console_text);
    }
    Ok(BootResult { outcome, results_text, console_text })
}

/// The snapshot a test on `image` starts from: booted with `template_fs`
/// (the agent and the cell's modules, no job) and frozen, or found cached.
/// `generation`: 0 for the shared template, N for a fresh one (see
/// [`Template::generation`]).
pub fn snapshot_for(
    cache: &Path,
    qemu: &Path,
    image: &Path,
    template_fs: &Initramfs,
    accel: Accel,
    generation: u32,
) -> Result<Snapshot> {
    let build = |p: &VmPaths| features(image, accel, p, true);
    snapshot::ensure(cache, &Template { qemu, image, initramfs: template_fs, accel, features: &build, generation })
}

/// Run one test from `snap`: its job and fixtures (`files`: guest path,
/// mode, bytes) are delivered once the frozen guest runs again. When the
/// restore itself failed, the outcome says why (`restore_failed`) and the
/// console holds what the restored guest printed before it: the caller
/// judges that before booting cold.
pub fn boot_restored(
    qemu: &Path,
    image: &Path,
    snap: &Snapshot,
    files: &[(String, u32, Vec<u8>)],
    accel: Accel,
    deadline: Duration,
    dir: &Path,
) -> Result<BootResult> {
    let sockets = socket_dir()?;
    let paths = run_paths(dir, sockets.path(), snap.initrd(), snap.ram());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut entropy = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut entropy))
        .map_err(Error::io("reading /dev/urandom"))?;
    let delivery = hidvm_proto::delivery::encode(now.as_nanos() as u64, entropy, files);
    let restore = Restore {
        state: snap.state(),
        delivery_socket: paths.delivery_socket.clone(),
        delivery,
        results: paths.results.clone(),
    };
    let boot_log = std::fs::read_to_string(snap.boot_console()).unwrap_or_default();
    let before = format!("{boot_log}[hidvm: guest frozen here as snapshot {}{RESTORED}\n", snap.key);
    run_vm(qemu, features(image, accel, &paths, true), &paths, deadline, dir, Some(restore), &before)
}

/// Ends the line a restored guest's console log carries between the
/// snapshot's boot log and what this test's guest printed.
const RESTORED: &str = "; restored for this test]";

/// What a restored guest printed itself: its console log after the
/// snapshot's boot log, or None if the log has no restore marker.
pub fn restored_part(console: &str) -> Option<&str> {
    console.split_once(RESTORED).map(|(_, own)| own)
}

/// KVM only if a timed probe boot under KVM answers (once per host boot,
/// remembered in `cache`); the probe boots `image` with `agent` for `cell`.
pub fn accelerator(
    cache: &Path,
    qemu: &Path,
    image: &Path,
    cell: &str,
    agent: &[u8],
    run_dir: &Path,
) -> Result<ProbeRecord> {
    let qemu_version = tools::version_line(&qemu.display().to_string(), &["--version"])?;
    ProbeStore::new(cache).select(&qemu_version, || probe_kvm(qemu, image, agent, cell, &run_dir.join("kvm-probe")))
}

/// One boot under KVM that must end with the agent's "probe" verdict.
/// A failure after QEMU ran is QEMU's or KVM's answer about this host (it
/// is remembered); one before QEMU ran (no initramfs written, say) is not.
pub fn probe_kvm(
    qemu: &Path,
    image: &Path,
    agent: &[u8],
    cell: &str,
    dir: &Path,
) -> std::result::Result<(), ProbeFailure> {
    let before_qemu = |reason: String| ProbeFailure { reason, qemu_ran: false };
    std::fs::create_dir_all(dir).map_err(|e| before_qemu(format!("creating {}: {e}", dir.display())))?;
    let mut fs = Initramfs::with_agent(agent);
    let job = Job {
        cell: cell.to_string(),
        nonce: format!("kvm-probe-{}", std::process::id()),
        deadline_ms: accel::PROBE_DEADLINE.as_millis() as u64,
        detectors: Detectors::default(),
        mode: JobMode::Probe,
    };
    fs.file(JOB_PATH, 0o644, serde_json::to_vec(&job).expect("job serializes"));
    let booted = boot(qemu, image, &fs, Accel::Kvm, accel::PROBE_DEADLINE, dir, Vec::new())
        .map_err(|e| before_qemu(e.to_string()))?;
    let answered = booted
        .results_text
        .lines()
        .filter_map(GuestMsg::from_line)
        .any(|m| matches!(m, Ok(GuestMsg::Done { passed: true, .. })));
    if answered {
        return Ok(());
    }
    Err(ProbeFailure { reason: probe_failure_reason(&booted.outcome, &booted.console_text), qemu_ran: true })
}

/// Why a probe boot failed, from everything QEMU printed (its last lines
/// are often a register dump that says nothing), then from the console.
pub fn probe_failure_reason(outcome: &VmOutcome, console: &str) -> String {
    let said: Vec<&str> = outcome.qemu_output.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let telling = said
        .iter()
        .find(|l| l.to_lowercase().contains("kvm"))
        .or_else(|| said.iter().find(|l| l.to_lowercase().contains("error")))
        .or_else(|| said.first());
    match telling {
        Some(line) => format!("QEMU under KVM: {line}"),
        None if outcome.timed_out && console.trim().is_empty() => {
            format!("no console output within {} s under KVM", accel::PROBE_DEADLINE.as_secs())
        }
        None if outcome.timed_out => {
            format!("the guest did not answer within {} s under KVM", accel::PROBE_DEADLINE.as_secs())
        }
        None => "QEMU ended before the guest answered, without a message".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in QEMU that counts its runs and fails like KVM does on a
    /// host whose guest dies at its first XSAVE.
    fn fake_qemu(dir: &Path) -> (PathBuf, PathBuf) {
        let count = dir.join("qemu-runs");
        let script = dir.join("qemu-system-x86_64");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho run >> {}\ncat <<'EOF' >&2\n{}\nEOF\nexit 1\n",
                count.display(),
                KVM_XSAVE_FAILURE
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        (script, count)
    }

    fn runs(count: &Path) -> usize {
        std::fs::read_to_string(count).map(|s| s.lines().count()).unwrap_or(0)
    }

    #[test]
    fn a_failed_probe_boot_is_remembered_and_not_repeated() {
        if std::env::var("HIDVM_ACCEL").is_ok() {
            return; // forced: select() never probes, nothing to test
        }
        let d = tempfile::tempdir().unwrap();
        let (qemu, count) = fake_qemu(d.path());
        let kvm = d.path().join("kvm");
        std::fs::write(&kvm, "").unwrap();
        let store = ProbeStore { dir: d.path().join("probes"), kvm_device: kvm };
        let image = d.path().join("vmlinux");
        let probe = || probe_kvm(&qemu, &image, b"agent", "gcc", &d.path().join("run"));
        let first = store.select("QEMU emulator version 7.2", probe).unwrap();
        assert_eq!(first.accel, Accel::Tcg);
        assert!(first.reason.contains("KVM internal error. Suberror: 1"), "{}", first.reason);
        assert_eq!(runs(&count), 1);
        // The second selection must not boot anything.
        let second = store.select("QEMU emulator version 7.2", probe).unwrap();
        assert_eq!(second, first);
        assert_eq!(runs(&count), 1, "the probe ran again");
        // --reprobe forgets it; then the next selection probes once more.
        assert_eq!(store.forget().unwrap(), 1);
        store.select("QEMU emulator version 7.2", probe).unwrap();
        assert_eq!(runs(&count), 2);
    }

    /// A stand-in QEMU for a restore that goes wrong: it opens the console
    /// socket, prints a kernel report on it, and exits 1 without ever
    /// opening the monitor.
    fn dying_qemu(dir: &Path) -> PathBuf {
        let script = dir.join("qemu-dies");
        std::fs::write(
            &script,
            r#"#!/usr/bin/env python3
import socket, sys, re
path = next(re.search(r"path=([^,]+),server=on,wait=on", a).group(1) for a in sys.argv if "wait=on" in a)
s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen(1)
c, _ = s.accept()
c.sendall(b"[    9.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008\n")
c.close()
sys.exit(1)
"#,
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn a_restore_whose_qemu_exits_fails_at_once_and_keeps_its_console() {
        let d = tempfile::tempdir().unwrap();
        let qemu = dying_qemu(d.path());
        let snap = Snapshot { key: "k".into(), dir: d.path().join("snap") };
        std::fs::create_dir_all(&snap.dir).unwrap();
        std::fs::write(snap.boot_console(), "[    1.0] boot log\n").unwrap();
        std::fs::write(snap.state(), "").unwrap();
        let run = d.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        let started = std::time::Instant::now();
        let booted =
            boot_restored(&qemu, Path::new("/vmlinux"), &snap, &[], Accel::Tcg, Duration::from_secs(60), &run).unwrap();
        let why = booted.outcome.restore_failed.clone().expect("the restore failed");
        assert!(why.contains("QEMU exited while restoring"), "{why}");
        assert!(started.elapsed() < Duration::from_secs(10), "noticed at once, not after the answer timeout");
        // What the restored guest printed is kept, after the template's boot log.
        let own = restored_part(&booted.console_text).unwrap_or_default();
        assert!(own.contains("BUG: kernel NULL pointer dereference"), "{}", booted.console_text);
        assert!(booted.console_text.starts_with("[    1.0] boot log"));
    }

    #[test]
    fn an_extra_feature_replaces_the_default_of_its_kind() {
        let big: Box<dyn Feature> = Box::new(MicroVm { memory_mib: 2048, cpus: 2 });
        assert_eq!(feature_kind(big.as_ref()), "MicroVm");
        assert_eq!(feature_kind(&ReliableTsc), "ReliableTsc");
        assert_eq!(feature_kind(&Accel::Tcg), "Tcg", "an enum's kind is its variant: never equal to a struct's");
    }

    #[test]
    fn the_telling_line_is_found_above_a_register_dump() {
        let outcome = VmOutcome {
            status: None,
            timed_out: false,
            elapsed: Duration::from_secs(1),
            qemu_output: KVM_XSAVE_FAILURE.into(),
            restore_failed: None,
            stuck_after_verdict: false,
            first_answer: None,
            phases: Vec::new(),
        };
        assert_eq!(probe_failure_reason(&outcome, ""), "QEMU under KVM: KVM internal error. Suberror: 1");
        let msr =
            VmOutcome { qemu_output: "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0".into(), ..outcome };
        assert_eq!(
            probe_failure_reason(&msr, ""),
            "QEMU under KVM: qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0"
        );
    }

    /// What QEMU printed on a host whose KVM dies at the guest's first XSAVE.
    const KVM_XSAVE_FAILURE: &str = "KVM internal error. Suberror: 1\n\
        extra data[0]: 0x0000000000000000\n\
        emulation failure\n\
        RAX=0000000000000007 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000\n\
        RSI=0000000000000000 RDI=0000000000000000 RBP=0000000000000000 RSP=ffffffff82603e88\n\
        EFER=0000000000000d01\n\
        Code=0f 1f 44 00 00 48 c7 c7 00 00 00 00 <0f> ae 27 c3 cc cc cc cc";
}
