//! The cgroup v2 driver: one unified hierarchy, the container's cgroup one directory in it
//! (kernel Documentation/admin-guide/cgroup-v2.rst). Controllers are enabled down the path
//! through each parent's `cgroup.subtree_control`; devices are a BPF filter ([`super::devices`]);
//! freezing is `cgroup.freeze`; `linux.resources.unified` is written through as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::stats::{MemoryEntry, MemoryStats, PidsStats, Stats};
use super::{
    devices, is_cgroupfs, join_inner, mkdir_all, read, read_keyed, read_pids, read_u64, write,
    CgroupsPath, Error, OwnCgroups, Result,
};

#[derive(Debug)]
pub(crate) struct Manager {
    root: PathBuf,
    inner: String,
    path: PathBuf,
    /// Run by an unprivileged user in a delegated subtree: no device filter (see `apply`).
    rootless: bool,
}

fn unsupported(resource: &str, reason: &str) -> Error {
    Error::Unsupported { resource: resource.into(), version: "v2", reason: reason.into() }
}

impl Manager {
    pub(crate) fn new(root: &Path, path: &CgroupsPath, own: &OwnCgroups) -> Self {
        let inner = path.resolve(own.v2());
        Manager { root: root.to_path_buf(), path: join_inner(root, &inner), inner, rootless: false }
    }

    pub(crate) fn from_parts(root: &Path, inner: &str, path: PathBuf, rootless: bool) -> Self {
        Manager { root: root.to_path_buf(), inner: inner.to_string(), path, rootless }
    }

    pub(crate) fn with_rootless(mut self, rootless: bool) -> Self {
        self.rootless = rootless;
        self
    }

    pub(crate) fn rootless(&self) -> bool {
        self.rootless
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn inner_path(&self) -> &str {
        &self.inner
    }

    pub(crate) fn unwritable_reason(&self) -> Option<String> {
        if super::writable(&self.path) {
            None
        } else {
            Some(format!(
                "{} is not writable (no delegated cgroup v2 subtree)",
                self.path.display()
            ))
        }
    }

    pub(crate) fn create(&self) -> Result<()> {
        self.create_with(true)
    }

    /// Creates the cgroup; with `strict` false (the cgroup2 side of a hybrid host, which only
    /// carries a few controllers) a parent that refuses to enable controllers — it holds
    /// processes itself, which cgroup v2 forbids for a parent with controllers — is left as
    /// it is, and a limit that needs one of them then fails naming it.
    pub(crate) fn create_with(&self, strict: bool) -> Result<()> {
        if self.inner == "/" {
            return Err(Error::InvalidPath {
                path: self.inner.clone(),
                reason: "a container's cgroup cannot be the root cgroup".into(),
            });
        }
        mkdir_all(&self.path)?;
        // Enable every available controller on the way down, so the container's cgroup has
        // the files for its limits. A level without cgroup.controllers (only in a fake tree)
        // offers what its parent enabled.
        let rel = self.path.strip_prefix(&self.root).unwrap_or(Path::new(""));
        let mut level = self.root.clone();
        let mut offered = read(&level, "cgroup.controllers").unwrap_or_default();
        let real = super::is_cgroupfs(&self.root);
        for component in rel.components() {
            let available = read(&level, "cgroup.controllers").unwrap_or(offered.clone());
            let enabled = read(&level, "cgroup.subtree_control").unwrap_or_default();
            let enable: Vec<String> = available
                .split_whitespace()
                .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
                .map(|c| format!("+{c}"))
                .collect();
            if enable.is_empty() && real {
                // Another runtime may be enabling these controllers right now: the kernel
                // lists them in subtree_control before it has made their files in every
                // child (cgroup_subtree_control_write updates the mask, then populates under
                // cgroup_mutex), so a limit written now would find no file. A no-op write
                // takes the same mutex and returns once that is done. Where this user may
                // not write (a delegated subtree's parents), it is simply refused.
                if let Some(first) = enabled.split_whitespace().next() {
                    let _ = write(&level, "cgroup.subtree_control", &format!("+{first}"));
                }
            } else if !enable.is_empty() {
                match write(&level, "cgroup.subtree_control", &enable.join(" ")) {
                    Ok(()) => {}
                    Err(e) if !strict => {
                        tracing::debug!(?level, error = %e, "controllers not enabled");
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            offered = available;
            level = level.join(component);
        }
        tracing::debug!(path = ?self.path, "created v2 cgroup");
        Ok(())
    }

    /// Whether the container's cgroup has `controller` enabled (cgroup.controllers).
    pub(crate) fn offers(&self, controller: &str) -> bool {
        read(&self.path, "cgroup.controllers")
            .map(|t| t.split_whitespace().any(|c| c == controller))
            .unwrap_or(false)
    }

    /// The container's cgroup must offer `controller` for `resource` to be written.
    fn need(&self, controller: &str, resource: &str) -> Result<()> {
        // A fake tree may lack cgroup.controllers; the files' presence is checked on write.
        match read(&self.path, "cgroup.controllers") {
            Ok(text) if !text.split_whitespace().any(|c| c == controller) => {
                Err(Error::ControllerMissing {
                    resource: resource.into(),
                    controller: controller.into(),
                    root: self.root.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            self.apply_memory(m)?;
        }
        if let Some(c) = r.cpu() {
            self.apply_cpu(c)?;
        }
        if let Some(p) = r.pids() {
            self.need("pids", "pids.limit")?;
            let value = if p.limit() > 0 { p.limit().to_string() } else { "max".to_string() };
            write(&self.path, "pids.max", &value)?;
        }
        if let Some(b) = r.block_io() {
            self.apply_io(b)?;
        }
        for limit in r.hugepage_limits().iter().flatten() {
            self.need("hugetlb", &format!("hugepageLimits {}", limit.page_size()))?;
            let file = format!("hugetlb.{}.max", limit.page_size());
            write(&self.path, &file, &limit.limit().to_string())?;
        }
        if let Some(n) = r.network() {
            if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(unsupported(
                    "network.classID/priorities",
                    "net_cls and net_prio exist only in cgroup v1",
                ));
            }
        }
        if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(Error::NotSupported { what: "rdma limits".into() });
        }
        if let Some(unified) = r.unified() {
            let sorted: BTreeMap<_, _> = unified.iter().collect();
            for (key, value) in sorted {
                if key.contains('/') || key.starts_with('.') || key.is_empty() {
                    return Err(Error::InvalidValue {
                        resource: format!("unified {key:?}"),
                        reason: "a key is a file name in the container's cgroup".into(),
                    });
                }
                if !self.path.join(key).exists() {
                    let controller = key.split('.').next().unwrap_or(key);
                    return Err(Error::ControllerMissing {
                        resource: format!("unified {key:?}"),
                        controller: controller.into(),
                        root: self.root.clone(),
                    });
                }
                write(&self.path, key, value)?;
            }
        }
        if let Some(rules) = r.devices().as_ref().filter(|d| !d.is_empty()) {
            if self.rootless {
                // Loading a device filter needs CAP_SYS_ADMIN, which a rootless runtime lacks;
                // its container lives in a user namespace, where mknod is refused and the only
                // device nodes are the ones the runtime bind-mounts, so the list holds anyway
                // (runc and crun skip the filter the same way).
                devices::program(rules)?;
                tracing::debug!(path = ?self.path, "rootless: no device filter");
            } else if is_cgroupfs(&self.path) {
                devices::attach(&self.path, rules)?;
            } else {
                // A fake tree cannot hold a BPF program; the rules are still checked.
                devices::program(rules)?;
                tracing::debug!(path = ?self.path, "not cgroupfs: device filter not attached");
            }
        }
        Ok(())
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<()> {
        if m.kernel().is_some() {
            return Err(unsupported("memory.kernel", "kernel memory is not limited separately"));
        }
        if m.kernel_tcp().is_some() {
            return Err(unsupported("memory.kernelTCP", "kernel memory is not limited separately"));
        }
        if m.swappiness().is_some() {
            return Err(unsupported("memory.swappiness", "there is no per-cgroup swappiness"));
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(unsupported(
                "memory.disableOOMKiller",
                "the OOM killer cannot be disabled",
            ));
        }
        let any = m.limit().is_some() || m.reservation().is_some() || m.swap().is_some();
        if !any {
            return Ok(());
        }
        self.need("memory", "memory")?;
        if let Some(limit) = m.limit() {
            write(&self.path, "memory.max", &max_or(limit))?;
        }
        // A swap of 0 means "not set", as in runc; unlimited memory without a word on swap
        // means unlimited swap too.
        let swap = match (m.swap().filter(|&s| s != 0), m.limit()) {
            (None, Some(-1)) if self.path.join("memory.swap.max").exists() => Some(-1),
            (swap, _) => swap,
        };
        if let Some(swap) = swap {
            // OCI's swap is memory plus swap; memory.swap.max is the swap alone.
            let value = match (swap, m.limit()) {
                (-1, _) => "max".to_string(),
                (_, None | Some(0) | Some(-1)) => {
                    return Err(Error::InvalidValue {
                        resource: "memory.swap".into(),
                        reason: "a swap limit needs a memory limit on cgroup v2".into(),
                    })
                }
                (s, Some(l)) if s < l => {
                    return Err(Error::InvalidValue {
                        resource: "memory.swap".into(),
                        reason: format!("memory+swap {s} is below the memory limit {l}"),
                    })
                }
                (s, Some(l)) => (s - l).to_string(),
            };
            if !self.path.join("memory.swap.max").exists() {
                return Err(unsupported("memory.swap", "the kernel has no memory.swap.max"));
            }
            write(&self.path, "memory.swap.max", &value)?;
        }
        if let Some(v) = m.reservation() {
            write(&self.path, "memory.low", &max_or(v))?;
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu) -> Result<()> {
        if c.realtime_period().is_some() || c.realtime_runtime().is_some() {
            return Err(unsupported("cpu.realtimeRuntime/Period", "no realtime group scheduling"));
        }
        if let Some(shares) = c.shares().filter(|&s| s > 0) {
            self.need("cpu", "cpu.shares")?;
            write(&self.path, "cpu.weight", &shares_to_weight(shares).to_string())?;
        }
        match (c.quota(), c.period()) {
            (None, None) => {}
            (quota, period) => {
                self.need("cpu", "cpu.quota")?;
                let quota = match quota {
                    Some(q) if q > 0 => q.to_string(),
                    Some(_) => "max".to_string(),
                    None => read(&self.path, "cpu.max")?
                        .split_whitespace()
                        .next()
                        .unwrap_or("max")
                        .to_string(),
                };
                let value = match period {
                    Some(p) => format!("{quota} {p}"),
                    None => quota,
                };
                write(&self.path, "cpu.max", &value)?;
            }
        }
        if let Some(v) = c.burst() {
            write(&self.path, "cpu.max.burst", &v.to_string())?;
        }
        if let Some(v) = c.idle() {
            write(&self.path, "cpu.idle", &v.to_string())?;
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            self.need("cpuset", "cpu.cpus")?;
            write(&self.path, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            self.need("cpuset", "cpu.mems")?;
            write(&self.path, "cpuset.mems", mems)?;
        }
        Ok(())
    }

    fn apply_io(&self, b: &LinuxBlockIo) -> Result<()> {
        if b.leaf_weight().is_some() {
            return Err(unsupported("blockIO.leafWeight", "there are no leaf weights"));
        }
        let bfq = self.path.join("io.bfq.weight").exists();
        let wants_weight = b.weight().is_some()
            || b.weight_device().iter().flatten().any(|d| d.weight().is_some());
        if wants_weight && !bfq && !self.path.join("io.weight").exists() {
            self.need("io", "blockIO.weight")?;
            return Err(unsupported(
                "blockIO.weight",
                "the I/O schedulers here have no weights (no io.weight or io.bfq.weight)",
            ));
        }
        if let Some(w) = b.weight() {
            self.need("io", "blockIO.weight")?;
            if bfq {
                write(&self.path, "io.bfq.weight", &w.to_string())?;
            } else {
                write(&self.path, "io.weight", &format!("default {}", blkio_to_io_weight(w)))?;
            }
        }
        for d in b.weight_device().iter().flatten() {
            if d.leaf_weight().is_some() {
                return Err(unsupported("blockIO.weightDevice.leafWeight", "no leaf weights"));
            }
            if let Some(w) = d.weight() {
                self.need("io", "blockIO.weightDevice")?;
                let (file, w) = if bfq {
                    ("io.bfq.weight", u64::from(w))
                } else {
                    ("io.weight", blkio_to_io_weight(w))
                };
                write(&self.path, file, &format!("{}:{} {w}", d.major(), d.minor()))?;
            }
        }
        let throttles = [
            ("rbps", b.throttle_read_bps_device()),
            ("wbps", b.throttle_write_bps_device()),
            ("riops", b.throttle_read_iops_device()),
            ("wiops", b.throttle_write_iops_device()),
        ];
        for (key, devices) in throttles {
            for d in devices.iter().flatten() {
                self.need("io", "blockIO.throttle")?;
                let rate = if d.rate() == 0 { "max".to_string() } else { d.rate().to_string() };
                write(&self.path, "io.max", &format!("{}:{} {key}={rate}", d.major(), d.minor()))?;
            }
        }
        Ok(())
    }

    pub(crate) fn add_pid(&self, pid: i32) -> Result<()> {
        write(&self.path, "cgroup.procs", &pid.to_string())
    }

    pub(crate) fn set_frozen(&self, frozen: bool) -> Result<()> {
        write(&self.path, "cgroup.freeze", if frozen { "1" } else { "0" })?;
        let want = if frozen { 1 } else { 0 };
        // cgroup.events says `frozen 1` once every task has stopped.
        for _ in 0..1000 {
            match read_keyed(&self.path, "cgroup.events") {
                Ok(events) if events.get("frozen").copied().unwrap_or(0) != want => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(_) => return Ok(()),
                Err(_) if !is_cgroupfs(&self.path) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Err(Error::FreezeTimeout {
            path: self.path.clone(),
            state: if frozen { "frozen" } else { "thawed" },
        })
    }

    pub(crate) fn stats(&self) -> Result<Stats> {
        let mut stats = Stats::default();
        let p = &self.path;
        if p.join("memory.current").exists() {
            let raw: BTreeMap<String, u64> = read_keyed(p, "memory.stat")?.into_iter().collect();
            let events = read_keyed(p, "memory.events").unwrap_or_default();
            stats.memory = MemoryStats {
                cache: raw.get("file").copied().unwrap_or(0),
                usage: MemoryEntry {
                    limit: read_u64(p, "memory.max")?,
                    usage: read_u64(p, "memory.current")?,
                    max: read_u64(p, "memory.peak").unwrap_or(0),
                    failcnt: events.get("max").copied().unwrap_or(0),
                },
                swap: if p.join("memory.swap.current").exists() {
                    MemoryEntry {
                        limit: read_u64(p, "memory.swap.max")?,
                        usage: read_u64(p, "memory.swap.current")?,
                        max: read_u64(p, "memory.swap.peak").unwrap_or(0),
                        failcnt: 0,
                    }
                } else {
                    MemoryEntry::default()
                },
                raw,
            };
        }
        if let Ok(cpu) = read_keyed(p, "cpu.stat") {
            stats.cpu.usage.total = cpu.get("usage_usec").copied().unwrap_or(0) * 1000;
            stats.cpu.usage.user = cpu.get("user_usec").copied().unwrap_or(0) * 1000;
            stats.cpu.usage.kernel = cpu.get("system_usec").copied().unwrap_or(0) * 1000;
            super::v1::throttling(&mut stats.cpu, &cpu);
        }
        if let Ok(text) = read(p, "io.stat") {
            let (bytes, ios) = super::stats::parse_io_stat(&text);
            stats.blkio.io_service_bytes_recursive = bytes;
            stats.blkio.io_serviced_recursive = ios;
        }
        stats.hugetlb = super::stats::hugetlb_stats(p, true);
        if p.join("pids.current").exists() {
            let limit = read_u64(p, "pids.max")?;
            stats.pids = PidsStats {
                current: read_u64(p, "pids.current")?,
                limit: if limit == u64::MAX { 0 } else { limit },
            };
        }
        Ok(stats)
    }

    pub(crate) fn oom_kill_count(&self) -> Result<u64> {
        Ok(read_keyed(&self.path, "memory.events")?.get("oom_kill").copied().unwrap_or(0))
    }

    pub(crate) fn pids(&self) -> Result<Vec<i32>> {
        read_pids(&self.path)
    }

    pub(crate) fn destroy(&self) -> Result<()> {
        // The usual case, a container whose processes are gone: one rmdir.
        if super::rmdir_empty(&self.path) {
            return Ok(());
        }
        if !read_pids(&self.path)?.is_empty() {
            if self.path.join("cgroup.kill").exists() {
                // Linux 5.14+: the kernel kills the whole subtree, forks included.
                write(&self.path, "cgroup.kill", "1")?;
            } else {
                self.set_frozen(true)?;
                super::kill_all(&read_pids(&self.path)?, &self.path)?;
                self.set_frozen(false)?;
            }
            super::wait_empty(&self.path)?;
        }
        super::remove_tree(&self.path)
    }
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), the mapping runc and crun use.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) to io.weight (1..10000), linearly.
pub(crate) fn blkio_to_io_weight(weight: u16) -> u64 {
    let w = u64::from(weight.clamp(10, 1000));
    1 + ((w - 10) * 9999) / 990
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{content, files, resources};
    use super::super::{ManagerBuilder, Mode};
    use super::*;

    const ALL: &str = "cpuset cpu io memory hugetlb pids";

    fn fake_v2(root: &Path) {
        files(root, &[("cgroup.controllers", ALL), ("cgroup.subtree_control", "")]);
    }

    fn manager(root: &Path, path: &str) -> super::super::Manager {
        ManagerBuilder::new("c1")
            .with_root(root)
            .with_cgroups_path(Some(path))
            .with_own_cgroup("0::/user.slice/runtime\n")
            .build()
            .unwrap()
    }

    #[test]
    fn relative_path_goes_below_own_cgroup_and_enables_controllers() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v2(tmp.path());
        let m = manager(tmp.path(), "berth/c1");
        assert_eq!(m.mode(), Mode::Unified);
        assert_eq!(m.inner_path().unwrap(), "/user.slice/runtime/berth/c1");
        m.create().unwrap();
        let expected = "+cpuset +cpu +io +memory +hugetlb +pids";
        assert_eq!(content(tmp.path(), "cgroup.subtree_control"), expected);
        assert_eq!(
            content(tmp.path(), "user.slice/runtime/berth/cgroup.subtree_control"),
            expected
        );
        assert!(!tmp.path().join("user.slice/runtime/berth/c1/cgroup.subtree_control").exists());
        let again = super::super::Manager::from_state(&m.state());
        assert_eq!(again.paths(), vec![tmp.path().join("user.slice/runtime/berth/c1")]);
        assert_eq!(again.version(), Some(2));
    }

    #[test]
    fn apply_writes_v2_files_with_converted_values() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v2(tmp.path());
        let m = manager(tmp.path(), "/c1");
        m.create().unwrap();
        let dir = tmp.path().join("c1");
        files(
            &dir,
            &[
                ("memory.swap.max", "max"),
                ("memory.high", "max"),
                ("cpu.max", "max 100000"),
                ("io.weight", "default 100"),
            ],
        );
        let r = resources(
            r#"{
            "memory": {"limit": 67108864, "reservation": 33554432, "swap": 100663296},
            "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 0},
            "blockIO": {"weight": 500,
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "unified": {"memory.high": "50000000"},
            "devices": [{"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
        }"#,
        );
        m.apply(&r).unwrap();
        assert_eq!(content(&dir, "memory.max"), "67108864");
        assert_eq!(content(&dir, "memory.low"), "33554432");
        assert_eq!(content(&dir, "memory.swap.max"), "33554432");
        assert_eq!(content(&dir, "cpu.weight"), "39");
        assert_eq!(content(&dir, "cpu.max"), "20000 100000");
        assert_eq!(content(&dir, "cpuset.cpus"), "0");
        assert_eq!(content(&dir, "pids.max"), "max");
        assert_eq!(content(&dir, "io.weight"), "default 4950");
        assert_eq!(content(&dir, "io.max"), "8:0 rbps=1048576");
        assert_eq!(content(&dir, "hugetlb.2MB.max"), "4194304");
        assert_eq!(content(&dir, "memory.high"), "50000000");
        // Period alone keeps the quota already set.
        m.apply(&resources(r#"{"cpu": {"period": 50000}}"#)).unwrap();
        assert_eq!(content(&dir, "cpu.max"), "20000 50000");
    }

    #[test]
    fn swap_zero_is_unset_and_unlimited_memory_lifts_swap() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v2(tmp.path());
        let m = manager(tmp.path(), "/c1");
        m.create().unwrap();
        let dir = tmp.path().join("c1");
        files(&dir, &[("memory.swap.max", "untouched")]);
        m.apply(&resources(r#"{"memory": {"limit": 1048576, "swap": 0}}"#)).unwrap();
        assert_eq!(content(&dir, "memory.swap.max"), "untouched");
        m.apply(&resources(r#"{"memory": {"limit": -1}}"#)).unwrap();
        assert_eq!(content(&dir, "memory.max"), "max");
        assert_eq!(content(&dir, "memory.swap.max"), "max");
    }

    #[test]
    fn v1_only_options_are_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v2(tmp.path());
        let m = manager(tmp.path(), "/c1");
        m.create().unwrap();
        for (json, name) in [
            (r#"{"memory": {"swappiness": 10}}"#, "memory.swappiness"),
            (r#"{"memory": {"kernel": 1000000}}"#, "memory.kernel"),
            (r#"{"cpu": {"realtimeRuntime": 100}}"#, "cpu.realtime"),
            (r#"{"network": {"classID": 1}}"#, "network.classID"),
            (r#"{"memory": {"swap": 1000000}}"#, "memory.swap"),
            (r#"{"unified": {"../x": "1"}}"#, "unified"),
            (r#"{"unified": {"io.latency": "1"}}"#, "io.latency"),
        ] {
            let err = m.apply(&resources(json)).unwrap_err();
            assert!(err.to_string().contains(name), "{json}: {err}");
        }
    }

    #[test]
    fn controller_not_offered_to_the_cgroup_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v2(tmp.path());
        let m = manager(tmp.path(), "/c1");
        m.create().unwrap();
        files(&tmp.path().join("c1"), &[("cgroup.controllers", "hugetlb")]);
        let err = m.apply(&resources(r#"{"pids": {"limit": 10}}"#)).unwrap_err();
        assert!(matches!(err, Error::ControllerMissing { .. }), "{err}");
        assert!(err.to_string().contains("pids.limit"), "{err}");
    }

    #[test]
    fn stats_and_oom_kills_from_v2_files() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v2(tmp.path());
        let m = manager(tmp.path(), "/c1");
        m.create().unwrap();
        files(
            &tmp.path().join("c1"),
            &[
                ("memory.current", "4096\n"),
                ("memory.max", "max\n"),
                ("memory.peak", "8192\n"),
                ("memory.stat", "anon 100\nfile 300\n"),
                ("memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\n"),
                (
                    "cpu.stat",
                    "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 3\n\
                     nr_throttled 1\nthrottled_usec 5\n",
                ),
                ("pids.current", "2\n"),
                ("pids.max", "100\n"),
            ],
        );
        let s = m.stats().unwrap();
        assert_eq!(s.memory.usage.usage, 4096);
        assert_eq!(s.memory.usage.limit, u64::MAX);
        assert_eq!(s.memory.usage.max, 8192);
        assert_eq!(s.memory.cache, 300);
        assert_eq!(s.memory.usage.failcnt, 7);
        assert_eq!(s.cpu.usage.total, 10_000);
        assert_eq!(s.cpu.usage.user, 6_000);
        assert_eq!(s.cpu.throttling.throttled_time, 5_000);
        assert_eq!(s.pids.limit, 100);
        assert_eq!(m.oom_kill_count().unwrap(), 1);
    }

    #[test]
    fn freeze_writes_cgroup_freeze() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v2(tmp.path());
        let m = manager(tmp.path(), "/c1");
        m.create().unwrap();
        m.freeze().unwrap();
        assert_eq!(content(&tmp.path().join("c1"), "cgroup.freeze"), "1");
        m.thaw().unwrap();
        assert_eq!(content(&tmp.path().join("c1"), "cgroup.freeze"), "0");
    }

    #[test]
    fn weight_conversions_match_the_documented_ranges() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }
}
