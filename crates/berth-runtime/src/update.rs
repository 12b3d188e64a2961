//! `update`: new resource limits for a running container, written into its cgroup and kept in
//! its state, as `runc update` does.
//!
//! The cgroup is reopened from the directories create recorded, so an update reaches exactly
//! the cgroup the container runs in. A container without a cgroup (rootless without
//! delegation) cannot take limits, and a stopped one has nothing left to limit.

use oci_spec::runtime::LinuxResources;

use crate::state::{StateRoot, Status};
use crate::Error;

/// What went wrong while updating a container's resources.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("container {id} is stopped: update needs a created, running or paused container")]
    Stopped { id: String },
    #[error("container {id} is still being created: update it once create has returned")]
    Creating { id: String },
    #[error(
        "container {id} has no cgroup (rootless without cgroup delegation): its resources \
         cannot be updated"
    )]
    NoCgroup { id: String },
    #[error("updating the cgroup of container {id}")]
    Apply {
        id: String,
        #[source]
        source: crate::cgroups::Error,
    },
}

/// Writes `resources` (only the fields it sets) into the cgroup of container `id`, then merges
/// them into the resources kept in its state.
pub fn update(root: &StateRoot, id: &str, resources: &LinuxResources) -> Result<(), Error> {
    let mut c = root.load(id)?;
    match c.status() {
        Status::Stopped => return Err(UpdateError::Stopped { id: id.to_owned() }.into()),
        Status::Creating => return Err(UpdateError::Creating { id: id.to_owned() }.into()),
        Status::Created | Status::Running | Status::Paused => {}
    }

    // A cgroup the driver could not make (rootless) is recorded as disabled: refuse it here,
    // with the id, rather than as a resource the cgroup module cannot write.
    let disabled = c.record.cgroup_state.as_ref().is_some_and(|s| s.disabled.is_some());
    let cgroup = c
        .cgroup_manager()
        .filter(|_| !disabled)
        .ok_or_else(|| UpdateError::NoCgroup { id: id.to_owned() })?;
    cgroup.update(resources).map_err(|source| UpdateError::Apply { id: id.to_owned(), source })?;

    // Kept so that later reads of the container's limits see the update, as runc keeps them
    // in its state.json.
    let current = c.record.resources.take().unwrap_or_default();
    c.record.resources = Some(crate::cgroups::oci::merge(&current, resources));
    c.save()?;
    Ok(())
}
