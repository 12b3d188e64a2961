//! The container's terminal (runtime spec, "Console"; runc's console socket protocol).
//!
//! The pty is opened inside the container, from its own /dev/ptmx, so it belongs to the
//! container's devpts instance; the slave becomes the process's controlling terminal and its
//! stdio, and the master goes to whoever listens on `--console-socket`, as one SCM_RIGHTS
//! message, which is what Podman's conmon and containerd expect.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::sys;

/// What went wrong with the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("opening /dev/ptmx: {0}")]
    OpenPtmx(#[source] io::Error),
    #[error("unlocking the pty: {0}")]
    Unlock(#[source] io::Error),
    #[error("opening the pty's slave: {0}")]
    OpenSlave(#[source] io::Error),
    #[error("setting the console size: {0}")]
    Size(#[source] io::Error),
    #[error("sending the pty master over the console socket: {0}")]
    Send(#[source] io::Error),
    #[error("making the pty the controlling terminal: {0}")]
    Controlling(#[source] io::Error),
}

/// Opens a pty, sends its master over `socket`, and makes the slave the caller's controlling
/// terminal and stdio. The caller must be a session leader.
pub fn setup(socket: RawFd, size: Option<(u16, u16)>) -> Result<(), ConsoleError> {
    let master = sys::open(Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY, 0)
        .map_err(ConsoleError::OpenPtmx)?;
    let mfd = master.as_raw_fd();
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer, which is valid for the call.
    sys::cvt(unsafe { libc::ioctl(mfd, libc::TIOCSPTLCK, &unlock) })
        .map_err(ConsoleError::Unlock)?;
    // SAFETY: TIOCGPTPEER takes open(2) flags by value and returns a new descriptor.
    let slave = sys::cvt(unsafe {
        libc::ioctl(mfd, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC)
    })
    .map_err(ConsoleError::OpenSlave)?;
    // SAFETY: the ioctl returned a fresh descriptor owned by nobody else.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if let Some((height, width)) = size {
        let ws = libc::winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer, valid for the call.
        sys::cvt(unsafe { libc::ioctl(mfd, libc::TIOCSWINSZ, &ws) }).map_err(ConsoleError::Size)?;
    }
    sys::send_fd(socket, b"/dev/ptmx", mfd).map_err(ConsoleError::Send)?;
    drop(master);
    // SAFETY: TIOCSCTTY takes an int by value; the caller is a session leader.
    sys::cvt(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) })
        .map_err(ConsoleError::Controlling)?;
    for fd in 0..3 {
        sys::dup2(slave.as_raw_fd(), fd).map_err(ConsoleError::Controlling)?;
    }
    Ok(())
}
