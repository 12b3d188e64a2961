//! COPY (and ADD of local files) from the build context, written straight into a layer tar
//! without a container: which files land where, with which owner and mode, by Docker's rules,
//! and the tar stream with its diff id.
//!
//! The rules: a relative destination is relative to WORKDIR; a directory source copies its
//! contents, not itself; a file source lands at the destination, or inside it when the
//! destination ends in `/` or there are several sources (which requires that `/`); owners
//! become root unless `--chown` gives numeric ids; `--chmod` (octal) sets the permission bits
//! of everything copied; directories that must be made are 0755, owned by `--chown`'s ids
//! (checked against `buildah bud` in tests/buildah_tree.rs). Content is
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
    /// Bytes given in the Dockerfile (a heredoc).
    Inline(Vec<u8>),
    Symlink(String),
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
}

impl LayerEntry {
    fn implied_dir(uid: u32, gid: u32) -> Self {
        Self { content: Content::Dir, mode: 0o755, uid, gid, implied: true }
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
    let workdir = options.workdir.as_deref().unwrap_or("/");
    let destination = if copy.destination.starts_with('/') {
        copy.destination.clone()
    } else {
        format!("{workdir}/{}", copy.destination)
    };
    let into_dir =
        destination.ends_with('/') || copy.destination == "." || copy.destination.ends_with("/.");
    let destination = clean(&destination).trim_start_matches('/').to_owned();

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
        let resolved = context.resolve(source)?;
        let cleaned = clean(source.trim_start_matches('/'));
        if cleaned.contains(['*', '?', '[']) {
            // Each match is a root of its own; things below a match come with it.
            let matches: Vec<&str> = resolved
                .iter()
                .copied()
                .filter(|p| !resolved.iter().any(|q| q != p && p.starts_with(&format!("{q}/"))))
                .collect();
            roots.extend(matches.into_iter().map(|p| Root::Context(p.to_owned())));
        } else {
            roots.push(Root::Context(cleaned));
        }
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
                    },
                );
            }
            Root::Context(source) => {
                let is_context_root = source == ".";
                let source_entry = context.entries.get(&source);
                let is_dir =
                    is_context_root || source_entry.is_some_and(|e| e.kind == EntryKind::Dir);
                if is_dir {
                    // The contents go into the destination; the source directory's own mode
                    // is not copied (Docker and Buildah make the destination 0755).
                    if !destination.is_empty() {
                        out.entry(destination.clone()).or_insert(LayerEntry::implied_dir(uid, gid));
                    }
                    let prefix = if is_context_root { String::new() } else { format!("{source}/") };
                    for (path, entry) in &context.entries {
                        let Some(rel) = path.strip_prefix(&prefix) else { continue };
                        if rel.is_empty() {
                            continue;
                        }
                        let target = join(&destination, rel);
                        out.insert(target, entry_for(path, entry, chmod, uid, gid));
                    }
                } else if let Some(entry) = source_entry {
                    let name = source.rsplit('/').next().unwrap_or(&source);
                    let target =
                        if into_dir { join(&destination, name) } else { destination.clone() };
                    out.insert(target, entry_for(&source, entry, chmod, uid, gid));
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
) -> LayerEntry {
    let content = match &entry.kind {
        EntryKind::Dir => Content::Dir,
        EntryKind::Symlink { target } => Content::Symlink(target.clone()),
        EntryKind::File | EntryKind::Other => Content::File {
            source: path.to_owned(),
            digest: entry.content.clone().unwrap_or_default(),
            size: entry.size,
        },
    };
    let mode = match content {
        Content::Symlink(_) => 0o777,
        _ => chmod.unwrap_or(entry.mode & 0o7777),
    };
    LayerEntry { content, mode, uid, gid, implied: false }
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

/// Writes `entries` as an uncompressed layer tar (parents before children), with every
/// mtime set to `mtime` (SOURCE_DATE_EPOCH, or the build's start), and returns its diff id.
pub fn write_layer<W: Write>(
    context_root: &Path,
    entries: &BTreeMap<String, LayerEntry>,
    mtime: u64,
    out: W,
) -> Result<(String, W), CopyError> {
    let mut builder = tar::Builder::new(Hashing { inner: out, hasher: Sha256::new() });
    builder.mode(tar::HeaderMode::Deterministic);
    for (path, entry) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mode(entry.mode);
        header.set_uid(u64::from(entry.uid));
        header.set_gid(u64::from(entry.gid));
        header.set_mtime(mtime);
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
