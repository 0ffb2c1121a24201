//! Kernel health around a scenario: taint flags, BPF object counts and
//! kmemleak. Every reading is a value or the reason it could not be taken.
use crate::bpf::object_counts;
use hidvm_proto::{Kmemleak, ObjectCounts, Reading};
use std::io::Write;
use std::time::{Duration, Instant};

const KMEMLEAK: &str = "/sys/kernel/debug/kmemleak";
/// tracefs (mounted by init): bpf_printk writes to its `trace` buffer.
const TRACE: &str = "/sys/kernel/tracing/trace";
/// At most this many trace lines are sent (the last ones).
const TRACE_LINES: usize = 400;
const TAINTED: &str = "/proc/sys/kernel/tainted";

/// kmemleak reports an object only when a scan *starts* at least
/// MSECS_MIN_AGE (5000 ms, mm/kmemleak.c) after the object was allocated,
/// and only if its contents (checksum) did not change since the previous
/// scan: so two scans, the second one old enough. The margin covers the
/// jiffies/boottime rounding.
const MIN_AGE: Duration = Duration::from_millis(5200);

/// /proc/sys/kernel/tainted, or why it could not be read.
pub fn taint() -> Reading<u64> {
    Reading::from_result(parse_taint(std::fs::read_to_string(TAINTED)))
}

fn parse_taint(text: std::io::Result<String>) -> Result<u64, String> {
    let text = text.map_err(|e| format!("reading {TAINTED}: {e}"))?;
    text.trim().parse().map_err(|_| format!("{TAINTED} holds `{}`, not a number", text.trim()))
}

pub fn objects() -> Reading<ObjectCounts> {
    Reading::from_result(object_counts())
}

/// Poll the kernel's program/map/link counts until they are back at
/// `baseline` (bounded); then, instead of a fixed pause, wait for the
/// kernel's evidence that the programs freed are completely gone
/// ([`ProgMemory`]), so a splat from their deferred frees lands inside the
/// run. Returns the counts and what the wait saw (for the console).
pub fn wait_objects(baseline: &Reading<ObjectCounts>, memory: &ProgMemory) -> (Reading<ObjectCounts>, String) {
    let Reading::Value(baseline) = baseline else { return (objects(), String::new()) };
    let t0 = Instant::now();
    let mut now = objects();
    let budget = crate::budget::share(10, Duration::from_secs(3));
    crate::wait::poll_until(budget, Duration::from_millis(2), || {
        now = objects();
        matches!(&now, Reading::Value(v) if v == baseline).then_some(())
    });
    if !matches!(&now, Reading::Value(v) if v == baseline) {
        return (now, format!("BPF objects not back at their baseline after {} ms", t0.elapsed().as_millis()));
    }
    let counted = t0.elapsed().as_millis();
    let freed = memory.wait_until_freed(budget);
    (objects(), format!("BPF objects at their baseline after {counted} ms; {freed}"))
}

/// Evidence that the BPF programs a scenario freed are completely gone.
/// A program's ID goes with its last reference; the rest of its free is
/// deferred: an RCU grace period (RCU Tasks Trace for a sleepable one),
/// then a work item (bpf_prog_free_deferred) that puts the maps it used,
/// frees its JIT image and, last of all, vfree()s the program itself
/// (__bpf_prog_free). Those areas are listed in /proc/vmallocinfo under
/// the function that allocated them (bpf_prog_alloc_no_stats,
/// bpf_prog_realloc; on 6.12 and 7.3, gcc and LLVM alike): once their
/// number is back at the scenario's baseline, every program's free path
/// has run to its end. Measured: 0 ms after the counts on 6.12, 8–12 ms
/// on 7.3, where a fixed 200 ms pause used to be.
pub struct ProgMemory {
    /// Program areas before the scenario, or why they could not be counted.
    baseline: Result<usize, String>,
}

/// A fixed pause, as before, where the evidence cannot be read.
const BLIND_SETTLE: Duration = Duration::from_millis(200);

impl ProgMemory {
    pub fn baseline() -> ProgMemory {
        ProgMemory { baseline: prog_areas() }
    }

    /// Wait (at most `budget`) until the program areas are back at the
    /// baseline; says how it went.
    fn wait_until_freed(&self, budget: Duration) -> String {
        let t0 = Instant::now();
        let base = match &self.baseline {
            Ok(n) => *n,
            Err(e) => {
                std::thread::sleep(BLIND_SETTLE);
                return format!("{e}: waited {} ms instead", BLIND_SETTLE.as_millis());
            }
        };
        let mut now = prog_areas();
        crate::wait::poll_until(budget, Duration::from_millis(2), || {
            now = prog_areas();
            matches!(now, Ok(n) if n <= base).then_some(())
        });
        match now {
            Ok(n) if n <= base => format!("BPF program memory freed after {} ms more", t0.elapsed().as_millis()),
            Ok(n) => format!(
                "{} BPF program area(s) still allocated {} ms after the counts (deferred frees pending)",
                n - base,
                t0.elapsed().as_millis()
            ),
            Err(e) => e,
        }
    }
}

/// vmalloc areas allocated for BPF programs (not the JIT's shared packs).
fn prog_areas() -> Result<usize, String> {
    const VMALLOCINFO: &str = "/proc/vmallocinfo";
    let text = std::fs::read_to_string(VMALLOCINFO).map_err(|e| format!("reading {VMALLOCINFO}: {e}"))?;
    Ok(text.lines().filter(|l| is_prog_area(l)).count())
}

/// `0xffffc900001b5000-0xffffc900001b8000    8192 bpf_prog_alloc_no_stats+0x2a/0x16c pages=1 vmalloc`
fn is_prog_area(line: &str) -> bool {
    line.split_whitespace()
        .nth(2)
        .is_some_and(|caller| caller.starts_with("bpf_prog_") && !caller.starts_with("bpf_prog_pack"))
}

/// Start the scenario with an empty trace buffer on the `global` clock.
/// The default `local` clock is sched_clock, which jumps when the clocksource
/// watchdog marks the TSC unstable (it does under a loaded TCG host); the
/// `trace` reader then skips entries stamped before the buffer's reset time,
/// and bpf_printk lines vanish. Selecting a clock also resets the buffer.
///
/// The bpf_printk event is enabled here, not left to the kernel: loading a
/// program that calls bpf_printk only *schedules* a work item that enables
/// it (bpf_get_trace_printk_proto), so a probe run right after the load
/// printed into a disabled event whenever that work item ran late — on a
/// loaded host, most of the time (CI lost the probe's lines). Writing the
/// `enable` file also grows the buffer from its 7 KB boot size.
///
/// Done once per boot: a snapshot template does it before it is frozen
/// (a restored guest then starts with it done, and its buffer empty:
/// nothing runs a BPF program while the template waits), saving each
/// restored test the ~60 ms TCG spends on the reset's RCU grace period and
/// on patching the tracepoint in.
pub fn clear_trace() {
    if TRACE_READY.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let clock = "/sys/kernel/tracing/trace_clock";
    if let Err(e) = std::fs::write(clock, "global") {
        crate::channel::kmsg(&format!("cannot select the global trace clock in {clock}: {e}"));
    }
    if let Err(e) = std::fs::write(PRINTK_EVENT, "1") {
        let _ = TRACE_SETUP.set(format!("(bpf_printk lines may be missing: enabling {PRINTK_EVENT} failed: {e})"));
    }
}

const PRINTK_EVENT: &str = "/sys/kernel/tracing/events/bpf_trace/bpf_trace_printk/enable";
/// Whether [`clear_trace`] ran in this boot.
static TRACE_READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Why the trace may be incomplete, shown as its first line.
static TRACE_SETUP: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// What programs printed with bpf_printk during the scenario (the last
/// lines of the trace buffer, without its header).
pub fn trace() -> Vec<String> {
    match std::fs::read_to_string(TRACE) {
        Ok(text) => {
            let lines: Vec<String> = text.lines().filter(|l| !l.starts_with('#')).map(String::from).collect();
            let skip = lines.len().saturating_sub(TRACE_LINES);
            TRACE_SETUP.get().cloned().into_iter().chain(lines.into_iter().skip(skip)).collect()
        }
        Err(e) => vec![format!("(the trace buffer {TRACE} could not be read: {e})")],
    }
}

/// kmemleak around one scenario: `start` before it, `finish` after its
/// teardown.
pub enum LeakWatch {
    NotBuilt,
    Failed(String),
    Watching,
}

fn kmemleak_cmd(cmd: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(KMEMLEAK)
        .and_then(|mut f| f.write_all(cmd.as_bytes()))
        .map_err(|e| format!("writing `{cmd}` to {KMEMLEAK}: {e}"))
}

fn uptime() -> Result<Duration, String> {
    let text = std::fs::read_to_string("/proc/uptime").map_err(|e| format!("reading /proc/uptime: {e}"))?;
    let secs: f64 = text.split_whitespace().next().and_then(|s| s.parse().ok()).ok_or("unreadable /proc/uptime")?;
    Ok(Duration::from_secs_f64(secs))
}

impl LeakWatch {
    /// Forget what boot leaked, so only the scenario's leaks count: boot's
    /// objects must be old enough to be reported (and then cleared) first.
    pub fn start() -> LeakWatch {
        if !std::path::Path::new(KMEMLEAK).exists() {
            return LeakWatch::NotBuilt;
        }
        let run = || -> Result<(), String> {
            let up = uptime()?;
            if up < MIN_AGE {
                std::thread::sleep(MIN_AGE - up);
            }
            kmemleak_cmd("scan")?;
            kmemleak_cmd("scan")?;
            kmemleak_cmd("clear")
        };
        match run() {
            Ok(()) => LeakWatch::Watching,
            Err(e) => LeakWatch::Failed(e),
        }
    }

    /// New unreferenced objects since `start`, once the scenario's last
    /// allocations (up to `teardown_done`) are old enough to be reported.
    pub fn finish(self, teardown_done: Instant) -> Kmemleak {
        match self {
            LeakWatch::NotBuilt => Kmemleak::NotBuilt,
            LeakWatch::Failed(reason) => Kmemleak::Failed { reason },
            LeakWatch::Watching => {
                let run = || -> Result<(Vec<String>, u64), String> {
                    // The first scan settles checksums; the second, started
                    // MIN_AGE after teardown, may report.
                    kmemleak_cmd("scan")?;
                    let waited = MIN_AGE.saturating_sub(teardown_done.elapsed());
                    std::thread::sleep(waited);
                    kmemleak_cmd("scan")?;
                    let report = std::fs::read_to_string(KMEMLEAK).map_err(|e| format!("reading {KMEMLEAK}: {e}"))?;
                    Ok((report.lines().take(200).map(String::from).collect(), waited.as_millis() as u64))
                };
                match run() {
                    Ok((leaks, waited_ms)) => Kmemleak::Scanned { leaks, waited_ms },
                    Err(reason) => Kmemleak::Failed { reason },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_areas_are_told_from_other_vmalloc_areas() {
        assert!(is_prog_area(
            "0xffffc900001b5000-0xffffc900001b8000    8192 bpf_prog_alloc_no_stats+0x2a/0x16c pages=1 vmalloc"
        ));
        assert!(is_prog_area(
            "0xffffc900001b5000-0xffffc900001b8000   12288 bpf_prog_realloc+0x5e/0xf0 pages=2 vmalloc"
        ));
        assert!(!is_prog_area(
            "0xffffffffa0000000-0xffffffffa0201000 2101248 bpf_prog_pack_alloc+0x15b/0x251 pages=512 vmalloc"
        ));
        assert!(!is_prog_area(
            "0xffffc90000000000-0xffffc90000002000    8192 irq_init_percpu_irqstack+0x10b/0x1b0 vmap"
        ));
        assert!(!is_prog_area("0xffffc90000bd9000-0xffffc90000bdb000    4096 unpurged vm_area"));
    }

    #[test]
    fn unreadable_taint_is_an_error_not_zero() {
        let denied = std::io::Error::from_raw_os_error(13);
        assert!(parse_taint(Err(denied)).unwrap_err().contains("Permission denied"));
        assert!(parse_taint(Ok("garbage\n".into())).unwrap_err().contains("not a number"));
        assert_eq!(parse_taint(Ok("512\n".into())).unwrap(), 512);
    }
}
