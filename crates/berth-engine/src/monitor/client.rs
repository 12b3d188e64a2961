//! The client side of an attached session (`run` in the foreground, `start -a`, `attach`):
//! the monitor copies the container's output to the descriptors the client handed it, so the
//! client itself only puts the terminal in raw mode with `-t`, passes window-size changes on,
//! forwards signals to the container (`--sig-proxy`) and waits for the monitor's last word.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::fds;

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The container exited with this code.
    Exited(i32),
    /// The user pressed the detach keys; the container goes on.
    Detached,
    /// The monitor went away without saying (killed).
    MonitorGone,
}

/// The signals a session forwards to the container.
const FORWARDED: [i32; 6] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2];

/// Puts a terminal in raw mode and restores it on drop.
pub struct RawTerminal {
    fd: i32,
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    /// Raw mode on `fd` if it is a terminal; `None` otherwise.
    pub fn enter(fd: BorrowedFd<'_>) -> Option<Self> {
        let saved = rustix::termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(Self { fd: fd.as_raw_fd(), saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: the descriptor was open when raw mode was entered and is the caller's
        // terminal, which outlives the session.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Now, &self.saved);
    }
}

/// The window size of terminal `fd`, as (rows, columns).
pub fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(fd).ok()?;
    Some((ws.ws_row, ws.ws_col))
}

/// Blocks the session's signals and reads them from a signalfd; unblocks on drop.
struct Signals {
    fd: OwnedFd,
    old: libc::sigset_t,
}

impl Signals {
    fn new() -> io::Result<Self> {
        // SAFETY: the sigset_t values are initialised by sigemptyset before use, and
        // sigprocmask/signalfd only read and write them during the calls.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in FORWARDED.iter().chain(&[libc::SIGWINCH]) {
                libc::sigaddset(&mut set, *sig);
            }
            let mut old: libc::sigset_t = std::mem::zeroed();
            if libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
            if fd < 0 {
                let e = io::Error::last_os_error();
                libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                return Err(e);
            }
            Ok(Self { fd: OwnedFd::from_raw_fd(fd), old })
        }
    }

    /// The next pending signal.
    fn read(&self) -> Option<i32> {
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        match fds::read(self.fd.as_fd(), &mut info) {
            Ok(n) if n == info.len() => {
                // SAFETY: the kernel wrote one whole signalfd_siginfo; read_unaligned copes
                // with the byte buffer's alignment.
                let si: libc::signalfd_siginfo =
                    unsafe { std::ptr::read_unaligned(info.as_ptr().cast()) };
                Some(si.ssi_signo as i32)
            }
            _ => None,
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in new(); the pointer is valid for the call.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// What a session needs besides the socket.
#[derive(Debug, Clone, Copy)]
pub struct SessionOptions<'a> {
    /// The container's init on the host, for forwarded signals.
    pub pid: i32,
    /// `-t`: the user's terminal, whose size the pty follows.
    pub terminal: Option<BorrowedFd<'a>>,
    /// `--sig-proxy`
    pub sig_proxy: bool,
    /// `--detach-keys` (parsed; empty turns detaching off); `None` keeps the default.
    pub detach_keys: Option<&'a [u8]>,
}

/// Runs an attached session over `sock` until the container exits, the user detaches or the
/// monitor is gone.
pub fn session(sock: &OwnedFd, opts: SessionOptions<'_>) -> io::Result<SessionEnd> {
    let signals = Signals::new()?;
    let send_size = |fd: BorrowedFd<'_>| {
        if let Some((rows, cols)) = window_size(fd) {
            let _ = fds::write_all(sock.as_fd(), format!("resize {rows} {cols}\n").as_bytes());
        }
    };
    if let Some(keys) = opts.detach_keys {
        fds::write_all(sock.as_fd(), super::detach::control_line(keys).as_bytes())?;
    }
    if let Some(t) = opts.terminal {
        send_size(t);
    }
    let mut pending = Vec::new();
    loop {
        let mut pfds = [
            libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: signals.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        fds::poll(&mut pfds, -1)?;
        if pfds[1].revents != 0 {
            if let Some(sig) = signals.read() {
                if sig == libc::SIGWINCH {
                    if let Some(t) = opts.terminal {
                        send_size(t);
                    }
                } else if opts.sig_proxy && opts.pid > 0 {
                    // SAFETY: kill takes a pid and a signal number by value.
                    unsafe { libc::kill(opts.pid, sig) };
                }
            }
        }
        if pfds[0].revents != 0 {
            let mut buf = [0u8; 256];
            let n = fds::read(sock.as_fd(), &mut buf).unwrap_or(0);
            if n == 0 {
                return Ok(SessionEnd::MonitorGone);
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end();
                if let Some(code) = line.strip_prefix("exit ") {
                    return Ok(SessionEnd::Exited(code.parse().unwrap_or(125)));
                }
                if line == "detached" {
                    return Ok(SessionEnd::Detached);
                }
            }
        }
    }
}
