//! registries.conf (containers-registries.conf(5), version 2): short-name resolution through
//! `unqualified-search-registries` and `[aliases]`, `short-name-mode`, and per-registry
//! `insecure`, `blocked`, `location` rewriting and mirrors (`[[registry.mirror]]` with their
//! own `insecure` and `pull-from-mirror`, and `mirror-by-digest-only`). Read from
//! REGISTRIES_CONFIG_PATH when set, else `$XDG_CONFIG_HOME/containers/registries.conf` for a
//! rootless user when it exists, else `/etc/containers/registries.conf`, plus the drop-ins of
//! `registries.conf.d/`.
//!
//! Aliases chosen at a short-name prompt are recorded, as Podman records them, in the
//! machine-written `short-name-aliases.conf` (`/var/cache/containers/` for root,
//! `$XDG_CONFIG_HOME/containers/` for other users), whose aliases win over registries.conf's.

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
    #[error("{path}: [[registry]] {prefix:?}: {message}")]
    InvalidRegistry { path: PathBuf, prefix: String, message: String },
    #[error("{path}: short-name-mode {mode:?}: expected enforcing, permissive or disabled")]
    InvalidShortNameMode { path: PathBuf, mode: String },
    #[error("recording the short-name alias {name:?} in {path}")]
    RecordAlias {
        path: PathBuf,
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("short name {name:?} is ambiguous and short-name-mode is enforcing, but there is no terminal to ask which one: use a full name ({})", .candidates.join(", "))]
    Ambiguous { name: String, candidates: Vec<String> },
}

/// How an ambiguous short name is resolved (`short-name-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShortNameMode {
    /// Ask on a terminal; without one, fail listing the candidates.
    Enforcing,
    /// Ask on a terminal; without one, try the candidates in order (the default).
    #[default]
    Permissive,
    /// Never ask: try the candidates in order.
    Disabled,
}

/// Where a pull fetches from: a mirror or the primary location, with the reference the
/// registry is asked for there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSource {
    pub reference: Reference,
    pub mirror: bool,
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
    #[serde(default)]
    mirror: Vec<MirrorEntry>,
    #[serde(default)]
    mirror_by_digest_only: bool,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct MirrorEntry {
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    pull_from_mirror: Option<String>,
}

impl RegistryEntry {
    fn prefix(&self) -> &str {
        self.prefix.as_deref().or(self.location.as_deref()).unwrap_or("")
    }

    /// Whether this entry's prefix covers the name `name` (`host[:port]/path[:tag|@digest]`).
    fn covers(&self, name: &str) -> bool {
        let prefix = self.prefix();
        if prefix.is_empty() {
            return false;
        }
        if let Some(domain) = prefix.strip_prefix("*.") {
            // `*.example.com` matches hosts below example.com, whatever follows the host.
            let host = name.split('/').next().unwrap_or("");
            let host = host.split(':').next().unwrap_or(host);
            return host.ends_with(&format!(".{domain}"));
        }
        name == prefix
            || name.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(['/', ':', '@']))
    }

    /// The specificity of the prefix: the longest match wins.
    fn rank(&self) -> usize {
        self.prefix().len()
    }
}

/// The host part (`host[:port]`) of a registry location (`host[:port][/path]`).
fn host_of(location: &str) -> &str {
    location.split('/').next().unwrap_or(location)
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
        let mut out = Self::load_config()?;
        // Aliases recorded at a prompt win over the human-edited files.
        let cache = aliases_cache_path();
        if let Ok(text) = fs::read_to_string(&cache) {
            let recorded: AliasesFile = toml::from_str(&text)
                .map_err(|source| RegistriesError::Parse { path: cache.clone(), source })?;
            out.merge_aliases(recorded.aliases);
        }
        Ok(out)
    }

    fn load_config() -> Result<Self, RegistriesError> {
        let main = match std::env::var_os("REGISTRIES_CONFIG_PATH") {
            Some(path) => PathBuf::from(path),
            None => {
                let user = std::env::var_os("XDG_CONFIG_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
                    .map(|c| c.join("containers/registries.conf"));
                match user {
                    Some(user) if crate::host::rootless() && user.is_file() => user,
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
            if !matches!(mode.as_str(), "" | "enforcing" | "permissive" | "disabled") {
                return Err(RegistriesError::InvalidShortNameMode {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            self.short_name_mode = mode;
        }
        self.merge_aliases(file.aliases);
        for entry in &file.registry {
            validate(path, entry)?;
        }
        // A later file's entry for the same prefix replaces the earlier one.
        for entry in file.registry {
            self.registries.retain(|r| r.prefix() != entry.prefix());
            self.registries.push(entry);
        }
        Ok(())
    }

    /// Adds aliases; an empty value erases the alias (containers-registries.conf(5)).
    fn merge_aliases(&mut self, aliases: BTreeMap<String, String>) {
        for (name, value) in aliases {
            if value.is_empty() {
                self.aliases.remove(&name);
            } else {
                self.aliases.insert(name, value);
            }
        }
    }

    fn entry_for(&self, name: &str) -> Option<&RegistryEntry> {
        // The most specific prefix wins.
        self.registries.iter().filter(|r| r.covers(name)).max_by_key(|r| r.rank())
    }

    /// Whether registries.conf marks `registry` (`host[:port]`) insecure, as a registry or
    /// as some registry's mirror.
    pub fn insecure(&self, registry: &str) -> bool {
        self.entry_for(registry).is_some_and(|r| r.insecure)
            || self
                .registries
                .iter()
                .flat_map(|r| &r.mirror)
                .any(|m| m.insecure && host_of(&m.location) == registry)
    }

    /// Where to pull `reference` (fully qualified) from, in order: the mirrors its
    /// `[[registry]]` entry allows for this kind of reference (by tag or by digest), then
    /// the primary location. A blocked registry is an error.
    pub fn pull_sources(&self, reference: &Reference) -> Result<Vec<PullSource>, RegistriesError> {
        let full = reference.to_string();
        let Some(entry) = self.entry_for(&full) else {
            return Ok(vec![PullSource { reference: reference.clone(), mirror: false }]);
        };
        if entry.blocked {
            return Err(RegistriesError::Blocked(full));
        }
        let prefix = entry.prefix();
        if prefix.starts_with("*.") {
            // A wildcard prefix has no location to rewrite to (containers-registries.conf(5)).
            return Ok(vec![PullSource { reference: reference.clone(), mirror: false }]);
        }
        let rewrite = |location: &str| -> Result<Reference, RegistriesError> {
            let name = format!("{location}{}", &full[prefix.len()..]);
            Reference::parse(&name).map_err(|source| RegistriesError::Alias { name, source })
        };
        let by_digest = reference.digest().is_some();
        let mut out = Vec::new();
        for mirror in &entry.mirror {
            let allowed = if entry.mirror_by_digest_only {
                by_digest
            } else {
                match mirror.pull_from_mirror.as_deref().unwrap_or("all") {
                    "digest-only" => by_digest,
                    "tag-only" => !by_digest,
                    _ => true,
                }
            };
            if allowed {
                out.push(PullSource { reference: rewrite(&mirror.location)?, mirror: true });
            }
        }
        let primary = match entry.location.as_deref().filter(|l| !l.is_empty()) {
            Some(location) if entry.prefix.is_some() => rewrite(location)?,
            _ => reference.clone(),
        };
        out.push(PullSource { reference: primary, mirror: false });
        Ok(out)
    }

    pub fn blocked(&self, registry: &str) -> bool {
        self.entry_for(registry).is_some_and(|r| r.blocked)
    }

    /// The references to try for `reference`, in order: itself when its registry was
    /// written; else its alias; else one per search registry.
    pub fn candidates(&self, reference: &Reference) -> Result<Vec<Reference>, RegistriesError> {
        Ok(self.resolve(reference)?.0)
    }

    /// As [`Self::candidates`], and whether the answer is final: a full name or an alias is,
    /// a list of search registries is not (short-name-mode decides what to do with it).
    pub fn resolve(
        &self,
        reference: &Reference,
    ) -> Result<(Vec<Reference>, bool), RegistriesError> {
        if reference.registry_explicit() {
            return Ok((vec![reference.clone()], true));
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
            return Ok((vec![aliased], true));
        }
        if self.search.is_empty() {
            return Err(RegistriesError::NoSearchRegistries(short.to_owned()));
        }
        let candidates: Vec<Reference> =
            self.search.iter().map(|registry| reference.clone().on_registry(registry)).collect();
        let single = candidates.len() == 1;
        Ok((candidates, single))
    }

    /// `short-name-mode` (`enforcing`, `permissive` or `disabled`; empty when unset).
    pub fn short_name_mode(&self) -> &str {
        &self.short_name_mode
    }

    /// `short-name-mode` as a value; unset means permissive.
    pub fn mode(&self) -> ShortNameMode {
        match self.short_name_mode.as_str() {
            "enforcing" => ShortNameMode::Enforcing,
            "disabled" => ShortNameMode::Disabled,
            _ => ShortNameMode::Permissive,
        }
    }

    /// Records `short` (the name without tag or digest) as an alias of `name` (a full name
    /// without tag or digest) in the short-name alias cache; returns the file written.
    pub fn record_alias(short: &str, name: &str) -> Result<PathBuf, RegistriesError> {
        let path = aliases_cache_path();
        let err = |source| RegistriesError::RecordAlias {
            path: path.clone(),
            name: short.to_owned(),
            source,
        };
        let mut file: AliasesFile = match fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AliasesFile::default(),
            Err(e) => return Err(err(e)),
        };
        file.aliases.insert(short.to_owned(), name.to_owned());
        let dir = path.parent().unwrap_or(Path::new("/"));
        fs::create_dir_all(dir).map_err(err)?;
        let mut text = String::from("[aliases]\n");
        for (key, value) in &file.aliases {
            text.push_str(&format!("  {} = {}\n", toml_string(key), toml_string(value)));
        }
        // Written whole and renamed, so a concurrent reader sees the old or the new file.
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        std::io::Write::write_all(&mut temp, text.as_bytes()).map_err(err)?;
        temp.persist(&path).map_err(|e| err(e.error))?;
        Ok(path)
    }
}

/// The machine-written short-name alias file.
#[derive(Debug, Default, Deserialize)]
struct AliasesFile {
    #[serde(default)]
    aliases: BTreeMap<String, String>,
}

/// Where aliases chosen at a prompt are recorded: /var/cache/containers for root, else
/// `$XDG_CONFIG_HOME/containers` (~/.config/containers).
pub fn aliases_cache_path() -> PathBuf {
    if !crate::host::rootless() {
        return PathBuf::from("/var/cache/containers/short-name-aliases.conf");
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent"))
        .join("containers/short-name-aliases.conf")
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn validate(path: &Path, entry: &RegistryEntry) -> Result<(), RegistriesError> {
    let invalid = |message: String| RegistriesError::InvalidRegistry {
        path: path.to_path_buf(),
        prefix: entry.prefix().to_owned(),
        message,
    };
    if entry.prefix().is_empty() {
        return Err(invalid("needs a prefix or a location".to_owned()));
    }
    for mirror in &entry.mirror {
        if mirror.location.is_empty() {
            return Err(invalid("a mirror needs a location".to_owned()));
        }
        match mirror.pull_from_mirror.as_deref() {
            None | Some("") | Some("all") => {}
            Some("digest-only" | "tag-only") if entry.mirror_by_digest_only => {
                return Err(invalid(format!(
                    "mirror {}: pull-from-mirror cannot be combined with mirror-by-digest-only",
                    mirror.location
                )))
            }
            Some("digest-only" | "tag-only") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "mirror {}: pull-from-mirror {other:?}: expected all, digest-only or tag-only",
                    mirror.location
                )))
            }
        }
    }
    Ok(())
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
        assert_eq!(conf.mode(), ShortNameMode::Permissive);
        let empty = Registries::default();
        assert!(matches!(
            empty.candidates(&Reference::parse("x").unwrap()),
            Err(RegistriesError::NoSearchRegistries(_))
        ));
    }

    fn sources(conf: &Registries, name: &str) -> Vec<(String, bool)> {
        conf.pull_sources(&Reference::parse(name).unwrap())
            .unwrap()
            .into_iter()
            .map(|s| (s.reference.to_string(), s.mirror))
            .collect()
    }

    #[test]
    fn mirrors_come_before_the_primary_as_their_settings_allow() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let conf = Registries::from_text(
            Path::new("test.conf"),
            r#"
[[registry]]
location = "primary.example:5000"
[[registry.mirror]]
location = "mirror-a.example:5001/cache"
insecure = true
[[registry.mirror]]
location = "mirror-b.example"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "mirror-c.example"
pull-from-mirror = "tag-only"

[[registry]]
prefix = "docker.io/org"
location = "rewritten.example/o"
mirror-by-digest-only = true
[[registry.mirror]]
location = "hub-mirror.example"

[[registry]]
location = "blocked.example"
blocked = true
"#,
        )
        .unwrap();
        assert_eq!(
            sources(&conf, "primary.example:5000/app:1"),
            [
                ("mirror-a.example:5001/cache/app:1".to_owned(), true),
                ("mirror-c.example/app:1".to_owned(), true),
                ("primary.example:5000/app:1".to_owned(), false),
            ]
        );
        assert_eq!(
            sources(&conf, &format!("primary.example:5000/app@{digest}")),
            [
                (format!("mirror-a.example:5001/cache/app@{digest}"), true),
                (format!("mirror-b.example/app@{digest}"), true),
                (format!("primary.example:5000/app@{digest}"), false),
            ]
        );
        // mirror-by-digest-only: a tag goes to the (rewritten) primary only.
        assert_eq!(sources(&conf, "org/app:2"), [("rewritten.example/o/app:2".to_owned(), false)]);
        assert_eq!(
            sources(&conf, &format!("org/app@{digest}")),
            [
                (format!("hub-mirror.example/app@{digest}"), true),
                (format!("rewritten.example/o/app@{digest}"), false)
            ]
        );
        // Not a prefix at a path boundary: no entry applies.
        assert_eq!(
            sources(&conf, "primary.example:50000/app:1"),
            [("primary.example:50000/app:1".to_owned(), false)]
        );
        assert!(conf.insecure("mirror-a.example:5001"));
        assert!(!conf.insecure("mirror-b.example"));
        let err = conf.pull_sources(&Reference::parse("blocked.example/x:1").unwrap());
        assert_eq!(
            err.unwrap_err().to_string(),
            "registry blocked.example/x:1 is blocked in registries.conf"
        );
    }

    #[test]
    fn bad_mirror_settings_are_refused_naming_the_entry() {
        let err = Registries::from_text(
            Path::new("r.conf"),
            "[[registry]]\nlocation = \"a.example\"\nmirror-by-digest-only = true\n\
             [[registry.mirror]]\nlocation = \"m.example\"\npull-from-mirror = \"tag-only\"\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "r.conf: [[registry]] \"a.example\": mirror m.example: pull-from-mirror cannot be \
             combined with mirror-by-digest-only"
        );
        let err = Registries::from_text(
            Path::new("r.conf"),
            "[[registry]]\nlocation = \"a.example\"\n[[registry.mirror]]\nlocation = \"m\"\n\
             pull-from-mirror = \"sometimes\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("pull-from-mirror \"sometimes\""), "{err}");
        let err = Registries::from_text(Path::new("r.conf"), "short-name-mode = \"strict\"\n")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "r.conf: short-name-mode \"strict\": expected enforcing, permissive or disabled"
        );
    }

    #[test]
    fn resolve_says_when_a_short_name_is_ambiguous() {
        let conf = Registries::from_text(
            Path::new("t.conf"),
            "unqualified-search-registries = [\"a.example\", \"b.example\"]\n\
             short-name-mode = \"enforcing\"\n[aliases]\n\"known\" = \"c.example/known\"\n",
        )
        .unwrap();
        assert_eq!(conf.mode(), ShortNameMode::Enforcing);
        let (names, last) = conf.resolve(&Reference::parse("app:1").unwrap()).unwrap();
        assert_eq!(names.len(), 2);
        assert!(!last);
        let (names, last) = conf.resolve(&Reference::parse("known:3").unwrap()).unwrap();
        assert_eq!(names[0].to_string(), "c.example/known:3");
        assert!(last);
    }

    #[test]
    fn toml_strings_round_trip() {
        let text = format!("[aliases]\n{} = {}\n", toml_string("a\"b\\c"), toml_string("x/y"));
        let file: AliasesFile = toml::from_str(&text).unwrap();
        assert_eq!(file.aliases["a\"b\\c"], "x/y");
    }
}
