//! Per-container lock files: `RUNROOT/locks/ID.lock`, held with flock(2).
//!
//! Commands that act on one container (start, stop, kill, exec, rm) hold its lock for the
//! duration, exclusive for changes and shared for readers that need a stable view (attach,
//! logs). Two different containers never contend, and no command takes a lock over all of them.
//! The runroot is per boot (a tmpfs), so stale lock files vanish with a reboot, and a process
//! that dies releases its flock with its last file descriptor.
//!
//! Removing a lock file while another process waits on it would let that process lock an
//! unlinked inode while a third creates a fresh file under the same name. So after every
//! acquisition the holder checks that the path still names the inode it locked, and retries
//! if not; [`ContainerLock::remove`] unlinks only while holding the lock exclusively.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use super::ids::is_full_id;
use super::StateError;

/// The directory of lock files.
#[derive(Debug, Clone)]
pub struct ContainerLocks {
    dir: PathBuf,
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct ContainerLock {
    path: PathBuf,
    /// Held open for its flock; closing it releases the lock.
    _file: File,
    exclusive: bool,
}

impl ContainerLocks {
    /// Lock files under `RUNROOT/locks`, creating the directory (mode 0700) if needed.
    pub fn new(runroot: &Path) -> Result<Self, StateError> {
        let dir = runroot.join("locks");
        fs::create_dir_all(&dir)
            .map_err(|source| StateError::CreateLockDir { path: dir.clone(), source })?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.lock"))
    }

    /// Waits for and takes container `id`'s lock exclusively.
    pub fn lock(&self, id: &str) -> Result<ContainerLock, StateError> {
        self.acquire(id, true, false).map(|lock| lock.expect("blocking acquisition always locks"))
    }

    /// Waits for and takes container `id`'s lock shared.
    pub fn lock_shared(&self, id: &str) -> Result<ContainerLock, StateError> {
        self.acquire(id, false, false).map(|lock| lock.expect("blocking acquisition always locks"))
    }

    /// Takes the exclusive lock if nobody holds the lock now; `None` if someone does.
    pub fn try_lock(&self, id: &str) -> Result<Option<ContainerLock>, StateError> {
        self.acquire(id, true, true)
    }

    fn acquire(
        &self,
        id: &str,
        exclusive: bool,
        nonblocking: bool,
    ) -> Result<Option<ContainerLock>, StateError> {
        // The id becomes a file name: only a real id may, never a path.
        if !is_full_id(id) {
            return Err(StateError::InvalidId { id: id.to_owned() });
        }
        let path = self.path_of(id);
        let operation = match (exclusive, nonblocking) {
            (true, false) => FlockOperation::LockExclusive,
            (true, true) => FlockOperation::NonBlockingLockExclusive,
            (false, false) => FlockOperation::LockShared,
            (false, true) => FlockOperation::NonBlockingLockShared,
        };
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)
                .map_err(|source| StateError::OpenLock { path: path.clone(), source })?;
            match flock(&file, operation) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) if nonblocking => return Ok(None),
                Err(err) => {
                    return Err(StateError::Lock { path: path.clone(), source: err.into() })
                }
            }
            if still_named(&file, &path)? {
                return Ok(Some(ContainerLock { path, _file: file, exclusive }));
            }
            // The file was removed (or replaced) while we waited: lock the current one.
        }
    }
}

/// Whether `path` still names the inode `file` has open.
fn still_named(file: &File, path: &Path) -> Result<bool, StateError> {
    let held =
        file.metadata().map_err(|source| StateError::Lock { path: path.to_owned(), source })?;
    match fs::metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StateError::Lock { path: path.to_owned(), source }),
    }
}

impl ContainerLock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// Unlinks the lock file (the container is gone), then releases the lock. Waiters wake
    /// up, see the file unlinked and lock a fresh one.
    pub fn remove(self) -> Result<(), StateError> {
        debug_assert!(self.exclusive, "a lock file is removed only under the exclusive lock");
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::RemoveLock { path: self.path.clone(), source }),
        }
        // `self._file` closes here, which releases the flock.
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::thread;

    use super::*;
    use crate::state::generate_id;

    #[test]
    fn exclusive_lock_excludes_and_other_ids_do_not_contend() {
        let dir = tempfile::tempdir().unwrap();
        let locks = ContainerLocks::new(dir.path()).unwrap();
        let (a, b) = (generate_id().unwrap(), generate_id().unwrap());
        let held = locks.lock(&a).unwrap();
        assert!(locks.try_lock(&a).unwrap().is_none(), "a second exclusive lock was granted");
        let other = locks.try_lock(&b).unwrap();
        assert!(other.is_some(), "locking one container blocked another");
        drop(held);
        assert!(locks.try_lock(&a).unwrap().is_some());
    }

    #[test]
    fn shared_locks_coexist_but_exclude_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let locks = ContainerLocks::new(dir.path()).unwrap();
        let id = generate_id().unwrap();
        let r1 = locks.lock_shared(&id).unwrap();
        let r2 = locks.lock_shared(&id).unwrap();
        assert!(locks.try_lock(&id).unwrap().is_none());
        drop((r1, r2));
        assert!(locks.try_lock(&id).unwrap().is_some());
    }

    #[test]
    fn ids_that_are_not_ids_are_refused_as_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let locks = ContainerLocks::new(dir.path()).unwrap();
        assert!(matches!(locks.lock("../../etc/passwd"), Err(StateError::InvalidId { .. })));
    }

    // Removing the file while others wait must not let two holders in at once: every thread
    // increments a counter under the lock and checks nobody else is inside.
    #[test]
    fn removal_while_others_wait_keeps_mutual_exclusion() {
        let dir = tempfile::tempdir().unwrap();
        let locks = ContainerLocks::new(dir.path()).unwrap();
        let id = generate_id().unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let (locks, id, inside, barrier) =
                    (locks.clone(), id.clone(), inside.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    for round in 0..50 {
                        let lock = locks.lock(&id).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                        inside.fetch_sub(1, Ordering::SeqCst);
                        if (n + round) % 3 == 0 {
                            lock.remove().unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
