//! Everything before booting: the kernels built, each test's scenario
//! loaded and its programs compiled and matched to their devices. Commands
//! check every test's scenario first (no kernel needed), so bad input is
//! reported before anything is built or booted; a batch compiles the
//! programs of the targets whose kernel is there before any VM boots too
//! (see `run::batch`).
use crate::base::error::{Error, Result};
use crate::catalogue::fixtures;
use crate::catalogue::scenarios::{Entry, Loaded};
use crate::kernel::build::BuiltKernel;
use crate::kernel::cell::{self, KernelCell};
use crate::kernel::source::KernelSource;
use crate::kernel::spec::Target;
use crate::run::plan::TestCase;
use crate::run::suite::Suite;
use crate::vm::agent;
use std::collections::BTreeMap;

/// A test ready to boot (see [`prepare`]).
pub struct Prepared {
    pub loaded: Loaded,
    pub cell: KernelCell,
    /// Leased: nobody rebuilds it while this lives.
    pub kernel: BuiltKernel,
    pub objects: BTreeMap<String, fixtures::Compiled>,
    pub source: KernelSource,
}

/// Everything a run needs before booting: the scenario loaded, the
/// kernel built, its programs compiled and matched to their devices.
pub fn prepare(suite: &Suite, target: &Target, entry: &Entry) -> Result<Prepared> {
    let loaded = suite.load(entry, &target.kernel)?;
    let cell = cell::find(&suite.all_cells, &target.cell)?.clone();
    let source = suite.source(&target.kernel)?;
    let kernel = suite.kernel(target)?;
    let ctx = fixtures::CompileContext {
        repo: &suite.repo,
        cache: &suite.cache,
        kernel: &kernel,
        kernel_tree: &source.root,
        bpf_include: &loaded.bpf_include,
    };
    let objects = fixtures::compile(&ctx, &loaded.fixtures)?;
    check_device_tables(entry, &loaded.scenario, &loaded.devices, &objects)?;
    Ok(Prepared { loaded, cell, kernel, objects, source })
}

/// Load and check every test's scenario against its kernel's tree (no
/// kernel needed), each (scenario, kernel) once: the bad input that can be
/// found without a kernel is found before anything is built or booted.
pub fn check_inputs(suite: &Suite, work: &[TestCase]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for case in work {
        if seen.insert((case.target.kernel.clone(), case.entry.path.clone(), case.entry.name.clone())) {
            suite.load(&case.entry, &case.target.kernel)?;
        }
    }
    Ok(())
}

/// Build (or find cached) the kernels of `targets`, and the guest agent,
/// saying which.
pub fn build_targets(suite: &Suite, targets: &[Target]) -> Result<()> {
    for target in targets {
        let k = suite.kernel(target)?;
        crate::base::output::note(format!(
            "hidvm: {target}: {} ({})",
            if k.built_now { "built" } else { "cached" },
            k.vmlinux.display()
        ));
    }
    let agent = agent::ensure(&suite.repo)?;
    crate::base::output::note(format!("hidvm: guest agent: {}", agent.display()));
    Ok(())
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
