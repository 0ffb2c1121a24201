//! `hidvm bench`: the numbers the README quotes, measured on this machine.
//! Speed goals live here, never in timed tests.
use crate::base::error::{Error, Result};
use crate::catalogue::scenarios::Kind;
use crate::kernel::spec::Target;
use crate::run::suite::Suite;
use crate::run::{one_test, plan, pool};
use crate::vm::snapshot;
use std::time::{Duration, Instant};

pub struct BenchOptions {
    /// Also measure cold kernel builds (each cell into an empty cache).
    pub cold: bool,
    /// Repetitions for VM timings.
    pub runs: usize,
}

struct Stats(Vec<Duration>);

impl Stats {
    fn line(&self) -> String {
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64()).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
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
    if opts.cold {
        cold_builds(suite, &targets)?;
    }
    cached_lookups(suite, &targets)?;
    single_vm(suite, &targets, opts.runs)?;
    let (per_test_by_kernel, failed) = warm_catalogue(suite, &targets)?;
    // The kernel's own hid_bpf selftest: many tests in one VM, the floor
    // a VM-per-test harness is compared with.
    // Both had the whole machine: the ratio compares wall time per test.
    if let Some(first) = per_test_by_kernel.first() {
        upstream_selftest(suite, first);
    }
    if failed > 0 {
        println!("{failed} test(s) FAILED in the warm catalogue: these numbers measured failing runs");
    }
    Ok(failed == 0)
}

/// Each target's kernel built into an empty cache.
fn cold_builds(suite: &Suite, targets: &[Target]) -> Result<()> {
    for target in targets {
        let tmp = tempfile::Builder::new().prefix("hidvm-cold-").tempdir().map_err(Error::io("temp cache"))?;
        let cold_suite = suite.with_cache(tmp.path().to_path_buf(), false);
        // The tree is unpacked (or fetched) before the clock starts:
        // the number is the build's.
        cold_suite.source(&target.kernel)?;
        let t = Instant::now();
        let k = cold_suite.kernel(target)?;
        println!(
            "cold build {:<10} {:>6.0} s  (tinyconfig + fragments, make -j{}, from an empty O= dir; {}{})",
            target.label(),
            t.elapsed().as_secs_f64(),
            crate::base::host::cores(),
            k.record.compiler,
            k.record.ccache.map(|s| format!("; empty {}", s.describe())).unwrap_or_default()
        );
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
/// on the first target, for comparison).
fn single_vm(suite: &Suite, targets: &[Target], runs: usize) -> Result<()> {
    let catalogue = suite.catalogue()?;
    // The reference scenario: one mouse, attach, inject, release, inject.
    let reference = catalogue.iter().find(|e| e.name == "mouse_invert_y_close_link");
    let Some(first) = reference.or_else(|| catalogue.iter().find(|e| e.kind == Kind::Scenario)) else {
        return Err(Error::Other("no scenario to time; add one to tests/scenarios/".into()));
    };
    let mut accel_line = None;
    let mut time_one = |target: &Target, label: &str| -> Result<()> {
        let (mut vm, mut total, mut answer) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = Instant::now();
            let r = one_test::run(suite, target, first)?;
            total.push(t.elapsed());
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
        println!("one test end to end                   {t:<10} {label:<9} {}", Stats(total).line());
        Ok(())
    };
    for target in targets {
        time_one(target, if snapshot::enabled() { "snapshot" } else { "cold" })?;
    }
    // The same test booted cold, for comparison (first target only).
    if snapshot::enabled() {
        std::env::set_var("HIDVM_SNAPSHOT", "off");
        let cold = time_one(&targets[0], "cold");
        std::env::remove_var("HIDVM_SNAPSHOT");
        cold?;
    }
    println!("{runs} per timing; {}", accel_line.unwrap_or_default());
    Ok(())
}

/// A kernel's warm catalogue: (kernel, its first target, wall seconds per
/// test, VM seconds per test).
type PerTest = (String, Target, f64, f64);

/// The warm catalogue, one kernel (its gcc and llvm cells) at a time.
/// Per kernel, the catalogue's cost; and how many tests failed.
fn warm_catalogue(suite: &Suite, targets: &[Target]) -> Result<(Vec<PerTest>, usize)> {
    let mut failed = 0;
    let jobs = crate::run::pool::default_vms();
    let mut per_test_by_kernel = Vec::new();
    for k in &suite.kernels {
        let kernel_targets: Vec<_> = targets.iter().filter(|t| t.kernel == k.name).cloned().collect();
        if kernel_targets.is_empty() {
            continue;
        }
        let t = Instant::now();
        let (work, skipped): (Vec<_>, Vec<_>) =
            plan::tests(suite, &kernel_targets, None)?.into_iter().partition(|c| c.skip.is_none());
        let results = pool::run_parallel(suite, &work, jobs, |_, _| {});
        let vm_seconds: f64 = results.iter().flatten().map(|r| r.vm_seconds).sum();
        let failures: Vec<String> = results
            .into_iter()
            .zip(&work)
            .filter_map(|(r, case)| match r {
                Ok(r) if r.acceptable() => None,
                Ok(r) => Some(r.test),
                Err(err) => Some(format!("{}: {err}", case.name())),
            })
            .collect();
        let wall = t.elapsed().as_secs_f64();
        failed += failures.len();
        per_test_by_kernel.push((
            k.name.clone(),
            kernel_targets[0].clone(),
            wall / work.len().max(1) as f64,
            vm_seconds / work.len().max(1) as f64,
        ));
        let labels: Vec<String> = kernel_targets.iter().map(|t| t.label()).collect();
        println!(
            "warm catalogue {}: {} tests ({} skipped) in {wall:.1} s with {jobs} VMs at a time{}",
            labels.join(" + "),
            work.len(),
            skipped.len(),
            if failures.is_empty() {
                String::new()
            } else {
                format!(" ({} FAILED: {})", failures.len(), failures.join(", "))
            }
        );
    }
    Ok((per_test_by_kernel, failed))
}

/// The upstream hid_bpf selftest's cost per test, against hidvm's.
fn upstream_selftest(suite: &Suite, (kernel, target, hidvm_per_test, vm_per_test): &PerTest) {
    let upstream = crate::run::kselftest::build(suite, target)
        .and_then(|built| crate::run::kselftest::run(suite, target, &built, "hid_bpf"));
    match upstream {
        Ok(run) if !run.results.is_empty() => {
            let per = run.vm_seconds / run.results.len() as f64;
            println!(
                "per-test cost, kernel {kernel}: hidvm {hidvm_per_test:.2} s (catalogue wall / tests; {vm_per_test:.2} s in its own VM); upstream hid_bpf selftest {per:.2} s ({} tests in one VM, {:.1} s); ratio {:.1}x",
                run.results.len(),
                run.vm_seconds,
                hidvm_per_test / per
            );
        }
        Ok(run) => println!(
            "per-test cost: the upstream hid_bpf selftest reported no results ({}): not measured",
            run.problems.join("; ")
        ),
        Err(e) => println!("per-test cost: could not run the upstream hid_bpf selftest: {e}"),
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
