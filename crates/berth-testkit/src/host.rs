//! This machine's facts that tests must work around, handled in code rather than by hand:
//! /dev/net/tun and /dev/fuse are mode 0600 here while rootless pasta, slirp4netns and
//! fuse-overlayfs need 0666 (Debian's usual mode), and the hard
//! RLIMIT_NOFILE (20000 here) is below what Podman's defaults ask for.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

pub const TUN: &str = "/dev/net/tun";
pub const FUSE: &str = "/dev/fuse";

/// Makes the host ready for rootless tests: /dev/net/tun (networking) and /dev/fuse
/// (fuse-overlayfs) readable and writable by everyone, as distributions that ship rootless
/// Podman set them. Needs root; idempotent.
pub fn prepare() -> Result<()> {
    for device in [TUN, FUSE].map(Path::new) {
        if !device.exists() {
            continue;
        }
        let mode = fs::metadata(device)?.permissions().mode();
        if mode & 0o666 != 0o666 {
            fs::set_permissions(device, fs::Permissions::from_mode((mode & !0o777) | 0o666))
                .with_context(|| format!("making {} mode 0666", device.display()))?;
        }
    }
    Ok(())
}

/// The soft and hard RLIMIT_NOFILE of this process.
pub fn nofile_limit() -> (u64, u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct we own and reads nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0, "getrlimit(RLIMIT_NOFILE) cannot fail for a valid resource");
    (limit.rlim_cur, limit.rlim_max)
}

/// The `--ulimit` flag that keeps Podman (and berth, which takes Podman's defaults) within
/// this machine's hard limit: Podman asks for 1048576 open files, more than the host allows.
pub fn podman_ulimit_args() -> [String; 2] {
    let (_, hard) = nofile_limit();
    ["--ulimit".to_owned(), format!("nofile={hard}:{hard}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_opens_the_tun_device_to_everyone() {
        prepare().unwrap();
        if Path::new(TUN).exists() {
            assert_eq!(fs::metadata(TUN).unwrap().permissions().mode() & 0o777, 0o666);
        }
    }

    // Podman started with these flags succeeds where its default would exceed the hard limit.
    #[test]
    fn ulimit_args_fit_under_the_hard_limit() {
        let (soft, hard) = nofile_limit();
        assert!(soft <= hard);
        let args = podman_ulimit_args();
        assert_eq!(args[0], "--ulimit");
        assert_eq!(args[1], format!("nofile={hard}:{hard}"));
    }
}
