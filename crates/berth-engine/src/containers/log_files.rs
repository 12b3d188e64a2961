//! Log drivers and log rotation: `--log-driver k8s-file|json-file|none` and
//! `--log-opt max-size=SIZE,max-file=N,path=FILE`.
//!
//! - `k8s-file` (the default) is conmon's format ([`super::logs`]).
//! - `json-file` is Docker's: one JSON object per entry, `{"log":"TEXT\n","stream":"stdout",
//!   "time":"RFC 3339 nanoseconds"}`; an entry whose text does not end in a newline is a part
//!   of a line the next entry of the stream goes on with.
//! - `none` keeps nothing, and `logs` refuses the container with Podman's message.
//!
//! Rotation happens in the monitor's write path: before an entry would take the file past
//! `max-size`, FILE becomes FILE.1 (FILE.1 becomes FILE.2 and so on), the oldest beyond
//! `max-file` files is deleted, and a new FILE is begun. An entry is never split between two
//! files. With `max-file=1` (Docker's default) the file is simply begun again.
//!
//! Reading ([`RotatedFiles`]) starts at the oldest file and moves to the next newer one by
//! inode, not by name, so a reader following a log (`logs -f`) that is rotated under it
//! finishes the file it had open (now FILE.1) before it takes up the new FILE, and loses no
//! line unless more than `max-file` rotations happen between two of its reads.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::logs::{LogEntry, Stream};
use crate::state::Timestamp;

/// Errors of `--log-driver` and `--log-opt`.
#[derive(Debug, thiserror::Error)]
pub enum LogConfigError {
    #[error("invalid --log-driver {value:?}: the drivers are k8s-file, json-file and none")]
    UnknownDriver { value: String },
    #[error("invalid --log-opt {value:?}: expected KEY=VALUE (max-size, max-file, path)")]
    BadOption { value: String },
    #[error("invalid --log-opt {value:?}: unknown option {key:?} (max-size, max-file, path)")]
    UnknownOption { value: String, key: String },
    #[error(transparent)]
    BadSize(crate::spec::resources::ResourceError),
    #[error("invalid --log-opt {value:?}: max-size must be at least 1 KiB")]
    SizeTooSmall { value: String },
    #[error("invalid --log-opt {value:?}: max-file must be a whole number ≥ 1")]
    BadFileCount { value: String },
    #[error("invalid --log-opt {value:?}: the path must be absolute")]
    RelativePath { value: String },
    #[error("--log-opt {key} cannot be used with --log-driver none")]
    OptionWithNone { key: String },
}

/// Where and how a container's output is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogDriver {
    #[default]
    K8sFile,
    JsonFile,
    None,
}

impl LogDriver {
    pub fn name(self) -> &'static str {
        match self {
            Self::K8sFile => "k8s-file",
            Self::JsonFile => "json-file",
            Self::None => "none",
        }
    }
}

/// A container's log settings, as resolved at create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LogConfig {
    pub driver: LogDriver,
    /// `path=`: the log file instead of the one in the userdata directory.
    pub path: Option<PathBuf>,
    /// `max-size=`: bytes a file may reach before it is rotated; no limit when `None`.
    pub max_size: Option<u64>,
    /// `max-file=`: how many files (the live one included) are kept.
    pub max_file: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { driver: LogDriver::K8sFile, path: None, max_size: None, max_file: 1 }
    }
}

/// Podman's words when `logs` meets a container with the `none` driver.
pub const NONE_DRIVER_MESSAGE: &str =
    "this container is using the 'none' log driver, cannot read logs: this container is not \
     logging output";

impl LogConfig {
    /// Parses `--log-driver` and the `--log-opt` values (each `KEY=VALUE`, or several joined
    /// with commas).
    pub fn parse(driver: Option<&str>, opts: &[String]) -> Result<Self, LogConfigError> {
        let driver = match driver.unwrap_or("k8s-file") {
            "k8s-file" | "" => LogDriver::K8sFile,
            "json-file" => LogDriver::JsonFile,
            "none" => LogDriver::None,
            other => return Err(LogConfigError::UnknownDriver { value: other.to_owned() }),
        };
        let mut config = Self { driver, ..Self::default() };
        for opt in opts.iter().flat_map(|o| o.split(',')).filter(|o| !o.is_empty()) {
            let (key, value) = opt
                .split_once('=')
                .ok_or_else(|| LogConfigError::BadOption { value: opt.to_owned() })?;
            if driver == LogDriver::None {
                return Err(LogConfigError::OptionWithNone { key: key.to_owned() });
            }
            match key {
                "max-size" => {
                    let size = crate::spec::resources::parse_size("--log-opt max-size", value)
                        .map_err(LogConfigError::BadSize)?;
                    if size < 1024 {
                        return Err(LogConfigError::SizeTooSmall { value: opt.to_owned() });
                    }
                    config.max_size = Some(size as u64);
                }
                "max-file" => {
                    config.max_file =
                        value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                            LogConfigError::BadFileCount { value: opt.to_owned() }
                        })?;
                }
                "path" => {
                    if !value.starts_with('/') {
                        return Err(LogConfigError::RelativePath { value: opt.to_owned() });
                    }
                    config.path = Some(PathBuf::from(value));
                }
                _ => {
                    return Err(LogConfigError::UnknownOption {
                        value: opt.to_owned(),
                        key: key.to_owned(),
                    })
                }
            }
        }
        Ok(config)
    }

    /// The rotation, if a size limit was set.
    pub fn rotation(&self) -> Option<Rotation> {
        self.max_size.map(|max_size| Rotation { max_size, max_file: self.max_file.max(1) })
    }

    /// `inspect`'s HostConfig.LogConfig.Size: the limit with Podman's units, `0B` for none.
    pub fn size_label(&self) -> String {
        match self.max_size {
            None => "0B".to_owned(),
            Some(n) => {
                let units = ["B", "KiB", "MiB", "GiB", "TiB"];
                let mut value = n as f64;
                let mut unit = 0;
                while value >= 1024.0 && unit < units.len() - 1 {
                    value /= 1024.0;
                    unit += 1;
                }
                let text = format!("{value:.2}");
                let text = text.trim_end_matches('0').trim_end_matches('.');
                format!("{text}{}", units[unit])
            }
        }
    }
}

/// When and how far a log is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_size: u64,
    /// Files kept, the live one included (≥ 1).
    pub max_file: u32,
}

/// `FILE.N`, the Nth rotated file of `path` (0 is the live file).
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_owned();
    }
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Shifts `path`'s files one place back (`FILE` → `FILE.1` → `FILE.2`...), dropping what would
/// be file number `max_file`; with `max_file` 1 the live file is removed. The caller opens a
/// new `FILE` afterwards.
pub fn rotate(path: &Path, max_file: u32) -> io::Result<()> {
    let ignore_missing = |r: io::Result<()>| match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    if max_file <= 1 {
        return ignore_missing(fs::remove_file(path));
    }
    ignore_missing(fs::remove_file(rotated_path(path, max_file - 1)))?;
    for n in (0..max_file - 1).rev() {
        ignore_missing(fs::rename(rotated_path(path, n), rotated_path(path, n + 1)))?;
    }
    Ok(())
}

/// The json-file form of one entry.
#[derive(Debug, Serialize, Deserialize)]
struct JsonEntry {
    log: String,
    stream: String,
    time: String,
}

/// Appends the json-file lines for `bytes` written to `stream` at `time`: one per finished
/// line (its text ending in `\n`) and one for a trailing unfinished part.
pub fn encode_json(out: &mut Vec<u8>, stream: Stream, bytes: &[u8], time: Timestamp) {
    let time = time.to_rfc3339_nanos();
    for part in bytes.split_inclusive(|b| *b == b'\n') {
        let entry = JsonEntry {
            log: String::from_utf8_lossy(part).into_owned(),
            stream: stream.as_str().to_owned(),
            time: time.clone(),
        };
        if let Ok(line) = serde_json::to_vec(&entry) {
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
    }
}

/// Parses one json-file line (without its newline) into an entry.
pub fn parse_json(line: &[u8]) -> Option<LogEntry> {
    let entry: JsonEntry = serde_json::from_slice(line).ok()?;
    let stream = match entry.stream.as_str() {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let time = Timestamp::parse_rfc3339(&entry.time)?;
    let mut text = entry.log.into_bytes();
    let partial = text.last() != Some(&b'\n');
    if !partial {
        text.pop();
    }
    Some(LogEntry { time, stream, partial, text })
}

/// A log and its rotated files, read oldest first as one stream of bytes.
#[derive(Debug)]
pub struct RotatedFiles {
    path: PathBuf,
    max_file: u32,
    current: Option<(File, u64)>,
}

impl RotatedFiles {
    /// The log at `path` with up to `max_file` files. Fails with NotFound when none exists.
    pub fn open(path: &Path, max_file: u32) -> io::Result<Self> {
        let mut files = Self { path: path.to_owned(), max_file: max_file.max(1), current: None };
        if files.chain().is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no log file"));
        }
        files.current = files.open_oldest();
        Ok(files)
    }

    /// The inodes of the files there now, oldest first.
    fn chain(&self) -> Vec<(u32, u64)> {
        (0..self.max_file)
            .rev()
            .filter_map(|n| fs::metadata(rotated_path(&self.path, n)).ok().map(|m| (n, m.ino())))
            .collect()
    }

    fn open_file(&self, n: u32) -> Option<(File, u64)> {
        let file = File::open(rotated_path(&self.path, n)).ok()?;
        let ino = file.metadata().ok()?.ino();
        Some((file, ino))
    }

    fn open_oldest(&self) -> Option<(File, u64)> {
        self.chain().into_iter().find_map(|(n, _)| self.open_file(n))
    }

    /// Appends what was written since the last call to `out`, crossing into newer files.
    pub fn read_new(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        // Each pass moves one file newer; more than max_file + 1 passes means a writer
        // rotating faster than we read: stop here, the next call goes on.
        for _ in 0..=self.max_file {
            if self.current.is_none() {
                self.current = self.open_oldest();
            }
            let Some((file, ino)) = self.current.as_mut() else { return Ok(()) };
            file.read_to_end(out)?;
            let ino = *ino;
            let chain = self.chain();
            let next = match chain.iter().position(|(_, i)| *i == ino) {
                Some(p) if p + 1 == chain.len() => return Ok(()),
                Some(p) => Some(chain[p + 1].0),
                // Ours was rotated away (or begun again): the oldest file there is next.
                None => chain.first().map(|(n, _)| *n),
            };
            // A newer file exists, so the writer has finished with ours: read its last bytes.
            if let Some((file, _)) = self.current.as_mut() {
                file.read_to_end(out)?;
            }
            self.current = next.and_then(|n| self.open_file(n));
        }
        Ok(())
    }

    /// Starts again at the oldest file.
    pub fn rewind(&mut self) {
        self.current = self.open_oldest();
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use super::*;

    #[test]
    fn drivers_and_options_parse_and_bad_values_say_why() {
        let c = LogConfig::parse(None, &[]).unwrap();
        assert_eq!((c.driver, c.max_size, c.max_file), (LogDriver::K8sFile, None, 1));
        let c = LogConfig::parse(Some("json-file"), &["max-size=10m,max-file=3".into()]).unwrap();
        assert_eq!(c.driver, LogDriver::JsonFile);
        assert_eq!(c.rotation(), Some(Rotation { max_size: 10 << 20, max_file: 3 }));
        assert_eq!(c.size_label(), "10MiB");
        let c = LogConfig::parse(None, &["path=/var/log/x.log".into()]).unwrap();
        assert_eq!(c.path.as_deref(), Some(Path::new("/var/log/x.log")));
        let err =
            |d: Option<&str>, o: &str| LogConfig::parse(d, &[o.into()]).unwrap_err().to_string();
        assert_eq!(
            err(Some("journald"), ""),
            "invalid --log-driver \"journald\": the drivers are k8s-file, json-file and none"
        );
        assert!(err(None, "max-size=12x").starts_with("invalid --log-opt max-size \"12x\""));
        assert!(err(None, "max-file=0").contains("max-file must be"));
        assert!(err(None, "colour=blue").contains("unknown option \"colour\""));
        assert!(err(None, "path=rel.log").contains("absolute"));
        assert!(err(Some("none"), "max-size=1m").contains("--log-driver none"));
    }

    #[test]
    fn json_file_lines_are_dockers_and_read_back() {
        let mut out = Vec::new();
        let t = Timestamp(1_796_293_574_500_000_000);
        encode_json(&mut out, Stream::Stderr, b"a \"q\"\nrest", t);
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            "{\"log\":\"a \\\"q\\\"\\n\",\"stream\":\"stderr\",\"time\":\"2026-12-03T10:26:14.5Z\"}\n\
             {\"log\":\"rest\",\"stream\":\"stderr\",\"time\":\"2026-12-03T10:26:14.5Z\"}\n"
        );
        let entries: Vec<LogEntry> =
            text.lines().filter_map(|l| parse_json(l.as_bytes())).collect();
        assert_eq!(entries[0].text, b"a \"q\"");
        assert!(!entries[0].partial && entries[1].partial);
        assert_eq!((entries[1].time, entries[1].stream), (t, Stream::Stderr));
    }

    #[test]
    fn rotation_keeps_at_most_max_file_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        for round in 0..6 {
            fs::write(&path, format!("{round}\n")).unwrap();
            rotate(&path, 3).unwrap();
        }
        assert!(!path.exists());
        assert_eq!(fs::read_to_string(rotated_path(&path, 1)).unwrap(), "5\n");
        assert_eq!(fs::read_to_string(rotated_path(&path, 2)).unwrap(), "4\n");
        assert!(!rotated_path(&path, 3).exists());
        fs::write(&path, "x").unwrap();
        rotate(&path, 1).unwrap();
        assert!(!path.exists());
    }

    // The writer's side: a burst of output larger than max-size is split at entries, no file
    // grows past max-size, at most max-file files stay, and reading them gives the kept lines
    // in order (json-file and k8s-file alike).
    #[test]
    fn the_writer_rotates_at_entries_and_the_reader_joins_the_files() {
        use crate::containers::logs::{LogReader, LogWriter};
        for driver in [LogDriver::K8sFile, LogDriver::JsonFile] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ctr.log");
            let config = LogConfig { driver, max_size: Some(2048), max_file: 4, path: None };
            let mut writer = LogWriter::open_with(&path, &config).unwrap();
            let burst: String = (0..200).map(|n| format!("line-{n}\n")).collect();
            writer.write(Stream::Stdout, burst.as_bytes(), Timestamp(1)).unwrap();
            writer.write(Stream::Stdout, b"last\n", Timestamp(2)).unwrap();
            for n in 0..4 {
                let len = fs::metadata(rotated_path(&path, n)).unwrap().len();
                assert!(len <= 2048, "{driver:?}: file {n} has {len} bytes");
            }
            assert!(!rotated_path(&path, 4).exists());
            let lines = LogReader::open_with(&path, &config).unwrap().read_new(true).unwrap();
            let texts: Vec<String> =
                lines.iter().map(|l| String::from_utf8_lossy(&l.text).into_owned()).collect();
            assert_eq!(texts.last().unwrap(), "last");
            let first: usize = texts[0].strip_prefix("line-").unwrap().parse().unwrap();
            assert!(first > 0, "{driver:?}: the oldest lines were rotated away");
            let expected: Vec<String> = (first..200).map(|n| format!("line-{n}")).collect();
            assert_eq!(&texts[..texts.len() - 1], &expected[..], "{driver:?}");
        }
    }

    // A reader that has the live file open when it is rotated finishes that file, then goes
    // on with the new one: every byte once, in order.
    #[test]
    fn a_following_reader_crosses_rotations_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let append = |text: &str| {
            use std::io::Write;
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        };
        append("a\n");
        let mut reader = RotatedFiles::open(&path, 3).unwrap();
        let mut seen = Vec::new();
        reader.read_new(&mut seen).unwrap();
        append("b\n");
        rotate(&path, 3).unwrap();
        append("c\n");
        rotate(&path, 3).unwrap();
        append("d\n");
        reader.read_new(&mut seen).unwrap();
        append("e\n");
        reader.read_new(&mut seen).unwrap();
        assert_eq!(String::from_utf8(seen).unwrap(), "a\nb\nc\nd\ne\n");
        // A fresh reader starts at the oldest file kept.
        let mut all = Vec::new();
        RotatedFiles::open(&path, 3).unwrap().read_new(&mut all).unwrap();
        assert_eq!(String::from_utf8(all).unwrap(), "a\nb\nc\nd\ne\n");
        rotate(&path, 3).unwrap();
        append("f\n");
        let mut kept = Vec::new();
        RotatedFiles::open(&path, 3).unwrap().read_new(&mut kept).unwrap();
        assert_eq!(String::from_utf8(kept).unwrap(), "c\nd\ne\nf\n", "the oldest file went");
        assert!(RotatedFiles::open(&dir.path().join("none.log"), 3).is_err());
    }
}
