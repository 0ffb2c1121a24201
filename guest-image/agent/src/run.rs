//! The scenario interpreter: executes steps in order, reports each one, and
//! stops at the first failing step (self-tests keep going, see below).
use crate::channel;
use crate::device::Device;
use crate::health::{self, LeakWatch};
use crate::state::{Outcome, Runner};
use crate::steps::{self, io};
use hidvm_proto::job::Detectors;
use hidvm_proto::{DeviceDef, GuestFixture, GuestMsg, Health, Kmemleak, ReplayData, Scenario, StepReport};
use std::collections::BTreeMap;
use std::time::Instant;

/// Everything a scenario run needs from the job.
pub struct ScenarioJob<'a> {
    pub cell: &'a str,
    pub scenario: &'a Scenario,
    pub defs: BTreeMap<String, DeviceDef>,
    pub fixtures: BTreeMap<String, GuestFixture>,
    pub replays: Vec<ReplayData>,
    pub bless: bool,
    pub detectors: Detectors,
}

pub fn run_scenario(job: ScenarioJob<'_>) -> GuestMsg {
    let ScenarioJob { cell, scenario, defs, fixtures, replays, bless, detectors } = job;
    crate::bpf::install_logger();
    channel::kmsg(&format!("scenario {} on cell {cell}: start", scenario.name));
    crate::health::clear_trace();
    let replays = replays.into_iter().map(|r| (r.step, r)).collect();
    let mut runner = Runner::new(defs, fixtures, replays, bless);
    let leak_watch = LeakWatch::start();
    let taint_before = health::taint();
    let objects_before = health::objects();
    let prog_memory = health::ProgMemory::baseline();

    let t0 = Instant::now();
    let setup = create_devices(&mut runner, scenario);
    let setup_ok = setup.ok();
    report(0, "create devices", t0, setup);
    if !setup_ok {
        return done(false, "could not create the scenario's devices".into());
    }

    // Self-tests expect failures and need every step to run; scenarios
    // stop at the first failure, whose cause is then the interesting one.
    let keep_going = scenario.is_selftest();
    let mut first_failure = None;
    let mut ran_all = true;
    for (i, step) in scenario.steps.iter().enumerate() {
        let index = i + 1;
        channel::kmsg(&format!("step {index}: {}", step.describe()));
        let t0 = Instant::now();
        runner.step = index;
        let mut outcome = steps::exec(&mut runner, step);
        runner.refresh_devices(&mut outcome);
        let ok = outcome.ok();
        let problem = outcome.first_problem();
        report(index, &step.describe(), t0, outcome);
        if !ok && first_failure.is_none() {
            first_failure = Some(format!("step {index} ({}) failed: {problem}", step.op()));
            if !keep_going {
                ran_all = false;
                break;
            }
        }
    }
    if ran_all {
        // A report that arrived after its step stopped looking (a dropped
        // report that was only late, say) must not go unnoticed.
        let index = scenario.steps.len() + 1;
        channel::kmsg(&format!("step {index}: nothing arrived late"));
        let t0 = Instant::now();
        let outcome = io::nothing_late(&mut runner, scenario.devices_at_end());
        let ok = outcome.ok();
        let problem = outcome.first_problem();
        report(index, "nothing arrived late on any device", t0, outcome);
        if !ok && first_failure.is_none() {
            first_failure = Some(format!("the final check failed: {problem}"));
        }
    }
    teardown(&mut runner);
    // Programs, maps and links are freed from RCU callbacks and work items
    // after their last reference goes: wait for that before the final
    // health checks, so a splat in deferred cleanup lands inside the run.
    let (objects_after, settled) = health::wait_objects(&objects_before, &prog_memory);
    let teardown_done = Instant::now();
    channel::kmsg(&format!("teardown done ({settled})"));
    let kmemleak = leak_watch.finish(teardown_done);
    if detectors.kmemleak && kmemleak == Kmemleak::NotBuilt {
        channel::kmsg("kmemleak: the cell's config has it, but /sys/kernel/debug/kmemleak is missing");
    }
    channel::send(&GuestMsg::Trace { lines: crate::health::trace() });
    channel::send(&GuestMsg::Health(Health {
        taint_before,
        taint_after: health::taint(),
        bpf_objects_before: objects_before,
        bpf_objects_after: objects_after,
        kmemleak,
    }));
    match first_failure {
        Some(f) => done(false, f),
        None => done(true, format!("all {} steps passed", scenario.steps.len())),
    }
}

fn report(index: usize, what: &str, t0: Instant, o: Outcome) {
    let msg = StepReport {
        index,
        what: what.to_string(),
        ms: t0.elapsed().as_millis() as u64,
        checks: o.checks,
        notes: o.notes,
        error: o.error,
        observed: o.observed.map(|b| *b),
        race: o.race.map(|r| *r),
    };
    channel::kmsg(&format!("step {index}: {}", if msg.ok() { "ok" } else { "FAILED" }));
    channel::send(&GuestMsg::Step(msg));
}

fn done(passed: bool, summary: String) -> GuestMsg {
    channel::kmsg(&format!("scenario done: {summary}"));
    GuestMsg::Done { passed, summary }
}

fn create_devices(r: &mut Runner, scenario: &Scenario) -> Outcome {
    let mut o = Outcome::default();
    for (index, spec) in scenario.devices.iter().enumerate() {
        let Some(def) = r.defs.get(&spec.id).cloned() else {
            return Outcome::fail(format!("device `{}` has no definition in the job (host bug)", spec.id));
        };
        match Device::create(&spec.id, &def, index) {
            Ok(d) => {
                o.note(d.describe());
                r.devices.insert(spec.id.clone(), d);
            }
            Err(e) => {
                o.error = Some(format!("device {}: {e}", spec.id));
                break;
            }
        }
    }
    o.expect_eq("devices created, each with a hidraw and an evdev node", scenario.devices.len(), r.devices.len());
    o
}

fn teardown(r: &mut Runner) {
    // Links first, then devices: the usual order of a well-behaved user.
    for (_, l) in std::mem::take(&mut r.links) {
        if let Some(p) = &l.pin {
            let _ = std::fs::remove_file(p);
        }
        drop(l);
    }
    r.objects.clear();
    // Self-test variants leak fds on purpose; the scenario is over.
    r.leaked.clear();
    for (_, d) in std::mem::take(&mut r.devices) {
        let _ = d.vdev.destroy();
    }
}
