//! Which containers `ps` shows: `-a`, `--last N` and `--filter KEY=VALUE`, by Podman's rules.
//!
//! Without `-a` only running containers are listed; `--last N` lists the N most recently
//! created in any state. Filters with the same key are alternatives (`status=exited
//! --filter status=created` shows both), filters with different keys must all hold. Keys:
//! `id` (an id prefix), `name` (a regular expression, as Podman's), `label` (`KEY` or
//! `KEY=VALUE`), `ancestor` (the image by name, name without tag, or id prefix) and `status`.
//! The newest container comes first.

use std::collections::BTreeMap;

use regex::Regex;

use crate::state::{ContainerRecord, ContainerState};

use super::ContainerError;

/// Parsed `--filter` values.
#[derive(Debug, Clone, Default)]
pub struct PsFilter {
    ids: Vec<String>,
    names: Vec<Regex>,
    labels: Vec<(String, Option<String>)>,
    ancestors: Vec<String>,
    statuses: Vec<ContainerState>,
}

impl PsFilter {
    pub fn parse(filters: &[String]) -> Result<Self, ContainerError> {
        let mut out = Self::default();
        for filter in filters {
            let bad = |reason: String| ContainerError::BadFilter { value: filter.clone(), reason };
            let (key, value) =
                filter.split_once('=').ok_or_else(|| bad("expected KEY=VALUE".to_owned()))?;
            match key {
                "id" => out.ids.push(value.to_ascii_lowercase()),
                "name" => out.names.push(Regex::new(value).map_err(|e| bad(e.to_string()))?),
                "label" => out.labels.push(match value.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (value.to_owned(), None),
                }),
                "ancestor" => out.ancestors.push(value.to_owned()),
                "status" => out.statuses.push(match value {
                    // Podman's names for what berth calls configured and created.
                    "created" => ContainerState::Created,
                    other => other.parse().map_err(|_| {
                        bad(format!(
                            "{other:?} is not a status: created, running, paused, stopped, exited"
                        ))
                    })?,
                }),
                "pod" | "network" | "volume" | "health" | "before" | "since" | "exited"
                | "restart-policy" | "until" => {
                    return Err(ContainerError::NotSupportedYet { what: format!("--filter {key}") })
                }
                other => return Err(bad(format!("unknown filter key {other:?}"))),
            }
        }
        Ok(out)
    }

    /// Whether `record` passes every filter.
    pub fn matches(&self, record: &ContainerRecord) -> bool {
        let any = |empty: bool, hit: bool| empty || hit;
        any(self.ids.is_empty(), self.ids.iter().any(|p| record.id.starts_with(p.as_str())))
            && any(self.names.is_empty(), self.names.iter().any(|re| re.is_match(&record.name)))
            && self
                .labels
                .iter()
                .all(|(key, value)| label_matches(&record.labels, key, value.as_deref()))
            && any(
                self.ancestors.is_empty(),
                self.ancestors.iter().any(|a| ancestor_matches(record, a)),
            )
            && any(
                self.statuses.is_empty(),
                self.statuses.iter().any(|s| {
                    *s == record.state
                        || (*s == ContainerState::Created
                            && record.state == ContainerState::Configured)
                }),
            )
    }
}

fn label_matches(labels: &BTreeMap<String, String>, key: &str, value: Option<&str>) -> bool {
    match (labels.get(key), value) {
        (Some(_), None) => true,
        (Some(have), Some(want)) => have == want,
        (None, _) => false,
    }
}

fn ancestor_matches(record: &ContainerRecord, wanted: &str) -> bool {
    let name = record.image_name.as_str();
    let untagged =
        name.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map_or(name, |(n, _)| n);
    let short = |n: &str| n.rsplit('/').next().unwrap_or(n).to_owned();
    let id = record.image_id.strip_prefix("sha256:").unwrap_or(&record.image_id);
    let wanted_id = wanted.strip_prefix("sha256:").unwrap_or(wanted);
    name == wanted
        || untagged == wanted
        || short(name) == wanted
        || short(untagged) == wanted
        || (wanted_id.len() >= 3 && id.starts_with(wanted_id))
}

/// The records `ps` shows, newest first.
pub fn select(
    mut records: Vec<ContainerRecord>,
    all: bool,
    last: Option<usize>,
    filter: &PsFilter,
) -> Vec<ContainerRecord> {
    records.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
    let all = all || last.is_some();
    let mut out: Vec<ContainerRecord> = records
        .into_iter()
        .filter(|r| all || r.state == ContainerState::Running)
        .filter(|r| filter.matches(r))
        .collect();
    if let Some(n) = last {
        out.truncate(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Timestamp;

    fn record(
        n: i64,
        name: &str,
        state: ContainerState,
        image: &str,
        labels: &[(&str, &str)],
    ) -> ContainerRecord {
        ContainerRecord {
            id: format!("{n:02}{}", "a".repeat(62)),
            name: name.to_owned(),
            image_id: format!("sha256:{n}{}", "b".repeat(63)),
            image_name: image.to_owned(),
            spec_json: "{}".to_owned(),
            create_options: serde_json::json!({}),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            created_at: Timestamp(n),
            state,
            pid: None,
            pid_start_time: None,
            boot_id: None,
            exit_code: None,
            started_at: None,
            finished_at: None,
            state_error: None,
        }
    }

    fn names(records: &[ContainerRecord]) -> Vec<&str> {
        records.iter().map(|r| r.name.as_str()).collect()
    }

    fn fixture() -> Vec<ContainerRecord> {
        vec![
            record(
                1,
                "web",
                ContainerState::Running,
                "localhost/busybox:latest",
                &[("app", "web")],
            ),
            record(
                2,
                "db",
                ContainerState::Exited,
                "docker.io/library/postgres:16",
                &[("app", "db")],
            ),
            record(
                3,
                "cache",
                ContainerState::Configured,
                "localhost/busybox:latest",
                &[("tier", "")],
            ),
            record(4, "worker", ContainerState::Running, "localhost/busybox:1.36", &[]),
        ]
    }

    fn ps(all: bool, last: Option<usize>, filters: &[&str]) -> Vec<String> {
        let filters: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
        let filter = PsFilter::parse(&filters).unwrap();
        names(&select(fixture(), all, last, &filter)).into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn running_only_unless_all_and_newest_first() {
        assert_eq!(ps(false, None, &[]), ["worker", "web"]);
        assert_eq!(ps(true, None, &[]), ["worker", "cache", "db", "web"]);
        assert_eq!(ps(false, Some(2), &[]), ["worker", "cache"], "--last lists every state");
    }

    #[test]
    fn filters_and_within_a_key_or_across_keys() {
        assert_eq!(ps(true, None, &["status=exited", "status=created"]), ["cache", "db"]);
        assert_eq!(ps(true, None, &["status=running", "label=app"]), ["web"]);
        assert_eq!(ps(true, None, &["label=app=db"]), ["db"]);
        assert_eq!(ps(true, None, &["label=tier"]), ["cache"]);
        assert_eq!(ps(true, None, &["name=^w"]), ["worker", "web"]);
        assert_eq!(ps(true, None, &["id=03"]), ["cache"]);
        assert_eq!(ps(true, None, &["ancestor=localhost/busybox"]), ["worker", "cache", "web"]);
        assert_eq!(ps(true, None, &["ancestor=busybox:latest"]), ["cache", "web"]);
        assert_eq!(ps(true, None, &["ancestor=postgres"]), ["db"]);
        assert_eq!(ps(true, None, &["ancestor=2bbb"]), ["db"]);
    }

    #[test]
    fn bad_filters_are_named() {
        let err = PsFilter::parse(&["colour=red".into()]).unwrap_err();
        assert_eq!(err.to_string(), "invalid filter \"colour=red\": unknown filter key \"colour\"");
        let err = PsFilter::parse(&["status=sleeping".into()]).unwrap_err();
        assert!(err.to_string().contains("is not a status"), "{err}");
        assert!(PsFilter::parse(&["name=(".into()]).is_err());
        assert!(PsFilter::parse(&["status".into()]).is_err());
        assert!(matches!(
            PsFilter::parse(&["pod=x".into()]),
            Err(ContainerError::NotSupportedYet { .. })
        ));
    }
}
