//! The image index: which images the store holds and what they are called, in one JSON file
//! `ROOT/images/images.json`. Every change is a read-modify-write under an exclusive flock on
//! `images.lock`, written to a temporary file, fsync'd and renamed over the old one, so a
//! reader (under a shared lock) sees either the old index or the new one, never a mix.
//!
//! The engine's SQLite state database, when containers arrive, keeps containers; images stay
//! here because their truth is the content store beside this file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use berth_image::{Descriptor, Digest};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("opening the image index in {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("locking {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One image: its id (the config digest), the manifest it came as, and its names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: Digest,
    pub manifest: Descriptor,
    /// Full names with tags: `docker.io/library/busybox:latest`.
    #[serde(default)]
    pub names: Vec<String>,
    /// `registry/repository@digest` for every repository it was pulled from or pushed to.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// Names it had before, newest first, as Podman's NamesHistory.
    #[serde(default)]
    pub names_history: Vec<String>,
    /// When it entered the store (seconds since the epoch).
    #[serde(default)]
    pub added: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct IndexFile {
    #[serde(default)]
    pub images: Vec<ImageRecord>,
}

/// The index file of one store.
#[derive(Debug, Clone)]
pub struct Index {
    dir: PathBuf,
}

impl Index {
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        fs::create_dir_all(dir)
            .map_err(|source| IndexError::Open { path: dir.to_path_buf(), source })?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    fn lock(&self, exclusive: bool) -> Result<File, IndexError> {
        let path = self.dir.join("images.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| IndexError::Lock { path: path.clone(), source })?;
        let op = if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        };
        rustix::fs::flock(file.as_fd(), op)
            .map_err(|e| IndexError::Lock { path, source: e.into() })?;
        Ok(file)
    }

    fn read_unlocked(&self) -> Result<IndexFile, IndexError> {
        let path = self.dir.join("images.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| IndexError::Read { path, source: e.into() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(IndexFile::default()),
            Err(source) => Err(IndexError::Read { path, source }),
        }
    }

    /// A consistent snapshot of the index.
    pub fn read(&self) -> Result<IndexFile, IndexError> {
        let _lock = self.lock(false)?;
        self.read_unlocked()
    }

    /// Runs `change` on the index under the exclusive lock and writes the result atomically.
    pub fn update<T>(&self, change: impl FnOnce(&mut IndexFile) -> T) -> Result<T, IndexError> {
        let _lock = self.lock(true)?;
        let mut index = self.read_unlocked()?;
        let out = change(&mut index);
        let path = self.dir.join("images.json");
        let write_err = |source| IndexError::Write { path: path.clone(), source };
        let mut temp = tempfile::Builder::new()
            .prefix(".images-")
            .tempfile_in(&self.dir)
            .map_err(write_err)?;
        let json = serde_json::to_vec_pretty(&index).map_err(|e| write_err(e.into()))?;
        temp.write_all(&json).map_err(write_err)?;
        temp.as_file().sync_all().map_err(write_err)?;
        temp.persist(&path).map_err(|e| write_err(e.error))?;
        Ok(out)
    }

    /// Holds the exclusive lock while `work` runs (garbage collection must not race a
    /// concurrent change of the index).
    pub fn with_exclusive<T>(&self, work: impl FnOnce(&IndexFile) -> T) -> Result<T, IndexError> {
        let _lock = self.lock(true)?;
        let index = self.read_unlocked()?;
        Ok(work(&index))
    }
}
