//! A container's file system from the outside: `cp` in both directions (and as a tar stream),
//! `diff` (what the container's upper directory changed against its image) and `export` (a
//! tar of the whole file system), through the container layers of berth-storage.
//!
//! Paths inside the container are resolved in its root the way the kernel's
//! `RESOLVE_IN_ROOT` would: `..` and absolute symlinks stop at the container's root, so a
//! symlink in the image can never make berth read or write a host path.
// TODO: resolve through openat2(RESOLVE_IN_ROOT) (pathrs) instead of walking the components,
// which a process inside a running container could race by swapping a directory for a link.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

pub use berth_storage::ContainerLayers;

use crate::context::EngineContext;
use crate::images::Images;
use crate::state::ContainerRecord;

/// Errors of cp, diff and export; each names the container or path.
#[derive(Debug, thiserror::Error)]
pub enum ContainerFsError {
    #[error("{path} in container {name}: no such file or directory")]
    NotFound { name: String, path: String },
    #[error("resolving {path} in container {name}: too many levels of symbolic links")]
    Loop { name: String, path: String },
    #[error("mounting the file system of container {name}")]
    Mount {
        name: String,
        #[source]
        source: Box<berth_storage::ContainerLayerError>,
    },
    #[error("finding the image of container {name}")]
    Image {
        name: String,
        #[source]
        source: Box<crate::images::ImageError>,
    },
    #[error("copying {path}")]
    Copy {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the archive")]
    Archive(#[source] io::Error),
    #[error("reading the archive: {0}")]
    ReadArchive(#[source] io::Error),
    #[error("the host path {path} does not exist")]
    NoHostPath { path: PathBuf },
}

/// A container's root file system, mounted for as long as this lives (and unmounted after if
/// this mounted it).
pub struct MountedRoot {
    pub merged: PathBuf,
    pub upper: PathBuf,
    pub lower: Vec<PathBuf>,
    layers: ContainerLayers,
    id: String,
    mounted_here: bool,
}

impl MountedRoot {
    /// Mounts container `record`'s root if it is not mounted (a running container's is).
    pub fn open(ctx: &EngineContext, record: &ContainerRecord) -> Result<Self, ContainerFsError> {
        let layers = ContainerLayers::new(&ctx.root, &ctx.runroot);
        let layer = layers.layer(&record.id);
        let image_err = |source| ContainerFsError::Image {
            name: record.name.clone(),
            source: Box::new(source),
        };
        let images = Images::open(&ctx.root).map_err(image_err)?;
        let image = images.find(&record.image_id).map_err(image_err)?;
        let mut lower = images.layer_dirs(&image);
        lower.reverse();
        let mounted = berth_storage::container::is_mount_point(&layer.merged);
        if !mounted {
            layers.mount(&record.id, ctx.storage_driver, &lower).map_err(|source| {
                ContainerFsError::Mount { name: record.name.clone(), source: Box::new(source) }
            })?;
        }
        Ok(Self {
            merged: layer.merged,
            upper: layer.upper,
            lower,
            layers,
            id: record.id.clone(),
            mounted_here: !mounted,
        })
    }
}

impl Drop for MountedRoot {
    fn drop(&mut self) {
        if self.mounted_here {
            if let Err(e) = self.layers.unmount(&self.id) {
                tracing::warn!(id = %self.id, error = %e, "unmounting after cp/export");
            }
        }
    }
}

/// Resolves `path` (as the container sees it) under `root`, following symlinks inside the
/// root; `follow_last` says whether a symlink as the last component is followed.
pub fn resolve_in_root(root: &Path, path: &str, follow_last: bool) -> Result<PathBuf, io::Error> {
    let mut parts: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .rev()
        .collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            parts.pop();
            continue;
        }
        let candidate: PathBuf = std::iter::once(root.as_os_str().to_owned())
            .chain(parts.iter().cloned())
            .chain(std::iter::once(part.clone()))
            .collect();
        let is_last = pending.is_empty();
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() && (!is_last || follow_last) => {
                links += 1;
                if links > 40 {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    parts.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_owned()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => parts.push(part),
        }
    }
    Ok(std::iter::once(root.as_os_str().to_owned()).chain(parts).collect())
}

/// `cp CONTAINER:SRC DEST`: copies `src` out of the container to host path `dest`, keeping
/// modes and owners. As in Docker, a `dest` that is an existing directory receives `src` by
/// its name; otherwise `src` becomes `dest`.
pub fn copy_out(
    root: &MountedRoot,
    name: &str,
    src: &str,
    dest: &Path,
) -> Result<(), ContainerFsError> {
    let from = resolve_in_root(&root.merged, src, true)
        .map_err(|source| ContainerFsError::Copy { path: PathBuf::from(src), source })?;
    if fs::symlink_metadata(&from).is_err() {
        return Err(ContainerFsError::NotFound { name: name.to_owned(), path: src.to_owned() });
    }
    let target = if dest.is_dir() && !src.ends_with("/.") {
        dest.join(from.file_name().unwrap_or_default())
    } else if dest.is_dir() {
        // `SRC/.`: the content of SRC into DEST.
        return crate::volumes::copy::copy_dir_contents(&from, dest)
            .map_err(|source| ContainerFsError::Copy { path: dest.to_owned(), source });
    } else {
        dest.to_owned()
    };
    crate::volumes::copy::copy_entry(&from, &target)
        .map_err(|source| ContainerFsError::Copy { path: target.clone(), source })
}

/// `cp SRC CONTAINER:DEST`: copies host path `src` into the container.
pub fn copy_in(root: &MountedRoot, src: &Path, dest: &str) -> Result<(), ContainerFsError> {
    if fs::symlink_metadata(src).is_err() {
        return Err(ContainerFsError::NoHostPath { path: src.to_owned() });
    }
    let to = resolve_in_root(&root.merged, dest, true)
        .map_err(|source| ContainerFsError::Copy { path: PathBuf::from(dest), source })?;
    let target = if to.is_dir() { to.join(src.file_name().unwrap_or_default()) } else { to };
    crate::volumes::copy::copy_entry(src, &target)
        .map_err(|source| ContainerFsError::Copy { path: target.clone(), source })
}

/// Writes `src` of the container (a file or a tree) as a tar stream to `out`, named by its
/// last component, with modes, owners and times (`cp CONTAINER:SRC -`).
pub fn tar_out(
    root: &MountedRoot,
    name: &str,
    src: &str,
    out: impl Write,
) -> Result<(), ContainerFsError> {
    let from = resolve_in_root(&root.merged, src, true)
        .map_err(|source| ContainerFsError::Copy { path: PathBuf::from(src), source })?;
    let meta = fs::symlink_metadata(&from)
        .map_err(|_| ContainerFsError::NotFound { name: name.to_owned(), path: src.to_owned() })?;
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Complete);
    builder.follow_symlinks(false);
    let base = from.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    if meta.is_dir() {
        builder.append_dir_all(&base, &from).map_err(ContainerFsError::Archive)?;
    } else {
        builder.append_path_with_name(&from, &base).map_err(ContainerFsError::Archive)?;
    }
    builder.into_inner().map_err(ContainerFsError::Archive)?;
    Ok(())
}

/// `export`: the container's whole file system as a tar stream.
pub fn export(root: &MountedRoot, out: impl Write) -> Result<(), ContainerFsError> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Complete);
    builder.follow_symlinks(false);
    for entry in fs::read_dir(&root.merged).map_err(ContainerFsError::Archive)? {
        let entry = entry.map_err(ContainerFsError::Archive)?;
        let path = entry.path();
        let name = PathBuf::from(entry.file_name());
        if entry.file_type().map_err(ContainerFsError::Archive)?.is_dir() {
            builder.append_dir_all(&name, &path).map_err(ContainerFsError::Archive)?;
        } else {
            builder.append_path_with_name(&path, &name).map_err(ContainerFsError::Archive)?;
        }
    }
    builder.into_inner().map_err(ContainerFsError::Archive)?;
    Ok(())
}

/// `cp - CONTAINER:DEST`: unpacks a tar stream into directory `dest` of the container, keeping
/// modes and owners; entries cannot reach outside the container's root.
pub fn untar_in(root: &MountedRoot, input: impl Read, dest: &str) -> Result<(), ContainerFsError> {
    let to = resolve_in_root(&root.merged, dest, true)
        .map_err(|source| ContainerFsError::Copy { path: PathBuf::from(dest), source })?;
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(ContainerFsError::ReadArchive)? {
        let mut entry = entry.map_err(ContainerFsError::ReadArchive)?;
        let path = entry.path().map_err(ContainerFsError::ReadArchive)?.into_owned();
        // Resolve the parent inside the root, so neither `..` nor a symlink in the container
        // takes the entry out of it.
        let inside = Path::new(dest).join(&path);
        let parent = inside.parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let parent = resolve_in_root(&root.merged, &parent, true)
            .map_err(|source| ContainerFsError::Copy { path: inside.clone(), source })?;
        if !parent.starts_with(&to) && !parent.starts_with(&root.merged) {
            continue;
        }
        fs::create_dir_all(&parent)
            .map_err(|source| ContainerFsError::Copy { path: parent.clone(), source })?;
        let Some(file_name) = path.file_name() else { continue };
        entry
            .unpack(parent.join(file_name))
            .map_err(|source| ContainerFsError::Copy { path: inside.clone(), source })?;
    }
    Ok(())
}

/// One line of `diff`: `A`dded, `C`hanged or `D`eleted, and the path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    #[serde(rename = "Path")]
    pub path: String,
    #[serde(rename = "Kind")]
    pub kind: char,
}

/// Paths the engine and the runtime mount over a container's root, which the runtime may have
/// made as mount points in the upper directory: no change of the container's, so `diff`
/// leaves them out, as Podman's does (its list, plus `run --init`'s mount point).
const ENGINE_MOUNT_POINTS: [&str; 10] = [
    "/dev",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/proc",
    "/run",
    "/run/.containerenv",
    "/run/secrets",
    "/sys",
    crate::init::CONTAINER_PATH,
];

/// `diff`: what the container's upper directory holds, against the image's layers. A
/// whiteout (a 0/0 character device, or overlay's whiteout xattr) is a deletion; an entry the
/// image has too is a change; anything else was added. Sorted by path, as Podman prints; the
/// engine's own mount points are left out (what is below them is not).
pub fn diff(upper: &Path, lower: &[PathBuf]) -> io::Result<Vec<Change>> {
    let mut out = Vec::new();
    walk_upper(upper, upper, lower, &mut out)?;
    out.retain(|c| !ENGINE_MOUNT_POINTS.contains(&c.path.as_str()));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk_upper(top: &Path, dir: &Path, lower: &[PathBuf], out: &mut Vec<Change>) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let rel = path.strip_prefix(top).unwrap_or(&path);
        let shown = format!("/{}", rel.display());
        let meta = fs::symlink_metadata(&path)?;
        let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
        let in_image = lower.iter().any(|l| fs::symlink_metadata(l.join(rel)).is_ok());
        let kind = if whiteout {
            'D'
        } else if in_image {
            'C'
        } else {
            'A'
        };
        out.push(Change { path: shown, kind });
        if meta.is_dir() && !whiteout {
            walk_upper(top, &path, lower, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The runtime's mount points in the upper directory are no change of the container's;
    // a file the container wrote below one of them is.
    #[test]
    fn diff_leaves_out_the_engines_mount_points() {
        let upper = tempfile::tempdir().unwrap();
        let image = tempfile::tempdir().unwrap();
        let (u, l) = (upper.path(), image.path());
        fs::create_dir_all(l.join("etc")).unwrap();
        fs::write(l.join("etc/passwd"), "root").unwrap();
        fs::create_dir_all(u.join("etc")).unwrap();
        fs::create_dir_all(u.join("run")).unwrap();
        for f in ["etc/hosts", "etc/hostname", "etc/resolv.conf", "run/berth-init", "run/made"] {
            fs::write(u.join(f), "").unwrap();
        }
        fs::write(u.join("etc/passwd"), "root\nuser").unwrap();
        let changes: Vec<String> = diff(u, &[l.to_owned()])
            .unwrap()
            .iter()
            .map(|c| format!("{} {}", c.kind, c.path))
            .collect();
        assert_eq!(changes, ["C /etc", "C /etc/passwd", "A /run/made"]);
    }

    #[test]
    fn paths_resolve_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", r.join("up")).unwrap();
        assert_eq!(resolve_in_root(r, "/abs/passwd", true).unwrap(), r.join("etc/passwd"));
        assert_eq!(resolve_in_root(r, "/up/passwd", true).unwrap(), r.join("etc/passwd"));
        assert_eq!(resolve_in_root(r, "/../../x", true).unwrap(), r.join("x"));
        assert_eq!(resolve_in_root(r, "/abs", false).unwrap(), r.join("abs"));
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert!(resolve_in_root(r, "/loop", true).is_err());
    }

    #[test]
    fn diff_marks_added_changed_and_deleted() {
        let upper = tempfile::tempdir().unwrap();
        let lower = tempfile::tempdir().unwrap();
        fs::create_dir_all(lower.path().join("etc")).unwrap();
        fs::write(lower.path().join("etc/passwd"), "").unwrap();
        fs::write(lower.path().join("gone"), "").unwrap();
        fs::create_dir_all(upper.path().join("etc")).unwrap();
        fs::write(upper.path().join("etc/passwd"), "x").unwrap();
        fs::write(upper.path().join("etc/new"), "x").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.path().join("gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        let changes = diff(upper.path(), &[lower.path().to_owned()]).unwrap();
        let text: Vec<String> = changes.iter().map(|c| format!("{} {}", c.kind, c.path)).collect();
        assert_eq!(text, ["C /etc", "A /etc/new", "C /etc/passwd", "D /gone"]);
    }
}
