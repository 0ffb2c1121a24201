//! One scenario on one kernel cell, end to end: kernel (cached), fixtures,
//! agent, initramfs, accelerator, VM, verdict. Booting is `qemu::boot`'s,
//! showing the result is `report`'s.
use crate::allowlist::AllowList;
use crate::cell::{self, KernelCell};
use crate::error::{Error, Result};
use crate::initramfs::Initramfs;
use crate::kbuild::{BuiltKernel, KernelBuilder};
use crate::kernel_src::KernelSource;
use crate::layout::{cache_root, new_run_dir, test_dir_name, write_atomic, Repo};
use crate::qemu::accel::{Accel, ProbeRecord, ProbeStore};
use crate::qemu::boot;
use crate::report::RunReport;
use crate::scenarios::{self, Entry, LoadOptions, Loaded};
use crate::verdict::{self, GuestReport};
use crate::{agent, console, fixtures, tools};
use hidvm_proto::job::{FIXTURE_DIR, MODULE_DIR};
use hidvm_proto::{GuestFixture, Job, JobMode, JOB_PATH};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--kernel-src`; else HIDVM_KERNEL_SRC; else the Debian tarball.
    pub kernel_src: Option<PathBuf>,
    /// Print kernel build progress.
    pub verbose: bool,
    /// `hidvm test --bless`: write what replay steps observe to their
    /// expectation files instead of comparing.
    pub bless: bool,
}

pub struct Suite {
    pub repo: Repo,
    pub cache: PathBuf,
    /// Cells this run covers.
    pub cells: Vec<KernelCell>,
    /// Every defined cell.
    pub all_cells: Vec<KernelCell>,
    pub allow: AllowList,
    pub known: crate::known::KnownFailures,
    pub opts: Options,
    /// The kernel tree, resolved once per command: a tree edited during a
    /// `vm-test` must not put two different kernels into one matrix.
    pub source_once: std::sync::OnceLock<KernelSource>,
    /// Expectation files blessed in this command: file -> (cell, content),
    /// so two cells that disagree are caught instead of overwriting.
    pub blessed: std::sync::Mutex<BTreeMap<PathBuf, (String, String)>>,
}

impl Suite {
    /// The cells run by default, or `HIDVM_CELLS=gcc,llvm-debug` (CI runs
    /// one per job; flavours such as the debug cells run only when named).
    /// `all_cells` keeps every definition for explicit `--cell` choices.
    pub fn new(opts: Options) -> Result<Suite> {
        let repo = Repo::locate();
        let all_cells = cell::load(&repo.cells_file())?;
        let allow = AllowList::load(&repo.root.join("tests/allowlist.toml"))?;
        let known = crate::known::KnownFailures::load(&repo.root.join("tests/known-failures.toml"))?;
        let mut cells = all_cells.clone();
        match std::env::var("HIDVM_CELLS").ok().filter(|s| !s.trim().is_empty()) {
            Some(only) => {
                let wanted: Vec<&str> = only.split(',').map(str::trim).collect();
                for w in &wanted {
                    cell::find(&cells, w).map_err(|e| Error::Other(format!("HIDVM_CELLS: {e}")))?;
                }
                cells.retain(|c| wanted.contains(&c.name.as_str()));
            }
            None => cells.retain(|c| c.default_run),
        }
        Ok(Suite {
            repo,
            cache: cache_root(),
            cells,
            all_cells,
            allow,
            known,
            opts,
            source_once: Default::default(),
            blessed: Default::default(),
        })
    }

    pub fn source(&self) -> Result<KernelSource> {
        if let Some(s) = self.source_once.get() {
            return Ok(s.clone());
        }
        let s = KernelSource::resolve(self.opts.kernel_src.as_deref(), &self.cache)?;
        Ok(self.source_once.get_or_init(|| s).clone())
    }

    pub fn kernel(&self, cell: &KernelCell, source: &KernelSource) -> Result<BuiltKernel> {
        let mut builder = KernelBuilder::new(&self.repo, &self.cache, source);
        builder.verbose = self.opts.verbose;
        builder.ensure(cell)
    }

    /// The repository's catalogue (scenarios and self-tests).
    pub fn catalogue(&self) -> Result<Vec<Entry>> {
        scenarios::catalogue(&self.repo, &self.all_cells)
    }

    /// Load options for this command (the kernel tree is resolved, and the
    /// Debian tarball unpacked, on first use).
    pub fn load(&self, entry: &Entry) -> Result<Loaded> {
        let tree = self.source()?.root;
        scenarios::load(&self.repo, entry, LoadOptions { kernel_tree: Some(&tree), bless: self.opts.bless })
    }

    /// Every catalogue test on `cells` (names), in catalogue order; with
    /// `filter`, only tests whose name contains it.
    pub fn tests(&self, cells: &[String], filter: Option<&str>) -> Result<Vec<(Entry, String)>> {
        self.tests_of(self.catalogue()?, cells, filter)
    }

    /// `entries` x `cells`, in order, filtered by name.
    pub fn tests_of(
        &self,
        entries: Vec<Entry>,
        cells: &[String],
        filter: Option<&str>,
    ) -> Result<Vec<(Entry, String)>> {
        let mut out = Vec::new();
        for entry in entries {
            for cell in cells {
                if entry.runs_on(cell) && filter.is_none_or(|f| entry.test_name(cell).contains(f)) {
                    out.push((entry.clone(), cell.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Run every test of `work` once, `jobs` VMs at a time; `finished` sees
    /// each result as it comes. Results are returned in `work` order.
    pub fn run_parallel(
        &self,
        work: &[(Entry, String)],
        jobs: usize,
        finished: impl Fn(&Entry, &str, &Result<RunReport>) + Sync,
    ) -> Vec<Result<RunReport>> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..jobs.max(1) {
                s.spawn(|| loop {
                    let idx = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some((entry, cell)) = work.get(idx) else { break };
                    let r = self.run(cell, entry);
                    finished(entry, cell, &r);
                    results.lock().unwrap().push((idx, r));
                });
            }
        });
        let mut results = results.into_inner().unwrap();
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }

    /// Everything a run needs before booting: the scenario loaded, the
    /// kernel built, its programs compiled and matched to their devices.
    /// Commands call this for every test first, so bad input is reported
    /// before any VM boots.
    pub fn prepare(&self, cell_name: &str, entry: &Entry) -> Result<Prepared> {
        let loaded = self.load(entry)?;
        let cell = cell::find(&self.all_cells, cell_name)?.clone();
        let source = self.source()?;
        let kernel = self.kernel(&cell, &source)?;
        let ctx = fixtures::CompileContext {
            repo: &self.repo,
            cache: &self.cache,
            kernel: &kernel,
            kernel_tree: &source.root,
            bpf_include: &loaded.bpf_include,
        };
        let objects = fixtures::compile(&ctx, &loaded.fixtures)?;
        check_device_tables(entry, &loaded.scenario, &loaded.devices, &objects)?;
        Ok(Prepared { loaded, cell, kernel, objects })
    }

    pub fn run(&self, cell_name: &str, entry: &Entry) -> Result<RunReport> {
        let Prepared { loaded, cell, kernel, objects } = self.prepare(cell_name, entry)?;
        let Loaded { scenario, devices, replays, .. } = loaded;
        let qemu = tools::require(&tools::QEMU)?;
        let detectors = kernel.detectors()?;
        let agent_bin = agent::ensure(&self.repo)?;
        let agent = std::fs::read(&agent_bin).map_err(Error::io(format!("reading {}", agent_bin.display())))?;

        let run_dir =
            new_run_dir(&self.repo.runs_dir().join(&cell.name).join(test_dir_name(&entry.test_name(&cell.name))))?;
        let probe = self.accelerator(&qemu, &kernel, &agent, &run_dir)?;

        let mut fs = Initramfs::with_agent(&agent);
        let mut guest_fixtures = BTreeMap::new();
        for (name, c) in &objects {
            let guest = format!("{FIXTURE_DIR}/{}", c.guest_name);
            fs.add_host_file(&guest, 0o644, &c.object).map_err(Error::io(format!("reading {}", c.object.display())))?;
            guest_fixtures.insert(name.clone(), GuestFixture { path: guest, config: c.config.clone() });
        }
        for m in &kernel.modules {
            let name = m.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            fs.add_host_file(&format!("{MODULE_DIR}/{name}"), 0o644, m)
                .map_err(Error::io(format!("reading {}", m.display())))?;
        }
        let deadline = vm_deadline(probe.accel, scenario.timeout_s);
        let nonce = nonce();
        let job = Job {
            cell: cell.name.clone(),
            nonce: nonce.clone(),
            deadline_ms: deadline.as_millis() as u64,
            detectors,
            mode: JobMode::Scenario {
                scenario: scenario.clone(),
                devices,
                fixtures: guest_fixtures,
                replays: replays.values().map(|r| r.data.clone()).collect(),
                bless: self.opts.bless,
            },
        };
        fs.file(JOB_PATH, 0o644, serde_json::to_vec_pretty(&job).expect("job serializes"));

        let booted = boot::boot(&qemu, &kernel.boot_image, &fs, probe.accel, deadline, &run_dir)?;
        let guest = GuestReport::parse(&booted.results_text);
        if let Some(trace) = &guest.trace {
            let _ = std::fs::write(run_dir.join("trace.txt"), trace.join("\n") + "\n");
        }
        let (splats, allowed) = self.allow.filter(&cell.name, console::find_splats(&booted.console_text));
        let ctx = verdict::RunContext { cell: &cell, scenario: &scenario, nonce: &nonce, detectors };
        let mut judgement = verdict::judge(&ctx, &booted.outcome, &guest, &booted.console_text, &splats);
        if self.opts.bless && judgement.verdict.passed() {
            if let Err(e) = self.bless(&cell.name, &replays, &guest) {
                judgement.verdict = crate::verdict::Verdict::Fail {
                    kind: crate::verdict::FailureKind::Check,
                    class: None,
                    reason: e.to_string(),
                };
            }
        }
        let known = self.known.classify(&entry.row(), &cell.name, &self.source()?.version, &judgement.verdict);
        let report = RunReport {
            known,
            test: entry.test_name(&cell.name),
            cell: cell.name.clone(),
            scenario: scenario.name.clone(),
            summary: scenario.summary.clone(),
            verdict: judgement.verdict,
            allowed,
            accel: probe.accel,
            accel_reason: probe.reason,
            vm_seconds: booted.outcome.elapsed.as_secs_f64(),
            run_dir: run_dir.clone(),
            guest,
            console_tail: console::tail(&booted.console_text, 40),
            splat: judgement.splat,
        };
        let _ = write_atomic(
            &run_dir.join("report.json"),
            serde_json::to_string_pretty(&report).unwrap_or_default().as_bytes(),
        );
        Ok(report)
    }

    /// Write what each replay step observed to its expectation files. Two
    /// cells that observed different output must not overwrite each other.
    fn bless(
        &self,
        cell: &str,
        replays: &BTreeMap<usize, scenarios::ResolvedReplay>,
        guest: &GuestReport,
    ) -> Result<()> {
        for (index, r) in replays {
            let observed = guest
                .steps
                .iter()
                .find(|s| s.index == *index)
                .and_then(|s| s.observed.clone())
                .ok_or_else(|| Error::Other(format!("step {index} reported nothing to bless")))?;
            for (file, lines) in [(&r.evdev_file, &observed.evdev), (&r.hidraw_file, &observed.hidraw)] {
                let Some(file) = file else { continue };
                let text = format!(
                    "# written by `hidvm test --bless` on cell {cell}: one line per replayed report; review before committing\n{}\n",
                    lines.join("\n")
                );
                let body = lines.join("\n");
                let mut blessed = self.blessed.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((other, seen)) = blessed.get(file) {
                    if *seen != body {
                        return Err(Error::Other(format!(
                            "cells {other} and {cell} observed different output for {}: not blessed (a compiler-dependent difference; look at both runs)",
                            file.display()
                        )));
                    }
                    continue;
                }
                write_atomic(file, text.as_bytes()).map_err(Error::io(format!("writing {}", file.display())))?;
                eprintln!("hidvm: blessed {} ({} lines) from cell {cell}", file.display(), lines.len());
                blessed.insert(file.clone(), (cell.to_string(), body));
            }
        }
        Ok(())
    }

    /// KVM only if a timed probe boot under KVM answers (once per host boot).
    fn accelerator(&self, qemu: &Path, kernel: &BuiltKernel, agent: &[u8], run_dir: &Path) -> Result<ProbeRecord> {
        let qemu_version = tools::version_line(&qemu.display().to_string(), &["--version"])?;
        ProbeStore::new(&self.cache).select(&qemu_version, || {
            boot::probe_kvm(qemu, &kernel.boot_image, agent, &kernel.cell.name, &run_dir.join("kvm-probe"))
        })
    }
}

/// A test ready to boot (see [`Suite::prepare`]).
pub struct Prepared {
    pub loaded: Loaded,
    pub cell: KernelCell,
    /// Leased: nobody rebuilds it while this lives.
    pub kernel: BuiltKernel,
    pub objects: BTreeMap<String, fixtures::Compiled>,
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

/// Before booting: a program with a HID_BPF_CONFIG table must match the
/// device it is attached to (bus, vendor, product: the group is the
/// kernel's, checked in the guest), unless the step expects `match: none`.
fn check_device_tables(
    entry: &Entry,
    scenario: &hidvm_proto::Scenario,
    devices: &BTreeMap<String, hidvm_proto::DeviceDef>,
    objects: &BTreeMap<String, fixtures::Compiled>,
) -> Result<()> {
    for (i, step) in scenario.steps.iter().enumerate() {
        let hidvm_proto::Step::Attach(a) = step else { continue };
        let (Some(f), Some(d)) = (&a.fixture, &a.device) else { continue };
        let (Some(c), Some(def)) = (objects.get(f), devices.get(d)) else { continue };
        let expects_no_match = a.expect_error.is_some_and(|e| e.stage == hidvm_proto::Stage::Match);
        if c.config.is_empty() || expects_no_match {
            continue;
        }
        if !c.config.iter().any(|m| m.matches_ids(def.bus, def.vendor, def.product)) {
            return Err(Error::Scenario {
                file: entry.path.clone(),
                message: format!(
                    "step {} (attach): field `device`: `{d}` ({}) matches no HID_BPF_CONFIG entry of {f} ({}); fix the device's ids, or expect it: expect_error = \"match: none\"",
                    i + 1,
                    def.ids(),
                    c.config.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// Load every catalogue entry up front (CLI use): the first malformed file
/// stops the run before anything boots.
pub fn load_all(suite: &Suite) -> Result<Vec<(Entry, Loaded)>> {
    suite.catalogue()?.into_iter().map(|e| suite.load(&e).map(|l| (e, l))).collect()
}
