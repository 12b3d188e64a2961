//! The content store: every blob (manifests, configs, compressed layers) once, by digest,
//! under `ROOT/blobs/<algorithm>/<hex>`, shared by all images.
//!
//! A blob is written to a temporary file in `ROOT/ingest/`, fsync'd, and renamed into place
//! only after its digest (and size, when known) match; so a blob under `blobs/` is always
//! complete and correct, whoever crashed while writing it. Several processes may write the
//! same blob at once: each writes its own temporary file and the renames are atomic, so the
//! last one to finish replaces identical content with identical content.
//!
//! An interrupted download leaves `ingest/<hex>.partial`; a later writer of the same digest
//! may claim it (under an exclusive flock on the file) and resume after its bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use tracing::debug;

use crate::digest::{Digest, DigestError, Hasher};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("creating the content store at {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest} is not in the store")]
    Missing { digest: Digest },
    #[error("reading blob {digest}")]
    Read {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    #[error("writing blob to {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("verifying blob")]
    Verify(#[source] DigestError),
    #[error("removing blob {digest}")]
    Remove {
        digest: Digest,
        #[source]
        source: io::Error,
    },
}

/// A content store rooted at a directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Opens (creating when missing) the store at `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for dir in ["blobs/sha256", "ingest"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(|source| StoreError::Create { path, source })?;
        }
        Ok(Self { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where blob `digest` lives (whether or not it is there).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join(digest.algorithm()).join(digest.hex())
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The size of a stored blob.
    pub fn size(&self, digest: &Digest) -> Result<u64, StoreError> {
        match fs::metadata(self.path(digest)) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::Missing { digest: digest.clone() })
            }
            Err(source) => Err(StoreError::Read { digest: digest.clone(), source }),
        }
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        File::open(self.path(digest)).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                StoreError::Missing { digest: digest.clone() }
            } else {
                StoreError::Read { digest: digest.clone(), source }
            }
        })
    }

    /// The whole blob; for manifests and configs, not layers.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(|source| StoreError::Read { digest: digest.clone(), source })?;
        Ok(bytes)
    }

    /// Stores `bytes`, returning their sha256 digest.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::sha256(bytes);
        if self.contains(&digest) {
            return Ok(digest);
        }
        let mut writer = self.writer(Some(&digest), Some(bytes.len() as u64))?;
        writer.write_all(bytes).map_err(|source| StoreError::Write {
            path: writer.temp_path().to_path_buf(),
            source,
        })?;
        writer.commit()
    }

    /// A writer for a new blob. With `expected`, the content must hash to it (and be
    /// `size` bytes long) for [`BlobWriter::commit`] to succeed.
    pub fn writer(
        &self,
        expected: Option<&Digest>,
        size: Option<u64>,
    ) -> Result<BlobWriter, StoreError> {
        let ingest = self.root.join("ingest");
        let hasher = match expected {
            Some(d) => d.hasher().map_err(StoreError::Verify)?,
            None => Hasher::sha256(),
        };
        let file = tempfile::Builder::new()
            .prefix(".blob-")
            .tempfile_in(&ingest)
            .map_err(|source| StoreError::Write { path: ingest.clone(), source })?;
        Ok(BlobWriter {
            store: self.clone(),
            file: Target::Temp(file),
            hasher,
            written: 0,
            expected: expected.cloned(),
            size,
        })
    }

    /// A writer for blob `digest` that resumes an interrupted earlier download when one is
    /// left in `ingest/`. Returns the writer and the number of bytes already in it (their
    /// hash is already folded in); the caller continues from that offset. When another
    /// process is writing the same partial file, a fresh writer is returned instead.
    pub fn resumable_writer(
        &self,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<(BlobWriter, u64), StoreError> {
        let path = self.root.join("ingest").join(format!("{}.partial", digest.hex()));
        let write_err = |source| StoreError::Write { path: path.clone(), source };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(write_err)?;
        let locked =
            rustix::fs::flock(file.as_fd(), rustix::fs::FlockOperation::NonBlockingLockExclusive);
        if locked.is_err() {
            debug!(%digest, "partial blob is being written by another process; starting afresh");
            return Ok((self.writer(Some(digest), size)?, 0));
        }
        let mut hasher = digest.hasher().map_err(StoreError::Verify)?;
        let mut reader = &file;
        reader.seek(SeekFrom::Start(0)).map_err(write_err)?;
        let mut buf = vec![0u8; 1 << 16];
        let mut have = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(write_err)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            have += n as u64;
        }
        if size.is_some_and(|size| have > size) {
            // Longer than the blob can be: start again.
            file.set_len(0).map_err(write_err)?;
            hasher = digest.hasher().map_err(StoreError::Verify)?;
            have = 0;
        }
        Ok((
            BlobWriter {
                store: self.clone(),
                file: Target::Partial { file, path: path.clone() },
                hasher,
                written: have,
                expected: Some(digest.clone()),
                size,
            },
            have,
        ))
    }

    /// Makes the renames of committed blobs durable: fsyncs the blob directories. Call it
    /// before recording anything that refers to new blobs.
    pub fn sync(&self) -> Result<(), StoreError> {
        let dir = self.root.join("blobs/sha256");
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| StoreError::Write { path: dir, source })
    }

    /// Removes a blob; a missing one is not an error.
    pub fn remove(&self, digest: &Digest) -> Result<(), StoreError> {
        match fs::remove_file(self.path(digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Remove { digest: digest.clone(), source }),
        }
    }

    /// Every stored blob's digest.
    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let mut out = Vec::new();
        let blobs = self.root.join("blobs");
        let read_err = |source| StoreError::Write { path: blobs.clone(), source };
        for algorithm in fs::read_dir(&blobs).map_err(read_err)? {
            let algorithm = algorithm.map_err(read_err)?;
            let Some(alg) = algorithm.file_name().to_str().map(str::to_owned) else { continue };
            for blob in fs::read_dir(algorithm.path()).map_err(read_err)? {
                let blob = blob.map_err(read_err)?;
                if let Some(name) = blob.file_name().to_str() {
                    if let Ok(digest) = format!("{alg}:{name}").parse() {
                        out.push(digest);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A blob being written. Dropping it without [`commit`](Self::commit) removes the temporary
/// file; a resumable partial file is kept for the next attempt.
pub struct BlobWriter {
    store: BlobStore,
    file: Target,
    hasher: Hasher,
    written: u64,
    expected: Option<Digest>,
    size: Option<u64>,
}

enum Target {
    /// Removed when dropped.
    Temp(tempfile::NamedTempFile),
    /// `ingest/<hex>.partial`, flock'd exclusively through `file` while this writer lives.
    Partial { file: File, path: PathBuf },
}

impl Target {
    fn file(&self) -> &File {
        match self {
            Self::Temp(t) => t.as_file(),
            Self::Partial { file, .. } => file,
        }
    }

    fn path(&self) -> &Path {
        match self {
            Self::Temp(t) => t.path(),
            Self::Partial { path, .. } => path,
        }
    }
}

impl BlobWriter {
    pub fn temp_path(&self) -> &Path {
        self.file.path()
    }

    /// Bytes written so far (including resumed ones).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Verifies, fsyncs and renames the blob into place; returns its digest.
    pub fn commit(self) -> Result<Digest, StoreError> {
        let path = self.file.path().to_path_buf();
        let write_err = |source| StoreError::Write { path: path.clone(), source };
        let actual = self.hasher.clone().finish();
        let result = match &self.expected {
            Some(expected) => expected.verify(&actual, self.size, self.written),
            None => Ok(()),
        };
        if let Err(e) = result {
            // Wrong content must not be resumed from either.
            if let Target::Partial { path, .. } = &self.file {
                let _ = fs::remove_file(path);
            }
            return Err(StoreError::Verify(e));
        }
        self.file.file().sync_all().map_err(write_err)?;
        let target = self.store.path(&actual);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(write_err)?;
        }
        match self.file {
            Target::Temp(temp) => {
                temp.persist(&target).map_err(|e| write_err(e.error))?;
            }
            Target::Partial { file, path } => {
                fs::rename(&path, &target).map_err(write_err)?;
                drop(file);
            }
        }
        // The rename becomes durable when the directory is synced: once per batch, by
        // [`BlobStore::sync`] before anything refers to the blob (each fsync can cost a
        // journal commit on a busy file system).
        debug!(digest = %actual, "stored blob");
        Ok(actual)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.file().write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_stored_only_when_its_digest_matches() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let digest = store.put(b"hello").unwrap();
        assert_eq!(store.read(&digest).unwrap(), b"hello");

        let claimed = Digest::sha256(b"what the registry promised");
        let mut writer = store.writer(Some(&claimed), None).unwrap();
        writer.write_all(b"what it sent").unwrap();
        let err = writer.commit().unwrap_err();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(chain.contains(claimed.as_str()), "{chain}");
        assert!(chain.contains(Digest::sha256(b"what it sent").as_str()), "{chain}");
        assert!(!store.contains(&claimed));
        assert_eq!(store.list().unwrap(), vec![digest]);
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
    }

    // Many writers of the same blob at once all succeed and leave one correct copy.
    #[test]
    fn concurrent_writers_of_one_blob_agree() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let digest = Digest::sha256(&data);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    let mut w = store.writer(Some(&digest), Some(data.len() as u64)).unwrap();
                    for chunk in data.chunks(4096) {
                        w.write_all(chunk).unwrap();
                    }
                    assert_eq!(w.commit().unwrap(), digest);
                });
            }
        });
        assert_eq!(store.read(&digest).unwrap(), data);
    }

    // An interrupted write is resumed from where it stopped, and the result verifies.
    #[test]
    fn a_partial_blob_is_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let data = vec![42u8; 10_000];
        let digest = Digest::sha256(&data);
        {
            let (mut w, have) = store.resumable_writer(&digest, Some(10_000)).unwrap();
            assert_eq!(have, 0);
            w.write_all(&data[..4000]).unwrap();
            // Dropped: the process "died" here.
        }
        let (mut w, have) = store.resumable_writer(&digest, Some(10_000)).unwrap();
        assert_eq!(have, 4000);
        w.write_all(&data[4000..]).unwrap();
        assert_eq!(w.commit().unwrap(), digest);
        assert_eq!(store.read(&digest).unwrap(), data);
    }
}
