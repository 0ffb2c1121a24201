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
use crate::steps::Step;
use crate::validate::{Resources, Validator};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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
/// [`DeviceDef`](crate::DeviceDef); file paths are relative to the scenario file.
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
        let mut v = Validator::new(res, self.is_selftest());
        for d in &self.devices {
            v.declare_device(&d.id)?;
        }
        for (i, step) in self.steps.iter().enumerate() {
            v.step(i + 1, &format!("step {} ({})", i + 1, step.op()), step)?;
        }
        v.finish()
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
    use crate::devices::{self, DeviceDef};
    use crate::steps::Hook;
    use std::collections::BTreeMap;

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
