//! Which tests a command runs: targets (kernel x cell) and the catalogue
//! entries on them, each with the reason it is skipped, if it is.
use crate::base::error::Result;
use crate::catalogue::scenarios::Entry;
use crate::kernel::cell;
use crate::kernel::spec::Target;
use crate::run::suite::Suite;

/// One test: a catalogue entry on a target (kernel x cell), or the reason
/// it does not run there.
#[derive(Clone, Debug)]
pub struct TestCase {
    pub entry: Entry,
    pub target: Target,
    /// Listed and reported as skipped, with this reason; never run.
    pub skip: Option<String>,
}

impl TestCase {
    pub fn name(&self) -> String {
        self.entry.test_name(&self.target.label())
    }
}

/// Kernels x cells, kernel-major (`6.12-gcc`, `6.12-llvm`, `7.3-gcc`, ...).
pub fn targets(kernels: &[String], cells: &[String]) -> Vec<Target> {
    kernels.iter().flat_map(|k| cells.iter().map(move |c| Target::new(k, c))).collect()
}

/// The default targets: the run's kernels x the run's cells.
pub fn default_targets(suite: &Suite) -> Vec<Target> {
    let k: Vec<String> = suite.kernels.iter().map(|k| k.name.clone()).collect();
    let c: Vec<String> = suite.cells.iter().map(|c| c.name.clone()).collect();
    buildable(suite, targets(&k, &c))
}

/// Without the targets that cannot be: a prebuilt kernel beside others
/// has only the cell its compiler names.
fn buildable(suite: &Suite, targets: Vec<Target>) -> Vec<Target> {
    targets
        .into_iter()
        .filter(|t| {
            let image = suite.spec(&t.kernel).ok().and_then(|k| k.image.as_ref());
            image.is_none_or(|i| i.cell().name == t.cell)
        })
        .collect()
}

/// Every catalogue test on `targets`, in catalogue order; with
/// `filter`, only tests whose name contains it.
pub fn tests(suite: &Suite, targets: &[Target], filter: Option<&str>) -> Result<Vec<TestCase>> {
    tests_of(suite, suite.catalogue()?, targets, filter)
}

/// `entries` x `targets`, in order, filtered by name, each with its
/// skip reason (if any).
pub fn tests_of(suite: &Suite, entries: Vec<Entry>, targets: &[Target], filter: Option<&str>) -> Result<Vec<TestCase>> {
    let mut out = Vec::new();
    for entry in entries {
        for target in targets {
            if !entry.runs_on(&target.cell) {
                continue;
            }
            if filter.is_some_and(|f| !entry.test_name(&target.label()).contains(f)) {
                continue;
            }
            let skip = entry.skip_reason(suite.spec(&target.kernel)?);
            out.push(TestCase { entry: entry.clone(), target: target.clone(), skip });
        }
    }
    Ok(out)
}

/// The cells named (each must exist), or the run's cells.
pub fn selected_cells(suite: &Suite, names: &[String]) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(suite.cells.iter().map(|c| c.name.clone()).collect());
    }
    for n in names {
        cell::find(&suite.all_cells, n)?;
    }
    Ok(names.to_vec())
}

/// The run's kernels x the chosen (or default) cells.
pub fn selected_targets(suite: &Suite, cells: &[String]) -> Result<Vec<Target>> {
    let kernels: Vec<String> = suite.kernels.iter().map(|k| k.name.clone()).collect();
    Ok(buildable(suite, targets(&kernels, &selected_cells(suite, cells)?)))
}

/// Load every catalogue entry on every kernel of the run that does not
/// skip it (CLI use): the first malformed file stops the run before
/// anything boots. Returns how many (entry, kernel) pairs loaded.
pub fn load_all(suite: &Suite) -> Result<usize> {
    suite.load_each(&suite.catalogue()?)
}
