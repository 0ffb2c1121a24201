//! The kernel tree cells are built from.
//!
//! Default: Debian's `linux-source-6.12` tarball, unpacked once into the
//! cache. Override: `HIDVM_KERNEL_SRC=<dir>` (or `--kernel-src`), any tree
//! of Linux 6.11 or later (struct_ops HID-BPF), e.g. a developer's git checkout. Trees are
//! only ever built out-of-tree (`O=`) and never modified.
use crate::base::error::{one_line, Error, Result};
use crate::base::layout::{sha256_parts, write_atomic};
use crate::base::lock::{FileLock, Mode};
use crate::kernel::patches::{CopyFiles, Series};
use std::path::{Path, PathBuf};

pub const ENV_VAR: &str = "HIDVM_KERNEL_SRC";
/// struct_ops HID-BPF (hid_bpf_ops) appeared in 6.11.
pub const MIN_VERSION: (u32, u32) = (6, 11);

#[derive(Clone, Debug)]
pub struct KernelSource {
    pub root: PathBuf,
    pub version: String,
    /// Changes whenever the tree's content may have changed; part of every
    /// kernel cache key.
    pub identity: String,
    /// What the tree is, exactly, in one word known kernel bugs and reports
    /// name it by: a Debian package's version (`6.12.118-1`,
    /// `7.3.4-1~bpo13+1`) for its pristine tarball; for anything else the
    /// version and a hash of its identity (`tree:6.13.0@1a2b3c4d`,
    /// `6.12.118-1+hid-fix@5e6f7a8b`), so a patched or user tree is never
    /// mistaken for the kernel it came from.
    pub label: String,
    pub origin: Origin,
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

    /// The tree of a kernel spec: the user's tree, the installed Debian
    /// package's tarball, or a Debian package fetched from another suite.
    pub fn for_spec(spec: &crate::kernel::spec::KernelSpec, cache: &Path) -> Result<KernelSource> {
        if let Some(tree) = &spec.tree {
            let src = Self::user_tree(tree)?;
            if src.origin == (Origin::User { built_in_place: true }) {
                let files =
                    if src.identity.starts_with("git:") { CopyFiles::GitListed } else { CopyFiles::AllThenMrproper };
                crate::base::output::note(format!(
                    "hidvm: {} was configured or built in place (it has a .config or include/config), and kbuild builds with O= only from a clean tree: building from a clean copy of its {} instead (your tree is not touched; `make mrproper` in it lets hidvm build it directly)",
                    src.root.display(),
                    if files == CopyFiles::GitListed { "git-listed files" } else { "files, after make mrproper" }
                ));
                return src.private_copy(cache, files, None);
            }
            return Ok(src);
        }
        let package = spec.package.as_deref().expect("kernels.toml entries have a package");
        match &spec.fetch_from {
            None => {
                let tarball = PathBuf::from(format!("/usr/src/{package}.tar.xz"));
                Self::debian_tarball(&tarball, package, cache, installed_version(package))
            }
            Some(suite) => {
                let (tarball, version) = crate::kernel::debian::source(cache, package, suite)?;
                Self::debian_tarball(&tarball, package, cache, Some(version))
            }
        }
    }

    /// The default kernel's tree (the first of kernels.toml), or the
    /// user's: what unit tests and single-tree commands use.
    pub fn default_tree(cache: &Path) -> Result<KernelSource> {
        if let Some(dir) = Self::user_override(None) {
            return Self::user_tree(&dir);
        }
        let kernels = crate::kernel::spec::load(&crate::base::layout::Repo::locate().kernels_file())?;
        Self::for_spec(&kernels[0], cache)
    }

    pub fn user_tree(dir: &Path) -> Result<KernelSource> {
        let bad = |problem: String| Error::KernelSource { path: dir.to_path_buf(), problem };
        let root =
            dir.canonicalize().map_err(|e| bad(format!("{e}; set {ENV_VAR} to a Linux source tree (>= 6.11)")))?;
        let version = check_tree(&root).map_err(bad)?;
        let identity = tree_identity(&root).map_err(|e| bad(format!("cannot fingerprint the tree: {e}")))?;
        let built_in_place = root.join(".config").exists() || root.join("include/config").exists();
        let label = format!("tree:{version}@{}", short_hash(&identity));
        Ok(KernelSource { root, version, identity, label, origin: Origin::User { built_in_place } })
    }

    /// This tree with `series` applied, on a private copy (see [`crate::kernel::patches`]).
    pub fn with_patches(&self, series: &Series, cache: &Path) -> Result<KernelSource> {
        let files = match self.origin {
            Origin::User { built_in_place: true } if self.identity.starts_with("git:") => CopyFiles::GitListed,
            Origin::User { built_in_place: true } => CopyFiles::AllThenMrproper,
            _ => CopyFiles::All,
        };
        self.private_copy(cache, files, Some(series))
    }

    /// A private copy of this tree in the cache (one per origin tree, so a
    /// revised series rebuilds incrementally), brought to this tree's
    /// content and `series` unless it already is (its state file says so).
    /// The state file is written last: an interrupted copy or a patch that
    /// does not apply leaves no state, and the next run starts over.
    pub fn private_copy(&self, cache: &Path, files: CopyFiles, series: Option<&Series>) -> Result<KernelSource> {
        let src_dir = cache.join("src");
        let key = &sha256_parts([self.root.to_string_lossy().as_bytes()])[..12];
        let dir = src_dir.join(format!("private-{key}"));
        let identity = format!(
            "{}+copy:{files:?}{}",
            self.identity,
            series.map(|s| format!("+patches:{}", s.hash())).unwrap_or_default()
        );
        std::fs::create_dir_all(&src_dir).map_err(Error::io(format!("creating {}", src_dir.display())))?;
        let _lock =
            FileLock::acquire(&src_dir.join(format!("private-{key}.lock")), Mode::Exclusive, "a private tree copy")
                .map_err(Error::io("private tree lock"))?;
        let state = dir.join(".hidvm-state");
        if std::fs::read_to_string(&state).ok().as_deref() != Some(identity.as_str()) {
            let _ = std::fs::remove_file(&state);
            let what = series.map(|s| format!(" + {}", s.describe())).unwrap_or_default();
            let progress = crate::base::output::start(crate::base::output::Phase::Work {
                what: &format!("preparing {} (Linux {}{what}) in {}", self.root.display(), self.version, dir.display()),
            });
            crate::kernel::patches::sync(&self.root, &dir, files)?;
            if let Some(s) = series {
                s.apply(&dir, &format!("Linux {} ({})", self.version, self.root.display()))?;
            }
            progress.finish("ready");
            write_atomic(&state, identity.as_bytes()).map_err(Error::io(format!("writing {}", state.display())))?;
        }
        let version = check_tree(&dir).map_err(|problem| Error::KernelSource { path: dir.clone(), problem })?;
        let what = series.map(Series::name).unwrap_or_else(|| "copy".into());
        let label = format!("{}+{what}@{}", self.label, short_hash(&identity));
        Ok(KernelSource { root: dir, version, identity, label, origin: Origin::Private })
    }

    /// Unpack the Debian tarball into the cache once (under a lock; into a
    /// temporary directory renamed into place, so an interrupted unpack is
    /// never used).
    /// `debian_version`: the package's version, the tree's label (else its
    /// upstream version).
    pub fn debian_tarball(
        tarball: &Path,
        package: &str,
        cache: &Path,
        debian_version: Option<String>,
    ) -> Result<KernelSource> {
        let meta = std::fs::metadata(tarball).map_err(|_| Error::KernelSource {
            path: tarball.to_path_buf(),
            problem: format!("not found; install it with `sudo apt-get install {package}` (or `make setup`), or set {ENV_VAR} to a kernel tree"),
        })?;
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let identity =
            format!("debian-tarball:{}:{}:{}", tarball.display(), meta.len(), mtime.map(|d| d.as_secs()).unwrap_or(0));
        let key = &sha256_parts([identity.as_bytes()])[..16];
        let src_dir = cache.join("src");
        let dest = src_dir.join(format!("linux-{key}"));
        // The tree appears by rename only when complete, so its Makefile
        // existing means it is usable; the lock is only for unpacking.
        let _lock = if dest.join("Makefile").exists() {
            None
        } else {
            Some(
                FileLock::acquire(&src_dir.join(format!("linux-{key}.lock")), Mode::Exclusive, "kernel tarball unpack")
                    .map_err(Error::io("kernel source lock"))?,
            )
        };
        if !dest.join("Makefile").exists() {
            crate::base::tools::require(&crate::base::tools::XZ)?;
            let progress = crate::base::output::start(crate::base::output::Phase::Work {
                what: &format!("unpacking {} into {} (once)", tarball.display(), dest.display()),
            });
            let tmp = tempfile::Builder::new()
                .prefix(".unpack-")
                .tempdir_in(&src_dir)
                .map_err(Error::io("temporary unpack dir"))?;
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
            let unpacked = tmp.keep();
            std::fs::rename(&unpacked, &dest).map_err(Error::io("moving the unpacked tree into place"))?;
            let _ = write_atomic(&src_dir.join(format!("linux-{key}.origin")), identity.as_bytes());
            progress.finish("unpacked");
        }
        let version = check_tree(&dest).map_err(|problem| Error::KernelSource { path: dest.clone(), problem })?;
        let label = debian_version.unwrap_or_else(|| version.clone());
        Ok(KernelSource { root: dest, version, identity, label, origin: Origin::DebianTarball })
    }

    /// A short stable name for cache directories of this tree.
    pub fn key(&self) -> String {
        sha256_parts([self.root.to_string_lossy().as_bytes()])[..12].to_string()
    }
}

/// The first 8 hex digits of the SHA-256 of `identity`.
fn short_hash(identity: &str) -> String {
    sha256_parts([identity.as_bytes()])[..8].to_string()
}

/// The installed version of a Debian package (`6.12.118-1`), if dpkg knows it.
fn installed_version(package: &str) -> Option<String> {
    let out = duct::cmd!("dpkg-query", "-W", "-f=${Version}", package)
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
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
        let src = KernelSource::user_tree(good.path()).unwrap();
        assert_eq!(src.version, "6.11.1");
        assert!(src.identity.starts_with("stat:"));

        let old = fake_tree("6", "10");
        let e = KernelSource::user_tree(old.path()).unwrap_err().to_string();
        assert!(e.contains("older than 6.11"), "{e}");

        let empty = tempfile::tempdir().unwrap();
        let e = KernelSource::user_tree(empty.path()).unwrap_err().to_string();
        assert!(e.contains("not a kernel tree"), "{e}");

        let e = KernelSource::user_tree(Path::new("/nonexistent/linux")).unwrap_err().to_string();
        assert!(e.contains("HIDVM_KERNEL_SRC"), "{e}");
    }

    #[test]
    fn identity_changes_when_a_file_changes_and_in_tree_builds_are_refused() {
        let t = fake_tree("6", "12");
        let a = KernelSource::user_tree(t.path()).unwrap().identity;
        std::fs::write(t.path().join("drivers/hid/bpf/hid_bpf_struct_ops.c"), "changed").unwrap();
        let b = KernelSource::user_tree(t.path()).unwrap().identity;
        assert_ne!(a, b);
        std::fs::write(t.path().join(".config"), "").unwrap();
        let src = KernelSource::user_tree(t.path()).unwrap();
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
        let src = KernelSource::user_tree(t.path()).unwrap();
        let patched = src.with_patches(&series, cache.path()).unwrap();
        assert_eq!(patched.root, clean.root, "one private copy per origin tree");
        assert_ne!(patched.identity, clean.identity);
        let f = "drivers/hid/bpf/hid_bpf_struct_ops.c";
        assert_eq!(std::fs::read_to_string(patched.root.join(f)).unwrap(), "/* fixed */\n");
        assert_eq!(std::fs::read_to_string(t.path().join(f)).unwrap(), "", "the user's tree is untouched");
        // Asking again changes nothing; dropping the series restores the file.
        assert_eq!(src.with_patches(&series, cache.path()).unwrap().identity, patched.identity);
        let again = KernelSource::for_spec(&spec, cache.path()).unwrap();
        assert_eq!(std::fs::read_to_string(again.root.join(f)).unwrap(), "");
    }
}
