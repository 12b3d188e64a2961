//! Containers as the user sees them: what `create` stores with a record
//! ([`CreateOptions`]), the rows of `ps` ([`ContainerSummary`]) and the document of `inspect`
//! ([`InspectContainer`]), shaped and named as Podman's, so `--format` templates and scripts
//! written against Podman's JSON read berth's the same.
//!
//! Both views are built from a database record alone (its stored spec and options): `ps` with
//! a hundred containers reads one table and touches no other file.

pub mod filter;
pub mod inspect;
pub mod lifecycle;
pub mod log_files;
pub mod logs;
pub mod ops;
pub mod store;
pub mod summary;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spec::{NetworkMode, RunOptions, SeccompChoice};
use crate::state::ContainerRecord;

pub use filter::{select, PsFilter};
pub use inspect::InspectContainer;
pub use store::{ContainerStore, CreateRequest};
pub use summary::ContainerSummary;

/// Errors of the container store and of building the user's views of a container.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    State(crate::state::StateError),
    #[error(transparent)]
    Spec(crate::spec::SpecError),
    #[error("cannot remove container {name}: it is {state} (stop it first)")]
    Live { name: String, state: crate::state::ContainerState },
    #[error("writing {path}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("removing {path}")]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id}: encoding its spec and options")]
    EncodeSpec {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("container {id}: its stored create options are unreadable")]
    DecodeCreateOptions {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid filter {value:?}: {reason}")]
    BadFilter { value: String, reason: String },
    #[error("{what} is not supported yet")]
    NotSupportedYet { what: String },
    #[error(transparent)]
    Duties(#[from] crate::monitor::duties::DutyError),
    #[error("container {id}: its stored runtime spec is unreadable")]
    DecodeSpec {
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

/// What `create` keeps with a record besides the spec: the user's options and what was
/// decided from them, for `inspect`, `stop` (signal and timeout) and `start` (paths).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CreateOptions {
    pub run: RunOptions,
    /// `--rm`
    pub auto_remove: bool,
    /// The command line that created the container, as `inspect` shows it.
    pub create_command: Vec<String>,
    /// The entrypoint and command the process line was made of.
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// The user as given (`-u`, else the image's User).
    pub user: String,
    pub stop_signal: i32,
    pub stop_timeout: u32,
    pub seccomp: SeccompChoice,
    pub network: NetworkMode,
    pub hostname: String,
    /// The image's manifest digest, if known.
    pub image_digest: Option<String>,
    /// The mounted root file system.
    pub rootfs: PathBuf,
    /// The container's runtime directory (etc files, pid file, attach socket).
    pub userdata_dir: PathBuf,
    /// The container's log (k8s-file format).
    pub log_path: Option<PathBuf>,
    /// The storage driver that holds the root (`overlay`, `fuse-overlayfs`).
    pub storage_driver: String,
    /// The restart policy, healthcheck and log driver, resolved (issue 7).
    pub duties: crate::monitor::duties::Duties,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            run: RunOptions::default(),
            auto_remove: false,
            create_command: Vec::new(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            user: String::new(),
            stop_signal: 15,
            stop_timeout: crate::spec::options::DEFAULT_STOP_TIMEOUT,
            seccomp: SeccompChoice::Default,
            network: NetworkMode::None,
            hostname: String::new(),
            image_digest: None,
            rootfs: PathBuf::new(),
            userdata_dir: PathBuf::new(),
            log_path: None,
            storage_driver: "overlay".to_owned(),
            duties: Default::default(),
        }
    }
}

impl CreateOptions {
    /// The options stored with `record`.
    pub fn of(record: &ContainerRecord) -> Result<Self, ContainerError> {
        serde_json::from_value(record.create_options.clone())
            .map_err(|source| ContainerError::DecodeCreateOptions { id: record.id.clone(), source })
    }
}

/// The two fields of a record's [`CreateOptions`] that reconciling reads of every container
/// (`ps` reconciles), decoded without the rest.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RemovalOptions {
    /// `--rm`
    pub auto_remove: bool,
    /// Where the pid file of the container's runner (monitor or foreground run) is.
    pub userdata_dir: PathBuf,
}

impl RemovalOptions {
    /// Those fields of `record`'s options (defaults where they do not decode).
    pub(crate) fn of(record: &ContainerRecord) -> Self {
        Self::deserialize(&record.create_options).unwrap_or_default()
    }
}

/// The runtime spec stored with `record`, as JSON (views read a few fields, not the typed
/// spec, so a record written by a newer berth still shows).
pub(crate) fn spec_value(record: &ContainerRecord) -> Result<serde_json::Value, ContainerError> {
    serde_json::from_str(&record.spec_json)
        .map_err(|source| ContainerError::DecodeSpec { id: record.id.clone(), source })
}

/// The mounts a user asked for (or `--read-only` added), not the defaults every container has.
pub(crate) fn user_mounts(spec: &serde_json::Value) -> Vec<&serde_json::Value> {
    const DEFAULTS: &[&str] = &[
        "/proc",
        "/dev",
        "/sys",
        "/dev/pts",
        "/dev/mqueue",
        "/dev/shm",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/sys/fs/cgroup",
    ];
    spec["mounts"]
        .as_array()
        .map(|mounts| {
            mounts
                .iter()
                .filter(|m| !m["destination"].as_str().is_some_and(|d| DEFAULTS.contains(&d)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use berth_image::config::ContainerConfig;

    use super::*;
    use crate::spec::{generate, HostInfo, SpecInput};
    use crate::state::{ContainerState, Timestamp};

    /// A record as `create` would store it for busybox with `opts`, via the real generator.
    pub(crate) fn record_for(opts: RunOptions, rootfs: &Path) -> ContainerRecord {
        let id = "e65807fe309e629d1b72caa8d9db5e6d7b9eff29c8ded6dec4a5b59b630333b0".to_owned();
        let image = ContainerConfig {
            env: Some(vec![format!("PATH={}", crate::spec::env::DEFAULT_PATH)]),
            cmd: Some(vec!["sh".into()]),
            labels: Some(BTreeMap::from([(
                "org.opencontainers.image.title".into(),
                "busybox".into(),
            )])),
            ..Default::default()
        };
        let host = HostInfo {
            rootless: false,
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            nofile_hard: 20_000,
            nproc_hard: 96_362,
            cgroup_v2: false,
            hostname: "vm".into(),
            dev_dir: "/dev".into(),
        };
        let userdata = PathBuf::from("/run/berth/containers").join(&id).join("userdata");
        let generated = generate(&SpecInput {
            id: &id,
            image: Some(&image),
            rootfs,
            options: &opts,
            host: &host,
            userdata_dir: &userdata,
            cgroups_path: None,
            host_env: &|_| None,
            host_vars: &Vec::new,
        })
        .unwrap();
        let create = CreateOptions {
            run: opts.clone(),
            create_command: vec!["berth".into(), "create".into(), "busybox".into()],
            entrypoint: generated.entrypoint.clone(),
            cmd: generated.cmd.clone(),
            user: generated.user_spec.clone(),
            stop_signal: generated.stop_signal,
            stop_timeout: generated.stop_timeout,
            seccomp: generated.seccomp.clone(),
            network: generated.network,
            hostname: generated.hostname.clone(),
            image_digest: Some(format!("sha256:{}", "d".repeat(64))),
            rootfs: rootfs.to_owned(),
            userdata_dir: userdata.clone(),
            log_path: Some(userdata.join("ctr.log")),
            ..Default::default()
        };
        ContainerRecord {
            id,
            name: opts.name.clone().unwrap_or_else(|| "insp".into()),
            image_id: "f".repeat(64),
            image_name: "localhost/busybox:latest".into(),
            spec_json: serde_json::to_string(&generated.spec).unwrap(),
            create_options: serde_json::to_value(&create).unwrap(),
            labels: generated.labels,
            created_at: Timestamp(1_796_295_102_857_105_877),
            state: ContainerState::Configured,
            pid: None,
            pid_start_time: None,
            boot_id: None,
            exit_code: None,
            started_at: None,
            finished_at: None,
            state_error: None,
        }
    }
}
