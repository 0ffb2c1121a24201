//! One pytest session in one VM: booted cold with the userspace disk, the
//! bundle and the job, 2 GB of memory (one pytest process grows by about a
//! megabyte per hid-multitouch test), `printk.devkmsg=on` (the plugin's
//! markers); what it said, read (`judge::pytest`), with the run's own
//! problems (timeout, verdict, nonce, banner) and its kernel's health.
use crate::base::error::{Error, Result};
use crate::base::layout::new_run_dir;
use crate::base::tools;
use crate::judge::console::{self, Splat};
use crate::judge::guest::GuestReport;
use crate::judge::pytest;
use crate::run::hidtools::bundle::Prepared;
use crate::run::suite::Suite;
use crate::vm::boot;
use crate::vm::feature::{DevKmsg, Feature, MicroVm, ReadOnlyDisk};
use crate::vm::initramfs::Initramfs;
use hidvm_proto::job::BUNDLE_DIR;
use hidvm_proto::{Health, Job, JobMode, Reading, JOB_PATH};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Guest memory of a pytest VM: a session of ~750 test_tablet tests grew
/// pytest to 500 MB and starved a 512 MB guest (shards are at most
/// [`super::SHARD_MAX`] tests, so 2 GB leaves room).
const MEMORY_MIB: u32 = 2048;
/// Where a shard's node ids go (one per line, `@file` for pytest).
const SHARD_FILE: &str = "shard.txt";

/// What one VM runs.
#[derive(Clone, Debug)]
pub struct Spec {
    /// `collect`, `shard 2/5 (test_tablet.py::TestA … TestB)`, a module.
    pub label: String,
    /// Its run directory's name under the target's (`hidtools.shard-2`).
    pub dir: String,
    /// pytest's arguments (the shard's node ids go into a file).
    pub args: Vec<String>,
    /// The shard's node ids (with `tests/`), if it is a shard.
    pub ids: Vec<String>,
    /// Tests it should run (for its deadline).
    pub size: usize,
    pub broken_remove: bool,
}

impl Spec {
    /// A session running `ids` with the TAP stream and udevd, as
    /// run-hid-tools-tests.sh runs the suite.
    pub fn shard(label: String, dir: String, ids: Vec<String>, broken_remove: bool) -> Spec {
        let args = vec!["--tap-stream".into(), "--udevd".into(), format!("@/hidvm/{SHARD_FILE}")];
        Spec { label, dir, args, size: ids.len(), ids, broken_remove }
    }
}

/// What one VM said.
pub struct SessionRun {
    pub spec: Spec,
    pub read: pytest::Session,
    /// Every line pytest printed (the TAP stream, the plugin's lines).
    pub output: Vec<String>,
    /// Kernel reports on the console, in order (allow-list applied).
    pub splats: Vec<Splat>,
    /// Short node id -> seconds, from the console's markers.
    pub seconds: std::collections::BTreeMap<String, f64>,
    pub health: Option<Health>,
    /// The run itself (timeout, no verdict, nonce, banner).
    pub problems: Vec<String>,
    /// pytest exited 0 (None: no verdict).
    pub exit_ok: Option<bool>,
    pub vm_seconds: f64,
    pub run_dir: PathBuf,
}

/// The VM's deadline: pytest's start (~13 s under TCG) and ~0.3-0.6 s
/// per test under TCG, with a wide margin; a hang still ends.
fn deadline(size: usize, slowness: u32) -> Duration {
    if let Some(s) = std::env::var("HIDVM_VM_TIMEOUT").ok().and_then(|s| s.parse().ok()) {
        return Duration::from_secs(s);
    }
    let slow = slowness.max(1) as u64;
    Duration::from_secs(30 + 12 * slow) + Duration::from_millis(250 * slow * size as u64)
}

/// Boot `p`'s kernel with the userspace and run `spec`.
pub fn run(suite: &Suite, p: &Prepared, image: &Path, spec: &Spec) -> Result<SessionRun> {
    let qemu = tools::require(&tools::QEMU)?;
    let agent_bin = crate::vm::agent::ensure(&suite.repo)?;
    let agent = std::fs::read(&agent_bin).map_err(Error::io(format!("reading {}", agent_bin.display())))?;
    let label = p.target.label();
    let run_dir = new_run_dir(&suite.repo.runs_dir().join(&label).join(&spec.dir))?;
    let k = &p.kernel;
    let probe = boot::accelerator(&suite.cache, &qemu, &k.boot_image, &k.cell.name, &agent, &run_dir)?;
    let deadline = deadline(spec.size, probe.accel.slowness());
    let nonce = format!("hidtools-{}-{label}-{:x}", std::process::id(), rand_ns());
    let mut fs = Initramfs::with_agent(&agent);
    for (path, mode, data) in &p.files {
        fs.file(path, *mode, data.clone());
    }
    if !spec.ids.is_empty() {
        fs.file(&format!("{BUNDLE_DIR}/{SHARD_FILE}"), 0o644, (spec.ids.join("\n") + "\n").into_bytes());
    }
    let job = Job {
        cell: p.target.cell.clone(),
        nonce: nonce.clone(),
        deadline_ms: deadline.as_millis() as u64,
        detectors: k.detectors()?,
        mode: JobMode::Pytest { args: spec.args.clone(), broken_remove: spec.broken_remove },
    };
    fs.file(JOB_PATH, 0o644, serde_json::to_vec_pretty(&job).expect("job serializes"));
    let extra: Vec<Box<dyn Feature>> = vec![
        Box::new(MicroVm { memory_mib: MEMORY_MIB, cpus: 2 }),
        Box::new(ReadOnlyDisk { image: image.to_path_buf() }),
        Box::new(DevKmsg),
    ];
    let booted = boot::boot(&qemu, &k.boot_image, &fs, probe.accel, deadline, &run_dir, extra)?;
    let report = GuestReport::parse(&booted.results_text);
    let _ = std::fs::write(run_dir.join("output.txt"), report.output.join("\n") + "\n");
    let (splats, _) = suite.allow.filter(&p.target.cell, console::find_splats(&booted.console_text));
    let problems = crate::run::kselftest::run_problems(
        &report,
        &nonce,
        &k.cell.banner,
        booted.outcome.timed_out,
        deadline,
        &run_dir,
    );
    Ok(SessionRun {
        spec: spec.clone(),
        read: pytest::read_session(&report.output),
        seconds: pytest::test_seconds(&booted.console_text),
        output: report.output.clone(),
        splats,
        health: report.health.clone(),
        problems,
        exit_ok: report.done.as_ref().map(|(passed, _)| *passed),
        vm_seconds: booted.outcome.elapsed.as_secs_f64(),
        run_dir,
    })
}

/// The line announcing a finished session, and whether it went well.
pub fn summary_line(
    target: &crate::kernel::spec::Target,
    spec: &Spec,
    r: &Result<SessionRun, String>,
) -> (bool, String) {
    let name = format!("{}::hidtools {}", target.label(), spec.label);
    match r {
        Err(e) => (false, format!("  ERROR {name}: {e}")),
        Ok(s) => {
            let count =
                |f: fn(&crate::judge::tap::Outcome) -> bool| s.read.results.iter().filter(|r| f(&r.outcome)).count();
            let failed = count(|o| matches!(o, crate::judge::tap::Outcome::Fail(_)));
            let skipped = count(|o| matches!(o, crate::judge::tap::Outcome::Skip(_)));
            let ok = failed == 0 && s.problems.is_empty() && s.read.problems.is_empty() && s.exit_ok == Some(true);
            let trouble = s.problems.iter().chain(&s.read.problems).cloned().collect::<Vec<_>>();
            let line = format!(
                "  {}  {name}: {} results ({} failed, {} skipped) in {:.1} s{}",
                if ok { "ran " } else { "FAIL" },
                s.read.results.len(),
                failed,
                skipped,
                s.vm_seconds,
                if trouble.is_empty() { String::new() } else { format!(" ({})", trouble.join("; ")) }
            );
            (ok, line)
        }
    }
}

fn rand_ns() -> u128 {
    std::time::UNIX_EPOCH.elapsed().unwrap_or_default().as_nanos()
}

/// What the kernel's health readings say is wrong: a new taint, BPF
/// objects left behind (a program the suite loaded still in the kernel),
/// kmemleak's findings, or a reading that could not be taken.
pub fn health_problems(health: Option<&Health>) -> Vec<String> {
    let Some(h) = health else { return vec!["the guest sent no health report".into()] };
    let mut p = Vec::new();
    match (&h.taint_before, &h.taint_after) {
        (Reading::Value(a), Reading::Value(b)) if a != b => p.push(format!(
            "the kernel's taint changed from {a} ({}) to {b} ({})",
            console::taint_letters(*a),
            console::taint_letters(*b)
        )),
        (Reading::Error(e), _) | (_, Reading::Error(e)) => p.push(format!("could not check the taint: {e}")),
        _ => {}
    }
    match (&h.bpf_objects_before, &h.bpf_objects_after) {
        (Reading::Value(a), Reading::Value(b)) if a != b => {
            p.push(format!("BPF objects left behind: {a} before the suite, {b} after (bpf-leak)"))
        }
        (Reading::Error(e), _) | (_, Reading::Error(e)) => p.push(format!("could not count BPF objects: {e}")),
        _ => {}
    }
    match &h.kmemleak {
        hidvm_proto::Kmemleak::Scanned { leaks, .. } if !leaks.is_empty() => {
            p.push(format!("kmemleak: {}", leaks.iter().take(3).cloned().collect::<Vec<_>>().join(" | ")))
        }
        hidvm_proto::Kmemleak::Failed { reason } => p.push(format!("could not scan with kmemleak: {reason}")),
        _ => {}
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use hidvm_proto::{Kmemleak, ObjectCounts};

    #[test]
    fn deadlines_grow_with_the_shard_under_tcg() {
        std::env::remove_var("HIDVM_VM_TIMEOUT");
        assert_eq!(deadline(0, 10), Duration::from_secs(150));
        assert_eq!(deadline(200, 10), Duration::from_secs(650));
        assert_eq!(deadline(200, 1), Duration::from_secs(92));
    }

    #[test]
    fn leftover_objects_taint_and_unreadable_readings_are_problems() {
        let counts = |links| ObjectCounts { progs: 0, maps: 0, links };
        let clean = Health {
            taint_before: Reading::Value(0),
            taint_after: Reading::Value(0),
            bpf_objects_before: Reading::Value(counts(0)),
            bpf_objects_after: Reading::Value(counts(0)),
            kmemleak: Kmemleak::NotBuilt,
        };
        assert!(health_problems(Some(&clean)).is_empty());
        let leak = Health { bpf_objects_after: Reading::Value(counts(1)), ..clean.clone() };
        assert!(health_problems(Some(&leak))[0].contains("bpf-leak"));
        let taint = Health { taint_after: Reading::Value(512), ..clean.clone() };
        assert!(health_problems(Some(&taint))[0].contains("to 512 (W)"));
        let blind = Health { taint_after: Reading::Error("EACCES".into()), ..clean };
        assert!(health_problems(Some(&blind))[0].contains("could not check"));
        assert!(!health_problems(None).is_empty());
    }
}
