//! The scenario interpreter: executes steps in order, reports each one, and
//! stops at the first failing step (self-tests keep going, see below).
use crate::bpf;
use crate::channel;
use crate::health;
use crate::device::Device;
use crate::holder::HeldLink;
use hidvm_proto::{devices, Check, GuestMsg, Scenario, Step};
use libbpf_rs::{Link, Object};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// What one step saw: its checks (expected vs seen) and notes.
#[derive(Default)]
pub struct Outcome {
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.ok)
    }

    pub fn check(&mut self, what: impl Into<String>, expected: impl Into<String>, seen: impl Into<String>, ok: bool) {
        self.checks.push(Check { what: what.into(), expected: expected.into(), seen: seen.into(), ok });
    }

    pub fn fail(msg: impl Into<String>) -> Outcome {
        Outcome { error: Some(msg.into()), ..Outcome::default() }
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

/// A link and every way it is held: the agent's fd, a bpffs pin, a child
/// process. The object stays loaded (in `Runner::objects`) until the end,
/// so a release check is about the link, not about the object going away.
pub struct LinkHandle {
    pub id: u32,
    pub object: Option<usize>,
    pub map_name: String,
    pub link: Option<Link>,
    pub pin: Option<PathBuf>,
    pub holder: Option<HeldLink>,
}

pub struct Runner {
    pub devices: BTreeMap<String, Device>,
    pub links: BTreeMap<String, LinkHandle>,
    pub objects: Vec<Object>,
    /// Fds deliberately leaked by self-test release variants.
    pub leaked: Vec<std::os::fd::OwnedFd>,
}

pub fn run_scenario(cell: &str, scenario: &Scenario) -> GuestMsg {
    bpf::install_logger();
    channel::kmsg(&format!("scenario {} on cell {cell}: start", scenario.name));
    let mut runner = Runner { devices: BTreeMap::new(), links: BTreeMap::new(), objects: Vec::new(), leaked: Vec::new() };
    let taint_before = health::taint();
    let objects_before = bpf::object_counts();
    health::kmemleak_clear();

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
        let mut outcome = runner.exec(step);
        runner.refresh_devices(&mut outcome);
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
    // Programs, maps and links are freed from RCU callbacks and work items
    // after their last reference goes: wait for that before the final
    // health checks, so a splat in deferred cleanup lands inside the run.
    let objects_after = health::wait_objects(objects_before);
    channel::kmsg("teardown done");
    channel::send(&GuestMsg::Health {
        taint_before,
        taint_after: health::taint(),
        kmemleak: health::kmemleak_report(),
        bpf_objects_before: objects_before.to_string(),
        bpf_objects_after: objects_after.to_string(),
    });
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
    channel::send(&GuestMsg::Step { index, what: what.to_string(), ok, ms: t0.elapsed().as_millis() as u64, checks: o.checks, notes });
}

fn done(passed: bool, summary: String) -> GuestMsg {
    channel::kmsg(&format!("scenario done: {summary}"));
    GuestMsg::Done { passed, summary }
}

impl Runner {
    fn create_devices(&mut self, scenario: &Scenario) -> Outcome {
        let mut o = Outcome::default();
        for (index, spec) in scenario.devices.iter().enumerate() {
            let Some(model) = devices::model(&spec.model) else {
                return Outcome::fail(format!("unknown model {}", spec.model));
            };
            match Device::create(&spec.id, model, index) {
                Ok(d) => {
                    o.notes.push(d.describe());
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
        use crate::steps::{flood, io, kernel, links};
        match step {
            Step::Attach { link, fixture, reuse, device, hid_id, map, before, holder, expect_error } => links::attach(
                self,
                links::AttachSpec {
                    link,
                    fixture: fixture.as_deref(),
                    reuse: reuse.as_deref(),
                    device: device.as_deref(),
                    hid_id: *hid_id,
                    map: map.as_deref(),
                    before: *before,
                    holder: *holder,
                    expect_error: *expect_error,
                },
            ),
            Step::AttachMany { fixture, device, count, link_prefix } => {
                links::attach_many(self, fixture, device, *count, link_prefix)
            }
            Step::Pin { link } => links::pin(self, link),
            Step::Release { link, how, link_after } => links::release(self, link, *how, *link_after),
            Step::Cycle { fixture, device, count, fresh_objects, report, rewritten, original } => {
                links::cycle(self, fixture, device, *count, *fresh_objects, report, rewritten, original)
            }
            Step::Inject { device, report, hidraw, evdev, until_ms } => {
                io::inject(self, device, report, hidraw, evdev, *until_ms)
            }
            Step::Destroy { device } => io::destroy(self, device),
            Step::CheckDevice { device, descriptor, keys_present, keys_absent, starts } => {
                io::check_device(self, device, descriptor.as_ref(), keys_present, keys_absent, *starts)
            }
            Step::GetFeature { device, report_id, expect } => io::get_feature(self, device, *report_id, expect),
            Step::WriteOutput { device, report, expect_error, device_receives } => {
                io::write_output(self, device, report, *expect_error, device_receives)
            }
            Step::SetLed { device, led, value, device_receives } => io::set_led(self, device, led, *value, device_receives),
            Step::FloodRelease { device, link, report, seq_bytes, rewritten, original, after } => {
                flood::flood_release(self, device, link, report, *seq_bytes, rewritten, original, *after)
            }
            Step::Sleep { ms } => kernel::sleep(*ms),
            Step::Sysctl { name, value } => kernel::sysctl(name, value),
            Step::Lkdtm { crash, wait_ms } => kernel::lkdtm(crash, *wait_ms),
        }
    }

    /// After every step: devices whose nodes died (re-probe) get new ones.
    fn refresh_devices(&mut self, o: &mut Outcome) {
        for d in self.devices.values_mut() {
            match d.refresh() {
                Ok(Some(note)) => o.notes.push(note),
                Ok(None) => {}
                Err(e) => o.error = Some(format!("re-discovering {}: {e}", d.vdev.id)),
            }
        }
    }

    pub fn device(&mut self, id: &str) -> Result<&mut Device, Outcome> {
        self.devices.get_mut(id).ok_or_else(|| Outcome::fail(format!("device `{id}` does not exist (an earlier step failed?)")))
    }

    fn teardown(&mut self) {
        // Links first, then devices: the usual order of a well-behaved user.
        for (_, l) in std::mem::take(&mut self.links) {
            if let Some(p) = &l.pin {
                let _ = std::fs::remove_file(p);
            }
            drop(l);
        }
        self.objects.clear();
        // Self-test variants leak fds on purpose; the scenario is over.
        self.leaked.clear();
        for (_, d) in std::mem::take(&mut self.devices) {
            let _ = d.vdev.destroy();
        }
    }
}
