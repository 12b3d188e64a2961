//! One row of `ps`: Podman's `ps --format json` object, field for field, plus the computed
//! columns its table and Go templates show (`{{.Status}}`, `{{.Command}}`, `{{.CreatedAt}}`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{spec_value, user_mounts, ContainerError, CreateOptions};
use crate::state::time::human_duration;
use crate::state::{ContainerRecord, ContainerState, Timestamp};

/// Go's zero `time.Time` as Unix seconds: what Podman prints for "never".
pub const GO_ZERO_UNIX: i64 = -62_135_596_800;

/// A `ps` row, serialised with Podman's JSON names.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    pub auto_remove: bool,
    pub command: Vec<String>,
    /// Podman's JSON has the human age here ("3 seconds ago").
    pub created_at: String,
    pub exited: bool,
    /// Unix seconds; Go's zero time when the container never exited.
    pub exited_at: i64,
    pub exit_code: i32,
    pub id: String,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub is_infra: bool,
    pub labels: BTreeMap<String, String>,
    pub mounts: Vec<String>,
    pub names: Vec<String>,
    pub namespaces: BTreeMap<String, String>,
    pub networks: Vec<String>,
    pub pid: i32,
    pub pod: String,
    pub pod_name: String,
    pub ports: Option<Vec<serde_json::Value>>,
    pub size: Option<serde_json::Value>,
    pub started_at: i64,
    /// Lowercase state, as in Podman's JSON (`configured` reads as `created`).
    pub state: String,
    pub status: String,
    /// Unix seconds.
    pub created: i64,
    /// The creation time, for `{{.CreatedAt}}` in templates (Go's time format).
    #[serde(skip)]
    pub created_at_time: Timestamp,
}

impl ContainerSummary {
    /// The row for `record`, with ages measured up to `now`.
    pub fn from_record(record: &ContainerRecord, now: Timestamp) -> Result<Self, ContainerError> {
        let spec = spec_value(record)?;
        let options = CreateOptions::of(record)?;
        let args: Vec<String> = spec["process"]["args"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        // The command as the user gave it, without `--init`'s init in front (as Podman).
        let command = crate::init::strip(&args).to_vec();
        let exited = matches!(record.state, ContainerState::Exited | ContainerState::Stopped);
        let state = match record.state {
            ContainerState::Configured => "created",
            other => other.as_str(),
        };
        Ok(Self {
            auto_remove: options.auto_remove,
            command,
            created_at: format!("{} ago", human_duration(record.created_at.elapsed_until(now))),
            exited,
            exited_at: record.finished_at.map_or(GO_ZERO_UNIX, Timestamp::unix_seconds),
            exit_code: record.exit_code.unwrap_or(if exited { -1 } else { 0 }),
            id: record.id.clone(),
            image: record.image_name.clone(),
            image_id: record.image_id.clone(),
            is_infra: false,
            labels: record.labels.clone(),
            mounts: user_mounts(&spec)
                .iter()
                .filter_map(|m| m["destination"].as_str().map(str::to_owned))
                .collect(),
            names: vec![record.name.clone()],
            namespaces: BTreeMap::new(),
            networks: Vec::new(),
            pid: record.pid.unwrap_or(0),
            pod: String::new(),
            pod_name: String::new(),
            ports: None,
            size: None,
            started_at: record.started_at.map_or(GO_ZERO_UNIX, Timestamp::unix_seconds),
            state: state.to_owned(),
            status: with_health(status(record, now), record, &options),
            created: record.created_at.unix_seconds(),
            created_at_time: record.created_at,
        })
    }

    /// `{{.ID}}`: the 12-digit short id (the full id with `--no-trunc`).
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }

    /// `{{.Command}}`: the command line joined with spaces.
    pub fn command_line(&self) -> String {
        self.command.join(" ")
    }

    /// `{{.Names}}`: the names joined with commas.
    pub fn names_joined(&self) -> String {
        self.names.join(",")
    }

    /// `{{.State}}` in a template: the state with a capital, as Podman shows it.
    pub fn state_title(&self) -> String {
        let mut chars = self.state.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => String::new(),
        }
    }

    /// `{{.CreatedAt}}`: Go's time format.
    pub fn created_at_go(&self) -> String {
        self.created_at_time.to_go_string()
    }
}

/// The STATUS column: `Created`, `Up 5 seconds`, `Paused`, `Exited (3) 2 minutes ago`.
pub fn status(record: &ContainerRecord, now: Timestamp) -> String {
    match record.state {
        ContainerState::Configured | ContainerState::Created => "Created".to_owned(),
        ContainerState::Running => {
            let since = record.started_at.unwrap_or(record.created_at);
            format!("Up {}", human_duration(since.elapsed_until(now)))
        }
        ContainerState::Paused => "Paused".to_owned(),
        ContainerState::Stopped | ContainerState::Exited => {
            let at = record.finished_at.unwrap_or(now);
            format!(
                "Exited ({}) {} ago",
                record.exit_code.unwrap_or(-1),
                human_duration(at.elapsed_until(now))
            )
        }
    }
}

/// A running container with a healthcheck shows its health after the status, as Podman's
/// `Up 5 seconds (healthy)` (the one file read `ps` makes, and only for such containers).
fn with_health(status: String, record: &ContainerRecord, options: &CreateOptions) -> String {
    if record.state != ContainerState::Running || options.duties.health.is_none() {
        return status;
    }
    let health = crate::monitor::health::read_state(&options.userdata_dir).unwrap_or_default();
    format!("{status} ({})", health.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::tests::record_for;
    use crate::spec::RunOptions;

    fn seconds(n: i64) -> i64 {
        n * 1_000_000_000
    }

    // The JSON has exactly Podman's field names, so `ps --format json` consumers read it.
    #[test]
    fn json_uses_podmans_field_names() {
        let rootfs = tempfile::tempdir().unwrap();
        berth_testkit::busybox::rootfs(rootfs.path()).unwrap();
        let mut opts = RunOptions {
            command: vec!["sh".into(), "-c".into(), "true".into()],
            ..Default::default()
        };
        opts.read_only = true;
        opts.tmpfs = vec!["/scratch".into()];
        opts.labels = vec!["app=web".into()];
        let record = record_for(opts, rootfs.path());
        let now = Timestamp(record.created_at.0 + seconds(3));
        let row = ContainerSummary::from_record(&record, now).unwrap();
        let json = serde_json::to_value(&row).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let podman = [
            "AutoRemove",
            "Command",
            "Created",
            "CreatedAt",
            "ExitCode",
            "Exited",
            "ExitedAt",
            "Id",
            "Image",
            "ImageID",
            "IsInfra",
            "Labels",
            "Mounts",
            "Names",
            "Namespaces",
            "Networks",
            "Pid",
            "Pod",
            "PodName",
            "Ports",
            "Size",
            "StartedAt",
            "State",
            "Status",
        ];
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, podman);
        assert_eq!(json["Command"], serde_json::json!(["sh", "-c", "true"]));
        assert_eq!(json["State"], "created");
        assert_eq!(json["Status"], "Created");
        assert_eq!(json["CreatedAt"], "3 seconds ago");
        assert_eq!(json["Created"], 1_796_295_102);
        assert_eq!(json["ExitedAt"], GO_ZERO_UNIX);
        assert_eq!(json["Mounts"], serde_json::json!(["/scratch", "/run", "/tmp", "/var/tmp"]));
        assert_eq!(json["Labels"]["app"], "web");
        assert_eq!(json["Labels"]["org.opencontainers.image.title"], "busybox");
        assert_eq!(row.short_id(), "e65807fe309e");
        assert_eq!(row.command_line(), "sh -c true");
        assert_eq!(row.state_title(), "Created");
        assert_eq!(row.created_at_go(), "2026-12-03 10:51:42.857105877 +0000 UTC");
    }

    #[test]
    fn status_column_by_state() {
        let rootfs = tempfile::tempdir().unwrap();
        berth_testkit::busybox::rootfs(rootfs.path()).unwrap();
        let mut record = record_for(RunOptions::default(), rootfs.path());
        let t0 = record.created_at;
        record.state = ContainerState::Running;
        record.started_at = Some(Timestamp(t0.0 + seconds(1)));
        record.pid = Some(4242);
        assert_eq!(status(&record, Timestamp(t0.0 + seconds(6))), "Up 5 seconds");
        let row = ContainerSummary::from_record(&record, Timestamp(t0.0 + seconds(6))).unwrap();
        assert_eq!((row.pid, row.exited, row.started_at), (4242, false, t0.unix_seconds() + 1));
        record.state = ContainerState::Paused;
        assert_eq!(status(&record, t0), "Paused");
        record.state = ContainerState::Exited;
        record.pid = None;
        record.exit_code = Some(3);
        record.finished_at = Some(Timestamp(t0.0 + seconds(10)));
        assert_eq!(status(&record, Timestamp(t0.0 + seconds(130))), "Exited (3) 2 minutes ago");
        let row = ContainerSummary::from_record(&record, Timestamp(t0.0 + seconds(130))).unwrap();
        assert!(row.exited);
        assert_eq!((row.exit_code, row.exited_at), (3, t0.unix_seconds() + 10));
        // Reconciled without an exit code: -1, as Podman shows a container whose exit it lost.
        record.exit_code = None;
        assert_eq!(ContainerSummary::from_record(&record, t0).unwrap().exit_code, -1);
    }
}
