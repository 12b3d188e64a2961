//! Platforms (`os/arch[/variant]`) and choosing the manifest of one from an index, as
//! containerd's platform matcher does: os and architecture must match; a requested variant
//! must match exactly; without one, the host's variant is preferred, then any.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::manifest::{Descriptor, ImageIndex};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlatformError {
    #[error("invalid platform {0:?}: expected os/arch[/variant]")]
    Parse(String),
    #[error("no image for platform {wanted} in the index (it has: {available})")]
    NoMatch { wanted: String, available: String },
}

/// The platform an image runs on (image-spec `image-index.md`, `platform`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Option::is_none")]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this machine in OCI names (amd64, arm64/v8, …).
    pub fn host() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Self {
            architecture: architecture.to_owned(),
            os: std::env::consts::OS.to_owned(),
            variant: variant.map(str::to_owned),
            ..Self::default()
        }
    }

    fn normalised_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            // arm64 images rarely say v8; an absent variant means v8.
            ("arm64", None) => Some("v8"),
            (_, variant) => variant,
        }
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = input.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) || !(2..=3).contains(&parts.len()) {
            return Err(PlatformError::Parse(input.to_owned()));
        }
        let architecture = match parts[1] {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        Ok(Self {
            os: parts[0].to_owned(),
            architecture: architecture.to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
            ..Self::default()
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// Picks the manifest for `wanted` from `index`. `explicit_variant` says whether the user
/// asked for the variant (then it must match) or it is the host's (then it is preferred).
pub fn select<'a>(
    index: &'a ImageIndex,
    wanted: &Platform,
    explicit_variant: bool,
) -> Result<&'a Descriptor, PlatformError> {
    let mut fallback = None;
    for descriptor in &index.manifests {
        let Some(platform) = &descriptor.platform else { continue };
        if platform.os != wanted.os || platform.architecture != wanted.architecture {
            continue;
        }
        if platform.normalised_variant() == wanted.normalised_variant() {
            return Ok(descriptor);
        }
        if !explicit_variant && fallback.is_none() {
            fallback = Some(descriptor);
        }
    }
    fallback.ok_or_else(|| PlatformError::NoMatch {
        wanted: wanted.to_string(),
        available: index
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref())
            .filter(|p| p.os != "unknown")
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::manifest::OCI_MANIFEST;

    fn entry(platform: &str) -> Descriptor {
        let mut d = Descriptor::new(OCI_MANIFEST, Digest::sha256(platform.as_bytes()), 1);
        d.platform = Some(platform.parse().unwrap());
        d
    }

    #[test]
    fn selects_by_os_arch_and_variant() {
        let index = ImageIndex {
            schema_version: 2,
            media_type: None,
            manifests: vec![
                entry("unknown/unknown"),
                entry("linux/arm/v6"),
                entry("linux/arm/v7"),
                entry("linux/arm64"),
                entry("linux/amd64"),
            ],
            annotations: None,
        };
        let pick = |p: &str, explicit| {
            select(&index, &p.parse().unwrap(), explicit).map(|d| d.platform.clone().unwrap())
        };
        assert_eq!(pick("linux/amd64", false).unwrap().to_string(), "linux/amd64");
        assert_eq!(pick("linux/arm/v7", true).unwrap().to_string(), "linux/arm/v7");
        assert_eq!(pick("linux/arm64/v8", true).unwrap().to_string(), "linux/arm64");
        assert_eq!(pick("linux/arm/v5", false).unwrap().to_string(), "linux/arm/v6");
        let err = pick("linux/arm/v5", true).unwrap_err().to_string();
        assert_eq!(
            err,
            "no image for platform linux/arm/v5 in the index (it has: linux/arm/v6, linux/arm/v7, \
             linux/arm64, linux/amd64)"
        );
        assert!("linux".parse::<Platform>().is_err());
        assert_eq!("linux/x86_64".parse::<Platform>().unwrap().architecture, "amd64");
    }
}
