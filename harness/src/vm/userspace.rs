//! The guest userspace of the hid-tools suite (`hidvm hid-tools`) and of
//! `hidvm shell`: a read-only erofs image of Debian bookworm with python3,
//! pytest, pytest-tap, hid-tools, libevdev, pyudev, udev, kmod and bpftool,
//! built by `guest-image/userspace/build.sh` from Debian packages and a
//! hashed PyPI lock (`hidvm userspace`, part of `make setup`), cached under
//! `<cache>/userspace/hidtools-<key>.erofs` by a hash of what went into it
//! (the recipe and the lock), and attached to the VMs that need it as a
//! read-only virtio-blk disk. Runs never build it unless asked (`make
//! vm-test` passes `vm-test --build-userspace`, which builds it niced beside
//! the first kernel build): a missing image is one line saying how to make
//! it.
use crate::base::error::{Error, Result};
use crate::base::layout::{sha256_parts, Repo};
use crate::base::lock::{FileLock, Mode};
use crate::base::tools::{self, MKFS_EROFS, MMDEBSTRAP};
use std::path::{Path, PathBuf};

/// Where the recipe lives in the repository.
pub const RECIPE_DIR: &str = "guest-image/userspace";
/// Bump when what the image is made from changes in a way the key
/// cannot see.
const RECIPE_VERSION: &str = "hidvm-userspace-1";
/// The pytest plugin (delivered with each run, not part of the image).
pub const PLUGIN: &str = "hidvm_pytest.py";

/// The image's cache key: the recipe and the lock, hashed.
pub fn key(repo: &Repo) -> Result<String> {
    let dir = repo.root.join(RECIPE_DIR);
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(Error::io(format!("reading {RECIPE_DIR}/{name}")));
    let (script, lock) = (read("build.sh")?, read("requirements.lock")?);
    Ok(sha256_parts([RECIPE_VERSION.as_bytes(), script.as_slice(), lock.as_slice()])[..16].to_string())
}

/// Where the image of this checkout's recipe is (or would be) cached.
pub fn image_path(repo: &Repo, cache: &Path) -> Result<PathBuf> {
    Ok(cache.join("userspace").join(format!("hidtools-{}.erofs", key(repo)?)))
}

/// The cached image, or one line saying how to build it.
pub fn find(repo: &Repo, cache: &Path) -> Result<PathBuf> {
    let path = image_path(repo, cache)?;
    if path.is_file() {
        return Ok(path);
    }
    Err(Error::Other(format!(
        "the hid-tools userspace image {} is not built: run `make setup` (or `hidvm userspace`, as root) once; it needs the network and about 2 minutes",
        path.display()
    )))
}

/// Build the image if the cache lacks it. Returns its path and whether
/// it was built now.
pub fn ensure(repo: &Repo, cache: &Path) -> Result<(PathBuf, bool)> {
    let path = image_path(repo, cache)?;
    let dir = path.parent().expect("in a directory").to_path_buf();
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let _lock = FileLock::acquire(&dir.join("lock"), Mode::Exclusive, "another build of the hid-tools userspace")
        .map_err(Error::io("userspace lock"))?;
    if path.is_file() {
        return Ok((path, false));
    }
    tools::require_all(&[MMDEBSTRAP, MKFS_EROFS, tools::PYTHON])?;
    let unshare = std::env::var("HIDVM_USERSPACE_MODE").is_ok_and(|m| m == "unshare");
    if !rustix::process::geteuid().is_root() && !unshare {
        return Err(Error::Other(
            "building the hid-tools userspace needs root (mmdebstrap --mode=root): run `sudo hidvm userspace` (or `make setup` as root), or HIDVM_USERSPACE_MODE=unshare with uidmap and subordinate ids".into(),
        ));
    }
    let key = key(repo)?;
    let lock = std::fs::read(repo.root.join(RECIPE_DIR).join("requirements.lock"))
        .map_err(Error::io("reading requirements.lock"))?;
    let wheels = dir.join(format!("wheels-{}", &sha256_parts([lock.as_slice()])[..16]));
    let partial = dir.join(format!("hidtools-{key}.partial"));
    let log = dir.join(format!("build-{key}.log"));
    let progress = crate::base::output::start(crate::base::output::Phase::Work {
        what: &format!("building the hid-tools userspace {key} (Debian bookworm + PyPI lock); log: {}", log.display()),
    });
    let out = duct::cmd!("bash", repo.root.join(RECIPE_DIR).join("build.sh"))
        .env("OUT", &partial)
        .env("WHEELS", &wheels)
        .env("KEY", &key)
        .env("MODE", if unshare { "unshare" } else { "root" })
        .stderr_to_stdout()
        .stdout_path(&log)
        .unchecked()
        .run()
        .map_err(Error::io("running the userspace recipe"))?;
    if !out.status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(Error::Other(format!(
            "building the hid-tools userspace failed: {}; see {}",
            crate::base::error::one_line(&text, 3),
            log.display()
        )));
    }
    for ext in ["dpkg-manifest", "pip-manifest"] {
        let from = PathBuf::from(format!("{}.{ext}", partial.display()));
        let _ = std::fs::rename(from, format!("{}.{ext}", path.display()));
    }
    std::fs::rename(&partial, &path).map_err(Error::io(format!("renaming {}", partial.display())))?;
    progress.finish("built");
    Ok((path, true))
}
