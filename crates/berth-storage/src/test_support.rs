//! What the crate's tests share: running a closure in a forked child with namespaces of its
//! own, so that what it mounts disappears with it even when it fails.

use std::fs;

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `f` in a forked child and asserts that it succeeded; the child prints its error.
pub fn in_forked_child(f: impl FnOnce() -> Result<(), String>) {
    // SAFETY: the child only does namespace and file-system work in `f` and _exits; it never
    // returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let result = f();
        if let Err(e) = &result {
            eprintln!("{e}");
        }
        // SAFETY: ends the forked child without running the parent's destructors.
        unsafe { libc::_exit(i32::from(result.is_err())) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child failed");
}

/// Runs `f` in a forked child with a private mount namespace.
pub fn in_private_mount_ns(f: impl FnOnce() -> Result<(), String>) {
    in_forked_child(|| {
        // SAFETY: the forked child is single-threaded; the new namespace is its own.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
            .map_err(|e| format!("unshare: {e}"))?;
        rustix::mount::mount_change(
            "/",
            rustix::mount::MountPropagationFlags::PRIVATE
                | rustix::mount::MountPropagationFlags::REC,
        )
        .map_err(|e| format!("making / private: {e}"))?;
        f()
    })
}

/// Runs `f` in a forked child that is root of a new user namespace mapping only `uid` and
/// `gid`, with a mount namespace of its own.
pub fn in_private_user_ns(uid: u32, gid: u32, f: impl FnOnce() -> Result<(), String>) {
    in_forked_child(|| {
        // SAFETY: the forked child is single-threaded; the namespaces are its own.
        unsafe {
            rustix::thread::unshare_unsafe(
                rustix::thread::UnshareFlags::NEWUSER | rustix::thread::UnshareFlags::NEWNS,
            )
        }
        .map_err(|e| format!("unshare: {e}"))?;
        fs::write("/proc/self/setgroups", "deny").map_err(|e| format!("setgroups: {e}"))?;
        fs::write("/proc/self/uid_map", format!("0 {uid} 1"))
            .map_err(|e| format!("uid_map: {e}"))?;
        fs::write("/proc/self/gid_map", format!("0 {gid} 1"))
            .map_err(|e| format!("gid_map: {e}"))?;
        f()
    })
}
