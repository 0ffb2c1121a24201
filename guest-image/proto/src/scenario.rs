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
//! ```
use crate::{devices, EvdevEvent, HexBytes};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeSet;
use std::fmt;

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The file stem; the loader fills it in (files do not repeat it).
    #[serde(default)]
    pub name: String,
    /// One line: what the scenario proves.
    pub summary: String,
    #[serde(rename = "device")]
    pub devices: Vec<DeviceSpec>,
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
    /// Harness self-tests only (tests/selftests/): the checks that must
    /// fail. A self-test passes when exactly these fail, which proves the
    /// harness can see that kind of breakage. The agent keeps going after a
    /// failed step so every expected failure can show up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_failure: Vec<ExpectedFailure>,
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
        fixture: String,
        device: String,
        /// Struct_ops map to attach when the object has more than one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        map: Option<String>,
    },
    /// Write one input report through uhid and compare what hidraw and
    /// evdev deliver with the expectations.
    Inject {
        device: String,
        report: HexBytes,
        /// Bytes hidraw must deliver, or "none" when the report must be dropped.
        hidraw: ReportExpect,
        /// Exact set of EV_KEY/EV_REL/EV_ABS events of the report's frame.
        evdev: Vec<EvdevEvent>,
    },
    /// Release a link.
    Release { link: String, how: ReleaseHow },
}

/// Ways a bpf_link's last reference goes away.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseHow {
    /// Close the last fd of the link (drop the libbpf-rs `Link`).
    Close,
    /// Harness self-tests only: dup() the link fd and keep the copy (the
    /// leaked reference a buggy loader would hold), then close the `Link`.
    /// The program stays attached; the release checks must notice.
    CloseButLeakDup,
}

/// What hidraw must show for one injected report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportExpect {
    Bytes(HexBytes),
    /// The report must not reach hidraw at all (a program dropped it).
    Nothing,
}

impl fmt::Display for ReportExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportExpect::Bytes(b) => write!(f, "{b}"),
            ReportExpect::Nothing => f.write_str("none"),
        }
    }
}

impl Serialize for ReportExpect {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ReportExpect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim() == "none" {
            return Ok(ReportExpect::Nothing);
        }
        HexBytes::parse(&s).map(ReportExpect::Bytes).map_err(serde::de::Error::custom)
    }
}

impl Step {
    pub fn op(&self) -> &'static str {
        match self {
            Step::Attach { .. } => "attach",
            Step::Inject { .. } => "inject",
            Step::Release { .. } => "release",
        }
    }

    /// One line for step logs.
    pub fn describe(&self) -> String {
        match self {
            Step::Attach { link, fixture, device, .. } => {
                format!("attach fixture {fixture} to {device} as link `{link}`")
            }
            Step::Inject { device, report, .. } => format!("inject [{report}] into {device}"),
            Step::Release { link, how } => format!("release link `{link}` ({how:?})").to_lowercase(),
        }
    }
}

impl Scenario {
    /// Fixtures the scenario loads, each once.
    pub fn fixtures(&self) -> BTreeSet<&str> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Attach { fixture, .. } => Some(fixture.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Cross-field checks serde cannot express. `fixture_exists` answers
    /// whether `bpf-fixtures/<name>.bpf.c` exists. The error names the step
    /// and field so the file can be fixed without guessing.
    pub fn is_selftest(&self) -> bool {
        !self.expect_failure.is_empty()
    }

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
            if !devices.insert(d.id.as_str()) {
                return Err(format!("device id `{}` is declared twice", d.id));
            }
        }
        let known_devices = || devices.iter().copied().collect::<Vec<_>>().join(", ");
        let mut live_links = BTreeSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("step {} ({})", i + 1, step.op());
            let need_device = |d: &str| {
                if devices.contains(d) {
                    Ok(())
                } else {
                    Err(format!("{at}: field `device`: unknown device `{d}` (declared: {})", known_devices()))
                }
            };
            match step {
                Step::Attach { link, fixture, device, .. } => {
                    need_device(device)?;
                    if !fixture_exists(fixture) {
                        return Err(format!(
                            "{at}: field `fixture`: no bpf-fixtures/{fixture}.bpf.c"
                        ));
                    }
                    if !live_links.insert(link.clone()) {
                        return Err(format!("{at}: field `link`: link `{link}` is already attached"));
                    }
                }
                Step::Inject { device, report, .. } => {
                    need_device(device)?;
                    if report.0.is_empty() || report.0.len() > 4096 {
                        return Err(format!("{at}: field `report`: must hold 1 to 4096 bytes"));
                    }
                }
                Step::Release { link, .. } => {
                    if !live_links.remove(link) {
                        return Err(format!("{at}: field `link`: no attached link named `{link}`"));
                    }
                }
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
        assert!(e.starts_with("step 2 (inject): field `device`: unknown device `mose`"), "{e}");
        let s = parse(&GOOD.replace("link = \"l\"\nhow", "link = \"m\"\nhow")).unwrap();
        assert!(s.validate(&|_| true).unwrap_err().contains("no attached link named `m`"));
        let s = parse(&GOOD.replace("boot_mouse", "toaster")).unwrap();
        assert!(s.validate(&|_| true).unwrap_err().contains("unknown model `toaster`"));
    }
}
