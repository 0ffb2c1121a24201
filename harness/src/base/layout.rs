//! Where things live: the repository data (fixtures, scenarios, fragments:
//! a checkout's, or those an installed hidvm carries) and the cache
//! (kernel trees, builds, probes) that survives between runs.
use crate::base::bundle;
use crate::base::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The checkout this hidvm was built from (a checkout build's data).
fn built_from() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("harness/ has a parent").to_path_buf()
}

/// The repository `choose` settled on, for the rest of the process.
static CHOSEN: OnceLock<Repo> = OnceLock::new();

/// `HIDVM_CACHE_DIR`, else `$XDG_CACHE_HOME/hidvm`, else `~/.cache/hidvm`.
/// Outside the clone on purpose: a fresh clone on the same machine reuses
/// the kernels.
pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("HIDVM_CACHE_DIR") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("hidvm");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache").join("hidvm")
}

#[derive(Clone, Debug)]
pub struct Repo {
    pub root: PathBuf,
    /// The data an installed hidvm carries, unpacked into the cache (no
    /// sources: the agent is the bundled binary, runs go to the cache).
    pub installed: bool,
}

impl Repo {
    /// A checkout (or a tree laid out as one) at `root`.
    pub fn checkout(root: impl Into<PathBuf>) -> Repo {
        Repo { root: root.into(), installed: false }
    }

    /// Where this process finds its data, as the `hidvm` binary chose it
    /// ([`Repo::choose`]); without a choice (the library's tests, the VM
    /// suite), `HIDVM_REPO` or the checkout it was built from.
    pub fn locate() -> Repo {
        if let Some(r) = CHOSEN.get() {
            return r.clone();
        }
        Repo::checkout(std::env::var_os("HIDVM_REPO").map(PathBuf::from).unwrap_or_else(built_from))
    }

    /// Decided once, at start: `HIDVM_REPO` if set; else, for an installed
    /// hidvm (one that carries a bundle: `(bytes, sha256)`), the hidvm
    /// checkout the current directory is in, or else its own data unpacked
    /// into the cache; else (a checkout build) the checkout it was built
    /// from, which must still be there.
    pub fn choose(bundle: Option<(&[u8], &str)>) -> Result<Repo> {
        let repo = match (std::env::var_os("HIDVM_REPO"), bundle.filter(|(b, _)| !b.is_empty())) {
            (Some(p), _) => Repo::checkout(p),
            (None, Some((bytes, sha256))) => {
                let cwd = std::env::current_dir().ok();
                match cwd.as_deref().and_then(bundle::checkout_around) {
                    Some(root) => Repo::checkout(root),
                    None => Repo { root: bundle::unpack(bytes, sha256, &cache_root())?, installed: true },
                }
            }
            (None, None) => {
                let root = built_from();
                if !root.join("guest-image/kernels.toml").is_file() {
                    return Err(Error::Other(format!(
                        "this hidvm was built in a checkout ({}) that is gone, and carries no data of its own; install it with `cargo install --path harness` (or `make install`) from a checkout, or set HIDVM_REPO to one",
                        root.display()
                    )));
                }
                Repo::checkout(root)
            }
        };
        let _ = CHOSEN.set(repo.clone());
        Ok(CHOSEN.get().cloned().unwrap_or(repo))
    }
    pub fn fragments_dir(&self) -> PathBuf {
        self.root.join("guest-image/config")
    }
    pub fn kernels_file(&self) -> PathBuf {
        self.root.join("guest-image/kernels.toml")
    }
    pub fn cells_file(&self) -> PathBuf {
        self.root.join("guest-image/cells.toml")
    }
    pub fn fixtures_dir(&self) -> PathBuf {
        self.root.join("bpf-fixtures")
    }
    /// hidvm's own patch series (`--patches NAME`).
    pub fn patches_dir(&self) -> PathBuf {
        self.root.join("patches")
    }
    pub fn scenarios_dir(&self) -> PathBuf {
        self.root.join("tests/scenarios")
    }
    pub fn selftests_dir(&self) -> PathBuf {
        self.root.join("tests/selftests")
    }
    /// Scenarios of the kernel tree's own HID-BPF programs.
    pub fn kernel_progs_dir(&self) -> PathBuf {
        self.root.join("tests/kernel-progs")
    }
    /// Per-run artifacts (console logs, results): kept after the run so a
    /// failure can be inspected and CI can upload them. `HIDVM_RUNS_DIR`
    /// puts them elsewhere (e.g. next to your own scenarios).
    /// An installed hidvm keeps them in the cache (`<cache>/runs`).
    pub fn runs_dir(&self) -> PathBuf {
        match std::env::var_os("HIDVM_RUNS_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None if self.installed => cache_root().join("runs"),
            None => self.target_dir().join("hidvm/runs"),
        }
    }
    pub fn target_dir(&self) -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| self.root.join("target"))
    }
}

/// A test's artifact directory name (`selftest.gcc.x` for `selftest::gcc::x`);
/// it appears in the VM's QEMU command line through the run directory.
pub fn test_dir_name(test: &str) -> String {
    test.replace("::", ".")
}

/// Runs kept per test (older ones are removed).
const KEEP_RUNS: usize = 5;

/// `<test dir>/<time>-<pid>-<n>/`, plus a `latest` symlink: concurrent
/// runs of one test never share files, and the newest is easy to find.
pub fn new_run_dir(test_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(test_dir)
        .map_err(Error::io(format!("creating {}; is the target directory writable?", test_dir.display())))?;
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let name = format!("{}-{:09}-{}", t.as_secs(), t.subsec_nanos(), std::process::id());
    let dir = test_dir.join(&name);
    std::fs::create_dir(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let tmp_link = test_dir.join(format!(".latest-{name}"));
    if std::os::unix::fs::symlink(&name, &tmp_link).is_ok() {
        let _ = std::fs::rename(&tmp_link, test_dir.join("latest"));
    }
    let mut runs: Vec<PathBuf> = std::fs::read_dir(test_dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_dir() && !p.is_symlink()).collect())
        .unwrap_or_default();
    runs.sort();
    if runs.len() > KEEP_RUNS {
        for old in &runs[..runs.len() - KEEP_RUNS] {
            let _ = std::fs::remove_dir_all(old);
        }
    }
    Ok(dir)
}

/// Write `contents` to `path` atomically (temp file + rename), so readers
/// never see a half-written file, even if we are killed.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Hex sha256 of some byte strings (length-prefixed so ("ab","c") and
/// ("a","bc") differ).
pub fn sha256_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
