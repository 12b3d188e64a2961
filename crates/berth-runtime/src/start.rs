//! `start` (runtime spec, "Lifecycle" steps 7–9): open the created container's exec fifo for
//! reading, which releases its init, then run the poststart hooks.

use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use crate::state::{Container, StateRoot, Status};
use crate::{hooks, sys, Error};

/// What went wrong while starting; each variant is a step.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start container {id}: it is {status}, not created")]
    NotCreated { id: String, status: Status },
    #[error("opening the exec fifo {path}: {source}")]
    OpenFifo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container {id}: the init exited before it was started")]
    InitDied { id: String },
}

/// Starts container `id`.
pub fn start(root: &StateRoot, id: &str) -> Result<Container, Error> {
    let mut c = root.load(id)?;
    let status = c.status();
    if status != Status::Created {
        return Err(StartError::NotCreated { id: id.to_owned(), status }.into());
    }
    let path = c.fifo();
    let fifo = sys::open(&path, libc::O_RDONLY | libc::O_NONBLOCK, 0)
        .map_err(|source| StartError::OpenFifo { path: path.clone(), source })?;
    // The init opens its end as soon as ours exists, then writes one byte and execs; poll so
    // that an init that died instead is noticed.
    loop {
        let mut pfd = libc::pollfd { fd: fifo.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: pfd is one valid pollfd for the call.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n > 0 && pfd.revents & libc::POLLIN != 0 {
            let mut b = [0u8; 1];
            // SAFETY: b is valid for one byte.
            let r = unsafe { libc::read(fifo.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, 1) };
            if r == 1 {
                break;
            }
        }
        if !c.init_alive() {
            return Err(StartError::InitDied { id: id.to_owned() }.into());
        }
    }
    let _ = std::fs::remove_file(&path);
    c.record.started = true;
    c.save()?;
    poststart(&c);
    Ok(c)
}

/// Runs the poststart hooks; a failure is a warning and the lifecycle goes on.
pub fn poststart(c: &Container) {
    let Some(list) = c.record.hooks.as_ref().and_then(|h| h.poststart().clone()) else { return };
    if let Err(e) = hooks::run("poststart", &list, &c.hook_state(Status::Running)) {
        tracing::warn!(id = %c.record.id, error = %e, "poststart hook failed");
        eprintln!("berth-oci: warning: {e}");
    }
}
