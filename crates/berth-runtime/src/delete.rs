//! `delete` (runtime spec, "Lifecycle" steps 11–13): kill what is left with `--force`, run
//! the poststop hooks, and remove the container's state.

use std::time::{Duration, Instant};

use crate::state::{StateRoot, Status};
use crate::{hooks, kill, sys, Error};

/// What went wrong while deleting.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("cannot delete container {id} that is not stopped: {status}")]
    NotStopped { id: String, status: Status },
    #[error("container {id}: processes still alive after SIGKILL")]
    StillAlive { id: String },
}

/// Deletes container `id`; one that is not stopped (created, running, paused) only with
/// `force`.
pub fn delete(root: &StateRoot, id: &str, force: bool) -> Result<(), Error> {
    let c = root.load(id)?;
    let status = c.status();
    match status {
        Status::Stopped | Status::Creating => {}
        // The spec: deleting a container that is not stopped is an error, created included.
        _ if force => kill_all(&c)?,
        _ => return Err(DeleteError::NotStopped { id: id.to_owned(), status }.into()),
    }
    if let Some(cg) = c.cgroup_manager() {
        if let Err(e) = cg.destroy() {
            tracing::warn!(id, error = %e, "removing the cgroup");
        }
    }
    if let Some(list) = c.record.hooks.as_ref().and_then(|h| h.poststop().clone()) {
        if let Err(e) = hooks::run("poststop", &list, &c.hook_state(Status::Stopped)) {
            tracing::warn!(id, error = %e, "poststop hook failed");
            eprintln!("berth-oci: warning: {e}");
        }
    }
    let _ = std::fs::remove_dir_all(&c.dir);
    Ok(())
}

fn kill_all(c: &crate::state::Container) -> Result<(), Error> {
    let pids = kill::container_pids(c);
    for pid in &pids {
        let _ = sys::kill(*pid, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.init_alive() {
        if Instant::now() > deadline {
            return Err(DeleteError::StillAlive { id: c.record.id.clone() }.into());
        }
        // The init may be our child (run --detach from this process); reap it if so.
        // SAFETY: WNOHANG waitpid only reaps a child of ours, if any.
        unsafe { libc::waitpid(c.record.pid, std::ptr::null_mut(), libc::WNOHANG) };
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}
