//! Reconciling records with the kernel: a container whose process is gone reads as exited.
//!
//! A record that says `created`, `running` or `paused` names a pid, the start time of that
//! process and the boot it ran in. The process is gone when the machine has rebooted since
//! (the boot id differs), when the pid no longer exists or is a zombie, or when the pid now
//! belongs to another process (its start time differs). Such a record becomes `exited` with no
//! exit code (inspect shows -1, as Podman does when conmon left no exit file) and a note why.
//!
//! The check is one read of the live records and a /proc lookup each; only records that
//! change take the write lock, and each is re-read under it so a monitor recording the real
//! exit at the same moment wins.

use std::fs;
use std::path::Path;

use rusqlite::TransactionBehavior;
use tracing::info;

use super::db::{apply_change, read_one, write_state, StateDb};
use super::{ContainerRecord, StateChange, StateError, Timestamp};

/// Where the kernel publishes the id of the current boot.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// The current boot id.
pub fn current_boot_id() -> Result<String, StateError> {
    fs::read_to_string(BOOT_ID_PATH)
        .map(|id| id.trim().to_owned())
        .map_err(|source| StateError::ReadBootId { path: BOOT_ID_PATH.into(), source })
}

/// Asks whether a process lives; a fake stands in for /proc in tests.
pub trait ProcessProbe {
    /// The start time (clock ticks since boot) of live, non-zombie process `pid`, or `None`.
    fn start_time(&self, pid: i32) -> Option<u64>;
}

/// The real probe: /proc/PID/stat.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcProbe;

impl ProcessProbe for ProcProbe {
    fn start_time(&self, pid: i32) -> Option<u64> {
        if pid <= 0 {
            return None;
        }
        let stat =
            fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
        parse_stat(&stat)
    }
}

/// Field 22 (starttime) of a /proc/PID/stat line, or `None` for a zombie or dead process.
/// The command name (field 2) may hold spaces and parentheses, so fields are counted from the
/// last `)`; proc(5) numbers the state field 3 and starttime 22.
pub fn parse_stat(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    let state = fields.next()?;
    if matches!(state, "Z" | "X" | "x") {
        return None;
    }
    // After the state come fields 4..; starttime is the 19th of those.
    fields.nth(18)?.parse().ok()
}

/// Why a live record no longer matches the kernel, or `None` if it still does.
pub fn staleness(
    record: &ContainerRecord,
    boot_id: &str,
    probe: &dyn ProcessProbe,
) -> Option<String> {
    if !record.state.has_process() {
        return None;
    }
    if let Some(recorded) = &record.boot_id {
        if recorded != boot_id {
            return Some("the machine has rebooted since the container started".to_owned());
        }
    }
    let pid = record.pid?;
    match probe.start_time(pid) {
        None => Some(format!("process {pid} is gone and no exit code was recorded")),
        Some(start) if record.pid_start_time.is_some_and(|recorded| recorded != start) => {
            Some(format!("process {pid} is gone (the pid now belongs to another process)"))
        }
        Some(_) => None,
    }
}

impl StateDb {
    /// Marks every container whose process is gone as exited; returns their ids.
    pub fn reconcile(
        &mut self,
        boot_id: &str,
        probe: &dyn ProcessProbe,
    ) -> Result<Vec<String>, StateError> {
        let stale: Vec<String> = {
            let what = "reading live containers for reconciliation";
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT id FROM containers WHERE state IN ('created', 'running', 'paused')",
                )
                .map_err(|source| StateError::Query { what: what.into(), source })?;
            let ids: Vec<String> = stmt
                .query_map([], |row| row.get(0))
                .and_then(|rows| rows.collect())
                .map_err(|source| StateError::Query { what: what.into(), source })?;
            drop(stmt);
            let mut stale = Vec::new();
            for id in ids {
                if let Some(record) = read_one(&self.conn, &id)? {
                    if staleness(&record, boot_id, probe).is_some() {
                        stale.push(id);
                    }
                }
            }
            stale
        };

        let mut marked = Vec::new();
        for id in stale {
            let what = format!("marking container {id} exited");
            let write = |source| StateError::Write { what: what.clone(), source };
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(write)?;
            // Re-read under the write lock: the monitor may have recorded the exit meanwhile.
            let Some(mut record) = read_one(&tx, &id)? else { continue };
            let Some(reason) = staleness(&record, boot_id, probe) else { continue };
            apply_change(
                &mut record,
                &StateChange::Exited {
                    exit_code: None,
                    at: Timestamp::now(),
                    error: Some(reason.clone()),
                },
            );
            write_state(&tx, &record).map_err(write)?;
            tx.commit().map_err(write)?;
            info!(%id, %reason, "container marked exited");
            marked.push(id);
        }
        Ok(marked)
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn stat_parsing_counts_from_the_last_parenthesis() {
        let line = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615";
        assert_eq!(parse_stat(line), Some(987_654));
        let zombie = "1234 (sh) Z 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat(zombie), None);
    }

    #[test]
    fn the_real_probe_sees_a_child_live_then_gone() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        let start = ProcProbe.start_time(pid);
        assert!(start.is_some(), "a live child reads as gone");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(ProcProbe.start_time(pid), None, "a reaped child reads as live");
    }

    #[test]
    fn boot_id_is_a_uuid() {
        let id = current_boot_id().unwrap();
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.matches('-').count(), 4, "{id}");
    }
}
