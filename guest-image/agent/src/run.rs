//! The scenario interpreter: executes steps in order, reports each one, and
//! stops at the first failing step.
use crate::bpf::{self, Attached};
use crate::channel;
use crate::hidraw::Hidraw;
use crate::input::Evdev;
use crate::uhid::VirtualDevice;
use hidvm_proto::event::show as show_events;
use hidvm_proto::job::FIXTURE_DIR;
use hidvm_proto::scenario::ReportExpect;
use hidvm_proto::{devices, Check, GuestMsg, HexBytes, ReleaseHow, Scenario, Step};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Generous: under TCG a probe of a new HID device takes tens of ms.
const NODE_DEADLINE: Duration = Duration::from_secs(10);
/// Reports written through uhid are delivered before write() returns; this
/// only bounds the wait if that ever stops being true.
const DELIVERY_GRACE: Duration = Duration::from_millis(500);
/// How long a released link may stay in the kernel's link list.
const LINK_GONE_DEADLINE: Duration = Duration::from_secs(2);

struct Device {
    vdev: VirtualDevice,
    hid_id: u32,
    sysfs: PathBuf,
    hidraw: Hidraw,
    evdev: Evdev,
}

#[derive(Default)]
struct Outcome {
    checks: Vec<Check>,
    notes: Vec<String>,
    error: Option<String>,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.ok)
    }

    fn check(&mut self, what: impl Into<String>, expected: impl Into<String>, seen: impl Into<String>, ok: bool) {
        self.checks.push(Check { what: what.into(), expected: expected.into(), seen: seen.into(), ok });
    }

    fn first_problem(&self) -> String {
        if let Some(e) = &self.error {
            return e.clone();
        }
        self.checks
            .iter()
            .find(|c| !c.ok)
            .map(|c| format!("{}: expected {}, saw {}", c.what, c.expected, c.seen))
            .unwrap_or_default()
    }
}

struct Runner {
    devices: BTreeMap<String, Device>,
    links: BTreeMap<String, Attached>,
    /// Objects whose link was released; kept loaded until the end so a
    /// release check is about the link, not about the object going away.
    released: Vec<Attached>,
}

pub fn run_scenario(cell: &str, scenario: &Scenario) -> GuestMsg {
    bpf::install_logger();
    channel::kmsg(&format!("scenario {} on cell {cell}: start", scenario.name));
    let mut runner = Runner { devices: BTreeMap::new(), links: BTreeMap::new(), released: Vec::new() };

    let t0 = Instant::now();
    let setup = runner.create_devices(scenario);
    let setup_ok = setup.ok();
    report(0, "create devices", t0, setup);
    if !setup_ok {
        return done(false, "could not create the scenario's devices".into());
    }

    // Self-tests expect failures and need every step to run; scenarios
    // stop at the first failure, whose cause is then the interesting one.
    let keep_going = scenario.is_selftest();
    let mut first_failure = None;
    for (i, step) in scenario.steps.iter().enumerate() {
        let index = i + 1;
        channel::kmsg(&format!("step {index}: {}", step.describe()));
        let t0 = Instant::now();
        let outcome = runner.exec(step);
        let ok = outcome.ok();
        let problem = outcome.first_problem();
        report(index, &step.describe(), t0, outcome);
        if !ok && first_failure.is_none() {
            first_failure = Some(format!("step {index} ({}) failed: {problem}", step.op()));
            if !keep_going {
                break;
            }
        }
    }
    runner.teardown();
    match first_failure {
        Some(f) => done(false, f),
        None => done(true, format!("all {} steps passed", scenario.steps.len())),
    }
}

fn report(index: usize, what: &str, t0: Instant, o: Outcome) {
    let ok = o.ok();
    let mut notes = o.notes;
    if let Some(e) = o.error {
        notes.push(format!("error: {e}"));
    }
    channel::kmsg(&format!("step {index}: {}", if ok { "ok" } else { "FAILED" }));
    channel::send(&GuestMsg::Step {
        index,
        what: what.to_string(),
        ok,
        ms: t0.elapsed().as_millis() as u64,
        checks: o.checks,
        notes,
    });
}

fn done(passed: bool, summary: String) -> GuestMsg {
    channel::kmsg(&format!("scenario done: {summary}"));
    GuestMsg::Done { passed, summary }
}

impl Runner {
    fn create_devices(&mut self, scenario: &Scenario) -> Outcome {
        let mut o = Outcome::default();
        for (index, spec) in scenario.devices.iter().enumerate() {
            match create_device(&spec.id, &spec.model, index) {
                Ok(d) => {
                    o.notes.push(format!(
                        "{}: {} hid_id={} {} {} {}",
                        spec.id,
                        spec.model,
                        d.hid_id,
                        d.sysfs.display(),
                        d.hidraw.path,
                        d.evdev.path
                    ));
                    self.devices.insert(spec.id.clone(), d);
                }
                Err(e) => {
                    o.error = Some(format!("device {}: {e}", spec.id));
                    break;
                }
            }
        }
        o
    }

    fn exec(&mut self, step: &Step) -> Outcome {
        match step {
            Step::Attach { link, fixture, device, map } => self.attach(link, fixture, device, map.as_deref()),
            Step::Inject { device, report, hidraw, evdev } => self.inject(device, report, hidraw, evdev),
            Step::Release { link, how } => self.release(link, *how),
        }
    }

    fn attach(&mut self, link: &str, fixture: &str, device: &str, map: Option<&str>) -> Outcome {
        let mut o = Outcome::default();
        let hid_id = self.devices[device].hid_id;
        let path = format!("{FIXTURE_DIR}/{fixture}.bpf.o");
        match bpf::attach(&path, hid_id, map) {
            Ok(a) => {
                o.check(format!("load and attach {fixture}"), "attached", "attached", true);
                o.notes.push(format!("map {} attached to hid_id {hid_id}, bpf_link id {}", a.map_name, a.link_id));
                self.links.insert(link.to_string(), a);
            }
            Err(e) => {
                // The stage ("open", "load": verifier, "attach": hid_bpf_reg)
                // leads the check's name so self-tests can match on it.
                o.check(format!("{} {fixture}", e.stage), "success", e.message, false);
                o.notes.extend(e.log);
            }
        }
        o
    }

    fn inject(&mut self, device: &str, report: &HexBytes, hidraw: &ReportExpect, evdev: &[hidvm_proto::EvdevEvent]) -> Outcome {
        let mut o = Outcome::default();
        let d = self.devices.get_mut(device).expect("validated on the host");

        // Anything already queued means an earlier step's expectation missed
        // a report; fail here rather than compare against stale data.
        match (d.hidraw.reports(None), d.evdev.frames(None)) {
            (Ok(r), Ok(f)) if r.is_empty() && f.is_empty() => {}
            (Ok(r), Ok(f)) => o.check(
                "nothing queued before injecting",
                "no reports, no events",
                format!("{} stale hidraw report(s), {} evdev frame(s)", r.len(), f.len()),
                false,
            ),
            (Err(e), _) | (_, Err(e)) => o.error = Some(e),
        }
        if !o.ok() {
            return o;
        }

        if let Err(e) = d.vdev.inject(&report.0) {
            o.error = Some(e);
            return o;
        }

        let want_report = matches!(hidraw, ReportExpect::Bytes(_));
        match d.hidraw.reports(want_report.then_some(DELIVERY_GRACE)) {
            Ok(seen) => {
                let seen_text = if seen.is_empty() {
                    "none".to_string()
                } else {
                    seen.iter().map(|r| HexBytes(r.clone()).to_string()).collect::<Vec<_>>().join(" | ")
                };
                let ok = match hidraw {
                    ReportExpect::Bytes(b) => seen.len() == 1 && seen[0] == b.0,
                    ReportExpect::Nothing => seen.is_empty(),
                };
                o.check(format!("hidraw {}", d.hidraw.path), hidraw.to_string(), seen_text, ok);
            }
            Err(e) => o.error = Some(e),
        }

        match d.evdev.frames((!evdev.is_empty()).then_some(DELIVERY_GRACE)) {
            Ok(frames) => {
                let mut seen: Vec<_> = frames.iter().flatten().copied().collect();
                let mut want = evdev.to_vec();
                seen.sort();
                want.sort();
                let mut seen_text = show_events(&seen);
                if frames.len() > 1 {
                    seen_text.push_str(&format!(" in {} frames", frames.len()));
                }
                o.check(format!("evdev {}", d.evdev.path), show_events(&want), seen_text, seen == want && frames.len() <= 1);
            }
            Err(e) => o.error = Some(e),
        }
        o
    }

    fn release(&mut self, link: &str, how: ReleaseHow) -> Outcome {
        let mut o = Outcome::default();
        let Some(mut attached) = self.links.remove(link) else {
            o.error = Some(format!("link `{link}` is not attached (an earlier step failed)"));
            return o;
        };
        let link_id = attached.link_id;
        match how {
            ReleaseHow::Close => {
                // Dropping the libbpf-rs Link closes its only fd: the kernel
                // must unregister the program before close() returns.
                drop(attached.link.take());
                o.notes.push(format!("closed the only fd of bpf_link {link_id}"));
            }
            ReleaseHow::CloseButLeakDup => {
                let link = attached.link.take().expect("attached link");
                match std::os::fd::AsFd::as_fd(&link).try_clone_to_owned() {
                    Ok(dup) => {
                        // Deliberately leaked for the rest of the VM's life.
                        std::mem::forget(dup);
                        drop(link);
                        o.notes.push(format!("closed bpf_link {link_id} but leaked a dup() of its fd"));
                    }
                    Err(e) => o.error = Some(format!("dup of link fd: {e}")),
                }
            }
        }
        let t0 = Instant::now();
        let gone = loop {
            if !bpf::live_link_ids().contains(&link_id) {
                break true;
            }
            if t0.elapsed() > LINK_GONE_DEADLINE {
                break false;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let seen = if gone {
            format!("gone after {} ms", t0.elapsed().as_millis())
        } else {
            format!("still listed after {} ms", t0.elapsed().as_millis())
        };
        o.check(format!("bpf_link {link_id} in the kernel's link list"), "gone", seen, gone);
        self.released.push(attached);
        o
    }

    fn teardown(&mut self) {
        // Links first, then devices: the usual order of a well-behaved user.
        self.links.clear();
        self.released.clear();
        for (_, d) in std::mem::take(&mut self.devices) {
            let _ = d.vdev.destroy();
        }
    }
}

fn create_device(id: &str, model_name: &str, index: usize) -> Result<Device, String> {
    let model = devices::model(model_name).ok_or_else(|| format!("unknown model {model_name}"))?;
    let vdev = VirtualDevice::create(id, model, index)?;
    vdev.wait_started(NODE_DEADLINE)?;
    let (sysfs, hid_id) = vdev.sysfs_dir(NODE_DEADLINE)?;
    let hidraw = Hidraw::open(&sysfs, NODE_DEADLINE)?;
    let evdev = Evdev::open(&sysfs, NODE_DEADLINE)?;
    Ok(Device { vdev, hid_id, sysfs, hidraw, evdev })
}
