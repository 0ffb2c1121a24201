//! `hidvm`: build kernel cells, run scenarios in QEMU, print the matrix.
use clap::{Parser, Subcommand};
use hidvm::error::exit;
use hidvm::matrix::Matrix;
use hidvm::report::RunReport;
use hidvm::scenarios::{self, Entry};
use hidvm::suite::{self, Options, Suite};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hidvm", about = "HID-BPF lifecycle tests on gcc and LLVM kernels in QEMU")]
struct Cli {
    /// Kernel tree to build (>= 6.11); default: HIDVM_KERNEL_SRC, else
    /// Debian's linux-source-6.12 tarball.
    #[arg(long, global = true, value_name = "DIR")]
    kernel_src: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build (or verify cached) kernels for cells, plus the guest agent.
    Build {
        /// Cells to build (default: all).
        #[arg(long = "cell")]
        cells: Vec<String>,
    },
    /// Build what is missing, run every scenario on every cell, print the matrix.
    VmTest {
        #[arg(long = "cell")]
        cells: Vec<String>,
        /// Only tests whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// VMs at once (default: number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Print every test's step log, not only failures.
        #[arg(long)]
        verbose: bool,
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
        /// Cells to run on (default: the default cells, or HIDVM_CELLS).
        #[arg(long = "cell")]
        cells: Vec<String>,
        /// Only tests whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// VMs at once (default: number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Print every test's step log, not only failures.
        #[arg(long)]
        verbose: bool,
        /// Write what replay steps observe into their `evdev_file` /
        /// `hidraw_file` instead of comparing; review the files before
        /// committing them. Refused when CI is set.
        #[arg(long)]
        bless: bool,
    },
    /// Run one test, e.g. `gcc::mouse_invert_y_close_link`.
    Run { test: String },
    /// List test names (cell x scenario).
    List {
        /// Also print each scenario's summary.
        #[arg(long)]
        long: bool,
    },
    /// Validate cells, fragments, scenarios and fixtures without booting.
    Check,
    /// Print the Debian packages hidvm needs (for setup scripts).
    Packages,
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
    let suite = Suite::new(Options { kernel_src: cli.kernel_src.clone(), verbose: true, bless })?;
    match cli.command {
        Command::Packages => {
            println!("{}", hidvm::tools::all_packages().join(" "));
            Ok(ExitCode::SUCCESS)
        }
        Command::Accel { reprobe } => {
            let store = hidvm::qemu::accel::ProbeStore::new(&suite.cache);
            if reprobe {
                let n = store.forget().map_err(hidvm::Error::io(format!("clearing {}", store.dir.display())))?;
                println!("forgot {n} remembered KVM probe result(s); the next test run probes again");
                return Ok(ExitCode::SUCCESS);
            }
            let qemu = hidvm::tools::require(&hidvm::tools::QEMU)?;
            let version = hidvm::tools::version_line(&qemu.display().to_string(), &["--version"])?;
            match (std::env::var("HIDVM_ACCEL").ok().filter(|v| !v.is_empty()), store.remembered(&version)) {
                (Some(forced), _) => println!("{forced} (forced by HIDVM_ACCEL)"),
                (None, Some(r)) => println!("{}: {}", r.accel.name(), r.reason),
                (None, None) => println!("not probed yet in this host boot: the next test run probes KVM"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List { long } => {
            for (entry, cell) in tests(&suite, &[], None)? {
                if long {
                    let summary =
                        suite.load(&entry).map(|l| l.scenario.summary).unwrap_or_else(|e| format!("INVALID: {e}"));
                    println!("{}\t{summary}", entry.test_name(&cell));
                } else {
                    println!("{}", entry.test_name(&cell));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let all = suite::load_all(&suite)?;
            println!(
                "{} cells ({} run by default), {} scenario files: ok",
                suite.all_cells.len(),
                suite.cells.len(),
                all.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Build { cells } => {
            build(&suite, &cells)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { test } => {
            let every_cell: Vec<String> = suite.all_cells.iter().map(|c| c.name.clone()).collect();
            let (entry, cell) = tests(&suite, &every_cell, None)?
                .into_iter()
                .find(|(e, c)| e.test_name(c) == test)
                .ok_or_else(|| hidvm::Error::Other(format!("no test named `{test}`; `hidvm list` shows them")))?;
            let report = suite.run(&cell, &entry)?;
            print!("{}", report.render());
            Ok(if report.verdict.passed() { ExitCode::SUCCESS } else { ExitCode::from(exit::TESTS_FAILED) })
        }
        Command::VmTest { cells, filter, jobs, verbose, repeat } => {
            // Malformed scenarios stop everything before any build or boot.
            suite::load_all(&suite)?;
            let entries = suite.catalogue()?;
            run_matrix(&suite, entries, &cells, filter.as_deref(), jobs, verbose, repeat.max(1))
        }
        Command::Test { paths, cells, filter, jobs, verbose, .. } => {
            let entries = scenarios::entries_for_paths(&paths, &suite.all_cells)?;
            for e in &entries {
                suite.load(e)?;
            }
            run_matrix(&suite, entries, &cells, filter.as_deref(), jobs, verbose, 1)
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
        hidvm::cell::find(&suite.all_cells, n)?;
    }
    Ok(names.to_vec())
}

fn tests(suite: &Suite, cells: &[String], filter: Option<&str>) -> hidvm::Result<Vec<(Entry, String)>> {
    suite.tests(&selected_cells(suite, cells)?, filter)
}

fn build(suite: &Suite, cells: &[String]) -> hidvm::Result<()> {
    let source = suite.source()?;
    for name in selected_cells(suite, cells)? {
        let cell = hidvm::cell::find(&suite.all_cells, &name)?;
        let k = suite.kernel(cell, &source)?;
        eprintln!("hidvm: cell {name}: {} ({})", if k.built_now { "built" } else { "cached" }, k.vmlinux.display());
    }
    let agent = hidvm::agent::ensure(&suite.repo)?;
    eprintln!("hidvm: guest agent: {}", agent.display());
    Ok(())
}

/// Run `entries` on `cells`: build, prepare every test (so bad input fails
/// before any VM boots), run, print the matrix.
fn run_matrix(
    suite: &Suite,
    entries: Vec<Entry>,
    cells: &[String],
    filter: Option<&str>,
    jobs: Option<usize>,
    verbose: bool,
    repeat: usize,
) -> hidvm::Result<ExitCode> {
    let cells = selected_cells(suite, cells)?;
    let work = suite.tests_of(entries, &cells, filter)?;
    if work.is_empty() {
        return Err(hidvm::Error::Other(format!(
            "no test matches{} on cell(s) {}; `hidvm list` shows the test names",
            filter.map(|f| format!(" the filter `{f}`")).unwrap_or_default(),
            cells.join(", ")
        )));
    }
    build(suite, &cells)?;
    for (entry, cell) in &work {
        suite.prepare(cell, entry)?;
    }
    let jobs = jobs.unwrap_or_else(hidvm::cores).max(1);
    eprintln!(
        "hidvm: running {} tests, {jobs} VMs at a time{}",
        work.len(),
        if repeat > 1 { format!(", {repeat} times") } else { String::new() }
    );

    let started = std::time::Instant::now();
    let mut passes = vec![0usize; work.len()];
    let mut last: Vec<Option<hidvm::Result<RunReport>>> = Vec::new();
    let mut used_allow = std::collections::BTreeSet::new();
    for round in 1..=repeat {
        let t = std::time::Instant::now();
        let results = suite.run_parallel(&work, jobs, |entry, cell, r| match r {
            Ok(rep) if rep.verdict.passed() && !verbose => eprintln!("  pass  {} ({:.1} s)", rep.test, rep.vm_seconds),
            Ok(rep) => eprint!("{}", rep.render()),
            Err(e) => eprintln!("  ERROR {}: {e}", entry.test_name(cell)),
        });
        let failed = results.iter().filter(|r| !matches!(r, Ok(rep) if rep.verdict.passed())).count();
        for (i, r) in results.iter().enumerate() {
            if let Ok(rep) = r {
                if rep.verdict.passed() {
                    passes[i] += 1;
                }
                used_allow.extend(rep.allowed.iter().map(|(i, _)| *i));
            }
        }
        if repeat > 1 {
            eprintln!(
                "hidvm: round {round}/{repeat}: {} passed, {failed} failed, {:.1} s",
                work.len() - failed,
                t.elapsed().as_secs_f64()
            );
        }
        last = results.into_iter().map(Some).collect();
    }

    let mut matrix = Matrix::new(cells.clone());
    for (i, ((entry, cell), r)) in work.iter().zip(&last).enumerate() {
        let row = entry.row();
        if repeat > 1 && passes[i] != 0 && passes[i] != repeat {
            matrix.record_text(&row, cell, format!("FLAKY {}/{repeat}", passes[i]), false);
            continue;
        }
        match r {
            Some(Ok(rep)) => matrix.record(&row, cell, Ok(rep)),
            Some(Err(e)) => matrix.record(&row, cell, Err(&e.to_string())),
            None => {}
        }
    }
    println!("\n{}", matrix.render());
    if repeat > 1 {
        let flaky = passes.iter().filter(|p| **p != 0 && **p != repeat).count();
        let always_failed = passes.iter().filter(|p| **p == 0).count();
        println!("{repeat} runs x {} tests: {flaky} flaky, {always_failed} failed every run", work.len());
    }
    // A known kernel bug whose test passed: fixed in this kernel, or a race
    // that missed its window this time.
    for r in last.iter().flatten().flatten() {
        if let hidvm::known::Known::Passed(i) = r.known {
            println!(
                "known failure {} ({}) passed on {}: fixed in this kernel, or its race missed the window this time; remove the entry once it keeps passing",
                i + 1,
                r.scenario,
                r.cell
            );
        }
    }
    // Allow-list entries that excused nothing in this run are stale.
    for (i, a) in suite.allow.allow.iter().enumerate() {
        let applies = cells.iter().any(|c| a.applies_to(c));
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
