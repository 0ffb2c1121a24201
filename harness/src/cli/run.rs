//! `hidvm run TEST`: one test, with its full step log.
use crate::cli::tests_exit;
use hidvm::run::one_test;
use hidvm::run::plan::{targets, tests};
use hidvm::run::suite::Suite;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    test: String,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
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
