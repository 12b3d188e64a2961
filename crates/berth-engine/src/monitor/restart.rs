//! `--restart`: the policy that decides whether the monitor starts a container's process again
//! after it exited, and the back-off between attempts. There is no daemon: the monitor that
//! watched the process is the one that restarts it, so a policy holds for as long as that
//! monitor lives. After a reboot nothing restarts (`always` included): no process of berth's
//! survives one, and berth installs no boot service.
//!
//! The policies and their spelling are Podman's (which are Docker's):
//!
//! - `no` (the default): never.
//! - `on-failure[:N]`: after a non-zero exit, at most N times (no limit without N).
//! - `always`, `unless-stopped`: after every exit. Without a daemon the two differ in nothing
//!   (Docker's difference shows only when its daemon restarts).
//!
//! A `stop`, `kill` or `rm -f` by the user is never followed by a restart, whatever the policy,
//! as in Podman (its `StoppedByUser`): the command leaves a marker file in the container's
//! userdata directory before it signals, and the monitor reads it when the process has exited
//! and between back-off steps. A `start` by the user removes the marker and resets the count.
//!
//! Back-off follows Docker's: 100 ms before the first restart, doubling with each one up to a
//! minute, and back to 100 ms once a run lasted ten seconds or more.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The first back-off delay.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest back-off delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

/// Errors of parsing `--restart`.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    #[error(
        "invalid --restart {value:?}: the policy must be no, on-failure[:N], always or \
         unless-stopped"
    )]
    UnknownPolicy { value: String },
    #[error("invalid --restart {value:?}: the retry count after on-failure: must be a number ≥ 0")]
    BadRetries { value: String },
    #[error("invalid --restart {value:?}: only on-failure takes a retry count")]
    RetriesNotAllowed { value: String },
    #[error("--rm cannot be used with --restart {policy}: a removed container cannot restart")]
    WithAutoRemove { policy: String },
}

/// A restart policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    OnFailure {
        /// 0: no limit.
        #[serde(default)]
        max_retries: u32,
    },
    Always,
    UnlessStopped,
}

impl RestartPolicy {
    /// Parses `--restart` as Podman spells it; the empty string is `no`.
    pub fn parse(value: &str) -> Result<Self, RestartError> {
        let (name, retries) = match value.split_once(':') {
            Some((name, retries)) => (name, Some(retries)),
            None => (value, None),
        };
        let policy = match name {
            "" | "no" => Self::No,
            "on-failure" => Self::OnFailure { max_retries: 0 },
            "always" => Self::Always,
            "unless-stopped" => Self::UnlessStopped,
            _ => return Err(RestartError::UnknownPolicy { value: value.to_owned() }),
        };
        match (policy, retries) {
            (_, None) => Ok(policy),
            (Self::OnFailure { .. }, Some(n)) => n
                .parse()
                .map(|max_retries| Self::OnFailure { max_retries })
                .map_err(|_| RestartError::BadRetries { value: value.to_owned() }),
            (_, Some(_)) => Err(RestartError::RetriesNotAllowed { value: value.to_owned() }),
        }
    }

    /// Podman's name, as `inspect` shows it in HostConfig.RestartPolicy.Name (`""` for no).
    pub fn name(&self) -> &'static str {
        match self {
            Self::No => "",
            Self::OnFailure { .. } => "on-failure",
            Self::Always => "always",
            Self::UnlessStopped => "unless-stopped",
        }
    }

    /// HostConfig.RestartPolicy.MaximumRetryCount.
    pub fn max_retries(&self) -> u32 {
        match self {
            Self::OnFailure { max_retries } => *max_retries,
            _ => 0,
        }
    }

    /// Refuses `--rm` with a policy that restarts, as Podman does.
    pub fn check_auto_remove(&self, auto_remove: bool) -> Result<(), RestartError> {
        if auto_remove && *self != Self::No {
            let policy = match self {
                Self::OnFailure { max_retries: n @ 1.. } => format!("on-failure:{n}"),
                other => other.name().to_owned(),
            };
            return Err(RestartError::WithAutoRemove { policy });
        }
        Ok(())
    }

    /// Whether a process that exited with `exit_code`, after `restarts` restarts so far, is
    /// started again. A stop by the user is checked separately (it always wins).
    pub fn restarts_after(&self, exit_code: i32, restarts: u32) -> bool {
        match self {
            Self::No => false,
            Self::OnFailure { max_retries } => {
                exit_code != 0 && (*max_retries == 0 || restarts < *max_retries)
            }
            Self::Always | Self::UnlessStopped => true,
        }
    }
}

/// The back-off between restarts.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: BACKOFF_START }
    }
}

impl Backoff {
    /// The delay before the next restart, after a run that lasted `ran`.
    pub fn delay(&mut self, ran: Duration) -> Duration {
        if ran >= BACKOFF_RESET_AFTER {
            self.next = BACKOFF_START;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }
}

/// The marker a user's stop, kill or forced removal leaves for the monitor.
pub fn stop_marker(userdata: &Path) -> PathBuf {
    userdata.join("stopped-by-user")
}

/// Tells the monitor of the container in `userdata` not to restart it (call before the
/// signal goes out).
pub fn mark_stopped_by_user(userdata: &Path) {
    if let Err(e) = fs::write(stop_marker(userdata), b"") {
        tracing::debug!(path = %userdata.display(), error = %e, "writing the stop marker");
    }
}

/// Whether the user stopped the container since it was last started.
pub fn stopped_by_user(userdata: &Path) -> bool {
    stop_marker(userdata).exists()
}

/// The file with the number of restarts the policy made since the user's last start.
pub fn count_file(userdata: &Path) -> PathBuf {
    userdata.join("restart-count")
}

/// `inspect`'s RestartCount: restarts by the policy since the user last started it.
pub fn restart_count(userdata: &Path) -> u32 {
    fs::read_to_string(count_file(userdata)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// A user's start: no marker, no restarts counted.
pub fn reset(userdata: &Path) {
    let _ = fs::remove_file(stop_marker(userdata));
    let _ = fs::remove_file(count_file(userdata));
}

/// The monitor's side: the policy, the count so far and the back-off.
#[derive(Debug)]
pub struct Supervisor {
    policy: RestartPolicy,
    userdata: PathBuf,
    restarts: u32,
    backoff: Backoff,
    started: Instant,
}

impl Supervisor {
    pub fn new(policy: RestartPolicy, userdata: &Path) -> Self {
        Self {
            policy,
            userdata: userdata.to_owned(),
            restarts: restart_count(userdata),
            backoff: Backoff::default(),
            started: Instant::now(),
        }
    }

    /// After the process exited with `exit_code`: the delay before it starts again, or `None`
    /// when it stays exited.
    pub fn after_exit(&mut self, exit_code: i32) -> Option<Duration> {
        if stopped_by_user(&self.userdata) || !self.policy.restarts_after(exit_code, self.restarts)
        {
            return None;
        }
        Some(self.backoff.delay(self.started.elapsed()))
    }

    /// Sleeps `delay`, waking every 50 ms to look for a user's stop; `false` if one came.
    pub fn wait(&self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            if stopped_by_user(&self.userdata) {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// The process runs again: one more restart counted (and kept for `inspect`).
    pub fn restarted(&mut self) {
        self.restarts += 1;
        self.started = Instant::now();
        if let Err(e) = fs::write(count_file(&self.userdata), self.restarts.to_string()) {
            tracing::debug!(path = %self.userdata.display(), error = %e, "writing the count");
        }
    }

    /// Whether a stop came while the process was being started again.
    pub fn stop_requested(&self) -> bool {
        stopped_by_user(&self.userdata)
    }

    /// What the next monitor process needs to go on where this one stops (across an exec).
    pub fn carry(&self) -> Carry {
        Carry {
            backoff_ms: self.backoff.next.as_millis().try_into().unwrap_or(u64::MAX),
            ran_ms: self.started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
        }
    }

    /// The supervisor `carry` was taken from (the restart count is re-read from its file).
    pub fn resume(policy: RestartPolicy, userdata: &Path, carry: &Carry) -> Self {
        let ran = Duration::from_millis(carry.ran_ms);
        let now = Instant::now();
        Self {
            backoff: Backoff { next: Duration::from_millis(carry.backoff_ms) },
            started: now.checked_sub(ran).unwrap_or(now),
            ..Self::new(policy, userdata)
        }
    }
}

/// A [`Supervisor`]'s back-off and run time, as one monitor process hands them to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carry {
    /// The next back-off delay.
    pub backoff_ms: u64,
    /// How long the process had run at the hand-over.
    pub ran_ms: u64,
}

impl Carry {
    /// The process ran `more` in a monitor process that had no supervisor (the watcher).
    pub fn ran_for(&mut self, more: Duration) {
        let more: u64 = more.as_millis().try_into().unwrap_or(u64::MAX);
        self.ran_ms = self.ran_ms.saturating_add(more);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_as_podman_spells_them() {
        assert_eq!(RestartPolicy::parse("no").unwrap(), RestartPolicy::No);
        assert_eq!(RestartPolicy::parse("").unwrap(), RestartPolicy::No);
        assert_eq!(
            RestartPolicy::parse("on-failure").unwrap(),
            RestartPolicy::OnFailure { max_retries: 0 }
        );
        assert_eq!(
            RestartPolicy::parse("on-failure:2").unwrap(),
            RestartPolicy::OnFailure { max_retries: 2 }
        );
        assert_eq!(RestartPolicy::parse("always").unwrap(), RestartPolicy::Always);
        assert_eq!(RestartPolicy::parse("unless-stopped").unwrap(), RestartPolicy::UnlessStopped);
        let err = RestartPolicy::parse("sometimes").unwrap_err().to_string();
        assert!(err.starts_with("invalid --restart \"sometimes\": the policy must be"), "{err}");
        assert!(RestartPolicy::parse("on-failure:-1").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
        assert!(RestartPolicy::parse("always:3").is_err());
    }

    #[test]
    fn on_failure_counts_and_always_does_not() {
        let p = RestartPolicy::OnFailure { max_retries: 2 };
        assert!(p.restarts_after(1, 0));
        assert!(p.restarts_after(1, 1));
        assert!(!p.restarts_after(1, 2));
        assert!(!p.restarts_after(0, 0));
        let unlimited = RestartPolicy::OnFailure { max_retries: 0 };
        assert!(unlimited.restarts_after(137, 1000));
        assert!(RestartPolicy::Always.restarts_after(0, 1000));
        assert!(RestartPolicy::UnlessStopped.restarts_after(0, 5));
        assert!(!RestartPolicy::No.restarts_after(1, 0));
    }

    #[test]
    fn rm_is_refused_with_a_policy_that_restarts() {
        assert!(RestartPolicy::No.check_auto_remove(true).is_ok());
        assert!(RestartPolicy::Always.check_auto_remove(false).is_ok());
        let err = RestartPolicy::OnFailure { max_retries: 3 }.check_auto_remove(true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--rm cannot be used with --restart on-failure:3: a removed container cannot restart"
        );
    }

    #[test]
    fn backoff_doubles_up_to_a_minute_and_resets_after_a_long_run() {
        let mut b = Backoff::default();
        let short = Duration::from_millis(5);
        let delays: Vec<u128> = (0..12).map(|_| b.delay(short).as_millis()).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]
        );
        assert_eq!(b.delay(Duration::from_secs(10)), BACKOFF_START);
        assert_eq!(b.delay(short), Duration::from_millis(200));
    }

    #[test]
    fn a_users_stop_wins_over_the_policy_and_start_resets_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Supervisor::new(RestartPolicy::Always, dir.path());
        assert_eq!(s.after_exit(0), Some(BACKOFF_START));
        s.restarted();
        assert_eq!(restart_count(dir.path()), 1);
        assert_eq!(Supervisor::new(RestartPolicy::Always, dir.path()).restarts, 1);
        mark_stopped_by_user(dir.path());
        assert_eq!(s.after_exit(0), None);
        assert!(!s.wait(Duration::from_secs(30)), "a stop ends the wait at once");
        reset(dir.path());
        assert!(!stopped_by_user(dir.path()));
        assert_eq!(restart_count(dir.path()), 0);
    }

    #[test]
    fn a_carried_supervisor_keeps_its_backoff_and_run_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Supervisor::new(RestartPolicy::Always, dir.path());
        assert_eq!(s.after_exit(1), Some(Duration::from_millis(100)));
        s.restarted();
        let mut carry = s.carry();
        let mut short = Supervisor::resume(RestartPolicy::Always, dir.path(), &carry);
        assert_eq!(short.restarts, 1, "the count comes from the file");
        assert_eq!(short.after_exit(1), Some(Duration::from_millis(200)), "the back-off goes on");
        carry.ran_for(BACKOFF_RESET_AFTER);
        let mut long = Supervisor::resume(RestartPolicy::Always, dir.path(), &carry);
        assert_eq!(long.after_exit(1), Some(BACKOFF_START), "a long run across the exec resets it");
    }

    #[test]
    fn the_policy_round_trips_through_json() {
        for p in [
            RestartPolicy::No,
            RestartPolicy::OnFailure { max_retries: 4 },
            RestartPolicy::Always,
            RestartPolicy::UnlessStopped,
        ] {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<RestartPolicy>(&json).unwrap(), p, "{json}");
        }
    }
}
