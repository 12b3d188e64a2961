//! Images as engine operations — load, list, inspect, tag, untag, remove, prune, save,
//! import, history, pull and push — over berth-image's content store and berth-storage's
//! layer store, so the command line and a later API socket behave the same.
//!
//! On disk, under the engine's root:
//!
//! ```text
//! ROOT/storage/blobs/sha256/…   verified blobs (berth_image::store)
//! ROOT/storage/layers/<chain>/  unpacked layers (berth_storage::layers)
//! ROOT/images/images.json       names → manifests (index.rs), under images.lock
//! ROOT/images/gc.lock           shared by writers of the stores, exclusive for collection
//! ```
//!
//! An image's id is its config digest, as in Docker and Podman. Garbage collection keeps
//! every blob and layer that an indexed image references and removes the rest; writers
//! (pull, load, import) hold `gc.lock` shared for their whole run, so collection can never
//! remove a blob that a running pull has stored but not yet indexed.

// ImageError carries the registry's status, URL and error body so the user sees them, and
// stays unboxed so the command line can downcast to the typed causes for hints; it is made
// once per failed command, so its size costs nothing measurable.
#![allow(clippy::result_large_err)]

pub mod index;
pub mod pull;
pub mod time;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use berth_image::archive::{self, ArchiveError, ToSave};
use berth_image::config::{chain_ids, History, ImageConfig};
use berth_image::digest::{Digest, Hasher, HashingReader};
use berth_image::manifest::{
    self, Compression, Descriptor, ImageManifest, Manifest, ManifestError,
};
use berth_image::reference::{Reference, ReferenceError};
use berth_image::store::StoreError;
use berth_image::{BlobStore, Platform};
use berth_storage::layers::LayerError;
use berth_storage::{LayerStore, UnpackOptions};
use serde::Serialize;
use tracing::{debug, info};

pub use berth_image::archive::Format;
pub use index::ImageRecord;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("opening the image store under {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Index(#[from] index::IndexError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("{0}: image not known")]
    NotFound(String),
    #[error("{input}: the id prefix matches {count} images")]
    Ambiguous { input: String, count: usize },
    #[error("image {id} has several names ({names}); use --force to remove it with all of them")]
    MustForce { id: String, names: String },
    #[error("image {name}: it was not tagged {tag}")]
    NotTagged { name: String, tag: String },
    #[error("parsing config {digest}")]
    Config {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("manifest {digest}")]
    Manifest {
        digest: Digest,
        #[source]
        source: ManifestError,
    },
    #[error("image config {digest} lists {diff_ids} diff_ids for {layers} layers")]
    LayerCount { digest: Digest, diff_ids: usize, layers: usize },
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0} is not supported yet")]
    NotSupported(String),
    #[error(transparent)]
    Pull(#[from] pull::PullError),
}

/// The image side of the engine, for one root.
#[derive(Debug, Clone)]
pub struct Images {
    root: PathBuf,
    blobs: BlobStore,
    layers: LayerStore,
    index: index::Index,
    unpack: UnpackOptions,
}

/// A resolved image: its record, manifest and config.
#[derive(Debug, Clone)]
pub struct Image {
    pub record: ImageRecord,
    pub manifest: ImageManifest,
    pub config: ImageConfig,
    /// Bytes of all layers uncompressed, as Podman reports an image's size.
    pub size: u64,
}

impl Image {
    pub fn id(&self) -> &Digest {
        &self.record.id
    }

    /// Creation time in seconds, from the config (0 when it has none).
    pub fn created(&self) -> i64 {
        self.config.created.as_deref().and_then(time::parse_rfc3339).unwrap_or(0)
    }

    /// True for an image with no names.
    pub fn dangling(&self) -> bool {
        self.record.names.is_empty()
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        self.config.labels().cloned().unwrap_or_default()
    }
}

/// What `rmi` did: names removed and images deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    pub untagged: Vec<String>,
    pub deleted: Vec<Digest>,
}

/// One row of `history`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryRow {
    /// The image id for the top layer, `<missing>` for the ones below (as Docker prints).
    pub id: String,
    pub created: i64,
    pub created_by: String,
    pub size: u64,
    pub comment: String,
    pub tags: Vec<String>,
}

impl Images {
    /// Opens (creating when missing) the image store under the engine root `root`.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        let storage = root.join("storage");
        let blobs = BlobStore::open(&storage)?;
        let layers = LayerStore::open(&storage)?;
        let index = index::Index::open(&root.join("images"))?;
        Ok(Self {
            root: root.to_path_buf(),
            blobs,
            layers,
            index,
            unpack: UnpackOptions::for_current_user(),
        })
    }

    /// How layers are unpacked (whiteout format, owners); the default fits the current user.
    pub fn with_unpack_options(mut self, options: UnpackOptions) -> Self {
        self.unpack = options;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Held shared while writing blobs or layers that are not yet indexed.
    fn gc_lock(&self, exclusive: bool) -> Result<File, ImageError> {
        let path = self.root.join("images/gc.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| ImageError::Open { path: path.clone(), source })?;
        let op = if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        };
        rustix::fs::flock(file.as_fd(), op)
            .map_err(|e| ImageError::Open { path, source: e.into() })?;
        Ok(file)
    }

    // ---- reading ----

    /// Every image, newest first.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let index = self.index.read()?;
        let mut images = Vec::new();
        for record in index.images {
            images.push(self.load_image(record)?);
        }
        images.sort_by_key(|image| std::cmp::Reverse(image.created()));
        Ok(images)
    }

    fn load_image(&self, record: ImageRecord) -> Result<Image, ImageError> {
        let manifest = self.image_manifest(&record.manifest)?;
        let bytes = self.blobs.read(&manifest.config.digest)?;
        let config: ImageConfig = serde_json::from_slice(&bytes).map_err(|source| {
            ImageError::Config { digest: manifest.config.digest.clone(), source }
        })?;
        let size = chain_ids(&config.rootfs.diff_ids)
            .iter()
            .filter_map(|chain| self.layers.info(chain).ok())
            .map(|info| info.tar_size)
            .sum();
        Ok(Image { record, manifest, config, size })
    }

    fn image_manifest(&self, descriptor: &Descriptor) -> Result<ImageManifest, ImageError> {
        let bytes = self.blobs.read(&descriptor.digest)?;
        match Manifest::parse(Some(&descriptor.media_type), &bytes) {
            Ok(Manifest::Image { manifest, .. }) => Ok(manifest),
            Ok(Manifest::Index { media_type, .. }) => Err(ImageError::Manifest {
                digest: descriptor.digest.clone(),
                source: ManifestError::UnknownMediaType(media_type),
            }),
            Err(source) => Err(ImageError::Manifest { digest: descriptor.digest.clone(), source }),
        }
    }

    /// Finds the image `input` names: a full or abbreviated id, `sha256:<id>`, a name with
    /// tag (`latest` when none) or digest; a short name matches that path on any registry.
    pub fn find(&self, input: &str) -> Result<Image, ImageError> {
        let index = self.index.read()?;
        let record = resolve(&index.images, input)?.clone();
        self.load_image(record)
    }

    pub fn history(&self, input: &str) -> Result<Vec<HistoryRow>, ImageError> {
        let image = self.find(input)?;
        let mut sizes = chain_ids(&image.config.rootfs.diff_ids)
            .into_iter()
            .map(|chain| self.layers.info(&chain).map(|i| i.tar_size).unwrap_or(0));
        let mut rows: Vec<HistoryRow> = image
            .config
            .history
            .iter()
            .map(|h: &History| HistoryRow {
                id: "<missing>".to_owned(),
                created: h.created.as_deref().and_then(time::parse_rfc3339).unwrap_or(0),
                created_by: h.created_by.clone().unwrap_or_default(),
                size: if h.empty_layer { 0 } else { sizes.next().unwrap_or(0) },
                comment: h.comment.clone().unwrap_or_default(),
                tags: Vec::new(),
            })
            .collect();
        rows.reverse();
        if let Some(top) = rows.first_mut() {
            top.id = image.id().hex().to_owned();
            top.tags = image.record.names.clone();
        }
        Ok(rows)
    }

    // ---- changing names ----

    /// Adds `names` (tags are `latest` when none is given) to the image `input`.
    pub fn tag(&self, input: &str, names: &[String]) -> Result<(), ImageError> {
        let new: Vec<String> = names
            .iter()
            .map(|n| Reference::parse(n).map(|r| r.with_default_tag().without_digest().to_string()))
            .collect::<Result<_, _>>()?;
        self.index.update(|index| {
            let id = resolve(&index.images, input)?.id.clone();
            for record in index.images.iter_mut() {
                if record.id == id {
                    for name in &new {
                        if !record.names.contains(name) {
                            record.names.push(name.clone());
                        }
                    }
                } else {
                    // A name points at one image only: moving it leaves the old one without it.
                    let before = record.names.len();
                    record.names.retain(|n| !new.contains(n));
                    if record.names.len() != before {
                        record.names_history.extend(new.iter().cloned());
                    }
                }
            }
            Ok(())
        })?
    }

    /// Removes `names` from the image (all its names when `names` is empty).
    pub fn untag(&self, input: &str, names: &[String]) -> Result<Vec<String>, ImageError> {
        let drop: Vec<String> = names
            .iter()
            .map(|n| Reference::parse(n).map(|r| r.with_default_tag().without_digest().to_string()))
            .collect::<Result<_, _>>()?;
        self.index.update(|index| {
            let id = resolve(&index.images, input)?.id.clone();
            let record = index.images.iter_mut().find(|r| r.id == id).expect("resolved above");
            let mut removed = Vec::new();
            if drop.is_empty() {
                removed = std::mem::take(&mut record.names);
            } else {
                for name in &drop {
                    let Some(pos) = record.names.iter().position(|n| n == name) else {
                        return Err(ImageError::NotTagged {
                            name: input.to_owned(),
                            tag: name.clone(),
                        });
                    };
                    removed.push(record.names.remove(pos));
                }
            }
            record.names_history.splice(0..0, removed.iter().cloned());
            Ok(removed)
        })?
    }

    // ---- removing ----

    /// Removes images as `rmi` does: a name of an image with other names only untags it; an
    /// id (or the last name) deletes the image; an id of an image with several names needs
    /// `force`. Unreferenced blobs and layers are collected afterwards.
    pub fn remove(&self, inputs: &[String], force: bool) -> Result<Removed, ImageError> {
        let mut removed = Removed::default();
        for input in inputs {
            let step = self.index.update(|index| -> Result<Removed, ImageError> {
                let record = resolve(&index.images, input)?.clone();
                let by_name = record.names.iter().any(|n| name_matches(n, input));
                let mut out = Removed::default();
                if by_name && record.names.len() > 1 {
                    let name = record
                        .names
                        .iter()
                        .find(|n| name_matches(n, input))
                        .cloned()
                        .expect("matched");
                    let entry =
                        index.images.iter_mut().find(|r| r.id == record.id).expect("present");
                    entry.names.retain(|n| *n != name);
                    out.untagged.push(name);
                    return Ok(out);
                }
                if !by_name && record.names.len() > 1 && !force {
                    return Err(ImageError::MustForce {
                        id: record.id.short().to_owned(),
                        names: record.names.join(", "),
                    });
                }
                out.untagged.extend(record.names.iter().cloned());
                out.deleted.push(record.id.clone());
                index.images.retain(|r| r.id != record.id);
                Ok(out)
            })??;
            removed.untagged.extend(step.untagged);
            removed.deleted.extend(step.deleted);
        }
        if !removed.deleted.is_empty() {
            self.collect_garbage()?;
        }
        Ok(removed)
    }

    /// Removes dangling images (all images with `all`, as nothing uses them yet) and
    /// collects garbage. Returns the ids removed.
    pub fn prune(&self, all: bool) -> Result<Vec<Digest>, ImageError> {
        let deleted = self.index.update(|index| {
            let (gone, kept): (Vec<_>, Vec<_>) =
                index.images.drain(..).partition(|r| all || r.names.is_empty());
            index.images = kept;
            gone.into_iter().map(|r| r.id).collect::<Vec<_>>()
        })?;
        self.collect_garbage()?;
        Ok(deleted)
    }

    /// Removes every blob and layer no indexed image references.
    pub fn collect_garbage(&self) -> Result<(), ImageError> {
        let _gc = self.gc_lock(true)?;
        let (blobs, chains) = self.index.with_exclusive(|index| {
            let mut blobs = BTreeSet::new();
            let mut chains = BTreeSet::new();
            for record in &index.images {
                blobs.insert(record.manifest.digest.clone());
                let Ok(manifest) = self.image_manifest(&record.manifest) else { continue };
                blobs.insert(manifest.config.digest.clone());
                blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
                if let Ok(bytes) = self.blobs.read(&manifest.config.digest) {
                    if let Ok(config) = serde_json::from_slice::<ImageConfig>(&bytes) {
                        chains.extend(chain_ids(&config.rootfs.diff_ids));
                    }
                }
            }
            (blobs, chains)
        })?;
        for digest in self.blobs.list()? {
            if !blobs.contains(&digest) {
                debug!(%digest, "removing unreferenced blob");
                self.blobs.remove(&digest)?;
            }
        }
        for chain in self.layers.list() {
            if !chains.contains(&chain) {
                debug!(chain_id = %chain, "removing unreferenced layer");
                self.layers.remove(&chain)?;
            }
        }
        Ok(())
    }

    // ---- adding ----

    /// Records the image whose manifest is `descriptor` (its blobs already stored), unpacks
    /// its layers, and gives it `names` (taking them from other images).
    pub fn commit_image(
        &self,
        descriptor: &Descriptor,
        names: &[String],
        repo_digests: &[String],
    ) -> Result<Image, ImageError> {
        let manifest = self.image_manifest(descriptor)?;
        let config_bytes = self.blobs.read(&manifest.config.digest)?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|source| {
            ImageError::Config { digest: manifest.config.digest.clone(), source }
        })?;
        self.unpack_layers(&manifest, &config)?;
        // The blobs' renames are durable before the index names them.
        self.blobs.sync()?;
        let id = manifest.config.digest.clone();
        let record = self.index.update(|index| {
            for other in index.images.iter_mut().filter(|r| r.id != id) {
                other.names.retain(|n| !names.contains(n));
            }
            let record = match index.images.iter_mut().find(|r| r.id == id) {
                Some(record) => record,
                None => {
                    index.images.push(ImageRecord {
                        id: id.clone(),
                        manifest: descriptor.clone(),
                        names: Vec::new(),
                        repo_digests: Vec::new(),
                        names_history: Vec::new(),
                        added: time::now(),
                    });
                    index.images.last_mut().expect("just pushed")
                }
            };
            for name in names {
                if !record.names.contains(name) {
                    record.names.push(name.clone());
                }
            }
            for digest in repo_digests {
                if !record.repo_digests.contains(digest) {
                    record.repo_digests.push(digest.clone());
                }
            }
            record.clone()
        })?;
        self.load_image(record)
    }

    /// Unpacks every layer of an image that the layer store does not hold yet.
    fn unpack_layers(
        &self,
        manifest: &ImageManifest,
        config: &ImageConfig,
    ) -> Result<(), ImageError> {
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::LayerCount {
                digest: manifest.config.digest.clone(),
                diff_ids: diff_ids.len(),
                layers: manifest.layers.len(),
            });
        }
        let chains = chain_ids(diff_ids);
        for (i, layer) in manifest.layers.iter().enumerate() {
            if self.layers.contains(&chains[i]) {
                continue;
            }
            let compression = Compression::of_layer(&layer.media_type).map_err(|source| {
                ImageError::Manifest { digest: manifest.config.digest.clone(), source }
            })?;
            let blob = BufReader::with_capacity(1 << 20, self.blobs.open_blob(&layer.digest)?);
            let parent = i.checked_sub(1).map(|p| &chains[p]);
            self.layers.apply(&chains[i], parent, &diff_ids[i], blob, compression, &self.unpack)?;
        }
        Ok(())
    }

    /// Loads the images of an archive (OCI layout, oci-archive, docker-archive). Returns
    /// the loaded images.
    pub fn load(&self, path: &Path) -> Result<Vec<Image>, ImageError> {
        let _gc = self.gc_lock(false)?;
        let loaded = archive::load(path, &self.blobs, &Platform::host())?;
        let mut out = Vec::new();
        for image in loaded {
            let names: Vec<String> = image
                .names
                .iter()
                .filter_map(|n| Reference::parse(n).ok())
                // A bare tag (an OCI layout's ref.name) is no name to give an image.
                .filter(|r| {
                    r.registry_explicit()
                        || !r.short_path().is_empty()
                            && image.names.iter().any(|n| n.contains('/') || n.contains(':'))
                })
                .map(|r| r.with_default_tag().to_string())
                .collect();
            info!(manifest = %image.manifest.digest, ?names, "loaded image");
            out.push(self.commit_image(&image.manifest, &names, &[])?);
        }
        Ok(out)
    }

    /// Writes images to `out` in `format`. Each input's name (or the image's names when it
    /// was given by id) goes into the archive.
    pub fn save(&self, inputs: &[String], format: Format, out: &Path) -> Result<(), ImageError> {
        let mut to_save = Vec::new();
        for input in inputs {
            let image = self.find(input)?;
            let names = match image.record.names.iter().find(|n| name_matches(n, input)) {
                Some(name) => vec![name.clone()],
                None => image.record.names.clone(),
            };
            to_save.push(ToSave { manifest: image.record.manifest.clone(), names });
        }
        archive::save(&to_save, &self.blobs, format, out)?;
        Ok(())
    }

    /// Makes an image of one layer from a tarball of a root file system (plain, gzip or
    /// zstd), as `podman import`; `name` gets a `latest` tag when it has none.
    pub fn import(
        &self,
        path: &Path,
        name: Option<&str>,
        message: Option<&str>,
    ) -> Result<Image, ImageError> {
        let _gc = self.gc_lock(false)?;
        let read_err = |source| ImageError::Read { path: path.to_path_buf(), source };
        let mut head = [0u8; 4];
        let n = File::open(path).and_then(|mut f| f.read(&mut head)).map_err(read_err)?;
        let compression = Compression::sniff(&head[..n]);
        let file = BufReader::new(File::open(path).map_err(read_err)?);
        let tar: Box<dyn Read> = match compression {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
            Compression::Zstd => archive::decompress(file, Compression::Zstd)?,
        };
        // One pass: hash the tar (diff_id) while gzip-compressing it into the blob store.
        let mut tar = HashingReader::new(tar, Hasher::sha256());
        let writer = self.blobs.writer(None, None)?;
        let mut gz = flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
        io::copy(&mut tar, &mut gz).map_err(read_err)?;
        let mut writer = gz.finish().map_err(read_err)?;
        writer.flush().map_err(read_err)?;
        let size = writer.written();
        let layer_digest = writer.commit()?;
        let (diff_id, _, _) = tar.finish();

        let platform = Platform::host();
        let now = time::format_rfc3339(time::now());
        let config = serde_json::json!({
            "created": now,
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": now, "created_by": format!("/bin/sh -c #(nop) ADD file:{} in / ", diff_id.hex()), "comment": message.unwrap_or("imported from tarball")}],
        });
        let config = serde_json::to_vec(&config).expect("a JSON value serialises");
        let config_digest = self.blobs.put(&config)?;
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(manifest::OCI_MANIFEST.to_owned()),
            artifact_type: None,
            config: Descriptor::new(manifest::OCI_CONFIG, config_digest, config.len() as u64),
            layers: vec![Descriptor::new(manifest::OCI_LAYER_GZIP, layer_digest, size)],
            subject: None,
            annotations: None,
        };
        let bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
        let digest = self.blobs.put(&bytes)?;
        let names = match name {
            Some(name) => vec![Reference::parse(name)?.with_default_tag().to_string()],
            None => Vec::new(),
        };
        self.commit_image(
            &Descriptor::new(manifest::OCI_MANIFEST, digest, bytes.len() as u64),
            &names,
            &[],
        )
    }

    /// The directories of an image's layers, bottom first, for mounting.
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        chain_ids(&image.config.rootfs.diff_ids).iter().map(|c| self.layers.diff_path(c)).collect()
    }

    pub(crate) fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub(crate) fn layers(&self) -> &LayerStore {
        &self.layers
    }

    pub(crate) fn unpack_options(&self) -> &UnpackOptions {
        &self.unpack
    }

    pub(crate) fn shared_gc_lock(&self) -> Result<File, ImageError> {
        self.gc_lock(false)
    }
}

/// Whether the stored full name `stored` is what the user's `input` names.
fn name_matches(stored: &str, input: &str) -> bool {
    let Ok(reference) = Reference::parse(input) else { return false };
    if reference.digest().is_some() {
        return false;
    }
    let wanted = reference.clone().with_default_tag();
    if stored == wanted.to_string() {
        return true;
    }
    if reference.registry_explicit() {
        return false;
    }
    // A short name matches the same path and tag on any registry.
    let suffix = format!("/{}:{}", wanted.short_path(), wanted.tag().unwrap_or("latest"));
    stored.ends_with(&suffix)
}

fn resolve<'a>(images: &'a [ImageRecord], input: &str) -> Result<&'a ImageRecord, ImageError> {
    let hex = input.strip_prefix("sha256:").unwrap_or(input);
    let looks_like_id = hex.len() >= 3
        && hex.len() <= 64
        && hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    if looks_like_id {
        let matches: Vec<&ImageRecord> =
            images.iter().filter(|r| r.id.hex().starts_with(hex)).collect();
        match matches.len() {
            1 => return Ok(matches[0]),
            0 => {}
            count if hex.len() < 64 => {
                return Err(ImageError::Ambiguous { input: input.to_owned(), count })
            }
            _ => return Ok(matches[0]),
        }
    }
    if let Ok(reference) = Reference::parse(input) {
        if let Some(digest) = reference.digest() {
            let name = reference.name();
            let by_digest = images.iter().find(|r| {
                (r.manifest.digest == *digest || r.id == *digest)
                    && (r.repo_digests.iter().any(|d| d.starts_with(&name))
                        || r.names.iter().any(|n| n.starts_with(&name))
                        || !reference.registry_explicit())
            });
            if let Some(record) = by_digest {
                return Ok(record);
            }
        } else {
            let exact = reference.clone().with_default_tag().to_string();
            if let Some(record) = images.iter().find(|r| r.names.contains(&exact)) {
                return Ok(record);
            }
            if let Some(record) =
                images.iter().find(|r| r.names.iter().any(|n| name_matches(n, input)))
            {
                return Ok(record);
            }
        }
    }
    Err(ImageError::NotFound(input.to_owned()))
}

/// Podman's `image inspect` document, for the fields scripts use.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspect {
    pub id: String,
    pub digest: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    pub created: String,
    pub config: serde_json::Value,
    pub version: String,
    pub author: String,
    pub architecture: String,
    pub os: String,
    pub size: u64,
    pub virtual_size: u64,
    pub graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFsInspect,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: BTreeMap<String, String>,
    pub manifest_type: String,
    pub user: String,
    pub history: Vec<serde_json::Value>,
    pub names_history: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFsInspect {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<Digest>,
}

impl Images {
    pub fn inspect(&self, input: &str) -> Result<Inspect, ImageError> {
        let image = self.find(input)?;
        let dirs = self.layer_dirs(&image);
        let mut data = BTreeMap::new();
        if let Some((top, lower)) = dirs.split_last() {
            let lower: Vec<String> = lower.iter().rev().map(|d| d.display().to_string()).collect();
            if !lower.is_empty() {
                data.insert("LowerDir".to_owned(), lower.join(":"));
            }
            data.insert("UpperDir".to_owned(), top.display().to_string());
        }
        let mut repo_digests = image.record.repo_digests.clone();
        for name in &image.record.names {
            if let Ok(r) = Reference::parse(name) {
                let d = format!("{}@{}", r.name(), image.record.manifest.digest);
                if !repo_digests.contains(&d) {
                    repo_digests.push(d);
                }
            }
        }
        let config = &image.config;
        Ok(Inspect {
            id: image.id().hex().to_owned(),
            digest: image.record.manifest.digest.to_string(),
            repo_tags: image.record.names.clone(),
            repo_digests,
            parent: String::new(),
            comment: config.history.last().and_then(|h| h.comment.clone()).unwrap_or_default(),
            created: config.created.clone().unwrap_or_default(),
            config: serde_json::to_value(config.config.clone().unwrap_or_default())
                .unwrap_or_default(),
            version: config
                .extra
                .get("docker_version")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned(),
            author: config.author.clone().unwrap_or_default(),
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            size: image.size,
            virtual_size: image.size,
            graph_driver: GraphDriver { name: "overlay".to_owned(), data },
            root_fs: RootFsInspect {
                kind: config.rootfs.kind.clone(),
                layers: config.rootfs.diff_ids.clone(),
            },
            labels: config.labels().cloned(),
            annotations: image.manifest.annotations.clone().unwrap_or_default(),
            manifest_type: image.record.manifest.media_type.clone(),
            user: config.config.as_ref().and_then(|c| c.user.clone()).unwrap_or_default(),
            history: config
                .history
                .iter()
                .map(|h| serde_json::to_value(h).unwrap_or_default())
                .collect(),
            names_history: image.record.names_history.clone(),
        })
    }
}

#[cfg(test)]
mod registry_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod token_tests;
