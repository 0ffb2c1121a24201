//! `hidvm inspect PROG.bpf.c|PROG.bpf.o`: what a program author wants to
//! know before writing a scenario. The program's HID_BPF_CONFIG entries
//! (read from its object, a `.bpf.c` compiled as scenarios compile it);
//! given a recording or a scenario, which of its devices the entries match
//! by bus, vendor and product (the group is the kernel's, found by parsing
//! the descriptor: the VM says); and, in a VM per matching device, what the
//! program's `probe` answered, with what it printed.
//!
//! The probe runs through the scenario machinery: a generated scenario
//! creates the device and attaches the program to it as udev-hid-bpf does
//! (match, load, probe, attach), and the attach step's report is the answer.
use crate::base::error::{Error, Result};
use crate::catalogue::fixtures::{self, FixtureRef};
use crate::catalogue::recording::Recording;
use crate::catalogue::scenarios;
use crate::kernel::spec::Target;
use crate::run::one_test;
use crate::run::suite::Suite;
use hidvm_proto::{DeviceDef, DeviceMatch, StepReport};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What `hidvm inspect` was asked.
#[derive(Clone, Debug, Default)]
pub struct InspectOptions {
    pub program: PathBuf,
    /// A hid-recorder file whose devices to match.
    pub recording: Option<PathBuf>,
    /// A scenario whose devices (and `bpf_include`) to use.
    pub scenario: Option<PathBuf>,
    /// The cell (default: the run's first) of the run's first kernel.
    pub cell: Option<String>,
}

/// The devices to match against: a label and a definition each.
type Devices = Vec<(String, DeviceDef)>;

/// Inspect the program; true if every matching device's probe accepted it.
pub fn run(suite: &Suite, opts: &InspectOptions) -> Result<bool> {
    let program = check_program(&opts.program)?;
    let (devices, bpf_include) = devices(suite, opts)?;
    let target = target(suite, opts.cell.as_deref())?;
    let (object, config) = object(suite, &target, &program, &bpf_include)?;
    println!("{}: {}", program.display(), object_line(&program, &object, &target));
    print_entries(&config);
    let Some(devices) = devices else { return Ok(true) };
    let matching = print_matches(&config, &devices);
    if matching.is_empty() {
        println!("no device matches: no probe to run");
        return Ok(false);
    }
    let mut all_accepted = true;
    for (label, def) in matching {
        all_accepted &= probe_in_vm(suite, &target, &program, &bpf_include, &label, &def)?;
    }
    Ok(all_accepted)
}

/// The program, which must exist and be a `.c` or `.o` file.
fn check_program(p: &Path) -> Result<PathBuf> {
    let bad = |why: &str| Err(Error::Other(format!("{}: {why}", p.display())));
    if !p.exists() {
        return bad("no such file");
    }
    let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
    if !(name.ends_with(".c") || name.ends_with(".o")) || !p.is_file() {
        return bad("give a HID-BPF program: a .bpf.c source or a compiled .bpf.o");
    }
    p.canonicalize().map_err(Error::io(format!("resolving {}", p.display())))
}

/// The devices of the recording or scenario (None: neither was given),
/// and the scenario's header directories.
fn devices(suite: &Suite, opts: &InspectOptions) -> Result<(Option<Devices>, Vec<PathBuf>)> {
    match (&opts.recording, &opts.scenario) {
        (Some(_), Some(_)) => Err(Error::Other("give --recording or --scenario, not both".into())),
        (Some(rec), None) => Ok((Some(recording_devices(rec)?), vec![])),
        (None, Some(s)) => {
            let entry = suite.scenario(&s.display().to_string())?;
            let kernel = suite.kernels.first().ok_or_else(|| Error::Other("no kernel selected".into()))?;
            let loaded = suite.load(&entry, &kernel.name)?;
            let devices = loaded.devices.into_iter().map(|(id, d)| (format!("`{id}`"), d)).collect();
            Ok((Some(devices), loaded.bpf_include))
        }
        (None, None) => Ok((None, vec![])),
    }
}

fn recording_devices(path: &Path) -> Result<Devices> {
    let bad = |why: String| Error::Other(format!("{}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let recording = Recording::parse(&text).map_err(bad)?;
    if recording.devices.is_empty() {
        return Err(bad("a recording without devices (no `R:` line)".into()));
    }
    recording
        .devices
        .iter()
        .map(|d| Ok((format!("device {}", d.index), d.def().map_err(|e| bad(format!("device {}: {e}", d.index)))?)))
        .collect()
}

/// The run's first kernel with the cell asked for (or the run's first).
fn target(suite: &Suite, cell: Option<&str>) -> Result<Target> {
    let kernel = suite.kernels.first().ok_or_else(|| Error::Other("no kernel selected".into()))?;
    let cell = match cell {
        Some(c) => crate::kernel::cell::find(&suite.all_cells, c)?.name.clone(),
        None => suite.cells.first().ok_or_else(|| Error::Other("no cell selected".into()))?.name.clone(),
    };
    Ok(Target::new(&kernel.name, &cell))
}

/// The object (compiled for `target` from a source) and its HID_BPF_CONFIG
/// entries; a clear error for anything that is not a HID-BPF program.
fn object(
    suite: &Suite,
    target: &Target,
    program: &Path,
    bpf_include: &[PathBuf],
) -> Result<(PathBuf, Vec<DeviceMatch>)> {
    let is_source = program.extension().is_some_and(|x| x == "c");
    let object = if is_source {
        let kernel = suite.kernel(target)?;
        let source = suite.source(&target.kernel)?;
        let ctx = fixtures::CompileContext {
            repo: &suite.repo,
            cache: &suite.cache,
            kernel: &kernel,
            kernel_tree: &source.root,
            bpf_include,
        };
        let refs = BTreeMap::from([(program.display().to_string(), FixtureRef::Source(program.to_path_buf()))]);
        fixtures::compile(&ctx, &refs)?.into_values().next().expect("one program compiled").object
    } else {
        program.to_path_buf()
    };
    let bytes = std::fs::read(&object).map_err(Error::io(format!("reading {}", object.display())))?;
    let bad = |why: &str| Error::Other(format!("{}: {why}", program.display()));
    check_object(&bytes).map_err(|why| bad(&why))?;
    let bpftool = crate::base::tools::require(&crate::base::tools::BPFTOOL)?;
    let config = fixtures::device_table(&bpftool, &object).map_err(|why| bad(&why))?;
    if config.is_empty() {
        return Err(bad("its HID_BPF_CONFIG table is empty"));
    }
    Ok((object, config))
}

/// An object hidvm can inspect: an ELF file for the BPF machine, with
/// hid_bpf_ops callbacks and a `.hid_bpf_config` section.
pub fn check_object(bytes: &[u8]) -> std::result::Result<(), String> {
    /// e_machine of BPF objects.
    const EM_BPF: u16 = 247;
    let machine = bytes.get(18..20).map(|m| u16::from_le_bytes([m[0], m[1]]));
    if !bytes.starts_with(b"\x7fELF") || machine != Some(EM_BPF) {
        return Err("not a BPF object (not an ELF file for the BPF machine)".into());
    }
    if fixtures::hooks_in_object(bytes).is_empty() {
        return Err("not a HID-BPF object: it implements no hid_bpf_ops callback (no HID_BPF_OPS?)".into());
    }
    let section = b".hid_bpf_config\0";
    if !bytes.windows(section.len()).any(|w| w == section) {
        return Err("no HID_BPF_CONFIG section (.hid_bpf_config): udev-hid-bpf would never load it".into());
    }
    Ok(())
}

fn object_line(program: &Path, object: &Path, target: &Target) -> String {
    if object == program {
        "a compiled object".into()
    } else {
        format!("compiled for {target} as {}", object.display())
    }
}

/// Each entry as the program spells it, and as a modalias.
fn print_entries(config: &[DeviceMatch]) {
    println!("HID_BPF_CONFIG: {} entr{}", config.len(), if config.len() == 1 { "y" } else { "ies" });
    for (i, m) in config.iter().enumerate() {
        println!(
            "  {}: HID_DEVICE({}, {}, {:#06x}, {:#06x})  {m}",
            i + 1,
            bus_name(m.bus),
            group_name(m.group),
            m.vendor,
            m.product
        );
    }
}

/// The devices whose bus, vendor and product an entry matches, said for each.
fn print_matches(config: &[DeviceMatch], devices: &Devices) -> Devices {
    println!("devices (the group is the kernel's, from parsing the descriptor: checked in the VM):");
    let mut out = Vec::new();
    for (label, d) in devices {
        let which: Vec<String> = config
            .iter()
            .enumerate()
            .filter(|(_, m)| m.matches_ids(d.bus, d.vendor, d.product))
            .map(|(i, _)| (i + 1).to_string())
            .collect();
        let ids = format!("{:04X}:{:04X}:{:04X}", d.bus, d.vendor, d.product);
        if which.is_empty() {
            println!("  {label} \"{}\" ({ids}): matches no entry", d.name);
        } else {
            println!("  {label} \"{}\" ({ids}): matches entry {} by bus, vendor and product", d.name, which.join(", "));
            out.push((label.clone(), d.clone()));
        }
    }
    out
}

/// `BUS_USB`, or the number.
pub fn bus_name(bus: u16) -> String {
    const BUSES: &[(u16, &str)] = &[
        (0, "BUS_ANY"),
        (0x01, "BUS_PCI"),
        (0x03, "BUS_USB"),
        (0x05, "BUS_BLUETOOTH"),
        (0x06, "BUS_VIRTUAL"),
        (0x18, "BUS_I2C"),
        (0x19, "BUS_HOST"),
        (0x1c, "BUS_SPI"),
        (0x1f, "BUS_INTEL_ISHTP"),
        (0x20, "BUS_AMD_SFH"),
    ];
    BUSES.iter().find(|(v, _)| *v == bus).map(|(_, n)| n.to_string()).unwrap_or_else(|| format!("{bus:#06x}"))
}

/// `HID_GROUP_GENERIC`, or the number.
pub fn group_name(group: u16) -> String {
    const GROUPS: &[(u16, &str)] = &[
        (0, "HID_GROUP_ANY"),
        (0x0001, "HID_GROUP_GENERIC"),
        (0x0002, "HID_GROUP_MULTITOUCH"),
        (0x0003, "HID_GROUP_SENSOR_HUB"),
        (0x0004, "HID_GROUP_MULTITOUCH_WIN_8"),
        (0x0100, "HID_GROUP_RMI"),
        (0x0101, "HID_GROUP_WACOM"),
        (0x0102, "HID_GROUP_LOGITECH_DJ_DEVICE"),
        (0x0103, "HID_GROUP_STEAM"),
        (0x0104, "HID_GROUP_LOGITECH_27MHZ_DEVICE"),
        (0x0105, "HID_GROUP_VIVALDI"),
    ];
    GROUPS.iter().find(|(v, _)| *v == group).map(|(_, n)| n.to_string()).unwrap_or_else(|| format!("{group:#06x}"))
}

/// Create the device in a VM of `target`, attach the program as
/// udev-hid-bpf does, and say what happened; true if the probe accepted.
fn probe_in_vm(
    suite: &Suite,
    target: &Target,
    program: &Path,
    bpf_include: &[PathBuf],
    label: &str,
    def: &DeviceDef,
) -> Result<bool> {
    let dir = tempfile::Builder::new().prefix("hidvm-inspect-").tempdir().map_err(Error::io("temporary directory"))?;
    let file = dir.path().join("inspect.toml");
    std::fs::write(&file, probe_scenario(program, bpf_include, def))
        .map_err(Error::io(format!("writing {}", file.display())))?;
    let entry = scenarios::entries_for_paths(&[file], &suite.defined_cells)?.remove(0);
    let report = one_test::run(suite, target, &entry)?;
    println!("probe on {target} (Linux {}), {label} \"{}\":", report.kernel_version, def.name);
    // Step 0 created the device; step 1 is the attach.
    let Some(step) = report.guest.steps.iter().find(|s| s.index == 1) else {
        println!("  no answer from the guest: {}", report.render().lines().next().unwrap_or_default());
        return Ok(false);
    };
    let accepted = print_attach(step);
    let printed: Vec<&String> =
        report.guest.trace.iter().flatten().filter(|l| l.contains("bpf_trace_printk")).collect();
    for l in &printed {
        println!("  bpf_printk: {}", l.split("bpf_trace_printk: ").nth(1).unwrap_or(l));
    }
    if printed.is_empty() {
        println!("  bpf_printk: nothing");
    }
    Ok(accepted)
}

/// The attach step's story: the match, the probe's answer, the attach.
fn print_attach(step: &StepReport) -> bool {
    for n in &step.notes {
        println!("  note: {n}");
    }
    for c in step.checks.iter().filter(|c| !c.ok()) {
        println!("  {}: {}", c.what, c.comparison());
    }
    let probe_failed = step.checks.iter().any(|c| !c.ok() && c.what.starts_with("probe"));
    let probed = step.notes.iter().any(|n| n.contains("probe accepted"));
    let answer = match (step.ok(), probe_failed, probed) {
        (_, true, _) => "the probe rejected the device (not attached)",
        (true, _, true) => "the probe answered 0: accepted, and the program attached",
        (true, _, false) => "the program has no probe (accepted without one, as udev-hid-bpf does) and attached",
        (false, false, _) => "the program did not get to its probe or did not attach (see above)",
    };
    println!("  => {answer}");
    step.ok()
}

/// A scenario that creates `def` and attaches the program to it.
fn probe_scenario(program: &Path, bpf_include: &[PathBuf], def: &DeviceDef) -> String {
    let mut device = toml::map::Map::new();
    device.insert("id".into(), "device".into());
    device.insert("name".into(), def.name.clone().into());
    device.insert("bus".into(), i64::from(def.bus).into());
    device.insert("vendor".into(), i64::from(def.vendor).into());
    device.insert("product".into(), i64::from(def.product).into());
    device.insert("descriptor".into(), def.descriptor.to_string().into());
    let features: Vec<toml::Value> = def
        .feature_reports
        .iter()
        .map(|f| toml::toml! { id = (i64::from(f.id)) bytes = (f.bytes.to_string()) }.into())
        .collect();
    if !features.is_empty() {
        device.insert("feature".into(), features.into());
    }
    let step = toml::toml! {
        op = "attach"
        link = "inspect"
        fixture = (program.display().to_string())
        device = "device"
    };
    let includes: Vec<toml::Value> = bpf_include.iter().map(|p| p.display().to_string().into()).collect();
    let doc = toml::toml! {
        summary = (format!("hidvm inspect: {} on {}", program.display(), def.name))
        bpf_include = includes
        device = [device]
        step = [step]
    };
    toml::to_string(&doc).expect("a scenario serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_programs_are_one_line_each() {
        assert!(check_program(Path::new("/nonexistent/x.bpf.c")).unwrap_err().to_string().ends_with("no such file"));
        let d = tempfile::tempdir().unwrap();
        let txt = d.path().join("notes.txt");
        std::fs::write(&txt, "x").unwrap();
        assert!(check_program(&txt).unwrap_err().to_string().contains("give a HID-BPF program"));
        assert!(check_object(b"#!/bin/sh").unwrap_err().contains("not a BPF object"));
        let mut elf = b"\x7fELF".to_vec();
        elf.resize(18, 0);
        elf.extend(247u16.to_le_bytes());
        assert!(check_object(&elf).unwrap_err().contains("not a HID-BPF object"));
        elf.extend(b"\0struct_ops/hid_device_event\0");
        assert!(check_object(&elf).unwrap_err().contains("no HID_BPF_CONFIG section"));
        elf.extend(b".hid_bpf_config\0");
        assert_eq!(check_object(&elf), Ok(()));
    }

    #[test]
    fn buses_and_groups_are_named_as_the_kernel_names_them() {
        assert_eq!((bus_name(3), group_name(1)), ("BUS_USB".to_string(), "HID_GROUP_GENERIC".to_string()));
        assert_eq!((bus_name(0), group_name(0x0105)), ("BUS_ANY".to_string(), "HID_GROUP_VIVALDI".to_string()));
        assert_eq!(bus_name(0x42), "0x0042");
    }

    #[test]
    fn the_probe_scenario_loads() {
        let repo = crate::base::layout::Repo::locate();
        let program = repo.root.join("examples/acme-wheel-mouse/Acme__Wheel-Mouse.bpf.c");
        let def = hidvm_proto::devices::model("boot_mouse").unwrap().def();
        let def = DeviceDef { bus: 3, vendor: 0x1234, product: 0x5678, ..def };
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("inspect.toml");
        std::fs::write(&file, probe_scenario(&program, &[], &def)).unwrap();
        let cells = crate::kernel::cell::load(&repo.cells_file()).unwrap();
        let entry = scenarios::entries_for_paths(&[file], &cells).unwrap().remove(0);
        let loaded = scenarios::load(&repo, &entry, scenarios::LoadOptions::default()).unwrap();
        assert_eq!(loaded.devices["device"].vendor, 0x1234);
        assert_eq!(loaded.fixtures.len(), 1);
    }
}
