//! Guest -> host messages: one JSON object per line on the result channel
//! (a UART separate from the kernel console, so printk never interleaves).
//!
//! The shapes make honest reporting the only kind there is:
//! * a [`Check`] carries what was expected and what was seen, and how to
//!   compare them; whether it passed is *computed* ([`Check::ok`]), on both
//!   sides, never sent beside them;
//! * a step's verdict is computed from its checks ([`StepReport::ok`]): a
//!   step with no check, or with an error, failed;
//! * every health reading is a value or the reason it could not be taken
//!   ([`Reading`]): "could not look" is never "zero" or "absent".
use crate::expect::HexPattern;
use crate::HexBytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The line prefix lets the host ignore anything else that may appear on
/// the channel (nothing should, but a tty is not a datagram socket).
pub const LINE_PREFIX: &str = "@hidvm ";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "msg", rename_all = "snake_case", deny_unknown_fields)]
pub enum GuestMsg {
    /// First message: which kernel actually booted.
    Hello {
        agent: String,
        kernel_release: String,
        proc_version: String,
        /// The job's nonce.
        nonce: String,
    },
    /// One scenario step finished.
    Step(StepReport),
    /// Kernel health around the scenario, sent before `Done`.
    Health(Health),
    /// What programs printed with bpf_printk (the trace buffer), sent
    /// before `Done`.
    Trace { lines: Vec<String> },
    /// A line a `Command` job's program wrote (stdout and stderr, in the
    /// order they arrived).
    Output { line: String },
    /// A snapshot template (`hidvm.snapshot=1`) booted and waits for its
    /// delivery: the host may now freeze it.
    AwaitingDelivery,
    /// Last message: the agent's verdict. Only `passed: true` is success,
    /// and the host still checks it against every step report.
    Done { passed: bool, summary: String },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepReport {
    pub index: usize,
    pub what: String,
    pub ms: u64,
    pub checks: Vec<Check>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Why the step could not do what it had to (then it failed, whatever
    /// its checks say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What a replay step observed, one line per injected report, for
    /// `hidvm test --bless` to write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
    /// What a race step measured: rounds, and in how many the kernel saw
    /// its window open (the check's number, structurally, for results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub race: Option<RaceRecord>,
}

/// A race step's measurements (see `hidvm_proto::window`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RaceRecord {
    /// Rounds completed.
    pub rounds: u32,
    /// Rounds whose window the kernel saw open (the check's number).
    pub hits: u32,
    /// Every window measured, the check's first ("a x b"), with its hits.
    pub windows: Vec<WindowHits>,
    /// What was traced: kernel functions, and programs as
    /// `program:<callback>` (with how many program instances were traced
    /// over all rounds).
    pub traced: Vec<String>,
    /// Wall time per round (before, racers, after, tracing), milliseconds.
    pub ms_per_round: f64,
    /// Trace records the ring buffer had no room for (a round without a
    /// hit that lost records is not evidence of a miss).
    #[serde(default)]
    pub lost_records: u64,
    /// Entries without their exit (or exits without their entry).
    #[serde(default)]
    pub unpaired_records: u64,
    /// The guest kernel's clocksource during the race: durations are in
    /// its resolution (refined-jiffies: 4 ms ticks); overlaps are decided
    /// on the records' order, not on the clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clocksource: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WindowHits {
    /// "hid_bpf_unreg x program:hid_device_event".
    pub window: String,
    pub hits: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Observed {
    pub evdev: Vec<String>,
    pub hidraw: Vec<String>,
}

impl StepReport {
    /// Passed: no error, at least one check, and every check passed.
    pub fn ok(&self) -> bool {
        step_ok(&self.checks, self.error.as_deref())
    }
}

/// The one definition of a step's verdict, used by the agent and the host.
pub fn step_ok(checks: &[Check], error: Option<&str>) -> bool {
    error.is_none() && !checks.is_empty() && checks.iter().all(Check::ok)
}

/// How a check compares expected with seen.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The renderings are equal (both sides render canonically: sorted
    /// event lists, lower-case hex, ...).
    Equal,
    /// Both are decimal numbers and seen >= expected.
    AtLeast,
    /// Expected is a hex pattern (".." any byte), seen hex bytes.
    Matches,
}

/// One comparison of what was expected with what was seen.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub what: String,
    pub expected: String,
    pub seen: String,
    pub rule: Rule,
    /// Context that is not part of the comparison ("after 3 ms").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    pub fn equal(what: impl Into<String>, expected: impl fmt::Display, seen: impl fmt::Display) -> Check {
        Check {
            what: what.into(),
            expected: expected.to_string(),
            seen: seen.to_string(),
            rule: Rule::Equal,
            detail: None,
        }
    }

    pub fn at_least(what: impl Into<String>, min: u64, seen: u64) -> Check {
        Check {
            what: what.into(),
            expected: min.to_string(),
            seen: seen.to_string(),
            rule: Rule::AtLeast,
            detail: None,
        }
    }

    pub fn matches(what: impl Into<String>, pattern: &HexPattern, seen: &[u8]) -> Check {
        Check {
            what: what.into(),
            expected: pattern.to_string(),
            seen: HexBytes(seen.to_vec()).to_string(),
            rule: Rule::Matches,
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Check {
        self.detail = Some(detail.into());
        self
    }

    /// Whether what was seen is what was expected, under the rule.
    pub fn ok(&self) -> bool {
        match self.rule {
            Rule::Equal => self.expected == self.seen,
            Rule::AtLeast => match (self.expected.parse::<u64>(), self.seen.parse::<u64>()) {
                (Ok(min), Ok(seen)) => seen >= min,
                _ => false,
            },
            Rule::Matches => match (HexPattern::parse(&self.expected), HexBytes::parse(&self.seen)) {
                (Ok(p), Ok(b)) => !b.0.is_empty() && p.matches(&b.0),
                _ => false,
            },
        }
    }

    /// "expected X, saw Y" in the rule's words.
    pub fn comparison(&self) -> String {
        let detail = self.detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default();
        match self.rule {
            Rule::Equal => format!("expected {}, saw {}{detail}", self.expected, self.seen),
            Rule::AtLeast => format!("expected at least {}, saw {}{detail}", self.expected, self.seen),
            Rule::Matches => format!("expected [{}], saw [{}]{detail}", self.expected, self.seen),
        }
    }
}

/// A value the guest read, or why it could not read it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Reading<T> {
    Value(T),
    Error(String),
}

impl<T> Reading<T> {
    pub fn from_result(r: Result<T, String>) -> Reading<T> {
        match r {
            Ok(v) => Reading::Value(v),
            Err(e) => Reading::Error(e),
        }
    }
    pub fn value(&self) -> Result<&T, &str> {
        match self {
            Reading::Value(v) => Ok(v),
            Reading::Error(e) => Err(e),
        }
    }
}

/// How many programs, maps and links the kernel knows (by id enumeration).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct ObjectCounts {
    pub progs: usize,
    pub maps: usize,
    pub links: usize,
}

impl fmt::Display for ObjectCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} programs, {} maps, {} links", self.progs, self.maps, self.links)
    }
}

/// What kmemleak said about the scenario.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum Kmemleak {
    /// The kernel has no kmemleak (no /sys/kernel/debug/kmemleak).
    NotBuilt,
    /// kmemleak is built but could not scan (disabled after an internal
    /// error, debugfs missing, a write refused): nothing is known.
    Failed { reason: String },
    /// Scanned after the scenario's objects were old enough to be reported.
    Scanned {
        /// Report lines of new unreferenced objects (empty: none).
        leaks: Vec<String>,
        /// How long the agent waited for the objects to age.
        waited_ms: u64,
    },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// /proc/sys/kernel/tainted before and after the scenario.
    pub taint_before: Reading<u64>,
    pub taint_after: Reading<u64>,
    /// Kernel BPF objects before the scenario and after its teardown (they
    /// must match: nothing may outlive the scenario).
    pub bpf_objects_before: Reading<ObjectCounts>,
    pub bpf_objects_after: Reading<ObjectCounts>,
    pub kmemleak: Kmemleak,
}

impl GuestMsg {
    pub fn to_line(&self) -> String {
        format!("{LINE_PREFIX}{}\n", serde_json::to_string(self).expect("GuestMsg serializes"))
    }

    /// Parse one channel line; `None` for lines that are not ours.
    pub fn from_line(line: &str) -> Option<Result<GuestMsg, String>> {
        let line = line.trim_end_matches(['\r', '\n']);
        let json = line.strip_prefix(LINE_PREFIX)?;
        Some(serde_json::from_str(json).map_err(|e| format!("{e}: {json}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trip() {
        let m = GuestMsg::Done { passed: true, summary: "ok".into() };
        let line = m.to_line();
        assert_eq!(GuestMsg::from_line(&line.replace('\n', "\r\n")).unwrap().unwrap(), m);
        assert!(GuestMsg::from_line("random noise").is_none());
        assert!(GuestMsg::from_line("@hidvm {").unwrap().is_err());
    }

    #[test]
    fn a_check_passes_only_when_seen_satisfies_expected() {
        assert!(Check::equal("x", "gone", "gone").ok());
        assert!(!Check::equal("x", "gone", "listed").ok());
        assert!(Check::at_least("n", 500, 512).ok());
        assert!(!Check::at_least("n", 500, 12).ok());
        let bad = Check { rule: Rule::AtLeast, ..Check::equal("n", "500", "lots") };
        assert!(!bad.ok(), "an unparsable number never passes");
        let p = HexPattern::parse("00 .. 03 ..").unwrap();
        assert!(Check::matches("r", &p, &[0, 9, 3, 9]).ok());
        assert!(!Check::matches("r", &p, &[0, 9, 0xfd, 9]).ok());
        assert!(!Check::matches("r", &p, &[]).ok());
    }

    #[test]
    fn a_step_without_checks_or_with_an_error_failed() {
        let step = |checks: Vec<Check>, error: Option<&str>| StepReport {
            index: 1,
            what: "w".into(),
            ms: 0,
            checks,
            notes: vec![],
            error: error.map(String::from),
            observed: None,
            race: None,
        };
        assert!(step(vec![Check::equal("a", 1, 1)], None).ok());
        assert!(!step(vec![], None).ok(), "zero checks is not a pass");
        assert!(!step(vec![Check::equal("a", 1, 1)], Some("boom")).ok());
        assert!(!step(vec![Check::equal("a", 1, 1), Check::equal("b", 1, 2)], None).ok());
    }

    #[test]
    fn health_fields_are_required_and_readings_keep_their_errors() {
        // A health report missing a field is garbled, not "zero".
        let missing = r#"@hidvm {"msg":"health","taint_before":{"value":0},"taint_after":{"value":0}}"#;
        assert!(GuestMsg::from_line(missing).unwrap().is_err());
        let h = GuestMsg::Health(Health {
            taint_before: Reading::Error("open /proc/sys/kernel/tainted: EACCES".into()),
            taint_after: Reading::Value(0),
            bpf_objects_before: Reading::Value(ObjectCounts::default()),
            bpf_objects_after: Reading::Error("BPF_LINK_GET_NEXT_ID: EPERM".into()),
            kmemleak: Kmemleak::Failed { reason: "scan: EBUSY".into() },
        });
        assert_eq!(GuestMsg::from_line(&h.to_line()).unwrap().unwrap(), h);
        // A step report without its checks list does not parse either.
        assert!(GuestMsg::from_line(r#"@hidvm {"msg":"step","index":1,"what":"w","ms":0}"#).unwrap().is_err());
    }
}
