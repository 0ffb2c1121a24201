//! One scenario on one kernel cell, end to end: kernel (cached), fixtures,
//! agent, initramfs, accelerator, VM, verdict.
use crate::cell::{self, KernelCell};
use crate::error::{Error, Result};
use crate::initramfs::Initramfs;
use crate::kbuild::{BuiltKernel, KernelBuilder};
use crate::kernel_src::KernelSource;
use crate::layout::{cache_root, write_atomic, Repo};
use crate::qemu::accel::{self, Accel, ProbeRecord};
use crate::qemu::feature::{
    Console, ExitOnReboot, Initramfs as InitrdFeature, Kernel, MicroVm, PanicEndsVm, QmpMonitor, ResultPort,
};
use crate::qemu::{Feature, Vm, VmOutcome};
use crate::scenarios::{self, Entry};
use crate::verdict::{self, GuestReport, Verdict};
use crate::allowlist::AllowList;
use crate::{agent, console, fixtures, tools};
use hidvm_proto::job::FIXTURE_DIR;
use hidvm_proto::{GuestMsg, Job, JobMode, Scenario, JOB_PATH};
use serde::Serialize;
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

/// Everything a failing test needs to explain itself.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub test: String,
    pub cell: String,
    pub scenario: String,
    pub summary: String,
    #[serde(serialize_with = "verdict_text")]
    pub verdict: Verdict,
    /// Splats excused by the allow-list: (entry index, headline).
    pub allowed: Vec<(usize, String)>,
    pub accel: Accel,
    pub accel_reason: String,
    pub vm_seconds: f64,
    pub run_dir: PathBuf,
    #[serde(skip)]
    pub guest: GuestReport,
    #[serde(skip)]
    pub console_tail: Vec<String>,
    /// The first kernel report (splat) not excused by the allow-list: its
    /// headline and the lines after it.
    #[serde(skip)]
    pub splat: Vec<String>,
}

fn verdict_text<S: serde::Serializer>(v: &Verdict, s: S) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Verdict::Pass => s.serialize_str("pass"),
        Verdict::Fail { reason, .. } => s.serialize_str(&format!("fail: {}: {reason}", v.token())),
    }
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

    /// Every catalogue test on `cells` (names), in catalogue order; with
    /// `filter`, only tests whose name contains it.
    pub fn tests(&self, cells: &[String], filter: Option<&str>) -> Vec<(Entry, String)> {
        let mut out = Vec::new();
        for entry in scenarios::catalogue(&self.repo) {
            for cell in cells {
                if entry.runs_on(cell) && filter.is_none_or(|f| entry.test_name(cell).contains(f)) {
                    out.push((entry.clone(), cell.clone()));
                }
            }
        }
        out
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
        let scenario = scenarios::load(&self.repo, entry)?;
        let cell = cell::find(&self.all_cells, cell_name)?.clone();
        let qemu = tools::require(&tools::QEMU)?;
        let source = self.source()?;
        let kernel = self.kernel(&cell, &source)?;
        let names: Vec<&str> = scenario.fixtures().into_iter().collect();
        let objects = fixtures::compile(&self.repo, &self.cache, &kernel, &names)?;
        let agent_bin = agent::ensure(&self.repo)?;
        let agent = std::fs::read(&agent_bin).map_err(Error::io(format!("reading {}", agent_bin.display())))?;

        let run_dir = new_run_dir(&self.repo.runs_dir().join(&cell.name).join(test_dir_name(&entry.test_name(&cell.name))))?;

        let probe = self.accelerator(&qemu, &kernel, &agent, &run_dir)?;

        let mut fs = Initramfs::with_agent(&agent);
        for (name, obj) in &objects {
            fs.add_host_file(&format!("{FIXTURE_DIR}/{name}.bpf.o"), 0o644, obj)
                .map_err(Error::io(format!("reading {}", obj.display())))?;
        }
        let deadline = vm_deadline(probe.accel, scenario.timeout_s);
        let nonce = nonce();
        let job = Job {
            cell: cell.name.clone(),
            nonce: nonce.clone(),
            deadline_ms: deadline.as_millis() as u64,
            mode: JobMode::Scenario { scenario: scenario.clone() },
        };
        fs.file(JOB_PATH, 0o644, serde_json::to_vec_pretty(&job).expect("job serializes"));

        let (outcome, guest, console_text) = boot(&qemu, &kernel, &fs, probe.accel, deadline, &run_dir)?;
        let ctx = verdict::RunContext { cell: &cell, scenario: &scenario, nonce: &nonce };
        let judgement = verdict::judge(&ctx, &outcome, &guest, &console_text, &self.allow);
        let report = RunReport {
            test: entry.test_name(&cell.name),
            cell: cell.name.clone(),
            scenario: scenario.name.clone(),
            summary: scenario.summary.clone(),
            verdict: judgement.verdict,
            allowed: judgement.allowed,
            accel: probe.accel,
            accel_reason: probe.reason,
            vm_seconds: outcome.elapsed.as_secs_f64(),
            run_dir: run_dir.clone(),
            guest,
            console_tail: console::tail(&console_text, 40),
            splat: judgement.splat,
        };
        let _ = write_atomic(&run_dir.join("report.json"), serde_json::to_string_pretty(&report).unwrap_or_default().as_bytes());
        Ok(report)
    }

    /// KVM only if a timed probe boot under KVM answers (once per host boot).
    fn accelerator(&self, qemu: &Path, kernel: &BuiltKernel, agent: &[u8], run_dir: &Path) -> Result<ProbeRecord> {
        let qemu_version = tools::version_line(&qemu.display().to_string(), &["--version"])?;
        accel::select(&self.cache, &qemu_version, || {
            let failure = |reason: String, kvm_at_fault: bool| accel::ProbeFailure { reason, kvm_at_fault };
            let dir = run_dir.join("kvm-probe");
            std::fs::create_dir_all(&dir).map_err(|e| failure(e.to_string(), false))?;
            let mut fs = Initramfs::with_agent(agent);
            let job = Job {
                cell: kernel.cell.name.clone(),
                nonce: nonce(),
                deadline_ms: accel::PROBE_DEADLINE.as_millis() as u64,
                mode: JobMode::Probe,
            };
            fs.file(JOB_PATH, 0o644, serde_json::to_vec(&job).expect("job serializes"));
            let (outcome, guest, console) =
                boot(qemu, kernel, &fs, Accel::Kvm, accel::PROBE_DEADLINE, &dir).map_err(|e| failure(e.to_string(), false))?;
            let qemu_said = crate::error::one_line(&outcome.qemu_output, 2);
            match guest.done {
                Some((true, _)) => Ok(()),
                // QEMU blaming KVM, or a guest that never printed a line
                // (hung in firmware), is KVM's fault: remember it. Anything
                // else may be the kernel's: use TCG now, probe again later.
                _ if qemu_said.to_lowercase().contains("kvm") => Err(failure(format!("QEMU failed under KVM: {qemu_said}"), true)),
                _ if console.trim().is_empty() => Err(failure(
                    format!("no console output within {} s under KVM", accel::PROBE_DEADLINE.as_secs()),
                    true,
                )),
                _ => Err(failure(format!("the probe guest did not answer under KVM ({qemu_said})"), false)),
            }
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

/// A test's artifact directory name (`selftest.gcc.x` for `selftest::gcc::x`);
/// it appears in the VM's QEMU command line through the run directory.
pub fn test_dir_name(test: &str) -> String {
    test.replace("::", ".")
}

/// Runs kept per test (older ones are removed).
const KEEP_RUNS: usize = 5;

/// `<test dir>/<time>-<pid>-<n>/`, plus a `latest` symlink: concurrent
/// runs of one test never share files, and the newest is easy to find.
fn new_run_dir(test_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(test_dir).map_err(Error::io(format!("creating {}; is the target directory writable?", test_dir.display())))?;
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let name = format!("{}-{:09}-{}", t.as_secs(), t.subsec_nanos(), std::process::id());
    let dir = test_dir.join(&name);
    std::fs::create_dir(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let tmp_link = test_dir.join(format!(".latest-{name}"));
    if std::os::unix::fs::symlink(&name, &tmp_link).is_ok() {
        let _ = std::fs::rename(&tmp_link, test_dir.join("latest"));
    }
    let mut runs: Vec<PathBuf> = std::fs::read_dir(test_dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_dir() && !p.is_symlink()).collect())
        .unwrap_or_default();
    runs.sort();
    if runs.len() > KEEP_RUNS {
        for old in &runs[..runs.len() - KEEP_RUNS] {
            let _ = std::fs::remove_dir_all(old);
        }
    }
    Ok(dir)
}

/// `HIDVM_VM_TIMEOUT` seconds; else the scenario's own `timeout_s`; else
/// scaled to the accelerator (24 s KVM, 60 s TCG).
pub fn vm_deadline(accel: Accel, scenario_timeout_s: Option<u64>) -> Duration {
    if let Some(s) = std::env::var("HIDVM_VM_TIMEOUT").ok().and_then(|s| s.parse().ok()) {
        return Duration::from_secs(s);
    }
    Duration::from_secs(scenario_timeout_s.unwrap_or(20 + 4 * accel.slowness() as u64))
}

/// Boot `kernel` with initramfs `fs`; console and results land in `dir`.
fn boot(
    qemu: &Path,
    kernel: &BuiltKernel,
    fs: &Initramfs,
    accel: Accel,
    deadline: Duration,
    dir: &Path,
) -> Result<(VmOutcome, GuestReport, String)> {
    let initrd = dir.join("initramfs.cpio");
    let console_log = dir.join("console.log");
    let results = dir.join("results.jsonl");
    // Unix socket paths are limited to 108 bytes: keep them in /tmp.
    let sockets = tempfile::Builder::new().prefix("hidvm-").tempdir_in("/tmp").map_err(Error::io("socket directory"))?;
    let console_socket = sockets.path().join("console");
    let qmp_socket = sockets.path().join("qmp");
    let bytes = fs.to_bytes().map_err(Error::io("assembling the initramfs"))?;
    std::fs::write(&initrd, bytes).map_err(Error::io(format!("writing {}", initrd.display())))?;
    let features: Vec<Box<dyn Feature>> = vec![
        Box::new(MicroVm { memory_mib: 512, cpus: 2 }),
        Box::new(accel),
        Box::new(Kernel { image: kernel.boot_image.clone() }),
        Box::new(InitrdFeature { cpio: initrd.clone() }),
        Box::new(Console { socket: console_socket.clone() }),
        Box::new(QmpMonitor { socket: qmp_socket.clone() }),
        Box::new(ResultPort { file: results.clone() }),
        Box::new(ExitOnReboot),
        Box::new(PanicEndsVm),
    ];
    let vm = Vm {
        qemu: qemu.to_path_buf(),
        features,
        deadline,
        console_socket,
        console_log: console_log.clone(),
        qmp_socket: Some(qmp_socket),
    };
    let _ = std::fs::write(dir.join("qemu-command.txt"), vm.args().join("\n"));
    let outcome = vm.run().map_err(Error::io("running qemu-system-x86_64"))?;
    let results_text = std::fs::read_to_string(&results).unwrap_or_default();
    let console_text = String::from_utf8_lossy(&std::fs::read(&console_log).unwrap_or_default()).into_owned();
    Ok((outcome, GuestReport::parse(&results_text), console_text))
}

impl RunReport {
    /// The step log: what each step expected and saw; on failure the
    /// console tail and where the artifacts are.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let status = match &self.verdict {
            Verdict::Pass => "PASS".to_string(),
            Verdict::Fail { kind, class, reason } => match class {
                Some(c) => format!("FAIL ({}, {c}): {reason}", kind.label()),
                None => format!("FAIL ({}): {reason}", kind.label()),
            },
        };
        out.push_str(&format!("{} [{}, {:.1} s]: {status}\n", self.test, self.accel.name(), self.vm_seconds));
        out.push_str(&format!("  scenario: {}\n", self.summary));
        if let Some((release, version)) = &self.guest.hello {
            out.push_str(&format!("  kernel: {release}: {version}\n"));
        }
        for m in &self.guest.steps {
            if let GuestMsg::Step { index, what, ok, ms, checks, notes } = m {
                out.push_str(&format!("  {} step {index}: {what} ({ms} ms)\n", if *ok { "ok  " } else { "FAIL" }));
                for c in checks {
                    out.push_str(&format!(
                        "        {} {}: expected {}, saw {}\n",
                        if c.ok { "ok  " } else { "FAIL" },
                        c.what,
                        c.expected,
                        c.seen
                    ));
                }
                for n in notes {
                    out.push_str(&format!("        note: {n}\n"));
                }
            }
        }
        if let Some((before, after)) = self.guest.taint {
            out.push_str(&format!(
                "  kernel taint: before {} after {}\n",
                crate::console::taint_letters(before),
                crate::console::taint_letters(after)
            ));
        }
        for (i, line) in &self.allowed {
            out.push_str(&format!("  allowed splat (allow-list entry {}): {line}\n", i + 1));
        }
        if let Some((_, summary)) = &self.guest.done {
            out.push_str(&format!("  guest verdict: {summary}\n"));
        }
        if !self.splat.is_empty() && !self.verdict.passed() {
            out.push_str("  kernel report:\n");
            for l in &self.splat {
                out.push_str(&format!("    | {l}\n"));
            }
        }
        if !self.verdict.passed() {
            out.push_str(&format!(
                "  console tail ({}):\n",
                self.run_dir.join("console.log").display()
            ));
            for l in &self.console_tail {
                out.push_str(&format!("    | {l}\n"));
            }
            out.push_str(&format!("  artifacts: {}\n", self.run_dir.display()));
        }
        out
    }
}

/// Load every catalogue entry up front (CLI use): the first malformed file
/// stops the run before anything boots.
pub fn load_all(repo: &Repo, cells: &[KernelCell]) -> Result<Vec<(Entry, Scenario)>> {
    let mut out = Vec::new();
    for e in scenarios::catalogue(repo) {
        let s = scenarios::load(repo, &e)?;
        if let Some(bad) = s.cells.iter().find(|c| !cells.iter().any(|k| &k.name == *c)) {
            return Err(Error::Scenario {
                file: e.path.clone(),
                message: format!(
                    "field `cells`: unknown cell `{bad}` (cells: {})",
                    cells.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
        out.push((e, s));
    }
    Ok(out)
}
