//! `hidvm hid-tools`: the kernel's hid-tools pytest suite on every kernel x
//! cell (by default the subset `make vm-test` runs).
use crate::cli::run_opts::OutputOpts;
use crate::cli::tests_exit;
use hidvm::results::records::Results;
use hidvm::run::hidtools::{self, report, Selection};
use hidvm::run::plan::selected_targets;
use hidvm::run::pool::default_vms;
use hidvm::run::suite::Suite;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Cells to run on (repeatable; default: the default cells, or HIDVM_CELLS).
    #[arg(long = "cell")]
    cells: Vec<String>,
    /// Every test of the suite (default: the four HID-BPF classes,
    /// test_mouse.py and test_keyboard.py).
    #[arg(long, conflicts_with = "only")]
    all: bool,
    /// Only this module, class or test (repeatable), as pytest names it
    /// without `tests/`: `test_sony.py`, `test_tablet.py::TestXPPen_Artist24_28bd_093a`.
    #[arg(long = "module", visible_alias = "only", value_name = "SELECTION")]
    only: Vec<String>,
    /// Only tests matching this pytest `-k` expression (with the selection above).
    #[arg(short = 'k', value_name = "EXPR")]
    keyword: Option<String>,
    /// VMs at once (default: one and a half per core); each has 2 GB.
    #[arg(long)]
    jobs: Option<usize>,
    #[command(flatten)]
    outputs: OutputOpts,
    /// Self-test: `udev-hid-bpf remove` leaves the programs attached; the
    /// HID-BPF classes' tests must then fail in their teardown.
    #[arg(long, hide = true)]
    broken_remove: bool,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    let targets = selected_targets(suite, &args.cells)?;
    let sel = Selection { all: args.all, only: args.only, keyword: args.keyword, broken_remove: args.broken_remove };
    let started = std::time::Instant::now();
    let runs = hidtools::run(suite, &targets, &sel, args.jobs.unwrap_or_else(default_vms).max(1))?;
    if runs.iter().all(|r| r.collected.is_empty()) {
        return Err(hidtools::nothing_selected(&sel));
    }
    let ok = report::print(&targets, &runs);
    println!("wall time {:.1} s", started.elapsed().as_secs_f64());
    let labels: Vec<String> = targets.iter().map(|t| t.label()).collect();
    args.outputs.outputs().write(&Results::new(report::records(&runs)), &labels, None)?;
    Ok(tests_exit(ok))
}
