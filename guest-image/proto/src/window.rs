//! A race's window, and whether the kernel saw it open.
//!
//! A race round *hits* when the kernel itself shows the two paths of the
//! race overlapping: the agent traces the functions (and HID-BPF programs)
//! on each side of the window with fentry/fexit, every call leaves an
//! entry and an exit record stamped with the kernel's monotonic clock, and
//! a round hits when a call on one side was in flight while a call on the
//! other side was, on the same device. Userspace timing proves nothing: a
//! racer's syscall can wait for a lock the other side holds (uhid's
//! devlock serialises UHID_INPUT2 against UHID_DESTROY), and the LED racer's
//! program runs later, in a work item.
//!
//! The sides are data ([`Windows`]): by default derived from the racers'
//! operations ([`Traced::of_racer`]), or named by the scenario
//! (`window = ["hid_bpf_unreg", "program:hid_rdesc_fixup"]`).
use crate::steps::{snake, Hook, Race, RacerOp};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One thing the agent traces.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Traced {
    /// A kernel function (fentry/fexit on it; it must be in the kernel's BTF).
    Function(String),
    /// The HID-BPF programs implementing this hook (fentry/fexit on each
    /// struct_ops program the agent loaded): only a call that reached a
    /// program counts.
    Program(Hook),
}

impl Traced {
    pub fn parse(s: &str) -> Result<Traced, String> {
        if let Some(member) = s.strip_prefix("program:") {
            return Hook::ALL.iter().find(|h| h.member() == member).map(|h| Traced::Program(*h)).ok_or_else(|| {
                format!(
                    "`{s}`: no hid_bpf_ops callback `{member}` (one of {})",
                    Hook::ALL.iter().map(|h| h.member()).collect::<Vec<_>>().join(", ")
                )
            });
        }
        let ident = !s.is_empty()
            && s.len() <= 128
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident {
            return Err(format!(
                "`{s}` is neither a kernel function name nor `program` / `program:<hid_bpf_ops callback>`"
            ));
        }
        Ok(Traced::Function(s.to_string()))
    }

    /// What a racer's operation runs in the kernel: the function a one-shot
    /// lifecycle operation is inside while it works (`hid_bpf_unreg` for a
    /// link release, `hid_bpf_destroy_device` for UHID_DESTROY,
    /// `hid_bpf_reg` for an attach), or the programs an I/O operation
    /// reaches. None for lkdtm.
    pub fn of_racer(op: RacerOp) -> Option<Traced> {
        Some(match op {
            RacerOp::Release => Traced::Function("hid_bpf_unreg".into()),
            RacerOp::Destroy => Traced::Function("hid_bpf_destroy_device".into()),
            RacerOp::Attach => Traced::Function("hid_bpf_reg".into()),
            RacerOp::Inject | RacerOp::InjectBpf => Traced::Program(Hook::DeviceEvent),
            RacerOp::GetFeature | RacerOp::SetFeature => Traced::Program(Hook::HwRequest),
            RacerOp::WriteOutput | RacerOp::SetLed => Traced::Program(Hook::HwOutputReport),
            RacerOp::Lkdtm => return None,
        })
    }

    /// The kernel function that calls this (a program's dispatcher), for
    /// the dispatcher window; a function stands for itself.
    pub fn dispatcher(&self) -> Traced {
        match self {
            Traced::Function(_) => self.clone(),
            Traced::Program(h) => Traced::Function(h.dispatcher().into()),
        }
    }
}

impl fmt::Display for Traced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Traced::Function(name) => f.write_str(name),
            Traced::Program(h) => write!(f, "program:{}", h.member()),
        }
    }
}

/// One side of a window: a call to any of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Side(pub BTreeSet<Traced>);

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.iter().map(Traced::to_string).collect::<Vec<_>>().join("|"))
    }
}

/// Two sides: the window is open when a call on one side is in flight
/// while a call on the other side is, on the same device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub a: Side,
    pub b: Side,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} x {}", self.a, self.b)
    }
}

impl Window {
    pub fn traced(&self) -> impl Iterator<Item = &Traced> {
        self.a.0.iter().chain(&self.b.0)
    }

    /// The same window with every program replaced by its dispatcher;
    /// None when neither side names a program.
    pub fn dispatchers(&self) -> Option<Window> {
        if !self.traced().any(|t| matches!(t, Traced::Program(_))) {
            return None;
        }
        let map = |s: &Side| Side(s.0.iter().map(Traced::dispatcher).collect());
        Some(Window { a: map(&self.a), b: map(&self.b) })
    }
}

/// What a race step traces: the window whose hits its check counts, and
/// the dispatcher window reported beside it (a dispatcher can be inside
/// the window without reaching the program, e.g. in the SRCU
/// check-then-lock window before the program list is walked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Windows {
    pub program: Window,
    pub dispatcher: Option<Window>,
}

impl Windows {
    /// Every distinct thing to trace, in a stable order.
    pub fn traced(&self) -> BTreeSet<Traced> {
        self.program.traced().chain(self.dispatcher.iter().flat_map(|w| w.traced())).cloned().collect()
    }
}

impl Race {
    /// The race's windows: as named by `window`, or derived from the
    /// racers (the first one-shot racer with a lifecycle function against
    /// what every other racer runs).
    pub fn windows(&self) -> Result<Windows, String> {
        let hooks: BTreeSet<Traced> = self
            .racers
            .iter()
            .filter_map(|x| Traced::of_racer(x.op))
            .filter(|t| matches!(t, Traced::Program(_)))
            .collect();
        let program = match &self.window {
            Some(names) => {
                if names.len() != 2 {
                    return Err(format!(
                        "field `window`: two sides, e.g. [\"hid_bpf_unreg\", \"program\"] (got {})",
                        names.len()
                    ));
                }
                let side = |name: &str| -> Result<Side, String> {
                    if name == "program" {
                        if hooks.is_empty() {
                            return Err(
                                "field `window`: `program` means the programs the racers reach, and no racer reaches one: name the callback, `program:<hid_bpf_ops callback>`".into(),
                            );
                        }
                        return Ok(Side(hooks.clone()));
                    }
                    Ok(Side([Traced::parse(name).map_err(|e| format!("field `window`: {e}"))?].into()))
                };
                Window { a: side(&names[0])?, b: side(&names[1])? }
            }
            None => {
                let first = self
                    .racers
                    .iter()
                    .position(|x| !x.repeat && matches!(Traced::of_racer(x.op), Some(Traced::Function(_))));
                let Some(first) = first else {
                    return Err(format!(
                        "no racer releases, destroys or attaches, so the window cannot be derived ({}): name it, e.g. window = [\"<kernel function>\", \"program\"]",
                        self.racers.iter().map(|x| snake(&x.op)).collect::<Vec<_>>().join(", ")
                    ));
                };
                let a: BTreeSet<Traced> = Traced::of_racer(self.racers[first].op).into_iter().collect();
                let b: BTreeSet<Traced> = self
                    .racers
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != first)
                    .filter_map(|(_, x)| Traced::of_racer(x.op))
                    .filter(|t| !a.contains(t))
                    .collect();
                if b.is_empty() {
                    return Err(
                        "the other racers run nothing the window can be measured against: name it, e.g. window = [\"<kernel function>\", \"program\"]".into(),
                    );
                }
                Window { a: Side(a), b: Side(b) }
            }
        };
        if !program.a.0.is_disjoint(&program.b.0) {
            return Err(format!(
                "field `window`: both sides trace {}: a call cannot race itself",
                program.a.0.intersection(&program.b.0).next().expect("not disjoint")
            ));
        }
        let dispatcher = program.dispatchers().filter(|d| d.a.0.is_disjoint(&d.b.0));
        Ok(Windows { program, dispatcher })
    }
}

/// One fentry (`exit: false`) or fexit record of a traced call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Which traced thing (the agent's tag).
    pub tag: u32,
    pub exit: bool,
    /// From one counter every record increments atomically: the order in
    /// which the records were made, on any CPU. Overlaps are decided on
    /// it, not on the clock (a guest whose TSC could not be calibrated
    /// runs on jiffies, and calls in one tick would look simultaneous).
    pub seq: u64,
    /// bpf_ktime_get_ns(): CLOCK_MONOTONIC, for durations.
    pub ts: u64,
    /// The device the call is about (its struct hid_device pointer; 0 when
    /// the call had none, e.g. hid_bpf_reg before it found the device).
    pub dev: u64,
    pub cpu: u32,
    pub tid: u32,
}

/// One call, from entry to exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub tag: u32,
    /// Sequence numbers of its entry and exit records.
    pub start: u64,
    pub end: u64,
    /// How long it took by the kernel's clock (ns).
    pub ns: u64,
    pub dev: u64,
    pub tid: u32,
}

/// Calls rebuilt from records, and what could not be paired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Calls {
    pub intervals: Vec<Interval>,
    /// An exit without its entry (the entry's record was lost or came
    /// before the round), or an entry still without its exit.
    pub unpaired: usize,
}

/// Pair each thread's entries and exits of each tag (innermost first, so
/// nested calls pair correctly). The device of a call is its entry's, or
/// its exit's when the entry had none (hid_bpf_reg finds its device
/// inside).
pub fn calls(records: &[Record]) -> Calls {
    let mut sorted = records.to_vec();
    sorted.sort_by_key(|r| r.seq);
    let mut open: BTreeMap<(u32, u32), Vec<Record>> = BTreeMap::new();
    let mut out = Calls::default();
    for r in sorted {
        let stack = open.entry((r.tag, r.tid)).or_default();
        if !r.exit {
            stack.push(r);
            continue;
        }
        match stack.pop() {
            Some(e) => out.intervals.push(Interval {
                tag: r.tag,
                start: e.seq,
                end: r.seq,
                ns: r.ts.saturating_sub(e.ts),
                dev: if e.dev != 0 { e.dev } else { r.dev },
                tid: r.tid,
            }),
            None => out.unpaired += 1,
        }
    }
    out.unpaired += open.values().map(Vec::len).sum::<usize>();
    out.intervals.sort_by_key(|i| (i.start, i.end));
    out
}

/// How a tag's calls name their device: `Some(true)` when the device is
/// known for each call (0 then means "none": it matches nothing),
/// `Some(false)`/absent when the traced function carries no device (its
/// calls match any device).
pub type DeviceKnown = BTreeMap<u32, bool>;

/// Whether a call of side `a` (tags) and a call of side `b` were in flight
/// at the same time, on the same device: the round's evidence, or None.
pub fn overlap(
    calls: &[Interval],
    a: &BTreeSet<u32>,
    b: &BTreeSet<u32>,
    known: &DeviceKnown,
) -> Option<(Interval, Interval)> {
    let has_dev = |i: &Interval| known.get(&i.tag).copied().unwrap_or(false);
    let same_device = |x: &Interval, y: &Interval| match (has_dev(x), has_dev(y)) {
        (true, true) => x.dev != 0 && x.dev == y.dev,
        (true, false) => x.dev != 0,
        (false, true) => y.dev != 0,
        (false, false) => true,
    };
    let side_a: Vec<&Interval> = calls.iter().filter(|i| a.contains(&i.tag)).collect();
    let side_b: Vec<&Interval> = calls.iter().filter(|i| b.contains(&i.tag)).collect();
    for x in &side_a {
        for y in &side_b {
            if x.start < y.end && y.start < x.end && same_device(x, y) {
                return Some((**x, **y));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::Racer;

    /// A record whose sequence number is `seq` (and its clock 10x that).
    fn rec(tag: u32, exit: bool, seq: u64, dev: u64, tid: u32) -> Record {
        Record { tag, exit, seq, ts: 10 * seq, dev, cpu: 0, tid }
    }

    fn race(racers: &[(RacerOp, bool)], window: Option<&[&str]>) -> Race {
        let racers = racers
            .iter()
            .map(|(op, repeat)| {
                let mut x: Racer = serde_json::from_value(serde_json::json!({"op": snake(op)})).unwrap();
                x.repeat = *repeat;
                x
            })
            .collect();
        let mut r: Race = serde_json::from_value(serde_json::json!({"iterations": 1, "racer": []})).unwrap();
        r.racers = racers;
        r.window = window.map(|w| w.iter().map(|s| s.to_string()).collect());
        r
    }

    #[test]
    fn calls_pair_per_thread_and_nest() {
        let c = calls(&[
            rec(1, false, 10, 7, 100),
            rec(1, false, 12, 7, 200), // another thread, same function
            rec(1, false, 13, 7, 100), // nested on thread 100
            rec(1, true, 14, 7, 100),
            rec(1, true, 20, 7, 200),
            rec(1, true, 30, 7, 100),
        ]);
        assert_eq!(c.unpaired, 0);
        let spans: Vec<(u64, u64, u32)> = c.intervals.iter().map(|i| (i.start, i.end, i.tid)).collect();
        assert_eq!(spans, vec![(10, 30, 100), (12, 20, 200), (13, 14, 100)]);
        assert_eq!(c.intervals[0].ns, 200);
    }

    #[test]
    fn order_is_the_sequence_not_the_clock() {
        // On a jiffies clock every record of a tick has the same time: the
        // sequence still says which call was inside which.
        let tick = |tag, exit, seq, tid| Record { tag, exit, seq, ts: 4_000_000, dev: 7, cpu: 0, tid };
        let c = calls(&[tick(1, false, 1, 1), tick(2, false, 2, 2), tick(2, true, 3, 2), tick(1, true, 4, 1)]);
        let known: DeviceKnown = [(1, true), (2, true)].into();
        assert!(overlap(&c.intervals, &[1].into(), &[2].into(), &known).is_some());
        // One after the other in the same tick: no overlap.
        let c = calls(&[tick(1, false, 1, 1), tick(1, true, 2, 1), tick(2, false, 3, 2), tick(2, true, 4, 2)]);
        assert!(overlap(&c.intervals, &[1].into(), &[2].into(), &known).is_none());
        assert_eq!(c.intervals[0].ns, 0);
    }

    #[test]
    fn unpaired_records_are_counted_not_invented() {
        // An exit whose entry was lost, and an entry still open.
        let c = calls(&[rec(1, true, 5, 0, 1), rec(2, false, 6, 0, 1)]);
        assert!(c.intervals.is_empty());
        assert_eq!(c.unpaired, 2);
    }

    #[test]
    fn a_call_takes_its_device_from_the_exit_when_the_entry_had_none() {
        // hid_bpf_reg: ops->hdev is set inside the call.
        let c = calls(&[rec(1, false, 1, 0, 9), rec(1, true, 4, 0xabc, 9)]);
        assert_eq!(c.intervals[0].dev, 0xabc);
        // hid_bpf_unreg: set at entry, cleared inside.
        let c = calls(&[rec(1, false, 1, 0xabc, 9), rec(1, true, 4, 0, 9)]);
        assert_eq!(c.intervals[0].dev, 0xabc);
    }

    #[test]
    fn overlap_needs_both_sides_in_flight_at_once() {
        let known: DeviceKnown = [(1, true), (2, true)].into();
        let (a, b) = ([1].into(), [2].into());
        let iv = |tag, start, end| Interval { tag, start, end, ns: 0, dev: 7, tid: 0 };
        // Program ran wholly inside the release.
        assert!(overlap(&[iv(1, 10, 100), iv(2, 50, 60)], &a, &b, &known).is_some());
        // Started before, ended inside.
        assert!(overlap(&[iv(1, 10, 100), iv(2, 5, 11)], &a, &b, &known).is_some());
        // Back to back: one ended exactly when the other began.
        assert!(overlap(&[iv(1, 10, 100), iv(2, 100, 120)], &a, &b, &known).is_none());
        assert!(overlap(&[iv(1, 10, 100), iv(2, 1, 10)], &a, &b, &known).is_none());
        // Disjoint.
        assert!(overlap(&[iv(1, 10, 100), iv(2, 200, 300)], &a, &b, &known).is_none());
        // Both on side a: no window.
        assert!(overlap(&[iv(1, 10, 100), iv(1, 50, 60)], &a, &b, &known).is_none());
    }

    #[test]
    fn overlap_is_per_device() {
        let known: DeviceKnown = [(1, true), (2, true), (3, false)].into();
        let (a, b) = ([1].into(), [2].into());
        let iv = |tag, dev| Interval { tag, start: 10, end: 20, ns: 0, dev, tid: 0 };
        assert!(overlap(&[iv(1, 7), iv(2, 8)], &a, &b, &known).is_none(), "different devices");
        assert!(overlap(&[iv(1, 7), iv(2, 7)], &a, &b, &known).is_some());
        // A call that reached no device (hid_bpf_reg failing before it
        // found one) matches nothing.
        assert!(overlap(&[iv(1, 0), iv(2, 0)], &a, &b, &known).is_none());
        // A function without a device (lkdtm's) matches any device.
        assert!(overlap(&[iv(3, 0), iv(2, 7)], &[3].into(), &b, &known).is_some());
        assert!(overlap(&[iv(3, 0), iv(2, 0)], &[3].into(), &b, &known).is_none());
    }

    #[test]
    fn windows_are_derived_from_the_racers() {
        let w = race(&[(RacerOp::Inject, true), (RacerOp::Release, false)], None).windows().unwrap();
        assert_eq!(w.program.to_string(), "hid_bpf_unreg x program:hid_device_event");
        assert_eq!(w.dispatcher.unwrap().to_string(), "hid_bpf_unreg x dispatch_hid_bpf_device_event");
        let w = race(&[(RacerOp::GetFeature, true), (RacerOp::SetFeature, true), (RacerOp::Destroy, false)], None)
            .windows()
            .unwrap();
        assert_eq!(w.program.to_string(), "hid_bpf_destroy_device x program:hid_hw_request");
        assert_eq!(w.dispatcher.unwrap().to_string(), "hid_bpf_destroy_device x dispatch_hid_bpf_raw_requests");
        let w = race(&[(RacerOp::SetLed, true), (RacerOp::Destroy, false)], None).windows().unwrap();
        assert_eq!(w.program.to_string(), "hid_bpf_destroy_device x program:hid_hw_output_report");
        // Two one-shot lifecycle racers: no program, no dispatcher window.
        let w = race(&[(RacerOp::Attach, false), (RacerOp::Destroy, false)], None).windows().unwrap();
        assert_eq!(w.program.to_string(), "hid_bpf_reg x hid_bpf_destroy_device");
        assert_eq!(w.dispatcher, None);
        assert_eq!(
            w.traced().iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            ["hid_bpf_destroy_device", "hid_bpf_reg"]
        );
    }

    #[test]
    fn windows_can_be_named() {
        let r = race(
            &[(RacerOp::Attach, false), (RacerOp::Release, false)],
            Some(&["hid_bpf_unreg", "program:hid_rdesc_fixup"]),
        );
        let w = r.windows().unwrap();
        assert_eq!(w.program.to_string(), "hid_bpf_unreg x program:hid_rdesc_fixup");
        assert_eq!(w.dispatcher.unwrap().to_string(), "hid_bpf_unreg x call_hid_bpf_rdesc_fixup");
        // `program` is what the racers reach.
        let r = race(&[(RacerOp::Inject, true), (RacerOp::Lkdtm, false)], Some(&["lkdtm_WARNING", "program"]));
        assert_eq!(r.windows().unwrap().program.to_string(), "lkdtm_WARNING x program:hid_device_event");
    }

    #[test]
    fn bad_windows_say_why() {
        let lk = race(&[(RacerOp::Inject, true), (RacerOp::Lkdtm, false)], None);
        assert!(lk.windows().unwrap_err().contains("cannot be derived"), "{:?}", lk.windows());
        let r = |w: &[&str]| race(&[(RacerOp::Inject, true), (RacerOp::Release, false)], Some(w)).windows();
        assert!(r(&["hid_bpf_unreg"]).unwrap_err().contains("two sides"));
        assert!(r(&["hid_bpf_unreg", "program:hid_nothing"]).unwrap_err().contains("no hid_bpf_ops callback"));
        assert!(r(&["hid bpf", "program"]).unwrap_err().contains("neither a kernel function"));
        assert!(r(&["hid_bpf_unreg", "hid_bpf_unreg"]).unwrap_err().contains("cannot race itself"));
        let no_program =
            race(&[(RacerOp::Attach, false), (RacerOp::Destroy, false)], Some(&["hid_bpf_reg", "program"]));
        assert!(no_program.windows().unwrap_err().contains("no racer reaches one"));
    }
}
