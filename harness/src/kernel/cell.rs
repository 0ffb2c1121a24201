//! Kernel cells: the compilers (and flavours) every scenario runs on. They
//! are data (`guest-image/cells.toml`), so a third cell is one entry.
use crate::base::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KernelCell {
    pub name: String,
    pub summary: String,
    /// Make variables for every make invocation (CC=gcc, LLVM=-19, ...).
    pub make: BTreeMap<String, String>,
    /// Compiler command; `<compiler> --version` identifies the toolchain.
    pub compiler: String,
    /// Substring /proc/version must contain in the booted guest.
    pub banner: String,
    /// Extra tools: [executable, Debian package].
    #[serde(default)]
    pub needs: Vec<(String, String)>,
    /// Extra config fragments (file names in guest-image/config/).
    #[serde(default)]
    pub fragments: Vec<String>,
    /// Kernel modules to build (`make modules`) and put into every VM of
    /// the cell under /hidvm/modules/, as paths inside the build directory
    /// (e.g. "samples/kmemleak/kmemleak-test.ko"). Self-tests load them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
    /// Whether `make vm-test`/`make test` run this cell without being asked
    /// (flavours such as the debug cells are selected with HIDVM_CELLS).
    #[serde(default = "yes", rename = "run_by_default")]
    pub default_run: bool,
    /// What QEMU boots: the uncompressed vmlinux through its PVH entry
    /// (fastest), or the bzImage through the boot protocol.
    #[serde(default)]
    pub boot: BootImage,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BootImage {
    #[default]
    #[serde(rename = "vmlinux")]
    Vmlinux,
    #[serde(rename = "bzImage")]
    BzImage,
}

impl BootImage {
    /// The make target that produces it.
    pub fn make_target(self) -> &'static str {
        match self {
            BootImage::Vmlinux => "vmlinux",
            BootImage::BzImage => "bzImage",
        }
    }
    /// Its path inside the O= directory.
    pub fn path_in_build(self) -> &'static str {
        match self {
            BootImage::Vmlinux => "vmlinux",
            BootImage::BzImage => "arch/x86/boot/bzImage",
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CellsFile {
    cell: Vec<KernelCell>,
}

impl KernelCell {
    pub fn make_args(&self) -> Vec<String> {
        self.make.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// Tools this cell needs beyond the common kernel-build set.
    pub fn check_tools(&self) -> Result<()> {
        let needs: Vec<crate::base::tools::Tool<'_>> = self
            .needs
            .iter()
            .map(|(exe, pkg)| crate::base::tools::Tool { name: exe, what: "cell toolchain tool", package: pkg })
            .collect();
        crate::base::tools::require_all(&needs)
    }
}

pub fn load(file: &Path) -> Result<Vec<KernelCell>> {
    let bad = |message: String| Error::Cells { file: file.to_path_buf(), message };
    let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    let parsed: CellsFile = toml::from_str(&text).map_err(|e| bad(e.to_string().replace('\n', " ")))?;
    let mut seen = std::collections::BTreeSet::new();
    for c in &parsed.cell {
        if c.name.is_empty() || !c.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
            return Err(bad(format!("cell name `{}` must be non-empty [A-Za-z0-9_-]", c.name)));
        }
        if !seen.insert(c.name.clone()) {
            return Err(bad(format!("cell `{}` is defined twice", c.name)));
        }
        if let Some(m) = c.modules.iter().find(|m| !m.ends_with(".ko") || m.starts_with('/') || m.contains("..")) {
            return Err(bad(format!("cell `{}`: module `{m}` must be a .ko path inside the build directory", c.name)));
        }
    }
    if parsed.cell.is_empty() {
        return Err(bad("defines no [[cell]]".into()));
    }
    Ok(parsed.cell)
}

pub fn find<'a>(cells: &'a [KernelCell], name: &str) -> Result<&'a KernelCell> {
    cells.iter().find(|c| c.name == name).ok_or_else(|| {
        Error::Other(format!(
            "unknown cell `{name}`; cells are: {}",
            cells.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_cells_parse() {
        let cells = load(&crate::base::layout::Repo::locate().cells_file()).unwrap();
        let gcc = find(&cells, "gcc").unwrap();
        assert_eq!(gcc.make_args(), vec!["CC=gcc"]);
        let llvm = find(&cells, "llvm").unwrap();
        assert_eq!(llvm.make_args(), vec!["LLVM=-19"]);
        assert!(find(&cells, "icc").unwrap_err().to_string().contains("cells are: gcc, llvm"));
    }

    #[test]
    fn malformed_cells_are_reported_with_the_field() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("cells.toml");
        std::fs::write(&f, "[[cell]]\nname = \"x\"\nsummary = \"\"\nmake = {}\ncompiler = \"gcc\"\n").unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("missing field `banner`"), "{e}");
    }
}
