//! The build context: its directory walked once (leaving out what the ignore file says),
//! every regular file's content hashed in parallel, and per-source digests for the cache key
//! of COPY and ADD.
//!
//! What a digest covers is what ends up in a layer: the path, the file type and permission
//! bits, owner and group, the content (a symlink's target). Modification times are left out on
//! purpose: a fresh checkout or a `touch` must not invalidate the cache.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use crate::ignore::{clean, Ignore};

/// Why the context could not be read, or a source not found in it.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("reading the build context at {}", path.display())]
    Walk {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("hashing {}", path.display())]
    Hash {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_path:?} is outside the build context")]
    Outside { source_path: String },
    #[error("{source_path:?} not found in the build context (or left out by the ignore file)")]
    MissingSource { source_path: String },
    #[error("bad source pattern {source_path:?}: {reason}")]
    BadPattern { source_path: String, reason: &'static str },
}

/// The kind of a context entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink {
        target: String,
    },
    /// A fifo, socket or device: recorded, not hashed.
    Other,
}

/// One path of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// `sha256:…` of a regular file's content.
    pub content: Option<String>,
    /// Modification time in seconds: written into layers, never part of a digest.
    pub mtime: i64,
}

/// A walked and hashed build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub root: PathBuf,
    /// By path relative to the root, `/`-separated; the root itself is not in it.
    pub entries: BTreeMap<String, Entry>,
}

impl Context {
    /// Walks `root` once, leaving out what `ignore` excludes, and hashes file contents with
    /// up to `threads` threads (0: as many as the machine has cores).
    pub fn read(root: &Path, ignore: &Ignore, threads: usize) -> Result<Self, ContextError> {
        let mut entries = BTreeMap::new();
        let mut files: Vec<String> = Vec::new();
        walk(root, "", ignore, &mut entries, &mut files)?;

        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
        .min(files.len().max(1));
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, Result<String, ContextError>)>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let mut buffer = vec![0u8; 256 * 1024];
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(rel) = files.get(i) else { break };
                        done.push((i, hash_file(&root.join(rel), &mut buffer)));
                    }
                    results.lock().unwrap_or_else(|e| e.into_inner()).extend(done);
                });
            }
        });
        for (i, digest) in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
            if let Some(entry) = entries.get_mut(&files[i]) {
                entry.content = Some(digest?);
            }
        }
        tracing::debug!(root = %root.display(), entries = entries.len(), files = files.len(), threads, "context read");
        Ok(Self { root: root.to_owned(), entries })
    }

    /// The paths a COPY/ADD source names, before anything below them: the path itself, or
    /// every path matching it if it has wildcards; `.` for the whole context.
    pub fn roots(&self, source: &str) -> Result<Vec<String>, ContextError> {
        let cleaned = clean(source.trim_start_matches('/'));
        if cleaned == ".." || cleaned.starts_with("../") {
            return Err(ContextError::Outside { source_path: source.to_owned() });
        }
        if cleaned == "." {
            return Ok(vec![cleaned]);
        }
        let roots: Vec<String> = if cleaned.contains(['*', '?', '[', '\\']) {
            let pattern = crate::ignore::Pattern::new(&cleaned).map_err(|reason| {
                ContextError::BadPattern { source_path: source.to_owned(), reason }
            })?;
            let matches: Vec<&String> =
                self.entries.keys().filter(|p| pattern.matches(p)).collect();
            // A match below another match comes with it.
            matches
                .iter()
                .filter(|p| !matches.iter().any(|q| p.starts_with(&format!("{q}/"))))
                .map(|p| (*p).clone())
                .collect()
        } else if self.entries.contains_key(&cleaned) {
            vec![cleaned]
        } else {
            Vec::new()
        };
        if roots.is_empty() {
            return Err(ContextError::MissingSource { source_path: source.to_owned() });
        }
        Ok(roots)
    }

    /// Everything below `root` (not `root` itself), in path order.
    pub fn below<'a>(&'a self, root: &str) -> Box<dyn Iterator<Item = &'a str> + 'a> {
        if root == "." {
            return Box::new(self.entries.keys().map(String::as_str));
        }
        // Everything below `root` sorts between "root/" and "root0" ('0' follows '/').
        let range = format!("{root}/")..format!("{root}0");
        Box::new(self.entries.range(range).map(|(k, _)| k.as_str()))
    }

    /// The context paths a COPY/ADD source names, and everything below each, sorted and
    /// without duplicates. Symlinks are listed as they are (see [`Context::follow`]).
    pub fn resolve(&self, source: &str) -> Result<Vec<&str>, ContextError> {
        let mut out: Vec<&str> = Vec::new();
        for root in self.roots(source)? {
            if let Some((key, _)) = self.entries.get_key_value(&root) {
                out.push(key);
            }
            out.extend(self.below(&root));
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Follows symlinks at `path` (a source's own path, which COPY follows, as Docker and
    /// Buildah do), within the context: absolute targets are taken from the context root.
    pub fn follow(&self, path: &str) -> Result<String, ContextError> {
        let mut current = path.to_owned();
        // As many links as the kernel follows (MAXSYMLINKS).
        for _ in 0..40 {
            let Some(EntryKind::Symlink { target }) = self.entries.get(&current).map(|e| &e.kind)
            else {
                return Ok(current);
            };
            let joined = if target.starts_with('/') {
                clean(target.trim_start_matches('/'))
            } else {
                let parent = current.rsplit_once('/').map_or("", |(dir, _)| dir);
                clean(format!("{parent}/{target}").trim_start_matches('/'))
            };
            if joined == ".." || joined.starts_with("../") {
                return Err(ContextError::Outside { source_path: path.to_owned() });
            }
            if joined != "." && !self.entries.contains_key(&joined) {
                return Err(ContextError::MissingSource {
                    source_path: format!("{path} -> {target}"),
                });
            }
            current = joined;
        }
        Err(ContextError::MissingSource {
            source_path: format!("{path} (too many levels of symlinks)"),
        })
    }

    /// The digest of what a list of sources brings in: every resolved path with its type,
    /// mode, owner and content. Changes exactly when a COPY of these sources would copy
    /// something different.
    /// `excludes` are COPY's `--exclude` patterns (ignore-file syntax, from the context root):
    /// what they match is not copied, so it does not count.
    pub fn sources_digest(
        &self,
        sources: &[String],
        excludes: &[String],
    ) -> Result<String, ContextError> {
        let mut patterns = Vec::with_capacity(excludes.len());
        for exclude in excludes {
            let pattern = crate::ignore::Pattern::new(exclude).map_err(|reason| {
                ContextError::BadPattern { source_path: exclude.clone(), reason }
            })?;
            patterns.push(pattern);
        }
        let excluded = Ignore { patterns };
        let mut hasher = Sha256::new();
        for (index, source) in sources.iter().enumerate() {
            hasher.update(format!("source {index} {source:?}\n"));
            let mut paths: Vec<&str> = Vec::new();
            for root in self.roots(source)? {
                if let Some((key, _)) = self.entries.get_key_value(&root) {
                    paths.push(key);
                }
                // A source that is a symlink brings what it points at.
                let real = self.follow(&root)?;
                if real != root {
                    hasher.update(format!("{root:?} -> {real:?}\n"));
                    if let Some((key, _)) = self.entries.get_key_value(&real) {
                        paths.push(key);
                    }
                }
                paths.extend(self.below(&real));
            }
            for path in paths {
                if excluded.is_excluded(path) {
                    continue;
                }
                let entry = &self.entries[path];
                let kind = match &entry.kind {
                    EntryKind::File => "file".to_owned(),
                    EntryKind::Dir => "dir".to_owned(),
                    EntryKind::Symlink { target } => format!("symlink {target:?}"),
                    EntryKind::Other => "other".to_owned(),
                };
                let content = entry.content.as_deref().unwrap_or("-");
                hasher.update(format!(
                    "{path:?} {kind} mode={:o} uid={} gid={} {content}\n",
                    entry.mode, entry.uid, entry.gid
                ));
            }
        }
        Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
    }
}

fn walk(
    root: &Path,
    dir: &str,
    ignore: &Ignore,
    entries: &mut BTreeMap<String, Entry>,
    files: &mut Vec<String>,
) -> Result<(), ContextError> {
    let full = if dir.is_empty() { root.to_owned() } else { root.join(dir) };
    let read =
        fs::read_dir(&full).map_err(|source| ContextError::Walk { path: full.clone(), source })?;
    for item in read {
        let item = item.map_err(|source| ContextError::Walk { path: full.clone(), source })?;
        let name = item.file_name().to_string_lossy().into_owned();
        let rel = if dir.is_empty() { name } else { format!("{dir}/{name}") };
        let path = item.path();
        let meta = fs::symlink_metadata(&path)
            .map_err(|source| ContextError::Walk { path: path.clone(), source })?;
        let excluded = ignore.is_excluded(&rel);
        let file_type = meta.file_type();
        if excluded {
            // An excluded directory is still walked when an exception may bring back
            // something inside it; the directory itself stays out.
            if file_type.is_dir() && ignore.may_include_below(&rel) {
                walk(root, &rel, ignore, entries, files)?;
            }
            continue;
        }
        let kind = if file_type.is_symlink() {
            let target = fs::read_link(&path)
                .map_err(|source| ContextError::Walk { path: path.clone(), source })?;
            EntryKind::Symlink { target: target.to_string_lossy().into_owned() }
        } else if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_file() {
            files.push(rel.clone());
            EntryKind::File
        } else {
            EntryKind::Other
        };
        let is_dir = kind == EntryKind::Dir;
        entries.insert(
            rel.clone(),
            Entry {
                kind,
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                size: meta.len(),
                content: None,
                mtime: meta.mtime(),
            },
        );
        if is_dir {
            walk(root, &rel, ignore, entries, files)?;
        }
    }
    Ok(())
}

fn hash_file(path: &Path, buffer: &mut [u8]) -> Result<String, ContextError> {
    let error = |source| ContextError::Hash { path: path.to_owned(), source };
    let mut file = fs::File::open(path).map_err(error)?;
    let mut hasher = Sha256::new();
    loop {
        let n = file
            .read(buffer)
            .map_err(|source| ContextError::Hash { path: path.to_owned(), source })?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests;
