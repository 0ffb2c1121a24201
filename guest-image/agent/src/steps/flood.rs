//! Close a link while another thread floods the device with reports.
//!
//! The injector numbers every report (14 bits in two bytes the fixture does
//! not touch) and bumps `started` before each write. The main thread reads
//! `started` just before close() (B) and right after it returns (S):
//! reports numbered < B-1 finished before the release began and must be
//! rewritten; reports numbered >= S began after it completed and must all
//! be original; the few in between raced with close() and may be either.
use super::io::expect_nothing_queued;
use super::links::check_link_state;
use crate::device::Device;
use crate::hidraw::Hidraw;
use crate::state::{Outcome, Runner};
use crate::uhid::VirtualDevice;
use hidvm_proto::steps::FloodRelease;
use hidvm_proto::Check;
use hidvm_proto::{HexBytes, LinkAfter};
use libbpf_rs::Link;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Reports in flight at most: hidraw keeps 64 per reader and drops the
/// rest, so the injector waits for the reader.
const MAX_IN_FLIGHT: u64 = 32;
const BEFORE_CLOSE: u64 = 50;

pub fn flood_release(r: &mut Runner, s: &FloodRelease) -> Outcome {
    let mut o = Outcome::default();
    let FloodRelease { device, link, rewritten, original, after, .. } = s;
    let after = *after;
    let Some(d) = r.devices.get_mut(device) else { return Outcome::fail(format!("no device `{device}`")) };
    // Stale reports would break the numbering (and the in-flight count),
    // and mean an earlier step missed one: fail like inject does.
    if !expect_nothing_queued(d, &mut o, "before the flood") {
        return o;
    }
    let Some(mut handle) = r.links.remove(link) else { return Outcome::fail(format!("no link `{link}`")) };
    let link_id = handle.id;
    let Some(bpf_link) = handle.link.take() else { return Outcome::fail(format!("link `{link}` has no open fd")) };
    let Device { vdev, hidraw, .. } = &mut *d;
    let Flood { received, begin_mark, close_mark, inject_error, started, t0 } = flood(vdev, hidraw, s, bpf_link);
    // The flood overran the evdev client's buffer (SYN_DROPPED); a fresh
    // client starts clean for the next steps. evdev is not compared here.
    if let Err(e) = d.reopen_evdev() {
        o.error = Some(e);
    }

    if let Some(e) = inject_error {
        o.error = Some(e);
    }
    let mark = close_mark.unwrap_or(0);
    let before: Vec<_> = received.iter().filter(|(s, _)| *s + 1 < begin_mark).collect();
    let after_close: Vec<_> = received.iter().filter(|(s, _)| *s >= mark).collect();
    let show = |bad: &[&&(u64, Vec<u8>)]| {
        bad.iter().take(5).map(|(s, r)| format!("#{s}: {}", HexBytes(r.clone()))).collect::<Vec<_>>().join(", ")
    };
    let not_rewritten: Vec<_> = before.iter().filter(|(_, r)| !rewritten.matches(r)).collect();
    o.expect_at_least("reports that finished before close() began", 1, before.len() as u64);
    o.push(Check::equal(format!("of those, reports not rewritten [{rewritten}]"), 0, not_rewritten.len()).with_detail(
        if not_rewritten.is_empty() { format!("{} rewritten", before.len()) } else { show(&not_rewritten) },
    ));
    let not_original: Vec<_> = after_close.iter().filter(|(_, r)| !original.matches(r)).collect();
    o.expect_at_least(
        format!("reports injected after close() returned (from #{mark})"),
        after as u64,
        after_close.len() as u64,
    );
    o.push(Check::equal(format!("of those, reports not original [{original}]"), 0, not_original.len()).with_detail(
        if not_original.is_empty() { format!("{} original", after_close.len()) } else { show(&not_original) },
    ));
    o.note(format!(
        "{} reports in {} ms; close() began with #{begin_mark} started and returned with #{mark}; {} lost",
        received.len(),
        t0.elapsed().as_millis(),
        started as usize - received.len()
    ));
    check_link_state(&mut o, link_id, LinkAfter::Gone);
    // Keep the object loaded until the end, like every released link.
    handle.link = None;
    r.links.insert(format!("{link}#released"), handle);
    o
}

/// What a flood saw: every report read, with its sequence number; how
/// many reports had started when close() began and when it returned, and
/// in all.
struct Flood {
    received: Vec<(u64, Vec<u8>)>,
    begin_mark: u64,
    close_mark: Option<u64>,
    inject_error: Option<String>,
    started: u64,
    t0: Instant,
}

/// Flood the device from one thread and read hidraw in another; close
/// `bpf_link` mid-stream, then keep going for `after` more reports.
fn flood(vdev: &mut VirtualDevice, hidraw: &mut Hidraw, s: &FloodRelease, bpf_link: Link) -> Flood {
    let FloodRelease { report, seq_bytes, after, .. } = s;
    let (seq_bytes, after) = (*seq_bytes, *after);
    let started = AtomicU64::new(0);
    let read = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let mut received: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut close_mark = None;
    let mut begin_mark = 0;
    let mut inject_error = None;
    let deadline = crate::budget::share(3, Duration::from_secs(60));
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        let injector = scope.spawn(|| -> Result<(), String> {
            let mut seq = 0u64;
            while !stop.load(Ordering::SeqCst) {
                if seq.saturating_sub(read.load(Ordering::SeqCst)) > MAX_IN_FLIGHT {
                    std::thread::yield_now();
                    continue;
                }
                let mut rep = report.0.clone();
                rep[seq_bytes[0]] = (seq & 0x7f) as u8;
                rep[seq_bytes[1]] = ((seq >> 7) & 0x7f) as u8;
                started.store(seq + 1, Ordering::SeqCst);
                vdev.inject(&rep)?;
                seq += 1;
                if seq >= 1 << 14 {
                    break;
                }
            }
            Ok(())
        });
        let reader = scope.spawn(|| {
            let mut out = Vec::new();
            loop {
                let batch = match hidraw.reports(Some(Duration::from_millis(20))) {
                    Ok(b) => b,
                    Err(_) => {
                        // A dead node: stop the flood rather than spin.
                        stop.store(true, Ordering::SeqCst);
                        break;
                    }
                };
                if batch.is_empty() && stop.load(Ordering::SeqCst) {
                    break;
                }
                for rep in batch {
                    let seq = (rep.get(seq_bytes[0]).copied().unwrap_or(0) as u64 & 0x7f)
                        | ((rep.get(seq_bytes[1]).copied().unwrap_or(0) as u64 & 0x7f) << 7);
                    out.push((seq, rep));
                    read.fetch_add(1, Ordering::SeqCst);
                }
            }
            out
        });

        // Let the flood run attached for a while, then release mid-stream.
        while read.load(Ordering::SeqCst) < BEFORE_CLOSE && t0.elapsed() < deadline && !injector.is_finished() {
            std::thread::sleep(Duration::from_millis(1));
        }
        begin_mark = started.load(Ordering::SeqCst);
        drop(bpf_link);
        let mark = started.load(Ordering::SeqCst);
        close_mark = Some(mark);
        while read.load(Ordering::SeqCst) < mark + after as u64 && t0.elapsed() < deadline && !injector.is_finished() {
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Ordering::SeqCst);
        inject_error = injector.join().expect("injector thread").err();
        received = reader.join().expect("reader thread");
    });
    Flood { received, begin_mark, close_mark, inject_error, started: started.load(Ordering::SeqCst), t0 }
}
