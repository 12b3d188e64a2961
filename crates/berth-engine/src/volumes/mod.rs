//! Volumes: named volumes kept in the state database with their data under
//! `ROOT/volumes/NAME/_data`, and the `-v`/`--mount` flags of `run`/`create` resolved into the
//! runtime spec's bind and tmpfs mounts.
//!
//! - [`parse`]: the `-v SRC:DST[:OPTS]` and `--mount type=…` languages.
//! - [`store`]: the `volumes` table (its own, in `ROOT/state.db`) and the data directories.
//! - [`copy`]: Docker's copy-up: a fresh volume mounted over a path the image has content at
//!   gets that content (modes, owners, links) the first time it is mounted.
//!
//! [`prepare`] is the one call of the create path: it validates the flags, creates the named
//! and anonymous volumes that do not exist yet (anonymous ones for the image's VOLUME entries
//! too), copies up, and returns the run options with the resolved mounts, which
//! [`spec_mounts`] turns into spec entries and which `volume rm` reads to know which volumes
//! are in use.

pub mod copy;
pub mod parse;
pub mod store;

use std::path::{Path, PathBuf};

use berth_image::config::ContainerConfig;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use parse::{MountKind, MountRequest};
pub use store::{Volume, VolumeStore};

use crate::spec::{HostInfo, RunOptions};

/// Errors of volumes and of the mount flags; each names the volume, flag value or path.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("invalid {flag} {value:?}: {reason}")]
    BadFlag { flag: &'static str, value: String, reason: String },
    #[error("invalid volume name {name:?}: names hold letters, digits, '_', '.' and '-', and start with a letter or digit")]
    BadName { name: String },
    #[error("{flag} {value:?}: the host path {path} does not exist")]
    MissingSource { flag: &'static str, value: String, path: PathBuf },
    #[error("duplicate mount destination {destination}")]
    DuplicateDestination { destination: String },
    #[error("no such volume: {name}")]
    NoSuchVolume { name: String },
    #[error("volume {name} already exists")]
    Exists { name: String },
    #[error("volume {name} is being used by the following container(s): {containers}: volume is being used")]
    InUse { name: String, containers: String },
    #[error("opening the volume database {path}")]
    OpenDatabase {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("volume database: {what}")]
    Query {
        what: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("reading the containers that use volumes")]
    Containers(#[source] crate::state::StateError),
    #[error("creating the volume directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("removing the volume directory {path}")]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("copying the image's {path} into volume {name}")]
    CopyUp {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is not supported yet")]
    NotSupportedYet { what: String },
    #[error(transparent)]
    Resources(#[from] crate::spec::resources::ResourceError),
    #[error(transparent)]
    Init(#[from] crate::init::InitError),
    #[error(transparent)]
    User(Box<crate::spec::SpecError>),
}

/// The mount flags of `run`/`create`, as typed, and what they resolved to at create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VolumeOptions {
    /// `-v, --volume SRC:DST[:OPTIONS] | DST`
    pub volume: Vec<String>,
    /// `--mount type=bind|volume|tmpfs,…`
    pub mount: Vec<String>,
    /// Filled in by [`prepare`]: every mount the container gets, volumes by name.
    pub resolved_mounts: Vec<ResolvedMount>,
}

/// One mount as the container gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedMount {
    pub kind: MountKind,
    pub destination: String,
    /// The host path (a bind or a volume's `_data`); empty for tmpfs.
    pub source: PathBuf,
    /// The volume's name, for volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    pub read_only: bool,
    /// Mount options besides ro/rw (propagation, tmpfs size and mode).
    pub options: Vec<String>,
}

/// Resolves the mount flags of a new container whose root is mounted at `rootfs`: validates
/// them, creates the volumes that do not exist yet, copies up, and returns the options with
/// [`VolumeOptions::resolved_mounts`] filled in. The resource flags are validated first too,
/// so that a bad limit fails before any volume is made, and `--init` is resolved to the host
/// file the container's init is mounted from ([`crate::init::prepare`]).
pub fn prepare(
    root: &Path,
    options: &RunOptions,
    image: Option<&ContainerConfig>,
    rootfs: &Path,
    host: &HostInfo,
) -> Result<RunOptions, VolumeError> {
    options.resources.parse(host)?;
    let init = crate::init::prepare(root, &options.init)?;
    let mut requests = Vec::new();
    for value in &options.volumes.volume {
        requests.push(MountRequest::parse_volume_flag(value)?);
    }
    for value in &options.volumes.mount {
        requests.push(MountRequest::parse_mount_flag(value)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    for request in &requests {
        if !seen.insert(request.destination.clone()) {
            return Err(VolumeError::DuplicateDestination {
                destination: request.destination.clone(),
            });
        }
    }
    // The image's VOLUME entries not covered by a flag get an anonymous volume each.
    if let Some(volumes) = image.and_then(|i| i.volumes.as_ref()) {
        for path in volumes.keys() {
            let destination = crate::spec::options::normalize_destination(path);
            if seen.insert(destination.clone()) {
                requests.push(MountRequest::anonymous(destination));
            }
        }
    }
    if requests.is_empty() {
        return Ok(RunOptions { init, ..options.clone() });
    }
    // The user the container runs as, before any volume is made: a fresh volume is given to
    // it, and a bad user must leave nothing behind.
    let user_spec = options.user.as_deref().or(image.and_then(|i| i.user.as_deref())).unwrap_or("");
    let user = crate::spec::user::resolve(rootfs, user_spec, &options.group_add)
        .map_err(|e| VolumeError::User(Box::new(e)))?;

    let mut store = VolumeStore::open(root)?;
    let mut resolved = Vec::new();
    for request in requests {
        let mount = match request.kind {
            MountKind::Bind => ResolvedMount {
                kind: MountKind::Bind,
                destination: request.destination,
                source: request.source.into(),
                volume: None,
                read_only: request.read_only,
                options: request.options,
            },
            MountKind::Tmpfs => ResolvedMount {
                kind: MountKind::Tmpfs,
                destination: request.destination,
                source: PathBuf::new(),
                volume: None,
                read_only: request.read_only,
                options: request.options,
            },
            MountKind::Volume => {
                let anonymous = request.source.is_empty();
                let volume = if anonymous {
                    store.create(None, &Default::default(), true)?
                } else {
                    match store.get(&request.source) {
                        Ok(v) => v,
                        Err(VolumeError::NoSuchVolume { .. }) => {
                            store.create(Some(&request.source), &Default::default(), false)?
                        }
                        Err(e) => return Err(e),
                    }
                };
                if volume.needs_copy_up {
                    // Podman's rule for a volume's first mount: it belongs to the container's
                    // user, unless the image has the directory, whose owner and mode (and,
                    // Docker's copy-up, content) it takes. Rootless, berth runs inside the
                    // user namespace, so these are the container's ids, mapped by the kernel.
                    let copy_error = |source| VolumeError::CopyUp {
                        name: volume.name.clone(),
                        path: PathBuf::from(&request.destination),
                        source,
                    };
                    std::os::unix::fs::chown(&volume.mountpoint, Some(user.uid), Some(user.gid))
                        .map_err(copy_error)?;
                    if !request.no_copy {
                        let inside = rootfs.join(request.destination.trim_start_matches('/'));
                        copy::copy_up(&inside, &volume.mountpoint).map_err(copy_error)?;
                    }
                    store.mark_copied_up(&volume.name)?;
                }
                ResolvedMount {
                    kind: MountKind::Volume,
                    destination: request.destination,
                    source: volume.mountpoint.clone(),
                    volume: Some(volume.name),
                    read_only: request.read_only,
                    options: request.options,
                }
            }
        };
        resolved.push(mount);
    }
    let mut out = RunOptions { init, ..options.clone() };
    out.volumes.resolved_mounts = resolved;
    Ok(out)
}

/// The spec's `mounts` entries for the resolved mounts of `options`, in order.
pub fn spec_mounts(options: &VolumeOptions) -> Vec<Value> {
    options
        .resolved_mounts
        .iter()
        .map(|m| {
            let mut opts: Vec<String> = Vec::new();
            match m.kind {
                MountKind::Tmpfs => {
                    opts.extend(["nosuid", "nodev"].map(str::to_owned));
                    opts.push(if m.read_only { "ro" } else { "rw" }.to_owned());
                    opts.extend(m.options.iter().cloned());
                    json!({
                        "destination": m.destination,
                        "type": "tmpfs",
                        "source": "tmpfs",
                        "options": opts,
                    })
                }
                MountKind::Bind | MountKind::Volume => {
                    opts.push("rbind".to_owned());
                    if !m.options.iter().any(|o| {
                        o.contains("private") || o.contains("shared") || o.contains("slave")
                    }) {
                        opts.push("rprivate".to_owned());
                    }
                    opts.extend(m.options.iter().cloned());
                    opts.push(if m.read_only { "ro" } else { "rw" }.to_owned());
                    if m.kind == MountKind::Volume {
                        opts.extend(["nosuid", "nodev"].map(str::to_owned));
                    }
                    json!({
                        "destination": m.destination,
                        "type": "bind",
                        "source": m.source,
                        "options": opts,
                    })
                }
            }
        })
        .collect()
}

/// The volumes each container uses: (volume name, container name) pairs, from the container
/// records' resolved mounts.
pub fn users(root: &Path) -> Result<Vec<(String, String)>, VolumeError> {
    let db =
        crate::state::StateDb::open(&root.join("state.db")).map_err(VolumeError::Containers)?;
    let records = db.list().map_err(VolumeError::Containers)?;
    let mut out = Vec::new();
    for record in records {
        let mounts = &record.create_options["run"]["resolvedMounts"];
        for mount in mounts.as_array().into_iter().flatten() {
            if let Some(name) = mount["volume"].as_str() {
                out.push((name.to_owned(), record.name.clone()));
            }
        }
    }
    Ok(out)
}

/// Removes the anonymous volumes of `container` (a record already removed from the database),
/// as `rm -v` and `run --rm` do in Podman: named volumes stay, and so does an anonymous one
/// another container still uses (`--volumes-from`-style sharing, or a `-v HASH:/path`).
/// Returns the names removed.
pub fn remove_anonymous(
    root: &Path,
    container: &crate::state::ContainerRecord,
) -> Result<Vec<String>, VolumeError> {
    let mounts = &container.create_options["run"]["resolvedMounts"];
    let names: Vec<&str> =
        mounts.as_array().into_iter().flatten().filter_map(|m| m["volume"].as_str()).collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut store = VolumeStore::open(root)?;
    let users = users(root)?;
    let mut removed = Vec::new();
    for name in names {
        let volume = match store.get(name) {
            Ok(v) => v,
            // Removed already (a concurrent `rm -v`, or `volume rm` after the container went).
            Err(VolumeError::NoSuchVolume { .. }) => continue,
            Err(e) => return Err(e),
        };
        let using: Vec<String> = users
            .iter()
            .filter(|(v, c)| v == name && *c != container.name)
            .map(|(_, c)| c.clone())
            .collect();
        if !volume.anonymous || !using.is_empty() {
            continue;
        }
        store.remove(name, &[])?;
        removed.push(name.to_owned());
    }
    Ok(removed)
}
