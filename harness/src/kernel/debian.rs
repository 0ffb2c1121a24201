//! Kernel source tarballs from Debian packages (`linux-source-X.Y`).
//!
//! A package of the host's own suites is installed by `make setup`; its
//! tarball is `/usr/src/<package>.tar.xz`. A package of another suite (the
//! newest kernel, from trixie-backports) is fetched without installing
//! anything and without touching the system's apt configuration: apt runs
//! with a private `APT_CONFIG` whose sources list holds only that suite,
//! signed by the system's Debian keyring; apt checks the suite's signature
//! and the .deb's SHA256 against the signed index, and hidvm checks that
//! hash again before reusing a cached .deb (apt trusts a file of the right
//! size). The tarball is extracted with `dpkg-deb -x` and the .deb removed
//! (nothing is stored twice).
//!
//! Fetching is part of set-up (`hidvm fetch`, run by `make setup`): it
//! refreshes the signed index and takes a newer version when the suite has
//! one, like `apt-get upgrade` does for the installed 6.12 package. Runs
//! use what was fetched, without the network; a run that finds nothing
//! fetched fetches first, and says so.
use crate::base::error::{one_line, Error, Result};
use crate::base::layout::write_atomic;
use crate::base::lock::{FileLock, Mode};
use std::path::{Path, PathBuf};

/// The keyring that signs every Debian suite (package debian-archive-keyring).
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
const MIRROR: &str = "http://deb.debian.org/debian";

/// A package version in a suite's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub version: String,
    pub sha256: String,
    pub filename: String,
}

/// Parse `apt-cache show` output: the first record's Version, SHA256, Filename.
pub fn parse_show(text: &str) -> Option<IndexEntry> {
    let record = text.split("\n\n").next()?;
    let field =
        |name: &str| record.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(|v| v.trim().to_string()));
    Some(IndexEntry { version: field("Version")?, sha256: field("SHA256")?, filename: field("Filename")? })
}

/// Where a suite's private apt state lives.
struct AptState {
    dir: PathBuf,
}

impl AptState {
    fn new(cache: &Path, suite: &str) -> Result<AptState> {
        let dir = cache.join("apt").join(suite);
        for sub in [
            "etc/apt.conf.d",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "lists/partial",
            "cache/archives/partial",
            "state",
            "log",
            "deb",
        ] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(Error::io(format!("creating {}", dir.join(sub).display())))?;
        }
        let status = dir.join("state/status");
        if !status.exists() {
            std::fs::write(&status, "").map_err(Error::io(format!("creating {}", status.display())))?;
        }
        let d = dir.display();
        // Main is /dev/null: the system's /etc/apt/apt.conf.d is never read.
        let conf = format!(
            "Dir::Etc::Main \"/dev/null\";\nDir::Etc::Parts \"{d}/etc/apt.conf.d\";\nDir::Etc::SourceList \"{d}/etc/sources.list\";\n\
             Dir::Etc::SourceParts \"{d}/etc/sources.list.d\";\nDir::Etc::Preferences \"{d}/etc/preferences\";\n\
             Dir::Etc::PreferencesParts \"{d}/etc/preferences.d\";\nDir::Etc::Trusted \"{d}/etc/trusted.gpg\";\n\
             Dir::Etc::TrustedParts \"{d}/etc/trusted.gpg.d\";\nDir::State \"{d}/state\";\nDir::State::Lists \"{d}/lists\";\n\
             Dir::State::Status \"{d}/state/status\";\nDir::Cache \"{d}/cache\";\nDir::Log \"{d}/log\";\n\
             Acquire::Languages \"none\";\nAcquire::Retries \"0\";\nAPT::Architecture \"amd64\";\nAPT::Architectures {{ \"amd64\"; }};\n\
             APT::Sandbox::User \"root\";\n"
        );
        write_atomic(&dir.join("etc/apt.conf"), conf.as_bytes())
            .map_err(Error::io("writing the private apt config"))?;
        let sources = format!("deb [signed-by={KEYRING}] {MIRROR} {suite} main\n");
        write_atomic(&dir.join("etc/sources.list"), sources.as_bytes())
            .map_err(Error::io("writing the private sources list"))?;
        Ok(AptState { dir })
    }

    fn apt(&self, program: &str, args: &[&str]) -> duct::Expression {
        duct::cmd(program, args).env("APT_CONFIG", self.dir.join("etc/apt.conf")).stdin_null()
    }
}

/// What the last fetch of a package left: `cache/debian/<package>.fetched`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Fetched {
    version: String,
    tarball: PathBuf,
}

fn fetched_record(cache: &Path, package: &str) -> PathBuf {
    cache.join("debian").join(format!("{package}.fetched"))
}

/// The package's tarball as last fetched (no network), or a fetch now if
/// there is none.
pub fn source(cache: &Path, package: &str, suite: &str) -> Result<(PathBuf, String)> {
    let record = std::fs::read(fetched_record(cache, package))
        .ok()
        .and_then(|b| serde_json::from_slice::<Fetched>(&b).ok())
        .filter(|f| f.tarball.exists());
    match record {
        Some(f) => Ok((f.tarball, f.version)),
        None => {
            crate::base::output::note(format!(
                "hidvm: {package} has not been fetched yet (`make setup` fetches it): fetching it now"
            ));
            fetch_source(cache, package, suite)
        }
    }
}

/// Fetch the newest `package` of `suite` into the cache (nothing is
/// downloaded when it is already there) and return its source tarball and
/// version. Without network, the last fetched version is kept.
pub fn fetch_source(cache: &Path, package: &str, suite: &str) -> Result<(PathBuf, String)> {
    let bad = |problem: String| fetch_error(package, suite, problem);
    crate::base::tools::require(&crate::base::tools::Tool {
        name: "apt-get",
        what: "Debian package tool",
        package: "apt",
    })?;
    if !Path::new(KEYRING).exists() {
        return Err(bad(format!(
            "{KEYRING} is missing: install it with `sudo apt-get install debian-archive-keyring`"
        )));
    }
    let state = AptState::new(cache, suite)?;
    let _lock = FileLock::acquire(&state.dir.join("lock"), Mode::Exclusive, &format!("fetching {package}"))
        .map_err(Error::io("apt state lock"))?;
    let entry = newest_entry(&state, package, suite)?;
    let tar_dir = cache.join("debian");
    let tarball = tar_dir.join(format!("{package}_{}.tar.xz", entry.version.replace(['~', ':'], "_")));
    if tarball.exists() {
        remember(cache, package, &entry.version, &tarball)?;
        return Ok((tarball, entry.version.clone()));
    }
    let deb = download(&state, &entry, package, suite)?;
    std::fs::create_dir_all(&tar_dir).map_err(Error::io(format!("creating {}", tar_dir.display())))?;
    let tmp =
        tempfile::Builder::new().prefix(".deb-").tempdir_in(&tar_dir).map_err(Error::io("temporary extraction dir"))?;
    let out = duct::cmd!("dpkg-deb", "-x", &deb, tmp.path())
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(Error::io("running dpkg-deb"))?;
    if !out.status.success() {
        return Err(bad(format!("dpkg-deb -x failed: {}", one_line(&String::from_utf8_lossy(&out.stderr), 2))));
    }
    let inner = tmp.path().join(format!("usr/src/{package}.tar.xz"));
    if !inner.exists() {
        return Err(bad(format!("the package has no usr/src/{package}.tar.xz")));
    }
    std::fs::rename(&inner, &tarball).map_err(Error::io("moving the source tarball into the cache"))?;
    let _ = std::fs::remove_file(&deb);
    remember(cache, package, &entry.version, &tarball)?;
    Ok((tarball, entry.version.clone()))
}

fn fetch_error(package: &str, suite: &str, problem: String) -> Error {
    Error::KernelSource { path: PathBuf::from(format!("{package} ({suite})")), problem }
}

/// The package's entry in the suite's signed index, refreshed first
/// (without network apt keeps the last lists).
fn newest_entry(state: &AptState, package: &str, suite: &str) -> Result<IndexEntry> {
    let update = state
        .apt("apt-get", &["-q", "update"])
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(Error::io("running apt-get update"))?;
    let show = state
        .apt("apt-cache", &["show", package])
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(Error::io("running apt-cache show"))?;
    parse_show(&String::from_utf8_lossy(&show.stdout)).ok_or_else(|| {
        let why = if update.status.success() {
            format!("{suite} has no package {package}")
        } else {
            format!(
                "cannot read {suite}'s index and none is cached: {}",
                one_line(&String::from_utf8_lossy(&update.stderr), 2)
            )
        };
        fetch_error(package, suite, format!("{why}; check network access to {MIRROR}"))
    })
}

/// Record `tarball` as the package's fetched version; older versions of
/// the package are not needed any more.
fn remember(cache: &Path, package: &str, version: &str, tarball: &Path) -> Result<()> {
    let rec = serde_json::to_vec(&Fetched { version: version.to_string(), tarball: tarball.to_path_buf() })
        .expect("record serializes");
    let path = fetched_record(cache, package);
    write_atomic(&path, &rec).map_err(Error::io(format!("writing {}", path.display())))?;
    let tar_dir = cache.join("debian");
    for e in std::fs::read_dir(&tar_dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{package}_")) && name.ends_with(".tar.xz") && e.path() != tarball {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// The entry's .deb in the apt state directory, downloaded unless it is
/// there already, and checked against the signed index's SHA256.
fn download(state: &AptState, entry: &IndexEntry, package: &str, suite: &str) -> Result<PathBuf> {
    let bad = |problem: String| fetch_error(package, suite, problem);
    let deb = state.dir.join("deb").join(entry.filename.rsplit('/').next().unwrap_or(&entry.filename));
    if deb.exists() && sha256_file(&deb)? != entry.sha256 {
        // apt-get download keeps a file of the right size without hashing it.
        let _ = std::fs::remove_file(&deb);
    }
    if !deb.exists() {
        let progress = crate::base::output::start(crate::base::output::Phase::Work {
            what: &format!("fetching {package} {} from Debian {suite} (without installing it)", entry.version),
        });
        let out = state
            .apt("apt-get", &["-q", "download", &format!("{package}={}", entry.version)])
            .dir(state.dir.join("deb"))
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(Error::io("running apt-get download"))?;
        if !out.status.success() {
            return Err(bad(format!(
                "apt-get download failed: {}",
                one_line(&String::from_utf8_lossy(&out.stderr), 2)
            )));
        }
        progress.finish("downloaded");
    }
    let got = sha256_file(&deb)?;
    if got != entry.sha256 {
        let _ = std::fs::remove_file(&deb);
        return Err(bad(format!(
            "{} has SHA256 {got}, the signed index says {}: removed; run again",
            deb.display(),
            entry.sha256
        )));
    }
    Ok(deb)
}

fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(Error::io(format!("reading {}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(Error::io(format!("reading {}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_record_of_apt_cache_show_is_read() {
        let text = "Package: linux-source-7.3\nVersion: 7.3.4-1~bpo13+1\nArchitecture: all\nFilename: pool/main/l/linux/linux-source-7.3_7.3.4-1~bpo13+1_all.deb\nSize: 166780612\nSHA256: 703e369d\n\nPackage: linux-source-7.3\nVersion: 7.3.2-1~bpo13+1\nSHA256: 00\nFilename: x\n";
        let e = parse_show(text).unwrap();
        assert_eq!(e.version, "7.3.4-1~bpo13+1");
        assert_eq!(e.sha256, "703e369d");
        assert!(e.filename.ends_with("_all.deb"));
        assert!(parse_show("").is_none());
    }
}
