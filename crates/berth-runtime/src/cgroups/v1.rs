//! The cgroup v1 driver: one directory per mounted hierarchy (`<root>/memory`, `<root>/cpu`,
//! or co-mounted ones such as `<root>/cpu,cpuacct`), the container's cgroup at the same inner
//! path in each. File names and semantics follow the kernel's
//! Documentation/admin-guide/cgroup-v1/*.rst.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxNetwork, LinuxResources,
};

use super::stats::{CpuStats, MemoryEntry, MemoryStats, PidsStats, Stats};
use super::{
    join_inner, mkdir_all, read, read_keyed, read_pids, read_u64, write, CgroupsPath, Error,
    OwnCgroups, Result,
};

/// The v1 controllers berth knows; a directory of another name (`systemd`, `unified`) is not
/// a controller hierarchy.
const CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
    "misc",
];

/// The mounted v1 hierarchies under `root`: controller name → its mount directory.
pub(crate) fn hierarchies(root: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let entries = std::fs::read_dir(root)
        .map_err(|source| Error::ReadRoot { path: root.to_path_buf(), source })?;
    let mut found = BTreeMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // The directory's type comes with its entry; a link (`cpu` -> `cpu,cpuacct`) is
        // followed.
        let dir = match entry.file_type() {
            Ok(t) if t.is_dir() => true,
            Ok(t) if t.is_symlink() => path.is_dir(),
            _ => false,
        };
        if !dir {
            continue;
        }
        for controller in name.split(',') {
            if CONTROLLERS.contains(&controller) {
                found.insert(controller.to_string(), path.clone());
            }
        }
    }
    Ok(found)
}

#[derive(Debug)]
pub(crate) struct Manager {
    root: PathBuf,
    /// The inner path of the memory hierarchy (or the first one), for the state file.
    inner: String,
    /// Controller name → the container's cgroup directory in that hierarchy.
    dirs: BTreeMap<String, PathBuf>,
    /// Controller name → the hierarchy's mount directory, where known (not from a state).
    mounts: Option<BTreeMap<String, PathBuf>>,
    /// On a hybrid host, the container's cgroup in the cgroup2 mount at `<root>/unified`: the
    /// process joins it too (as with runc), and controllers bound there (hugetlb on this
    /// project's host) are written there.
    unified: Option<super::v2::Manager>,
}

impl Manager {
    /// The manager of the container's cgroups in `hierarchies` (from [`hierarchies`]).
    pub(crate) fn new(
        root: &Path,
        path: &CgroupsPath,
        own: &OwnCgroups,
        hierarchies: BTreeMap<String, PathBuf>,
    ) -> Result<Self> {
        let mut dirs = BTreeMap::new();
        let mut inner = None;
        for (controller, mount) in &hierarchies {
            let resolved = path.resolve(own.v1(controller));
            if resolved == "/" {
                return Err(Error::InvalidPath {
                    path: format!("{path:?}"),
                    reason: "a container's cgroup cannot be the root cgroup".into(),
                });
            }
            if controller == "memory" || inner.is_none() {
                inner = Some(resolved.clone());
            }
            dirs.insert(controller.clone(), join_inner(mount, &resolved));
        }
        let unified_root = root.join("unified");
        let unified = unified_root
            .join("cgroup.controllers")
            .exists()
            .then(|| super::v2::Manager::new(&unified_root, path, own));
        Ok(Manager {
            root: root.to_path_buf(),
            inner: inner.unwrap_or_default(),
            dirs,
            mounts: Some(hierarchies),
            unified,
        })
    }

    /// The mount directory of `controller`'s hierarchy.
    fn mount_of(&self, controller: &str) -> Result<PathBuf> {
        if let Some(mount) = self.mounts.as_ref().and_then(|m| m.get(controller)) {
            return Ok(mount.clone());
        }
        Ok(hierarchies(&self.root)?.remove(controller).unwrap_or_default())
    }

    pub(crate) fn state(&self, mode: super::Mode) -> super::CgroupState {
        let mut paths = self.dirs.clone();
        if let Some(u) = &self.unified {
            paths.insert("unified".into(), u.path().to_path_buf());
        }
        super::CgroupState {
            mode,
            root: self.root.clone(),
            inner: self.inner.clone(),
            paths,
            disabled: None,
            rootless: false,
        }
    }

    pub(crate) fn from_state(state: &super::CgroupState) -> Self {
        let mut dirs = state.paths.clone();
        let unified = dirs.remove("unified").map(|path| {
            super::v2::Manager::from_parts(&state.root.join("unified"), &state.inner, path, false)
        });
        Manager {
            root: state.root.clone(),
            inner: state.inner.clone(),
            dirs,
            mounts: None,
            unified,
        }
    }

    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.dirs.values().cloned().collect();
        paths.dedup();
        paths.extend(self.unified.as_ref().map(|u| u.path().to_path_buf()));
        paths
    }

    pub(crate) fn inner_path(&self) -> String {
        self.inner.clone()
    }

    pub(crate) fn unwritable_reason(&self) -> Option<String> {
        self.dirs
            .values()
            .find(|d| !super::writable(d))
            .map(|d| format!("{} is not writable and cgroup v1 cannot be delegated", d.display()))
    }

    /// The container's directory for `controller`, or an error naming `resource`.
    fn need(&self, controller: &str, resource: &str) -> Result<&Path> {
        self.dirs.get(controller).map(PathBuf::as_path).ok_or_else(|| Error::ControllerMissing {
            resource: resource.to_string(),
            controller: controller.to_string(),
            root: self.root.clone(),
        })
    }

    pub(crate) fn create(&self) -> Result<()> {
        for dir in self.paths() {
            mkdir_all(&dir)?;
        }
        if let Some(dir) = self.dirs.get("cpuset") {
            let mount = self.mount_of("cpuset")?;
            inherit_cpuset(&mount, dir)?;
        }
        if let Some(unified) = &self.unified {
            unified.create_with(false)?;
        }
        tracing::debug!(inner = %self.inner, "created v1 cgroups");
        Ok(())
    }

    pub(crate) fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            self.apply_memory(m)?;
        }
        if let Some(c) = r.cpu() {
            self.apply_cpu(c)?;
        }
        if let Some(p) = r.pids() {
            let dir = self.need("pids", "pids.limit")?;
            let value = if p.limit() > 0 { p.limit().to_string() } else { "max".to_string() };
            write(dir, "pids.max", &value)?;
        }
        if let Some(b) = r.block_io() {
            self.apply_blkio(b)?;
        }
        for limit in r.hugepage_limits().iter().flatten() {
            let resource = format!("hugepageLimits {}", limit.page_size());
            if !self.dirs.contains_key("hugetlb") {
                if let Some(unified) = self.unified.as_ref().filter(|u| u.offers("hugetlb")) {
                    let file = format!("hugetlb.{}.max", limit.page_size());
                    if !unified.path().join(&file).exists() {
                        return Err(Error::InvalidValue {
                            resource,
                            reason: format!("the kernel has no {file}"),
                        });
                    }
                    write(unified.path(), &file, &limit.limit().to_string())?;
                    continue;
                }
            }
            let dir = self.need("hugetlb", &resource)?;
            let file = format!("hugetlb.{}.limit_in_bytes", limit.page_size());
            if !dir.join(&file).exists() {
                return Err(Error::InvalidValue {
                    resource,
                    reason: format!("the kernel has no {file}"),
                });
            }
            write(dir, &file, &limit.limit().to_string())?;
        }
        if let Some(n) = r.network() {
            self.apply_network(n)?;
        }
        if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(Error::NotSupported { what: "rdma limits".into() });
        }
        if r.unified().as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(Error::Unsupported {
                resource: "linux.resources.unified".into(),
                version: "v1",
                reason: "unified keys are cgroup v2 files".into(),
            });
        }
        if let Some(devices) = r.devices() {
            if !devices.is_empty() {
                let dir = self.need("devices", "devices")?;
                apply_devices(dir, devices)?;
            }
        }
        Ok(())
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<()> {
        let mut only = LinuxResources::default();
        only.set_memory(Some(*m));
        if super::requested(&only).is_empty() {
            return Ok(());
        }
        let dir = self.need("memory", "memory")?;
        let memsw = "memory.memsw.limit_in_bytes";
        // A swap of 0 means "not set", as in runc.
        let asked_swap = m.swap().filter(|&s| s != 0);
        if let Some(swap) = asked_swap {
            if !dir.join(memsw).exists() {
                return Err(Error::Unsupported {
                    resource: "memory.swap".into(),
                    version: "v1",
                    reason: "the kernel has no swap accounting (memory.memsw.*)".into(),
                });
            }
            if m.limit().is_some_and(|l| l > 0 && swap > 0 && swap < l) {
                return Err(Error::InvalidValue {
                    resource: "memory.swap".into(),
                    reason: format!("memory+swap {swap} is below the memory limit"),
                });
            }
        }
        // memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes: raise memsw
        // first when the limit goes up, lower the limit first when it goes down.
        // Unlimited memory with no word on swap means unlimited memory+swap too, as in runc;
        // otherwise the old memsw limit would still hold the container.
        let swap = match (m.limit(), asked_swap) {
            (Some(-1), None) if dir.join(memsw).exists() => Some(-1),
            (_, swap) => swap,
        };
        match (m.limit(), swap) {
            (Some(limit), Some(swap)) => {
                let current = read_u64(dir, "memory.limit_in_bytes").unwrap_or(0);
                let raising = limit < 0 || limit as u64 > current;
                if raising {
                    write(dir, memsw, &swap.to_string())?;
                    write(dir, "memory.limit_in_bytes", &limit.to_string())?;
                } else {
                    write(dir, "memory.limit_in_bytes", &limit.to_string())?;
                    write(dir, memsw, &swap.to_string())?;
                }
            }
            (Some(limit), None) => write(dir, "memory.limit_in_bytes", &limit.to_string())?,
            (None, Some(swap)) => write(dir, memsw, &swap.to_string())?,
            (None, None) => {}
        }
        if let Some(v) = m.reservation() {
            write(dir, "memory.soft_limit_in_bytes", &v.to_string())?;
        }
        if let Some(v) = m.kernel() {
            write(dir, "memory.kmem.limit_in_bytes", &v.to_string())?;
            // Since Linux 5.16 the kernel accepts this write and ignores it: read it back.
            // The kernel rounds the limit up to whole pages.
            let now = read(dir, "memory.kmem.limit_in_bytes")?;
            // SAFETY: sysconf only reads a configuration value.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
            let ignored = v >= 0
                && now.trim().parse::<u64>().is_ok_and(|n| n > (v as u64).div_ceil(page) * page);
            if ignored {
                return Err(Error::Unsupported {
                    resource: "memory.kernel".into(),
                    version: "v1",
                    reason: format!(
                        "this kernel ignores kernel memory limits (memory.kmem.limit_in_bytes \
                         reads {} after writing {v})",
                        now.trim()
                    ),
                });
            }
        }
        if let Some(v) = m.kernel_tcp() {
            write(dir, "memory.kmem.tcp.limit_in_bytes", &v.to_string())?;
        }
        if let Some(v) = m.swappiness() {
            if v > 100 {
                return Err(Error::InvalidValue {
                    resource: "memory.swappiness".into(),
                    reason: format!("{v} is above 100"),
                });
            }
            write(dir, "memory.swappiness", &v.to_string())?;
        }
        if let Some(v) = m.disable_oom_killer() {
            write(dir, "memory.oom_control", if v { "1" } else { "0" })?;
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu) -> Result<()> {
        let cpu_fields = c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.realtime_period().is_some()
            || c.realtime_runtime().is_some()
            || c.idle().is_some();
        if cpu_fields {
            let dir = self.need("cpu", "cpu")?;
            if let Some(v) = c.shares() {
                write(dir, "cpu.shares", &v.to_string())?;
            }
            if let Some(v) = c.period() {
                write(dir, "cpu.cfs_period_us", &v.to_string())?;
            }
            if let Some(v) = c.quota() {
                write(dir, "cpu.cfs_quota_us", &v.to_string())?;
            }
            if let Some(v) = c.burst() {
                write(dir, "cpu.cfs_burst_us", &v.to_string())?;
            }
            if let Some(v) = c.realtime_period() {
                write(dir, "cpu.rt_period_us", &v.to_string())?;
            }
            if let Some(v) = c.realtime_runtime() {
                if v > 0 {
                    let mount = self.mount_of("cpu")?;
                    raise_rt_ancestors(&mount, dir, v)?;
                }
                write(dir, "cpu.rt_runtime_us", &v.to_string())?;
            }
            if let Some(v) = c.idle() {
                write(dir, "cpu.idle", &v.to_string())?;
            }
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            write(self.need("cpuset", "cpu.cpus")?, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            write(self.need("cpuset", "cpu.mems")?, "cpuset.mems", mems)?;
        }
        Ok(())
    }

    fn apply_blkio(&self, b: &LinuxBlockIo) -> Result<()> {
        let mut only = LinuxResources::default();
        only.set_block_io(Some(b.clone()));
        if super::requested(&only).is_empty() {
            return Ok(());
        }
        let dir = self.need("blkio", "blockIO")?;
        // With the BFQ scheduler the weight files carry a `bfq.` prefix.
        let bfq = !dir.join("blkio.weight").exists() && dir.join("blkio.bfq.weight").exists();
        let weights = bfq || dir.join("blkio.weight").exists();
        let wants_weight = b.weight().is_some()
            || b.weight_device().iter().flatten().any(|d| d.weight().is_some());
        if wants_weight && !weights {
            return Err(Error::Unsupported {
                resource: "blockIO.weight".into(),
                version: "v1",
                reason: "the I/O schedulers here have no weights (no blkio.weight or \
                         blkio.bfq.weight)"
                    .into(),
            });
        }
        let wants_leaf = b.leaf_weight().is_some()
            || b.weight_device().iter().flatten().any(|d| d.leaf_weight().is_some());
        if wants_leaf && !dir.join("blkio.leaf_weight").exists() {
            return Err(Error::Unsupported {
                resource: "blockIO.leafWeight".into(),
                version: "v1",
                reason: "leaf weights went with the CFQ scheduler (no blkio.leaf_weight)".into(),
            });
        }
        let (weight, weight_device) = if bfq {
            ("blkio.bfq.weight", "blkio.bfq.weight_device")
        } else {
            ("blkio.weight", "blkio.weight_device")
        };
        if let Some(w) = b.weight() {
            write(dir, weight, &w.to_string())?;
        }
        if let Some(w) = b.leaf_weight() {
            write(dir, "blkio.leaf_weight", &w.to_string())?;
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                write(dir, weight_device, &format!("{}:{} {w}", d.major(), d.minor()))?;
            }
            if let Some(w) = d.leaf_weight() {
                write(
                    dir,
                    "blkio.leaf_weight_device",
                    &format!("{}:{} {w}", d.major(), d.minor()),
                )?;
            }
        }
        let throttles = [
            ("blkio.throttle.read_bps_device", b.throttle_read_bps_device()),
            ("blkio.throttle.write_bps_device", b.throttle_write_bps_device()),
            ("blkio.throttle.read_iops_device", b.throttle_read_iops_device()),
            ("blkio.throttle.write_iops_device", b.throttle_write_iops_device()),
        ];
        for (file, devices) in throttles {
            for d in devices.iter().flatten() {
                write(dir, file, &format!("{}:{} {}", d.major(), d.minor(), d.rate()))?;
            }
        }
        Ok(())
    }

    fn apply_network(&self, n: &LinuxNetwork) -> Result<()> {
        if let Some(id) = n.class_id() {
            write(self.need("net_cls", "network.classID")?, "net_cls.classid", &id.to_string())?;
        }
        for p in n.priorities().iter().flatten() {
            let dir = self.need("net_prio", "network.priorities")?;
            write(dir, "net_prio.ifpriomap", &format!("{} {}", p.name(), p.priority()))?;
        }
        Ok(())
    }

    pub(crate) fn add_pid(&self, pid: i32) -> Result<()> {
        for dir in self.paths() {
            write(&dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    pub(crate) fn set_frozen(&self, frozen: bool) -> Result<()> {
        let dir = self.need("freezer", if frozen { "pause" } else { "resume" })?;
        let state = if frozen { "FROZEN" } else { "THAWED" };
        // Writing FROZEN starts freezing; the state reads FREEZING until every task stopped.
        // Writing again retries tasks that were busy in the kernel (cgroup-v1/freezer-subsystem).
        for _ in 0..1000 {
            write(dir, "freezer.state", state)?;
            if read(dir, "freezer.state")?.trim() == state {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(Error::FreezeTimeout { path: dir.to_path_buf(), state })
    }

    pub(crate) fn stats(&self) -> Result<Stats> {
        let mut stats = Stats::default();
        if let Some(dir) = self.dirs.get("memory").filter(|d| d.exists()) {
            stats.memory = memory_stats(dir)?;
        }
        if let Some(dir) = self.dirs.get("cpuacct").filter(|d| d.exists()) {
            stats.cpu.usage.total = read_u64(dir, "cpuacct.usage")?;
            if let Ok(text) = read(dir, "cpuacct.usage_percpu") {
                stats.cpu.usage.percpu =
                    text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
            }
            if let Ok(map) = read_keyed(dir, "cpuacct.stat") {
                // cpuacct.stat counts USER_HZ ticks; runc reports nanoseconds.
                let tick = 1_000_000_000 / clock_ticks();
                stats.cpu.usage.user = map.get("user").copied().unwrap_or(0) * tick;
                stats.cpu.usage.kernel = map.get("system").copied().unwrap_or(0) * tick;
            }
        }
        if let Some(dir) = self.dirs.get("cpu").filter(|d| d.exists()) {
            if let Ok(map) = read_keyed(dir, "cpu.stat") {
                throttling(&mut stats.cpu, &map);
            }
        }
        if let Some(dir) = self.dirs.get("blkio").filter(|d| d.exists()) {
            // The throttle files count every device; the bfq ones only devices using BFQ.
            if let Ok(t) = read(dir, "blkio.throttle.io_service_bytes_recursive") {
                stats.blkio.io_service_bytes_recursive = super::stats::parse_blkio_v1(&t);
            }
            if let Ok(t) = read(dir, "blkio.throttle.io_serviced_recursive") {
                stats.blkio.io_serviced_recursive = super::stats::parse_blkio_v1(&t);
            }
        }
        if let Some(dir) = self.dirs.get("hugetlb").filter(|d| d.exists()) {
            stats.hugetlb = super::stats::hugetlb_stats(dir, false);
        } else if let Some(u) = self.unified.as_ref().filter(|u| u.path().exists()) {
            stats.hugetlb = super::stats::hugetlb_stats(u.path(), true);
        }
        if let Some(dir) = self.dirs.get("pids").filter(|d| d.exists()) {
            let limit = read_u64(dir, "pids.max")?;
            stats.pids = PidsStats {
                current: read_u64(dir, "pids.current")?,
                limit: if limit == u64::MAX { 0 } else { limit },
            };
        }
        Ok(stats)
    }

    pub(crate) fn oom_kill_count(&self) -> Result<u64> {
        let dir = self.need("memory", "the OOM kill count")?;
        Ok(read_keyed(dir, "memory.oom_control")?.get("oom_kill").copied().unwrap_or(0))
    }

    pub(crate) fn pids(&self) -> Result<Vec<i32>> {
        let mut all = Vec::new();
        for dir in self.paths() {
            all.extend(read_pids(&dir)?);
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    pub(crate) fn destroy(&self) -> Result<()> {
        // The usual case, a container whose processes are gone: one rmdir per hierarchy.
        // Anything left (a process, a child cgroup, a fake tree's files) makes the rest below
        // run for what remains.
        if self.paths().iter().all(|d| super::rmdir_empty(d)) {
            return Ok(());
        }
        let live = self.paths().into_iter().any(|d| !read_pids(&d).unwrap_or_default().is_empty());
        if live {
            // Freeze first so nothing forks while the leftovers are killed.
            let freezer = self.dirs.get("freezer").filter(|d| d.exists());
            if freezer.is_some() {
                self.set_frozen(true)?;
            }
            for dir in self.paths() {
                super::kill_all(&read_pids(&dir)?, &dir)?;
            }
            if freezer.is_some() {
                self.set_frozen(false)?;
            }
            for dir in self.paths() {
                super::wait_empty(&dir)?;
            }
        }
        for dir in self.paths() {
            super::remove_tree(&dir)?;
        }
        Ok(())
    }
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a configuration value; _SC_CLK_TCK is always defined.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

pub(crate) fn throttling(cpu: &mut CpuStats, map: &std::collections::HashMap<String, u64>) {
    cpu.throttling.periods = map.get("nr_periods").copied().unwrap_or(0);
    cpu.throttling.throttled_periods = map.get("nr_throttled").copied().unwrap_or(0);
    cpu.throttling.throttled_time = map
        .get("throttled_time")
        .copied()
        .or_else(|| map.get("throttled_usec").map(|us| us * 1000))
        .unwrap_or(0);
}

fn memory_stats(dir: &Path) -> Result<MemoryStats> {
    let entry = |prefix: &str| -> Result<MemoryEntry> {
        Ok(MemoryEntry {
            limit: read_u64(dir, &format!("{prefix}.limit_in_bytes"))?,
            usage: read_u64(dir, &format!("{prefix}.usage_in_bytes"))?,
            max: read_u64(dir, &format!("{prefix}.max_usage_in_bytes"))?,
            failcnt: read_u64(dir, &format!("{prefix}.failcnt"))?,
        })
    };
    let raw: BTreeMap<String, u64> = read_keyed(dir, "memory.stat")?.into_iter().collect();
    Ok(MemoryStats {
        cache: raw.get("total_cache").or_else(|| raw.get("cache")).copied().unwrap_or(0),
        usage: entry("memory")?,
        swap: if dir.join("memory.memsw.usage_in_bytes").exists() {
            entry("memory.memsw")?
        } else {
            MemoryEntry::default()
        },
        raw,
    })
}

/// A cgroup's realtime budget must fit in its parent's, and new cgroups start with none: give
/// each ancestor below the mount at least `runtime`, raising and never lowering
/// (sched-rt-group.rst, "Group scheduling").
fn raise_rt_ancestors(mount: &Path, dir: &Path, runtime: i64) -> Result<()> {
    let Ok(rel) = dir.strip_prefix(mount) else { return Ok(()) };
    let mut level = mount.to_path_buf();
    let components: Vec<_> = rel.components().collect();
    for component in components.iter().take(components.len().saturating_sub(1)) {
        level = level.join(component);
        let current: i64 =
            read(&level, "cpu.rt_runtime_us").ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        if current >= 0 && current < runtime {
            write(&level, "cpu.rt_runtime_us", &runtime.to_string())?;
        }
    }
    Ok(())
}

/// A v1 cgroup's cpuset.cpus and cpuset.mems start empty, and a task cannot join it until both
/// are set: copy them down from the nearest ancestor that has them, level by level.
fn inherit_cpuset(mount: &Path, dir: &Path) -> Result<()> {
    let Ok(rel) = dir.strip_prefix(mount) else { return Ok(()) };
    let mut parent = mount.to_path_buf();
    for component in rel.components() {
        let child = parent.join(component);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let current = std::fs::read_to_string(child.join(file)).unwrap_or_default();
            if current.trim().is_empty() {
                let value = read(&parent, file)?;
                write(&child, file, value.trim())?;
            }
        }
        parent = child;
    }
    Ok(())
}

/// The kernel's form of a device rule: `type major:minor access`, `*` for any.
pub(crate) fn device_rule(rule: &LinuxDeviceCgroup) -> String {
    let num = |n: Option<i64>| match n {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".to_string(),
    };
    let typ = rule.typ().map(|t| t.as_str().to_string()).unwrap_or_else(|| "a".into());
    let access = rule.access().clone().filter(|a| !a.is_empty()).unwrap_or_else(|| "rwm".into());
    if typ == "a" {
        return format!("a *:* {access}");
    }
    format!("{typ} {}:{} {access}", num(rule.major()), num(rule.minor()))
}

/// Writes the rules in order: each allow to devices.allow, each deny to devices.deny. A rule
/// for all devices switches the cgroup's default (the kernel clears the exceptions then), so
/// the list behaves as an ordered list, later rules overriding earlier ones. Each file is
/// opened once and takes one rule per write(2), as the kernel reads them.
fn apply_devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    use std::io::Write;
    let mut allow = None;
    let mut deny = None;
    for rule in rules {
        let text = device_rule(rule);
        if let Some(access) = rule.access() {
            if access.chars().any(|c| !matches!(c, 'r' | 'w' | 'm')) {
                return Err(Error::DeviceRule {
                    rule: text,
                    reason: "access is not r, w, m".into(),
                });
            }
        }
        let (slot, name) =
            if rule.allow() { (&mut allow, "devices.allow") } else { (&mut deny, "devices.deny") };
        let path = dir.join(name);
        let fail = |source| Error::Write { path: path.clone(), value: text.clone(), source };
        let file = match slot {
            Some(file) => file,
            None => slot.insert(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(fail)?,
            ),
        };
        let line = format!("{text}\n");
        match file.write(line.as_bytes()) {
            Ok(n) if n == line.len() => {}
            Ok(_) => return Err(fail(std::io::Error::from(std::io::ErrorKind::WriteZero))),
            Err(e) => return Err(fail(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{content, files, resources};
    use super::super::{Manager as Cgroup, ManagerBuilder};
    use super::*;

    const OWN: &str = "9:memory:/\n8:pids:/\n0::/\n";

    fn fake_v1(root: &Path) {
        for c in ["memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "devices", "freezer"] {
            std::fs::create_dir_all(root.join(c)).unwrap();
        }
        std::fs::create_dir_all(root.join("systemd")).unwrap();
        files(root, &[("cpuset/cpuset.cpus", "0-1\n"), ("cpuset/cpuset.mems", "0\n")]);
    }

    fn manager(root: &Path, path: &str) -> Cgroup {
        ManagerBuilder::new("c1")
            .with_root(root)
            .with_cgroups_path(Some(path))
            .with_own_cgroup(OWN)
            .build()
            .unwrap()
    }

    #[test]
    fn detects_hierarchies_and_ignores_named_ones() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path());
        assert_eq!(super::super::detect_mode(tmp.path()).unwrap(), super::super::Mode::Legacy);
        files(tmp.path(), &[("unified/cgroup.controllers", "hugetlb\n")]);
        assert_eq!(super::super::detect_mode(tmp.path()).unwrap(), super::super::Mode::Hybrid);
        let m = manager(tmp.path(), "/berth/c1");
        assert_eq!(m.version(), Some(1));
        assert_eq!(m.paths().len(), 9, "8 hierarchies and unified: {:?}", m.paths());
        assert!(m.paths().iter().all(|p| p.ends_with("berth/c1")));
        assert!(m.paths().contains(&tmp.path().join("unified/berth/c1")));
        assert!(!m.paths().iter().any(|p| p.starts_with(tmp.path().join("systemd"))));
    }

    #[test]
    fn hybrid_host_puts_hugetlb_limits_into_the_unified_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path());
        files(tmp.path(), &[("unified/cgroup.controllers", "hugetlb\n")]);
        let m = manager(tmp.path(), "/berth/c1");
        m.create().unwrap();
        let unified = tmp.path().join("unified");
        assert_eq!(content(&unified, "cgroup.subtree_control"), "+hugetlb");
        assert_eq!(content(&unified, "berth/cgroup.subtree_control"), "+hugetlb");
        files(
            &unified.join("berth/c1"),
            &[("cgroup.controllers", "hugetlb\n"), ("hugetlb.2MB.max", "max\n")],
        );
        m.apply(&resources(r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}"#))
            .unwrap();
        assert_eq!(content(&unified, "berth/c1/hugetlb.2MB.max"), "4194304");
        let err = m
            .apply(&resources(r#"{"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}"#))
            .unwrap_err();
        assert!(err.to_string().contains("hugetlb.3MB.max"), "{err}");
    }

    #[test]
    fn state_reopens_per_controller_paths_of_a_relative_cgroups_path() {
        // Pins why the state keeps every directory: the runtime's own memory cgroup differs
        // from its other ones, so one resolved path cannot find them all again.
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path());
        files(tmp.path(), &[("unified/cgroup.controllers", "hugetlb\n")]);
        let m = ManagerBuilder::new("c1")
            .with_root(tmp.path())
            .with_cgroups_path(Some("berth/c1"))
            .with_own_cgroup("4:memory:/session\n8:pids:/\n0::/other\n")
            .build()
            .unwrap();
        assert!(m.paths().contains(&tmp.path().join("memory/session/berth/c1")));
        assert!(m.paths().contains(&tmp.path().join("pids/berth/c1")));
        assert!(m.paths().contains(&tmp.path().join("unified/other/berth/c1")));
        let json = serde_json::to_string(&m.state()).unwrap();
        let again = Cgroup::from_state(&serde_json::from_str(&json).unwrap());
        assert_eq!(again.paths(), m.paths());
        assert_eq!(again.version(), Some(1));
        m.create().unwrap();
        again.destroy().unwrap();
        assert!(!tmp.path().join("memory/session/berth/c1").exists());
        assert!(!tmp.path().join("unified/other/berth/c1").exists());
    }

    #[test]
    fn hybrid_create_survives_a_parent_that_refuses_controllers() {
        // On a systemd hybrid host the runtime's own cgroup2 cgroup holds processes, so it
        // cannot enable controllers for children; the v1 side must still work.
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path());
        files(tmp.path(), &[("unified/cgroup.controllers", "hugetlb\n")]);
        // A directory where the file should be makes the write fail like EBUSY would.
        std::fs::create_dir_all(tmp.path().join("unified/cgroup.subtree_control")).unwrap();
        let m = manager(tmp.path(), "/c1");
        m.create().unwrap();
        assert!(tmp.path().join("unified/c1").is_dir());
        let err = m
            .apply(&resources(r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}"#))
            .unwrap_err();
        assert!(matches!(err, Error::ControllerMissing { .. }), "{err}");
    }

    #[test]
    fn create_copies_cpuset_down_each_level() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path());
        let m = manager(tmp.path(), "/berth/c1");
        m.create().unwrap();
        let cpuset = tmp.path().join("cpuset");
        assert_eq!(content(&cpuset, "berth/cpuset.cpus"), "0-1");
        assert_eq!(content(&cpuset, "berth/c1/cpuset.cpus"), "0-1");
        assert_eq!(content(&cpuset, "berth/c1/cpuset.mems"), "0");
        assert!(tmp.path().join("memory/berth/c1").is_dir());
    }

    #[test]
    fn apply_writes_each_limit_to_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path());
        let m = manager(tmp.path(), "/berth/c1");
        m.create().unwrap();
        let mem = tmp.path().join("memory/berth/c1");
        files(&mem, &[("memory.memsw.limit_in_bytes", ""), ("memory.limit_in_bytes", "0")]);
        let blk = tmp.path().join("blkio/berth/c1");
        files(&blk, &[("blkio.weight", "")]);
        let r = resources(
            r#"{
            "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728,
                       "swappiness": 10, "disableOOMKiller": false, "kernelTCP": 1048576},
            "cpu": {"shares": 512, "quota": 20000, "period": 100000,
                    "realtimeRuntime": 950, "realtimePeriod": 1000, "cpus": "1", "mems": "0"},
            "pids": {"limit": 32},
            "blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]},
            "devices": [{"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                        {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "m"}]
        }"#,
        );
        m.apply(&r).unwrap();
        assert_eq!(content(&mem, "memory.limit_in_bytes"), "67108864");
        assert_eq!(content(&mem, "memory.memsw.limit_in_bytes"), "134217728");
        assert_eq!(content(&mem, "memory.soft_limit_in_bytes"), "33554432");
        assert_eq!(content(&mem, "memory.swappiness"), "10");
        assert_eq!(content(&mem, "memory.oom_control"), "0");
        assert_eq!(content(&mem, "memory.kmem.tcp.limit_in_bytes"), "1048576");
        let cpu = tmp.path().join("cpu/berth/c1");
        assert_eq!(content(&cpu, "cpu.shares"), "512");
        assert_eq!(content(&cpu, "cpu.cfs_quota_us"), "20000");
        assert_eq!(content(&cpu, "cpu.cfs_period_us"), "100000");
        assert_eq!(content(&cpu, "cpu.rt_runtime_us"), "950");
        assert_eq!(content(&cpu, "cpu.rt_period_us"), "1000");
        let cpuset = tmp.path().join("cpuset/berth/c1");
        assert_eq!(content(&cpuset, "cpuset.cpus"), "1");
        assert_eq!(content(&tmp.path().join("pids/berth/c1"), "pids.max"), "32");
        assert_eq!(content(&blk, "blkio.weight"), "300");
        assert_eq!(content(&blk, "blkio.weight_device"), "8:0 500");
        assert_eq!(content(&blk, "blkio.throttle.read_bps_device"), "8:0 1048576");
        assert_eq!(content(&blk, "blkio.throttle.write_iops_device"), "8:16 100");
        // The fake files keep every rule of their kind, one per line, in order.
        let dev = tmp.path().join("devices/berth/c1");
        assert_eq!(content(&dev, "devices.allow"), "c 1:3 rwm\n");
        assert_eq!(content(&dev, "devices.deny"), "a *:* rwm\nc 1:3 m\n");
    }

    #[test]
    fn lowering_memory_writes_the_limit_before_memsw() {
        // Pins the order: memory.limit_in_bytes may never exceed memsw, so a lower limit must
        // be written first, or the kernel refuses the memsw write.
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path());
        let m = manager(tmp.path(), "/c1");
        m.create().unwrap();
        let mem = tmp.path().join("memory/c1");
        files(
            &mem,
            &[("memory.limit_in_bytes", "1073741824"), ("memory.memsw.limit_in_bytes", "")],
        );
        // Make the memsw path a directory briefly so its write fails: the limit must be written.
        std::fs::remove_file(mem.join("memory.memsw.limit_in_bytes")).unwrap();
        std::fs::create_dir(mem.join("memory.memsw.limit_in_bytes")).unwrap();
        let r = resources(r#"{"memory": {"limit": 1048576, "swap": 2097152}}"#);
        let err = m.apply(&r).unwrap_err();
        assert!(matches!(err, Error::Write { .. }), "{err}");
        assert_eq!(content(&mem, "memory.limit_in_bytes"), "1048576");
    }

    #[test]
    fn realtime_runtime_is_made_room_for_in_the_ancestors() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path());
        let m = manager(tmp.path(), "/a/b/c1");
        m.create().unwrap();
        let cpu = tmp.path().join("cpu");
        files(&cpu, &[("a/cpu.rt_runtime_us", "0"), ("a/b/cpu.rt_runtime_us", "5000")]);
        m.apply(&resources(r#"{"cpu": {"realtimeRuntime": 2000, "realtimePeriod": 1000000}}"#))
            .unwrap();
        assert_eq!(content(&cpu, "a/cpu.rt_runtime_us"), "2000");
        assert_eq!(content(&cpu, "a/b/cpu.rt_runtime_us"), "5000", "never lowered");
        assert_eq!(content(&cpu, "a/b/c1/cpu.rt_runtime_us"), "2000");
    }

    #[test]
    fn block_weights_without_a_weighted_scheduler_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path());
        let m = manager(tmp.path(), "/c1");
        m.create().unwrap();
        let err = m.apply(&resources(r#"{"blockIO": {"weight": 300}}"#)).unwrap_err();
        assert!(err.to_string().contains("blockIO.weight"), "{err}");
        let err = m.apply(&resources(r#"{"blockIO": {"leafWeight": 300}}"#)).unwrap_err();
        assert!(err.to_string().contains("blockIO.leafWeight"), "{err}");
        // With BFQ the weight goes to its own file.
        files(&tmp.path().join("blkio/c1"), &[("blkio.bfq.weight", "100")]);
        m.apply(&resources(r#"{"blockIO": {"weight": 300}}"#)).unwrap();
        assert_eq!(content(&tmp.path().join("blkio/c1"), "blkio.bfq.weight"), "300");
    }

    #[test]
    fn swap_zero_is_unset_and_unlimited_memory_lifts_memsw() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path());
        let m = manager(tmp.path(), "/c1");
        m.create().unwrap();
        let mem = tmp.path().join("memory/c1");
        files(&mem, &[("memory.memsw.limit_in_bytes", "untouched")]);
        m.apply(&resources(r#"{"memory": {"limit": 1048576, "swap": 0}}"#)).unwrap();
        assert_eq!(content(&mem, "memory.limit_in_bytes"), "1048576");
        assert_eq!(content(&mem, "memory.memsw.limit_in_bytes"), "untouched");
        m.apply(&resources(r#"{"memory": {"limit": -1}}"#)).unwrap();
        assert_eq!(content(&mem, "memory.memsw.limit_in_bytes"), "-1");
    }

    #[test]
    fn missing_controller_is_named_not_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path());
        let m = manager(tmp.path(), "/c1");
        m.create().unwrap();
        let err = m.apply(&resources(r#"{"network": {"classID": 1048577}}"#)).unwrap_err();
        assert!(err.to_string().contains("network.classID"), "{err}");
        assert!(err.to_string().contains("net_cls"), "{err}");
        let err = m
            .apply(&resources(r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}"#))
            .unwrap_err();
        assert!(err.to_string().contains("hugetlb"), "{err}");
        let err = m.apply(&resources(r#"{"unified": {"memory.high": "1"}}"#)).unwrap_err();
        assert!(err.to_string().contains("unified"), "{err}");
    }

    #[test]
    fn stats_read_memory_cpu_and_pids() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path());
        let m = manager(tmp.path(), "/c1");
        m.create().unwrap();
        files(
            &tmp.path().join("memory/c1"),
            &[
                ("memory.limit_in_bytes", "67108864\n"),
                ("memory.usage_in_bytes", "4096\n"),
                ("memory.max_usage_in_bytes", "8192\n"),
                ("memory.failcnt", "3\n"),
                ("memory.stat", "cache 100\nrss 200\ntotal_cache 150\n"),
                ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            ],
        );
        files(
            &tmp.path().join("cpuacct/c1"),
            &[
                ("cpuacct.usage", "5000\n"),
                ("cpuacct.usage_percpu", "2000 3000 \n"),
                ("cpuacct.stat", "user 3\nsystem 1\n"),
            ],
        );
        files(
            &tmp.path().join("cpu/c1"),
            &[("cpu.stat", "nr_periods 10\nnr_throttled 4\nthrottled_time 99\n")],
        );
        files(&tmp.path().join("pids/c1"), &[("pids.current", "5\n"), ("pids.max", "max\n")]);
        let s = m.stats().unwrap();
        assert_eq!(s.memory.usage.limit, 67108864);
        assert_eq!(s.memory.usage.usage, 4096);
        assert_eq!(s.memory.usage.max, 8192);
        assert_eq!(s.memory.cache, 150);
        assert_eq!(s.cpu.usage.total, 5000);
        assert_eq!(s.cpu.usage.percpu, vec![2000, 3000]);
        assert_eq!(s.cpu.throttling.throttled_periods, 4);
        assert_eq!(s.pids.current, 5);
        assert_eq!(s.pids.limit, 0);
        assert_eq!(m.oom_kill_count().unwrap(), 2);
        let json = serde_json::to_value(super::super::Event::stats("c1", s)).unwrap();
        assert_eq!(json["type"], "stats");
        assert_eq!(json["data"]["memory"]["usage"]["limit"], 67108864);
        assert_eq!(json["data"]["cpu"]["throttling"]["throttledPeriods"], 4);
    }

    #[test]
    fn destroy_removes_every_hierarchys_directory() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path());
        let m = manager(tmp.path(), "/berth/c1");
        m.create().unwrap();
        m.destroy().unwrap();
        assert!(!tmp.path().join("memory/berth/c1").exists());
        assert!(tmp.path().join("memory/berth").exists(), "only the container's own cgroup goes");
        m.destroy().unwrap();
    }

    #[test]
    fn rootless_without_writable_cgroup_refuses_limits_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path());
        // Root can write anything; simulate an unwritable tree through the driver's check.
        let mut m = manager(tmp.path(), "/c1");
        m.driver = super::super::Driver::Disabled { reason: "test".into() };
        assert_eq!(m.version(), None);
        m.create().unwrap();
        m.apply(&resources(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#)).unwrap();
        let err = m.apply(&resources(r#"{"memory": {"limit": 1048576}}"#)).unwrap_err();
        assert!(err.to_string().contains("memory.limit"), "{err}");
        assert!(matches!(err, Error::RootlessNoCgroup { .. }));
    }
}
