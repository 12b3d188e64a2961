//! The facts about this berth process that every container operation depends on, decided once
//! at startup by the command line and passed down: where the data and runtime roots are,
//! whether berth runs rootless, and which storage driver mounts container roots.
//!
//! Nothing below this value looks at the effective uid to decide whether it is "root": inside
//! the rootless user namespace berth's euid is 0 but it is not real root, and only the code
//! that builds the context knows which is the case.

use std::path::{Path, PathBuf};

use berth_storage::Driver;

/// What a berth process knows about how it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineContext {
    /// The data root (images, state.db, container layers).
    pub root: PathBuf,
    /// The per-boot runtime root (locks, runtime state, mounts, monitors' sockets).
    pub runroot: PathBuf,
    /// berth runs for an unprivileged user (possibly inside its user namespace).
    pub rootless: bool,
    /// How container roots are mounted.
    pub storage_driver: Driver,
}

impl EngineContext {
    /// A rootful context: real root, native overlay.
    pub fn rootful(root: &Path, runroot: &Path) -> Self {
        Self {
            root: root.to_owned(),
            runroot: runroot.to_owned(),
            rootless: false,
            storage_driver: Driver::Overlay,
        }
    }

    /// The context for this process: rootful when the effective uid is 0 and berth is not in
    /// a user namespace of its own, rootless otherwise. Rootless, the storage driver is what
    /// [`berth_storage::mount::rootless_driver`] probed for this data root (native overlay in
    /// the user namespace, else fuse-overlayfs); a probe that fails is logged and native
    /// overlay tried, whose mount error then names the cause — never a copying driver.
    pub fn detect(root: &Path, runroot: &Path) -> Self {
        let rootless = !rustix::process::geteuid().is_root() || in_child_user_namespace();
        let storage_driver = if rootless {
            berth_storage::mount::rootless_driver(root).unwrap_or_else(|err| {
                tracing::warn!(root = %root.display(), error = %err, "storage driver probe failed");
                Driver::OverlayUserxattr
            })
        } else {
            Driver::Overlay
        };
        Self { rootless, storage_driver, ..Self::rootful(root, runroot) }
    }

    /// The name inspect shows for the storage driver.
    pub fn storage_driver_name(&self) -> &'static str {
        self.storage_driver.name()
    }

    /// Where berth-runtime keeps its per-container state.
    pub fn runtime_root(&self) -> PathBuf {
        self.runroot.join("runtime")
    }
}

/// Whether this process is in a user namespace other than the initial one: its uid map is
/// not the identity map of all ids.
fn in_child_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            let fields: Vec<&str> = map.split_whitespace().collect();
            fields != ["0", "0", "4294967295"]
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_state_lives_under_the_runroot() {
        let ctx = EngineContext::rootful(Path::new("/var/lib/berth"), Path::new("/run/berth"));
        assert_eq!(ctx.runtime_root(), Path::new("/run/berth/runtime"));
        assert_eq!(ctx.storage_driver_name(), "overlay");
        assert!(!ctx.rootless);
    }
}
