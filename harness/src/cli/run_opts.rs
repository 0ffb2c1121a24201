//! What `vm-test` and `test` share: their flags, as the library's batch options.
use hidvm::results::files::Outputs;
use hidvm::run::batch::BatchOptions;
use std::path::PathBuf;

/// What `vm-test` and `test` share.
#[derive(clap::Args, Clone)]
pub struct RunOpts {
    /// Cells to run on (repeatable; default: the default cells, or HIDVM_CELLS).
    #[arg(long = "cell")]
    pub cells: Vec<String>,
    /// Only tests whose name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    /// VMs at once (default: one and a half per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print every test's step log, not only failures.
    #[arg(long)]
    pub verbose: bool,
    #[command(flatten)]
    pub outputs: OutputOpts,
}

/// The results files a command can write.
#[derive(clap::Args, Clone, Default)]
pub struct OutputOpts {
    /// Write every test's result (kernel, cell, test, verdict, failure
    /// kind and class, time, run directory) to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the results as KTAP (the kernel's test-result format) to this file.
    #[arg(long, value_name = "FILE")]
    pub ktap: Option<PathBuf>,
    /// Write the results as JUnit XML (one suite per target) to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the HTML report (matrix, failures, charts; links to each run's files) to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

impl OutputOpts {
    pub fn outputs(&self) -> Outputs {
        Outputs { json: self.json.clone(), ktap: self.ktap.clone(), junit: self.junit.clone(), html: self.html.clone() }
    }
}

impl RunOpts {
    /// The batch these flags ask for, run `repeat` times.
    pub fn batch(&self, repeat: usize) -> BatchOptions {
        BatchOptions {
            cells: self.cells.clone(),
            filter: self.filter.clone(),
            jobs: self.jobs,
            verbose: self.verbose,
            outputs: self.outputs.outputs(),
            repeat,
        }
    }
}
