//! `hidvm bench`: the numbers the README quotes, measured on this machine.
//! Speed goals live here, never in timed tests.
use crate::error::{Error, Result};
use crate::scenarios::Kind;
use crate::suite::{Options, Suite};
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
    let source = suite.source()?;
    println!("kernel source: Linux {} ({})", source.version, source.root.display());

    if opts.cold {
        for cell in &suite.cells {
            let tmp = tempfile::Builder::new().prefix("hidvm-cold-").tempdir().map_err(Error::io("temp cache"))?;
            let cold_suite = Suite {
                repo: crate::layout::Repo::locate(),
                cache: tmp.path().to_path_buf(),
                cells: suite.cells.clone(),
                all_cells: suite.all_cells.clone(),
                allow: suite.allow.clone(),
                known: suite.known.clone(),
                opts: Options { verbose: false, ..suite.opts.clone() },
                source_once: Default::default(),
                blessed: Default::default(),
            };
            let src = cold_suite.source()?;
            let t = Instant::now();
            let k = cold_suite.kernel(cell, &src)?;
            println!(
                "cold build {:<6} {:>6.0} s  (tinyconfig + fragments, make -j{}, from an empty O= dir; {})",
                cell.name,
                t.elapsed().as_secs_f64(),
                crate::cores(),
                k.record.compiler
            );
        }
    }

    for cell in &suite.cells {
        let k = suite.kernel(cell, &source)?;
        drop(k);
        let t = Instant::now();
        let k = suite.kernel(cell, &source)?;
        println!(
            "cached kernel lookup {:<6} {:>6.3} s  (no make runs; the last, possibly incremental, build took {:.0} s)",
            cell.name,
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
    for cell in &suite.cells {
        let mut vm = Vec::new();
        let mut total = Vec::new();
        for _ in 0..opts.runs {
            let t = Instant::now();
            let r = suite.run(&cell.name, first)?;
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
        println!("one VM, {} on {:<6} qemu wall {}", first.name, cell.name, Stats(vm).line());
        println!("one test end to end {:<6}          {}", cell.name, Stats(total).line());
    }

    let t = Instant::now();
    let jobs = crate::cores();
    let cells: Vec<String> = suite.cells.iter().map(|c| c.name.clone()).collect();
    let work = suite.tests(&cells, None)?;
    let failures: Vec<String> = suite
        .run_parallel(&work, jobs, |_, _, _| {})
        .into_iter()
        .zip(&work)
        .filter_map(|(r, (e, c))| match r {
            Ok(r) if r.verdict.passed() => None,
            Ok(r) => Some(r.test),
            Err(err) => Some(format!("{}: {err}", e.test_name(c))),
        })
        .collect();
    println!(
        "warm full catalogue: {} tests in {:.1} s with {jobs} VMs at a time{}",
        work.len(),
        t.elapsed().as_secs_f64(),
        if failures.is_empty() {
            String::new()
        } else {
            format!(" ({} FAILED: {})", failures.len(), failures.join(", "))
        }
    );
    Ok(())
}
