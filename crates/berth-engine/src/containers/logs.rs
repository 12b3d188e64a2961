//! Container logs in the k8s-file format that conmon writes and `podman logs` reads:
//! one entry per line, `TIME STREAM TAG TEXT`, where TIME is RFC 3339 with nanoseconds,
//! STREAM is `stdout` or `stderr`, and TAG is `F` for a full line or `P` for a partial one
//! (output that did not end in a newline yet; the next entries continue it).
//!
//! [`LogWriter`] is the monitor's side: it appends whatever the container wrote, split at
//! newlines. [`LogReader`] is the `logs` side: it reads whole entries only and keeps an
//! unfinished last line for the next read, so `logs -f` following a growing file never loses
//! or repeats a line, wherever the writer's chunks happened to end. [`LogOptions`] applies
//! `--since`, `--until`, `--tail` and `-t`. Both speak json-file too and cross rotated files
//! (`--log-driver`, `--log-opt`: [`super::log_files`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::log_files::{self, LogConfig, LogDriver, RotatedFiles, Rotation};
use crate::state::Timestamp;

/// Errors of writing and reading logs.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("opening the log {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the log {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the log {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid {flag} {value:?}: expected a duration (10m, 1h30m), an RFC 3339 time or Unix seconds")]
    BadTime { flag: &'static str, value: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// One entry of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub time: Timestamp,
    pub stream: Stream,
    /// `P`: the line goes on in the next entry of the same stream.
    pub partial: bool,
    pub text: Vec<u8>,
}

impl LogEntry {
    /// Parses one line of the file (without its newline); `None` for a malformed line.
    pub fn parse(line: &[u8]) -> Option<Self> {
        let mut parts = line.splitn(4, |b| *b == b' ');
        let time = Timestamp::parse_rfc3339(std::str::from_utf8(parts.next()?).ok()?)?;
        let stream = match parts.next()? {
            b"stdout" => Stream::Stdout,
            b"stderr" => Stream::Stderr,
            _ => return None,
        };
        let partial = match parts.next()? {
            b"F" => false,
            b"P" => true,
            _ => return None,
        };
        Some(Self { time, stream, partial, text: parts.next().unwrap_or_default().to_vec() })
    }
}

/// The most bytes of entries [`LogWriter`] gathers before a write(2): the monitor's resident
/// set holds this buffer for as long as the container runs, so it stays small (output of
/// short lines grows about twentyfold into entries).
const WRITE_CHUNK: usize = 16 * 1024;

/// Appends a container's output to its log.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    /// json-file instead of k8s-file.
    json: bool,
    rotation: Option<Rotation>,
    /// Bytes in the live file.
    size: u64,
    /// Entries not yet written; reused, so its pages stay the same few.
    out: Vec<u8>,
}

impl LogWriter {
    /// A k8s-file log at `path`, never rotated.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        Self::open_with(path, &LogConfig::default())
    }

    /// The log at `path` in `config`'s format, rotated by its max-size and max-file.
    pub fn open_with(path: &Path, config: &LogConfig) -> Result<Self, LogError> {
        let file = Self::open_file(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path: path.to_owned(),
            file,
            json: config.driver == LogDriver::JsonFile,
            rotation: config.rotation(),
            size,
            out: Vec::with_capacity(WRITE_CHUNK),
        })
    }

    fn open_file(path: &Path) -> Result<File, LogError> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| LogError::Open { path: path.to_owned(), source })
    }

    /// Logs `bytes` the container wrote to `stream` at `time`: one `F` entry per finished
    /// line and a `P` entry for a trailing unfinished one. The entries of one call go out in
    /// writes of whole entries, up to [`WRITE_CHUNK`] bytes each (a longer entry in a write of
    /// its own) and one file unless it rotates, so a reader sees whole entries or the start of
    /// a long one that its next read completes.
    pub fn write(&mut self, stream: Stream, bytes: &[u8], time: Timestamp) -> Result<(), LogError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let written = self.write_entries(&mut out, stream, bytes, time);
        out.clear();
        self.out = out;
        written
    }

    fn write_entries(
        &mut self,
        out: &mut Vec<u8>,
        stream: Stream,
        bytes: &[u8],
        time: Timestamp,
    ) -> Result<(), LogError> {
        if self.json {
            log_files::encode_json(out, stream, bytes, time);
            return self.append(out);
        }
        let stamp = time.log_time();
        let stamp = stamp.as_bytes();
        let header = stamp.len() + 1 + stream.as_str().len() + 3;
        let mut rest = bytes;
        while !rest.is_empty() {
            let (line, partial, next) = match rest.iter().position(|b| *b == b'\n') {
                Some(end) => (&rest[..end], false, &rest[end + 1..]),
                None => (rest, true, &rest[rest.len()..]),
            };
            if !out.is_empty() && out.len() + header + line.len() + 1 > WRITE_CHUNK {
                self.append(out)?;
                out.clear();
            }
            out.extend_from_slice(stamp);
            out.push(b' ');
            out.extend_from_slice(stream.as_str().as_bytes());
            out.extend_from_slice(if partial { b" P " } else { b" F " });
            out.extend_from_slice(line);
            out.push(b'\n');
            rest = next;
        }
        self.append(out)
    }

    /// Writes whole entries (each ends in a newline). With rotation, as many entries as fit
    /// under max-size go into the live file and the file is rotated before the rest; an entry
    /// larger than max-size on its own fills a file by itself.
    fn append(&mut self, out: &[u8]) -> Result<(), LogError> {
        let write_err = |source| LogError::Write { path: self.path.clone(), source };
        let Some(rotation) = self.rotation else {
            self.file.write_all(out).map_err(write_err)?;
            self.size += out.len() as u64;
            return Ok(());
        };
        let mut rest = out;
        while !rest.is_empty() {
            let room = rotation.max_size.saturating_sub(self.size);
            let mut take = 0;
            for (i, _) in rest.iter().enumerate().filter(|(_, b)| **b == b'\n') {
                if (i + 1) as u64 > room {
                    break;
                }
                take = i + 1;
            }
            if take == 0 {
                if self.size > 0 {
                    log_files::rotate(&self.path, rotation.max_file).map_err(write_err)?;
                    self.file = Self::open_file(&self.path)?;
                    self.size = 0;
                    continue;
                }
                take = rest.iter().position(|b| *b == b'\n').map_or(rest.len(), |i| i + 1);
            }
            self.file.write_all(&rest[..take]).map_err(write_err)?;
            self.size += take as u64;
            rest = &rest[take..];
        }
        Ok(())
    }
}

/// Reads a log from the start, incrementally.
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    files: RotatedFiles,
    json: bool,
    /// Bytes after the last newline read so far: an entry still being written.
    pending: Vec<u8>,
    /// Partial entries waiting for the end of their line, per stream.
    open_line: [Option<(Timestamp, Vec<u8>)>; 2],
}

/// A line of output as `logs` shows it (partial entries joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub time: Timestamp,
    pub stream: Stream,
    pub text: Vec<u8>,
}

impl LogReader {
    /// A k8s-file log at `path`, without rotated files.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        Self::open_with(path, &LogConfig::default())
    }

    /// The log at `path` with `config`'s format and rotated files, oldest first.
    pub fn open_with(path: &Path, config: &LogConfig) -> Result<Self, LogError> {
        let files = RotatedFiles::open(path, config.max_file)
            .map_err(|source| LogError::Open { path: path.to_owned(), source })?;
        Ok(Self {
            path: path.to_owned(),
            files,
            json: config.driver == LogDriver::JsonFile,
            pending: Vec::new(),
            open_line: [None, None],
        })
    }

    /// The lines completed since the last call. A line whose end has not been written yet is
    /// kept for a later call; with `flush`, it is returned as it stands (the container has
    /// exited, nothing more will come).
    pub fn read_new(&mut self, flush: bool) -> Result<Vec<LogLine>, LogError> {
        let read = |source| LogError::Read { path: self.path.clone(), source };
        let mut chunk = Vec::new();
        self.files.read_new(&mut chunk).map_err(read)?;
        self.pending.extend_from_slice(&chunk);
        let mut out = Vec::new();
        let complete = match self.pending.iter().rposition(|b| *b == b'\n') {
            Some(end) => end + 1,
            None => 0,
        };
        let text: Vec<u8> = self.pending.drain(..complete).collect();
        for raw in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let entry = if self.json { log_files::parse_json(raw) } else { LogEntry::parse(raw) };
            let Some(entry) = entry else { continue };
            let slot = &mut self.open_line[entry.stream as usize];
            let (time, mut line) = slot.take().unwrap_or((entry.time, Vec::new()));
            line.extend_from_slice(&entry.text);
            if entry.partial {
                *slot = Some((time, line));
            } else {
                out.push(LogLine { time, stream: entry.stream, text: line });
            }
        }
        if flush {
            for (index, slot) in self.open_line.iter_mut().enumerate() {
                if let Some((time, text)) = slot.take() {
                    let stream = if index == 0 { Stream::Stdout } else { Stream::Stderr };
                    out.push(LogLine { time, stream, text });
                }
            }
        }
        Ok(out)
    }

    /// Rewinds to the start (after the file was truncated, say).
    pub fn rewind(&mut self) -> Result<(), LogError> {
        self.files.rewind();
        self.pending.clear();
        self.open_line = [None, None];
        Ok(())
    }
}

/// `logs` flags that select and shape lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// `--tail N`: only the last N lines (of those within since/until).
    pub tail: Option<usize>,
    /// `-t`: each line starts with its time.
    pub timestamps: bool,
}

impl LogOptions {
    pub fn wants(&self, line: &LogLine) -> bool {
        self.since.is_none_or(|since| line.time >= since)
            && self.until.is_none_or(|until| line.time <= until)
    }

    /// Applies since, until and tail to `lines`.
    pub fn select(&self, lines: Vec<LogLine>) -> Vec<LogLine> {
        let mut kept: Vec<LogLine> = lines.into_iter().filter(|l| self.wants(l)).collect();
        if let Some(n) = self.tail {
            let skip = kept.len().saturating_sub(n);
            kept.drain(..skip);
        }
        kept
    }

    /// The bytes `logs` prints for `line`, newline included.
    pub fn render(&self, line: &LogLine) -> Vec<u8> {
        let mut out = Vec::with_capacity(line.text.len() + 40);
        if self.timestamps {
            out.extend_from_slice(line.time.to_rfc3339_nanos().as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&line.text);
        out.push(b'\n');
        out
    }
}

/// Parses `--since`/`--until`: a duration back from `now` (Go's syntax: `90s`, `10m`,
/// `1h30m`, `1.5h`), an RFC 3339 time, or Unix seconds (with a fraction).
pub fn parse_time(flag: &'static str, value: &str, now: Timestamp) -> Result<Timestamp, LogError> {
    let bad = || LogError::BadTime { flag, value: value.to_owned() };
    if let Some(t) = Timestamp::parse_rfc3339(value) {
        return Ok(t);
    }
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_finite() {
            return Ok(Timestamp((seconds * 1e9) as i64));
        }
    }
    let back = parse_go_duration(value).ok_or_else(bad)?;
    Ok(Timestamp(now.0 - i64::try_from(back.as_nanos()).map_err(|_| bad())?))
}

/// Go's `time.ParseDuration` for the units logs need (h, m, s, ms, us, ns).
pub(crate) fn parse_go_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_796_293_574_000_000_000;

    fn at(seconds: i64) -> Timestamp {
        Timestamp(T0 + seconds * 1_000_000_000)
    }

    fn texts(lines: &[LogLine]) -> Vec<String> {
        lines.iter().map(|l| String::from_utf8_lossy(&l.text).into_owned()).collect()
    }

    #[test]
    fn the_file_is_conmons_k8s_file_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let mut writer = LogWriter::open(&path).unwrap();
        writer.write(Stream::Stdout, b"hello\nwor", at(0)).unwrap();
        writer.write(Stream::Stderr, b"oops\n", at(1)).unwrap();
        writer.write(Stream::Stdout, b"ld\n", at(2)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "2026-12-03T10:26:14.000000000+00:00 stdout F hello\n\
             2026-12-03T10:26:14.000000000+00:00 stdout P wor\n\
             2026-12-03T10:26:15.000000000+00:00 stderr F oops\n\
             2026-12-03T10:26:16.000000000+00:00 stdout F ld\n"
        );
        let lines = LogReader::open(&path).unwrap().read_new(true).unwrap();
        assert_eq!(texts(&lines), ["hello", "oops", "world"]);
        assert_eq!(lines[2].time, at(0), "a joined line keeps the time it began");
        assert_eq!(lines[1].stream, Stream::Stderr);
    }

    // Many short lines in one read become more entry bytes than one write takes: they go out
    // in several writes of whole entries, every line kept, and the buffer does not grow with
    // the input.
    #[test]
    fn many_short_lines_are_written_whole_in_bounded_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let mut writer = LogWriter::open(&path).unwrap();
        let input = b"y\n".repeat(8 * 1024);
        writer.write(Stream::Stdout, &input, at(0)).unwrap();
        writer.write(Stream::Stdout, &vec![b'x'; 3 * WRITE_CHUNK], at(1)).unwrap();
        assert!(writer.out.capacity() <= 8 * WRITE_CHUNK, "{}", writer.out.capacity());
        let lines = LogReader::open(&path).unwrap().read_new(true).unwrap();
        assert_eq!(lines.len(), 8 * 1024 + 1);
        assert!(lines[..8 * 1024].iter().all(|l| l.text == b"y"));
        assert_eq!(lines[8 * 1024].text.len(), 3 * WRITE_CHUNK);
    }

    // -f must neither lose nor repeat a line, wherever the file stood when it was read: cut
    // the file at every byte and read it in two steps.
    #[test]
    fn following_never_loses_or_repeats_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.log");
        let mut writer = LogWriter::open(&whole).unwrap();
        for (n, chunk) in [&b"one\ntw"[..], b"o\n", b"three", b"\nfour\n"].iter().enumerate() {
            writer.write(Stream::Stdout, chunk, at(n as i64)).unwrap();
        }
        let bytes = std::fs::read(&whole).unwrap();
        let path = dir.path().join("growing.log");
        for cut in 0..=bytes.len() {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let mut reader = LogReader::open(&path).unwrap();
            let mut seen = texts(&reader.read_new(false).unwrap());
            let mut file = OpenOptions::new().append(true).open(&path).unwrap();
            file.write_all(&bytes[cut..]).unwrap();
            seen.extend(texts(&reader.read_new(true).unwrap()));
            assert_eq!(seen, ["one", "two", "three", "four"], "cut at byte {cut}");
        }
    }

    #[test]
    fn since_until_tail_and_timestamps() {
        let lines: Vec<LogLine> = (0..5)
            .map(|n| LogLine {
                time: at(n),
                stream: Stream::Stdout,
                text: format!("line{n}").into_bytes(),
            })
            .collect();
        let opts = LogOptions { since: Some(at(1)), until: Some(at(3)), ..Default::default() };
        assert_eq!(texts(&opts.select(lines.clone())), ["line1", "line2", "line3"]);
        let opts = LogOptions { tail: Some(2), ..Default::default() };
        assert_eq!(texts(&opts.select(lines.clone())), ["line3", "line4"]);
        let opts = LogOptions { tail: Some(0), ..Default::default() };
        assert!(opts.select(lines.clone()).is_empty());
        let opts = LogOptions { timestamps: true, ..Default::default() };
        assert_eq!(opts.render(&lines[1]), b"2026-12-03T10:26:15Z line1\n");
    }

    #[test]
    fn since_and_until_values() {
        let now = at(3600);
        assert_eq!(parse_time("--since", "10m", now).unwrap(), at(3000));
        assert_eq!(parse_time("--since", "1h30m", now).unwrap(), at(-1800));
        assert_eq!(parse_time("--since", "1.5s", now).unwrap(), Timestamp(now.0 - 1_500_000_000));
        assert_eq!(parse_time("--until", "2026-12-03T10:26:14Z", now).unwrap(), at(0));
        assert_eq!(parse_time("--since", "1796293574", now).unwrap(), at(0));
        let err = parse_time("--since", "yesterday", now).unwrap_err();
        assert!(err.to_string().starts_with("invalid --since \"yesterday\""), "{err}");
        assert!(parse_time("--since", "10x", now).is_err());
    }
}
