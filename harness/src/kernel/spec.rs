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
    /// The Debian source package (`linux-source-X.Y`) whose tarball is the
    /// tree; for a `newest` kernel, what the lock resolved it to.
    #[serde(default)]
    pub package: Option<String>,
    /// The Debian suite the locked version is fetched from.
    #[serde(default, alias = "fetch_from")]
    pub suite: Option<String>,
    /// `make setup` installs the package; its /usr/src tarball is used when
    /// it is the locked one (else the locked one is fetched).
    #[serde(default)]
    pub installed: bool,
    /// The highest `linux-source-X.Y` the configured suites carry, resolved
    /// when the lock is updated (`hidvm kernels --update`).
    #[serde(default)]
    pub newest: bool,
    #[serde(default = "yes", rename = "run_by_default")]
    pub default_run: bool,
    /// A tree of the user's own (not from the file: --kernel-src).
    #[serde(skip)]
    pub tree: Option<PathBuf>,
    /// A kernel the user built (--kernel): booted, not built.
    #[serde(skip)]
    pub image: Option<crate::kernel::image::PrebuiltImage>,
    /// A patch series applied to this kernel's tree (`6.12+fix`, `--patches`).
    #[serde(skip)]
    pub patches: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KernelsFile {
    /// The suites a `newest` kernel looks in.
    #[serde(default)]
    suites: Vec<String>,
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

    /// The kernel a series was applied to (`6.12` of `6.12+fix`): what the
    /// lock pins.
    pub fn base_name(&self) -> &str {
        self.name.split('+').next().unwrap_or(&self.name)
    }

    /// The kernel a user's tree stands for (`--kernel-src`).
    pub fn user_tree(dir: &Path) -> KernelSpec {
        KernelSpec {
            name: "tree".into(),
            summary: format!("the kernel tree {}", dir.display()),
            package: None,
            suite: None,
            installed: false,
            newest: false,
            default_run: true,
            tree: Some(dir.to_path_buf()),
            image: None,
            patches: None,
        }
    }

    /// The kernel a prebuilt image stands for (`--kernel`); `tree`, if
    /// given, supplies program headers and `kernel:` programs.
    pub fn prebuilt(image: crate::kernel::image::PrebuiltImage, tree: Option<&Path>) -> KernelSpec {
        KernelSpec {
            name: "prebuilt".into(),
            summary: format!("the prebuilt kernel {} (Linux {})", image.boot_image.display(), image.version),
            package: None,
            suite: None,
            installed: false,
            newest: false,
            default_run: true,
            tree: tree.map(Path::to_path_buf),
            image: Some(image),
            patches: None,
        }
    }
}

/// `7.3` -> (7, 3).
pub fn parse_series(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

pub fn load(file: &Path) -> Result<Vec<KernelSpec>> {
    Ok(load_file(file)?.1)
}

/// The suites a `newest` kernel looks in (`suites = [...]` of kernels.toml).
pub fn suites(file: &Path) -> Result<Vec<String>> {
    Ok(load_file(file)?.0)
}

fn load_file(file: &Path) -> Result<(Vec<String>, Vec<KernelSpec>)> {
    let bad = |message: String| Error::Other(format!("kernel definitions {}: {message}", file.display()));
    let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    let parsed: KernelsFile = toml::from_str(&text).map_err(|e| bad(toml_error(&text, &e)))?;
    let mut seen = std::collections::BTreeSet::new();
    for k in &parsed.kernel {
        if !valid_name(&k.name) || k.name.contains('+') || RESERVED.contains(&k.name.as_str()) {
            return Err(bad(format!(
                "kernel name `{}` must be non-empty [A-Za-z0-9._] (no `-`: it separates kernel and cell in test names; `+` names a series; {} are taken)",
                k.name,
                RESERVED.join(", ")
            )));
        }
        if !seen.insert(k.name.clone()) {
            return Err(bad(format!("kernel `{}` is defined twice", k.name)));
        }
        if !k.newest && (k.suite.is_none() || k.package.is_none() || k.series().is_none()) {
            return Err(bad(format!(
                "kernel `{}`: give `suite` and either `package`, a Debian linux-source-X.Y package (X.Y is the series `min_kernel` compares), or `newest = true`",
                k.name
            )));
        }
        if k.newest && parsed.suites.is_empty() {
            return Err(bad(format!(
                "kernel `{}` is `newest`: list the suites it looks in (`suites = [...]`)",
                k.name
            )));
        }
    }
    if parsed.kernel.is_empty() {
        return Err(bad("defines no [[kernel]]".into()));
    }
    Ok((parsed.suites, parsed.kernel))
}

/// Names the command line gives meaning to.
const RESERVED: [&str; 2] = ["tree", "prebuilt"];

/// `[A-Za-z0-9._+]`, non-empty: no `-`, which separates kernel and cell.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+'))
}

/// A series' name as a kernel name takes it: every character a kernel
/// name may not hold becomes `_` (`hid-bpf-fix` -> `hid_bpf_fix`).
pub fn name_part(series: &str) -> String {
    series.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') { c } else { '_' }).collect()
}

pub fn find<'a>(kernels: &'a [KernelSpec], name: &str) -> Result<&'a KernelSpec> {
    kernels.iter().find(|k| k.name == name).ok_or_else(|| {
        Error::Other(format!(
            "unknown kernel `{name}`; kernels are: {}",
            kernels.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// What `--kernels` chooses from, and the flags beside it.
pub struct Choice<'a> {
    /// `--kernels` (else HIDVM_KERNELS) words; empty: the defaults.
    pub words: &'a [String],
    /// Where the words came from, for messages.
    pub from: &'a str,
    /// The kernels of kernels.toml.
    pub defined: &'a [KernelSpec],
    /// `--kernel-src`: the `tree` kernel.
    pub tree: Option<&'a Path>,
    /// `--kernel`: the `prebuilt` kernel.
    pub image: Option<&'a crate::kernel::image::PrebuiltImage>,
    /// `--patches`: applied to every chosen kernel that has no series of its own.
    pub patches: Option<&'a Path>,
    /// The repository's `patches/`, where a series name is looked up.
    pub patches_dir: &'a Path,
}

/// (every kernel a name can refer to, the kernels of the run). A word is
/// a kernel of kernels.toml, `tree`, `prebuilt`, or any of them with a
/// patch series: `6.12+hid-bpf-fix` (a directory or mbox under
/// `patches/`, or a path), named `6.12+hid_bpf_fix`. Without words: the
/// prebuilt kernel, else the tree, else the kernels run by default.
pub fn select(c: &Choice) -> Result<(Vec<KernelSpec>, Vec<KernelSpec>)> {
    let mut all = c.defined.to_vec();
    all.extend(c.tree.map(KernelSpec::user_tree));
    all.extend(c.image.map(|i| KernelSpec::prebuilt(i.clone(), c.tree)));
    let mut run: Vec<KernelSpec> = if c.words.is_empty() {
        match (c.image.is_some(), c.tree.is_some()) {
            (true, _) => all.iter().filter(|k| k.image.is_some()).cloned().collect(),
            (false, true) => all.iter().filter(|k| k.tree.is_some()).cloned().collect(),
            _ => c.defined.iter().filter(|k| k.default_run).cloned().collect(),
        }
    } else {
        c.words.iter().map(|w| chosen(c, &all, w.trim())).collect::<Result<_>>()?
    };
    if let Some(p) = c.patches {
        for k in run.iter_mut().filter(|k| k.patches.is_none()) {
            if k.image.is_some() {
                return Err(Error::Other("--patches: a prebuilt kernel (--kernel) cannot be patched; build your tree with --kernel-src instead".into()));
            }
            *k = with_series(k, p);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    run.retain(|k| seen.insert(k.name.clone()));
    all.extend(run.iter().filter(|k| k.patches.is_some()).cloned());
    Ok((all, run))
}

/// One `--kernels` word.
fn chosen(c: &Choice, all: &[KernelSpec], word: &str) -> Result<KernelSpec> {
    let (name, series) = match word.split_once('+') {
        Some((n, s)) => (n, Some(s)),
        None => (word, None),
    };
    let base = find(all, name).map_err(|e| {
        let hint = match name {
            "tree" => " (`tree` is the tree --kernel-src or HIDVM_KERNEL_SRC names)",
            "prebuilt" => " (`prebuilt` is the kernel --kernel or HIDVM_KERNEL names)",
            _ => "",
        };
        Error::Other(format!("{}: {e}{hint}", c.from))
    })?;
    let Some(series) = series else { return Ok(base.clone()) };
    if base.image.is_some() {
        return Err(Error::Other(format!("{}: `{word}`: a prebuilt kernel cannot be patched", c.from)));
    }
    Ok(with_series(base, &series_path(c, series)?))
}

/// A series named on the command line: a path, else a name under patches/
/// (with `_` for `-`, as kernel names spell it).
fn series_path(c: &Choice, series: &str) -> Result<PathBuf> {
    let candidates = [PathBuf::from(series), c.patches_dir.join(series), c.patches_dir.join(series.replace('_', "-"))];
    candidates.into_iter().find(|p| !series.is_empty() && p.exists()).ok_or_else(|| {
        let known: Vec<String> = std::fs::read_dir(c.patches_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        Error::Other(format!(
            "{}: patch series `{series}` is neither a path nor in {} (it has: {}); give a directory of *.patch files or an mbox",
            c.from,
            c.patches_dir.display(),
            known.join(", ")
        ))
    })
}

/// `base` with the series at `path`: named `<base>+<series name>`.
fn with_series(base: &KernelSpec, path: &Path) -> KernelSpec {
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let series = file.trim_end_matches(".mbox").trim_end_matches(".patch");
    KernelSpec {
        name: format!("{}+{}", base.name, name_part(series)),
        summary: format!("{} with the patch series {}", base.summary, path.display()),
        patches: Some(path.to_path_buf()),
        default_run: true,
        ..base.clone()
    }
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
        assert_eq!(find(&k, "7.3").unwrap().suite.as_deref(), Some("trixie-backports"));
        assert!(find(&k, "2.6").unwrap_err().to_string().contains("kernels are: 6.12, 7.3"));
        assert_eq!(Target::new("7.3", "llvm").label(), "7.3-llvm");
        assert_eq!(find(&k, "7.3").unwrap().series(), Some((7, 3)));
        assert_eq!(find(&k, "6.12").unwrap().series(), Some((6, 12)));
    }

    /// The names `select` gives the run for these flags (or its error).
    fn pick(words: &[&str], tree: Option<&Path>, patches: Option<&str>) -> Result<Vec<String>> {
        let repo = crate::base::layout::Repo::locate();
        let defined = load(&repo.kernels_file()).unwrap();
        let patches_dir = repo.root.join("patches");
        let words: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        let patches = patches.map(|p| patches_dir.join(p));
        let c = Choice {
            words: &words,
            from: "--kernels",
            defined: &defined,
            tree,
            image: None,
            patches: patches.as_deref(),
            patches_dir: &patches_dir,
        };
        let (all, run) = select(&c)?;
        for k in &run {
            assert!(find(&all, &k.name).is_ok(), "{} is in the run, so every name finds it", k.name);
        }
        Ok(run.iter().map(|k| k.name.clone()).collect())
    }

    #[test]
    fn kernels_are_chosen_with_series_tree_and_defaults() {
        let fix = "hid-bpf-reg-destroyed-device";
        assert_eq!(
            pick(&["6.12", &format!("6.12+{fix}")], None, None).unwrap(),
            ["6.12", "6.12+hid_bpf_reg_destroyed_device"]
        );
        // The spelling of the column name finds the series too.
        assert_eq!(pick(&["7.3+hid_bpf_srcu_until_free"], None, None).unwrap(), ["7.3+hid_bpf_srcu_until_free"]);
        // --patches alone: every default kernel, named after the series.
        assert_eq!(
            pick(&[], None, Some("hid-bpf-srcu-until-free")).unwrap(),
            ["6.12+hid_bpf_srcu_until_free", "7.3+hid_bpf_srcu_until_free"]
        );
        // --kernel-src alone: the tree; with --kernels, beside the Debian kernels.
        let t = Path::new("/src/linux");
        assert_eq!(pick(&[], Some(t), None).unwrap(), ["tree"]);
        assert_eq!(
            pick(&["6.12", "tree", "tree+hid-bpf-srcu-until-free"], Some(t), None).unwrap(),
            ["6.12", "tree", "tree+hid_bpf_srcu_until_free"]
        );
        assert!(pick(&["tree"], None, None).unwrap_err().to_string().contains("--kernel-src"));
        let e = pick(&["6.12+no-such-series"], None, None).unwrap_err().to_string();
        assert!(e.contains("patch series `no-such-series`") && e.contains("hid-bpf-srcu-until-free"), "{e}");
        // A series keeps its kernel's release series (min_kernel compares it).
        let repo = crate::base::layout::Repo::locate();
        let defined = load(&repo.kernels_file()).unwrap();
        let w = vec![format!("6.12+{fix}")];
        let dir = repo.root.join("patches");
        let c = Choice {
            words: &w,
            from: "x",
            defined: &defined,
            tree: None,
            image: None,
            patches: None,
            patches_dir: &dir,
        };
        let run = select(&c).unwrap().1;
        assert_eq!(run[0].series(), Some((6, 12)));
        assert!(run[0].patches.as_ref().unwrap().ends_with(fix));
    }

    #[test]
    fn a_dash_in_a_kernel_name_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("kernels.toml");
        std::fs::write(&f, "[[kernel]]\nname = \"7.3-rc1\"\nsummary = \"s\"\npackage = \"p\"\n").unwrap();
        assert!(load(&f).unwrap_err().to_string().contains("no `-`"));
        std::fs::write(&f, "[[kernel]]\nname = \"tree\"\nsummary = \"s\"\npackage = \"p\"\n").unwrap();
        assert!(load(&f).unwrap_err().to_string().contains("are taken"));
        assert_eq!(name_part("hid-bpf-reg-destroyed-device"), "hid_bpf_reg_destroyed_device");
    }
}
