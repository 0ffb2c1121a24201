//! Steps that poke the kernel itself: sysctls, and for self-tests lkdtm
//! faults, waiting, capabilities and test modules. Each checks that it
//! did what it says: a sysctl is read back, a crash type must be one lkdtm
//! offers, a module must show up in /proc/modules.
use crate::state::Outcome;
use hidvm_proto::job::MODULE_DIR;
use hidvm_proto::steps::{Capability, Lkdtm, LoadModule, Sleep, Sysctl};
use std::time::{Duration, Instant};

const LKDTM: &str = "/sys/kernel/debug/provoke-crash/DIRECT";

pub fn sleep(s: &Sleep) -> Outcome {
    let mut o = Outcome::default();
    let t0 = Instant::now();
    let Some(pattern) = &s.until_kernel_log else {
        std::thread::sleep(Duration::from_millis(s.ms));
        o.expect_at_least("milliseconds slept", s.ms, t0.elapsed().as_millis() as u64);
        return o;
    };
    let seen = match wait_for_kernel_log(pattern, Duration::from_millis(s.ms)) {
        Ok(Some(ms)) => {
            o.note(format!("seen after {ms} ms"));
            "seen".to_string()
        }
        Ok(None) => "not seen".into(),
        Err(e) => format!("unreadable: {e}"),
    };
    o.expect_eq(format!("a kernel log line containing `{pattern}` within {} ms", s.ms), "seen", seen);
    // The rest of the report (its backtrace) reaches the console.
    std::thread::sleep(Duration::from_millis(300));
    o
}

/// Read /dev/kmsg from its oldest record until a record contains
/// `pattern` (Some(ms waited)) or `within` passes (None).
fn wait_for_kernel_log(pattern: &str, within: Duration) -> Result<Option<u64>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let t0 = Instant::now();
    let mut kmsg = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .map_err(|e| format!("/dev/kmsg: {e}"))?;
    // One record per read(2); 8 KiB is more than a record can be.
    let mut buf = vec![0u8; 8192];
    loop {
        match kmsg.read(&mut buf) {
            Ok(n) => {
                let record = String::from_utf8_lossy(&buf[..n]);
                // "prio,seq,time,flags;message": the agent's own lines
                // (which name the pattern) do not count.
                let message = record.split_once(';').map(|(_, m)| m).unwrap_or(&record);
                if !message.starts_with("hidvm:") && message.contains(pattern) {
                    return Ok(Some(t0.elapsed().as_millis() as u64));
                }
            }
            // EPIPE: records were overwritten before we read them; go on.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if t0.elapsed() > within {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("reading /dev/kmsg: {e}")),
        }
    }
}

pub fn sysctl(s: &Sysctl) -> Outcome {
    let mut o = Outcome::default();
    let path = format!("/proc/sys/{}", s.name.replace('.', "/"));
    if let Err(e) = std::fs::write(&path, &s.value) {
        return Outcome::fail(format!("write {path}: {e}"));
    }
    let seen = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().to_string(),
        Err(e) => format!("unreadable: {e}"),
    };
    o.expect_eq(format!("{path} read back"), s.value.trim(), seen);
    o
}

/// Write the crash type to lkdtm from a thread: some (HUNG_TASK, PANIC)
/// never return. What the kernel does about it is the host's to judge
/// from the console; the step checks that lkdtm offers the crash type.
pub fn lkdtm(s: &Lkdtm) -> Outcome {
    let mut o = Outcome::default();
    let offered = match std::fs::read_to_string(LKDTM) {
        Ok(list) => list.lines().any(|l| l.trim() == s.crash),
        Err(e) => return Outcome::fail(format!("reading {LKDTM}: {e} (the kernel needs CONFIG_LKDTM and debugfs)")),
    };
    if !o.expect_eq(format!("{LKDTM} offers {}", s.crash), "yes", if offered { "yes" } else { "no" }) {
        return o;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let crash_type = s.crash.clone();
    std::thread::spawn(move || {
        let r = std::fs::write(LKDTM, &crash_type);
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_millis(s.wait_ms)) {
        Ok(Ok(())) => o.note(format!("lkdtm {}: the write returned", s.crash)),
        Ok(Err(e)) => o.error = Some(format!("lkdtm refused {}: {e}", s.crash)),
        Err(_) => o.note(format!("lkdtm {}: the write is still blocked after {} ms", s.crash, s.wait_ms)),
    }
    o
}

/// linux/capability.h, version 3 (64-bit sets in two words).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const CAP_SYS_ADMIN: u32 = 21;

fn capget() -> Result<[CapData; 2], String> {
    let mut hdr = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and two data words as the v3 ABI requires.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    if r != 0 {
        return Err(format!("capget: {}", std::io::Error::last_os_error()));
    }
    Ok(data)
}

/// Capabilities are per thread: this changes the calling (main) thread,
/// which is where every step runs.
pub fn capability(s: &Capability) -> Outcome {
    let mut o = Outcome::default();
    let (word, bit) = ((CAP_SYS_ADMIN / 32) as usize, 1u32 << (CAP_SYS_ADMIN % 32));
    let mut data = match capget() {
        Ok(d) => d,
        Err(e) => return Outcome::fail(e),
    };
    if s.effective {
        data[word].effective |= bit;
    } else {
        data[word].effective &= !bit;
    }
    let mut hdr = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    // SAFETY: as for capget.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) };
    if r != 0 {
        return Outcome::fail(format!("capset: {}", std::io::Error::last_os_error()));
    }
    let seen = match capget() {
        Ok(d) if d[word].effective & bit != 0 => "effective",
        Ok(_) => "not effective",
        Err(e) => return Outcome::fail(e),
    };
    o.expect_eq(
        format!("{} in the agent's effective set", s.name),
        if s.effective { "effective" } else { "not effective" },
        seen,
    );
    o
}

/// Count /proc/kallsyms names containing `s.containing`; an unreadable
/// kallsyms fails the step (could not look), it is never "absent".
pub fn kernel_symbols(s: &hidvm_proto::steps::KernelSymbols) -> Outcome {
    let mut o = Outcome::default();
    let text = match std::fs::read_to_string("/proc/kallsyms") {
        Ok(t) => t,
        Err(e) => return Outcome::fail(format!("reading /proc/kallsyms: {e} (is CONFIG_KALLSYMS set?)")),
    };
    let matching: Vec<&str> =
        text.lines().filter_map(|l| l.split_whitespace().nth(2)).filter(|name| name.contains(&s.containing)).collect();
    if let Some(first) = matching.first() {
        o.note(format!("{} symbol(s) contain `{}`, e.g. {first}", matching.len(), s.containing));
    }
    let seen = if matching.is_empty() { "absent" } else { "present" };
    let expected = match s.expect {
        hidvm_proto::steps::Presence::Present => "present",
        hidvm_proto::steps::Presence::Absent => "absent",
    };
    o.expect_eq(format!("kernel symbols containing `{}`", s.containing), expected, seen);
    o
}

pub fn load_module(s: &LoadModule) -> Outcome {
    let mut o = Outcome::default();
    let path = format!("{MODULE_DIR}/{}.ko", s.module);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => return Outcome::fail(format!("open {path}: {e} (is it in the cell's `modules` list?)")),
    };
    let params = c"";
    // SAFETY: a valid fd and a NUL-terminated parameter string.
    let r =
        unsafe { libc::syscall(libc::SYS_finit_module, std::os::fd::AsRawFd::as_raw_fd(&file), params.as_ptr(), 0) };
    let seen = if r == 0 { "loaded".to_string() } else { format!("error: {}", std::io::Error::last_os_error()) };
    o.expect_eq(format!("finit_module({path})"), "loaded", seen);
    let name = s.module.replace('-', "_");
    let listed = match std::fs::read_to_string("/proc/modules") {
        Ok(list) => {
            if list.lines().any(|l| l.split_whitespace().next() == Some(name.as_str())) {
                "listed"
            } else {
                "not listed"
            }
        }
        Err(e) => return Outcome::fail(format!("reading /proc/modules: {e}")),
    };
    o.expect_eq(format!("{name} in /proc/modules"), "listed", listed);
    o
}
