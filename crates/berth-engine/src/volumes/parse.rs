//! The two mount languages of `run`/`create`, as Podman reads them:
//!
//! - `-v SRC:DST[:OPTIONS]`: SRC an absolute or `./`-relative host path is a bind mount,
//!   anything else a volume name; `-v DST` alone is an anonymous volume. OPTIONS: `ro`, `rw`,
//!   the propagation modes, `nocopy`, and `z`/`Z` (SELinux relabelling, which has nothing to do
//!   on a host without SELinux).
//! - `--mount type=bind|volume|tmpfs,source=…,target=…,…` with `readonly`/`ro`,
//!   `bind-propagation`, `volume-nocopy`, `tmpfs-size` and `tmpfs-mode`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::VolumeError;
use crate::spec::options::normalize_destination;

/// What a mount is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Bind,
    Volume,
    Tmpfs,
}

/// One mount flag, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    pub kind: MountKind,
    /// The host path (bind, made absolute), the volume's name (empty: anonymous), or nothing.
    pub source: String,
    pub destination: String,
    pub read_only: bool,
    /// Propagation for binds, `size=`/`mode=` for tmpfs.
    pub options: Vec<String>,
    /// Do not copy the image's content into a fresh volume.
    pub no_copy: bool,
}

const PROPAGATION: &[&str] = &["private", "rprivate", "shared", "rshared", "slave", "rslave"];

/// Whether `name` is a valid volume name (Podman's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn destination(flag: &'static str, value: &str, dest: &str) -> Result<String, VolumeError> {
    let bad = |reason: &str| VolumeError::BadFlag {
        flag,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    if !dest.starts_with('/') {
        return Err(bad("the container path must be absolute"));
    }
    if dest.split('/').any(|p| p == "..") {
        return Err(bad("the container path must not contain \"..\""));
    }
    let dest = normalize_destination(dest);
    if dest == "/" {
        return Err(bad("cannot mount over the container's root"));
    }
    Ok(dest)
}

/// A bind source: made absolute against the working directory, and required to exist.
fn bind_source(flag: &'static str, value: &str, source: &str) -> Result<String, VolumeError> {
    let path = if source.starts_with('/') {
        Path::new(source).to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| VolumeError::BadFlag {
                flag,
                value: value.to_owned(),
                reason: format!("cannot resolve a relative path: {e}"),
            })?
            .join(source)
    };
    if std::fs::symlink_metadata(&path).is_err() {
        return Err(VolumeError::MissingSource { flag, value: value.to_owned(), path });
    }
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    Ok(path.to_string_lossy().into_owned())
}

impl MountRequest {
    /// An anonymous volume at `destination` (an image's VOLUME).
    pub fn anonymous(destination: String) -> Self {
        Self {
            kind: MountKind::Volume,
            source: String::new(),
            destination,
            read_only: false,
            options: Vec::new(),
            no_copy: false,
        }
    }

    /// Parses one `-v`.
    pub fn parse_volume_flag(value: &str) -> Result<Self, VolumeError> {
        const FLAG: &str = "-v";
        let bad = |reason: &str| VolumeError::BadFlag {
            flag: FLAG,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let parts: Vec<&str> = value.split(':').collect();
        let (source, dest, opts) = match parts.as_slice() {
            [dest] => ("", *dest, ""),
            [source, dest] => (*source, *dest, ""),
            [source, dest, opts] => (*source, *dest, *opts),
            _ => return Err(bad("expected SOURCE:DESTINATION[:OPTIONS] or DESTINATION")),
        };
        if parts.len() > 1 && source.is_empty() {
            return Err(bad("the source is empty"));
        }
        let destination = destination(FLAG, value, dest)?;
        let mut out = Self::anonymous(destination);
        if source.starts_with('/') || source.starts_with('.') {
            out.kind = MountKind::Bind;
            out.source = bind_source(FLAG, value, source)?;
        } else if !source.is_empty() {
            if !valid_name(source) {
                return Err(VolumeError::BadName { name: source.to_owned() });
            }
            out.source = source.to_owned();
        }
        let mut access = None;
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            match opt {
                "ro" | "rw" => {
                    if access.replace(opt).is_some() {
                        return Err(bad("ro and rw can be given only once"));
                    }
                    out.read_only = opt == "ro";
                }
                "z" | "Z" => {}
                "nocopy" => out.no_copy = true,
                p if PROPAGATION.contains(&p) => out.options.push(p.to_owned()),
                "U" | "O" | "idmap" => {
                    return Err(VolumeError::NotSupportedYet { what: format!("-v option {opt}") })
                }
                other => return Err(bad(&format!("unknown option {other:?}"))),
            }
        }
        Ok(out)
    }

    /// Parses one `--mount`.
    pub fn parse_mount_flag(value: &str) -> Result<Self, VolumeError> {
        const FLAG: &str = "--mount";
        let bad = |reason: &str| VolumeError::BadFlag {
            flag: FLAG,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let mut kind = None;
        let mut source = None;
        let mut target = None;
        let mut read_only = false;
        let mut options = Vec::new();
        let mut no_copy = false;
        for field in value.split(',').filter(|f| !f.is_empty()) {
            let (key, val) = match field.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (field, None),
            };
            match (key, val) {
                ("type", Some(t)) => {
                    kind = Some(match t {
                        "bind" => MountKind::Bind,
                        "volume" => MountKind::Volume,
                        "tmpfs" => MountKind::Tmpfs,
                        "image" | "devpts" | "glob" | "ramfs" => {
                            return Err(VolumeError::NotSupportedYet {
                                what: format!("--mount type={t}"),
                            })
                        }
                        other => return Err(bad(&format!("unknown mount type {other:?}"))),
                    })
                }
                ("source" | "src", Some(s)) => source = Some(s.to_owned()),
                ("target" | "destination" | "dst", Some(t)) => target = Some(t.to_owned()),
                ("readonly" | "ro", None | Some("true")) => read_only = true,
                ("readonly" | "ro", Some("false")) => read_only = false,
                ("bind-propagation", Some(p)) if PROPAGATION.contains(&p) => {
                    options.push(p.to_owned())
                }
                ("volume-nocopy", None | Some("true")) => no_copy = true,
                ("tmpfs-size", Some(s)) => {
                    let bytes = crate::spec::resources::parse_size("--mount tmpfs-size", s)?;
                    options.push(format!("size={bytes}"));
                }
                ("tmpfs-mode", Some(m)) => {
                    if u32::from_str_radix(m, 8).is_err() {
                        return Err(bad(&format!("tmpfs-mode {m:?} is not an octal mode")));
                    }
                    options.push(format!("mode={m}"));
                }
                ("relabel" | "z" | "Z", _) => {}
                _ => return Err(bad(&format!("unknown or misused option {field:?}"))),
            }
        }
        let kind = kind.ok_or_else(|| bad("type= is required"))?;
        let target = target.ok_or_else(|| bad("target= is required"))?;
        let destination = destination(FLAG, value, &target)?;
        let source = match (kind, source) {
            (MountKind::Bind, None) => return Err(bad("a bind mount needs source=")),
            (MountKind::Bind, Some(s)) => bind_source(FLAG, value, &s)?,
            (MountKind::Volume, Some(s)) if !valid_name(&s) => {
                return Err(VolumeError::BadName { name: s })
            }
            (MountKind::Volume, s) => s.unwrap_or_default(),
            (MountKind::Tmpfs, Some(_)) => return Err(bad("a tmpfs mount takes no source")),
            (MountKind::Tmpfs, None) => String::new(),
        };
        Ok(Self { kind, source, destination, read_only, options, no_copy })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flags_choose_bind_named_or_anonymous() {
        let bind = MountRequest::parse_volume_flag("/tmp:/data:ro").unwrap();
        assert_eq!((bind.kind, bind.read_only), (MountKind::Bind, true));
        assert_eq!(bind.destination, "/data");
        let named = MountRequest::parse_volume_flag("cache:/var/cache//x/").unwrap();
        assert_eq!((named.kind, named.source.as_str()), (MountKind::Volume, "cache"));
        assert_eq!(named.destination, "/var/cache/x");
        let anon = MountRequest::parse_volume_flag("/data").unwrap();
        assert_eq!((anon.kind, anon.source.as_str()), (MountKind::Volume, ""));
    }

    #[test]
    fn bad_volume_flags_say_what_is_wrong() {
        let err = MountRequest::parse_volume_flag("/no/such/dir:/x").unwrap_err().to_string();
        assert_eq!(err, "-v \"/no/such/dir:/x\": the host path /no/such/dir does not exist");
        assert!(MountRequest::parse_volume_flag("v:data").is_err());
        assert!(MountRequest::parse_volume_flag("v:/data:bogus").is_err());
        assert!(MountRequest::parse_volume_flag("-bad:/data").is_err());
        assert!(MountRequest::parse_volume_flag("v:/").is_err());
    }

    #[test]
    fn mount_flags_parse_each_type() {
        let m = MountRequest::parse_mount_flag("type=bind,source=/tmp,target=/t,readonly").unwrap();
        assert_eq!((m.kind, m.read_only, m.source.as_str()), (MountKind::Bind, true, "/tmp"));
        let m = MountRequest::parse_mount_flag("type=volume,src=v1,dst=/v,volume-nocopy").unwrap();
        assert_eq!((m.kind, m.no_copy), (MountKind::Volume, true));
        let m = MountRequest::parse_mount_flag("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=700")
            .unwrap();
        assert_eq!(m.options, ["size=1048576", "mode=700"]);
        assert!(MountRequest::parse_mount_flag("type=bind,target=/t").is_err());
        assert!(MountRequest::parse_mount_flag("source=/tmp,target=/t").is_err());
        assert!(MountRequest::parse_mount_flag("type=nfs,target=/t").is_err());
    }
}
