//! The per-user user namespace of rootless berth, as Podman keeps one: a user namespace (and a
//! mount namespace owned by it) per user, mapping the user's own uid to 0 and the user's
//! /etc/subuid and /etc/subgid ranges above it, kept alive by a tiny pause process whose pid is
//! in `$XDG_RUNTIME_DIR/berth/pause.pid` (or `/tmp/berth-$UID/pause.pid`).
//!
//! Every rootless command that touches storage or containers joins it with setns(2) before any
//! thread exists, so layer files get the owners the image gives them, overlays are mounted
//! once for every berth process of that user, and containers need no user namespace of their
//! own. The first command to need it makes it ([`pause`]); a pid file whose process is gone,
//! or whose pid now belongs to something else (another start time, or no user namespace of its
//! own), is replaced. `berth system migrate` ends the pause process ([`stop`]).
//!
//! Inside the namespace berth's effective uid is 0; [`host_ids`] tells the uid and gid the
//! process has on the host, which is what decides rootless paths and defaults.

mod pause;

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{pidfd_open, Pid, PidfdFlags};
use rustix::thread::ThreadNameSpaceType;
use tracing::debug;

pub use pause::pause_forever;

/// Errors of making, joining and ending the per-user namespace.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("creating the runtime directory {path}")]
    RuntimeDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("runtime directory {path} belongs to uid {owner}, not to uid {uid}")]
    RuntimeDirOwner { path: PathBuf, owner: u32, uid: u32 },
    #[error("locking {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {path}")]
    WritePidFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("removing {path}")]
    RemovePidFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the id maps of user {user}")]
    IdMaps {
        user: String,
        #[source]
        source: Box<crate::spec::SpecError>,
    },
    #[error("starting the pause process: {step}")]
    Start {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{program} for pause process {pid} failed ({status}): {stderr}")]
    MapIds { program: &'static str, pid: i32, status: String, stderr: String },
    #[error("running {program}: is the uidmap package installed?")]
    MapIdsExec {
        program: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("joining the user namespace of pause process {pid}")]
    Join {
        pid: i32,
        #[source]
        source: io::Error,
    },
    #[error("joining the user namespace needs a single-threaded process; {threads} threads run")]
    Threads { threads: usize },
    #[error("ending pause process {pid}")]
    Kill {
        pid: i32,
        #[source]
        source: io::Error,
    },
    #[error("pause process {pid} did not end within {secs} s")]
    KillTimeout { pid: i32, secs: u64 },
}

impl UsernsError {
    /// Whether the failure is the user's missing /etc/subuid or /etc/subgid ranges, for which
    /// the message already carries the fix.
    pub fn is_missing_ranges(&self) -> bool {
        matches!(self, Self::IdMaps { source, .. }
            if matches!(**source, crate::spec::SpecError::NoSubordinateIds { .. }))
    }
}

/// The ids the running process has on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostIds {
    pub uid: u32,
    pub gid: u32,
    /// The process is inside a user namespace (berth's per-user one, or `berth unshare`).
    pub in_user_namespace: bool,
}

impl HostIds {
    /// berth runs for an unprivileged user, whether or not it has joined the namespace yet.
    pub fn rootless(&self) -> bool {
        self.uid != 0
    }
}

/// The host uid and gid of this process, from /proc/self/uid_map and gid_map: inside the
/// per-user namespace the effective uid is 0 but the host uid is the user's. Read once per
/// process and user namespace: joining the namespace ([`join`]) reads them again.
pub fn host_ids() -> HostIds {
    if let Some(ids) = HOST_IDS.get() {
        return ids;
    }
    let ids = read_host_ids();
    HOST_IDS.set(ids);
    ids
}

fn read_host_ids() -> HostIds {
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    let uid_map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let gid_map = fs::read_to_string("/proc/self/gid_map").unwrap_or_default();
    HostIds {
        uid: map_to_host(&uid_map, euid).unwrap_or(euid),
        gid: map_to_host(&gid_map, egid).unwrap_or(egid),
        in_user_namespace: !is_initial_map(&uid_map),
    }
}

/// [`host_ids`] as last read, in atomics rather than behind a lock, so that a child forked
/// while another thread reads it cannot inherit a held lock.
static HOST_IDS: HostIdsCache = HostIdsCache::new();

struct HostIdsCache {
    /// The uid in the high half, the gid in the low one; valid once `state` says so.
    ids: AtomicU64,
    /// 0: not read (or forgotten); 1: read, in the initial user namespace; 2: read, inside one.
    state: AtomicU8,
}

impl HostIdsCache {
    const fn new() -> HostIdsCache {
        HostIdsCache { ids: AtomicU64::new(0), state: AtomicU8::new(0) }
    }

    fn get(&self) -> Option<HostIds> {
        let state = self.state.load(Ordering::Acquire);
        let ids = self.ids.load(Ordering::Acquire);
        (state != 0).then_some(HostIds {
            uid: (ids >> 32) as u32,
            gid: ids as u32,
            in_user_namespace: state == 2,
        })
    }

    fn set(&self, ids: HostIds) {
        self.ids.store(u64::from(ids.uid) << 32 | u64::from(ids.gid), Ordering::Release);
        self.state.store(if ids.in_user_namespace { 2 } else { 1 }, Ordering::Release);
    }

    fn forget(&self) {
        self.state.store(0, Ordering::Release);
    }
}

/// The initial user namespace maps every id to itself in one line.
fn is_initial_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"] || map.trim().is_empty()
}

/// Maps `id` of this namespace to the parent's through a uid_map or gid_map's text.
fn map_to_host(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|line| {
        let mut f = line.split_whitespace().map(|v| v.parse::<u64>().ok());
        let (inside, outside, count) = (f.next()??, f.next()??, f.next()??);
        let id = u64::from(id);
        (id >= inside && id < inside + count).then(|| u32::try_from(outside + id - inside).ok())?
    })
}

/// Where the pause process's pid file lives for `uid`: `$XDG_RUNTIME_DIR/berth`, or
/// `/tmp/berth-$UID` when XDG_RUNTIME_DIR is unset.
pub fn runtime_dir(uid: u32) -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("berth"),
        None => PathBuf::from(format!("/tmp/berth-{uid}")),
    }
}

/// The pause process's pid file under `dir`.
pub fn pid_file(dir: &Path) -> PathBuf {
    dir.join("pause.pid")
}

/// What [`join`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// berth runs as real root: there is nothing to join.
    Rootful,
    /// The process is in a user namespace already (`berth unshare`, or a berth it started).
    AlreadyInside,
    /// Joined the running pause process `pid`.
    Existing { pid: i32 },
    /// Started pause process `pid` and joined it.
    Created { pid: i32 },
}

/// Joins the user's namespace, creating it first if no live pause process holds it.
///
/// The caller owes a single-threaded process: setns(2) refuses a user namespace to a
/// multi-threaded one, so this runs at the very start of main, before tokio, a non-blocking
/// log writer or anything else starts a thread. The working directory is kept.
pub fn join() -> Result<Joined, UsernsError> {
    let ids = host_ids();
    if !ids.rootless() {
        return Ok(Joined::Rootful);
    }
    if ids.in_user_namespace {
        return Ok(Joined::AlreadyInside);
    }
    let threads = thread_count();
    if threads > 1 {
        return Err(UsernsError::Threads { threads });
    }
    let dir = runtime_dir(ids.uid);
    let pid_path = pid_file(&dir);

    // The hot path: a live pause process, joined without taking any lock.
    if let Some(pause) = live_pause(&pid_path, ids.uid) {
        enter(&pause)?;
        return Ok(Joined::Existing { pid: pause.pid });
    }

    // Making one is serialised, so two first commands started at once share one namespace.
    ensure_dir(&dir, ids.uid)?;
    let lock_path = dir.join("pause.lock");
    let _lock = lock(&lock_path)?;
    if let Some(pause) = live_pause(&pid_path, ids.uid) {
        enter(&pause)?;
        return Ok(Joined::Existing { pid: pause.pid });
    }
    let user = user_name(ids.uid);
    let (uid_map, gid_map) = crate::spec::idmap::rootless_maps(&user, ids.uid, ids.gid)
        .map_err(|e| UsernsError::IdMaps { user: user.clone(), source: Box::new(e) })?;
    let pause = pause::start(&uid_map, &gid_map)?;
    write_pid_file(&pid_path, &pause)?;
    debug!(pid = pause.pid, path = %pid_path.display(), "pause process started");
    enter(&pause)?;
    Ok(Joined::Created { pid: pause.pid })
}

/// Joins the user's namespace only if a live pause process holds it (`berth system migrate`,
/// which must reach running containers but never makes a namespace). The caller owes a
/// single-threaded process, as for [`join`].
pub fn join_existing() -> Result<Option<i32>, UsernsError> {
    let ids = host_ids();
    if !ids.rootless() || ids.in_user_namespace {
        return Ok(None);
    }
    let Some(pause) = live_pause(&pid_file(&runtime_dir(ids.uid)), ids.uid) else {
        return Ok(None);
    };
    let threads = thread_count();
    if threads > 1 {
        return Err(UsernsError::Threads { threads });
    }
    enter(&pause)?;
    Ok(Some(pause.pid))
}

/// The live pause process of the current user, if any, without joining it.
pub fn running_pause() -> Option<i32> {
    let ids = host_ids();
    live_pause(&pid_file(&runtime_dir(ids.uid)), ids.uid).map(|p| p.pid)
}

/// Ends the current user's pause process, waits until it is gone and removes its pid file
/// (`berth system migrate`). Returns the pid that was ended, if one ran. Processes still in
/// the namespace (running containers, a `berth unshare` shell) keep it alive until they end.
pub fn stop() -> Result<Option<i32>, UsernsError> {
    let ids = host_ids();
    let dir = runtime_dir(ids.uid);
    let pid_path = pid_file(&dir);
    let ended = match live_pause(&pid_path, ids.uid) {
        None => None,
        Some(pause) => {
            let kill = |source: rustix::io::Errno| UsernsError::Kill {
                pid: pause.pid,
                source: source.into(),
            };
            match rustix::process::pidfd_send_signal(&pause.pidfd, rustix::process::Signal::KILL) {
                Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                Err(e) => return Err(kill(e)),
            }
            wait_gone(&pause)?;
            Some(pause.pid)
        }
    };
    match fs::remove_file(&pid_path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(UsernsError::RemovePidFile { path: pid_path, source }),
    }
    Ok(ended)
}

/// A verified pause process: the pidfd keeps referring to it even if it ends meanwhile.
struct Pause {
    pid: i32,
    start_time: u64,
    pidfd: OwnedFd,
}

/// The pause process named by `pid_path`, if it still runs as the one that file recorded: same
/// start time, owned by `uid`, and in a user namespace other than ours.
fn live_pause(pid_path: &Path, uid: u32) -> Option<Pause> {
    let text = fs::read_to_string(pid_path).ok()?;
    let mut fields = text.split_whitespace();
    let pid: i32 = fields.next()?.parse().ok()?;
    let recorded: u64 = fields.next()?.parse().ok()?;
    let pidfd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
    // Checked after pidfd_open: if the pid was reused in between, the start time differs.
    let stale = |why: &str| {
        debug!(pid, why, path = %pid_path.display(), "stale pause pid file");
        None
    };
    match start_time(pid) {
        Some(t) if t == recorded => {}
        _ => return stale("another start time"),
    }
    // From the host's namespaces the pause process must be in another user namespace; from
    // inside one (after joining, or in `berth unshare`) it must be in ours.
    let ns = |path: &str| fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let theirs = ns(&format!("/proc/{pid}/ns/user"));
    let same = theirs == ns("/proc/self/ns/user");
    if theirs.is_none() || same != host_ids().in_user_namespace {
        return stale("not in the user namespace it made");
    }
    // /proc shows owners as this namespace maps them: the user's uid from outside, 0 inside.
    let me = if host_ids().in_user_namespace { rustix::process::geteuid().as_raw() } else { uid };
    match fs::metadata(format!("/proc/{pid}")) {
        Ok(m) if m.uid() == me => {}
        _ => return stale("owned by another user"),
    }
    Some(Pause { pid, start_time: recorded, pidfd })
}

/// The start time of `pid` in clock ticks since boot: field 22 of /proc/PID/stat.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn thread_count() -> usize {
    fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(1)
}

/// setns(2) into the pause process's user and mount namespaces at once, keeping the working
/// directory (joining a mount namespace moves the caller to its root).
fn enter(pause: &Pause) -> Result<(), UsernsError> {
    let cwd = std::env::current_dir().ok();
    rustix::thread::move_into_thread_name_spaces(
        pause.pidfd.as_fd(),
        ThreadNameSpaceType::USER | ThreadNameSpaceType::MOUNT,
    )
    .map_err(|e| UsernsError::Join { pid: pause.pid, source: e.into() })?;
    HOST_IDS.forget();
    if let Some(cwd) = cwd {
        if let Err(e) = std::env::set_current_dir(&cwd) {
            debug!(cwd = %cwd.display(), error = %e, "working directory not reachable after join");
        }
    }
    debug!(pid = pause.pid, "joined the per-user namespace");
    Ok(())
}

/// Makes `dir` (mode 0700) if needed and checks that it is the user's, since under /tmp
/// another user could have made it first.
fn ensure_dir(dir: &Path, uid: u32) -> Result<(), UsernsError> {
    match fs::DirBuilder::new().mode(0o700).recursive(true).create(dir) {
        Ok(()) => {}
        Err(source) => return Err(UsernsError::RuntimeDir { path: dir.to_owned(), source }),
    }
    let meta = fs::symlink_metadata(dir)
        .map_err(|source| UsernsError::RuntimeDir { path: dir.to_owned(), source })?;
    if meta.uid() != uid {
        return Err(UsernsError::RuntimeDirOwner { path: dir.to_owned(), owner: meta.uid(), uid });
    }
    Ok(())
}

fn lock(path: &Path) -> Result<fs::File, UsernsError> {
    let lock_err = |source: io::Error| UsernsError::Lock { path: path.to_owned(), source };
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(lock_err)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| lock_err(e.into()))?;
    Ok(file)
}

/// Writes `PID START_TIME` through a temporary file and a rename, so a reader never sees half
/// a pid file.
fn write_pid_file(path: &Path, pause: &Pause) -> Result<(), UsernsError> {
    let err = |source: io::Error| UsernsError::WritePidFile { path: path.to_owned(), source };
    let tmp = path.with_extension("pid.tmp");
    fs::write(&tmp, format!("{} {}\n", pause.pid, pause.start_time)).map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

/// Waits until the pidfd reports the process's end (POLLIN on a pidfd, pidfd_open(2)).
fn wait_gone(pause: &Pause) -> Result<(), UsernsError> {
    const LIMIT: Duration = Duration::from_secs(30);
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(UsernsError::KillTimeout { pid: pause.pid, secs: LIMIT.as_secs() });
        }
        let mut fd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&pause.pidfd),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
        // SAFETY: `fd` is one live pollfd for the duration of the call; the pidfd it names is
        // owned by `pause`, which outlives it.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        if n > 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if n < 0 && err.kind() != io::ErrorKind::Interrupted {
            return Err(UsernsError::Kill { pid: pause.pid, source: err });
        }
    }
}

/// The login name of `uid` from /etc/passwd (the subordinate-id files may name either).
fn user_name(uid: u32) -> String {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
        })
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests;
