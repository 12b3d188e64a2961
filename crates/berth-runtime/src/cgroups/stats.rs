//! Usage figures of a cgroup, shaped like the `data` of runc's `events --stats` JSON
//! (runc's `types.Stats`), so tools that read runc's output read berth-oci's.

use std::collections::BTreeMap;

use serde::Serialize;

/// One line of `events` output: `{"type":"stats","id":"…","data":{…}}`, or `"type":"oom"`.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

impl Event {
    /// A `stats` event for container `id`.
    pub fn stats(id: &str, stats: Stats) -> Self {
        Event { kind: "stats".into(), id: id.into(), data: Some(stats) }
    }

    /// An `oom` event for container `id` (a new OOM kill since the last look).
    pub fn oom(id: &str) -> Self {
        Event { kind: "oom".into(), id: id.into(), data: None }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CpuStats {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// CPU time in nanoseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CpuUsage {
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Throttling {
    pub periods: u64,
    #[serde(rename = "throttledPeriods")]
    pub throttled_periods: u64,
    #[serde(rename = "throttledTime")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MemoryStats {
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// Bytes; a limit of `u64::MAX` means unlimited.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MemoryEntry {
    pub limit: u64,
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PidsStats {
    pub current: u64,
    /// 0 when there is no limit, as in runc.
    pub limit: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BlkioStats {
    #[serde(rename = "ioServiceBytesRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct HugetlbStats {
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}
