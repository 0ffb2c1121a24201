//! The scenario language.
//!
//! A scenario is a TOML file: some uhid devices and a list of steps. The
//! host parses and validates it (so a malformed file is reported with its
//! name, step and field before any VM boots), then ships it as JSON to the
//! guest agent, which executes the steps in order.
//!
//! ```toml
//! summary = "what this checks"
//! [[device]]
//! id = "mouse"
//! model = "boot_mouse"
//! [[step]]
//! op = "attach"
//! link = "invert"
//! fixture = "boot_mouse_invert_y"
//! device = "mouse"
//! [[step]]
//! op = "inject"
//! device = "mouse"
//! report = "00 05 03 00"
//! hidraw = "00 05 fd 00"
//! evdev = ["REL_X=5", "REL_Y=-3"]
//! [[step]]
//! op = "release"
//! link = "invert"
//! how = "close"
//! link_after = "gone"
//! [[step]]
//! op = "inject"
//! device = "mouse"
//! report = "00 05 03 00"
//! hidraw = "00 05 03 00"
//! evdev = ["REL_X=5", "REL_Y=3"]
//! ```
use crate::devices::DeviceDef;
use crate::expect::ReportExpect;
use crate::steps::{snake, Holder, Hook, Race, Racer, RacerOp, ReleaseHow, Step};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The file stem; the loader fills it in (files do not repeat it).
    #[serde(default)]
    pub name: String,
    /// One line: what the scenario proves.
    pub summary: String,
    #[serde(rename = "device", default)]
    pub devices: Vec<DeviceSpec>,
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
    /// Cells this scenario runs on (empty: every cell). For checks that
    /// need a flavour, e.g. KASAN reports on the debug cells.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<String>,
    /// The oldest kernel series this scenario applies to ("6.15"): on older
    /// kernels it is listed and reported as skipped, with this as the
    /// reason (a program that only exists in newer trees, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
    /// VM deadline in seconds, instead of the default (24 s under KVM,
    /// 60 s under TCG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
    /// Header directories for programs given as `.bpf.c` paths (relative to
    /// the scenario file), searched before the kernel tree's
    /// drivers/hid/bpf/progs/ headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bpf_include: Vec<String>,
    /// Self-tests only: what the run must end as, "<kind>" or
    /// "<kind>: <class>" ("check-failed", "timeout", "kernel-splat:
    /// warning"); kinds and classes are the host's. Every self-test states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_verdict: Option<String>,
    /// Self-tests only: the checks that must fail (with `expect_verdict =
    /// "check-failed"`), and no others. The agent keeps going after a
    /// failed step so every expected failure can show up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_failure: Vec<ExpectedFailure>,
    /// Self-tests only: text the kernel console must also show (e.g. the
    /// sysrq task dump the host requests before killing a hung VM).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_console: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFailure {
    /// 1-based step number.
    pub step: usize,
    /// Start of the failing check's description ("hidraw", "evdev",
    /// "bpf_link", "load", ...).
    pub check: String,
    /// Text the step's notes must contain (e.g. part of a verifier log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes_contain: Option<String>,
}

/// A `[[device]]` as written: a built-in `model`, a device described
/// inline (`bus`, `vendor`, `product`, `descriptor` or `descriptor_file`),
/// or a hid-recorder `recording`. The host resolves it into a
/// [`DeviceDef`]; file paths are relative to the scenario file.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Name steps use to refer to this device.
    pub id: String,
    /// A built-in model ([`crate::devices::MODELS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The device's name (inline devices; default: the id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<crate::devices::Bus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<u32>,
    /// The report descriptor as hex bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<crate::HexBytes>,
    /// The report descriptor as a binary file (what
    /// /sys/bus/hid/devices/*/report_descriptor holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor_file: Option<String>,
    /// A hid-recorder file: its N:, I: and R: lines define the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
    /// Which device of a multi-device recording (its `D:` index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_device: Option<usize>,
    /// Feature reports the device answers (GET_REPORT), bytes including
    /// the report ID.
    #[serde(rename = "feature", default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<crate::devices::FeatureReport>,
}

/// The hooks a fixture implements (None: not known, e.g. a prebuilt
/// object), or why the fixture cannot be used.
pub type FixtureHooks<'a> = &'a dyn Fn(&str) -> Result<Option<BTreeSet<Hook>>, String>;

/// What validation needs to know beyond the file itself.
pub struct Resources<'a> {
    /// The scenario's devices, resolved (id -> definition).
    pub devices: &'a BTreeMap<String, DeviceDef>,
    pub fixture_hooks: FixtureHooks<'a>,
}

/// What a link is as the scenario proceeds (validation only).
#[derive(Clone, Debug)]
struct LinkInfo {
    holder: Holder,
    fd_open: bool,
    pinned: bool,
    device: Option<String>,
    hooks: Option<BTreeSet<Hook>>,
}

/// A release still waiting for a step that observes its device.
struct PendingProof {
    step: usize,
    link: String,
    device: String,
    hooks: Option<BTreeSet<Hook>>,
}

impl PendingProof {
    fn proved_by(&self, device: &str, hook: Hook) -> bool {
        self.device == device && self.hooks.as_ref().is_none_or(|h| h.is_empty() || h.contains(&hook))
    }

    fn missing(&self) -> String {
        let how = match &self.hooks {
            Some(h) if !h.is_empty() => {
                h.iter().map(|h| format!("{} for {h}", h.proof())).collect::<Vec<_>>().join(" or ")
            }
            _ => "an inject, get_feature, write_output, set_led or descriptor check".into(),
        };
        format!(
            "step {} releases link `{}`, but no later step shows device `{}` behaving without it (add {how} after it, or `behaviour_unchecked = \"<why>\"` to the release)",
            self.step, self.link, self.device
        )
    }
}

/// The scenario's state as validation walks its steps.
struct Validator<'r, 'a> {
    res: &'r Resources<'a>,
    selftest: bool,
    live: BTreeSet<String>,
    links: BTreeMap<String, LinkInfo>,
    pending: Vec<PendingProof>,
}

impl Validator<'_, '_> {
    /// One step (`index` is the scenario's step number; `at` names it in errors).
    fn step(&mut self, index: usize, at: &str, step: &Step) -> Result<(), String> {
        if step.selftest_only() && !self.selftest {
            return Err(format!(
                "{at}: only self-tests (tests/selftests/, with `expect_verdict`) may use this step: it provokes, it does not check"
            ));
        }
        let live = &self.live;
        let need_device = |d: &str| -> Result<(), String> {
            if live.contains(d) {
                Ok(())
            } else {
                let known = live.iter().cloned().collect::<Vec<_>>().join(", ");
                Err(format!("{at}: field `device`: unknown or destroyed device `{d}` (live: {known})"))
            }
        };
        let res = self.res;
        let hooks_of = |f: &str| (res.fixture_hooks)(f).map_err(|e| format!("{at}: field `fixture`: {e}"));
        if let Some((device, hook)) = step.observes() {
            self.pending.retain(|p| !p.proved_by(device, hook));
        }
        let mut created: Vec<(String, LinkInfo)> = Vec::new();
        match step {
            Step::Race(r) => return self.race(index, at, r),
            Step::Attach(a) => {
                let hooks = match (&a.fixture, &a.reuse) {
                    (Some(f), None) => hooks_of(f)?,
                    (None, Some(r)) => match self.links.get(r) {
                        Some(l) if l.holder == Holder::Agent => l.hooks.clone(),
                        _ => return Err(format!("{at}: field `reuse`: no agent-held link named `{r}`")),
                    },
                    _ => return Err(format!("{at}: give exactly one of `fixture` and `reuse`")),
                };
                match (&a.device, a.hid_id) {
                    (Some(d), _) => need_device(d)?,
                    (None, Some(_)) => {}
                    (None, None) => return Err(format!("{at}: give `device` or `hid_id`")),
                }
                if a.holder == Holder::Child && a.reuse.is_some() {
                    return Err(format!("{at}: a child cannot reuse the agent's object"));
                }
                for (field, why) in [("skip_match", &a.skip_match), ("skip_probe", &a.skip_probe)] {
                    if why.as_deref().is_some_and(|w| w.trim().is_empty()) {
                        return Err(format!("{at}: field `{field}`: say why the loader's check is skipped"));
                    }
                }
                if a.expect_error.is_none() {
                    if self.links.contains_key(&a.link) {
                        return Err(format!("{at}: field `link`: link `{}` already exists", a.link));
                    }
                    let device = if a.hid_id.is_some() { None } else { a.device.clone() };
                    created.push((
                        a.link.clone(),
                        LinkInfo { holder: a.holder, fd_open: true, pinned: false, device, hooks },
                    ));
                }
            }
            Step::AttachMany(s) => {
                need_device(&s.device)?;
                let hooks = hooks_of(&s.fixture)?;
                if s.count == 0 {
                    return Err(format!("{at}: field `count`: must be at least 1"));
                }
                for n in 1..=s.count {
                    let info = LinkInfo {
                        holder: Holder::Agent,
                        fd_open: true,
                        pinned: false,
                        device: Some(s.device.clone()),
                        hooks: hooks.clone(),
                    };
                    created.push((format!("{}{n}", s.link_prefix), info));
                }
            }
            Step::Cycle(s) => {
                need_device(&s.device)?;
                hooks_of(&s.fixture)?;
                for (field, why) in [("skip_match", &s.skip_match), ("skip_probe", &s.skip_probe)] {
                    if why.as_deref().is_some_and(|w| w.trim().is_empty()) {
                        return Err(format!("{at}: field `{field}`: say why the loader's check is skipped"));
                    }
                }
                if s.count == 0 {
                    return Err(format!("{at}: field `count`: must be at least 1"));
                }
                if s.rewritten == s.original {
                    return Err(format!(
                        "{at}: `rewritten` equals `original`: the cycle could not tell attached from released; pick a report the fixture changes"
                    ));
                }
                for (field, v) in [("report", &s.report), ("rewritten", &s.rewritten), ("original", &s.original)] {
                    if v.0.is_empty() {
                        return Err(format!("{at}: field `{field}`: must hold at least one byte"));
                    }
                }
            }
            Step::Inject(s) => {
                need_device(&s.device)?;
                if s.report.0.is_empty() || s.report.0.len() > 4096 {
                    return Err(format!("{at}: field `report`: must hold 1 to 4096 bytes"));
                }
                if let Some(frames) = &s.evdev_frames {
                    if !s.evdev.is_empty() {
                        return Err(format!("{at}: give `evdev` or `evdev_frames`, not both"));
                    }
                    if frames.is_empty() {
                        return Err(format!("{at}: field `evdev_frames`: list the frames, or write `evdev = []`"));
                    }
                    for f in frames {
                        let frame =
                            crate::steps::Frame::parse(f).map_err(|e| format!("{at}: field `evdev_frames`: {e}"))?;
                        // Frames are cut at SYN_REPORT and only compared
                        // events count: an empty one is never seen.
                        if frame.0.is_empty() {
                            return Err(format!(
                                "{at}: field `evdev_frames`: \"-\" (a frame without events) can never be seen; list only frames with events"
                            ));
                        }
                    }
                }
                if s.hidraw == ReportExpect::Nothing && (!s.evdev.is_empty() || s.evdev_frames.is_some()) {
                    return Err(format!(
                        "{at}: `hidraw = \"none\"` (report dropped) contradicts the evdev events expected"
                    ));
                }
            }
            Step::Pin(s) => {
                let l = self
                    .links
                    .get_mut(&s.link)
                    .ok_or_else(|| format!("{at}: field `link`: no link named `{}`", s.link))?;
                if l.holder != Holder::Agent || !l.fd_open {
                    return Err(format!("{at}: only a link whose fd the agent holds can be pinned"));
                }
                l.pinned = true;
            }
            Step::Release(r) => {
                let l = self
                    .links
                    .get_mut(&r.link)
                    .ok_or_else(|| format!("{at}: field `link`: no link named `{}`", r.link))?;
                let ok = match r.how {
                    ReleaseHow::Close | ReleaseHow::CloseButLeakDup => l.holder == Holder::Agent && l.fd_open,
                    ReleaseHow::Unpin => l.pinned,
                    ReleaseHow::Detach => l.holder == Holder::Agent && (l.fd_open || l.pinned),
                    ReleaseHow::HolderExit | ReleaseHow::HolderKill => l.holder == Holder::Child && l.fd_open,
                };
                if !ok {
                    return Err(format!(
                        "{at}: field `how`: `{}` does not apply to link `{}` now (held by {:?}, fd {}, {})",
                        snake(&r.how),
                        r.link,
                        l.holder,
                        if l.fd_open { "open" } else { "closed" },
                        if l.pinned { "pinned" } else { "not pinned" }
                    ));
                }
                match r.how {
                    ReleaseHow::Unpin => l.pinned = false,
                    ReleaseHow::Detach => {}
                    _ => l.fd_open = false,
                }
                if let Some(why) = &r.behaviour_unchecked {
                    if why.trim().is_empty() {
                        return Err(format!(
                            "{at}: field `behaviour_unchecked`: say why the release is not checked by behaviour"
                        ));
                    }
                } else if let Some(device) = l.device.as_ref().filter(|d| self.live.contains(*d)) {
                    self.pending.push(PendingProof {
                        step: index,
                        link: r.link.clone(),
                        device: device.clone(),
                        hooks: l.hooks.clone(),
                    });
                }
            }
            Step::Destroy(s) => {
                need_device(&s.device)?;
                if let Some(p) = self.pending.iter().find(|p| p.device == s.device) {
                    return Err(format!("{}; step {} destroys it first", p.missing(), index));
                }
                self.live.remove(&s.device);
            }
            Step::CheckDevice(s) => {
                need_device(&s.device)?;
                if s.descriptor.is_none() && s.keys_present.is_empty() && s.keys_absent.is_empty() && s.starts.is_none()
                {
                    return Err(format!(
                        "{at}: checks nothing; give `descriptor`, `keys_present`, `keys_absent` or `starts`"
                    ));
                }
                if let Some(d) = &s.descriptor {
                    d.apply(&self.res.devices[&s.device].descriptor.0)
                        .map_err(|e| format!("{at}: field `descriptor`: {e}"))?;
                }
            }
            Step::GetFeature(s) => need_device(&s.device)?,
            Step::WriteOutput(s) => {
                need_device(&s.device)?;
                if s.report.0.is_empty() {
                    return Err(format!("{at}: field `report`: must hold at least one byte"));
                }
            }
            Step::SetLed(s) => {
                need_device(&s.device)?;
                crate::event::led_code(&s.led).map_err(|e| format!("{at}: field `led`: {e}"))?;
            }
            Step::FloodRelease(s) => {
                need_device(&s.device)?;
                let l = self
                    .links
                    .get_mut(&s.link)
                    .ok_or_else(|| format!("{at}: field `link`: no link named `{}`", s.link))?;
                if l.holder != Holder::Agent || !l.fd_open || l.pinned {
                    return Err(format!("{at}: field `link`: needs an unpinned link whose only fd the agent holds"));
                }
                l.fd_open = false;
                if s.seq_bytes.iter().any(|b| *b >= s.report.0.len()) || s.seq_bytes[0] == s.seq_bytes[1] {
                    return Err(format!("{at}: field `seq_bytes`: two distinct offsets inside the report"));
                }
                if s.rewritten.0.len() != s.report.0.len() || s.original.0.len() != s.report.0.len() {
                    return Err(format!("{at}: `rewritten` and `original` must be as long as `report`"));
                }
                for (field, p) in [("rewritten", &s.rewritten), ("original", &s.original)] {
                    if s.seq_bytes.iter().any(|b| p.0[*b].is_some()) {
                        return Err(format!(
                            "{at}: field `{field}`: the sequence bytes {:?} vary; write `..` there",
                            s.seq_bytes
                        ));
                    }
                }
                if s.rewritten.overlaps(&s.original) {
                    return Err(format!(
                        "{at}: `rewritten` [{}] and `original` [{}] match the same reports, so the check could not tell them apart",
                        s.rewritten, s.original
                    ));
                }
                if s.after == 0 {
                    return Err(format!("{at}: field `after`: must be at least 1"));
                }
            }
            Step::Replay(s) => {
                need_device(&s.device)?;
                match (&s.evdev, &s.evdev_file) {
                    (Some(_), None) | (None, Some(_)) => {}
                    _ => {
                        return Err(format!(
                            "{at}: give the expected evdev output as exactly one of `evdev` and `evdev_file`"
                        ))
                    }
                }
                if s.hidraw.is_some() && s.hidraw_file.is_some() {
                    return Err(format!("{at}: give at most one of `hidraw` and `hidraw_file`"));
                }
                for frame in s.evdev.iter().flatten() {
                    crate::steps::Frame::parse(frame).map_err(|e| format!("{at}: field `evdev`: {e}"))?;
                }
                for report in s.hidraw.iter().flatten() {
                    ReportExpect::parse(report).map_err(|e| format!("{at}: field `hidraw`: {e}"))?;
                }
            }
            Step::Sysctl(s) => {
                if s.name.is_empty() || s.name.contains('/') || s.name.contains("..") {
                    return Err(format!(
                        "{at}: field `name`: write the sysctl with dots, e.g. kernel.hung_task_timeout_secs"
                    ));
                }
            }
            Step::Capability(s) => {
                if s.name != "CAP_SYS_ADMIN" {
                    return Err(format!("{at}: field `name`: `{}` is not supported (CAP_SYS_ADMIN is)", s.name));
                }
            }
            Step::LoadModule(s) => {
                if s.module.is_empty() || s.module.contains('/') || s.module.ends_with(".ko") {
                    return Err(format!(
                        "{at}: field `module`: the module's file name without `.ko`, e.g. kmemleak-test"
                    ));
                }
            }
            Step::KernelSymbols(s) => {
                if s.containing.trim().is_empty() {
                    return Err(format!("{at}: field `containing`: give part of a symbol name, e.g. \".llvm.\""));
                }
            }
            Step::Sleep(_) | Step::Lkdtm(_) => {}
        }
        self.links.extend(created);
        Ok(())
    }

    /// A race round as a sequence: `before`, the racers' effects, `after`;
    /// then what a round leaves behind is undone (links it made are closed,
    /// devices it destroyed are created again), so every round starts alike.
    fn race(&mut self, index: usize, at: &str, r: &Race) -> Result<(), String> {
        if r.iterations == 0 || r.iterations > 100_000 {
            return Err(format!("{at}: field `iterations`: 1 to 100000"));
        }
        if r.min_hits == 0 || r.min_hits > r.iterations {
            return Err(format!("{at}: field `min_hits`: 1 to `iterations` ({})", r.iterations));
        }
        if r.racers.len() < 2 {
            return Err(format!("{at}: a race needs at least two [[step.racer]]"));
        }
        if r.racers.iter().all(|x| x.repeat) {
            return Err(format!("{at}: every racer repeats, so none would ever stop: give one without `repeat`"));
        }
        r.windows().map_err(|e| format!("{at}: {e}"))?;
        let live_before = self.live.clone();
        let links_before: BTreeSet<String> = self.links.keys().cloned().collect();
        let pending_before = self.pending.len();
        for (j, s) in r.before.iter().enumerate() {
            if matches!(s, Step::Race(_)) {
                return Err(format!("{at}: before {}: races do not nest", j + 1));
            }
            self.step(index, &format!("{at}: before {}", j + 1), s)?;
        }
        // Racers run at once: a device one of them destroys is still there
        // for the others' operations.
        let mut destroyed = Vec::new();
        for (j, x) in r.racers.iter().enumerate() {
            self.racer(index, &format!("{at}: racer {} ({})", j + 1, snake(&x.op)), x, &mut destroyed)?;
        }
        for d in &destroyed {
            self.live.remove(d);
            // A release on a destroyed device cannot be shown by behaviour.
            self.pending.retain(|p| &p.device != d);
        }
        for (j, s) in r.after.iter().enumerate() {
            if matches!(s, Step::Race(_)) {
                return Err(format!("{at}: after {}: races do not nest", j + 1));
            }
            self.step(index, &format!("{at}: after {}", j + 1), s)?;
        }
        if self.pending.len() > pending_before {
            return Err(format!(
                "{} (in every round: put that step in the race's `after`)",
                self.pending[pending_before].missing()
            ));
        }
        self.links.retain(|k, _| links_before.contains(k));
        self.live = live_before;
        Ok(())
    }

    fn racer(&mut self, index: usize, at: &str, x: &Racer, destroyed: &mut Vec<String>) -> Result<(), String> {
        let need = |field: &str, v: bool| if v { Ok(()) } else { Err(format!("{at}: field `{field}` is required")) };
        let device = || x.device.clone().ok_or_else(|| format!("{at}: field `device` is required"));
        let live_device = |d: &str| {
            if self.live.contains(d) {
                Ok(())
            } else {
                Err(format!("{at}: field `device`: unknown or destroyed device `{d}`"))
            }
        };
        for (field, why) in [("skip_match", &x.skip_match), ("skip_probe", &x.skip_probe)] {
            match why.as_deref() {
                Some(_) if x.op != RacerOp::Attach => {
                    return Err(format!("{at}: field `{field}`: only an attach racer matches and probes"))
                }
                Some(w) if w.trim().is_empty() => {
                    return Err(format!("{at}: field `{field}`: say why the loader's check is skipped"))
                }
                _ => {}
            }
        }
        if x.repeat && matches!(x.op, RacerOp::Attach | RacerOp::Release | RacerOp::Destroy | RacerOp::Lkdtm) {
            return Err(format!("{at}: field `repeat`: only input, feature, output and LED racers repeat"));
        }
        match x.op {
            RacerOp::Inject | RacerOp::SetFeature | RacerOp::WriteOutput => {
                live_device(&device()?)?;
                need("report", x.report.as_ref().is_some_and(|r| !r.0.is_empty()))?;
            }
            RacerOp::InjectBpf => {
                live_device(&device()?)?;
                need("report", x.report.as_ref().is_some_and(|r| !r.0.is_empty() && r.0.len() <= 64))
                    .map_err(|_| format!("{at}: field `report`: 1 to 64 bytes"))?;
                need("fixture", x.fixture.is_some())
                    .map_err(|e| format!("{e} (a SEC(\"syscall\") program `inject`, e.g. inject_input_report)"))?;
            }
            RacerOp::GetFeature => {
                live_device(&device()?)?;
                need("report_id", x.report_id.is_some())?;
            }
            RacerOp::SetLed => {
                live_device(&device()?)?;
                let led = x.led.as_deref().ok_or_else(|| format!("{at}: field `led` is required"))?;
                crate::event::led_code(led).map_err(|e| format!("{at}: field `led`: {e}"))?;
            }
            RacerOp::Attach => {
                let d = device()?;
                live_device(&d)?;
                let link = x.link.clone().ok_or_else(|| format!("{at}: field `link` is required"))?;
                let fixture = x.fixture.as_deref().ok_or_else(|| format!("{at}: field `fixture` is required"))?;
                let hooks = (self.res.fixture_hooks)(fixture).map_err(|e| format!("{at}: field `fixture`: {e}"))?;
                if self.links.contains_key(&link) {
                    return Err(format!("{at}: field `link`: link `{link}` already exists"));
                }
                let info = LinkInfo { holder: Holder::Agent, fd_open: true, pinned: false, device: Some(d), hooks };
                self.links.insert(link, info);
            }
            RacerOp::Release => {
                let link = x.link.clone().ok_or_else(|| format!("{at}: field `link` is required"))?;
                let how = x.how.ok_or_else(|| format!("{at}: field `how` is required (close or detach)"))?;
                if !matches!(how, ReleaseHow::Close | ReleaseHow::Detach) {
                    return Err(format!("{at}: field `how`: a racer releases by `close` or `detach`"));
                }
                let l =
                    self.links.get_mut(&link).ok_or_else(|| format!("{at}: field `link`: no link named `{link}`"))?;
                if l.holder != Holder::Agent || !l.fd_open {
                    return Err(format!("{at}: field `link`: needs a link whose fd the agent holds"));
                }
                l.fd_open = false;
                if let Some(device) = l.device.clone().filter(|d| self.live.contains(d)) {
                    self.pending.push(PendingProof { step: index, link, device, hooks: l.hooks.clone() });
                }
            }
            RacerOp::Destroy => {
                let d = device()?;
                live_device(&d)?;
                destroyed.push(d);
            }
            RacerOp::Lkdtm => need("crash", x.crash.is_some())?,
        }
        Ok(())
    }
}

impl Scenario {
    /// Every fixture the scenario names, with the (top-level) step number
    /// naming it, in order; a race's steps and racers included.
    pub fn fixture_uses(&self) -> Vec<(usize, &str)> {
        fn of(step: &Step) -> Vec<&str> {
            match step {
                Step::Attach(a) => a.fixture.as_deref().into_iter().collect(),
                Step::AttachMany(a) => vec![a.fixture.as_str()],
                Step::Cycle(c) => vec![c.fixture.as_str()],
                Step::Race(r) => r
                    .before
                    .iter()
                    .chain(&r.after)
                    .flat_map(of)
                    .chain(r.racers.iter().filter_map(|x| x.fixture.as_deref()))
                    .collect(),
                _ => vec![],
            }
        }
        self.steps.iter().enumerate().flat_map(|(i, s)| of(s).into_iter().map(move |f| (i + 1, f))).collect()
    }

    /// Fixtures the scenario loads, each once.
    pub fn fixtures(&self) -> BTreeSet<&str> {
        self.fixture_uses().into_iter().map(|(_, f)| f).collect()
    }

    /// Whether this is a harness self-test (it states how its run must end).
    pub fn is_selftest(&self) -> bool {
        self.expect_verdict.is_some() || !self.expect_failure.is_empty() || !self.expect_console.is_empty()
    }

    /// Devices still alive after the last step (declared minus destroyed).
    pub fn devices_at_end(&self) -> usize {
        let destroyed = self.steps.iter().filter(|s| matches!(s, Step::Destroy(_))).count();
        self.devices.len() - destroyed.min(self.devices.len())
    }

    /// Cross-field checks serde cannot express. The error names the step
    /// and field so the file can be fixed without guessing.
    pub fn validate(&self, res: &Resources<'_>) -> Result<(), String> {
        if self.steps.is_empty() {
            return Err("has no [[step]]; add at least one".into());
        }
        self.validate_expectations()?;
        let mut v = Validator {
            res,
            selftest: self.is_selftest(),
            live: BTreeSet::new(),
            links: BTreeMap::new(),
            pending: Vec::new(),
        };
        for d in &self.devices {
            if !res.devices.contains_key(&d.id) {
                return Err(format!("device `{}`: not resolved (internal error)", d.id));
            }
            if !v.live.insert(d.id.clone()) {
                return Err(format!("device id `{}` is declared twice", d.id));
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            v.step(i + 1, &format!("step {} ({})", i + 1, step.op()), step)?;
        }
        if let Some(p) = v.pending.first() {
            return Err(p.missing());
        }
        Ok(())
    }

    /// A self-test must state what its run ends as, consistently.
    fn validate_expectations(&self) -> Result<(), String> {
        for (i, f) in self.expect_failure.iter().enumerate() {
            if f.step == 0 || f.step > self.steps.len() {
                return Err(format!(
                    "expect_failure {}: field `step`: {} is not a step number (1..={})",
                    i + 1,
                    f.step,
                    self.steps.len()
                ));
            }
        }
        if !self.is_selftest() {
            return Ok(());
        }
        match self.expect_verdict.as_deref() {
            None => Err(
                "a self-test must state what its run ends as: add `expect_verdict` (e.g. \"check-failed\" with [[expect_failure]], \"timeout\", \"kernel-splat: warning\")"
                    .into(),
            ),
            Some(v) if !self.expect_failure.is_empty() && v.trim() != "check-failed" => Err(format!(
                "field `expect_verdict`: [[expect_failure]] entries mean the run ends as \"check-failed\", not `{v}`"
            )),
            Some(v) if v.trim() == "check-failed" && self.expect_failure.is_empty() => {
                Err("field `expect_verdict`: \"check-failed\" needs [[expect_failure]] entries naming the checks that must fail".into())
            }
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices;

    const GOOD: &str = r#"
summary = "s"
[[device]]
id = "mouse"
model = "boot_mouse"
[[step]]
op = "attach"
link = "l"
fixture = "f"
device = "mouse"
[[step]]
op = "inject"
device = "mouse"
report = "00 05 03 00"
hidraw = "00 05 fd 00"
evdev = ["REL_X=5", "REL_Y=-3"]
[[step]]
op = "release"
link = "l"
how = "close"
link_after = "gone"
[[step]]
op = "inject"
device = "mouse"
report = "00 05 03 00"
hidraw = "00 05 03 00"
evdev = ["REL_X=5", "REL_Y=3"]
"#;

    fn parse(s: &str) -> Result<Scenario, String> {
        toml::from_str::<Scenario>(s).map_err(|e| e.to_string())
    }

    fn check_with(s: &Scenario, hooks: Option<&[Hook]>, known: bool) -> Result<(), String> {
        let devices: BTreeMap<String, DeviceDef> = s
            .devices
            .iter()
            .map(|d| (d.id.clone(), devices::model(d.model.as_deref().unwrap_or("boot_mouse")).unwrap().def()))
            .collect();
        let hooks = hooks.map(|h| h.iter().copied().collect::<BTreeSet<Hook>>());
        let lookup = move |f: &str| if known { Ok(hooks.clone()) } else { Err(format!("no bpf-fixtures/{f}.bpf.c")) };
        s.validate(&Resources { devices: &devices, fixture_hooks: &lookup })
    }

    fn check(s: &Scenario) -> Result<(), String> {
        check_with(s, Some(&[Hook::DeviceEvent]), true)
    }

    #[test]
    fn good_scenario_parses_validates_and_round_trips_as_json() {
        let s = parse(GOOD).unwrap();
        check(&s).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        let back: Scenario = serde_json::from_str(&json).unwrap();
        assert_eq!(back.steps.len(), 4);
        assert_eq!(s.fixtures().into_iter().collect::<Vec<_>>(), vec!["f"]);
    }

    #[test]
    fn unknown_field_and_op_are_rejected() {
        let e = parse(&GOOD.replace("how = \"close\"", "how = \"close\"\nwhen = 1")).unwrap_err();
        assert!(e.contains("unknown field `when`"), "{e}");
        let e = parse(&GOOD.replace("op = \"release\"", "op = \"relase\"")).unwrap_err();
        assert!(e.contains("unknown variant `relase`"), "{e}");
        let e = parse(&GOOD.replace("REL_Y=-3", "REL_Q=-3")).unwrap_err();
        assert!(e.contains("not a known evdev code"), "{e}");
    }

    #[test]
    fn validation_names_step_and_field() {
        let s = parse(GOOD).unwrap();
        assert_eq!(
            check_with(&s, None, false).unwrap_err(),
            "step 1 (attach): field `fixture`: no bpf-fixtures/f.bpf.c"
        );
        let s = parse(&GOOD.replacen("device = \"mouse\"\nreport", "device = \"mose\"\nreport", 1)).unwrap();
        let e = check(&s).unwrap_err();
        assert!(e.starts_with("step 2 (inject): field `device`: unknown or destroyed device `mose`"), "{e}");
        let s = parse(&GOOD.replace("link = \"l\"\nhow", "link = \"m\"\nhow")).unwrap();
        assert!(check(&s).unwrap_err().contains("no link named `m`"));
        let led = "[[step]]\nop = \"set_led\"\ndevice = \"mouse\"\nled = \"LED_CAPSLOK\"\nvalue = 1\ndevice_receives = \"none\"\n";
        let e = check(&parse(&format!("{GOOD}{led}")).unwrap()).unwrap_err();
        assert!(e.starts_with("step 5 (set_led): field `led`: `LED_CAPSLOK` is not a known LED code"), "{e}");
    }

    #[test]
    fn steps_that_would_check_nothing_are_rejected() {
        let empty = "[[step]]\nop = \"check_device\"\ndevice = \"mouse\"\n";
        let e = check(&parse(&format!("{GOOD}{empty}")).unwrap()).unwrap_err();
        assert!(e.contains("step 5 (check_device): checks nothing"), "{e}");
        let past = "[[step]]\nop = \"check_device\"\ndevice = \"mouse\"\ndescriptor = \"original with 500=01\"\n";
        let e = check(&parse(&format!("{GOOD}{past}")).unwrap()).unwrap_err();
        assert!(e.contains("past the end of the 52-byte descriptor"), "{e}");
        let cycle = "[[step]]\nop = \"cycle\"\nfixture = \"f\"\ndevice = \"mouse\"\ncount = 2\nreport = \"00\"\nrewritten = \"00\"\noriginal = \"00\"\n";
        let e = check(&parse(&format!("{GOOD}{cycle}")).unwrap()).unwrap_err();
        assert!(e.contains("`rewritten` equals `original`"), "{e}");
        let dropped_but_events = GOOD.replacen("hidraw = \"00 05 fd 00\"", "hidraw = \"none\"", 1);
        assert!(check(&parse(&dropped_but_events).unwrap()).unwrap_err().contains("contradicts"));
    }

    #[test]
    fn flood_patterns_must_tell_rewritten_from_original() {
        let flood = |rewritten: &str| {
            format!(
                "summary = \"s\"\n[[device]]\nid = \"mouse\"\nmodel = \"boot_mouse\"\n[[step]]\nop = \"attach\"\nlink = \"l\"\nfixture = \"f\"\ndevice = \"mouse\"\n[[step]]\nop = \"flood_release\"\ndevice = \"mouse\"\nlink = \"l\"\nreport = \"00 00 03 00\"\nseq_bytes = [1, 3]\nrewritten = \"{rewritten}\"\noriginal = \"00 .. 03 ..\"\nafter = 10\n"
            )
        };
        check(&parse(&flood("00 .. fd ..")).unwrap()).unwrap();
        let e = check(&parse(&flood("00 .. .. ..")).unwrap()).unwrap_err();
        assert!(e.contains("match the same reports"), "{e}");
        let e = check(&parse(&flood("00 05 fd ..")).unwrap()).unwrap_err();
        assert!(e.contains("sequence bytes"), "{e}");
    }

    #[test]
    fn a_release_must_be_followed_by_behaviour_on_its_device() {
        // Drop the final inject: nothing shows the release worked.
        let cut = GOOD.rfind("[[step]]").unwrap();
        let s = parse(&GOOD[..cut]).unwrap();
        let e = check(&s).unwrap_err();
        assert!(e.contains("step 3 releases link `l`") && e.contains("an inject for hid_device_event"), "{e}");
        // A get_feature does not show that an event program stopped running.
        let feature = "[[step]]\nop = \"get_feature\"\ndevice = \"mouse\"\nreport_id = 1\nexpect = \"error EIO\"\n";
        assert!(check(&parse(&format!("{}{feature}", &GOOD[..cut])).unwrap()).is_err());
        // ... but it does for a program whose hook is hid_hw_request.
        check_with(&parse(&format!("{}{feature}", &GOOD[..cut])).unwrap(), Some(&[Hook::HwRequest]), true).unwrap();
        // Stating why is accepted.
        let why = GOOD[..cut]
            .replace("link_after = \"gone\"", "link_after = \"gone\"\nbehaviour_unchecked = \"the device is gone\"");
        check(&parse(&why).unwrap()).unwrap();
        // Destroying the device before any proof is an error too.
        let destroy = format!("{}[[step]]\nop = \"destroy\"\ndevice = \"mouse\"\n", &GOOD[..cut]);
        assert!(check(&parse(&destroy).unwrap()).unwrap_err().contains("step 4 destroys it first"));
    }

    #[test]
    fn selftests_state_their_end_and_provoking_steps_are_theirs() {
        let sleep = "[[step]]\nop = \"sleep\"\nms = 1\n";
        let e = check(&parse(&format!("{GOOD}{sleep}")).unwrap()).unwrap_err();
        assert!(e.contains("only self-tests"), "{e}");
        // expect_console alone says nothing about how the run ends.
        let console_only = format!("expect_console = [\"x\"]\n{GOOD}");
        assert!(check(&parse(&console_only).unwrap()).unwrap_err().contains("must state what its run ends as"));
        let failure = "[[expect_failure]]\nstep = 2\ncheck = \"hidraw\"\n";
        let e = check(&parse(&format!("expect_verdict = \"timeout\"\n{GOOD}{failure}")).unwrap()).unwrap_err();
        assert!(e.contains("mean the run ends as \"check-failed\""), "{e}");
        check(&parse(&format!("expect_verdict = \"check-failed\"\n{GOOD}{failure}")).unwrap()).unwrap();
        assert!(check(&parse(&format!("expect_verdict = \"check-failed\"\n{GOOD}")).unwrap()).is_err());
    }
}
