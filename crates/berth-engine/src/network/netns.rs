//! Naming a network namespace, and running a command inside one.
//!
//! A container's network namespace is known either by the pid of a process in it (the
//! container's init, before any bind mount exists) or by a path (`/proc/PID/ns/net`, or a bind
//! mount such as `/run/netns/NAME` or berth's own under the runroot). [`Netns`] holds either;
//! [`Netns::command`] gives a [`Command`] that switches into the namespace between fork and exec
//! with setns(2), so that tools like `ip` act inside it without `nsenter` or `ip netns exec`
//! (which also remounts /sys and needs a name under /run/netns).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Errors of opening and entering a network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("opening the network namespace {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A network namespace, by pid or by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Netns {
    /// The namespace of this process.
    Pid(u32),
    /// A namespace file: `/proc/PID/ns/net` or a bind mount of one.
    Path(PathBuf),
}

impl Netns {
    /// The namespace file.
    pub fn path(&self) -> PathBuf {
        match self {
            Netns::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
            Netns::Path(path) => path.clone(),
        }
    }

    /// Opens the namespace file; the descriptor keeps the namespace alive while held.
    pub fn open(&self) -> Result<OwnedFd, NetnsError> {
        let path = self.path();
        File::open(&path).map(OwnedFd::from).map_err(|source| NetnsError::Open { path, source })
    }

    /// A command for `program` that runs inside this namespace. The namespace is opened now,
    /// so an error names it before anything runs.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Result<Command, NetnsError> {
        let fd = self.open()?;
        let mut cmd = Command::new(program);
        let raw = fd.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe calls are allowed; setns(2) is a plain system call and the
        // closure allocates nothing. `raw` stays open in the child because `fd` is moved
        // into the closure, which the Command owns until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                let _keep = &fd;
                if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    /// Whether the namespace file can still be opened.
    pub fn exists(&self) -> bool {
        Path::new(&self.path()).exists()
    }
}
