//! COPY (and ADD of local files) from the build context, written straight into a layer tar
//! without a container: which files land where, with which owner and mode, by Docker's rules,
//! and the tar stream with its diff id.
//!
//! The rules: a relative destination is relative to WORKDIR; a directory source copies its
//! contents, not itself; a file source lands at the destination, or inside it when the
//! destination ends in `/` or there are several sources (which requires that `/`); owners
//! become root unless `--chown` gives numeric ids; `--chmod` (octal) sets the permission bits
//! of everything copied; directories that must be made are 0755, owned by `--chown`'s ids
//! (checked against `buildah bud` in tests/buildah_tree.rs); modification times are the
//! sources' own, or clamped to SOURCE_DATE_EPOCH for reproducible layers ([`Times`]). Content is
//! re-hashed while it is written and checked against the context's digest, so a file that
//! changed since the context was read fails the step instead of entering the layer.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::context::{Context, ContextError, EntryKind};
use crate::dockerfile::{heredoc_source, Copy};
use crate::ignore::clean;

/// Why a COPY could not be laid out or written.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Source(#[from] ContextError),
    #[error("COPY with more than one source needs a destination directory ending in '/', not {destination:?}")]
    DestinationNotDirectory { destination: String },
    #[error(
        "--chown={0}: names need the stage's /etc/passwd, not supported yet; use numeric uid:gid"
    )]
    ChownName(String),
    #[error("--chmod={0}: only octal modes are supported yet")]
    Chmod(String),
    #[error("{path:?} changed while the build ran: expected {expected}, read {actual}")]
    Changed { path: String, expected: String, actual: String },
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the layer")]
    Write(#[source] io::Error),
    #[error("COPY --parents is not supported yet")]
    Parents,
    #[error("COPY --from={0}: its files come from that stage or image, not the context")]
    FromStage(String),
    #[error("{path:?} is a fifo, socket or device: copying it is not supported yet")]
    Special { path: String },
    #[error("ADD from {0:?}: sources on the network are not supported yet")]
    Remote(String),
    #[error("ADD --checksum is only for URL sources, and {0:?} is a local one")]
    ChecksumLocal(String),
    #[error("ADD {source_path:?}: {kind} archives are not supported yet (gzip and plain tar are)")]
    ArchiveKind { source_path: String, kind: &'static str },
    #[error("ADD {source_path:?}: reading the archive")]
    Archive {
        source_path: String,
        #[source]
        source: io::Error,
    },
    #[error("ADD {source_path:?}: archive entry {entry:?} {reason}")]
    ArchiveEntry { source_path: String, entry: String, reason: &'static str },
}

/// What a layer entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Dir,
    /// A context file, by its path relative to the context root, with its digest.
    File {
        source: String,
        digest: String,
        size: u64,
    },
    /// Bytes given in the Dockerfile (a heredoc) or taken from an archive ADD extracts.
    Inline(Vec<u8>),
    Symlink(String),
    /// A hard link to another path of the same layer (from an extracted archive).
    Hardlink(String),
}

/// One path of the layer, relative to the root (no leading `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    pub content: Content,
    /// Permission bits (and setuid/setgid/sticky).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// A directory made only because something is copied below it (the destination of a
    /// directory copy, or a missing parent): 0755, owned by `--chown`'s ids. The executor
    /// leaves it out of the layer when the directory already exists below.
    pub implied: bool,
    /// The source's modification time (context file or archive entry), if it has one.
    pub mtime: Option<u64>,
}

impl LayerEntry {
    fn implied_dir(uid: u32, gid: u32) -> Self {
        Self { content: Content::Dir, mode: 0o755, uid, gid, implied: true, mtime: None }
    }
}

/// The modification times a layer records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// Sources keep theirs, as Docker's COPY does; made entries get `now`.
    Preserve { now: u64 },
    /// SOURCE_DATE_EPOCH: nothing is newer than `epoch`, made entries get `epoch`, so the
    /// same input gives the same layer digest.
    Clamp(u64),
}

impl Times {
    fn of(self, entry: &LayerEntry) -> u64 {
        match self {
            Self::Preserve { now } => entry.mtime.unwrap_or(now),
            Self::Clamp(epoch) => entry.mtime.map_or(epoch, |m| m.min(epoch)),
        }
    }
}

/// What COPY needs besides its instruction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyOptions {
    /// The stage's WORKDIR, for a relative destination.
    pub workdir: Option<String>,
}

/// The entries a COPY (or ADD of local files) writes, by path.
pub fn plan_copy(
    context: &Context,
    copy: &Copy,
    options: &CopyOptions,
) -> Result<BTreeMap<String, LayerEntry>, CopyError> {
    if let Some(from) = &copy.from {
        return Err(CopyError::FromStage(from.clone()));
    }
    if copy.parents {
        return Err(CopyError::Parents);
    }
    // --exclude patterns, matched as ignore-file patterns against context paths.
    let mut patterns = Vec::with_capacity(copy.excludes.len());
    for exclude in &copy.excludes {
        let pattern = crate::ignore::Pattern::new(exclude).map_err(|reason| {
            CopyError::Source(ContextError::BadPattern { source_path: exclude.clone(), reason })
        })?;
        patterns.push(pattern);
    }
    let excluded = crate::ignore::Ignore { patterns };
    let (uid, gid) = match &copy.chown {
        None => (0, 0),
        Some(spec) => chown(spec)?,
    };
    let chmod = match &copy.chmod {
        None => None,
        Some(spec) => {
            Some(u32::from_str_radix(spec, 8).map_err(|_| CopyError::Chmod(spec.clone()))?)
        }
    };
    let (destination, into_dir) = destination(&copy.destination, options);

    // Expand wildcards first: the count of sources decides what the destination is.
    let mut roots: Vec<Root> = Vec::new();
    for source in &copy.sources {
        if let Some(doc) = heredoc_source(&copy.heredocs, source) {
            roots.push(Root::Inline {
                name: doc.name.clone(),
                bytes: doc.content.clone().into_bytes(),
            });
            continue;
        }
        roots.extend(context.roots(source)?.into_iter().map(Root::Context));
    }
    if roots.len() > 1 && !into_dir {
        return Err(CopyError::DestinationNotDirectory { destination: copy.destination.clone() });
    }

    let mut out = BTreeMap::new();
    for root in roots {
        match root {
            Root::Inline { name, bytes } => {
                let path = if into_dir { join(&destination, &name) } else { destination.clone() };
                out.insert(
                    path,
                    LayerEntry {
                        content: Content::Inline(bytes),
                        mode: chmod.unwrap_or(0o644),
                        uid,
                        gid,
                        implied: false,
                        mtime: None,
                    },
                );
            }
            Root::Context(root) => {
                // A source that is a symlink is followed; links below it are kept as links.
                let real = context.follow(&root)?;
                let real_entry = context.entries.get(&real);
                let is_dir = real == "." || real_entry.is_some_and(|e| e.kind == EntryKind::Dir);
                if is_dir {
                    // The contents go into the destination; the source directory's own mode
                    // is not copied (Docker and Buildah make the destination 0755).
                    if !destination.is_empty() {
                        out.entry(destination.clone()).or_insert(LayerEntry::implied_dir(uid, gid));
                    }
                    let prefix = if real == "." { String::new() } else { format!("{real}/") };
                    for path in context.below(&real) {
                        let Some(rel) = path.strip_prefix(&prefix) else { continue };
                        if excluded.is_excluded(path) {
                            continue;
                        }
                        let target = join(&destination, rel);
                        out.insert(
                            target,
                            entry_for(path, &context.entries[path], chmod, uid, gid)?,
                        );
                    }
                } else if let Some(entry) = real_entry.filter(|_| !excluded.is_excluded(&real)) {
                    let name = root.rsplit('/').next().unwrap_or(&root);
                    let target =
                        if into_dir { join(&destination, name) } else { destination.clone() };
                    out.insert(target, entry_for(&real, entry, chmod, uid, gid)?);
                }
            }
        }
    }

    // Parent directories the layer must carry, made as `mkdir -p` with the --chown ids.
    let paths: Vec<String> = out.keys().cloned().collect();
    for path in paths {
        let mut parent = path.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            out.entry(up.to_owned()).or_insert(LayerEntry::implied_dir(uid, gid));
            parent = up;
        }
    }
    Ok(out)
}

/// The destination as a layer path, and whether it names a directory to copy into.
fn destination(written: &str, options: &CopyOptions) -> (String, bool) {
    let workdir = options.workdir.as_deref().unwrap_or("/");
    let full =
        if written.starts_with('/') { written.to_owned() } else { format!("{workdir}/{written}") };
    let into_dir = full.ends_with('/') || written == "." || written.ends_with("/.");
    (clean(&full).trim_start_matches('/').to_owned(), into_dir)
}

/// The entries an ADD of local sources writes: archives (gzip or plain tar, recognised by
/// their content) are extracted into the destination directory with the owners and modes
/// they record, as Buildah does (`--chown` applies to the directory made for them only);
/// other files are copied as COPY copies them.
pub fn plan_add(
    context: &Context,
    add: &crate::dockerfile::Add,
    options: &CopyOptions,
) -> Result<BTreeMap<String, LayerEntry>, CopyError> {
    if let Some(url) = add.sources.iter().find(|s| crate::cache::is_remote(s)) {
        return Err(CopyError::Remote(url.clone()));
    }
    if let Some(source) = add.sources.first().filter(|_| add.checksum.is_some()) {
        return Err(CopyError::ChecksumLocal(source.clone()));
    }
    let (destination, into_dir) = destination(&add.destination, options);
    if add.sources.len() > 1 && !into_dir {
        return Err(CopyError::DestinationNotDirectory { destination: add.destination.clone() });
    }
    let (uid, gid) = match &add.chown {
        None => (0, 0),
        Some(spec) => chown(spec)?,
    };

    let mut archives = Vec::new();
    let mut plain = Vec::new();
    for source in &add.sources {
        let cleaned = clean(source.trim_start_matches('/'));
        let is_file = context.entries.get(&cleaned).is_some_and(|e| e.kind == EntryKind::File);
        let archive = if is_file && heredoc_source(&add.heredocs, source).is_none() {
            archive_kind(&context.root.join(&cleaned))
                .map_err(|e| CopyError::Archive { source_path: source.clone(), source: e })?
        } else {
            None
        };
        match archive {
            Some(Ok(gzip)) => archives.push((cleaned, gzip)),
            Some(Err(kind)) => {
                return Err(CopyError::ArchiveKind { source_path: source.clone(), kind })
            }
            None => plain.push(source.clone()),
        }
    }

    let mut out = BTreeMap::new();
    if !plain.is_empty() {
        let copy = Copy {
            from: None,
            chown: add.chown.clone(),
            chmod: add.chmod.clone(),
            link: add.link,
            parents: false,
            excludes: Vec::new(),
            sources: plain,
            // Several sources were checked above; a single file keeps its own rule.
            destination: if add.sources.len() > 1 {
                format!("/{destination}/")
            } else {
                add.destination.clone()
            },
            heredocs: add.heredocs.clone(),
        };
        out = plan_copy(context, &copy, options)?;
    }
    for (source, gzip) in archives {
        if !destination.is_empty() {
            out.entry(destination.clone()).or_insert(LayerEntry::implied_dir(uid, gid));
        }
        extract(&context.root.join(&source), gzip, &source, &destination, &mut out)?;
    }
    let paths: Vec<String> = out.keys().cloned().collect();
    for path in paths {
        let mut parent = path.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            out.entry(up.to_owned()).or_insert(LayerEntry::implied_dir(uid, gid));
            parent = up;
        }
    }
    Ok(out)
}

/// Whether a file is an archive ADD extracts: `Some(Ok(true))` gzip'd tar, `Some(Ok(false))`
/// plain tar, `Some(Err(kind))` an archive kind not supported yet, None any other file.
fn archive_kind(path: &Path) -> io::Result<Option<Result<bool, &'static str>>> {
    let mut head = [0u8; 512];
    let mut file = std::fs::File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..])? {
            0 => break,
            read => n += read,
        }
    }
    let head = &head[..n];
    let is_tar = |h: &[u8]| h.len() >= 262 && &h[257..262] == b"ustar";
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        // A gzip'd file is an archive only if a tar is inside.
        let mut inner = [0u8; 512];
        let mut decoder = flate2::read::GzDecoder::new(std::fs::File::open(path)?);
        let mut m = 0;
        while m < inner.len() {
            match decoder.read(&mut inner[m..]) {
                Ok(0) | Err(_) => break,
                Ok(read) => m += read,
            }
        }
        is_tar(&inner[..m]).then_some(Ok(true))
    } else if is_tar(head) {
        Some(Ok(false))
    } else if head.starts_with(b"BZh") {
        Some(Err("bzip2"))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Err("xz"))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Err("zstd"))
    } else {
        None
    })
}

/// Adds the entries of an archive under `destination`.
// TODO: file contents are held in memory; stream them from the archive when layers are
// written, once archives larger than memory matter.
fn extract(
    path: &Path,
    gzip: bool,
    source: &str,
    destination: &str,
    out: &mut BTreeMap<String, LayerEntry>,
) -> Result<(), CopyError> {
    let archive_error = |e| CopyError::Archive { source_path: source.to_owned(), source: e };
    let file = std::fs::File::open(path).map_err(archive_error)?;
    let reader: Box<dyn Read> =
        if gzip { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let entry_error = |reason| CopyError::ArchiveEntry {
            source_path: source.to_owned(),
            entry: raw.clone(),
            reason,
        };
        let cleaned = clean(raw.trim_start_matches('/'));
        if cleaned == "." {
            continue;
        }
        if cleaned == ".." || cleaned.starts_with("../") {
            return Err(entry_error("leaves the destination"));
        }
        let header = entry.header().clone();
        let mode = header.mode().map_err(archive_error)? & 0o7777;
        let uid = u32::try_from(header.uid().map_err(archive_error)?)
            .map_err(|_| entry_error("has a uid over 32 bits"))?;
        let gid = u32::try_from(header.gid().map_err(archive_error)?)
            .map_err(|_| entry_error("has a gid over 32 bits"))?;
        let link = || -> Result<String, CopyError> {
            let target =
                entry.link_name_bytes().ok_or_else(|| entry_error("is a link without a target"))?;
            Ok(String::from_utf8_lossy(&target).into_owned())
        };
        let content = match header.entry_type() {
            tar::EntryType::Directory => Content::Dir,
            tar::EntryType::Symlink => Content::Symlink(link()?),
            tar::EntryType::Link => {
                let target = clean(link()?.trim_start_matches('/'));
                if target == ".." || target.starts_with("../") {
                    return Err(entry_error("links outside the destination"));
                }
                Content::Hardlink(join(destination, &target))
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).map_err(archive_error)?;
                Content::Inline(bytes)
            }
            // PAX and GNU extension headers are consumed by the tar reader itself.
            tar::EntryType::XHeader
            | tar::EntryType::XGlobalHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => continue,
            _ => {
                return Err(entry_error(
                    "is a device, fifo or other special file: not supported yet",
                ))
            }
        };
        out.insert(
            join(destination, &cleaned),
            LayerEntry { content, mode, uid, gid, implied: false, mtime: header.mtime().ok() },
        );
    }
    Ok(())
}

enum Root {
    Context(String),
    Inline { name: String, bytes: Vec<u8> },
}

fn join(dir: &str, rel: &str) -> String {
    if dir.is_empty() {
        rel.to_owned()
    } else {
        format!("{dir}/{rel}")
    }
}

fn entry_for(
    path: &str,
    entry: &crate::context::Entry,
    chmod: Option<u32>,
    uid: u32,
    gid: u32,
) -> Result<LayerEntry, CopyError> {
    let content = match &entry.kind {
        EntryKind::Dir => Content::Dir,
        EntryKind::Symlink { target } => Content::Symlink(target.clone()),
        EntryKind::File => Content::File {
            source: path.to_owned(),
            digest: entry.content.clone().unwrap_or_default(),
            size: entry.size,
        },
        EntryKind::Other => return Err(CopyError::Special { path: path.to_owned() }),
    };
    let mode = match content {
        Content::Symlink(_) => 0o777,
        _ => chmod.unwrap_or(entry.mode & 0o7777),
    };
    let mtime = u64::try_from(entry.mtime).ok();
    Ok(LayerEntry { content, mode, uid, gid, implied: false, mtime })
}

/// `--chown=UID[:GID]` with numbers; the group defaults to the uid, as Docker does.
fn chown(spec: &str) -> Result<(u32, u32), CopyError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid: u32 = user.parse().map_err(|_| CopyError::ChownName(spec.to_owned()))?;
    let gid: u32 = match group {
        None => uid,
        Some(g) => g.parse().map_err(|_| CopyError::ChownName(spec.to_owned()))?,
    };
    Ok((uid, gid))
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what it reads, to check a file against the context's digest.
struct Checked<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Writes `entries` as an uncompressed layer tar (parents before children), with the
/// modification times `times` chooses, and returns its diff id.
pub fn write_layer<W: Write>(
    context_root: &Path,
    entries: &BTreeMap<String, LayerEntry>,
    times: Times,
    out: W,
) -> Result<(String, W), CopyError> {
    let mut builder = tar::Builder::new(Hashing { inner: out, hasher: Sha256::new() });
    builder.mode(tar::HeaderMode::Deterministic);
    for (path, entry) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mode(entry.mode);
        header.set_uid(u64::from(entry.uid));
        header.set_gid(u64::from(entry.gid));
        header.set_mtime(times.of(entry));
        match &entry.content {
            Content::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{path}/"), io::empty())
                    .map_err(CopyError::Write)?;
            }
            Content::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, path, target).map_err(CopyError::Write)?;
            }
            Content::Hardlink(target) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_size(0);
                builder.append_link(&mut header, path, target).map_err(CopyError::Write)?;
            }
            Content::Inline(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder
                    .append_data(&mut header, path, bytes.as_slice())
                    .map_err(CopyError::Write)?;
            }
            Content::File { source, digest, size } => {
                let full = context_root.join(source);
                let file = std::fs::File::open(&full)
                    .map_err(|e| CopyError::Read { path: full.clone(), source: e })?;
                let meta = file
                    .metadata()
                    .map_err(|e| CopyError::Read { path: full.clone(), source: e })?;
                if meta.size() != *size {
                    return Err(CopyError::Changed {
                        path: source.clone(),
                        expected: format!("{size} bytes"),
                        actual: format!("{} bytes", meta.size()),
                    });
                }
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(*size);
                let mut reader = Checked { inner: file.take(*size), hasher: Sha256::new() };
                builder.append_data(&mut header, path, &mut reader).map_err(CopyError::Write)?;
                let actual = format!("sha256:{}", hex::encode(reader.hasher.finalize()));
                if !digest.is_empty() && actual != *digest {
                    return Err(CopyError::Changed {
                        path: source.clone(),
                        expected: digest.clone(),
                        actual,
                    });
                }
            }
        }
    }
    let hashing = builder.into_inner().map_err(CopyError::Write)?;
    Ok((format!("sha256:{}", hex::encode(hashing.hasher.finalize())), hashing.inner))
}

#[cfg(test)]
mod tests;
