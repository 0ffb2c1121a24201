//! Per-cell kernel builds, cached.
//!
//! Every tree has a workspace, `<cache>/kbuild/<name>/` ([`KernelSource`]);
//! per cell (and set of user fragments) it holds `<cell>/`:
//! * the `O=` directory, reused for incremental builds: `build/` for a
//!   user's tree built from where it is, else `src/.hidvm-<cell>/` inside
//!   the workspace's build tree (one per tree whatever its series, so a
//!   `6.12` and a `6.12+fix` column, or the steps of a bisect, rebuild
//!   only what differs; inside the tree, kbuild names sources relatively,
//!   which lets [`crate::kernel::ccache`] hit across workspaces);
//! * `build.log`, everything make printed; `fragments/`, as merged;
//! * `out/<key>/`, one per kernel built (per request key): `vmlinux`, the
//!   boot image, the cell's modules, `.config`, `modules/` (`make
//!   modules_install` of a kernel with modules: `lib/modules/<release>/`,
//!   stripped, no depmod: the host may not have it, the guest runs the
//!   image's), `vmlinux.h` (the BTF as C, for
//!   fixtures) and `record.json` (source identity, fragments, compiler,
//!   resolved-config hash), made in a temporary directory and renamed
//!   into place when complete; so two kernels of one tree exist side by
//!   side, and a build killed halfway leaves nothing that looks built;
//! * `lock`, flock, exclusive while building; each `out/<key>.lock` is
//!   held shared while a VM boots that kernel, so it is never removed
//!   under a running test (the oldest are removed beyond [`KEEP_OUTPUTS`]).
//!
//! If the record matches the request, no make runs at all.
use crate::base::error::{one_line, Error, Result};
use crate::base::layout::{sha256_parts, write_atomic, Repo};
use crate::base::lock::{FileLock, Mode};
use crate::base::tools;
use crate::kernel::cell::KernelCell;
use crate::kernel::kconfig::{self, Fragment};
use crate::kernel::source::KernelSource;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Bump when the build recipe changes in a way the key cannot see.
const RECIPE_VERSION: &str = "hidvm-kbuild-2";
/// Built kernels kept per cell directory (besides those in use).
pub const KEEP_OUTPUTS: usize = 4;
/// The fragment of the hid-tools pytest suite (`hidvm hid-tools`): merged
/// into every cell, but not required of a prebuilt kernel.
pub const HIDTOOLS_FRAGMENT: &str = "hid-tools.config";
/// The base every cell's fragments are merged onto.
const BASE_CONFIG: &str = "tinyconfig";

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct BuildRecord {
    pub cell: String,
    pub request_key: String,
    pub kernel_version: String,
    /// The source's label (`6.12.118-1~deb12u1+fix@1a2b3c4d`).
    #[serde(default)]
    pub kernel_source: String,
    pub source_root: PathBuf,
    pub source_identity: String,
    /// The tree's path as the compiler saw it, when it is not `source_root`.
    #[serde(default)]
    pub source_base: Option<PathBuf>,
    pub compiler: String,
    pub fragments: Vec<String>,
    pub resolved_config_sha256: String,
    pub vmlinux_size: u64,
    pub vmlinux_mtime_ns: i128,
    pub vmlinux_h_sha256: String,
    pub build_seconds: f64,
    /// What ccache did in this build (none: built without it).
    #[serde(default)]
    pub ccache: Option<crate::kernel::ccache::Stats>,
    /// The kernel release whose modules `make modules_install` put under
    /// `modules/lib/modules/` (None: the config has no modules).
    #[serde(default)]
    pub modules_release: Option<String>,
}

/// A built kernel, leased: while this value lives, no other process can
/// rebuild the cell.
pub struct BuiltKernel {
    pub cell: KernelCell,
    pub dir: PathBuf,
    pub vmlinux: PathBuf,
    /// What QEMU boots (vmlinux or bzImage, per the cell).
    pub boot_image: PathBuf,
    pub vmlinux_h: PathBuf,
    /// The cell's modules (cells.toml `modules`), built.
    pub modules: Vec<PathBuf>,
    /// Its resolved .config.
    pub config_file: PathBuf,
    /// The tree's path as the compiler saw it (its debug info's file names
    /// start with it), if not the source's root.
    pub source_base: Option<PathBuf>,
    /// Every module installed (`lib/modules/<release>/`, no depmod files),
    /// if the kernel has modules: what the hid-tools suite modprobes.
    pub modules_tree: Option<PathBuf>,
    pub record: BuildRecord,
    /// Whether this call ran a build (false: served from the cache).
    pub built_now: bool,
    _lease: FileLock,
}

pub struct KernelBuilder<'a> {
    pub repo: &'a Repo,
    pub cache: PathBuf,
    pub source: &'a KernelSource,
    pub jobs: usize,
    /// Print progress lines (CLI); tests keep stderr short.
    pub verbose: bool,
    /// bpftool to dump BTF with (a stand-in in unit tests). A String, not
    /// a Path: duct runs a one-component Path as `./bpftool`.
    pub bpftool: String,
    /// The machine-wide "one kernel build at a time" lock (unit tests use
    /// their own, so they never wait for a real build).
    pub build_slot: PathBuf,
    /// The user's own fragments (`--config-fragment`), merged after the
    /// cell's and checked the same way.
    pub user_fragments: Vec<Fragment>,
    /// The compiler cache builds use (none: without).
    pub ccache: Option<crate::kernel::ccache::Ccache>,
}

impl BuiltKernel {
    /// A kernel hidvm did not build (a prebuilt image), leased by `lease`.
    pub fn from_parts(
        cell: KernelCell,
        dir: PathBuf,
        vmlinux: PathBuf,
        boot_image: PathBuf,
        vmlinux_h: PathBuf,
        record: BuildRecord,
        lease: FileLock,
    ) -> BuiltKernel {
        BuiltKernel {
            cell,
            vmlinux,
            boot_image,
            vmlinux_h,
            modules: vec![],
            config_file: dir.join("build/.config"),
            source_base: None,
            dir,
            modules_tree: None,
            record,
            built_now: false,
            _lease: lease,
        }
    }

    /// The kernel's resolved .config.
    pub fn config(&self) -> Result<crate::kernel::kconfig::ConfigMap> {
        let path = &self.config_file;
        let text = std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?;
        Ok(crate::kernel::kconfig::parse(&text))
    }

    /// The detectors its config has, which the guest must find working.
    pub fn detectors(&self) -> Result<hidvm_proto::job::Detectors> {
        let config = self.config()?;
        Ok(hidvm_proto::job::Detectors { kmemleak: config.get("CONFIG_DEBUG_KMEMLEAK") == Some(&Some("y".into())) })
    }
}

impl<'a> KernelBuilder<'a> {
    pub fn new(repo: &'a Repo, cache: &Path, source: &'a KernelSource) -> Self {
        let jobs =
            std::env::var("HIDVM_JOBS").ok().and_then(|j| j.parse().ok()).unwrap_or_else(crate::base::host::cores);
        KernelBuilder {
            repo,
            cache: cache.to_path_buf(),
            source,
            jobs,
            verbose: true,
            bpftool: "bpftool".into(),
            build_slot: std::env::temp_dir().join("hidvm-kernel-build.lock"),
            user_fragments: Vec::new(),
            ccache: crate::kernel::ccache::Ccache::for_cache(cache),
        }
    }

    /// Add the user's fragments (read now: an unreadable one is an error
    /// before anything is built).
    pub fn with_user_fragments(mut self, paths: &[PathBuf]) -> Result<Self> {
        for p in paths {
            let f = Fragment::read(p).map_err(|e| {
                Error::Other(format!(
                    "config fragment {}: {e}; give a readable kconfig fragment (CONFIG_X=y lines)",
                    p.display()
                ))
            })?;
            if kconfig::parse(&f.text).is_empty() {
                return Err(Error::Other(format!(
                    "config fragment {} sets no option (no `CONFIG_X=...` or `# CONFIG_X is not set` line)",
                    p.display()
                )));
            }
            self.user_fragments.push(f);
        }
        Ok(self)
    }

    /// The cell's build directory for this tree; with user fragments, one
    /// per set of them, so switching back and forth does not rebuild.
    pub fn cell_dir(&self, cell: &KernelCell) -> PathBuf {
        self.source.workspace.join(self.cell_name(cell))
    }

    /// `gcc`, `gcc-user-1a2b3c4d`.
    fn cell_name(&self, cell: &KernelCell) -> String {
        let mut name = cell.name.clone();
        if !self.user_fragments.is_empty() {
            let h = sha256_parts(self.user_fragments.iter().map(|f| f.text.as_bytes()));
            name.push_str(&format!("-user-{}", &h[..8]));
        }
        name
    }

    /// The `O=` directory in `tree` (the tree make runs in).
    fn obj_dir(&self, cell: &KernelCell, tree: &Path) -> PathBuf {
        if self.source.copy {
            tree.join(format!(".hidvm-{}", self.cell_name(cell)))
        } else {
            self.cell_dir(cell).join("build")
        }
    }

    fn fragments(&self, cell: &KernelCell) -> Result<Vec<Fragment>> {
        let dir = self.repo.fragments_dir();
        let mut common: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(Error::io(format!("reading {}", dir.display())))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "config"))
            .filter(|p| {
                // Flavour fragments are only merged by cells that name them.
                let name = p.file_name().unwrap().to_string_lossy();
                !name.starts_with("flavour-")
            })
            .collect();
        common.sort();
        for extra in &cell.fragments {
            let p = dir.join(extra);
            if !p.exists() {
                return Err(Error::Other(format!(
                    "cell {}: fragment {extra} not found in {}; add it or fix guest-image/cells.toml",
                    cell.name,
                    dir.display()
                )));
            }
            common.push(p);
        }
        let mut out: Vec<Fragment> = common
            .iter()
            .map(|p| Fragment::read(p).map_err(Error::io(format!("reading {}", p.display()))))
            .collect::<Result<_>>()?;
        out.extend(self.user_fragments.iter().map(|f| Fragment { path: f.path.clone(), text: f.text.clone() }));
        Ok(out)
    }

    /// The key a build of `cell` would be cached under, without building:
    /// what CI names its kernel caches by.
    pub fn cache_key(&self, cell: &KernelCell) -> Result<String> {
        let fragments = self.fragments(cell)?;
        Ok(self.key_of(cell, &fragments)?.0)
    }

    /// (request key, compiler version line).
    fn key_of(&self, cell: &KernelCell, fragments: &[Fragment]) -> Result<(String, String)> {
        cell.check_tools()?;
        let compiler = tools::version_line(&cell.compiler, &["--version"])?;
        // pahole writes the BTF every program is checked against.
        let pahole = tools::version_line("pahole", &["--version"]).unwrap_or_else(|_| "no pahole".into());
        Ok((self.request_key(cell, fragments, &format!("{compiler}\n{pahole}")), compiler))
    }

    /// Everything that determines the build's output, hashed.
    fn request_key(&self, cell: &KernelCell, fragments: &[Fragment], compiler: &str) -> String {
        let cell_json = serde_json::to_string(cell).expect("cell serializes");
        let mut parts: Vec<&[u8]> = vec![
            RECIPE_VERSION.as_bytes(),
            BASE_CONFIG.as_bytes(),
            cell_json.as_bytes(),
            self.source.identity.as_bytes(),
            compiler.as_bytes(),
        ];
        for f in fragments {
            parts.push(f.text.as_bytes());
        }
        sha256_parts(parts)
    }

    /// The cell's kernel if the cache holds it; nothing is built (a
    /// pipelined `vm-test` runs these targets' tests at once).
    pub fn cached(&self, cell: &KernelCell) -> Result<Option<BuiltKernel>> {
        let dir = self.cell_dir(cell);
        let fragments = self.fragments(cell)?;
        let (key, _) = self.key_of(cell, &fragments)?;
        let out = output_dir(&dir, &key);
        if !out.exists() {
            return Ok(None);
        }
        self.leased(cell, &out, &key, false)
    }

    /// The kernel in `out` under a shared lease (it stays while in use),
    /// if it is complete and built for `key`; else None, lease dropped.
    fn leased(&self, cell: &KernelCell, out: &Path, key: &str, built_now: bool) -> Result<Option<BuiltKernel>> {
        let what = format!("kernel cell {}", cell.name);
        let lease = FileLock::acquire(&lease_path(out), Mode::Shared, &what).map_err(Error::io("kernel cache lock"))?;
        Ok(fresh_record(out, cell, key).map(|record| self.built(cell, out, record, built_now, lease)))
    }

    /// The cell's kernel, built if the cache does not hold it yet.
    pub fn ensure(&self, cell: &KernelCell) -> Result<BuiltKernel> {
        let dir = self.cell_dir(cell);
        let fragments = self.fragments(cell)?;
        let (key, compiler) = self.key_of(cell, &fragments)?;
        let out = output_dir(&dir, &key);
        let what = format!("kernel cell {}", cell.name);
        let mut built_now = false;
        loop {
            // Fast path: a shared lease on a complete output.
            if let Some(kernel) = self.leased(cell, &out, &key, built_now)? {
                return Ok(kernel);
            }
            let building =
                FileLock::acquire(&dir.join("lock"), Mode::Exclusive, &what).map_err(Error::io("kernel cache lock"))?;
            // Someone may have built it while we waited.
            if fresh_record(&out, cell, &key).is_none() {
                building.share_with_children(true).map_err(Error::io("kernel cache lock"))?;
                let built = self.build(cell, &dir, &out, &fragments, &compiler, &key);
                building.share_with_children(false).map_err(Error::io("kernel cache lock"))?;
                built?;
                built_now = true;
                prune_outputs(&dir.join("out"), &out);
            }
        }
    }

    fn built(
        &self,
        cell: &KernelCell,
        out: &Path,
        record: BuildRecord,
        built_now: bool,
        lease: FileLock,
    ) -> BuiltKernel {
        BuiltKernel {
            cell: cell.clone(),
            dir: out.to_path_buf(),
            vmlinux: out.join("vmlinux"),
            boot_image: out.join(cell.boot.path_in_build()),
            vmlinux_h: out.join("vmlinux.h"),
            modules: cell.modules.iter().map(|m| out.join(m)).collect(),
            config_file: out.join(".config"),
            source_base: record.source_base.clone(),
            modules_tree: record.modules_release.as_ref().map(|r| out.join("modules/lib/modules").join(r)),
            record,
            built_now,
            _lease: lease,
        }
    }

    /// Build `cell` in its `O=` directory: configure, check what the
    /// configuration kept, make, dump the BTF; then publish the kernel as
    /// `out` (complete, or not at all).
    fn build(
        &self,
        cell: &KernelCell,
        dir: &Path,
        out: &Path,
        fragments: &[Fragment],
        compiler: &str,
        key: &str,
    ) -> Result<BuildRecord> {
        tools::require_all(tools::KERNEL_BUILD)?;
        if self.bpftool == "bpftool" {
            tools::require(&tools::BPFTOOL)?;
        }
        crate::kernel::toolfloor::check(&self.source.root, &format!("Linux {}", self.source.version), cell)?;
        let writable = "; set HIDVM_CACHE_DIR to a writable directory with a few GB free";
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}{writable}", dir.display())))?;
        let log_path = dir.join("build.log");
        let log = File::create(&log_path).map_err(Error::io(format!("creating {}{writable}", log_path.display())))?;

        // One kernel build at a time on this machine, whatever cache it
        // writes to: two at once on a small machine are slower than two in
        // a row. Children inherit it, like the cell lock.
        let slot_path = &self.build_slot;
        let slot = FileLock::acquire(slot_path, Mode::Exclusive, "another kernel build to finish")
            .map_err(Error::io(format!("kernel build slot lock {}", slot_path.display())))?;
        slot.share_with_children(true).map_err(Error::io("kernel build slot lock"))?;
        let (tree, _tree_lock) = self.source.build_tree()?;
        let obj = self.obj_dir(cell, &tree);
        std::fs::create_dir_all(&obj).map_err(Error::io(format!("creating {}{writable}", obj.display())))?;

        let started = Instant::now();
        let ccache = self.ccache.clone();
        let before = ccache.as_ref().map(|c| c.stats());
        let what = format!("cell {} ({}, {})", cell.name, self.source.label, compiler);
        let progress = self.verbose.then(|| {
            crate::base::output::start(crate::base::output::Phase::KernelBuild { target: &what, log: &log_path })
        });
        let mut make_args = cell.make_args();
        make_args.extend(ccache.as_ref().map(|c| c.make_arg(cell)));
        let env = ccache.as_ref().map(|c| c.env()).unwrap_or_default();
        let step = Step { cell: &cell.name, src: &tree, obj: &obj, make_args, env, log: &log, log_path: &log_path };
        let (fragments, resolved_text) = self.configure(&step, cell, dir, fragments)?;
        let with_modules = kconfig::parse(&resolved_text).get("CONFIG_MODULES") == Some(&Some("y".into()));
        self.compile(&step, cell, with_modules)?;
        let modules = dir.join("modules");
        let modules_release = if with_modules { Some(install_modules(&step, &modules)?) } else { None };
        let btf = self.dump_btf(&step, &obj.join("vmlinux"))?;
        let stats = ccache.as_ref().zip(before).map(|(c, b)| c.stats().since(b));
        let record = BuildRecord {
            cell: cell.name.clone(),
            request_key: key.to_string(),
            kernel_version: self.source.version.clone(),
            kernel_source: self.source.label.clone(),
            source_root: self.source.root.clone(),
            source_identity: self.source.identity.clone(),
            source_base: self.source.copy.then(|| obj.join("..")),
            compiler: compiler.to_string(),
            fragments: fragments.iter().map(|f| f.path.display().to_string()).collect(),
            resolved_config_sha256: sha256_parts([resolved_text.as_bytes()]),
            vmlinux_size: 0,
            vmlinux_mtime_ns: 0,
            vmlinux_h_sha256: sha256_parts([btf.as_slice()]),
            build_seconds: started.elapsed().as_secs_f64(),
            ccache: stats,
            modules_release,
        };
        let installed = record.modules_release.is_some().then_some(modules.as_path());
        let record = publish(&obj, out, cell, &btf, installed, record)?;
        if let Some(p) = progress {
            p.finish(&match stats {
                Some(s) => format!("built ({})", s.describe()),
                None => "built".into(),
            });
        }
        Ok(record)
    }

    /// tinyconfig, the fragments merged on top (spelled as this tree
    /// spells them), olddefconfig; then every requested option must have
    /// survived. Returns the fragments as merged and the resolved .config.
    fn configure(
        &self,
        step: &Step<'_>,
        cell: &KernelCell,
        dir: &Path,
        fragments: &[Fragment],
    ) -> Result<(Vec<Fragment>, String)> {
        let obj = step.obj;
        step.make(&[BASE_CONFIG.to_string()])?;
        // Spelled as this tree spells them (renamed options), written next
        // to the build for merge_config.sh and for the reader of build.log.
        let known = kconfig::known_symbols(&self.source.root);
        let fragments = &kconfig::adapt(fragments, &known);
        let adapted_dir = dir.join("fragments");
        let _ = std::fs::remove_dir_all(&adapted_dir);
        std::fs::create_dir_all(&adapted_dir).map_err(Error::io(format!("creating {}", adapted_dir.display())))?;
        let fragments: Vec<Fragment> = fragments
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let name = f.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let path = adapted_dir.join(format!("{i:02}-{name}"));
                std::fs::write(&path, &f.text).map_err(Error::io(format!("writing {}", path.display())))?;
                Ok(Fragment { path, text: f.text.clone() })
            })
            .collect::<Result<_>>()?;
        let mut merge = vec![
            "-m".to_string(),
            "-O".to_string(),
            obj.display().to_string(),
            obj.join(".config").display().to_string(),
        ];
        merge.extend(fragments.iter().map(|f| f.path.display().to_string()));
        step.run(&self.source.root.join("scripts/kconfig/merge_config.sh").display().to_string(), &merge)?;
        step.make(&["olddefconfig".to_string()])?;

        let resolved_text =
            std::fs::read_to_string(obj.join(".config")).map_err(Error::io("reading the resolved .config"))?;
        let requested = kconfig::requested(&fragments);
        let mut dropped = kconfig::dropped(&requested, &kconfig::parse(&resolved_text));
        if !dropped.is_empty() {
            // Tell a typo from a missing dependency.
            for d in dropped.iter_mut() {
                let name = d.split_whitespace().next().unwrap_or("").trim_start_matches("CONFIG_").to_string();
                if !known.is_empty() && !known.contains(&name) {
                    d.push_str(" [no such Kconfig symbol in this tree: a typo?]");
                }
            }
            return Err(Error::ConfigDropped {
                cell: cell.name.clone(),
                options: dropped,
                config: obj.join(".config"),
            });
        }
        Ok((fragments, resolved_text))
    }

    /// vmlinux, the boot image if it is another, and the modules.
    fn compile(&self, step: &Step<'_>, cell: &KernelCell, with_modules: bool) -> Result<()> {
        let mut targets = vec![format!("-j{}", self.jobs), "vmlinux".to_string()];
        if cell.boot.make_target() != "vmlinux" {
            targets.push(cell.boot.make_target().to_string());
        }
        if with_modules || !cell.modules.is_empty() {
            targets.push("modules".to_string());
        }
        step.make(&targets)?;
        if let Some(m) = cell.modules.iter().find(|m| !step.obj.join(m).is_file()) {
            return Err(Error::KernelBuild {
                cell: cell.name.clone(),
                step: "make modules".into(),
                status: "0".into(),
                tail: format!("{m} was not built: check the cell's fragments enable it as a module (=m)"),
                log: step.log_path.to_path_buf(),
            });
        }
        Ok(())
    }

    /// The kernel's BTF as C: what programs are compiled against.
    fn dump_btf(&self, step: &Step<'_>, vmlinux: &Path) -> Result<Vec<u8>> {
        let out = duct::cmd!(&self.bpftool, "btf", "dump", "file", vmlinux, "format", "c")
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(Error::io("running bpftool"))?;
        if !out.status.success() || out.stdout.is_empty() {
            return Err(Error::KernelBuild {
                cell: step.cell.to_string(),
                step: format!("bpftool btf dump file {} format c", vmlinux.display()),
                status: exit_text(out.status),
                tail: one_line(&String::from_utf8_lossy(&out.stderr), 3),
                log: step.log_path.to_path_buf(),
            });
        }
        Ok(out.stdout)
    }
}

/// `make modules_install` into `root` (moved into the output by [`publish`]), stripped, without depmod
/// (the host may have no kmod; the guest runs the image's depmod): the
/// kernel release it installed.
fn install_modules(step: &Step<'_>, root: &Path) -> Result<String> {
    let _ = std::fs::remove_dir_all(root);
    step.make(&[
        format!("INSTALL_MOD_PATH={}", root.display()),
        "INSTALL_MOD_STRIP=1".into(),
        "DEPMOD=true".into(),
        "modules_install".into(),
    ])?;
    let release = std::fs::read_to_string(step.obj.join("include/config/kernel.release"))
        .map_err(Error::io("reading include/config/kernel.release"))?
        .trim()
        .to_string();
    if !root.join("lib/modules").join(&release).is_dir() {
        return Err(Error::KernelBuild {
            cell: step.cell.to_string(),
            step: "make modules_install".into(),
            status: "0".into(),
            tail: format!("no {}/lib/modules/{release} after modules_install", root.display()),
            log: step.log_path.to_path_buf(),
        });
    }
    Ok(release)
}

/// The record in `out` if it matches `key` and the files it describes are
/// still the ones it describes, boot image included (every path that hands
/// out a kernel goes through here).
fn fresh_record(out: &Path, cell: &KernelCell, key: &str) -> Option<BuildRecord> {
    let text = std::fs::read_to_string(out.join("record.json")).ok()?;
    let record: BuildRecord = serde_json::from_str(&text).ok()?;
    if record.request_key != key || !out.join(cell.boot.path_in_build()).exists() {
        return None;
    }
    if cell.modules.iter().any(|m| !out.join(m).is_file()) || !out.join(".config").is_file() {
        return None;
    }
    if record.modules_release.as_ref().is_some_and(|r| !out.join("modules/lib/modules").join(r).is_dir()) {
        return None;
    }
    let (size, mtime) = file_stamp(&out.join("vmlinux")).ok()?;
    if size != record.vmlinux_size || mtime != record.vmlinux_mtime_ns {
        return None;
    }
    let header = std::fs::read(out.join("vmlinux.h")).ok()?;
    (sha256_parts([header.as_slice()]) == record.vmlinux_h_sha256).then_some(record)
}

/// Copy what a test needs of the build in `obj` (vmlinux, the boot image,
/// the modules, .config) and `btf` into `out`, with the record last, by
/// way of a temporary directory renamed into place. A stale `out` (its
/// files no longer what its record says) is replaced.
fn publish(
    obj: &Path,
    out: &Path,
    cell: &KernelCell,
    btf: &[u8],
    modules: Option<&Path>,
    mut record: BuildRecord,
) -> Result<BuildRecord> {
    let parent = out.parent().expect("out has a parent");
    std::fs::create_dir_all(parent).map_err(Error::io(format!("creating {}", parent.display())))?;
    let tmp = tempfile::Builder::new().prefix(".new-").tempdir_in(parent).map_err(Error::io("temporary output dir"))?;
    let mut files: Vec<PathBuf> = vec!["vmlinux".into(), ".config".into(), cell.boot.path_in_build().into()];
    files.extend(cell.modules.iter().map(PathBuf::from));
    for f in files {
        let (from, to) = (obj.join(&f), tmp.path().join(&f));
        if let Some(d) = to.parent() {
            std::fs::create_dir_all(d).map_err(Error::io(format!("creating {}", d.display())))?;
        }
        std::fs::copy(&from, &to).map_err(Error::io(format!("copying {} to {}", from.display(), to.display())))?;
    }
    if let Some(m) = modules {
        let to = tmp.path().join("modules");
        std::fs::rename(m, &to).map_err(Error::io(format!("moving {} to {}", m.display(), to.display())))?;
    }
    write_atomic(&tmp.path().join("vmlinux.h"), btf).map_err(Error::io("writing vmlinux.h"))?;
    (record.vmlinux_size, record.vmlinux_mtime_ns) =
        file_stamp(&tmp.path().join("vmlinux")).map_err(Error::io("stat vmlinux"))?;
    write_atomic(&tmp.path().join("record.json"), serde_json::to_string_pretty(&record).expect("record").as_bytes())
        .map_err(Error::io("writing the build record"))?;
    if out.exists() {
        // Stale (we hold the cell's build lock, and it is not fresh).
        let trash = parent.join(format!(".old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&trash);
        std::fs::rename(out, &trash).map_err(Error::io(format!("moving {} away", out.display())))?;
        let _ = std::fs::remove_dir_all(&trash);
    }
    std::fs::rename(tmp.keep(), out).map_err(Error::io(format!("moving the kernel into {}", out.display())))?;
    Ok(record)
}

/// Where the kernel built for request `key` lives in a cell directory.
fn output_dir(cell_dir: &Path, key: &str) -> PathBuf {
    cell_dir.join("out").join(&key[..16])
}

/// The lock a test holds (shared) while it uses the kernel in `out`:
/// `out/<key>.lock`, beside the directory (which is replaced by rename).
fn lease_path(out: &Path) -> PathBuf {
    out.with_extension("lock")
}

/// Remove built kernels of `outs` beyond the newest [`KEEP_OUTPUTS`] (never
/// `keep`, nor one a test holds).
fn prune_outputs(outs: &Path, keep: &Path) {
    let mut all: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(outs)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.as_path() != keep && p.join("record.json").exists())
        .map(|p| {
            (std::fs::metadata(p.join("record.json")).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), p)
        })
        .collect();
    all.sort();
    let surplus = all.len().saturating_sub(KEEP_OUTPUTS.saturating_sub(1));
    for (_, p) in all.into_iter().take(surplus) {
        if let Ok(Some(_held)) = FileLock::try_acquire(&lease_path(&p), Mode::Exclusive) {
            let _ = std::fs::remove_file(p.join("record.json"));
            let _ = std::fs::remove_dir_all(&p);
            let _ = std::fs::remove_file(lease_path(&p));
        }
    }
}

/// A failed command's exit code, or "signal" when it was killed.
fn exit_text(status: std::process::ExitStatus) -> String {
    status.code().map(|c| c.to_string()).unwrap_or_else(|| "signal".into())
}

fn file_stamp(path: &Path) -> std::io::Result<(u64, i128)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.len(), m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128))
}

/// One command of a build, run in the tree with its output in the log.
struct Step<'a> {
    cell: &'a str,
    src: &'a Path,
    /// The O= directory.
    obj: &'a Path,
    /// The cell's make variables (CC=gcc, LLVM=-19, ...).
    make_args: Vec<String>,
    /// The compilers' environment (ccache's).
    env: Vec<(String, String)>,
    log: &'a File,
    log_path: &'a Path,
}

impl Step<'_> {
    /// `make -C <tree> O=<obj> <cell's variables> <args>`.
    fn make(&self, args: &[String]) -> Result<()> {
        let mut all = vec!["-C".to_string(), self.src.display().to_string(), format!("O={}", self.obj.display())];
        all.extend(self.make_args.iter().cloned());
        all.extend(args.iter().cloned());
        self.run("make", &all)
    }

    fn run(&self, program: &str, args: &[String]) -> Result<()> {
        use std::io::Write;
        let shown = format!("{program} {}", args.join(" "));
        let mut log = self.log;
        let _ = writeln!(log, "\n### {shown}");
        let mut cmd = duct::cmd(program, args);
        for (k, v) in &self.env {
            cmd = cmd.env(k, v);
        }
        let out = cmd
            .dir(self.src)
            .stdin_null()
            .stderr_to_stdout()
            .stdout_file(self.log.try_clone().map_err(Error::io("log file"))?)
            .unchecked()
            .before_spawn(|cmd| {
                use std::os::unix::process::CommandExt;
                // make dies with the harness (its compilers finish their
                // file and exit; the inherited lock covers them meanwhile).
                unsafe {
                    cmd.pre_exec(|| {
                        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
                            .map_err(std::io::Error::from)
                    });
                }
                Ok(())
            })
            .run()
            .map_err(Error::io(format!("running {program}")))?;
        if out.status.success() {
            return Ok(());
        }
        let text = std::fs::read_to_string(self.log_path).unwrap_or_default();
        let mut tail = one_line(&text, 6);
        if text.contains("No space left on device") {
            tail = format!(
                "the disk is full: free space on the filesystem of {} (or point HIDVM_CACHE_DIR elsewhere) and run again | {tail}",
                self.log_path.parent().unwrap_or(self.log_path).display()
            );
        }
        Err(Error::KernelBuild {
            cell: self.cell.to_string(),
            step: shown,
            status: exit_text(out.status),
            tail,
            log: self.log_path.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    //! The cache logic against a stand-in kernel tree whose make targets
    //! take a second and count how often `vmlinux` is built.
    use super::*;
    use crate::kernel::source::KernelSource;
    use std::os::unix::fs::PermissionsExt;

    struct Fixture {
        _dir: tempfile::TempDir,
        repo: Repo,
        cache: PathBuf,
        source: KernelSource,
        bpftool: String,
        count: PathBuf,
    }

    fn write_exe(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("linux");
        let count = dir.path().join("vmlinux-builds");
        std::fs::create_dir_all(src.join("drivers/hid/bpf")).unwrap();
        std::fs::write(src.join("drivers/hid/bpf/hid_bpf_struct_ops.c"), "").unwrap();
        // olddefconfig drops CONFIG_DROPME, as kconfig drops an option whose
        // dependencies are missing; vmlinux fails while FAIL_BUILD exists.
        std::fs::write(
            src.join("Makefile"),
            format!(
                "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\nEXTRAVERSION =\n\
                 tinyconfig:\n\tprintf 'CONFIG_64BIT=y\\n' > $(O)/.config\n\
                 olddefconfig:\n\tgrep -v -e CONFIG_DROPME -e CONFIG_TYPO $(O)/.config > $(O)/.config.new; mv $(O)/.config.new $(O)/.config\n\
                 vmlinux:\n\ttest ! -e {fail}\n\techo built >> {count}\n\tsleep 1\n\tcat drivers/hid/bpf/hid_bpf_struct_ops.c > $(O)/vmlinux\n\techo a-complete-vmlinux-image >> $(O)/vmlinux\n\
                 bzImage:\n\tmkdir -p $(O)/arch/x86/boot\n\techo a-bzimage > $(O)/arch/x86/boot/bzImage\n",
                fail = dir.path().join("FAIL_BUILD").display(),
                count = count.display()
            ),
        )
        .unwrap();
        write_exe(
            &src.join("scripts/kconfig/merge_config.sh"),
            "#!/bin/sh\n# -m -O <dir> <base> <fragments...>\nshift 3\nbase=$1; shift\ncat \"$@\" >> \"$base\"\n",
        );
        // The scripts the tool-floor check runs (toolfloor.rs has its own tests).
        write_exe(&src.join("scripts/cc-version.sh"), "#!/bin/sh\necho GCC 120200\n");
        write_exe(&src.join("scripts/min-tool-version.sh"), "#!/bin/sh\necho 5.1.0\n");
        write_exe(&src.join("scripts/pahole-version.sh"), "#!/bin/sh\necho 124\n");
        let bpftool = dir.path().join("bin/bpftool");
        write_exe(&bpftool, "#!/bin/sh\necho 'struct hid_bpf_ops { int hid_id; };'\n");
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("guest-image/config")).unwrap();
        std::fs::write(root.join("guest-image/config/a.config"), "CONFIG_HID_BPF=y\n").unwrap();
        let cache = dir.path().join("cache");
        let source = KernelSource::user_tree(&src, &cache).unwrap();
        let bpftool = bpftool.display().to_string();
        Fixture { cache, repo: Repo::checkout(root), source, bpftool, count, _dir: dir }
    }

    fn cell() -> KernelCell {
        KernelCell {
            name: "gcc".into(),
            summary: "test".into(),
            make: [("CC".to_string(), "gcc".to_string())].into(),
            compiler: "gcc".into(),
            banner: "gcc".into(),
            needs: vec![],
            fragments: vec![],
            modules: vec![],
            default_run: true,
            boot: Default::default(),
        }
    }

    fn builder(f: &Fixture) -> KernelBuilder<'_> {
        builder_for(f, &f.source)
    }

    /// A quiet builder with the stand-in bpftool, for `source`.
    fn builder_for<'a>(f: &'a Fixture, source: &'a KernelSource) -> KernelBuilder<'a> {
        let mut b = KernelBuilder::new(&f.repo, &f.cache, source);
        b.verbose = false;
        b.bpftool = f.bpftool.clone();
        b.build_slot = f.cache.join("build-slot.lock");
        b.ccache = None;
        b
    }

    fn builds(f: &Fixture) -> usize {
        std::fs::read_to_string(&f.count).map(|s| s.lines().count()).unwrap_or(0)
    }

    #[test]
    fn second_request_is_served_from_the_cache_without_make() {
        let f = fixture();
        let k = builder(&f).ensure(&cell()).unwrap();
        assert!(k.built_now);
        drop(k);
        let k = builder(&f).ensure(&cell()).unwrap();
        assert!(!k.built_now);
        assert_eq!(builds(&f), 1);
        assert!(k.vmlinux_h.exists());
    }

    #[test]
    fn cached_finds_a_built_kernel_and_never_builds() {
        let f = fixture();
        assert!(builder(&f).cached(&cell()).unwrap().is_none(), "nothing built yet");
        assert_eq!(builds(&f), 0, "asking did not build");
        drop(builder(&f).ensure(&cell()).unwrap());
        let k = builder(&f).cached(&cell()).unwrap().expect("now cached");
        assert!(!k.built_now);
        assert_eq!(builds(&f), 1);
    }

    #[test]
    fn concurrent_requesters_share_one_build() {
        let f = fixture();
        let results: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> =
                (0..3).map(|_| s.spawn(|| builder(&f).ensure(&cell()).map(|k| k.built_now).unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(builds(&f), 1, "exactly one make vmlinux");
        assert_eq!(results.iter().filter(|b| **b).count(), 1, "exactly one requester built");
    }

    #[test]
    fn interrupted_build_leaves_no_record_and_is_redone() {
        let f = fixture();
        std::fs::write(f._dir.path().join("FAIL_BUILD"), "").unwrap();
        let e = builder(&f).ensure(&cell()).err().expect("build must fail").to_string();
        assert!(e.contains("make") && e.contains("build.log"), "{e}");
        let dir = builder(&f).cell_dir(&cell());
        let records = || {
            dir.join("out").read_dir().map(|d| d.flatten().filter(|e| e.path().join("record.json").exists()).count())
        };
        assert_eq!(records().unwrap_or(0), 0, "a failed build must not leave a record");
        std::fs::remove_file(f._dir.path().join("FAIL_BUILD")).unwrap();
        assert!(builder(&f).ensure(&cell()).unwrap().built_now);
    }

    #[test]
    fn damaged_vmlinux_is_rebuilt() {
        let f = fixture();
        let k = builder(&f).ensure(&cell()).unwrap();
        let vmlinux = k.vmlinux.clone();
        drop(k);
        std::fs::write(&vmlinux, "trunc").unwrap(); // a truncated image
        assert!(builder(&f).ensure(&cell()).unwrap().built_now);
        assert_eq!(builds(&f), 2);
    }

    #[test]
    fn missing_boot_image_is_rebuilt() {
        let f = fixture();
        let bz = KernelCell { boot: crate::kernel::cell::BootImage::BzImage, ..cell() };
        let k = builder(&f).ensure(&bz).unwrap();
        let image = k.boot_image.clone();
        drop(k);
        std::fs::remove_file(&image).unwrap();
        let k = builder(&f).ensure(&bz).unwrap();
        assert!(k.built_now && k.boot_image.exists());
        assert_eq!(builds(&f), 2);
    }

    #[test]
    fn source_and_fragment_changes_trigger_a_rebuild() {
        let f = fixture();
        builder(&f).ensure(&cell()).unwrap();
        std::fs::write(f.repo.fragments_dir().join("a.config"), "CONFIG_HID_BPF=y\nCONFIG_UHID=y\n").unwrap();
        assert!(builder(&f).ensure(&cell()).unwrap().built_now);
        std::fs::write(f.source.root.join("drivers/hid/bpf/hid_bpf_struct_ops.c"), "/* edit */").unwrap();
        let edited = KernelSource::user_tree(&f.source.root, &f.cache).unwrap();
        assert!(builder_for(&f, &edited).ensure(&cell()).unwrap().built_now);
        assert_eq!(builds(&f), 3);
    }

    #[test]
    fn dropped_options_are_listed_and_nothing_is_cached() {
        let f = fixture();
        std::fs::write(f.source.root.join("Kconfig"), "config DROPME\n\tbool \"x\"\nconfig HID_BPF\n\tbool \"y\"\n")
            .unwrap();
        std::fs::write(f.repo.fragments_dir().join("a.config"), "CONFIG_HID_BPF=y\nCONFIG_DROPME=y\nCONFIG_TYPO=y\n")
            .unwrap();
        let src = KernelSource::user_tree(&f.source.root, &f.cache).unwrap();
        let b = builder_for(&f, &src);
        let e = b.ensure(&cell()).err().expect("must fail").to_string();
        assert!(e.contains("CONFIG_DROPME (wanted y, resolved: not set),"), "{e}");
        assert!(
            e.contains("CONFIG_TYPO (wanted y, resolved: not set) [no such Kconfig symbol in this tree: a typo?]"),
            "{e}"
        );
        assert!(!e.contains("CONFIG_HID_BPF ("), "{e}");
        assert!(!b
            .cell_dir(&cell())
            .join("out")
            .read_dir()
            .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().join("record.json").exists()))));
        assert_eq!(builds(&f), 0);
    }

    /// Two kernels of one tree (`6.12` and `6.12+fix`): built in one
    /// build tree and `O=` directory, kept side by side, each leased at
    /// once; switching back is served from the cache.
    #[test]
    fn a_tree_and_its_series_are_built_in_one_place_and_kept_side_by_side() {
        let f = fixture();
        let base = KernelSource { copy: true, workspace: f.cache.join("kbuild/debian-x"), ..f.source.clone() };
        let series_dir = f._dir.path().join("fix");
        std::fs::create_dir_all(&series_dir).unwrap();
        let file = "drivers/hid/bpf/hid_bpf_struct_ops.c";
        std::fs::write(
            series_dir.join("0001-fix.patch"),
            format!("--- a/{file}\n+++ b/{file}\n@@ -0,0 +1 @@\n+fixed\n"),
        )
        .unwrap();
        let fixed = base.with_patches(&crate::kernel::patches::Series::load(&series_dir).unwrap()).unwrap();
        let a = builder_for(&f, &base).ensure(&cell()).unwrap();
        let b = builder_for(&f, &fixed).ensure(&cell()).unwrap();
        assert!(a.built_now && b.built_now);
        assert_ne!(a.dir, b.dir);
        assert!(!std::fs::read_to_string(&a.vmlinux).unwrap().contains("fixed"));
        assert!(std::fs::read_to_string(&b.vmlinux).unwrap().starts_with("fixed\n"));
        assert!(f.cache.join("kbuild/debian-x/src/.hidvm-gcc/.config").exists(), "one O= dir in the build tree");
        drop((a, b));
        let again = builder_for(&f, &base).ensure(&cell()).unwrap();
        assert!(!again.built_now);
        assert!(!std::fs::read_to_string(&again.vmlinux).unwrap().contains("fixed"));
        assert_eq!(builds(&f), 2);
        assert_eq!(again.source_base.as_deref(), Some(f.cache.join("kbuild/debian-x/src/.hidvm-gcc/..").as_path()));
    }
}
