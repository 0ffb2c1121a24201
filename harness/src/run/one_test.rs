//! One test, end to end: prepared (kernel, scenario, programs), the
//! accelerator chosen, its VM restored from the kernel's snapshot or booted
//! cold, the guest's answer judged, held against the known kernel bugs, and
//! reported. Booting is `vm::boot`'s, judging `judge::decide`'s, showing
//! the result `results::report`'s.
use crate::base::error::{Error, Result};
use crate::base::layout::{new_run_dir, test_dir_name, write_atomic};
use crate::base::timeline::Timeline;
use crate::base::tools;
use crate::catalogue::fixtures;
use crate::catalogue::scenarios::{Entry, Loaded, ResolvedReplay};
use crate::judge::console;
use crate::judge::decide::{self, Judgement, RunContext};
use crate::judge::guest::GuestReport;
use crate::judge::known::{self, Known};
use crate::judge::symbolize;
use crate::judge::title::CrashReport;
use crate::judge::verdict::{FailureKind, Verdict};
use crate::kernel::build::BuiltKernel;
use crate::kernel::spec::Target;
use crate::results::report::{Crash, RunReport};
use crate::run::bless::bless;
use crate::run::prepare::{prepare, Prepared};
use crate::run::suite::Suite;
use crate::vm::accel::Accel;
use crate::vm::initramfs::Initramfs;
use crate::vm::{agent, boot, snapshot};
use hidvm_proto::job::{FIXTURE_DIR, MODULE_DIR};
use hidvm_proto::{DeviceDef, GuestFixture, Job, JobMode, Scenario, Step, JOB_PATH};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Run `entry` on `target` in a VM of its own.
pub fn run(suite: &Suite, target: &Target, entry: &Entry) -> Result<RunReport> {
    let mut timeline = Timeline::start();
    let Prepared { loaded, cell, kernel, objects, source } = prepare(suite, target, entry)?;
    timeline.mark("prepare (scenario, kernel, programs)");
    let label = target.label();
    let Loaded { scenario, devices, replays, .. } = loaded;
    let qemu = tools::require(&tools::QEMU)?;
    let detectors = kernel.detectors()?;
    let agent_bin = agent::ensure(&suite.repo)?;
    let agent = std::fs::read(&agent_bin).map_err(Error::io(format!("reading {}", agent_bin.display())))?;

    let run_dir = new_run_dir(&suite.repo.runs_dir().join(&label).join(test_dir_name(&entry.test_name(&label))))?;
    let probe = boot::accelerator(&suite.cache, &qemu, &kernel.boot_image, &kernel.cell.name, &agent, &run_dir)?;
    timeline.mark("agent, accelerator, run directory");

    let GuestFiles { template, mut own, fixtures } = guest_files(&agent, &kernel, &objects)?;
    let deadline = vm_deadline(probe.accel, scenario.timeout_s);
    let nonce = nonce();
    let originals = descriptor_originals(&scenario, &devices);
    let job = Job {
        cell: cell.name.clone(),
        nonce: nonce.clone(),
        deadline_ms: deadline.as_millis() as u64,
        detectors,
        mode: JobMode::Scenario {
            scenario: scenario.clone(),
            devices,
            fixtures,
            replays: replays.values().map(|r| r.data.clone()).collect(),
            bless: suite.opts.bless,
        },
    };
    own.push((JOB_PATH.into(), 0o644, serde_json::to_vec_pretty(&job).expect("job serializes")));
    // Apart from "before the VM" (the snapshot's lookup and the delivery),
    // which `hidvm bench` showed as 0.13 s restored against 0.01 s cold.
    timeline.mark("guest files and job");

    let (booted, started_from) =
        boot_test(suite, &qemu, &kernel.boot_image, template, &own, probe.accel, deadline, &run_dir)?;
    timeline.extend(&booted.outcome.phases);
    let guest = GuestReport::parse(&booted.results_text);
    if let Some(trace) = &guest.trace {
        let _ = std::fs::write(run_dir.join("trace.txt"), trace.join("\n") + "\n");
    }
    let (splats, allowed) = suite.allow.filter(&cell.name, console::find_splats(&booted.console_text));
    let ctx = RunContext { cell: &cell, scenario: &scenario, nonce: &nonce, detectors };
    let mut judgement = decide::judge(&ctx, &booted.outcome, &guest, &booted.console_text, &splats);
    bless_if_asked(suite, &label, &replays, &guest, &mut judgement.verdict);
    let known = known_bug(suite, entry, &cell.name, &source.label, &judgement, &guest);
    let crashes = symbolized(&judgement.crashes, &booted.console_text, &kernel, &source.root);
    timeline.mark("judge");
    let report = RunReport {
        known,
        test: entry.test_name(&label),
        kernel: target.kernel.clone(),
        kernel_version: source.version.clone(),
        kernel_source: source.label.clone(),
        cell: cell.name.clone(),
        scenario: scenario.name.clone(),
        summary: scenario.summary.clone(),
        verdict: judgement.verdict,
        allowed,
        accel: probe.accel,
        accel_reason: probe.reason,
        vm_seconds: booted.outcome.elapsed.as_secs_f64(),
        started_from,
        first_answer_seconds: booted.outcome.first_answer.map(|d| d.as_secs_f64()),
        phases: timeline.into_phases(),
        run_dir: run_dir.clone(),
        guest,
        console_tail: console::tail(&booted.console_text, 40),
        splat: judgement.splat,
        crashes,
        originals,
    };
    save_report(&run_dir, &report);
    Ok(report)
}

/// `--bless`: a run that passed writes what its replay steps observed to
/// their expectation files; when that fails, the run fails.
fn bless_if_asked(
    suite: &Suite,
    label: &str,
    replays: &BTreeMap<usize, ResolvedReplay>,
    guest: &GuestReport,
    verdict: &mut Verdict,
) {
    if suite.opts.bless && verdict.passed() {
        if let Err(e) = bless(suite, label, replays, guest) {
            *verdict = Verdict::Fail { kind: FailureKind::Check, class: None, reason: e.to_string() };
        }
    }
}

/// The known kernel bug that explains the run, if any. Known kernel bugs
/// are the catalogue's: a user's scenario never is one.
fn known_bug(
    suite: &Suite,
    entry: &Entry,
    cell: &str,
    kernel_label: &str,
    judgement: &Judgement,
    guest: &GuestReport,
) -> Known {
    let seen = known::seen_in(&judgement.verdict, &judgement.crashes, &guest.failed_check_values());
    if entry.from_catalogue {
        suite.known.classify(&entry.row(), cell, kernel_label, &judgement.verdict, &seen)
    } else {
        Known::None
    }
}

/// The report as report.json in the run directory; a failure to write it
/// is ignored.
fn save_report(run_dir: &Path, report: &RunReport) {
    let _ =
        write_atomic(&run_dir.join("report.json"), serde_json::to_string_pretty(report).unwrap_or_default().as_bytes());
}

/// Step number -> the report descriptor of the device each `check_device`
/// step with a descriptor expectation checks (what "original" means there).
fn descriptor_originals(scenario: &Scenario, devices: &BTreeMap<String, DeviceDef>) -> BTreeMap<usize, Vec<u8>> {
    let checked = |(i, s): (usize, &Step)| match s {
        Step::CheckDevice(c) if c.descriptor.is_some() => {
            devices.get(&c.device).map(|d| (i + 1, d.descriptor.0.clone()))
        }
        _ => None,
    };
    scenario.steps.iter().enumerate().filter_map(checked).collect()
}

/// The run's kernel reports, each symbolized with the tree's own
/// decode_stacktrace.sh (file:line per frame, inlined frames); a report
/// that could not be symbolized says why instead.
fn symbolized(crashes: &[CrashReport], console: &str, kernel: &BuiltKernel, tree: &Path) -> Vec<Crash> {
    let build_dir = kernel.vmlinux.parent().unwrap_or(&kernel.dir);
    // Its debug info names files as the compiler saw the tree.
    let tree = kernel.source_base.as_deref().unwrap_or(tree);
    let tools = symbolize::Tools::for_make_vars(&kernel.cell.make);
    crashes
        .iter()
        .map(|c| {
            let mut out = Crash::of(c);
            out.symbolized =
                match symbolize::symbolize_console(console, c.lines.clone(), build_dir, tree, tools.clone()) {
                    Ok(s) => s.lines,
                    Err(e) => vec![e.to_string()],
                };
            out
        })
        .collect()
}

/// A test's guest files: the template initramfs (the agent and the cell's
/// modules, the same for every test, so in the snapshot too), and the
/// test's own files (its compiled programs: in the initramfs of a cold
/// boot, delivered to a restored guest), with where the guest finds each
/// program.
struct GuestFiles {
    template: Initramfs,
    own: Vec<(String, u32, Vec<u8>)>,
    fixtures: BTreeMap<String, GuestFixture>,
}

fn guest_files(
    agent: &[u8],
    kernel: &BuiltKernel,
    objects: &BTreeMap<String, fixtures::Compiled>,
) -> Result<GuestFiles> {
    let mut template = Initramfs::with_agent(agent);
    for m in &kernel.modules {
        let name = m.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        template
            .add_host_file(&format!("{MODULE_DIR}/{name}"), 0o644, m)
            .map_err(Error::io(format!("reading {}", m.display())))?;
    }
    let mut own = Vec::new();
    let mut fixtures = BTreeMap::new();
    for (name, c) in objects {
        let guest = format!("{FIXTURE_DIR}/{}", c.guest_name);
        let bytes = std::fs::read(&c.object).map_err(Error::io(format!("reading {}", c.object.display())))?;
        own.push((guest.clone(), 0o644, bytes));
        fixtures.insert(name.clone(), GuestFixture { path: guest, config: c.config.clone() });
    }
    Ok(GuestFiles { template, own, fixtures })
}

/// Start the test's VM: restored from the kernel's snapshot (made on
/// first use) unless HIDVM_SNAPSHOT=off, cold otherwise. A restore that
/// fails keeps what its guest printed (`console-restore.log`): a kernel
/// report there is the test's result, and no cold boot hides it; only a
/// restore that failed cleanly falls back to a cold boot, and the report
/// says so.
#[allow(clippy::too_many_arguments)]
fn boot_test(
    suite: &Suite,
    qemu: &Path,
    image: &Path,
    mut fs: Initramfs,
    own_files: &[(String, u32, Vec<u8>)],
    accel: Accel,
    deadline: Duration,
    run_dir: &Path,
) -> Result<(boot::BootResult, String)> {
    let mut from = "cold boot".to_string();
    if snapshot::enabled() {
        let generation = suite.generation.load(std::sync::atomic::Ordering::SeqCst);
        let snap = boot::snapshot_for(&suite.cache, qemu, image, &fs, accel, generation)?;
        let booted = boot::boot_restored(qemu, image, &snap, own_files, accel, deadline, run_dir)?;
        let Some(why) = booted.outcome.restore_failed.clone() else {
            return Ok((booted, format!("snapshot {}", snap.key)));
        };
        let kept = run_dir.join("console-restore.log");
        let _ = std::fs::rename(run_dir.join("console.log"), &kept);
        let own = boot::restored_part(&booted.console_text).unwrap_or_default();
        if let Some(s) = console::find_splats(own).first() {
            // The restored guest ran far enough to break: that is the result.
            crate::base::output::note(format!(
                "{}: restoring snapshot {} failed ({why}) after the guest printed a kernel report ({}): not booting cold",
                run_dir.display(),
                snap.key,
                s.line
            ));
            let _ = std::fs::copy(&kept, run_dir.join("console.log"));
            return Ok((booted, format!("snapshot {} (the restore failed: {why})", snap.key)));
        }
        crate::base::output::note(format!(
            "{}: restoring snapshot {} failed ({why}); booting cold (its console: {})",
            run_dir.display(),
            snap.key,
            kept.display()
        ));
        from = format!("cold boot (restoring snapshot {} failed: {why}; its console: console-restore.log)", snap.key);
    }
    for (path, mode, data) in own_files {
        fs.file(path, *mode, data.clone());
    }
    Ok((boot::boot(qemu, image, &fs, accel, deadline, run_dir, Vec::new())?, from))
}

/// A value no other run has: the guest echoes it, so results written by
/// another run are never mistaken for this one's.
fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{:x}-{:x}-{:x}", t.as_nanos(), std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// `HIDVM_VM_TIMEOUT` seconds; else the scenario's own `timeout_s`; else
/// scaled to the accelerator (24 s KVM, 60 s TCG).
pub fn vm_deadline(accel: Accel, scenario_timeout_s: Option<u64>) -> Duration {
    if let Some(s) = std::env::var("HIDVM_VM_TIMEOUT").ok().and_then(|s| s.parse().ok()) {
        return Duration::from_secs(s);
    }
    Duration::from_secs(scenario_timeout_s.unwrap_or(20 + 4 * accel.slowness() as u64))
}
