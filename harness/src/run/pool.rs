//! Many tests at once: a pool of threads, each running one test (one VM)
//! at a time.
use crate::base::error::Result;
use crate::base::host::cores;
use crate::results::report::RunReport;
use crate::run::one_test;
use crate::run::plan::TestCase;
use crate::run::suite::Suite;

/// VMs at a time by default: one and a half per core. A test's guest spends
/// much of its time waiting (for work items, settles, quiet periods), not
/// computing: with one VM per core the 6.12 catalogue used 59% of two cores
/// under TCG and took 188-202 s; with three VMs, 139 s; with four, 126 s
/// and race rounds slowed by the contention (docs/measurements.md).
pub fn default_vms() -> usize {
    let c = cores();
    c + c.div_ceil(2)
}

/// Run every test of `work` once, `jobs` VMs at a time; `finished` sees
/// each result as it comes. Results are returned in `work` order.
/// Skipped cases are the caller's to report; they must not be here.
pub fn run_parallel(
    suite: &Suite,
    work: &[TestCase],
    jobs: usize,
    finished: impl Fn(&TestCase, &Result<RunReport>) + Sync,
) -> Vec<Result<RunReport>> {
    in_parallel(work, jobs, |case| {
        let r = one_test::run(suite, &case.target, &case.entry);
        finished(case, &r);
        r
    })
}

/// `f` on every item of `work`, `jobs` threads at a time, each taking the
/// next item not yet taken; the results in `work` order.
pub fn in_parallel<T: Sync, R: Send>(work: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let idx = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(item) = work.get(idx) else { break };
                let r = f(item);
                results.lock().unwrap().push((idx, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
