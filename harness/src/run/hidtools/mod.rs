//! `hidvm hid-tools`: the kernel's hid-tools pytest suite
//! (`tools/testing/selftests/hid/tests/`, what HID maintainers run every
//! day) in hidvm's VMs, on every kernel x cell: the suite of the tree under
//! test, its HID-BPF programs compiled for the target and loaded by the
//! agent called as `udev-hid-bpf`, the guest's userspace from the cached
//! image (`vm::userspace`).
//!
//! Per target, one VM collects (`pytest --collect-only`: the reference list
//! and count), then the selected tests run in shards of whole classes (at
//! most [`SHARD_MAX`] tests, one VM each, `jobs` VMs at a time over every
//! target). Each test is a row (`hidtools::test_tablet.py::TestX::test_y`),
//! judged by `judge::tap`'s rules with `tests/hidtools-known.toml`.
//!
//! Bottom to top: [`bundle`] (what a target's VMs get), [`session`] (one
//! VM), [`outcome`] (a target's sessions judged), [`report`] (matrix,
//! records, times).
pub mod bundle;
pub mod outcome;
pub mod report;
pub mod session;

use crate::base::error::{Error, Result};
use crate::judge::pytest::{short_id, TESTS_PREFIX};
use crate::judge::tap::KnownResults;
use crate::kernel::spec::Target;
use crate::run::pool::in_parallel;
use crate::run::suite::Suite;
use bundle::Prepared;
use outcome::Judged;
use session::{SessionRun, Spec};
use std::path::Path;

/// What `hidvm hid-tools` runs without `--all`, and `make vm-test` with
/// the catalogue: the four classes that load in-tree HID-BPF programs
/// through udev-hid-bpf, and the mouse and keyboard modules.
pub const SUBSET: &[&str] = &[
    "test_tablet.py::TestXPPen_ArtistPro16Gen2_28bd_095b",
    "test_tablet.py::TestXPPen_Artist24_28bd_093a",
    "test_tablet.py::TestHuion_Kamvas_Pro_19_256c_006b",
    "test_gamepad.py::TestRaptorMach2Joystick",
    "test_mouse.py",
    "test_keyboard.py",
];
/// The classes whose devices load HID-BPF programs: each must run a test
/// (not only skip) wherever it is selected.
pub const HID_BPF_CLASSES: &[&str] = &SUBSET_CLASSES;
const SUBSET_CLASSES: [&str; 4] = [SUBSET[0], SUBSET[1], SUBSET[2], SUBSET[3]];
/// Tests per VM at most: one pytest process grows with every
/// hid-multitouch test (a 750-test session needed 500 MB).
pub const SHARD_MAX: usize = 250;
/// Known failures and skips of the suite.
pub const KNOWN_FILE: &str = "tests/hidtools-known.toml";

/// Which tests.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Every collected test.
    pub all: bool,
    /// Modules, classes or node ids without `tests/` (`test_sony.py`,
    /// `test_tablet.py::TestX`); empty (and not `all`): [`SUBSET`].
    pub only: Vec<String>,
    /// pytest's `-k` expression, applied when collecting.
    pub keyword: Option<String>,
    /// Self-test: `udev-hid-bpf remove` leaves the links pinned.
    pub broken_remove: bool,
}

impl Selection {
    /// The prefixes selected (none: every test).
    pub fn prefixes(&self) -> Vec<String> {
        match (self.all, self.only.is_empty()) {
            (true, _) => vec![],
            (false, true) => SUBSET.iter().map(|s| s.to_string()).collect(),
            (false, false) => self.only.iter().map(|s| short_id(s).to_string()).collect(),
        }
    }

    fn collect_spec(&self) -> Spec {
        let mut args = vec!["--collect-only".to_string(), "-q".to_string()];
        match self.prefixes() {
            p if p.is_empty() => args.push("tests".into()),
            p => args.extend(p.iter().map(|p| format!("{TESTS_PREFIX}{p}"))),
        }
        if let Some(k) = &self.keyword {
            args.extend(["-k".to_string(), k.clone()]);
        }
        Spec {
            label: "collect".into(),
            dir: "hidtools.collect".into(),
            args,
            ids: vec![],
            size: 0,
            broken_remove: false,
        }
    }
}

/// One target's run: what was collected and what every session found.
pub struct TargetRun {
    pub target: Target,
    /// Its run row (`hidtools::(run)`, or a trial's).
    pub run_row: String,
    pub kernel_label: String,
    pub kernel_version: String,
    /// The selected node ids the collection listed (short).
    pub collected: Vec<String>,
    pub sessions: Vec<Result<SessionRun, String>>,
    pub judged: Judged,
    pub collect_seconds: f64,
}

/// The node ids a `--collect-only -q` run printed, and what was wrong.
fn collected_ids(run: &Result<SessionRun, String>) -> (Vec<String>, Vec<String>) {
    let run = match run {
        Ok(r) => r,
        Err(e) => return (vec![], vec![format!("the collection could not run: {e}")]),
    };
    let ids: Vec<String> =
        run.output.iter().filter(|l| l.starts_with(TESTS_PREFIX) && l.contains("::")).cloned().collect();
    let mut problems = run.problems.clone();
    if run.exit_ok != Some(true) {
        let tail: Vec<&str> = run.output.iter().rev().take(3).map(String::as_str).collect();
        problems.push(format!(
            "pytest --collect-only failed: {} (see {}/output.txt)",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
            run.run_dir.display()
        ));
    }
    (ids, problems)
}

/// Whole classes together, at most [`SHARD_MAX`] tests per shard (a class
/// larger than that is cut).
pub fn shards(ids: &[String]) -> Vec<Vec<String>> {
    let class_of = |id: &str| id.split("::").take(2).collect::<Vec<_>>().join("::");
    let mut groups: Vec<Vec<String>> = Vec::new();
    for id in ids {
        match groups.last_mut() {
            Some(g) if class_of(&g[0]) == class_of(id) && g.len() < SHARD_MAX => g.push(id.clone()),
            _ => groups.push(vec![id.clone()]),
        }
    }
    let mut out: Vec<Vec<String>> = Vec::new();
    for g in groups {
        match out.last_mut() {
            Some(s) if s.len() + g.len() <= SHARD_MAX => s.extend(g),
            _ => out.push(g),
        }
    }
    out
}

fn shard_specs(ids: &[String], broken_remove: bool) -> Vec<Spec> {
    let all = shards(ids);
    let n = all.len();
    all.into_iter()
        .enumerate()
        .map(|(i, ids)| {
            let class = |id: &String| id.split("::").take(2).collect::<Vec<_>>().join("::");
            let (first, last) = (class(&ids[0]), class(ids.last().expect("a shard has tests")));
            let what = if first == last { first } else { format!("{first} … {last}") };
            let label = format!("shard {}/{n} ({what})", i + 1);
            let full = ids.iter().map(|id| format!("{TESTS_PREFIX}{id}")).collect();
            Spec::shard(label, format!("hidtools.shard-{}", i + 1), full, broken_remove)
        })
        .collect()
}

/// The selected ids among those collected, and selections that matched
/// nothing (a class renamed in the tree must fail loudly, not vanish).
fn select(sel: &Selection, collected: &[String]) -> (Vec<String>, Vec<String>) {
    let short: Vec<String> = collected.iter().map(|id| short_id(id).to_string()).collect();
    let prefixes = sel.prefixes();
    let unmatched = prefixes
        .iter()
        .filter(|p| !short.iter().any(|id| id.starts_with(p.as_str())))
        .map(|p| format!("the selection `{p}` matches no test the tree's suite collects"))
        .collect();
    (short, unmatched)
}

/// Run the selection on `targets`, `jobs` VMs at a time.
pub fn run(suite: &Suite, targets: &[Target], sel: &Selection, jobs: usize) -> Result<Vec<TargetRun>> {
    let image = crate::vm::userspace::find(&suite.repo, &suite.cache)?;
    let known = KnownResults::load(&suite.repo.root.join(KNOWN_FILE))?;
    crate::run::prepare::build_targets(suite, targets)?;
    let preparing = crate::base::output::start(crate::base::output::Phase::Work {
        what: "preparing the hid-tools bundles (the trees' tests, their HID-BPF programs compiled per target)",
    });
    let prepared: Vec<Prepared> = targets.iter().map(|t| bundle::prepare(suite, t)).collect::<Result<_>>()?;
    preparing.finish("ready");
    for n in prepared.iter().flat_map(|p| &p.notes) {
        crate::base::output::note(format!("hidvm: {n}"));
    }
    let collect = sel.collect_spec();
    let collected: Vec<Result<SessionRun, String>> =
        in_parallel(&prepared, jobs, |p| session::run(suite, p, &image, &collect).map_err(|e| e.to_string()));
    let mut work: Vec<(usize, Spec)> = Vec::new();
    let mut per_target = Vec::new();
    for (i, c) in collected.iter().enumerate() {
        let (ids, mut problems) = collected_ids(c);
        let (selected, unmatched) = select(sel, &ids);
        problems.extend(unmatched);
        work.extend(shard_specs(&selected, sel.broken_remove).into_iter().map(|s| (i, s)));
        per_target.push((selected, problems));
    }
    // The biggest shards first: the pool ends together.
    work.sort_by_key(|(_, s)| std::cmp::Reverse(s.size));
    let mut results: Vec<Option<_>> = run_shards(suite, &prepared, &image, &work, jobs).into_iter().map(Some).collect();
    let mut out = Vec::new();
    for (i, (p, (selected, problems))) in prepared.iter().zip(per_target).enumerate() {
        let sessions: Vec<Result<SessionRun, String>> =
            work.iter().zip(results.iter_mut()).filter(|((t, _), _)| *t == i).filter_map(|(_, r)| r.take()).collect();
        out.push(finish_target(p, &known, selected, problems, sessions, &collected[i]));
    }
    Ok(out)
}

/// Every shard, `jobs` VMs at a time, each announced as it ends.
fn run_shards(
    suite: &Suite,
    prepared: &[Prepared],
    image: &Path,
    work: &[(usize, Spec)],
    jobs: usize,
) -> Vec<Result<SessionRun, String>> {
    crate::base::output::tests_started(work.len());
    let results = in_parallel(work, jobs, |(i, spec)| {
        let p = &prepared[*i];
        let r = session::run(suite, p, image, spec).map_err(|e| e.to_string());
        let (ok, line) = session::summary_line(&p.target, spec, &r);
        crate::base::output::test_finished(ok, &line, None);
        r
    });
    crate::base::output::tests_done();
    results
}

fn finish_target(
    p: &Prepared,
    known: &KnownResults,
    selected: Vec<String>,
    problems: Vec<String>,
    sessions: Vec<Result<SessionRun, String>>,
    collect: &Result<SessionRun, String>,
) -> TargetRun {
    let classes: Vec<&str> = HID_BPF_CLASSES
        .iter()
        .copied()
        .filter(|c| selected.iter().any(|id| id.starts_with(&format!("{c}::"))))
        .collect();
    let ctx = outcome::Context {
        known,
        kernel_label: &p.kernel_label,
        cell: &p.target.cell,
        expected: Some(&selected),
        hid_bpf_classes: &classes,
        run_row: outcome::RUN_ROW,
    };
    let mut judged = outcome::judge(&ctx, &sessions, problems);
    judged.notes.extend(p.notes.iter().cloned());
    TargetRun {
        target: p.target.clone(),
        run_row: outcome::RUN_ROW.into(),
        kernel_label: p.kernel_label.clone(),
        kernel_version: p.kernel_version.clone(),
        collected: selected,
        sessions,
        judged,
        collect_seconds: collect.as_ref().map(|c| c.vm_seconds).unwrap_or(0.0),
    }
}

/// One module, class or node id on one target in one VM, without a
/// separate collection (the TAP plan is the reference): what nextest's
/// `hidtools::<target>::<selection>` trials run. Its run row is
/// `hidtools::<selection>::(run)`.
pub fn run_one(suite: &Suite, target: &Target, selection: &str, broken_remove: bool) -> Result<TargetRun> {
    let image = crate::vm::userspace::find(&suite.repo, &suite.cache)?;
    let known = KnownResults::load(&suite.repo.root.join(KNOWN_FILE))?;
    let p = bundle::prepare(suite, target)?;
    let spec = Spec {
        label: selection.to_string(),
        dir: crate::base::layout::test_dir_name(&format!("hidtools::{selection}")),
        args: vec!["--tap-stream".into(), "--udevd".into(), format!("{TESTS_PREFIX}{selection}")],
        ids: vec![],
        size: 100,
        broken_remove,
    };
    let session = session::run(suite, &p, &image, &spec).map_err(|e| e.to_string());
    let classes: Vec<&str> = HID_BPF_CLASSES.iter().copied().filter(|c| c.starts_with(selection)).collect();
    let run_row = format!("{ROW}{selection}::(run)", ROW = outcome::ROW_PREFIX);
    let ctx = outcome::Context {
        known: &known,
        kernel_label: &p.kernel_label,
        cell: &target.cell,
        expected: None,
        hid_bpf_classes: &classes,
        run_row: &run_row,
    };
    let mut problems = Vec::new();
    if session.as_ref().is_ok_and(|s| s.read.results.is_empty()) {
        problems.push(format!("`{selection}` ran no test: is it a module or class of this tree's suite?"));
    }
    let judged = outcome::judge(&ctx, std::slice::from_ref(&session), problems);
    let collected = judged.rows.iter().map(|r| r.id.clone()).collect();
    Ok(TargetRun {
        target: target.clone(),
        run_row,
        kernel_label: p.kernel_label,
        kernel_version: p.kernel_version,
        collected,
        sessions: vec![session],
        judged,
        collect_seconds: 0.0,
    })
}

/// The error when nothing was selected to run on any target.
pub fn nothing_selected(sel: &Selection) -> Error {
    Error::NoTests(format!("no hid-tools test matches the selection ({})", sel.prefixes().join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(spec: &[(&str, usize)]) -> Vec<String> {
        spec.iter().flat_map(|(c, n)| (0..*n).map(move |i| format!("{c}::test_{i}"))).collect()
    }

    #[test]
    fn shards_keep_classes_whole_and_stay_under_the_limit() {
        let all = ids(&[
            ("test_a.py::TestA", 100),
            ("test_a.py::TestB", 120),
            ("test_b.py::TestC", 40),
            ("test_c.py::TestD", 600),
        ]);
        let s = shards(&all);
        assert!(s.iter().all(|s| s.len() <= SHARD_MAX), "{:?}", s.iter().map(Vec::len).collect::<Vec<_>>());
        assert_eq!(s.iter().map(Vec::len).sum::<usize>(), all.len());
        assert_eq!(s[0].len(), 220, "TestA and TestB together");
        assert_eq!(s.iter().map(Vec::len).collect::<Vec<_>>(), [220, 40, 250, 250, 100], "TestD is cut");
        assert_eq!(s.concat(), all, "order kept");
    }

    #[test]
    fn the_repository_known_list_parses() {
        KnownResults::load(&crate::base::layout::Repo::locate().root.join(KNOWN_FILE)).unwrap();
    }

    #[test]
    fn the_default_selection_is_the_subset_and_unmatched_selections_are_named() {
        let sel = Selection::default();
        assert_eq!(sel.prefixes().len(), SUBSET.len());
        let spec = sel.collect_spec();
        assert!(spec.args.contains(&"tests/test_mouse.py".to_string()), "{:?}", spec.args);
        let collected: Vec<String> = vec!["tests/test_mouse.py::TestSimpleMouse::test_creation".into()];
        let (short, unmatched) = select(&sel, &collected);
        assert_eq!(short, vec!["test_mouse.py::TestSimpleMouse::test_creation"]);
        assert_eq!(unmatched.len(), SUBSET.len() - 1);
        assert!(unmatched[0].contains("TestXPPen_ArtistPro16Gen2_28bd_095b"), "{unmatched:?}");
        let all = Selection { all: true, keyword: Some("XPPen".into()), ..Default::default() };
        assert_eq!(all.collect_spec().args, ["--collect-only", "-q", "tests", "-k", "XPPen"]);
    }
}
