//! `Command` jobs: run one program (the kernel's HID selftests) with bpffs
//! and debugfs mounted, stream what it prints to the host line by line
//! (so a hang still shows how far it got), and report its exit status.
//! [`stream`] is also how the pytest job runs pytest.
use hidvm_proto::GuestMsg;
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

pub fn run(argv: &[String], cwd: &str) -> GuestMsg {
    let Some((program, args)) = argv.split_first() else {
        return GuestMsg::Done { passed: false, summary: "command job without a program (host bug)".into() };
    };
    // PID 1 changes its own directory: with Command::current_dir, spawning
    // failed in these guests with EAFNOSUPPORT (measured on 6.12).
    if let Err(e) = std::env::set_current_dir(cwd) {
        return GuestMsg::Done { passed: false, summary: format!("chdir {cwd}: {e}") };
    }
    let mut cmd = Command::new(program);
    cmd.args(args);
    match stream(cmd) {
        Ok(status) => GuestMsg::Done { passed: status.success(), summary: format!("{program} exited: {status}") },
        Err(e) => GuestMsg::Done { passed: false, summary: format!("{program}: {e}") },
    }
}

/// Run `cmd`, sending every line it writes (stdout and stderr through one
/// pipe, so their lines keep their order) as `Output`, and return its exit
/// status. As PID 1 it also reaps what gets re-parented to it meanwhile
/// (a killed udevd's workers), and once the program exited it kills and
/// reaps whatever it left behind, so none holds the pipe open.
pub fn stream(mut cmd: Command) -> Result<ExitStatus, String> {
    let (reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let writer2 = writer.try_clone().map_err(|e| format!("pipe: {e}"))?;
    cmd.stdin(Stdio::null()).stdout(writer).stderr(writer2);
    let child = cmd.spawn().map_err(|e| format!("starting it: {e}"));
    // The Command holds the pipe's write ends: without dropping it, the
    // reader would never see the end.
    drop(cmd);
    let pid = child?.id() as i32;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Bytes, not lines of UTF-8: one stray byte must not end the stream.
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
            crate::channel::send(&GuestMsg::Output { line });
            buf.clear();
        }
        let _ = done_tx.send(());
    });
    let status = reap_until(pid);
    kill_strays();
    // Every writer is gone now; a reader still busy gets a moment to drain.
    let _ = done_rx.recv_timeout(Duration::from_secs(5));
    status
}

/// Wait for any child until `pid` ends: PID 1 inherits every orphan, and
/// each must be reaped or it stays a zombie.
fn reap_until(pid: i32) -> Result<ExitStatus, String> {
    use std::os::unix::process::ExitStatusExt;
    loop {
        let mut status = 0;
        // SAFETY: plain waitpid on any child; `status` outlives the call.
        let got = unsafe { libc::waitpid(-1, &mut status, 0) };
        if got == pid {
            return Ok(ExitStatus::from_raw(status));
        }
        if got < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(format!("waiting for pid {pid}: {e}"));
            }
        }
    }
}

/// SIGKILL every process but PID 1 (kill(-1) spares the caller when it is
/// PID 1, and kernel threads), then reap them all.
fn kill_strays() {
    if std::process::id() != 1 {
        return;
    }
    // SAFETY: plain syscalls.
    unsafe {
        libc::kill(-1, libc::SIGKILL);
        while libc::waitpid(-1, std::ptr::null_mut(), 0) > 0 {}
    }
}
