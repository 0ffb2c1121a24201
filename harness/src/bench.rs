//! `hidvm bench`: the numbers the README quotes, measured on this machine.
//! Speed goals live here, never in timed tests.
use crate::error::{Error, Result};
use crate::scenarios::Kind;
use crate::suite::Suite;
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

pub fn run(suite: &Suite, opts: &BenchOptions) -> Result<()> {
    println!("hidvm bench on {} cores", crate::cores());
    let targets = suite.default_targets();
    for k in &suite.kernels {
        let source = suite.source(&k.name)?;
        println!("kernel {}: Linux {} ({})", k.name, source.version, source.root.display());
    }

    if opts.cold {
        for target in &targets {
            let tmp = tempfile::Builder::new().prefix("hidvm-cold-").tempdir().map_err(Error::io("temp cache"))?;
            let cold_suite = suite.with_cache(tmp.path().to_path_buf(), false);
            // The tree is unpacked (or fetched) before the clock starts:
            // the number is the build's.
            cold_suite.source(&target.kernel)?;
            let t = Instant::now();
            let k = cold_suite.kernel(target)?;
            println!(
                "cold build {:<10} {:>6.0} s  (tinyconfig + fragments, make -j{}, from an empty O= dir; {})",
                target.label(),
                t.elapsed().as_secs_f64(),
                crate::cores(),
                k.record.compiler
            );
        }
    }

    for target in &targets {
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

    let catalogue = suite.catalogue()?;
    // The reference scenario: one mouse, attach, inject, release, inject.
    let reference = catalogue.iter().find(|e| e.name == "mouse_invert_y_close_link");
    let Some(first) = reference.or_else(|| catalogue.iter().find(|e| e.kind == Kind::Scenario)) else {
        return Err(Error::Other("no scenario to time; add one to tests/scenarios/".into()));
    };
    for target in &targets {
        let mut vm = Vec::new();
        let mut total = Vec::new();
        for _ in 0..opts.runs {
            let t = Instant::now();
            let r = suite.run(target, first)?;
            total.push(t.elapsed());
            vm.push(Duration::from_secs_f64(r.vm_seconds));
            if !r.verdict.passed() {
                return Err(Error::Other(format!(
                    "{} failed during the benchmark ({}); run `hidvm run {}` for its step log",
                    r.test,
                    r.verdict.token(),
                    r.test
                )));
            }
        }
        println!("one VM, {} on {:<10} qemu wall {}", first.name, target.label(), Stats(vm).line());
        println!("one test end to end {:<10}          {}", target.label(), Stats(total).line());
    }

    let t = Instant::now();
    let jobs = crate::cores();
    let (work, skipped): (Vec<_>, Vec<_>) = suite.tests(&targets, None)?.into_iter().partition(|c| c.skip.is_none());
    let failures: Vec<String> = suite
        .run_parallel(&work, jobs, |_, _| {})
        .into_iter()
        .zip(&work)
        .filter_map(|(r, case)| match r {
            Ok(r) if r.verdict.passed() || matches!(r.known, crate::known::Known::Failed(..)) => None,
            Ok(r) => Some(r.test),
            Err(err) => Some(format!("{}: {err}", case.name())),
        })
        .collect();
    println!(
        "warm full catalogue: {} tests ({} skipped) in {:.1} s with {jobs} VMs at a time{}",
        work.len(),
        skipped.len(),
        t.elapsed().as_secs_f64(),
        if failures.is_empty() {
            String::new()
        } else {
            format!(" ({} FAILED: {})", failures.len(), failures.join(", "))
        }
    );
    Ok(())
}
