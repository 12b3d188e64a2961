//! Manifests and indexes: the OCI image manifest and image index (image-spec `manifest.md`,
//! `image-index.md`) and Docker's schema 2 manifest and manifest list, which have the same
//! shape under other media types. Schema 1 manifests are refused with a clear error.
//!
//! The bytes a manifest was parsed from are what its digest is over; callers keep them and
//! never re-serialise a manifest to store or push it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::platform::Platform;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
pub const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Every manifest media type berth asks a registry for, most preferred first.
pub const ACCEPTED: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("parsing manifest of type {media_type}")]
    Parse {
        media_type: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("unsupported manifest media type {0:?}")]
    UnknownMediaType(String),
    #[error(
        "docker schema 1 manifests are not supported: the image must be pushed again with a \
         current client"
    )]
    Schema1,
    #[error("unsupported layer media type {0:?}")]
    UnknownLayerType(String),
}

/// A content descriptor (image-spec `descriptor.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An image manifest: a config and layers (OCI, or Docker schema 2 by `media_type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An index of manifests, usually one per platform (OCI index or Docker manifest list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A parsed manifest document of either kind, with the media type it was read as.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // One per pull; boxing buys nothing.
pub enum Manifest {
    Image { media_type: String, manifest: ImageManifest },
    Index { media_type: String, index: ImageIndex },
}

impl Manifest {
    /// Parses `bytes`, trusting `media_type` (a registry's Content-Type) when it names a known
    /// type and otherwise the document's own `mediaType`, then its shape.
    pub fn parse(media_type: Option<&str>, bytes: &[u8]) -> Result<Self, ManifestError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            schema_version: Option<u32>,
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
            config: Option<serde_json::Value>,
        }
        let header = media_type
            .map(|m| m.split(';').next().unwrap_or(m).trim().to_owned())
            .filter(|m| !m.is_empty() && m != "application/json" && m != "text/plain");
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|source| ManifestError::Parse {
                media_type: header.clone().unwrap_or_else(|| "unknown".to_owned()),
                source,
            })?;
        if probe.schema_version == Some(1) {
            return Err(ManifestError::Schema1);
        }
        let kind = match header.or(probe.media_type) {
            Some(kind) => kind,
            None if probe.manifests.is_some() => OCI_INDEX.to_owned(),
            None if probe.config.is_some() => OCI_MANIFEST.to_owned(),
            None => return Err(ManifestError::UnknownMediaType("none".to_owned())),
        };
        let parse_error = |source| ManifestError::Parse { media_type: kind.clone(), source };
        match kind.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => {
                let manifest = serde_json::from_slice(bytes).map_err(parse_error)?;
                Ok(Self::Image { media_type: kind, manifest })
            }
            OCI_INDEX | DOCKER_LIST => {
                let index = serde_json::from_slice(bytes).map_err(parse_error)?;
                Ok(Self::Index { media_type: kind, index })
            }
            DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Err(ManifestError::Schema1),
            _ => Err(ManifestError::UnknownMediaType(kind.chars().take(200).collect())),
        }
    }

    pub fn media_type(&self) -> &str {
        match self {
            Self::Image { media_type, .. } | Self::Index { media_type, .. } => media_type,
        }
    }
}

/// How a layer blob is compressed, by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn of_layer(media_type: &str) -> Result<Self, ManifestError> {
        match media_type {
            OCI_LAYER | OCI_LAYER_NONDIST | "application/vnd.docker.image.rootfs.diff.tar" => {
                Ok(Self::None)
            }
            OCI_LAYER_GZIP
            | OCI_LAYER_NONDIST_GZIP
            | DOCKER_LAYER_GZIP
            | DOCKER_FOREIGN_LAYER_GZIP => Ok(Self::Gzip),
            OCI_LAYER_ZSTD | OCI_LAYER_NONDIST_ZSTD => Ok(Self::Zstd),
            other => Err(ManifestError::UnknownLayerType(other.chars().take(200).collect())),
        }
    }

    /// Guesses from the first bytes of a blob (archives whose layers carry no media type).
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_docker_and_oci_manifests_by_header_or_body() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":
            "{DOCKER_CONFIG}","digest":"{D}","size":2}},"layers":[{{"mediaType":
            "{DOCKER_LAYER_GZIP}","digest":"{D}","size":3}}]}}"#
        );
        let Manifest::Image { media_type, manifest } =
            Manifest::parse(None, body.as_bytes()).unwrap()
        else {
            panic!("not an image manifest")
        };
        assert_eq!(media_type, DOCKER_MANIFEST);
        assert_eq!(manifest.layers[0].size, 3);
        assert_eq!(
            Compression::of_layer(&manifest.layers[0].media_type).unwrap(),
            Compression::Gzip
        );

        let index = r#"{"schemaVersion":2,"manifests":[]}"#;
        let parsed = Manifest::parse(Some("application/json"), index.as_bytes()).unwrap();
        assert_eq!(parsed.media_type(), OCI_INDEX);
    }

    #[test]
    fn schema1_and_unknown_types_are_clear_errors() {
        let err = Manifest::parse(None, br#"{"schemaVersion":1,"fsLayers":[]}"#).unwrap_err();
        assert!(matches!(err, ManifestError::Schema1));
        let err = Manifest::parse(Some("application/vnd.example+json"), br#"{"schemaVersion":2}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported manifest media type \"application/vnd.example+json\""
        );
        assert!(Compression::of_layer("application/vnd.example.layer").is_err());
    }
}
