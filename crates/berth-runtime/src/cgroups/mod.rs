//! cgroups: what a container gets. One [`Manager`] drives either the v1 hierarchies or the
//! unified (v2) hierarchy, chosen by what the host mounts under the cgroup root, and turns the
//! runtime spec's `linux.resources` (OCI runtime spec, config-linux.md "Control groups") into
//! writes to cgroupfs.
//!
//! The root of the cgroup file system is a parameter ([`ManagerBuilder::with_root`]), so every
//! driver runs in unit tests on a fake tree in a temporary directory; only the v2 device filter
//! (a BPF program, see [`devices`]) needs a real cgroup2 mount to attach to, and is skipped on a
//! tree that is not cgroupfs.
//!
//! Rules the caller can rely on:
//! - a limit that was asked for is either applied or an error names it; nothing is silently
//!   dropped (a controller that is not mounted, an option the driver cannot express, rootless
//!   without a delegated cgroup);
//! - [`Manager::add_pid`] is meant to be called before the container's process execs, so the
//!   process never runs outside its limits;
//! - [`Manager::destroy`] kills whatever is still in the cgroup before removing it.
//!
//! The v2 driver runs for real in a qemu guest with a pure cgroup v2 hierarchy
//! (scripts/cgroup-v2-lane); V2_LANE.md beside this file says how and what it costs.

pub mod devices;
pub mod oci;
mod path;
#[cfg(test)]
mod real_tests;
mod stats;
mod v1;
mod v2;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

pub use path::CgroupsPath;
pub use stats::{
    BlkioEntry, BlkioStats, CpuStats, CpuUsage, Event, HugetlbStats, MemoryEntry, MemoryStats,
    PidsStats, Stats, Throttling,
};

/// The default mount point of the cgroup file system.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Everything that can fail while managing a container's cgroup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the cgroup root {path}")]
    ReadRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no cgroup hierarchy found under {path}")]
    NoHierarchy { path: PathBuf },
    #[error("reading the runtime's own cgroup from {path}")]
    OwnCgroup {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error(
        "cgroupsPath {path:?} asks for the systemd cgroup driver, but systemd is not running \
         on this host (no /run/systemd/system); use a plain path without --systemd-cgroup"
    )]
    NoSystemd { path: String },
    #[error("{what} is not supported yet")]
    NotSupported { what: String },
    #[error("{resource} cannot be applied on cgroup {version}: {reason}")]
    Unsupported { resource: String, version: &'static str, reason: String },
    #[error(
        "{resource} was asked for, but the {controller} controller is not mounted under {root}"
    )]
    ControllerMissing { resource: String, controller: String, root: PathBuf },
    #[error(
        "{resource} was asked for, but this rootless runtime has no cgroup it may write \
         ({reason}); run as root or on a host that delegates a cgroup v2 subtree"
    )]
    RootlessNoCgroup { resource: String, reason: String },
    #[error("invalid value for {resource}: {reason}")]
    InvalidValue { resource: String, reason: String },
    #[error("creating cgroup directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parsing {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cgroup {path} did not reach state {state} in time")]
    FreezeTimeout { path: PathBuf, state: &'static str },
    #[error("killing pid {pid} left in cgroup {path}")]
    KillLeftover {
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroup {path} still has processes after they were killed")]
    NotEmpty { path: PathBuf },
    #[error("removing cgroup {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("device rule {rule}: {reason}")]
    DeviceRule { rule: String, reason: String },
    #[error("loading the device filter for {path} into the kernel (bpf BPF_PROG_LOAD): {log}")]
    BpfLoad {
        path: PathBuf,
        log: String,
        #[source]
        source: io::Error,
    },
    #[error("attaching the device filter to {path} (bpf BPF_PROG_ATTACH)")]
    BpfAttach {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Which cgroup layout a host has, as seen from the cgroup root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only v1 hierarchies (one directory per controller, or co-mounted ones like `cpu,cpuacct`).
    Legacy,
    /// v1 controllers plus a cgroup2 mount at `<root>/unified` (this project's test host).
    Hybrid,
    /// One cgroup2 hierarchy at the root.
    Unified,
}

/// Detects the layout under `root` from the files the kernel shows there: a cgroup2 root has
/// `cgroup.controllers`; v1 has one directory per hierarchy; hybrid adds `unified/`.
pub fn detect_mode(root: &Path) -> Result<Mode> {
    detect(root).map(|(mode, _)| mode)
}

/// [`detect_mode`], with the v1 hierarchies found on the way (none on a cgroup2 root).
fn detect(root: &Path) -> Result<(Mode, std::collections::BTreeMap<String, PathBuf>)> {
    if root.join("cgroup.controllers").exists() {
        return Ok((Mode::Unified, Default::default()));
    }
    let hierarchies = v1::hierarchies(root)?;
    if hierarchies.is_empty() {
        return Err(Error::NoHierarchy { path: root.to_path_buf() });
    }
    if root.join("unified/cgroup.controllers").exists() {
        Ok((Mode::Hybrid, hierarchies))
    } else {
        Ok((Mode::Legacy, hierarchies))
    }
}

/// A container's cgroups as recorded in its state: the layout, and each directory by
/// controller (v1; `"unified"` for a hybrid host's cgroup2 directory) or under `""` (v2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CgroupState {
    pub mode: Mode,
    pub root: PathBuf,
    /// The resolved cgroupsPath, for display.
    pub inner: String,
    pub paths: std::collections::BTreeMap<String, PathBuf>,
    /// Set when the container runs without a cgroup (rootless without delegation): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<String>,
    /// A rootless runtime in a delegated subtree (v2).
    #[serde(default)]
    pub rootless: bool,
}

/// Builds a [`Manager`]: which container, where its cgroup goes, and under which privileges.
#[derive(Debug, Clone)]
pub struct ManagerBuilder {
    id: String,
    root: PathBuf,
    cgroups_path: Option<String>,
    systemd: bool,
    rootless: bool,
    own_cgroup: Option<String>,
    systemd_running: Option<bool>,
}

impl ManagerBuilder {
    /// Starts a builder for container `id` (used for the default path, `/<runtime cgroup>/<id>`).
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            root: PathBuf::from(DEFAULT_ROOT),
            cgroups_path: None,
            systemd: false,
            rootless: false,
            own_cgroup: None,
            systemd_running: None,
        }
    }

    /// The mount point of the cgroup file system (default `/sys/fs/cgroup`).
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = root.into();
        self
    }

    /// `linux.cgroupsPath` from the spec, if any.
    pub fn with_cgroups_path(mut self, path: Option<impl Into<String>>) -> Self {
        self.cgroups_path = path.map(Into::into);
        self
    }

    /// runc's `--systemd-cgroup`: the path is `slice:prefix:name`.
    pub fn with_systemd(mut self, systemd: bool) -> Self {
        self.systemd = systemd;
        self
    }

    /// The runtime runs without root on the host: without a writable (delegated) cgroup the
    /// manager runs the container without one and refuses any limit.
    pub fn with_rootless(mut self, rootless: bool) -> Self {
        self.rootless = rootless;
        self
    }

    /// The text of the runtime's own `/proc/self/cgroup`, which relative paths are resolved
    /// against. Read from /proc when not given; tests pass their own.
    pub fn with_own_cgroup(mut self, proc_self_cgroup: impl Into<String>) -> Self {
        self.own_cgroup = Some(proc_self_cgroup.into());
        self
    }

    /// Overrides the systemd check (tests); by default `/run/systemd/system` is looked at.
    pub fn with_systemd_running(mut self, running: bool) -> Self {
        self.systemd_running = Some(running);
        self
    }

    /// Detects the host's layout, resolves the path and picks the driver. Nothing is created yet.
    pub fn build(self) -> Result<Manager> {
        let systemd_running =
            self.systemd_running.unwrap_or_else(|| Path::new("/run/systemd/system").is_dir());
        let path = CgroupsPath::parse(
            self.cgroups_path.as_deref(),
            &self.id,
            self.systemd,
            systemd_running,
        )?;
        let own = match self.own_cgroup {
            Some(text) => text,
            None => std::fs::read_to_string("/proc/self/cgroup").map_err(|source| {
                Error::OwnCgroup { path: PathBuf::from("/proc/self/cgroup"), source }
            })?,
        };
        let own = OwnCgroups::parse(&own);
        let (mode, hierarchies) = detect(&self.root)?;
        let driver = match mode {
            Mode::Unified => {
                Driver::V2(v2::Manager::new(&self.root, &path, &own).with_rootless(self.rootless))
            }
            Mode::Legacy | Mode::Hybrid => {
                Driver::V1(v1::Manager::new(&self.root, &path, &own, hierarchies)?)
            }
        };
        if self.rootless {
            if let Some(reason) = driver.unwritable_reason() {
                tracing::debug!(id = %self.id, %reason, "rootless: running without a cgroup");
                return Ok(Manager { mode, driver: Driver::Disabled { reason } });
            }
        }
        Ok(Manager { mode, driver })
    }
}

/// The runtime's own cgroups, from `/proc/self/cgroup`: per v1 controller, and the v2 path.
#[derive(Debug, Clone, Default)]
pub(crate) struct OwnCgroups {
    v1: HashMap<String, String>,
    v2: String,
}

impl OwnCgroups {
    pub(crate) fn parse(text: &str) -> Self {
        let mut own = OwnCgroups { v1: HashMap::new(), v2: "/".to_string() };
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if controllers.is_empty() {
                own.v2 = path.to_string();
            } else {
                for c in controllers.split(',') {
                    own.v1.insert(c.to_string(), path.to_string());
                }
            }
        }
        own
    }

    pub(crate) fn v1(&self, controller: &str) -> &str {
        self.v1.get(controller).map(String::as_str).unwrap_or("/")
    }

    pub(crate) fn v2(&self) -> &str {
        &self.v2
    }
}

#[derive(Debug)]
enum Driver {
    V1(v1::Manager),
    V2(v2::Manager),
    Disabled { reason: String },
}

impl Driver {
    fn unwritable_reason(&self) -> Option<String> {
        match self {
            Driver::V1(m) => m.unwritable_reason(),
            Driver::V2(m) => m.unwritable_reason(),
            Driver::Disabled { reason } => Some(reason.clone()),
        }
    }
}

/// A container's cgroup on this host: v1, v2, or none (rootless without delegation).
#[derive(Debug)]
pub struct Manager {
    mode: Mode,
    driver: Driver,
}

impl Manager {
    /// Shorthand for [`ManagerBuilder::new`].
    pub fn builder(id: impl Into<String>) -> ManagerBuilder {
        ManagerBuilder::new(id)
    }

    /// The host layout the manager was built for.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The cgroup version in use: 1, 2, or `None` when running without a cgroup.
    pub fn version(&self) -> Option<u8> {
        match self.driver {
            Driver::V1(_) => Some(1),
            Driver::V2(_) => Some(2),
            Driver::Disabled { .. } => None,
        }
    }

    /// The container's cgroup directories (one per v1 controller, one for v2).
    pub fn paths(&self) -> Vec<PathBuf> {
        match &self.driver {
            Driver::V1(m) => m.paths(),
            Driver::V2(m) => vec![m.path().to_path_buf()],
            Driver::Disabled { .. } => Vec::new(),
        }
    }

    /// The container's cgroup path as resolved (v1: in the memory hierarchy). For display; to
    /// find the cgroup again later, keep [`Manager::state`] instead: with a relative
    /// cgroupsPath the v1 hierarchies can place the container at different paths (the runtime
    /// itself may sit in different cgroups per controller).
    pub fn inner_path(&self) -> Option<String> {
        match &self.driver {
            Driver::V1(m) => Some(m.inner_path()),
            Driver::V2(m) => Some(m.inner_path().to_string()),
            Driver::Disabled { .. } => None,
        }
    }

    /// Where this manager's cgroups are, for the container's state file; [`Manager::from_state`]
    /// opens the same cgroups again without resolving anything.
    pub fn state(&self) -> CgroupState {
        match &self.driver {
            Driver::V1(m) => m.state(self.mode),
            Driver::V2(m) => CgroupState {
                mode: self.mode,
                root: m.root().to_path_buf(),
                inner: m.inner_path().to_string(),
                paths: std::collections::BTreeMap::from([(String::new(), m.path().to_path_buf())]),
                disabled: None,
                rootless: m.rootless(),
            },
            Driver::Disabled { reason } => CgroupState {
                mode: self.mode,
                root: PathBuf::new(),
                inner: String::new(),
                paths: Default::default(),
                disabled: Some(reason.clone()),
                rootless: true,
            },
        }
    }

    /// Reopens the cgroups recorded by [`Manager::state`].
    pub fn from_state(state: &CgroupState) -> Manager {
        let driver = if let Some(reason) = &state.disabled {
            Driver::Disabled { reason: reason.clone() }
        } else if state.mode == Mode::Unified {
            let path = state.paths.get("").cloned().unwrap_or_else(|| state.root.clone());
            Driver::V2(v2::Manager::from_parts(&state.root, &state.inner, path, state.rootless))
        } else {
            Driver::V1(v1::Manager::from_state(state))
        };
        Manager { mode: state.mode, driver }
    }

    /// Creates the cgroup directories (and, for v1 cpuset, fills in the inherited cpus and mems;
    /// for v2, enables the controllers in the parents' `cgroup.subtree_control`).
    pub fn create(&self) -> Result<()> {
        match &self.driver {
            Driver::V1(m) => m.create(),
            Driver::V2(m) => m.create(),
            Driver::Disabled { .. } => Ok(()),
        }
    }

    /// Writes `resources` into the cgroup. Also the `update` operation: only what is set in
    /// `resources` is written.
    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
        match &self.driver {
            Driver::V1(m) => m.apply(resources),
            Driver::V2(m) => m.apply(resources),
            Driver::Disabled { reason } => {
                // Device rules are the exception: a rootless container lives in a user
                // namespace, where mknod is refused and the only device nodes are the ones
                // the runtime bind-mounts, so the list (Podman always sends one) holds anyway.
                let asked = requested(resources);
                match asked.iter().find(|r| r.as_str() != "devices") {
                    Some(resource) => Err(Error::RootlessNoCgroup {
                        resource: resource.clone(),
                        reason: reason.clone(),
                    }),
                    None => Ok(()),
                }
            }
        }
    }

    /// Same as [`Manager::apply`]; named for `berth-oci update`.
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        self.apply(resources)
    }

    /// Moves process `pid` (and its threads) into the cgroup.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        match &self.driver {
            Driver::V1(m) => m.add_pid(pid),
            Driver::V2(m) => m.add_pid(pid),
            Driver::Disabled { .. } => Ok(()),
        }
    }

    /// On cgroup v2, the container's cgroup directory opened for clone3's CLONE_INTO_CGROUP
    /// (Linux 5.7+): the child starts inside the cgroup, which saves the migration that
    /// [`Manager::add_pid`] costs. `None` on v1 (and without a cgroup), where add_pid is the
    /// only way.
    pub fn clone_into_fd(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        let Driver::V2(m) = &self.driver else { return Ok(None) };
        let fd = rustix::fs::open(
            m.path(),
            rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::Read {
            path: m.path().to_path_buf(),
            source: io::Error::from_raw_os_error(e.raw_os_error()),
        })?;
        Ok(Some(fd))
    }

    /// Stops every process in the cgroup and returns once they are stopped.
    pub fn freeze(&self) -> Result<()> {
        match &self.driver {
            Driver::V1(m) => m.set_frozen(true),
            Driver::V2(m) => m.set_frozen(true),
            Driver::Disabled { .. } => {
                Err(Error::NotSupported { what: "pause without a cgroup (rootless)".into() })
            }
        }
    }

    /// Resumes the processes stopped by [`Manager::freeze`].
    pub fn thaw(&self) -> Result<()> {
        match &self.driver {
            Driver::V1(m) => m.set_frozen(false),
            Driver::V2(m) => m.set_frozen(false),
            Driver::Disabled { .. } => {
                Err(Error::NotSupported { what: "resume without a cgroup (rootless)".into() })
            }
        }
    }

    /// Usage figures, shaped like runc's `events --stats` data.
    pub fn stats(&self) -> Result<Stats> {
        match &self.driver {
            Driver::V1(m) => m.stats(),
            Driver::V2(m) => m.stats(),
            Driver::Disabled { .. } => Ok(Stats::default()),
        }
    }

    /// How many times the kernel's OOM killer killed a process in this cgroup.
    pub fn oom_kill_count(&self) -> Result<u64> {
        match &self.driver {
            Driver::V1(m) => m.oom_kill_count(),
            Driver::V2(m) => m.oom_kill_count(),
            Driver::Disabled { .. } => Ok(0),
        }
    }

    /// The processes in the cgroup (`cgroup.procs`).
    pub fn pids(&self) -> Result<Vec<i32>> {
        match &self.driver {
            Driver::V1(m) => m.pids(),
            Driver::V2(m) => m.pids(),
            Driver::Disabled { .. } => Ok(Vec::new()),
        }
    }

    /// Kills what is left in the cgroup (freezing it first, so nothing forks away), then
    /// removes its directories, children first. Removing a cgroup that is already gone is fine.
    pub fn destroy(&self) -> Result<()> {
        match &self.driver {
            Driver::V1(m) => m.destroy(),
            Driver::V2(m) => m.destroy(),
            Driver::Disabled { .. } => Ok(()),
        }
    }
}

/// The `linux.cgroup` part of the runtime's `features` document: the drivers berth has,
/// whatever this host mounts (the systemd driver is not there yet; rdma limits neither).
pub fn features() -> serde_json::Value {
    serde_json::json!({"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false})
}

/// The names (as in config.json) of the limits `resources` asks for; empty when nothing would
/// be written. Device rules count (as `devices`) only when they deny something, since a list
/// of allows alone restricts nothing.
pub fn requested(resources: &LinuxResources) -> Vec<String> {
    let mut asked = Vec::new();
    if let Some(m) = resources.memory() {
        let fields = [
            ("memory.limit", m.limit().is_some()),
            ("memory.reservation", m.reservation().is_some()),
            ("memory.swap", m.swap().is_some()),
            ("memory.kernel", m.kernel().is_some()),
            ("memory.kernelTCP", m.kernel_tcp().is_some()),
            ("memory.swappiness", m.swappiness().is_some()),
            ("memory.disableOOMKiller", m.disable_oom_killer() == Some(true)),
        ];
        asked.extend(fields.iter().filter(|f| f.1).map(|f| f.0.to_string()));
    }
    if let Some(c) = resources.cpu() {
        let fields = [
            ("cpu.shares", c.shares().is_some()),
            ("cpu.quota", c.quota().is_some()),
            ("cpu.period", c.period().is_some()),
            ("cpu.realtimeRuntime", c.realtime_runtime().is_some()),
            ("cpu.realtimePeriod", c.realtime_period().is_some()),
            ("cpu.cpus", c.cpus().as_deref().is_some_and(|s| !s.is_empty())),
            ("cpu.mems", c.mems().as_deref().is_some_and(|s| !s.is_empty())),
            ("cpu.idle", c.idle().is_some()),
            ("cpu.burst", c.burst().is_some()),
        ];
        asked.extend(fields.iter().filter(|f| f.1).map(|f| f.0.to_string()));
    }
    if resources.pids().is_some() {
        asked.push("pids.limit".to_string());
    }
    if let Some(b) = resources.block_io() {
        let fields = [
            ("blockIO.weight", b.weight().is_some()),
            ("blockIO.leafWeight", b.leaf_weight().is_some()),
            ("blockIO.weightDevice", b.weight_device().as_ref().is_some_and(|v| !v.is_empty())),
            (
                "blockIO.throttleReadBpsDevice",
                b.throttle_read_bps_device().as_ref().is_some_and(|v| !v.is_empty()),
            ),
            (
                "blockIO.throttleWriteBpsDevice",
                b.throttle_write_bps_device().as_ref().is_some_and(|v| !v.is_empty()),
            ),
            (
                "blockIO.throttleReadIOPSDevice",
                b.throttle_read_iops_device().as_ref().is_some_and(|v| !v.is_empty()),
            ),
            (
                "blockIO.throttleWriteIOPSDevice",
                b.throttle_write_iops_device().as_ref().is_some_and(|v| !v.is_empty()),
            ),
        ];
        asked.extend(fields.iter().filter(|f| f.1).map(|f| f.0.to_string()));
    }
    if resources.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()) {
        asked.push("hugepageLimits".to_string());
    }
    if let Some(n) = resources.network() {
        if n.class_id().is_some() {
            asked.push("network.classID".to_string());
        }
        if n.priorities().as_ref().is_some_and(|v| !v.is_empty()) {
            asked.push("network.priorities".to_string());
        }
    }
    if resources.rdma().as_ref().is_some_and(|v| !v.is_empty()) {
        asked.push("rdma".to_string());
    }
    if resources.unified().as_ref().is_some_and(|v| !v.is_empty()) {
        asked.push("unified".to_string());
    }
    if resources.devices().as_ref().is_some_and(|d| d.iter().any(|r| !r.allow())) {
        asked.push("devices".to_string());
    }
    asked
}

// ---- small file helpers shared by both drivers ----

/// Writes `value` to `dir/file` in one write, as cgroupfs expects.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    tracing::trace!(?path, value, "cgroup write");
    std::fs::write(&path, value.as_bytes()).map_err(|source| Error::Write {
        path,
        value: value.to_string(),
        source,
    })
}

pub(crate) fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|source| Error::Read { path, source })
}

/// Reads a file holding one number; `max` (v2) and `-1` read as `u64::MAX`.
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64> {
    let text = read(dir, file)?;
    parse_u64(&dir.join(file), text.trim())
}

pub(crate) fn parse_u64(path: &Path, text: &str) -> Result<u64> {
    if text == "max" || text == "-1" {
        return Ok(u64::MAX);
    }
    text.parse::<u64>().map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        reason: format!("{text:?} is not a number: {e}"),
    })
}

/// Parses `key value` lines (memory.stat, cpu.stat, memory.events, memory.oom_control).
pub(crate) fn read_keyed(dir: &Path, file: &str) -> Result<HashMap<String, u64>> {
    let text = read(dir, file)?;
    let mut map = HashMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(' ') {
            if let Ok(v) = v.trim().parse::<u64>() {
                map.insert(k.to_string(), v);
            }
        }
    }
    Ok(map)
}

/// The processes in the cgroup at `dir` and in its child cgroups (a nested runtime's), as
/// runc's GetAllPids: `ps`, `kill --all` and `destroy` must see them all.
pub(crate) fn read_pids(dir: &Path) -> Result<Vec<i32>> {
    let path = dir.join("cgroup.procs");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Read { path, source }),
    };
    let mut pids = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let pid = line
            .trim()
            .parse::<i32>()
            .map_err(|e| Error::Parse { path: path.clone(), reason: format!("{line:?}: {e}") })?;
        pids.push(pid);
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                pids.extend(read_pids(&entry.path())?);
            }
        }
    }
    Ok(pids)
}

pub(crate) fn mkdir_all(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|source| Error::CreateDir { path: path.to_path_buf(), source })
}

/// Whether `path` lies on a real cgroup file system (v1 or v2) rather than a test's fake tree.
pub(crate) fn is_cgroupfs(path: &Path) -> bool {
    match rustix::fs::statfs(path) {
        // The magic numbers are CGROUP_SUPER_MAGIC and CGROUP2_SUPER_MAGIC from linux/magic.h;
        // f_type is i64 on x86_64 but narrower elsewhere.
        #[allow(clippy::unnecessary_cast)]
        Ok(st) => st.f_type as i64 == 0x27e0eb || st.f_type as i64 == 0x63677270,
        Err(_) => false,
    }
}

/// Removes the cgroup directory `path` with one rmdir if it can: no process and no child
/// cgroup left (the kernel refuses otherwise, with EBUSY), or already gone. True when `path`
/// is gone.
pub(crate) fn rmdir_empty(path: &Path) -> bool {
    match std::fs::remove_dir(path) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// Removes the cgroup directory `path` and its child cgroups, deepest first. On cgroupfs a
/// cgroup is removed with rmdir (its files go with it); on a fake tree the files are removed.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    if !is_cgroupfs(path) {
        return std::fs::remove_dir_all(path)
            .map_err(|source| Error::Remove { path: path.to_path_buf(), source });
    }
    let entries = std::fs::read_dir(path)
        .map_err(|source| Error::Remove { path: path.to_path_buf(), source })?;
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path())?;
        }
    }
    // An rmdir right after the last process exited can still see it for a moment (EBUSY).
    let mut attempts = 0;
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempts < 100 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(source) => return Err(Error::Remove { path: path.to_path_buf(), source }),
        }
    }
}

/// SIGKILLs every pid in `pids`; a pid that is already gone is fine.
pub(crate) fn kill_all(pids: &[i32], path: &Path) -> Result<()> {
    for &pid in pids {
        let Some(p) = rustix::process::Pid::from_raw(pid) else { continue };
        match rustix::process::kill_process(p, rustix::process::Signal::KILL) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => {
                return Err(Error::KillLeftover {
                    pid,
                    path: path.to_path_buf(),
                    source: io::Error::from_raw_os_error(e.raw_os_error()),
                })
            }
        }
    }
    Ok(())
}

/// Waits until `cgroup.procs` under `dir` is empty (after a SIGKILL the processes linger until
/// their parent reaps them, but leave cgroup.procs as soon as they exit).
pub(crate) fn wait_empty(dir: &Path) -> Result<()> {
    for _ in 0..500 {
        if read_pids(dir)?.is_empty() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(Error::NotEmpty { path: dir.to_path_buf() })
}

/// Whether `path` (or, if it does not exist yet, its nearest existing ancestor) is writable by
/// this process.
pub(crate) fn writable(path: &Path) -> bool {
    let mut p = path;
    loop {
        if p.exists() {
            return rustix::fs::access(p, rustix::fs::Access::WRITE_OK).is_ok();
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
}

/// Joins an absolute cgroup path below a hierarchy's mount point.
pub(crate) fn join_inner(mount: &Path, inner: &str) -> PathBuf {
    let rel = inner.trim_start_matches('/');
    if rel.is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(rel)
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::path::Path;

    /// Creates the named files (with the given contents) below `dir`, making parents.
    pub fn files(dir: &Path, files: &[(&str, &str)]) {
        for (name, content) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
        }
    }

    pub fn content(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
    }

    pub fn resources(json: &str) -> oci_spec::runtime::LinuxResources {
        serde_json::from_str(json).unwrap()
    }
}
