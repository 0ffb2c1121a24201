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
use crate::scenarios::{self, Entry, Loaded};
use crate::verdict::{self, GuestReport};
use crate::{agent, console, fixtures, tools};
use hidvm_proto::job::{FIXTURE_DIR, MODULE_DIR};
use hidvm_proto::{Job, JobMode, JOB_PATH};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--kernel-src`; else HIDVM_KERNEL_SRC; else the Debian tarball.
    pub kernel_src: Option<PathBuf>,
    /// Print kernel build progress.
    pub verbose: bool,
}

pub struct Suite {
    pub repo: Repo,
    pub cache: PathBuf,
    /// Cells this run covers.
    pub cells: Vec<KernelCell>,
    /// Every defined cell.
    pub all_cells: Vec<KernelCell>,
    pub allow: AllowList,
    pub opts: Options,
    /// The kernel tree, resolved once per command: a tree edited during a
    /// `vm-test` must not put two different kernels into one matrix.
    pub source_once: std::sync::OnceLock<KernelSource>,
}

impl Suite {
    /// The cells run by default, or `HIDVM_CELLS=gcc,llvm-debug` (CI runs
    /// one per job; flavours such as the debug cells run only when named).
    /// `all_cells` keeps every definition for explicit `--cell` choices.
    pub fn new(opts: Options) -> Result<Suite> {
        let repo = Repo::locate();
        let all_cells = cell::load(&repo.cells_file())?;
        let allow = AllowList::load(&repo.root.join("tests/allowlist.toml"))?;
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
        Ok(Suite { repo, cache: cache_root(), cells, all_cells, allow, opts, source_once: Default::default() })
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

    /// Every catalogue test on `cells` (names), in catalogue order; with
    /// `filter`, only tests whose name contains it.
    pub fn tests(&self, cells: &[String], filter: Option<&str>) -> Result<Vec<(Entry, String)>> {
        let mut out = Vec::new();
        for entry in self.catalogue()? {
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

    pub fn run(&self, cell_name: &str, entry: &Entry) -> Result<RunReport> {
        let Loaded { scenario, devices } = scenarios::load(&self.repo, entry)?;
        let cell = cell::find(&self.all_cells, cell_name)?.clone();
        let qemu = tools::require(&tools::QEMU)?;
        let source = self.source()?;
        let kernel = self.kernel(&cell, &source)?;
        let detectors = kernel.detectors()?;
        let names: Vec<&str> = scenario.fixtures().into_iter().collect();
        let objects = fixtures::compile(&self.repo, &self.cache, &kernel, &names)?;
        let agent_bin = agent::ensure(&self.repo)?;
        let agent = std::fs::read(&agent_bin).map_err(Error::io(format!("reading {}", agent_bin.display())))?;

        let run_dir =
            new_run_dir(&self.repo.runs_dir().join(&cell.name).join(test_dir_name(&entry.test_name(&cell.name))))?;
        let probe = self.accelerator(&qemu, &kernel, &agent, &run_dir)?;

        let mut fs = Initramfs::with_agent(&agent);
        let mut guest_fixtures = BTreeMap::new();
        for (name, obj) in &objects {
            let guest = format!("{FIXTURE_DIR}/{name}.bpf.o");
            fs.add_host_file(&guest, 0o644, obj).map_err(Error::io(format!("reading {}", obj.display())))?;
            guest_fixtures.insert(name.clone(), guest);
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
            mode: JobMode::Scenario { scenario: scenario.clone(), devices, fixtures: guest_fixtures },
        };
        fs.file(JOB_PATH, 0o644, serde_json::to_vec_pretty(&job).expect("job serializes"));

        let booted = boot::boot(&qemu, &kernel.boot_image, &fs, probe.accel, deadline, &run_dir)?;
        let guest = GuestReport::parse(&booted.results_text);
        let (splats, allowed) = self.allow.filter(&cell.name, console::find_splats(&booted.console_text));
        let ctx = verdict::RunContext { cell: &cell, scenario: &scenario, nonce: &nonce, detectors };
        let judgement = verdict::judge(&ctx, &booted.outcome, &guest, &booted.console_text, &splats);
        let report = RunReport {
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

    /// KVM only if a timed probe boot under KVM answers (once per host boot).
    fn accelerator(&self, qemu: &Path, kernel: &BuiltKernel, agent: &[u8], run_dir: &Path) -> Result<ProbeRecord> {
        let qemu_version = tools::version_line(&qemu.display().to_string(), &["--version"])?;
        ProbeStore::new(&self.cache).select(&qemu_version, || {
            boot::probe_kvm(qemu, &kernel.boot_image, agent, &kernel.cell.name, &run_dir.join("kvm-probe"))
        })
    }
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

/// Load every catalogue entry up front (CLI use): the first malformed file
/// stops the run before anything boots.
pub fn load_all(suite: &Suite) -> Result<Vec<(Entry, Loaded)>> {
    suite.catalogue()?.into_iter().map(|e| scenarios::load(&suite.repo, &e).map(|l| (e, l))).collect()
}
