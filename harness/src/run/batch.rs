//! A batch of tests (`hidvm vm-test`, `hidvm test`): every test's scenario
//! checked and the ready targets' programs compiled (so bad input fails
//! before any VM boots), the tests run in rounds, the first one pipelined
//! with the kernel builds it needs (`run::pipeline`), and what they found:
//! the matrix, the results files, and the known failures and allow-list
//! entries this run did not need.
use crate::base::error::{Error, Result};
use crate::catalogue::scenarios::Entry;
use crate::judge::known::{self, Known};
use crate::kernel::spec::Target;
use crate::results::files::Outputs;
use crate::results::matrix::Matrix;
use crate::results::records::{Results, Status, TestRecord};
use crate::results::report::RunReport;
use crate::run::pipeline::{self, Targets};
use crate::run::plan::{self, TestCase};
use crate::run::pool::default_vms;
use crate::run::prepare::{check_inputs, prepare};
use crate::run::repeat::{RoundEnd, Summary, Tally};
use crate::run::suite::Suite;
use std::collections::{BTreeMap, BTreeSet};

/// What a batch runs and where its results go.
#[derive(Clone, Debug, Default)]
pub struct BatchOptions {
    /// Cells to run on (empty: the run's cells).
    pub cells: Vec<String>,
    /// Only tests whose name contains this.
    pub filter: Option<String>,
    /// VMs at once (default: [`default_vms`]).
    pub jobs: Option<usize>,
    /// Print every test's step log, not only failures.
    pub verbose: bool,
    /// Results files (`--json`, `--ktap`, `--junit`, `--html`).
    pub outputs: Outputs,
    /// Rounds (at least one).
    pub repeat: usize,
}

/// How every round of the batch ended.
struct Rounds {
    /// Per test (in work order): how its rounds ended.
    tallies: Vec<Tally>,
    /// Per test: the last round's result.
    last: Vec<Option<Result<RunReport>>>,
    /// Allow-list entries that excused a splat in some round.
    used_allow: BTreeSet<usize>,
    /// Per test: how each round ended, in order.
    ends: Vec<Vec<RoundEnd>>,
    /// Per test: the known-failures entry that applies to it (the same in
    /// every round: same row, cell and kernel).
    entries: Vec<Option<usize>>,
    /// The distinct template boots the rounds' tests started from.
    boots: BTreeSet<String>,
}

/// Known bugs that showed far more often than their recorded rate in
/// this batch, pooled over every target and round where each applies:
/// entry index -> why it is a change.
type Changes = BTreeMap<usize, String>;

/// Pool each known entry's runs: `hits` rounds ended as the entry says, of
/// `runs` where it applied; a race recorded as "1 in 20" that crashed in
/// every target of one run, or in half of 20 rounds, has changed.
fn known_changes(suite: &Suite, rounds: &Rounds) -> Changes {
    let mut pooled: BTreeMap<usize, (u32, u32)> = BTreeMap::new();
    for (entry, t) in rounds.entries.iter().zip(&rounds.tallies) {
        let Some(e) = entry else { continue };
        let p = pooled.entry(*e).or_default();
        p.0 += t.known as u32;
        p.1 += t.rounds() as u32;
    }
    let mut out = Changes::new();
    for (e, (hits, runs)) in pooled {
        let k = &suite.known.known[e];
        if let Some(p) = known::far_more_often(k.rate(), hits, runs) {
            out.insert(
                e,
                format!(
                    "known kernel bug {} ({}) ended as recorded in {hits} of {runs} runs where it applies; its recorded rate is {} (the chance of {hits} or more is {p:.1e}): far more often than recorded, a change, not KNOWN",
                    e + 1,
                    k.test,
                    k.rate
                ),
            );
        }
    }
    out
}

/// Run `entries` on the run's kernels x the chosen cells, print the matrix
/// and what the batch found, write the results files; true if every test
/// passed (or failed as a known kernel bug says).
pub fn run(suite: &Suite, entries: Vec<Entry>, opts: &BatchOptions) -> Result<bool> {
    let batch = run_batch(suite, entries, opts)?;
    batch.finish(&opts.outputs, Vec::new())
}

/// What a batch found, before its results files are written.
pub struct Batch {
    /// Every test passed (or failed as a known kernel bug says).
    pub ok: bool,
    pub records: Vec<TestRecord>,
    /// The targets' labels.
    pub targets: Vec<String>,
    /// A target whose kernel never booted to the agent, and why.
    pub unbootable: Option<String>,
    /// `--baseline KERNEL`: the HTML report flags rows that differ from it.
    pub baseline: Option<String>,
}

impl Batch {
    /// Write the results files with `more` records (another suite's run
    /// alongside); then a kernel that never booted is the error it is.
    pub fn finish(self, outputs: &Outputs, more: Vec<TestRecord>) -> Result<bool> {
        if outputs.any() {
            let mut records = self.records;
            records.extend(more);
            outputs.write(&Results::new(records), &self.targets, self.baseline.as_deref())?;
        }
        if let Some(why) = self.unbootable {
            return Err(Error::KernelDidNotBoot(why));
        }
        Ok(self.ok)
    }
}

/// [`run`] without writing the results files.
pub fn run_batch(suite: &Suite, entries: Vec<Entry>, opts: &BatchOptions) -> Result<Batch> {
    let repeat = opts.repeat.max(1);
    let targets = plan::selected_targets(suite, &opts.cells)?;
    check_baseline(suite)?;
    let (work, skipped) = split_work(suite, entries, &targets, opts.filter.as_deref())?;
    let ready = ready_targets(suite, &targets, &work)?;
    let jobs = opts.jobs.unwrap_or_else(default_vms).max(1);
    crate::base::output::note(format!(
        "hidvm: running {} tests ({} skipped), {jobs} VMs at a time{}{}",
        work.len(),
        skipped.len(),
        if repeat > 1 { format!(", {repeat} times") } else { String::new() },
        match ready.to_build.len() {
            0 => String::new(),
            n => format!(
                "; {n} kernel(s) to build first ({}), each target's tests starting once its kernel is built",
                ready.to_build.iter().map(|t| t.label()).collect::<Vec<_>>().join(", ")
            ),
        }
    ));
    crate::base::output::tests_started(work.len() * repeat);
    let started = std::time::Instant::now();
    let rounds = run_rounds(suite, &work, ready, jobs, repeat, opts.verbose)?;
    crate::base::output::tests_done();
    let changes = known_changes(suite, &rounds);

    let matrix = matrix_of(suite, &targets, &work, &skipped, &rounds, &changes);
    println!("\n{}", matrix.render());
    let records = records_of(suite, &work, &skipped, &rounds, &changes);
    print_findings(suite, &targets, &work, &rounds, repeat);
    for why in changes.values() {
        println!("{why}");
    }
    println!("wall time {:.1} s", started.elapsed().as_secs_f64());
    Ok(Batch {
        ok: matrix.all_passed(),
        records,
        targets: targets.iter().map(|t| t.label()).collect(),
        unbootable: unbootable(&targets, &work, &rounds),
        baseline: suite.opts.baseline.clone(),
    })
}

/// A target on which no test's guest ever answered: its kernel does not
/// boot to the agent, which says nothing about any test (`git bisect run`
/// must skip such a commit, not call it bad).
fn unbootable(targets: &[Target], work: &[TestCase], rounds: &Rounds) -> Option<String> {
    for t in targets {
        let runs: Vec<&RunReport> = work
            .iter()
            .zip(&rounds.last)
            .filter(|(c, _)| &c.target == t)
            .filter_map(|(_, r)| r.as_ref().and_then(|r| r.as_ref().ok()))
            .collect();
        if !runs.is_empty() && runs.iter().all(|r| r.never_answered()) {
            return Some(format!(
                "{t}: the kernel did not boot to the guest agent in any of its {} tests (first: {}/console.log)",
                runs.len(),
                runs[0].run_dir.display()
            ));
        }
    }
    None
}

/// The tests of `entries` on `targets`: those to run and those skipped;
/// nothing to run is an error naming what was asked for.
fn split_work(
    suite: &Suite,
    entries: Vec<Entry>,
    targets: &[Target],
    filter: Option<&str>,
) -> Result<(Vec<TestCase>, Vec<TestCase>)> {
    let (work, skipped): (Vec<TestCase>, Vec<TestCase>) =
        plan::tests_of(suite, entries, targets, filter)?.into_iter().partition(|c| c.skip.is_none());
    if work.is_empty() {
        return Err(Error::NoTests(format!(
            "no test {} on {}; `hidvm list --long` shows the test names{}",
            filter.map(|f| format!("matching the filter `{f}` runs")).unwrap_or_else(|| "runs".into()),
            targets.iter().map(|t| t.label()).collect::<Vec<_>>().join(", "),
            if skipped.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} skipped, e.g. {}: {})",
                    skipped.len(),
                    skipped[0].name(),
                    skipped[0].skip.as_deref().unwrap_or_default()
                )
            }
        )));
    }
    Ok((work, skipped))
}

/// Bad input fails before any VM boots: every test's scenario is loaded
/// and checked (no kernel needed), and on each target whose kernel is
/// already there (cached or prebuilt) its programs are compiled and
/// matched to their devices. A target still to build has its programs
/// compiled by its first tests; a program that does not compile fails
/// those tests with the compiler's message.
fn ready_targets(suite: &Suite, targets: &[Target], work: &[TestCase]) -> Result<Targets> {
    check_inputs(suite, work)?;
    let mut ready = Vec::new();
    let mut to_build = Vec::new();
    // Only the targets some test runs on are built.
    for t in targets.iter().filter(|t| work.iter().any(|c| &c.target == *t)) {
        match suite.cached_kernel(t)? {
            Some(_) => ready.push(t.clone()),
            None => to_build.push(t.clone()),
        }
    }
    let cases: Vec<&TestCase> = work.iter().filter(|c| ready.contains(&c.target)).collect();
    if !cases.is_empty() {
        let preparing = crate::base::output::start(crate::base::output::Phase::Work {
            what: &format!("preparing {} tests (compiling and matching programs)", cases.len()),
        });
        for case in cases {
            prepare(suite, &case.target, &case.entry)?;
        }
        preparing.finish("ready");
    }
    let cells: Vec<String> = suite.all_cells.iter().map(|c| c.name.clone()).collect();
    let kernels: Vec<String> = suite.all_kernels.iter().map(|k| k.name.clone()).collect();
    Ok(Targets { ready, to_build: pipeline::build_order(to_build, &cells, &kernels) })
}

/// Every test of `work` `repeat` times, each round in full before the
/// next; the first round builds the kernels `targets` still needs.
fn run_rounds(
    suite: &Suite,
    work: &[TestCase],
    mut targets: Targets,
    jobs: usize,
    repeat: usize,
    verbose: bool,
) -> Result<Rounds> {
    let mut rounds = Rounds {
        tallies: vec![Tally::default(); work.len()],
        last: Vec::new(),
        used_allow: BTreeSet::new(),
        ends: vec![Vec::new(); work.len()],
        entries: vec![None; work.len()],
        boots: BTreeSet::new(),
    };
    for round in 1..=repeat {
        let t = std::time::Instant::now();
        // Each round of a --repeat run starts from a template of its own,
        // booted afresh: N rounds sample N boots, not one boot N times.
        let generation = if repeat > 1 { round as u32 } else { 0 };
        suite.generation.store(generation, std::sync::atomic::Ordering::SeqCst);
        let results = pipeline::run(suite, work, &targets, jobs, |case, r| match r {
            Ok(rep) if rep.verdict.passed() && !verbose => crate::base::output::test_finished(
                true,
                &format!("  pass  {} ({:.1} s)", rep.test, rep.vm_seconds),
                None,
            ),
            Ok(rep) => crate::base::output::test_finished(rep.acceptable(), &rep.test, Some(&rep.render())),
            Err(e) => crate::base::output::test_finished(false, &format!("  ERROR {}: {e}", case.name()), None),
        })?;
        // Built now: later rounds start every target at once.
        targets.ready.append(&mut targets.to_build);
        let mut round_tally = Tally::default();
        for (i, r) in results.iter().enumerate() {
            let end = RoundEnd::of(r);
            rounds.tallies[i].add(end);
            rounds.ends[i].push(end);
            round_tally.add(end);
            if let Ok(rep) = r {
                rounds.used_allow.extend(rep.allowed.iter().map(|(i, _)| *i));
                rounds.entries[i] = rounds.entries[i].or(rep.known.entry());
            }
        }
        if repeat > 1 {
            crate::base::output::note(format!(
                "hidvm: round {round}/{repeat}: {} passed, {} known kernel bugs, {} failed, {:.1} s",
                round_tally.pass,
                round_tally.known,
                round_tally.fail,
                t.elapsed().as_secs_f64()
            ));
        }
        if generation > 0 {
            // This round's templates are never used again.
            for key in snapshot_keys(&results) {
                rounds.boots.insert(key.clone());
                if let Err(e) = crate::vm::snapshot::remove(&suite.cache, &key) {
                    crate::base::output::note(format!("hidvm: removing round {round}'s snapshot {key}: {e}"));
                }
            }
        }
        rounds.last = results.into_iter().map(Some).collect();
    }
    suite.generation.store(0, std::sync::atomic::Ordering::SeqCst);
    Ok(rounds)
}

/// The snapshots a round's tests started from.
fn snapshot_keys(results: &[Result<RunReport>]) -> BTreeSet<String> {
    results
        .iter()
        .flatten()
        .filter_map(|r| r.started_from.strip_prefix("snapshot "))
        .map(|k| k.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

/// `--baseline` names one of the run's kernels.
fn check_baseline(suite: &Suite) -> Result<()> {
    match &suite.opts.baseline {
        Some(b) if !suite.kernels.iter().any(|k| &k.name == b) => Err(Error::Other(format!(
            "--baseline {b}: not one of this run's kernels ({}); name it in --kernels too",
            suite.kernels.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
        ))),
        _ => Ok(()),
    }
}

/// The scenario x target matrix: a test whose rounds varied shows how.
fn matrix_of(
    suite: &Suite,
    targets: &[Target],
    work: &[TestCase],
    skipped: &[TestCase],
    rounds: &Rounds,
    changes: &Changes,
) -> Matrix {
    let mut matrix = Matrix::new(targets.to_vec());
    matrix.baseline = suite.opts.baseline.clone();
    for t in targets {
        if let Ok(s) = suite.source(&t.kernel) {
            let text = if s.label == s.description { s.label } else { format!("{} = {}", s.label, s.description) };
            matrix.sources.insert(t.kernel.clone(), text);
        }
    }
    for (i, (case, r)) in work.iter().zip(&rounds.last).enumerate() {
        let row = case.entry.row();
        let t = &rounds.tallies[i];
        if t.known > 0 && rounds.entries[i].is_some_and(|e| changes.contains_key(&e)) {
            let text = format!("CHANGED: known bug {}/{}", t.known, t.rounds());
            matrix.record_text(&row, &case.target, text, false);
            continue;
        }
        if let Some(text) = rounds.tallies[i].cell() {
            match rounds.tallies[i].summary() {
                Summary::KnownSometimes => matrix.record_known_by_chance(&row, &case.target, text),
                _ => matrix.record_text(&row, &case.target, text, false),
            }
            continue;
        }
        match r {
            // A known bug that shows only sometimes (a measured rate) and
            // showed here says nothing about a compiler or a kernel.
            Some(Ok(rep)) if matches!(rep.known, Known::Failed(i, _) if suite.known.known[i].rate() != known::Rate::Always) =>
            {
                matrix.record(&row, &case.target, Ok(rep));
                let text = format!("KNOWN ({})", rep.verdict.token());
                matrix.record_known_by_chance(&row, &case.target, text);
            }
            Some(Ok(rep)) => matrix.record(&row, &case.target, Ok(rep)),
            Some(Err(e)) => matrix.record(&row, &case.target, Err(&e.to_string())),
            None => {}
        }
        // One hit of a race known to hit sometimes says nothing about a kernel.
        let measured = rounds.entries[i].is_some_and(|e| suite.known.known[e].rate() != known::Rate::Always);
        if t.known > 0 && t.rounds() == 1 && measured {
            matrix.mark_rare(&row, &case.target);
        }
    }
    for case in skipped {
        matrix.record_skip(&case.entry.row(), &case.target, case.skip.as_deref().unwrap_or_default());
    }
    matrix
}

/// One record per test: how its rounds ended, or its last run's report.
fn records_of(
    suite: &Suite,
    work: &[TestCase],
    skipped: &[TestCase],
    rounds: &Rounds,
    changes: &Changes,
) -> Vec<TestRecord> {
    let tallies = &rounds.tallies;
    let rate = |e: Option<usize>| e.map(|e| suite.known.known[e].rate.clone());
    let mut records: Vec<TestRecord> = work
        .iter()
        .zip(&rounds.last)
        .enumerate()
        .filter_map(|(i, (case, r))| {
            let row = case.entry.row();
            let varied =
                |status| TestRecord::without_run(&case.name(), &row, &case.target, status, &tallies[i].describe());
            let change = rounds.entries[i].and_then(|e| changes.get(&e)).filter(|_| tallies[i].known > 0);
            let mut record = match (change, tallies[i].summary(), r.as_ref()?) {
                (Some(why), _, _) => TestRecord::without_run(&case.name(), &row, &case.target, Status::Fail, why),
                (None, Summary::Flaky, _) => varied(Status::Flaky),
                (None, Summary::KnownSometimes, _) => varied(Status::Known),
                (None, Summary::Steady, Ok(rep)) => TestRecord::from_report(&row, rep, rate(rounds.entries[i])),
                (None, Summary::Steady, Err(e)) => {
                    TestRecord::without_run(&case.name(), &row, &case.target, Status::Error, &e.to_string())
                }
            };
            if let Some(Ok(rep)) = r.as_ref() {
                // What the record of a varied test cannot take from one report.
                record.kernel_source.get_or_insert_with(|| rep.kernel_source.clone());
                if record.known.is_none() {
                    record.known = rep.known.entry().map(|e| crate::results::records::KnownRef {
                        entry: e + 1,
                        rate: suite.known.known[e].rate.clone(),
                        matched: tallies[i].known > 0 && change.is_none(),
                    });
                }
            }
            if rounds.ends[i].len() > 1 {
                record.rounds = rounds.ends[i].iter().map(|e| e.status()).collect();
            }
            Some(record)
        })
        .collect();
    records.extend(skipped.iter().map(|c| {
        TestRecord::without_run(&c.name(), &c.entry.row(), &c.target, Status::Skip, c.skip.as_deref().unwrap_or(""))
    }));
    records
}

/// After the matrix: the rounds in numbers, known failures whose test
/// passed, and allow-list entries that excused nothing.
fn print_findings(suite: &Suite, targets: &[Target], work: &[TestCase], rounds: &Rounds, repeat: usize) {
    let tallies = &rounds.tallies;
    if repeat > 1 {
        let count = |s: Summary| tallies.iter().filter(|t| t.summary() == s).count();
        let always_failed = tallies.iter().filter(|t| t.failed_every_round()).count();
        println!(
            "{repeat} runs x {} tests: {} flaky, {always_failed} failed every run, {} hit a known kernel bug in some runs and passed in the others; {} distinct guest boots sampled (a fresh snapshot template per round and target)",
            work.len(),
            count(Summary::Flaky),
            count(Summary::KnownSometimes),
            rounds.boots.len()
        );
    }
    // A known kernel bug whose test passed: fixed in this kernel, or a race
    // that missed its window this time.
    for (r, t) in rounds.last.iter().zip(tallies) {
        let Some(Ok(r)) = r else { continue };
        if t.known > 0 {
            continue; // it did fail as known in another round
        }
        if let Known::Passed(i) = r.known {
            println!(
                "known failure {} ({}) passed on {}-{} (Linux {}): fixed in this kernel, or its race missed the window this time; remove the entry once it keeps passing",
                i + 1,
                r.scenario,
                r.kernel,
                r.cell,
                r.kernel_version
            );
        }
    }
    // Allow-list entries that excused nothing in this run are stale.
    for (i, a) in suite.allow.allow.iter().enumerate() {
        let applies = targets.iter().any(|t| a.applies_to(&t.cell));
        if applies && !rounds.used_allow.contains(&i) {
            println!(
                "allow-list entry {} ({} `{}`: {}) matched nothing in this run; remove it if the splat is gone",
                i + 1,
                a.class,
                a.contains,
                a.reason
            );
        }
    }
}
