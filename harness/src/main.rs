//! `hidvm`: build kernel cells, run scenarios in QEMU, print the matrix.
use clap::{Parser, Subcommand};
use hidvm::base::error::exit;
use hidvm::catalogue::scenarios::{self, Entry};
use hidvm::kernel::spec::Target;
use hidvm::repeat::Summary;
use hidvm::results::matrix::Matrix;
use hidvm::results::report::RunReport;
use hidvm::suite::{self, Options, Suite, TestCase};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hidvm",
    version,
    about = "HID-BPF lifecycle tests on gcc and LLVM kernels in QEMU",
    after_help = "Exit status: 0 all tests passed (or failed as known kernel bugs); 100 a test failed; 1 hidvm could not run (bad input, missing tool, failed build: the message says what to do)."
)]
struct Cli {
    /// Kernel tree to build (>= 6.11) instead of the kernels of
    /// guest-image/kernels.toml; default: HIDVM_KERNEL_SRC. Its tests are
    /// named `tree-<cell>::...`.
    #[arg(long, global = true, value_name = "DIR")]
    kernel_src: Option<PathBuf>,
    /// Kernels to run on, by name (`--kernels 7.3` or `--kernels 6.12,7.3`);
    /// default: HIDVM_KERNELS, else every kernel run by default.
    #[arg(long, global = true, value_name = "NAMES", value_delimiter = ',')]
    kernels: Vec<String>,
    /// A kconfig fragment of your own, merged after hidvm's and checked the
    /// same way (repeatable); default: HIDVM_CONFIG_FRAGMENT (comma-separated).
    #[arg(long = "config-fragment", global = true, value_name = "FILE")]
    config_fragments: Vec<PathBuf>,
    /// A patch series to apply before building: a directory of `*.patch`
    /// (applied in name order) or one mbox (`git format-patch --stdout`);
    /// default: HIDVM_PATCHES.
    #[arg(long, global = true, value_name = "DIR|MBOX")]
    patches: Option<PathBuf>,
    /// A kernel you built, booted as is instead of building one: a
    /// vmlinux, a bzImage or a build (O=) directory, with its .config next
    /// to it; tests are named `prebuilt-<gcc|llvm>::...`. Default: HIDVM_KERNEL.
    #[arg(long = "kernel", global = true, value_name = "PATH")]
    prebuilt: Option<PathBuf>,
    /// The .config of --kernel, if it is not next to the image; default:
    /// HIDVM_KERNEL_CONFIG.
    #[arg(long = "kernel-config", global = true, value_name = "FILE")]
    prebuilt_config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// What `vm-test` and `test` share.
#[derive(clap::Args, Clone)]
struct RunOpts {
    /// Cells to run on (repeatable; default: the default cells, or HIDVM_CELLS).
    #[arg(long = "cell")]
    cells: Vec<String>,
    /// Only tests whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// VMs at once (default: one and a half per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print every test's step log, not only failures.
    #[arg(long)]
    verbose: bool,
    /// Write every test's result (kernel, cell, scenario, verdict, failure
    /// kind and class, time, run directory) to this JSON file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the results as KTAP (the kernel's test-result format) to this file.
    #[arg(long, value_name = "FILE")]
    ktap: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Build (or verify cached) kernels for each kernel x cell, plus the guest agent.
    Build {
        /// Cells to build (default: the default cells, or HIDVM_CELLS).
        #[arg(long = "cell")]
        cells: Vec<String>,
    },
    /// Build what is missing, run every scenario on every kernel x cell, print the matrix.
    VmTest {
        #[command(flatten)]
        run: RunOpts,
        /// Run the whole suite this many times and report flaky tests.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
    },
    /// Run scenario files, or every *.toml in directories, from anywhere, on
    /// the default cells; print the scenario x cell matrix. Paths inside a
    /// scenario (programs, recordings, descriptors) are relative to it.
    Test {
        /// Scenario files or directories.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        run: RunOpts,
        /// Write what replay steps observe into their `evdev_file` /
        /// `hidraw_file` instead of comparing; review the files before
        /// committing them. Refused when CI is set.
        #[arg(long)]
        bless: bool,
    },
    /// Run one test, e.g. `6.12-gcc::mouse_invert_y_close_link`.
    Run { test: String },
    /// List test names (kernel-cell x scenario); skipped tests say why.
    List {
        /// Also print each scenario's summary (or why it is skipped).
        #[arg(long)]
        long: bool,
    },
    /// Validate kernels, cells, fragments, scenarios and fixtures without booting.
    Check {
        /// Do not unpack or fetch kernel trees: `kernel:` programs are not
        /// resolved (a quick lint; the full check resolves them).
        #[arg(long)]
        without_trees: bool,
    },
    /// Build the kernel's own HID selftests (tools/testing/selftests/hid:
    /// hid_bpf, hidraw) for every kernel x cell, run them in the same VMs,
    /// print each KTAP result in a test x target matrix and the cost per test.
    Selftests {
        #[arg(long = "cell")]
        cells: Vec<String>,
        /// Only this program (hid_bpf or hidraw).
        #[arg(long)]
        program: Option<String>,
        /// VMs at once (default: number of cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Merge results files (`--json`, or HIDVM_RESULTS_JSONL lines) of
    /// several runs or CI jobs into one scenario x target matrix, with
    /// compiler- and kernel-dependent rows flagged; exits 100 if a test failed.
    Summary {
        /// Results files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Also append the matrix as Markdown to this file (e.g. $GITHUB_STEP_SUMMARY).
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
    },
    /// Print each target's kernel cache key (`<target> <key>`): what the
    /// kernel build depends on (tree, compiler and pahole versions, cell,
    /// fragments), for naming CI caches.
    CacheKey {
        #[arg(long = "cell")]
        cells: Vec<String>,
    },
    /// Check this machine: packages, kernel sources, KVM and the probe
    /// result, the cache and its free space; print what to fix.
    Doctor,
    /// Boot a kernel with an interactive busybox shell on this terminal
    /// (bpffs and debugfs mounted, the programs in /hidvm/fixtures, the
    /// named scenario's devices created); `exit` ends the VM.
    Shell {
        /// The cell (default: the first of the run's cells).
        #[arg(long)]
        cell: Option<String>,
        /// Create this scenario's devices and put its programs in (a name
        /// from `hidvm list`, without the target prefix).
        #[arg(long)]
        scenario: Option<String>,
    },
    /// Print the Debian packages hidvm needs (for setup scripts).
    Packages,
    /// Fetch (or refresh) the kernel sources of this run's kernels that
    /// come from other Debian suites, into the cache; check the installed
    /// ones. Part of `make setup`; runs then need no network.
    Fetch,
    /// Show the accelerator this host uses (the KVM probe result,
    /// remembered until the host reboots).
    Accel {
        /// Forget the remembered probe result; the next run probes KVM again.
        #[arg(long)]
        reprobe: bool,
    },
    /// Robustness numbers: splat classes detected/provoked, QEMU left after
    /// forced stops, kernel builds under concurrent requesters.
    Robustness {
        /// Concurrent `hidvm build` requesters on an empty cache (one cold build).
        #[arg(long, default_value_t = 0)]
        builds: usize,
    },
    /// Measure builds, VM boots and the warm suite; prints numbers.
    Bench {
        /// Also time cold kernel builds (each cell into an empty cache).
        #[arg(long)]
        cold: bool,
        /// Repetitions of the single-VM timings.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

fn main() -> ExitCode {
    // `hidvm list | head` should end quietly, like any Unix tool.
    // SAFETY: restoring the default disposition before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    hidvm::base::output::init();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::COULD_NOT_RUN)
        }
    }
}

fn real_main(cli: Cli) -> hidvm::Result<ExitCode> {
    let bless = matches!(cli.command, Command::Test { bless: true, .. });
    if bless && std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
        return Err(hidvm::Error::Other(
            "refusing --bless with CI set: expected output is written by a person and reviewed, never by CI on its own"
                .into(),
        ));
    }
    let suite = Suite::new(Options {
        kernel_src: cli.kernel_src.clone(),
        kernels: cli.kernels.clone(),
        config_fragments: cli.config_fragments.clone(),
        patches: cli.patches.clone(),
        prebuilt: cli.prebuilt.clone(),
        prebuilt_config: cli.prebuilt_config.clone(),
        verbose: true,
        bless,
    })?;
    match cli.command {
        Command::Packages => {
            println!("{}", hidvm::kernel::packages::all_packages().join(" "));
            Ok(ExitCode::SUCCESS)
        }
        Command::Selftests { cells, program, jobs } => {
            let targets = selected_targets(&suite, &cells)?;
            let ok = hidvm::kselftest::run_all(
                &suite,
                &targets,
                program.as_deref(),
                jobs.unwrap_or_else(hidvm::base::host::cores),
            )?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(exit::TESTS_FAILED) })
        }
        Command::Summary { files, markdown } => {
            let parts =
                files.iter().map(|f| hidvm::results::records::Results::read(f)).collect::<hidvm::Result<Vec<_>>>()?;
            let merged = hidvm::results::summary::merge(parts)?;
            let matrix = hidvm::results::summary::matrix(&merged);
            println!("{}", matrix.render());
            if let Some(md) = markdown {
                use std::io::Write;
                let text = format!("## hidvm: {} tests\n\n{}\n", merged.records.len(), matrix.render_markdown());
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&md)
                    .and_then(|mut f| f.write_all(text.as_bytes()))
                    .map_err(hidvm::Error::io(format!("writing {}", md.display())))?;
            }
            Ok(if matrix.all_passed() { ExitCode::SUCCESS } else { ExitCode::from(exit::TESTS_FAILED) })
        }
        Command::CacheKey { cells } => {
            for t in selected_targets(&suite, &cells)? {
                println!("{t} {}", &suite.kernel_cache_key(&t)?[..20]);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Shell { cell, scenario } => {
            let kernel = suite.kernels.first().ok_or_else(|| hidvm::Error::Other("no kernel selected".into()))?;
            let cell = match cell {
                Some(c) => hidvm::kernel::cell::find(&suite.all_cells, &c)?.name.clone(),
                None => suite.cells.first().ok_or_else(|| hidvm::Error::Other("no cell selected".into()))?.name.clone(),
            };
            let code = hidvm::shell::run(&suite, &Target::new(&kernel.name, &cell), scenario.as_deref(), None)?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Command::Doctor => {
            let fine = hidvm::doctor::report(&hidvm::doctor::check(&suite));
            Ok(if fine { ExitCode::SUCCESS } else { ExitCode::from(exit::COULD_NOT_RUN) })
        }
        Command::Fetch => {
            for k in &suite.kernels {
                let Some(package) = k.package.as_deref() else {
                    println!("kernel {}: {} (nothing to fetch)", k.name, k.summary);
                    continue;
                };
                match &k.fetch_from {
                    Some(from) => {
                        let (tarball, version) = hidvm::kernel::debian::fetch_source(&suite.cache, package, from)?;
                        println!("kernel {}: {package} {version} from Debian {from}: {}", k.name, tarball.display());
                    }
                    None => {
                        let tarball = PathBuf::from(format!("/usr/src/{package}.tar.xz"));
                        if !tarball.exists() {
                            return Err(hidvm::Error::Other(format!(
                                "kernel {}: {} is missing: install it with `sudo apt-get install {package}` (or `make setup`)",
                                k.name,
                                tarball.display()
                            )));
                        }
                        println!("kernel {}: {package} (installed): {}", k.name, tarball.display());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Accel { reprobe } => {
            let store = hidvm::vm::accel::ProbeStore::new(&suite.cache);
            if reprobe {
                let n = store.forget().map_err(hidvm::Error::io(format!("clearing {}", store.dir.display())))?;
                println!("forgot {n} remembered KVM probe result(s); the next test run probes again");
                return Ok(ExitCode::SUCCESS);
            }
            let qemu = hidvm::base::tools::require(&hidvm::base::tools::QEMU)?;
            let version = hidvm::base::tools::version_line(&qemu.display().to_string(), &["--version"])?;
            match (std::env::var("HIDVM_ACCEL").ok().filter(|v| !v.is_empty()), store.remembered(&version)) {
                (Some(forced), _) => println!("{forced} (forced by HIDVM_ACCEL)"),
                (None, Some(r)) => println!("{}: {}", r.accel.name(), r.reason),
                (None, None) => println!("not probed yet in this host boot: the next test run probes KVM"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List { long } => {
            for case in tests(&suite, &[], None)? {
                match (&case.skip, long) {
                    (Some(why), true) => println!("{}\tSKIP: {why}", case.name()),
                    (None, true) => {
                        let summary = suite
                            .load(&case.entry, &case.target.kernel)
                            .map(|l| l.scenario.summary)
                            .unwrap_or_else(|e| format!("INVALID: {e}"));
                        println!("{}\t{summary}", case.name());
                    }
                    (_, false) => println!("{}", case.name()),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { without_trees: true } => {
            let entries = suite.catalogue()?;
            for e in &entries {
                scenarios::load(&suite.repo, e, scenarios::LoadOptions { kernel_tree: None, bless: false })?;
            }
            println!(
                "{} kernels, {} cells, {} scenario files: ok (without kernel trees: `kernel:` programs not resolved)",
                suite.all_kernels.len(),
                suite.all_cells.len(),
                entries.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { without_trees: false } => {
            let loaded = suite::load_all(&suite)?;
            println!(
                "{} kernels ({} in this run), {} cells ({} in this run), {} scenario files, {loaded} scenario x kernel loads: ok",
                suite.all_kernels.len(),
                suite.kernels.len(),
                suite.all_cells.len(),
                suite.cells.len(),
                suite.catalogue()?.len(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Build { cells } => {
            build(&suite, &selected_targets(&suite, &cells)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { test } => {
            let every_kernel: Vec<String> = suite.all_kernels.iter().map(|k| k.name.clone()).collect();
            let every_cell: Vec<String> = suite.all_cells.iter().map(|c| c.name.clone()).collect();
            let case = suite
                .tests(&suite.targets(&every_kernel, &every_cell), None)?
                .into_iter()
                .find(|c| c.name() == test)
                .ok_or_else(|| hidvm::Error::Other(format!("no test named `{test}`; `hidvm list` shows them")))?;
            if let Some(why) = &case.skip {
                return Err(hidvm::Error::Other(format!("{test} is skipped: {why}")));
            }
            let report = suite.run(&case.target, &case.entry)?;
            print!("{}", report.render());
            Ok(if report.verdict.passed() { ExitCode::SUCCESS } else { ExitCode::from(exit::TESTS_FAILED) })
        }
        Command::VmTest { run, repeat } => {
            // Malformed scenarios stop everything before any build or boot.
            suite::load_all(&suite)?;
            let entries = suite.catalogue()?;
            run_matrix(&suite, entries, &run, repeat.max(1))
        }
        Command::Test { paths, run, .. } => {
            let entries = scenarios::entries_for_paths(&paths, &suite.defined_cells)?;
            // Malformed files stop everything before any build or boot.
            for e in &entries {
                for k in suite.kernels.iter().filter(|k| e.skip_reason(k).is_none()) {
                    suite.load(e, &k.name)?;
                }
            }
            run_matrix(&suite, entries, &run, 1)
        }
        Command::Robustness { builds } => {
            let all_caught = hidvm::robustness::run(&suite, &hidvm::robustness::RobustnessOptions { builds })?;
            Ok(if all_caught { ExitCode::SUCCESS } else { ExitCode::from(exit::TESTS_FAILED) })
        }
        Command::Bench { cold, runs } => {
            hidvm::bench::run(&suite, &hidvm::bench::BenchOptions { cold, runs })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn selected_cells(suite: &Suite, names: &[String]) -> hidvm::Result<Vec<String>> {
    if names.is_empty() {
        return Ok(suite.cells.iter().map(|c| c.name.clone()).collect());
    }
    for n in names {
        hidvm::kernel::cell::find(&suite.all_cells, n)?;
    }
    Ok(names.to_vec())
}

/// The run's kernels x the chosen (or default) cells.
fn selected_targets(suite: &Suite, cells: &[String]) -> hidvm::Result<Vec<Target>> {
    let kernels: Vec<String> = suite.kernels.iter().map(|k| k.name.clone()).collect();
    Ok(suite.targets(&kernels, &selected_cells(suite, cells)?))
}

fn tests(suite: &Suite, cells: &[String], filter: Option<&str>) -> hidvm::Result<Vec<TestCase>> {
    suite.tests(&selected_targets(suite, cells)?, filter)
}

fn build(suite: &Suite, targets: &[Target]) -> hidvm::Result<()> {
    for target in targets {
        let k = suite.kernel(target)?;
        hidvm::base::output::note(format!(
            "hidvm: {target}: {} ({})",
            if k.built_now { "built" } else { "cached" },
            k.vmlinux.display()
        ));
    }
    let agent = hidvm::vm::agent::ensure(&suite.repo)?;
    hidvm::base::output::note(format!("hidvm: guest agent: {}", agent.display()));
    Ok(())
}

/// Run `entries` on the run's kernels x `cells`: build, prepare every test
/// (so bad input fails before any VM boots), run, print the matrix.
fn run_matrix(suite: &Suite, entries: Vec<Entry>, opts: &RunOpts, repeat: usize) -> hidvm::Result<ExitCode> {
    let (filter, jobs, verbose) = (opts.filter.as_deref(), opts.jobs, opts.verbose);
    let targets = selected_targets(suite, &opts.cells)?;
    let (work, skipped): (Vec<TestCase>, Vec<TestCase>) =
        suite.tests_of(entries, &targets, filter)?.into_iter().partition(|c| c.skip.is_none());
    if work.is_empty() {
        return Err(hidvm::Error::Other(format!(
            "no test {} on {}; `hidvm list --long` shows the test names{}",
            filter.map(|f| format!("matching the filter `{f}` runs")).unwrap_or_else(|| "runs".into()),
            targets.iter().map(|t| t.label()).collect::<Vec<_>>().join(", "),
            if skipped.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} skipped, e.g. {}: {})",
                    skipped.len(),
                    skipped[0].name(),
                    skipped[0].skip.as_deref().unwrap_or_default()
                )
            }
        )));
    }
    // Only the targets some test runs on are built.
    let used: Vec<Target> = targets.iter().filter(|t| work.iter().any(|c| &c.target == *t)).cloned().collect();
    build(suite, &used)?;
    let preparing = hidvm::base::output::start(hidvm::base::output::Phase::Work {
        what: &format!("preparing {} tests (loading, compiling and matching programs)", work.len()),
    });
    for case in &work {
        suite.prepare(&case.target, &case.entry)?;
    }
    preparing.finish("ready");
    let jobs = jobs.unwrap_or_else(hidvm::base::host::default_vms).max(1);
    hidvm::base::output::note(format!(
        "hidvm: running {} tests ({} skipped), {jobs} VMs at a time{}",
        work.len(),
        skipped.len(),
        if repeat > 1 { format!(", {repeat} times") } else { String::new() }
    ));
    hidvm::base::output::tests_started(work.len() * repeat);

    let started = std::time::Instant::now();
    let mut tallies = vec![hidvm::repeat::Tally::default(); work.len()];
    let mut last: Vec<Option<hidvm::Result<RunReport>>> = Vec::new();
    let mut used_allow = std::collections::BTreeSet::new();
    for round in 1..=repeat {
        let t = std::time::Instant::now();
        let results = suite.run_parallel(&work, jobs, |case, r| match r {
            Ok(rep) if rep.verdict.passed() && !verbose => hidvm::base::output::test_finished(
                true,
                &format!("  pass  {} ({:.1} s)", rep.test, rep.vm_seconds),
                None,
            ),
            Ok(rep) => hidvm::base::output::test_finished(rep.acceptable(), &rep.test, Some(&rep.render())),
            Err(e) => hidvm::base::output::test_finished(false, &format!("  ERROR {}: {e}", case.name()), None),
        });
        let mut round_tally = hidvm::repeat::Tally::default();
        for (i, r) in results.iter().enumerate() {
            let end = hidvm::repeat::RoundEnd::of(r);
            tallies[i].add(end);
            round_tally.add(end);
            if let Ok(rep) = r {
                used_allow.extend(rep.allowed.iter().map(|(i, _)| *i));
            }
        }
        if repeat > 1 {
            hidvm::base::output::note(format!(
                "hidvm: round {round}/{repeat}: {} passed, {} known kernel bugs, {} failed, {:.1} s",
                round_tally.pass,
                round_tally.known,
                round_tally.fail,
                t.elapsed().as_secs_f64()
            ));
        }
        last = results.into_iter().map(Some).collect();
    }
    hidvm::base::output::tests_done();

    let mut matrix = Matrix::new(targets.clone());
    for (i, (case, r)) in work.iter().zip(&last).enumerate() {
        let row = case.entry.row();
        if let Some(text) = tallies[i].cell() {
            match tallies[i].summary() {
                Summary::KnownSometimes => matrix.record_known_by_chance(&row, &case.target, text),
                _ => matrix.record_text(&row, &case.target, text, false),
            }
            continue;
        }
        match r {
            Some(Ok(rep)) => matrix.record(&row, &case.target, Ok(rep)),
            Some(Err(e)) => matrix.record(&row, &case.target, Err(&e.to_string())),
            None => {}
        }
    }
    for case in &skipped {
        matrix.record_skip(&case.entry.row(), &case.target, case.skip.as_deref().unwrap_or_default());
    }
    println!("\n{}", matrix.render());
    if opts.json.is_some() || opts.ktap.is_some() {
        use hidvm::results::records::{Results, Status, TestRecord};
        let mut records: Vec<TestRecord> = work
            .iter()
            .zip(&last)
            .enumerate()
            .filter_map(|(i, (case, r))| {
                let row = case.entry.row();
                let varied =
                    |status| TestRecord::without_run(&case.name(), &row, &case.target, status, &tallies[i].describe());
                Some(match (tallies[i].summary(), r.as_ref()?) {
                    (Summary::Flaky, _) => varied(Status::Flaky),
                    (Summary::KnownSometimes, _) => varied(Status::Known),
                    (Summary::Steady, Ok(rep)) => TestRecord::from_report(&row, rep),
                    (Summary::Steady, Err(e)) => {
                        TestRecord::without_run(&case.name(), &row, &case.target, Status::Error, &e.to_string())
                    }
                })
            })
            .collect();
        records.extend(skipped.iter().map(|c| {
            TestRecord::without_run(&c.name(), &c.entry.row(), &c.target, Status::Skip, c.skip.as_deref().unwrap_or(""))
        }));
        let results = Results::new(records);
        if let Some(p) = &opts.json {
            results.write_json(p)?;
        }
        if let Some(p) = &opts.ktap {
            hidvm::results::ktap::write(&results, p)?;
        }
    }
    if repeat > 1 {
        let count = |s: Summary| tallies.iter().filter(|t| t.summary() == s).count();
        let always_failed = tallies.iter().filter(|t| t.failed_every_round()).count();
        println!(
            "{repeat} runs x {} tests: {} flaky, {always_failed} failed every run, {} hit a known kernel bug in some runs and passed in the others",
            work.len(),
            count(Summary::Flaky),
            count(Summary::KnownSometimes)
        );
    }
    // A known kernel bug whose test passed: fixed in this kernel, or a race
    // that missed its window this time.
    for (r, t) in last.iter().zip(&tallies) {
        let Some(Ok(r)) = r else { continue };
        if t.known > 0 {
            continue; // it did fail as known in another round
        }
        if let hidvm::judge::known::Known::Passed(i) = r.known {
            println!(
                "known failure {} ({}) passed on {}-{} (Linux {}): fixed in this kernel, or its race missed the window this time; remove the entry once it keeps passing",
                i + 1,
                r.scenario,
                r.kernel,
                r.cell,
                r.kernel_version
            );
        }
    }
    // Allow-list entries that excused nothing in this run are stale.
    for (i, a) in suite.allow.allow.iter().enumerate() {
        let applies = targets.iter().any(|t| a.applies_to(&t.cell));
        if applies && !used_allow.contains(&i) {
            println!(
                "allow-list entry {} ({} `{}`: {}) matched nothing in this run; remove it if the splat is gone",
                i + 1,
                a.class,
                a.contains,
                a.reason
            );
        }
    }
    println!("wall time {:.1} s", started.elapsed().as_secs_f64());
    Ok(if matrix.all_passed() { ExitCode::SUCCESS } else { ExitCode::from(exit::TESTS_FAILED) })
}
