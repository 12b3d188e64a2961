//! Build arguments and the scopes names are looked up in while a Dockerfile is expanded.
//!
//! The rules are Docker's (reference, "ARG" and "Predefined ARGs"):
//! - ARGs before the first FROM are global: usable in FROM lines only, unless a stage
//!   re-declares them with `ARG NAME` (then the stage sees the global value);
//! - an ARG in a stage is visible from its declaration to the end of that stage; its value
//!   is the `--build-arg` one if given, else its default, else the global one;
//! - an ENV of the same name always wins over an ARG;
//! - the platform args (BUILDPLATFORM, TARGETOS, …) are set in the global scope by
//!   themselves and in a stage once declared there; `--build-arg` does not change them;
//! - the proxy args (HTTP_PROXY, …) reach RUN's environment from `--build-arg` without a
//!   declaration, and stay out of the cache key and the history unless declared.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The platform args, in the order Docker documents them.
pub const PLATFORM_ARGS: [&str; 8] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
];

/// The proxy args, usable without an ARG.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Why a build argument or a platform was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("invalid platform {0:?}: expected os/arch[/variant]")]
    ParsePlatform(String),
    #[error("invalid build argument {0:?}: the name is empty")]
    ParseBuildArg(String),
}

/// A platform as `os/arch[/variant]`, for the platform args.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's platform in OCI names.
    pub fn host() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Self {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
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

impl FromStr for Platform {
    type Err = ArgsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid =
            |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match parts.as_slice() {
            [os, arch] if valid(os) && valid(arch) => {
                Ok(Self { os: (*os).to_owned(), architecture: (*arch).to_owned(), variant: None })
            }
            [os, arch, variant] if valid(os) && valid(arch) && valid(variant) => Ok(Self {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: Some((*variant).to_owned()),
            }),
            _ => Err(ArgsError::ParsePlatform(s.to_owned())),
        }
    }
}

/// The values of the platform args for one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platforms {
    pub build: Platform,
    pub target: Platform,
}

impl Default for Platforms {
    fn default() -> Self {
        Self { build: Platform::host(), target: Platform::host() }
    }
}

impl Platforms {
    /// The value of one of [`PLATFORM_ARGS`], or None for any other name.
    pub fn value(&self, name: &str) -> Option<String> {
        let (platform, part) = match name.strip_prefix("BUILD") {
            Some(part) => (&self.build, part),
            None => (&self.target, name.strip_prefix("TARGET")?),
        };
        match part {
            "PLATFORM" => Some(platform.to_string()),
            "OS" => Some(platform.os.clone()),
            "ARCH" => Some(platform.architecture.clone()),
            "VARIANT" => Some(platform.variant.clone().unwrap_or_default()),
            _ => None,
        }
    }
}

/// The `--build-arg` values of a build.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildArgs {
    values: BTreeMap<String, String>,
}

impl BuildArgs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.values.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Adds one `--build-arg` as given on the command line: `NAME=VALUE`, or `NAME` to take
    /// the value from `environment` (skipped when it is not set there, as Docker does).
    pub fn add_flag(
        &mut self,
        flag: &str,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ArgsError> {
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (flag, environment(flag)),
        };
        if name.is_empty() {
            return Err(ArgsError::ParseBuildArg(flag.to_owned()));
        }
        if let Some(value) = value {
            self.values.insert(name.to_owned(), value);
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The proxy args that were given, for RUN's environment.
    pub fn proxies(&self) -> Vec<(String, String)> {
        PROXY_ARGS
            .iter()
            .filter_map(|name| self.values.get(*name).map(|v| ((*name).to_owned(), v.clone())))
            .collect()
    }
}

/// Where a name's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Env,
    Arg,
}

/// The names visible at one point of a stage: its environment (from the base image and
/// ENV) and its declared ARGs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    /// In order of first definition, names unique.
    env: Vec<(String, String)>,
    /// Declared ARGs; None when declared without any value.
    args: BTreeMap<String, Option<String>>,
}

impl Scope {
    pub fn with_env(env: Vec<(String, String)>) -> Self {
        let mut scope = Self::default();
        for (k, v) in env {
            scope.set_env(&k, &v);
        }
        scope
    }

    pub fn set_env(&mut self, name: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => entry.1 = value.to_owned(),
            None => self.env.push((name.to_owned(), value.to_owned())),
        }
    }

    pub fn declare_arg(&mut self, name: &str, value: Option<String>) {
        self.args.insert(name.to_owned(), value);
    }

    /// A name's value and where it came from; ENV wins over ARG.
    pub fn lookup(&self, name: &str) -> Option<(&str, Origin)> {
        if let Some((_, v)) = self.env.iter().find(|(k, _)| k == name) {
            return Some((v, Origin::Env));
        }
        match self.args.get(name) {
            Some(Some(v)) => Some((v, Origin::Arg)),
            _ => None,
        }
    }

    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The ARGs with a value that no ENV hides: what RUN adds to its environment, and what
    /// RUN's cache key depends on.
    pub fn effective_args(&self) -> BTreeMap<String, String> {
        self.args
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .filter(|(k, _)| !self.env.iter().any(|(e, _)| e == k))
            .collect()
    }
}

/// True for a name whose value probably should not end up in an image's history.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["PASSWORD", "PASSWD", "TOKEN", "SECRET", "KEY"].iter().any(|word| {
        upper.split(|c: char| !c.is_ascii_alphanumeric()).any(|part| part.contains(word))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_args() {
        let p = Platforms {
            build: "linux/amd64".parse().unwrap(),
            target: "linux/arm/v7".parse().unwrap(),
        };
        assert_eq!(p.value("BUILDPLATFORM").as_deref(), Some("linux/amd64"));
        assert_eq!(p.value("BUILDVARIANT").as_deref(), Some(""));
        assert_eq!(p.value("TARGETPLATFORM").as_deref(), Some("linux/arm/v7"));
        assert_eq!(p.value("TARGETARCH").as_deref(), Some("arm"));
        assert_eq!(p.value("TARGETVARIANT").as_deref(), Some("v7"));
        assert_eq!(p.value("TARGETOS").as_deref(), Some("linux"));
        assert_eq!(p.value("TARGETFOO"), None);
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//x".parse::<Platform>().is_err());
    }

    #[test]
    fn build_arg_flags() {
        let mut args = BuildArgs::new();
        let env = |n: &str| (n == "FROM_ENV").then(|| "e".to_owned());
        args.add_flag("A=1=2", &env).unwrap();
        args.add_flag("FROM_ENV", &env).unwrap();
        args.add_flag("NOT_IN_ENV", &env).unwrap();
        args.add_flag("EMPTY=", &env).unwrap();
        assert_eq!(args.get("A"), Some("1=2"));
        assert_eq!(args.get("FROM_ENV"), Some("e"));
        assert_eq!(args.get("NOT_IN_ENV"), None);
        assert_eq!(args.get("EMPTY"), Some(""));
        assert!(args.add_flag("=x", &env).is_err());
    }

    #[test]
    fn env_wins_over_arg() {
        let mut scope = Scope::default();
        scope.declare_arg("V", Some("arg".into()));
        scope.declare_arg("ONLY_ARG", Some("a".into()));
        scope.declare_arg("NO_VALUE", None);
        assert_eq!(scope.lookup("V"), Some(("arg", Origin::Arg)));
        scope.set_env("V", "env");
        assert_eq!(scope.lookup("V"), Some(("env", Origin::Env)));
        assert_eq!(scope.lookup("NO_VALUE"), None);
        let effective: Vec<_> = scope.effective_args().into_iter().collect();
        assert_eq!(effective, vec![("ONLY_ARG".to_owned(), "a".to_owned())]);
    }

    #[test]
    fn secret_looking_names() {
        for name in ["DB_PASSWORD", "GITHUB_TOKEN", "aws_secret_access_key", "API_KEY", "SSH_KEY"] {
            assert!(looks_secret(name), "{name}");
        }
        for name in ["VERSION", "PATH", "HOME", "PYTHONUNBUFFERED"] {
            assert!(!looks_secret(name), "{name}");
        }
    }
}
