//! Naming a network namespace, and running a command inside one.
//!
//! A container's network namespace is known either by the pid of a process in it (the
//! container's init, before any bind mount exists) or by a path (`/proc/PID/ns/net`, or a bind
//! mount such as `/run/netns/NAME` or berth's own under the runroot). [`Netns`] holds either;
//! [`Netns::command`] gives a [`Command`] that switches into the namespace between fork and exec
//! with setns(2), so that tools like `ip` act inside it without `nsenter` or `ip netns exec`
//! (which also remounts /sys and needs a name under /run/netns).
//!
//! [`create`] makes the namespace a container will join, before the container exists: a new
//! namespace bind-mounted on `RUNROOT/netns/berth-ID` (as Podman keeps its namespaces under
//! /run/netns), so that networking is set up before the process starts, the runtime spec
//! joins it by path, and cleanup after a killed monitor finds it by the container's id.
//! [`remove`] unmounts and deletes it; both are idempotent.

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
    #[error("creating the network namespace file {path}")]
    CreateFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("creating a network namespace for {path}")]
    Unshare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bind-mounting the network namespace on {path}")]
    Mount {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unmounting the network namespace {path}")]
    Unmount {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where container `id`'s namespace is mounted under `runroot`.
pub fn path_for(runroot: &Path, id: &str) -> PathBuf {
    runroot.join("netns").join(format!("berth-{id}"))
}

/// Whether `path` is a mount of a namespace (nsfs), not just the empty file under it.
fn is_nsfs(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type == libc::NSFS_MAGIC)
}

/// Creates a network namespace with `lo` up and bind-mounts it on [`path_for`]`(runroot, id)`;
/// an existing mount there is kept (a retried start). Needs CAP_SYS_ADMIN over the mount
/// namespace and the owning user namespace: rootful, or rootless inside berth's user
/// namespace.
pub fn create(runroot: &Path, id: &str) -> Result<Netns, NetnsError> {
    let path = path_for(runroot, id);
    if is_nsfs(&path) {
        return Ok(Netns::Path(path));
    }
    let file_err = |source| NetnsError::CreateFile { path: path.clone(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(file_err)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(file_err)?;

    // A thread of its own: unshare(CLONE_NEWNET) moves only the calling thread, and the
    // thread ends right after the mount, so no other code ever runs in the new namespace.
    let target = path.clone();
    let made = std::thread::spawn(move || -> Result<(), NetnsError> {
        // SAFETY: unshare(2) with CLONE_NEWNET changes only this thread's network namespace;
        // nothing is passed by pointer.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            let source = std::io::Error::last_os_error();
            return Err(NetnsError::Unshare { path: target, source });
        }
        rustix::mount::mount_bind("/proc/thread-self/ns/net", &target).map_err(|e| {
            NetnsError::Mount { path: target.clone(), source: std::io::Error::from(e) }
        })?;
        // lo comes up here, while the thread is still inside: an ioctl on a socket of the
        // new namespace, which saves an exec of ip on the path of every `run`.
        if let Err(e) = loopback_up() {
            tracing::warn!(path = %target.display(), error = %e, "could not set lo up in a new namespace");
        }
        Ok(())
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    if let Err(err) = made {
        let _ = std::fs::remove_file(&path);
        return Err(err);
    }
    tracing::debug!(path = %path.display(), "network namespace created");
    Ok(Netns::Path(path))
}

/// Sets `lo` up in the calling thread's network namespace (SIOCGIFFLAGS, then SIOCSIFFLAGS
/// with IFF_UP, as `ip link set lo up` does through netlink).
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the descriptor is owned right below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in req.ifr_name.iter_mut().zip(b"lo") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: both ioctls read ifr_name and read or write ifr_flags of the ifreq we own,
    // which outlives the calls; the socket is open. ifr_flags is the union member these
    // requests use.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Unmounts and deletes container `id`'s namespace file; nothing there is no error. The
/// namespace itself ends with the last process in it and the last descriptor open on it.
pub fn remove(runroot: &Path, id: &str) -> Result<(), NetnsError> {
    let path = path_for(runroot, id);
    if is_nsfs(&path) {
        rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH).map_err(|e| {
            NetnsError::Unmount { path: path.clone(), source: std::io::Error::from(e) }
        })?;
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(NetnsError::Unmount { path, source: e })
        }
        _ => Ok(()),
    }
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
