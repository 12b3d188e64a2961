//! `linux.cgroupsPath`: the three forms the runtime spec and runc accept (config-linux.md
//! "Cgroups path"): an absolute path below the cgroup root, a path relative to the runtime's
//! own cgroup, and, with `--systemd-cgroup`, runc's `slice:prefix:name`.

use super::{Error, Result};

/// A parsed `linux.cgroupsPath`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupsPath {
    /// `/a/b`: below the root of each hierarchy.
    Absolute(String),
    /// `a/b`: below the cgroup the runtime itself runs in (per v1 controller).
    Relative(String),
    /// `slice:prefix:name`, the unit `prefix-name.scope` under `slice`.
    Systemd { slice: String, prefix: String, name: String },
}

impl CgroupsPath {
    /// Parses the spec's value. Without one, the container goes to `<own cgroup>/<id>` (or
    /// `system.slice:berth:<id>` with systemd), as runc does.
    pub fn parse(
        spec: Option<&str>,
        id: &str,
        systemd: bool,
        systemd_running: bool,
    ) -> Result<CgroupsPath> {
        let invalid = |path: &str, reason: &str| Error::InvalidPath {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        let spec = spec.filter(|s| !s.is_empty());
        if systemd {
            let owned;
            let text = match spec {
                Some(s) => s,
                None => {
                    owned = format!("system.slice:berth:{id}");
                    &owned
                }
            };
            let parts: Vec<&str> = text.split(':').collect();
            let [slice, prefix, name] = parts[..] else {
                return Err(invalid(text, "the systemd form is slice:prefix:name"));
            };
            if !slice.is_empty() && !slice.ends_with(".slice") {
                return Err(invalid(text, "the slice must end in .slice"));
            }
            if slice.contains('/') || prefix.contains('/') || name.contains('/') {
                return Err(invalid(text, "the systemd form cannot contain '/'"));
            }
            if !systemd_running {
                return Err(Error::NoSystemd { path: text.to_string() });
            }
            let path = CgroupsPath::Systemd {
                slice: if slice.is_empty() { "system.slice".into() } else { slice.into() },
                prefix: prefix.to_string(),
                name: if name.is_empty() { id.to_string() } else { name.to_string() },
            };
            // TODO: the systemd driver needs StartTransientUnit over D-Bus; it can go in once
            // a host with systemd is part of the test lanes.
            return Err(Error::NotSupported {
                what: format!("the systemd cgroup driver (unit {})", path.systemd_expand()),
            });
        }
        let Some(text) = spec else {
            return Ok(CgroupsPath::Relative(id.to_string()));
        };
        if text.split('/').any(|c| c == "..") {
            return Err(invalid(text, "'..' is not allowed"));
        }
        let parts: Vec<&str> = text.split(':').collect();
        if parts.len() == 3 && parts[0].ends_with(".slice") {
            return Err(invalid(
                text,
                "this is the systemd form slice:prefix:name; pass --systemd-cgroup to use it",
            ));
        }
        if text.starts_with('/') {
            Ok(CgroupsPath::Absolute(text.to_string()))
        } else {
            Ok(CgroupsPath::Relative(text.to_string()))
        }
    }

    /// The absolute path inside a hierarchy, given the runtime's own cgroup there.
    pub fn resolve(&self, own: &str) -> String {
        match self {
            CgroupsPath::Absolute(p) => normalize(p),
            CgroupsPath::Relative(p) => normalize(&format!("{own}/{p}")),
            CgroupsPath::Systemd { .. } => self.systemd_expand(),
        }
    }

    /// systemd's place for the unit: `a-b.slice` nests as `/a.slice/a-b.slice`, and the
    /// container is `prefix-name.scope` inside it.
    pub fn systemd_expand(&self) -> String {
        let CgroupsPath::Systemd { slice, prefix, name } = self else {
            return String::new();
        };
        let mut out = String::new();
        if slice != "-.slice" {
            let stem = slice.trim_end_matches(".slice");
            let mut acc = String::new();
            for part in stem.split('-') {
                if !acc.is_empty() {
                    acc.push('-');
                }
                acc.push_str(part);
                out.push('/');
                out.push_str(&acc);
                out.push_str(".slice");
            }
        }
        if prefix.is_empty() {
            out.push_str(&format!("/{name}.scope"));
        } else {
            out.push_str(&format!("/{prefix}-{name}.scope"));
        }
        out
    }
}

fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_relative_paths_resolve_like_runc() {
        let abs = CgroupsPath::parse(Some("/berth/c1"), "c1", false, false).unwrap();
        assert_eq!(abs.resolve("/user.slice"), "/berth/c1");
        let rel = CgroupsPath::parse(Some("berth/c1"), "c1", false, false).unwrap();
        assert_eq!(
            rel.resolve("/user.slice/session-1.scope"),
            "/user.slice/session-1.scope/berth/c1"
        );
        let default = CgroupsPath::parse(None, "c1", false, false).unwrap();
        assert_eq!(default.resolve("/"), "/c1");
    }

    #[test]
    fn dot_dot_and_systemd_form_without_flag_are_refused() {
        let err = CgroupsPath::parse(Some("/a/../b"), "c", false, false).unwrap_err();
        assert!(err.to_string().contains("'..'"), "{err}");
        let err = CgroupsPath::parse(Some("system.slice:berth:c"), "c", false, false).unwrap_err();
        assert!(err.to_string().contains("--systemd-cgroup"), "{err}");
    }

    #[test]
    fn systemd_form_without_systemd_names_the_cause() {
        let err = CgroupsPath::parse(Some("system.slice:berth:c"), "c", true, false).unwrap_err();
        assert!(matches!(err, Error::NoSystemd { .. }), "{err}");
        assert!(err.to_string().contains("systemd is not running"), "{err}");
        let err = CgroupsPath::parse(Some("bad"), "c", true, false).unwrap_err();
        assert!(err.to_string().contains("slice:prefix:name"), "{err}");
    }

    #[test]
    fn systemd_slices_nest_by_dash() {
        let p = CgroupsPath::Systemd {
            slice: "machine-berth.slice".into(),
            prefix: "berth".into(),
            name: "c1".into(),
        };
        assert_eq!(p.systemd_expand(), "/machine.slice/machine-berth.slice/berth-c1.scope");
    }
}
