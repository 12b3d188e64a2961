//! The descriptor plumbing of the monitor and its clients: passing descriptors over a unix
//! socket (SCM_RIGHTS), pipes, poll and small line-based reads and writes.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// The most descriptors one message carries (stdin, stdout, stderr and one spare).
pub const MAX_FDS: usize = 4;

/// Sends `data` with `fds` attached as one message.
pub fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !cmsg.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    sendmsg(sock, &[IoSlice::new(data)], &mut cmsg, SendFlags::NOSIGNAL)?;
    Ok(())
}

/// Receives one message into `buf` and the descriptors attached to it (close-on-exec).
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let got = recvmsg(sock, &mut [IoSliceMut::new(buf)], &mut cmsg, RecvFlags::CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for msg in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = msg {
            fds.extend(received);
        }
    }
    Ok((got.bytes, fds))
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// Writes all of `bytes` to `fd`, retrying on EINTR; EAGAIN waits for the descriptor.
pub fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => {
                poll_one(fd.as_raw_fd(), libc::POLLOUT, 1000);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads what is there (at most `buf.len()` bytes); 0 is end of file. EINTR retries.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits up to `timeout_ms` for `events` on one descriptor; returns the revents (0 on a
/// timeout).
pub fn poll_one(fd: RawFd, events: i16, timeout_ms: i32) -> i16 {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: one valid pollfd, alive for the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if n > 0 {
        pfd.revents
    } else {
        0
    }
}

/// poll(2) over `fds`, retrying on EINTR.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    loop {
        // SAFETY: `fds` is a valid slice of pollfd for the call; nfds is its length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Reads one `\n`-terminated line from a stream socket, a byte at a time (the messages are
/// few and short, and nothing after the line may be consumed). `None` at end of file.
pub fn read_line(fd: BorrowedFd<'_>) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match read(fd, &mut byte)? {
            0 if line.is_empty() => return Ok(None),
            0 => break,
            _ if byte[0] == b'\n' => break,
            _ => line.push(byte[0]),
        }
        if line.len() > 64 * 1024 {
            return Err(io::Error::other("a monitor message longer than 64 KiB"));
        }
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// Sets or clears O_NONBLOCK.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    let flags = if on {
        flags | rustix::fs::OFlags::NONBLOCK
    } else {
        flags - rustix::fs::OFlags::NONBLOCK
    };
    rustix::fs::fcntl_setfl(fd, flags)?;
    Ok(())
}

/// Duplicates `fd` onto descriptor number `target` (without close-on-exec).
pub fn dup_onto(fd: impl AsFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 takes two descriptor numbers; `fd` is open for the call, and replacing
    // `target` is the point (the callers own the standard descriptors they replace).
    let rc = unsafe { libc::dup2(fd.as_fd().as_raw_fd(), target) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The most bytes of a unix socket path (sun_path, with its terminating NUL).
const SUN_PATH_MAX: usize = 107;

/// A path that names `dir/name` and fits in a socket address: `dir/name` itself when short
/// enough, else `/proc/self/fd/N/name` through a descriptor of `dir` that the returned
/// `OwnedFd` keeps open (a deep --runroot must not break attach).
pub fn socket_path(
    dir: &std::path::Path,
    name: &str,
) -> io::Result<(Option<OwnedFd>, std::path::PathBuf)> {
    let direct = dir.join(name);
    if direct.as_os_str().len() <= SUN_PATH_MAX {
        return Ok((None, direct));
    }
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let path = std::path::PathBuf::from(format!("/proc/self/fd/{}/{name}", fd.as_raw_fd()));
    Ok((Some(fd), path))
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn descriptors_travel_with_a_message() {
        let (a, b) = UnixStream::pair().unwrap();
        let (r, w) = pipe().unwrap();
        send_with_fds(a.as_fd(), b"hello", &[w.as_fd()]).unwrap();
        drop(w);
        let mut buf = [0u8; 16];
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 1);
        write_all(fds[0].as_fd(), b"through\n").unwrap();
        drop(fds);
        let mut out = [0u8; 16];
        let n = read(r.as_fd(), &mut out).unwrap();
        assert_eq!(&out[..n], b"through\n");
    }

    #[test]
    fn a_deep_directory_still_gets_a_socket() {
        let base = tempfile::tempdir().unwrap();
        let deep = base.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let (_keep, path) = socket_path(&deep, "attach").unwrap();
        assert!(path.as_os_str().len() <= SUN_PATH_MAX);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(deep.join("attach").exists());
        let (_keep2, path2) = socket_path(&deep, "attach").unwrap();
        UnixStream::connect(path2).unwrap();
        drop(listener);
    }

    #[test]
    fn lines_are_read_one_at_a_time() {
        let (a, b) = UnixStream::pair().unwrap();
        write_all(a.as_fd(), b"exit 3\nnext\n").unwrap();
        drop(a);
        assert_eq!(read_line(b.as_fd()).unwrap().as_deref(), Some("exit 3"));
        assert_eq!(read_line(b.as_fd()).unwrap().as_deref(), Some("next"));
        assert_eq!(read_line(b.as_fd()).unwrap(), None);
    }
}
