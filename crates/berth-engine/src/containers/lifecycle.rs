//! The parts of stop, kill and run that are policy rather than mechanism, kept apart from
//! the runtime so they can be tested without processes:
//!
//! - [`stop`]: the stop sequence — the container's stop signal to PID 1, a wait of up to the
//!   stop timeout, then SIGKILL with Podman's warning.
//! - [`exit_code`]: what `run` and `wait` report for a container's wait status (its code, or
//!   128+N for signal N), and [`exec_failure_code`] for a command that never started (126 when
//!   it cannot be invoked, 127 when it is not found), as Docker and Podman do.

use std::time::Duration;

use tracing::warn;

use crate::spec::options::signal_name;

/// Exit code for a failure of berth itself (bad flags, unknown image, name in use).
pub const ENGINE_FAILURE: i32 = 125;
/// Exit code for a command that exists but cannot be run (permission, not executable).
pub const CANNOT_INVOKE: i32 = 126;
/// Exit code for a command that does not exist.
pub const NOT_FOUND: i32 = 127;

/// How a stop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// The process was not running to begin with.
    NotRunning,
    /// The stop signal ended it within the timeout.
    Stopped,
    /// It outlived the timeout and was killed; the warning says so as Podman words it.
    Killed { warning: String },
}

/// What [`stop`] needs from the runtime.
pub trait StopTarget {
    /// Sends `signal` to the container's PID 1; `false` if there is no such process any more.
    fn signal(&mut self, signal: i32) -> bool;
    /// Waits up to `timeout` for the process to exit; `true` if it did.
    fn wait_exit(&mut self, timeout: Duration) -> bool;
}

/// Stops container `name`: `stop_signal`, then after `timeout` seconds SIGKILL. A timeout of
/// 0 kills at once, as `stop -t 0` does.
pub fn stop(
    target: &mut dyn StopTarget,
    name: &str,
    stop_signal: i32,
    timeout: u32,
) -> StopOutcome {
    const SIGKILL: i32 = 9;
    if timeout > 0 && stop_signal != SIGKILL {
        if !target.signal(stop_signal) {
            return StopOutcome::NotRunning;
        }
        if target.wait_exit(Duration::from_secs(u64::from(timeout))) {
            return StopOutcome::Stopped;
        }
    }
    if !target.signal(SIGKILL) {
        // It exited between the wait and the kill.
        return StopOutcome::Stopped;
    }
    // SIGKILL cannot be caught; the wait only lets the runtime reap it.
    target.wait_exit(Duration::from_secs(5));
    if timeout == 0 || stop_signal == SIGKILL {
        return StopOutcome::Stopped;
    }
    let warning = format!(
        "StopSignal {} failed to stop container {name} in {timeout} seconds, resorting to SIGKILL",
        signal_name(stop_signal)
    );
    warn!(container = %name, signal = stop_signal, timeout, "stop signal ignored, sent SIGKILL");
    StopOutcome::Killed { warning }
}

/// The code `run` exits with for a container process's wait status (`waitpid`'s `status`).
pub fn exit_code(wait_status: i32) -> i32 {
    if libc::WIFEXITED(wait_status) {
        libc::WEXITSTATUS(wait_status)
    } else if libc::WIFSIGNALED(wait_status) {
        128 + libc::WTERMSIG(wait_status)
    } else {
        ENGINE_FAILURE
    }
}

/// The code for a container command that failed to start with `errno` at exec.
pub fn exec_failure_code(errno: i32) -> i32 {
    match errno {
        libc::ENOENT | libc::ENOTDIR => NOT_FOUND,
        libc::EACCES | libc::EPERM | libc::ENOEXEC | libc::EISDIR | libc::ETXTBSY | libc::ELOOP => {
            CANNOT_INVOKE
        }
        _ => ENGINE_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that ignores signals in `ignored` and exits on any other.
    struct Fake {
        alive: bool,
        ignored: Vec<i32>,
        sent: Vec<i32>,
        waited: Vec<Duration>,
    }

    impl Fake {
        fn new(alive: bool, ignored: &[i32]) -> Self {
            Self { alive, ignored: ignored.to_vec(), sent: Vec::new(), waited: Vec::new() }
        }
    }

    impl StopTarget for Fake {
        fn signal(&mut self, signal: i32) -> bool {
            if !self.alive {
                return false;
            }
            self.sent.push(signal);
            if !self.ignored.contains(&signal) {
                self.alive = false;
            }
            true
        }

        fn wait_exit(&mut self, timeout: Duration) -> bool {
            self.waited.push(timeout);
            !self.alive
        }
    }

    #[test]
    fn a_process_that_heeds_the_stop_signal_is_not_killed() {
        let mut p = Fake::new(true, &[]);
        assert_eq!(stop(&mut p, "web", 15, 10), StopOutcome::Stopped);
        assert_eq!(p.sent, [15]);
        assert_eq!(p.waited, [Duration::from_secs(10)]);
    }

    #[test]
    fn a_process_that_ignores_it_is_killed_with_podmans_warning() {
        let mut p = Fake::new(true, &[3]);
        let outcome = stop(&mut p, "web", 3, 2);
        assert_eq!(
            outcome,
            StopOutcome::Killed {
                warning: "StopSignal SIGQUIT failed to stop container web in 2 seconds, resorting to SIGKILL".into()
            }
        );
        assert_eq!(p.sent, [3, 9]);
    }

    #[test]
    fn timeout_zero_kills_at_once_and_a_dead_process_is_left_alone() {
        let mut p = Fake::new(true, &[15]);
        assert_eq!(stop(&mut p, "web", 15, 0), StopOutcome::Stopped);
        assert_eq!(p.sent, [9]);
        let mut gone = Fake::new(false, &[]);
        assert_eq!(stop(&mut gone, "web", 15, 10), StopOutcome::NotRunning);
        assert!(gone.sent.is_empty());
    }

    // Real wait statuses from real children: exit 0, exit 3, and SIGKILL (137).
    #[test]
    fn exit_codes_from_real_wait_statuses() {
        use std::os::unix::process::ExitStatusExt;
        let status = |script: &str| {
            std::process::Command::new("/bin/sh").args(["-c", script]).status().unwrap().into_raw()
        };
        assert_eq!(exit_code(status("exit 0")), 0);
        assert_eq!(exit_code(status("exit 3")), 3);
        assert_eq!(exit_code(status("kill -KILL $$")), 137);
        assert_eq!(exit_code(status("kill -TERM $$")), 143);
    }

    #[test]
    fn exec_failures_map_to_126_and_127() {
        assert_eq!(exec_failure_code(libc::ENOENT), 127);
        assert_eq!(exec_failure_code(libc::EACCES), 126);
        assert_eq!(exec_failure_code(libc::ENOEXEC), 126);
        assert_eq!(exec_failure_code(libc::ENOMEM), 125);
    }
}
