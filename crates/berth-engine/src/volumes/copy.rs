//! Copying a directory tree with its modes, owners, symlinks and device nodes: Docker's
//! copy-up of an image's content into a fresh volume, and the building block of `cp`.
//!
//! Hard links inside the tree are copied as separate files, and extended attributes are not
//! copied.
// TODO: keep hard links and xattrs (security.capability) once `cp` needs them for image
// content; Docker's copy-up keeps neither either.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Copies the content of directory `src` into `dst` if `src` is a directory and `dst` is empty
/// (Docker's rule: a volume that already holds data is never overwritten). The top directory's
/// mode and owner are taken over too.
pub fn copy_up(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(src) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if fs::read_dir(dst)?.next().is_some() {
        return Ok(());
    }
    copy_dir_contents(src, dst)?;
    set_owner_and_mode(dst, &meta)
}

/// Copies every entry of directory `src` into the existing directory `dst`, recursively.
pub fn copy_dir_contents(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        copy_entry(&entry.path(), &dst.join(entry.file_name()))?;
    }
    Ok(())
}

/// Copies one file, link, device, fifo or directory (recursively) from `src` to `dst`.
pub fn copy_entry(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    let kind = meta.file_type();
    if kind.is_dir() {
        match fs::create_dir(dst) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dst.is_dir() => {}
            Err(e) => return Err(e),
        }
        copy_dir_contents(src, dst)?;
        return set_owner_and_mode(dst, &meta);
    }
    if kind.is_symlink() {
        let target = fs::read_link(src)?;
        let _ = fs::remove_file(dst);
        std::os::unix::fs::symlink(target, dst)?;
        return std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()));
    }
    if kind.is_file() {
        let _ = fs::remove_file(dst);
        fs::copy(src, dst)?;
        return set_owner_and_mode(dst, &meta);
    }
    if kind.is_char_device() || kind.is_block_device() || kind.is_fifo() || kind.is_socket() {
        let file_type = if kind.is_char_device() {
            rustix::fs::FileType::CharacterDevice
        } else if kind.is_block_device() {
            rustix::fs::FileType::BlockDevice
        } else if kind.is_fifo() {
            rustix::fs::FileType::Fifo
        } else {
            rustix::fs::FileType::Socket
        };
        let _ = fs::remove_file(dst);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dst,
            file_type,
            rustix::fs::Mode::from_raw_mode(meta.mode() & 0o7777),
            meta.rdev(),
        )
        .map_err(io::Error::from)?;
        return set_owner_and_mode(dst, &meta);
    }
    Ok(())
}

/// Gives `path` the owner and permission bits of `meta` (owner first: chown clears setuid).
fn set_owner_and_mode(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_up_fills_an_empty_volume_only() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("sub")).unwrap();
        fs::write(src.path().join("sub/f"), "hello").unwrap();
        fs::set_permissions(src.path().join("sub/f"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("sub/f", src.path().join("link")).unwrap();
        copy_up(src.path(), dst.path()).unwrap();
        assert_eq!(fs::read_to_string(dst.path().join("sub/f")).unwrap(), "hello");
        let mode = fs::metadata(dst.path().join("sub/f")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        assert_eq!(fs::read_link(dst.path().join("link")).unwrap(), Path::new("sub/f"));
        // Not empty any more: a second copy-up changes nothing.
        fs::write(src.path().join("new"), "x").unwrap();
        copy_up(src.path(), dst.path()).unwrap();
        assert!(!dst.path().join("new").exists());
        // Nothing at the path in the image: nothing to do.
        copy_up(&src.path().join("absent"), dst.path()).unwrap();
    }
}
