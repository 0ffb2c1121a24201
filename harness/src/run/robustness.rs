//! `hidvm robustness`: numbers showing the harness cannot be fooled or
//! leave debris: splat classes detected out of those provoked, QEMU
//! processes left after forced stops, kernel builds under concurrent
//! requesters.
use crate::base::error::{Error, Result};
use crate::catalogue::scenarios::Kind;
use crate::run::suite::Suite;
use crate::run::{one_test, plan};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct RobustnessOptions {
    /// Concurrent `hidvm build` requesters against an empty cache (0: skip;
    /// costs one cold kernel build).
    pub builds: usize,
}

/// Prints the numbers; returns false when a provoked fault was missed or a
/// QEMU process was left behind (the command then exits 100).
pub fn run(suite: &Suite, opts: &RobustnessOptions) -> Result<bool> {
    let caught = splat_classes(suite)?;
    let clean = orphans(suite)?;
    let built_once = if opts.builds > 0 { concurrent_builds(suite, opts.builds)? } else { true };
    Ok(caught && clean && built_once)
}

/// Every self-test that provokes a kernel fault, on every selected cell.
fn splat_classes(suite: &Suite) -> Result<bool> {
    let mut tried = 0;
    let mut detected = 0;
    let mut missed = Vec::new();
    let mut classes = std::collections::BTreeSet::new();
    let selftests: Vec<_> = suite.catalogue()?.into_iter().filter(|e| e.kind == Kind::SelfTest).collect();
    for case in plan::tests_of(suite, selftests, &plan::default_targets(suite), None)? {
        if case.skip.is_some() {
            continue;
        }
        let scenario = suite.load(&case.entry, &case.target.kernel)?.scenario;
        let Some(want) = scenario.expect_verdict.as_deref().filter(|v| v.starts_with("kernel-")) else { continue };
        {
            tried += 1;
            let report = one_test::run(suite, &case.target, &case.entry)?;
            if report.verdict.passed() {
                detected += 1;
                classes.insert(want.to_string());
            } else {
                missed.push(format!("{} ({})", report.test, report.verdict.token()));
            }
        }
    }
    println!(
        "splat classes detected: {detected}/{tried} provoked faults reported with the right kind and class ({})",
        classes.into_iter().collect::<Vec<_>>().join(", ")
    );
    if !missed.is_empty() {
        println!("  MISSED: {}", missed.join(", "));
    }
    if tried == 0 {
        println!("  no fault-provoking self-test runs on the selected cells: nothing was measured");
    }
    Ok(tried > 0 && missed.is_empty())
}

/// qemu-system processes whose command line mentions `marker`.
fn qemu_processes(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd);
        if (cmd.starts_with("qemu-system") || cmd.contains("/qemu-system")) && cmd.contains(marker) {
            out.push(pid);
        }
    }
    out
}

/// Start a test whose VM hangs, stop the test process the way nextest,
/// a terminal or a crash would, and count the QEMU processes left.
fn orphans(suite: &Suite) -> Result<bool> {
    let target = first_target(suite)?;
    let test = format!("selftest::{}::hang_is_reported_with_diagnostics", target.label());
    // Its VMs' command lines name its run directory.
    let marker = crate::base::layout::test_dir_name(&test);
    let exe = std::env::current_exe().map_err(Error::io("locating hidvm"))?;
    let before = qemu_processes("").len();
    let mut results = Vec::new();
    let mut clean = true;
    for (label, signal, group) in [
        ("SIGKILL to the test process (crash)", rustix::process::Signal::KILL, false),
        ("SIGTERM to the test's process group (nextest timeout)", rustix::process::Signal::TERM, true),
        ("SIGINT to the test's process group (Ctrl-C)", rustix::process::Signal::INT, true),
    ] {
        let mut child = {
            use std::os::unix::process::CommandExt;
            Command::new(&exe)
                .args(["run", &test])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .map_err(Error::io("starting hidvm run"))?
        };
        let t0 = Instant::now();
        while qemu_processes(&marker).is_empty() && t0.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let running = qemu_processes(&marker).len();
        std::thread::sleep(Duration::from_secs(1));
        let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("child pid");
        if group {
            let _ = rustix::process::kill_process_group(pid, signal);
        } else {
            let _ = rustix::process::kill_process(pid, signal);
        }
        let _ = child.wait();
        let t1 = Instant::now();
        while !qemu_processes(&marker).is_empty() && t1.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left = qemu_processes(&marker);
        for p in &left {
            if let Some(pid) = rustix::process::Pid::from_raw(*p as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        // A VM that never started proves nothing about cleanup.
        clean &= running == 1 && left.is_empty();
        results.push(format!("{label}: {} running before, {} left after", running, left.len()));
    }
    println!("orphaned QEMU after forced stops (qemu processes on the host before: {before}):");
    for r in results {
        println!("  {r}");
    }
    Ok(clean)
}

/// N `hidvm build` processes at once against an empty cache: exactly one
/// may build, the others must wait and then find it cached.
fn concurrent_builds(suite: &Suite, n: usize) -> Result<bool> {
    let target = first_target(suite)?;
    let cell = &target.cell;
    let tmp = tempfile::Builder::new().prefix("hidvm-builds-").tempdir().map_err(Error::io("temp cache"))?;
    let exe = std::env::current_exe().map_err(Error::io("locating hidvm"))?;
    let t0 = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|_| {
            Command::new(&exe)
                .args(["build", "--kernel", &target.kernel, "--cell", cell])
                .env("HIDVM_CACHE_DIR", tmp.path())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()
        .map_err(Error::io("starting hidvm build"))?;
    let mut builds = 0;
    let mut waits = 0;
    let mut failures = 0;
    for c in children {
        let out = c.wait_with_output().map_err(Error::io("waiting for hidvm build"))?;
        let err = String::from_utf8_lossy(&out.stderr);
        builds += err.matches(&format!("building kernel cell {cell}")).count();
        waits += err.lines().filter(|l| l.contains("hidvm: waiting for")).count().min(1);
        if !out.status.success() {
            failures += 1;
        }
    }
    println!(
        "concurrent requesters: {n} `hidvm build --kernel {} --cell {cell}` on an empty cache -> {builds} kernel build(s), {waits} requester(s) waited with a message, {failures} failed, {:.0} s",
        target.kernel,
        t0.elapsed().as_secs_f64()
    );
    remove_tree(tmp.path());
    Ok(builds == 1 && failures == 0)
}

fn first_target(suite: &Suite) -> Result<crate::kernel::spec::Target> {
    plan::default_targets(suite).into_iter().next().ok_or_else(|| Error::Other("no kernel or cell selected".into()))
}

fn remove_tree(p: &Path) {
    let _ = std::fs::remove_dir_all(p);
}
