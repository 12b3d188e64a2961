//! The engine's state: an embedded SQLite database of containers (later pods, volumes and
//! networks) plus per-boot runtime state under the runroot.
//!
//! The database lives in the data root (`state.db`, next to the image store) and is shared by
//! every berth process of one user: each process opens its own connection, and SQLite's
//! locking, in WAL mode with `BEGIN IMMEDIATE` for every write, keeps concurrent commands from
//! different shells consistent. That is the only lock two unrelated commands ever share; work on
//! one container (start, stop, exec) takes that container's own lock file under the runroot
//! ([`lock`]), so no global lock sits on the hot path of `run` or `exec`.
//!
//! What a record says about a process can go stale — the machine rebooted, or the monitor that
//! would have recorded the exit was killed with SIGKILL. [`reconcile`] compares each live
//! record with the kernel (the boot id, the pid and its start time) and marks the dead ones
//! exited, so `ps` tells the truth.

pub mod db;
pub mod ids;
pub mod lock;
pub mod reconcile;
pub mod time;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use db::StateDb;
pub use ids::{generate_id, generate_name, validate_name};
pub use lock::{ContainerLock, ContainerLocks};
pub use reconcile::{current_boot_id, ProcProbe, ProcessProbe};
pub use time::Timestamp;

/// Errors of the state database, its lock files and reconciliation, named after the step that
/// failed. Each carries the path, id or name it was about.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("creating the directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the state database {path}")]
    OpenDatabase {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("configuring the state database {path}")]
    ConfigureDatabase {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("migrating the state database {path} from schema version {from}")]
    MigrateSchema {
        path: PathBuf,
        from: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the state database {path} has schema version {found}, newer than this berth \
         understands ({supported})"
    )]
    SchemaTooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("querying the state database: {what}")]
    Query {
        what: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("writing the state database: {what}")]
    Write {
        what: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("decoding field {field} of container {id}: {reason}")]
    Decode { id: String, field: &'static str, reason: String },
    #[error("encoding field {field} of container {id}")]
    Encode {
        id: String,
        field: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the container name {name:?} is already in use by {id}")]
    NameInUse { name: String, id: String },
    #[error("the container id {id} is already in use")]
    IdInUse { id: String },
    #[error(
        "invalid container name {name:?}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]* \
         and be at most 253 characters"
    )]
    InvalidName { name: String },
    #[error("invalid container id {id:?}: ids are 64 lowercase hex digits")]
    InvalidId { id: String },
    #[error("no container with name or id {query:?} found")]
    NoSuchContainer { query: String },
    #[error("the container id prefix {prefix:?} is ambiguous: it matches {count} containers")]
    AmbiguousPrefix { prefix: String, count: usize },
    #[error("container {id} cannot go from {from} to {to}")]
    InvalidTransition { id: String, from: ContainerState, to: ContainerState },
    #[error("generating a random container id from /dev/urandom")]
    ReadRandom(#[source] std::io::Error),
    #[error("creating the lock directory {path}")]
    CreateLockDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the lock file {path}")]
    OpenLock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("locking {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("removing the lock file {path}")]
    RemoveLock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the boot id from {path}")]
    ReadBootId {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The states of a container, with Podman's names (`podman ps --format {{.State}}`).
///
/// `configured`: the record exists, no runtime state yet. `created`: the runtime has set the
/// container up and its init process waits for `start`. `running`, `paused`: as the words say.
/// `stopped`: the process has exited, cleanup (unmounting, the `--rm` removal) is under way.
/// `exited`: the process has exited and is cleaned up; its exit code is recorded if known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Configured,
    Created,
    Running,
    Paused,
    Stopped,
    Exited,
}

impl ContainerState {
    pub const ALL: [ContainerState; 6] =
        [Self::Configured, Self::Created, Self::Running, Self::Paused, Self::Stopped, Self::Exited];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Configured => "configured",
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Exited => "exited",
        }
    }

    /// Whether a process of the container may exist (so reconciliation must check it).
    pub fn has_process(self) -> bool {
        matches!(self, Self::Created | Self::Running | Self::Paused)
    }

    /// Whether the state machine allows going from `self` to `to`.
    ///
    /// `exited` and `stopped` are reachable from every state that has a process (a container
    /// can die at any moment), `created` again from the finished states (restart), and
    /// `configured` only from the finished states, when the runtime state is torn down.
    pub fn can_become(self, to: ContainerState) -> bool {
        use ContainerState::*;
        matches!(
            (self, to),
            (Configured, Created)
                | (Created | Stopped | Exited, Running)
                | (Running, Paused)
                | (Paused, Running)
                | (Created | Running | Paused, Stopped)
                | (Created | Running | Paused | Stopped, Exited)
                | (Stopped | Exited, Created)
                | (Stopped | Exited | Created, Configured)
        )
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ContainerState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown container state {s:?}"))
    }
}

/// What `create` hands the database: everything about a container that is fixed when it is
/// made. The id is chosen by the caller (the runtime spec needs it before the record exists);
/// the name is generated when none is given.
#[derive(Debug, Clone, PartialEq)]
pub struct NewContainer {
    pub id: String,
    pub name: Option<String>,
    pub image_id: String,
    pub image_name: String,
    /// The generated OCI runtime spec, as the JSON the runtime will read.
    pub spec_json: String,
    /// The options the container was created with (`RunOptions` and what was derived from
    /// them), kept for `inspect` and for re-creating the runtime state on restart.
    pub create_options: serde_json::Value,
    pub labels: BTreeMap<String, String>,
}

/// One container as the database holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub image_id: String,
    pub image_name: String,
    pub spec_json: String,
    pub create_options: serde_json::Value,
    pub labels: BTreeMap<String, String>,
    pub created_at: Timestamp,
    pub state: ContainerState,
    /// The container's init process on the host, while it has one.
    pub pid: Option<i32>,
    /// That process's start time in clock ticks since boot (field 22 of /proc/PID/stat), so a
    /// reused pid is not mistaken for the container.
    pub pid_start_time: Option<u64>,
    /// The kernel boot the pid belongs to (/proc/sys/kernel/random/boot_id).
    pub boot_id: Option<String>,
    pub exit_code: Option<i32>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Why the last state change happened when it was not the process's own doing, e.g. that
    /// reconciliation found the process gone.
    pub state_error: Option<String>,
}

/// A change of state, applied atomically and only if [`ContainerState::can_become`] allows it.
#[derive(Debug, Clone, PartialEq)]
pub enum StateChange {
    Created {
        pid: Option<i32>,
        pid_start_time: Option<u64>,
        boot_id: String,
    },
    Running {
        pid: i32,
        pid_start_time: u64,
        boot_id: String,
        at: Timestamp,
    },
    Paused,
    Unpaused,
    Stopped,
    Exited {
        exit_code: Option<i32>,
        at: Timestamp,
        error: Option<String>,
    },
    /// Back to `configured`: the runtime state was torn down (after exit, or a failed start).
    Reset,
}

impl StateChange {
    pub fn target(&self) -> ContainerState {
        match self {
            Self::Created { .. } => ContainerState::Created,
            Self::Running { .. } | Self::Unpaused => ContainerState::Running,
            Self::Paused => ContainerState::Paused,
            Self::Stopped => ContainerState::Stopped,
            Self::Exited { .. } => ContainerState::Exited,
            Self::Reset => ContainerState::Configured,
        }
    }
}
