//! Kernel health around a scenario: taint flags and kmemleak.
use crate::bpf::{object_counts, ObjectCounts};
use std::io::Write;
use std::time::Duration;

const KMEMLEAK: &str = "/sys/kernel/debug/kmemleak";

/// /proc/sys/kernel/tainted (0 when unreadable: the host then sees no change).
pub fn taint() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/tainted").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

fn kmemleak_cmd(cmd: &str) -> bool {
    std::fs::OpenOptions::new().write(true).open(KMEMLEAK).and_then(|mut f| f.write_all(cmd.as_bytes())).is_ok()
}

/// Forget what boot leaked, so only the scenario's leaks count. No-op
/// without kmemleak (the non-debug cells).
pub fn kmemleak_clear() {
    if kmemleak_cmd("scan") {
        kmemleak_cmd("clear");
    }
}

/// New unreferenced objects since the clear: two scans (an object must
/// look leaked twice to be reported), then the report.
pub fn kmemleak_report() -> Vec<String> {
    if !kmemleak_cmd("scan") {
        return Vec::new();
    }
    kmemleak_cmd("scan");
    std::fs::read_to_string(KMEMLEAK).map(|t| t.lines().take(200).map(String::from).collect()).unwrap_or_default()
}

/// Poll the kernel's program/map/link counts until they are back at
/// `baseline` (bounded), then give deferred frees a moment more.
pub fn wait_objects(baseline: ObjectCounts) -> ObjectCounts {
    let mut now = baseline;
    crate::wait::poll_until(crate::budget::share(10, Duration::from_secs(3)), Duration::from_millis(10), || {
        now = object_counts();
        (now == baseline).then_some(())
    });
    std::thread::sleep(Duration::from_millis(200));
    now
}
