//! berth-testkit gives berth's tests the real parts they run against, each made or started on
//! this machine from Debian's packages: a busybox root file system and OCI image layout
//! (busybox-static), a bigger Debian image for benchmarks (debootstrap), the reference
//! registry in open, htpasswd and TLS modes (docker-registry), an unprivileged user with
//! subordinate id ranges for rootless tests (uidmap), a network namespace that stands in for
//! the host in network tests ([`netns`]); and [`image_tree`], which reads a built image back
//! as its config and file tree for comparisons.
//!
//! Every piece cleans up after itself when dropped, also when the test panics. Nothing here
//! is shipped; tests and benchmarks depend on it as a dev-dependency.

pub mod busybox;
pub mod cli;
pub mod debian;
pub mod digest;
pub mod host;
pub mod image_tree;
pub mod layout;
pub mod netns;
pub mod pty;
pub mod registry;
pub mod rootless_cli;
pub mod user;

use std::path::PathBuf;

/// A directory for caches that outlive one test run and one clone (the debootstrap'd image):
/// /var/cache/berth-testkit unless BERTH_TEST_CACHE says otherwise.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("BERTH_TEST_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/berth-testkit"), PathBuf::from)
}
