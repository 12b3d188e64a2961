//! The layer store: each layer's unpacked diff once, under `ROOT/layers/<chain-id hex>/`,
//! with `diff/` (the directory overlayfs uses as a lower layer) and `layer.json` (diff_id,
//! parent chain id, sizes). Keyed by chain id, so two images sharing a base share its layers.
//!
//! A layer is unpacked into `ROOT/staging/<pid>-<n>/` and renamed into place only after its
//! diff_id matched the config's; a crash leaves only a staging directory, which the next
//! [`LayerStore::open`] removes when its process is gone. A layer in `layers/` is complete.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use berth_image::digest::{Digest, DigestError};
use berth_image::manifest::Compression;
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::unpack::{self, UnpackError, UnpackOptions};

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("creating the layer store at {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("preparing staging directory {path}")]
    Stage {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unpacking layer {diff_id}")]
    Unpack {
        diff_id: Digest,
        #[source]
        source: UnpackError,
    },
    #[error("layer's uncompressed content does not match the image config")]
    DiffId(#[source] DigestError),
    #[error("committing layer {chain_id}")]
    Commit {
        chain_id: Digest,
        #[source]
        source: io::Error,
    },
    #[error("reading layer {chain_id}")]
    Read {
        chain_id: Digest,
        #[source]
        source: io::Error,
    },
    #[error("removing layer {chain_id}")]
    Remove {
        chain_id: Digest,
        #[source]
        source: io::Error,
    },
}

/// What `layer.json` records of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
}

/// The unpacked layers under a root.
#[derive(Debug, Clone)]
pub struct LayerStore {
    root: PathBuf,
}

static STAGE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl LayerStore {
    /// Opens (creating when missing) the store, removing staging directories of processes
    /// that no longer run.
    pub fn open(root: &Path) -> Result<Self, LayerError> {
        for dir in ["layers", "staging"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(|source| LayerError::Create { path, source })?;
        }
        let store = Self { root: root.to_path_buf() };
        store.remove_stale_staging();
        Ok(store)
    }

    fn remove_stale_staging(&self) {
        let Ok(entries) = fs::read_dir(self.root.join("staging")) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) =
                name.to_str().and_then(|n| n.split('-').next()).and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            if Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            debug!(path = ?entry.path(), "removing a crashed unpack's staging directory");
            let _ = remove_tree(&entry.path());
        }
    }

    fn dir(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("layers").join(chain_id.hex())
    }

    /// The directory holding the layer's files.
    pub fn diff_path(&self, chain_id: &Digest) -> PathBuf {
        self.dir(chain_id).join("diff")
    }

    pub fn contains(&self, chain_id: &Digest) -> bool {
        self.dir(chain_id).join("layer.json").is_file()
    }

    pub fn info(&self, chain_id: &Digest) -> Result<LayerInfo, LayerError> {
        let path = self.dir(chain_id).join("layer.json");
        let bytes = fs::read(&path)
            .map_err(|source| LayerError::Read { chain_id: chain_id.clone(), source })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| LayerError::Read { chain_id: chain_id.clone(), source: e.into() })
    }

    /// Unpacks a layer blob read from `input` as chain id `chain_id` on top of `parent`,
    /// checking that its uncompressed content hashes to `diff_id`. Nothing is stored when
    /// anything fails. When another process stored the same layer meanwhile, that copy is
    /// kept and this one discarded.
    pub fn apply(
        &self,
        chain_id: &Digest,
        parent: Option<&Digest>,
        diff_id: &Digest,
        input: impl Read,
        compression: Compression,
        options: &UnpackOptions,
    ) -> Result<LayerInfo, LayerError> {
        self.stage(chain_id, parent, diff_id, input, compression, options)?.commit()
    }

    /// Unpacks and verifies a layer as [`apply`](Self::apply) does, but leaves it staged:
    /// the caller checks what else it must (the compressed blob's digest) and then calls
    /// [`StagedLayer::commit`]. Dropping the staged layer removes it.
    pub fn stage(
        &self,
        chain_id: &Digest,
        parent: Option<&Digest>,
        diff_id: &Digest,
        input: impl Read,
        compression: Compression,
        options: &UnpackOptions,
    ) -> Result<StagedLayer, LayerError> {
        let stage = self.root.join("staging").join(format!(
            "{}-{}",
            std::process::id(),
            STAGE_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let diff = stage.join("diff");
        fs::create_dir_all(&diff)
            .map_err(|source| LayerError::Stage { path: diff.clone(), source })?;
        let mut staged = StagedLayer {
            stage,
            target: self.dir(chain_id),
            info: LayerInfo {
                chain_id: chain_id.clone(),
                diff_id: diff_id.clone(),
                parent: parent.cloned(),
                tar_size: 0,
            },
            entries: 0,
            committed: false,
        };
        let applied = unpack::apply_layer(input, compression, &diff, options)
            .map_err(|source| LayerError::Unpack { diff_id: diff_id.clone(), source })?;
        diff_id.verify(&applied.diff_id, None, applied.tar_size).map_err(LayerError::DiffId)?;
        staged.info.tar_size = applied.tar_size;
        staged.entries = applied.entries;
        Ok(staged)
    }

    /// Every stored layer's chain id.
    pub fn list(&self) -> Vec<Digest> {
        let Ok(entries) = fs::read_dir(self.root.join("layers")) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| format!("sha256:{n}").parse().ok()))
            .collect()
    }

    /// Removes a layer; a missing one is not an error.
    pub fn remove(&self, chain_id: &Digest) -> Result<(), LayerError> {
        let dir = self.dir(chain_id);
        if !dir.exists() {
            return Ok(());
        }
        // Renamed away first, so no reader sees a half-removed layer as complete.
        let doomed = self.root.join("staging").join(format!(
            "{}-rm-{}",
            std::process::id(),
            STAGE_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::rename(&dir, &doomed)
            .map_err(|source| LayerError::Remove { chain_id: chain_id.clone(), source })?;
        remove_tree(&doomed)
            .map_err(|source| LayerError::Remove { chain_id: chain_id.clone(), source })
    }
}

/// An unpacked, verified layer not yet in the store.
pub struct StagedLayer {
    stage: PathBuf,
    target: PathBuf,
    info: LayerInfo,
    entries: u64,
    committed: bool,
}

impl StagedLayer {
    pub fn info(&self) -> &LayerInfo {
        &self.info
    }

    /// Moves the layer into the store under its chain id.
    pub fn commit(mut self) -> Result<LayerInfo, LayerError> {
        let chain_id = self.info.chain_id.clone();
        let commit_err = |source| LayerError::Commit { chain_id: chain_id.clone(), source };
        let json = serde_json::to_vec_pretty(&self.info).map_err(|e| commit_err(e.into()))?;
        fs::write(self.stage.join("layer.json"), json).map_err(commit_err)?;
        match fs::rename(&self.stage, &self.target) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => {
                // Another pull stored it first; theirs is as good as ours.
                let _ = remove_tree(&self.stage);
            }
            Err(e) => return Err(commit_err(e)),
        }
        self.committed = true;
        info!(chain_id = %chain_id, entries = self.entries, "layer unpacked");
        Ok(self.info.clone())
    }
}

impl Drop for StagedLayer {
    fn drop(&mut self) {
        if !self.committed {
            let _ = remove_tree(&self.stage);
        }
    }
}

/// Removes a tree, making directories writable first (layers may hold 0555 directories that
/// a rootless user could not otherwise empty).
fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(path);
            fs::remove_dir_all(path)
        }
    }
}

fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(path) else { return };
    if meta.is_dir() {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(path) {
            for entry in entries.flatten() {
                make_writable(&entry.path());
            }
        }
    }
}
