//! `hidvm inspect PROG [--recording X.hid | --scenario S.toml]`: a
//! program's HID_BPF_CONFIG entries, which devices they match, and what
//! its probe answers on each, in a VM.
use crate::cli::tests_exit;
use hidvm::run::inspect::{self, InspectOptions};
use hidvm::run::suite::Suite;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The program: a .bpf.c (compiled for the run's first kernel and the
    /// cell, as scenarios compile it) or a compiled .bpf.o.
    #[arg(value_name = "PROG.bpf.c|PROG.bpf.o")]
    program: PathBuf,
    /// A hid-recorder file: which of its devices match, and the probe's
    /// answer on each that does.
    #[arg(long, value_name = "FILE.hid")]
    recording: Option<PathBuf>,
    /// A scenario: its devices (and `bpf_include` headers) instead.
    #[arg(long, value_name = "FILE.toml", conflicts_with = "recording")]
    scenario: Option<PathBuf>,
    /// The cell (default: the run's first) of the run's first kernel.
    #[arg(long)]
    cell: Option<String>,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    let opts =
        InspectOptions { program: args.program, recording: args.recording, scenario: args.scenario, cell: args.cell };
    // 100 when a matching device's probe rejected it (or nothing matched).
    Ok(tests_exit(inspect::run(suite, &opts)?))
}
