//! `hidvm vm-test`: the catalogue on every kernel x cell, and the matrix;
//! then the hid-tools suite's subset (`hidvm hid-tools`) on the same
//! targets, in a matrix of its own, its rows in the same results files.
use crate::cli::run_opts::RunOpts;
use crate::cli::tests_exit;
use hidvm::run::hidtools::{self, report, Selection};
use hidvm::run::plan::{load_all, selected_targets};
use hidvm::run::pool::default_vms;
use hidvm::run::suite::Suite;
use hidvm::run::{batch, pipeline};
use hidvm::vm::userspace;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    run: RunOpts,
    /// Run the whole suite this many times and report flaky tests.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Do not run the hid-tools subset after the catalogue (it is also
    /// left out with --filter or --repeat, which select catalogue tests).
    #[arg(long)]
    without_hid_tools: bool,
    /// Build the hid-tools userspace image while the catalogue runs if the
    /// cache lacks it (what `hidvm userspace` does: root and the network).
    /// `make vm-test` passes it, so a fresh machine's first kernel build
    /// does not wait for the image; without it a missing image is an error
    /// before anything runs.
    #[arg(long)]
    build_userspace: bool,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    // Malformed scenarios stop everything before any build or boot.
    load_all(suite)?;
    let entries = suite.catalogue()?;
    let opts = args.run.batch(args.repeat.max(1));
    let with_hid_tools = !args.without_hid_tools && opts.filter.is_none() && opts.repeat == 1;
    std::thread::scope(|scope| {
        let image = match (with_hid_tools, args.build_userspace) {
            (false, _) => None,
            (true, true) => Some(scope.spawn(|| {
                // Its 25 CPU-s must not slow the first kernel build on a
                // small machine: it takes what the builds and tests leave.
                pipeline::lower_priority();
                userspace::ensure(&suite.repo, &suite.cache)
            })),
            (true, false) => {
                // Before minutes of catalogue: a missing image is one line now.
                userspace::find(&suite.repo, &suite.cache)?;
                None
            }
        };
        let batch = batch::run_batch(suite, entries, &opts)?;
        let (mut ok, mut more) = (true, Vec::new());
        if with_hid_tools {
            let built = image.map_or(Ok(()), |h| {
                h.join()
                    .unwrap_or_else(|_| Err(hidvm::Error::Other("the hid-tools userspace build panicked".into())))
                    .map(drop)
            });
            let targets = selected_targets(suite, &opts.cells)?;
            let jobs = opts.jobs.unwrap_or_else(default_vms).max(1);
            println!("\nhid-tools (the kernel's pytest suite; `hidvm hid-tools --all` runs all of it):");
            match built.and_then(|()| hidtools::run(suite, &targets, &Selection::default(), jobs)) {
                Ok(runs) => {
                    ok = report::print(&targets, &runs);
                    more = report::records(&runs);
                }
                Err(e) => {
                    // The catalogue's results are written all the same.
                    batch.finish(&opts.outputs, Vec::new())?;
                    return Err(e);
                }
            }
        }
        let catalogue_ok = batch.finish(&opts.outputs, more)?;
        Ok(tests_exit(catalogue_ok && ok))
    })
}
