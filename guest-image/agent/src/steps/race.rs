//! Race steps: racers on their own threads, started together after a
//! per-round random delay, for many rounds (see `hidvm_proto::Race`).
//!
//! Whether a round reached its window is measured from userspace: every
//! racer operation is one syscall (UHID_INPUT2 write, HIDIOC[GS]FEATURE,
//! hidraw write, evdev write, BPF_LINK_CREATE, close/BPF_LINK_DETACH,
//! UHID_DESTROY), timed from start to return. A round hits its window when
//! another racer's operation overlapped a one-shot racer's operation in
//! time: the program-running syscall was in flight while the release,
//! destroy or attach ran.
use crate::bpf;
use crate::device::Device;
use crate::hidraw::Hidraw;
use crate::input::EvdevSet;
use crate::state::{LinkHandle, Outcome, Runner};
use crate::uhid::Injector;
use hidvm_proto::steps::{Race, Racer, RacerOp};
use hidvm_proto::Step;
use hidvm_proto::{Check, ReleaseHow};
use libbpf_rs::{Link, Object};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// A racer, with what it needs taken out of the runner before the round.
enum Action {
    Inject(Injector, Vec<u8>),
    GetFeature(Hidraw, u8),
    SetFeature(Hidraw, Vec<u8>),
    WriteOutput(Hidraw, Vec<u8>),
    SetLed(EvdevSet, u16),
    Attach { object: Object, map: String },
    Release(LinkHandle, ReleaseHow),
    Destroy(Device),
    Lkdtm(String),
}

/// How long a device must stay quiet (no output report) after the racers
/// before the `after` steps look at it.
const QUIET: Duration = Duration::from_millis(100);

/// One operation: when it ran (ns since the round's start) and how it ended.
#[derive(Clone, Copy)]
struct Op {
    start: u64,
    end: u64,
    errno: Option<i32>,
}

/// What a racer thread hands back.
struct RacerResult {
    ops: Vec<Op>,
    /// A link an attach racer made.
    link: Option<(Link, u32)>,
    /// An object an attach racer loaded (kept loaded until the round ends).
    object: Option<Object>,
}

/// xorshift64*: the rounds' jitter. The seed is noted so a run can be
/// read back; the agent has no other use for randomness.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Rng((t.as_nanos() as u64) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % (n + 1)
    }
}

/// Per racer, over all rounds: operations and how they ended.
#[derive(Default)]
struct Tally {
    ops: u64,
    errors: BTreeMap<String, u64>,
}

/// How a race runs its `before` and `after` steps: the agent's step
/// dispatcher, passed in (it is the module that calls this one).
pub type RunStep = fn(&mut Runner, &Step) -> Outcome;

pub fn race(r: &mut Runner, s: &Race, run_step: RunStep) -> Outcome {
    let mut o = Outcome::default();
    let baseline = match bpf::object_counts() {
        Ok(b) => b,
        Err(e) => return Outcome::fail(format!("kernel object counts before the race: {e}")),
    };
    let mut rng = Rng::seeded();
    o.note(format!("jitter seed {:#x}", rng.0));
    let mut tallies: Vec<Tally> = s.racers.iter().map(|_| Tally::default()).collect();
    let mut destroyed: Vec<String> = Vec::new();
    let (mut hits, mut rounds) = (0u32, 0u32);
    let t0 = Instant::now();
    for round in 1..=s.iterations {
        match one_round(r, s, round, &mut rng, &mut destroyed, &mut tallies, run_step) {
            Ok(hit) => {
                hits += u32::from(hit);
                rounds += 1;
            }
            Err(failed) => {
                o.note(format!("round {round} failed"));
                o.absorb(failed);
                break;
            }
        }
    }
    let elapsed = t0.elapsed();
    // Devices the last round destroyed are created again: the scenario
    // continues with the devices it declared.
    if let Err(e) = recreate(r, &mut destroyed, s.iterations + 1) {
        o.error.get_or_insert(e);
    }
    o.expect_eq("race rounds completed (before, racers, after)", s.iterations, rounds);
    o.push(
        Check::at_least(
            "race rounds in which another racer's operation overlapped a one-shot racer's",
            s.min_hits.into(),
            hits.into(),
        )
        .with_detail(format!(
            "{hits} of {rounds} rounds ({:.0}%), {} ms in all, {:.1} ms per round",
            100.0 * f64::from(hits) / f64::from(rounds.max(1)),
            elapsed.as_millis(),
            elapsed.as_secs_f64() * 1000.0 / f64::from(rounds.max(1))
        )),
    );
    for (x, t) in s.racers.iter().zip(&tallies) {
        let errors = t.errors.iter().map(|(e, n)| format!("{n} {e}")).collect::<Vec<_>>().join(", ");
        o.note(format!(
            "{}: {} operations{}",
            x.describe(),
            t.ops,
            if errors.is_empty() { String::new() } else { format!(", failed: {errors}") }
        ));
    }
    let mut after = bpf::object_counts();
    crate::wait::poll_until(Duration::from_secs(2), Duration::from_millis(5), || {
        after = bpf::object_counts();
        (!matches!(&after, Ok(a) if *a != baseline)).then_some(())
    });
    let seen = match &after {
        Ok(a) => a.to_string(),
        Err(e) => format!("unknown: {e}"),
    };
    o.expect_eq("kernel programs/maps/links after the race", baseline, seen);
    o
}

/// One round; Ok(whether the window was hit), or the failed sub-step.
fn one_round(
    r: &mut Runner,
    s: &Race,
    round: u32,
    rng: &mut Rng,
    destroyed: &mut Vec<String>,
    tallies: &mut [Tally],
    run_step: RunStep,
) -> Result<bool, Outcome> {
    recreate(r, destroyed, round).map_err(Outcome::fail)?;
    let links_before: BTreeSet<String> = r.links.keys().cloned().collect();
    let objects_before = r.objects.len();
    run_steps(r, &s.before, round, "before", run_step)?;

    let mut actions = Vec::new();
    for x in &s.racers {
        actions.push(prepare(r, x).map_err(|e| Outcome::fail(format!("round {round}: {}: {e}", x.describe())))?);
    }
    // Repeating racers start at once; one-shot racers land at a random
    // point of their run (and of each other's).
    let delays: Vec<u64> =
        s.racers.iter().map(|x| x.delay_us + if x.repeat { 0 } else { rng.below(s.jitter_us) }).collect();
    let one_shots = s.racers.iter().filter(|x| !x.repeat).count();
    let results = run_racers(actions, s, &delays, one_shots);

    let hit = count(s, &results, tallies);
    keep_what_racers_left(r, s, results, destroyed);
    settle_devices(r, s, round)?;
    run_steps(r, &s.after, round, "after", run_step)?;
    // Links the round made and did not release are closed, and the
    // objects it loaded freed: every round starts from the same kernel state.
    let made: Vec<String> = r.links.keys().filter(|k| !links_before.contains(*k)).cloned().collect();
    for k in made {
        r.links.remove(&k);
    }
    r.objects.truncate(objects_before);
    Ok(hit)
}

/// Each racer's operations and errors into its tally; whether a one-shot
/// racer's operation overlapped another racer's (the window was hit).
fn count(s: &Race, results: &[RacerResult], tallies: &mut [Tally]) -> bool {
    let mut hit = false;
    for (i, (x, res)) in s.racers.iter().zip(results).enumerate() {
        tallies[i].ops += res.ops.len() as u64;
        for op in &res.ops {
            if let Some(e) = op.errno {
                *tallies[i].errors.entry(hidvm_proto::Errno(e).to_string()).or_default() += 1;
            }
        }
        if !x.repeat {
            hit |= results.iter().enumerate().any(|(j, other)| {
                j != i && res.ops.iter().any(|b| other.ops.iter().any(|a| a.start < b.end && b.start < a.end))
            });
        }
    }
    hit
}

/// What the racers left: made links, destroyed devices.
fn keep_what_racers_left(r: &mut Runner, s: &Race, results: Vec<RacerResult>, destroyed: &mut Vec<String>) {
    for (x, res) in s.racers.iter().zip(results) {
        match x.op {
            RacerOp::Attach => {
                if let Some(object) = res.object {
                    r.objects.push(object);
                }
                if let (Some((link, id)), Some(name)) = (res.link, &x.link) {
                    let idx = r.objects.len() - 1;
                    r.links.insert(
                        name.clone(),
                        LinkHandle {
                            id,
                            object: Some(idx),
                            map_name: String::new(),
                            link: Some(link),
                            pin: None,
                            holder: None,
                        },
                    );
                }
            }
            RacerOp::Destroy => destroyed.extend(x.device.clone()),
            _ => {}
        }
    }
}

/// The devices after the racers, ready for the `after` steps.
fn settle_devices(r: &mut Runner, s: &Race, round: u32) -> Result<(), Outcome> {
    // The racers' own reports are not compared: drop them, so the `after`
    // steps see only theirs. A flood overruns the evdev client's buffer
    // (SYN_DROPPED, then a state resync on the next read): a fresh client
    // starts clean.
    let outputs = s.racers.iter().any(|x| matches!(x.op, RacerOp::WriteOutput | RacerOp::SetLed));
    for d in r.devices.values_mut() {
        // Output reports and LED work items are still on their way after
        // the racers return: wait until the device has been quiet a while.
        let wait = if outputs { QUIET } else { Duration::ZERO };
        while !d.vdev.take_outputs(wait).is_empty() {}
        let _ = d.hidraw.reports(None);
        if let Err(e) = d.reopen_evdev() {
            return Err(Outcome::fail(format!("round {round}: reopening {}'s evdev node: {e}", d.vdev.id)));
        }
    }
    let mut refreshed = Outcome::default();
    r.refresh_devices(&mut refreshed);
    if let Some(e) = refreshed.error {
        return Err(Outcome::fail(format!("round {round}: after the racers: {e}")));
    }
    Ok(())
}

/// `before`/`after` steps of one round: a failing one fails the race with
/// its checks (named with the round).
fn run_steps(r: &mut Runner, steps: &[Step], round: u32, phase: &str, run_step: RunStep) -> Result<(), Outcome> {
    for (j, step) in steps.iter().enumerate() {
        let mut out = run_step(r, step);
        r.refresh_devices(&mut out);
        if !out.ok() {
            for c in &mut out.checks {
                c.what = format!("round {round}, {phase} {} ({}): {}", j + 1, step.op(), c.what);
            }
            if let Some(e) = &mut out.error {
                *e = format!("round {round}, {phase} {} ({}): {e}", j + 1, step.op());
            }
            return Err(out);
        }
    }
    Ok(())
}

/// Create devices destroyed in the previous round again, each with a new
/// phys (`generation`) so the old instance's sysfs entry is never mistaken
/// for the new one.
fn recreate(r: &mut Runner, destroyed: &mut Vec<String>, generation: u32) -> Result<(), String> {
    for id in destroyed.drain(..) {
        let def = r.defs.get(&id).cloned().ok_or_else(|| format!("device `{id}` has no definition"))?;
        let d = Device::create(&id, &def, 1000 * generation as usize + r.devices.len())?;
        r.devices.insert(id, d);
    }
    Ok(())
}

fn prepare(r: &mut Runner, x: &Racer) -> Result<Action, String> {
    let dev = |r: &mut Runner| -> Result<std::path::PathBuf, String> {
        let id = x.device.as_deref().ok_or("no device")?;
        r.devices.get(id).map(|d| d.sysfs.clone()).ok_or_else(|| format!("device `{id}` does not exist"))
    };
    let wait = crate::budget::node_wait();
    Ok(match x.op {
        RacerOp::Inject => {
            let id = x.device.as_deref().ok_or("no device")?;
            let d = r.devices.get(id).ok_or_else(|| format!("device `{id}` does not exist"))?;
            Action::Inject(d.vdev.injector(), x.report.clone().unwrap_or_default().0)
        }
        // Own fds: the racer's reads and writes never touch the step's.
        RacerOp::GetFeature => Action::GetFeature(Hidraw::open(&dev(r)?, wait)?, x.report_id.unwrap_or(0)),
        RacerOp::SetFeature => {
            Action::SetFeature(Hidraw::open(&dev(r)?, wait)?, x.report.clone().unwrap_or_default().0)
        }
        RacerOp::WriteOutput => {
            Action::WriteOutput(Hidraw::open(&dev(r)?, wait)?, x.report.clone().unwrap_or_default().0)
        }
        RacerOp::SetLed => {
            let code = hidvm_proto::event::led_code(x.led.as_deref().unwrap_or(""))?;
            Action::SetLed(EvdevSet::open(&dev(r)?, wait)?, code)
        }
        RacerOp::Attach => {
            let id = x.device.as_deref().ok_or("no device")?;
            let (hid_id, sysfs) = r
                .devices
                .get(id)
                .map(|d| (d.hid_id, d.sysfs.clone()))
                .ok_or_else(|| format!("device `{id}` does not exist"))?;
            let fixture = r.fixture(x.fixture.as_deref().unwrap_or("")).map_err(|o| o.first_problem())?;
            // Loaded and probed before the round: only the attach races.
            let (object, map) = bpf::load(&fixture.path, hid_id, 0, None).map_err(|e| e.message)?;
            bpf::probe_device(&object, hid_id, Some(&sysfs)).map_err(|e| e.message)?;
            Action::Attach { object, map }
        }
        RacerOp::Release => {
            let name = x.link.as_deref().ok_or("no link")?;
            let h = r.links.remove(name).ok_or_else(|| format!("link `{name}` is not attached"))?;
            Action::Release(h, x.how.unwrap_or(ReleaseHow::Close))
        }
        RacerOp::Destroy => {
            let id = x.device.as_deref().ok_or("no device")?;
            Action::Destroy(r.devices.remove(id).ok_or_else(|| format!("device `{id}` does not exist"))?)
        }
        RacerOp::Lkdtm => Action::Lkdtm(x.crash.clone().unwrap_or_default()),
    })
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Start every racer at once; repeating racers stop when the one-shot
/// racers are all done.
fn run_racers(actions: Vec<Action>, s: &Race, delays: &[u64], one_shots: usize) -> Vec<RacerResult> {
    let barrier = Barrier::new(actions.len());
    let remaining = AtomicUsize::new(one_shots);
    let start = Instant::now();
    let epoch = &start;
    std::thread::scope(|scope| {
        let handles: Vec<_> = actions
            .into_iter()
            .zip(&s.racers)
            .zip(delays)
            .map(|((action, x), delay)| {
                let (barrier, remaining) = (&barrier, &remaining);
                scope.spawn(move || {
                    barrier.wait();
                    std::thread::sleep(Duration::from_micros(*delay));
                    let result = run_one(action, x.repeat, remaining, epoch);
                    if !x.repeat {
                        remaining.fetch_sub(1, Ordering::SeqCst);
                    }
                    result
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("racer thread")).collect()
    })
}

/// One racer's operation(s), each timed. One arm per action, each short;
/// the match is kept whole (83 lines) because every arm uses the timing
/// closure and fills the one result.
fn run_one(action: Action, repeat: bool, remaining: &AtomicUsize, epoch: &Instant) -> RacerResult {
    let ns = |t: Instant| t.duration_since(*epoch).as_nanos() as u64;
    let mut ops = Vec::new();
    let mut timed = |f: &mut dyn FnMut() -> Option<i32>| {
        let t = Instant::now();
        let errno = f();
        ops.push(Op { start: ns(t), end: ns(Instant::now()), errno });
    };
    let mut result = RacerResult { ops: Vec::new(), link: None, object: None };
    match action {
        Action::Inject(injector, report) => loop {
            timed(&mut || injector.inject(&report).err().map(|e| errno_of(&e)));
            if !repeat || remaining.load(Ordering::SeqCst) == 0 {
                break;
            }
        },
        Action::GetFeature(h, id) => loop {
            timed(&mut || h.get_feature(id, 64).err());
            if !repeat || remaining.load(Ordering::SeqCst) == 0 {
                break;
            }
        },
        Action::SetFeature(h, report) => loop {
            timed(&mut || h.set_feature(&report).err());
            if !repeat || remaining.load(Ordering::SeqCst) == 0 {
                break;
            }
        },
        Action::WriteOutput(h, report) => loop {
            timed(&mut || h.write_output(&report).err());
            if !repeat || remaining.load(Ordering::SeqCst) == 0 {
                break;
            }
        },
        Action::SetLed(mut ev, code) => {
            let mut value = 1;
            loop {
                timed(&mut || ev.set_led(code, value).err().map(|_| 5));
                value ^= 1;
                if !repeat || remaining.load(Ordering::SeqCst) == 0 {
                    break;
                }
            }
            // Leave the LED off, so every round ends in the same state.
            if value == 0 {
                timed(&mut || ev.set_led(code, 0).err().map(|_| 5));
            }
        }
        Action::Attach { mut object, map } => {
            let mut made = None;
            timed(&mut || match bpf::attach(&mut object, &map) {
                Ok(l) => {
                    made = Some(l);
                    None
                }
                Err(e) => Some(e.errno.unwrap_or(0)),
            });
            result.link = made;
            result.object = Some(object);
        }
        Action::Release(mut h, how) => {
            timed(&mut || match how {
                ReleaseHow::Detach => h.link.as_ref().and_then(|l| l.detach().err().map(|_| 22)),
                _ => {
                    drop(h.link.take());
                    None
                }
            });
            drop(h);
        }
        Action::Destroy(d) => {
            let Device { vdev, .. } = d;
            let mut vdev = Some(vdev);
            // EIO stands for any failure: uhid-virt does not pass the errno on.
            timed(&mut || vdev.take().map(|v| v.destroy()).and_then(Result::err).map(|_| 5));
        }
        Action::Lkdtm(crash) => {
            timed(&mut || std::fs::write("/sys/kernel/debug/provoke-crash/DIRECT", &crash).err().map(|e| errno_of(&e)));
        }
    }
    result.ops = ops;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range() {
        let mut r = Rng(42);
        assert!((0..1000).map(|_| r.below(500)).all(|v| v <= 500));
        assert_eq!(r.below(0), 0);
    }
}
