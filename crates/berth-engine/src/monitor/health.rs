//! Healthchecks: a command run inside a running container now and then, whose exit code says
//! whether the service in it works. The check comes from `--health-cmd` and its companions, or
//! from the image's HEALTHCHECK (`config.Healthcheck`), the flags winning field by field.
//!
//! Who runs what: the monitor keeps only the clock. When a check is due it starts
//! `berth healthcheck run ID` as a child process (the same command a user can type) and goes
//! back to copying output; the child joins the container as `exec` does, waits for the check
//! with its timeout, and records the result. So the runtime's code, the JSON of the spec and
//! the database never enter the monitor's own pages, and its resident set stays what its copy
//! loop needs (the figures are in BENCHMARKS.md).
//!
//! The state is Podman's `healthcheck.log` in the container's userdata directory: `Status`
//! (`starting` from each start until the first success or until the failures count, then
//! `healthy` or `unhealthy`), `FailingStreak` and the last five results with their start and
//! end times, exit code and the first 500 bytes of output. A success makes the container
//! healthy at once; failures count only after the start period, and `retries` of them in a
//! row make it unhealthy. Writers hold a lock file, so a check typed by hand and the monitor's
//! own never lose each other's result.
//!
//! `--health-on-failure` (Podman's): the check that turns the container unhealthy takes the
//! action — kill, stop, or restart — as the user's command of that name would.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::state::Timestamp;

/// Podman's defaults.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_RETRIES: u32 = 3;
/// Results kept in the log.
pub const LOG_ENTRIES: usize = 5;
/// Bytes of a check's output kept in a result.
pub const OUTPUT_BYTES: usize = 500;

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

/// Errors of the healthcheck flags, state and runs.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("invalid --health-cmd {value:?}: {reason}")]
    BadCommand { value: String, reason: String },
    #[error("invalid {flag} {value:?}: expected a duration such as 30s, 1m30s or 500ms")]
    BadDuration { flag: &'static str, value: String },
    #[error("invalid {flag} {value:?}: {reason}")]
    OutOfRange { flag: &'static str, value: String, reason: &'static str },
    #[error("invalid --health-retries {value:?}: expected a whole number ≥ 1")]
    BadRetries { value: String },
    #[error("--no-healthcheck cannot be used with {flag}")]
    Conflict { flag: &'static str },
    #[error(
        "invalid --health-on-failure {value:?}: the action must be none, kill, restart or stop"
    )]
    BadOnFailure { value: String },
    #[error("--health-on-failure {action} needs a healthcheck (--health-cmd or the image's)")]
    OnFailureWithoutCheck { action: &'static str },
    #[error("container {name} has no healthcheck")]
    NoHealthcheck { name: String },
    #[error("container {name} is not running: a healthcheck needs a running container")]
    NotRunning { name: String },
    #[error("reading the healthcheck log {path}")]
    ReadState {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the healthcheck log {path}")]
    WriteState {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("locking {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Container(Box<crate::containers::ops::OpsError>),
    #[error(transparent)]
    Options(Box<crate::containers::ContainerError>),
    #[error("preparing the healthcheck of container {name}: {step}")]
    Prepare {
        name: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The healthcheck flags of `run` and `create`, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HealthFlags {
    /// `--health-cmd CMD | '["CMD","ARG"]' | NONE`
    pub health_cmd: Option<String>,
    /// `--health-interval DURATION` (`disable`: checks only by hand)
    pub health_interval: Option<String>,
    /// `--health-retries N`
    pub health_retries: Option<String>,
    /// `--health-start-period DURATION`
    pub health_start_period: Option<String>,
    /// `--health-timeout DURATION`
    pub health_timeout: Option<String>,
    /// `--no-healthcheck`
    pub no_healthcheck: bool,
    /// `--health-on-failure none|kill|restart|stop`
    pub health_on_failure: Option<String>,
}

/// `--health-on-failure`: what happens to a container whose check turns it unhealthy
/// (Podman's actions). `kill` and `stop` end it as the user's `kill` and `stop` would, so
/// no restart policy starts it again; `restart` stops and starts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    #[default]
    None,
    Kill,
    Restart,
    Stop,
}

impl OnFailure {
    pub fn parse(value: &str) -> Result<Self, HealthError> {
        match value {
            "" | "none" => Ok(Self::None),
            "kill" => Ok(Self::Kill),
            "restart" => Ok(Self::Restart),
            "stop" => Ok(Self::Stop),
            _ => Err(HealthError::BadOnFailure { value: value.to_owned() }),
        }
    }

    /// The name, as inspect's Config.HealthcheckOnFailureAction shows it.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Kill => "kill",
            Self::Restart => "restart",
            Self::Stop => "stop",
        }
    }
}

/// A container's healthcheck, resolved from the flags and the image; shown by `inspect` as
/// Config.Healthcheck in Docker's form (durations in nanoseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCheck {
    /// `["CMD", ARG...]` or `["CMD-SHELL", COMMAND]`.
    pub test: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub retries: u32,
}

impl HealthCheck {
    /// The process the check runs: the exec form as it is, the shell form through /bin/sh.
    pub fn argv(&self) -> Vec<String> {
        match self.test.first().map(String::as_str) {
            Some("CMD-SHELL") => {
                vec!["/bin/sh".into(), "-c".into(), self.test[1..].join(" ")]
            }
            Some("CMD") => self.test[1..].to_vec(),
            _ => self.test.clone(),
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout)
    }

    pub fn start_period(&self) -> Duration {
        Duration::from_nanos(self.start_period)
    }
}

impl HealthFlags {
    /// Checks the flags on their own (before an image is at hand), as `resolve` would.
    pub fn validate(&self) -> Result<(), HealthError> {
        self.resolve(None)?;
        OnFailure::parse(self.health_on_failure.as_deref().unwrap_or("")).map(drop)
    }

    /// `--health-on-failure` for a container whose check is `check`: an action other than
    /// none needs a check, as in Podman.
    pub fn on_failure(&self, check: Option<&HealthCheck>) -> Result<OnFailure, HealthError> {
        let action = OnFailure::parse(self.health_on_failure.as_deref().unwrap_or(""))?;
        if check.is_none() && action != OnFailure::None {
            return Err(HealthError::OnFailureWithoutCheck { action: action.name() });
        }
        Ok(action)
    }

    /// The container's healthcheck: `--health-cmd` (or the image's test) with the other flags
    /// over the image's values over Podman's defaults; `None` without one, with
    /// `--no-healthcheck` or a test of `NONE`.
    pub fn resolve(
        &self,
        image: Option<&berth_image::config::HealthConfig>,
    ) -> Result<Option<HealthCheck>, HealthError> {
        if self.no_healthcheck {
            let given = [
                ("--health-cmd", self.health_cmd.is_some()),
                ("--health-interval", self.health_interval.is_some()),
                ("--health-retries", self.health_retries.is_some()),
                ("--health-start-period", self.health_start_period.is_some()),
                ("--health-timeout", self.health_timeout.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
                return Err(HealthError::Conflict { flag });
            }
        }
        let duration = |flag: &'static str, value: &Option<String>| match value {
            None => Ok(None),
            Some(v) if flag == "--health-interval" && v == "disable" => Ok(Some(Duration::ZERO)),
            Some(v) => parse_duration(v)
                .map(Some)
                .ok_or_else(|| HealthError::BadDuration { flag, value: v.clone() }),
        };
        let interval = duration("--health-interval", &self.health_interval)?;
        let timeout = duration("--health-timeout", &self.health_timeout)?;
        let start_period = duration("--health-start-period", &self.health_start_period)?;
        if let Some(t) = timeout.filter(|t| *t < Duration::from_secs(1)) {
            return Err(HealthError::OutOfRange {
                flag: "--health-timeout",
                value: format!("{t:?}"),
                reason: "the timeout must be at least 1s",
            });
        }
        let retries = match &self.health_retries {
            None => None,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n >= 1 => Some(n),
                _ => return Err(HealthError::BadRetries { value: v.clone() }),
            },
        };
        let test = match &self.health_cmd {
            Some(cmd) => parse_command(cmd)?,
            None => image.and_then(|h| h.test.clone()).filter(|t| !t.is_empty()),
        };
        if self.no_healthcheck {
            return Ok(None);
        }
        let Some(test) = test else { return Ok(None) };
        if test.first().map(String::as_str) == Some("NONE") {
            return Ok(None);
        }
        let from_image = |field: fn(&berth_image::config::HealthConfig) -> Option<i64>| {
            image.and_then(field).filter(|n| *n > 0).map(|n| Duration::from_nanos(n as u64))
        };
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Ok(Some(HealthCheck {
            test,
            interval: nanos(
                interval.or_else(|| from_image(|h| h.interval)).unwrap_or(DEFAULT_INTERVAL),
            ),
            timeout: nanos(
                timeout.or_else(|| from_image(|h| h.timeout)).unwrap_or(DEFAULT_TIMEOUT),
            ),
            start_period: nanos(
                start_period.or_else(|| from_image(|h| h.start_period)).unwrap_or_default(),
            ),
            retries: retries
                .or_else(|| image.and_then(|h| h.retries).filter(|n| *n > 0).map(|n| n as u32))
                .unwrap_or(DEFAULT_RETRIES),
        }))
    }
}

/// `--health-cmd`: a JSON array (Docker's `["CMD", ...]`/`["CMD-SHELL", ...]`, or a bare
/// argument list, taken as the exec form), `NONE`, `CMD ARG...` (split at spaces), else a
/// shell command. `None` for NONE.
fn parse_command(value: &str) -> Result<Option<Vec<String>>, HealthError> {
    let bad = |reason: &str| HealthError::BadCommand {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(bad("a command is needed (or NONE)"));
    }
    if trimmed.starts_with('[') {
        let list: Vec<String> =
            serde_json::from_str(trimmed).map_err(|_| bad("not a JSON array of strings"))?;
        return match list.first().map(String::as_str) {
            None => Err(bad("the array is empty")),
            Some("NONE") => Ok(None),
            Some("CMD" | "CMD-SHELL") if list.len() < 2 => Err(bad("a command is needed")),
            Some("CMD" | "CMD-SHELL") => Ok(Some(list)),
            Some(_) => Ok(Some(std::iter::once("CMD".to_owned()).chain(list).collect())),
        };
    }
    if trimmed == "NONE" {
        return Ok(None);
    }
    if let Some(rest) = trimmed.strip_prefix("CMD-SHELL ") {
        return Ok(Some(vec!["CMD-SHELL".into(), rest.trim().to_owned()]));
    }
    if let Some(rest) = trimmed.strip_prefix("CMD ") {
        let words = rest.split_whitespace().map(str::to_owned);
        return Ok(Some(std::iter::once("CMD".to_owned()).chain(words).collect()));
    }
    Ok(Some(vec!["CMD-SHELL".into(), trimmed.to_owned()]))
}

/// Go's duration syntax (`1m30s`, `500ms`, `0`), which Podman's flags take.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    crate::containers::logs::parse_go_duration(text)
}

/// One result, as Podman's healthcheck.log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthLogEntry {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// A container's health, as `inspect` shows it in State.Health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthState {
    pub status: String,
    pub failing_streak: u32,
    pub log: Option<Vec<HealthLogEntry>>,
}

impl Default for HealthState {
    fn default() -> Self {
        Self { status: STARTING.to_owned(), failing_streak: 0, log: None }
    }
}

impl HealthState {
    /// Adds `entry`: success makes it healthy; a failure outside the start period adds to the
    /// streak, and `retries` failures in a row make it unhealthy.
    pub fn add(&mut self, entry: HealthLogEntry, in_start_period: bool, retries: u32) {
        if entry.exit_code == 0 {
            self.status = HEALTHY.to_owned();
            self.failing_streak = 0;
        } else if !in_start_period {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = UNHEALTHY.to_owned();
            }
        }
        let log = self.log.get_or_insert_with(Vec::new);
        log.push(entry);
        let extra = log.len().saturating_sub(LOG_ENTRIES);
        log.drain(..extra);
    }
}

/// The state file in `userdata`.
pub fn state_file(userdata: &Path) -> PathBuf {
    userdata.join("healthcheck.log")
}

/// The container's health, if a check ever recorded one (or the monitor set `starting`).
pub fn read_state(userdata: &Path) -> Option<HealthState> {
    let bytes = fs::read(state_file(userdata)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Holds the lock file of the state while alive.
struct StateLock {
    _file: File,
}

fn lock_state(userdata: &Path) -> Result<StateLock, HealthError> {
    let path = userdata.join("healthcheck.lock");
    let lock = |source| HealthError::Lock { path: path.clone(), source };
    let file =
        OpenOptions::new().create(true).write(true).truncate(false).open(&path).map_err(lock)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| lock(e.into()))?;
    Ok(StateLock { _file: file })
}

fn write_state(userdata: &Path, state: &HealthState) -> Result<(), HealthError> {
    let path = state_file(userdata);
    let tmp = userdata.join("healthcheck.log.tmp");
    let write = |source| HealthError::WriteState { path: path.clone(), source };
    let json = serde_json::to_vec(state).map_err(|e| write(io::Error::other(e)))?;
    fs::write(&tmp, json).map_err(write)?;
    fs::rename(&tmp, &path).map_err(write)
}

/// A (re)start: `starting` again, the log kept.
pub fn set_starting(userdata: &Path) -> Result<(), HealthError> {
    let _lock = lock_state(userdata)?;
    let mut state = read_state(userdata).unwrap_or_default();
    state.status = STARTING.to_owned();
    state.failing_streak = 0;
    write_state(userdata, &state)
}

/// Records one result under the lock; returns the new state and whether this result is the
/// one that turned the container unhealthy.
pub fn record_result(
    userdata: &Path,
    entry: HealthLogEntry,
    in_start_period: bool,
    retries: u32,
) -> Result<(HealthState, bool), HealthError> {
    let _lock = lock_state(userdata)?;
    let mut state = read_state(userdata).unwrap_or_default();
    let was_unhealthy = state.status == UNHEALTHY;
    state.add(entry, in_start_period, retries);
    write_state(userdata, &state)?;
    let turned = !was_unhealthy && state.status == UNHEALTHY;
    Ok((state, turned))
}

/// What one run of a check gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRun {
    pub exit_code: i32,
    pub output: String,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Runs `check` in the running container `id` of `runtime_root` through the runtime's exec,
/// with `process` as the container's own process (args replaced), collecting its output and
/// killing it after the timeout. The caller is single-threaded (exec forks and joins
/// namespaces); this process becomes a child subreaper, so the checked process is its child.
pub fn run_check(
    runtime_root: &berth_runtime::state::StateRoot,
    id: &str,
    name: &str,
    process: oci_spec::runtime::Process,
    check: &HealthCheck,
    pid_file: &Path,
) -> Result<CheckRun, HealthError> {
    let prepare = |step, source| HealthError::Prepare { name: name.to_owned(), step, source };
    let start = Timestamp::now();
    let began = Instant::now();
    let (out_r, out_w) = super::fds::pipe().map_err(|e| prepare("making a pipe", e))?;
    let null = File::open("/dev/null").map_err(|e| prepare("opening /dev/null", e))?;
    // The runtime gives the process this process's standard descriptors: point them at the
    // pipe for the exec, and back afterwards.
    let saved: Vec<OwnedFd> = (0..3)
        .map(|fd| {
            // SAFETY: fds 0-2 are open for the life of this process; dup only copies them.
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            borrowed.try_clone_to_owned()
        })
        .collect::<Result<_, _>>()
        .map_err(|e| prepare("saving the standard descriptors", e))?;
    let restore = |saved: &[OwnedFd]| {
        for (fd, copy) in saved.iter().enumerate() {
            let _ = super::fds::dup_onto(copy, fd as i32);
        }
    };
    super::fds::dup_onto(&null, 0)
        .and_then(|_| super::fds::dup_onto(&out_w, 1))
        .and_then(|_| super::fds::dup_onto(&out_w, 2))
        .map_err(|e| {
            restore(&saved);
            prepare("redirecting the output", e)
        })?;
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        debug!(%id, error = %e, "becoming a child subreaper");
    }
    let _ = fs::remove_file(pid_file);
    let opts = berth_runtime::exec::ExecOptions {
        process,
        detach: true,
        pid_file: Some(pid_file.to_owned()),
        console_socket: None,
        preserve_fds: 0,
    };
    let launched = berth_runtime::exec::exec(runtime_root, id, &opts);
    restore(&saved);
    drop(out_w);
    if let Err(e) = launched {
        let message = e.to_string();
        let code = super::launch_failure_code(&message, Path::new("/"));
        return Ok(CheckRun { exit_code: code, output: message, start, end: Timestamp::now() });
    }
    let pid: i32 =
        fs::read_to_string(pid_file).ok().and_then(|p| p.trim().parse().ok()).unwrap_or(0);
    let _ = fs::remove_file(pid_file);

    let timeout = check.timeout();
    let mut output = Vec::new();
    let mut code = None;
    let mut buf = [0u8; 4096];
    let pidfd = rustix::process::Pid::from_raw(pid)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    let mut pipe_open = true;
    let mut exited_at: Option<Instant> = None;
    loop {
        if code.is_none() {
            code = reap(pid);
            if code.is_some() {
                exited_at = Some(Instant::now());
            }
        }
        // After the exit, what is left in the pipe (a background child of the check may
        // keep it open: give it a moment, not forever).
        let drained = exited_at.is_some_and(|t| t.elapsed() > Duration::from_millis(200));
        if code.is_some() && (!pipe_open || drained) {
            break;
        }
        if code.is_none() && began.elapsed() >= timeout {
            // SAFETY: kill takes a pid and a signal by value; the pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = rustix::process::waitpid(
                rustix::process::Pid::from_raw(pid),
                rustix::process::WaitOptions::empty(),
            );
            let message =
                format!("healthcheck command exceeded timeout of {}", go_duration(timeout));
            return Ok(CheckRun { exit_code: -1, output: message, start, end: Timestamp::now() });
        }
        let mut pfds = [
            libc::pollfd {
                fd: if pipe_open { out_r.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: match (&pidfd, code) {
                    (Some(fd), None) => fd.as_raw_fd(),
                    _ => -1,
                },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let wait = if pidfd.is_some() { 100 } else { 10 };
        let _ = super::fds::poll(&mut pfds, wait);
        if pfds[0].revents != 0 {
            match super::fds::read(out_r.as_fd(), &mut buf) {
                Ok(0) | Err(_) => pipe_open = false,
                Ok(n) => {
                    let room = OUTPUT_BYTES.saturating_sub(output.len());
                    output.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
    }
    Ok(CheckRun {
        exit_code: code.unwrap_or(-1),
        output: String::from_utf8_lossy(&output).into_owned(),
        start,
        end: Timestamp::now(),
    })
}

/// What `berth healthcheck run` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// This run's check passed.
    pub passed: bool,
    /// The container's health after it.
    pub state: HealthState,
}

/// `berth healthcheck run NAME` (and the monitor's own checks, which run this command): runs
/// the container's check once, records the result and a `health_status` event. The caller is
/// single-threaded.
pub fn healthcheck(
    containers: &mut crate::containers::ops::Containers,
    query: &str,
) -> Result<Checked, HealthError> {
    let boxed = |e| HealthError::Container(Box::new(e));
    let record = containers.lookup(query).map_err(boxed)?;
    let options = crate::containers::CreateOptions::of(&record)
        .map_err(|e| HealthError::Options(Box::new(e)))?;
    let Some(check) = options.duties.health.as_ref() else {
        return Err(HealthError::NoHealthcheck { name: record.name });
    };
    if record.state != crate::state::ContainerState::Running {
        return Err(HealthError::NotRunning { name: record.name });
    }
    let request =
        crate::containers::ops::ExecRequest { command: check.argv(), ..Default::default() };
    let process = containers.exec_process(&record, &request).map_err(boxed)?;
    let runtime_root = berth_runtime::state::StateRoot::new(containers.context().runtime_root());
    let userdata = &options.userdata_dir;
    let pid_file = userdata.join("healthcheck.pid");
    let run = run_check(&runtime_root, &record.id, &record.name, process, check, &pid_file)?;
    let started = record.started_at.unwrap_or(record.created_at);
    let period_ends =
        started.0.saturating_add(i64::try_from(check.start_period).unwrap_or(i64::MAX));
    let in_start_period = run.start.0 < period_ends;
    let entry = HealthLogEntry {
        start: run.start.to_rfc3339_nanos(),
        end: run.end.to_rfc3339_nanos(),
        exit_code: run.exit_code,
        output: run.output,
    };
    let (state, turned_unhealthy) = record_result(userdata, entry, in_start_period, check.retries)?;
    debug!(id = %record.id, code = run.exit_code, status = %state.status, "healthcheck");
    let mut event = crate::events::Event::container(
        "health_status",
        &record.id,
        &record.name,
        &record.image_name,
    );
    event.health_status = Some(state.status.clone());
    crate::events::record(&containers.context().runroot, &event);
    // Once per turn: the action's own stop and start take longer than a check's interval,
    // and a restart makes the container `starting` again.
    let action = options.duties.health_on_failure;
    if turned_unhealthy && action != OnFailure::None {
        act_on_failure(containers, &record.id, action);
    }
    Ok(Checked { passed: run.exit_code == 0, state })
}

/// Takes `--health-on-failure`'s action on container `id`, which its check just found
/// unhealthy. `stop` and `restart` run as a `berth stop`/`berth restart` of their own, in a
/// session of their own: this process is the monitor's child, which the monitor ends once the
/// container has exited, halfway through a restart. A failure is logged; the check's result
/// stands either way.
fn act_on_failure(
    containers: &mut crate::containers::ops::Containers,
    id: &str,
    action: OnFailure,
) {
    debug!(%id, action = action.name(), "the container is unhealthy");
    let command = match action {
        OnFailure::None => return,
        OnFailure::Kill => {
            if let Err(e) = containers.kill(id, libc::SIGKILL) {
                warn!(%id, error = %e, "killing the unhealthy container");
            }
            return;
        }
        OnFailure::Stop => "stop",
        OnFailure::Restart => "restart",
    };
    let ctx = containers.context();
    let mut berth = std::process::Command::new("/proc/self/exe");
    berth.arg("--root").arg(&ctx.root).arg("--runroot").arg(&ctx.runroot).args([command, id]);
    berth.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of this process.
    unsafe {
        berth.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match berth.spawn() {
        // Not waited for: it outlives this process, and its parent's reaper collects it.
        Ok(child) => drop(child),
        Err(e) => warn!(%id, error = %e, "starting `berth {command}` of the unhealthy container"),
    }
}

/// The exit code of child `pid` if it has exited.
fn reap(pid: i32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into `status`, alive for the call.
    let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if got == pid {
        return Some(crate::containers::lifecycle::exit_code(status));
    }
    // Not our child (or gone already): nothing more will come.
    (got < 0).then_some(-1)
}

/// A duration as Go prints it, for the timeout message (`30s`, `1m30s`, `1.5s`).
fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let frac = d.subsec_millis();
    let tail = if frac == 0 {
        format!("{}s", secs % 60)
    } else {
        let digits = format!("{frac:03}");
        format!("{}.{}s", secs % 60, digits.trim_end_matches('0'))
    };
    match (secs / 3600, secs / 60 % 60) {
        (0, 0) => tail,
        (0, m) => format!("{m}m{tail}"),
        (h, m) => format!("{h}h{m}m{tail}"),
    }
}

/// The monitor's clock for a container's healthcheck: when the next check is due, and the
/// `berth healthcheck run` child of the one under way.
///
/// The child is started with posix_spawn(3) from an argument and environment vector made once,
/// so a check costs the monitor no allocation and touches none of the process-building code
/// of the standard library: its resident set does not grow with the checks.
#[derive(Debug)]
pub struct Timer {
    exe: std::ffi::CString,
    interval: Duration,
    next: Instant,
    child: Option<i32>,
    /// Owns the strings `argv` and `envp` point into.
    _strings: Vec<std::ffi::CString>,
    argv: Vec<*mut libc::c_char>,
    envp: Vec<*mut libc::c_char>,
}

impl Timer {
    /// The clock of a container whose check runs every `interval` (none for 0: by hand
    /// only); the first check is due one interval after the start. Checks run `berth` from
    /// `exe`: a path that names the binary this monitor was started from, even if a newer one
    /// replaced it on disk since (`/proc/self/exe`, or `/proc/self/fd/N` in the watcher).
    pub fn new(
        check: &HealthCheck,
        root: &Path,
        runroot: &Path,
        id: &str,
        exe: &std::ffi::CStr,
    ) -> Option<Self> {
        use std::os::unix::ffi::OsStrExt;
        let interval = check.interval();
        if interval.is_zero() {
            return None;
        }
        let c = |bytes: &[u8]| std::ffi::CString::new(bytes).ok();
        let args: [&[u8]; 8] = [
            b"berth",
            b"--root",
            root.as_os_str().as_bytes(),
            b"--runroot",
            runroot.as_os_str().as_bytes(),
            b"healthcheck",
            b"run",
            id.as_bytes(),
        ];
        let argv: Vec<std::ffi::CString> = args.iter().map(|a| c(a)).collect::<Option<_>>()?;
        let env: Vec<std::ffi::CString> = std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut pair = k.as_bytes().to_vec();
                pair.push(b'=');
                pair.extend_from_slice(v.as_bytes());
                c(&pair)
            })
            .collect();
        let pointers = |strings: &[std::ffi::CString]| -> Vec<*mut libc::c_char> {
            strings
                .iter()
                .map(|s| s.as_ptr().cast_mut())
                .chain(std::iter::once(std::ptr::null_mut()))
                .collect()
        };
        let (argv_ptrs, envp) = (pointers(&argv), pointers(&env));
        let mut strings = argv;
        strings.extend(env);
        Some(Self {
            exe: exe.to_owned(),
            interval,
            next: Instant::now() + interval,
            child: None,
            _strings: strings,
            argv: argv_ptrs,
            envp,
        })
    }

    /// Milliseconds until the next check is due (for poll's timeout).
    pub fn wait_ms(&self) -> i32 {
        let left = self.next.saturating_duration_since(Instant::now());
        i32::try_from(left.as_millis()).unwrap_or(i32::MAX)
    }

    /// Starts the check if it is due and the last one has finished (a check that runs longer
    /// than the interval is not doubled up, as in Docker).
    pub fn tick(&mut self) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + self.interval;
        if self.running() {
            return;
        }
        let mut pid: libc::pid_t = 0;
        // SAFETY: argv and envp are NULL-terminated arrays of pointers into NUL-terminated
        // strings that `_strings` owns for as long as `self` lives; no file actions or
        // attributes are passed. The child inherits the monitor's standard descriptors,
        // which are /dev/null once the container runs; every other descriptor of the
        // monitor is close-on-exec.
        let rc = unsafe {
            libc::posix_spawn(
                &mut pid,
                self.exe.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            )
        };
        if rc == 0 {
            self.child = Some(pid);
        } else {
            debug!(error = %io::Error::from_raw_os_error(rc), "starting the healthcheck");
        }
    }

    /// Whether the last check's process still runs (the monitor's reaper may have reaped it).
    fn running(&mut self) -> bool {
        let Some(pid) = self.child else { return false };
        let mut status = 0;
        // SAFETY: waitpid on our own child with WNOHANG, status alive for the call.
        let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if got == 0 {
            return true;
        }
        self.child = None;
        false
    }

    /// The container stopped: a check under way is ended.
    pub fn stop(&mut self) {
        if self.running() {
            if let Some(pid) = self.child.take() {
                // SAFETY: kill and waitpid on our own unreaped child, by value.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            }
        }
    }

    /// The container started again: the first check is an interval away.
    pub fn restart(&mut self) {
        self.next = Instant::now() + self.interval;
    }

    /// How long until the next check is due (what a monitor hands to the one after its exec).
    pub fn due_in(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }

    /// Makes the next check due in `due`.
    pub fn set_due_in(&mut self, due: Duration) {
        self.next = Instant::now() + due;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(cmd: &str) -> HealthFlags {
        HealthFlags { health_cmd: Some(cmd.into()), ..Default::default() }
    }

    #[test]
    fn commands_take_the_shell_and_exec_forms() {
        let test = |cmd: &str| flags(cmd).resolve(None).unwrap().map(|h| h.test);
        assert_eq!(
            test("curl -f http://x/ || exit 1").unwrap(),
            ["CMD-SHELL", "curl -f http://x/ || exit 1"]
        );
        assert_eq!(test(r#"["ls","/tmp"]"#).unwrap(), ["CMD", "ls", "/tmp"]);
        assert_eq!(test(r#"["CMD-SHELL","true"]"#).unwrap(), ["CMD-SHELL", "true"]);
        assert_eq!(test("CMD ls -l").unwrap(), ["CMD", "ls", "-l"]);
        assert_eq!(test("NONE"), None);
        assert_eq!(test(r#"["NONE"]"#), None);
        assert!(flags("[1,2]").resolve(None).is_err());
        assert!(flags(" ").resolve(None).is_err());
        let h = flags("true").resolve(None).unwrap().unwrap();
        assert_eq!(h.argv(), ["/bin/sh", "-c", "true"]);
        assert_eq!(flags(r#"["ls","/"]"#).resolve(None).unwrap().unwrap().argv(), ["ls", "/"]);
    }

    #[test]
    fn defaults_image_values_and_flags_in_that_order() {
        let h = flags("true").resolve(None).unwrap().unwrap();
        assert_eq!((h.interval(), h.timeout(), h.retries), (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, 3));
        assert_eq!(h.start_period(), Duration::ZERO);
        let image = berth_image::config::HealthConfig {
            test: Some(vec!["CMD".into(), "check".into()]),
            interval: Some(5_000_000_000),
            retries: Some(7),
            ..Default::default()
        };
        let from_image = HealthFlags::default().resolve(Some(&image)).unwrap().unwrap();
        assert_eq!(from_image.test, ["CMD", "check"]);
        assert_eq!((from_image.interval(), from_image.retries), (Duration::from_secs(5), 7));
        let over = HealthFlags {
            health_interval: Some("1m30s".into()),
            health_start_period: Some("500ms".into()),
            ..Default::default()
        };
        let h = over.resolve(Some(&image)).unwrap().unwrap();
        assert_eq!(h.interval(), Duration::from_secs(90));
        assert_eq!(h.start_period(), Duration::from_millis(500));
        assert_eq!(h.retries, 7);
        let none = HealthFlags { no_healthcheck: true, ..Default::default() };
        assert_eq!(none.resolve(Some(&image)).unwrap(), None);
        let disabled = HealthFlags { health_interval: Some("disable".into()), ..flags("true") };
        assert_eq!(disabled.resolve(None).unwrap().unwrap().interval, 0);
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        let err = |f: HealthFlags| f.resolve(None).unwrap_err().to_string();
        let retries = HealthFlags { health_retries: Some("-1".into()), ..flags("true") };
        assert_eq!(err(retries), "invalid --health-retries \"-1\": expected a whole number ≥ 1");
        let zero = HealthFlags { health_retries: Some("0".into()), ..flags("true") };
        assert!(err(zero).contains("≥ 1"));
        let interval = HealthFlags { health_interval: Some("10".into()), ..flags("true") };
        assert!(err(interval).starts_with("invalid --health-interval \"10\""));
        let timeout = HealthFlags { health_timeout: Some("10ms".into()), ..flags("true") };
        assert!(err(timeout).contains("at least 1s"));
        let both = HealthFlags { no_healthcheck: true, ..flags("true") };
        assert_eq!(err(both), "--no-healthcheck cannot be used with --health-cmd");
    }

    fn entry(code: i32) -> HealthLogEntry {
        HealthLogEntry {
            start: "s".into(),
            end: "e".into(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn failures_count_after_the_start_period_and_a_success_heals() {
        let mut s = HealthState::default();
        assert_eq!(s.status, STARTING);
        s.add(entry(1), true, 2);
        assert_eq!((s.status.as_str(), s.failing_streak), (STARTING, 0));
        s.add(entry(1), false, 2);
        assert_eq!((s.status.as_str(), s.failing_streak), (STARTING, 1));
        s.add(entry(1), false, 2);
        assert_eq!((s.status.as_str(), s.failing_streak), (UNHEALTHY, 2));
        s.add(entry(0), false, 2);
        assert_eq!((s.status.as_str(), s.failing_streak), (HEALTHY, 0));
        for _ in 0..10 {
            s.add(entry(0), false, 2);
        }
        assert_eq!(s.log.as_ref().unwrap().len(), LOG_ENTRIES);
    }

    // --health-on-failure acts on the result that turns the container unhealthy, once.
    #[test]
    fn only_the_result_that_turns_it_unhealthy_says_so() {
        let dir = tempfile::tempdir().unwrap();
        set_starting(dir.path()).unwrap();
        let turns: Vec<bool> = [1, 1, 0, 1, 1]
            .into_iter()
            .map(|code| record_result(dir.path(), entry(code), false, 1).unwrap().1)
            .collect();
        assert_eq!(turns, [true, false, false, true, false]);
        set_starting(dir.path()).unwrap();
        assert!(record_result(dir.path(), entry(1), false, 1).unwrap().1, "again after a start");
    }

    #[test]
    fn the_state_file_is_podmans_shape_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        set_starting(dir.path()).unwrap();
        let (s, turned) = record_result(dir.path(), entry(0), false, 3).unwrap();
        assert!(!turned);
        assert_eq!(s.status, HEALTHY);
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(state_file(dir.path())).unwrap()).unwrap();
        assert_eq!(json["Status"], "healthy");
        assert_eq!(json["FailingStreak"], 0);
        assert_eq!(json["Log"][0]["ExitCode"], 0);
        assert!(json["Log"][0].get("Start").is_some() && json["Log"][0].get("Output").is_some());
        set_starting(dir.path()).unwrap();
        let again = read_state(dir.path()).unwrap();
        assert_eq!(again.status, STARTING);
        assert_eq!(again.log.unwrap().len(), 1, "a restart keeps the log");
    }

    #[test]
    fn timeouts_read_as_go_prints_them() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }
}
