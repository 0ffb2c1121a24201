//! Race steps: racers on their own threads, started together after a
//! per-round random delay, for many rounds (see `hidvm_proto::Race`).
//!
//! Whether a round reached its window is measured in the kernel
//! (`hidvm_proto::window`, `crate::tracer`): fentry/fexit on the window's
//! functions and on the HID-BPF programs the racers reach record every call
//! with the kernel's clock, and a round hits when a call of one side was in
//! flight while a call of the other side was, on the same device. The
//! racers' syscalls are still timed from userspace, and that overlap is
//! noted beside the kernel's, but it proves nothing: a syscall can spend
//! its time waiting for the lock the other side holds.
use crate::bpf;
use crate::device::Device;
use crate::hidraw::Hidraw;
use crate::input::EvdevSet;
use crate::state::{LinkHandle, Outcome, Runner};
use crate::tracer::{KernelBtf, Tracer};
use crate::uhid::Injector;
use hidvm_proto::steps::{Race, Racer, RacerOp};
use hidvm_proto::window::{Traced, Window, Windows};
use hidvm_proto::{Check, Hook, RaceRecord, ReleaseHow, Step, WindowHits};
use libbpf_rs::{Link, Object};
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// A racer, with what it needs taken out of the runner before the round.
enum Action {
    Inject(Injector, Vec<u8>),
    /// The injector program's fd, the device's hid_id, the report.
    InjectBpf(OwnedFd, u32, Vec<u8>),
    GetFeature(Hidraw, u8),
    SetFeature(Hidraw, Vec<u8>),
    WriteOutput(Hidraw, Vec<u8>),
    SetLed(EvdevSet, u16),
    Attach {
        object: Object,
        map: String,
    },
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

/// The kernel side of a race step: what is traced, and the counts.
struct Tracing {
    tracer: Tracer,
    btf: KernelBtf,
    windows: Windows,
    /// The program hooks either window names: their programs are traced
    /// every round.
    hooks: BTreeSet<Hook>,
    /// How many program instances were traced, over all rounds.
    programs: u64,
    /// Per window (program window first): rounds it was seen open.
    hits: Vec<u32>,
    unpaired: u64,
    /// The first round that hit, and the evidence.
    first_hit: Option<String>,
    /// Per hook the windows name: rounds in which no loaded program
    /// implemented it (nothing to trace: such a round cannot hit).
    no_program: BTreeMap<Hook, u32>,
    /// Per traced thing: how long each of its calls took (ns).
    durations: BTreeMap<Traced, Vec<u64>>,
}

impl Tracing {
    /// Trace the windows' kernel functions for the whole race.
    fn start(windows: Windows) -> Result<Tracing, String> {
        let btf = KernelBtf::load()?;
        let mut tracer = Tracer::new()?;
        let mut hooks = BTreeSet::new();
        for t in windows.traced() {
            match t {
                Traced::Function(name) => {
                    tracer.trace_function(&btf, &name)?;
                }
                Traced::Program(h) => {
                    hooks.insert(h);
                }
            }
        }
        let n = 1 + usize::from(windows.dispatcher.is_some());
        Ok(Tracing {
            tracer,
            btf,
            windows,
            hooks,
            programs: 0,
            hits: vec![0; n],
            unpaired: 0,
            first_hit: None,
            no_program: BTreeMap::new(),
            durations: BTreeMap::new(),
        })
    }

    fn windows(&self) -> Vec<&Window> {
        std::iter::once(&self.windows.program).chain(self.windows.dispatcher.as_ref()).collect()
    }

    /// Trace, for this round, every struct_ops program of these objects
    /// that implements a hook the windows name.
    fn trace_programs(&mut self, objects: &[&Object]) -> Result<(), String> {
        self.tracer.end_round();
        if self.hooks.is_empty() {
            return Ok(());
        }
        let mut found = BTreeSet::new();
        for object in objects {
            for prog in object.progs() {
                let Some(hook) = self.btf.hook_of(&prog).filter(|h| self.hooks.contains(h)) else { continue };
                let name = prog.name().to_string_lossy().into_owned();
                self.tracer.trace_program(&self.btf, prog.as_fd(), &name, hook)?;
                self.programs += 1;
                found.insert(hook);
            }
        }
        for h in &self.hooks {
            if !found.contains(h) {
                *self.no_program.entry(*h).or_default() += 1;
            }
        }
        Ok(())
    }

    /// Read the round's records; count the windows seen open.
    fn end_round(&mut self, round: u32) -> Result<(), String> {
        let records = self.tracer.drain();
        self.tracer.end_round();
        let calls = hidvm_proto::window::calls(&records?);
        self.unpaired += calls.unpaired as u64;
        for c in &calls.intervals {
            if let Some(t) = self.tracer.what.get(&c.tag) {
                self.durations.entry(t.clone()).or_default().push(c.ns);
            }
        }
        let tags = |side: &hidvm_proto::window::Side| -> BTreeSet<u32> {
            self.tracer.what.iter().filter(|(_, t)| side.0.contains(t)).map(|(tag, _)| *tag).collect()
        };
        let mut evidence = None;
        let windows: Vec<Window> = self.windows().into_iter().cloned().collect();
        for (i, w) in windows.iter().enumerate() {
            let seen =
                hidvm_proto::window::overlap(&calls.intervals, &tags(&w.a), &tags(&w.b), &self.tracer.device_known);
            if let Some((a, b)) = seen {
                self.hits[i] += 1;
                if i == 0 {
                    let what = |tag: u32| self.tracer.what.get(&tag).map(|t| t.to_string()).unwrap_or_default();
                    evidence = Some(format!(
                        "round {round}: {} (thread {}, {:.3} ms, records {}..{}) and {} (thread {}, {:.3} ms, records {}..{}) were in flight together",
                        what(a.tag),
                        a.tid,
                        a.ns as f64 / 1e6,
                        a.start,
                        a.end,
                        what(b.tag),
                        b.tid,
                        b.ns as f64 / 1e6,
                        b.start,
                        b.end,
                    ));
                }
            }
        }
        if self.first_hit.is_none() {
            self.first_hit = evidence;
        }
        Ok(())
    }

    /// How many calls of each traced thing the kernel made during the
    /// racers, and how long they took.
    fn call_notes(&mut self) -> Vec<String> {
        let ms = |ns: u64| ns as f64 / 1e6;
        self.durations
            .iter_mut()
            .map(|(t, d)| {
                d.sort_unstable();
                format!(
                    "{t}: {} calls during the racers, {:.3} ms median, {:.3} ms at most",
                    d.len(),
                    ms(d[d.len() / 2]),
                    ms(d[d.len() - 1])
                )
            })
            .collect()
    }

    /// What was traced, for the report.
    fn traced(&self) -> Vec<String> {
        self.windows
            .traced()
            .into_iter()
            .map(|t| match t {
                Traced::Program(_) => format!("{t} ({} program instances over the rounds)", self.programs_of(&t)),
                Traced::Function(_) => t.to_string(),
            })
            .collect()
    }

    fn programs_of(&self, t: &Traced) -> usize {
        self.tracer.what.values().filter(|w| *w == t).count()
    }
}

/// A failure to trace is "could not look": a failed check, never a race
/// that saw nothing.
fn untraced(what: String) -> Check {
    Check::equal("trace the race window in the kernel (fentry/fexit)", "traced", what)
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
    let windows = match s.windows() {
        Ok(w) => w,
        Err(e) => return Outcome::fail(format!("the race's window: {e}")),
    };
    let mut tracing = match Tracing::start(windows) {
        Ok(t) => t,
        Err(e) => {
            o.push(untraced(e));
            return o;
        }
    };
    let mut rng = Rng::seeded();
    o.note(format!("jitter seed {:#x}", rng.0));
    let mut tallies: Vec<Tally> = s.racers.iter().map(|_| Tally::default()).collect();
    let mut destroyed: Vec<String> = Vec::new();
    let mut injectors: BTreeMap<String, Object> = BTreeMap::new();
    let (mut user_overlaps, mut rounds) = (0u32, 0u32);
    let mut failed = false;
    let t0 = Instant::now();
    for round in 1..=s.iterations {
        let mut ctx = RoundCtx { round, rng: &mut rng, destroyed: &mut destroyed, tallies: &mut tallies, run_step };
        match one_round(r, s, &mut ctx, &mut tracing, &mut injectors) {
            Ok(user) => {
                user_overlaps += u32::from(user);
                rounds += 1;
            }
            Err(round_failed) => {
                o.note(format!("round {round} failed"));
                o.absorb(round_failed);
                failed = true;
                break;
            }
        }
    }
    let elapsed = t0.elapsed();
    tracing.tracer.end_round();
    drop(injectors);
    // Devices the last round destroyed are created again: the scenario
    // continues with the devices it declared.
    if let Err(e) = recreate(r, &mut destroyed, s.iterations + 1) {
        o.error.get_or_insert(e);
    }
    o.expect_eq("race rounds completed (before, racers, after)", s.iterations, rounds);
    report(&mut o, s, &mut tracing, Counts { rounds, user_overlaps, failed, elapsed }, &tallies);
    drop(tracing);
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

/// How the race's rounds went, for [`report`].
struct Counts {
    rounds: u32,
    user_overlaps: u32,
    failed: bool,
    elapsed: Duration,
}

/// The race's evidence into `o`: the kernel-seen hit check (or why it
/// could not look), what the tracer saw and missed, the record for the
/// results, and each racer's operations.
fn report(o: &mut Outcome, s: &Race, tracing: &mut Tracing, c: Counts, tallies: &[Tally]) {
    let Counts { rounds, user_overlaps, failed, elapsed } = c;
    let per_round = elapsed.as_secs_f64() * 1000.0 / f64::from(rounds.max(1));
    let lost = tracing.tracer.lost();
    let windows: Vec<Window> = tracing.windows().into_iter().cloned().collect();
    let hits = tracing.hits[0];
    // A race that stopped at a failed round has failed already; its hit
    // count would only repeat that.
    if !failed {
        let mut detail = format!(
            "{hits} of {rounds} rounds ({:.0}%), {} ms in all, {per_round:.1} ms per round",
            100.0 * f64::from(hits) / f64::from(rounds.max(1)),
            elapsed.as_millis(),
        );
        if let Ok(n @ 1..) = lost {
            detail.push_str(&format!(
                "; {n} trace records lost (ring buffer full): a round without a hit may have had one"
            ));
        }
        match &lost {
            Ok(_) => {
                o.push(
                    Check::at_least(
                        format!("race rounds whose window the kernel saw overlap ({})", windows[0]),
                        s.min_hits.into(),
                        hits.into(),
                    )
                    .with_detail(detail),
                );
            }
            Err(e) => {
                o.push(untraced(e.clone()));
            }
        }
    }
    let clocksource = tracer_notes(o, tracing, &windows, rounds, user_overlaps);
    o.race = Some(Box::new(RaceRecord {
        rounds,
        hits,
        windows: windows
            .iter()
            .zip(&tracing.hits)
            .map(|(w, n)| WindowHits { window: w.to_string(), hits: *n })
            .collect(),
        traced: tracing.traced(),
        ms_per_round: (per_round * 10.0).round() / 10.0,
        lost_records: lost.as_ref().copied().unwrap_or(0),
        unpaired_records: tracing.unpaired,
        clocksource: clocksource.clone(),
    }));
    for (x, t) in s.racers.iter().zip(tallies) {
        let errors = t.errors.iter().map(|(e, n)| format!("{n} {e}")).collect::<Vec<_>>().join(", ");
        o.note(format!(
            "{}: {} operations{}",
            x.describe(),
            t.ops,
            if errors.is_empty() { String::new() } else { format!(", failed: {errors}") }
        ));
    }
}

/// What the tracer saw beside the hit count, as notes (a window no loaded
/// program implements is a failure: zero hits would be a lie); returns
/// the kernel's clocksource.
fn tracer_notes(
    o: &mut Outcome,
    tracing: &mut Tracing,
    windows: &[Window],
    rounds: u32,
    user_overlaps: u32,
) -> Option<String> {
    for (h, n) in &tracing.no_program {
        if *n >= rounds && rounds > 0 {
            // Nothing to trace in any round: "zero hits" would be a lie.
            o.push(untraced(format!("no program the agent loaded implements {h} (the window names it)")));
        } else {
            o.note(format!("{n} rounds had no program implementing {h} to trace"));
        }
    }
    for (w, n) in windows.iter().zip(&tracing.hits).skip(1) {
        o.note(format!(
            "dispatcher window {w}: open in {n} of {rounds} rounds (the dispatcher ran, not necessarily the program)"
        ));
    }
    if let Some(e) = &tracing.first_hit {
        o.note(format!("first kernel overlap: {e}"));
    }
    let clocksource = std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .ok()
        .map(|c| c.trim().to_string());
    let clock = clocksource.as_deref().unwrap_or("unknown");
    o.note(format!(
        "kernel clocksource {clock}: call durations are in its resolution{}; overlaps are decided on the records' order (one atomic counter), not on the clock",
        if clock.contains("jiffies") { " (4 ms ticks: the TSC could not be used)" } else { "" }
    ));
    for n in tracing.call_notes() {
        o.note(n);
    }
    o.note(format!(
        "racers' syscalls overlapped in userspace time in {user_overlaps} of {rounds} rounds (not evidence: a syscall may wait on a lock the other side holds)"
    ));
    if tracing.unpaired > 0 {
        o.note(format!("{} trace records without their entry or exit", tracing.unpaired));
    }
    clocksource
}

/// What a round needs from the whole race.
struct RoundCtx<'a> {
    round: u32,
    rng: &'a mut Rng,
    destroyed: &'a mut Vec<String>,
    tallies: &'a mut [Tally],
    /// The agent's step dispatcher, for the `before` and `after` steps.
    run_step: RunStep,
}

/// One round; Ok(whether the racers' syscalls overlapped in userspace
/// time), or the failed sub-step. The kernel's view goes to `tracing`.
fn one_round(
    r: &mut Runner,
    s: &Race,
    ctx: &mut RoundCtx<'_>,
    tracing: &mut Tracing,
    injectors: &mut BTreeMap<String, Object>,
) -> Result<bool, Outcome> {
    let round = ctx.round;
    recreate(r, ctx.destroyed, round).map_err(Outcome::fail)?;
    let links_before: BTreeSet<String> = r.links.keys().cloned().collect();
    let objects_before = r.objects.len();
    run_steps(r, &s.before, round, "before", ctx.run_step)?;

    let mut actions = Vec::new();
    for (j, x) in s.racers.iter().enumerate() {
        let at = format!("round {round}, racer {} ({})", j + 1, hidvm_proto::steps::snake(&x.op));
        actions.push(prepare(r, x, injectors, &at)?);
    }
    // The programs the racers can reach: those of the objects the agent
    // holds, and those an attach racer is about to attach.
    let mut objects: Vec<&Object> = r.objects.iter().collect();
    objects.extend(actions.iter().filter_map(|a| match a {
        Action::Attach { object, .. } => Some(object),
        _ => None,
    }));
    tracing
        .trace_programs(&objects)
        .map_err(|e| Outcome { checks: vec![untraced(format!("round {round}: {e}"))], ..Outcome::default() })?;
    // Records of the `before` steps are not the racers'.
    tracing.tracer.drain().map_err(|e| Outcome::fail(format!("round {round}: {e}")))?;
    // Repeating racers start at once; one-shot racers land at a random
    // point of their run (and of each other's).
    let delays: Vec<u64> =
        s.racers.iter().map(|x| x.delay_us + if x.repeat { 0 } else { ctx.rng.below(s.jitter_us) }).collect();
    let one_shots = s.racers.iter().filter(|x| !x.repeat).count();
    let results = run_racers(actions, s, &delays, one_shots);

    let hit = tally(s, &results, ctx.tallies);
    keep_what_racers_left(r, s, results, ctx.destroyed);
    drop_racers_reports(r, s, round)?;
    // The racers and what they set off (LED work items) are done: what
    // did the kernel see?
    tracing
        .end_round(round)
        .map_err(|e| Outcome { checks: vec![untraced(format!("round {round}: {e}"))], ..Outcome::default() })?;
    let mut refreshed = Outcome::default();
    r.refresh_devices(&mut refreshed);
    if let Some(e) = refreshed.error {
        return Err(Outcome::fail(format!("round {round}: after the racers: {e}")));
    }
    run_steps(r, &s.after, round, "after", ctx.run_step)?;
    // Links the round made and did not release are closed, and the
    // objects it loaded freed: every round starts from the same kernel state.
    let made: Vec<String> = r.links.keys().filter(|k| !links_before.contains(*k)).cloned().collect();
    for k in made {
        r.links.remove(&k);
    }
    r.objects.truncate(objects_before);
    Ok(hit)
}

/// The racers' operations and errors into their tallies; whether a
/// one-shot racer's syscall overlapped another racer's in userspace time.
fn tally(s: &Race, results: &[RacerResult], tallies: &mut [Tally]) -> bool {
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

/// What the racers left: the objects and links attach racers made go to
/// the runner, the devices destroy racers destroyed to `destroyed`.
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

/// The racers' own reports are not compared: drop them, so the `after`
/// steps see only theirs. A flood overruns the evdev client's buffer
/// (SYN_DROPPED, then a state resync on the next read): a fresh client
/// starts clean.
fn drop_racers_reports(r: &mut Runner, s: &Race, round: u32) -> Result<(), Outcome> {
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

/// Take what a racer needs out of the runner. An attach racer's program
/// is matched against the device, loaded and probed here, as the attach
/// step does (udev-hid-bpf's order): only BPF_LINK_CREATE races.
fn prepare(r: &mut Runner, x: &Racer, injectors: &mut BTreeMap<String, Object>, at: &str) -> Result<Action, Outcome> {
    let fail = |e: String| Outcome::fail(format!("{at}: {e}"));
    let dev = |r: &mut Runner| -> Result<std::path::PathBuf, Outcome> {
        let id = x.device.as_deref().ok_or_else(|| fail("no device".into()))?;
        r.devices.get(id).map(|d| d.sysfs.clone()).ok_or_else(|| fail(format!("device `{id}` does not exist")))
    };
    let wait = crate::budget::node_wait();
    Ok(match x.op {
        RacerOp::Inject => {
            let id = x.device.as_deref().ok_or_else(|| fail("no device".into()))?;
            let d = r.devices.get(id).ok_or_else(|| fail(format!("device `{id}` does not exist")))?;
            Action::Inject(d.vdev.injector(), x.report.clone().unwrap_or_default().0)
        }
        RacerOp::InjectBpf => inject_bpf_action(r, x, injectors, at)?,
        // Own fds: the racer's reads and writes never touch the step's.
        RacerOp::GetFeature => {
            Action::GetFeature(Hidraw::open(&dev(r)?, wait).map_err(fail)?, x.report_id.unwrap_or(0))
        }
        RacerOp::SetFeature => {
            Action::SetFeature(Hidraw::open(&dev(r)?, wait).map_err(fail)?, x.report.clone().unwrap_or_default().0)
        }
        RacerOp::WriteOutput => {
            Action::WriteOutput(Hidraw::open(&dev(r)?, wait).map_err(fail)?, x.report.clone().unwrap_or_default().0)
        }
        RacerOp::SetLed => {
            let code = hidvm_proto::event::led_code(x.led.as_deref().unwrap_or("")).map_err(fail)?;
            Action::SetLed(EvdevSet::open(&dev(r)?, wait).map_err(fail)?, code)
        }
        RacerOp::Attach => attach_action(r, x, at)?,
        RacerOp::Release => {
            let name = x.link.as_deref().ok_or_else(|| fail("no link".into()))?;
            let h = r.links.remove(name).ok_or_else(|| fail(format!("link `{name}` is not attached")))?;
            Action::Release(h, x.how.unwrap_or(ReleaseHow::Close))
        }
        RacerOp::Destroy => {
            let id = x.device.as_deref().ok_or_else(|| fail("no device".into()))?;
            Action::Destroy(r.devices.remove(id).ok_or_else(|| fail(format!("device `{id}` does not exist")))?)
        }
        RacerOp::Lkdtm => Action::Lkdtm(x.crash.clone().unwrap_or_default()),
    })
}

/// An inject_bpf racer: a fd of its own of the injector's `inject`
/// program, the device's hid_id, the report.
fn inject_bpf_action(
    r: &mut Runner,
    x: &Racer,
    injectors: &mut BTreeMap<String, Object>,
    at: &str,
) -> Result<Action, Outcome> {
    let fail = |e: String| Outcome::fail(format!("{at}: {e}"));
    let id = x.device.as_deref().ok_or_else(|| fail("no device".into()))?;
    let hid_id = r.devices.get(id).map(|d| d.hid_id).ok_or_else(|| fail(format!("device `{id}` does not exist")))?;
    let name = x.fixture.clone().unwrap_or_default();
    if !injectors.contains_key(&name) {
        // Loaded once per race: the device is named by hid_id at
        // run time, so a recreated device needs no new object.
        let fixture = r.fixture(&name).map_err(|o| fail(o.first_problem()))?;
        let object = bpf::load_plain(&fixture.path).map_err(|e| {
            let mut o = Outcome::default();
            o.push(Check::equal(format!("{at}: {} {name}", e.stage), "success", e.seen()).with_detail(e.message));
            o.notes.extend(e.log);
            o
        })?;
        injectors.insert(name.clone(), object);
    }
    let object = &injectors[&name];
    let prog = object
        .progs()
        .find(|p| p.name().to_str() == Some("inject"))
        .ok_or_else(|| fail(format!("{name} has no SEC(\"syscall\") program `inject`")))?;
    let fd = prog.as_fd().try_clone_to_owned().map_err(|e| fail(format!("dup of the injector's fd: {e}")))?;
    Ok(Action::InjectBpf(fd, hid_id, x.report.clone().unwrap_or_default().0))
}

/// An attach racer: its program matched against the device, loaded and
/// probed, so that only BPF_LINK_CREATE races.
fn attach_action(r: &mut Runner, x: &Racer, at: &str) -> Result<Action, Outcome> {
    let fail = |e: String| Outcome::fail(format!("{at}: {e}"));
    let id = x.device.as_deref().ok_or_else(|| fail("no device".into()))?;
    let (hid_id, sysfs) = r
        .devices
        .get(id)
        .map(|d| (d.hid_id, d.sysfs.clone()))
        .ok_or_else(|| fail(format!("device `{id}` does not exist")))?;
    let name = x.fixture.as_deref().unwrap_or("");
    let fixture = r.fixture(name).map_err(|o| fail(o.first_problem()))?;
    let mut o = Outcome::default();
    let loaded = super::links::match_load_probe(
        &fixture,
        hid_id,
        Some(&sysfs),
        x.skip_match.as_deref(),
        x.skip_probe.as_deref(),
        &mut o,
    );
    match loaded {
        Ok((object, map)) => Ok(Action::Attach { object, map }),
        Err(e) => {
            // As the attach step reports it: the stage leads.
            o.push(Check::equal(format!("{at}: {} {name}", e.stage), "success", e.seen()).with_detail(e.message));
            o.notes.extend(e.log);
            Err(o)
        }
    }
}

/// `struct hidvm_inject_args` of bpf-fixtures/inject_input_report.bpf.c.
#[repr(C)]
struct InjectArgs {
    data: [u8; 64],
    hid: u32,
    size: u32,
    retval: i32,
}

/// One report through hid_bpf_input_report(): BPF_PROG_TEST_RUN of the
/// injector with the device's hid_id; the errno it returned, if any.
fn inject_bpf(prog: &OwnedFd, hid: u32, report: &[u8]) -> Option<i32> {
    let n = report.len().min(64);
    let mut args = InjectArgs { data: [0; 64], hid, size: n as u32, retval: 0 };
    args.data[..n].copy_from_slice(&report[..n]);
    // SAFETY: zeroed is valid for this plain C struct; sz is set below.
    let mut opts: libbpf_rs::libbpf_sys::bpf_test_run_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_test_run_opts>() as _;
    opts.ctx_in = (&mut args as *mut InjectArgs).cast_const().cast();
    opts.ctx_size_in = std::mem::size_of::<InjectArgs>() as u32;
    // SAFETY: ctx_in points at `args` for the call; the kernel copies the
    // context back into that buffer (syscall programs use ctx_in only).
    let ret = unsafe { libbpf_rs::libbpf_sys::bpf_prog_test_run_opts(prog.as_raw_fd(), &mut opts) };
    if ret < 0 {
        Some(-ret)
    } else {
        args.retval.checked_neg().filter(|e| *e > 0)
    }
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

/// Run `op`, timed, once, or for a repeating racer until the one-shot
/// racers are all done. The loop of the racers that repeat one operation;
/// inlined, so the loop is the same as written out in `run_one`.
#[inline(always)]
fn timed_loop(
    timed: &mut impl FnMut(&mut dyn FnMut() -> Option<i32>),
    repeat: bool,
    remaining: &AtomicUsize,
    mut op: impl FnMut() -> Option<i32>,
) {
    loop {
        timed(&mut op);
        if !repeat || remaining.load(Ordering::SeqCst) == 0 {
            break;
        }
    }
}

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
        Action::Inject(injector, report) => {
            timed_loop(&mut timed, repeat, remaining, || injector.inject(&report).err().map(|e| errno_of(&e)));
        }
        Action::InjectBpf(fd, hid, report) => {
            timed_loop(&mut timed, repeat, remaining, || inject_bpf(&fd, hid, &report));
        }
        Action::GetFeature(h, id) => timed_loop(&mut timed, repeat, remaining, || h.get_feature(id, 64).err()),
        Action::SetFeature(h, report) => timed_loop(&mut timed, repeat, remaining, || h.set_feature(&report).err()),
        Action::WriteOutput(h, report) => timed_loop(&mut timed, repeat, remaining, || h.write_output(&report).err()),
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
