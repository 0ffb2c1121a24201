//! The scenario catalogue: `tests/scenarios/*.toml` (what hidvm checks on
//! every kernel cell) and `tests/selftests/*.toml` (scenarios that must fail
//! in a stated way, proving the harness sees breakage).
//!
//! Nothing silently disappears: an unreadable directory is an error, and a
//! file whose `cells = [...]` names an unknown cell still lists its tests
//! (on every cell), which then fail with that message.
use crate::base::error::{toml_error, Error, Result};
use crate::base::layout::Repo;
use crate::catalogue::fixtures::FixtureRef;
use crate::catalogue::recording::Recording;
use crate::kernel::cell::KernelCell;
use hidvm_proto::devices::check_descriptor;
use hidvm_proto::scenario::DeviceSpec;
use hidvm_proto::{devices, DeviceDef, Frame, HexBytes, ReplayData, Scenario, Step};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Scenario,
    /// A scenario of one of the kernel tree's own programs
    /// (drivers/hid/bpf/progs/), in tests/kernel-progs/.
    Program,
    SelfTest,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub path: PathBuf,
    pub kind: Kind,
    /// The file's `cells = [...]` restriction (empty: every cell), read
    /// without full parsing so listing stays cheap.
    pub only_cells: Vec<String>,
    /// A problem found while listing (an unknown cell): the entry's tests
    /// fail with it instead of vanishing.
    pub problem: Option<String>,
    /// The file's `min_kernel`: older kernels list the test as skipped.
    pub min_kernel: Option<(u32, u32)>,
    /// One of the repository's own (`tests/`): only those can be known
    /// kernel bugs; a user's scenario with the same name never is.
    pub from_catalogue: bool,
}

impl Entry {
    pub fn runs_on(&self, cell: &str) -> bool {
        self.only_cells.is_empty() || self.only_cells.iter().any(|c| c == cell)
    }

    /// Why this test does not run on `kernel` (listed, reported as
    /// skipped, never as passed): a kernel older than `min_kernel`.
    pub fn skip_reason(&self, kernel: &crate::kernel::spec::KernelSpec) -> Option<String> {
        let min = self.min_kernel?;
        match kernel.series() {
            Some(series) if series >= min => None,
            Some((a, b)) => {
                Some(format!("needs Linux >= {}.{} (min_kernel); kernel {} is {a}.{b}", min.0, min.1, kernel.name))
            }
            None => Some(format!(
                "needs Linux >= {}.{} (min_kernel); the version of kernel {} is unknown",
                min.0, min.1, kernel.name
            )),
        }
    }

    /// nextest-style test name on a target (`6.12-gcc`): `6.12-gcc::mouse_…`,
    /// `6.12-gcc::progs::IOGEAR__…`, `selftest::6.12-gcc::…`.
    pub fn test_name(&self, target: &str) -> String {
        match self.kind {
            Kind::Scenario => format!("{target}::{}", self.name),
            Kind::Program => format!("{target}::progs::{}", self.name),
            Kind::SelfTest => format!("selftest::{target}::{}", self.name),
        }
    }

    /// The row label in matrices: `progs::…` and `selftest::…` say what they are.
    pub fn row(&self) -> String {
        match self.kind {
            Kind::Scenario => self.name.clone(),
            Kind::Program => format!("progs::{}", self.name),
            Kind::SelfTest => format!("selftest::{}", self.name),
        }
    }
}

/// The fields listing needs, read without full parsing.
#[derive(serde::Deserialize)]
struct Header {
    #[serde(default)]
    cells: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
    #[serde(default)]
    expect_verdict: Option<toml::Value>,
}

/// A scenario ready to run: parsed, validated, everything it names resolved.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub scenario: Scenario,
    pub devices: BTreeMap<String, DeviceDef>,
    /// Each `fixture = "…"` the scenario names, resolved.
    pub fixtures: BTreeMap<String, FixtureRef>,
    /// Replay steps (1-based index) and their files.
    pub replays: BTreeMap<usize, ResolvedReplay>,
    /// The scenario's `bpf_include` directories.
    pub bpf_include: Vec<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct ResolvedReplay {
    pub data: ReplayData,
    /// Where `--bless` writes what it observed.
    pub evdev_file: Option<PathBuf>,
    pub hidraw_file: Option<PathBuf>,
}

/// What loading needs beyond the file.
#[derive(Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// The kernel tree under test (for `kernel:` programs).
    pub kernel_tree: Option<&'a Path>,
    /// `--bless`: replay expectation files may be missing (they are written).
    pub bless: bool,
}

/// Every scenario and self-test file of the repository, sorted.
pub fn catalogue(repo: &Repo, cells: &[KernelCell]) -> Result<Vec<Entry>> {
    let mut out = entries_in(&repo.scenarios_dir(), Kind::Scenario, cells)?;
    out.extend(entries_in(&repo.kernel_progs_dir(), Kind::Program, cells)?);
    out.extend(entries_in(&repo.selftests_dir(), Kind::SelfTest, cells)?);
    for e in &mut out {
        e.from_catalogue = true;
    }
    Ok(out)
}

/// The kernel tree's own programs (`drivers/hid/bpf/progs/*.bpf.c`) that
/// no scenario of `entries` loads: each program must have one.
pub fn uncovered_kernel_programs(tree: &Path, entries: &[Entry]) -> Result<Vec<String>> {
    let dir = tree.join(crate::catalogue::fixtures::KERNEL_PROGS);
    let rd = std::fs::read_dir(&dir).map_err(Error::io(format!("reading {}", dir.display())))?;
    let mut programs: Vec<String> =
        rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".bpf.c")).collect();
    programs.sort();
    let texts: Vec<String> = entries.iter().filter_map(|e| std::fs::read_to_string(&e.path).ok()).collect();
    Ok(programs
        .into_iter()
        .filter(|p| {
            let reference = format!("kernel:{}/{p}\"", crate::catalogue::fixtures::KERNEL_PROGS);
            !texts.iter().any(|t| t.contains(&reference))
        })
        .collect())
}

/// The `*.toml` files of one directory as entries of `kind`.
pub fn entries_in(dir: &Path, kind: Kind, cells: &[KernelCell]) -> Result<Vec<Entry>> {
    let rd = std::fs::read_dir(dir).map_err(Error::io(format!("reading the scenario directory {}", dir.display())))?;
    let mut files = Vec::new();
    for e in rd {
        let e = e.map_err(Error::io(format!("reading the scenario directory {}", dir.display())))?;
        let p = e.path();
        if p.extension().is_some_and(|x| x == "toml") {
            files.push(p);
        }
    }
    files.sort();
    Ok(files.into_iter().map(|path| entry(path, kind, cells)).collect())
}

/// Scenario files named on the command line (`hidvm test PATH...`): each
/// file, and every `*.toml` in each directory. Kinds come from the files
/// (a file with `expect_verdict` is a self-test). Nothing found, a missing
/// path or two files with one name are errors.
pub fn entries_for_paths(paths: &[PathBuf], cells: &[KernelCell]) -> Result<Vec<Entry>> {
    let mut out: Vec<Entry> = Vec::new();
    for p in paths {
        let files = if p.is_dir() {
            let found = entries_in(p, Kind::Scenario, cells)?;
            if found.is_empty() {
                return Err(Error::Other(format!("{} holds no *.toml scenario file", p.display())));
            }
            found.into_iter().map(|e| e.path).collect()
        } else if p.is_file() {
            vec![p.clone()]
        } else {
            return Err(Error::Other(format!(
                "{}: no such file or directory (give scenario files or directories)",
                p.display()
            )));
        };
        for f in files {
            let path = f.canonicalize().map_err(Error::io(format!("resolving {}", f.display())))?;
            let text = std::fs::read_to_string(&path).map_err(Error::io(format!("reading {}", path.display())))?;
            let selftest = toml::from_str::<Header>(&text).ok().is_some_and(|h| h.expect_verdict.is_some());
            let e = entry(path, if selftest { Kind::SelfTest } else { Kind::Scenario }, cells);
            if let Some(other) = out.iter().find(|o| o.name == e.name && o.path != e.path) {
                return Err(Error::Other(format!(
                    "two scenarios are named `{}`: {} and {}; test names come from file names, rename one",
                    e.name,
                    other.path.display(),
                    e.path.display()
                )));
            }
            if !out.iter().any(|o| o.path == e.path) {
                out.push(e);
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Other("no scenario file given; name scenario files or directories".into()));
    }
    Ok(out)
}

/// Whether a command-line argument names a scenario file or directory
/// rather than a catalogue test: it has a `/`, ends in `.toml`, or exists.
pub fn looks_like_path(arg: &str) -> bool {
    arg.contains('/') || arg.ends_with(".toml") || Path::new(arg).exists()
}

fn entry(path: PathBuf, kind: Kind, cells: &[KernelCell]) -> Entry {
    let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    // A file that does not parse runs everywhere and fails at load time.
    let header = std::fs::read_to_string(&path).ok().and_then(|t| toml::from_str::<Header>(&t).ok());
    let (only_cells, min_kernel) = header.map(|h| (h.cells, h.min_kernel)).unwrap_or_default();
    let unknown: Vec<&String> = only_cells.iter().filter(|c| !cells.iter().any(|k| &k.name == *c)).collect();
    let mut problem = (!unknown.is_empty()).then(|| {
        format!(
            "field `cells`: unknown cell(s) {} (cells: {})",
            unknown.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
            cells.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        )
    });
    let min = min_kernel.as_deref().map(|m| {
        crate::kernel::spec::parse_series(m)
            .ok_or_else(|| format!("field `min_kernel`: `{m}` is not a kernel series like \"6.15\""))
    });
    let min_kernel = match min {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => {
            problem.get_or_insert(e);
            None
        }
        None => None,
    };
    let only_cells = if problem.is_some() { vec![] } else { only_cells };
    Entry { name, path, kind, only_cells, problem, min_kernel, from_catalogue: false }
}

/// Resolve `[[device]]` entries into definitions; paths are relative to `dir`.
fn resolve_devices(scenario: &Scenario, dir: &Path) -> std::result::Result<BTreeMap<String, DeviceDef>, String> {
    let mut out = BTreeMap::new();
    for d in &scenario.devices {
        let def = resolve_device(d, dir).map_err(|e| format!("device `{}`: {e}", d.id))?;
        out.insert(d.id.clone(), def);
    }
    Ok(out)
}

fn resolve_device(d: &DeviceSpec, dir: &Path) -> std::result::Result<DeviceDef, String> {
    let inline = d.name.is_some()
        || d.bus.is_some()
        || d.vendor.is_some()
        || d.product.is_some()
        || d.descriptor.is_some()
        || d.descriptor_file.is_some();
    let mut def = match (&d.model, &d.recording, inline) {
        (Some(m), None, false) => {
            devices::model(m).ok_or_else(|| format!("unknown model `{m}` (known: {})", devices::model_names()))?.def()
        }
        (None, Some(rec), false) => {
            let path = dir.join(rec);
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("field `recording`: {}: {e}", path.display()))?;
            let recording =
                Recording::parse(&text).map_err(|e| format!("field `recording`: {}: {e}", path.display()))?;
            recording
                .device(d.recording_device)
                .and_then(|r| r.def())
                .map_err(|e| format!("field `recording`: {}: {e}", path.display()))?
        }
        (None, None, true) => {
            let need = |v: Option<u32>, f: &str| {
                v.ok_or_else(|| {
                    format!("field `{f}` is missing (an inline device needs bus, vendor, product and a descriptor)")
                })
            };
            let bus =
                d.bus.ok_or("field `bus` is missing (an inline device needs bus, vendor, product and a descriptor)")?;
            let descriptor = match (&d.descriptor, &d.descriptor_file) {
                (Some(hex), None) => hex.0.clone(),
                (None, Some(file)) => read_descriptor_file(&dir.join(file))?,
                _ => return Err("give exactly one of `descriptor` (hex bytes) and `descriptor_file` (binary, as sysfs report_descriptor holds it)".into()),
            };
            DeviceDef {
                name: d.name.clone().unwrap_or_else(|| d.id.clone()),
                bus: bus.0,
                vendor: need(d.vendor, "vendor")?,
                product: need(d.product, "product")?,
                descriptor: HexBytes(descriptor),
                feature_reports: vec![],
            }
        }
        (None, None, false) => {
            return Err(format!(
                "give `model` (known: {}), an inline device (bus, vendor, product, descriptor) or a `recording`",
                devices::model_names()
            ))
        }
        _ => return Err("give only one of `model`, an inline description and `recording`".into()),
    };
    if d.recording_device.is_some() && d.recording.is_none() {
        return Err("field `recording_device` needs `recording`".into());
    }
    check_descriptor(&def.descriptor.0).map_err(|e| format!("malformed report descriptor: {e}"))?;
    if !d.features.is_empty() {
        if let Some(f) = d.features.iter().find(|f| f.bytes.0.first() != Some(&f.id)) {
            return Err(format!("feature report {}: its bytes must start with the report ID ({:02x})", f.id, f.id));
        }
        def.feature_reports = d.features.clone();
    }
    Ok(def)
}

/// A descriptor file: hex text when its name ends in `.hex` (`#`
/// comments allowed), else binary, as sysfs `report_descriptor` holds it.
fn read_descriptor_file(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let at = |e: String| format!("field `descriptor_file`: {}: {e}", path.display());
    if path.extension().is_some_and(|x| x == "hex") {
        let text = std::fs::read_to_string(path).map_err(|e| at(e.to_string()))?;
        let hex: String = text.lines().map(|l| l.split('#').next().unwrap_or("")).collect::<Vec<_>>().join(" ");
        return HexBytes::parse(&hex).map(|h| h.0).map_err(at);
    }
    std::fs::read(path).map_err(|e| at(e.to_string()))
}

/// Each replay step's reports and expectations.
fn resolve_replays(
    s: &Scenario,
    dir: &Path,
    bless: bool,
) -> std::result::Result<BTreeMap<usize, ResolvedReplay>, String> {
    let mut out = BTreeMap::new();
    for (i, step) in s.steps.iter().enumerate() {
        let Step::Replay(r) = step else { continue };
        let at = format!("step {} (replay)", i + 1);
        let spec =
            s.devices.iter().find(|d| d.id == r.device).ok_or_else(|| format!("{at}: no device `{}`", r.device))?;
        let file = r.recording.as_ref().or(spec.recording.as_ref()).ok_or_else(|| {
            format!("{at}: field `recording`: device `{}` was not made from a recording; name the file whose E: lines to inject", r.device)
        })?;
        let path = dir.join(file);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{at}: field `recording`: {}: {e}", path.display()))?;
        let recording = Recording::parse(&text).map_err(|e| format!("{at}: {}: {e}", path.display()))?;
        let device = recording
            .device(r.recording_device.or(spec.recording_device))
            .map_err(|e| format!("{at}: {}: {e}", path.display()))?;
        if device.events.is_empty() {
            return Err(format!("{at}: {} has no E: line to replay", path.display()));
        }
        let events: Vec<HexBytes> = device.events.iter().map(|(_, b)| HexBytes(b.clone())).collect();
        let read_lines = |field: &str, file: &Path| expectation_lines(&at, field, file, bless);
        let evdev_file = r.evdev_file.as_ref().map(|f| dir.join(f));
        let hidraw_file = r.hidraw_file.as_ref().map(|f| dir.join(f));
        let evdev = match (&r.evdev, &evdev_file) {
            (Some(inline), _) => Some(inline.clone()),
            (None, Some(f)) => read_lines("evdev_file", f)?,
            (None, None) => None,
        };
        let hidraw = match (&r.hidraw, &hidraw_file) {
            (Some(inline), _) => Some(inline.clone()),
            (None, Some(f)) => read_lines("hidraw_file", f)?,
            (None, None) => None,
        };
        if bless && r.evdev.is_some() {
            return Err(format!(
                "{at}: --bless writes expectation files; use `evdev_file` instead of an inline `evdev`"
            ));
        }
        check_expectations(&at, &evdev, &hidraw, events.len(), bless)?;
        let step = i + 1;
        let data = if bless {
            ReplayData { step, events, evdev: None, hidraw: None }
        } else {
            ReplayData { step, events, evdev, hidraw }
        };
        out.insert(i + 1, ResolvedReplay { data, evdev_file, hidraw_file });
    }
    Ok(out)
}

/// An expectation file's lines (comments and blank lines dropped); when
/// blessing, a missing file is None (it is about to be written).
fn expectation_lines(
    at: &str,
    field: &str,
    file: &Path,
    bless: bool,
) -> std::result::Result<Option<Vec<String>>, String> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(Some(
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect(),
        )),
        Err(e) if bless && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "{at}: field `{field}`: {} does not exist; `hidvm test --bless` writes it from what the device produces (review it before committing)",
            file.display()
        )),
        Err(e) => Err(format!("{at}: field `{field}`: {}: {e}", file.display())),
    }
}

/// One expectation line per recorded report (unless blessing), each a
/// valid evdev frame or hidraw pattern.
fn check_expectations(
    at: &str,
    evdev: &Option<Vec<String>>,
    hidraw: &Option<Vec<String>>,
    events: usize,
    bless: bool,
) -> std::result::Result<(), String> {
    for (field, lines) in [("evdev", evdev), ("hidraw", hidraw)] {
        let Some(lines) = lines else { continue };
        if !bless && lines.len() != events {
            return Err(format!(
                "{at}: the {field} expectation has {} line(s) for {} recorded report(s)",
                lines.len(),
                events
            ));
        }
        for (n, l) in lines.iter().enumerate() {
            let parsed = if field == "evdev" {
                Frame::parse(l).map(|_| ())
            } else {
                hidvm_proto::expect::ReportExpect::parse(l).map(|_| ())
            };
            parsed.map_err(|e| format!("{at}: {field} expectation line {}: {e}", n + 1))?;
        }
    }
    Ok(())
}

/// Parse and validate one file, resolving what it names.
pub fn load(repo: &Repo, entry: &Entry, opts: LoadOptions<'_>) -> Result<Loaded> {
    let bad = |message: String| Error::Scenario { file: entry.path.clone(), message };
    if let Some(p) = &entry.problem {
        return Err(bad(p.clone()));
    }
    let text = std::fs::read_to_string(&entry.path).map_err(|e| bad(e.to_string()))?;
    let mut scenario: Scenario = toml::from_str(&text).map_err(|e| bad(toml_error(&text, &e)))?;
    if !scenario.name.is_empty() && scenario.name != entry.name {
        return Err(bad(format!("field `name`: `{}` differs from the file name; remove it", scenario.name)));
    }
    scenario.name = entry.name.clone();
    match (entry.kind, scenario.is_selftest()) {
        (Kind::Scenario | Kind::Program, true) => {
            return Err(bad(
                "`expect_verdict`/`expect_failure`/`expect_console` belong in tests/selftests/, not in a scenario"
                    .into(),
            ))
        }
        (Kind::SelfTest, false) => {
            return Err(bad("a self-test needs `expect_verdict` (what its run must end as)".into()))
        }
        _ => {}
    }
    let dir = entry.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let devices = resolve_devices(&scenario, &dir).map_err(bad)?;
    let mut fixtures = BTreeMap::new();
    for (index, name) in scenario.fixture_uses() {
        if !fixtures.contains_key(name) {
            let op = scenario.steps[index - 1].op();
            let r = FixtureRef::parse(repo, name, &dir)
                .map_err(|e| bad(format!("step {index} ({op}): field `fixture`: {e}")))?;
            fixtures.insert(name.to_string(), r);
        }
    }
    let mut bpf_include = Vec::new();
    for inc in &scenario.bpf_include {
        let p = dir.join(inc);
        if !p.is_dir() {
            return Err(bad(format!("field `bpf_include`: {} is not a directory", p.display())));
        }
        bpf_include.push(p);
    }
    let hooks = |f: &str| match fixtures.get(f) {
        Some(r) => r.hooks(repo, opts.kernel_tree),
        None => Err(format!("`{f}` was not resolved (internal error)")),
    };
    let resources = hidvm_proto::validate::Resources { devices: &devices, fixture_hooks: &hooks };
    scenario.validate(&resources).map_err(bad)?;
    if let Some(v) = &scenario.expect_verdict {
        crate::judge::verdict::validate_expected_verdict(v).map_err(bad)?;
    }
    let replays = resolve_replays(&scenario, &dir, opts.bless).map_err(bad)?;
    Ok(Loaded { scenario, devices, fixtures, replays, bpf_include })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells() -> Vec<KernelCell> {
        crate::kernel::cell::load(&Repo::locate().cells_file()).unwrap()
    }

    #[test]
    fn every_catalogue_file_loads() {
        let repo = Repo::locate();
        let all = catalogue(&repo, &cells()).unwrap();
        assert!(all.iter().any(|e| e.kind == Kind::Scenario), "no scenarios found");
        // kernel: programs are validated against the first kernel's tree
        // (the nextest `catalogue` trial loads them on every kernel).
        let first = &crate::kernel::spec::load(&repo.kernels_file()).unwrap()[0];
        let tree =
            crate::kernel::source::KernelSource::for_spec(first, &crate::base::layout::cache_root()).unwrap().root;
        let opts = LoadOptions { kernel_tree: Some(&tree), bless: false };
        for e in all.iter().filter(|e| e.skip_reason(first).is_none()) {
            load(&repo, e, opts).unwrap_or_else(|err| panic!("{err}"));
        }
    }

    #[test]
    fn every_scenario_and_selftest_is_documented() {
        let repo = Repo::locate();
        // The catalogue is documented in docs/scenarios.md (and a few in
        // the README or docs/kernels.md).
        let readme: String = ["README.md", "docs/scenarios.md", "docs/kernels.md"]
            .iter()
            .map(|f| std::fs::read_to_string(repo.root.join(f)).unwrap())
            .collect();
        let missing: Vec<String> = catalogue(&repo, &cells())
            .unwrap()
            .into_iter()
            .filter(|e| !readme.contains(&format!("`{}`", e.name)))
            .map(|e| e.name)
            .collect();
        assert!(missing.is_empty(), "neither README.md nor docs/ mention: {}", missing.join(", "));
    }

    #[test]
    fn malformed_file_names_file_and_field() {
        let repo = Repo::locate();
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("broken.toml");
        std::fs::write(&path, "summary = \"x\"\n[[device]]\nid = \"m\"\nmodel = \"boot_mouse\"\n[[step]]\nop = \"inject\"\ndevice = \"m\"\nreport = \"00\"\nhidraw = \"00\"\nevdev = []\ncolour = 1\n").unwrap();
        let entry = Entry {
            name: "broken".into(),
            path: path.clone(),
            kind: Kind::Scenario,
            only_cells: vec![],
            min_kernel: None,
            problem: None,
            from_catalogue: false,
        };
        let e = load(&repo, &entry, LoadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("broken.toml") && e.contains("unknown field `colour`"), "{e}");
        assert!(!e.contains('\n'), "error must be one line: {e}");
    }

    #[test]
    fn a_misspelt_cell_fails_loudly_instead_of_removing_tests() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("x.toml"), "summary = \"x\"\ncells = [\"gcc-debgu\"]\n").unwrap();
        let entries = entries_in(d.path(), Kind::Scenario, &cells()).unwrap();
        assert_eq!(entries.len(), 1);
        assert!(entries[0].runs_on("gcc") && entries[0].runs_on("llvm"), "it still lists tests");
        let e = load(&Repo::locate(), &entries[0], LoadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("unknown cell(s) `gcc-debgu`"), "{e}");
    }

    #[test]
    fn command_line_paths_are_told_from_catalogue_names() {
        assert!(looks_like_path("my/acme_wheel.toml") && looks_like_path("acme_wheel.toml"));
        assert!(looks_like_path("./dir") && looks_like_path("/abs/dir"));
        assert!(!looks_like_path("mouse_swap_buttons") && !looks_like_path("6.12-gcc::mouse_swap_buttons"));
    }

    #[test]
    fn an_unreadable_scenario_directory_is_an_error() {
        let e =
            entries_in(Path::new("/nonexistent/hidvm/scenarios"), Kind::Scenario, &cells()).unwrap_err().to_string();
        assert!(e.contains("reading the scenario directory /nonexistent/hidvm/scenarios"), "{e}");
    }
}
