//! Kernels: the trees every scenario runs on (`guest-image/kernels.toml`),
//! and targets, a kernel built by a cell (`6.12-gcc`). Like cells, kernels
//! are data: adding one is adding an entry.
use crate::base::error::{toml_error, Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KernelSpec {
    pub name: String,
    pub summary: String,
    /// The Debian package whose /usr/src/<package>.tar.xz is the tree.
    #[serde(default)]
    pub package: Option<String>,
    /// Fetch the package from this suite instead of the installed one.
    #[serde(default)]
    pub fetch_from: Option<String>,
    #[serde(default = "yes", rename = "run_by_default")]
    pub default_run: bool,
    /// A tree of the user's own (not from the file: --kernel-src).
    #[serde(skip)]
    pub tree: Option<PathBuf>,
    /// A kernel the user built (--kernel): booted, not built.
    #[serde(skip)]
    pub image: Option<crate::kernel::image::PrebuiltImage>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KernelsFile {
    kernel: Vec<KernelSpec>,
}

impl KernelSpec {
    /// The release series (7, 3): from the package name
    /// (`linux-source-7.3`), or a user tree's Makefile. What `min_kernel`
    /// compares against, known before anything is fetched or unpacked.
    pub fn series(&self) -> Option<(u32, u32)> {
        if let Some(image) = &self.image {
            return parse_series(&image.version.split('.').take(2).collect::<Vec<_>>().join("."));
        }
        if let Some(tree) = &self.tree {
            let makefile = std::fs::read_to_string(tree.join("Makefile")).ok()?;
            let field = |name: &str| {
                makefile.lines().find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.trim() == name).then(|| v.trim().parse::<u32>().ok()).flatten()
                })
            };
            return Some((field("VERSION")?, field("PATCHLEVEL")?));
        }
        parse_series(self.package.as_deref()?.strip_prefix("linux-source-")?)
    }

    /// The kernel a user's tree stands for (`--kernel-src`).
    pub fn user_tree(dir: &Path) -> KernelSpec {
        KernelSpec {
            name: "tree".into(),
            summary: format!("the kernel tree {}", dir.display()),
            package: None,
            fetch_from: None,
            default_run: true,
            tree: Some(dir.to_path_buf()),
            image: None,
        }
    }

    /// The kernel a prebuilt image stands for (`--kernel`); `tree`, if
    /// given, supplies program headers and `kernel:` programs.
    pub fn prebuilt(image: crate::kernel::image::PrebuiltImage, tree: Option<&Path>) -> KernelSpec {
        KernelSpec {
            name: "prebuilt".into(),
            summary: format!("the prebuilt kernel {} (Linux {})", image.boot_image.display(), image.version),
            package: None,
            fetch_from: None,
            default_run: true,
            tree: tree.map(Path::to_path_buf),
            image: Some(image),
        }
    }
}

/// `7.3` -> (7, 3).
pub fn parse_series(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

pub fn load(file: &Path) -> Result<Vec<KernelSpec>> {
    let bad = |message: String| Error::Other(format!("kernel definitions {}: {message}", file.display()));
    let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    let parsed: KernelsFile = toml::from_str(&text).map_err(|e| bad(toml_error(&text, &e)))?;
    let mut seen = std::collections::BTreeSet::new();
    for k in &parsed.kernel {
        if k.name.is_empty() || !k.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_') {
            return Err(bad(format!(
                "kernel name `{}` must be non-empty [A-Za-z0-9._] (no `-`: it separates kernel and cell in test names)",
                k.name
            )));
        }
        if !seen.insert(k.name.clone()) {
            return Err(bad(format!("kernel `{}` is defined twice", k.name)));
        }
        if k.package.is_none() || k.series().is_none() {
            return Err(bad(format!(
                "kernel `{}`: give `package`, a Debian linux-source-X.Y package (X.Y is the series `min_kernel` compares)",
                k.name
            )));
        }
    }
    if parsed.kernel.is_empty() {
        return Err(bad("defines no [[kernel]]".into()));
    }
    Ok(parsed.kernel)
}

pub fn find<'a>(kernels: &'a [KernelSpec], name: &str) -> Result<&'a KernelSpec> {
    kernels.iter().find(|k| k.name == name).ok_or_else(|| {
        Error::Other(format!(
            "unknown kernel `{name}`; kernels are: {}",
            kernels.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// A kernel built by a cell: what one test runs on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub kernel: String,
    pub cell: String,
}

impl Target {
    pub fn new(kernel: &str, cell: &str) -> Target {
        Target { kernel: kernel.to_string(), cell: cell.to_string() }
    }

    /// `6.12-gcc`: the test-name prefix and matrix column.
    pub fn label(&self) -> String {
        format!("{}-{}", self.kernel, self.cell)
    }

    /// `6.12-gcc` -> (6.12, gcc); kernel names have no `-`, cells may
    /// (`7.3-llvm-debug`).
    pub fn parse(label: &str) -> Option<Target> {
        let (k, c) = label.trim().split_once('-')?;
        (!k.is_empty() && !c.is_empty()).then(|| Target::new(k, c))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_kernels_parse() {
        let k = load(&crate::base::layout::Repo::locate().root.join("guest-image/kernels.toml")).unwrap();
        assert_eq!(find(&k, "6.12").unwrap().package.as_deref(), Some("linux-source-6.12"));
        assert_eq!(find(&k, "7.3").unwrap().fetch_from.as_deref(), Some("trixie-backports"));
        assert!(find(&k, "2.6").unwrap_err().to_string().contains("kernels are: 6.12, 7.3"));
        assert_eq!(Target::new("7.3", "llvm").label(), "7.3-llvm");
        assert_eq!(find(&k, "7.3").unwrap().series(), Some((7, 3)));
        assert_eq!(find(&k, "6.12").unwrap().series(), Some((6, 12)));
    }

    #[test]
    fn a_dash_in_a_kernel_name_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("kernels.toml");
        std::fs::write(&f, "[[kernel]]\nname = \"7.3-rc1\"\nsummary = \"s\"\npackage = \"p\"\n").unwrap();
        assert!(load(&f).unwrap_err().to_string().contains("no `-`"));
    }
}
