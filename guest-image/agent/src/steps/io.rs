//! Steps that talk to devices: reports in, reports and events out,
//! features, output reports, LEDs, descriptors, destruction.
use crate::device::Device;
use crate::state::{Outcome, Runner};
use hidvm_proto::event::{led_code, show as show_events};
use hidvm_proto::expect::{FeatureExpect, ReportExpect};
use hidvm_proto::steps::{CheckDevice, Destroy, GetFeature, Inject, Replay, SetLed, WriteOutput};
use hidvm_proto::{Check, Errno, EvdevEvent, Frame, HexBytes, Observed};
use std::time::{Duration, Instant};

/// Reports written through uhid are delivered before write() returns; this
/// only bounds the wait if that ever stops being true.
const DELIVERY_GRACE: Duration = Duration::from_millis(500);
/// hidraw writes reach uhid synchronously; LED changes go through a work
/// item. Waits for "nothing arrives" are bounded by these.
const OUTPUT_GRACE: Duration = Duration::from_millis(300);
const LED_GRACE: Duration = Duration::from_millis(1000);
/// After an `until_ms` inject first sees the expected report, this many
/// more must match too: a release that flaps (original, then rewritten
/// again) fails.
pub const STABLE_REPEATS: usize = 5;
/// How long a destroyed device may take to leave sysfs and hang up its nodes.
const TEARDOWN_DEADLINE: Duration = Duration::from_secs(2);

fn hidraw_matches(expect: &ReportExpect, seen: &[Vec<u8>]) -> bool {
    ReportExpect::show(seen) == expect.to_string()
}

/// Check that nothing is queued: a report or event left over from an
/// earlier step means that step's expectation missed it, and comparing now
/// would use stale data.
pub fn expect_nothing_queued(d: &mut Device, o: &mut Outcome, when: &str) -> bool {
    match (d.hidraw.reports(None), d.evdev.frames(None)) {
        (Ok(r), Ok(f)) => {
            let seen = if r.is_empty() && f.is_empty() {
                "nothing".to_string()
            } else {
                format!("{} hidraw report(s) [{}], {} evdev frame(s)", r.len(), ReportExpect::show(&r), f.len())
            };
            o.expect_eq(format!("{} queued {when}", d.vdev.id), "nothing", seen)
        }
        (Err(e), _) | (_, Err(e)) => {
            o.error = Some(e);
            false
        }
    }
}

/// One injection: what hidraw and evdev delivered.
struct Delivery {
    reports: Vec<Vec<u8>>,
    frames: Vec<Vec<EvdevEvent>>,
}

fn inject_once(d: &mut Device, s: &Inject) -> Result<Delivery, String> {
    d.vdev.inject(&s.report.0)?;
    let want_report = matches!(s.hidraw, ReportExpect::Bytes(_));
    let reports = d.hidraw.reports(want_report.then_some(DELIVERY_GRACE))?;
    let want_events = !s.evdev.is_empty() || s.evdev_frames.is_some();
    let frames = d.evdev.frames(want_events.then_some(DELIVERY_GRACE))?;
    Ok(Delivery { reports, frames })
}

/// evdev frames rendered canonically (sorted, one frame): what the check compares.
fn show_frames(frames: &[Vec<EvdevEvent>]) -> String {
    let mut got: Vec<_> = frames.iter().flatten().copied().collect();
    got.sort();
    let mut text = show_events(&got);
    if frames.len() > 1 {
        text.push_str(&format!(" in {} frames", frames.len()));
    }
    text
}

/// The expected evdev output, in the notation the seen output is rendered
/// in: one sorted frame, or the frames in order (`evdev_frames`).
fn expected_events(s: &Inject) -> String {
    match &s.evdev_frames {
        Some(frames) => frames
            .iter()
            .map(|f| Frame::parse(f).map(|f| f.to_string()).unwrap_or_else(|e| e))
            .collect::<Vec<_>>()
            .join(" | "),
        None => {
            let mut want = s.evdev.clone();
            want.sort();
            show_events(&want)
        }
    }
}

fn seen_events(s: &Inject, frames: &[Vec<EvdevEvent>]) -> String {
    match (&s.evdev_frames, frames.is_empty()) {
        (Some(_), true) => "(no frame)".into(),
        (Some(_), false) => frames.iter().map(|f| Frame(f.clone()).to_string()).collect::<Vec<_>>().join(" | "),
        (None, _) => show_frames(frames),
    }
}

/// How an `until_ms` inject went: attempts until the first match, and how
/// many of the following injections matched too.
#[derive(Debug, PartialEq, Eq)]
pub struct Settled {
    pub attempts: u32,
    pub matched: bool,
    pub stable: usize,
}

/// Call `attempt` (inject + compare) until it matches or `limit` passes,
/// then `repeats` more times, counting how many of those match.
pub fn settle(
    limit: Duration,
    repeats: usize,
    mut attempt: impl FnMut() -> Result<bool, String>,
) -> Result<Settled, String> {
    let t0 = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        if attempt()? {
            break;
        }
        if t0.elapsed() >= limit {
            return Ok(Settled { attempts, matched: false, stable: 0 });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut stable = 0;
    for _ in 0..repeats {
        if attempt()? {
            stable += 1;
        }
    }
    Ok(Settled { attempts, matched: true, stable })
}

pub fn inject(r: &mut Runner, s: &Inject) -> Outcome {
    let mut o = Outcome::default();
    let d = match r.device(&s.device) {
        Ok(d) => d,
        Err(o) => return o,
    };
    if !expect_nothing_queued(d, &mut o, "before injecting") {
        return o;
    }
    let expected_events = expected_events(s);
    let last = match s.until_ms {
        None => match inject_once(d, s) {
            Ok(delivery) => delivery,
            Err(e) => return Outcome::fail(e),
        },
        Some(ms) => {
            let mut last = None;
            let t0 = Instant::now();
            let result = settle(Duration::from_millis(ms), STABLE_REPEATS, || {
                let delivery = inject_once(d, s)?;
                let ok =
                    hidraw_matches(&s.hidraw, &delivery.reports) && seen_events(s, &delivery.frames) == expected_events;
                last = Some(delivery);
                Ok(ok)
            });
            let settled = match result {
                Ok(x) => x,
                Err(e) => return Outcome::fail(e),
            };
            o.note(format!("{} injection(s), {} ms until the first match", settled.attempts, t0.elapsed().as_millis()));
            if settled.matched {
                o.expect_eq(
                    format!("the next {STABLE_REPEATS} injections arrive as expected too (no flapping)"),
                    STABLE_REPEATS,
                    settled.stable,
                );
            }
            last.expect("at least one attempt")
        }
    };
    // Check names start with stable words (self-tests match on them); the
    // node paths, which change with re-probes and other devices, come last.
    o.expect_eq(format!("hidraw of {} ({})", s.device, d.hidraw.path), &s.hidraw, ReportExpect::show(&last.reports));
    o.expect_eq(format!("evdev of {} ({})", s.device, d.evdev.path), expected_events, seen_events(s, &last.frames));
    if s.hidraw == ReportExpect::Nothing {
        // "Nothing arrived" only means something if the node still works.
        let alive = if d.hidraw.is_gone() { "hung up" } else { "alive" };
        o.expect_eq(format!("hidraw {} still alive (so \"none\" is meaningful)", d.hidraw.path), "alive", alive);
    }
    o
}

/// Inject a recording's reports one by one (no recorded delays: the
/// order is what matters, and it keeps runs deterministic) and compare the
/// evdev frame (and optionally the hidraw bytes) of each with the
/// expectation; with `--bless`, record them instead.
pub fn replay(r: &mut Runner, s: &Replay) -> Outcome {
    let mut o = Outcome::default();
    let Some(data) = r.replays.get(&r.step).cloned() else {
        return Outcome::fail(format!("no replay data for step {} in the job (host bug)", r.step));
    };
    let bless = r.bless;
    let d = match r.device(&s.device) {
        Ok(d) => d,
        Err(o) => return o,
    };
    if !expect_nothing_queued(d, &mut o, "before the replay") {
        return o;
    }
    let mut observed = Observed { evdev: Vec::new(), hidraw: Vec::new() };
    for report in &data.events {
        if let Err(e) = d.vdev.inject(&report.0) {
            return Outcome::fail(e);
        }
        // UHID_INPUT2 is processed before write() returns: what hidraw and
        // evdev hold now is this report's.
        let (reports, frames) = match (d.hidraw.reports(None), d.evdev.frames(None)) {
            (Ok(r), Ok(f)) => (r, f),
            (Err(e), _) | (_, Err(e)) => return Outcome::fail(e),
        };
        let frame = frames.iter().map(|f| Frame(f.clone()).to_string()).collect::<Vec<_>>();
        observed.evdev.push(if frame.is_empty() { "-".to_string() } else { frame.join(" | ") });
        observed.hidraw.push(ReportExpect::show(&reports));
    }
    o.expect_eq("reports replayed", data.events.len(), observed.evdev.len());
    if bless {
        o.note(format!("recorded {} frames for --bless", observed.evdev.len()));
    } else {
        if let Some(want) = &data.evdev {
            compare_lines(&mut o, "evdev", want, &observed.evdev);
        }
        if let Some(want) = &data.hidraw {
            compare_lines(&mut o, "hidraw", want, &observed.hidraw);
        }
    }
    o.observed = Some(Box::new(observed));
    o
}

/// One check per expectation list: how many replayed reports differ, with
/// the first differences as detail.
fn compare_lines(o: &mut Outcome, what: &str, want: &[String], seen: &[String]) {
    let canonical = |line: &str| Frame::parse(line).map(|f| f.to_string()).unwrap_or_else(|_| line.trim().to_string());
    let diffs: Vec<String> = (0..want.len().max(seen.len()))
        .filter_map(|i| {
            let w = want.get(i).map(|l| if what == "evdev" { canonical(l) } else { l.trim().to_string() });
            let s = seen.get(i).cloned();
            (w != s).then(|| {
                format!(
                    "report #{}: expected {}, saw {}",
                    i + 1,
                    w.as_deref().unwrap_or("(no expectation)"),
                    s.as_deref().unwrap_or("(not replayed)")
                )
            })
        })
        .collect();
    let check =
        Check::equal(format!("replayed reports whose {what} output differs from the expectation"), 0, diffs.len());
    let detail = if diffs.is_empty() {
        format!("all {} as expected", want.len())
    } else {
        diffs.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
    };
    o.push(check.with_detail(detail));
}

/// The final check: every device the scenario leaves alive is alive, and
/// nothing is queued on any of them.
pub fn nothing_late(r: &mut Runner, expected_live: usize) -> Outcome {
    let mut o = Outcome::default();
    o.expect_eq("devices alive at the end", expected_live, r.devices.len());
    for d in r.devices.values_mut() {
        expect_nothing_queued(d, &mut o, "after the last step");
    }
    o
}

pub fn destroy(r: &mut Runner, s: &Destroy) -> Outcome {
    let mut o = Outcome::default();
    let Some(d) = r.devices.remove(&s.device) else { return Outcome::fail(format!("no device `{}`", s.device)) };
    let Device { vdev, hidraw, evdev, sysfs, hid_id, .. } = d;
    if let Err(e) = vdev.destroy() {
        return Outcome::fail(e);
    }
    // Keep the nodes open: the kernel must hang them up.
    let state = || (!sysfs.exists(), hidraw.is_gone(), evdev.is_gone());
    let t0 = Instant::now();
    crate::wait::poll_until(TEARDOWN_DEADLINE, Duration::from_millis(2), || {
        let (a, b, c) = state();
        (a && b && c).then_some(())
    });
    let (sysfs_gone, hidraw_gone, evdev_gone) = state();
    let ms = format!("after {} ms", t0.elapsed().as_millis());
    let word = |gone: bool, yes: &str, no: &str| if gone { yes.to_string() } else { no.to_string() };
    o.push(
        Check::equal(
            format!("sysfs entry of hid_id {hid_id} ({})", sysfs.display()),
            "removed",
            word(sysfs_gone, "removed", "present"),
        )
        .with_detail(ms.clone()),
    );
    o.push(
        Check::equal(
            format!("hidraw of {} ({})", s.device, hidraw.path),
            "hung up",
            word(hidraw_gone, "hung up", "alive"),
        )
        .with_detail(ms.clone()),
    );
    o.push(
        Check::equal(
            format!("evdev of {} ({})", s.device, evdev.path),
            "hung up",
            word(evdev_gone, "hung up", "alive"),
        )
        .with_detail(ms),
    );
    o
}

pub fn check_device(r: &mut Runner, s: &CheckDevice) -> Outcome {
    let mut o = Outcome::default();
    let d = match r.device(&s.device) {
        Ok(d) => d,
        Err(o) => return o,
    };
    if let Some(n) = s.starts {
        match d.wait_starts(n, Duration::from_secs(5)) {
            Ok(got) => o.expect_eq("times the device was started (UHID_START)", n, got),
            Err(e) => return Outcome::fail(e),
        };
    }
    if let Some(want) = &s.descriptor {
        let original = &d.vdev.def.descriptor.0;
        if let Err(e) = want.apply(original) {
            return Outcome::fail(e);
        }
        match d.descriptor() {
            Ok(seen) => o.expect_eq("report descriptor (sysfs)", want, want.render_seen(original, &seen)),
            Err(e) => return Outcome::fail(e),
        };
    }
    let keys = d.evdev.supported_keys();
    let yes_no = |k: &u16| if keys.contains(k) { "yes" } else { "no" };
    for k in &s.keys_present {
        o.expect_eq(format!("{} advertises {k} ({})", s.device, d.evdev.path), "yes", yes_no(&k.0));
    }
    for k in &s.keys_absent {
        o.expect_eq(format!("{} advertises {k} ({})", s.device, d.evdev.path), "no", yes_no(&k.0));
    }
    o
}

pub fn get_feature(r: &mut Runner, s: &GetFeature) -> Outcome {
    let mut o = Outcome::default();
    let d = match r.device(&s.device) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let seen = match d.hidraw.get_feature(s.report_id, 64) {
        Ok(bytes) => FeatureExpect::Bytes(HexBytes(bytes)),
        Err(errno) => FeatureExpect::Error(Errno(errno)),
    };
    o.expect_eq(format!("HIDIOCGFEATURE({}) on {}", s.report_id, d.hidraw.path), &s.expect, seen);
    o
}

/// Output reports left over from an earlier step fail the check, like
/// stale input reports do.
fn expect_no_stale_outputs(d: &Device, o: &mut Outcome) -> bool {
    let stale = d.vdev.take_outputs(Duration::ZERO);
    o.expect_eq("output reports pending before this step", "none", ReportExpect::show(&stale))
}

pub fn write_output(r: &mut Runner, s: &WriteOutput) -> Outcome {
    let mut o = Outcome::default();
    let d = match r.device(&s.device) {
        Ok(d) => d,
        Err(o) => return o,
    };
    if !expect_no_stale_outputs(d, &mut o) {
        return o;
    }
    let result = d.hidraw.write_output(&s.report.0);
    let seen = match result {
        Ok(n) => format!("wrote {n} bytes"),
        Err(e) => format!("error {}", Errno(e)),
    };
    let expected = match s.expect_error {
        Some(e) => format!("error {e}"),
        None => format!("wrote {} bytes", s.report.0.len()),
    };
    o.expect_eq(format!("write() to {}", d.hidraw.path), expected, seen);
    let outputs = d.vdev.take_outputs(OUTPUT_GRACE);
    o.expect_eq("output reports the device received (UHID_OUTPUT)", &s.device_receives, ReportExpect::show(&outputs));
    o
}

pub fn set_led(r: &mut Runner, s: &SetLed) -> Outcome {
    let mut o = Outcome::default();
    let code = match led_code(&s.led) {
        Ok(c) => c,
        Err(e) => return Outcome::fail(e),
    };
    let d = match r.device(&s.device) {
        Ok(d) => d,
        Err(o) => return o,
    };
    if !expect_no_stale_outputs(d, &mut o) {
        return o;
    }
    if let Err(e) = d.evdev.set_led(code, s.value) {
        return Outcome::fail(e);
    }
    // hid-input sends the LED report from a work item: wait for it, and
    // when nothing must arrive, wait the whole grace period.
    let outputs = d.vdev.take_outputs(LED_GRACE);
    o.expect_eq("output reports the device received (UHID_OUTPUT)", &s.device_receives, ReportExpect::show(&outputs));
    // The LED change echoes back as EV_LED frames, which are not compared
    // events: draining them leaves only compared frames behind, if any.
    match d.evdev.frames(None) {
        Ok(frames) if frames.is_empty() => {}
        Ok(frames) => {
            o.expect_eq("evdev events caused by the LED change", "[] (no events)", show_frames(&frames));
        }
        Err(e) => o.error = Some(e),
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seq: &[bool]) -> Settled {
        let mut it = seq.iter().copied().chain(std::iter::repeat(false));
        settle(Duration::from_millis(20), 3, || Ok(it.next().unwrap())).unwrap()
    }

    #[test]
    fn a_release_that_flaps_is_not_settled() {
        assert_eq!(run(&[false, false, true, true, true, true]), Settled { attempts: 3, matched: true, stable: 3 });
        // Original once, then rewritten again: the repeats show it.
        let flapping = run(&[false, true, false, true, false]);
        assert!(flapping.matched && flapping.stable < 3, "{flapping:?}");
        assert!(!run(&[]).matched);
    }
}
