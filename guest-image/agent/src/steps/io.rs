//! Steps that talk to devices: reports in, reports and events out,
//! features, output reports, LEDs, descriptors.
use crate::device::Device;
use crate::run::{Outcome, Runner};
use hidvm_proto::event::{led_code, show as show_events};
use hidvm_proto::scenario::{DescriptorExpect, FeatureExpect, ReportExpect};
use hidvm_proto::{Errno, EvdevEvent, HexBytes, KeyName};
use std::time::{Duration, Instant};

/// Reports written through uhid are delivered before write() returns; this
/// only bounds the wait if that ever stops being true.
const DELIVERY_GRACE: Duration = Duration::from_millis(500);
/// hidraw writes reach uhid synchronously; LED changes go through a work
/// item. Waits for "nothing arrives" are bounded by these.
const OUTPUT_GRACE: Duration = Duration::from_millis(300);
const LED_GRACE: Duration = Duration::from_millis(1000);

pub fn show_reports(seen: &[Vec<u8>]) -> String {
    if seen.is_empty() {
        return "none".into();
    }
    seen.iter().map(|r| HexBytes(r.clone()).to_string()).collect::<Vec<_>>().join(" | ")
}

fn matches(expect: &ReportExpect, seen: &[Vec<u8>]) -> bool {
    match expect {
        ReportExpect::Bytes(b) => seen.len() == 1 && seen[0] == b.0,
        ReportExpect::Nothing => seen.is_empty(),
    }
}

/// Fail if anything is already queued: an earlier step's expectation
/// missed a report, so comparing now would use stale data.
fn nothing_queued(d: &mut Device, o: &mut Outcome) -> bool {
    match (d.hidraw.reports(None), d.evdev.frames(None)) {
        (Ok(r), Ok(f)) if r.is_empty() && f.is_empty() => true,
        (Ok(r), Ok(f)) => {
            o.check(
                "nothing queued before injecting",
                "no reports, no events",
                format!("{} stale hidraw report(s) [{}], {} evdev frame(s)", r.len(), show_reports(&r), f.len()),
                false,
            );
            false
        }
        (Err(e), _) | (_, Err(e)) => {
            o.error = Some(e);
            false
        }
    }
}

pub fn inject(
    r: &mut Runner,
    device: &str,
    report: &HexBytes,
    hidraw: &ReportExpect,
    evdev: &[EvdevEvent],
    until_ms: Option<u64>,
) -> Outcome {
    let mut o = Outcome::default();
    let d = match r.device(device) {
        Ok(d) => d,
        Err(o) => return o,
    };
    if !nothing_queued(d, &mut o) {
        return o;
    }
    let t0 = Instant::now();
    let deadline = until_ms.map(Duration::from_millis);
    let want_report = matches!(hidraw, ReportExpect::Bytes(_));
    let mut attempts = 0u32;
    let (seen, frames) = loop {
        attempts += 1;
        if let Err(e) = d.vdev.inject(&report.0) {
            return Outcome::fail(e);
        }
        let seen = match d.hidraw.reports(want_report.then_some(DELIVERY_GRACE)) {
            Ok(s) => s,
            Err(e) => return Outcome::fail(e),
        };
        let frames = match d.evdev.frames((!evdev.is_empty()).then_some(DELIVERY_GRACE)) {
            Ok(f) => f,
            Err(e) => return Outcome::fail(e),
        };
        match deadline {
            Some(limit) if !matches(hidraw, &seen) && t0.elapsed() < limit => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            _ => break (seen, frames),
        }
    };
    if deadline.is_some() {
        o.notes.push(format!("{attempts} injection(s), {} ms until the last one", t0.elapsed().as_millis()));
    }
    o.check(format!("hidraw {}", d.hidraw.path), hidraw.to_string(), show_reports(&seen), matches(hidraw, &seen));

    let mut got: Vec<_> = frames.iter().flatten().copied().collect();
    let mut want = evdev.to_vec();
    got.sort();
    want.sort();
    let mut seen_text = show_events(&got);
    if frames.len() > 1 {
        seen_text.push_str(&format!(" in {} frames", frames.len()));
    }
    o.check(format!("evdev {}", d.evdev.path), show_events(&want), seen_text, got == want && frames.len() <= 1);
    o
}

pub fn destroy(r: &mut Runner, device: &str) -> Outcome {
    let mut o = Outcome::default();
    let Some(d) = r.devices.remove(device) else { return Outcome::fail(format!("no device `{device}`")) };
    let hid_id = d.hid_id;
    match d.vdev.destroy() {
        Ok(()) => o.check(format!("UHID_DESTROY {device} (hid_id {hid_id})"), "accepted", "accepted", true),
        Err(e) => o.check(format!("UHID_DESTROY {device}"), "accepted", e, false),
    }
    o
}

pub fn check_device(
    r: &mut Runner,
    device: &str,
    descriptor: Option<&DescriptorExpect>,
    keys_present: &[KeyName],
    keys_absent: &[KeyName],
    starts: Option<u32>,
) -> Outcome {
    let mut o = Outcome::default();
    let d = match r.device(device) {
        Ok(d) => d,
        Err(o) => return o,
    };
    if let Some(n) = starts {
        match d.wait_starts(n, Duration::from_secs(5)) {
            Ok(got) => o.check("times the device was started (UHID_START)", n.to_string(), got.to_string(), got == n),
            Err(e) => return Outcome::fail(e),
        }
    }
    if let Some(want) = descriptor {
        let expected = want.apply(d.vdev.model.descriptor);
        match d.descriptor() {
            Ok(seen) => {
                let diff: Vec<String> = seen
                    .iter()
                    .enumerate()
                    .filter(|(i, b)| d.vdev.model.descriptor.get(*i) != Some(*b))
                    .map(|(i, b)| format!("{i}={b:02x}"))
                    .collect();
                let seen_text = if diff.is_empty() && seen.len() == d.vdev.model.descriptor.len() {
                    "original".to_string()
                } else {
                    format!("original with {} ({} bytes)", diff.join(" "), seen.len())
                };
                o.check("report descriptor (sysfs)", want.to_string(), seen_text, seen == expected);
            }
            Err(e) => return Outcome::fail(e),
        }
    }
    let keys = d.evdev.supported_keys();
    for k in keys_present {
        let has = keys.contains(&k.0);
        o.check(format!("{} advertises {k}", d.evdev.path), "yes", if has { "yes" } else { "no" }, has);
    }
    for k in keys_absent {
        let has = keys.contains(&k.0);
        o.check(format!("{} advertises {k}", d.evdev.path), "no", if has { "yes" } else { "no" }, !has);
    }
    o
}

pub fn get_feature(r: &mut Runner, device: &str, report_id: u8, expect: &FeatureExpect) -> Outcome {
    let mut o = Outcome::default();
    let d = match r.device(device) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let seen = match d.hidraw.get_feature(report_id, 64) {
        Ok(bytes) => FeatureExpect::Bytes(HexBytes(bytes)),
        Err(errno) => FeatureExpect::Error(Errno(errno)),
    };
    o.check(format!("HIDIOCGFEATURE({report_id}) on {}", d.hidraw.path), expect.to_string(), seen.to_string(), &seen == expect);
    o
}

pub fn write_output(
    r: &mut Runner,
    device: &str,
    report: &HexBytes,
    expect_error: Option<Errno>,
    receives: &ReportExpect,
) -> Outcome {
    let mut o = Outcome::default();
    let d = match r.device(device) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let stale = d.vdev.take_outputs(Duration::ZERO);
    if !stale.is_empty() {
        o.notes.push(format!("discarded {} earlier output report(s): {}", stale.len(), show_reports(&stale)));
    }
    let result = d.hidraw.write_output(&report.0);
    let seen = match result {
        Ok(n) => format!("wrote {n} bytes"),
        Err(e) => format!("error {}", Errno(e)),
    };
    let (expected, ok) = match expect_error {
        Some(e) => (format!("error {e}"), result.err() == Some(e.0)),
        None => (format!("wrote {} bytes", report.0.len()), result == Ok(report.0.len())),
    };
    o.check(format!("write() to {}", d.hidraw.path), expected, seen, ok);
    let outputs = d.vdev.take_outputs(OUTPUT_GRACE);
    o.check("output reports the device received (UHID_OUTPUT)", receives.to_string(), show_reports(&outputs), matches(receives, &outputs));
    o
}

pub fn set_led(r: &mut Runner, device: &str, led: &str, value: i32, receives: &ReportExpect) -> Outcome {
    let mut o = Outcome::default();
    let code = match led_code(led) {
        Ok(c) => c,
        Err(e) => return Outcome::fail(e),
    };
    let d = match r.device(device) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let _ = d.vdev.take_outputs(Duration::ZERO);
    if let Err(e) = d.evdev.set_led(code, value) {
        return Outcome::fail(e);
    }
    // hid-input sends the LED report from a work item: wait for it, and
    // when nothing must arrive, wait the whole grace period.
    let outputs = d.vdev.take_outputs(LED_GRACE);
    o.check("output reports the device received (UHID_OUTPUT)", receives.to_string(), show_reports(&outputs), matches(receives, &outputs));
    // The LED change echoes back as EV_LED frames; they are not compared.
    let _ = d.evdev.frames(None);
    o
}
