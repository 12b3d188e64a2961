//! A pseudo-terminal for end-to-end tests of `-it`: a command started on a new pty as its
//! controlling terminal (as a shell in a terminal emulator runs it), what it writes read back
//! from the master side, and the terminal's size changed as a resized window would, which
//! sends SIGWINCH to the command.

use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Opens a new pty pair: the master and the path of the slave.
pub fn open() -> (fs::File, PathBuf) {
    // SAFETY: posix_openpt returns a new descriptor or -1; grantpt, unlockpt and ptsname_r
    // act on that descriptor, and ptsname_r writes at most `name.len()` bytes into `name`.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = fs::File::from_raw_fd(fd);
        assert_eq!(libc::grantpt(fd), 0, "grantpt");
        assert_eq!(libc::unlockpt(fd), 0, "unlockpt");
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(fd, name.as_mut_ptr(), name.len()), 0, "ptsname_r");
        let path = std::ffi::CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned();
        (master, PathBuf::from(path))
    }
}

/// Spawns `command` with a new pty as its stdio and controlling terminal, in a session of
/// its own; returns the child and the master.
pub fn spawn(mut command: Command) -> (Child, fs::File) {
    let (master, slave_path) = open();
    let slave = fs::OpenOptions::new().read(true).write(true).open(&slave_path).expect("the slave");
    command
        .stdin(slave.try_clone().expect("dup"))
        .stdout(slave.try_clone().expect("dup"))
        .stderr(slave);
    // SAFETY: only setsid and ioctl between fork and exec, both async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let child = command.spawn().expect("spawning on the pty");
    (child, master)
}

/// Reads from the master until `want` shows up (a minute at most); returns all it read.
pub fn read_until(master: &mut fs::File, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let fd = master.as_raw_fd();
    while !String::from_utf8_lossy(&seen).contains(want) {
        assert!(Instant::now() < deadline, "no {want:?} in {:?}", String::from_utf8_lossy(&seen));
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the call.
        if unsafe { libc::poll(&mut pfd, 1, 200) } <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Sets the terminal's size, as a resized window does: the kernel sends SIGWINCH to the
/// terminal's foreground process group.
pub fn resize(master: &fs::File, rows: u16, cols: u16) {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, valid for the call.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
}

/// Waits up to a minute for `child` to exit; its exit code (None for a signal).
pub fn wait_exit(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code();
        }
        assert!(Instant::now() < deadline, "the command on the pty did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}
