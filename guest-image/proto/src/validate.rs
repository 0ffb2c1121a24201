//! Validating a scenario's steps: walked in order, each step is checked
//! against what the steps before it left (live devices, links and how
//! they are held, releases not yet shown by behaviour). Every step kind
//! has its own checks (`Validate`, implemented by each step struct);
//! [`Validator::step`] only dispatches.
use crate::devices::DeviceDef;
use crate::expect::ReportExpect;
use crate::steps::{
    snake, Attach, AttachMany, Capability, CheckDevice, Cycle, Destroy, FloodRelease, GetFeature, Holder, Hook, Inject,
    KernelSymbols, Lkdtm, LoadModule, Pin, Race, Racer, RacerOp, Release, ReleaseHow, Replay, SetLed, Sleep, Step,
    Sysctl, WriteOutput,
};
use std::collections::{BTreeMap, BTreeSet};

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
pub struct Validator<'r, 'a> {
    res: &'r Resources<'a>,
    selftest: bool,
    live: BTreeSet<String>,
    links: BTreeMap<String, LinkInfo>,
    pending: Vec<PendingProof>,
}

/// One step kind's checks. `index` is the scenario's step number (a race's
/// steps and racers have their race's); `at` names the step in errors.
trait Validate {
    fn validate(&self, v: &mut Validator<'_, '_>, index: usize, at: &str) -> Result<(), String>;
}

impl<'r, 'a> Validator<'r, 'a> {
    /// Before the first step: no device yet, no link.
    pub fn new(res: &'r Resources<'a>, selftest: bool) -> Self {
        Validator { res, selftest, live: BTreeSet::new(), links: BTreeMap::new(), pending: Vec::new() }
    }

    /// A `[[device]]` of the scenario, alive from the start.
    pub fn declare_device(&mut self, id: &str) -> Result<(), String> {
        if !self.res.devices.contains_key(id) {
            return Err(format!("device `{id}`: not resolved (internal error)"));
        }
        if !self.live.insert(id.to_string()) {
            return Err(format!("device id `{id}` is declared twice"));
        }
        Ok(())
    }

    /// After the last step: every release must have been shown by behaviour.
    pub fn finish(&self) -> Result<(), String> {
        match self.pending.first() {
            Some(p) => Err(p.missing()),
            None => Ok(()),
        }
    }

    /// One step (`index` is the scenario's step number; `at` names it in errors).
    pub fn step(&mut self, index: usize, at: &str, step: &Step) -> Result<(), String> {
        if step.selftest_only() && !self.selftest {
            return Err(format!(
                "{at}: only self-tests (tests/selftests/, with `expect_verdict`) may use this step: it provokes, it does not check"
            ));
        }
        if let Some((device, hook)) = step.observes() {
            self.pending.retain(|p| !p.proved_by(device, hook));
        }
        let kind: &dyn Validate = match step {
            Step::Attach(s) => s,
            Step::AttachMany(s) => s,
            Step::Inject(s) => s,
            Step::Pin(s) => s,
            Step::Release(s) => s,
            Step::Destroy(s) => s,
            Step::CheckDevice(s) => s,
            Step::GetFeature(s) => s,
            Step::WriteOutput(s) => s,
            Step::SetLed(s) => s,
            Step::FloodRelease(s) => s,
            Step::Cycle(s) => s,
            Step::Replay(s) => s,
            Step::Race(s) => s,
            Step::Sysctl(s) => s,
            Step::Sleep(s) => s,
            Step::Lkdtm(s) => s,
            Step::Capability(s) => s,
            Step::LoadModule(s) => s,
            Step::KernelSymbols(s) => s,
        };
        kind.validate(self, index, at)
    }

    /// `device` is declared and not destroyed.
    fn need_device(&self, at: &str, device: &str) -> Result<(), String> {
        if self.live.contains(device) {
            return Ok(());
        }
        let known = self.live.iter().cloned().collect::<Vec<_>>().join(", ");
        Err(format!("{at}: field `device`: unknown or destroyed device `{device}` (live: {known})"))
    }

    /// The hooks of the program `fixture` names.
    fn hooks_of(&self, at: &str, fixture: &str) -> Result<Option<BTreeSet<Hook>>, String> {
        (self.res.fixture_hooks)(fixture).map_err(|e| format!("{at}: field `fixture`: {e}"))
    }

    /// The link the step names.
    fn link_mut(&mut self, at: &str, link: &str) -> Result<&mut LinkInfo, String> {
        self.links.get_mut(link).ok_or_else(|| format!("{at}: field `link`: no link named `{link}`"))
    }

    /// A race's racer; a device it destroys is added to `destroyed`.
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
                let hooks = self.hooks_of(at, fixture)?;
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
                let l = self.link_mut(at, &link)?;
                if l.holder != Holder::Agent || !l.fd_open {
                    return Err(format!("{at}: field `link`: needs a link whose fd the agent holds"));
                }
                l.fd_open = false;
                let (device, hooks) = (l.device.clone(), l.hooks.clone());
                if let Some(device) = device.filter(|d| self.live.contains(d)) {
                    self.pending.push(PendingProof { step: index, link, device, hooks });
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

impl Validate for Attach {
    fn validate(&self, v: &mut Validator<'_, '_>, _index: usize, at: &str) -> Result<(), String> {
        let hooks = match (&self.fixture, &self.reuse) {
            (Some(f), None) => v.hooks_of(at, f)?,
            (None, Some(r)) => match v.links.get(r) {
                Some(l) if l.holder == Holder::Agent => l.hooks.clone(),
                _ => return Err(format!("{at}: field `reuse`: no agent-held link named `{r}`")),
            },
            _ => return Err(format!("{at}: give exactly one of `fixture` and `reuse`")),
        };
        match (&self.device, self.hid_id) {
            (Some(d), _) => v.need_device(at, d)?,
            (None, Some(_)) => {}
            (None, None) => return Err(format!("{at}: give `device` or `hid_id`")),
        }
        if self.holder == Holder::Child && self.reuse.is_some() {
            return Err(format!("{at}: a child cannot reuse the agent's object"));
        }
        for (field, why) in [("skip_match", &self.skip_match), ("skip_probe", &self.skip_probe)] {
            if why.as_deref().is_some_and(|w| w.trim().is_empty()) {
                return Err(format!("{at}: field `{field}`: say why the loader's check is skipped"));
            }
        }
        if self.expect_error.is_none() {
            if v.links.contains_key(&self.link) {
                return Err(format!("{at}: field `link`: link `{}` already exists", self.link));
            }
            let device = if self.hid_id.is_some() { None } else { self.device.clone() };
            v.links.insert(
                self.link.clone(),
                LinkInfo { holder: self.holder, fd_open: true, pinned: false, device, hooks },
            );
        }
        Ok(())
    }
}

impl Validate for AttachMany {
    fn validate(&self, v: &mut Validator<'_, '_>, _index: usize, at: &str) -> Result<(), String> {
        v.need_device(at, &self.device)?;
        let hooks = v.hooks_of(at, &self.fixture)?;
        if self.count == 0 {
            return Err(format!("{at}: field `count`: must be at least 1"));
        }
        for n in 1..=self.count {
            let info = LinkInfo {
                holder: Holder::Agent,
                fd_open: true,
                pinned: false,
                device: Some(self.device.clone()),
                hooks: hooks.clone(),
            };
            v.links.insert(format!("{}{n}", self.link_prefix), info);
        }
        Ok(())
    }
}

impl Validate for Cycle {
    fn validate(&self, v: &mut Validator<'_, '_>, _index: usize, at: &str) -> Result<(), String> {
        v.need_device(at, &self.device)?;
        v.hooks_of(at, &self.fixture)?;
        for (field, why) in [("skip_match", &self.skip_match), ("skip_probe", &self.skip_probe)] {
            if why.as_deref().is_some_and(|w| w.trim().is_empty()) {
                return Err(format!("{at}: field `{field}`: say why the loader's check is skipped"));
            }
        }
        if self.count == 0 {
            return Err(format!("{at}: field `count`: must be at least 1"));
        }
        if self.rewritten == self.original {
            return Err(format!(
                "{at}: `rewritten` equals `original`: the cycle could not tell attached from released; pick a report the fixture changes"
            ));
        }
        for (field, b) in [("report", &self.report), ("rewritten", &self.rewritten), ("original", &self.original)] {
            if b.0.is_empty() {
                return Err(format!("{at}: field `{field}`: must hold at least one byte"));
            }
        }
        Ok(())
    }
}

impl Validate for Inject {
    fn validate(&self, v: &mut Validator<'_, '_>, _index: usize, at: &str) -> Result<(), String> {
        v.need_device(at, &self.device)?;
        if self.report.0.is_empty() || self.report.0.len() > 4096 {
            return Err(format!("{at}: field `report`: must hold 1 to 4096 bytes"));
        }
        if let Some(frames) = &self.evdev_frames {
            if !self.evdev.is_empty() {
                return Err(format!("{at}: give `evdev` or `evdev_frames`, not both"));
            }
            if frames.is_empty() {
                return Err(format!("{at}: field `evdev_frames`: list the frames, or write `evdev = []`"));
            }
            for f in frames {
                let frame = crate::steps::Frame::parse(f).map_err(|e| format!("{at}: field `evdev_frames`: {e}"))?;
                // Frames are cut at SYN_REPORT and only compared
                // events count: an empty one is never seen.
                if frame.0.is_empty() {
                    return Err(format!(
                        "{at}: field `evdev_frames`: \"-\" (a frame without events) can never be seen; list only frames with events"
                    ));
                }
            }
        }
        if self.hidraw == ReportExpect::Nothing && (!self.evdev.is_empty() || self.evdev_frames.is_some()) {
            return Err(format!("{at}: `hidraw = \"none\"` (report dropped) contradicts the evdev events expected"));
        }
        Ok(())
    }
}

impl Validate for Pin {
    fn validate(&self, v: &mut Validator<'_, '_>, _index: usize, at: &str) -> Result<(), String> {
        let l = v.link_mut(at, &self.link)?;
        if l.holder != Holder::Agent || !l.fd_open {
            return Err(format!("{at}: only a link whose fd the agent holds can be pinned"));
        }
        l.pinned = true;
        Ok(())
    }
}

impl Validate for Release {
    fn validate(&self, v: &mut Validator<'_, '_>, index: usize, at: &str) -> Result<(), String> {
        let l = v.link_mut(at, &self.link)?;
        let ok = match self.how {
            ReleaseHow::Close | ReleaseHow::CloseButLeakDup => l.holder == Holder::Agent && l.fd_open,
            ReleaseHow::Unpin => l.pinned,
            ReleaseHow::Detach => l.holder == Holder::Agent && (l.fd_open || l.pinned),
            ReleaseHow::HolderExit | ReleaseHow::HolderKill => l.holder == Holder::Child && l.fd_open,
        };
        if !ok {
            return Err(format!(
                "{at}: field `how`: `{}` does not apply to link `{}` now (held by {:?}, fd {}, {})",
                snake(&self.how),
                self.link,
                l.holder,
                if l.fd_open { "open" } else { "closed" },
                if l.pinned { "pinned" } else { "not pinned" }
            ));
        }
        match self.how {
            ReleaseHow::Unpin => l.pinned = false,
            ReleaseHow::Detach => {}
            _ => l.fd_open = false,
        }
        let (device, hooks) = (l.device.clone(), l.hooks.clone());
        if let Some(why) = &self.behaviour_unchecked {
            if why.trim().is_empty() {
                return Err(format!(
                    "{at}: field `behaviour_unchecked`: say why the release is not checked by behaviour"
                ));
            }
        } else if let Some(device) = device.filter(|d| v.live.contains(d)) {
            v.pending.push(PendingProof { step: index, link: self.link.clone(), device, hooks });
        }
        Ok(())
    }
}

impl Validate for Destroy {
    fn validate(&self, v: &mut Validator<'_, '_>, index: usize, at: &str) -> Result<(), String> {
        v.need_device(at, &self.device)?;
        if let Some(p) = v.pending.iter().find(|p| p.device == self.device) {
            return Err(format!("{}; step {} destroys it first", p.missing(), index));
        }
        v.live.remove(&self.device);
        Ok(())
    }
}

impl Validate for CheckDevice {
    fn validate(&self, v: &mut Validator<'_, '_>, _index: usize, at: &str) -> Result<(), String> {
        v.need_device(at, &self.device)?;
        if self.descriptor.is_none()
            && self.keys_present.is_empty()
            && self.keys_absent.is_empty()
            && self.starts.is_none()
        {
            return Err(format!("{at}: checks nothing; give `descriptor`, `keys_present`, `keys_absent` or `starts`"));
        }
        if let Some(d) = &self.descriptor {
            d.apply(&v.res.devices[&self.device].descriptor.0).map_err(|e| format!("{at}: field `descriptor`: {e}"))?;
        }
        Ok(())
    }
}

impl Validate for GetFeature {
    fn validate(&self, v: &mut Validator<'_, '_>, _index: usize, at: &str) -> Result<(), String> {
        v.need_device(at, &self.device)
    }
}

impl Validate for WriteOutput {
    fn validate(&self, v: &mut Validator<'_, '_>, _index: usize, at: &str) -> Result<(), String> {
        v.need_device(at, &self.device)?;
        if self.report.0.is_empty() {
            return Err(format!("{at}: field `report`: must hold at least one byte"));
        }
        Ok(())
    }
}

impl Validate for SetLed {
    fn validate(&self, v: &mut Validator<'_, '_>, _index: usize, at: &str) -> Result<(), String> {
        v.need_device(at, &self.device)?;
        crate::event::led_code(&self.led).map_err(|e| format!("{at}: field `led`: {e}"))?;
        Ok(())
    }
}

impl Validate for FloodRelease {
    fn validate(&self, v: &mut Validator<'_, '_>, _index: usize, at: &str) -> Result<(), String> {
        v.need_device(at, &self.device)?;
        let l = v.link_mut(at, &self.link)?;
        if l.holder != Holder::Agent || !l.fd_open || l.pinned {
            return Err(format!("{at}: field `link`: needs an unpinned link whose only fd the agent holds"));
        }
        l.fd_open = false;
        if self.seq_bytes.iter().any(|b| *b >= self.report.0.len()) || self.seq_bytes[0] == self.seq_bytes[1] {
            return Err(format!("{at}: field `seq_bytes`: two distinct offsets inside the report"));
        }
        if self.rewritten.0.len() != self.report.0.len() || self.original.0.len() != self.report.0.len() {
            return Err(format!("{at}: `rewritten` and `original` must be as long as `report`"));
        }
        for (field, p) in [("rewritten", &self.rewritten), ("original", &self.original)] {
            if self.seq_bytes.iter().any(|b| p.0[*b].is_some()) {
                return Err(format!(
                    "{at}: field `{field}`: the sequence bytes {:?} vary; write `..` there",
                    self.seq_bytes
                ));
            }
        }
        if self.rewritten.overlaps(&self.original) {
            return Err(format!(
                "{at}: `rewritten` [{}] and `original` [{}] match the same reports, so the check could not tell them apart",
                self.rewritten, self.original
            ));
        }
        if self.after == 0 {
            return Err(format!("{at}: field `after`: must be at least 1"));
        }
        Ok(())
    }
}

impl Validate for Replay {
    fn validate(&self, v: &mut Validator<'_, '_>, _index: usize, at: &str) -> Result<(), String> {
        v.need_device(at, &self.device)?;
        match (&self.evdev, &self.evdev_file) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(format!("{at}: give the expected evdev output as exactly one of `evdev` and `evdev_file`"))
            }
        }
        if self.hidraw.is_some() && self.hidraw_file.is_some() {
            return Err(format!("{at}: give at most one of `hidraw` and `hidraw_file`"));
        }
        for frame in self.evdev.iter().flatten() {
            crate::steps::Frame::parse(frame).map_err(|e| format!("{at}: field `evdev`: {e}"))?;
        }
        for report in self.hidraw.iter().flatten() {
            ReportExpect::parse(report).map_err(|e| format!("{at}: field `hidraw`: {e}"))?;
        }
        Ok(())
    }
}

/// A race round as a sequence: `before`, the racers' effects, `after`;
/// then what a round leaves behind is undone (links it made are closed,
/// devices it destroyed are created again), so every round starts alike.
impl Validate for Race {
    fn validate(&self, v: &mut Validator<'_, '_>, index: usize, at: &str) -> Result<(), String> {
        if self.iterations == 0 || self.iterations > 100_000 {
            return Err(format!("{at}: field `iterations`: 1 to 100000"));
        }
        if self.min_hits == 0 || self.min_hits > self.iterations {
            return Err(format!("{at}: field `min_hits`: 1 to `iterations` ({})", self.iterations));
        }
        if self.racers.len() < 2 {
            return Err(format!("{at}: a race needs at least two [[step.racer]]"));
        }
        if self.racers.iter().all(|x| x.repeat) {
            return Err(format!("{at}: every racer repeats, so none would ever stop: give one without `repeat`"));
        }
        self.windows().map_err(|e| format!("{at}: {e}"))?;
        let live_before = v.live.clone();
        let links_before: BTreeSet<String> = v.links.keys().cloned().collect();
        let pending_before = v.pending.len();
        for (j, s) in self.before.iter().enumerate() {
            if matches!(s, Step::Race(_)) {
                return Err(format!("{at}: before {}: races do not nest", j + 1));
            }
            v.step(index, &format!("{at}: before {}", j + 1), s)?;
        }
        // Racers run at once: a device one of them destroys is still there
        // for the others' operations.
        let mut destroyed = Vec::new();
        for (j, x) in self.racers.iter().enumerate() {
            v.racer(index, &format!("{at}: racer {} ({})", j + 1, snake(&x.op)), x, &mut destroyed)?;
        }
        for d in &destroyed {
            v.live.remove(d);
            // A release on a destroyed device cannot be shown by behaviour.
            v.pending.retain(|p| &p.device != d);
        }
        for (j, s) in self.after.iter().enumerate() {
            if matches!(s, Step::Race(_)) {
                return Err(format!("{at}: after {}: races do not nest", j + 1));
            }
            v.step(index, &format!("{at}: after {}", j + 1), s)?;
        }
        if v.pending.len() > pending_before {
            return Err(format!(
                "{} (in every round: put that step in the race's `after`)",
                v.pending[pending_before].missing()
            ));
        }
        v.links.retain(|k, _| links_before.contains(k));
        v.live = live_before;
        Ok(())
    }
}

/// Step kinds whose only check is on their own fields: the condition that
/// refuses the step, and why.
macro_rules! refuse_when {
    ($($kind:ident: |$s:ident| $bad:expr => $why:expr;)*) => {$(
        impl Validate for $kind {
            fn validate(&self, _v: &mut Validator<'_, '_>, _index: usize, at: &str) -> Result<(), String> {
                let $s = self;
                match $bad {
                    true => Err(format!("{at}: {}", $why)),
                    false => Ok(()),
                }
            }
        }
    )*};
}

refuse_when! {
    Sysctl: |s| s.name.is_empty() || s.name.contains('/') || s.name.contains("..")
        => "field `name`: write the sysctl with dots, e.g. kernel.hung_task_timeout_secs";
    Capability: |s| s.name != "CAP_SYS_ADMIN"
        => format!("field `name`: `{}` is not supported (CAP_SYS_ADMIN is)", s.name);
    LoadModule: |s| s.module.is_empty() || s.module.contains('/') || s.module.ends_with(".ko")
        => "field `module`: the module's file name without `.ko`, e.g. kmemleak-test";
    KernelSymbols: |s| s.containing.trim().is_empty()
        => "field `containing`: give part of a symbol name, e.g. \".llvm.\"";
}

impl Validate for Sleep {
    fn validate(&self, _v: &mut Validator<'_, '_>, _index: usize, _at: &str) -> Result<(), String> {
        Ok(())
    }
}

impl Validate for Lkdtm {
    fn validate(&self, _v: &mut Validator<'_, '_>, _index: usize, _at: &str) -> Result<(), String> {
        Ok(())
    }
}
