//! The benchmark's cold measurements (`hidvm bench --cold`, `--rebuild`):
//! what a new user's first `make vm-test` costs, and what rebuilding every
//! kernel after a Debian point release costs.
//!
//! **Cold** is a fresh clone of this checkout's commit (`git clone`, its
//! own `target/`: the host binary and the guest agent are compiled from
//! nothing) running `make vm-test` with an empty `HIDVM_CACHE_DIR` (the
//! trees are unpacked, the 7.3 source package is fetched, four kernels are
//! built, snapshots made), an empty `HIDVM_RUNS_DIR` (no earlier durations
//! to order tests by) and an empty `CCACHE_DIR`. Not cold: the apt
//! packages are installed (`.ci/setup` finds them; the minute apt took on a
//! fresh machine is quoted, see [`APT_SECONDS`]), crates.io's crates are in
//! cargo's download cache, and the host's page cache is warm.
use crate::base::error::{Error, Result};
use crate::kernel::build::KernelBuilder;
use crate::kernel::cell;
use crate::kernel::patches::Series;
use crate::kernel::spec::Target;
use crate::run::suite::Suite;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `apt-get install` of hidvm's packages on a fresh Debian bookworm
/// machine (issue 22's measurement: "apt ~1 min"; 278 MB fetched in 1 s,
/// the rest unpacking). Not repeatable on a machine that has them: quoted.
pub const APT_SECONDS: f64 = 60.0;

/// What a fresh clone's `make vm-test` took.
pub struct ColdRun {
    /// From `make vm-test` to its first test verdict line.
    pub first_verdict: Option<f64>,
    /// To the end (the matrix printed).
    pub finished: f64,
    /// `make setup` (package check, cargo build of hidvm, fetch) ended.
    pub setup: Option<f64>,
    /// The kernel build lines (`…: built (N s)`).
    pub builds: Vec<String>,
    pub status: Option<i32>,
    /// CPU seconds the whole run used (user + system, all processes), if
    /// they could be read.
    pub cpu_seconds: Option<f64>,
    pub summary: Option<String>,
    pub log: PathBuf,
}

/// A line that is a test's verdict: `  pass  x (0.5 s)`, `  ERROR x: …`,
/// or a report's header `6.12-gcc::x [tcg, 1.1 s]: FAIL (…)`.
fn is_verdict(line: &str) -> bool {
    if line.starts_with("  pass  ") || line.starts_with("  ERROR ") {
        return true;
    }
    let Some((name, rest)) = line.split_once(" [") else { return false };
    !name.contains(' ') && name.contains("::") && rest.contains("]: ")
}

/// CPU seconds (user + system) this process's waited-for children used,
/// or None if /proc/self/stat could not be read.
fn children_cpu_seconds() -> Option<f64> {
    children_cpu_in_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// cutime + cstime of a `/proc/<pid>/stat` line, in seconds. They are
/// fields 16 and 17 (1-based, proc(5)); after the command's closing ')'
/// (the command may hold spaces) the first field is the 3rd, so they are
/// at 13 and 14 there. Counted in USER_HZ ticks: 100 a second on x86
/// Linux, whatever the kernel's HZ.
fn children_cpu_in_stat(stat: &str) -> Option<f64> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(13)? + ticks(14)?) / 100.0)
}

/// Clone this checkout's commit into `dir` and run its `make vm-test` there,
/// cold (see the module's notes), timing its lines.
pub fn fresh_clone_vm_test(suite: &Suite, dir: &Path) -> Result<ColdRun> {
    let clone = clone_head(&suite.repo.root, &dir.join("hidvm"))?;
    let log = dir.join("make-vm-test.log");
    let mut out = std::fs::File::create(&log).map_err(Error::io(format!("creating {}", log.display())))?;
    let cpu_before = children_cpu_seconds();
    let started = Instant::now();
    let reader = duct::cmd("make", ["vm-test"])
        .dir(&clone)
        .env("HIDVM_CACHE_DIR", dir.join("cache"))
        .env("HIDVM_RUNS_DIR", dir.join("runs"))
        .env("CCACHE_DIR", dir.join("ccache"))
        .env("HIDVM_PROGRESS", "lines")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("HIDVM_REPO")
        .env_remove("HIDVM_AGENT")
        .stdin_null()
        .stderr_to_stdout()
        .unchecked()
        .reader()
        .map_err(Error::io("starting make vm-test"))?;
    let mut run = ColdRun {
        first_verdict: None,
        finished: 0.0,
        setup: None,
        builds: Vec::new(),
        status: None,
        cpu_seconds: None,
        summary: None,
        log: log.clone(),
    };
    for line in std::io::BufReader::new(&reader).lines() {
        let line = line.map_err(Error::io("reading make vm-test's output"))?;
        let at = started.elapsed().as_secs_f64();
        let _ = writeln!(out, "{at:8.1} {line}");
        if run.first_verdict.is_none() && is_verdict(&line) {
            run.first_verdict = Some(at);
            crate::base::output::note(format!("hidvm bench: first verdict after {at:.0} s: {}", line.trim()));
        }
        if run.setup.is_none() && line.contains("-p hidvm -- vm-test") {
            run.setup = Some(at);
        }
        if line.starts_with("hidvm: building kernel") && line.contains(": built (") {
            run.builds.push(line.clone());
        }
        if line.contains(" passed") && line.contains('/') && !line.starts_with(' ') {
            run.summary = Some(line.clone());
        }
    }
    let output = reader.try_wait().map_err(Error::io("waiting for make vm-test"))?;
    run.status = output.and_then(|o| o.status.code());
    run.finished = started.elapsed().as_secs_f64();
    run.cpu_seconds = children_cpu_seconds().zip(cpu_before).map(|(after, before)| after - before);
    Ok(run)
}

/// `git clone` of `root`'s HEAD commit into `to`; a checkout with
/// uncommitted changes is said to be measured without them.
fn clone_head(root: &Path, to: &Path) -> Result<PathBuf> {
    let git = |args: &[&str], dir: &Path| -> Result<String> {
        let out = duct::cmd("git", args)
            .dir(dir)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(Error::io("running git"))?;
        if !out.status.success() {
            return Err(Error::Other(format!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "HEAD"], root)?;
    if !git(&["status", "--porcelain", "--untracked-files=no"], root)?.is_empty() {
        crate::base::output::note(format!(
            "hidvm bench: {} has uncommitted changes; the cold run measures commit {head} without them",
            root.display()
        ));
    }
    let parent = to.parent().expect("the clone has a parent");
    std::fs::create_dir_all(parent).map_err(Error::io(format!("creating {}", parent.display())))?;
    git(&["clone", "--quiet", "--no-checkout", &root.display().to_string(), &to.display().to_string()], parent)?;
    git(&["checkout", "--quiet", "--detach", &head], to)?;
    Ok(to.to_path_buf())
}

/// A one-line patch raising the tree's SUBLEVEL by one: a point release
/// as the build sees it (a new tree, in a new directory, with a new
/// version). A real one also changes a few hundred files; with a compiler
/// cache each of those is a miss, so this is the optimistic case.
fn version_bump(tree: &Path) -> Result<String> {
    let makefile = std::fs::read_to_string(tree.join("Makefile")).map_err(Error::io("reading the tree's Makefile"))?;
    let lines: Vec<&str> = makefile.lines().collect();
    let i = lines.iter().position(|l| l.starts_with("SUBLEVEL = ")).filter(|&i| i > 0 && i + 1 < lines.len());
    let Some(i) = i else { return Err(Error::Other("no SUBLEVEL line in the tree's Makefile".into())) };
    let sub: u32 = lines[i]["SUBLEVEL = ".len()..].trim().parse().map_err(|_| Error::Other("odd SUBLEVEL".into()))?;
    Ok(format!(
        "--- a/Makefile\n+++ b/Makefile\n@@ -{},3 +{},3 @@\n {}\n-{}\n+SUBLEVEL = {}\n {}\n",
        i,
        i,
        lines[i - 1],
        lines[i],
        sub + 1,
        lines[i + 1]
    ))
}

/// Every target's kernel built as after a point release: each tree copied
/// into `dir` with its version raised ([`version_bump`]), every cell built
/// from an empty build directory, with whatever compiler cache hidvm's
/// builds use. Returns (target, seconds) per build, in build order.
pub fn point_release_rebuild(suite: &Suite, targets: &[Target], dir: &Path) -> Result<Vec<(String, f64)>> {
    let mut times = Vec::new();
    let mut kernels: Vec<&str> = targets.iter().map(|t| t.kernel.as_str()).collect();
    kernels.dedup();
    let mut sources = std::collections::BTreeMap::new();
    for k in kernels {
        let source = suite.source(k)?;
        let patch = dir.join(format!("point-release-{k}.patch"));
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        std::fs::write(&patch, version_bump(&source.root)?).map_err(Error::io("writing the version bump"))?;
        sources.insert(k.to_string(), source.with_patches(&Series::load(&patch)?)?);
    }
    for t in targets {
        let cell = cell::find(&suite.all_cells, &t.cell)?;
        let builder = KernelBuilder::new(&suite.repo, dir, &sources[&t.kernel])
            .with_user_fragments(&suite.opts.config_fragments)?;
        let started = Instant::now();
        builder.ensure(cell)?;
        times.push((t.label(), started.elapsed().as_secs_f64()));
        println!("rebuild after a point release {:<10} {:>6.0} s", t.label(), times.last().expect("pushed").1);
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_lines_are_told_from_the_rest() {
        assert!(is_verdict("  pass  6.12-gcc::mouse_invert_y_close_link (0.6 s)"));
        assert!(is_verdict("  ERROR 7.3-llvm::x: fixture y does not compile"));
        assert!(is_verdict(
            "6.12-gcc::race_attach_vs_destroy [tcg, 1.1 s]: FAIL (kernel crash, bug): bug during step 1"
        ));
        assert!(!is_verdict("hidvm: 6.12-gcc: built (/c/kernels/gcc-1/build/vmlinux); its tests start now"));
        assert!(!is_verdict("    | [    3.565204] BUG: kernel NULL pointer dereference [x]: y"));
        assert!(!is_verdict("298/308 passed; 10 known kernel bug(s)"));
    }

    #[test]
    fn children_cpu_is_cutime_plus_cstime() {
        // A real line (cat's), with cutime 1234 and cstime 56 ticks; the
        // fields around them (stime 7, priority 20) must not be read.
        let stat = "21944 (c a t) R 21942 21942 8762 0 -1 4194304 100 0 0 0 3 7 1234 56 20 0 1 0 4123163 3133440 380";
        assert_eq!(children_cpu_in_stat(stat), Some(12.9));
        assert_eq!(children_cpu_in_stat("21944 (cat) R 1 2"), None);
        assert!(children_cpu_seconds().is_some());
    }

    #[test]
    fn the_version_bump_is_a_patch_of_the_sublevel_line() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("Makefile"),
            "# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 118\nEXTRAVERSION =\nNAME = Baby Opossum Posse\n",
        )
        .unwrap();
        let p = version_bump(d.path()).unwrap();
        assert_eq!(
            p,
            "--- a/Makefile\n+++ b/Makefile\n@@ -3,3 +3,3 @@\n PATCHLEVEL = 12\n-SUBLEVEL = 118\n+SUBLEVEL = 119\n EXTRAVERSION =\n"
        );
    }
}
