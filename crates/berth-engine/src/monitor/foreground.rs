//! A foreground `run --rm` without a monitor process: berth itself does the monitor's work for
//! the one container it runs and waits for — launches it with its output on pipes, writes
//! the log, serves `attach` clients, forwards the signals it gets to the container's init,
//! records the exit and removes the container — so the run saves the exec of a second berth,
//! its start-up and the socket hand-offs between the two.
//!
//! What other commands see is the same as with a monitor: the record says running with the
//! init's pid, `logs` reads the same k8s-file log while it runs, `stop` and `kill` signal the
//! init, and the monitor pid file names this process (pid and start time), so `ps`,
//! `wait` and `rm` treat it as the container's live monitor until it has recorded the exit.
//!
//! It is only for a process that stays until the container exits: not for `-d`, and not
//! with `-t` or `-i` (a pty or a detach would need the monitor to outlive this process), nor
//! without `--sig-proxy` (then a signal that ends berth would leave the container unwatched),
//! nor with a restart policy or a healthcheck (the monitor's duties).
//! The caller checks that berth is single-threaded, since the runtime forks here.
//!
//! Nothing outlives this process to finish the work if it is killed (SIGKILL, or a crash):
//! the bundle's [`RUNNER_MARKER`] says so, and the next berth command that reconciles state
//! (see `Containers::reconcile`) kills a container whose runner is gone and removes it, as
//! its `--rm` asked.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicI32, Ordering};

use tracing::{debug, warn};

use super::{
    fds, finish, launch, open_log, serve, write_pid_file, AttachIo, Client, LaunchPaths,
    MonitorConfig, MonitorError,
};
use crate::state::Timestamp;

/// The file in a container's bundle that says its runner is a foreground `berth run` (this
/// module), not a monitor: nothing is left to watch the container once that process is gone.
pub const RUNNER_MARKER: &str = "runs-in-foreground";

/// Whether the container of `bundle` is run by a foreground `berth run` (see
/// [`RUNNER_MARKER`]).
pub fn runs_in_foreground(bundle: &std::path::Path) -> bool {
    bundle.join(RUNNER_MARKER).exists()
}

/// The signals forwarded to the container, as an attached session forwards them.
const FORWARDED: [i32; 6] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2];

/// The container's init while this process forwards signals to it (0: none).
static PROXY_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(signal: libc::c_int) {
    let pid = PROXY_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe and takes its arguments by value.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Forwards [`FORWARDED`] to `pid` from a signal handler until dropped (then the default
/// dispositions are back). A handler rather than a signalfd, so the copy loop needs no
/// descriptor of its own: an interrupted poll just polls again.
struct SignalProxy;

impl SignalProxy {
    fn install(pid: i32) -> Self {
        PROXY_PID.store(pid, Ordering::Relaxed);
        for signal in FORWARDED {
            set_handler(signal, forward_signal as *const () as libc::sighandler_t);
        }
        SignalProxy
    }
}

impl Drop for SignalProxy {
    fn drop(&mut self) {
        for signal in FORWARDED {
            set_handler(signal, libc::SIG_DFL);
        }
        PROXY_PID.store(0, Ordering::Relaxed);
    }
}

fn set_handler(signal: i32, handler: libc::sighandler_t) {
    // SAFETY: the sigaction is zeroed and then filled in (an empty mask, SA_RESTART, a handler
    // that only makes an async-signal-safe call or SIG_DFL); it lives for the call.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, std::ptr::null_mut());
    }
}

/// This process's descriptors 0, 1 and 2, kept while the container's pipes are put there for
/// the runtime, and put back by [`SavedStdio::restore`].
struct SavedStdio([OwnedFd; 3]);

impl SavedStdio {
    fn save() -> Result<Self, MonitorError> {
        let dup = |fd: i32| {
            // SAFETY: 0, 1 and 2 are open for the life of the process (std opens /dev/null on
            // any that were closed at start); the borrow ends with the duplicate.
            unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned().map_err(MonitorError::Stdio)
        };
        Ok(Self([dup(0)?, dup(1)?, dup(2)?]))
    }

    fn restore(&self) {
        for (target, fd) in self.0.iter().enumerate() {
            if let Err(e) = fds::dup_onto(fd, target as i32) {
                warn!(fd = target, error = %e, "putting back a standard descriptor");
            }
        }
    }
}

/// Empties the layers' trash (the removed container's directories) in a child of its own, in
/// a session of its own and holding none of this process's descriptors, so neither berth's
/// exit nor whoever reads its output to the end waits for the disk. Where the fork fails it
/// is emptied here; where the child dies first, the next command that reconciles empties it.
fn empty_trash_detached(layers: &berth_storage::ContainerLayers) {
    if !layers.has_trash() {
        return;
    }
    // SAFETY: this process is single-threaded (run_here's caller checks it; the runtime forked
    // here already), so the child's copy of the allocator and of every lock is consistent.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: setsid, open, dup2 and close_range act on the child alone; the path is
            // a NUL-terminated literal.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
                for fd in 0..3 {
                    libc::dup2(null, fd);
                }
                libc::close_range(3, u32::MAX, 0);
            }
            layers.empty_trash();
            // SAFETY: _exit ends the child without running this process's exit handlers or
            // flushing buffers it shares with the parent.
            unsafe { libc::_exit(0) }
        }
        -1 => layers.empty_trash(),
        _ => {}
    }
}

/// Runs the container of `config` (created, its root mounted, not `-t`, not `-i`, without a
/// restart policy or healthcheck) in this process with its output going to `io` and the log;
/// `on_started` records it running (the pid and start time) before anything else may record
/// its exit. Returns the container's exit code once it has exited and `finish` has recorded
/// it (and, with `--rm`, removed it).
pub fn run_here(
    config: &MonitorConfig,
    io: AttachIo<'_>,
    on_started: impl FnOnce(i32, u64) -> Result<(), String>,
) -> Result<i32, MonitorError> {
    let runtime_root = berth_runtime::state::StateRoot::new(config.runroot.join("runtime"));
    // The container's directories go to the trash when it is removed, and a detached child
    // empties it after this process has the exit code (see empty_trash_detached).
    let layers =
        berth_storage::ContainerLayers::new(&config.root, &config.runroot).deferring_removal();
    let rootfs = layers.layer(&config.id).merged;
    let mut log = open_log(config);
    // The client this process is: where the output goes.
    let stdout = io.stdout.try_clone_to_owned().map_err(MonitorError::Stdio)?;
    let stderr = io.stderr.try_clone_to_owned().map_err(MonitorError::Stdio)?;

    // The runtime hands this process's 0, 1 and 2 to the init: the launch puts the pipes
    // there (and /dev/null after), ours come back after it.
    let saved = SavedStdio::save()?;
    let console_file = config.bundle.join("console.sock");
    let paths = LaunchPaths {
        runtime_root: &runtime_root,
        rootfs: &rootfs,
        console_file: &console_file,
        console_path: &console_file,
    };
    let launched = launch(config, &paths);
    saved.restore();
    drop(saved);
    let mut launched = match launched {
        Ok(l) => l,
        Err((code, message)) => {
            let _ = layers.unmount(&config.id);
            return Err(MonitorError::Launch { code, message: message.replace('\n', " ") });
        }
    };
    let pid = launched.pid;
    let proxy = SignalProxy::install(pid);
    write_pid_file(&config.bundle, std::process::id() as i32);
    // Before the record says running, so whoever sees it running can tell who runs it. The
    // marker is a second name of the pid file: a hard link takes no new inode, and on a file
    // system without a journal (this machine's) every new inode first looks past each one
    // deleted in the last seconds, which made a new file cost up to a third of a millisecond.
    let marker = config.bundle.join(RUNNER_MARKER);
    if let Err(e) = std::fs::hard_link(super::pid_file(&config.bundle), &marker) {
        warn!(path = %marker.display(), error = %e, "marking the container run in the foreground");
    }
    let recorded = on_started(pid, launched.start_time);
    if let Err(message) = &recorded {
        // Nothing says it runs, so nothing may see it run: it is ended and cleaned up below.
        warn!(id = %config.id, %message, "recording the container running; killing it");
        // SAFETY: kill takes a pid and a signal number by value.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }

    // The control socket of an attached client; this process is that client and sends
    // nothing, so its end is only held.
    let (sock, _held) = UnixStream::pair().map_err(MonitorError::Socket)?;
    let mut clients = vec![Client {
        sock: OwnedFd::from(sock),
        stdout,
        stderr,
        stdin: None,
        detach: super::detach::Matcher::default(),
        control: Vec::new(),
        feeds_stdin: false,
    }];
    let attach_path = config.attach_socket();
    let _ = std::fs::remove_file(&attach_path);
    let (_attach_dir, attach_short) = match fds::socket_path(&config.bundle, "attach") {
        Ok(p) => p,
        Err(_) => (None, attach_path.clone()),
    };
    let listener = UnixListener::bind(&attach_short).ok();
    if let Some(l) = &listener {
        let _ = l.set_nonblocking(true);
    }
    debug!(id = %config.id, pid, "container runs without a monitor process");

    let mut no_health = None;
    let code =
        serve(config, &mut launched, &mut clients, listener.as_ref(), &mut log, &mut no_health);
    drop(proxy);
    drop(listener);
    let _ = std::fs::remove_file(&attach_path);
    finish(config, &runtime_root, &layers, code, Timestamp::now(), false);
    for client in &clients {
        let _ = fds::write_all(client.sock.as_fd(), format!("exit {code}\n").as_bytes());
    }
    empty_trash_detached(&layers);
    match recorded {
        Ok(()) => Ok(code),
        Err(message) => Err(MonitorError::Record { id: config.id.clone(), message }),
    }
}
