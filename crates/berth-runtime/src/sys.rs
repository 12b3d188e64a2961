//! Thin, checked wrappers over the raw system calls the runtime makes where neither std nor
//! rustix has what it needs (fork, unshare, setns, mount, pivot_root, capset, prctl, SCM_RIGHTS).
//!
//! Each wrapper turns a -1 into an `io::Error` carrying errno and nothing else; the callers put
//! the path or id into their own error. Nothing here allocates after a fork except where the
//! caller already does, so the process that calls into the runtime must be single-threaded
//! (berth-oci is; the engine forks a helper first).

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Turns a C-style return value into a `Result`, reading errno on -1.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Retries a call interrupted by a signal.
pub(crate) fn retry<F: FnMut() -> libc::c_int>(mut f: F) -> io::Result<libc::c_int> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A path as a C string; a path with an interior NUL cannot name a file.
pub(crate) fn cstr(path: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(path.as_ref().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// The result of a fork, seen from each side.
pub(crate) enum Fork {
    Parent(libc::pid_t),
    Child,
}

/// fork(2). The child must only run code that is safe in a copy of a single-threaded process.
pub(crate) fn fork() -> io::Result<Fork> {
    // SAFETY: the runtime is documented to run in a single-threaded process, so the child's copy
    // of the address space holds no lock owned by another thread.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// clone3(2) with no new stack: a fork whose child starts in the namespaces of
/// `namespaces` (CLONE_NEW* flags, none of them CLONE_NEWUSER) and, given `cgroup` (an
/// O_RDONLY directory fd), in that cgroup2 directory (CLONE_INTO_CGROUP, Linux 5.7+), without
/// the migration that writing cgroup.procs costs (that takes the cgroup attach lock, whose
/// first writer waits for an RCU grace period). Same rules for the child as [`fork`].
pub(crate) fn clone3(namespaces: u64, cgroup: Option<RawFd>) -> io::Result<Fork> {
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: namespaces | cgroup.map_or(0, |_| CLONE_INTO_CGROUP),
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.map_or(0, |fd| fd as u64),
        ..CloneArgs::default()
    };
    // SAFETY: as for fork: the process is single-threaded, and without CLONE_VM or a stack the
    // child runs on its own copy of the address space, returning 0 here. glibc (2.34+) asks
    // the kernel for the tid where it signals itself, so its stale cached tid is harmless
    // until the exec.
    let pid = unsafe {
        libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>())
    };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid as libc::pid_t)),
    }
}

/// Ends a forked child at once, without running the parent's atexit handlers or destructors.
pub(crate) fn exit_child(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no shared user-space state.
    unsafe { libc::_exit(code) }
}

/// unshare(2) with the given CLONE_NEW* flags.
pub(crate) fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes only a flag word.
    cvt(unsafe { libc::unshare(flags) }).map(drop)
}

/// setns(2) into the namespace `fd` refers to.
pub(crate) fn setns(fd: RawFd, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: fd is an open descriptor owned by the caller for the duration of the call.
    cvt(unsafe { libc::setns(fd, nstype) }).map(drop)
}

/// mount(2). `data` is passed as the file system's option string when not empty.
pub(crate) fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstr).transpose()?;
    let target = cstr(target)?;
    let fstype = fstype.map(cstr).transpose()?;
    let data = data.filter(|d| !d.is_empty()).map(cstr).transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call.
    cvt(unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data) as *const libc::c_void,
        )
    })
    .map(drop)
}

/// umount2(2).
pub(crate) fn umount2(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let target = cstr(target)?;
    // SAFETY: target is a NUL-terminated string that outlives the call.
    cvt(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// pivot_root(2), which libc does not wrap.
pub(crate) fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let new_root = cstr(new_root)?;
    let put_old = cstr(put_old)?;
    // SAFETY: both arguments are NUL-terminated strings that outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    cvt(ret as libc::c_int).map(drop)
}

/// chroot(2).
pub(crate) fn chroot(path: &Path) -> io::Result<()> {
    let path = cstr(path)?;
    // SAFETY: path is a NUL-terminated string that outlives the call.
    cvt(unsafe { libc::chroot(path.as_ptr()) }).map(drop)
}

/// prctl(2) with up to four integer arguments.
pub(crate) fn prctl(option: libc::c_int, a: libc::c_ulong, b: libc::c_ulong) -> io::Result<i32> {
    // SAFETY: every option used by the runtime takes integer arguments only.
    cvt(unsafe { libc::prctl(option, a, b, 0 as libc::c_ulong, 0 as libc::c_ulong) })
}

/// Sets the calling process's effective, permitted and inheritable capability sets, each a
/// 64-bit mask, through capset(2) with the version 3 header.
pub(crate) fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header { version: VERSION_3, pid: 0 };
    let half = |m: u64, hi: bool| if hi { (m >> 32) as u32 } else { m as u32 };
    let data = [false, true].map(|hi| Data {
        effective: half(effective, hi),
        permitted: half(permitted, hi),
        inheritable: half(inheritable, hi),
    });
    // SAFETY: header and data have the kernel's _LINUX_CAPABILITY_VERSION_3 layout (one header,
    // two data words) and live for the whole call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    cvt(ret as libc::c_int).map(drop)
}

/// The highest capability number the running kernel knows.
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// A connected pair of SOCK_SEQPACKET sockets, both close-on-exec.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors socketpair writes.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends `data` with one descriptor attached (SCM_RIGHTS) over a unix socket.
pub(crate) fn send_fd(sock: RawFd, data: &[u8], fd: RawFd) -> io::Result<()> {
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: msghdr is plain data; zero is a valid value for every field.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space;
    // SAFETY: msg_control points at a buffer of CMSG_SPACE(sizeof fd) bytes, so the first header
    // and its data fit; the pointers stay valid until sendmsg returns.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut RawFd, fd);
    }
    // SAFETY: msg and everything it points to are valid for the call.
    let ret = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Connects a unix stream socket to `path`.
pub(crate) fn connect_unix(path: &Path) -> io::Result<OwnedFd> {
    let stream = std::os::unix::net::UnixStream::connect(path)?;
    Ok(OwnedFd::from(stream))
}

/// Duplicates `fd` onto the lowest free number at or above `min`, close-on-exec.
pub(crate) fn dup_above(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on an open descriptor only creates a new one.
    let new = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })?;
    // SAFETY: the descriptor was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Marks every descriptor in `first..=last` close-on-exec (close_range(2) with
/// CLOSE_RANGE_CLOEXEC).
pub(crate) fn cloexec_range(first: u32, last: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    if first > last {
        return Ok(());
    }
    // SAFETY: close_range takes only integers and here only changes descriptor flags.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, CLOSE_RANGE_CLOEXEC) };
    cvt(ret as libc::c_int).map(drop)
}

/// dup2(2): makes `new` a copy of `old`.
pub(crate) fn dup2(old: RawFd, new: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the descriptor table.
    cvt(unsafe { libc::dup2(old, new) }).map(drop)
}

/// Sends a signal to a process.
pub(crate) fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes only integers.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// Waits for a child; returns its wait status.
pub(crate) fn waitpid(pid: libc::pid_t) -> io::Result<i32> {
    let mut status = 0;
    // SAFETY: status is a valid place for the kernel to write the wait status.
    retry(|| unsafe { libc::waitpid(pid, &mut status, 0) })?;
    Ok(status)
}

/// Turns a wait status into a shell-style exit code (128+N for a signal).
pub(crate) fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// The effective user id of the calling process.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The effective group id of the calling process.
pub fn getegid() -> u32 {
    // SAFETY: getegid cannot fail.
    unsafe { libc::getegid() }
}

/// Opens `path` with raw flags, returning an owned descriptor.
pub(crate) fn open(path: &Path, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: c is a NUL-terminated string that outlives the call.
    let fd = retry(|| unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    // SAFETY: open succeeded, so fd is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// openat(2) relative to a directory descriptor.
pub(crate) fn openat(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: name is a NUL-terminated string that outlives the call; dir is open.
    let fd = retry(|| unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: openat succeeded, so fd is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Writes all of `data` to a descriptor.
pub(crate) fn write_all(fd: &impl AsRawFd, data: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        // SAFETY: the slice bounds are checked above; the descriptor is open.
        let n = unsafe {
            libc::write(
                fd.as_raw_fd(),
                data[done..].as_ptr() as *const libc::c_void,
                data.len() - done,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        done += n as usize;
    }
    Ok(())
}

/// The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), and
/// whether it is a zombie. None when the process does not exist.
pub fn proc_stat(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, *state == "Z" || *state == "X"))
}

/// Whether the calling process runs in a user namespace other than the initial one (its
/// uid_map is not the identity map of all ids), as under rootless Podman.
pub fn in_user_namespace() -> bool {
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields != ["0", "0", "4294967295"]
}

/// Whether this process is rootless in runc's sense: not root, or root only inside a user
/// namespace set up for an unprivileged user (rootless Podman runs its runtime like that).
pub fn is_rootless() -> bool {
    geteuid() != 0 || (in_user_namespace() && std::env::var("USER").map_or(true, |u| u != "root"))
}
