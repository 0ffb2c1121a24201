//! Booting one guest: the VM's features, its files in a run directory, and
//! the KVM probe boot.
use super::accel::{self, Accel, ProbeFailure};
use super::feature::{
    Console, ExitOnReboot, ExtraKernelArgs, Initramfs as InitrdFeature, Kernel, MicroVm, PanicEndsVm, QmpMonitor,
    ResultPort,
};
use super::{Feature, Vm, VmOutcome};
use crate::error::{Error, Result};
use crate::initramfs::Initramfs;
use hidvm_proto::job::Detectors;
use hidvm_proto::{GuestMsg, Job, JobMode, JOB_PATH};
use std::path::Path;
use std::time::Duration;

/// What a boot left behind: QEMU's outcome, the result channel and the console.
pub struct BootResult {
    pub outcome: VmOutcome,
    pub results_text: String,
    pub console_text: String,
}

/// Boot `image` with initramfs `fs`; console and results land in `dir`.
pub fn boot(
    qemu: &Path,
    image: &Path,
    fs: &Initramfs,
    accel: Accel,
    deadline: Duration,
    dir: &Path,
) -> Result<BootResult> {
    let initrd = dir.join("initramfs.cpio");
    let console_log = dir.join("console.log");
    let results = dir.join("results.jsonl");
    // Unix socket paths are limited to 108 bytes: keep them in /tmp.
    let sockets =
        tempfile::Builder::new().prefix("hidvm-").tempdir_in("/tmp").map_err(Error::io("socket directory"))?;
    let console_socket = sockets.path().join("console");
    let qmp_socket = sockets.path().join("qmp");
    let bytes = fs.to_bytes().map_err(Error::io("assembling the initramfs"))?;
    std::fs::write(&initrd, bytes).map_err(Error::io(format!("writing {}", initrd.display())))?;
    let features: Vec<Box<dyn Feature>> = vec![
        Box::new(MicroVm { memory_mib: 512, cpus: 2 }),
        Box::new(accel),
        Box::new(Kernel { image: image.to_path_buf() }),
        Box::new(InitrdFeature { cpio: initrd.clone() }),
        Box::new(Console { socket: console_socket.clone() }),
        Box::new(QmpMonitor { socket: qmp_socket.clone() }),
        Box::new(ResultPort { file: results.clone() }),
        Box::new(ExitOnReboot),
        Box::new(PanicEndsVm),
        Box::new(ExtraKernelArgs::from_env()),
    ];
    let vm = Vm {
        qemu: qemu.to_path_buf(),
        features,
        deadline,
        console_socket,
        console_log: console_log.clone(),
        qmp_socket: Some(qmp_socket),
    };
    let _ = std::fs::write(dir.join("qemu-command.txt"), vm.args().join("\n"));
    let outcome = vm.run().map_err(Error::io(format!("running {}", qemu.display())))?;
    let results_text = std::fs::read_to_string(&results).unwrap_or_default();
    let console_text = String::from_utf8_lossy(&std::fs::read(&console_log).unwrap_or_default()).into_owned();
    Ok(BootResult { outcome, results_text, console_text })
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
    let booted =
        boot(qemu, image, &fs, Accel::Kvm, accel::PROBE_DEADLINE, dir).map_err(|e| before_qemu(e.to_string()))?;
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
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_telling_line_is_found_above_a_register_dump() {
        let outcome = VmOutcome {
            status: None,
            timed_out: false,
            elapsed: Duration::from_secs(1),
            qemu_output: KVM_XSAVE_FAILURE.into(),
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
    pub(crate) const KVM_XSAVE_FAILURE: &str = "KVM internal error. Suberror: 1\n\
        extra data[0]: 0x0000000000000000\n\
        emulation failure\n\
        RAX=0000000000000007 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000\n\
        RSI=0000000000000000 RDI=0000000000000000 RBP=0000000000000000 RSP=ffffffff82603e88\n\
        EFER=0000000000000d01\n\
        Code=0f 1f 44 00 00 48 c7 c7 00 00 00 00 <0f> ae 27 c3 cc cc cc cc";
}
