//! `hidvm run TEST|PATH`: one test with its full step log, or a scenario
//! file of your own (or every `*.toml` of a directory) on every selected
//! target, each with its step log.
use crate::cli::tests_exit;
use hidvm::catalogue::scenarios::looks_like_path;
use hidvm::run::one_test;
use hidvm::run::plan::{selected_targets, targets, tests, tests_of};
use hidvm::run::suite::Suite;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A test name (`hidvm list` shows them), or a scenario file or
    /// directory of your own, run on every selected kernel x cell.
    #[arg(value_name = "TEST|PATH")]
    test: String,
    /// Cells to run a scenario file on (repeatable; default: the run's cells).
    #[arg(long = "cell")]
    cells: Vec<String>,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    if looks_like_path(&args.test) {
        return run_paths(suite, &PathBuf::from(&args.test), &args.cells);
    }
    if !args.cells.is_empty() {
        return Err(hidvm::Error::Other("--cell is for scenario files; a test name names its cell".into()));
    }
    let test = args.test;
    let every_kernel: Vec<String> = suite.all_kernels.iter().map(|k| k.name.clone()).collect();
    let every_cell: Vec<String> = suite.all_cells.iter().map(|c| c.name.clone()).collect();
    let case = tests(suite, &targets(&every_kernel, &every_cell), None)?
        .into_iter()
        .find(|c| c.name() == test)
        .ok_or_else(|| hidvm::Error::NoTests(format!("no test named `{test}`; `hidvm list` shows them")))?;
    if let Some(why) = &case.skip {
        return Err(hidvm::Error::NoTests(format!("{test} is skipped: {why}")));
    }
    let report = one_test::run(suite, &case.target, &case.entry)?;
    print!("{}", report.render());
    // A kernel that never booted to the agent says nothing about the test:
    // `git bisect run` skips such a commit (125), it does not call it bad.
    if report.never_answered() {
        return Err(hidvm::Error::KernelDidNotBoot(format!(
            "{test}: the kernel did not boot to the guest agent (console: {}/console.log)",
            report.run_dir.display()
        )));
    }
    // KNOWN is not a failure of the command, as everywhere else.
    Ok(tests_exit(report.acceptable()))
}

/// The scenarios at `path` on the selected targets, one after the other,
/// each with its full step log.
fn run_paths(suite: &Suite, path: &std::path::Path, cells: &[String]) -> hidvm::Result<ExitCode> {
    let entries = suite.user_entries(&[path.to_path_buf()])?;
    suite.load_each(&entries)?;
    let cases = tests_of(suite, entries, &selected_targets(suite, cells)?, None)?;
    if cases.iter().all(|c| c.skip.is_some()) {
        let why: Vec<String> =
            cases.iter().map(|c| format!("{}: {}", c.name(), c.skip.as_deref().unwrap_or(""))).collect();
        return Err(hidvm::Error::NoTests(format!("every test is skipped: {}", why.join("; "))));
    }
    let mut all_passed = true;
    for case in &cases {
        if let Some(why) = &case.skip {
            println!("{}: SKIP: {why}", case.name());
            continue;
        }
        let report = one_test::run(suite, &case.target, &case.entry)?;
        print!("{}", report.render());
        all_passed &= report.acceptable();
    }
    Ok(tests_exit(all_passed))
}
