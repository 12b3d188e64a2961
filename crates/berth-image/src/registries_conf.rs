//! registries.conf (containers-registries.conf(5), version 2): short-name resolution through
//! `unqualified-search-registries` and `[aliases]`, `short-name-mode`, and per-registry
//! `insecure` and `blocked`. Read from REGISTRIES_CONFIG_PATH when set, else
//! `$XDG_CONFIG_HOME/containers/registries.conf` for a rootless user when it exists, else
//! `/etc/containers/registries.conf`, plus the drop-ins of `registries.conf.d/`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::reference::{Reference, ReferenceError};

#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    #[error("parsing {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("short name {0:?} has no registry to resolve to: set unqualified-search-registries in registries.conf or use a full name")]
    NoSearchRegistries(String),
    #[error("alias for {name:?}")]
    Alias {
        name: String,
        #[source]
        source: ReferenceError,
    },
    #[error("registry {0} is blocked in registries.conf")]
    Blocked(String),
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    unqualified_search_registries: Option<Vec<String>>,
    #[serde(default)]
    short_name_mode: Option<String>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
    #[serde(default)]
    registry: Vec<RegistryEntry>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RegistryEntry {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
}

/// The merged configuration.
#[derive(Debug, Default, Clone)]
pub struct Registries {
    search: Vec<String>,
    short_name_mode: String,
    aliases: BTreeMap<String, String>,
    registries: Vec<RegistryEntry>,
}

impl Registries {
    /// Reads the configuration from the usual places; missing files mean an empty one.
    pub fn load() -> Result<Self, RegistriesError> {
        let main = match std::env::var_os("REGISTRIES_CONFIG_PATH") {
            Some(path) => PathBuf::from(path),
            None => {
                let user = std::env::var_os("XDG_CONFIG_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
                    .map(|c| c.join("containers/registries.conf"));
                match user {
                    Some(user) if !rustix::process::geteuid().is_root() && user.is_file() => user,
                    _ => PathBuf::from("/etc/containers/registries.conf"),
                }
            }
        };
        let mut out = Self::default();
        out.merge_file(&main)?;
        let drop_ins = main.with_extension("conf.d");
        if let Ok(entries) = fs::read_dir(&drop_ins) {
            let mut paths: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect();
            paths.sort();
            for path in paths {
                out.merge_file(&path)?;
            }
        }
        Ok(out)
    }

    /// Parses one file's text (for tests and for `--registries-conf`-like callers).
    pub fn from_text(path: &Path, text: &str) -> Result<Self, RegistriesError> {
        let mut out = Self::default();
        out.merge_text(path, text)?;
        Ok(out)
    }

    fn merge_file(&mut self, path: &Path) -> Result<(), RegistriesError> {
        match fs::read_to_string(path) {
            Ok(text) => self.merge_text(path, &text),
            Err(_) => Ok(()),
        }
    }

    fn merge_text(&mut self, path: &Path, text: &str) -> Result<(), RegistriesError> {
        let file: File = toml::from_str(text)
            .map_err(|source| RegistriesError::Parse { path: path.to_path_buf(), source })?;
        if let Some(search) = file.unqualified_search_registries {
            self.search = search;
        }
        if let Some(mode) = file.short_name_mode {
            self.short_name_mode = mode;
        }
        self.aliases.extend(file.aliases);
        self.registries.extend(file.registry);
        Ok(())
    }

    fn entry_for(&self, host: &str) -> Option<&RegistryEntry> {
        // The most specific prefix wins.
        self.registries
            .iter()
            .filter(|r| {
                let prefix = r.prefix.as_deref().or(r.location.as_deref()).unwrap_or("");
                !prefix.is_empty() && (host == prefix || host.starts_with(&format!("{prefix}/")))
            })
            .max_by_key(|r| r.prefix.as_deref().or(r.location.as_deref()).map_or(0, str::len))
    }

    /// Whether registries.conf marks `registry` (`host[:port]`) insecure.
    pub fn insecure(&self, registry: &str) -> bool {
        self.entry_for(registry).is_some_and(|r| r.insecure)
    }

    pub fn blocked(&self, registry: &str) -> bool {
        self.entry_for(registry).is_some_and(|r| r.blocked)
    }

    /// The references to try for `reference`, in order: itself when its registry was
    /// written; else its alias; else one per search registry.
    pub fn candidates(&self, reference: &Reference) -> Result<Vec<Reference>, RegistriesError> {
        if reference.registry_explicit() {
            return Ok(vec![reference.clone()]);
        }
        let short = reference.short_path();
        if let Some(alias) = self.aliases.get(short) {
            let mut aliased = Reference::parse(alias)
                .map_err(|source| RegistriesError::Alias { name: short.to_owned(), source })?;
            if let Some(tag) = reference.tag() {
                aliased = aliased.with_tag(tag);
            }
            if let Some(digest) = reference.digest() {
                aliased = aliased.with_digest(digest.clone());
            }
            return Ok(vec![aliased]);
        }
        if self.search.is_empty() {
            return Err(RegistriesError::NoSearchRegistries(short.to_owned()));
        }
        Ok(self.search.iter().map(|registry| reference.clone().on_registry(registry)).collect())
    }

    /// `short-name-mode` (`enforcing`, `permissive` or `disabled`; empty when unset).
    pub fn short_name_mode(&self) -> &str {
        &self.short_name_mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_through_aliases_and_search_registries() {
        let conf = Registries::from_text(
            Path::new("test.conf"),
            r#"
unqualified-search-registries = ["registry.example", "docker.io"]
short-name-mode = "permissive"
[aliases]
"app" = "quay.io/org/app"
[[registry]]
location = "127.0.0.1:5000"
insecure = true
"#,
        )
        .unwrap();
        let names = |s: &str| -> Vec<String> {
            conf.candidates(&Reference::parse(s).unwrap())
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            names("busybox:1"),
            ["registry.example/busybox:1", "docker.io/library/busybox:1"]
        );
        assert_eq!(names("app:v2"), ["quay.io/org/app:v2"]);
        assert_eq!(names("localhost:5000/x"), ["localhost:5000/x"]);
        assert!(conf.insecure("127.0.0.1:5000"));
        assert!(!conf.insecure("127.0.0.1:5001"));
        let empty = Registries::default();
        assert!(matches!(
            empty.candidates(&Reference::parse("x").unwrap()),
            Err(RegistriesError::NoSearchRegistries(_))
        ));
    }
}
