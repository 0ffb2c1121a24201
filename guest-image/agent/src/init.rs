//! What PID 1 must do itself: pseudo filesystems and ending the VM.
use hidvm_proto::GuestMsg;
use rustix::mount::{mount, MountFlags};
use rustix::system::{reboot, RebootCommand};

/// (source, target, fstype). devtmpfs is mounted by hand because
/// CONFIG_DEVTMPFS_MOUNT does not apply to an initramfs root.
const MOUNTS: &[(&str, &str, &str)] = &[
    ("proc", "/proc", "proc"),
    ("sysfs", "/sys", "sysfs"),
    ("devtmpfs", "/dev", "devtmpfs"),
    ("bpffs", "/sys/fs/bpf", "bpf"),
    ("debugfs", "/sys/kernel/debug", "debugfs"),
    ("tracefs", "/sys/kernel/tracing", "tracefs"),
];

pub fn mount_pseudo_filesystems() {
    for (src, target, fstype) in MOUNTS {
        let _ = std::fs::create_dir_all(target);
        if let Err(e) = mount(*src, *target, *fstype, MountFlags::empty(), None) {
            // Reported later through the channel if something needs it; the
            // channel itself needs /dev, so there is no one to tell yet.
            eprintln!("hidvm-agent: mount {fstype} on {target}: {e}");
        }
    }
}

pub fn hello(nonce: &str) -> GuestMsg {
    let uname = rustix::system::uname();
    GuestMsg::Hello {
        agent: env!("CARGO_PKG_VERSION").into(),
        kernel_release: uname.release().to_string_lossy().into_owned(),
        proc_version: std::fs::read_to_string("/proc/version").unwrap_or_default().trim().into(),
        nonce: nonce.into(),
    }
}

/// Reboot; QEMU's -no-reboot turns that into a prompt exit. (Power-off would
/// hang without ACPI, which the minimal kernels do not have.)
pub fn end_vm() -> ! {
    crate::channel::flush();
    let _ = reboot(RebootCommand::Restart);
    // reboot(2) only returns on error; PID 1 must not exit.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
