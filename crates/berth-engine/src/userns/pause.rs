//! Starting the pause process that holds the per-user namespace.
//!
//! berth forks twice, so the pause process is nobody's child and belongs to no session: the
//! grandchild unshares a user and a mount namespace, reports its pid and waits; berth writes
//! its uid and gid maps with newuidmap(1) and newgidmap(1) (the only way for an unprivileged
//! user to map more than one id), then lets it go on. It starts a session of its own, closes
//! every descriptor and sleeps in pause(2) until it is killed. Between fork and pause it calls
//! only async-signal-safe functions, since a test harness may fork it from a threaded process.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::process::Command;

use rustix::pipe::{pipe_with, PipeFlags};
use rustix::process::{pidfd_open, Pid, PidfdFlags};

use super::{start_time, Pause, UsernsError};
use crate::spec::generate::IdMap;

/// The pause process's name in /proc/PID/comm, as `ps` shows it.
const PAUSE_COMM: &std::ffi::CStr = c"berth-pause";

fn start_err(step: &'static str) -> impl FnOnce(io::Error) -> UsernsError {
    move |source| UsernsError::Start { step, source }
}

/// Starts a pause process in a new user and mount namespace mapped by `uid_map` and
/// `gid_map`, and returns it verified.
pub(super) fn start(uid_map: &[IdMap], gid_map: &[IdMap]) -> Result<Pause, UsernsError> {
    let (from_child, to_parent) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|e| start_err("pipe")(e.into()))?;
    let (from_parent, to_child) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|e| start_err("pipe")(e.into()))?;

    // SAFETY: the child runs only `intermediate`, which forks once more and _exits; neither
    // returns into Rust code that could depend on the parent's other threads.
    let first = unsafe { libc::fork() };
    if first < 0 {
        return Err(start_err("fork")(io::Error::last_os_error()));
    }
    if first == 0 {
        intermediate(to_parent.as_raw_fd(), from_parent.as_raw_fd());
    }
    drop(to_parent);
    drop(from_parent);
    let mut status = 0;
    // SAFETY: reaping our own child; `status` lives for the call.
    unsafe { libc::waitpid(first, &mut status, 0) };

    // The grandchild writes its pid and the errno of unshare (0 when it worked).
    let mut from_child = std::fs::File::from(from_child);
    let mut report = [0u8; 8];
    from_child
        .read_exact(&mut report)
        .map_err(|e| start_err("reading the pause process's report (did it die?)")(e))?;
    let pid = i32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
    let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
    if errno != 0 {
        return Err(start_err("unshare(CLONE_NEWUSER | CLONE_NEWNS)")(
            io::Error::from_raw_os_error(errno),
        ));
    }
    let pidfd = Pid::from_raw(pid)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))
        .and_then(|p| pidfd_open(p, PidfdFlags::empty()).map_err(io::Error::from))
        .map_err(start_err("pidfd_open"))?;
    let start_time = start_time(pid)
        .ok_or_else(|| start_err("reading its start time")(io::ErrorKind::NotFound.into()))?;

    // If mapping fails, dropping `to_child` unwritten ends the pause process.
    map_ids("newuidmap", pid, uid_map)?;
    map_ids("newgidmap", pid, gid_map)?;
    let mut to_child = std::fs::File::from(to_child);
    to_child.write_all(b"g").map_err(start_err("releasing the pause process"))?;
    // It closes its end last, once it has its own session and name: end of file means ready.
    let mut rest = Vec::new();
    from_child.read_to_end(&mut rest).map_err(start_err("waiting for the pause process"))?;
    Ok(Pause { pid, start_time, pidfd })
}

/// Runs newuidmap or newgidmap for `pid` with `maps` as `inside outside count` triples.
fn map_ids(program: &'static str, pid: i32, maps: &[IdMap]) -> Result<(), UsernsError> {
    let mut command = Command::new(program);
    command.arg(pid.to_string());
    for m in maps {
        command.args([m.container_id, m.host_id, m.size].map(|v| v.to_string()));
    }
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| UsernsError::MapIdsExec { program, source })?;
    if !output.status.success() {
        return Err(UsernsError::MapIds {
            program,
            pid,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().replace('\n', " "),
        });
    }
    Ok(())
}

/// The first child: forks the pause process and ends, so the pause process is reparented at
/// once and never becomes a zombie of berth's.
fn intermediate(to_parent: RawFd, from_parent: RawFd) -> ! {
    // SAFETY: fork in a single-threaded child of fork; the grandchild runs `pause_process`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        pause_process(to_parent, from_parent);
    }
    // SAFETY: _exit ends this child without running the parent's destructors or atexit.
    unsafe { libc::_exit(i32::from(pid < 0)) }
}

/// The pause process itself, between the second fork and pause(2).
fn pause_process(to_parent: RawFd, from_parent: RawFd) -> ! {
    close_all_but(to_parent, from_parent);
    // SAFETY: unshare affects only this single-threaded process.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) };
    // SAFETY: errno location of this thread, read right after the failed call.
    let errno = if rc == 0 { 0 } else { unsafe { *libc::__errno_location() } };
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut report = [0u8; 8];
    report[..4].copy_from_slice(&pid.to_ne_bytes());
    report[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: write(2) from a live stack buffer to a descriptor this process owns.
    let written = unsafe { libc::write(to_parent, report.as_ptr().cast(), report.len()) };
    if rc != 0 || written != 8 {
        // SAFETY: see `intermediate`.
        unsafe { libc::_exit(1) }
    }
    let mut go = 0u8;
    // SAFETY: read(2) of one byte into a live stack variable; EOF means berth gave up.
    let n = unsafe { libc::read(from_parent, (&mut go as *mut u8).cast(), 1) };
    if n != 1 || go != b'g' {
        // SAFETY: see `intermediate`.
        unsafe { libc::_exit(1) }
    }
    // SAFETY: plain syscalls on this process only; the name is a NUL-terminated literal.
    unsafe {
        libc::setsid();
        libc::chdir(c"/".as_ptr());
        libc::prctl(libc::PR_SET_NAME, PAUSE_COMM.as_ptr());
        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
    }
    pause_forever()
}

/// Sleeps until a signal ends the process.
pub fn pause_forever() -> ! {
    loop {
        // SAFETY: pause(2) has no preconditions.
        unsafe { libc::pause() };
    }
}

/// Closes every descriptor except `a` and `b`, with close_range(2) over the gaps; no
/// allocation, as the caller is a forked child.
fn close_all_but(a: RawFd, b: RawFd) {
    let (low, high) = if a < b { (a as u32, b as u32) } else { (b as u32, a as u32) };
    // SAFETY: closes descriptors this process owns and that no Rust object still uses (the
    // forked child never returns to code holding them); an empty range is a no-op.
    unsafe {
        if low > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, low - 1, 0u32);
        }
        if high > low + 1 {
            libc::syscall(libc::SYS_close_range, low + 1, high - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, high + 1, u32::MAX, 0u32);
    }
}
