//! The per-container monitor: a small process, berth re-executed with a hidden first argument
//! ([`MONITOR_ARG`]) and handled before anything else is initialised, that stays with one
//! container for its whole run, as conmon does for Podman. It is not a daemon: one per
//! running container, gone when the container is.
//!
//! The monitor is the container's parent: it calls the runtime in its own single-threaded
//! process (it is a child subreaper, so the init in its pid namespace is its child), in its
//! own session, detached from any terminal, so closing the terminal that started a container
//! does not disturb it. It owns the container's stdio (pipes) or its pty master, writes every
//! byte of output to the log in the k8s-file format, copies it to attached clients and feeds
//! their input to the container, and when the init exits it records the exit code and time
//! (an `exit` file at once, then the database), tears down the runtime state and the cgroup,
//! unmounts the root and, with `--rm`, removes the container.
//!
//! Clients talk to it over unix stream sockets: the one it is started with (`sync`, fd 3),
//! and `RUNROOT/containers/ID/userdata/attach` for `attach`. A client hands over its own
//! standard descriptors with SCM_RIGHTS in its first message (so the monitor writes straight
//! to the user's terminal), then sends `resize ROWS COLS` and `detach-keys HEX` lines
//! ([`detach`]); the monitor answers with `started PID START`, `error CODE MESSAGE`,
//! `detached` or `exit CODE` lines.
//!
//! Why re-exec rather than fork: a fork of berth inherits the client's touched pages (the
//! image store, the database, the parsed spec), all counted in the monitor's resident set for
//! as long as the container runs; a fresh exec starts from the binary's pages only. The
//! figures are in BENCHMARKS.md.

pub mod client;
pub mod detach;
pub mod duties;
pub mod fds;
pub mod foreground;
pub mod handoff;
pub mod health;
pub mod restart;
mod shed;

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::containers::lifecycle::{self, CANNOT_INVOKE, ENGINE_FAILURE, NOT_FOUND};
use crate::containers::log_files::LogDriver;
use crate::containers::logs::{LogWriter, Stream};
use crate::state::Timestamp;

/// The hidden first argument that makes `berth` a monitor.
pub const MONITOR_ARG: &str = "__berth-monitor";

/// The descriptor number of the socket a monitor is started with.
const SYNC_FD: i32 = 3;

/// Errors of starting a monitor and of talking to one.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("encoding the monitor's configuration")]
    Encode(#[source] serde_json::Error),
    #[error("making the monitor's socket")]
    Socket(#[source] io::Error),
    #[error("starting the monitor {exe}")]
    Spawn {
        exe: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("talking to the monitor of container {id}")]
    Talk {
        id: String,
        #[source]
        source: io::Error,
    },
    #[error("{message}")]
    Launch { code: i32, message: String },
    #[error("the monitor of container {id} exited before it started the container")]
    Died { id: String },
    #[error("setting up the container's stdio")]
    Stdio(#[source] io::Error),
    #[error("recording container {id} running: {message}")]
    Record { id: String, message: String },
    #[error("connecting to the attach socket {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl MonitorError {
    /// The exit code `run` and `start` report for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Launch { code, .. } => *code,
            _ => ENGINE_FAILURE,
        }
    }
}

/// What a monitor needs to know, passed as JSON in its second argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorConfig {
    pub id: String,
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub rootless: bool,
    /// The bundle (the container's userdata directory with config.json).
    pub bundle: PathBuf,
    pub log_path: PathBuf,
    /// `-t`: the container gets a pty.
    pub tty: bool,
    /// `-i`: the container's stdin stays open (else it reads /dev/null).
    pub stdin: bool,
    /// `--rm`
    pub auto_remove: bool,
    /// The restart policy, healthcheck and log driver (issue 7).
    #[serde(default)]
    pub duties: duties::Duties,
}

impl MonitorConfig {
    pub fn attach_socket(&self) -> PathBuf {
        attach_socket(&self.bundle)
    }
}

/// The attach socket of the container whose userdata directory is `userdata`.
pub fn attach_socket(userdata: &Path) -> PathBuf {
    userdata.join("attach")
}

/// The monitor's pid file in `userdata`: its pid alone, as conmon's (inspect's ConmonPidFile).
pub fn pid_file(userdata: &Path) -> PathBuf {
    userdata.join("monitor.pid")
}

/// The monitor's start time (from /proc/PID/stat) beside the pid file, so that a reused pid
/// is not taken for the monitor.
fn start_file(userdata: &Path) -> PathBuf {
    userdata.join("monitor.start")
}

/// Records `pid` as the process that watches the container of `userdata`.
pub(crate) fn write_pid_file(userdata: &Path, pid: i32) {
    use crate::state::ProcessProbe;
    let start = crate::state::ProcProbe.start_time(pid).unwrap_or(0);
    let _ = fs::write(start_file(userdata), format!("{start}\n"));
    let _ = fs::write(pid_file(userdata), format!("{pid}\n"));
}

/// The exit file in `userdata`: `CODE` then the Unix nanoseconds of the exit.
pub fn exit_file(userdata: &Path) -> PathBuf {
    userdata.join("exit")
}

/// Reads the exit file: (code, time).
pub fn read_exit_file(userdata: &Path) -> Option<(i32, Timestamp)> {
    let text = fs::read_to_string(exit_file(userdata)).ok()?;
    let mut parts = text.split_whitespace();
    let code = parts.next()?.parse().ok()?;
    let at = parts.next()?.parse().ok()?;
    Some((code, Timestamp(at)))
}

/// Whether the monitor recorded in `userdata` still runs: its pid is alive with the recorded
/// start time (or, without one, its command line names the container). The process is
/// berth's own monitor or, for a foreground `run --rm`, the berth that runs it.
pub fn monitor_alive(userdata: &Path, id: &str) -> bool {
    use crate::state::ProcessProbe;
    let text = fs::read_to_string(pid_file(userdata)).unwrap_or_default();
    let Some(pid) = text.trim().parse::<i32>().ok() else {
        return false;
    };
    let start = fs::read_to_string(start_file(userdata)).unwrap_or_default();
    if let Some(start) = start.trim().parse::<u64>().ok().filter(|s| *s != 0) {
        return crate::state::ProcProbe.start_time(pid) == Some(start);
    }
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    crate::state::reconcile::parse_stat(&stat).is_some()
        && cmdline.windows(id.len()).any(|w| w == id.as_bytes())
}

/// The descriptors a client hands to the monitor: where the container's output goes and,
/// with `-i`, where its input comes from.
#[derive(Debug, Clone, Copy)]
pub struct AttachIo<'a> {
    pub stdin: Option<BorrowedFd<'a>>,
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
}

/// A container started by its monitor.
#[derive(Debug)]
pub struct Started {
    pub pid: i32,
    pub start_time: u64,
    pub monitor_pid: i32,
    /// The client's end of the monitor's socket: send `recorded` once the database knows the
    /// container runs, then keep it for an attached session or drop it.
    pub sock: OwnedFd,
}

impl Started {
    /// Tells the monitor the database now says running, so it may record the exit.
    pub fn recorded(&self) -> io::Result<()> {
        fds::write_all(self.sock.as_fd(), b"recorded\n")
    }
}

/// Starts a monitor for `config` and, through it, the container. With `attach`, the client's
/// descriptors go with the first message, so no byte of output is missed. `inherit` are the
/// descriptors the monitor is to hold (the published ports' sockets); it inherits no other
/// of this process's, whatever their close-on-exec flag (a caller's pipe must not stay open
/// for as long as the container runs). Returns once the container's process runs (or failed
/// to start, with the code `run` exits with).
pub fn spawn(
    config: &MonitorConfig,
    attach: Option<AttachIo<'_>>,
    inherit: &[BorrowedFd<'_>],
) -> Result<Started, MonitorError> {
    let json = serde_json::to_string(config).map_err(MonitorError::Encode)?;
    let (ours, theirs) = UnixStream::pair().map_err(MonitorError::Socket)?;
    let exe = std::env::current_exe()
        .map_err(|source| MonitorError::Spawn { exe: "/proc/self/exe".into(), source })?;
    let errors = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.bundle.join("monitor.log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    // The socket goes to SYNC_FD in the child, so nothing to keep may be there: such a one
    // is kept through a duplicate.
    let mut moved = Vec::new();
    let mut keep: Vec<i32> = Vec::with_capacity(inherit.len());
    for fd in inherit {
        if fd.as_raw_fd() <= SYNC_FD {
            let dup = rustix::io::fcntl_dupfd_cloexec(fd, SYNC_FD + 1)
                .map_err(|e| MonitorError::Spawn { exe: exe.clone(), source: e.into() })?;
            keep.push(dup.as_raw_fd());
            moved.push(dup);
        } else {
            keep.push(fd.as_raw_fd());
        }
    }
    let theirs_fd = theirs.as_raw_fd();
    let mut command = Command::new(&exe);
    command.arg(MONITOR_ARG).arg(json).stdin(Stdio::null()).stdout(Stdio::null()).stderr(errors);
    // SAFETY: between fork and exec the closure only makes async-signal-safe calls (setsid,
    // close_range, dup2, fcntl, sigprocmask) on descriptors and state this process owns;
    // `keep` was allocated before the fork and is only read.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            // Every descriptor from 3 up closes at the exec but the socket and `keep`.
            if libc::close_range(SYNC_FD as u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) < 0 {
                return Err(io::Error::last_os_error());
            }
            if theirs_fd == SYNC_FD {
                if libc::fcntl(SYNC_FD, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(theirs_fd, SYNC_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            for &fd in &keep {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = command.spawn().map_err(|source| MonitorError::Spawn { exe, source })?;
    drop(theirs);
    drop(moved);
    let monitor_pid = child.id() as i32;
    // The child is reaped by whoever waits for the session (or by init once we exit).
    std::mem::forget(child);
    write_pid_file(&config.bundle, monitor_pid);

    let talk = |source| MonitorError::Talk { id: config.id.clone(), source };
    match attach {
        Some(io) => {
            let mut fds = vec![io.stdout, io.stderr];
            fds.extend(io.stdin);
            let hello = if io.stdin.is_some() { b"Ai" } else { b"Ao" };
            fds::send_with_fds(ours.as_fd(), hello, &fds).map_err(talk)?;
        }
        None => fds::send_with_fds(ours.as_fd(), b"D-", &[]).map_err(talk)?,
    }
    let sock = OwnedFd::from(ours);
    match fds::read_line(sock.as_fd()).map_err(talk)? {
        Some(line) => {
            if let Some(rest) = line.strip_prefix("started ") {
                let mut parts = rest.split(' ');
                let pid = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                let start_time = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                return Ok(Started { pid, start_time, monitor_pid, sock });
            }
            if let Some(rest) = line.strip_prefix("error ") {
                let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
                reap(monitor_pid);
                return Err(MonitorError::Launch {
                    code: code.parse().unwrap_or(ENGINE_FAILURE),
                    message: message.to_owned(),
                });
            }
            reap(monitor_pid);
            Err(MonitorError::Died { id: config.id.clone() })
        }
        None => {
            reap(monitor_pid);
            Err(MonitorError::Died { id: config.id.clone() })
        }
    }
}

/// Reaps monitor `pid` if it is our child and has exited or exits soon.
pub fn reap(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // SAFETY: waitpid on a specific pid with WNOHANG only reaps that child.
        let rc = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        if rc != 0 || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Connects to a running container's monitor and hands it `io`, as `attach` does.
pub fn connect(userdata: &Path, io: AttachIo<'_>) -> Result<OwnedFd, MonitorError> {
    let path = attach_socket(userdata);
    let (_dir, short) = fds::socket_path(userdata, "attach")
        .map_err(|source| MonitorError::Connect { path: path.clone(), source })?;
    let sock = UnixStream::connect(&short)
        .map_err(|source| MonitorError::Connect { path: path.clone(), source })?;
    let mut fds = vec![io.stdout, io.stderr];
    fds.extend(io.stdin);
    let hello = if io.stdin.is_some() { b"Ai" } else { b"Ao" };
    fds::send_with_fds(sock.as_fd(), hello, &fds)
        .map_err(|source| MonitorError::Connect { path, source })?;
    Ok(OwnedFd::from(sock))
}

/// The code for a runtime failure message at create: the runtime's own words for a command
/// that is not there (127) or cannot be run (126), else 125.
pub fn launch_failure_code(message: &str, rootfs: &Path) -> i32 {
    if message.contains("not found in $PATH") {
        return NOT_FOUND;
    }
    // "exec PATH: not an executable file": missing (127) or there but not runnable (126).
    if let Some(rest) = message.split("exec ").nth(1) {
        if let Some(path) = rest.strip_suffix(": not an executable file") {
            let inside = rootfs.join(path.trim_start_matches('/'));
            return if fs::symlink_metadata(&inside).is_ok() { CANNOT_INVOKE } else { NOT_FOUND };
        }
        if rest.contains("ermission denied") {
            return CANNOT_INVOKE;
        }
        if rest.contains("o such file or directory") {
            return NOT_FOUND;
        }
    }
    ENGINE_FAILURE
}

/// The monitor's entry point, called by `main` before anything else when the first argument
/// is [`MONITOR_ARG`]; returns the process's exit code. `None` when this process is not a
/// monitor.
pub fn run_if_requested() -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    let first = args.next()?;
    if first == handoff::RESUME_ARG {
        return Some(handoff::resume());
    }
    if first != MONITOR_ARG {
        return None;
    }
    let json = args.next()?;
    let config: MonitorConfig = match serde_json::from_slice(json.as_encoded_bytes()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth monitor: bad configuration: {e}");
            return Some(ENGINE_FAILURE);
        }
    };
    // SAFETY: fd 3 was put there for us by the spawner; nothing else in this fresh process
    // owns it.
    let sync = unsafe { OwnedFd::from_raw_fd(SYNC_FD) };
    // Close-on-exec, so the container never inherits it.
    let _ = rustix::io::fcntl_setfd(sync.as_fd(), rustix::io::FdFlags::CLOEXEC);
    Some(monitor(config, sync))
}

/// One attached client.
struct Client {
    sock: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    stdin: Option<OwnedFd>,
    /// The client's detach keys, and how much of them its input ended with.
    detach: detach::Matcher,
    /// Control bytes read from `sock` without a newline yet.
    control: Vec<u8>,
    /// This client's input is what feeds the container's stdin (the first with -i).
    feeds_stdin: bool,
}

/// What goes into a client's first message.
fn receive_client(sock: OwnedFd) -> Option<Client> {
    let mut hello = [0u8; 2];
    let (n, mut fds) = fds::recv_with_fds(sock.as_fd(), &mut hello).ok()?;
    if n < 2 || hello[0] != b'A' || fds.len() < 2 {
        return None;
    }
    let stdin = if hello[1] == b'i' && fds.len() >= 3 { fds.pop() } else { None };
    let stderr = fds.pop()?;
    let stdout = fds.pop()?;
    Some(Client {
        sock,
        stdout,
        stderr,
        stdin,
        detach: detach::Matcher::default(),
        control: Vec::new(),
        feeds_stdin: false,
    })
}

/// The container's side of its stdio, as the monitor holds it.
enum Output {
    Pipes { stdout: Option<OwnedFd>, stderr: Option<OwnedFd> },
    Pty { master: Option<OwnedFd> },
}

/// Ignores SIGPIPE: a client that went away must not end the monitor mid-write.
fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no handler to be unsafe about.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// The binary this monitor runs, even if a newer one replaced it on disk since.
const SELF_EXE: &std::ffi::CStr = c"/proc/self/exe";

/// The healthcheck clock of `config`'s container, if it has a check with an interval.
fn health_timer(config: &MonitorConfig) -> Option<health::Timer> {
    let check = config.duties.health.as_ref()?;
    health::Timer::new(check, &config.root, &config.runroot, &config.id, SELF_EXE)
}

/// Writes the exit file at once (the database follows after the cleanup). An --rm
/// container's directory goes with it, so it gets none.
fn write_exit_file(config: &MonitorConfig, code: i32, at: Timestamp) {
    if !config.auto_remove {
        let _ = fs::write(exit_file(&config.bundle), format!("{code} {}\n", at.0));
    }
}

/// The running container as its monitor holds it: its process and stdio, the attach
/// listener and the attached clients.
struct Watched {
    config: MonitorConfig,
    launched: Launched,
    clients: Vec<Client>,
    listener: Option<UnixListener>,
}

/// Where a monitor process launches the container from, owned.
struct LaunchPlace {
    runtime_root: berth_runtime::state::StateRoot,
    layers: berth_storage::ContainerLayers,
    rootfs: PathBuf,
    console_file: PathBuf,
    console_path: PathBuf,
    /// Keeps `console_path` valid when it goes through a descriptor of a deep directory.
    _console_dir: Option<OwnedFd>,
}

impl LaunchPlace {
    fn new(config: &MonitorConfig) -> Self {
        let layers = berth_storage::ContainerLayers::new(&config.root, &config.runroot);
        let console_file = config.bundle.join("console.sock");
        let (console_dir, console_path) = match fds::socket_path(&config.bundle, "console.sock") {
            Ok(p) => p,
            Err(_) => (None, console_file.clone()),
        };
        Self {
            runtime_root: berth_runtime::state::StateRoot::new(config.runroot.join("runtime")),
            rootfs: layers.layer(&config.id).merged,
            layers,
            console_file,
            console_path,
            _console_dir: console_dir,
        }
    }

    fn paths(&self) -> LaunchPaths<'_> {
        LaunchPaths {
            runtime_root: &self.runtime_root,
            rootfs: &self.rootfs,
            console_file: &self.console_file,
            console_path: &self.console_path,
        }
    }
}

fn monitor(config: MonitorConfig, sync: OwnedFd) -> i32 {
    ignore_sigpipe();
    let mut hello = [0u8; 2];
    let (first_client, sync) = match fds::recv_with_fds(sync.as_fd(), &mut hello) {
        Ok((2, fds)) if hello[0] == b'A' => {
            let mut fds = fds;
            let stdin = if hello[1] == b'i' && fds.len() >= 3 { fds.pop() } else { None };
            let stderr = fds.pop();
            let stdout = fds.pop();
            match (stdout, stderr) {
                (Some(stdout), Some(stderr)) => (Some((stdout, stderr, stdin)), sync),
                _ => (None, sync),
            }
        }
        _ => (None, sync),
    };

    // The container's stdio, then its process.
    let place = LaunchPlace::new(&config);
    let launched = match launch(&config, &place.paths()) {
        Ok(l) => l,
        Err((code, message)) => {
            let _ = place.layers.unmount(&config.id);
            let line = format!("error {code} {}\n", message.replace('\n', " "));
            let _ = fds::write_all(sync.as_fd(), line.as_bytes());
            return code;
        }
    };
    drop(place);

    let line = format!("started {} {}\n", launched.pid, launched.start_time);
    let _ = fds::write_all(sync.as_fd(), line.as_bytes());
    // The client records "running"; only then may this monitor record the exit.
    let sync_open = matches!(fds::read_line(sync.as_fd()), Ok(Some(_)));

    let mut clients: Vec<Client> = Vec::new();
    if let Some((stdout, stderr, stdin)) = first_client {
        if sync_open {
            clients.push(Client {
                sock: sync,
                stdout,
                stderr,
                feeds_stdin: stdin.is_some(),
                stdin,
                detach: detach::Matcher::default(),
                control: Vec::new(),
            });
        }
    }
    let attach_path = config.attach_socket();
    let _ = fs::remove_file(&attach_path);
    let listener = match fds::socket_path(&config.bundle, "attach") {
        Ok((_dir, short)) => UnixListener::bind(short).ok(),
        Err(_) => UnixListener::bind(&attach_path).ok(),
    };
    if let Some(l) = &listener {
        let _ = l.set_nonblocking(true);
    }

    // Issue 7's duties: the restart policy and the healthcheck clock.
    let supervisor = restart::Supervisor::new(config.duties.restart, &config.bundle);
    let health = health_timer(&config);
    supervise(Watched { config, launched, clients, listener }, supervisor, health, None)
}

/// The monitor from the container's start (or from its watcher, with the exit it saw) to
/// its own end: serve until the init exits, then restart it as the policy says or clean up.
fn supervise(
    mut w: Watched,
    mut supervisor: restart::Supervisor,
    mut health: Option<health::Timer>,
    mut exited: Option<(i32, Timestamp)>,
) -> i32 {
    let place = LaunchPlace::new(&w.config);
    let mut exit_recorded = false;
    let (code, at) = loop {
        let (code, at) = match exited.take() {
            Some(exit) => exit,
            None => {
                // Returns only when the watcher cannot take over; then this process serves.
                handoff::to_watcher(&w, &supervisor, health.as_ref());
                // The start-up is done: its pages need not stay resident while it runs.
                shed::shed_startup_pages();
                let mut log = open_log(&w.config);
                let code = serve(
                    &w.config,
                    &mut w.launched,
                    &mut w.clients,
                    w.listener.as_ref(),
                    &mut log,
                    &mut health,
                );
                if let Some(h) = health.as_mut() {
                    h.stop();
                }
                let at = Timestamp::now();
                write_exit_file(&w.config, code, at);
                (code, at)
            }
        };
        let config = &w.config;
        let Some(delay) = supervisor.after_exit(code) else { break (code, at) };
        // A restart: the exit is recorded as any other, the runtime state goes, the mount and
        // the network stay, and the same log goes on.
        crate::stats::record_oom(&place.runtime_root, &config.id, &config.bundle);
        if let Err(e) = berth_runtime::delete::delete(&place.runtime_root, &config.id, true) {
            debug!(id = %config.id, error = %e, "deleting the runtime state before a restart");
        }
        record_exit(config, code, at);
        exit_recorded = true;
        if !supervisor.wait(delay) {
            break (code, at);
        }
        w.launched = match launch(config, &place.paths()) {
            Ok(l) => l,
            Err((failed, message)) => {
                warn!(id = %config.id, code = failed, %message, "restarting the container");
                break (code, at);
            }
        };
        supervisor.restarted();
        exit_recorded = false;
        record_restart(config, &w.launched);
        if let Some(h) = health.as_mut() {
            h.restart();
        }
        if supervisor.stop_requested() {
            // A stop came while it started again: it ends now.
            // SAFETY: kill takes a pid and a signal by value; the pid is our unreaped child.
            unsafe { libc::kill(w.launched.pid, libc::SIGKILL) };
        }
    };
    drop(w.listener.take());
    let _ = fs::remove_file(w.config.attach_socket());

    finish(&w.config, &place.runtime_root, &place.layers, code, at, exit_recorded);
    for client in &w.clients {
        let _ = fds::write_all(client.sock.as_fd(), format!("exit {code}\n").as_bytes());
    }
    0
}

/// Where one launch of the container puts things.
struct LaunchPaths<'a> {
    runtime_root: &'a berth_runtime::state::StateRoot,
    rootfs: &'a Path,
    console_file: &'a Path,
    console_path: &'a Path,
}

/// One run of the container's process, as the monitor holds it.
struct Launched {
    pid: i32,
    start_time: u64,
    output: Output,
    stdin_w: Option<OwnedFd>,
}

/// Sets up the container's stdio and starts its process through the runtime (for the first
/// start and for each restart). A failure is the exit code `run` reports and the message.
fn launch(config: &MonitorConfig, paths: &LaunchPaths<'_>) -> Result<Launched, (i32, String)> {
    if config.duties.health.is_some() {
        if let Err(e) = health::set_starting(&config.bundle) {
            debug!(id = %config.id, error = %e, "marking the health as starting");
        }
    }
    let _ = fs::remove_file(paths.console_file);
    let setup = || -> io::Result<(Option<UnixListener>, Option<OwnedFd>, Output)> {
        if config.tty {
            let listener = UnixListener::bind(paths.console_path)?;
            return Ok((Some(listener), None, Output::Pty { master: None }));
        }
        let (out_r, out_w) = fds::pipe()?;
        let (err_r, err_w) = fds::pipe()?;
        let (stdin_r, stdin_w) = if config.stdin {
            let (r, w) = fds::pipe()?;
            (r, Some(w))
        } else {
            (OwnedFd::from(fs::File::open("/dev/null")?), None)
        };
        fds::dup_onto(&stdin_r, 0)?;
        fds::dup_onto(&out_w, 1)?;
        fds::dup_onto(&err_w, 2)?;
        Ok((None, stdin_w, Output::Pipes { stdout: Some(out_r), stderr: Some(err_r) }))
    };
    let (console_listener, stdin_w, mut output) =
        setup().map_err(|e| (ENGINE_FAILURE, format!("setting up the container's stdio: {e}")))?;

    let opts = berth_runtime::create::CreateOptions {
        id: config.id.clone(),
        bundle: config.bundle.clone(),
        console_socket: config.tty.then(|| paths.console_path.to_owned()),
        rootless: config.rootless,
        ..Default::default()
    };
    let launched =
        berth_runtime::create::launch(paths.runtime_root, &opts, berth_runtime::create::Mode::Run);
    // The container has its copies; ours go back to /dev/null.
    if let Ok(null) = fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            let _ = fds::dup_onto(&null, fd);
        }
    }
    let container = match launched {
        Ok(c) => c,
        Err(e) => {
            let message = e.to_string();
            let code = launch_failure_code(&message, paths.rootfs);
            let _ = fs::remove_file(paths.console_file);
            return Err((code, message));
        }
    };
    if let (Some(listener), Output::Pty { master }) = (&console_listener, &mut output) {
        *master = receive_master(listener);
        let _ = fs::remove_file(paths.console_file);
    }
    Ok(Launched {
        pid: container.record.pid,
        start_time: container.record.start_time,
        output,
        stdin_w,
    })
}

/// Receives the pty master the container's init sends over the console socket.
fn receive_master(listener: &UnixListener) -> Option<OwnedFd> {
    let _ = listener.set_nonblocking(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                let _ = conn.set_nonblocking(false);
                let mut buf = [0u8; 64];
                let (_, mut fds) = fds::recv_with_fds(conn.as_fd(), &mut buf).ok()?;
                return fds.pop();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                fds::poll_one(listener.as_raw_fd(), libc::POLLIN, 100);
            }
            Err(_) => return None,
        }
    }
}

/// Copies output and input until the init exits and its output is drained; returns the
/// container's exit code.
fn serve(
    config: &MonitorConfig,
    launched: &mut Launched,
    clients: &mut Vec<Client>,
    listener: Option<&UnixListener>,
    log: &mut Option<LogWriter>,
    health: &mut Option<health::Timer>,
) -> i32 {
    let pid = launched.pid;
    let output = &mut launched.output;
    let stdin_w = &mut launched.stdin_w;
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).expect("a launched container has a pid"),
        rustix::process::PidfdFlags::empty(),
    )
    .ok();
    let mut exit_code: Option<i32> = None;
    let mut drain_deadline: Option<Instant> = None;
    // conmon's buffer is 8 KiB; a larger one stays resident for the container's whole run.
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if exit_code.is_none() {
            exit_code = try_reap(pid);
            if exit_code.is_some() {
                drain_deadline = Some(Instant::now() + Duration::from_secs(2));
            }
        }
        let outputs_open = match output {
            Output::Pipes { stdout, stderr } => stdout.is_some() || stderr.is_some(),
            Output::Pty { master } => master.is_some(),
        };
        if let Some(code) = exit_code {
            if !outputs_open || drain_deadline.is_some_and(|d| Instant::now() > d) {
                return code;
            }
        }

        // What to wait for, in a fixed order: output, the init, the listener, clients.
        let mut pfds: Vec<libc::pollfd> = Vec::new();
        let pollin = |fd: i32| libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let (out_fd, err_fd) = match output {
            Output::Pipes { stdout, stderr } => (
                stdout.as_ref().map_or(-1, |f| f.as_raw_fd()),
                stderr.as_ref().map_or(-1, |f| f.as_raw_fd()),
            ),
            Output::Pty { master } => (master.as_ref().map_or(-1, |f| f.as_raw_fd()), -1),
        };
        pfds.push(pollin(out_fd));
        pfds.push(pollin(err_fd));
        pfds.push(pollin(if exit_code.is_none() {
            pidfd.as_ref().map_or(-1, |f| f.as_raw_fd())
        } else {
            -1
        }));
        pfds.push(pollin(listener.map_or(-1, |l| l.as_raw_fd())));
        for c in clients.iter() {
            pfds.push(pollin(c.sock.as_raw_fd()));
            let feeding = c.stdin.is_some() && (stdin_w.is_some() || config.tty);
            pfds.push(pollin(if feeding {
                c.stdin.as_ref().map_or(-1, |f| f.as_raw_fd())
            } else {
                -1
            }));
        }
        // Without a pidfd, or while draining, wake up now and then.
        let timeout = if pidfd.is_none() || exit_code.is_some() { 50 } else { -1 };
        // A healthcheck due wakes the loop too.
        let timeout = match (health.as_ref(), exit_code) {
            (Some(h), None) if timeout < 0 => h.wait_ms(),
            (Some(h), None) => timeout.min(h.wait_ms()),
            _ => timeout,
        };
        if fds::poll(&mut pfds, timeout).is_err() {
            continue;
        }
        if let (Some(h), None) = (health.as_mut(), exit_code) {
            h.tick();
        }
        let ready = |i: usize| pfds[i].fd >= 0 && pfds[i].revents != 0;

        // Output first, so nothing the container wrote before it exited is lost.
        for (index, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            if !ready(index) {
                continue;
            }
            let slot = match (output as &mut Output, index) {
                (Output::Pipes { stdout, .. }, 0) => stdout,
                (Output::Pipes { stderr, .. }, _) => stderr,
                (Output::Pty { master }, _) => master,
            };
            let Some(fd) = slot.as_ref() else { continue };
            match fds::read(fd.as_fd(), &mut buf) {
                Ok(0) | Err(_) => *slot = None,
                Ok(n) => {
                    let bytes = &buf[..n];
                    if let Some(writer) = log.as_mut() {
                        if let Err(e) = writer.write(stream, bytes, Timestamp::now()) {
                            warn!(id = %config.id, error = %e, "writing the log");
                        }
                    }
                    clients.retain(|c| {
                        let target = if stream == Stream::Stderr { &c.stderr } else { &c.stdout };
                        fds::write_all(target.as_fd(), bytes).is_ok()
                    });
                }
            }
        }

        // Clients accepted below were not polled this round.
        let polled = clients.len();
        if ready(3) {
            if let Some(l) = listener {
                while let Ok((conn, _)) = l.accept() {
                    let _ = conn.set_nonblocking(false);
                    if let Some(client) = receive_client(OwnedFd::from(conn)) {
                        debug!(id = %config.id, "client attached");
                        clients.push(client);
                    }
                }
            }
        }

        // Clients: control lines, input, hang-ups.
        let mut gone = Vec::new();
        for (i, c) in clients.iter_mut().enumerate().take(polled) {
            let (sock_ready, stdin_ready) = (ready(4 + 2 * i), ready(5 + 2 * i));
            if sock_ready {
                let mut control = [0u8; 256];
                match fds::read(c.sock.as_fd(), &mut control) {
                    Ok(0) | Err(_) => {
                        gone.push(i);
                        continue;
                    }
                    Ok(n) => c.control.extend_from_slice(&control[..n]),
                }
                while let Some(end) = c.control.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = c.control.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line);
                    let mut words = line.split_whitespace();
                    let word = words.next();
                    if word == Some("detach-keys") {
                        if let Some(keys) = detach::from_hex(words.next().unwrap_or("")) {
                            c.detach = detach::Matcher::new(keys);
                        }
                    }
                    if word == Some("resize") {
                        let rows = words.next().and_then(|w| w.parse().ok());
                        let cols = words.next().and_then(|w| w.parse().ok());
                        if let (Some(rows), Some(cols)) = (rows, cols) {
                            if let Output::Pty { master: Some(m) } = output {
                                set_winsize(m.as_fd(), rows, cols);
                            }
                        }
                    }
                }
            }
            if stdin_ready {
                let Some(input) = c.stdin.as_ref() else { continue };
                let n = fds::read(input.as_fd(), &mut buf).unwrap_or_default();
                if n == 0 {
                    c.stdin = None;
                    // End of the feeding client's input closes the container's stdin.
                    if c.feeds_stdin && !config.tty {
                        *stdin_w = None;
                    }
                    continue;
                }
                let (data, detach) = c.detach.filter(&buf[..n]);
                let target = match &*output {
                    Output::Pty { master } => master.as_ref().map(|m| m.as_fd()),
                    Output::Pipes { .. } => stdin_w.as_ref().map(|w| w.as_fd()),
                };
                if let Some(target) = target {
                    let _ = fds::write_all(target, &data);
                }
                if detach {
                    let _ = fds::write_all(c.sock.as_fd(), b"detached\n");
                    gone.push(i);
                }
            }
        }
        for i in gone.into_iter().rev() {
            clients.remove(i);
        }
    }
}

fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, valid for the call.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// The exit code of `pid` if it has exited (and reaps it), reaping any other child too.
fn try_reap(pid: i32) -> Option<i32> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into `status`, which lives for the call.
        let got = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if got == pid {
            return Some(lifecycle::exit_code(status));
        }
        if got <= 0 {
            return None;
        }
    }
}

/// After the exit: the runtime's state and cgroup, the mount, the database (unless a restart
/// that did not happen recorded it already), `--rm`.
fn finish(
    config: &MonitorConfig,
    runtime_root: &berth_runtime::state::StateRoot,
    layers: &berth_storage::ContainerLayers,
    code: i32,
    at: Timestamp,
    exit_recorded: bool,
) {
    // Before the cgroup goes: did the OOM killer strike (inspect's OOMKilled, issue 7)?
    crate::stats::record_oom(runtime_root, &config.id, &config.bundle);
    if let Err(e) = berth_runtime::delete::delete(runtime_root, &config.id, true) {
        debug!(id = %config.id, error = %e, "deleting the runtime state");
    }
    if let Err(e) = layers.unmount(&config.id) {
        warn!(id = %config.id, error = %e, "unmounting the container's root");
    }
    // The networking engineer's seam: the container's veth, rules, published ports and pasta
    // go with its process, not only at `rm` (network::engine::stop is idempotent).
    let net = crate::network::attach::NetworkPaths::new(&config.root, &config.runroot);
    if let Err(e) = crate::network::engine::stop(&net, &config.id) {
        warn!(id = %config.id, error = %e, "taking down the container's network");
    }
    let mut store = match crate::containers::ContainerStore::open(&config.root, &config.runroot) {
        Ok(store) => store,
        Err(e) => {
            warn!(id = %config.id, error = %e, "opening the state database to record the exit");
            return;
        }
    };
    if !exit_recorded {
        record_exit_in(&mut store, config, code, at);
    }
    if config.auto_remove {
        // The container's lock is taken by remove; a concurrent `rm` may have won already.
        match store.remove(&config.id) {
            Ok(removed) => {
                let _ = layers.remove(&config.id);
                // Its anonymous volumes go with it, as with Podman's `run --rm` (issue 7).
                if let Err(e) = crate::volumes::remove_anonymous(&config.root, &removed) {
                    warn!(id = %config.id, error = %e, "removing the anonymous volumes (--rm)");
                }
                crate::events::record_container(&config.runroot, "remove", &removed, None);
            }
            Err(e) => debug!(id = %config.id, error = %e, "removing the container (--rm)"),
        }
    }
}

/// Records the exit in the database and the journal (`died`).
fn record_exit_in(
    store: &mut crate::containers::ContainerStore,
    config: &MonitorConfig,
    code: i32,
    at: Timestamp,
) {
    let change = crate::state::StateChange::Exited { exit_code: Some(code), at, error: None };
    if let Err(e) = store.db().update_state(&config.id, &change) {
        debug!(id = %config.id, error = %e, "recording the exit");
    }
    if let Ok(record) = store.db().get(&config.id) {
        crate::events::record_container(&config.runroot, "died", &record, Some(code));
    }
}

/// The exit before a restart, recorded as any other.
fn record_exit(config: &MonitorConfig, code: i32, at: Timestamp) {
    match crate::containers::ContainerStore::open(&config.root, &config.runroot) {
        Ok(mut store) => record_exit_in(&mut store, config, code, at),
        Err(e) => {
            warn!(id = %config.id, error = %e, "opening the state database to record the exit")
        }
    }
}

/// A restart by the policy: running again in the database, `start` in the journal.
fn record_restart(config: &MonitorConfig, launched: &Launched) {
    let mut store = match crate::containers::ContainerStore::open(&config.root, &config.runroot) {
        Ok(store) => store,
        Err(e) => {
            warn!(id = %config.id, error = %e, "opening the state database to record a restart");
            return;
        }
    };
    let boot_id = store.boot_id().to_owned();
    let changes = [
        crate::state::StateChange::Created {
            pid: Some(launched.pid),
            pid_start_time: Some(launched.start_time),
            boot_id: boot_id.clone(),
        },
        crate::state::StateChange::Running {
            pid: launched.pid,
            pid_start_time: launched.start_time,
            boot_id,
            at: Timestamp::now(),
        },
    ];
    match store.db().update_states(&config.id, &changes) {
        Ok(record) => crate::events::record_container(&config.runroot, "start", &record, None),
        Err(e) => warn!(id = %config.id, error = %e, "recording a restart"),
    }
}

/// The container's log writer as its log driver says: none for `none`, and none (with a
/// warning) when the file cannot be opened, so that the container still runs.
fn open_log(config: &MonitorConfig) -> Option<LogWriter> {
    if config.duties.log.driver == LogDriver::None {
        return None;
    }
    match LogWriter::open_with(&config.log_path, &config.duties.log) {
        Ok(log) => Some(log),
        Err(e) => {
            warn!(id = %config.id, error = %e, "the container's output is not logged");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_failures_map_to_127_and_126() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(root.path().join("etc/passwd"), "").unwrap();
        let p = root.path();
        assert_eq!(
            launch_failure_code("container init: executable file \"nope\" not found in $PATH", p),
            127
        );
        assert_eq!(
            launch_failure_code("container init: exec /etc/passwd: not an executable file", p),
            126
        );
        assert_eq!(
            launch_failure_code("container init: exec /no/such: not an executable file", p),
            127
        );
        assert_eq!(launch_failure_code("cgroup: writing pids.max", p), 125);
    }

    #[test]
    fn the_exit_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(exit_file(dir.path()), "137 1796295102857105877\n").unwrap();
        assert_eq!(read_exit_file(dir.path()), Some((137, Timestamp(1_796_295_102_857_105_877))));
    }
}
