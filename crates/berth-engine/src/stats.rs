//! A running container's cgroup seen from the engine: usage figures for `stats`, the
//! processes for `top`, live limit changes for `update`, and whether the kernel's OOM killer
//! struck (for `inspect`'s OOMKilled).
//!
//! The cgroup is found through the runtime state berth-runtime wrote at create
//! ([`berth_runtime::state::Container::cgroup_manager`]); a container without one (rootless
//! on a host without delegation) has no figures, and `update` says why it cannot apply.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_runtime::cgroups::Manager;
use berth_runtime::state::StateRoot;

use crate::context::EngineContext;
use crate::spec::resources::{ResourceError, ResourceOptions};
use crate::spec::HostInfo;

/// Errors of stats, top and update; each names the container.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("container {id} has no runtime state (is it running?)")]
    NoRuntimeState {
        id: String,
        #[source]
        source: berth_runtime::state::StateError,
    },
    #[error("container {id} runs without a cgroup: {reason}")]
    NoCgroup { id: String, reason: String },
    #[error("reading the cgroup of container {id}")]
    Read {
        id: String,
        #[source]
        source: berth_runtime::cgroups::Error,
    },
    #[error("updating the cgroup of container {id}")]
    Update {
        id: String,
        #[source]
        source: berth_runtime::cgroups::Error,
    },
    #[error(transparent)]
    Resources(#[from] ResourceError),
    #[error(transparent)]
    Host(#[from] crate::spec::SpecError),
    #[error("no resource flag given: nothing to update")]
    NothingToUpdate,
    #[error(
        "stats cannot be shown: berth runs rootless and {reason}, so containers run without a \
         cgroup to read figures from"
    )]
    RootlessNoCgroup { reason: String },
}

/// Whether `stats` has figures to show in this context: rootless, berth gives containers no
/// cgroup (see [`crate::spec::resources`]), and `stats` says why rather than print zeros.
pub fn check_available(ctx: &EngineContext) -> Result<(), StatsError> {
    if ctx.rootless {
        let reason =
            crate::spec::resources::no_cgroup_reason(crate::spec::resources::host_cgroup_v2());
        return Err(StatsError::RootlessNoCgroup { reason });
    }
    Ok(())
}

/// The cgroup of running container `id`, or `None` when it runs without one.
pub fn cgroup(ctx: &EngineContext, id: &str) -> Result<Option<Manager>, StatsError> {
    let root = StateRoot::new(ctx.runtime_root());
    let state =
        root.load(id).map_err(|source| StatsError::NoRuntimeState { id: id.to_owned(), source })?;
    Ok(state.cgroup_manager())
}

/// One reading of a container's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// When it was taken (for CPU % between two readings).
    pub at: Option<Instant>,
    /// CPU time used, in nanoseconds.
    pub cpu_ns: u64,
    pub memory_usage: u64,
    /// `None`: unlimited.
    pub memory_limit: Option<u64>,
    pub pids: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub net_rx: u64,
    pub net_tx: u64,
}

/// Reads the usage of container `id` whose init is `pid` (for its network counters).
pub fn sample(ctx: &EngineContext, id: &str, pid: Option<i32>) -> Result<Sample, StatsError> {
    let manager = cgroup(ctx, id)?;
    let mut out = Sample { at: Some(Instant::now()), ..Default::default() };
    if let Some(manager) = manager {
        let stats =
            manager.stats().map_err(|source| StatsError::Read { id: id.to_owned(), source })?;
        out.cpu_ns = stats.cpu.usage.total;
        // What the container itself uses: page cache it could give back is not counted, as
        // Docker and Podman leave inactive file pages out.
        let inactive = stats
            .memory
            .raw
            .get("total_inactive_file")
            .or_else(|| stats.memory.raw.get("inactive_file"))
            .copied()
            .unwrap_or(0);
        out.memory_usage = stats.memory.usage.usage.saturating_sub(inactive);
        let limit = stats.memory.usage.limit;
        // v1 shows "unlimited" as a huge page-aligned number.
        out.memory_limit = (limit != 0 && limit < (1 << 62)).then_some(limit);
        out.pids = stats.pids.current;
        for entry in &stats.blkio.io_service_bytes_recursive {
            match entry.op.as_str() {
                "Read" | "read" => out.block_read += entry.value,
                "Write" | "write" => out.block_write += entry.value,
                _ => {}
            }
        }
    }
    if let Some(pid) = pid {
        let (rx, tx) = net_counters(&PathBuf::from(format!("/proc/{pid}/net/dev")));
        out.net_rx = rx;
        out.net_tx = tx;
    }
    Ok(out)
}

/// The bytes received and sent on every interface but loopback, from a /proc/PID/net/dev.
fn net_counters(path: &Path) -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string(path) else { return (0, 0) };
    let mut rx = 0;
    let mut tx = 0;
    for line in text.lines().skip(2) {
        let Some((name, fields)) = line.split_once(':') else { continue };
        if name.trim() == "lo" {
            continue;
        }
        let fields: Vec<u64> = fields.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        if fields.len() >= 9 {
            rx += fields[0];
            tx += fields[8];
        }
    }
    (rx, tx)
}

/// CPU use between two readings, as a percentage of one CPU (200 % is two CPUs busy), as
/// Podman shows it. With no earlier reading, the average since `running_for`.
pub fn cpu_percent(now: &Sample, before: Option<&Sample>, running_for: Duration) -> f64 {
    let (cpu, wall) = match (before, now.at) {
        (Some(b), Some(at)) => match b.at {
            Some(b_at) => (now.cpu_ns.saturating_sub(b.cpu_ns), at.duration_since(b_at)),
            None => (now.cpu_ns, running_for),
        },
        _ => (now.cpu_ns, running_for),
    };
    if wall.is_zero() {
        return 0.0;
    }
    cpu as f64 / wall.as_nanos() as f64 * 100.0
}

/// The host's memory, the limit `stats` shows for a container without one.
pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// The processes of container `id`, by host pid.
pub fn processes(ctx: &EngineContext, id: &str, init: Option<i32>) -> Result<Vec<i32>, StatsError> {
    match cgroup(ctx, id)? {
        Some(manager) => {
            let mut pids =
                manager.pids().map_err(|source| StatsError::Read { id: id.to_owned(), source })?;
            pids.sort_unstable();
            Ok(pids)
        }
        // Without a cgroup: the init and its descendants, from /proc.
        None => Ok(init.map(descendants).unwrap_or_default()),
    }
}

/// `pid` and every process below it.
fn descendants(pid: i32) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
                if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                    if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok())
                    {
                        parents.push((p, ppid));
                    }
                }
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    out.sort_unstable();
    out
}

/// `berth update`: applies the memory, cpu and pids flags of `opts` to running container
/// `id`'s cgroup.
pub fn update(ctx: &EngineContext, id: &str, opts: &ResourceOptions) -> Result<(), StatsError> {
    let host = HostInfo { rootless: ctx.rootless, ..HostInfo::detect()? };
    let resources = opts.parse(&host)?;
    let json = resources.cgroup_json();
    if json.as_object().is_none_or(|o| o.is_empty()) {
        return Err(StatsError::NothingToUpdate);
    }
    let resources: oci_spec::runtime::LinuxResources = serde_json::from_value(json)
        .map_err(|e| StatsError::NoCgroup { id: id.to_owned(), reason: e.to_string() })?;
    let manager = cgroup(ctx, id)?.ok_or_else(|| StatsError::NoCgroup {
        id: id.to_owned(),
        reason: "berth runs rootless and this host delegates no cgroup".to_owned(),
    })?;
    manager.update(&resources).map_err(|source| StatsError::Update { id: id.to_owned(), source })
}

/// The file in a container's userdata directory that says the OOM killer struck.
fn oom_marker(userdata: &Path) -> PathBuf {
    userdata.join("oom-killed")
}

/// Called where the container's exit is recorded, before its cgroup is removed: notes in
/// `userdata` whether the kernel's OOM killer killed a process of container `id`.
pub fn record_oom(runtime_root: &StateRoot, id: &str, userdata: &Path) {
    let killed = runtime_root
        .load(id)
        .ok()
        .and_then(|state| state.cgroup_manager())
        .and_then(|m| m.oom_kill_count().ok())
        .is_some_and(|count| count > 0);
    let marker = oom_marker(userdata);
    if killed {
        if let Err(e) = std::fs::write(&marker, b"1") {
            tracing::warn!(%id, error = %e, "recording the OOM kill");
        }
    } else {
        let _ = std::fs::remove_file(&marker);
    }
}

/// Whether the container's last run ended with an OOM kill (see [`record_oom`]).
pub fn oom_killed(userdata: &Path) -> bool {
    oom_marker(userdata).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_counters_skip_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev");
        std::fs::write(
            &path,
            "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed \
             multicast|bytes packets\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 2000 \
             3 0 0 0 0 0 0 500 2 0 0 0 0 0 0\n",
        )
        .unwrap();
        assert_eq!(net_counters(&path), (2000, 500));
        assert_eq!(net_counters(&dir.path().join("none")), (0, 0));
    }

    #[test]
    fn cpu_percent_is_per_cpu_between_readings() {
        let t0 = Instant::now();
        let before = Sample { at: Some(t0), cpu_ns: 0, ..Default::default() };
        let now = Sample {
            at: Some(t0 + Duration::from_secs(1)),
            cpu_ns: 500_000_000,
            ..Default::default()
        };
        assert!((cpu_percent(&now, Some(&before), Duration::ZERO) - 50.0).abs() < 0.01);
        let first = Sample { at: Some(t0), cpu_ns: 2_000_000_000, ..Default::default() };
        assert!((cpu_percent(&first, None, Duration::from_secs(4)) - 50.0).abs() < 0.01);
    }
}
