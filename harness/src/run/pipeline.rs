//! A batch as a pipeline: a builder thread makes the targets ready one at
//! a time (their kernel built) while a pool of VMs runs the tests of the
//! targets already ready; results print as they come.
//!
//! **Build order.** Targets whose kernel is already there come first (their
//! tests start at once); the others are built cell-major, in the order of
//! `guest-image/cells.toml` and `kernels.toml`: 6.12-gcc, 7.3-gcc,
//! 6.12-llvm, 7.3-llvm. A gcc build takes 10–25 % less than an LLVM one of
//! the same tree here (286 / 325 s against 330 / ~420 s), and 6.12 less
//! than 7.3, so the first verdicts come soonest; the second build brings
//! the other kernel, whose verdicts differ from 6.12's most often (7.3's
//! own bugs, its device programs); the LLVM builds, the longest, run while
//! the gcc targets' tests take what the build leaves of the cores.
//!
//! **Sharing the cores.** A build that runs while tests run does so at
//! nice 10 (`HIDVM_BUILD_NICE`; Linux keeps the nice value per thread, and
//! make and every compiler it starts inherit it): a VM gets a core when its
//! guest wants one (guests are timed, and race scenarios need their CPUs),
//! and the build takes what the VMs leave, which is much (a guest spends a
//! good part of its time waiting). The first build, with no test running
//! yet, keeps its priority. One kernel build at a time, as always (the
//! machine-wide build slot).
//!
//! **Order of tests.** Longest first, as measured in this checkout's last
//! run of each test (`latest/report.json`), so a long race does not start
//! last and hold up the end; unknown tests count as long and keep catalogue
//! order. The very first test taken is the quickest known one, so the first
//! verdict comes as soon as it can.
use crate::base::error::{Error, Result};
use crate::base::layout::test_dir_name;
use crate::kernel::spec::Target;
use crate::results::report::RunReport;
use crate::run::one_test;
use crate::run::plan::TestCase;
use crate::run::suite::Suite;
use crate::vm::agent;
use std::sync::{Condvar, Mutex};

/// The targets of one batch: those ready now, and those still to build,
/// in build order.
pub struct Targets {
    pub ready: Vec<Target>,
    pub to_build: Vec<Target>,
}

/// Targets to build, in the order they are built (see the module's notes):
/// cell-major, each cell and kernel in the order the run lists them.
pub fn build_order(mut to_build: Vec<Target>, cells: &[String], kernels: &[String]) -> Vec<Target> {
    let rank = |names: &[String], n: &str| names.iter().position(|x| x == n).unwrap_or(usize::MAX);
    to_build.sort_by_key(|t| (rank(cells, &t.cell), rank(kernels, &t.kernel)));
    to_build
}

/// Tests waiting for a VM: (estimated seconds, index into the work).
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    changed: Condvar,
}

#[derive(Default)]
struct QueueState {
    waiting: Vec<(f64, usize)>,
    /// No more tests will come.
    closed: bool,
    taken: usize,
}

impl Queue {
    fn push(&self, items: impl IntoIterator<Item = (f64, usize)>) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).waiting.extend(items);
        self.changed.notify_all();
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.changed.notify_all();
    }

    /// The next test to run (blocking until one is queued), or None once
    /// the queue is closed and empty.
    fn next(&self) -> Option<usize> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(at) = pick(&s.waiting, s.taken == 0) {
                s.taken += 1;
                return Some(s.waiting.swap_remove(at).1);
            }
            if s.closed {
                return None;
            }
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Which waiting test goes next: the longest (or, for the very first, the
/// quickest), the earlier in the work on a tie.
fn pick(waiting: &[(f64, usize)], quickest: bool) -> Option<usize> {
    let key = |&(secs, index): &(f64, usize)| (if quickest { -secs } else { secs }, std::cmp::Reverse(index));
    (0..waiting.len()).max_by(|&a, &b| key(&waiting[a]).partial_cmp(&key(&waiting[b])).expect("no NaN estimates"))
}

/// How long each test took in this checkout's last run of it (infinite
/// when unknown: run early, in catalogue order).
fn estimates(suite: &Suite, work: &[TestCase]) -> Vec<f64> {
    work.iter()
        .map(|c| {
            let label = c.target.label();
            let report = suite.repo.runs_dir().join(&label).join(test_dir_name(&c.name())).join("latest/report.json");
            std::fs::read(report)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["vm_seconds"].as_f64())
                .filter(|s| s.is_finite())
                .unwrap_or(f64::INFINITY)
        })
        .collect()
}

/// Lower this thread's priority (and so that of every process it starts)
/// to `HIDVM_BUILD_NICE`, 10 by default: a build in the background takes
/// the CPU the tests and the first kernel build leave.
pub fn lower_priority() {
    let nice = std::env::var("HIDVM_BUILD_NICE").ok().and_then(|n| n.parse().ok()).unwrap_or(10);
    if nice != 0 {
        // who = 0: on Linux, the calling thread.
        if let Err(e) = rustix::process::setpriority_process(None, nice) {
            crate::base::output::note(format!("hidvm: could not lower a background build's priority: {e}"));
        }
    }
}

/// Run every test of `work` once: those of `targets.ready` at once, those
/// of `targets.to_build` once their kernel is built; `jobs` VMs at a time,
/// `finished` seeing each result as it comes. Results in `work` order; a
/// failed build (or agent build) is the error, after the tests already
/// running have ended.
pub fn run(
    suite: &Suite,
    work: &[TestCase],
    targets: &Targets,
    jobs: usize,
    finished: impl Fn(&TestCase, &Result<RunReport>) + Sync,
) -> Result<Vec<Result<RunReport>>> {
    let queue = Queue::default();
    let estimates = estimates(suite, work);
    let push = |t: &Target| {
        queue.push(work.iter().enumerate().filter(|(_, c)| &c.target == t).map(|(i, _)| (estimates[i], i)))
    };
    let results = Mutex::new(Vec::new());
    let built = std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                while let Some(i) = queue.next() {
                    let r = one_test::run(suite, &work[i].target, &work[i].entry);
                    finished(&work[i], &r);
                    results.lock().unwrap_or_else(|e| e.into_inner()).push((i, r));
                }
            });
        }
        let builder = s.spawn(|| {
            // The agent builds beside the first kernel.
            let agent = s.spawn(|| agent::ensure(&suite.repo));
            let r = build_all(suite, targets, agent, &push);
            queue.close();
            r
        });
        builder.join().unwrap_or_else(|_| Err(Error::Other("the builder thread panicked".into())))
    });
    built?;
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}

/// The builder's work: the agent and the ready targets' tests, then each
/// kernel in turn, its tests queued as soon as it is there.
fn build_all(
    suite: &Suite,
    targets: &Targets,
    agent: std::thread::ScopedJoinHandle<'_, Result<std::path::PathBuf>>,
    push: &dyn Fn(&Target),
) -> Result<()> {
    let mut agent = Some(agent);
    let mut agent_ready = || -> Result<()> {
        if let Some(handle) = agent.take() {
            let bin = handle.join().unwrap_or_else(|_| Err(Error::AgentBuild("its thread panicked".into())))?;
            crate::base::output::note(format!("hidvm: guest agent: {}", bin.display()));
        }
        Ok(())
    };
    if !targets.ready.is_empty() {
        agent_ready()?;
        targets.ready.iter().for_each(push);
    }
    for (i, t) in targets.to_build.iter().enumerate() {
        // Tests are running from the second build on (or from the first,
        // with targets ready): build in a thread of lower priority (a
        // thread's nice value can be lowered, never raised again). A build
        // no test waits beside keeps its priority: other work on the
        // machine must not starve the first verdict.
        let k = if i > 0 || !targets.ready.is_empty() {
            std::thread::scope(|s| {
                s.spawn(|| {
                    lower_priority();
                    suite.kernel(t)
                })
                .join()
                .unwrap_or_else(|_| Err(Error::Other(format!("building {t}: the build thread panicked"))))
            })?
        } else {
            suite.kernel(t)?
        };
        crate::base::output::note(format!(
            "hidvm: {t}: {} ({}); its tests start now",
            if k.built_now { "built" } else { "cached" },
            k.vmlinux.display()
        ));
        drop(k);
        agent_ready()?;
        push(t);
    }
    agent_ready()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_go_cell_major_gcc_first() {
        let t = |k: &str, c: &str| Target::new(k, c);
        let all = vec![t("6.12", "gcc"), t("6.12", "llvm"), t("7.3", "gcc"), t("7.3", "llvm")];
        let order = build_order(all, &["gcc".into(), "llvm".into()], &["6.12".into(), "7.3".into()]);
        let labels: Vec<String> = order.iter().map(|t| t.label()).collect();
        assert_eq!(labels, ["6.12-gcc", "7.3-gcc", "6.12-llvm", "7.3-llvm"]);
    }

    #[test]
    fn the_quickest_goes_first_then_the_longest_unknown_counting_as_long() {
        let q = Queue::default();
        q.push([(2.0, 0), (0.5, 1), (9.0, 2), (f64::INFINITY, 3), (0.7, 4)]);
        q.close();
        let order: Vec<usize> = std::iter::from_fn(|| q.next()).collect();
        assert_eq!(order, [1, 3, 2, 0, 4]);
    }

    #[test]
    fn ties_keep_the_work_order_and_a_closed_queue_drains() {
        let q = Queue::default();
        q.push([(f64::INFINITY, 2), (f64::INFINITY, 0), (f64::INFINITY, 1)]);
        q.close();
        let order: Vec<usize> = std::iter::from_fn(|| q.next()).collect();
        assert_eq!(order, [0, 1, 2]);
    }

    #[test]
    fn a_worker_waits_for_tests_still_to_come() {
        let q = Queue::default();
        std::thread::scope(|s| {
            let taker = s.spawn(|| q.next());
            std::thread::sleep(std::time::Duration::from_millis(50));
            q.push([(1.0, 7)]);
            assert_eq!(taker.join().unwrap(), Some(7));
            let waiting = s.spawn(|| q.next());
            q.close();
            assert_eq!(waiting.join().unwrap(), None);
        });
    }
}
