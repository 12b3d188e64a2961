//! Helpers for the two runc commands that are pure cgroup work, shaped for berth-oci:
//! `update` (runc's flags, or `-r resources.json`, into `linux.resources`, and the merge of
//! an update into the resources kept in the container's state) and `events` (the
//! `{"type":"stats",...}` lines, once with `--stats` or every interval, plus an `oom` line for
//! each new OOM kill).

use std::io::Read;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use super::{Error, Event, Manager, Result};

/// The resource flags of `runc update`; `None` is a flag not given. Memory sizes take the
/// units Docker and runc accept (`512m`, `1g`, `-1` for unlimited).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpdateRequest {
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub kernel_memory: Option<String>,
    pub kernel_memory_tcp: Option<String>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
}

impl UpdateRequest {
    /// The flags as `linux.resources`, laid over `base` (the `-r` file, if one was given):
    /// a flag wins over the same field in the file, as in runc.
    pub fn to_resources(&self, base: Option<LinuxResources>) -> Result<LinuxResources> {
        let mut json = serde_json::to_value(base.unwrap_or_default()).unwrap_or_default();
        let mut set = |section: &str, key: &str, value: serde_json::Value| {
            if !json.is_object() {
                json = serde_json::json!({});
            }
            let obj = json.as_object_mut().expect("an object");
            let entry = obj.entry(section).or_insert_with(|| serde_json::json!({}));
            if !entry.is_object() {
                *entry = serde_json::json!({});
            }
            entry.as_object_mut().expect("an object").insert(key.to_string(), value);
        };
        let bytes = [
            ("limit", "--memory", &self.memory),
            ("reservation", "--memory-reservation", &self.memory_reservation),
            ("swap", "--memory-swap", &self.memory_swap),
            ("kernel", "--kernel-memory", &self.kernel_memory),
            ("kernelTCP", "--kernel-memory-tcp", &self.kernel_memory_tcp),
        ];
        for (key, flag, value) in bytes {
            if let Some(text) = value {
                set("memory", key, parse_bytes(flag, text)?.into());
            }
        }
        if let Some(v) = self.cpu_shares {
            set("cpu", "shares", v.into());
        }
        if let Some(v) = self.cpu_quota {
            set("cpu", "quota", v.into());
        }
        if let Some(v) = self.cpu_period {
            set("cpu", "period", v.into());
        }
        if let Some(v) = self.cpu_rt_period {
            set("cpu", "realtimePeriod", v.into());
        }
        if let Some(v) = self.cpu_rt_runtime {
            set("cpu", "realtimeRuntime", v.into());
        }
        if let Some(v) = &self.cpuset_cpus {
            set("cpu", "cpus", v.clone().into());
        }
        if let Some(v) = &self.cpuset_mems {
            set("cpu", "mems", v.clone().into());
        }
        if let Some(v) = self.pids_limit {
            set("pids", "limit", v.into());
        }
        if let Some(v) = self.blkio_weight {
            set("blockIO", "weight", v.into());
        }
        serde_json::from_value(json)
            .map_err(|e| Error::InvalidValue { resource: "update".into(), reason: e.to_string() })
    }
}

/// Parses a size as Docker's `RAMInBytes` does: a number with an optional binary unit
/// (`b`, `k`, `m`, `g`, `t`, `p`, optionally followed by `b`), or `-1` for unlimited.
pub fn parse_bytes(flag: &str, text: &str) -> Result<i64> {
    let invalid = |reason: &str| Error::InvalidValue {
        resource: flag.to_string(),
        reason: format!("{text:?}: {reason}"),
    };
    let t = text.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let digits_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let number: f64 = number.parse().map_err(|_| invalid("not a size"))?;
    let unit = unit.trim();
    let unit = if unit.len() == 2 { unit.strip_suffix('b').unwrap_or(unit) } else { unit };
    let multiplier: f64 = match unit {
        "" | "b" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(invalid("unknown unit")),
    };
    let bytes = number * multiplier;
    if bytes > i64::MAX as f64 {
        return Err(invalid("too large"));
    }
    Ok(bytes as i64)
}

/// Reads `linux.resources` JSON, as `runc update -r FILE` does (`-` is stdin).
pub fn resources_from_reader(name: &str, mut reader: impl Read) -> Result<LinuxResources> {
    let mut text = String::new();
    reader.read_to_string(&mut text).map_err(|source| Error::Read { path: name.into(), source })?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Parse { path: name.into(), reason: e.to_string() })
}

/// `current` with every field set in `update` replaced (objects merge, lists and values
/// replace): what the container's state should hold after an update.
pub fn merge(current: &LinuxResources, update: &LinuxResources) -> LinuxResources {
    fn deep(into: &mut serde_json::Value, from: serde_json::Value) {
        match (into, from) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    match a.get_mut(&k) {
                        Some(slot) if v.is_object() => deep(slot, v),
                        _ => {
                            a.insert(k, v);
                        }
                    }
                }
            }
            (slot, v) => *slot = v,
        }
    }
    let mut merged = serde_json::to_value(current).unwrap_or_default();
    deep(&mut merged, serde_json::to_value(update).unwrap_or_default());
    serde_json::from_value(merged).unwrap_or_else(|_| update.clone())
}

/// The `events --stats` line for container `id`.
pub fn stats_event(manager: &Manager, id: &str) -> Result<Event> {
    Ok(Event::stats(id, manager.stats()?))
}

/// Counts new OOM kills between looks.
#[derive(Debug)]
pub struct OomWatch {
    seen: u64,
}

impl OomWatch {
    /// Starts from the kills already counted, so only new ones are reported.
    pub fn new(manager: &Manager) -> Self {
        OomWatch { seen: manager.oom_kill_count().unwrap_or(0) }
    }

    /// How many OOM kills happened since the last look.
    pub fn poll(&mut self, manager: &Manager) -> Result<u64> {
        let now = manager.oom_kill_count()?;
        let new = now.saturating_sub(self.seen);
        self.seen = now;
        Ok(new)
    }
}

/// `events` without `--stats`: a stats event every `interval` and an `oom` event for each new
/// OOM kill (looked for every 100 ms), until `emit` returns false or the cgroup is gone.
pub fn watch(
    manager: &Manager,
    id: &str,
    interval: Duration,
    mut emit: impl FnMut(&Event) -> bool,
) -> Result<()> {
    let mut oom = OomWatch::new(manager);
    let tick = interval.min(Duration::from_millis(100));
    let mut next_stats = Instant::now();
    loop {
        if manager.paths().iter().any(|p| !p.exists()) {
            return Ok(());
        }
        for _ in 0..oom.poll(manager).unwrap_or(0) {
            if !emit(&Event::oom(id)) {
                return Ok(());
            }
        }
        if Instant::now() >= next_stats {
            if !emit(&stats_event(manager, id)?) {
                return Ok(());
            }
            next_stats = Instant::now() + interval;
        }
        std::thread::sleep(tick);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{content, files, resources};
    use super::super::ManagerBuilder;
    use super::*;

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_bytes("--memory", "512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("--memory", "1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("--memory", "64kb").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("--memory", "1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("--memory", "4096").unwrap(), 4096);
        assert_eq!(parse_bytes("--memory", "-1").unwrap(), -1);
        let err = parse_bytes("--memory", "12x").unwrap_err();
        assert!(err.to_string().contains("--memory"), "{err}");
    }

    #[test]
    fn flags_override_the_resources_file_and_apply() {
        let file = resources_from_reader(
            "r.json",
            &br#"{"memory": {"limit": 1048576, "reservation": 524288}, "pids": {"limit": 5}}"#[..],
        )
        .unwrap();
        let req = UpdateRequest {
            memory: Some("64m".into()),
            cpu_quota: Some(50000),
            cpu_period: Some(100000),
            pids_limit: Some(20),
            blkio_weight: Some(200),
            ..Default::default()
        };
        let r = req.to_resources(Some(file)).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        for c in ["memory", "cpu", "pids", "blkio"] {
            std::fs::create_dir_all(tmp.path().join(c)).unwrap();
        }
        let m = ManagerBuilder::new("c1")
            .with_root(tmp.path())
            .with_cgroups_path(Some("/c1"))
            .with_own_cgroup("")
            .build()
            .unwrap();
        m.create().unwrap();
        files(&tmp.path().join("blkio/c1"), &[("blkio.weight", "")]);
        m.update(&r).unwrap();
        assert_eq!(content(&tmp.path().join("memory/c1"), "memory.limit_in_bytes"), "67108864");
        assert_eq!(content(&tmp.path().join("memory/c1"), "memory.soft_limit_in_bytes"), "524288");
        assert_eq!(content(&tmp.path().join("cpu/c1"), "cpu.cfs_quota_us"), "50000");
        assert_eq!(content(&tmp.path().join("pids/c1"), "pids.max"), "20");
        assert_eq!(content(&tmp.path().join("blkio/c1"), "blkio.weight"), "200");
    }

    #[test]
    fn merge_keeps_fields_the_update_does_not_set() {
        let current = resources(
            r#"{"memory": {"limit": 1048576, "swap": 2097152}, "pids": {"limit": 5},
                "devices": [{"allow": false, "access": "rwm"}]}"#,
        );
        let update = resources(r#"{"memory": {"limit": 4194304}}"#);
        let merged = merge(&current, &update);
        let mem = merged.memory().unwrap();
        assert_eq!(mem.limit(), Some(4194304));
        assert_eq!(mem.swap(), Some(2097152));
        assert_eq!(merged.pids().unwrap().limit(), 5);
        assert_eq!(merged.devices().as_ref().unwrap().len(), 1);
    }

    #[test]
    fn new_oom_kills_are_counted_once() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("memory")).unwrap();
        let m = ManagerBuilder::new("c1")
            .with_root(tmp.path())
            .with_cgroups_path(Some("/c1"))
            .with_own_cgroup("")
            .build()
            .unwrap();
        m.create().unwrap();
        let dir = tmp.path().join("memory/c1");
        files(&dir, &[("memory.oom_control", "oom_kill_disable 0\noom_kill 1\n")]);
        let mut watch = OomWatch::new(&m);
        assert_eq!(watch.poll(&m).unwrap(), 0);
        files(&dir, &[("memory.oom_control", "oom_kill_disable 0\noom_kill 3\n")]);
        assert_eq!(watch.poll(&m).unwrap(), 2);
        assert_eq!(watch.poll(&m).unwrap(), 0);
        let json = serde_json::to_string(&Event::oom("c1")).unwrap();
        assert_eq!(json, r#"{"type":"oom","id":"c1"}"#);
    }

    #[test]
    fn watch_emits_stats_then_oom_and_stops_when_the_cgroup_goes() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("memory")).unwrap();
        let m = ManagerBuilder::new("c1")
            .with_root(tmp.path())
            .with_cgroups_path(Some("/c1"))
            .with_own_cgroup("")
            .build()
            .unwrap();
        m.create().unwrap();
        let dir = tmp.path().join("memory/c1");
        files(
            &dir,
            &[
                ("memory.oom_control", "oom_kill 0\n"),
                ("memory.limit_in_bytes", "1048576\n"),
                ("memory.usage_in_bytes", "4096\n"),
                ("memory.max_usage_in_bytes", "4096\n"),
                ("memory.failcnt", "0\n"),
                ("memory.stat", "cache 0\n"),
            ],
        );
        let mut seen = Vec::new();
        watch(&m, "c1", Duration::from_secs(3600), |e| {
            seen.push(serde_json::to_value(e).unwrap());
            match seen.len() {
                // After the first stats line, an OOM kill happens; then the cgroup goes away.
                1 => files(&dir, &[("memory.oom_control", "oom_kill 1\n")]),
                2 => std::fs::remove_dir_all(&dir).unwrap(),
                _ => {}
            }
            true
        })
        .unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0]["type"], "stats");
        assert_eq!(seen[0]["data"]["memory"]["usage"]["limit"], 1048576);
        assert_eq!(seen[1]["type"], "oom");
    }
}
