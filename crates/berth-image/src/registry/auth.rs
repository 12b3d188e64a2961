//! Credentials and authentication challenges.
//!
//! Credentials live in containers-auth.json files (containers-auth.json(5)): `--authfile` or
//! REGISTRY_AUTH_FILE when given, else `${XDG_RUNTIME_DIR}/containers/auth.json` (written by
//! `login`, mode 0600), then `$XDG_CONFIG_HOME/containers/auth.json` and
//! `~/.docker/config.json` (read only). A credential is never printed or logged: [`Secret`]
//! has no Debug or Display of its content.
//!
//! Challenges are the `WWW-Authenticate` header of a 401 (RFC 7235): `Basic realm=…` or
//! `Bearer realm=…,service=…,scope=…` as the distribution spec's token auth uses.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading credentials from {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parsing credentials in {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing credentials to {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no auth file location: set XDG_RUNTIME_DIR or use --authfile")]
    NoLocation,
    #[error("not logged into {0}")]
    NotLoggedIn(String),
}

/// A password or token. Its content is reachable only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A user name and password for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

impl Credentials {
    /// The `Authorization: Basic …` value.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password.expose());
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(flatten)]
    extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(flatten)]
    extra: BTreeMap<String, serde_json::Value>,
}

/// Where credentials are looked up and stored.
#[derive(Debug, Clone, Default)]
pub struct AuthFiles {
    /// `--authfile` or REGISTRY_AUTH_FILE: the only file used when set.
    pub explicit: Option<PathBuf>,
}

impl AuthFiles {
    /// From `--authfile`, falling back to REGISTRY_AUTH_FILE.
    pub fn new(authfile: Option<&Path>) -> Self {
        let explicit = authfile
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("REGISTRY_AUTH_FILE").map(PathBuf::from));
        Self { explicit }
    }

    /// The file `login` writes.
    pub fn write_path(&self) -> Result<PathBuf, AuthError> {
        if let Some(path) = &self.explicit {
            return Ok(path.clone());
        }
        let runtime = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                let uid = crate::host::uid();
                let dir = PathBuf::from(format!("/run/user/{uid}"));
                dir.is_dir().then_some(dir)
            })
            .ok_or(AuthError::NoLocation)?;
        Ok(runtime.join("containers/auth.json"))
    }

    /// Every file read, in order of precedence.
    pub fn read_paths(&self) -> Vec<PathBuf> {
        if let Some(path) = &self.explicit {
            return vec![path.clone()];
        }
        let mut paths = Vec::new();
        if let Ok(path) = self.write_path() {
            paths.push(path);
        }
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".config")));
        if let Some(config) = config {
            paths.push(config.join("containers/auth.json"));
        }
        if let Some(home) = home {
            paths.push(home.join(".docker/config.json"));
        }
        paths
    }

    /// The credentials for `registry` (`host[:port]`), from the first file that has them.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>, AuthError> {
        for path in self.read_paths() {
            let Some(file) = read_file(&path)? else { continue };
            for key in keys_for(registry) {
                if let Some(entry) = file.auths.get(&key) {
                    if let Some(credentials) = entry.auth.as_deref().and_then(decode) {
                        return Ok(Some(credentials));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Stores `credentials` for `registry` in the write file, created with mode 0600.
    pub fn store(&self, registry: &str, credentials: &Credentials) -> Result<PathBuf, AuthError> {
        let path = self.write_path()?;
        let mut file = read_file(&path)?.unwrap_or_default();
        let raw = format!("{}:{}", credentials.username, credentials.password.expose());
        let entry = file.auths.entry(registry.to_owned()).or_default();
        entry.auth = Some(base64::engine::general_purpose::STANDARD.encode(raw));
        write_file(&path, &file)?;
        Ok(path)
    }

    /// Removes the credentials for `registry` (all registries with `None`).
    pub fn remove(&self, registry: Option<&str>) -> Result<(), AuthError> {
        let path = self.write_path()?;
        let mut file = read_file(&path)?.unwrap_or_default();
        match registry {
            Some(registry) => {
                if file.auths.remove(registry).is_none() {
                    return Err(AuthError::NotLoggedIn(registry.to_owned()));
                }
            }
            None => file.auths.clear(),
        }
        write_file(&path, &file)
    }
}

/// The keys a registry's credentials may be under: `host:port`, and for Docker Hub the
/// historical `https://index.docker.io/v1/`.
fn keys_for(registry: &str) -> Vec<String> {
    let mut keys =
        vec![registry.to_owned(), format!("https://{registry}"), format!("http://{registry}")];
    if registry == "docker.io" {
        keys.push("https://index.docker.io/v1/".to_owned());
        keys.push("index.docker.io".to_owned());
    }
    keys
}

fn decode(auth: &str) -> Option<Credentials> {
    let raw = base64::engine::general_purpose::STANDARD.decode(auth.trim()).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (username, password) = raw.split_once(':')?;
    Some(Credentials { username: username.to_owned(), password: Secret::new(password) })
}

fn read_file(path: &Path) -> Result<Option<AuthFile>, AuthError> {
    match fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Some(AuthFile::default())),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| AuthError::Parse { path: path.to_path_buf(), source }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuthError::Read { path: path.to_path_buf(), source }),
    }
}

fn write_file(path: &Path, file: &AuthFile) -> Result<(), AuthError> {
    let write_err = |source| AuthError::Write { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(write_err)?;
    let temp = dir.join(format!(".auth.json.{}", std::process::id()));
    let json = serde_json::to_vec_pretty(file).map_err(|e| write_err(e.into()))?;
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(write_err)?;
    out.write_all(&json).map_err(write_err)?;
    out.set_permissions(fs::Permissions::from_mode(0o600)).map_err(write_err)?;
    out.sync_all().map_err(write_err)?;
    fs::rename(&temp, path).map_err(write_err)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic { realm: Option<String> },
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

impl Challenge {
    /// Parses the first challenge of a header value; None for schemes berth does not speak.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let params = parse_params(rest);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Self::Basic { realm: params.get("realm").cloned() }),
            "bearer" => Some(Self::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            }),
            _ => None,
        }
    }
}

/// `key=value, key="quoted, value"` pairs.
fn parse_params(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_owned();
        }
        out.insert(key.trim().to_ascii_lowercase(), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="x""#),
            Some(Challenge::Basic { realm: Some("x".into()) })
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
    }

    // login's file is 0600 and in the containers-auth.json format; logout removes the entry.
    #[test]
    fn stores_and_finds_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let files = AuthFiles { explicit: Some(dir.path().join("sub/auth.json")) };
        let creds = Credentials { username: "u".into(), password: Secret::new("p:w") };
        let path = files.store("127.0.0.1:5000", &creds).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["auths"]["127.0.0.1:5000"]["auth"], "dTpwOnc=");
        assert_eq!(files.lookup("127.0.0.1:5000").unwrap(), Some(creds));
        assert!(!format!("{:?}", files.lookup("127.0.0.1:5000").unwrap()).contains("p:w"));
        files.remove(Some("127.0.0.1:5000")).unwrap();
        assert_eq!(files.lookup("127.0.0.1:5000").unwrap(), None);
        assert!(matches!(files.remove(Some("other")), Err(AuthError::NotLoggedIn(_))));
    }
}
