//! `kill` (runtime spec, "Operations": kill): send a signal to the container's init, or with
//! `--all` to every process in the container.
//!
//! "Every process" is what the container's cgroup holds; without a cgroup (rootless), every
//! process in the init's pid namespace when the container has one of its own, else the init.

use std::io;

use crate::namespaces::ns_inode;
use crate::state::{Container, StateRoot, Status};
use crate::{sys, Error};

/// What went wrong while signalling.
#[derive(Debug, thiserror::Error)]
pub enum KillError {
    #[error("unknown signal {0:?}")]
    UnknownSignal(String),
    /// Worded as runc's: containerd's shim takes "container not running" in a kill's error to
    /// mean the process already finished.
    #[error("cannot signal {id}: container not running")]
    NotRunning { id: String },
    #[error("signalling {pid}: {source}")]
    Signal {
        pid: i32,
        #[source]
        source: io::Error,
    },
}

const SIGNALS: [(&str, libc::c_int); 31] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("SYS", libc::SIGSYS),
];

/// Parses a signal by name (TERM, SIGTERM, sigterm, RTMIN+3) or number.
pub fn parse_signal(s: &str) -> Result<libc::c_int, KillError> {
    if let Ok(n) = s.parse::<libc::c_int>() {
        if (1..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        return Err(KillError::UnknownSignal(s.to_owned()));
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = SIGNALS.iter().find(|(n, _)| *n == name) {
        return Ok(*n);
    }
    let rt = |base: libc::c_int, rest: &str, sign: libc::c_int| -> Option<libc::c_int> {
        let off: libc::c_int = if rest.is_empty() { 0 } else { rest.parse().ok()? };
        let n = base + sign * off;
        (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n).then_some(n)
    };
    let parsed = if let Some(rest) = name.strip_prefix("RTMIN") {
        rt(libc::SIGRTMIN(), rest.trim_start_matches('+'), 1)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        rt(libc::SIGRTMAX(), rest.trim_start_matches('-'), -1)
    } else {
        None
    };
    parsed.ok_or_else(|| KillError::UnknownSignal(s.to_owned()))
}

/// The pids of the container's processes: its pid namespace's members, or just the init.
pub fn container_pids(c: &Container) -> Vec<i32> {
    if let Some(pids) = c.cgroup_manager().and_then(|m| m.pids().ok()).filter(|p| !p.is_empty()) {
        return pids;
    }
    let init = c.record.pid;
    // A non-dumpable init's /proc/PID/ns is closed to an unprivileged runtime: then only the
    // init is known, and killing it ends its pid namespace anyway.
    let Some(ns) = ns_inode(&init.to_string(), "pid") else { return vec![init] };
    if ns_inode("self", "pid") == Some(ns) {
        return vec![init];
    }
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| ns_inode(&p.to_string(), "pid") == Some(ns))
        .collect();
    pids.sort_unstable();
    pids
}

/// Sends `sig` to container `id`. The runtime spec has kill of a container that is neither
/// created nor running fail; with `--all` a stopped container's cgroup may still hold
/// processes (its init died, they did not), which get the signal, and that succeeds as in
/// runc, which containerd relies on when it cleans up.
pub fn kill(root: &StateRoot, id: &str, sig: libc::c_int, all: bool) -> Result<(), Error> {
    let c = root.load(id)?;
    let status = c.status();
    match status {
        Status::Stopped if all => {}
        Status::Stopped | Status::Creating => {
            return Err(KillError::NotRunning { id: id.to_owned() }.into())
        }
        _ => {}
    }
    if all {
        // A stopped init's pid may be another process's by now: only the cgroup says.
        let pids = if status == Status::Stopped {
            c.cgroup_manager().and_then(|m| m.pids().ok()).unwrap_or_default()
        } else {
            container_pids(&c)
        };
        for pid in pids {
            let _ = sys::kill(pid, sig);
        }
        return Ok(());
    }
    let pid = c.record.pid;
    sys::kill(pid, sig).map_err(|source| KillError::Signal { pid, source })?;
    Ok(())
}
