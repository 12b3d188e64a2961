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

/// Parses v1 blkio lines (`8:0 Read 4096`; the `Total` line is skipped).
pub(crate) fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(dev), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Some((major, minor)) = dev.split_once(':') else { continue };
        if let (Ok(major), Ok(minor), Ok(value)) = (major.parse(), minor.parse(), value.parse()) {
            out.push(BlkioEntry { major, minor, op: op.to_string(), value });
        }
    }
    out
}

/// Parses v2 `io.stat` (`8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...`) into runc's two lists:
/// bytes and operations, each with Read and Write entries.
pub(crate) fn parse_io_stat(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let Some((major, minor)) = parts.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        for kv in parts {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let Ok(value) = v.parse::<u64>() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry { major, minor, op: op.into(), value });
        }
    }
    (bytes, ios)
}

/// hugetlb figures of one cgroup directory, by page size: v1's
/// `hugetlb.<size>.{usage_in_bytes,max_usage_in_bytes,failcnt}` or v2's
/// `hugetlb.<size>.{current,max}` and the `max` count of `hugetlb.<size>.events`.
pub(crate) fn hugetlb_stats(dir: &std::path::Path, v2: bool) -> BTreeMap<String, HugetlbStats> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    let num = |file: String| -> u64 {
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("hugetlb.") else { continue };
        let suffix = if v2 { ".current" } else { ".usage_in_bytes" };
        let Some(size) = rest.strip_suffix(suffix) else { continue };
        if size.contains('.') {
            continue;
        }
        let stats = if v2 {
            let events = std::fs::read_to_string(dir.join(format!("hugetlb.{size}.events")))
                .unwrap_or_default();
            let failcnt = events
                .lines()
                .find_map(|l| l.strip_prefix("max ").and_then(|v| v.trim().parse().ok()))
                .unwrap_or(0);
            HugetlbStats { usage: num(format!("hugetlb.{size}.current")), max: 0, failcnt }
        } else {
            HugetlbStats {
                usage: num(format!("hugetlb.{size}.usage_in_bytes")),
                max: num(format!("hugetlb.{size}.max_usage_in_bytes")),
                failcnt: num(format!("hugetlb.{size}.failcnt")),
            }
        };
        out.insert(size.to_string(), stats);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugetlb_files_of_both_versions_parse() {
        let tmp = tempfile::tempdir().unwrap();
        let v1 = tmp.path().join("v1");
        std::fs::create_dir(&v1).unwrap();
        for (f, v) in [
            ("hugetlb.2MB.usage_in_bytes", "4096"),
            ("hugetlb.2MB.max_usage_in_bytes", "8192"),
            ("hugetlb.2MB.failcnt", "1"),
            ("hugetlb.2MB.rsvd.usage_in_bytes", "7"),
        ] {
            std::fs::write(v1.join(f), v).unwrap();
        }
        let s = hugetlb_stats(&v1, false);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s["2MB"], HugetlbStats { usage: 4096, max: 8192, failcnt: 1 });
        let v2 = tmp.path().join("v2");
        std::fs::create_dir(&v2).unwrap();
        for (f, v) in [
            ("hugetlb.1GB.current", "0"),
            ("hugetlb.1GB.events", "max 3\n"),
            ("hugetlb.1GB.rsvd.current", "0"),
        ] {
            std::fs::write(v2.join(f), v).unwrap();
        }
        let s = hugetlb_stats(&v2, true);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s["1GB"].failcnt, 3);
    }

    #[test]
    fn blkio_lines_of_both_versions_parse() {
        let v1 = parse_blkio_v1("8:0 Read 4096\n8:0 Write 512\nTotal 4608\n");
        assert_eq!(v1.len(), 2);
        assert_eq!(
            (v1[0].major, v1[0].minor, v1[0].op.as_str(), v1[0].value),
            (8, 0, "Read", 4096)
        );
        let (bytes, ios) =
            parse_io_stat("8:16 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(bytes.iter().map(|e| e.value).collect::<Vec<_>>(), [10, 20]);
        assert_eq!(ios[1].op, "Write");
        assert_eq!(ios[1].minor, 16);
    }
}
