//! A container's own layer: the writable upper directory and overlay's work directory kept in
//! the data root (`ROOT/overlay-containers/ID/{upper,work}`, they outlive a reboot with the
//! container), and the mount point of its root file system in the runtime root
//! (`RUNROOT/overlay-containers/ID/merged`, a mount lasts one boot at most).
//!
//! The overlay is mounted on the host, as Podman does: the runtime bind-mounts the merged
//! directory into the container's mount namespace, and whoever sees the container's process
//! gone (its monitor, or the next berth command when the monitor was killed) unmounts it.
//! Every cleanup step here is idempotent, so it can run again after a crash at any point.
//!
//! Removing a container's directories can take long on a busy disk (each unlink waits for the
//! file system's journal, and a disk mounted with `discard` trims the freed blocks). A process
//! that is about to exit and has a caller waiting for it (a foreground `run --rm`) removes
//! them with [`ContainerLayers::deferring_removal`]: each is renamed into a `trash` directory
//! of the same root instead (atomic, one system call), and [`ContainerLayers::empty_trash`]
//! removes them later, from a detached process or the next command. A crash in between leaves
//! only trash, which is nobody's and is removed by whoever empties it next.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tracing::debug;

use crate::mount::{self, Driver, Durability, MountError, Overlay};

/// Errors of preparing, mounting and removing a container's layer.
#[derive(Debug, thiserror::Error)]
pub enum ContainerLayerError {
    #[error("creating the container directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("removing the container directory {path}")]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container {id}: its image has no layers to mount")]
    NoLayers { id: String },
    #[error(transparent)]
    Mount(#[from] MountError),
}

/// Where the container layers of one data root and one runtime root live.
#[derive(Debug, Clone)]
pub struct ContainerLayers {
    root: PathBuf,
    runroot: PathBuf,
    /// `RUNROOT/trash` and `ROOT/trash` (in the order of [`ContainerLayers::remove`]'s two
    /// directories): directories on their way out, one per root, so a rename never crosses
    /// file systems.
    trash: [PathBuf; 2],
    /// Whether [`ContainerLayers::remove`] moves directories to the trash (see the module
    /// documentation) rather than removing them.
    defer_removal: bool,
}

/// One container's directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLayer {
    pub id: String,
    /// The container's writes (persistent).
    pub upper: PathBuf,
    /// overlayfs's scratch directory, on the same file system as `upper`.
    pub work: PathBuf,
    /// The mounted root file system (per boot).
    pub merged: PathBuf,
}

impl ContainerLayers {
    /// The container layers under data root `root` and runtime root `runroot`.
    pub fn new(root: &Path, runroot: &Path) -> Self {
        Self {
            root: root.join("overlay-containers"),
            runroot: runroot.join("overlay-containers"),
            trash: [runroot.join("trash"), root.join("trash")],
            defer_removal: false,
        }
    }

    /// The same layers, with [`ContainerLayers::remove`] moving directories to the trash for
    /// [`ContainerLayers::empty_trash`] to remove later.
    pub fn deferring_removal(mut self) -> Self {
        self.defer_removal = true;
        self
    }

    /// The directories of container `id` (nothing is created).
    pub fn layer(&self, id: &str) -> ContainerLayer {
        let data = self.root.join(id);
        ContainerLayer {
            id: id.to_owned(),
            upper: data.join("upper"),
            work: data.join("work"),
            merged: self.runroot.join(id).join("merged"),
        }
    }

    /// Creates the directories of container `id`; existing ones are kept (a restart).
    pub fn prepare(&self, id: &str) -> Result<ContainerLayer, ContainerLayerError> {
        let layer = self.layer(id);
        for dir in [&layer.upper, &layer.work, &layer.merged] {
            fs::create_dir_all(dir)
                .map_err(|source| ContainerLayerError::CreateDir { path: dir.clone(), source })?;
        }
        Ok(layer)
    }

    /// Mounts container `id`'s root at its merged directory, synced: `lower` are the image's
    /// layer directories from the top-most down to the base. A root that is mounted already is
    /// left as it is.
    pub fn mount(
        &self,
        id: &str,
        driver: Driver,
        lower: &[PathBuf],
    ) -> Result<ContainerLayer, ContainerLayerError> {
        self.mount_as(id, driver, lower, Durability::Synced)
    }

    /// [`ContainerLayers::mount`] with `durability`: [`Durability::Volatile`] for a root that
    /// is removed after its one run (`--rm`). The marker an earlier volatile mount of this
    /// root left is removed first (as containers/storage does), so a `--rm` container mounted
    /// again before its run (`create --rm`, then `start`) mounts; only `--rm` roots are ever
    /// mounted volatile, and after a crash those are removed rather than run again.
    pub fn mount_as(
        &self,
        id: &str,
        driver: Driver,
        lower: &[PathBuf],
        durability: Durability,
    ) -> Result<ContainerLayer, ContainerLayerError> {
        if lower.is_empty() {
            return Err(ContainerLayerError::NoLayers { id: id.to_owned() });
        }
        let layer = self.prepare(id)?;
        if is_mount_point(&layer.merged) {
            return Ok(layer);
        }
        mount::clear_volatile_marker(&layer.work)?;
        let overlay = Overlay { lower, upper: &layer.upper, work: &layer.work };
        mount::mount_overlay_as(driver, &overlay, &layer.merged, durability)?;
        Ok(layer)
    }

    /// Unmounts container `id`'s root; a root that is not mounted is not an error.
    pub fn unmount(&self, id: &str) -> Result<(), ContainerLayerError> {
        let layer = self.layer(id);
        // A mount stacked twice (two racing starts) needs two unmounts.
        for _ in 0..8 {
            if !is_mount_point(&layer.merged) {
                break;
            }
            mount::unmount(&layer.merged)?;
        }
        Ok(())
    }

    /// Unmounts and removes everything of container `id` (deferring, moves it to the trash);
    /// what is gone already is skipped.
    pub fn remove(&self, id: &str) -> Result<(), ContainerLayerError> {
        self.unmount(id)?;
        let layer = self.layer(id);
        for (dir, trash) in [self.runroot.join(id), self.root.join(id)].into_iter().zip(&self.trash)
        {
            if self.defer_removal && move_to_trash(&dir, trash, id) {
                continue;
            }
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(ContainerLayerError::RemoveDir { path: dir, source }),
            }
        }
        debug!(id, upper = %layer.upper.display(), deferred = self.defer_removal, "container layer removed");
        Ok(())
    }

    /// Whether anything waits in the trash.
    pub fn has_trash(&self) -> bool {
        self.trash.iter().any(|dir| fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()))
    }

    /// Removes what waits in the trash, by this process or any other (a detached one, or one
    /// that crashed). Several may empty it at once; what another removed is skipped.
    pub fn empty_trash(&self) {
        for dir in &self.trash {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                match fs::remove_dir_all(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => debug!(path = %path.display(), error = %e, "emptying the trash"),
                }
            }
        }
    }

    /// The ids that have a directory in either root, for finding leftovers.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = [&self.root, &self.runroot]
            .iter()
            .filter_map(|dir| fs::read_dir(dir).ok())
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Renames `dir` (of container `id`) into `trash`; false when it could not, and the caller
/// removes it in place. A `dir` that is not there counts as moved: nothing is left to remove.
fn move_to_trash(dir: &Path, trash: &Path, id: &str) -> bool {
    if let Err(e) = fs::create_dir_all(trash) {
        debug!(path = %trash.display(), error = %e, "creating the trash");
        return false;
    }
    // The pid keeps two processes' entries apart; the same id twice is one container's.
    let dest = trash.join(format!("{id}.{}", std::process::id()));
    match fs::rename(dir, &dest) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => {
            debug!(path = %dir.display(), error = %e, "moving to the trash");
            false
        }
    }
}

/// Whether `path` is the mount point of a mount in this mount namespace: statx's
/// STATX_ATTR_MOUNT_ROOT (Linux 5.8; one system call, where generating mountinfo took a
/// noticeable part of `run --rm`), else a line of /proc/self/mountinfo (an older kernel, or a
/// path statx cannot reach, such as a FUSE mount whose server is gone).
pub fn is_mount_point(path: &Path) -> bool {
    use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags, CWD};
    let flags = AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT;
    if let Ok(st) = statx(CWD, path, flags, StatxFlags::BASIC_STATS) {
        if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
            return st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
        }
    }
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else { return false };
    let wanted = path.to_string_lossy();
    text.lines().any(|line| line.split(' ').nth(4).is_some_and(|m| unescape(m) == wanted))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Ok(n) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_between_the_data_and_runtime_roots() {
        let layers = ContainerLayers::new(Path::new("/var/lib/berth"), Path::new("/run/berth"));
        let layer = layers.layer("abc");
        assert_eq!(layer.upper, Path::new("/var/lib/berth/overlay-containers/abc/upper"));
        assert_eq!(layer.work, Path::new("/var/lib/berth/overlay-containers/abc/work"));
        assert_eq!(layer.merged, Path::new("/run/berth/overlay-containers/abc/merged"));
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }

    // Mount, write, unmount and remove as root; each step twice, as cleanup after a crash
    // would, and nothing is left.
    #[test]
    fn mount_and_cleanup_are_idempotent() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let lower = dir.path().join("lower");
        fs::create_dir_all(&lower).unwrap();
        fs::write(lower.join("from-image"), "x").unwrap();
        let layers = ContainerLayers::new(&dir.path().join("root"), &dir.path().join("run"));
        let layer = layers.mount("c1", Driver::Overlay, std::slice::from_ref(&lower)).unwrap();
        layers.mount("c1", Driver::Overlay, std::slice::from_ref(&lower)).unwrap();
        assert!(layer.merged.join("from-image").exists());
        fs::write(layer.merged.join("new"), "y").unwrap();
        layers.unmount("c1").unwrap();
        layers.unmount("c1").unwrap();
        assert!(!is_mount_point(&layer.merged));
        assert_eq!(fs::read_to_string(layer.upper.join("new")).unwrap(), "y");
        assert_eq!(layers.ids(), ["c1"]);
        layers.mount("c1", Driver::Overlay, std::slice::from_ref(&lower)).unwrap();
        layers.remove("c1").unwrap();
        layers.remove("c1").unwrap();
        assert!(layers.ids().is_empty());
        assert!(!is_mount_point(&layer.merged));
    }

    // A `--rm` root is mounted volatile (the kernel says so in mountinfo and leaves its
    // marker), and mounts again after a clean unmount, which the marker alone would refuse.
    #[test]
    fn a_volatile_root_mounts_volatile_and_mounts_again() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let lower = dir.path().join("lower");
        fs::create_dir_all(&lower).unwrap();
        let layers = ContainerLayers::new(&dir.path().join("root"), &dir.path().join("run"));
        let lower = std::slice::from_ref(&lower);
        let layer = layers.mount_as("c1", Driver::Overlay, lower, Durability::Volatile).unwrap();
        let options = mount_options(&layer.merged);
        layers.unmount("c1").unwrap();
        assert!(is_volatile(&options), "mounted with {options}");
        assert!(mount::volatile_marker(&layer.work).is_dir(), "no volatile marker");
        layers.mount("c1", Driver::Overlay, lower).unwrap();
        let options = mount_options(&layer.merged);
        layers.remove("c1").unwrap();
        assert!(!is_volatile(&options), "mounted with {options}");
        assert!(layers.ids().is_empty());
    }

    /// Whether mountinfo's super options say volatile: `volatile` on older kernels,
    /// `fsync=volatile` on those with overlayfs's `fsync` option.
    fn is_volatile(options: &str) -> bool {
        options.split(',').any(|o| o == "volatile" || o == "fsync=volatile")
    }

    /// The super options of the top-most mount at `target`, from /proc/self/mountinfo.
    fn mount_options(target: &Path) -> String {
        let target = target.to_string_lossy();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .rev()
            .filter(|line| line.split(' ').nth(4).map(unescape).as_deref() == Some(&*target))
            .find_map(|line| line.rsplit(' ').next().map(str::to_owned))
            .unwrap_or_default()
    }

    // Deferred, remove leaves the container's directories in the trash (not among the layers'
    // ids) and empty_trash removes them; undeferred, nothing goes to the trash.
    #[test]
    fn deferred_removal_goes_through_the_trash() {
        let dir = tempfile::tempdir().unwrap();
        let (root, run) = (dir.path().join("root"), dir.path().join("run"));
        let layers = ContainerLayers::new(&root, &run).deferring_removal();
        let layer = layers.prepare("c1").unwrap();
        fs::write(layer.upper.join("written"), "x").unwrap();
        layers.remove("c1").unwrap();
        assert!(layers.ids().is_empty());
        assert!(layers.has_trash());
        assert!(root
            .join("trash")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
            .join("upper/written")
            .exists());
        layers.empty_trash();
        assert!(!layers.has_trash());
        assert_eq!(fs::read_dir(root.join("trash")).unwrap().count(), 0);

        let layers = ContainerLayers::new(&root, &run);
        layers.prepare("c2").unwrap();
        layers.remove("c2").unwrap();
        assert!(layers.ids().is_empty());
        assert!(!layers.has_trash());
    }
}
