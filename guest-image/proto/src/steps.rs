//! Scenario steps: one struct per kind, passed whole to the code that runs
//! it. Every step checks something; steps that only provoke (sleep, lkdtm,
//! capability, load_module) are for self-tests and say so in validation.
use crate::expect::{DescriptorExpect, ExpectedError, FeatureExpect, HexPattern, ReportExpect};
use crate::{Errno, EvdevEvent, HexBytes, KeyName};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    Attach(Attach),
    AttachMany(AttachMany),
    Inject(Inject),
    Pin(Pin),
    Release(Release),
    Destroy(Destroy),
    CheckDevice(CheckDevice),
    GetFeature(GetFeature),
    WriteOutput(WriteOutput),
    SetLed(SetLed),
    FloodRelease(FloodRelease),
    Cycle(Cycle),
    Replay(Replay),
    Race(Race),
    Sysctl(Sysctl),
    Sleep(Sleep),
    Lkdtm(Lkdtm),
    Capability(Capability),
    LoadModule(LoadModule),
    KernelSymbols(KernelSymbols),
}

/// Load a fixture with the device's hid_id and attach its struct_ops map,
/// keeping the bpf_link under the name `link`.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Attach {
    pub link: String,
    /// Fixture to load; or `reuse` to attach an already-loaded map again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixture: Option<String>,
    /// Attach the struct_ops map of this (agent-held) link's object again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Target this hid_id instead of a device's (e.g. one that does not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hid_id: Option<u32>,
    /// Struct_ops map to attach when the object has more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<String>,
    /// Set BPF_F_BEFORE: run before the programs already attached.
    #[serde(default, skip_serializing_if = "is_false")]
    pub before: bool,
    /// Who holds the link: the agent, or a child process it starts (for
    /// the exit/kill release paths).
    #[serde(default, skip_serializing_if = "Holder::is_agent")]
    pub holder: Holder,
    /// This stage must fail with this errno: "attach: EINVAL", "load: EACCES".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_error: Option<ExpectedError>,
    /// Attach without matching the program's HID_BPF_CONFIG table against
    /// the device, and say why (udev-hid-bpf would not load it here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_match: Option<String>,
    /// Attach without running the program's probe, and say why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_probe: Option<String>,
}

impl Attach {
    /// What `describe` says of an attach step: what, to what, as which
    /// link, and each option that is set.
    pub fn describe(&self) -> String {
        let what = match (&self.fixture, &self.reuse) {
            (Some(f), _) => format!("fixture {f}"),
            (None, Some(r)) => format!("the map of link `{r}` again"),
            (None, None) => "nothing".into(),
        };
        let target = match (&self.device, self.hid_id) {
            (_, Some(id)) => format!("hid_id {id}"),
            (Some(d), None) => d.clone(),
            (None, None) => "?".into(),
        };
        let mut s = format!("attach {what} to {target} as link `{}`", self.link);
        if self.before {
            s.push_str(" with BPF_F_BEFORE");
        }
        if self.holder == Holder::Child {
            s.push_str(", held by a child process");
        }
        if let Some(e) = &self.expect_error {
            s.push_str(&format!(", expecting {e}"));
        }
        if self.skip_match.is_some() {
            s.push_str(", without matching HID_BPF_CONFIG");
        }
        if self.skip_probe.is_some() {
            s.push_str(", without running its probe");
        }
        s
    }
}

/// Attach `count` fresh copies of a fixture; links are named
/// `<link_prefix>1` .. `<link_prefix><count>`.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct AttachMany {
    pub fixture: String,
    pub device: String,
    pub count: u32,
    pub link_prefix: String,
}

/// Write one input report through uhid and compare what hidraw and evdev
/// deliver with the expectations.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Inject {
    pub device: String,
    pub report: HexBytes,
    /// Bytes hidraw must deliver, or "none" when the report must be dropped.
    pub hidraw: ReportExpect,
    /// Exact set of EV_KEY/EV_REL/EV_ABS events of the report's frame
    /// (more than one frame fails; use `evdev_frames` when the kernel
    /// legitimately splits a report, e.g. a pen's tool change).
    #[serde(default)]
    pub evdev: Vec<EvdevEvent>,
    /// The report's frames in order, each "CODE=value ..." (frames without
    /// compared events are not seen, so none is "-"), instead of `evdev`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evdev_frames: Option<Vec<String>>,
    /// For asynchronous releases: re-inject until hidraw matches, up to this
    /// many milliseconds, then require it to keep matching (a release that
    /// flaps fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

/// Pin the link in bpffs (/sys/fs/bpf/hidvm-<link>).
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pub link: String,
}

/// Release (part of) a link and check the kernel's view afterwards. The
/// link list alone proves nothing (a link's id is freed before its program
/// is unregistered), so validation requires a later step that exercises
/// the program's hook on the device, unless `behaviour_unchecked` says why.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub link: String,
    pub how: ReleaseHow,
    /// State of the link in the kernel's link list afterwards.
    pub link_after: LinkAfter,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behaviour_unchecked: Option<String>,
}

/// UHID_DESTROY the device; checks that the kernel removed it (sysfs entry
/// gone, hidraw and evdev nodes hung up).
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Destroy {
    pub device: String,
}

/// Check the device as the kernel now sees it. Waits for re-probes.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct CheckDevice {
    pub device: String,
    /// "original", or "original with <offset>=<hex byte> ..." (sysfs report_descriptor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<DescriptorExpect>,
    /// Keys/buttons the evdev node must (not) advertise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys_present: Vec<KeyName>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys_absent: Vec<KeyName>,
    /// How many times the device was started (UHID_START): 1 + re-probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts: Option<u32>,
}

/// HIDIOCGFEATURE on the hidraw node.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct GetFeature {
    pub device: String,
    pub report_id: u8,
    /// Bytes returned, or an errno name prefixed with "error " ("error EACCES").
    pub expect: FeatureExpect,
}

/// write() an output report to the hidraw node.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct WriteOutput {
    pub device: String,
    pub report: HexBytes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_error: Option<Errno>,
    /// What the device must receive (UHID_OUTPUT), or "none".
    pub device_receives: ReportExpect,
}

/// Set an LED through the evdev node (input core -> hid-input -> output report).
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct SetLed {
    pub device: String,
    pub led: String,
    pub value: i32,
    pub device_receives: ReportExpect,
}

/// Close the link while another thread floods reports: every report
/// injected after close() returned must arrive original.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct FloodRelease {
    pub device: String,
    pub link: String,
    /// Report template; bytes `seq_bytes` carry a 14-bit sequence number.
    pub report: HexBytes,
    pub seq_bytes: [usize; 2],
    /// hidraw bytes while rewritten / after release ("..": a sequence byte).
    pub rewritten: HexPattern,
    pub original: HexPattern,
    /// Reports that must be injected after close() returned.
    pub after: u32,
}

/// Attach and release a fixture `count` times, checking the rewrite while
/// attached and the original while not; kernel program, map and link
/// counts must be back at the baseline afterwards.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Cycle {
    pub fixture: String,
    pub device: String,
    pub count: u32,
    /// Load a new object every iteration (slower) instead of attaching the
    /// same loaded map again.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fresh_objects: bool,
    pub report: HexBytes,
    pub rewritten: HexBytes,
    pub original: HexBytes,
    /// As the attach step's: say why the program's HID_BPF_CONFIG is not
    /// matched / its probe not run (both are, as udev-hid-bpf would).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_match: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_probe: Option<String>,
}

/// Inject the `E:` reports of a hid-recorder file, in order and without
/// the recorded delays, and compare what evdev (and optionally hidraw)
/// delivers for each with the expected output: given inline, or as a file
/// that `hidvm test --bless` writes from what was observed.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    pub device: String,
    /// The recording whose events to inject (relative to the scenario);
    /// default: the recording the device was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
    /// Which device's events, in a multi-device recording (`D:` index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_device: Option<usize>,
    /// Expected evdev frames, one per injected report: "ABS_X=120
    /// BTN_TOUCH=1", or "-" for a report that produces no event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evdev: Option<Vec<String>>,
    /// The same, one frame per line, in a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evdev_file: Option<String>,
    /// Expected hidraw bytes, one per injected report ("none": dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidraw: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidraw_file: Option<String>,
}

/// The evdev events of one report's frame, as replay expectations write
/// them: space-separated `CODE=value`, sorted, "-" for none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame(pub Vec<EvdevEvent>);

impl Frame {
    pub fn parse(s: &str) -> Result<Frame, String> {
        let s = s.trim();
        if s == "-" {
            return Ok(Frame(vec![]));
        }
        if s.is_empty() {
            return Err("an empty frame; write \"-\" for a report that produces no event".into());
        }
        let mut events = s.split_whitespace().map(EvdevEvent::parse).collect::<Result<Vec<_>, _>>()?;
        events.sort();
        Ok(Frame(events))
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        let mut events = self.0.clone();
        events.sort();
        f.write_str(&events.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(" "))
    }
}

/// Actions on different threads, started together and repeated for many
/// rounds with varied timing, to hit the windows where lifecycle bugs live
/// (a program still running on one CPU while another releases its link, a
/// device torn down while a request is on its way into a program).
///
/// Each round: devices a racer destroyed in the previous round are created
/// again; the `before` steps run (with their checks); the racers start
/// together, one-shot racers after their `delay_us` plus a random share of
/// `jitter_us`;
/// racers with `repeat = true` keep going until every other racer is done;
/// what the racers made hidraw/evdev deliver is discarded; the `after`
/// steps run (with their checks, e.g. "the device reports original data
/// again"); links made during the round that are still attached are closed.
/// After the last round the kernel's BPF program/map/link counts must be
/// back where they were before the first.
///
/// A round hits its window when the kernel shows the two paths of the
/// race overlapping: fentry/fexit on the functions and HID-BPF programs of
/// each side of `window` (see [`crate::window`]) saw a call of one side in
/// flight while a call of the other side was, on the same device. A race
/// that hits in fewer than `min_hits` rounds fails, so a scenario that never
/// reaches its window cannot pass.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Race {
    pub iterations: u32,
    /// The window's two sides: kernel functions (in the kernel's BTF), or
    /// `program` (the programs the racers reach) / `program:<hid_bpf_ops
    /// callback>`. Default: the first one-shot racer's lifecycle function
    /// (`hid_bpf_unreg` for release, `hid_bpf_destroy_device` for destroy,
    /// `hid_bpf_reg` for attach) against what the other racers run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Vec<String>>,
    /// Each one-shot racer waits a random 0..=jitter_us (on top of its
    /// delay_us) before its operation, anew every round; repeating racers
    /// start at once, so the one-shots land at varied points of their run.
    #[serde(default)]
    pub jitter_us: u64,
    #[serde(default = "one")]
    pub min_hits: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<Step>,
    #[serde(rename = "racer")]
    pub racers: Vec<Racer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<Step>,
}

fn one() -> u32 {
    1
}

/// What a racer does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RacerOp {
    /// UHID_INPUT2 of `report` into `device` (hid_device_event).
    Inject,
    /// `report` into `device` through the HID-BPF kfunc
    /// hid_bpf_input_report(), from `fixture`'s SEC("syscall") program
    /// `inject` run with BPF_PROG_TEST_RUN (hid_device_event): unlike
    /// UHID_INPUT2 it is not serialised against UHID_DESTROY by uhid's lock.
    InjectBpf,
    /// HIDIOCGFEATURE of `report_id` (hid_hw_request).
    GetFeature,
    /// HIDIOCSFEATURE of `report` (hid_hw_request).
    SetFeature,
    /// write() of `report` to the hidraw node (hid_hw_output_report).
    WriteOutput,
    /// Toggle `led` through the evdev node (an output report from the
    /// input layer's work item); the racer leaves it off.
    SetLed,
    /// BPF_LINK_CREATE of `fixture` for `device`, loaded (and probed)
    /// before the round starts, so only the attach races.
    Attach,
    /// Release `link` (`how`: close or detach).
    Release,
    /// UHID_DESTROY `device` (created again before the next round).
    Destroy,
    /// Self-tests only: provoke `crash` through lkdtm.
    Lkdtm,
}

/// One racer of a `race` step; which fields apply depends on `op`.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Racer {
    pub op: RacerOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<HexBytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_id: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub led: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<ReleaseHow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<String>,
    /// Attach racers: as the attach step's, say why the program's
    /// HID_BPF_CONFIG is not matched / its probe not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_match: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_probe: Option<String>,
    /// Repeat the operation until every racer without `repeat` is done.
    #[serde(default, skip_serializing_if = "is_false")]
    pub repeat: bool,
    /// Wait this long before the first operation, every round.
    #[serde(default)]
    pub delay_us: u64,
}

impl Racer {
    pub fn describe(&self) -> String {
        let target = self.device.as_deref().or(self.link.as_deref()).or(self.crash.as_deref()).unwrap_or("?");
        format!("{}{} {target}", snake(&self.op), if self.repeat { " (repeated)" } else { "" })
    }
}

/// Write a sysctl (/proc/sys/<name with dots as slashes>) and read it back.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Sysctl {
    pub name: String,
    pub value: String,
}

/// Self-tests only: wait (a stand-in for a hung scenario, or time for a
/// kernel detector to fire). With `until_kernel_log`, the wait ends as
/// soon as a kernel log line contains that text, and the step checks that
/// one did within `ms`: a detector test takes as long as the detector,
/// not a fixed worst case.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Sleep {
    pub ms: u64,
    #[serde(default)]
    pub until_kernel_log: Option<String>,
}

/// Self-tests only: provoke a kernel fault through lkdtm
/// (/sys/kernel/debug/provoke-crash/DIRECT), from a thread, waiting up to
/// `wait_ms` for it (a hung task never returns).
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Lkdtm {
    pub crash: String,
    #[serde(default = "default_lkdtm_wait")]
    pub wait_ms: u64,
}

/// Self-tests only: raise or drop a capability in the agent's effective
/// set (the permitted set keeps it), e.g. to make kernel-object queries
/// fail and prove that "could not look" fails a check.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Capability {
    /// "CAP_SYS_ADMIN" (the only one hidvm needs to drop so far).
    pub name: String,
    pub effective: bool,
}

/// Check the running kernel's symbols (/proc/kallsyms): proof that a build
/// option is live, not just requested, e.g. ThinLTO's `.llvm.<hash>`
/// suffixes on promoted static functions.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct KernelSymbols {
    /// Substring of a symbol name.
    pub containing: String,
    /// "present" (at least one symbol) or "absent" (none).
    pub expect: Presence,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Present,
    Absent,
}

/// Self-tests only: load a kernel module the cell built (cells.toml
/// `modules`), e.g. samples/kmemleak's deliberately leaking test module.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct LoadModule {
    /// File name without `.ko`.
    pub module: String,
}

fn default_lkdtm_wait() -> u64 {
    5000
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Who holds a link's fd.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    #[default]
    Agent,
    /// A child process started by the agent; it attaches and then waits.
    Child,
}

impl Holder {
    fn is_agent(&self) -> bool {
        *self == Holder::Agent
    }
}

/// Ways a bpf_link (or one of its references) goes away.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseHow {
    /// Close the agent's fd of the link (drop the libbpf-rs `Link`).
    Close,
    /// Unlink the link's bpffs pin.
    Unpin,
    /// BPF_LINK_DETACH on the link (reopened from its pin if its fd is closed).
    Detach,
    /// The child holding the link exits normally (without closing it).
    HolderExit,
    /// The child holding the link is killed with SIGKILL.
    HolderKill,
    /// Self-tests only: dup() the link fd and keep the copy (the leaked
    /// reference a buggy loader would hold), then close the `Link`.
    CloseButLeakDup,
}

/// The link's state in the kernel after a release step.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LinkAfter {
    /// No longer in BPF_LINK_GET_NEXT_ID enumeration (polled with a deadline).
    Gone,
    /// Listed and still attached (struct_ops map id set).
    Attached,
    /// Listed but detached (BPF_LINK_DETACH: map id 0).
    Detached,
}

impl LinkAfter {
    pub fn name(self) -> &'static str {
        match self {
            LinkAfter::Gone => "gone",
            LinkAfter::Attached => "listed, attached",
            LinkAfter::Detached => "listed, detached",
        }
    }
}

/// The four hid_bpf_ops callbacks a program can implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    DeviceEvent,
    RdescFixup,
    HwRequest,
    HwOutputReport,
}

impl Hook {
    pub const ALL: [Hook; 4] = [Hook::DeviceEvent, Hook::RdescFixup, Hook::HwRequest, Hook::HwOutputReport];

    /// The struct hid_bpf_ops member.
    pub fn member(self) -> &'static str {
        match self {
            Hook::DeviceEvent => "hid_device_event",
            Hook::RdescFixup => "hid_rdesc_fixup",
            Hook::HwRequest => "hid_hw_request",
            Hook::HwOutputReport => "hid_hw_output_report",
        }
    }

    /// Which steps show that a program on this hook runs or stopped running.
    /// The kernel function that runs this hook's programs.
    pub fn dispatcher(self) -> &'static str {
        match self {
            Hook::DeviceEvent => "dispatch_hid_bpf_device_event",
            Hook::RdescFixup => "call_hid_bpf_rdesc_fixup",
            Hook::HwRequest => "dispatch_hid_bpf_raw_requests",
            Hook::HwOutputReport => "dispatch_hid_bpf_output_report",
        }
    }

    pub fn proof(self) -> &'static str {
        match self {
            Hook::DeviceEvent => "an inject",
            Hook::RdescFixup => "a check_device with `descriptor` or keys",
            Hook::HwRequest => "a get_feature",
            Hook::HwOutputReport => "a write_output or set_led",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.member())
    }
}

impl Step {
    pub fn op(&self) -> &'static str {
        match self {
            Step::Attach(_) => "attach",
            Step::AttachMany(_) => "attach_many",
            Step::Inject(_) => "inject",
            Step::Pin(_) => "pin",
            Step::Release(_) => "release",
            Step::Destroy(_) => "destroy",
            Step::CheckDevice(_) => "check_device",
            Step::GetFeature(_) => "get_feature",
            Step::WriteOutput(_) => "write_output",
            Step::SetLed(_) => "set_led",
            Step::FloodRelease(_) => "flood_release",
            Step::Cycle(_) => "cycle",
            Step::Replay(_) => "replay",
            Step::Race(_) => "race",
            Step::Sysctl(_) => "sysctl",
            Step::Sleep(_) => "sleep",
            Step::Lkdtm(_) => "lkdtm",
            Step::Capability(_) => "capability",
            Step::LoadModule(_) => "load_module",
            Step::KernelSymbols(_) => "kernel_symbols",
        }
    }

    /// Steps that only provoke something: allowed in self-tests only.
    pub fn selftest_only(&self) -> bool {
        matches!(self, Step::Sleep(_) | Step::Lkdtm(_) | Step::Capability(_) | Step::LoadModule(_))
            || matches!(self, Step::Release(r) if r.how == ReleaseHow::CloseButLeakDup)
            || matches!(self, Step::Race(r) if r.racers.iter().any(|x| x.op == RacerOp::Lkdtm))
    }

    /// Whether this step provokes a kernel fault on purpose (its splat
    /// must come at or after it).
    pub fn provokes(&self) -> bool {
        matches!(self, Step::Lkdtm(_))
            || matches!(self, Step::Race(r) if r.racers.iter().any(|x| x.op == RacerOp::Lkdtm))
    }

    /// Whether the step needs two CPUs doing things at once.
    pub fn needs_concurrency(&self) -> bool {
        matches!(self, Step::Race(_) | Step::FloodRelease(_))
    }

    /// The device whose behaviour this step observes, and through which hook.
    pub fn observes(&self) -> Option<(&str, Hook)> {
        match self {
            Step::Inject(s) => Some((&s.device, Hook::DeviceEvent)),
            Step::Replay(s) => Some((&s.device, Hook::DeviceEvent)),
            Step::CheckDevice(s)
                if s.descriptor.is_some() || !s.keys_present.is_empty() || !s.keys_absent.is_empty() =>
            {
                Some((&s.device, Hook::RdescFixup))
            }
            Step::GetFeature(s) => Some((&s.device, Hook::HwRequest)),
            Step::WriteOutput(s) => Some((&s.device, Hook::HwOutputReport)),
            Step::SetLed(s) => Some((&s.device, Hook::HwOutputReport)),
            _ => None,
        }
    }

    /// One line for step logs. One short arm per step kind: each says what
    /// its step does, in the words of its fields.
    pub fn describe(&self) -> String {
        match self {
            Step::Attach(a) => a.describe(),
            Step::AttachMany(s) => format!("attach {} copies of {} to {}", s.count, s.fixture, s.device),
            Step::Inject(s) => match s.until_ms {
                Some(ms) => {
                    format!("inject [{}] into {} until it arrives as expected (<= {ms} ms)", s.report, s.device)
                }
                None => format!("inject [{}] into {}", s.report, s.device),
            },
            Step::Pin(s) => format!("pin link `{}` in bpffs", s.link),
            Step::Release(s) => {
                format!("release link `{}` ({}), expect it {}", s.link, snake(&s.how), snake(&s.link_after))
            }
            Step::Destroy(s) => format!("destroy uhid device {}", s.device),
            Step::CheckDevice(s) => format!("check device {}", s.device),
            Step::GetFeature(s) => format!("HIDIOCGFEATURE report {} on {}", s.report_id, s.device),
            Step::WriteOutput(s) => format!("write output report [{}] to {}'s hidraw", s.report, s.device),
            Step::SetLed(s) => format!("set {}={} on {}'s evdev node", s.led, s.value, s.device),
            Step::FloodRelease(s) => {
                format!("close link `{}` while flooding {} ({}+ reports after close)", s.link, s.device, s.after)
            }
            Step::Cycle(s) => format!(
                "attach/release {} on {} {} times ({})",
                s.fixture,
                s.device,
                s.count,
                if s.fresh_objects { "a new object each time" } else { "re-attaching one loaded map" }
            ),
            Step::Race(r) => format!(
                "race {} for {} rounds",
                r.racers.iter().map(Racer::describe).collect::<Vec<_>>().join(" vs "),
                r.iterations
            ),
            Step::Replay(s) => format!(
                "replay {} into {}",
                s.recording
                    .as_deref()
                    .map(|r| format!("the events of {r}"))
                    .unwrap_or_else(|| "the recorded events".into()),
                s.device
            ),
            Step::Sysctl(s) => format!("sysctl {}={}", s.name, s.value),
            Step::Sleep(Sleep { ms, until_kernel_log: None }) => format!("sleep {ms} ms"),
            Step::Sleep(Sleep { ms, until_kernel_log: Some(p) }) => {
                format!("wait up to {ms} ms for a kernel log line containing `{p}`")
            }
            Step::Lkdtm(s) => format!("provoke {} through lkdtm", s.crash),
            Step::Capability(s) => {
                format!("{} {} in the agent's effective set", if s.effective { "raise" } else { "drop" }, s.name)
            }
            Step::LoadModule(s) => format!("load kernel module {}", s.module),
            Step::KernelSymbols(s) => format!(
                "kernel symbols containing `{}` are {}",
                s.containing,
                if s.expect == Presence::Present { "present" } else { "absent" }
            ),
        }
    }
}

pub fn snake(v: &impl fmt::Debug) -> String {
    let mut out = String::new();
    for (i, c) in format!("{v:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}
