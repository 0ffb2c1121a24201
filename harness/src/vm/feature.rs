//! VM features. Each is a value contributing QEMU arguments and kernel
//! command-line arguments; a VM is a list of them.
use std::path::PathBuf;

pub trait Feature: std::fmt::Debug + Send + Sync {
    fn qemu_args(&self) -> Vec<String>;
    fn kernel_args(&self) -> Vec<String> {
        Vec::new()
    }
}

/// QEMU's microvm machine: no firmware detour for a PVH vmlinux (about
/// 0.7 s faster per VM than a bzImage on the q35/pc path), no default
/// devices, no network, no display.
#[derive(Debug, Clone)]
pub struct MicroVm {
    pub memory_mib: u32,
    pub cpus: u32,
}

impl Feature for MicroVm {
    fn qemu_args(&self) -> Vec<String> {
        vec![
            "-M".into(),
            // acpi=off: the kernels have no ACPI, and without it microvm
            // names its virtio-mmio devices on the kernel command line.
            "microvm,acpi=off".into(),
            "-m".into(),
            format!("{}M", self.memory_mib),
            "-smp".into(),
            self.cpus.to_string(),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-display".into(),
            "none".into(),
            "-nic".into(),
            "none".into(),
        ]
    }
}

/// Guest RAM in a file instead of anonymous memory: a snapshot template
/// writes its RAM into the file (`share=on`), and every test restored from
/// it maps that file privately (`share=off`: copy-on-write, the file never
/// changes), so a restore reads no RAM at all and a test faults in only the
/// pages it touches. Migration skips the file's RAM (`x-ignore-shared`);
/// the state file holds only the devices. The size must be the VM's `-m`.
#[derive(Debug, Clone)]
pub struct RamFile {
    pub path: PathBuf,
    pub memory_mib: u32,
    /// The template's own RAM (written); false: a private copy-on-write view.
    pub share: bool,
}

/// The RAM block migration skips when it is shared.
pub const RAM_BACKEND: &str = "hidvm-ram";

impl Feature for RamFile {
    fn qemu_args(&self) -> Vec<String> {
        vec![
            "-object".into(),
            format!(
                "memory-backend-file,id={RAM_BACKEND},size={}M,mem-path={},share={}",
                self.memory_mib,
                self.path.display(),
                if self.share { "on" } else { "off" }
            ),
            "-machine".into(),
            format!("memory-backend={RAM_BACKEND}"),
        ]
    }
}

/// The kernel image: an uncompressed vmlinux (PVH entry) or a bzImage.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub image: PathBuf,
}

impl Feature for Kernel {
    fn qemu_args(&self) -> Vec<String> {
        vec!["-kernel".into(), self.image.display().to_string()]
    }
}

#[derive(Debug, Clone)]
pub struct Initramfs {
    pub cpio: PathBuf,
}

impl Feature for Initramfs {
    fn qemu_args(&self) -> Vec<String> {
        vec!["-initrd".into(), self.cpio.display().to_string()]
    }
    fn kernel_args(&self) -> Vec<String> {
        vec!["rdinit=/init".into()]
    }
}

/// The kernel console on the first UART, as a unix socket the runner
/// copies into the console log. A socket (not a file) because the runner
/// must also write to it: on a hang it sends a serial BREAK (through QMP)
/// and a sysrq key. `wait=on`: the guest starts only once the runner is
/// connected, so no early output is lost.
#[derive(Debug, Clone)]
pub struct Console {
    pub socket: PathBuf,
}

pub const CONSOLE_CHARDEV: &str = "console";

impl Feature for Console {
    fn qemu_args(&self) -> Vec<String> {
        vec![
            "-chardev".into(),
            format!("socket,id={CONSOLE_CHARDEV},path={},server=on,wait=on", self.socket.display()),
            "-serial".into(),
            format!("chardev:{CONSOLE_CHARDEV}"),
        ]
    }
    fn kernel_args(&self) -> Vec<String> {
        vec!["console=ttyS0".into(), "sysrq_always_enabled".into()]
    }
}

/// The kernel console on this process's terminal (`hidvm shell`):
/// `signal=off` so Ctrl-C goes to the guest's shell, not to QEMU.
#[derive(Debug, Clone)]
pub struct StdioConsole;

impl Feature for StdioConsole {
    fn qemu_args(&self) -> Vec<String> {
        vec![
            "-chardev".into(),
            format!("stdio,id={CONSOLE_CHARDEV},signal=off"),
            "-serial".into(),
            format!("chardev:{CONSOLE_CHARDEV}"),
        ]
    }
    fn kernel_args(&self) -> Vec<String> {
        vec!["console=ttyS0".into(), "sysrq_always_enabled".into()]
    }
}

/// The QMP monitor, on a unix socket the runner connects to when it needs
/// it (hang diagnostics).
#[derive(Debug, Clone)]
pub struct QmpMonitor {
    pub socket: PathBuf,
}

impl Feature for QmpMonitor {
    fn qemu_args(&self) -> Vec<String> {
        vec!["-qmp".into(), format!("unix:{},server=on,wait=off", self.socket.display())]
    }
}

/// The agent's result channel: a second UART (microvm only creates one, so
/// it is added explicitly at the standard COM2 address) into a file.
#[derive(Debug, Clone)]
pub struct ResultPort {
    pub file: PathBuf,
}

impl Feature for ResultPort {
    fn qemu_args(&self) -> Vec<String> {
        vec![
            "-chardev".into(),
            format!("file,id=hidvm-results,path={}", self.file.display()),
            "-device".into(),
            "isa-serial,chardev=hidvm-results,iobase=0x2f8,irq=3".into(),
        ]
    }
    fn kernel_args(&self) -> Vec<String> {
        vec!["hidvm.results=/dev/ttyS1".into()]
    }
}

/// The port a guest restored from a snapshot gets its job on (virtio
/// serial over virtio-mmio, which microvm adds to the kernel command line
/// itself), and the argument that makes the agent wait for it. Only
/// snapshot templates and their restored copies have it.
#[derive(Debug, Clone)]
pub struct DeliveryPort {
    pub socket: PathBuf,
}

impl Feature for DeliveryPort {
    fn qemu_args(&self) -> Vec<String> {
        vec![
            "-device".into(),
            "virtio-serial-device".into(),
            "-chardev".into(),
            format!("socket,id=hidvm-delivery,path={},server=on,wait=off", self.socket.display()),
            "-device".into(),
            format!("virtserialport,chardev=hidvm-delivery,name={}", hidvm_proto::delivery::DELIVERY_PORT),
        ]
    }
    fn kernel_args(&self) -> Vec<String> {
        vec![hidvm_proto::delivery::SNAPSHOT_ARG.into()]
    }
}

/// A read-only disk image on virtio-blk (virtio-mmio on microvm, which
/// names the device on the kernel command line itself): the hid-tools
/// userspace, `/dev/vda` in the guest. QEMU opens it read-only with a
/// shared lock, so every VM of a run can have the same file.
#[derive(Debug, Clone)]
pub struct ReadOnlyDisk {
    pub image: PathBuf,
}

impl Feature for ReadOnlyDisk {
    fn qemu_args(&self) -> Vec<String> {
        vec![
            "-drive".into(),
            format!("id=hidvm-disk,file={},format=raw,if=none,readonly=on", self.image.display()),
            "-device".into(),
            "virtio-blk-device,drive=hidvm-disk".into(),
        ]
    }
}

/// `printk.devkmsg=on`: userspace may write to /dev/kmsg without the
/// default rate limit, which dropped most of the hid-tools plugin's test
/// markers (96 of 117 in one module) and with them the attribution of a
/// kernel report to its test.
#[derive(Debug, Clone)]
pub struct DevKmsg;

impl Feature for DevKmsg {
    fn qemu_args(&self) -> Vec<String> {
        Vec::new()
    }
    fn kernel_args(&self) -> Vec<String> {
        vec!["printk.devkmsg=on".into()]
    }
}

/// `tsc=reliable`: no clocksource watchdog on the TSC. Under a loaded TCG
/// host the watchdog's reference (jiffies) lags, it declared the TSC
/// unstable in the middle of scenarios and switched clocksource under
/// stop_machine, which needs every CPU: with a CPU spinning on purpose
/// that deadlocked the guest. Also ~0.05-0.09 s less boot (measured).
#[derive(Debug, Clone)]
pub struct ReliableTsc;

impl Feature for ReliableTsc {
    fn qemu_args(&self) -> Vec<String> {
        Vec::new()
    }
    fn kernel_args(&self) -> Vec<String> {
        vec!["tsc=reliable".into()]
    }
}

/// The guest ends the VM by rebooting: with -no-reboot QEMU exits instead.
/// `reboot=t` (triple fault) because microvm has neither ACPI nor a
/// keyboard controller: the default method walk costs ~4.5 s of timeouts.
#[derive(Debug, Clone)]
pub struct ExitOnReboot;

impl Feature for ExitOnReboot {
    fn qemu_args(&self) -> Vec<String> {
        vec!["-no-reboot".into()]
    }
    fn kernel_args(&self) -> Vec<String> {
        vec!["reboot=t".into()]
    }
}

/// A panic or oops ends the VM at once (panic -> reboot -> QEMU exits),
/// instead of hanging until the deadline. QEMU then exits 0, like a clean
/// run: success is only ever the agent's verdict.
#[derive(Debug, Clone)]
pub struct PanicEndsVm;

impl Feature for PanicEndsVm {
    fn qemu_args(&self) -> Vec<String> {
        Vec::new()
    }
    fn kernel_args(&self) -> Vec<String> {
        vec!["panic=-1".into(), "oops=panic".into()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_contribute_both_argument_kinds() {
        let r = ResultPort { file: "/tmp/r".into() };
        assert!(r.qemu_args().iter().any(|a| a.contains("iobase=0x2f8")));
        assert_eq!(r.kernel_args(), vec!["hidvm.results=/dev/ttyS1"]);
        assert!(Console { socket: "/tmp/c".into() }.qemu_args().contains(&"chardev:console".to_string()));
        assert!(ExitOnReboot.kernel_args().contains(&"reboot=t".to_string()));
        let disk = ReadOnlyDisk { image: "/c/u.erofs".into() }.qemu_args().join(" ");
        assert!(disk.contains("file=/c/u.erofs,format=raw,if=none,readonly=on") && disk.contains("virtio-blk-device"));
    }
}

/// `HIDVM_KERNEL_ARGS`: extra kernel arguments for every VM, for
/// experiments (`initcall_debug`, say) and debugging; empty by default.
#[derive(Debug, Clone)]
pub struct ExtraKernelArgs(pub Vec<String>);

impl ExtraKernelArgs {
    pub fn from_env() -> ExtraKernelArgs {
        ExtraKernelArgs(
            std::env::var("HIDVM_KERNEL_ARGS").unwrap_or_default().split_whitespace().map(String::from).collect(),
        )
    }
}

impl Feature for ExtraKernelArgs {
    fn qemu_args(&self) -> Vec<String> {
        Vec::new()
    }
    fn kernel_args(&self) -> Vec<String> {
        self.0.clone()
    }
}
