//! One scenario on one kernel cell, end to end: kernel (cached), fixtures,
//! agent, initramfs, accelerator, VM, verdict. Booting is `qemu::boot`'s,
//! showing the result is `report`'s.
use crate::base::error::{Error, Result};
use crate::base::layout::{cache_root, new_run_dir, test_dir_name, write_atomic, Repo};
use crate::base::tools;
use crate::catalogue::fixtures;
use crate::catalogue::scenarios::{self, Entry, LoadOptions, Loaded};
use crate::judge::allowlist::AllowList;
use crate::judge::console;
use crate::judge::decide::{self, RunContext};
use crate::judge::guest::GuestReport;
use crate::kernel::build::{BuiltKernel, KernelBuilder};
use crate::kernel::cell::{self, KernelCell};
use crate::kernel::source::KernelSource;
use crate::kernel::spec::{self, KernelSpec, Target};
use crate::results::report::RunReport;
use crate::vm::accel::Accel;
use crate::vm::agent;
use crate::vm::initramfs::Initramfs;
use crate::vm::{boot, snapshot};
use hidvm_proto::job::{FIXTURE_DIR, MODULE_DIR};
use hidvm_proto::{GuestFixture, Job, JobMode, JOB_PATH};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--kernel-src`; else HIDVM_KERNEL_SRC; else the kernels of
    /// guest-image/kernels.toml.
    pub kernel_src: Option<PathBuf>,
    /// `--kernel 7.3`: kernels to run on (default: HIDVM_KERNELS, else
    /// those run by default).
    pub kernels: Vec<String>,
    /// `--config-fragment`; else HIDVM_CONFIG_FRAGMENT (comma-separated):
    /// the user's kconfig fragments, merged after hidvm's.
    pub config_fragments: Vec<PathBuf>,
    /// `--patches`; else HIDVM_PATCHES: a series applied to a private copy
    /// of every kernel tree of the run.
    pub patches: Option<PathBuf>,
    /// `--kernel`; else HIDVM_KERNEL: a kernel the user built, booted as is.
    pub prebuilt: Option<PathBuf>,
    /// `--kernel-config`; else HIDVM_KERNEL_CONFIG: its .config.
    pub prebuilt_config: Option<PathBuf>,
    /// Print kernel build progress.
    pub verbose: bool,
    /// `hidvm test --bless`: write what replay steps observe to their
    /// expectation files instead of comparing.
    pub bless: bool,
}

/// One test: a catalogue entry on a target (kernel x cell), or the reason
/// it does not run there.
#[derive(Clone, Debug)]
pub struct TestCase {
    pub entry: Entry,
    pub target: Target,
    /// Listed and reported as skipped, with this reason; never run.
    pub skip: Option<String>,
}

impl TestCase {
    pub fn name(&self) -> String {
        self.entry.test_name(&self.target.label())
    }
}

pub struct Suite {
    pub repo: Repo,
    pub cache: PathBuf,
    /// Kernels this run covers.
    pub kernels: Vec<KernelSpec>,
    /// Every defined kernel (or only the user's tree).
    pub all_kernels: Vec<KernelSpec>,
    /// Cells this run covers.
    pub cells: Vec<KernelCell>,
    /// Every defined cell.
    pub all_cells: Vec<KernelCell>,
    /// The cells of guest-image/cells.toml, which scenario files' `cells`
    /// name (with a prebuilt kernel, `all_cells` is only its own).
    pub defined_cells: Vec<KernelCell>,
    pub allow: AllowList,
    pub known: crate::judge::known::KnownFailures,
    pub opts: Options,
    /// Each kernel's tree, resolved once per command: a tree edited during
    /// a `vm-test` must not put two different kernels into one matrix.
    sources: std::sync::Mutex<BTreeMap<String, KernelSource>>,
    /// The patch series applied to every tree (`--patches`), read up front.
    pub series: Option<crate::kernel::patches::Series>,
    /// Expectation files blessed in this command: file -> (target, content),
    /// so two targets that disagree are caught instead of overwriting.
    pub blessed: std::sync::Mutex<BTreeMap<PathBuf, (String, String)>>,
}

/// `HIDVM_CELLS=gcc,llvm-debug` style selection: every name must exist.
fn env_selection(var: &str) -> Option<Vec<String>> {
    std::env::var(var)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.split(',').map(|w| w.trim().to_string()).collect())
}

impl Suite {
    /// The kernels and cells run by default, or those named by
    /// `--kernel`/HIDVM_KERNELS and HIDVM_CELLS (CI runs one target per
    /// job; flavours such as the debug cells run only when named).
    /// `all_cells` keeps every definition for explicit `--cell` choices.
    pub fn new(opts: Options) -> Result<Suite> {
        let repo = Repo::locate();
        let all_cells = cell::load(&repo.cells_file())?;
        let allow = AllowList::load(&repo.root.join("tests/allowlist.toml"))?;
        let known = crate::judge::known::KnownFailures::load(&repo.root.join("tests/known-failures.toml"))?;
        let mut cells = all_cells.clone();
        match env_selection("HIDVM_CELLS") {
            Some(wanted) => {
                for w in &wanted {
                    cell::find(&cells, w).map_err(|e| Error::Other(format!("HIDVM_CELLS: {e}")))?;
                }
                cells.retain(|c| wanted.contains(&c.name));
            }
            None => cells.retain(|c| c.default_run),
        }
        let mut opts = opts;
        if opts.config_fragments.is_empty() {
            opts.config_fragments =
                env_selection("HIDVM_CONFIG_FRAGMENT").unwrap_or_default().into_iter().map(PathBuf::from).collect();
        }
        if opts.patches.is_none() {
            opts.patches = std::env::var_os("HIDVM_PATCHES").filter(|v| !v.is_empty()).map(PathBuf::from);
        }
        let env_path = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from);
        opts.prebuilt = opts.prebuilt.take().or_else(|| env_path(crate::kernel::image::ENV_VAR));
        opts.prebuilt_config = opts.prebuilt_config.take().or_else(|| env_path(crate::kernel::image::CONFIG_ENV_VAR));
        let user_tree = KernelSource::user_override(opts.kernel_src.as_deref());
        let image = match &opts.prebuilt {
            Some(p) => Some(crate::kernel::image::PrebuiltImage::locate(p, opts.prebuilt_config.as_deref())?),
            None => None,
        };
        let all_kernels = match (&image, &user_tree) {
            (Some(image), tree) => vec![KernelSpec::prebuilt(image.clone(), tree.as_deref())],
            (None, Some(dir)) => vec![KernelSpec::user_tree(dir)],
            (None, None) => spec::load(&repo.kernels_file())?,
        };
        // A prebuilt kernel is its own cell, named after its compiler.
        let defined_cells = all_cells.clone();
        let (all_cells, cells) = match &image {
            Some(image) => (vec![image.cell()], vec![image.cell()]),
            None => (all_cells, cells),
        };
        let chosen = if !opts.kernels.is_empty() {
            Some(("--kernels", opts.kernels.clone()))
        } else {
            env_selection("HIDVM_KERNELS").map(|k| ("HIDVM_KERNELS", k))
        };
        let mut run_kernels = all_kernels.clone();
        match chosen {
            // With a tree of your own there is one kernel; naming a Debian
            // kernel as well is a contradiction, said out loud.
            Some((from, wanted)) => {
                for w in &wanted {
                    spec::find(&all_kernels, w).map_err(|e| {
                        let hint = if user_tree.is_some() {
                            " (with --kernel-src/HIDVM_KERNEL_SRC the only kernel is `tree`)"
                        } else {
                            ""
                        };
                        Error::Other(format!("{from}: {e}{hint}"))
                    })?;
                }
                run_kernels.retain(|k| wanted.contains(&k.name));
            }
            None => run_kernels.retain(|k| k.default_run),
        }
        let series = opts.patches.as_deref().map(crate::kernel::patches::Series::load).transpose()?;
        Ok(Suite {
            series,
            repo,
            cache: cache_root(),
            kernels: run_kernels,
            all_kernels,
            cells,
            all_cells,
            defined_cells,
            allow,
            known,
            opts,
            sources: Default::default(),
            blessed: Default::default(),
        })
    }

    /// The same run against another cache directory (cold-build benches).
    pub fn with_cache(&self, cache: PathBuf, verbose: bool) -> Suite {
        Suite {
            repo: self.repo.clone(),
            cache,
            kernels: self.kernels.clone(),
            all_kernels: self.all_kernels.clone(),
            cells: self.cells.clone(),
            all_cells: self.all_cells.clone(),
            defined_cells: self.defined_cells.clone(),
            allow: self.allow.clone(),
            known: self.known.clone(),
            opts: Options { verbose, ..self.opts.clone() },
            sources: Default::default(),
            series: self.series.clone(),
            blessed: Default::default(),
        }
    }

    /// A kernel's tree: unpacked (or fetched) on first use, then the same
    /// for the rest of the command.
    pub fn source(&self, kernel: &str) -> Result<KernelSource> {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sources.get(kernel) {
            return Ok(s.clone());
        }
        let spec = spec::find(&self.all_kernels, kernel)?;
        let mut s = match &spec.image {
            // Headers and kernel: programs for a prebuilt image come from
            // the tree given with it, else from the first kernel's tree.
            Some(image) => {
                let mut s = match &spec.tree {
                    Some(_) => KernelSource::for_spec(spec, &self.cache)?,
                    None => KernelSource::for_spec(&spec::load(&self.repo.kernels_file())?[0], &self.cache)?,
                };
                s.version = image.version.clone();
                s
            }
            None => KernelSource::for_spec(spec, &self.cache)?,
        };
        if let Some(series) = &self.series {
            s = s.with_patches(series, &self.cache).map_err(|e| Error::Other(format!("kernel {kernel}: {e}")))?;
        }
        sources.insert(kernel.to_string(), s.clone());
        Ok(s)
    }

    pub fn spec(&self, kernel: &str) -> Result<&KernelSpec> {
        spec::find(&self.all_kernels, kernel)
    }

    /// The key `target`'s kernel is (or would be) cached under.
    pub fn kernel_cache_key(&self, target: &Target) -> Result<String> {
        let cell = cell::find(&self.all_cells, &target.cell)?;
        let source = self.source(&target.kernel)?;
        KernelBuilder::new(&self.repo, &self.cache, &source)
            .with_user_fragments(&self.opts.config_fragments)?
            .cache_key(cell)
    }

    pub fn kernel(&self, target: &Target) -> Result<BuiltKernel> {
        let cell = cell::find(&self.all_cells, &target.cell)?;
        let source = self.source(&target.kernel)?;
        if let Some(image) = &self.spec(&target.kernel)?.image {
            return crate::kernel::prebuilt::prepare(&self.repo, &self.cache, image, &source.root);
        }
        let mut builder =
            KernelBuilder::new(&self.repo, &self.cache, &source).with_user_fragments(&self.opts.config_fragments)?;
        builder.verbose = self.opts.verbose;
        builder.ensure(cell)
    }

    /// The repository's catalogue (scenarios and self-tests).
    pub fn catalogue(&self) -> Result<Vec<Entry>> {
        scenarios::catalogue(&self.repo, &self.defined_cells)
    }

    /// `entry` loaded for `kernel` (whose tree `kernel:` programs come from;
    /// unpacked or fetched on first use).
    pub fn load(&self, entry: &Entry, kernel: &str) -> Result<Loaded> {
        let tree = self.source(kernel)?.root;
        scenarios::load(&self.repo, entry, LoadOptions { kernel_tree: Some(&tree), bless: self.opts.bless })
    }

    /// Kernels x cells, kernel-major (`6.12-gcc`, `6.12-llvm`, `7.3-gcc`, ...).
    pub fn targets(&self, kernels: &[String], cells: &[String]) -> Vec<Target> {
        kernels.iter().flat_map(|k| cells.iter().map(move |c| Target::new(k, c))).collect()
    }

    /// The default targets: the run's kernels x the run's cells.
    pub fn default_targets(&self) -> Vec<Target> {
        let k: Vec<String> = self.kernels.iter().map(|k| k.name.clone()).collect();
        let c: Vec<String> = self.cells.iter().map(|c| c.name.clone()).collect();
        self.targets(&k, &c)
    }

    /// Every catalogue test on `targets`, in catalogue order; with
    /// `filter`, only tests whose name contains it.
    pub fn tests(&self, targets: &[Target], filter: Option<&str>) -> Result<Vec<TestCase>> {
        self.tests_of(self.catalogue()?, targets, filter)
    }

    /// `entries` x `targets`, in order, filtered by name, each with its
    /// skip reason (if any).
    pub fn tests_of(&self, entries: Vec<Entry>, targets: &[Target], filter: Option<&str>) -> Result<Vec<TestCase>> {
        let mut out = Vec::new();
        for entry in entries {
            for target in targets {
                if !entry.runs_on(&target.cell) {
                    continue;
                }
                if filter.is_some_and(|f| !entry.test_name(&target.label()).contains(f)) {
                    continue;
                }
                let skip = entry.skip_reason(self.spec(&target.kernel)?);
                out.push(TestCase { entry: entry.clone(), target: target.clone(), skip });
            }
        }
        Ok(out)
    }

    /// Run every test of `work` once, `jobs` VMs at a time; `finished` sees
    /// each result as it comes. Results are returned in `work` order.
    /// Skipped cases are the caller's to report; they must not be here.
    pub fn run_parallel(
        &self,
        work: &[TestCase],
        jobs: usize,
        finished: impl Fn(&TestCase, &Result<RunReport>) + Sync,
    ) -> Vec<Result<RunReport>> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..jobs.max(1) {
                s.spawn(|| loop {
                    let idx = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(case) = work.get(idx) else { break };
                    let r = self.run(&case.target, &case.entry);
                    finished(case, &r);
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
    pub fn prepare(&self, target: &Target, entry: &Entry) -> Result<Prepared> {
        let loaded = self.load(entry, &target.kernel)?;
        let cell = cell::find(&self.all_cells, &target.cell)?.clone();
        let source = self.source(&target.kernel)?;
        let kernel = self.kernel(target)?;
        let ctx = fixtures::CompileContext {
            repo: &self.repo,
            cache: &self.cache,
            kernel: &kernel,
            kernel_tree: &source.root,
            bpf_include: &loaded.bpf_include,
        };
        let objects = fixtures::compile(&ctx, &loaded.fixtures)?;
        check_device_tables(entry, &loaded.scenario, &loaded.devices, &objects)?;
        Ok(Prepared { loaded, cell, kernel, objects, source })
    }

    pub fn run(&self, target: &Target, entry: &Entry) -> Result<RunReport> {
        let Prepared { loaded, cell, kernel, objects, source } = self.prepare(target, entry)?;
        let label = target.label();
        let Loaded { scenario, devices, replays, .. } = loaded;
        let qemu = tools::require(&tools::QEMU)?;
        let detectors = kernel.detectors()?;
        let agent_bin = agent::ensure(&self.repo)?;
        let agent = std::fs::read(&agent_bin).map_err(Error::io(format!("reading {}", agent_bin.display())))?;

        let run_dir = new_run_dir(&self.repo.runs_dir().join(&label).join(test_dir_name(&entry.test_name(&label))))?;
        let probe =
            crate::vm::boot::accelerator(&self.cache, &qemu, &kernel.boot_image, &kernel.cell.name, &agent, &run_dir)?;

        // The cell's modules are the same for every test: in the initramfs
        // (and so in the snapshot). The fixtures and the job are this
        // test's own: in the initramfs of a cold boot, delivered to a
        // restored guest.
        let mut fs = Initramfs::with_agent(&agent);
        for m in &kernel.modules {
            let name = m.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            fs.add_host_file(&format!("{MODULE_DIR}/{name}"), 0o644, m)
                .map_err(Error::io(format!("reading {}", m.display())))?;
        }
        let template_fs = fs.clone();
        let mut own_files: Vec<(String, u32, Vec<u8>)> = Vec::new();
        let mut guest_fixtures = BTreeMap::new();
        for (name, c) in &objects {
            let guest = format!("{FIXTURE_DIR}/{}", c.guest_name);
            let bytes = std::fs::read(&c.object).map_err(Error::io(format!("reading {}", c.object.display())))?;
            own_files.push((guest.clone(), 0o644, bytes));
            guest_fixtures.insert(name.clone(), GuestFixture { path: guest, config: c.config.clone() });
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
        own_files.push((JOB_PATH.into(), 0o644, serde_json::to_vec_pretty(&job).expect("job serializes")));

        let (booted, started_from) =
            self.boot_test(&qemu, &kernel.boot_image, template_fs, &own_files, probe.accel, deadline, &run_dir)?;
        let guest = GuestReport::parse(&booted.results_text);
        if let Some(trace) = &guest.trace {
            let _ = std::fs::write(run_dir.join("trace.txt"), trace.join("\n") + "\n");
        }
        let (splats, allowed) = self.allow.filter(&cell.name, console::find_splats(&booted.console_text));
        let ctx = RunContext { cell: &cell, scenario: &scenario, nonce: &nonce, detectors };
        let mut judgement = decide::judge(&ctx, &booted.outcome, &guest, &booted.console_text, &splats);
        if self.opts.bless && judgement.verdict.passed() {
            if let Err(e) = self.bless(&label, &replays, &guest) {
                judgement.verdict = crate::judge::verdict::Verdict::Fail {
                    kind: crate::judge::verdict::FailureKind::Check,
                    class: None,
                    reason: e.to_string(),
                };
            }
        }
        let known = self.known.classify(&entry.row(), &cell.name, &source.version, &judgement.verdict);
        let report = RunReport {
            known,
            test: entry.test_name(&label),
            kernel: target.kernel.clone(),
            kernel_version: source.version.clone(),
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

    /// Start the test's VM: restored from the kernel's snapshot (made on
    /// first use) unless HIDVM_SNAPSHOT=off, cold otherwise, and cold when a
    /// restore fails (saying so in the report).
    #[allow(clippy::too_many_arguments)]
    fn boot_test(
        &self,
        qemu: &Path,
        image: &Path,
        mut fs: Initramfs,
        own_files: &[(String, u32, Vec<u8>)],
        accel: Accel,
        deadline: std::time::Duration,
        run_dir: &Path,
    ) -> Result<(boot::BootResult, String)> {
        let mut from = "cold boot".to_string();
        if snapshot::enabled() {
            let snap = boot::snapshot_for(&self.cache, qemu, image, &fs, accel)?;
            match boot::boot_restored(qemu, image, &snap, own_files, accel, deadline, run_dir)? {
                Ok(booted) => return Ok((booted, format!("snapshot {}", snap.key))),
                Err(why) => {
                    crate::base::output::note(format!(
                        "{}: restoring snapshot {} failed ({why}); booting cold",
                        run_dir.display(),
                        snap.key
                    ));
                    from = format!("cold boot (restoring snapshot {} failed: {why})", snap.key);
                }
            }
        }
        for (path, mode, data) in own_files {
            fs.file(path, *mode, data.clone());
        }
        Ok((boot::boot(qemu, image, &fs, accel, deadline, run_dir)?, from))
    }

    /// Write what each replay step observed to its expectation files. Two
    /// targets that observed different output must not overwrite each other.
    fn bless(
        &self,
        target: &str,
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
                    "# written by `hidvm test --bless` on {target}: one line per replayed report; review before committing\n{}\n",
                    lines.join("\n")
                );
                let body = lines.join("\n");
                let mut blessed = self.blessed.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((other, seen)) = blessed.get(file) {
                    if *seen != body {
                        return Err(Error::Other(format!(
                            "{other} and {target} observed different output for {}: not blessed (a compiler- or kernel-dependent difference; look at both runs)",
                            file.display()
                        )));
                    }
                    continue;
                }
                write_atomic(file, text.as_bytes()).map_err(Error::io(format!("writing {}", file.display())))?;
                crate::base::output::note(format!(
                    "hidvm: blessed {} ({} lines) from {target}",
                    file.display(),
                    lines.len()
                ));
                blessed.insert(file.clone(), (target.to_string(), body));
            }
        }
        Ok(())
    }
}

/// A test ready to boot (see [`Suite::prepare`]).
pub struct Prepared {
    pub loaded: Loaded,
    pub cell: KernelCell,
    /// Leased: nobody rebuilds it while this lives.
    pub kernel: BuiltKernel,
    pub objects: BTreeMap<String, fixtures::Compiled>,
    pub source: KernelSource,
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

/// Load every catalogue entry on every kernel of the run that does not
/// skip it (CLI use): the first malformed file stops the run before
/// anything boots. Returns how many (entry, kernel) pairs loaded.
pub fn load_all(suite: &Suite) -> Result<usize> {
    let mut n = 0;
    for e in suite.catalogue()? {
        for k in &suite.kernels {
            if e.skip_reason(k).is_none() {
                suite.load(&e, &k.name)?;
                n += 1;
            }
        }
    }
    Ok(n)
}
