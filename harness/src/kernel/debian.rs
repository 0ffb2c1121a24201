//! Kernel source tarballs from Debian packages (`linux-source-X.Y`), the
//! exact versions `guest-image/kernels.lock` pins.
//!
//! Where a pinned tarball comes from, first match wins:
//! 1. the cache (`<cache>/debian/<package>_<version>.tar.xz`), if its
//!    SHA256 is the pinned one: no network, also after Debian moved on;
//! 2. the host's `/usr/src/<package>.tar.xz` (kernels `installed` by
//!    `make setup`), if its SHA256 is the pinned one;
//! 3. a .deb in `<cache>/debian/` (one a user put there, say from
//!    snapshot.debian.org), if its SHA256 is the pinned one;
//! 4. the suite, fetched without installing anything and without touching
//!    the system's apt configuration: apt runs with a private `APT_CONFIG`
//!    whose sources list holds only that suite, signed by the system's
//!    Debian keyring; apt checks the suite's signature and the .deb's
//!    SHA256 against the signed index, and hidvm checks it against the lock.
//!
//! The tarball is extracted with `dpkg-deb -x` and the .deb removed
//! (nothing is stored twice). When none of these has it, the error is one
//! line saying what the suite has now and what to do.
//!
//! The suites' indexes are behind [`Index`], so tests use a fake one.
use crate::base::error::{one_line, Error, Result};
use crate::base::layout::{sha256_parts, write_atomic};
use crate::base::lock::{FileLock, Mode};
use crate::kernel::lockfile::Pin;
use std::path::{Path, PathBuf};

/// The keyring that signs every Debian suite (package debian-archive-keyring).
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The mirror that carries `suite`.
fn mirror(suite: &str) -> &'static str {
    if suite.ends_with("-security") {
        "http://deb.debian.org/debian-security"
    } else {
        "http://deb.debian.org/debian"
    }
}

/// A package version in a suite's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub version: String,
    pub sha256: String,
    pub filename: String,
}

/// Parse `apt-cache show` output: the first record's Version, SHA256, Filename.
pub fn parse_show(text: &str) -> Option<IndexEntry> {
    parse_all(text).into_iter().next()
}

/// Every record of `apt-cache show` output.
pub fn parse_all(text: &str) -> Vec<IndexEntry> {
    text.split("\n\n")
        .filter_map(|record| {
            let field = |name: &str| {
                record.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(|v| v.trim().to_string()))
            };
            Some(IndexEntry { version: field("Version")?, sha256: field("SHA256")?, filename: field("Filename")? })
        })
        .collect()
}

/// The suites' package indexes: apt on a private state ([`Apt`]), or a
/// fake in tests.
pub trait Index {
    /// Refresh the suite's signed index; `Err(why)` when it cannot be read
    /// (apt keeps the last one it had).
    fn refresh(&self, suite: &str) -> std::result::Result<(), String>;
    /// `apt-cache show <package>` in the suite (empty: it has none).
    fn show(&self, suite: &str, package: &str) -> String;
    /// The names of the suite's packages that start with `prefix`.
    fn names(&self, suite: &str, prefix: &str) -> Vec<String>;
    /// Download `package=version`'s .deb into `dir`.
    fn download(&self, suite: &str, package: &str, version: &str, dir: &Path) -> std::result::Result<(), String>;
}

/// Every version of `package` in `suite`, newest first.
pub fn versions(index: &dyn Index, suite: &str, package: &str) -> Vec<IndexEntry> {
    let mut all = parse_all(&index.show(suite, package));
    all.sort_by(|a, b| compare_versions(&b.version, &a.version));
    all.dedup_by(|a, b| a.version == b.version);
    all
}

/// The suite's highest `linux-source-X.Y`, and its newest version.
pub fn newest_source(index: &dyn Index, suite: &str) -> Option<(String, IndexEntry)> {
    let series = |name: &str| crate::kernel::spec::parse_series(name.strip_prefix("linux-source-")?);
    let mut names: Vec<String> =
        index.names(suite, "linux-source-").into_iter().filter(|n| series(n).is_some()).collect();
    names.sort_by_key(|n| series(n));
    let name = names.pop()?;
    let newest = versions(index, suite, &name).into_iter().next()?;
    Some((name, newest))
}

/// Debian's version order (`dpkg --compare-versions`): epoch, then
/// upstream version and revision compared as runs of non-digits (`~`
/// before everything, letters before other characters) and numbers.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |v: &str| {
        let (epoch, rest) = v.split_once(':').map(|(e, r)| (e.parse::<u64>().unwrap_or(0), r)).unwrap_or((0, v));
        let (up, rev) = rest.rsplit_once('-').unwrap_or((rest, ""));
        (epoch, up.to_string(), rev.to_string())
    };
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb).then_with(|| compare_part(&ua, &ub)).then_with(|| compare_part(&ra, &rb))
}

fn compare_part(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let order = |c: Option<char>| match c {
        Some('~') => -1,
        None => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    };
    let (mut a, mut b) = (a, b);
    while !a.is_empty() || !b.is_empty() {
        let na = a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len());
        let nb = b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len());
        let (ta, tb) = (&a[..na], &b[..nb]);
        let (mut ca, mut cb) = (ta.chars(), tb.chars());
        loop {
            let (x, y) = (ca.next(), cb.next());
            if x.is_none() && y.is_none() {
                break;
            }
            match order(x).cmp(&order(y)) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        (a, b) = (&a[na..], &b[nb..]);
        let da = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
        let db = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
        let num = |s: &str| s.trim_start_matches('0').to_string();
        let (xa, xb) = (num(&a[..da]), num(&b[..db]));
        match xa.len().cmp(&xb.len()).then_with(|| xa.cmp(&xb)) {
            Ordering::Equal => {}
            o => return o,
        }
        (a, b) = (&a[da..], &b[db..]);
    }
    Ordering::Equal
}

/// apt on a private state per suite under `<cache>/apt/<suite>/`.
pub struct Apt {
    pub cache: PathBuf,
    refreshed: std::sync::Mutex<std::collections::BTreeMap<String, std::result::Result<(), String>>>,
}

impl Apt {
    pub fn new(cache: &Path) -> Apt {
        Apt { cache: cache.to_path_buf(), refreshed: Default::default() }
    }

    fn state(&self, suite: &str) -> std::result::Result<AptState, String> {
        crate::base::tools::require(&crate::base::tools::Tool {
            name: "apt-get",
            what: "Debian package tool",
            package: "apt",
        })
        .map_err(|e| e.to_string())?;
        if !Path::new(KEYRING).exists() {
            return Err(format!("{KEYRING} is missing: install it with `sudo apt-get install debian-archive-keyring`"));
        }
        AptState::new(&self.cache, suite).map_err(|e| e.to_string())
    }
}

impl Index for Apt {
    fn refresh(&self, suite: &str) -> std::result::Result<(), String> {
        let mut done = self.refreshed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = done.get(suite) {
            return r.clone();
        }
        let result = self.state(suite).and_then(|state| {
            let _lock = FileLock::acquire(&state.dir.join("lock"), Mode::Exclusive, &format!("apt state of {suite}"))
                .map_err(|e| e.to_string())?;
            apt_ok(state.apt("apt-get", &["-q", "update"]), "apt-get update")
        });
        done.insert(suite.to_string(), result.clone());
        result
    }

    fn show(&self, suite: &str, package: &str) -> String {
        let Ok(state) = self.state(suite) else { return String::new() };
        let out = state.apt("apt-cache", &["show", package]).stdout_capture().stderr_null().unchecked().run();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }

    fn names(&self, suite: &str, prefix: &str) -> Vec<String> {
        let Ok(state) = self.state(suite) else { return Vec::new() };
        let out = state.apt("apt-cache", &["pkgnames", prefix]).stdout_capture().stderr_null().unchecked().run();
        out.map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()).unwrap_or_default()
    }

    fn download(&self, suite: &str, package: &str, version: &str, dir: &Path) -> std::result::Result<(), String> {
        let state = self.state(suite)?;
        apt_ok(state.apt("apt-get", &["-q", "download", &format!("{package}={version}")]).dir(dir), "apt-get download")
            .map_err(|e| format!("apt-get download failed: {e}"))
    }
}

/// Run an apt command; its last lines of stderr when it fails.
fn apt_ok(expr: duct::Expression, what: &str) -> std::result::Result<(), String> {
    let out = expr.stdout_capture().stderr_capture().unchecked().run().map_err(|e| format!("running {what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(one_line(&String::from_utf8_lossy(&out.stderr), 2))
    }
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
        let sources = format!("deb [signed-by={KEYRING}] {} {suite} main\n", mirror(suite));
        write_atomic(&dir.join("etc/sources.list"), sources.as_bytes())
            .map_err(Error::io("writing the private sources list"))?;
        Ok(AptState { dir })
    }

    fn apt(&self, program: &str, args: &[&str]) -> duct::Expression {
        duct::cmd(program, args).env("APT_CONFIG", self.dir.join("etc/apt.conf")).stdin_null()
    }
}

/// Where a pinned tarball is cached.
pub fn cached_tarball(cache: &Path, package: &str, version: &str) -> PathBuf {
    cache.join("debian").join(format!("{package}_{}.tar.xz", version.replace(['~', ':'], "_")))
}

/// Where a pinned kernel's source is, without the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// In the cache, with the pinned SHA256.
    Cached(PathBuf),
    /// The host's installed tarball, with the pinned SHA256.
    Installed(PathBuf),
    /// Not here: a fetch (or `hidvm fetch`) gets it.
    Missing,
}

/// The installed tarball of `package` (`/usr/src/<package>.tar.xz`).
pub fn installed_tarball(package: &str) -> PathBuf {
    PathBuf::from(format!("/usr/src/{package}.tar.xz"))
}

/// Where `pin`'s tarball is, checked by SHA256, without the network;
/// `installed`: the host's tarball of the package, for kernels `make
/// setup` installs.
pub fn find(cache: &Path, pin: &Pin, installed: Option<&Path>) -> Result<Found> {
    let cached = cached_tarball(cache, &pin.package, &pin.version);
    if cached.exists() && sha256_of(cache, &cached)? == pin.tarball_sha256 {
        return Ok(Found::Cached(cached));
    }
    if let Some(usr) = installed.filter(|p| p.exists()) {
        if sha256_of(cache, usr)? == pin.tarball_sha256 {
            return Ok(Found::Installed(usr.to_path_buf()));
        }
    }
    Ok(Found::Missing)
}

/// `pin`'s tarball: found locally ([`find`]), else fetched from its suite.
pub fn locate(cache: &Path, pin: &Pin, installed: Option<&Path>, index: &dyn Index) -> Result<PathBuf> {
    match find(cache, pin, installed)? {
        Found::Cached(p) | Found::Installed(p) => return Ok(p),
        Found::Missing => {}
    }
    if let Some(usr) = installed.filter(|p| p.exists()) {
        crate::base::output::note(format!(
            "hidvm: kernel {}: the installed {} ({}) is not the locked {}: using the locked one, fetched into the cache; `hidvm kernels --update` moves the lock",
            pin.name,
            usr.display(),
            installed_version(&pin.package).unwrap_or_else(|| "another version".into()),
            pin.version
        ));
    }
    fetch(cache, pin, index)
}

/// Get `pin`'s .deb (one put into the cache, else from its suite), check
/// it and take out its tarball.
pub fn fetch(cache: &Path, pin: &Pin, index: &dyn Index) -> Result<PathBuf> {
    let dir = cache.join("debian");
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let _lock = FileLock::acquire(&dir.join(format!("{}.lock", pin.package)), Mode::Exclusive, "a kernel source fetch")
        .map_err(Error::io("kernel source fetch lock"))?;
    if let Found::Cached(p) = find(cache, pin, None)? {
        return Ok(p);
    }
    let deb = dir.join(pin.deb_name());
    if !(deb.exists() && sha256_file(&deb)? == pin.deb_sha256) {
        download(cache, pin, index, &deb)?;
    }
    let tarball = extract(cache, pin, &deb)?;
    let _ = std::fs::remove_file(&deb);
    Ok(tarball)
}

/// Download `pin`'s .deb to `deb`, or say in one line why it cannot be had.
fn download(cache: &Path, pin: &Pin, index: &dyn Index, deb: &Path) -> Result<()> {
    let refreshed = index.refresh(&pin.suite);
    let all = versions(index, &pin.suite, &pin.package);
    let Some(entry) = all.iter().find(|e| e.version == pin.version) else {
        return Err(gone(cache, pin, index, refreshed.err(), all.first()));
    };
    if entry.sha256 != pin.deb_sha256 {
        return Err(bad(
            pin,
            format!(
                "{} {} in {} has SHA256 {}, the lock says {}: the archive changed it; check, then `hidvm kernels --update`",
                pin.package, pin.version, pin.suite, entry.sha256, pin.deb_sha256
            ),
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(deb.parent().unwrap_or(cache))
        .map_err(Error::io("temporary download dir"))?;
    let progress = crate::base::output::start(crate::base::output::Phase::Work {
        what: &format!("fetching {} {} from Debian {} (without installing it)", pin.package, pin.version, pin.suite),
    });
    index.download(&pin.suite, &pin.package, &pin.version, tmp.path()).map_err(|e| bad(pin, e))?;
    let got = std::fs::read_dir(tmp.path()).ok().and_then(|mut d| d.next()).and_then(|e| e.ok()).map(|e| e.path());
    let got = got.ok_or_else(|| bad(pin, "the download left no .deb".into()))?;
    let sum = sha256_file(&got)?;
    if sum != pin.deb_sha256 {
        return Err(bad(pin, format!("the downloaded .deb has SHA256 {sum}, the lock says {}", pin.deb_sha256)));
    }
    std::fs::rename(&got, deb).map_err(Error::io(format!("moving the .deb to {}", deb.display())))?;
    progress.finish("downloaded");
    Ok(())
}

/// The one line for a pinned version nobody has: what the suite carries
/// now, and what to do.
fn gone(cache: &Path, pin: &Pin, index: &dyn Index, unreachable: Option<String>, now: Option<&IndexEntry>) -> Error {
    let put = format!(
        "put {} (SHA256 {}) into {} (snapshot.debian.org keeps every version: https://snapshot.debian.org/binary/{}/)",
        pin.deb_name(),
        pin.deb_sha256,
        cache.join("debian").display(),
        pin.package
    );
    let what = format!("kernel {}: {} {}", pin.name, pin.package, pin.version);
    Error::Other(match (unreachable, now) {
        (Some(why), _) => format!(
            "{what} is not cached and Debian {} cannot be reached ({why}): connect to the network and run `hidvm fetch`, or {put}",
            pin.suite
        ),
        (None, Some(e)) => format!(
            "{what} is no longer in {} (it now has {}) and is not cached: run `hidvm kernels --update` to move to {}, or {put}",
            pin.suite, e.version, e.version
        ),
        (None, None) => {
            let other = newest_source(index, &pin.suite)
                .map(|(p, e)| format!(" (its newest kernel source is {p} {}: `hidvm kernels --update` moves `newest` there)", e.version))
                .unwrap_or_default();
            format!("{what} is no longer in {}, which has no {} at all{other}, and is not cached: {put}", pin.suite, pin.package)
        }
    })
}

fn bad(pin: &Pin, problem: String) -> Error {
    Error::KernelSource { path: PathBuf::from(format!("{} {} ({})", pin.package, pin.version, pin.suite)), problem }
}

/// `deb`'s tarball, moved into the cache and checked against the pin.
fn extract(cache: &Path, pin: &Pin, deb: &Path) -> Result<PathBuf> {
    let dir = cache.join("debian");
    let tmp =
        tempfile::Builder::new().prefix(".deb-").tempdir_in(&dir).map_err(Error::io("temporary extraction dir"))?;
    let out = duct::cmd!("dpkg-deb", "-x", deb, tmp.path())
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(Error::io("running dpkg-deb"))?;
    if !out.status.success() {
        return Err(bad(pin, format!("dpkg-deb -x failed: {}", one_line(&String::from_utf8_lossy(&out.stderr), 2))));
    }
    let inner = tmp.path().join(format!("usr/src/{}.tar.xz", pin.package));
    if !inner.exists() {
        return Err(bad(pin, format!("the package has no usr/src/{}.tar.xz", pin.package)));
    }
    let sum = sha256_file(&inner)?;
    if !pin.tarball_sha256.is_empty() && sum != pin.tarball_sha256 {
        return Err(bad(pin, format!("its tarball has SHA256 {sum}, the lock says {}", pin.tarball_sha256)));
    }
    let tarball = cached_tarball(cache, &pin.package, &pin.version);
    std::fs::rename(&inner, &tarball).map_err(Error::io("moving the source tarball into the cache"))?;
    Ok(tarball)
}

/// A pin for `package`'s newest version in `suite`: its tarball's SHA256
/// is known only from the tarball, so it is fetched into the cache unless
/// it is there, or `installed` (the host's tarball) is that version.
pub fn pin_newest(
    cache: &Path,
    name: &str,
    suite: &str,
    package: &str,
    installed: Option<&Path>,
    index: &dyn Index,
) -> Result<Option<Pin>> {
    index.refresh(suite).map_err(|why| Error::KernelSource {
        path: PathBuf::from(format!("{package} ({suite})")),
        problem: format!("cannot read Debian {suite}'s index ({why}); check network access to {}", mirror(suite)),
    })?;
    let Some(entry) = versions(index, suite, package).into_iter().next() else { return Ok(None) };
    let mut pin = Pin {
        name: name.to_string(),
        package: package.to_string(),
        version: entry.version,
        suite: suite.to_string(),
        deb_sha256: entry.sha256,
        tarball_sha256: String::new(),
    };
    let cached = cached_tarball(cache, package, &pin.version);
    let host = installed.filter(|p| p.exists() && installed_version(package).as_deref() == Some(&pin.version));
    let tarball = match host {
        _ if cached.exists() => cached,
        Some(p) => p.to_path_buf(),
        None => fetch(cache, &pin, index)?,
    };
    pin.tarball_sha256 = sha256_of(cache, &tarball)?;
    Ok(Some(pin))
}

/// The installed version of a Debian package (`6.12.118-1~deb12u1`), if dpkg knows it.
pub fn installed_version(package: &str) -> Option<String> {
    let out = duct::cmd!("dpkg-query", "-W", "-f=${Version}", package)
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}

/// SHA256 of a large file, remembered per (path, size, mtime) under
/// `<cache>/debian/sums/` so a run does not hash 150 MB each time.
pub fn sha256_of(cache: &Path, path: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(Error::io(format!("reading {}", path.display())))?;
    let stamp = format!("{}:{}:{}.{}", path.display(), meta.len(), meta.mtime(), meta.mtime_nsec());
    let memo = cache.join("debian/sums").join(&sha256_parts([stamp.as_bytes()])[..24]);
    if let Ok(text) = std::fs::read_to_string(&memo) {
        if let Some(sum) = text.strip_prefix(&format!("{stamp} ")) {
            return Ok(sum.trim().to_string());
        }
    }
    let sum = sha256_file(path)?;
    let _ = write_atomic(&memo, format!("{stamp} {sum}\n").as_bytes());
    Ok(sum)
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
pub(crate) mod fake {
    //! A suite index in memory, with real .debs made by `dpkg-deb --build`.
    use super::*;
    use std::collections::BTreeMap;

    /// package -> [(version, .deb bytes)]
    pub type Packages = BTreeMap<String, Vec<(String, Vec<u8>)>>;

    #[derive(Default)]
    pub struct FakeIndex {
        /// suite -> its packages
        pub suites: BTreeMap<String, Packages>,
        /// Suites that cannot be reached.
        pub offline: bool,
        pub downloads: std::sync::Mutex<u32>,
    }

    /// A .deb holding `usr/src/<package>.tar.xz` with `content`.
    pub fn deb(package: &str, version: &str, content: &str) -> Vec<u8> {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("usr/src")).unwrap();
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        std::fs::write(root.join(format!("usr/src/{package}.tar.xz")), content).unwrap();
        std::fs::write(
            root.join("DEBIAN/control"),
            format!("Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n"),
        )
        .unwrap();
        let out = d.path().join("p.deb");
        let ok =
            std::process::Command::new("dpkg-deb").args(["--build", "-Znone"]).arg(&root).arg(&out).output().unwrap();
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        std::fs::read(out).unwrap()
    }

    pub fn sha(bytes: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
    }

    impl FakeIndex {
        pub fn add(&mut self, suite: &str, package: &str, version: &str, content: &str) -> Vec<u8> {
            let bytes = deb(package, version, content);
            let list = self.suites.entry(suite.into()).or_default().entry(package.into()).or_default();
            list.push((version.into(), bytes.clone()));
            bytes
        }
    }

    impl Index for FakeIndex {
        fn refresh(&self, suite: &str) -> std::result::Result<(), String> {
            if self.offline {
                Err(format!("Could not resolve 'deb.debian.org' ({suite})"))
            } else {
                Ok(())
            }
        }
        fn show(&self, suite: &str, package: &str) -> String {
            let Some(list) = self.suites.get(suite).and_then(|s| s.get(package)) else { return String::new() };
            list.iter()
                .map(|(v, bytes)| {
                    format!(
                        "Package: {package}\nVersion: {v}\nFilename: pool/main/l/{package}_{v}_all.deb\nSHA256: {}\n",
                        sha(bytes)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        fn names(&self, suite: &str, prefix: &str) -> Vec<String> {
            self.suites
                .get(suite)
                .map(|s| s.keys().filter(|k| k.starts_with(prefix)).cloned().collect())
                .unwrap_or_default()
        }
        fn download(&self, suite: &str, package: &str, version: &str, dir: &Path) -> std::result::Result<(), String> {
            *self.downloads.lock().unwrap() += 1;
            let list = self.suites.get(suite).and_then(|s| s.get(package)).ok_or("no such package")?;
            let (_, bytes) = list.iter().find(|(v, _)| v == version).ok_or("no such version")?;
            std::fs::write(dir.join(format!("{package}_{version}_all.deb")), bytes).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{sha, FakeIndex};
    use super::*;

    #[test]
    fn the_first_record_of_apt_cache_show_is_read() {
        let text = "Package: linux-source-7.3\nVersion: 7.3.4-1~bpo13+1\nArchitecture: all\nFilename: pool/main/l/linux/linux-source-7.3_7.3.4-1~bpo13+1_all.deb\nSize: 166780612\nSHA256: 703e369d\n\nPackage: linux-source-7.3\nVersion: 7.3.2-1~bpo13+1\nSHA256: 00\nFilename: x\n";
        let e = parse_show(text).unwrap();
        assert_eq!(e.version, "7.3.4-1~bpo13+1");
        assert_eq!(e.sha256, "703e369d");
        assert!(e.filename.ends_with("_all.deb"));
        assert!(parse_show("").is_none());
        assert_eq!(parse_all(text).len(), 2);
    }

    #[test]
    fn debian_versions_compare_as_dpkg_does() {
        use std::cmp::Ordering::*;
        for (a, b, o) in [
            ("7.3.4-1~bpo13+1", "7.3.4-1", Less),
            ("7.3.10-1~bpo13+1", "7.3.9-1~bpo13+1", Greater),
            ("6.12.118-1~deb12u1", "6.12.117-1~deb12u1", Greater),
            ("1:1.0-1", "2.0-1", Greater),
            ("1.0~rc1-1", "1.0-1", Less),
            ("1.0a-1", "1.0-1", Greater),
            ("1.0-1", "1.0-1", Equal),
        ] {
            assert_eq!(compare_versions(a, b), o, "{a} vs {b}");
        }
    }

    fn pin_of(index: &FakeIndex, suite: &str, package: &str, version: &str, content: &str) -> Pin {
        let bytes = &index.suites[suite][package].iter().find(|(v, _)| v == version).unwrap().1;
        Pin {
            name: "7.3".into(),
            package: package.into(),
            version: version.into(),
            suite: suite.into(),
            deb_sha256: sha(bytes),
            tarball_sha256: sha(content.as_bytes()),
        }
    }

    /// trixie-backports with these (series, version, tarball content).
    fn backports(packages: &[(&str, &str, &str)]) -> FakeIndex {
        let mut index = FakeIndex::default();
        for (series, version, content) in packages {
            index.add("trixie-backports", &format!("linux-source-{series}"), version, content);
        }
        index
    }

    /// The locked version is fetched once; then it is found in the cache,
    /// also with the suite unreachable.
    #[test]
    fn a_pinned_version_is_fetched_once_and_then_works_offline() {
        let cache = tempfile::tempdir().unwrap();
        let mut index =
            backports(&[("7.3", "7.3.4-1~bpo13+1", "tree 7.3.4"), ("7.3", "7.3.5-1~bpo13+1", "tree 7.3.5")]);
        let pin = pin_of(&index, "trixie-backports", "linux-source-7.3", "7.3.4-1~bpo13+1", "tree 7.3.4");
        let t = locate(cache.path(), &pin, None, &index).unwrap();
        assert_eq!(std::fs::read_to_string(&t).unwrap(), "tree 7.3.4", "the locked version, not the newest");
        assert!(!cache.path().join("debian").join(pin.deb_name()).exists(), "the .deb is not kept");
        index.offline = true;
        index.suites.clear();
        assert_eq!(locate(cache.path(), &pin, None, &index).unwrap(), t);
        assert_eq!(*index.downloads.lock().unwrap(), 1);
        assert_eq!(find(cache.path(), &pin, None).unwrap(), Found::Cached(t));
    }

    /// Debian moved on: the suite no longer has the locked version, and the
    /// cache does not have it either; one line says what the suite has and
    /// what to do. A .deb put into the cache then works.
    #[test]
    fn a_version_gone_from_the_archive_is_one_line_with_what_to_do() {
        let cache = tempfile::tempdir().unwrap();
        let mut index = FakeIndex::default();
        let old = index.add("trixie-backports", "linux-source-7.3", "7.3.4-1~bpo13+1", "tree 7.3.4");
        let pin = pin_of(&index, "trixie-backports", "linux-source-7.3", "7.3.4-1~bpo13+1", "tree 7.3.4");
        index.suites.clear();
        index.add("trixie-backports", "linux-source-7.3", "7.3.9-1~bpo13+1", "tree 7.3.9");
        let e = locate(cache.path(), &pin, None, &index).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.contains("kernel 7.3: linux-source-7.3 7.3.4-1~bpo13+1 is no longer in trixie-backports (it now has 7.3.9-1~bpo13+1) and is not cached: run `hidvm kernels --update` to move to 7.3.9-1~bpo13+1, or put linux-source-7.3_7.3.4-1~bpo13+1_all.deb"),
            "{e}"
        );
        // The package gone altogether: the suite's newest kernel source is named.
        index.suites.clear();
        index.add("trixie-backports", "linux-source-7.4", "7.4.1-1~bpo13+1", "tree 7.4.1");
        let e = locate(cache.path(), &pin, None, &index).unwrap_err().to_string();
        assert!(e.contains("which has no linux-source-7.3 at all (its newest kernel source is linux-source-7.4 7.4.1-1~bpo13+1: `hidvm kernels --update` moves `newest` there), and is not cached: put linux-source-7.3_7.3.4-1~bpo13+1_all.deb"), "{e}");
        index.offline = true;
        let e = locate(cache.path(), &pin, None, &index).unwrap_err().to_string();
        assert!(e.contains("is not cached and Debian trixie-backports cannot be reached"), "{e}");
        // What the message says to do works.
        std::fs::create_dir_all(cache.path().join("debian")).unwrap();
        std::fs::write(cache.path().join("debian").join(pin.deb_name()), old).unwrap();
        let t = locate(cache.path(), &pin, None, &index).unwrap();
        assert_eq!(std::fs::read_to_string(t).unwrap(), "tree 7.3.4");
    }

    #[test]
    fn an_installed_tarball_is_used_only_when_it_is_the_locked_one() {
        let cache = tempfile::tempdir().unwrap();
        let usr = tempfile::tempdir().unwrap();
        let mut index = FakeIndex::default();
        index.add("bookworm-security", "linux-source-6.12", "6.12.118-1~deb12u1", "tree 6.12.118");
        let pin = pin_of(&index, "bookworm-security", "linux-source-6.12", "6.12.118-1~deb12u1", "tree 6.12.118");
        std::fs::write(usr.path().join("linux-source-6.12.tar.xz"), "tree 6.12.118").unwrap();
        let installed = usr.path().join("linux-source-6.12.tar.xz");
        assert_eq!(locate(cache.path(), &pin, Some(&installed), &index).unwrap(), installed);
        // An apt upgrade of the host: the locked version is fetched instead.
        std::fs::write(&installed, "tree 6.12.119").unwrap();
        let t = locate(cache.path(), &pin, Some(&installed), &index).unwrap();
        assert_eq!(std::fs::read_to_string(t).unwrap(), "tree 6.12.118");
    }

    #[test]
    fn the_newest_source_is_the_highest_series_then_the_highest_version() {
        let cache = tempfile::tempdir().unwrap();
        let mut index = backports(&[
            ("7.3", "7.3.9-1~bpo13+1", "a"),
            ("7.10", "7.10.1-1~bpo13+1", "b"),
            ("7.10", "7.10.2-1~bpo13+1", "c"),
        ]);
        index.add("trixie-backports", "linux-source-all", "1", "d");
        let (package, entry) = newest_source(&index, "trixie-backports").unwrap();
        assert_eq!((package.as_str(), entry.version.as_str()), ("linux-source-7.10", "7.10.2-1~bpo13+1"));
        let pin = pin_newest(cache.path(), "newest", "trixie-backports", &package, None, &index).unwrap().unwrap();
        assert_eq!(pin.tarball_sha256, sha(b"c"));
        assert_eq!(
            find(cache.path(), &pin, None).unwrap(),
            Found::Cached(cached_tarball(cache.path(), &package, &pin.version))
        );
    }
}
