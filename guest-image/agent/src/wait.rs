//! Waiting for the kernel: a condition polled until a deadline, and poll(2)
//! on one fd. Device nodes, link teardown and object frees all happen
//! asynchronously to the syscall that causes them.
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// Call `probe` every `every` until it yields a value; give up (None) once
/// `deadline` has passed. `probe` runs at least once.
pub fn poll_until<T>(deadline: Duration, every: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let t0 = Instant::now();
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if t0.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// poll(2) `fd` for input for up to `wait`: the returned events (empty on
/// timeout), or None if poll itself failed.
pub fn poll_fd(fd: BorrowedFd<'_>, wait: Duration) -> Option<PollFlags> {
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let ts = Timespec { tv_sec: wait.as_secs() as i64, tv_nsec: wait.subsec_nanos() as i64 };
    poll(&mut fds, Some(&ts)).ok().map(|_| fds[0].revents())
}

/// Everything queued now; if nothing is and `wait` is set, wait that long
/// for the fd to become readable and take what arrived.
pub fn drain_or_wait<T>(
    fd: BorrowedFd<'_>,
    wait: Option<Duration>,
    mut drain: impl FnMut() -> Result<Vec<T>, String>,
) -> Result<Vec<T>, String> {
    let out = drain()?;
    match wait {
        Some(wait) if out.is_empty() && poll_fd(fd, wait).is_some_and(|r| !r.is_empty()) => drain(),
        _ => Ok(out),
    }
}

/// Retry `find` until it yields a path that exists in /dev (devtmpfs nodes
/// appear asynchronously after the sysfs entry).
pub fn wait_node(deadline: Duration, find: impl Fn() -> Option<String>) -> Option<String> {
    poll_until(deadline, Duration::from_millis(5), || find().filter(|p| Path::new(p).exists()))
}
