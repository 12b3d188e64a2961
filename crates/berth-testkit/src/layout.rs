//! Writing and checking OCI image layouts (image-spec `image-layout.md`): `oci-layout`,
//! `index.json`, and `blobs/sha256/` holding the manifest, the config and gzip'd layer tars.
//!
//! Layers are made reproducibly — entries sorted by name, one fixed mtime — so the same
//! directory always gives the same digest and tests can compare digests across runs.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use flate2::write::GzEncoder;
use serde_json::{json, Value};

use crate::digest::{sha256, sha256_file};

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The mtime every entry of a testkit layer carries: 2024-01-01T00:00:00Z.
pub const LAYER_MTIME: u64 = 1_704_067_200;

/// A layer as written into a layout: the compressed blob's digest and size, and the digest of
/// the uncompressed tar (the config's diff_id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub digest: String,
    pub size: u64,
    pub diff_id: String,
}

/// What a finished layout holds, for tests to assert against.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layers: Vec<Layer>,
}

/// Builds an OCI layout in `dir` one layer at a time.
pub struct LayoutBuilder {
    dir: PathBuf,
    layers: Vec<Layer>,
}

impl LayoutBuilder {
    pub fn new(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir.join("blobs/sha256"))
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self { dir: dir.to_path_buf(), layers: Vec::new() })
    }

    /// Adds the tree under `root` as the next layer.
    pub fn add_dir_layer(&mut self, root: &Path) -> Result<&Layer> {
        let tmp = self.dir.join("blobs/.layer.tmp");
        let diff_id = {
            let file = fs::File::create(&tmp).context("creating layer blob")?;
            let gz = GzEncoder::new(io::BufWriter::new(file), flate2::Compression::fast());
            let mut hashing = HashingWriter::new(gz);
            write_tar(root, &mut hashing)?;
            let (gz, diff_id) = hashing.finish();
            gz.finish()?.flush()?;
            diff_id
        };
        let (digest, size) = sha256_file(&tmp)?;
        fs::rename(&tmp, self.blob_path(&digest))?;
        self.layers.push(Layer { digest, size, diff_id });
        Ok(self.layers.last().expect("just pushed"))
    }

    /// Writes the config (with `config` as its `config` object), the manifest and index.json,
    /// tagging the manifest `ref_name` (`org.opencontainers.image.ref.name`).
    pub fn finish(self, config: Value, ref_name: &str) -> Result<Layout> {
        let diff_ids: Vec<&str> = self.layers.iter().map(|l| l.diff_id.as_str()).collect();
        let history: Vec<Value> = self
            .layers
            .iter()
            .map(|_| json!({"created": "2024-01-01T00:00:00Z", "created_by": "berth-testkit"}))
            .collect();
        let image_config = json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": host_arch(),
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        let config_bytes = serde_json::to_vec(&image_config)?;
        let config_digest = self.write_blob(&config_bytes)?;
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|l| json!({"mediaType": MEDIA_LAYER_GZIP, "digest": l.digest, "size": l.size}))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest,
                       "size": config_bytes.len()},
            "layers": layers,
        });
        let manifest_bytes = serde_json::to_vec(&manifest)?;
        let manifest_digest = self.write_blob(&manifest_bytes)?;
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": MEDIA_MANIFEST,
                "digest": manifest_digest,
                "size": manifest_bytes.len(),
                "platform": {"architecture": host_arch(), "os": "linux"},
                "annotations": {"org.opencontainers.image.ref.name": ref_name},
            }],
        });
        fs::write(self.dir.join("index.json"), serde_json::to_vec(&index)?)?;
        fs::write(self.dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        Ok(Layout { dir: self.dir, manifest_digest, config_digest, layers: self.layers })
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        blob_path(&self.dir, digest)
    }

    fn write_blob(&self, bytes: &[u8]) -> Result<String> {
        let digest = sha256(bytes);
        fs::write(self.blob_path(&digest), bytes)?;
        Ok(digest)
    }
}

/// The path of blob `digest` (`sha256:<hex>`) in the layout at `dir`.
pub fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    dir.join("blobs/sha256").join(hex)
}

/// The OCI architecture name of this host.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Writes the tree under `root` as a tar stream: entries sorted, owners and modes kept, every
/// mtime [`LAYER_MTIME`], hard links not detected (the trees here have none).
pub fn write_tar(root: &Path, out: &mut impl Write) -> Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut paths = Vec::new();
    collect(root, root, &mut paths)?;
    for rel in paths {
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path)?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.permissions().mode() & 0o7777);
        header.set_uid(meta.uid().into());
        header.set_gid(meta.gid().into());
        header.set_mtime(LAYER_MTIME);
        let file_type = meta.file_type();
        if file_type.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder.append_data(&mut header, &rel, io::empty())?;
        } else if file_type.is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            let target = fs::read_link(&path)?;
            builder.append_link(&mut header, &rel, &target)?;
        } else if file_type.is_file() {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.len());
            builder.append_data(&mut header, &rel, fs::File::open(&path)?)?;
        } else {
            bail!("{}: only directories, files and symlinks go into test layers", path.display());
        }
    }
    builder.into_inner()?.flush()?;
    Ok(())
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        out.push(path.strip_prefix(root).expect("under root").to_path_buf());
        if entry.file_type()?.is_dir() {
            collect(root, &path, out)?;
        }
    }
    Ok(())
}

/// A writer that hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self { inner, hasher: sha2::Digest::new() }
    }

    fn finish(self) -> (W, String) {
        let digest = format!("sha256:{}", hex::encode(sha2::Digest::finalize(self.hasher)));
        (self.inner, digest)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Checks a layout from scratch, trusting nothing it wrote: `oci-layout` and `index.json`
/// parse, every manifest in the index and every blob it names exists with the digest and size
/// its descriptor claims, and each layer's uncompressed digest is the config's diff_id.
pub fn validate(dir: &Path) -> Result<()> {
    let marker: Value = read_json(&dir.join("oci-layout"))?;
    ensure!(marker["imageLayoutVersion"] == "1.0.0", "oci-layout: unexpected version {marker}");
    let index: Value = read_json(&dir.join("index.json"))?;
    ensure!(index["schemaVersion"] == 2, "index.json: schemaVersion is not 2");
    let manifests = index["manifests"].as_array().context("index.json: no manifests array")?;
    ensure!(!manifests.is_empty(), "index.json: manifests is empty");
    for descriptor in manifests {
        let manifest: Value = serde_json::from_slice(&check_blob(dir, descriptor)?)?;
        ensure!(manifest["mediaType"] == MEDIA_MANIFEST, "manifest: unexpected mediaType");
        let config: Value = serde_json::from_slice(&check_blob(dir, &manifest["config"])?)?;
        let diff_ids = config["rootfs"]["diff_ids"].as_array().context("config: no diff_ids")?;
        let layers = manifest["layers"].as_array().context("manifest: no layers")?;
        ensure!(
            diff_ids.len() == layers.len(),
            "config has {} diff_ids for {} layers",
            diff_ids.len(),
            layers.len()
        );
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            let blob = check_blob(dir, layer)?;
            let mut tar = Vec::new();
            io::copy(&mut flate2::read::GzDecoder::new(&blob[..]), &mut tar)?;
            let actual = sha256(&tar);
            ensure!(
                diff_id.as_str() == Some(actual.as_str()),
                "layer {}: diff_id is {diff_id}, uncompressed content is {actual}",
                layer["digest"]
            );
        }
    }
    Ok(())
}

/// Reads back what [`LayoutBuilder::finish`] wrote into `dir`: the first manifest of its index
/// and the blobs it names.
pub fn read(dir: &Path) -> Result<Layout> {
    let index = read_json(&dir.join("index.json"))?;
    let manifest_digest =
        index["manifests"][0]["digest"].as_str().context("index.json: no manifest")?.to_owned();
    let manifest: Value = read_json(&blob_path(dir, &manifest_digest))?;
    let config_digest =
        manifest["config"]["digest"].as_str().context("manifest: no config")?.to_owned();
    let config: Value = read_json(&blob_path(dir, &config_digest))?;
    let diff_ids = config["rootfs"]["diff_ids"].as_array().context("config: no diff_ids")?;
    let layers = manifest["layers"]
        .as_array()
        .context("manifest: no layers")?
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| Layer {
            digest: layer["digest"].as_str().unwrap_or_default().to_owned(),
            size: layer["size"].as_u64().unwrap_or_default(),
            diff_id: diff_id.as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    Ok(Layout { dir: dir.to_path_buf(), manifest_digest, config_digest, layers })
}

fn check_blob(dir: &Path, descriptor: &Value) -> Result<Vec<u8>> {
    let digest = descriptor["digest"].as_str().context("descriptor without digest")?;
    let size = descriptor["size"].as_u64().context("descriptor without size")?;
    let bytes = fs::read(blob_path(dir, digest)).with_context(|| format!("blob {digest}"))?;
    ensure!(bytes.len() as u64 == size, "blob {digest}: size {} != {size}", bytes.len());
    let actual = sha256(&bytes);
    ensure!(actual == digest, "blob {digest}: content hashes to {actual}");
    Ok(bytes)
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}
