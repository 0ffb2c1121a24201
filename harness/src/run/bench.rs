//! `hidvm bench`: the numbers the README quotes, measured on this machine.
//! Speed goals live here, never in timed tests.
use crate::base::error::{Error, Result};
use crate::catalogue::scenarios::Kind;
use crate::kernel::spec::Target;
use crate::run::suite::Suite;
use crate::run::{bench_cold, bench_goals as goals, one_test, pipeline, plan};
use crate::vm::snapshot;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct BenchOptions {
    /// Also time a fresh clone's `make vm-test` from an empty cache
    /// (`bench_cold`): the first-verdict and whole-matrix rows.
    pub cold: bool,
    /// Also time rebuilding every kernel after a (simulated) point release.
    pub rebuild: bool,
    /// Repetitions for VM timings.
    pub runs: usize,
    /// Where the cold measurements work (kept); default: a temporary
    /// directory, removed afterwards. About 8 GB for four kernels.
    pub scratch: Option<PathBuf>,
}

struct Stats(Vec<Duration>);

impl Stats {
    fn sorted(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64()).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    }

    fn median(&self) -> Option<f64> {
        let v = self.sorted();
        v.get(v.len() / 2).copied()
    }

    fn line(&self) -> String {
        let v = self.sorted();
        if v.is_empty() {
            return "-".into();
        }
        format!("min {:.2} s  median {:.2} s  max {:.2} s  (n={})", v[0], v[v.len() / 2], v[v.len() - 1], v.len())
    }
}

/// Returns whether every measured run passed (or failed as known): a bench
/// whose tests failed measured something else, and says so in its status.
pub fn run(suite: &Suite, opts: &BenchOptions) -> Result<bool> {
    println!("hidvm bench on {}", machine());
    let targets = plan::default_targets(suite);
    for k in &suite.kernels {
        let source = suite.source(&k.name)?;
        println!("kernel {}: Linux {} ({})", k.name, source.version, source.root.display());
    }
    let mut goals = goals::Goals::default();
    let mut passed = true;
    if opts.cold || opts.rebuild {
        cold_measurements(suite, &targets, opts, &mut goals)?;
        passed &= goals.cold.as_ref().is_none_or(|c| c.status == Some(0));
    }
    cached_lookups(suite, &targets)?;
    goals.one_test = single_vm(suite, &targets, opts.runs)?;
    let catalogue = full_catalogue(suite, &targets)?;
    passed &= catalogue.failed == 0;
    // The kernel's own hid_bpf selftest: many tests in one VM, the floor
    // a VM-per-test harness is compared with.
    goals.upstream = upstream_selftest(suite, &targets[0], &catalogue);
    goals.catalogue = Some(catalogue);
    goals.print();
    if !passed {
        println!("tests FAILED in the runs measured (above): these numbers measured failing runs");
    }
    Ok(passed)
}

/// The fresh clone's `make vm-test` and the point-release rebuild, in a
/// scratch directory, into `goals`.
fn cold_measurements(suite: &Suite, targets: &[Target], opts: &BenchOptions, goals: &mut goals::Goals) -> Result<()> {
    let tmp;
    let scratch = match &opts.scratch {
        Some(dir) => dir.clone(),
        None => {
            tmp = tempfile::Builder::new().prefix("hidvm-bench-").tempdir().map_err(Error::io("scratch directory"))?;
            tmp.path().to_path_buf()
        }
    };
    if opts.cold {
        let run = bench_cold::fresh_clone_vm_test(suite, &scratch.join("cold"))?;
        println!(
            "cold make vm-test (fresh clone, empty cache): setup {}, first verdict {}, finished {:.0} s, exit {}, {}; log {}",
            run.setup.map(|s| format!("{s:.0} s")).unwrap_or_else(|| "-".into()),
            run.first_verdict.map(|s| format!("{s:.0} s")).unwrap_or_else(|| "none".into()),
            run.finished,
            run.status.map(|s| s.to_string()).unwrap_or_else(|| "killed".into()),
            run.cpu_seconds.map(|c| format!("{c:.0} CPU-s")).unwrap_or_else(|| "CPU time not read".into()),
            run.log.display()
        );
        for b in &run.builds {
            println!("  {b}");
        }
        if let Some(s) = &run.summary {
            println!("  {s}");
        }
        if !matches!(run.status, Some(0 | 100)) {
            return Err(Error::Other(format!("the cold make vm-test failed; its log: {}", run.log.display())));
        }
        if opts.scratch.is_none() {
            // Four kernels: gigabytes. The log goes with them: keep it.
            let _ = std::fs::copy(&run.log, suite.repo.runs_dir().join("bench-cold-make-vm-test.log"));
        }
        goals.cold = Some(run);
    }
    let order = pipeline::build_order(
        targets.to_vec(),
        &suite.all_cells.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        &suite.all_kernels.iter().map(|k| k.name.clone()).collect::<Vec<_>>(),
    );
    if opts.rebuild {
        goals.rebuild = Some(bench_cold::point_release_rebuild(suite, &order, &scratch.join("rebuild"))?);
    }
    Ok(())
}

/// Finding a cached kernel (no make runs).
fn cached_lookups(suite: &Suite, targets: &[Target]) -> Result<()> {
    for target in targets {
        let k = suite.kernel(target)?;
        drop(k);
        let t = Instant::now();
        let k = suite.kernel(target)?;
        println!(
            "cached kernel lookup {:<10} {:>6.3} s  (no make runs; the last, possibly incremental, build took {:.0} s)",
            target.label(),
            t.elapsed().as_secs_f64(),
            k.record.build_seconds
        );
    }
    Ok(())
}

/// The reference scenario, `runs` times on every target (and booted cold
/// on the first target, for comparison); each target's median end to end.
fn single_vm(suite: &Suite, targets: &[Target], runs: usize) -> Result<Vec<(String, f64)>> {
    let catalogue = suite.catalogue()?;
    // The reference scenario: one mouse, attach, inject, release, inject.
    let reference = catalogue.iter().find(|e| e.name == "mouse_invert_y_close_link");
    let Some(first) = reference.or_else(|| catalogue.iter().find(|e| e.kind == Kind::Scenario)) else {
        return Err(Error::Other("no scenario to time; add one to tests/scenarios/".into()));
    };
    let mut accel_line = None;
    let mut time_one = |target: &Target, label: &str| -> Result<f64> {
        let (mut vm, mut total, mut answer) = (Vec::new(), Vec::new(), Vec::new());
        let mut phases = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let r = one_test::run(suite, target, first)?;
            total.push(t.elapsed());
            phases.push(r.phases.clone());
            vm.push(Duration::from_secs_f64(r.vm_seconds));
            answer.extend(r.first_answer_seconds.map(Duration::from_secs_f64));
            accel_line.get_or_insert_with(|| format!("accelerator {} ({})", r.accel.name(), r.accel_reason));
            if !r.verdict.passed() {
                return Err(Error::Other(format!(
                    "{} failed during the benchmark ({}); run `hidvm run {}` for its step log",
                    r.test,
                    r.verdict.token(),
                    r.test
                )));
            }
        }
        let t = target.label();
        println!("guest time to the agent's first line  {t:<10} {label:<9} {}", Stats(answer).line());
        println!("one VM ({}), QEMU wall  {t:<10} {label:<9} {}", first.name, Stats(vm).line());
        let total = Stats(total);
        println!("one test end to end                   {t:<10} {label:<9} {}", total.line());
        println!("  where it goes ({t} {label}, medians): {}", breakdown(&phases));
        Ok(total.median().unwrap_or_default())
    };
    let mut medians = Vec::new();
    for target in targets {
        let median = time_one(target, if snapshot::enabled() { "snapshot" } else { "cold" })?;
        medians.push((target.label(), median));
    }
    // The same test booted cold, for comparison (first target only).
    if snapshot::enabled() {
        std::env::set_var("HIDVM_SNAPSHOT", "off");
        let cold = time_one(&targets[0], "cold");
        std::env::remove_var("HIDVM_SNAPSHOT");
        cold?;
    }
    println!("{runs} per timing; {}", accel_line.unwrap_or_default());
    Ok(if snapshot::enabled() { medians } else { Vec::new() })
}

/// Each phase's median over runs, in order: `what 0.123 s | …`.
fn breakdown(runs: &[Vec<crate::base::timeline::Phase>]) -> String {
    let Some(first) = runs.first() else { return "-".into() };
    first
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut v: Vec<f64> = runs.iter().filter_map(|r| r.get(i)).map(|q| q.seconds).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            format!("{} {:.3} s", p.what, v[v.len() / 2])
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The default catalogue on every target, warm (kernels built, snapshots
/// made), run as `vm-test` runs it: its wall time per test is the machine
/// time a test costs.
fn full_catalogue(suite: &Suite, targets: &[Target]) -> Result<goals::Catalogue> {
    let jobs = crate::run::pool::default_vms();
    let (work, skipped): (Vec<_>, Vec<_>) =
        plan::tests(suite, targets, None)?.into_iter().partition(|c| c.skip.is_none());
    for t in targets {
        drop(suite.kernel(t)?);
    }
    let ready = pipeline::Targets { ready: targets.to_vec(), to_build: Vec::new() };
    let started = Instant::now();
    let results = pipeline::run(suite, &work, &ready, jobs, |_, _| {})?;
    let wall = started.elapsed().as_secs_f64();
    let mut seconds: Vec<(String, f64)> =
        results.iter().flatten().map(|r| (r.scenario.clone(), r.vm_seconds)).collect();
    let failures: Vec<String> = results
        .into_iter()
        .zip(&work)
        .filter_map(|(r, case)| match r {
            Ok(r) if r.acceptable() => None,
            Ok(r) => Some(r.test),
            Err(err) => Some(format!("{}: {err}", case.name())),
        })
        .collect();
    let labels: Vec<String> = targets.iter().map(|t| t.label()).collect();
    println!(
        "warm catalogue {}: {} tests ({} skipped) in {wall:.1} s with {jobs} VMs at a time: {:.2} s of machine time per test{}",
        labels.join(" + "),
        work.len(),
        skipped.len(),
        wall / work.len().max(1) as f64,
        if failures.is_empty() {
            String::new()
        } else {
            format!(" ({} FAILED: {})", failures.len(), failures.join(", "))
        }
    );
    seconds.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(goals::Catalogue { tests: work.len(), wall, vm_seconds: seconds, failed: failures.len() })
}

/// The upstream hid_bpf selftest's machine time per test (its tests in
/// one VM that had the machine to itself), against hidvm's.
fn upstream_selftest(suite: &Suite, target: &Target, catalogue: &goals::Catalogue) -> Option<f64> {
    let upstream = crate::run::kselftest::build(suite, target)
        .and_then(|built| crate::run::kselftest::run(suite, target, &built, "hid_bpf"));
    let hidvm = catalogue.wall / catalogue.tests.max(1) as f64;
    match upstream {
        Ok(run) if !run.results.is_empty() => {
            let per = run.vm_seconds / run.results.len() as f64;
            println!(
                "per-test cost: hidvm {hidvm:.2} s (catalogue wall / tests); upstream hid_bpf selftest on {target} {per:.2} s ({} tests in one VM, {:.1} s); ratio {:.1}x",
                run.results.len(),
                run.vm_seconds,
                hidvm / per
            );
            Some(per)
        }
        Ok(run) => {
            println!(
                "per-test cost: the upstream hid_bpf selftest reported no results ({}): not measured",
                run.problems.join("; ")
            );
            None
        }
        Err(e) => {
            println!("per-test cost: could not run the upstream hid_bpf selftest: {e}");
            None
        }
    }
}

/// Cores, memory and CPU model of this machine.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0 / 1024.0);
    format!(
        "{} cores, {}, {}",
        crate::base::host::cores(),
        mem_gib.map(|g| format!("{g:.0} GiB")).unwrap_or_else(|| "memory unknown".into()),
        model.unwrap_or("CPU model unknown")
    )
}
