//! The result channel: JSON lines on the second UART (/dev/ttyS1), which the
//! host connects to a file. The kernel console stays on ttyS0, so printk
//! never interleaves with results.
use hidvm_proto::GuestMsg;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

/// Used when the kernel command line does not name the port
/// (`hidvm.results=/dev/ttyS1`, contributed by the host's ResultPort).
const DEFAULT_RESULT_TTY: &str = "/dev/ttyS1";

static CHANNEL: Mutex<Option<File>> = Mutex::new(None);

fn result_tty() -> String {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    cmdline.split_whitespace().find_map(|a| a.strip_prefix("hidvm.results=")).unwrap_or(DEFAULT_RESULT_TTY).to_string()
}

pub fn open() {
    let tty = result_tty();
    let file = OpenOptions::new().write(true).custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32).open(&tty);
    match file {
        Ok(f) => {
            // Raw mode: no "\n" -> "\r\n" translation, no echo.
            if let Ok(mut t) = rustix::termios::tcgetattr(&f) {
                t.make_raw();
                let _ = rustix::termios::tcsetattr(&f, rustix::termios::OptionalActions::Now, &t);
            }
            *CHANNEL.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
        }
        Err(e) => kmsg(&format!("cannot open result channel {tty}: {e}")),
    }
}

pub fn send(msg: &GuestMsg) {
    let line = msg.to_line();
    let mut guard = CHANNEL.lock().unwrap_or_else(|e| e.into_inner());
    match guard.as_mut() {
        Some(f) => {
            let _ = f.write_all(line.as_bytes());
        }
        // Without the channel the host will time out; the console at least
        // shows what happened.
        None => kmsg(line.trim_end()),
    }
}

/// Send the verdict, once: a panicking thread and the main thread may both
/// get here; the first verdict is the one that counts.
pub fn send_done(msg: &GuestMsg) {
    static SENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SENT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        send(msg);
    }
}

/// Wait until the UART has transmitted everything (before ending the VM).
pub fn flush() {
    let guard = CHANNEL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = guard.as_ref() {
        let _ = rustix::termios::tcdrain(f);
    }
}

/// A line in the kernel log, so the console shows which step was running
/// when something happened in the kernel.
pub fn kmsg(line: &str) {
    if let Ok(mut f) = OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = f.write_all(format!("hidvm: {line}\n").as_bytes());
    }
}
