//! `pause` and `resume`: freeze and thaw every process of the container with the cgroup
//! freezer.
//!
//! A container without a cgroup (rootless without delegation) cannot be paused: SIGSTOP would
//! be a poor imitation a process can observe and undo.

use crate::state::{StateRoot, Status};
use crate::Error;

/// What went wrong while pausing or resuming.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("container {id} is {status}: {verb} needs a {needed} container")]
    WrongStatus { id: String, status: Status, verb: &'static str, needed: &'static str },
    #[error("{verb}: not supported yet for a container without a cgroup")]
    NoFreezer { verb: &'static str },
    #[error("{verb}: {source}")]
    Freezer {
        verb: &'static str,
        #[source]
        source: crate::cgroups::Error,
    },
}

/// Freezes container `id`.
pub fn pause(root: &StateRoot, id: &str) -> Result<(), Error> {
    set_frozen(root, id, true)
}

/// Thaws container `id`.
pub fn resume(root: &StateRoot, id: &str) -> Result<(), Error> {
    set_frozen(root, id, false)
}

fn set_frozen(root: &StateRoot, id: &str, frozen: bool) -> Result<(), Error> {
    let c = root.load(id)?;
    let status = c.status();
    let (verb, needed, ok) = if frozen {
        ("pause", "running", status == Status::Running)
    } else {
        ("resume", "paused", status == Status::Paused)
    };
    if !ok {
        return Err(PauseError::WrongStatus { id: id.to_owned(), status, verb, needed }.into());
    }
    let cg = c.cgroup_manager().ok_or(PauseError::NoFreezer { verb })?;
    let res = if frozen { cg.freeze() } else { cg.thaw() };
    res.map_err(|source| PauseError::Freezer { verb, source })?;
    let mut c = c;
    c.record.paused = frozen;
    c.save()?;
    Ok(())
}
