//! The monitor's hand-over to the small watcher binary while the container runs, and back.
//!
//! The monitor starts as berth re-executed: a large position-independent binary (runtime,
//! image store, registry client, build) whose relocated data alone is some 600 KiB of
//! private pages, resident for as long as the process lives. So once the container runs and
//! its client has recorded that, the monitor execs `berth-monitor`, a binary installed beside
//! `berth` that holds little more than the copy loop ([`super::serve`]). It is the same
//! process: the same pid, still the init's parent and a child subreaper (exec keeps both),
//! with the container's stdio or pty, the attach socket, the attached clients and the
//! published ports' sockets carried across as descriptors, and the rest as JSON in an
//! argument ([`Carried`]). When the init exits, the watcher writes the exit file and execs
//! berth again, through a descriptor of the very binary the monitor started from, to restart
//! the container or to clean up after it ([`RESUME_ARG`]).
//!
//! Without a `berth-monitor` beside `berth`, or if its exec fails, the monitor serves the
//! container itself, as before.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::io::{fcntl_setfd, FdFlags};
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::{detach, health, restart, Client, Launched, MonitorConfig, Output, Watched};
use crate::state::Timestamp;

/// The first argument of `berth-monitor`, which runs [`watcher_main`].
pub const WATCH_ARG: &str = "__berth-monitor-watch";
/// The first argument of `berth` going on as the monitor after the watcher.
pub const RESUME_ARG: &str = "__berth-monitor-resume";
/// The watcher's file name, beside `berth`'s own.
pub const WATCHER_NAME: &str = "berth-monitor";

/// What crosses the exec in either direction: descriptors by number (inherited), the rest by
/// value.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Carried {
    config: MonitorConfig,
    pid: i32,
    start_time: u64,
    output: CarriedOutput,
    stdin_w: Option<RawFd>,
    listener: Option<RawFd>,
    clients: Vec<CarriedClient>,
    restart: restart::Carry,
    /// When the next healthcheck is due.
    health_due_ms: Option<u64>,
    /// An O_PATH descriptor of the berth binary the monitor started from.
    exe: RawFd,
    /// The init's exit code and time, once the watcher saw it.
    exit: Option<(i32, Timestamp)>,
}

#[derive(Debug, Serialize, Deserialize)]
enum CarriedOutput {
    Pipes { stdout: Option<RawFd>, stderr: Option<RawFd> },
    Pty { master: Option<RawFd> },
}

#[derive(Debug, Serialize, Deserialize)]
struct CarriedClient {
    sock: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    stdin: Option<RawFd>,
    detach_keys: Vec<u8>,
    control: Vec<u8>,
    feeds_stdin: bool,
}

/// The running container's pieces, taken back from a [`Carried`].
pub(super) struct Taken {
    pub config: MonitorConfig,
    pub launched: Launched,
    pub clients: Vec<Client>,
    pub listener: Option<UnixListener>,
    pub restart: restart::Carry,
    pub health_due: Option<Duration>,
    pub exe: OwnedFd,
    pub exit: Option<(i32, Timestamp)>,
}

impl Carried {
    fn new(w: &Watched, restart: restart::Carry, health_due: Option<Duration>, exe: RawFd) -> Self {
        let raw = |fd: &Option<OwnedFd>| fd.as_ref().map(|f| f.as_raw_fd());
        let output = match &w.launched.output {
            Output::Pipes { stdout, stderr } => {
                CarriedOutput::Pipes { stdout: raw(stdout), stderr: raw(stderr) }
            }
            Output::Pty { master } => CarriedOutput::Pty { master: raw(master) },
        };
        Self {
            config: w.config.clone(),
            pid: w.launched.pid,
            start_time: w.launched.start_time,
            output,
            stdin_w: raw(&w.launched.stdin_w),
            listener: w.listener.as_ref().map(|l| l.as_raw_fd()),
            clients: w.clients.iter().map(CarriedClient::new).collect(),
            restart,
            health_due_ms: health_due.map(|d| d.as_millis().try_into().unwrap_or(u64::MAX)),
            exe,
            exit: None,
        }
    }

    /// Every descriptor this names, for clearing and setting close-on-exec.
    fn descriptors(&self) -> Vec<RawFd> {
        let mut fds = vec![self.exe];
        match self.output {
            CarriedOutput::Pipes { stdout, stderr } => fds.extend(stdout.into_iter().chain(stderr)),
            CarriedOutput::Pty { master } => fds.extend(master),
        }
        fds.extend(self.stdin_w);
        fds.extend(self.listener);
        for c in &self.clients {
            fds.extend([c.sock, c.stdout, c.stderr]);
            fds.extend(c.stdin);
        }
        fds
    }

    /// Takes ownership of the descriptors this names, close-on-exec again.
    ///
    /// # Safety
    ///
    /// The numbers must be descriptors this process inherited across its exec for exactly
    /// this purpose, owned by nothing else in it, each named once.
    unsafe fn take(self) -> Taken {
        let fds = self.descriptors();
        set_inherited(&fds, false);
        // SAFETY: by the caller's contract each number is an open descriptor nothing else owns.
        let own = |fd: RawFd| unsafe { OwnedFd::from_raw_fd(fd) };
        let own_opt = |fd: Option<RawFd>| fd.map(own);
        let output = match self.output {
            CarriedOutput::Pipes { stdout, stderr } => {
                Output::Pipes { stdout: own_opt(stdout), stderr: own_opt(stderr) }
            }
            CarriedOutput::Pty { master } => Output::Pty { master: own_opt(master) },
        };
        let clients = self
            .clients
            .into_iter()
            .map(|c| Client {
                sock: own(c.sock),
                stdout: own(c.stdout),
                stderr: own(c.stderr),
                stdin: own_opt(c.stdin),
                detach: detach::Matcher::new(c.detach_keys),
                control: c.control,
                feeds_stdin: c.feeds_stdin,
            })
            .collect();
        Taken {
            launched: Launched {
                pid: self.pid,
                start_time: self.start_time,
                output,
                stdin_w: own_opt(self.stdin_w),
            },
            clients,
            listener: self.listener.map(|fd| UnixListener::from(own(fd))),
            restart: self.restart,
            health_due: self.health_due_ms.map(Duration::from_millis),
            exe: own(self.exe),
            exit: self.exit,
            config: self.config,
        }
    }
}

impl CarriedClient {
    fn new(c: &Client) -> Self {
        Self {
            sock: c.sock.as_raw_fd(),
            stdout: c.stdout.as_raw_fd(),
            stderr: c.stderr.as_raw_fd(),
            stdin: c.stdin.as_ref().map(|f| f.as_raw_fd()),
            detach_keys: c.detach.keys().to_vec(),
            control: c.control.clone(),
            feeds_stdin: c.feeds_stdin,
        }
    }
}

/// Clears (`true`) or sets (`false`) close-on-exec on `fds`.
fn set_inherited(fds: &[RawFd], inherited: bool) {
    let flags = if inherited { FdFlags::empty() } else { FdFlags::CLOEXEC };
    for &fd in fds {
        // SAFETY: the numbers name descriptors the caller holds open for the call.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        if let Err(e) = fcntl_setfd(fd, flags) {
            debug!(fd = fd.as_raw_fd(), error = %e, "setting close-on-exec");
        }
    }
}

/// Replaces this process with `program ARG JSON` (`name` in `ps`), `carried`'s descriptors inherited. Returns
/// only if that failed, with the descriptors close-on-exec again.
fn exec_carrying(program: &std::path::Path, name: &str, arg: &str, carried: &Carried) -> io::Error {
    let json = match serde_json::to_string(carried) {
        Ok(json) => json,
        Err(e) => return io::Error::other(e),
    };
    let fds = carried.descriptors();
    set_inherited(&fds, true);
    let error = Command::new(program).arg0(name).arg(arg).arg(json).exec();
    set_inherited(&fds, false);
    error
}

/// The watcher binary beside the running berth, if there is one.
fn watcher() -> Option<PathBuf> {
    let path = std::env::current_exe().ok()?.with_file_name(WATCHER_NAME);
    path.is_file().then_some(path)
}

/// Hands the running container to the watcher binary. Returns only when there is none or
/// its exec failed: then this process serves the container itself.
pub(super) fn to_watcher(
    w: &Watched,
    supervisor: &restart::Supervisor,
    health: Option<&health::Timer>,
) {
    let Some(program) = watcher() else {
        debug!(id = %w.config.id, "no {WATCHER_NAME} beside berth: the monitor serves in-process");
        return;
    };
    let exe = match rustix::fs::open(
        "/proc/self/exe",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => {
            debug!(id = %w.config.id, error = %e, "opening the monitor's own binary");
            return;
        }
    };
    let due = health.map(health::Timer::due_in);
    let carried = Carried::new(w, supervisor.carry(), due, exe.as_raw_fd());
    let error = exec_carrying(&program, WATCHER_NAME, WATCH_ARG, &carried);
    debug!(id = %w.config.id, program = %program.display(), %error, "starting the watcher");
}

/// Reads the [`Carried`] in the argument after `arg` and takes its descriptors.
fn take_from_args(arg: &str) -> Result<Taken, String> {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(arg)) {
        return Err(format!("the first argument must be {arg}"));
    }
    let json = args.next().ok_or("the carried state is missing")?;
    let carried: Carried = serde_json::from_slice(json.as_encoded_bytes())
        .map_err(|e| format!("bad carried state: {e}"))?;
    // SAFETY: this process was just exec'd with these descriptors inherited for it, by a
    // monitor that held each of them once; nothing in this fresh process owns them yet.
    Ok(unsafe { carried.take() })
}

/// `berth-monitor`'s whole program: serves the container until its init exits, writes the
/// exit file and execs berth to go on. Returns an exit code only when it cannot.
pub fn watcher_main() -> i32 {
    super::ignore_sigpipe();
    let started = Instant::now();
    let taken = match take_from_args(WATCH_ARG) {
        Ok(taken) => taken,
        Err(message) => {
            eprintln!("{WATCHER_NAME}: {message}");
            return super::ENGINE_FAILURE;
        }
    };
    let Taken { config, mut launched, mut clients, listener, mut restart, health_due, exe, .. } =
        taken;
    let exe_path = format!("/proc/self/fd/{}", exe.as_raw_fd());
    let mut health = config.duties.health.as_ref().and_then(|check| {
        let path = CString::new(exe_path.clone()).ok()?;
        let mut timer =
            health::Timer::new(check, &config.root, &config.runroot, &config.id, &path)?;
        if let Some(due) = health_due {
            timer.set_due_in(due);
        }
        Some(timer)
    });
    let mut log = super::open_log(&config);
    // The loader's and the JSON's pages need not stay resident while the container runs.
    super::shed::shed_startup_pages();
    let code = super::serve(
        &config,
        &mut launched,
        &mut clients,
        listener.as_ref(),
        &mut log,
        &mut health,
    );
    if let Some(h) = health.as_mut() {
        h.stop();
    }
    let at = Timestamp::now();
    super::write_exit_file(&config, code, at);
    drop(log);
    restart.ran_for(started.elapsed());

    let back = Watched { config, launched, clients, listener };
    let mut carried = Carried::new(&back, restart, None, exe.as_raw_fd());
    carried.exit = Some((code, at));
    let error = exec_carrying(std::path::Path::new(&exe_path), "berth", RESUME_ARG, &carried);
    eprintln!(
        "{WATCHER_NAME}: container {} exited with {code}, but berth could not go on to clean up \
         after it ({error}); `berth rm` removes it",
        back.config.id
    );
    super::ENGINE_FAILURE
}

/// `berth __berth-monitor-resume`: the monitor again after its watcher, with the container's
/// exit to act on.
pub(super) fn resume() -> i32 {
    super::ignore_sigpipe();
    let taken = match take_from_args(RESUME_ARG) {
        Ok(taken) => taken,
        Err(message) => {
            eprintln!("berth monitor: {message}");
            return super::ENGINE_FAILURE;
        }
    };
    let Taken { config, launched, clients, listener, restart, exe, exit, .. } = taken;
    // This process is that binary again; the next hand-over opens its own descriptor.
    drop(exe);
    let supervisor = restart::Supervisor::resume(config.duties.restart, &config.bundle, &restart);
    let health = super::health_timer(&config);
    let watched = Watched { config, launched, clients, listener };
    super::supervise(watched, supervisor, health, exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptors_are_named_once_each() {
        let config: MonitorConfig = serde_json::from_value(serde_json::json!({
            "id": "c", "root": "/r", "runroot": "/rr", "rootless": false, "bundle": "/b",
            "log_path": "/l", "tty": false, "stdin": true, "auto_remove": false,
        }))
        .unwrap();
        let carried = Carried {
            config,
            pid: 7,
            start_time: 9,
            output: CarriedOutput::Pipes { stdout: Some(10), stderr: None },
            stdin_w: Some(11),
            listener: Some(12),
            clients: vec![CarriedClient {
                sock: 13,
                stdout: 14,
                stderr: 15,
                stdin: Some(16),
                detach_keys: vec![16, 17],
                control: b"resi".to_vec(),
                feeds_stdin: true,
            }],
            restart: restart::Carry { backoff_ms: 100, ran_ms: 5 },
            health_due_ms: Some(30),
            exe: 9,
            exit: Some((3, Timestamp(1))),
        };
        let json = serde_json::to_string(&carried).unwrap();
        let back: Carried = serde_json::from_str(&json).unwrap();
        let mut fds = back.descriptors();
        fds.sort_unstable();
        assert_eq!(fds, [9, 10, 11, 12, 13, 14, 15, 16]);
        assert_eq!(back.exit, Some((3, Timestamp(1))));
        assert_eq!(back.clients[0].control, b"resi");
    }
}
