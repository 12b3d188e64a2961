//! A built image read back for comparisons: an OCI image layout (as `berth save --format
//! oci-dir` or `buildah push … oci:DIR` writes it) as its config, its manifest and each
//! layer's tar listing, and the file tree the layers stack up to with whiteouts applied.
//!
//! An entry keeps what a user of the image notices — type, permission bits, owner, link
//! target, contents — and leaves out modification times, which two builders never agree on.
//! Small text files keep their text, so a failing comparison reads well; others a digest.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// One entry of a layer tar, or of the flattened tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The tar type flag: '0' file, '5' directory, '2' symlink, '1' hard link, ...
    pub kind: char,
    /// The permission bits (with setuid, setgid and sticky).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// A file's text (up to 256 bytes of UTF-8) or `<N bytes sha256:HEX>`; a link's target.
    pub detail: String,
}

/// Path (relative, no trailing slash) to entry.
pub type Listing = BTreeMap<String, Entry>;

/// An image as a layout holds it.
#[derive(Debug, Clone)]
pub struct SavedImage {
    /// The image config blob (`config`, `rootfs`, `history`, ...).
    pub config: serde_json::Value,
    pub manifest: serde_json::Value,
    /// One listing per layer, base first.
    pub layers: Vec<Listing>,
}

impl SavedImage {
    /// The file tree of the whole image: the layers stacked, whiteouts applied.
    pub fn tree(&self) -> Listing {
        flatten(&self.layers)
    }
}

/// Reads the first image of the OCI layout at `dir`.
pub fn read_layout(dir: &Path) -> Result<SavedImage> {
    let blob = |digest: &str| -> Result<Vec<u8>> {
        let path = dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    };
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json"))?)
        .context("parsing index.json")?;
    let digest = index["manifests"][0]["digest"].as_str().context("index without a manifest")?;
    let manifest: serde_json::Value = serde_json::from_slice(&blob(digest)?)?;
    let digest = manifest["config"]["digest"].as_str().context("manifest without a config")?;
    let config: serde_json::Value = serde_json::from_slice(&blob(digest)?)?;
    let mut layers = Vec::new();
    for layer in manifest["layers"].as_array().context("manifest without layers")? {
        let digest = layer["digest"].as_str().context("layer without a digest")?;
        layers.push(listing(&blob(digest)?).with_context(|| format!("reading layer {digest}"))?);
    }
    Ok(SavedImage { config, manifest, layers })
}

/// The entries of a layer tar, gzip-compressed or not.
pub fn listing(blob: &[u8]) -> Result<Listing> {
    let mut plain = Vec::new();
    let bytes = if blob.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(blob).read_to_end(&mut plain)?;
        plain.as_slice()
    } else {
        blob
    };
    let mut out = Listing::new();
    for entry in tar::Archive::new(bytes).entries()? {
        let mut entry = entry?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = path.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/');
        if path.is_empty() || path == "." {
            continue;
        }
        let path = path.to_owned();
        let header = entry.header().clone();
        let kind = match header.entry_type().as_byte() {
            b'\0' | b'7' => '0',
            other => other as char,
        };
        let detail = match entry.link_name()? {
            Some(link) => link.display().to_string(),
            None => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                describe(&data)
            }
        };
        let (uid, gid) = (header.uid()?, header.gid()?);
        out.insert(path, Entry { kind, mode: header.mode()? & 0o7777, uid, gid, detail });
    }
    Ok(out)
}

fn describe(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if data.len() <= 256 => text.to_owned(),
        _ => format!("<{} bytes sha256:{}>", data.len(), hex::encode(Sha256::digest(data))),
    }
}

/// Stacks `layers` (base first) as overlayfs would show them: a `.wh.NAME` entry removes NAME
/// and everything below it, a `.wh..wh..opq` entry hides what lower layers had in its
/// directory; whiteout entries themselves are not part of the tree.
pub fn flatten(layers: &[Listing]) -> Listing {
    let mut tree = Listing::new();
    for layer in layers {
        for path in layer.keys() {
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
            if name == ".wh..wh..opq" {
                tree.retain(|p, _| !(p.starts_with(&prefix) && p.len() > prefix.len()));
            } else if let Some(gone) = name.strip_prefix(".wh.") {
                let gone = format!("{prefix}{gone}");
                let below = format!("{gone}/");
                tree.retain(|p, _| *p != gone && !p.starts_with(&below));
            }
        }
        for (path, entry) in layer {
            let name = path.rsplit('/').next().unwrap_or_default();
            if name.starts_with(".wh.") {
                continue;
            }
            // A non-directory replacing a directory takes its contents with it.
            if entry.kind != '5' {
                let below = format!("{path}/");
                tree.retain(|p, _| !p.starts_with(&below));
            }
            tree.insert(path.clone(), entry.clone());
        }
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: char, detail: &str) -> Entry {
        Entry { kind, mode: 0o644, uid: 0, gid: 0, detail: detail.to_owned() }
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_lower_entries() {
        let base: Listing = [
            ("d", entry('5', "")),
            ("d/old", entry('0', "old")),
            ("e", entry('5', "")),
            ("e/f", entry('0', "f")),
            ("keep", entry('0', "k")),
        ]
        .into_iter()
        .map(|(p, e)| (p.to_owned(), e))
        .collect();
        let top: Listing = [
            ("d", entry('5', "")),
            ("d/.wh..wh..opq", entry('0', "")),
            ("d/new", entry('0', "new")),
            (".wh.e", entry('0', "")),
        ]
        .into_iter()
        .map(|(p, e)| (p.to_owned(), e))
        .collect();
        let tree = flatten(&[base, top]);
        let paths: Vec<&str> = tree.keys().map(String::as_str).collect();
        assert_eq!(paths, ["d", "d/new", "keep"]);
    }
}
