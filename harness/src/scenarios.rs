//! The scenario catalogue: `tests/scenarios/*.toml` (what hidvm checks on
//! every kernel cell) and `tests/selftests/*.toml` (scenarios that must fail
//! in a stated way, proving the harness sees breakage).
use crate::error::{Error, Result};
use crate::layout::Repo;
use hidvm_proto::Scenario;
use std::path::PathBuf;

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
    /// without full parsing so listing stays cheap and never fails.
    pub only_cells: Vec<String>,
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

/// Every scenario and self-test file, sorted; cheap (no parsing), so test
/// listing never fails on a malformed file: that file's tests fail instead.
pub fn catalogue(repo: &Repo) -> Vec<Entry> {
    let mut out = Vec::new();
    for (dir, kind) in [(repo.scenarios_dir(), Kind::Scenario), (repo.selftests_dir(), Kind::SelfTest)] {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<PathBuf> =
            rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
        files.sort();
        for path in files {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let only_cells = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| toml::from_str::<CellsOnly>(&t).ok())
                .map(|c| c.cells)
                .unwrap_or_default();
            out.push(Entry { name, path, kind, only_cells });
        }
    }
    out
}

/// Parse and validate one file.
pub fn load(repo: &Repo, entry: &Entry) -> Result<Scenario> {
    let bad = |message: String| Error::Scenario { file: entry.path.clone(), message };
    let text = std::fs::read_to_string(&entry.path).map_err(|e| bad(e.to_string()))?;
    let mut scenario: Scenario = toml::from_str(&text).map_err(|e| bad(toml_error(&text, &e)))?;
    if !scenario.name.is_empty() && scenario.name != entry.name {
        return Err(bad(format!("field `name`: `{}` differs from the file name; remove it", scenario.name)));
    }
    scenario.name = entry.name.clone();
    match (entry.kind, scenario.is_selftest()) {
        (Kind::Scenario, true) => {
            return Err(bad("`expect_failure`/`expect_verdict`/`expect_console` belong in tests/selftests/, not in a scenario".into()))
        }
        (Kind::SelfTest, false) => {
            return Err(bad("a self-test needs `expect_verdict`, `expect_console` or [[expect_failure]]".into()))
        }
        _ => {}
    }
    scenario.validate(&|f| crate::fixtures::exists(repo, f)).map_err(bad)?;
    if let Some(v) = &scenario.expect_verdict {
        crate::verdict::validate_expected_verdict(v).map_err(bad)?;
    }
    Ok(scenario)
}

/// `line N: message`, on one line (toml's own Display draws a snippet).
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => format!("line {}: {msg}", text[..span.start.min(text.len())].matches('\n').count() + 1),
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_file_loads() {
        let repo = Repo::locate();
        let all = catalogue(&repo);
        assert!(all.iter().any(|e| e.kind == Kind::Scenario), "no scenarios found");
        for e in &all {
            load(&repo, e).unwrap_or_else(|err| panic!("{err}"));
        }
    }

    #[test]
    fn every_scenario_and_selftest_is_named_in_the_readme() {
        let repo = Repo::locate();
        let readme = std::fs::read_to_string(repo.root.join("README.md")).unwrap();
        let missing: Vec<String> =
            catalogue(&repo).into_iter().filter(|e| !readme.contains(&format!("`{}`", e.name))).map(|e| e.name).collect();
        assert!(missing.is_empty(), "README.md does not mention: {}", missing.join(", "));
    }

    #[test]
    fn malformed_file_names_file_and_field() {
        let repo = Repo::locate();
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("broken.toml");
        std::fs::write(&path, "summary = \"x\"\n[[device]]\nid = \"m\"\nmodel = \"boot_mouse\"\n[[step]]\nop = \"inject\"\ndevice = \"m\"\nreport = \"00\"\nhidraw = \"00\"\nevdev = []\ncolour = 1\n").unwrap();
        let e = load(&repo, &Entry { name: "broken".into(), path: path.clone(), kind: Kind::Scenario, only_cells: vec![] })
            .unwrap_err()
            .to_string();
        assert!(e.contains("broken.toml") && e.contains("unknown field `colour`"), "{e}");
        assert!(!e.contains('\n'), "error must be one line: {e}");
    }
}
