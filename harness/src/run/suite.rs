//! What a command works with: the kernels and cells of this run (from
//! the definitions, the flags and the environment), the allow-list and
//! known failures, each kernel's tree (resolved once), its built kernel,
//! and the catalogue loaded against it.
use crate::base::error::{Error, Result};
use crate::base::layout::{cache_root, Repo};
use crate::catalogue::scenarios::{self, Entry, LoadOptions, Loaded};
use crate::judge::allowlist::AllowList;
use crate::judge::known::KnownFailures;
use crate::kernel::build::{BuiltKernel, KernelBuilder};
use crate::kernel::cell::{self, KernelCell};
use crate::kernel::image::{self, PrebuiltImage};
use crate::kernel::lockfile::{self, Pins};
use crate::kernel::source::KernelSource;
use crate::kernel::spec::{self, KernelSpec, Target};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--kernel-src`; else HIDVM_KERNEL_SRC; else the kernels of
    /// guest-image/kernels.toml.
    pub kernel_src: Option<PathBuf>,
    /// `--kernels 6.12,6.12+fix,tree`: kernels to run on (default:
    /// HIDVM_KERNELS, else those run by default); see [`spec::select`].
    pub kernels: Vec<String>,
    /// `--baseline 6.12`: the kernel other columns are compared with; else
    /// HIDVM_BASELINE.
    pub baseline: Option<String>,
    /// `--config-fragment`; else HIDVM_CONFIG_FRAGMENT (comma-separated):
    /// the user's kconfig fragments, merged after hidvm's.
    pub config_fragments: Vec<PathBuf>,
    /// `--patches`; else HIDVM_PATCHES: a series applied to every kernel
    /// of the run that has none of its own (`6.12` becomes `6.12+<series>`).
    pub patches: Option<PathBuf>,
    /// `--kernel`; else HIDVM_KERNEL: a kernel the user built, booted as is.
    pub prebuilt: Option<PathBuf>,
    /// `--kernel-config`; else HIDVM_KERNEL_CONFIG: its .config.
    pub prebuilt_config: Option<PathBuf>,
    /// Print kernel build progress.
    pub verbose: bool,
    /// `hidvm test --bless`: write what replay steps observe to their
    /// expectation files instead of comparing.
    pub bless: bool,
}

pub struct Suite {
    pub repo: Repo,
    pub cache: PathBuf,
    /// Kernels this run covers.
    pub kernels: Vec<KernelSpec>,
    /// Every kernel a name can refer to: those defined, the user's tree
    /// and prebuilt kernel, and the run's kernels with a series.
    pub all_kernels: Vec<KernelSpec>,
    /// Cells this run covers.
    pub cells: Vec<KernelCell>,
    /// Every defined cell.
    pub all_cells: Vec<KernelCell>,
    /// The cells of guest-image/cells.toml, which scenario files' `cells`
    /// name (with a prebuilt kernel, `all_cells` is only its own).
    pub defined_cells: Vec<KernelCell>,
    pub allow: AllowList,
    pub known: KnownFailures,
    pub opts: Options,
    /// Each kernel's tree, resolved once per command: a tree edited during
    /// a `vm-test` must not put two different kernels into one matrix.
    sources: std::sync::Mutex<BTreeMap<String, KernelSource>>,
    /// The exact Debian sources (guest-image/kernels.lock).
    pub pins: Pins,
    /// Debian's suites, for a pinned source the cache does not hold.
    index: crate::kernel::debian::Apt,
    /// Expectation files blessed in this command: file -> (target, content),
    /// so two targets that disagree are caught instead of overwriting.
    pub blessed: std::sync::Mutex<BTreeMap<PathBuf, (String, String)>>,
    /// Which snapshot template tests start from: 0, the shared one; N, a
    /// template booted afresh for round N of `vm-test --repeat`.
    pub generation: std::sync::atomic::AtomicU32,
}

/// `HIDVM_CELLS=gcc,llvm-debug` style selection: every name must exist.
fn env_selection(var: &str) -> Option<Vec<String>> {
    std::env::var(var)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.split(',').map(|w| w.trim().to_string()).collect())
}

impl Suite {
    /// The kernels and cells run by default, or those named by
    /// `--kernel`/HIDVM_KERNELS and HIDVM_CELLS (CI runs one target per
    /// job; flavours such as the debug cells run only when named).
    /// `all_cells` keeps every definition for explicit `--cell` choices.
    pub fn new(opts: Options) -> Result<Suite> {
        let repo = Repo::locate();
        let all_cells = cell::load(&repo.cells_file())?;
        let allow = AllowList::load(&repo.root.join("tests/allowlist.toml"))?;
        let known = KnownFailures::load(&repo.root.join("tests/known-failures.toml"))?;
        let cells = run_cells(&all_cells)?;
        let opts = with_environment(opts);
        let user_tree = KernelSource::user_override(opts.kernel_src.as_deref());
        let image = match &opts.prebuilt {
            Some(p) => Some(PrebuiltImage::locate(p, opts.prebuilt_config.as_deref())?),
            None => None,
        };
        let pins = Pins::load(&lockfile::path_for(&repo.kernels_file()))?;
        let mut defined = spec::load(&repo.kernels_file())?;
        pins.apply(&mut defined);
        let (from, words) = match env_selection("HIDVM_KERNELS") {
            _ if !opts.kernels.is_empty() => ("--kernels", opts.kernels.clone()),
            Some(w) => ("HIDVM_KERNELS", w),
            None => ("--kernels", Vec::new()),
        };
        let patches_dir = repo.patches_dir();
        let own_patches = opts.patches.as_deref().map(|p| own_series(&repo, p));
        let (all_kernels, kernels) = spec::select(&spec::Choice {
            words: &words,
            from,
            defined: &defined,
            tree: user_tree.as_deref(),
            image: image.as_ref(),
            patches: own_patches.as_deref(),
            patches_dir: &patches_dir,
        })?;
        // A prebuilt kernel is its own cell, named after its compiler; run
        // alone, its cell is the run's.
        let defined_cells = all_cells.clone();
        let (all_cells, cells) = match &image {
            Some(image) if kernels.iter().all(|k| k.image.is_some()) => (vec![image.cell()], vec![image.cell()]),
            _ => (all_cells, cells),
        };
        let cache = cache_root();
        Ok(Suite {
            repo,
            index: crate::kernel::debian::Apt::new(&cache),
            cache,
            kernels,
            all_kernels,
            cells,
            all_cells,
            defined_cells,
            allow,
            known,
            opts,
            pins,
            sources: Default::default(),
            blessed: Default::default(),
            generation: Default::default(),
        })
    }

    /// The same run against another cache directory (cold-build benches).
    pub fn with_cache(&self, cache: PathBuf, verbose: bool) -> Suite {
        Suite {
            repo: self.repo.clone(),
            cache: cache.clone(),
            kernels: self.kernels.clone(),
            all_kernels: self.all_kernels.clone(),
            cells: self.cells.clone(),
            all_cells: self.all_cells.clone(),
            defined_cells: self.defined_cells.clone(),
            allow: self.allow.clone(),
            known: self.known.clone(),
            opts: Options { verbose, ..self.opts.clone() },
            sources: Default::default(),
            pins: self.pins.clone(),
            index: crate::kernel::debian::Apt::new(&cache),
            blessed: Default::default(),
            generation: Default::default(),
        }
    }

    /// A kernel's tree: unpacked (or fetched) on first use, then the same
    /// for the rest of the command.
    pub fn source(&self, kernel: &str) -> Result<KernelSource> {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sources.get(kernel) {
            return Ok(s.clone());
        }
        let s = self.resolve_source(kernel)?;
        sources.insert(kernel.to_string(), s.clone());
        Ok(s)
    }

    /// Several kernels' trees resolved side by side: each unpack is one xz
    /// stream (one core), so a fresh cache unpacks 6.12 and 7.3 at once
    /// instead of one after the other. Each tarball's unpack holds its own
    /// lock, as when one process at a time asks.
    pub fn resolve_sources(&self, kernels: &[String]) -> Result<()> {
        let missing: Vec<&String> = {
            let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
            kernels.iter().filter(|k| !sources.contains_key(k.as_str())).collect()
        };
        if missing.len() < 2 {
            return Ok(());
        }
        let resolved: Vec<(&String, Result<KernelSource>)> = std::thread::scope(|scope| {
            let running: Vec<_> = missing.iter().map(|k| (*k, scope.spawn(|| self.resolve_source(k)))).collect();
            running
                .into_iter()
                .map(|(k, h)| {
                    let panicked = || Err(Error::Other(format!("resolving kernel {k}'s tree panicked")));
                    (k, h.join().unwrap_or_else(|_| panicked()))
                })
                .collect()
        });
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        for (k, s) in resolved {
            sources.entry(k.clone()).or_insert(s?);
        }
        Ok(())
    }

    /// `kernel`'s tree, unpacked or fetched if the cache lacks it (not
    /// remembered: [`Suite::source`] does that).
    fn resolve_source(&self, kernel: &str) -> Result<KernelSource> {
        let spec = spec::find(&self.all_kernels, kernel)?;
        let s = match &spec.image {
            // Headers and kernel: programs for a prebuilt image come from
            // the tree given with it, else from the first kernel's tree.
            Some(image) => {
                let tree_spec = match &spec.tree {
                    Some(_) => spec.clone(),
                    None => spec::load(&self.repo.kernels_file())?[0].clone(),
                };
                let mut s = KernelSource::resolve(&tree_spec, &self.cache, &self.pins, &self.index)?;
                s.version = image.version.clone();
                // Not the tree's kernel: known bugs of that tree never apply.
                let meta = std::fs::metadata(&image.boot_image).ok();
                let stamp = format!("{}:{:?}", image.boot_image.display(), meta.map(|m| (m.len(), m.modified().ok())));
                let hash = &crate::base::layout::sha256_parts([stamp.as_bytes()])[..8];
                s.label = format!("prebuilt:{}@{hash}", image.version);
                s.description = format!("{} (Linux {})", image.boot_image.display(), image.version);
                s
            }
            None => KernelSource::resolve(spec, &self.cache, &self.pins, &self.index)?,
        };
        Ok(s)
    }

    /// Debian's suites (apt on a private state).
    pub fn index(&self) -> &dyn crate::kernel::debian::Index {
        &self.index
    }

    pub fn spec(&self, kernel: &str) -> Result<&KernelSpec> {
        spec::find(&self.all_kernels, kernel)
    }

    /// The key `target`'s kernel is (or would be) cached under.
    pub fn kernel_cache_key(&self, target: &Target) -> Result<String> {
        let cell = cell::find(&self.all_cells, &target.cell)?;
        let source = self.source(&target.kernel)?;
        KernelBuilder::new(&self.repo, &self.cache, &source)
            .with_user_fragments(&self.opts.config_fragments)?
            .cache_key(cell)
    }

    pub fn kernel(&self, target: &Target) -> Result<BuiltKernel> {
        let cell = cell::find(&self.all_cells, &target.cell)?;
        let source = self.source(&target.kernel)?;
        if let Some(image) = &self.spec(&target.kernel)?.image {
            return crate::kernel::prebuilt::prepare(&self.repo, &self.cache, image, &source.root);
        }
        let mut builder =
            KernelBuilder::new(&self.repo, &self.cache, &source).with_user_fragments(&self.opts.config_fragments)?;
        builder.verbose = self.opts.verbose;
        builder.ensure(cell)
    }

    /// `target`'s kernel if it is ready without a build: cached, or a
    /// prebuilt image.
    pub fn cached_kernel(&self, target: &Target) -> Result<Option<BuiltKernel>> {
        if self.spec(&target.kernel)?.image.is_some() {
            return self.kernel(target).map(Some);
        }
        let cell = cell::find(&self.all_cells, &target.cell)?;
        let source = self.source(&target.kernel)?;
        KernelBuilder::new(&self.repo, &self.cache, &source)
            .with_user_fragments(&self.opts.config_fragments)?
            .cached(cell)
    }

    /// The repository's catalogue (scenarios and self-tests).
    pub fn catalogue(&self) -> Result<Vec<Entry>> {
        scenarios::catalogue(&self.repo, &self.defined_cells)
    }

    /// Scenario files named on the command line (each file, and every
    /// `*.toml` of each directory): the user's own, never one of the
    /// catalogue's known kernel bugs.
    pub fn user_entries(&self, paths: &[PathBuf]) -> Result<Vec<Entry>> {
        scenarios::entries_for_paths(paths, &self.defined_cells)
    }

    /// Load every entry on every kernel of the run that does not skip it:
    /// a malformed file stops the command before anything builds or boots.
    /// Returns how many (entry, kernel) pairs loaded.
    pub fn load_each(&self, entries: &[Entry]) -> Result<usize> {
        let used: Vec<String> = self
            .kernels
            .iter()
            .filter(|k| entries.iter().any(|e| e.skip_reason(k).is_none()))
            .map(|k| k.name.clone())
            .collect();
        self.resolve_sources(&used)?;
        let mut n = 0;
        for e in entries {
            for k in self.kernels.iter().filter(|k| e.skip_reason(k).is_none()) {
                self.load(e, &k.name)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// One scenario, by a path to its file (`my/acme.toml`) or by its
    /// catalogue name (`mouse_swap_buttons`, as `hidvm list` shows it
    /// without the target prefix).
    pub fn scenario(&self, name_or_path: &str) -> Result<Entry> {
        if scenarios::looks_like_path(name_or_path) {
            let path = PathBuf::from(name_or_path);
            let mut found = self.user_entries(std::slice::from_ref(&path))?;
            if found.len() != 1 {
                return Err(Error::Other(format!(
                    "{name_or_path} holds {} scenario files; name one of them",
                    found.len()
                )));
            }
            return Ok(found.remove(0));
        }
        self.catalogue()?.into_iter().find(|e| e.name == name_or_path).ok_or_else(|| {
            Error::Other(format!(
                "no scenario named `{name_or_path}`; `hidvm list` shows them (without the target prefix), or give a path to a scenario file"
            ))
        })
    }

    /// `entry` loaded for `kernel` (whose tree `kernel:` programs come from;
    /// unpacked or fetched on first use).
    pub fn load(&self, entry: &Entry, kernel: &str) -> Result<Loaded> {
        let tree = self.source(kernel)?.root;
        scenarios::load(&self.repo, entry, LoadOptions { kernel_tree: Some(&tree), bless: self.opts.bless })
    }
}

/// `--patches NAME` (or `patches/NAME`) where no such path exists here:
/// one of hidvm's own series, in the repository's `patches/` (an installed
/// hidvm carries them).
fn own_series(repo: &Repo, p: &std::path::Path) -> PathBuf {
    if p.exists() {
        return p.to_path_buf();
    }
    let own = repo.patches_dir().join(p.strip_prefix("patches").unwrap_or(p));
    if own.exists() {
        own
    } else {
        p.to_path_buf()
    }
}

/// The cells HIDVM_CELLS names (each must exist), else those run by default.
fn run_cells(all_cells: &[KernelCell]) -> Result<Vec<KernelCell>> {
    let mut cells = all_cells.to_vec();
    match env_selection("HIDVM_CELLS") {
        Some(wanted) => {
            for w in &wanted {
                cell::find(&cells, w).map_err(|e| Error::Other(format!("HIDVM_CELLS: {e}")))?;
            }
            cells.retain(|c| wanted.contains(&c.name));
        }
        None => cells.retain(|c| c.default_run),
    }
    Ok(cells)
}

/// The options, each one the command line left unset taken from its
/// environment variable.
fn with_environment(mut opts: Options) -> Options {
    if opts.config_fragments.is_empty() {
        opts.config_fragments =
            env_selection("HIDVM_CONFIG_FRAGMENT").unwrap_or_default().into_iter().map(PathBuf::from).collect();
    }
    if opts.patches.is_none() {
        opts.patches = std::env::var_os("HIDVM_PATCHES").filter(|v| !v.is_empty()).map(PathBuf::from);
    }
    if opts.baseline.is_none() {
        opts.baseline = std::env::var("HIDVM_BASELINE").ok().filter(|v| !v.trim().is_empty());
    }
    let env_path = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from);
    opts.prebuilt = opts.prebuilt.take().or_else(|| env_path(image::ENV_VAR));
    opts.prebuilt_config = opts.prebuilt_config.take().or_else(|| env_path(image::CONFIG_ENV_VAR));
    opts
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidvm_s_own_series_are_found_by_name_from_anywhere() {
        let repo = Repo::locate();
        let name = std::path::Path::new("hid-bpf-progs-logical-minimum");
        assert_eq!(own_series(&repo, name), repo.patches_dir().join(name));
        let elsewhere = std::path::Path::new("/nowhere/series");
        assert_eq!(own_series(&repo, elsewhere), elsewhere);
    }
}
