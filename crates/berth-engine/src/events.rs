//! The events journal: one JSON object per line in `RUNROOT/events/events.log`, appended by
//! the commands that change a container (create, start, die, stop, remove) and read back by
//! `berth events`, as Podman's file events backend keeps them.
//!
//! Each event is written with one `write` on a file opened with O_APPEND, and a line is far
//! below PIPE_BUF, so concurrent writers never interleave inside a line. The journal lives in
//! the runroot: it is per boot, as Podman's is.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::state::Timestamp;

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("opening the events journal {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the events journal {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid --filter {value:?}: {reason}")]
    BadFilter { value: String, reason: String },
}

/// One event, with Podman's JSON field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Image", default)]
    pub image: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Status")]
    pub status: String,
    /// Podman's type: `container`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Unix time in nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    /// The exit code, for `died`.
    #[serde(rename = "ContainerExitCode", default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The health after a check, for `health_status` (issue 7).
    #[serde(rename = "HealthStatus", default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<String>,
}

impl Event {
    /// A container event happening now.
    pub fn container(status: &str, id: &str, name: &str, image: &str) -> Self {
        Self {
            id: id.to_owned(),
            image: image.to_owned(),
            name: name.to_owned(),
            status: status.to_owned(),
            kind: "container".to_owned(),
            time_nano: Timestamp::now().0,
            exit_code: None,
            health_status: None,
        }
    }

    /// The line Podman's `events` prints for it by default.
    pub fn human(&self) -> String {
        let time = Timestamp(self.time_nano).to_go_string();
        let mut line = format!(
            "{time} {} {} {} (image={}, name={}",
            self.kind, self.status, self.id, self.image, self.name
        );
        if let Some(code) = self.exit_code {
            line.push_str(&format!(", containerExitCode={code}"));
        }
        if let Some(health) = &self.health_status {
            line.push_str(&format!(", health_status={health}"));
        }
        line.push(')');
        line
    }
}

/// The journal of runroot `runroot`.
pub fn journal(runroot: &Path) -> PathBuf {
    runroot.join("events").join("events.log")
}

/// Appends `event` to the journal of `runroot`. A failure is logged, never fatal: the event
/// is a record of work that has happened.
pub fn record(runroot: &Path, event: &Event) {
    let path = journal(runroot);
    let result = (|| {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        file.write_all(&line)
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "writing the events journal");
    }
}

/// Records a container event for `record` in the journal of `runroot`: the one call the
/// container operations and the monitor make.
pub fn record_container(
    runroot: &Path,
    status: &str,
    container: &crate::state::ContainerRecord,
    exit_code: Option<i32>,
) {
    let mut event = Event::container(status, &container.id, &container.name, &container.image_name);
    event.exit_code = exit_code;
    record(runroot, &event);
}

/// `--filter KEY=VALUE` of `events`: container, event (status), image, type; the same key
/// given twice matches either value, different keys must all match.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    filters: Vec<(String, Vec<String>)>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl EventFilter {
    pub fn parse(values: &[String]) -> Result<Self, EventsError> {
        let mut out = Self::default();
        for value in values {
            let (key, val) = value.split_once('=').ok_or_else(|| EventsError::BadFilter {
                value: value.clone(),
                reason: "expected KEY=VALUE".to_owned(),
            })?;
            if !matches!(key, "container" | "event" | "image" | "type") {
                return Err(EventsError::BadFilter {
                    value: value.clone(),
                    reason: format!("unknown key {key:?} (container, event, image, type)"),
                });
            }
            match out.filters.iter_mut().find(|(k, _)| k == key) {
                Some((_, vals)) => vals.push(val.to_owned()),
                None => out.filters.push((key.to_owned(), vec![val.to_owned()])),
            }
        }
        Ok(out)
    }

    pub fn matches(&self, event: &Event) -> bool {
        if self.since.is_some_and(|s| event.time_nano < s) {
            return false;
        }
        if self.until.is_some_and(|u| event.time_nano > u) {
            return false;
        }
        self.filters.iter().all(|(key, vals)| {
            vals.iter().any(|v| match key.as_str() {
                "container" => {
                    event.name == *v || (v.len() >= 3 && event.id.starts_with(v.as_str()))
                }
                // Podman calls the exit "died" in JSON and accepts "die" in filters.
                "event" => event.status == *v || (v == "die" && event.status == "died"),
                "image" => event.image == *v || event.image.starts_with(&format!("{v}:")),
                "type" => event.kind == *v,
                _ => false,
            })
        })
    }
}

/// Reads the journal of `runroot`: every event that matches, in order, handed to `each`. With
/// `follow`, waits for new lines until `each` returns false; a line that does not parse (a
/// torn write after a crash) is skipped.
pub fn read(
    runroot: &Path,
    filter: &EventFilter,
    follow: bool,
    each: &mut dyn FnMut(&Event) -> bool,
) -> Result<(), EventsError> {
    let path = journal(runroot);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|source| EventsError::Open { path: path.clone(), source })?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)
        .map_err(|source| EventsError::Open { path: path.clone(), source })?;
    let mut reader = BufReader::new(file);
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|source| EventsError::Read { path: path.clone(), source })?;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|source| EventsError::Read { path: path.clone(), source })?;
        if n == 0 || !line.ends_with('\n') {
            if !follow || filter.until.is_some_and(|u| Timestamp::now().0 > u) {
                return Ok(());
            }
            // A partial line: go back and read it again once it is complete.
            if n > 0 {
                reader
                    .seek(SeekFrom::Current(-(n as i64)))
                    .map_err(|source| EventsError::Read { path: path.clone(), source })?;
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let Ok(event) = serde_json::from_str::<Event>(line.trim_end()) else { continue };
        if filter.matches(&event) && !each(&event) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_appended_and_filtered() {
        let runroot = tempfile::tempdir().unwrap();
        let a = Event::container("create", &"a".repeat(64), "web", "localhost/bb:latest");
        let mut b = Event::container("died", &"b".repeat(64), "db", "localhost/bb:latest");
        b.exit_code = Some(3);
        record(runroot.path(), &a);
        record(runroot.path(), &b);
        let all = |filter: &EventFilter| {
            let mut seen = Vec::new();
            read(runroot.path(), filter, false, &mut |e| {
                seen.push(e.clone());
                true
            })
            .unwrap();
            seen
        };
        assert_eq!(all(&EventFilter::default()), [a.clone(), b.clone()]);
        let died = EventFilter::parse(&["event=die".into()]).unwrap();
        assert_eq!(all(&died), [b.clone()]);
        let web = EventFilter::parse(&["container=web".into(), "container=bbb".into()]).unwrap();
        assert_eq!(all(&web).len(), 2);
        let none = EventFilter::parse(&["container=web".into(), "event=died".into()]).unwrap();
        assert!(all(&none).is_empty());
        assert!(EventFilter::parse(&["colour=red".into()]).is_err());
        assert!(b.human().ends_with("(image=localhost/bb:latest, name=db, containerExitCode=3)"));
    }
}
