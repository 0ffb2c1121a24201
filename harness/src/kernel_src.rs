//! The kernel tree cells are built from.
//!
//! Default: Debian's `linux-source-6.12` tarball, unpacked once into the
//! cache. Override: `HIDVM_KERNEL_SRC=<dir>` (or `--kernel-src`), any tree
//! of Linux 6.11 or later (struct_ops HID-BPF), e.g. a developer's git checkout. Trees are
//! only ever built out-of-tree (`O=`) and never modified.
use crate::error::{one_line, Error, Result};
use crate::layout::{sha256_parts, write_atomic};
use crate::lock::{FileLock, Mode};
use std::path::{Path, PathBuf};

pub const DEBIAN_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
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
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    DebianTarball,
    User,
}

impl KernelSource {
    /// `explicit` (CLI flag) wins over `HIDVM_KERNEL_SRC`, which wins over
    /// the Debian tarball.
    pub fn resolve(explicit: Option<&Path>, cache: &Path) -> Result<KernelSource> {
        let from_env = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()).map(PathBuf::from);
        match explicit.map(Path::to_path_buf).or(from_env) {
            Some(dir) => Self::user_tree(&dir),
            None => Self::debian_tarball(Path::new(DEBIAN_TARBALL), cache),
        }
    }

    pub fn user_tree(dir: &Path) -> Result<KernelSource> {
        let bad = |problem: String| Error::KernelSource { path: dir.to_path_buf(), problem };
        let root =
            dir.canonicalize().map_err(|e| bad(format!("{e}; set {ENV_VAR} to a Linux source tree (>= 6.11)")))?;
        let version = check_tree(&root).map_err(bad)?;
        let identity = tree_identity(&root).map_err(|e| bad(format!("cannot fingerprint the tree: {e}")))?;
        Ok(KernelSource { root, version, identity, origin: Origin::User })
    }

    /// Unpack the Debian tarball into the cache once (under a lock; into a
    /// temporary directory renamed into place, so an interrupted unpack is
    /// never used).
    pub fn debian_tarball(tarball: &Path, cache: &Path) -> Result<KernelSource> {
        let meta = std::fs::metadata(tarball).map_err(|_| Error::KernelSource {
            path: tarball.to_path_buf(),
            problem: format!(
                "not found; install it with `sudo apt-get install linux-source-6.12` or set {ENV_VAR} to a kernel tree"
            ),
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
            crate::tools::require(&crate::tools::XZ)?;
            eprintln!("hidvm: unpacking {} into {} (once)", tarball.display(), dest.display());
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
        }
        let version = check_tree(&dest).map_err(|problem| Error::KernelSource { path: dest.clone(), problem })?;
        Ok(KernelSource { root: dest, version, identity, origin: Origin::DebianTarball })
    }

    /// A short stable name for cache directories of this tree.
    pub fn key(&self) -> String {
        sha256_parts([self.root.to_string_lossy().as_bytes()])[..12].to_string()
    }
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
    // kbuild refuses O= builds from a tree that was configured in place.
    if root.join(".config").exists() || root.join("include/config").exists() {
        return Err("was built in-tree (has .config or include/config); hidvm builds with O= and never modifies the tree: run `make mrproper` in it first".into());
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
        let e = KernelSource::user_tree(t.path()).unwrap_err().to_string();
        assert!(e.contains("make mrproper"), "{e}");
    }
}
