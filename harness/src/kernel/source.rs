//! The kernel tree cells are built from, and where it is built.
//!
//! A kernel's tree is a pinned Debian tarball (`guest-image/kernels.lock`),
//! unpacked once into the cache, or a user's tree (`--kernel-src`, any tree
//! of Linux 6.11 or later, e.g. a git checkout), either with a patch
//! series on top (`6.12+fix`, `--patches`). Each has a `root` that stays
//! as it is for the run (what programs, headers and the selftests are
//! read from) and a workspace under `<cache>/kbuild/` where it is built:
//! user trees are built from where they are (`O=`, never modified); the
//! others in the workspace's one build tree (`src/`), synced by content
//! from the root before a build, so a Debian point release or another
//! series rebuilds only what changed ([`crate::kernel::build`]).
use crate::base::error::{one_line, Error, Result};
use crate::base::layout::{sha256_parts, write_atomic};
use crate::base::lock::{FileLock, Mode};
use crate::kernel::debian::{self, Index};
use crate::kernel::lockfile::{Pin, Pins};
use crate::kernel::patches::{CopyFiles, Series};
use std::path::{Path, PathBuf};

pub const ENV_VAR: &str = "HIDVM_KERNEL_SRC";
/// struct_ops HID-BPF (hid_bpf_ops) appeared in 6.11.
pub const MIN_VERSION: (u32, u32) = (6, 11);
/// Per-series trees not used for this long are removed.
const TREE_KEEP: std::time::Duration = std::time::Duration::from_secs(3 * 24 * 3600);

#[derive(Clone, Debug)]
pub struct KernelSource {
    /// The tree, exactly as this kernel is; not changed during the run.
    pub root: PathBuf,
    pub version: String,
    /// Changes whenever the tree's content may have changed; part of every
    /// kernel cache key.
    pub identity: String,
    /// What the tree is, exactly, in one word known kernel bugs and reports
    /// name it by: a Debian package's version (`6.12.118-1~deb12u1`,
    /// `7.3.4-1~bpo13+1`) for its pristine tarball; for anything else the
    /// version and a hash of its identity (`tree:6.13.0@1a2b3c4d`,
    /// `6.12.118-1~deb12u1+hid-fix@5e6f7a8b`), so a patched or user tree is
    /// never mistaken for the kernel it came from.
    pub label: String,
    /// Where it came from, exactly: `linux-source-6.12 6.12.118-1~deb12u1
    /// (bookworm-security, tarball sha256 …)`, `/src/linux (git 1a2b3c4d)`,
    /// with the series.
    pub description: String,
    pub origin: Origin,
    /// `<cache>/kbuild/<name>`: its build directories and trees.
    pub workspace: PathBuf,
    /// Built from the workspace's build tree (`src/`), synced from `root`
    /// (false: built from `root` itself).
    pub copy: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    DebianTarball,
    /// A tree of the user's; `built_in_place`: it has a .config (or build
    /// outputs) of its own, so kbuild refuses O= builds from it.
    User {
        built_in_place: bool,
    },
    /// hidvm's private copy of another tree (clean, and/or patched).
    Private,
}

impl KernelSource {
    /// A user's tree: `explicit` (CLI flag), else `HIDVM_KERNEL_SRC`.
    pub fn user_override(explicit: Option<&Path>) -> Option<PathBuf> {
        let from_env = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()).map(PathBuf::from);
        explicit.map(Path::to_path_buf).or(from_env)
    }

    /// The tree of a kernel spec, with the repository's lock and Debian's
    /// suites (see [`KernelSource::resolve`]).
    pub fn for_spec(spec: &crate::kernel::spec::KernelSpec, cache: &Path) -> Result<KernelSource> {
        let repo = crate::base::layout::Repo::locate();
        let pins = Pins::load(&crate::kernel::lockfile::path_for(&repo.kernels_file()))?;
        Self::resolve(spec, cache, &pins, &debian::Apt::new(cache))
    }

    /// The tree of a kernel spec: the user's tree, or the pinned Debian
    /// tarball (found in the cache or on the host, else fetched from
    /// `index`), with the spec's patch series, if any, on top.
    pub fn resolve(
        spec: &crate::kernel::spec::KernelSpec,
        cache: &Path,
        pins: &Pins,
        index: &dyn Index,
    ) -> Result<KernelSource> {
        let base = match &spec.tree {
            Some(tree) => Self::user_base(tree, cache)?,
            None => {
                let pin = pins.get(spec.base_name()).ok_or_else(|| {
                    Error::Other(format!(
                        "kernel {} is not in guest-image/kernels.lock: run `hidvm kernels --update` to pin it",
                        spec.base_name()
                    ))
                })?;
                let installed = spec.installed.then(|| debian::installed_tarball(&pin.package));
                let tarball = debian::locate(cache, pin, installed.as_deref(), index)?;
                Self::debian_tarball(&tarball, cache, pin)?
            }
        };
        match &spec.patches {
            Some(p) => {
                base.with_patches(&Series::load(p)?).map_err(|e| Error::Other(format!("kernel {}: {e}", spec.name)))
            }
            None => Ok(base),
        }
    }

    /// A user's tree as its kernel builds it: from where it is, or, when
    /// it was configured or built in place, from a clean copy.
    fn user_base(tree: &Path, cache: &Path) -> Result<KernelSource> {
        let src = Self::user_tree(tree, cache)?;
        if src.origin != (Origin::User { built_in_place: true }) {
            return Ok(src);
        }
        let files = if src.identity.starts_with("git:") { CopyFiles::GitListed } else { CopyFiles::AllThenMrproper };
        crate::base::output::note(format!(
            "hidvm: {} was configured or built in place (it has a .config or include/config), and kbuild builds with O= only from a clean tree: building from a clean copy of its {} instead (your tree is not touched; `make mrproper` in it lets hidvm build it directly)",
            src.root.display(),
            if files == CopyFiles::GitListed { "git-listed files" } else { "files, after make mrproper" }
        ));
        src.private_copy(files, None)
    }

    /// The default kernel's tree (the first of kernels.toml), or the
    /// user's: what unit tests and single-tree commands use.
    pub fn default_tree(cache: &Path) -> Result<KernelSource> {
        if let Some(dir) = Self::user_override(None) {
            return Self::user_tree(&dir, cache);
        }
        let kernels = crate::kernel::spec::load(&crate::base::layout::Repo::locate().kernels_file())?;
        Self::for_spec(&kernels[0], cache)
    }

    /// A user's tree, as it is (built from where it is).
    pub fn user_tree(dir: &Path, cache: &Path) -> Result<KernelSource> {
        let bad = |problem: String| Error::KernelSource { path: dir.to_path_buf(), problem };
        let root =
            dir.canonicalize().map_err(|e| bad(format!("{e}; set {ENV_VAR} to a Linux source tree (>= 6.11)")))?;
        let version = check_tree(&root).map_err(bad)?;
        let identity = tree_identity(&root).map_err(|e| bad(format!("cannot fingerprint the tree: {e}")))?;
        let built_in_place = root.join(".config").exists() || root.join("include/config").exists();
        let label = format!("tree:{version}@{}", short_hash(&identity));
        let head = identity.strip_prefix("git:").map(|_| git_head(&root)).unwrap_or_default();
        let description = format!("{}{head} (Linux {version})", root.display());
        let workspace =
            cache.join("kbuild").join(format!("tree-{}", &sha256_parts([root.as_os_str().as_encoded_bytes()])[..12]));
        Ok(KernelSource {
            root,
            version,
            identity,
            label,
            description,
            origin: Origin::User { built_in_place },
            workspace,
            copy: false,
        })
    }

    /// This tree with `series` applied, on a tree of its own (see [`crate::kernel::patches`]).
    pub fn with_patches(&self, series: &Series) -> Result<KernelSource> {
        let files = match self.origin {
            Origin::User { built_in_place: true } if self.identity.starts_with("git:") => CopyFiles::GitListed,
            Origin::User { built_in_place: true } => CopyFiles::AllThenMrproper,
            _ => CopyFiles::All,
        };
        self.private_copy(files, Some(series))
    }

    /// This tree (per `files`) with `series`, as a tree of its own under
    /// the workspace's `trees/`, made once per identity (hard links to
    /// this tree's files, a file of its own for each the series changes)
    /// and then the same for every run. Made in a temporary directory and
    /// renamed into place: an interrupted copy or a patch that does not
    /// apply leaves nothing behind.
    pub fn private_copy(&self, files: CopyFiles, series: Option<&Series>) -> Result<KernelSource> {
        let identity = format!(
            "{}+copy:{files:?}{}",
            self.identity,
            series.map(|s| format!("+patches:{}", s.hash())).unwrap_or_default()
        );
        // A user's tree built from where it is has its own workspace; its
        // copies share one build tree of their own.
        let workspace = if self.copy { self.workspace.clone() } else { append(&self.workspace, "-copy") };
        let trees = workspace.join("trees");
        let dir = trees.join(&sha256_parts([identity.as_bytes()])[..16]);
        std::fs::create_dir_all(&trees).map_err(Error::io(format!("creating {}", trees.display())))?;
        let _lock = FileLock::acquire(&trees.join("lock"), Mode::Exclusive, "a kernel tree copy")
            .map_err(Error::io("kernel tree copy lock"))?;
        if !dir.join(".hidvm-state").exists() {
            self.make_copy(&dir, files, series)?;
        }
        let _ = write_atomic(&dir.join(".hidvm-state"), identity.as_bytes());
        prune_trees(&trees, &dir);
        let version = check_tree(&dir).map_err(|problem| Error::KernelSource { path: dir.clone(), problem })?;
        let what = series.map(Series::name).unwrap_or_else(|| "copy".into());
        let label = format!("{}+{what}@{}", self.label, short_hash(&identity));
        let description = match series {
            Some(s) => format!("{} + {} (sha256 {})", self.description, s.describe(), s.hash()),
            None => format!("{} (clean copy)", self.description),
        };
        let origin = Origin::Private;
        Ok(KernelSource { root: dir, version, identity, label, description, origin, workspace, copy: true })
    }

    fn make_copy(&self, dir: &Path, files: CopyFiles, series: Option<&Series>) -> Result<()> {
        let parent = dir.parent().expect("a tree has a parent");
        let what = series.map(|s| format!(" + {}", s.describe())).unwrap_or_default();
        let progress = crate::base::output::start(crate::base::output::Phase::Work {
            what: &format!("preparing {} (Linux {}{what}) in {}", self.root.display(), self.version, dir.display()),
        });
        let tmp = tempfile::Builder::new().prefix(".tree-").tempdir_in(parent).map_err(Error::io("temporary tree"))?;
        crate::kernel::patches::sync(&self.root, tmp.path(), files, true)?;
        if let Some(s) = series {
            crate::kernel::patches::break_links(tmp.path(), &s.touched_files())?;
            s.apply(tmp.path(), &format!("Linux {} ({})", self.version, self.root.display()))?;
        }
        let _ = std::fs::remove_dir_all(dir);
        std::fs::rename(tmp.keep(), dir).map_err(Error::io(format!("moving the tree into {}", dir.display())))?;
        progress.finish("ready");
        Ok(())
    }

    /// Unpack the pinned Debian tarball into the cache once (under a lock;
    /// into a temporary directory renamed into place, so an interrupted
    /// unpack is never used).
    pub fn debian_tarball(tarball: &Path, cache: &Path, pin: &Pin) -> Result<KernelSource> {
        let meta = std::fs::metadata(tarball).map_err(|_| Error::KernelSource {
            path: tarball.to_path_buf(),
            problem: format!("not found; run `hidvm fetch`, or set {ENV_VAR} to a kernel tree"),
        })?;
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let identity =
            format!("debian-tarball:{}:{}:{}", tarball.display(), meta.len(), mtime.map(|d| d.as_secs()).unwrap_or(0));
        let key = &sha256_parts([identity.as_bytes()])[..16];
        let src_dir = cache.join("src");
        let dest = src_dir.join(format!("linux-{key}"));
        // The tree appears by rename only when complete, so its Makefile
        // existing means it is usable; the lock is only for unpacking.
        if !dest.join("Makefile").exists() {
            let _lock =
                FileLock::acquire(&src_dir.join(format!("linux-{key}.lock")), Mode::Exclusive, "kernel tarball unpack")
                    .map_err(Error::io("kernel source lock"))?;
            if !dest.join("Makefile").exists() {
                unpack(tarball, &src_dir, &dest)?;
                let _ = write_atomic(&src_dir.join(format!("linux-{key}.origin")), identity.as_bytes());
            }
        }
        let version = check_tree(&dest).map_err(|problem| Error::KernelSource { path: dest.clone(), problem })?;
        Ok(KernelSource {
            root: dest,
            version,
            identity,
            label: pin.version.clone(),
            description: pin.describe(),
            origin: Origin::DebianTarball,
            workspace: cache.join("kbuild").join(format!("debian-{}", pin.package)),
            copy: true,
        })
    }

    /// The tree make runs in: `root` itself, or the workspace's build tree
    /// brought to `root`'s content. The lock it returns keeps others from
    /// syncing that tree until the build is done.
    pub fn build_tree(&self) -> Result<(PathBuf, Option<FileLock>)> {
        if !self.copy {
            return Ok((self.root.clone(), None));
        }
        let src = self.workspace.join("src");
        let lock = FileLock::acquire(&self.workspace.join("src.lock"), Mode::Exclusive, "the workspace's build tree")
            .map_err(Error::io("build tree lock"))?;
        lock.share_with_children(true).map_err(Error::io("build tree lock"))?;
        let state = src.join(".hidvm-state");
        if std::fs::read_to_string(&state).ok().as_deref() != Some(self.identity.as_str()) {
            let _ = std::fs::remove_file(&state);
            let progress = crate::base::output::start(crate::base::output::Phase::Work {
                what: &format!("syncing {} (Linux {}) into {}", self.label, self.version, src.display()),
            });
            let changed = crate::kernel::patches::sync_build_tree(&self.root, &src)?;
            write_atomic(&state, self.identity.as_bytes())
                .map_err(Error::io(format!("writing {}", state.display())))?;
            progress.finish(&format!("{changed} file(s) changed"));
        }
        Ok((src, Some(lock)))
    }
}

/// The first 8 hex digits of the SHA-256 of `identity`.
fn short_hash(identity: &str) -> String {
    sha256_parts([identity.as_bytes()])[..8].to_string()
}

/// `path` with `suffix` appended to its last component.
fn append(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// ` (git 1a2b3c4d)`, `+` when it has uncommitted changes.
fn git_head(root: &Path) -> String {
    let git = |args: &[&str]| {
        duct::cmd("git", args).dir(root).stdout_capture().stderr_null().unchecked().run().ok().map(|o| o.stdout)
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"]).map(|b| String::from_utf8_lossy(&b).trim().to_string());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|b| !b.is_empty());
    head.filter(|h| !h.is_empty()).map(|h| format!(" (git {h}{})", if dirty { "+" } else { "" })).unwrap_or_default()
}

/// Remove the trees of `trees` (not `keep`) nobody used for a while.
fn prune_trees(trees: &Path, keep: &Path) {
    for e in std::fs::read_dir(trees).into_iter().flatten().flatten() {
        let p = e.path();
        if p == keep || !p.is_dir() || e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let used = std::fs::metadata(p.join(".hidvm-state")).and_then(|m| m.modified()).ok();
        if used.and_then(|t| t.elapsed().ok()).is_some_and(|age| age > TREE_KEEP) {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
}

/// `tarball` unpacked into `dest` (through a temporary directory in `src_dir`).
fn unpack(tarball: &Path, src_dir: &Path, dest: &Path) -> Result<()> {
    crate::base::tools::require(&crate::base::tools::XZ)?;
    let progress = crate::base::output::start(crate::base::output::Phase::Work {
        what: &format!("unpacking {} into {} (once)", tarball.display(), dest.display()),
    });
    std::fs::create_dir_all(src_dir).map_err(Error::io(format!("creating {}", src_dir.display())))?;
    let tmp =
        tempfile::Builder::new().prefix(".unpack-").tempdir_in(src_dir).map_err(Error::io("temporary unpack dir"))?;
    let out = duct::cmd!("tar", "-xf", tarball, "-C", tmp.path(), "--strip-components=1")
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(Error::io("running tar"))?;
    if !out.status.success() {
        return Err(Error::KernelSource {
            path: tarball.to_path_buf(),
            problem: format!("tar failed: {}", one_line(&String::from_utf8_lossy(&out.stderr), 3)),
        });
    }
    std::fs::rename(tmp.keep(), dest).map_err(Error::io("moving the unpacked tree into place"))?;
    progress.finish("unpacked");
    Ok(())
}

/// Is `root` a kernel tree we can build? Returns its version.
fn check_tree(root: &Path) -> Result<String, String> {
    let makefile = std::fs::read_to_string(root.join("Makefile"))
        .map_err(|_| format!("not a kernel tree (no Makefile); set {ENV_VAR} to a Linux source checkout >= 6.11"))?;
    let field = |name: &str| {
        makefile.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    let (Some(v), Some(p)) = (field("VERSION"), field("PATCHLEVEL")) else {
        return Err(format!(
            "not a kernel tree (Makefile has no VERSION/PATCHLEVEL); set {ENV_VAR} to a Linux source checkout >= 6.11"
        ));
    };
    let sub = field("SUBLEVEL").unwrap_or_else(|| "0".into());
    let version = format!("{v}.{p}.{sub}{}", field("EXTRAVERSION").unwrap_or_default());
    let (major, minor): (u32, u32) = (v.parse().unwrap_or(0), p.parse().unwrap_or(0));
    if (major, minor) < MIN_VERSION {
        return Err(format!(
            "is Linux {version}, older than 6.11: HID-BPF via struct_ops (hid_bpf_ops) needs >= 6.11; use a newer tree"
        ));
    }
    if !root.join("drivers/hid/bpf/hid_bpf_struct_ops.c").exists() {
        return Err(format!(
            "Linux {version} has no drivers/hid/bpf/hid_bpf_struct_ops.c (struct_ops HID-BPF); use a tree with HID-BPF struct_ops (>= 6.11)"
        ));
    }
    if !root.join("scripts/kconfig/merge_config.sh").exists() {
        return Err("has no scripts/kconfig/merge_config.sh; is it a complete kernel tree?".into());
    }
    Ok(version)
}

/// Fingerprint of a user tree: for git checkouts the HEAD commit plus the
/// uncommitted changes (tracked diffs and untracked files); otherwise every
/// file's path, size and mtime.
fn tree_identity(root: &Path) -> std::io::Result<String> {
    if root.join(".git").exists() {
        let git = |args: &[&str]| duct::cmd("git", args).dir(root).stdout_capture().stderr_null().unchecked().run();
        let head = git(&["rev-parse", "HEAD"])?;
        if head.status.success() {
            let diff = git(&["diff", "HEAD", "--binary"])?;
            let untracked = git(&["ls-files", "--others", "--exclude-standard", "-z"])?;
            let mut parts: Vec<Vec<u8>> = vec![head.stdout, diff.stdout, untracked.stdout.clone()];
            for name in untracked.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
                let p = root.join(String::from_utf8_lossy(name).as_ref());
                parts.push(std::fs::read(p).unwrap_or_default());
            }
            return Ok(format!("git:{}", sha256_parts(parts.iter().map(|p| p.as_slice()))));
        }
    }
    let mut entries = Vec::new();
    walk(root, root, &mut entries)?;
    entries.sort();
    Ok(format!("stat:{}", sha256_parts(entries.iter().map(|e| e.as_bytes()))))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let meta = entry.metadata()?;
        if meta.is_dir() {
            walk(root, &entry.path(), out)?;
        } else {
            let rel = entry.path().strip_prefix(root).unwrap_or(&entry.path()).to_string_lossy().into_owned();
            out.push(format!("{rel}\0{}\0{}.{}", meta.len(), meta.mtime(), meta.mtime_nsec()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_tree(version: &str, patch: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("Makefile"),
            format!("VERSION = {version}\nPATCHLEVEL = {patch}\nSUBLEVEL = 1\nEXTRAVERSION =\n"),
        )
        .unwrap();
        std::fs::create_dir_all(d.path().join("drivers/hid/bpf")).unwrap();
        std::fs::write(d.path().join("drivers/hid/bpf/hid_bpf_struct_ops.c"), "").unwrap();
        std::fs::create_dir_all(d.path().join("scripts/kconfig")).unwrap();
        std::fs::write(d.path().join("scripts/kconfig/merge_config.sh"), "").unwrap();
        d
    }

    #[test]
    fn accepts_611_and_rejects_older_or_non_trees() {
        let good = fake_tree("6", "11");
        let src = KernelSource::user_tree(good.path(), Path::new("/c")).unwrap();
        assert_eq!(src.version, "6.11.1");
        assert!(src.identity.starts_with("stat:"));

        let old = fake_tree("6", "10");
        let e = KernelSource::user_tree(old.path(), Path::new("/c")).unwrap_err().to_string();
        assert!(e.contains("older than 6.11"), "{e}");

        let empty = tempfile::tempdir().unwrap();
        let e = KernelSource::user_tree(empty.path(), Path::new("/c")).unwrap_err().to_string();
        assert!(e.contains("not a kernel tree"), "{e}");

        let e = KernelSource::user_tree(Path::new("/nonexistent/linux"), Path::new("/c")).unwrap_err().to_string();
        assert!(e.contains("HIDVM_KERNEL_SRC"), "{e}");
    }

    /// A series goes onto a tree of hard links to the Debian tree: the
    /// unpacked tarball, shared by every checkout, is never changed.
    #[test]
    fn a_series_on_a_debian_tree_leaves_the_unpacked_tree_alone() {
        let t = fake_tree("6", "12");
        let f = "drivers/hid/bpf/hid_bpf_struct_ops.c";
        std::fs::write(t.path().join(f), "original\n").unwrap();
        let cache = tempfile::tempdir().unwrap();
        let base = KernelSource {
            root: t.path().to_path_buf(),
            version: "6.12.1".into(),
            identity: "debian-tarball:x".into(),
            label: "6.12.1-1".into(),
            description: "linux-source-6.12 6.12.1-1".into(),
            origin: Origin::DebianTarball,
            workspace: cache.path().join("kbuild/debian-linux-source-6.12"),
            copy: true,
        };
        let series_dir = tempfile::tempdir().unwrap().keep();
        std::fs::write(
            series_dir.join("0001-fix.patch"),
            format!("--- a/{f}\n+++ b/{f}\n@@ -1 +1 @@\n-original\n+fixed\n"),
        )
        .unwrap();
        let patched = base.with_patches(&Series::load(&series_dir).unwrap()).unwrap();
        assert_eq!(std::fs::read_to_string(patched.root.join(f)).unwrap(), "fixed\n");
        assert_eq!(std::fs::read_to_string(t.path().join(f)).unwrap(), "original\n");
        assert!(patched.label.starts_with("6.12.1-1+"), "{}", patched.label);
        assert_eq!(patched.workspace, base.workspace);
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&patched.root.join("Makefile")), ino(&t.path().join("Makefile")), "unchanged files are links");
    }

    #[test]
    fn identity_changes_when_a_file_changes_and_in_tree_builds_are_refused() {
        let t = fake_tree("6", "12");
        let a = KernelSource::user_tree(t.path(), Path::new("/c")).unwrap().identity;
        std::fs::write(t.path().join("drivers/hid/bpf/hid_bpf_struct_ops.c"), "changed").unwrap();
        let b = KernelSource::user_tree(t.path(), Path::new("/c")).unwrap().identity;
        assert_ne!(a, b);
        std::fs::write(t.path().join(".config"), "").unwrap();
        let src = KernelSource::user_tree(t.path(), Path::new("/c")).unwrap();
        assert_eq!(src.origin, Origin::User { built_in_place: true });
    }

    /// A tree configured in place is built from a clean private copy of
    /// its files; a patch series goes onto that copy too, and the user's
    /// tree is never touched.
    #[test]
    fn a_configured_tree_with_a_series_is_copied_clean_and_patched() {
        let t = fake_tree("6", "12");
        let run = |args: &[&str]| {
            let ok = std::process::Command::new("git").args(args).current_dir(t.path()).output().unwrap();
            assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        };
        run(&["init", "-q"]);
        std::fs::write(t.path().join(".gitignore"), ".config\n*.o\n").unwrap();
        run(&["add", "-A"]);
        run(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"]);
        std::fs::write(t.path().join(".config"), "CONFIG_X=y\n").unwrap();
        std::fs::write(t.path().join("built.o"), "obj").unwrap();
        let cache = tempfile::tempdir().unwrap();
        let spec = crate::kernel::spec::KernelSpec::user_tree(t.path());
        let clean = KernelSource::for_spec(&spec, cache.path()).unwrap();
        assert_eq!(clean.origin, Origin::Private);
        assert!(clean.root.join("Makefile").exists() && !clean.root.join(".config").exists());
        assert!(!clean.root.join("built.o").exists());

        let series_dir = tempfile::tempdir().unwrap();
        std::fs::write(
            series_dir.path().join("0001-fix.patch"),
            "--- a/drivers/hid/bpf/hid_bpf_struct_ops.c\n+++ b/drivers/hid/bpf/hid_bpf_struct_ops.c\n@@ -0,0 +1 @@\n+/* fixed */\n",
        )
        .unwrap();
        let series = Series::load(series_dir.path()).unwrap();
        let src = KernelSource::user_tree(t.path(), cache.path()).unwrap();
        let patched = src.with_patches(&series).unwrap();
        assert_eq!(patched.workspace, clean.workspace, "one workspace (and build tree) per origin tree");
        assert_ne!(patched.root, clean.root, "a tree per identity");
        assert!(patched.copy && clean.copy);
        assert_ne!(patched.identity, clean.identity);
        let f = "drivers/hid/bpf/hid_bpf_struct_ops.c";
        assert_eq!(std::fs::read_to_string(patched.root.join(f)).unwrap(), "/* fixed */\n");
        assert_eq!(std::fs::read_to_string(t.path().join(f)).unwrap(), "", "the user's tree is untouched");
        // Asking again changes nothing; without the series the file is as it was.
        assert_eq!(src.with_patches(&series).unwrap().identity, patched.identity);
        let again = KernelSource::for_spec(&spec, cache.path()).unwrap();
        assert_eq!(std::fs::read_to_string(again.root.join(f)).unwrap(), "");
        // The build tree follows whichever identity builds next, by content.
        let (tree, _lock) = patched.build_tree().unwrap();
        assert_eq!(tree, patched.workspace.join("src"));
        assert_eq!(std::fs::read_to_string(tree.join(f)).unwrap(), "/* fixed */\n");
        drop(_lock);
        let (tree, _lock) = again.build_tree().unwrap();
        assert_eq!(std::fs::read_to_string(tree.join(f)).unwrap(), "");
    }
}
