//! Snapshot template mode (`hidvm.snapshot=1` on the kernel command
//! line): the host boots this guest once per kernel, agent and QEMU
//! command line, freezes it while it waits here, and starts each test
//! from that image. What a cold boot finds in its initramfs (the job, the
//! fixtures) arrives over the `hidvm.delivery` virtio port instead, with
//! the host's clock (the frozen one is minutes or days old, and the race
//! step seeds its jitter from it) and fresh entropy for /dev/urandom.
use crate::channel;
use hidvm_proto::delivery::{self, DELIVERY_PORT, SNAPSHOT_ARG};
use hidvm_proto::GuestMsg;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

pub fn is_template() -> bool {
    std::fs::read_to_string("/proc/cmdline").unwrap_or_default().split_whitespace().any(|a| a == SNAPSHOT_ARG)
}

/// Say we are ready to be frozen, then wait (through the freeze) for the
/// delivery and lay it out as a cold boot's initramfs would have it.
pub fn await_delivery() -> Result<(), String> {
    let port = find_port(Duration::from_secs(20))?;
    settle_clocksource();
    // What every scenario sets up first, done once here for all of them.
    crate::health::clear_trace();
    let file = std::fs::File::open(&port).map_err(|e| format!("opening {port}: {e}"))?;
    channel::send(&GuestMsg::AwaitingDelivery);
    channel::flush();
    // The port reads as end-of-file while no host is connected to it
    // (before the freeze, and for a moment after the restore).
    let (header, contents) = delivery::decode(file, || {
        std::thread::sleep(Duration::from_millis(1));
        Ok(())
    })?;
    set_clock(header.unix_time_ns)?;
    if let Err(e) =
        std::fs::OpenOptions::new().write(true).open("/dev/urandom").and_then(|mut f| f.write_all(&header.entropy))
    {
        return Err(format!("mixing the host's entropy into /dev/urandom: {e}"));
    }
    for (f, data) in header.files.iter().zip(contents) {
        let path = std::path::Path::new(&f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        std::fs::write(path, data).map_err(|e| format!("writing {}: {e}", f.path))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(f.mode))
            .map_err(|e| format!("chmod {}: {e}", f.path))?;
    }
    Ok(())
}

/// Freeze a kernel whose boot has settled: the TSC is refined about a
/// second after boot and the clocksource then switched from `tsc-early`
/// under stop_machine, which needs every CPU. Frozen before that, every
/// test would make the switch in the middle of its scenario, and one with
/// a CPU spinning on purpose (the soft-lockup self-test) would deadlock.
fn settle_clocksource() {
    let started = Instant::now();
    let current = || {
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let uptime = || {
        std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|t| t.split_whitespace().next().and_then(|s| s.parse::<f64>().ok()))
            .unwrap_or(0.0)
    };
    while (uptime() < 2.5 || current() == "tsc-early") && started.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(20));
    }
    channel::kmsg(&format!("snapshot template: clocksource {} at {:.2} s", current(), uptime()));
}

/// The port's device node, from its name in sysfs: the virtio control
/// queue may announce it a moment after PID 1 starts.
fn find_port(within: Duration) -> Result<String, String> {
    let started = Instant::now();
    loop {
        if let Ok(dir) = std::fs::read_dir("/sys/class/virtio-ports") {
            for e in dir.flatten() {
                let name = std::fs::read_to_string(e.path().join("name")).unwrap_or_default();
                if name.trim() == DELIVERY_PORT {
                    return Ok(format!("/dev/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        if started.elapsed() > within {
            return Err(format!(
                "no virtio port named {DELIVERY_PORT} within {} s (is CONFIG_VIRTIO_CONSOLE in the kernel?)",
                within.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn set_clock(unix_time_ns: u64) -> Result<(), String> {
    let ts = libc::timespec {
        tv_sec: (unix_time_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (unix_time_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: a valid timespec, read only during the call.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) } != 0 {
        return Err(format!("setting the guest clock: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
