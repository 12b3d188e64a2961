//! Where berth keeps its data (images, state database) and its per-boot runtime state, as
//! DESIGN.md's "Where things live" lays out: `--root` and `--runroot` first; then, when
//! CONTAINERS_STORAGE_CONF names a containers-storage.conf(5) file, its `[storage]` table
//! (`graphroot` and `runroot`, and for a rootless user `rootless_storage_path`), as Podman
//! honours it; then berth's defaults.
//!
//! Only the directory names are taken from that file: berth keeps its own layout under them
//! and never reads containers/storage's on-disk format. The system-wide
//! /etc/containers/storage.conf is deliberately not read, so berth never writes its store
//! into Podman's /var/lib/containers/storage unless a user asks for it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("reading CONTAINERS_STORAGE_CONF {path}")]
    ReadStorageConf {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing CONTAINERS_STORAGE_CONF {path}: {message}")]
    ParseStorageConf { path: PathBuf, message: String },
    #[error("{path}: {field} {value:?} is not an absolute path")]
    RelativeStoragePath { path: PathBuf, field: &'static str, value: String },
    #[error("neither XDG_DATA_HOME nor HOME is set: use --root")]
    NoDataHome,
}

/// The `[storage]` table of containers-storage.conf, for the fields berth uses.
#[derive(Debug, Default, Deserialize)]
struct StorageConf {
    #[serde(default)]
    storage: StorageTable,
}

#[derive(Debug, Default, Deserialize)]
struct StorageTable {
    graphroot: Option<String>,
    runroot: Option<String>,
    rootless_storage_path: Option<String>,
}

/// The process facts the choice depends on, so tests can pass their own.
pub struct Environment<'a> {
    pub var: &'a dyn Fn(&str) -> Option<OsString>,
    pub uid: u32,
    pub user: Option<String>,
}

impl Environment<'_> {
    fn rootless(&self) -> bool {
        self.uid != 0
    }
}

/// The data and runtime directories, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    pub root: PathBuf,
    pub runroot: PathBuf,
}

/// Resolves both directories for the running process.
pub fn dirs(root: Option<&Path>, runroot: Option<&Path>) -> Result<Dirs, PathsError> {
    // The host uid: inside rootless berth's user namespace the effective uid is 0 (rootless
    // engineer's edit).
    let uid = berth_engine::userns::host_ids().uid;
    let user = std::env::var("USER").ok();
    let var = |name: &str| std::env::var_os(name);
    resolve(root, runroot, &Environment { var: &var, uid, user })
}

/// Resolves both directories from `env`.
pub fn resolve(
    root: Option<&Path>,
    runroot: Option<&Path>,
    env: &Environment<'_>,
) -> Result<Dirs, PathsError> {
    let conf = match (env.var)("CONTAINERS_STORAGE_CONF").filter(|p| !p.is_empty()) {
        Some(path) => Some((PathBuf::from(&path), read_conf(Path::new(&path))?)),
        None => None,
    };
    let from_conf = |field: &'static str, pick: fn(&StorageTable) -> Option<&String>| {
        let Some((path, conf)) = &conf else { return Ok(None) };
        match pick(&conf.storage).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(value) => {
                let expanded = PathBuf::from(expand(value, env));
                if expanded.is_absolute() {
                    Ok(Some(expanded))
                } else {
                    Err(PathsError::RelativeStoragePath {
                        path: path.clone(),
                        field,
                        value: value.clone(),
                    })
                }
            }
        }
    };

    let root = match root {
        Some(root) => root.to_path_buf(),
        None => {
            // A rootless user's own storage.conf may set graphroot; rootless_storage_path is
            // the rootless default where it does not (containers-storage.conf(5)).
            let mut chosen = from_conf("graphroot", |t| t.graphroot.as_ref())?;
            if env.rootless() {
                chosen = chosen
                    .or(from_conf("rootless_storage_path", |t| t.rootless_storage_path.as_ref())?);
            }
            match chosen {
                Some(dir) => dir,
                None => default_root(env)?,
            }
        }
    };
    let runroot = match runroot {
        Some(runroot) => runroot.to_path_buf(),
        None => match from_conf("runroot", |t| t.runroot.as_ref())? {
            Some(dir) => dir,
            None => default_runroot(env),
        },
    };
    Ok(Dirs { root, runroot })
}

fn read_conf(path: &Path) -> Result<StorageConf, PathsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| PathsError::ReadStorageConf { path: path.to_path_buf(), source })?;
    toml::from_str(&text).map_err(|e| PathsError::ParseStorageConf {
        path: path.to_path_buf(),
        message: e.message().to_owned(),
    })
}

/// Expands `$HOME`, `$UID` and `$USER` (also as `${NAME}`), as containers/storage does for
/// rootless_storage_path.
fn expand(value: &str, env: &Environment<'_>) -> String {
    let home = (env.var)("HOME").map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    let uid = env.uid.to_string();
    let user = env.user.clone().unwrap_or_default();
    let mut out = value.to_owned();
    for (name, with) in [("HOME", &home), ("UID", &uid), ("USER", &user)] {
        out = out.replace(&format!("${{{name}}}"), with).replace(&format!("${name}"), with);
    }
    out
}

fn default_root(env: &Environment<'_>) -> Result<PathBuf, PathsError> {
    if !env.rootless() {
        return Ok(PathBuf::from("/var/lib/berth"));
    }
    let data = (env.var)("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| (env.var)("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or(PathsError::NoDataHome)?;
    Ok(data.join("berth"))
}

fn default_runroot(env: &Environment<'_>) -> PathBuf {
    if !env.rootless() {
        return PathBuf::from("/run/berth");
    }
    match (env.var)("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("berth"),
        None => PathBuf::from(format!("/tmp/berth-{}", env.uid)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn with(
        vars: &[(&str, &str)],
        uid: u32,
        root: Option<&Path>,
        runroot: Option<&Path>,
    ) -> Result<Dirs, PathsError> {
        let vars: HashMap<String, OsString> =
            vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        let var = move |name: &str| vars.get(name).cloned();
        resolve(root, runroot, &Environment { var: &var, uid, user: Some("alice".to_owned()) })
    }

    fn conf(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn defaults_follow_the_design_table() {
        let dirs = with(&[], 0, None, None).unwrap();
        assert_eq!(dirs.root, Path::new("/var/lib/berth"));
        assert_eq!(dirs.runroot, Path::new("/run/berth"));
        let dirs =
            with(&[("HOME", "/home/a"), ("XDG_RUNTIME_DIR", "/run/user/1000")], 1000, None, None)
                .unwrap();
        assert_eq!(dirs.root, Path::new("/home/a/.local/share/berth"));
        assert_eq!(dirs.runroot, Path::new("/run/user/1000/berth"));
        let dirs = with(&[("XDG_DATA_HOME", "/d")], 1000, None, None).unwrap();
        assert_eq!(dirs, Dirs { root: "/d/berth".into(), runroot: "/tmp/berth-1000".into() });
        assert!(matches!(with(&[], 1000, None, None), Err(PathsError::NoDataHome)));
    }

    #[test]
    fn storage_conf_chooses_both_unless_the_flags_do() {
        let file = conf("[storage]\ndriver = \"overlay\"\ngraphroot = \"/g\"\nrunroot = \"/r\"\n");
        let path = file.path().to_str().unwrap();
        let dirs = with(&[("CONTAINERS_STORAGE_CONF", path)], 0, None, None).unwrap();
        assert_eq!(dirs, Dirs { root: "/g".into(), runroot: "/r".into() });
        let dirs = with(
            &[("CONTAINERS_STORAGE_CONF", path)],
            0,
            Some(Path::new("/flag")),
            Some(Path::new("/flagrun")),
        )
        .unwrap();
        assert_eq!(dirs, Dirs { root: "/flag".into(), runroot: "/flagrun".into() });
    }

    #[test]
    fn rootless_storage_path_is_expanded_for_users_only() {
        let file =
            conf("[storage]\nrunroot = \"/r\"\nrootless_storage_path = \"$HOME/s/${USER}/$UID\"\n");
        let path = file.path().to_str().unwrap();
        let vars = [("CONTAINERS_STORAGE_CONF", path), ("HOME", "/home/a")];
        let dirs = with(&vars, 1000, None, None).unwrap();
        assert_eq!(dirs.root, Path::new("/home/a/s/alice/1000"));
        assert_eq!(dirs.runroot, Path::new("/r"));
        // Root ignores it.
        assert_eq!(with(&vars, 0, None, None).unwrap().root, Path::new("/var/lib/berth"));
        // graphroot in the file wins over it.
        let file = conf("[storage]\ngraphroot = \"/g\"\nrootless_storage_path = \"/s\"\n");
        let vars = [("CONTAINERS_STORAGE_CONF", file.path().to_str().unwrap())];
        assert_eq!(with(&vars, 1000, None, None).unwrap().root, Path::new("/g"));
    }

    #[test]
    fn bad_files_name_themselves() {
        let err = with(&[("CONTAINERS_STORAGE_CONF", "/nonexistent/storage.conf")], 0, None, None)
            .unwrap_err();
        assert_eq!(err.to_string(), "reading CONTAINERS_STORAGE_CONF /nonexistent/storage.conf");
        let file = conf("[storage]\ngraphroot = \"relative/dir\"\n");
        let path = file.path().to_str().unwrap();
        let err = with(&[("CONTAINERS_STORAGE_CONF", path)], 0, None, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{path}: graphroot \"relative/dir\" is not an absolute path")
        );
        let file = conf("[storage\n");
        let path = file.path().to_str().unwrap();
        let err = with(&[("CONTAINERS_STORAGE_CONF", path)], 0, None, None).unwrap_err();
        assert!(err.to_string().starts_with(&format!("parsing CONTAINERS_STORAGE_CONF {path}")));
    }
}
