//! Spec generation: an image's config plus the user's run options become the OCI runtime spec
//! the runtime executes, by the rules Docker users expect and with Podman's defaults.
//!
//! - [`options`]: [`RunOptions`], the flags of `run`/`create` that shape the spec, and parsers
//!   for their small languages (`--ulimit`, `--tmpfs`, `--security-opt`, signals).
//! - [`env`]: the environment (image Env, `--env-file`, `-e`, defaults).
//! - [`user`]: `-u` resolved against the image's /etc/passwd and /etc/group.
//! - [`caps`]: capability names, Podman's default set, `--cap-add`/`--cap-drop`.
//! - [`idmap`]: a rootless container's uid and gid maps from /etc/subuid and /etc/subgid.
//! - [`mounts`]: Podman's default mounts, masked and read-only paths, tmpfs mounts and the
//!   per-container /etc/hosts, /etc/hostname and /etc/resolv.conf.
//! - [`generate`]: putting it together into an [`oci_spec::runtime::Spec`].
//!
//! Everything here is validated before anything is created: a bad flag fails with one line
//! naming the flag and the value, and no record, directory or mount exists yet.

pub mod caps;
pub mod env;
pub mod generate;
pub mod idmap;
pub mod mounts;
pub mod options;
pub mod resources;
pub mod user;

use std::path::PathBuf;

pub use generate::{
    generate, process_env, process_vars, GeneratedSpec, HostInfo, IdMap, SpecInput,
};
pub use mounts::EtcFiles;
pub use options::{NetworkMode, RunOptions, SeccompChoice, Ulimit};
pub use user::ResolvedUser;

/// Errors of spec generation, named after the input or step that failed; each names the flag
/// value, file or line at fault.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("reading env file {path}")]
    ReadEnvFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("env file {path} line {line}: {reason}")]
    EnvFileLine { path: PathBuf, line: usize, reason: String },
    #[error("invalid environment variable {entry:?}: {reason}")]
    EnvEntry { entry: String, reason: String },
    #[error("no command or entrypoint provided, and no CMD or ENTRYPOINT from the image")]
    NoCommand,
    #[error("invalid --entrypoint {value:?}: {reason}")]
    Entrypoint { value: String, reason: String },
    #[error("invalid working directory {dir:?}: it must be an absolute path")]
    WorkdirNotAbsolute { dir: String },
    #[error("reading {path} in the image")]
    ReadImageFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unable to find user {user}: no matching entries in the image's /etc/passwd")]
    UserNotFound { user: String },
    #[error("unable to find group {group}: no matching entries in the image's /etc/group")]
    GroupNotFound { group: String },
    #[error("invalid user {spec:?}: {reason}")]
    BadUser { spec: String, reason: String },
    #[error("unknown capability {name:?}")]
    UnknownCapability { name: String },
    #[error("capability {name:?} cannot be both added and dropped")]
    CapabilityAddedAndDropped { name: String },
    #[error("adding all capabilities and dropping all capabilities is not allowed")]
    CapabilityAllAndAll,
    #[error("invalid --ulimit {value:?}: {reason}")]
    BadUlimit { value: String, reason: String },
    #[error("invalid --tmpfs {value:?}: {reason}")]
    BadTmpfs { value: String, reason: String },
    #[error("duplicate mount destination {destination}")]
    DuplicateMount { destination: String },
    #[error("invalid --security-opt {value:?}: {reason}")]
    BadSecurityOpt { value: String, reason: String },
    #[error("seccomp profile {path}")]
    SeccompProfile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid signal {value:?}")]
    BadSignal { value: String },
    #[error("invalid {flag} {value:?}: {reason}")]
    BadKeyValue { flag: &'static str, value: String, reason: String },
    #[error("invalid hostname {value:?}: {reason}")]
    BadHostname { value: String, reason: String },
    #[error("{what} is not supported yet")]
    NotSupportedYet { what: String },
    #[error("listing host devices under {path}")]
    ScanDevices {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the host's {path}")]
    ReadHostFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}")]
    WriteEtcFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "user {user} has no subordinate ids in {file}: add a range, e.g. \
         `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`",
        file = file.display()
    )]
    NoSubordinateIds { user: String, file: PathBuf },
    #[error("preparing the seccomp filter")]
    Seccomp(#[source] berth_runtime::seccomp::SeccompError),
    #[error("building the runtime spec: {0}")]
    Build(String),
    #[error(transparent)]
    Resources(#[from] resources::ResourceError),
    #[error(transparent)]
    Volume(#[from] crate::volumes::VolumeError),
}
