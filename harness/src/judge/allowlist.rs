//! Known, accepted kernel splats (`tests/allowlist.toml`). Each entry names
//! the class, text the splat's headline contains, the cells it applies to
//! and why it is accepted; `hidvm vm-test` reports entries that matched
//! nothing, so stale ones get removed.
use crate::base::error::{Error, Result};
use crate::judge::console::Splat;
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    pub class: String,
    pub contains: String,
    /// Cell names, or ["*"] for all.
    pub cells: Vec<String>,
    pub reason: String,
}

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct AllowList {
    #[serde(default)]
    pub allow: Vec<AllowEntry>,
}

impl AllowEntry {
    /// Whether the entry covers `cell` (by name or through "*").
    pub fn applies_to(&self, cell: &str) -> bool {
        self.cells.iter().any(|c| c == "*" || c == cell)
    }

    pub fn matches(&self, cell: &str, splat: &Splat) -> bool {
        self.class == splat.class && splat.line.contains(&self.contains) && self.applies_to(cell)
    }
}

impl AllowList {
    pub fn load(file: &Path) -> Result<AllowList> {
        if !file.exists() {
            return Ok(AllowList::default());
        }
        let text = std::fs::read_to_string(file).map_err(Error::io(format!("reading {}", file.display())))?;
        let list: AllowList = toml::from_str(&text).map_err(|e| {
            Error::Other(format!(
                "allow-list {}: {}; fix the entry",
                file.display(),
                crate::base::error::toml_error(&text, &e)
            ))
        })?;
        let classes = crate::judge::console::classes();
        for (i, a) in list.allow.iter().enumerate() {
            if !classes.contains(&a.class.as_str()) {
                return Err(Error::Other(format!(
                    "allow-list {} entry {}: unknown class `{}` (known: {})",
                    file.display(),
                    i + 1,
                    a.class,
                    classes.join(", ")
                )));
            }
            if a.reason.trim().is_empty() || a.contains.trim().is_empty() || a.cells.is_empty() {
                return Err(Error::Other(format!(
                    "allow-list {} entry {}: `contains`, `cells` and `reason` must not be empty",
                    file.display(),
                    i + 1
                )));
            }
        }
        Ok(list)
    }

    /// Index of the entry accepting this splat on this cell.
    pub fn accepts(&self, cell: &str, splat: &Splat) -> Option<usize> {
        self.allow.iter().position(|a| a.matches(cell, splat))
    }

    /// Split `splats` into those that count and those an entry excuses
    /// ((entry index, headline) each).
    pub fn filter(&self, cell: &str, splats: Vec<Splat>) -> (Vec<Splat>, Vec<(usize, String)>) {
        let mut excused = Vec::new();
        let kept = splats
            .into_iter()
            .filter(|s| match self.accepts(cell, s) {
                Some(i) => {
                    excused.push((i, s.line.clone()));
                    false
                }
                None => true,
            })
            .collect();
        (kept, excused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_by_class_text_and_cell() {
        let list: AllowList = toml::from_str(
            r#"
[[allow]]
class = "warning"
contains = "drivers/foo.c:12"
cells = ["llvm"]
reason = "upstream bug 123, fixed in 6.13"
"#,
        )
        .unwrap();
        let s = &crate::judge::console::find_splats("[ 1.0] WARNING: CPU: 0 PID: 1 at drivers/foo.c:12 foo+0x1/0x2")[0];
        assert_eq!(list.accepts("llvm", s), Some(0));
        assert_eq!(list.accepts("gcc", s), None);
        let other = &crate::judge::console::find_splats("[ 1.0] WARNING: CPU: 0 PID: 1 at drivers/bar.c:1 bar")[0];
        assert_eq!(list.accepts("llvm", other), None);
    }

    #[test]
    fn repository_allow_list_is_valid() {
        AllowList::load(&crate::base::layout::Repo::locate().root.join("tests/allowlist.toml")).unwrap();
    }
}
