//! The channel between the runtime and the container's init while it is being set up: a
//! SOCK_SEQPACKET pair, one message per packet, so no framing is needed and a closed peer
//! reads as end of file.
//!
//! The init's end is close-on-exec: when `run` sees end of file after telling the init to go,
//! the exec succeeded; an error message before that is the exec's failure.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// One message between the runtime (parent) and the init (child).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Parent to child: go on (after a request, or to start in `run`).
    Ack,
    /// Child to parent: I made a user namespace, write my id maps.
    MapIds,
    /// Child to parent: this is the init's pid on the host.
    Pid(i32),
    /// Child to parent: this is the init's pid on the host, and the first stage joined the
    /// container's v1 cgroups itself (one message, so the runtime wakes once).
    PlacedPid(i32),
    /// Child to parent: namespaces are made, run prestart and createRuntime hooks.
    Hooks,
    /// Child to parent: set up, waiting to be started.
    Ready,
    /// Child to parent: the seccomp notification fd rides along (SCM_RIGHTS); hand it to the
    /// agent at linux.seccomp.listenerPath, then Ack.
    SeccompFd,
    /// Either way: this step failed.
    Error(String),
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        match self {
            Msg::Ack => vec![b'A'],
            Msg::MapIds => vec![b'M'],
            Msg::Pid(p) | Msg::PlacedPid(p) => {
                let mut v = vec![if matches!(self, Msg::Pid(_)) { b'P' } else { b'C' }];
                v.extend_from_slice(&p.to_le_bytes());
                v
            }
            Msg::Hooks => vec![b'H'],
            Msg::Ready => vec![b'R'],
            Msg::SeccompFd => vec![b'S'],
            Msg::Error(m) => {
                let mut v = vec![b'E'];
                v.extend_from_slice(m.as_bytes());
                v
            }
        }
    }

    fn decode(b: &[u8]) -> io::Result<Msg> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed sync message");
        Ok(match b.first().ok_or_else(bad)? {
            b'A' => Msg::Ack,
            b'M' => Msg::MapIds,
            tag @ (b'P' | b'C') => {
                let pid =
                    i32::from_le_bytes(b.get(1..5).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
                if *tag == b'P' {
                    Msg::Pid(pid)
                } else {
                    Msg::PlacedPid(pid)
                }
            }
            b'H' => Msg::Hooks,
            b'R' => Msg::Ready,
            b'S' => Msg::SeccompFd,
            b'E' => Msg::Error(String::from_utf8_lossy(&b[1..]).into_owned()),
            _ => return Err(bad()),
        })
    }
}

/// One end of the channel.
pub struct Channel {
    pub fd: OwnedFd,
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> io::Result<()> {
        let buf = msg.encode();
        // SAFETY: buf is valid for its length for the whole call.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                buf.as_ptr() as *const libc::c_void,
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next message, or None when the other end is closed.
    pub fn recv(&self) -> io::Result<Option<Msg>> {
        self.recv_with_fd().map(|(msg, _)| msg)
    }

    /// Sends `msg` with `fd` attached (SCM_RIGHTS).
    pub fn send_with_fd(&self, msg: &Msg, fd: &OwnedFd) -> io::Result<()> {
        crate::sys::send_fd(self.fd.as_raw_fd(), &msg.encode(), fd.as_raw_fd())
    }

    /// The next message and the descriptor that came with it, if any; None when the other
    /// end is closed.
    pub fn recv_with_fd(&self) -> io::Result<(Option<Msg>, Option<OwnedFd>)> {
        use std::os::fd::FromRawFd;
        let mut buf = vec![0u8; 8192];
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
        let mut cbuf = vec![0u8; space];
        loop {
            let mut iov =
                libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
            // SAFETY: msghdr is plain data; zero is a valid value for every field.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_iov = &mut iov;
            hdr.msg_iovlen = 1;
            hdr.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
            hdr.msg_controllen = space;
            // SAFETY: hdr points at buf and cbuf, valid for writes of their lengths for the
            // whole call.
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut hdr, libc::MSG_CMSG_CLOEXEC) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut fd = None;
            // SAFETY: the kernel filled hdr's control buffer; CMSG_FIRSTHDR and CMSG_DATA stay
            // inside it, and an SCM_RIGHTS header of our size holds exactly one new fd.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&hdr);
                if !cmsg.is_null()
                    && (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_RIGHTS
                {
                    let raw = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const i32);
                    fd = Some(OwnedFd::from_raw_fd(raw));
                }
            }
            if n == 0 {
                return Ok((None, fd));
            }
            return Msg::decode(&buf[..n as usize]).map(|m| (Some(m), fd));
        }
    }

    /// Waits for an Ack; anything else is an error.
    pub fn expect_ack(&self) -> Result<(), String> {
        match self.recv() {
            Ok(Some(Msg::Ack)) => Ok(()),
            Ok(Some(Msg::Error(e))) => Err(e),
            Ok(Some(other)) => Err(format!("unexpected message {other:?} from the runtime")),
            Ok(None) => Err("the runtime went away".into()),
            Err(e) => Err(format!("reading from the runtime: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every message survives the trip through its bytes; the pid keeps its placement flag.
    #[test]
    fn messages_round_trip() {
        for msg in [
            Msg::Ack,
            Msg::MapIds,
            Msg::Pid(4242),
            Msg::PlacedPid(-7),
            Msg::Hooks,
            Msg::Ready,
            Msg::SeccompFd,
            Msg::Error("mounting /proc: EPERM".into()),
        ] {
            assert_eq!(Msg::decode(&msg.encode()).unwrap(), msg);
        }
        assert!(Msg::decode(b"P12").is_err());
    }
}
