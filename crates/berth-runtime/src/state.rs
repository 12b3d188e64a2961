//! Containers on disk: the state directory (`--root`), one directory per container holding
//! `state.json` and, while the container is created but not started, the `exec.fifo` its init
//! waits on (runtime spec, "State" and "Lifecycle").
//!
//! The status is never stored as a fact that could go stale: it is derived each time from the
//! init's pid and start time (so a recycled pid is not mistaken for the init), whether the
//! fifo still exists, and whether the container was paused.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::sys;

/// What went wrong with the state directory; each variant carries the path or id.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("creating the state root {path}: {source}")]
    CreateRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container {id:?} already exists")]
    Exists { id: String },
    #[error("container {id:?} does not exist")]
    NotFound { id: String },
    #[error("invalid container id {id:?}: use letters, digits, '_', '-', '.' and '+'")]
    InvalidId { id: String },
    #[error("creating the state of {id} in {path}: {source}")]
    Create {
        id: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the state of {id} from {path}: {source}")]
    Read {
        id: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parsing the state of {id} in {path}: {source}")]
    Parse {
        id: String,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing the state of {id} to {path}: {source}")]
    Write {
        id: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("listing {path}: {source}")]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A container's status (runtime spec, "State"), plus runc's `paused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What berth keeps about a container in `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// The init's pid on the host; 0 while creating.
    pub pid: i32,
    /// The init's start time (clock ticks since boot), to tell it from a recycled pid.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339, UTC.
    pub created: String,
    /// The user who created the container.
    pub owner: String,
    pub annotations: HashMap<String, String>,
    /// Set by pause, cleared by resume.
    #[serde(default)]
    pub paused: bool,
    /// The container was created by an unprivileged user, or with --rootless.
    #[serde(default)]
    pub rootless: bool,
    /// The container's cgroup as resolved at create (crate::cgroups' inner path), if any.
    #[serde(default)]
    pub cgroup: Option<String>,
    /// linux.cgroupsPath as given, and the creating runtime's /proc/self/cgroup, which a
    /// relative path was resolved against: together they find the cgroup again later.
    #[serde(default)]
    pub cgroups_path: Option<String>,
    #[serde(default)]
    pub own_cgroup: String,
    /// Whether the cgroup was made by the systemd driver (`--systemd-cgroup`).
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// Every directory of the container's cgroup as create made it (on v1 the controllers may
    /// sit at different paths); absent in state files written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_state: Option<crate::cgroups::CgroupState>,
    /// The config's `linux.resources` with every `update` since merged in; absent in state
    /// files written before it was kept, and when the config set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<oci_spec::runtime::LinuxResources>,
    /// The hooks of the bundle's config, kept for start, delete and poststop.
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// True once the container's process has been started (the fifo consumed).
    #[serde(default)]
    pub started: bool,
}

/// runc's `state` document: the runtime spec's fields plus rootfs, created and owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateDoc {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty", default)]
    pub annotations: HashMap<String, String>,
}

/// The OCI runtime spec version berth implements.
pub const OCI_VERSION: &str = "1.2.0";

/// The default state root: /run/berth-oci for root, $XDG_RUNTIME_DIR/berth-oci when rootless
/// (also as root inside an unprivileged user's namespace, as under rootless Podman).
pub fn default_root() -> PathBuf {
    if sys::is_rootless() {
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("berth-oci");
        }
        return PathBuf::from(format!("/tmp/berth-oci-{}", sys::geteuid()));
    }
    PathBuf::from("/run/berth-oci")
}

/// A state root directory.
#[derive(Debug, Clone)]
pub struct StateRoot {
    pub path: PathBuf,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_-.+".contains(c))
}

impl StateRoot {
    pub fn new(path: impl Into<PathBuf>) -> StateRoot {
        StateRoot { path: path.into() }
    }

    /// The directory of container `id`.
    pub fn dir(&self, id: &str) -> Result<PathBuf, StateError> {
        if !valid_id(id) {
            return Err(StateError::InvalidId { id: id.to_owned() });
        }
        Ok(self.path.join(id))
    }

    /// Creates the directory of a new container; fails if it exists.
    pub fn create(&self, id: &str) -> Result<PathBuf, StateError> {
        let dir = self.dir(id)?;
        if !self.path.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(&self.path)
                .map_err(|source| StateError::CreateRoot { path: self.path.clone(), source })?;
        }
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(StateError::Exists { id: id.to_owned() })
            }
            Err(source) => Err(StateError::Create { id: id.to_owned(), path: dir, source }),
        }
    }

    /// Loads container `id`.
    pub fn load(&self, id: &str) -> Result<Container, StateError> {
        let dir = self.dir(id)?;
        let path = dir.join("state.json");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotFound { id: id.to_owned() })
            }
            Err(source) => return Err(StateError::Read { id: id.to_owned(), path, source }),
        };
        let record = serde_json::from_slice(&bytes).map_err(|source| StateError::Parse {
            id: id.to_owned(),
            path,
            source,
        })?;
        Ok(Container { dir, record })
    }

    /// Every container under the root, sorted by id; unreadable entries are skipped.
    pub fn list(&self) -> Result<Vec<Container>, StateError> {
        let entries = match fs::read_dir(&self.path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StateError::List { path: self.path.clone(), source }),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(c) = self.load(&name) {
                out.push(c);
            }
        }
        out.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        Ok(out)
    }
}

/// One container: its directory and record.
#[derive(Debug, Clone)]
pub struct Container {
    pub dir: PathBuf,
    pub record: Record,
}

impl Container {
    /// The path of the fifo the init of a created container waits on.
    pub fn fifo(&self) -> PathBuf {
        self.dir.join("exec.fifo")
    }

    /// Writes state.json atomically (a temporary file renamed over it).
    pub fn save(&self) -> Result<(), StateError> {
        let path = self.dir.join("state.json");
        let tmp = self.dir.join(".state.json.tmp");
        let err =
            |source| StateError::Write { id: self.record.id.clone(), path: path.clone(), source };
        let bytes = serde_json::to_vec(&self.record).map_err(io::Error::other).map_err(err)?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        // A temporary left behind by a crash keeps its old mode through O_TRUNC: set it again.
        file.set_permissions(fs::Permissions::from_mode(0o600)).map_err(err)?;
        io::Write::write_all(&mut file, &bytes).map_err(err)?;
        drop(file);
        fs::rename(&tmp, &path).map_err(err)
    }

    /// Whether the init is still the process that was started (not a zombie, not a new
    /// process under a recycled pid).
    pub fn init_alive(&self) -> bool {
        if self.record.pid <= 0 {
            return false;
        }
        match sys::proc_stat(self.record.pid) {
            Some((start, zombie)) => start == self.record.start_time && !zombie,
            None => false,
        }
    }

    /// The status, derived from the process and the fifo.
    pub fn status(&self) -> Status {
        if self.record.pid == 0 {
            return Status::Creating;
        }
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.record.paused {
            return Status::Paused;
        }
        if !self.record.started && self.fifo().exists() {
            return Status::Created;
        }
        Status::Running
    }

    /// The cgroup manager of this container, reopened from the directories create recorded
    /// (rebuilt from the cgroupsPath for older state files); None when it runs without a
    /// cgroup.
    pub fn cgroup_manager(&self) -> Option<crate::cgroups::Manager> {
        self.record.cgroup.as_ref()?;
        if let Some(state) = &self.record.cgroup_state {
            return Some(crate::cgroups::Manager::from_state(state));
        }
        crate::cgroups::Manager::builder(&self.record.id)
            .with_cgroups_path(self.record.cgroups_path.clone())
            .with_own_cgroup(self.record.own_cgroup.clone())
            .with_systemd(self.record.systemd_cgroup)
            .with_rootless(self.record.rootless)
            .build()
            .ok()
    }

    /// runc's `state` document.
    pub fn state_doc(&self) -> StateDoc {
        let status = self.status();
        StateDoc {
            oci_version: OCI_VERSION.into(),
            id: self.record.id.clone(),
            pid: if status == Status::Stopped { 0 } else { self.record.pid },
            status,
            bundle: self.record.bundle.clone(),
            rootfs: self.record.rootfs.clone(),
            created: self.record.created.clone(),
            owner: self.record.owner.clone(),
            annotations: self.record.annotations.clone(),
        }
    }

    /// The runtime spec's state, as hooks receive it on stdin.
    pub fn hook_state(&self, status: Status) -> serde_json::Value {
        let mut v = serde_json::json!({
            "ociVersion": OCI_VERSION,
            "id": self.record.id,
            "status": status,
            "pid": self.record.pid,
            "bundle": self.record.bundle,
        });
        if !self.record.annotations.is_empty() {
            v["annotations"] = serde_json::to_value(&self.record.annotations).unwrap_or_default();
        }
        if status == Status::Stopped {
            v.as_object_mut().map(|o| o.remove("pid"));
        }
        v
    }
}

/// Formats a time as RFC 3339 in UTC with nanoseconds, as runc's `created`. The calendar
/// arithmetic is humantime's rather than a copy of our own.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// The name of the calling user, from /etc/passwd, or the uid.
pub fn owner_name() -> String {
    let uid = sys::geteuid();
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2].parse() == Ok(uid))
        .map_or_else(|| uid.to_string(), |f| f[0].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn ids_that_could_escape_the_root_are_refused() {
        let root = StateRoot::new("/nonexistent");
        for id in ["", "..", "a/b", "x y"] {
            assert!(matches!(root.dir(id), Err(StateError::InvalidId { .. })), "{id}");
        }
        assert!(root.dir("abc-1.2_x+y").is_ok());
    }

    // A container whose init died is stopped, whatever its record says.
    #[test]
    fn dead_init_means_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::new(dir.path());
        let cdir = root.create("c1").unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let (start, _) = sys::proc_stat(pid).unwrap();
        let c = Container {
            dir: cdir,
            record: Record {
                id: "c1".into(),
                pid,
                start_time: start,
                bundle: "/b".into(),
                rootfs: "/b/rootfs".into(),
                created: String::new(),
                owner: String::new(),
                annotations: HashMap::new(),
                paused: false,
                rootless: false,
                cgroup: None,
                cgroups_path: None,
                own_cgroup: String::new(),
                systemd_cgroup: false,
                cgroup_state: None,
                resources: None,
                hooks: None,
                started: true,
            },
        };
        c.save().unwrap();
        child.wait().unwrap();
        let loaded = root.load("c1").unwrap();
        assert_eq!(loaded.status(), Status::Stopped);
        assert!(matches!(root.create("c1"), Err(StateError::Exists { .. })));
    }

    // The cgroup is reopened at the directories create recorded, controller by controller
    // (v1 controllers can sit at different paths), and a state file written before those
    // were recorded still loads and falls back to rebuilding from the cgroupsPath.
    #[test]
    fn recorded_cgroup_directories_are_reopened_and_old_state_files_load() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::new(dir.path());
        let cdir = root.create("c2").unwrap();
        let state: crate::cgroups::CgroupState = serde_json::from_value(serde_json::json!({
            "mode": "legacy", "root": "/sys/fs/cgroup", "inner": "/berth/c2",
            "paths": {"memory": "/sys/fs/cgroup/memory/a/berth/c2",
                      "pids": "/sys/fs/cgroup/pids/b/berth/c2"}
        }))
        .unwrap();
        let old = serde_json::json!({
            "id": "c2", "pid": 0, "start_time": 0, "bundle": "/b", "rootfs": "/b/rootfs",
            "created": "", "owner": "", "annotations": {}, "cgroup": "/berth/c2"
        });
        fs::write(cdir.join("state.json"), old.to_string()).unwrap();
        let mut c = root.load("c2").unwrap();
        assert_eq!(c.record.cgroup_state, None);
        assert!(c.cgroup_manager().is_some());

        c.record.cgroup_state = Some(state.clone());
        c.save().unwrap();
        let c = root.load("c2").unwrap();
        let m = c.cgroup_manager().unwrap();
        let mut paths = m.paths();
        paths.sort();
        assert_eq!(
            paths,
            [
                PathBuf::from("/sys/fs/cgroup/memory/a/berth/c2"),
                PathBuf::from("/sys/fs/cgroup/pids/b/berth/c2")
            ]
        );
        assert_eq!(m.state(), state);
    }
}
