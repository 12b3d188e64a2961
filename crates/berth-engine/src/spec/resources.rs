//! The resource flags of `run`/`create` — `-m/--memory`, `--memory-swap`,
//! `--memory-reservation`, `--cpus`, `--cpu-shares`, `--cpuset-cpus`, `--pids-limit`,
//! `--device`, `--oom-score-adj`, `--shm-size` — parsed and validated, and written into the
//! runtime spec: `linux.resources` (OCI runtime spec, config-linux.md "Control groups"),
//! `linux.devices`, `process.oomScoreAdj` and the size of the /dev/shm tmpfs.
//!
//! Sizes take Docker's units (`b`, `k`, `m`, `g`, `t`, `p`, powers of 1024, an optional `b`
//! or `ib` after the unit). Rootless, berth has no cgroup of its own on this kind of host (cgroup
//! v1 delegates nothing to an unprivileged user; berth does not use a delegated v2 subtree
//! yet), so a cgroup limit asked for there is refused with that reason — never dropped.
//!
//! The parsers here are also what `berth update` uses, so a value means the same at create and
//! at update.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::generate::{HostInfo, DEFAULT_PIDS_LIMIT};
use super::RunOptions;

/// Errors of the resource flags; each names the flag and the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("invalid {flag} {value:?}: {reason}")]
    BadValue { flag: &'static str, value: String, reason: String },
    #[error("invalid --device {value:?}: {reason}")]
    BadDevice { value: String, reason: String },
    #[error("--device {value:?}: the host device {path} cannot be used")]
    StatDevice {
        value: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{flag} cannot be applied: berth runs rootless and {reason}, so there is no cgroup to \
         set the limit in; run berth as root to use resource limits"
    )]
    RootlessNoCgroup { flag: &'static str, reason: String },
    #[error("{what} is not supported yet")]
    NotSupportedYet { what: String },
}

/// The resource flags as the user typed them (kept with the container record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceOptions {
    /// `-m, --memory SIZE`
    pub memory: Option<String>,
    /// `--memory-swap SIZE|-1`: memory plus swap.
    pub memory_swap: Option<String>,
    /// `--memory-reservation SIZE`: the soft limit.
    pub memory_reservation: Option<String>,
    /// `--cpus N` (a decimal: 1.5 is one and a half CPUs).
    pub cpus: Option<String>,
    /// `--cpu-shares N`: the relative weight.
    pub cpu_shares: Option<u64>,
    /// `--cpuset-cpus LIST` (`0-1,3`).
    pub cpuset_cpus: Option<String>,
    /// `--pids-limit N` (`-1` or `0`: unlimited; default 2048 where a cgroup exists).
    pub pids_limit: Option<i64>,
    /// `--device HOST[:CONTAINER][:PERMISSIONS]`
    pub devices: Vec<String>,
    /// `--oom-score-adj N` (-1000 to 1000).
    pub oom_score_adj: Option<i32>,
    /// `--shm-size SIZE` (default 64m).
    pub shm_size: Option<String>,
}

/// Docker's smallest memory limit: below it a container cannot even start its process.
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The CFS period berth uses for `--cpus`, as Docker and Podman: 100 ms.
pub const CPU_PERIOD: u64 = 100_000;

/// The resources asked for, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub memory: Option<i64>,
    /// memory+swap; -1 unlimited.
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    /// The CFS quota for `--cpus`, per [`CPU_PERIOD`].
    pub cpu_quota: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    /// `None`: not given; `Some(-1)`: unlimited.
    pub pids_limit: Option<i64>,
    pub devices: Vec<Device>,
    pub oom_score_adj: Option<i32>,
    pub shm_size: Option<i64>,
}

/// One `--device`, resolved against the host's /dev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub host_path: PathBuf,
    pub container_path: String,
    /// `c` or `b`.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// A subset of `rwm`.
    pub access: String,
}

/// Parses a size with Docker's units (`RAMInBytes`: binary multiples), e.g. `32m`, `1.5g`,
/// `512MiB`, `4096`.
pub fn parse_size(flag: &'static str, value: &str) -> Result<i64, ResourceError> {
    let bad = |reason: &str| ResourceError::BadValue {
        flag,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let text = value.trim();
    let digits_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(bad("expected a number with an optional unit (b, k, m, g, t, p)"));
    }
    let number: f64 = number.parse().map_err(|_| bad("not a number"))?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix("ib").or_else(|| unit.strip_suffix('b')).unwrap_or(&unit);
    let multiplier: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0f64.powi(4),
        "p" => 1024.0f64.powi(5),
        _ => return Err(bad("unknown unit: use b, k, m, g, t or p")),
    };
    let bytes = number * multiplier;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(bad("too large"));
    }
    Ok(bytes as i64)
}

/// Parses `--cpus`: a positive decimal, at most the host's CPU count; returns the CFS quota.
pub fn parse_cpus(value: &str, host_cpus: usize) -> Result<i64, ResourceError> {
    let bad = |reason: String| ResourceError::BadValue {
        flag: "--cpus",
        value: value.to_owned(),
        reason,
    };
    let cpus: f64 = value.trim().parse().map_err(|_| bad("not a decimal number".to_owned()))?;
    if !cpus.is_finite() || cpus <= 0.0 {
        return Err(bad("the number of CPUs must be above 0".to_owned()));
    }
    if cpus > host_cpus as f64 {
        return Err(bad(format!("this host has only {host_cpus} CPUs")));
    }
    let quota = (cpus * CPU_PERIOD as f64).round() as i64;
    // The kernel's smallest quota is 1 ms.
    Ok(quota.max(1000))
}

/// Checks a cpuset list (`0-1,3`) against the host's CPU count.
pub fn parse_cpuset(value: &str, host_cpus: usize) -> Result<String, ResourceError> {
    let bad = |reason: String| ResourceError::BadValue {
        flag: "--cpuset-cpus",
        value: value.to_owned(),
        reason,
    };
    if value.trim().is_empty() {
        return Err(bad("the list is empty".to_owned()));
    }
    for part in value.split(',') {
        let (low, high) = part.split_once('-').unwrap_or((part, part));
        let low: usize = low
            .trim()
            .parse()
            .map_err(|_| bad(format!("{part:?} is not a CPU number or range")))?;
        let high: usize = high
            .trim()
            .parse()
            .map_err(|_| bad(format!("{part:?} is not a CPU number or range")))?;
        if low > high {
            return Err(bad(format!("the range {part:?} runs backwards")));
        }
        if high >= host_cpus {
            return Err(bad(format!(
                "CPU {high} does not exist (this host has CPUs 0-{})",
                host_cpus - 1
            )));
        }
    }
    Ok(value.replace(' ', ""))
}

/// Parses `--pids-limit`: `-1` and `0` mean unlimited, as in Podman.
pub fn parse_pids_limit(value: i64) -> Result<i64, ResourceError> {
    match value {
        -1 | 0 => Ok(-1),
        n if n > 0 => Ok(n),
        n => Err(ResourceError::BadValue {
            flag: "--pids-limit",
            value: n.to_string(),
            reason: "use a positive number, or -1 for unlimited".to_owned(),
        }),
    }
}

fn is_access(s: &str) -> bool {
    !s.is_empty() && s.len() <= 3 && s.chars().all(|c| "rwm".contains(c))
}

/// The parts of a `--device` value: (host path, container path, permissions), unchecked.
pub fn split_device(value: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = value.split(':').collect();
    match parts.as_slice() {
        [host] => Some((*host, *host, "rwm")),
        [host, second] if is_access(second) => Some((*host, *host, *second)),
        [host, container] => Some((*host, *container, "rwm")),
        [host, container, access] => Some((*host, *container, *access)),
        _ => None,
    }
}

/// Parses one `--device HOST[:CONTAINER][:PERMISSIONS]`, reading the host device under
/// `dev_root` (the host's `/`; tests pass a directory of their own).
pub fn parse_device(value: &str, dev_root: &Path) -> Result<Device, ResourceError> {
    let bad = |reason: &str| ResourceError::BadDevice {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let Some((host, container, access)) = split_device(value) else {
        return Err(bad("expected HOST[:CONTAINER][:PERMISSIONS]"));
    };
    if !is_access(access) {
        return Err(bad("the permissions are a combination of r, w and m"));
    }
    if !host.starts_with('/') || !container.starts_with('/') {
        return Err(bad("device paths must be absolute"));
    }
    let host_path = dev_root.join(host.trim_start_matches('/'));
    let meta = std::fs::metadata(&host_path).map_err(|source| ResourceError::StatDevice {
        value: value.to_owned(),
        path: PathBuf::from(host),
        source,
    })?;
    let kind = if meta.file_type().is_char_device() {
        'c'
    } else if meta.file_type().is_block_device() {
        'b'
    } else if meta.is_dir() {
        return Err(ResourceError::NotSupportedYet {
            what: format!("--device {value} (a directory of devices)"),
        });
    } else {
        return Err(bad("the host path is not a device node"));
    };
    let rdev = meta.rdev();
    let mut access_sorted = String::new();
    for c in ['r', 'w', 'm'] {
        if access.contains(c) {
            access_sorted.push(c);
        }
    }
    Ok(Device {
        host_path: PathBuf::from(host),
        container_path: super::options::normalize_destination(container),
        kind,
        major: rustix::fs::major(rdev).into(),
        minor: rustix::fs::minor(rdev).into(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        access: access_sorted,
    })
}

/// The number of CPUs this host has online.
fn host_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

impl ResourceOptions {
    /// Whether any flag was given that needs a cgroup.
    fn cgroup_flag(&self) -> Option<&'static str> {
        [
            (self.memory.is_some(), "--memory"),
            (self.memory_swap.is_some(), "--memory-swap"),
            (self.memory_reservation.is_some(), "--memory-reservation"),
            (self.cpus.is_some(), "--cpus"),
            (self.cpu_shares.is_some(), "--cpu-shares"),
            (self.cpuset_cpus.is_some(), "--cpuset-cpus"),
            (self.pids_limit.is_some_and(|p| p > 0), "--pids-limit"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// Validates every flag, in the order Podman lists them; the first bad one is the error.
    pub fn parse(&self, host: &HostInfo) -> Result<Resources, ResourceError> {
        let size = |flag, value: &Option<String>| -> Result<Option<i64>, ResourceError> {
            value.as_deref().map(|v| parse_size(flag, v)).transpose()
        };
        let memory = size("--memory", &self.memory)?;
        if let Some(m) = memory {
            if m < MIN_MEMORY {
                return Err(ResourceError::BadValue {
                    flag: "--memory",
                    value: self.memory.clone().unwrap_or_default(),
                    reason: "the minimum memory limit is 6 MiB".to_owned(),
                });
            }
        }
        let memory_swap = match self.memory_swap.as_deref() {
            None => None,
            Some("-1") => Some(-1),
            Some(v) => {
                let swap = parse_size("--memory-swap", v)?;
                let bad = |reason: &str| ResourceError::BadValue {
                    flag: "--memory-swap",
                    value: v.to_owned(),
                    reason: reason.to_owned(),
                };
                match memory {
                    None => return Err(bad("it needs --memory too")),
                    Some(m) if swap < m => {
                        return Err(bad("memory plus swap must not be below --memory"))
                    }
                    Some(_) => Some(swap),
                }
            }
        };
        let memory_reservation = size("--memory-reservation", &self.memory_reservation)?;
        if let (Some(r), Some(m)) = (memory_reservation, memory) {
            if r > m {
                return Err(ResourceError::BadValue {
                    flag: "--memory-reservation",
                    value: self.memory_reservation.clone().unwrap_or_default(),
                    reason: "the reservation must not be above --memory".to_owned(),
                });
            }
        }
        // Asked only when a flag needs it: it reads the cgroup's CPU quota files.
        let cpus = if self.cpus.is_some() || self.cpuset_cpus.is_some() { host_cpus() } else { 1 };
        let cpu_quota = self.cpus.as_deref().map(|c| parse_cpus(c, cpus)).transpose()?;
        if let Some(shares) = self.cpu_shares {
            if !(2..=262_144).contains(&shares) {
                return Err(ResourceError::BadValue {
                    flag: "--cpu-shares",
                    value: shares.to_string(),
                    reason: "the weight is between 2 and 262144".to_owned(),
                });
            }
        }
        let cpuset_cpus = self.cpuset_cpus.as_deref().map(|c| parse_cpuset(c, cpus)).transpose()?;
        let pids_limit = self.pids_limit.map(parse_pids_limit).transpose()?;
        let dev_root = host.dev_dir.parent().unwrap_or(Path::new("/"));
        let devices = self
            .devices
            .iter()
            .map(|d| parse_device(d, dev_root))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(adj) = self.oom_score_adj {
            if !(-1000..=1000).contains(&adj) {
                return Err(ResourceError::BadValue {
                    flag: "--oom-score-adj",
                    value: adj.to_string(),
                    reason: "the value is between -1000 and 1000".to_owned(),
                });
            }
        }
        let shm_size = size("--shm-size", &self.shm_size)?;
        if shm_size == Some(0) {
            return Err(ResourceError::BadValue {
                flag: "--shm-size",
                value: self.shm_size.clone().unwrap_or_default(),
                reason: "the size must be above 0".to_owned(),
            });
        }
        if host.rootless {
            if let Some(flag) = self.cgroup_flag() {
                return Err(ResourceError::RootlessNoCgroup {
                    flag,
                    reason: no_cgroup_reason(host.cgroup_v2),
                });
            }
        }
        Ok(Resources {
            memory,
            memory_swap,
            memory_reservation,
            cpu_quota,
            cpu_shares: self.cpu_shares,
            cpuset_cpus,
            pids_limit,
            devices,
            oom_score_adj: self.oom_score_adj,
            shm_size,
        })
    }
}

/// Whether /sys/fs/cgroup is a cgroup v2 hierarchy.
pub fn host_cgroup_v2() -> bool {
    // f_type's integer type differs between architectures, hence the casts.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs("/sys/fs/cgroup")
        .map(|s| s.f_type as i64 == libc::CGROUP2_SUPER_MAGIC as i64)
        .unwrap_or(false)
}

/// Why a rootless berth has no cgroup to put limits in (or read figures from), on a host
/// whose /sys/fs/cgroup is v2 or not.
pub fn no_cgroup_reason(cgroup_v2: bool) -> String {
    if !cgroup_v2 {
        return "this host has cgroup v1, which delegates no cgroup to an unprivileged user"
            .to_owned();
    }
    // cgroup v2: delegated means the user may write the cgroup it runs in (systemd's
    // user@.service delegates one; cgroups(7), "Cgroups v2 delegation").
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("0::").map(str::to_owned)));
    let Some(own) = own else {
        return "berth's own cgroup v2 cgroup is unknown (/proc/self/cgroup has no 0:: line)"
            .to_owned();
    };
    let dir = Path::new("/sys/fs/cgroup").join(own.trim_start_matches('/'));
    match rustix::fs::access(&dir, rustix::fs::Access::WRITE_OK) {
        Ok(()) => "berth does not use a delegated cgroup v2 subtree yet".to_owned(),
        Err(_) => format!(
            "this host delegates no cgroup v2 subtree to this user ({} is not writable)",
            dir.display()
        ),
    }
}

impl Resources {
    /// `linux.resources` fields for the cgroup limits (memory, cpu, pids), as the runtime spec
    /// spells them; also what `berth update` applies.
    pub fn cgroup_json(&self) -> Value {
        let mut out = json!({});
        let mut memory = json!({});
        if let Some(m) = self.memory {
            memory["limit"] = json!(m);
        }
        if let Some(s) = self.memory_swap {
            memory["swap"] = json!(s);
        }
        if let Some(r) = self.memory_reservation {
            memory["reservation"] = json!(r);
        }
        if memory.as_object().is_some_and(|m| !m.is_empty()) {
            out["memory"] = memory;
        }
        let mut cpu = json!({});
        if let Some(q) = self.cpu_quota {
            cpu["quota"] = json!(q);
            cpu["period"] = json!(CPU_PERIOD);
        }
        if let Some(s) = self.cpu_shares {
            cpu["shares"] = json!(s);
        }
        if let Some(c) = &self.cpuset_cpus {
            cpu["cpus"] = json!(c);
        }
        if cpu.as_object().is_some_and(|c| !c.is_empty()) {
            out["cpu"] = cpu;
        }
        if let Some(p) = self.pids_limit {
            out["pids"] = json!({"limit": p});
        }
        out
    }
}

/// Writes the flags of issue 7 into a generated spec (its JSON form, before it is typed):
/// the resource flags, the mounts [`crate::volumes::prepare`] resolved (each replacing a
/// default mount at the same destination) and `--init` ([`crate::init::apply`]). Called once
/// by [`super::generate::generate`] after the defaults are in place.
pub fn apply(spec: &mut Value, opts: &RunOptions, host: &HostInfo) -> Result<(), ResourceError> {
    apply_resources(spec, &opts.resources, host)?;
    let extra = crate::volumes::spec_mounts(&opts.volumes);
    if !extra.is_empty() {
        if !spec["mounts"].is_array() {
            spec["mounts"] = json!([]);
        }
        if let Some(mounts) = spec["mounts"].as_array_mut() {
            mounts.retain(|m| !extra.iter().any(|e| e["destination"] == m["destination"]));
            mounts.extend(extra);
        }
    }
    crate::init::apply(spec, &opts.init);
    Ok(())
}

fn apply_resources(
    spec: &mut Value,
    opts: &ResourceOptions,
    host: &HostInfo,
) -> Result<(), ResourceError> {
    let resources = opts.parse(host)?;
    let linux = &mut spec["linux"];

    if host.rootless {
        // No cgroup (see the module doc): the default pids limit has nowhere to go.
        if let Some(r) = linux.get_mut("resources").and_then(Value::as_object_mut) {
            r.remove("pids");
        }
    } else if linux.get("resources").is_none() {
        linux["resources"] = json!({"pids": {"limit": DEFAULT_PIDS_LIMIT}});
    }
    // Rootless, `parse` refused every limit; what is left (`--pids-limit -1`, unlimited)
    // needs no cgroup.
    if let (false, Some(fields)) = (host.rootless, resources.cgroup_json().as_object()) {
        for (key, value) in fields {
            linux["resources"][key] = value.clone();
        }
    }

    // Rootless, a user namespace may not mknod, and there is no device cgroup: the host's
    // node is bind-mounted at the container's path instead, as Podman does.
    if host.rootless {
        if !spec["mounts"].is_array() {
            spec["mounts"] = json!([]);
        }
        if let Some(mounts) = spec["mounts"].as_array_mut() {
            for device in &resources.devices {
                mounts.retain(|m| m["destination"] != json!(device.container_path));
                let mode = if device.access.contains('w') { "rw" } else { "ro" };
                mounts.push(json!({
                    "destination": device.container_path,
                    "type": "bind",
                    "source": device.host_path,
                    "options": ["bind", "rprivate", "nosuid", "noexec", mode],
                }));
            }
        }
    }
    let linux = &mut spec["linux"];
    for device in resources.devices.iter().filter(|_| !host.rootless) {
        if !linux["devices"].is_array() {
            linux["devices"] = json!([]);
        }
        if let Some(list) = linux["devices"].as_array_mut() {
            list.retain(|d| d["path"] != json!(device.container_path));
            list.push(json!({
                "path": device.container_path,
                "type": device.kind.to_string(),
                "major": device.major,
                "minor": device.minor,
                "fileMode": device.mode,
                "uid": device.uid,
                "gid": device.gid,
            }));
        }
        if !linux["resources"]["devices"].is_array() {
            linux["resources"]["devices"] = json!([]);
        }
        if let Some(rules) = linux["resources"]["devices"].as_array_mut() {
            rules.push(json!({
                "allow": true,
                "type": device.kind.to_string(),
                "major": device.major,
                "minor": device.minor,
                "access": device.access,
            }));
        }
    }

    if let Some(adj) = resources.oom_score_adj {
        spec["process"]["oomScoreAdj"] = json!(adj);
    }

    if let Some(size) = resources.shm_size {
        if let Some(mounts) = spec["mounts"].as_array_mut() {
            for mount in mounts.iter_mut().filter(|m| m["destination"] == "/dev/shm") {
                if let Some(options) = mount["options"].as_array_mut() {
                    options.retain(|o| !o.as_str().is_some_and(|o| o.starts_with("size=")));
                    options.push(json!(format!("size={size}")));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(rootless: bool) -> HostInfo {
        HostInfo {
            rootless,
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            nofile_hard: 1024,
            nproc_hard: 1024,
            cgroup_v2: false,
            hostname: "h".into(),
            dev_dir: PathBuf::from("/dev"),
        }
    }

    #[test]
    fn sizes_take_dockers_units() {
        assert_eq!(parse_size("-m", "32m").unwrap(), 32 << 20);
        assert_eq!(parse_size("-m", "32MiB").unwrap(), 32 << 20);
        assert_eq!(parse_size("-m", "1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("-m", "4096").unwrap(), 4096);
        assert_eq!(parse_size("-m", "2 kb").unwrap(), 2048);
        let err = parse_size("--memory", "12x").unwrap_err().to_string();
        assert_eq!(err, "invalid --memory \"12x\": unknown unit: use b, k, m, g, t or p");
        assert!(parse_size("-m", "m").is_err());
        assert!(parse_size("-m", "-5m").is_err());
    }

    #[test]
    fn cpus_must_be_positive_and_present() {
        assert_eq!(parse_cpus("1.5", 2).unwrap(), 150_000);
        assert_eq!(parse_cpus("0.001", 2).unwrap(), 1000);
        let err = parse_cpus("-1", 2).unwrap_err().to_string();
        assert_eq!(err, "invalid --cpus \"-1\": the number of CPUs must be above 0");
        assert!(parse_cpus("3", 2).unwrap_err().to_string().contains("only 2 CPUs"));
        assert!(parse_cpus("x", 2).is_err());
        assert_eq!(parse_cpuset("0-1", 2).unwrap(), "0-1");
        assert!(parse_cpuset("0,2", 2).unwrap_err().to_string().contains("CPU 2 does not exist"));
        assert!(parse_cpuset("1-0", 2).is_err());
    }

    #[test]
    fn devices_are_read_from_the_host() {
        let d = parse_device("/dev/null:/dev/mynull:rw", Path::new("/")).unwrap();
        assert_eq!((d.kind, d.major, d.minor), ('c', 1, 3));
        assert_eq!(d.container_path, "/dev/mynull");
        assert_eq!(d.access, "rw");
        let d = parse_device("/dev/zero:r", Path::new("/")).unwrap();
        assert_eq!((d.container_path.as_str(), d.access.as_str()), ("/dev/zero", "r"));
        let err = parse_device("/dev/nonexistent", Path::new("/")).unwrap_err().to_string();
        assert!(err.starts_with("--device \"/dev/nonexistent\": the host device"), "{err}");
        assert!(parse_device("/dev/null:/dev/x:rwx", Path::new("/")).is_err());
        assert!(parse_device("/etc/passwd", Path::new("/")).is_err());
    }

    #[test]
    fn flags_become_spec_fields() {
        let opts = ResourceOptions {
            memory: Some("32m".into()),
            memory_swap: Some("64m".into()),
            cpus: Some("0.5".into()),
            pids_limit: Some(10),
            devices: vec!["/dev/null:/dev/n2".into()],
            oom_score_adj: Some(100),
            shm_size: Some("1m".into()),
            ..Default::default()
        };
        let mut spec = json!({
            "process": {},
            "mounts": [{"destination": "/dev/shm", "options": ["nosuid", "size=65536k"]}],
            "linux": {"resources": {"pids": {"limit": 2048}}},
        });
        apply_resources(&mut spec, &opts, &host(false)).unwrap();
        let r = &spec["linux"]["resources"];
        assert_eq!(r["memory"], json!({"limit": 32 << 20, "swap": 64 << 20}));
        assert_eq!(r["cpu"], json!({"quota": 50_000, "period": 100_000}));
        assert_eq!(r["pids"]["limit"], 10);
        assert_eq!(r["devices"][0]["access"], "rwm");
        assert_eq!(spec["linux"]["devices"][0]["path"], "/dev/n2");
        assert_eq!(spec["process"]["oomScoreAdj"], 100);
        assert_eq!(spec["mounts"][0]["options"], json!(["nosuid", "size=1048576"]));
    }

    #[test]
    fn rootless_refuses_limits_and_says_why() {
        let opts = ResourceOptions { memory: Some("32m".into()), ..Default::default() };
        let err = opts.parse(&host(true)).unwrap_err().to_string();
        assert!(err.starts_with("--memory cannot be applied: berth runs rootless"), "{err}");
        assert!(err.contains("cgroup v1"), "{err}");
        // Without limits, the default pids limit is dropped rather than refused, and so is
        // an unlimited one.
        let mut spec = json!({"linux": {"resources": {"pids": {"limit": 2048}}}});
        apply(&mut spec, &RunOptions::default(), &host(true)).unwrap();
        assert!(spec["linux"]["resources"].get("pids").is_none());
        let unlimited = ResourceOptions { pids_limit: Some(-1), ..Default::default() };
        let mut spec = json!({"linux": {"resources": {"pids": {"limit": 2048}}}});
        apply_resources(&mut spec, &unlimited, &host(true)).unwrap();
        assert!(spec["linux"]["resources"].get("pids").is_none());
    }

    // Rootless, a device is a bind mount of the host's node: no mknod, no device cgroup.
    #[test]
    fn rootless_devices_are_bind_mounts() {
        let opts =
            ResourceOptions { devices: vec!["/dev/null:/dev/n2:r".into()], ..Default::default() };
        let mut spec = json!({"linux": {}, "mounts": []});
        apply_resources(&mut spec, &opts, &host(true)).unwrap();
        assert!(spec["linux"].get("devices").is_none());
        assert!(spec["linux"]["resources"].get("devices").is_none());
        let mount = &spec["mounts"][0];
        assert_eq!(
            (&mount["destination"], &mount["source"]),
            (&json!("/dev/n2"), &json!("/dev/null"))
        );
        assert!(mount["options"].as_array().unwrap().contains(&json!("ro")));
    }

    #[test]
    fn swap_and_reservation_are_checked_against_memory() {
        let opts = ResourceOptions { memory_swap: Some("64m".into()), ..Default::default() };
        assert!(opts.parse(&host(false)).unwrap_err().to_string().contains("needs --memory"));
        let opts = ResourceOptions {
            memory: Some("64m".into()),
            memory_swap: Some("32m".into()),
            ..Default::default()
        };
        assert!(opts.parse(&host(false)).is_err());
        let opts = ResourceOptions { memory: Some("1m".into()), ..Default::default() };
        assert!(opts.parse(&host(false)).unwrap_err().to_string().contains("6 MiB"));
    }
}
