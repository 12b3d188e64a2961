//! Layer diffs: the upper directory of an overlay, after a build step or a container wrote to
//! it, as an OCI layer (image-spec `layer.md`) — a tar stream, gzip-compressed, with both of
//! its digests (the compressed blob's and the uncompressed diff_id) computed in the same pass.
//!
//! What overlayfs leaves in an upper directory becomes what the image spec says:
//! a whiteout (a 0/0 character device, or a file with the `user.overlay.whiteout` xattr when
//! the overlay was mounted with `userxattr`) becomes an empty `.wh.NAME` entry, and an opaque
//! directory (`trusted.overlay.opaque` or `user.overlay.opaque` = `y`) gets a `.wh..wh..opq`
//! entry after it (kernel Documentation/filesystems/overlayfs.rst, "whiteouts and opaque
//! directories"). Modes, owners, extended attributes (as PAX `SCHILY.xattr.*` records, the
//! overlay's own left out), hard links within the layer and modification times are kept;
//! with SOURCE_DATE_EPOCH no time is later than the epoch, so the same tree always gives the
//! same bytes. Entries are written depth-first with each directory's names sorted by bytes.
//!
//! A redirected or metacopy'd upper (overlay's `redirect_dir` and `metacopy` features) does not
//! hold its files' data: such an upper is refused, naming the path, instead of producing a
//! layer that lacks content.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_image::digest::{Digest, Hasher, HashingWriter};

/// Why an upper directory could not be turned into a layer.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("reading {path} for the layer diff")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the layer diff at {path}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} carries the overlay xattr {xattr}: redirected or metacopy upper directories are not supported yet")]
    Redirect { path: PathBuf, xattr: String },
}

/// How a diff is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// SOURCE_DATE_EPOCH: modification times later than this are written as this.
    pub epoch: Option<u64>,
    /// Layer paths (relative, as `etc/hosts`) left out with everything below them: what a
    /// runtime made only as mount points, when a container's upper becomes an image layer.
    pub skip: Vec<String>,
}

/// What a written diff measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// sha256 of the compressed blob.
    pub digest: Digest,
    /// Bytes of the compressed blob.
    pub size: u64,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
    /// Entries written (whiteouts included).
    pub entries: u64,
}

/// Writes the diff of `upper` to `out` as a gzip'd tar and returns its digests with `out`.
pub fn write_diff<W: Write>(
    upper: &Path,
    options: &DiffOptions,
    out: W,
) -> Result<(Diff, W), DiffError> {
    let compressed = HashingWriter::new(out, Hasher::sha256());
    // The gzip header carries no name and a zero mtime, so equal tars compress equally.
    let gzip = flate2::GzBuilder::new().mtime(0).write(compressed, flate2::Compression::fast());
    let tar = HashingWriter::new(gzip, Hasher::sha256());
    let mut writer = Writer {
        builder: tar::Builder::new(tar),
        options: options.clone(),
        links: HashMap::new(),
        entries: 0,
    };
    writer.builder.mode(tar::HeaderMode::Complete);
    writer.directory(upper, "")?;

    let finish = |source| DiffError::Write { path: "the end of the archive".into(), source };
    let tar = writer.builder.into_inner().map_err(finish)?;
    let (diff_id, tar_size, gzip) = tar.finish();
    let compressed = gzip.finish().map_err(finish)?;
    let (digest, size, mut out) = compressed.finish();
    out.flush().map_err(finish)?;
    let diff = Diff { digest, size, diff_id, tar_size, entries: writer.entries };
    tracing::debug!(upper = %upper.display(), digest = %diff.digest, diff_id = %diff.diff_id, entries = diff.entries, "layer diff written");
    Ok((diff, out))
}

struct Writer<W: Write> {
    builder: tar::Builder<W>,
    options: DiffOptions,
    /// (device, inode) of files with several links → the path first written for them.
    links: HashMap<(u64, u64), String>,
    entries: u64,
}

/// What an entry of the upper directory is, for the layer.
enum Kind {
    Whiteout,
    Dir {
        opaque: bool,
    },
    File,
    Symlink(PathBuf),
    Device(tar::EntryType, u64),
    Fifo,
    /// A socket: not representable in a tar, left out as Docker and Buildah do.
    Socket,
}

impl<W: Write> Writer<W> {
    /// Writes the entries below `dir` (whose layer path is `prefix`, "" for the root).
    fn directory(&mut self, dir: &Path, prefix: &str) -> Result<(), DiffError> {
        let read_err = |source| DiffError::Read { path: dir.to_owned(), source };
        let mut names: Vec<OsString> = fs::read_dir(dir)
            .map_err(read_err)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(read_err)?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let name = name.to_string_lossy();
            let rel = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
            if self.options.skip.contains(&rel) {
                continue;
            }
            self.entry(&path, &rel, &name)?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, rel: &str, name: &str) -> Result<(), DiffError> {
        let read_err = |source| DiffError::Read { path: path.to_owned(), source };
        let meta = fs::symlink_metadata(path).map_err(read_err)?;
        let file_type = meta.file_type();
        let xattrs = if file_type.is_symlink() { Vec::new() } else { xattrs(path)? };
        let overlay_flag = |key: &str| {
            xattrs.iter().any(|(k, v)| {
                (k == &format!("trusted.overlay.{key}") || k == &format!("user.overlay.{key}"))
                    && v.as_slice() == b"y"
            })
        };
        if let Some((key, _)) = xattrs
            .iter()
            .find(|(k, _)| k.ends_with("overlay.redirect") || k.ends_with("overlay.metacopy"))
        {
            return Err(DiffError::Redirect { path: path.to_owned(), xattr: key.clone() });
        }
        let kind = if file_type.is_char_device() && meta.rdev() == 0 {
            Kind::Whiteout
        } else if file_type.is_dir() {
            Kind::Dir { opaque: overlay_flag("opaque") }
        } else if file_type.is_file() {
            let whiteout = xattrs
                .iter()
                .any(|(k, _)| k == "user.overlay.whiteout" || k == "trusted.overlay.whiteout");
            if whiteout {
                Kind::Whiteout
            } else {
                Kind::File
            }
        } else if file_type.is_symlink() {
            Kind::Symlink(fs::read_link(path).map_err(read_err)?)
        } else if file_type.is_char_device() {
            Kind::Device(tar::EntryType::Char, meta.rdev())
        } else if file_type.is_block_device() {
            Kind::Device(tar::EntryType::Block, meta.rdev())
        } else if file_type.is_fifo() {
            Kind::Fifo
        } else {
            Kind::Socket
        };

        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
        header.set_mtime(self.options.epoch.map_or(mtime, |epoch| mtime.min(epoch)));
        header.set_size(0);
        let kept: Vec<(String, Vec<u8>)> =
            xattrs.into_iter().filter(|(k, _)| !k.contains(".overlay.")).collect();

        match kind {
            Kind::Whiteout => {
                let parent = rel.rsplit_once('/').map_or("", |(p, _)| p);
                let wh = if parent.is_empty() {
                    format!(".wh.{name}")
                } else {
                    format!("{parent}/.wh.{name}")
                };
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o600);
                self.append(&mut header, &wh, &[], io::empty())?;
            }
            Kind::Dir { opaque } => {
                header.set_entry_type(tar::EntryType::Directory);
                self.append(&mut header, &format!("{rel}/"), &kept, io::empty())?;
                if opaque {
                    let mut marker = tar::Header::new_gnu();
                    marker.set_entry_type(tar::EntryType::Regular);
                    marker.set_mode(0o600);
                    marker.set_uid(0);
                    marker.set_gid(0);
                    marker.set_size(0);
                    marker.set_mtime(header.mtime().unwrap_or(0));
                    self.append(&mut marker, &format!("{rel}/.wh..wh..opq"), &[], io::empty())?;
                }
                self.directory(path, rel)?;
            }
            Kind::File => {
                if meta.nlink() > 1 {
                    if let Some(first) = self.links.get(&(meta.dev(), meta.ino())).cloned() {
                        header.set_entry_type(tar::EntryType::Link);
                        self.link(&mut header, rel, &first)?;
                        return Ok(());
                    }
                    self.links.insert((meta.dev(), meta.ino()), rel.to_owned());
                }
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(meta.len());
                let file = fs::File::open(path).map_err(read_err)?;
                // A file that changes size while it is read would corrupt the archive: take
                // exactly the size the header promises.
                let reader = io::Read::take(file, meta.len());
                self.append(&mut header, rel, &kept, reader)?;
            }
            Kind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                self.pax(rel, &kept)?;
                self.link(&mut header, rel, &target.to_string_lossy())?;
            }
            Kind::Device(entry_type, rdev) => {
                header.set_entry_type(entry_type);
                let major = rustix::fs::major(rdev);
                let minor = rustix::fs::minor(rdev);
                let dev_err = |e| DiffError::Write { path: rel.to_owned(), source: e };
                header.set_device_major(major).map_err(dev_err)?;
                header.set_device_minor(minor).map_err(dev_err)?;
                self.append(&mut header, rel, &kept, io::empty())?;
            }
            Kind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                self.append(&mut header, rel, &kept, io::empty())?;
            }
            Kind::Socket => {
                tracing::debug!(path = %path.display(), "socket left out of the layer");
            }
        }
        Ok(())
    }

    fn append(
        &mut self,
        header: &mut tar::Header,
        rel: &str,
        xattrs: &[(String, Vec<u8>)],
        data: impl io::Read,
    ) -> Result<(), DiffError> {
        self.pax(rel, xattrs)?;
        self.builder
            .append_data(header, rel, data)
            .map_err(|source| DiffError::Write { path: rel.to_owned(), source })?;
        self.entries += 1;
        Ok(())
    }

    fn link(&mut self, header: &mut tar::Header, rel: &str, target: &str) -> Result<(), DiffError> {
        self.builder
            .append_link(header, rel, target)
            .map_err(|source| DiffError::Write { path: rel.to_owned(), source })?;
        self.entries += 1;
        Ok(())
    }

    /// A PAX extended header with the entry's xattrs, before the entry it describes.
    fn pax(&mut self, rel: &str, xattrs: &[(String, Vec<u8>)]) -> Result<(), DiffError> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let mut data = Vec::new();
        for (key, value) in xattrs {
            pax_record(&mut data, &format!("SCHILY.xattr.{key}"), value);
        }
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::XHeader);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        // The name of a PAX header is informational; keep it within ustar's 100 bytes.
        let base = rel.rsplit('/').next().unwrap_or(rel);
        let name: String = format!("PaxHeaders/{base}").chars().take(99).collect();
        let write_err = |source| DiffError::Write { path: rel.to_owned(), source };
        header.set_path(&name).map_err(write_err)?;
        header.set_cksum();
        self.builder.append(&header, data.as_slice()).map_err(write_err)
    }
}

/// Appends one PAX record, `LEN KEY=VALUE\n`, where LEN counts the whole record itself.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + body.to_string().len();
    if len.to_string().len() + body != len {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The extended attributes of `path` (not following a symlink), sorted by name.
fn xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, DiffError> {
    let err = |e: rustix::io::Errno| DiffError::Read { path: path.to_owned(), source: e.into() };
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names) {
            Ok(len) => break len,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        }
    };
    let mut out = Vec::new();
    for name in names[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let key = String::from_utf8_lossy(name).into_owned();
        let mut value = vec![0u8; 256];
        let n = loop {
            match rustix::fs::lgetxattr(path, name, &mut value) {
                Ok(n) => break n,
                Err(rustix::io::Errno::RANGE) => value.resize(value.len() * 4, 0),
                // Removed meanwhile, or unreadable to this user (trusted.* rootless).
                Err(rustix::io::Errno::NODATA | rustix::io::Errno::PERM) => break usize::MAX,
                Err(e) => return Err(err(e)),
            }
        };
        if n != usize::MAX {
            value.truncate(n);
            out.push((key, value));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests;
