//! QEMU as a child process: its command line from features, started so
//! it dies with this process, its console socket copied to a log.
use crate::vm::feature::Feature;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// QEMU's arguments for a VM made of `features`: each feature's QEMU
/// arguments, and their kernel arguments joined into -append.
pub fn command_line(features: &[Box<dyn Feature>]) -> Vec<String> {
    let mut args: Vec<String> = features.iter().flat_map(|f| f.qemu_args()).collect();
    let cmdline: Vec<String> = features.iter().flat_map(|f| f.kernel_args()).collect();
    args.push("-append".into());
    args.push(cmdline.join(" "));
    args
}

/// Run QEMU in the foreground on a terminal (`hidvm shell`): this
/// process's own, or `terminal` (a pseudo-terminal, in tests). It dies
/// with us (PR_SET_PDEATHSIG), and its exit status is returned. QEMU's
/// stdio chardev puts the terminal in raw mode and restores it on exit.
pub fn run_interactive(
    qemu: &Path,
    args: &[String],
    terminal: Option<std::os::fd::OwnedFd>,
) -> std::io::Result<std::process::ExitStatus> {
    let mut cmd = std::process::Command::new(qemu);
    cmd.args(args);
    if let Some(t) = terminal {
        cmd.stdin(t.try_clone()?).stdout(t.try_clone()?).stderr(t);
    }
    die_with_parent(&mut cmd);
    cmd.status()
}

/// If this process dies (nextest timeout, Ctrl-C, crash), the kernel kills
/// QEMU too (PR_SET_PDEATHSIG): no orphaned VMs.
fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = rustix::process::getpid();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)?;
            // The parent died between fork and the line above: the signal
            // will never come, so do not start.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other("parent exited"));
            }
            Ok(())
        });
    }
}

/// Start QEMU with its output captured; it dies with this process.
pub fn spawn_qemu(qemu: &Path, args: &[String]) -> std::io::Result<duct::Handle> {
    duct::cmd(qemu, args)
        .stdin_null()
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .before_spawn(|cmd| {
            die_with_parent(cmd);
            Ok(())
        })
        .start()
}

pub fn connect_console(socket: &Path, handle: &duct::Handle, until: Instant) -> Option<UnixStream> {
    loop {
        if let Ok(s) = UnixStream::connect(socket) {
            return Some(s);
        }
        if Instant::now() > until || matches!(handle.try_wait(), Ok(Some(_))) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn copy_console(mut from: UnixStream, log: &Path) {
    let Ok(mut file) = std::fs::File::create(log) else { return };
    let mut buf = [0u8; 8192];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || file.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// Kill QEMU if we unwind past it (a panic in the harness).
pub struct KillOnDrop<'a>(pub &'a duct::Handle);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}
