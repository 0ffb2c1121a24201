//! `hidvm doctor`: is this machine ready, and if not, what to do. Every
//! check prints one line: `ok`, or what is wrong and the command that
//! fixes it. Nothing is changed.
use crate::base::tools::{self, Tool};
use crate::run::suite::Suite;
use std::path::Path;

/// One check's answer.
pub struct Finding {
    pub what: String,
    /// None: fine. Some: what is wrong and how to fix it.
    pub problem: Option<String>,
    /// Extra facts shown either way.
    pub detail: String,
}

fn ok(what: &str, detail: impl Into<String>) -> Finding {
    Finding { what: what.into(), problem: None, detail: detail.into() }
}

fn bad(what: &str, problem: impl Into<String>) -> Finding {
    Finding { what: what.into(), problem: Some(problem.into()), detail: String::new() }
}

/// Free bytes on the filesystem holding `path` (or its nearest existing parent).
fn free_bytes(path: &Path) -> Option<u64> {
    let mut p = path;
    while !p.exists() {
        p = p.parent()?;
    }
    let s = rustix::fs::statvfs(p).ok()?;
    Some(s.f_bavail * s.f_frsize)
}

/// ccache for kernel builds: optional, so its absence says what it costs.
fn compiler_cache(suite: &Suite) -> Finding {
    match crate::kernel::ccache::Ccache::for_cache(&suite.cache) {
        Some(c) => ok(
            "compiler cache",
            format!("ccache in {} (at most {}; HIDVM_CCACHE=0 turns it off)", c.dir.display(), crate::kernel::ccache::MAX_SIZE),
        ),
        None if std::env::var("HIDVM_CCACHE").is_ok_and(|v| v == "0" || v == "off") => {
            ok("compiler cache", "off (HIDVM_CCACHE=0)")
        }
        None => bad(
            "compiler cache",
            "ccache is not installed: every kernel rebuild compiles everything (`sudo apt-get install ccache`, or `make setup`)",
        ),
    }
}

/// What a cold run needs in the cache: four kernels (~0.7 GB each), two
/// unpacked trees and a build tree of each (1.7 GB each), the 7.3
/// tarball, the compiler cache.
const CACHE_NEEDS_GB: u64 = 12;

pub fn check(suite: &Suite) -> Vec<Finding> {
    let mut out = vec![host_tools(suite.repo.installed)];
    out.extend(cell_tools(suite));
    out.push(nextest());
    out.extend(kernel_sources(suite));
    out.push(compiler_cache(suite));
    out.push(kvm(suite));
    out.push(cache_space(suite));
    out.push(userspace(suite));
    out
}

/// The hid-tools userspace image (`make setup` builds it).
fn userspace(suite: &Suite) -> Finding {
    match crate::vm::userspace::find(&suite.repo, &suite.cache) {
        Ok(p) => ok("hid-tools userspace", p.display().to_string()),
        Err(e) => bad("hid-tools userspace", e.to_string()),
    }
}

/// Every tool hidvm runs, with the packages of those missing (an
/// installed hidvm carries its agent: it builds none).
fn host_tools(installed: bool) -> Finding {
    let mut tools_list: Vec<Tool<'static>> = tools::KERNEL_BUILD.to_vec();
    if !installed {
        tools_list.extend_from_slice(tools::AGENT_BUILD);
    }
    tools_list.extend([
        tools::QEMU,
        tools::CLANG,
        tools::LLVM_STRIP,
        tools::BPFTOOL,
        tools::LIBBPF_HEADERS,
        tools::RSYNC,
        tools::GIT,
        tools::PYTHON,
        tools::MMDEBSTRAP,
        tools::MKFS_EROFS,
    ]);
    let missing: Vec<&Tool<'_>> = tools_list.iter().filter(|t| tools::find(t).is_none()).collect();
    if missing.is_empty() {
        ok("host tools", format!("{} found", tools_list.len()))
    } else {
        let mut pkgs: Vec<&str> = missing.iter().map(|t| t.package).collect();
        pkgs.sort();
        pkgs.dedup();
        bad(
            "host tools",
            format!(
                "missing {}: run `make setup` (or `sudo apt-get install {}`); setup is Debian-specific, elsewhere install the equivalents",
                missing.iter().map(|t| t.name).collect::<Vec<_>>().join(", "),
                pkgs.join(" ")
            ),
        )
    }
}

/// Each cell's own tools (its compiler).
fn cell_tools(suite: &Suite) -> Vec<Finding> {
    let mut out = Vec::new();
    for cell in &suite.all_cells {
        let absent: Vec<String> = cell
            .needs
            .iter()
            .filter(|(exe, _)| tools::find(&Tool { name: exe, what: "", package: "" }).is_none())
            .map(|(e, p)| format!("{e} ({p})"))
            .collect();
        if !absent.is_empty() {
            out.push(bad(
                &format!("cell {}", cell.name),
                format!("missing {}: `sudo apt-get install` them", absent.join(", ")),
            ));
        }
    }
    out
}

fn nextest() -> Finding {
    match duct::cmd!("cargo", "nextest", "--version").stdout_capture().stderr_null().unchecked().run() {
        Ok(o) if o.status.success() => {
            ok("cargo-nextest", String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
        }
        _ => bad("cargo-nextest", "not installed: run `make setup` (or `cargo install --locked cargo-nextest`)"),
    }
}

/// Each kernel's source package: installed, or fetched from its suite.
fn kernel_sources(suite: &Suite) -> Vec<Finding> {
    use crate::kernel::debian::{find, installed_tarball, Found};
    let mut out = Vec::new();
    for k in suite.kernels.iter().filter(|k| k.tree.is_none() && k.image.is_none()) {
        let what = format!("kernel {}", k.name);
        let Some(pin) = suite.pins.get(&k.name) else {
            out.push(bad(&what, "not in guest-image/kernels.lock: run `hidvm kernels --update`"));
            continue;
        };
        let installed = k.installed.then(|| installed_tarball(&pin.package));
        out.push(match find(&suite.cache, pin, installed.as_deref()) {
            Ok(Found::Cached(p)) => ok(&what, format!("{} {} cached: {}", pin.package, pin.version, p.display())),
            Ok(Found::Installed(p)) => ok(&what, format!("{} {} installed: {}", pin.package, pin.version, p.display())),
            Ok(Found::Missing) => bad(
                &what,
                format!(
                    "{} {} (locked) is not here yet: run `make setup` (or `hidvm fetch`); a run would fetch it first",
                    pin.package, pin.version
                ),
            ),
            Err(e) => bad(&what, e.to_string()),
        });
    }
    out
}

/// KVM: the device, then what the probe found (it alone decides).
fn kvm(suite: &Suite) -> Finding {
    let store = crate::vm::accel::ProbeStore::new(&suite.cache);
    let device = match std::fs::OpenOptions::new().read(true).write(true).open(&store.kvm_device) {
        Ok(_) => format!("{} opens read-write", store.kvm_device.display()),
        Err(e) => format!("{} not usable ({e}); hidvm uses TCG (about 5x slower)", store.kvm_device.display()),
    };
    let probe = tools::find(&tools::QEMU)
        .and_then(|q| tools::version_line(&q.display().to_string(), &["--version"]).ok())
        .and_then(|v| store.remembered(&v))
        .map(|r| format!("; probe: {} ({})", r.accel.name(), r.reason))
        .unwrap_or_else(|| "; not probed in this host boot (the next run probes)".into());
    ok("KVM", format!("{device}{probe}"))
}

/// Free space where the cache lives.
fn cache_space(suite: &Suite) -> Finding {
    let free = free_bytes(&suite.cache);
    let gb = free.map(|b| b / (1 << 30));
    match gb {
        Some(g) if g >= CACHE_NEEDS_GB => ok("cache", format!("{} ({g} GB free)", suite.cache.display())),
        Some(g) => bad(
            "cache",
            format!(
                "{} has {g} GB free; a cold run needs about {CACHE_NEEDS_GB} GB: free space or set HIDVM_CACHE_DIR elsewhere",
                suite.cache.display()
            ),
        ),
        None => bad("cache", format!("cannot read the free space of {}", suite.cache.display())),
    }
}

/// Print the findings; true when nothing needs fixing.
pub fn report(findings: &[Finding]) -> bool {
    for f in findings {
        match &f.problem {
            None => println!("ok    {}: {}", f.what, f.detail),
            Some(p) => println!("FIX   {}: {p}", f.what),
        }
    }
    let n = findings.iter().filter(|f| f.problem.is_some()).count();
    if n == 0 {
        println!("nothing to fix");
    } else {
        println!("{n} thing(s) to fix");
    }
    n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_cache_directory_is_measured_on_its_parent() {
        assert!(free_bytes(Path::new("/tmp/hidvm-doctor-does-not-exist/sub")).is_some());
    }

    #[test]
    fn findings_say_fix_or_ok() {
        let all = [ok("a", "fine"), bad("b", "do this")];
        assert!(!report(&all));
        assert!(report(&all[..1]));
    }
}
