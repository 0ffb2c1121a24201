//! The scenario catalogue: `tests/scenarios/*.toml` (what hidvm checks on
//! every kernel cell) and `tests/selftests/*.toml` (scenarios that must fail
//! in a stated way, proving the harness sees breakage).
//!
//! Nothing silently disappears: an unreadable directory is an error, and a
//! file whose `cells = [...]` names an unknown cell still lists its tests
//! (on every cell), which then fail with that message.
use crate::cell::KernelCell;
use crate::error::{toml_error, Error, Result};
use crate::layout::Repo;
use hidvm_proto::{devices, DeviceDef, Scenario};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Scenario,
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
}

impl Entry {
    pub fn runs_on(&self, cell: &str) -> bool {
        self.only_cells.is_empty() || self.only_cells.iter().any(|c| c == cell)
    }

    /// nextest-style test name: `gcc::mouse_…`, `selftest::gcc::…`.
    pub fn test_name(&self, cell: &str) -> String {
        match self.kind {
            Kind::Scenario => format!("{cell}::{}", self.name),
            Kind::SelfTest => format!("selftest::{cell}::{}", self.name),
        }
    }
}

#[derive(serde::Deserialize)]
struct CellsOnly {
    #[serde(default)]
    cells: Vec<String>,
}

/// A scenario ready to run: parsed, validated, devices resolved.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub scenario: Scenario,
    pub devices: BTreeMap<String, DeviceDef>,
}

/// Every scenario and self-test file of the repository, sorted.
pub fn catalogue(repo: &Repo, cells: &[KernelCell]) -> Result<Vec<Entry>> {
    let mut out = entries_in(&repo.scenarios_dir(), Kind::Scenario, cells)?;
    out.extend(entries_in(&repo.selftests_dir(), Kind::SelfTest, cells)?);
    Ok(out)
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

fn entry(path: PathBuf, kind: Kind, cells: &[KernelCell]) -> Entry {
    let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    // A file that does not parse runs everywhere and fails at load time.
    let only_cells = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| toml::from_str::<CellsOnly>(&t).ok())
        .map(|c| c.cells)
        .unwrap_or_default();
    let unknown: Vec<&String> = only_cells.iter().filter(|c| !cells.iter().any(|k| &k.name == *c)).collect();
    if unknown.is_empty() {
        return Entry { name, path, kind, only_cells, problem: None };
    }
    let problem = format!(
        "field `cells`: unknown cell(s) {} (cells: {})",
        unknown.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
        cells.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    Entry { name, path, kind, only_cells: vec![], problem: Some(problem) }
}

/// Resolve `[[device]]` entries into definitions.
fn resolve_devices(scenario: &Scenario) -> std::result::Result<BTreeMap<String, DeviceDef>, String> {
    let mut out = BTreeMap::new();
    for d in &scenario.devices {
        let def = match &d.model {
            Some(m) => devices::model(m)
                .ok_or_else(|| format!("device `{}`: unknown model `{m}` (known: {})", d.id, devices::model_names()))?
                .def(),
            None => return Err(format!("device `{}`: give `model` (known: {})", d.id, devices::model_names())),
        };
        out.insert(d.id.clone(), def);
    }
    Ok(out)
}

/// Parse and validate one file.
pub fn load(repo: &Repo, entry: &Entry) -> Result<Loaded> {
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
        (Kind::Scenario, true) => {
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
    let devices = resolve_devices(&scenario).map_err(bad)?;
    let hooks = |f: &str| crate::fixtures::hooks(repo, f);
    let resources = hidvm_proto::scenario::Resources { devices: &devices, fixture_hooks: &hooks };
    scenario.validate(&resources).map_err(bad)?;
    if let Some(v) = &scenario.expect_verdict {
        crate::verdict::validate_expected_verdict(v).map_err(bad)?;
    }
    Ok(Loaded { scenario, devices })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells() -> Vec<KernelCell> {
        crate::cell::load(&Repo::locate().cells_file()).unwrap()
    }

    #[test]
    fn every_catalogue_file_loads() {
        let repo = Repo::locate();
        let all = catalogue(&repo, &cells()).unwrap();
        assert!(all.iter().any(|e| e.kind == Kind::Scenario), "no scenarios found");
        for e in &all {
            load(&repo, e).unwrap_or_else(|err| panic!("{err}"));
        }
    }

    #[test]
    fn every_scenario_and_selftest_is_named_in_the_readme() {
        let repo = Repo::locate();
        let readme = std::fs::read_to_string(repo.root.join("README.md")).unwrap();
        let missing: Vec<String> = catalogue(&repo, &cells())
            .unwrap()
            .into_iter()
            .filter(|e| !readme.contains(&format!("`{}`", e.name)))
            .map(|e| e.name)
            .collect();
        assert!(missing.is_empty(), "README.md does not mention: {}", missing.join(", "));
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
            problem: None,
        };
        let e = load(&repo, &entry).unwrap_err().to_string();
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
        let e = load(&Repo::locate(), &entries[0]).unwrap_err().to_string();
        assert!(e.contains("unknown cell(s) `gcc-debgu`"), "{e}");
    }

    #[test]
    fn an_unreadable_scenario_directory_is_an_error() {
        let e =
            entries_in(Path::new("/nonexistent/hidvm/scenarios"), Kind::Scenario, &cells()).unwrap_err().to_string();
        assert!(e.contains("reading the scenario directory /nonexistent/hidvm/scenarios"), "{e}");
    }
}
