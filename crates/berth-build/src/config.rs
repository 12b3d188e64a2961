//! The image configuration a stage builds up, and its history: what ENV, LABEL, EXPOSE,
//! VOLUME, USER, WORKDIR, STOPSIGNAL, ENTRYPOINT, CMD, HEALTHCHECK, SHELL, ONBUILD and
//! MAINTAINER change, applied as Docker and Buildah apply them, and one history entry per
//! instruction (`created_by`, `empty_layer`) in Buildah's wording.
//!
//! The config travels as the JSON object of an image config's `config` field (Docker's
//! PascalCase names), so berth-image's `ContainerConfig` reads and writes it unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::dockerfile::{Command, Healthcheck, InstructionKind};
use crate::ignore::clean;
use crate::plan::Step;

/// The PATH a Linux image gets when its base sets none (BuildKit and Buildah do the same).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The shell of shell-form commands when the stage set no SHELL.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// Why an instruction's value was refused while applying it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid port {port:?} in EXPOSE: {reason}")]
    Expose { port: String, reason: &'static str },
    #[error("invalid signal {0:?} in STOPSIGNAL")]
    Stopsignal(String),
    #[error("--change {change:?}: {keyword} cannot be applied by --change (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, SHELL, STOPSIGNAL, USER, VOLUME and WORKDIR can)")]
    ChangeInstruction { change: String, keyword: &'static str },
}

/// Docker's Healthcheck, durations kept as durations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", text]`.
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

/// The config of the image a stage is building.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigState {
    pub user: Option<String>,
    pub exposed_ports: BTreeSet<String>,
    /// The base image's environment.
    base_env: Vec<(String, String)>,
    /// What this stage's ENV set, in order of first definition here. The image's env is the
    /// base's without these names, then these (as Buildah writes it).
    stage_env: Vec<(String, String)>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub volumes: BTreeSet<String>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub healthcheck: Option<HealthConfig>,
    pub on_build: Vec<String>,
    pub shell: Option<Vec<String>>,
    /// From MAINTAINER: the image's `author`.
    pub author: Option<String>,
    /// Whether this stage set CMD itself; an ENTRYPOINT drops an inherited CMD.
    cmd_set: bool,
}

/// One history entry of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub created_by: String,
    pub empty_layer: bool,
}

impl ConfigState {
    /// The state a stage starts from: its base image's `config` object (or `Value::Null`
    /// for scratch). A missing PATH is given the default one.
    pub fn from_base(config: &Value) -> Self {
        let strings = |key: &str| -> Option<Vec<String>> {
            config
                .get(key)?
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        };
        let keys = |key: &str| -> BTreeSet<String> {
            config
                .get(key)
                .and_then(Value::as_object)
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        let text = |key: &str| {
            config.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
        };
        let mut state = Self {
            user: text("User"),
            exposed_ports: keys("ExposedPorts"),
            base_env: strings("Env")
                .unwrap_or_default()
                .into_iter()
                .map(|e| match e.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (e, String::new()),
                })
                .collect(),
            entrypoint: strings("Entrypoint"),
            cmd: strings("Cmd"),
            volumes: keys("Volumes"),
            working_dir: text("WorkingDir"),
            labels: config
                .get("Labels")
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            stop_signal: text("StopSignal"),
            healthcheck: config.get("Healthcheck").filter(|h| !h.is_null()).map(|h| {
                let ns = |key: &str| {
                    h.get(key).and_then(Value::as_u64).filter(|n| *n > 0).map(Duration::from_nanos)
                };
                HealthConfig {
                    test: h
                        .get("Test")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default(),
                    interval: ns("Interval"),
                    timeout: ns("Timeout"),
                    start_period: ns("StartPeriod"),
                    start_interval: ns("StartInterval"),
                    retries: h
                        .get("Retries")
                        .and_then(Value::as_u64)
                        .and_then(|r| u32::try_from(r).ok())
                        .filter(|r| *r > 0),
                }
            }),
            stage_env: Vec::new(),
            // Triggers run in the stage that builds FROM this image and are not inherited.
            on_build: Vec::new(),
            shell: strings("Shell"),
            author: None,
            cmd_set: false,
        };
        // Scratch starts with the default PATH as if the stage had set it; another base
        // without PATH gets it in front of its own variables.
        if config.is_null() {
            state.stage_env.push(("PATH".to_owned(), DEFAULT_PATH.to_owned()));
        } else if !state.base_env.iter().any(|(k, _)| k == "PATH") {
            state.base_env.insert(0, ("PATH".to_owned(), DEFAULT_PATH.to_owned()));
        }
        state
    }

    /// The image's environment: the base's variables this stage did not set, in the base's
    /// order, then the stage's own in the order it first set them. Docker keeps a redefined
    /// base variable in its place instead; the values are the same either way.
    pub fn env(&self) -> Vec<(String, String)> {
        self.base_env
            .iter()
            .filter(|(k, _)| !self.stage_env.iter().any(|(s, _)| s == k))
            .chain(&self.stage_env)
            .cloned()
            .collect()
    }

    /// The ONBUILD triggers of a base image's config, to run at the start of the stage.
    pub fn triggers(config: &Value) -> Vec<String> {
        config
            .get("OnBuild")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// The shell for shell-form commands.
    pub fn shell(&self) -> Vec<String> {
        self.shell
            .clone()
            .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| (*s).to_owned()).collect())
    }

    /// A RUN, CMD or ENTRYPOINT command as the argv it runs.
    pub fn argv(&self, command: &Command) -> Vec<String> {
        match command {
            Command::Exec(args) => args.clone(),
            Command::Shell(text) => {
                let mut argv = self.shell();
                argv.push(text.clone());
                argv
            }
        }
    }

    /// Applies one expanded step, returning its history entry.
    pub fn apply(&mut self, step: &Step) -> Result<HistoryEntry, ConfigError> {
        let nop = |text: &str| HistoryEntry {
            created_by: format!("/bin/sh -c #(nop) {text}"),
            empty_layer: true,
        };
        let entry = match &step.kind {
            InstructionKind::Env(pairs) => {
                for pair in pairs {
                    match self.stage_env.iter_mut().find(|(k, _)| *k == pair.key) {
                        Some(entry) => entry.1.clone_from(&pair.value),
                        None => self.stage_env.push((pair.key.clone(), pair.value.clone())),
                    }
                }
                nop(&step.original)
            }
            InstructionKind::Label(pairs) => {
                for pair in pairs {
                    self.labels.insert(pair.key.clone(), pair.value.clone());
                }
                nop(&step.original)
            }
            InstructionKind::Expose(ports) => {
                for port in ports {
                    self.exposed_ports.extend(expose(port)?);
                }
                nop(&step.original)
            }
            InstructionKind::Volume(paths) => {
                self.volumes.extend(paths.iter().cloned());
                nop(&step.original)
            }
            InstructionKind::User(user) => {
                self.user = Some(user.clone());
                nop(&step.original)
            }
            InstructionKind::Workdir(path) => {
                self.working_dir = Some(self.resolve_workdir(path));
                nop(&step.original)
            }
            InstructionKind::Stopsignal(signal) => {
                if !valid_signal(signal) {
                    return Err(ConfigError::Stopsignal(signal.clone()));
                }
                self.stop_signal = Some(signal.clone());
                nop(&step.original)
            }
            InstructionKind::Entrypoint(command) => {
                self.entrypoint = Some(self.argv(command));
                if !self.cmd_set {
                    self.cmd = None;
                }
                nop(&step.original)
            }
            InstructionKind::Cmd(command) => {
                self.cmd = Some(self.argv(command));
                self.cmd_set = true;
                nop(&step.original)
            }
            InstructionKind::Healthcheck(check) => {
                self.healthcheck = Some(match check {
                    Healthcheck::None => {
                        HealthConfig { test: vec!["NONE".to_owned()], ..HealthConfig::default() }
                    }
                    Healthcheck::Check {
                        command,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => {
                        let test = match command {
                            Command::Exec(args) => std::iter::once("CMD".to_owned())
                                .chain(args.iter().cloned())
                                .collect(),
                            Command::Shell(text) => vec!["CMD-SHELL".to_owned(), text.clone()],
                        };
                        HealthConfig {
                            test,
                            interval: *interval,
                            timeout: *timeout,
                            start_period: *start_period,
                            start_interval: *start_interval,
                            retries: *retries,
                        }
                    }
                });
                nop(&step.original)
            }
            InstructionKind::Shell(shell) => {
                self.shell = Some(shell.clone());
                nop(&step.original)
            }
            InstructionKind::Onbuild(inner) => {
                self.on_build.push(inner.original.clone());
                nop(&step.original)
            }
            InstructionKind::Maintainer(author) => {
                self.author = Some(author.clone());
                nop(&step.original)
            }
            InstructionKind::Arg(decls) => {
                let names: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
                nop(&format!("ARG {}", names.join(" ")))
            }
            InstructionKind::Run(run) => {
                let mut created_by = String::new();
                if !step.used_args.is_empty() {
                    let args: Vec<String> =
                        step.used_args.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    created_by = format!("|{} {} ", args.len(), args.join(" "));
                }
                created_by.push_str(&self.argv(&run.command).join(" "));
                HistoryEntry { created_by, empty_layer: false }
            }
            InstructionKind::Copy(_) | InstructionKind::Add(_) => HistoryEntry {
                created_by: format!("/bin/sh -c #(nop) {}", step.original),
                empty_layer: false,
            },
            InstructionKind::From(_) => nop(&step.original),
        };
        Ok(entry)
    }

    /// WORKDIR's path: an absolute one as written (Buildah keeps it so; Docker would clean
    /// it), a relative one joined to the current one and cleaned.
    pub fn resolve_workdir(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_owned()
        } else {
            let current = self.working_dir.as_deref().unwrap_or("/");
            clean(&format!("{current}/{path}"))
        }
    }

    /// The `config` object of the image config.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        let set = |map: &mut Map<String, Value>, key: &str, value: Value| {
            map.insert(key.to_owned(), value);
        };
        if let Some(user) = &self.user {
            set(&mut out, "User", json!(user));
        }
        if !self.exposed_ports.is_empty() {
            let ports: Map<String, Value> =
                self.exposed_ports.iter().map(|p| (p.clone(), json!({}))).collect();
            set(&mut out, "ExposedPorts", Value::Object(ports));
        }
        let env: Vec<String> = self.env().iter().map(|(k, v)| format!("{k}={v}")).collect();
        set(&mut out, "Env", json!(env));
        if let Some(entrypoint) = &self.entrypoint {
            set(&mut out, "Entrypoint", json!(entrypoint));
        }
        if let Some(cmd) = &self.cmd {
            set(&mut out, "Cmd", json!(cmd));
        }
        if !self.volumes.is_empty() {
            let volumes: Map<String, Value> =
                self.volumes.iter().map(|p| (p.clone(), json!({}))).collect();
            set(&mut out, "Volumes", Value::Object(volumes));
        }
        if let Some(dir) = &self.working_dir {
            set(&mut out, "WorkingDir", json!(dir));
        }
        if !self.labels.is_empty() {
            set(&mut out, "Labels", json!(self.labels));
        }
        if let Some(signal) = &self.stop_signal {
            set(&mut out, "StopSignal", json!(signal));
        }
        if let Some(check) = &self.healthcheck {
            let mut h = Map::new();
            h.insert("Test".to_owned(), json!(check.test));
            let ns = |d: &Option<Duration>| {
                d.map(|d| json!(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
            };
            for (key, value) in [
                ("Interval", ns(&check.interval)),
                ("Timeout", ns(&check.timeout)),
                ("StartPeriod", ns(&check.start_period)),
                ("StartInterval", ns(&check.start_interval)),
                ("Retries", check.retries.map(|r| json!(r))),
            ] {
                if let Some(value) = value {
                    h.insert(key.to_owned(), value);
                }
            }
            set(&mut out, "Healthcheck", Value::Object(h));
        }
        if !self.on_build.is_empty() {
            set(&mut out, "OnBuild", json!(self.on_build));
        }
        if let Some(shell) = &self.shell {
            set(&mut out, "Shell", json!(shell));
        }
        Value::Object(out)
    }
}

/// Applies every step of a stage to its base's config, with the history entries they make.
pub fn stage_config(
    stage: &crate::plan::StagePlan,
    base: &Value,
) -> Result<(ConfigState, Vec<HistoryEntry>), ConfigError> {
    let mut state = ConfigState::from_base(base);
    let mut history = Vec::with_capacity(stage.steps.len());
    for step in &stage.steps {
        history.push(state.apply(step)?);
    }
    Ok((state, history))
}

/// Applies `--change` instructions (`berth commit -c`, as Podman's) to an image's `config`
/// object: each is a Dockerfile line, its variables expanded against the config's Env as it
/// goes. Fields the config state does not model are kept as `base` has them.
pub fn apply_changes(base: &Value, changes: &[String]) -> Result<Value, crate::Error> {
    if changes.is_empty() {
        return Ok(base.clone());
    }
    // Planned as a stage on an image whose config is `base` (its triggers left out: they
    // are not this commit's to run), so ENV sees the config's variables.
    let reference = "commit.invalid/base:latest";
    let text = format!("FROM {reference}\n{}\n", changes.join("\n"));
    let parsed = crate::dockerfile::parse("--change", &text)?;
    let mut planning_base = base.clone();
    if let Some(map) = planning_base.as_object_mut() {
        map.remove("OnBuild");
    }
    let lookup = move |r: &str| (r == reference).then(|| planning_base.clone());
    let options = crate::plan::PlanOptions { base_config: &lookup, ..Default::default() };
    let plan = crate::plan::plan(&parsed, &options)?;
    let mut state = ConfigState::from_base(base);
    for step in plan.stages.iter().flat_map(|s| &s.steps) {
        let allowed = matches!(
            step.kind,
            InstructionKind::Cmd(_)
                | InstructionKind::Entrypoint(_)
                | InstructionKind::Env(_)
                | InstructionKind::Expose(_)
                | InstructionKind::Healthcheck(_)
                | InstructionKind::Label(_)
                | InstructionKind::Onbuild(_)
                | InstructionKind::Shell(_)
                | InstructionKind::Stopsignal(_)
                | InstructionKind::User(_)
                | InstructionKind::Volume(_)
                | InstructionKind::Workdir(_)
        );
        if !allowed {
            return Err(ConfigError::ChangeInstruction {
                change: step.original.clone(),
                keyword: step.kind.keyword(),
            }
            .into());
        }
        state.apply(step)?;
    }
    let mut out = state.to_json();
    if let (Value::Object(out), Value::Object(base)) = (&mut out, base) {
        for (k, v) in base {
            if !MODELLED.contains(&k.as_str()) {
                out.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    Ok(out)
}

/// The `config` fields [`ConfigState`] reads and writes.
const MODELLED: [&str; 12] = [
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
];

/// One EXPOSE word as the `port/proto` key it adds; a range stays one key, as Buildah and
/// Podman keep it (Docker would add each port).
fn expose(spec: &str) -> Result<Vec<String>, ConfigError> {
    let error = |reason| ConfigError::Expose { port: spec.to_owned(), reason };
    let (ports, proto) = match spec.split_once('/') {
        Some((ports, proto)) => (ports, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_owned()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(error("the protocol must be tcp, udp or sctp"));
    }
    let number = |p: &str| {
        p.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(|| error("not a port number"))
    };
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let n = number(ports)?;
            (n, n)
        }
    };
    if last < first {
        return Err(error("the range ends before it starts"));
    }
    if first == last {
        Ok(vec![format!("{first}/{proto}")])
    } else {
        Ok(vec![format!("{first}-{last}/{proto}")])
    }
}

/// A signal name (`SIGTERM`, `TERM`, `SIGRTMIN+3`) or number.
fn valid_signal(signal: &str) -> bool {
    if signal.parse::<u32>().is_ok_and(|n| n > 0 && n < 65) {
        return true;
    }
    let name = signal.strip_prefix("SIG").unwrap_or(signal);
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+' || c == '-')
}

#[cfg(test)]
mod tests;
