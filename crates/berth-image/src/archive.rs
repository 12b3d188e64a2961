//! Image archives, read into and written from the content store: the OCI image layout
//! directory (image-spec `image-layout.md`), oci-archive (a tar of such a layout) and
//! docker-archive (`docker save`'s format: `manifest.json` naming a config file, tags and
//! layer tars) — interchangeable with skopeo's and podman's.
//!
//! Reading copies every blob into the store with its digest verified; nothing is trusted
//! because it came from a local file.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::manifest::{
    self, Compression, Descriptor, ImageIndex, ImageManifest, Manifest, ManifestError,
};
use crate::platform::{self, Platform, PlatformError};
use crate::store::{BlobStore, StoreError};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parsing {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} is not an OCI layout, oci-archive or docker-archive")]
    UnknownFormat { path: PathBuf },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("manifest {digest}")]
    Manifest {
        digest: Digest,
        #[source]
        source: ManifestError,
    },
    #[error("choosing a platform")]
    Platform(#[source] PlatformError),
    #[error("copying blob {digest} into the store")]
    Blob {
        digest: Digest,
        #[source]
        source: StoreError,
    },
    #[error("store")]
    Store(#[source] StoreError),
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The formats berth reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OciDir,
    OciArchive,
    DockerArchive,
}

/// An image copied into the store from an archive.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub manifest: Descriptor,
    /// The names the archive gave it (`RepoTags`, or the layout's ref.name annotation).
    pub names: Vec<String>,
}

/// Finds out what `path` holds: a directory with `oci-layout`, or a tar with `oci-layout`
/// or `manifest.json` at its top.
pub fn detect(path: &Path) -> Result<Format, ArchiveError> {
    let read_err = |source| ArchiveError::Read { path: path.to_path_buf(), source };
    if path.is_dir() {
        if path.join("oci-layout").is_file() {
            return Ok(Format::OciDir);
        }
        return Err(ArchiveError::UnknownFormat { path: path.to_path_buf() });
    }
    let mut archive = tar::Archive::new(BufReader::new(File::open(path).map_err(read_err)?));
    for entry in archive.entries().map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.path().map_err(read_err)?;
        let name = name.to_string_lossy();
        match name.trim_start_matches("./") {
            "oci-layout" => return Ok(Format::OciArchive),
            "manifest.json" => return Ok(Format::DockerArchive),
            _ => {}
        }
    }
    Err(ArchiveError::UnknownFormat { path: path.to_path_buf() })
}

/// Loads every image in the archive at `path` into `store`; from an index, the manifest
/// for `platform`.
pub fn load(
    path: &Path,
    store: &BlobStore,
    platform: &Platform,
) -> Result<Vec<Loaded>, ArchiveError> {
    match detect(path)? {
        Format::OciDir => load_layout(path, store, platform),
        Format::OciArchive => {
            let dir = unpack_archive(path)?;
            load_layout(dir.path(), store, platform)
        }
        Format::DockerArchive => {
            let dir = unpack_archive(path)?;
            load_docker(dir.path(), store)
        }
    }
}

/// Extracts an archive of plain files into a temporary directory. Archives of images hold
/// only regular files and directories at known names; anything else is refused.
fn unpack_archive(path: &Path) -> Result<tempfile::TempDir, ArchiveError> {
    let read_err = |source| ArchiveError::Read { path: path.to_path_buf(), source };
    let dir = tempfile::Builder::new().prefix("berth-load-").tempdir().map_err(read_err)?;
    let mut archive = tar::Archive::new(BufReader::new(File::open(path).map_err(read_err)?));
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let name = entry.path().map_err(read_err)?.into_owned();
        let mut clean = PathBuf::new();
        for component in name.components() {
            match component {
                std::path::Component::Normal(part) => clean.push(part),
                std::path::Component::CurDir => {}
                _ => {
                    return Err(ArchiveError::Invalid {
                        path: path.to_path_buf(),
                        reason: format!("entry {name:?} leaves the archive"),
                    })
                }
            }
        }
        if clean.as_os_str().is_empty() {
            continue;
        }
        let target = dir.path().join(&clean);
        match entry.header().entry_type() {
            tar::EntryType::Directory => fs::create_dir_all(&target).map_err(read_err)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(read_err)?;
                }
                let mut out = File::create(&target).map_err(read_err)?;
                io::copy(&mut entry, &mut out).map_err(read_err)?;
            }
            tar::EntryType::Symlink => {
                // docker save links identical layers to each other; follow the target inside.
                let link = entry.link_name().map_err(read_err)?.unwrap_or_default().into_owned();
                let resolved = clean.parent().unwrap_or(Path::new("")).join(&link);
                let resolved = dir.path().join(normalise(&resolved));
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(read_err)?;
                }
                if resolved.starts_with(dir.path()) && resolved.is_file() {
                    fs::hard_link(&resolved, &target)
                        .or_else(|_| fs::copy(&resolved, &target).map(|_| ()))
                        .map_err(read_err)?;
                }
            }
            _ => {}
        }
    }
    Ok(dir)
}

fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::Normal(part) => out.push(part),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<(T, Vec<u8>), ArchiveError> {
    let bytes =
        fs::read(path).map_err(|source| ArchiveError::Read { path: path.to_path_buf(), source })?;
    let value = serde_json::from_slice(&bytes)
        .map_err(|source| ArchiveError::Parse { path: path.to_path_buf(), source })?;
    Ok((value, bytes))
}

/// Copies blob `descriptor` from the layout at `dir` into the store, verified.
fn copy_blob(dir: &Path, descriptor: &Descriptor, store: &BlobStore) -> Result<(), ArchiveError> {
    let digest = &descriptor.digest;
    if store.contains(digest) {
        return Ok(());
    }
    let path = dir.join("blobs").join(digest.algorithm()).join(digest.hex());
    copy_file_verified(&path, digest, Some(descriptor.size), store)
}

fn copy_file_verified(
    path: &Path,
    digest: &Digest,
    size: Option<u64>,
    store: &BlobStore,
) -> Result<(), ArchiveError> {
    let mut file = File::open(path)
        .map_err(|source| ArchiveError::Read { path: path.to_path_buf(), source })?;
    let mut writer = store
        .writer(Some(digest), size)
        .map_err(|source| ArchiveError::Blob { digest: digest.clone(), source })?;
    io::copy(&mut file, &mut writer)
        .map_err(|source| ArchiveError::Read { path: path.to_path_buf(), source })?;
    writer.commit().map_err(|source| ArchiveError::Blob { digest: digest.clone(), source })?;
    Ok(())
}

fn load_layout(
    dir: &Path,
    store: &BlobStore,
    platform: &Platform,
) -> Result<Vec<Loaded>, ArchiveError> {
    let (index, _): (ImageIndex, _) = read_json(&dir.join("index.json"))?;
    let mut loaded = Vec::new();
    for top in &index.manifests {
        let name = top.annotation(REF_NAME).map(str::to_owned);
        let manifest = resolve_in_layout(dir, top, store, platform)?;
        loaded.push(Loaded { manifest, names: name.into_iter().collect() });
    }
    if loaded.is_empty() {
        return Err(ArchiveError::Invalid {
            path: dir.join("index.json"),
            reason: "no manifests".to_owned(),
        });
    }
    Ok(loaded)
}

/// Copies the image behind `descriptor` into the store, descending through indexes to the
/// platform's manifest; returns the image manifest's descriptor.
fn resolve_in_layout(
    dir: &Path,
    descriptor: &Descriptor,
    store: &BlobStore,
    platform: &Platform,
) -> Result<Descriptor, ArchiveError> {
    copy_blob(dir, descriptor, store)?;
    let bytes = store.read(&descriptor.digest).map_err(ArchiveError::Store)?;
    let parsed = Manifest::parse(Some(&descriptor.media_type), &bytes)
        .map_err(|source| ArchiveError::Manifest { digest: descriptor.digest.clone(), source })?;
    match parsed {
        Manifest::Index { index, .. } => {
            let chosen =
                platform::select(&index, platform, false).map_err(ArchiveError::Platform)?;
            resolve_in_layout(dir, chosen, store, platform)
        }
        Manifest::Image { manifest, media_type } => {
            copy_blob(dir, &manifest.config, store)?;
            for layer in &manifest.layers {
                copy_blob(dir, layer, store)?;
            }
            let mut out = descriptor.clone();
            out.media_type = media_type;
            out.annotations = None;
            Ok(out)
        }
    }
}

/// One image of a docker-archive's `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn load_docker(dir: &Path, store: &BlobStore) -> Result<Vec<Loaded>, ArchiveError> {
    let manifest_path = dir.join("manifest.json");
    let (entries, _): (Vec<DockerArchiveEntry>, _) = read_json(&manifest_path)?;
    let mut loaded = Vec::new();
    for entry in entries {
        let inside = |name: &str| -> Result<PathBuf, ArchiveError> {
            let path = dir.join(normalise(Path::new(name)));
            if !path.is_file() {
                return Err(ArchiveError::Invalid {
                    path: manifest_path.clone(),
                    reason: format!("{name:?} is not in the archive"),
                });
            }
            Ok(path)
        };
        let config_path = inside(&entry.config)?;
        let config_bytes = fs::read(&config_path)
            .map_err(|source| ArchiveError::Read { path: config_path.clone(), source })?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|source| ArchiveError::Parse { path: config_path.clone(), source })?;
        let config_digest = store.put(&config_bytes).map_err(ArchiveError::Store)?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(ArchiveError::Invalid {
                path: manifest_path.clone(),
                reason: format!(
                    "{} layers for {} diff_ids in the config",
                    entry.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::new();
        for name in &entry.layers {
            let path = inside(name)?;
            let mut head = [0u8; 4];
            let n = File::open(&path)
                .and_then(|mut f| f.read(&mut head))
                .map_err(|source| ArchiveError::Read { path: path.clone(), source })?;
            let media_type = match Compression::sniff(&head[..n]) {
                Compression::Gzip => manifest::DOCKER_LAYER_GZIP,
                Compression::Zstd => manifest::OCI_LAYER_ZSTD,
                Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
            };
            let (digest, size) = hash_file(&path)?;
            copy_file_verified(&path, &digest, Some(size), store)?;
            layers.push(Descriptor::new(media_type, digest, size));
        }
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(manifest::DOCKER_MANIFEST.to_owned()),
            artifact_type: None,
            config: Descriptor::new(
                manifest::DOCKER_CONFIG,
                config_digest,
                config_bytes.len() as u64,
            ),
            layers,
            subject: None,
            annotations: None,
        };
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|source| ArchiveError::Parse { path: manifest_path.clone(), source })?;
        let digest = store.put(&bytes).map_err(ArchiveError::Store)?;
        loaded.push(Loaded {
            manifest: Descriptor::new(manifest::DOCKER_MANIFEST, digest, bytes.len() as u64),
            names: entry.repo_tags.unwrap_or_default(),
        });
    }
    Ok(loaded)
}

fn hash_file(path: &Path) -> Result<(Digest, u64), ArchiveError> {
    let file = File::open(path)
        .map_err(|source| ArchiveError::Read { path: path.to_path_buf(), source })?;
    let mut reader =
        crate::digest::HashingReader::new(BufReader::new(file), crate::digest::Hasher::sha256());
    io::copy(&mut reader, &mut io::sink())
        .map_err(|source| ArchiveError::Read { path: path.to_path_buf(), source })?;
    let (digest, size, _) = reader.finish();
    Ok((digest, size))
}

/// An image to write into an archive: its manifest in the store and the names to give it.
#[derive(Debug, Clone)]
pub struct ToSave {
    pub manifest: Descriptor,
    pub names: Vec<String>,
}

/// Writes `images` from `store` to `out` in `format` (a directory for [`Format::OciDir`],
/// else a tar file).
pub fn save(
    images: &[ToSave],
    store: &BlobStore,
    format: Format,
    out: &Path,
) -> Result<(), ArchiveError> {
    let write_err = |source| ArchiveError::Write { path: out.to_path_buf(), source };
    match format {
        Format::OciDir => {
            let mut sink = DirSink { root: out.to_path_buf() };
            fs::create_dir_all(out).map_err(write_err)?;
            write_oci(images, store, &mut sink)
        }
        Format::OciArchive | Format::DockerArchive => {
            let file = File::create(out).map_err(write_err)?;
            let mut sink = TarSink {
                tar: tar::Builder::new(io::BufWriter::new(file)),
                path: out.to_path_buf(),
            };
            if format == Format::OciArchive {
                write_oci(images, store, &mut sink)?;
            } else {
                write_docker(images, store, &mut sink)?;
            }
            let mut inner = sink.tar.into_inner().map_err(write_err)?;
            inner.flush().map_err(write_err)?;
            inner.get_ref().sync_all().map_err(write_err)
        }
    }
}

/// Where archive files go: a directory or a tar stream.
trait Sink {
    fn file(&mut self, name: &str, size: u64, content: &mut dyn Read) -> Result<(), ArchiveError>;
    fn exists(&self, name: &str) -> bool;
}

struct DirSink {
    root: PathBuf,
}

impl Sink for DirSink {
    fn file(&mut self, name: &str, _size: u64, content: &mut dyn Read) -> Result<(), ArchiveError> {
        let path = self.root.join(name);
        let write_err = |source| ArchiveError::Write { path: path.clone(), source };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(write_err)?;
        }
        let mut file = File::create(&path).map_err(write_err)?;
        io::copy(content, &mut file).map_err(write_err)?;
        Ok(())
    }

    fn exists(&self, name: &str) -> bool {
        self.root.join(name).exists()
    }
}

struct TarSink<W: Write> {
    tar: tar::Builder<W>,
    path: PathBuf,
}

impl<W: Write> Sink for TarSink<W> {
    fn file(&mut self, name: &str, size: u64, content: &mut dyn Read) -> Result<(), ArchiveError> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(size);
        header.set_mtime(0);
        self.tar
            .append_data(&mut header, name, content)
            .map_err(|source| ArchiveError::Write { path: self.path.clone(), source })
    }

    fn exists(&self, _name: &str) -> bool {
        false
    }
}

fn blob_into(
    store: &BlobStore,
    digest: &Digest,
    sink: &mut dyn Sink,
    written: &mut Vec<Digest>,
) -> Result<(), ArchiveError> {
    if written.contains(digest) {
        return Ok(());
    }
    let name = format!("blobs/{}/{}", digest.algorithm(), digest.hex());
    if !sink.exists(&name) {
        let size = store.size(digest).map_err(ArchiveError::Store)?;
        let mut file = store.open_blob(digest).map_err(ArchiveError::Store)?;
        sink.file(&name, size, &mut file)?;
    }
    written.push(digest.clone());
    Ok(())
}

fn parse_image(store: &BlobStore, descriptor: &Descriptor) -> Result<ImageManifest, ArchiveError> {
    let bytes = store.read(&descriptor.digest).map_err(ArchiveError::Store)?;
    match Manifest::parse(Some(&descriptor.media_type), &bytes) {
        Ok(Manifest::Image { manifest, .. }) => Ok(manifest),
        Ok(Manifest::Index { .. }) => Err(ArchiveError::Invalid {
            path: store.path(&descriptor.digest),
            reason: "expected an image manifest, found an index".to_owned(),
        }),
        Err(source) => Err(ArchiveError::Manifest { digest: descriptor.digest.clone(), source }),
    }
}

fn write_oci(
    images: &[ToSave],
    store: &BlobStore,
    sink: &mut dyn Sink,
) -> Result<(), ArchiveError> {
    let mut written = Vec::new();
    let mut entries = Vec::new();
    for image in images {
        let manifest = parse_image(store, &image.manifest)?;
        blob_into(store, &manifest.config.digest, sink, &mut written)?;
        for layer in &manifest.layers {
            blob_into(store, &layer.digest, sink, &mut written)?;
        }
        blob_into(store, &image.manifest.digest, sink, &mut written)?;
        let names: Vec<Option<&String>> = if image.names.is_empty() {
            vec![None]
        } else {
            image.names.iter().map(Some).collect()
        };
        for name in names {
            let mut entry = image.manifest.clone();
            entry.annotations = name.map(|n| {
                // Like skopeo, the annotation is the tag alone when the archive is for one name.
                let tag =
                    n.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map(|(_, t)| t.to_owned());
                let mut a = std::collections::BTreeMap::new();
                a.insert(REF_NAME.to_owned(), tag.unwrap_or_else(|| n.clone()));
                a.insert("io.containerd.image.name".to_owned(), n.clone());
                a
            });
            entries.push(entry);
        }
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(manifest::OCI_INDEX.to_owned()),
        manifests: entries,
        annotations: None,
    };
    let index = serde_json::to_vec(&index)
        .map_err(|source| ArchiveError::Parse { path: "index.json".into(), source })?;
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    sink.file("oci-layout", layout.len() as u64, &mut &layout[..])?;
    sink.file("index.json", index.len() as u64, &mut &index[..])?;
    debug!(images = images.len(), "wrote OCI layout");
    Ok(())
}

fn write_docker(
    images: &[ToSave],
    store: &BlobStore,
    sink: &mut dyn Sink,
) -> Result<(), ArchiveError> {
    let mut entries = Vec::new();
    let mut written: Vec<String> = Vec::new();
    for image in images {
        let manifest = parse_image(store, &image.manifest)?;
        let config_bytes = store.read(&manifest.config.digest).map_err(ArchiveError::Store)?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|source| {
            ArchiveError::Parse { path: store.path(&manifest.config.digest), source }
        })?;
        let config_name = format!("{}.json", manifest.config.digest.hex());
        if !written.contains(&config_name) {
            sink.file(&config_name, config_bytes.len() as u64, &mut &config_bytes[..])?;
            written.push(config_name.clone());
        }
        let mut layer_names = Vec::new();
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            // docker-archive layers are uncompressed tars named by diff_id.
            let name = format!("{}.tar", diff_id.hex());
            if !written.contains(&name) {
                let compression = Compression::of_layer(&layer.media_type).map_err(|source| {
                    ArchiveError::Manifest { digest: image.manifest.digest.clone(), source }
                })?;
                let blob = store.open_blob(&layer.digest).map_err(ArchiveError::Store)?;
                // The tar header needs the size first: decompress once to count, once to copy.
                let size = {
                    let mut reader = decompress(BufReader::new(blob), compression)?;
                    io::copy(&mut reader, &mut io::sink()).map_err(|source| ArchiveError::Read {
                        path: store.path(&layer.digest),
                        source,
                    })?
                };
                let blob = store.open_blob(&layer.digest).map_err(ArchiveError::Store)?;
                let mut reader = decompress(BufReader::new(blob), compression)?;
                sink.file(&name, size, &mut reader)?;
                written.push(name.clone());
            }
            layer_names.push(name);
        }
        entries.push(DockerArchiveEntry {
            config: config_name,
            repo_tags: Some(image.names.clone()),
            layers: layer_names,
        });
    }
    let json = serde_json::to_vec(&entries)
        .map_err(|source| ArchiveError::Parse { path: "manifest.json".into(), source })?;
    sink.file("manifest.json", json.len() as u64, &mut &json[..])
}

/// `input` decompressed by `compression`.
pub fn decompress<'a>(
    input: impl Read + 'a,
    compression: Compression,
) -> Result<Box<dyn Read + 'a>, ArchiveError> {
    Ok(match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(input)
                .map_err(|source| ArchiveError::Read { path: "zstd".into(), source })?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A layout loads with every blob verified, and saves again to archives that load back.
    #[test]
    fn layout_loads_and_round_trips_through_both_archives() {
        let src = tempfile::tempdir().unwrap();
        let layout = berth_testkit::busybox::image_layout(src.path()).unwrap();
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::open(root.path()).unwrap();
        let loaded = load(src.path(), &store, &Platform::host()).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].manifest.digest.to_string(), layout.manifest_digest);
        assert_eq!(loaded[0].names, ["latest"]);

        let to_save = [ToSave {
            manifest: loaded[0].manifest.clone(),
            names: vec!["localhost/bb:1".to_owned()],
        }];
        let out = tempfile::tempdir().unwrap();
        let oci = out.path().join("bb.oci.tar");
        save(&to_save, &store, Format::OciArchive, &oci).unwrap();
        assert_eq!(detect(&oci).unwrap(), Format::OciArchive);
        let other = BlobStore::open(&out.path().join("store2")).unwrap();
        let again = load(&oci, &other, &Platform::host()).unwrap();
        assert_eq!(again[0].manifest.digest, loaded[0].manifest.digest);

        let docker = out.path().join("bb.docker.tar");
        save(&to_save, &store, Format::DockerArchive, &docker).unwrap();
        assert_eq!(detect(&docker).unwrap(), Format::DockerArchive);
        let third = BlobStore::open(&out.path().join("store3")).unwrap();
        let from_docker = load(&docker, &third, &Platform::host()).unwrap();
        assert_eq!(from_docker[0].names, ["localhost/bb:1"]);
        let manifest = parse_image(&third, &from_docker[0].manifest).unwrap();
        assert_eq!(manifest.config.digest.to_string(), layout.config_digest);
        assert_eq!(manifest.layers[0].digest.to_string(), layout.layers[0].diff_id);
    }

    // A corrupted blob in a layout is refused with both digests, and not stored.
    #[test]
    fn a_corrupted_layout_blob_is_refused() {
        let src = tempfile::tempdir().unwrap();
        let layout = berth_testkit::busybox::image_layout(src.path()).unwrap();
        let blob = berth_testkit::layout::blob_path(src.path(), &layout.layers[0].digest);
        let mut bytes = fs::read(&blob).unwrap();
        bytes[100] ^= 1;
        fs::write(&blob, bytes).unwrap();
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::open(root.path()).unwrap();
        let err = load(src.path(), &store, &Platform::host()).unwrap_err();
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            chain.push_str(&format!(": {s}"));
            source = s.source();
        }
        assert!(chain.contains(&layout.layers[0].digest), "{chain}");
        assert!(chain.contains("got sha256:"), "{chain}");
        assert!(!store.contains(&layout.layers[0].digest.parse().unwrap()));
    }
}
