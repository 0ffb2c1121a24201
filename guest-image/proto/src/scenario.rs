//! The scenario language.
//!
//! A scenario is a TOML file under `tests/scenarios/`: some uhid devices and
//! a list of steps. The host parses and validates it (so a malformed file is
//! reported with its name, step and field before any VM boots), then ships it
//! as JSON to the guest agent, which executes the steps in order.
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
//! ```
use crate::{devices, Errno, EvdevEvent, HexBytes, KeyName};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

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
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
    /// Cells this scenario runs on (empty: every cell). For checks that
    /// need a flavour, e.g. KASAN reports on the debug cells.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<String>,
    /// VM deadline in seconds, instead of the default (24 s under KVM,
    /// 60 s under TCG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
    /// Harness self-tests only (tests/selftests/): the checks that must
    /// fail. A self-test passes when exactly these fail, which proves the
    /// harness can see that kind of breakage. The agent keeps going after a
    /// failed step so every expected failure can show up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_failure: Vec<ExpectedFailure>,
    /// Harness self-tests only: the verdict the run must end in, as
    /// "<kind>" or "<kind>: <class>" ("timeout", "kernel-splat: warning",
    /// "kernel-crash: panic"); kinds and classes are the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_verdict: Option<String>,
    /// Harness self-tests only: text the kernel console must show (e.g.
    /// the sysrq task dump the host requests before killing a hung VM).
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

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Name steps use to refer to this device.
    pub id: String,
    /// A [`devices::MODELS`] entry.
    pub model: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Load `bpf-fixtures/<fixture>.bpf.c` with the device's hid_id and
    /// attach its struct_ops map, keeping the bpf_link under the name `link`.
    Attach {
        link: String,
        /// Fixture to load; or `reuse` to attach an already-loaded map again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fixture: Option<String>,
        /// Attach the struct_ops map of this (agent-held) link's object again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reuse: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        /// Target this hid_id instead of a device's (e.g. one that does not exist).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hid_id: Option<u32>,
        /// Struct_ops map to attach when the object has more than one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        map: Option<String>,
        /// Set BPF_F_BEFORE: run before the programs already attached.
        #[serde(default, skip_serializing_if = "is_false")]
        before: bool,
        /// Who holds the link: the agent, or a child process it starts (for
        /// the exit/kill release paths).
        #[serde(default, skip_serializing_if = "Holder::is_agent")]
        holder: Holder,
        /// The attach must fail with this errno (verifier rejections: EACCES).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_error: Option<Errno>,
    },
    /// Attach `count` fresh copies of a fixture; links are named
    /// `<link_prefix>1` .. `<link_prefix><count>`.
    AttachMany { fixture: String, device: String, count: u32, link_prefix: String },
    /// Write one input report through uhid and compare what hidraw and
    /// evdev deliver with the expectations.
    Inject {
        device: String,
        report: HexBytes,
        /// Bytes hidraw must deliver, or "none" when the report must be dropped.
        hidraw: ReportExpect,
        /// Exact set of EV_KEY/EV_REL/EV_ABS events of the report's frame.
        evdev: Vec<EvdevEvent>,
        /// For asynchronous releases: re-inject until hidraw matches, up to
        /// this many milliseconds, and report how long it took.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<u64>,
    },
    /// Pin the link in bpffs (/sys/fs/bpf/hidvm-<link>).
    Pin { link: String },
    /// Release (part of) a link and check the kernel's view afterwards.
    Release {
        link: String,
        how: ReleaseHow,
        /// State of the link in the kernel's link list afterwards.
        link_after: LinkAfter,
    },
    /// UHID_DESTROY the device (links attached to it stay, orphaned).
    Destroy { device: String },
    /// Check the device as the kernel now sees it. Waits for re-probes.
    CheckDevice {
        device: String,
        /// "original", or "original with <offset>=<hex byte> ..." (sysfs report_descriptor).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        descriptor: Option<DescriptorExpect>,
        /// Keys/buttons the evdev node must (not) advertise.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        keys_present: Vec<KeyName>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        keys_absent: Vec<KeyName>,
        /// How many times the device was started (UHID_START), i.e. 1 +
        /// the number of re-probes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        starts: Option<u32>,
    },
    /// HIDIOCGFEATURE on the hidraw node.
    GetFeature {
        device: String,
        report_id: u8,
        /// Bytes returned, or an errno name prefixed with "error " ("error EACCES").
        expect: FeatureExpect,
    },
    /// write() an output report to the hidraw node.
    WriteOutput {
        device: String,
        report: HexBytes,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_error: Option<Errno>,
        /// What the device must receive (UHID_OUTPUT), or "none".
        device_receives: ReportExpect,
    },
    /// Set an LED through the evdev node (input core -> hid-input -> output report).
    SetLed {
        device: String,
        led: String,
        value: i32,
        device_receives: ReportExpect,
    },
    /// Close the link while another thread floods reports: every report
    /// injected after close() returned must arrive original.
    FloodRelease {
        device: String,
        link: String,
        /// Report template; bytes `seq_bytes` carry a 14-bit sequence number.
        report: HexBytes,
        seq_bytes: [usize; 2],
        /// hidraw bytes while rewritten / after release ("..": a sequence byte).
        rewritten: HexPattern,
        original: HexPattern,
        /// Reports that must be injected after close() returned.
        after: u32,
    },
    /// Sleep (a stand-in for a hung scenario in harness self-tests).
    Sleep { ms: u64 },
    /// Write a sysctl (/proc/sys/<name with dots as slashes>).
    Sysctl { name: String, value: String },
    /// Provoke a kernel fault through lkdtm (/sys/kernel/debug/provoke-crash/DIRECT),
    /// from a thread, waiting up to `wait_ms` for it (a hung task never returns).
    Lkdtm {
        crash: String,
        #[serde(default = "default_lkdtm_wait")]
        wait_ms: u64,
    },
    /// Attach and release a fixture `count` times, checking the rewrite
    /// while attached and the original while not; kernel program, map and
    /// link counts must be back at the baseline afterwards.
    Cycle {
        fixture: String,
        device: String,
        count: u32,
        /// Load a new object every iteration (slower) instead of attaching
        /// the same loaded map again.
        #[serde(default, skip_serializing_if = "is_false")]
        fresh_objects: bool,
        report: HexBytes,
        rewritten: HexBytes,
        original: HexBytes,
    },
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
    /// Harness self-tests only: dup() the link fd and keep the copy (the
    /// leaked reference a buggy loader would hold), then close the `Link`.
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

/// Expected report descriptor: the model's, optionally with bytes changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorExpect {
    pub patches: Vec<(usize, u8)>,
}

impl DescriptorExpect {
    pub fn parse(s: &str) -> Result<Self, String> {
        let rest = s.trim().strip_prefix("original").ok_or_else(|| {
            format!("`{s}`: write \"original\" or \"original with <offset>=<hex byte> ...\"")
        })?;
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(DescriptorExpect { patches: vec![] });
        }
        let list = rest.strip_prefix("with").ok_or_else(|| format!("`{s}`: expected `with` after `original`"))?;
        let patches = list
            .split_whitespace()
            .map(|p| {
                let (off, val) = p.split_once('=').ok_or_else(|| format!("`{p}`: write <offset>=<hex byte>"))?;
                let off: usize = off.parse().map_err(|_| format!("`{p}`: offset must be decimal"))?;
                let val = u8::from_str_radix(val, 16).map_err(|_| format!("`{p}`: value must be a hex byte"))?;
                Ok((off, val))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(DescriptorExpect { patches })
    }

    pub fn apply(&self, original: &[u8]) -> Vec<u8> {
        let mut d = original.to_vec();
        for (off, val) in &self.patches {
            if *off < d.len() {
                d[*off] = *val;
            }
        }
        d
    }
}

impl fmt::Display for DescriptorExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("original")?;
        if !self.patches.is_empty() {
            f.write_str(" with")?;
            for (o, v) in &self.patches {
                write!(f, " {o}={v:02x}")?;
            }
        }
        Ok(())
    }
}

/// What HIDIOCGFEATURE must return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeatureExpect {
    Bytes(HexBytes),
    Error(Errno),
}

impl fmt::Display for FeatureExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureExpect::Bytes(b) => write!(f, "{b}"),
            FeatureExpect::Error(e) => write!(f, "error {e}"),
        }
    }
}

impl FeatureExpect {
    fn parse(s: &str) -> Result<Self, String> {
        match s.trim().strip_prefix("error ") {
            Some(name) => Errno::parse(name.trim()).map(FeatureExpect::Error),
            None => HexBytes::parse(s).map(FeatureExpect::Bytes),
        }
    }
}

/// Hex bytes where ".." matches any byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HexPattern(pub Vec<Option<u8>>);

impl HexPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        s.split_whitespace()
            .map(|b| if b == ".." { Ok(None) } else { HexBytes::parse(b).map(|h| Some(h.0[0])) })
            .collect::<Result<Vec<_>, _>>()
            .map(HexPattern)
    }

    pub fn matches(&self, bytes: &[u8]) -> bool {
        bytes.len() == self.0.len() && self.0.iter().zip(bytes).all(|(p, b)| p.is_none_or(|p| p == *b))
    }
}

impl fmt::Display for HexPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|b| b.map(|b| format!("{b:02x}")).unwrap_or_else(|| "..".into())).collect();
        f.write_str(&parts.join(" "))
    }
}

string_serde!(DescriptorExpect);
string_serde!(FeatureExpect);
string_serde!(HexPattern);

/// What hidraw (or the device, for output reports) must see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportExpect {
    Bytes(HexBytes),
    /// Nothing must arrive (a program dropped or filtered it).
    Nothing,
}

impl ReportExpect {
    fn parse(s: &str) -> Result<Self, String> {
        if s.trim() == "none" {
            return Ok(ReportExpect::Nothing);
        }
        HexBytes::parse(s).map(ReportExpect::Bytes)
    }
}

impl fmt::Display for ReportExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportExpect::Bytes(b) => write!(f, "{b}"),
            ReportExpect::Nothing => f.write_str("none"),
        }
    }
}
string_serde!(ReportExpect);

impl Step {
    pub fn op(&self) -> &'static str {
        match self {
            Step::Attach { .. } => "attach",
            Step::AttachMany { .. } => "attach_many",
            Step::Inject { .. } => "inject",
            Step::Pin { .. } => "pin",
            Step::Release { .. } => "release",
            Step::Destroy { .. } => "destroy",
            Step::CheckDevice { .. } => "check_device",
            Step::GetFeature { .. } => "get_feature",
            Step::WriteOutput { .. } => "write_output",
            Step::SetLed { .. } => "set_led",
            Step::FloodRelease { .. } => "flood_release",
            Step::Cycle { .. } => "cycle",
            Step::Sleep { .. } => "sleep",
            Step::Sysctl { .. } => "sysctl",
            Step::Lkdtm { .. } => "lkdtm",
        }
    }

    /// One line for step logs.
    pub fn describe(&self) -> String {
        match self {
            Step::Attach { link, fixture, reuse, device, hid_id, before, holder, expect_error, .. } => {
                let what = match (fixture, reuse) {
                    (Some(f), _) => format!("fixture {f}"),
                    (None, Some(r)) => format!("the map of link `{r}` again"),
                    (None, None) => "nothing".into(),
                };
                let target = match (device, hid_id) {
                    (_, Some(id)) => format!("hid_id {id}"),
                    (Some(d), None) => d.clone(),
                    (None, None) => "?".into(),
                };
                let mut s = format!("attach {what} to {target} as link `{link}`");
                if *before {
                    s.push_str(" with BPF_F_BEFORE");
                }
                if *holder == Holder::Child {
                    s.push_str(", held by a child process");
                }
                if let Some(e) = expect_error {
                    s.push_str(&format!(", expecting {e}"));
                }
                s
            }
            Step::AttachMany { fixture, device, count, .. } => format!("attach {count} copies of {fixture} to {device}"),
            Step::Inject { device, report, until_ms, .. } => match until_ms {
                Some(ms) => format!("inject [{report}] into {device} until it arrives as expected (<= {ms} ms)"),
                None => format!("inject [{report}] into {device}"),
            },
            Step::Pin { link } => format!("pin link `{link}` in bpffs"),
            Step::Release { link, how, link_after } => {
                format!("release link `{link}` ({}), expect it {}", snake(how), snake(link_after))
            }
            Step::Destroy { device } => format!("destroy uhid device {device}"),
            Step::CheckDevice { device, .. } => format!("check device {device}"),
            Step::GetFeature { device, report_id, .. } => format!("HIDIOCGFEATURE report {report_id} on {device}"),
            Step::WriteOutput { device, report, .. } => format!("write output report [{report}] to {device}'s hidraw"),
            Step::SetLed { device, led, value, .. } => format!("set {led}={value} on {device}'s evdev node"),
            Step::FloodRelease { device, link, after, .. } => {
                format!("close link `{link}` while flooding {device} ({after}+ reports after close)")
            }
            Step::Sleep { ms } => format!("sleep {ms} ms"),
            Step::Sysctl { name, value } => format!("sysctl {name}={value}"),
            Step::Lkdtm { crash, .. } => format!("provoke {crash} through lkdtm"),
            Step::Cycle { fixture, device, count, fresh_objects, .. } => format!(
                "attach/release {fixture} on {device} {count} times ({})",
                if *fresh_objects { "a new object each time" } else { "re-attaching one loaded map" }
            ),
        }
    }

    /// Links this step creates.
    fn links_created(&self) -> Vec<String> {
        match self {
            Step::Attach { link, expect_error: None, .. } => vec![link.clone()],
            Step::AttachMany { count, link_prefix, .. } => (1..=*count).map(|i| format!("{link_prefix}{i}")).collect(),
            _ => vec![],
        }
    }
}

fn snake(v: &impl fmt::Debug) -> String {
    let mut out = String::new();
    for (i, c) in format!("{v:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// What a link is as the scenario proceeds (host-side validation only).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct LinkInfo {
    holder: Holder,
    fd_open: bool,
    pinned: bool,
}

impl Scenario {
    /// Fixtures the scenario loads, each once.
    pub fn fixtures(&self) -> BTreeSet<&str> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Attach { fixture: Some(f), .. } => Some(f.as_str()),
                Step::AttachMany { fixture, .. } | Step::Cycle { fixture, .. } => Some(fixture.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn is_selftest(&self) -> bool {
        !self.expect_failure.is_empty() || self.expect_verdict.is_some() || !self.expect_console.is_empty()
    }

    /// Cross-field checks serde cannot express. `fixture_exists` answers
    /// whether `bpf-fixtures/<name>.bpf.c` exists. The error names the step
    /// and field so the file can be fixed without guessing.
    pub fn validate(&self, fixture_exists: &dyn Fn(&str) -> bool) -> Result<(), String> {
        if self.steps.is_empty() {
            return Err("has no [[step]]; add at least one".into());
        }
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
        let mut devices = BTreeSet::new();
        for d in &self.devices {
            if devices::model(&d.model).is_none() {
                return Err(format!(
                    "device `{}`: unknown model `{}` (known: {})",
                    d.id,
                    d.model,
                    devices::model_names()
                ));
            }
            if !devices.insert(d.id.clone()) {
                return Err(format!("device id `{}` is declared twice", d.id));
            }
        }
        let mut links: BTreeMap<String, LinkInfo> = BTreeMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("step {} ({})", i + 1, step.op());
            let known = |d: &BTreeSet<String>| d.iter().cloned().collect::<Vec<_>>().join(", ");
            let need_device = |d: &str| -> Result<(), String> {
                if devices.contains(d) {
                    Ok(())
                } else {
                    Err(format!("{at}: field `device`: unknown or destroyed device `{d}` (live: {})", known(&devices)))
                }
            };
            let need_fixture = |f: &str| -> Result<(), String> {
                if fixture_exists(f) {
                    Ok(())
                } else {
                    Err(format!("{at}: field `fixture`: no bpf-fixtures/{f}.bpf.c"))
                }
            };
            match step {
                Step::Attach { link, fixture, reuse, device, hid_id, holder, expect_error, .. } => {
                    match (device, hid_id) {
                        (Some(d), _) => need_device(d)?,
                        (None, Some(_)) => {}
                        (None, None) => return Err(format!("{at}: give `device` or `hid_id`")),
                    }
                    match (fixture, reuse) {
                        (Some(f), None) => need_fixture(f)?,
                        (None, Some(r)) => match links.get(r) {
                            Some(l) if l.holder == Holder::Agent => {}
                            _ => return Err(format!("{at}: field `reuse`: no agent-held link named `{r}`")),
                        },
                        _ => return Err(format!("{at}: give exactly one of `fixture` and `reuse`")),
                    }
                    if *holder == Holder::Child && reuse.is_some() {
                        return Err(format!("{at}: a child cannot reuse the agent's object"));
                    }
                    if expect_error.is_none() && links.contains_key(link) {
                        return Err(format!("{at}: field `link`: link `{link}` already exists"));
                    }
                }
                Step::AttachMany { fixture, device, count, .. } | Step::Cycle { fixture, device, count, .. } => {
                    need_device(device)?;
                    need_fixture(fixture)?;
                    if *count == 0 {
                        return Err(format!("{at}: field `count`: must be at least 1"));
                    }
                }
                Step::Inject { device, report, .. } => {
                    need_device(device)?;
                    if report.0.is_empty() || report.0.len() > 4096 {
                        return Err(format!("{at}: field `report`: must hold 1 to 4096 bytes"));
                    }
                }
                Step::Pin { link } => {
                    let l = links.get_mut(link).ok_or_else(|| format!("{at}: field `link`: no link named `{link}`"))?;
                    if l.holder != Holder::Agent || !l.fd_open {
                        return Err(format!("{at}: only a link whose fd the agent holds can be pinned"));
                    }
                    l.pinned = true;
                }
                Step::Release { link, how, .. } => {
                    let l = links.get_mut(link).ok_or_else(|| format!("{at}: field `link`: no link named `{link}`"))?;
                    let ok = match how {
                        ReleaseHow::Close | ReleaseHow::CloseButLeakDup => l.holder == Holder::Agent && l.fd_open,
                        ReleaseHow::Unpin => l.pinned,
                        ReleaseHow::Detach => l.holder == Holder::Agent && (l.fd_open || l.pinned),
                        ReleaseHow::HolderExit | ReleaseHow::HolderKill => l.holder == Holder::Child && l.fd_open,
                    };
                    if !ok {
                        return Err(format!(
                            "{at}: field `how`: `{}` does not apply to link `{link}` now (held by {:?}, fd {}, {})",
                            snake(how),
                            l.holder,
                            if l.fd_open { "open" } else { "closed" },
                            if l.pinned { "pinned" } else { "not pinned" }
                        ));
                    }
                    match how {
                        ReleaseHow::Unpin => l.pinned = false,
                        ReleaseHow::Detach => {}
                        _ => l.fd_open = false,
                    }
                }
                Step::Destroy { device } => {
                    need_device(device)?;
                    devices.remove(device);
                }
                Step::CheckDevice { device, .. } | Step::GetFeature { device, .. } | Step::WriteOutput { device, .. } => {
                    need_device(device)?
                }
                Step::SetLed { device, led, .. } => {
                    need_device(device)?;
                    crate::event::led_code(led).map_err(|e| format!("{at}: field `led`: {e}"))?;
                }
                Step::FloodRelease { device, link, report, seq_bytes, rewritten, original, after } => {
                    need_device(device)?;
                    let l = links.get_mut(link).ok_or_else(|| format!("{at}: field `link`: no link named `{link}`"))?;
                    if l.holder != Holder::Agent || !l.fd_open || l.pinned {
                        return Err(format!("{at}: field `link`: needs an unpinned link whose only fd the agent holds"));
                    }
                    l.fd_open = false;
                    if seq_bytes.iter().any(|b| *b >= report.0.len()) || seq_bytes[0] == seq_bytes[1] {
                        return Err(format!("{at}: field `seq_bytes`: two distinct offsets inside the report"));
                    }
                    if rewritten.0.len() != report.0.len() || original.0.len() != report.0.len() {
                        return Err(format!("{at}: `rewritten` and `original` must be as long as `report`"));
                    }
                    if *after == 0 {
                        return Err(format!("{at}: field `after`: must be at least 1"));
                    }
                }
                Step::Sleep { .. } | Step::Lkdtm { .. } => {}
                Step::Sysctl { name, .. } => {
                    if name.is_empty() || name.contains('/') || name.contains("..") {
                        return Err(format!("{at}: field `name`: write the sysctl with dots, e.g. kernel.hung_task_timeout_secs"));
                    }
                }
            }
            let holder = match step {
                Step::Attach { holder, .. } => *holder,
                _ => Holder::Agent,
            };
            for l in step.links_created() {
                links.insert(l, LinkInfo { holder, fd_open: true, pinned: false });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
"#;

    fn parse(s: &str) -> Result<Scenario, String> {
        toml::from_str::<Scenario>(s).map_err(|e| e.to_string())
    }

    #[test]
    fn good_scenario_parses_validates_and_round_trips_as_json() {
        let s = parse(GOOD).unwrap();
        s.validate(&|f| f == "f").unwrap();
        let json = serde_json::to_string(&s).unwrap();
        let back: Scenario = serde_json::from_str(&json).unwrap();
        assert_eq!(back.steps.len(), 3);
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
        let e = s.validate(&|_| false).unwrap_err();
        assert_eq!(e, "step 1 (attach): field `fixture`: no bpf-fixtures/f.bpf.c");
        let s = parse(&GOOD.replace("device = \"mouse\"\nreport", "device = \"mose\"\nreport")).unwrap();
        let e = s.validate(&|_| true).unwrap_err();
        assert!(e.starts_with("step 2 (inject): field `device`: unknown or destroyed device `mose`"), "{e}");
        let s = parse(&GOOD.replace("link = \"l\"\nhow", "link = \"m\"\nhow")).unwrap();
        assert!(s.validate(&|_| true).unwrap_err().contains("no link named `m`"));
        let s = parse(&GOOD.replace("boot_mouse", "toaster")).unwrap();
        assert!(s.validate(&|_| true).unwrap_err().contains("unknown model `toaster`"));
        let led = "[[step]]\nop = \"set_led\"\ndevice = \"mouse\"\nled = \"LED_CAPSLOK\"\nvalue = 1\ndevice_receives = \"none\"\n";
        let s = parse(&format!("{GOOD}{led}")).unwrap();
        let e = s.validate(&|_| true).unwrap_err();
        assert!(e.starts_with("step 4 (set_led): field `led`: `LED_CAPSLOK` is not a known LED code"), "{e}");
    }
}
