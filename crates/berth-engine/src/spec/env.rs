//! The container's environment, built in Docker's order: the image's Env, then each
//! `--env-file` in turn, then `-e`; a later entry for a name replaces the earlier value in
//! place. Then the defaults fill in what is still missing: PATH, TERM=xterm with `-t`, HOME
//! from the user's passwd entry, HOSTNAME, and `container=berth` (Podman sets
//! `container=podman`; tools such as systemd read it to know they are in a container).
//!
//! An env file holds one `KEY=VALUE` per line; `KEY` alone takes the value from berth's own
//! environment (and is dropped when unset there), blank lines and lines starting with `#` are
//! skipped, and leading whitespace is ignored, as Docker reads them. `-e` also takes
//! `PREFIX*`, which copies every variable of berth's environment whose name starts with PREFIX.

use std::fs;
use std::path::Path;

use super::SpecError;

/// The PATH a container gets when its image sets none (Docker's and Podman's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An ordered environment with unique names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    entries: Vec<(String, String)>,
}

impl Environment {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Sets `key`, replacing an earlier value where it stood.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_owned(),
            None => self.entries.push((key.to_owned(), value.to_owned())),
        }
    }

    /// Sets `key` only if it is not set yet.
    pub fn set_default(&mut self, key: &str, value: &str) {
        if self.get(key).is_none() {
            self.entries.push((key.to_owned(), value.to_owned()));
        }
    }

    /// Adds the image's `KEY=VALUE` entries (an entry without `=` is taken as an empty value,
    /// as Docker does with a malformed image).
    pub fn extend_from_image(&mut self, image_env: &[String]) {
        for entry in image_env {
            let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
            if !key.is_empty() {
                self.set(key, value);
            }
        }
    }

    /// Adds one `-e` value.
    pub fn add_flag(
        &mut self,
        entry: &str,
        host_env: &dyn Fn(&str) -> Option<String>,
        host_vars: &dyn Fn() -> Vec<(String, String)>,
    ) -> Result<(), SpecError> {
        let bad = |reason: &str| SpecError::EnvEntry {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        match entry.split_once('=') {
            Some(("", _)) => return Err(bad("the name is empty")),
            Some((key, value)) => {
                check_name(key).map_err(|reason| bad(&reason))?;
                self.set(key, value);
            }
            None => {
                if let Some(prefix) = entry.strip_suffix('*') {
                    check_name(prefix).map_err(|reason| bad(&reason))?;
                    for (key, value) in host_vars() {
                        if key.starts_with(prefix) {
                            self.set(&key, &value);
                        }
                    }
                } else {
                    if entry.is_empty() {
                        return Err(bad("the name is empty"));
                    }
                    check_name(entry).map_err(|reason| bad(&reason))?;
                    if let Some(value) = host_env(entry) {
                        self.set(entry, &value);
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds the entries of env file `path`.
    pub fn add_file(
        &mut self,
        path: &Path,
        host_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), SpecError> {
        let text = fs::read(path)
            .map_err(|source| SpecError::ReadEnvFile { path: path.to_owned(), source })?;
        let text = String::from_utf8(text).map_err(|_| SpecError::EnvFileLine {
            path: path.to_owned(),
            line: 0,
            reason: "the file is not UTF-8".to_owned(),
        })?;
        for (index, raw) in text.lines().enumerate() {
            let bad = |reason: String| SpecError::EnvFileLine {
                path: path.to_owned(),
                line: index + 1,
                reason,
            };
            let line = raw.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once('=') {
                Some(("", _)) => return Err(bad(format!("{raw:?} has no variable name"))),
                Some((key, value)) => {
                    check_name(key).map_err(bad)?;
                    self.set(key, value);
                }
                None => {
                    let key = line.trim_end();
                    check_name(key).map_err(bad)?;
                    if let Some(value) = host_env(key) {
                        self.set(key, &value);
                    }
                }
            }
        }
        Ok(())
    }

    /// `KEY=VALUE` strings for the spec.
    pub fn to_vec(&self) -> Vec<String> {
        self.entries.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// A variable name may hold anything but whitespace and `=` (Docker's rule; POSIX's is
/// stricter, but images use dots and dashes).
fn check_name(key: &str) -> Result<(), String> {
    if key.chars().any(char::is_whitespace) {
        Err(format!("variable {key:?} contains whitespace"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(key: &str) -> Option<String> {
        match key {
            "FROM_HOST" => Some("h".to_owned()),
            _ => None,
        }
    }

    fn host_vars() -> Vec<(String, String)> {
        vec![
            ("APP_A".into(), "1".into()),
            ("APP_B".into(), "2".into()),
            ("OTHER".into(), "3".into()),
        ]
    }

    #[test]
    fn later_sources_override_in_place() {
        let mut env = Environment::default();
        env.extend_from_image(&["PATH=/bin".into(), "A=image".into(), "B=image".into()]);
        let file = tempfile::NamedTempFile::new().unwrap();
        fs::write(file.path(), "# comment\n\n  A=file\nFROM_HOST\nUNSET_ON_HOST\nC=x=y\n").unwrap();
        env.add_file(file.path(), &host).unwrap();
        env.add_flag("B=flag", &host, &host_vars).unwrap();
        env.add_flag("APP_*", &host, &host_vars).unwrap();
        env.add_flag("UNSET_ON_HOST", &host, &host_vars).unwrap();
        assert_eq!(
            env.to_vec(),
            ["PATH=/bin", "A=file", "B=flag", "FROM_HOST=h", "C=x=y", "APP_A=1", "APP_B=2"]
        );
    }

    #[test]
    fn bad_env_file_lines_name_their_line() {
        let file = tempfile::NamedTempFile::new().unwrap();
        fs::write(file.path(), "GOOD=1\n# fine\nBAD NAME=2\n").unwrap();
        let err = Environment::default().add_file(file.path(), &host).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "env file {} line 3: variable \"BAD NAME\" contains whitespace",
                file.path().display()
            )
        );
        fs::write(file.path(), "=value\n").unwrap();
        let err = Environment::default().add_file(file.path(), &host).unwrap_err();
        assert!(err.to_string().ends_with("line 1: \"=value\" has no variable name"), "{err}");
        let err =
            Environment::default().add_file(Path::new("/nonexistent/env"), &host).unwrap_err();
        assert_eq!(err.to_string(), "reading env file /nonexistent/env");
    }

    #[test]
    fn bad_flags() {
        let mut env = Environment::default();
        assert!(env.add_flag("=x", &host, &host_vars).is_err());
        assert!(env.add_flag("", &host, &host_vars).is_err());
        assert!(env.add_flag("A B=1", &host, &host_vars).is_err());
    }
}
