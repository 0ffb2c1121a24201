//! `hidvm`: build kernel cells, run scenarios in QEMU, print the matrix.
//!
//! This file parses the command line and hands each subcommand to its
//! file in `cli/`; what a subcommand does is the library's.
mod cli;

use clap::{Parser, Subcommand};
use hidvm::run::suite::{Options, Suite};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hidvm",
    version,
    about = "HID-BPF lifecycle tests on gcc and LLVM kernels in QEMU",
    after_help = "Exit status: 0 all tests passed (or failed exactly as a known kernel bug says); 100 a test failed, or a known bug changed; 4 nothing ran (no test matched, or every test was skipped); 125 the kernel could not be built or did not boot (`git bisect run` skips such a commit); 1 hidvm could not run (bad input, missing tool: the message says what to do)."
)]
struct Cli {
    /// Kernel tree to build (>= 6.11) instead of the kernels of
    /// guest-image/kernels.toml; default: HIDVM_KERNEL_SRC. Its tests are
    /// named `tree-<cell>::...`.
    #[arg(long, global = true, value_name = "DIR")]
    kernel_src: Option<PathBuf>,
    /// Kernels to run on, each a column (`--kernels 6.12,7.3`): a kernel of
    /// guest-image/kernels.toml, `tree` (--kernel-src), `prebuilt`
    /// (--kernel), or any of them with a patch series, `6.12+NAME` (NAME a
    /// directory or mbox under patches/, or a path; the column is named
    /// with `_` for `-`); default: HIDVM_KERNELS, else every kernel run by default.
    #[arg(long, global = true, value_name = "NAMES", value_delimiter = ',')]
    kernels: Vec<String>,
    /// The kernel the others are compared with (`--baseline 6.12`): the
    /// matrix flags every row whose outcome on another kernel differs from
    /// this one's on the same cell (pass, known, failure; a crash by its
    /// title); default: HIDVM_BASELINE.
    #[arg(long, global = true, value_name = "KERNEL")]
    baseline: Option<String>,
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

#[derive(Subcommand)]
enum Command {
    /// Build (or verify cached) kernels for each kernel x cell, plus the guest agent.
    Build(cli::build::Args),
    /// Build what is missing, run every scenario on every kernel x cell, print the matrix.
    VmTest(cli::vm_test::Args),
    /// Run scenario files, or every *.toml in directories, from anywhere, on
    /// the default cells; print the scenario x cell matrix. Paths inside a
    /// scenario (programs, recordings, descriptors) are relative to it.
    Test(cli::test::Args),
    /// Run one test, e.g. `6.12-gcc::mouse_invert_y_close_link`, or a
    /// scenario file of yours (or a directory of them) on every selected
    /// kernel x cell, each with its full step log.
    Run(cli::run::Args),
    /// List test names (kernel-cell x scenario) of the catalogue, or of
    /// the scenario files or directories given; skipped tests say why.
    List(cli::list::Args),
    /// Validate kernels, cells, fragments, scenarios and fixtures without
    /// booting (the catalogue's, or the scenario files or directories given).
    Check(cli::check::Args),
    /// Build the kernel's own HID selftests (tools/testing/selftests/hid:
    /// hid_bpf, hidraw) for every kernel x cell, run them in the same VMs,
    /// print each KTAP result in a test x target matrix and the cost per test.
    Selftests(cli::selftests::Args),
    /// The kernel's hid-tools pytest suite (tools/testing/selftests/hid/tests)
    /// on every kernel x cell, in VMs with a Debian userspace (`hidvm
    /// userspace`) and hidvm's udev-hid-bpf: one row per pytest test. By
    /// default the subset `make vm-test` runs; `--all` for every test.
    HidTools(cli::hid_tools::Args),
    /// Merge results files (`--json`, or HIDVM_RESULTS_JSONL lines) of
    /// several runs or CI jobs into one scenario x target matrix, with
    /// compiler- and kernel-dependent rows flagged; exits 100 if a test failed.
    Summary(cli::summary::Args),
    /// Print each target's kernel cache key (`<target> <key>`): what the
    /// kernel build depends on (tree, compiler and pahole versions, cell,
    /// fragments), for naming CI caches.
    CacheKey(cli::cache_key::Args),
    /// Check this machine: packages, kernel sources, KVM and the probe
    /// result, the cache and its free space; print what to fix.
    Doctor,
    /// Boot a kernel with an interactive busybox shell on this terminal
    /// (bpffs and debugfs mounted, the programs in /hidvm/fixtures, the
    /// scenario's devices created: a file of yours or a catalogue name);
    /// `exit` ends the VM.
    Shell(cli::shell::Args),
    /// Print a HID-BPF program's HID_BPF_CONFIG entries; with a recording
    /// or a scenario, which of its devices match and, in a VM per matching
    /// device, what the program's probe answers and prints.
    Inspect(cli::inspect::Args),
    /// Print the Debian packages hidvm needs (for setup scripts).
    Packages,
    /// Build the guest userspace of `hidvm hid-tools` and `hidvm shell`
    /// (Debian python3, pytest, hid-tools, udev, bpftool as a read-only
    /// erofs image) into the cache if it is missing. Part of `make setup`;
    /// needs root and the network once.
    Userspace,
    /// Fetch the Debian kernel sources of this run's kernels, exactly as
    /// guest-image/kernels.lock pins them, into the cache (an installed one
    /// is used if it is the locked one). Part of `make setup`; runs then
    /// need no network.
    Fetch,
    /// Every kernel: its exact source label, what guest-image/kernels.lock
    /// says, and where its source is; `--update` moves the lock to what
    /// Debian's suites carry now.
    Kernels(cli::kernels::Args),
    /// Show the accelerator this host uses (the KVM probe result,
    /// remembered until the host reboots).
    Accel(cli::accel::Args),
    /// Robustness numbers: splat classes detected/provoked, QEMU left after
    /// forced stops, kernel builds under concurrent requesters.
    Robustness(cli::robustness::Args),
    /// Measure builds, VM boots and the warm suite; prints numbers.
    Bench(cli::bench::Args),
    /// Print the kernel reports of console logs as known-failures entries
    /// name them: crash title, stack functions, file:line.
    Titles(cli::titles::Args),
}

fn main() -> ExitCode {
    // `hidvm list | head` should end quietly, like any Unix tool.
    // SAFETY: restoring the default disposition before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    hidvm::base::output::init();
    match choose_repo().and_then(|_| dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_status())
        }
    }
}

/// What `harness/build.rs` packed for an installed hidvm (data and the
/// guest agent; empty in a checkout build, which uses its checkout).
static BUNDLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bundle.bin"));

/// Where the data is: HIDVM_REPO, the checkout around the current
/// directory, or (installed) the bundle; else the checkout built from.
fn choose_repo() -> hidvm::Result<()> {
    hidvm::base::layout::Repo::choose(Some((BUNDLE, env!("HIDVM_BUNDLE_SHA256")))).map(|_| ())
}

/// The run's suite from the global flags, then the subcommand.
fn dispatch(cli: Cli) -> hidvm::Result<ExitCode> {
    // Reads only the files it is given: no suite, no catalogue.
    if let Command::Titles(a) = cli.command {
        return cli::titles::run(a);
    }
    let bless = matches!(&cli.command, Command::Test(t) if t.bless);
    if bless {
        cli::test::refuse_bless_under_ci()?;
    }
    let suite = Suite::new(Options {
        kernel_src: cli.kernel_src,
        kernels: cli.kernels,
        baseline: cli.baseline,
        config_fragments: cli.config_fragments,
        patches: cli.patches,
        prebuilt: cli.prebuilt,
        prebuilt_config: cli.prebuilt_config,
        verbose: true,
        bless,
    })?;
    match cli.command {
        Command::Packages => cli::packages::run(),
        Command::Selftests(a) => cli::selftests::run(&suite, a),
        Command::HidTools(a) => cli::hid_tools::run(&suite, a),
        Command::Summary(a) => cli::summary::run(&suite, a),
        Command::CacheKey(a) => cli::cache_key::run(&suite, a),
        Command::Shell(a) => cli::shell::run(&suite, a),
        Command::Inspect(a) => cli::inspect::run(&suite, a),
        Command::Doctor => cli::doctor::run(&suite),
        Command::Fetch => cli::fetch::run(&suite),
        Command::Kernels(a) => cli::kernels::run(&suite, a),
        Command::Userspace => cli::userspace::run(&suite),
        Command::Accel(a) => cli::accel::run(&suite, a),
        Command::List(a) => cli::list::run(&suite, a),
        Command::Check(a) => cli::check::run(&suite, a),
        Command::Build(a) => cli::build::run(&suite, a),
        Command::Run(a) => cli::run::run(&suite, a),
        Command::VmTest(a) => cli::vm_test::run(&suite, a),
        Command::Test(a) => cli::test::run(&suite, a),
        Command::Robustness(a) => cli::robustness::run(&suite, a),
        Command::Bench(a) => cli::bench::run(&suite, a),
        Command::Titles(_) => unreachable!("dispatched before the suite is read"),
    }
}
