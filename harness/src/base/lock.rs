//! Advisory file locks (flock) coordinating test processes: nextest runs
//! every test in its own process, and several may need the same kernel.
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

pub struct FileLock {
    file: File,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Shared,
    Exclusive,
}

impl FileLock {
    /// Take the lock, blocking. If someone else holds it, print what we
    /// wait for (to stderr: nextest shows it, and stdout stays clean).
    pub fn acquire(path: &Path, mode: Mode, what: &str) -> std::io::Result<FileLock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let (try_op, op) = match mode {
            Mode::Shared => (FlockOperation::NonBlockingLockShared, FlockOperation::LockShared),
            Mode::Exclusive => (FlockOperation::NonBlockingLockExclusive, FlockOperation::LockExclusive),
        };
        // Short waits (another thread checking a cache entry) stay silent;
        // a wait that lasts says what it waits for (a kernel build, say).
        let started = std::time::Instant::now();
        while flock(&file, try_op).is_err() {
            if started.elapsed() < std::time::Duration::from_millis(1500) {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            let holder = std::fs::read_to_string(path).unwrap_or_default();
            crate::base::output::note(format!(
                "hidvm: waiting for {what} ({}{})",
                path.display(),
                if holder.trim().is_empty() {
                    String::new()
                } else {
                    format!("; last exclusive holder: {}", holder.trim())
                }
            ));
            flock(&file, op)?;
            break;
        }
        let mut lock = FileLock { file };
        if mode == Mode::Exclusive {
            lock.note_holder();
        }
        Ok(lock)
    }

    /// Take the lock if nobody holds it in a conflicting mode; `None` if
    /// someone does.
    pub fn try_acquire(path: &Path, mode: Mode) -> std::io::Result<Option<FileLock>> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let op = match mode {
            Mode::Shared => FlockOperation::NonBlockingLockShared,
            Mode::Exclusive => FlockOperation::NonBlockingLockExclusive,
        };
        Ok(flock(&file, op).ok().map(|_| FileLock { file }))
    }

    /// Turn an exclusive lock into a shared one (others may read, nobody
    /// may rebuild). flock does not promise atomicity here, so callers
    /// re-validate what they guard afterwards.
    pub fn downgrade(self) -> std::io::Result<FileLock> {
        flock(&self.file, FlockOperation::LockShared)?;
        Ok(self)
    }

    /// Let child processes inherit the lock (clear close-on-exec): a build
    /// whose harness process was killed keeps its lock until `make` and
    /// every compiler it started are gone, so nobody starts a second make
    /// in the same directory.
    pub fn share_with_children(&self, share: bool) -> std::io::Result<()> {
        use rustix::io::{fcntl_setfd, FdFlags};
        fcntl_setfd(&self.file, if share { FdFlags::empty() } else { FdFlags::CLOEXEC }).map_err(std::io::Error::from)
    }

    fn note_holder(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.seek(SeekFrom::Start(0));
        let _ = writeln!(self.file, "pid {}", std::process::id());
    }
}
