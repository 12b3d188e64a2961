//! The `inspect` document: Podman's `podman inspect` object for a container, with its field
//! names and nesting (State, Config, HostConfig, Mounts, Image and the paths), built from a
//! record. Fields Podman has for features berth does not have yet (pods, health checks,
//! checkpoints, port bindings) are present with Podman's empty values, so templates that name
//! them still render.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::{spec_value, user_mounts, ContainerError, CreateOptions};
use crate::spec::caps::DEFAULT_CAPS;
use crate::state::{ContainerRecord, ContainerState, Timestamp};

/// Go's zero time as Podman prints it.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Docker's default capabilities, the base Podman reports CapAdd and CapDrop against.
const DOCKER_DEFAULT_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_MKNOD", "CAP_NET_RAW"];

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectContainer {
    pub id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: InspectState,
    pub image: String,
    pub image_digest: String,
    pub image_name: String,
    pub rootfs: String,
    pub pod: String,
    pub resolv_conf_path: String,
    pub hostname_path: String,
    pub hosts_path: String,
    pub static_dir: String,
    #[serde(rename = "OCIConfigPath")]
    pub oci_config_path: String,
    #[serde(rename = "OCIRuntime")]
    pub oci_runtime: String,
    pub conmon_pid_file: String,
    pub pid_file: String,
    pub name: String,
    pub restart_count: u32,
    pub driver: String,
    pub mount_label: String,
    pub process_label: String,
    pub app_armor_profile: String,
    pub effective_caps: Vec<String>,
    pub bounding_caps: Vec<String>,
    #[serde(rename = "ExecIDs")]
    pub exec_ids: Vec<String>,
    pub graph_driver: GraphDriver,
    pub mounts: Vec<InspectMount>,
    pub dependencies: Vec<String>,
    pub network_settings: Value,
    pub namespace: String,
    pub is_infra: bool,
    pub is_service: bool,
    pub config: InspectConfig,
    pub host_config: InspectHostConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectState {
    pub oci_version: String,
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i32,
    pub conmon_pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    pub health: Value,
    pub checkpointed_at: String,
    pub restored_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: Option<BTreeMap<String, String>>,
}

/// A volume or bind mount (tmpfs mounts show under HostConfig.Tmpfs, as in Podman).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectMount {
    #[serde(rename = "Type")]
    pub kind: String,
    pub source: String,
    pub destination: String,
    pub driver: String,
    pub mode: String,
    pub options: Vec<String>,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub image: String,
    pub volumes: Option<BTreeMap<String, Value>>,
    pub working_dir: String,
    /// A string in Podman 4's inspect (the entrypoint joined with spaces).
    pub entrypoint: String,
    pub on_build: Option<Vec<String>>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub stop_signal: i32,
    pub create_command: Vec<String>,
    pub umask: String,
    pub timeout: u32,
    pub stop_timeout: u32,
    /// Docker's form of the healthcheck, when the container has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::monitor::health::HealthCheck>,
    /// `--health-on-failure`, by name.
    pub healthcheck_on_failure_action: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectHostConfig {
    pub binds: Vec<String>,
    pub cgroup_manager: String,
    pub cgroup_mode: String,
    #[serde(rename = "ContainerIDFile")]
    pub container_id_file: String,
    pub log_config: Value,
    pub network_mode: String,
    pub port_bindings: BTreeMap<String, Value>,
    pub restart_policy: Value,
    pub auto_remove: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub dns: Vec<String>,
    pub dns_options: Vec<String>,
    pub dns_search: Vec<String>,
    pub extra_hosts: Vec<String>,
    pub group_add: Vec<String>,
    pub ipc_mode: String,
    pub cgroup: String,
    pub cgroups: String,
    pub oom_score_adj: i32,
    pub pid_mode: String,
    pub privileged: bool,
    pub publish_all_ports: bool,
    pub readonly_rootfs: bool,
    pub security_opt: Vec<String>,
    pub tmpfs: BTreeMap<String, String>,
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    pub userns_mode: String,
    pub shm_size: u64,
    pub runtime: String,
    pub console_size: [u32; 2],
    pub cpu_shares: u64,
    pub memory: i64,
    pub memory_reservation: i64,
    pub nano_cpus: i64,
    pub cpu_period: u64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub memory_swap: i64,
    pub devices: Vec<Value>,
    pub pids_limit: i64,
    pub ulimits: Vec<Value>,
    /// `--init`
    pub init: bool,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn time_or_zero(t: Option<Timestamp>) -> String {
    t.map_or_else(|| GO_ZERO_TIME.to_owned(), Timestamp::to_rfc3339_nanos)
}

impl InspectContainer {
    pub fn from_record(record: &ContainerRecord) -> Result<Self, ContainerError> {
        let spec = spec_value(record)?;
        let options = CreateOptions::of(record)?;
        let run = &options.run;
        let args = strings(&spec["process"]["args"]);
        let caps = &spec["process"]["capabilities"];
        let bounding = strings(&caps["bounding"]);
        let effective = strings(&caps["effective"]);
        let userdata = options.userdata_dir.display().to_string();
        let in_userdata = |file: &str| options.userdata_dir.join(file).display().to_string();
        let finished = matches!(record.state, ContainerState::Exited | ContainerState::Stopped);
        let has_resolv = user_mounts_or_defaults(&spec, "/etc/resolv.conf");

        let base: Vec<&str> = DEFAULT_CAPS.iter().chain(DOCKER_DEFAULT_CAPS).copied().collect();
        let mut cap_add: Vec<String> =
            bounding.iter().filter(|c| !base.contains(&c.as_str())).cloned().collect();
        let mut cap_drop: Vec<String> = base
            .iter()
            .filter(|c| !bounding.iter().any(|b| b == *c))
            .map(|c| c.to_string())
            .collect();
        cap_add.sort();
        cap_drop.sort();

        let mut tmpfs = BTreeMap::new();
        let mut mounts = Vec::new();
        for mount in user_mounts(&spec) {
            let destination = mount["destination"].as_str().unwrap_or_default().to_owned();
            let mount_options = strings(&mount["options"]);
            match mount["type"].as_str() {
                Some("tmpfs") => {
                    tmpfs.insert(destination, mount_options.join(","));
                }
                Some("bind") => mounts.push(InspectMount {
                    kind: "bind".to_owned(),
                    source: mount["source"].as_str().unwrap_or_default().to_owned(),
                    destination,
                    driver: String::new(),
                    mode: String::new(),
                    rw: !mount_options.iter().any(|o| o == "ro"),
                    propagation: mount_options
                        .iter()
                        .find(|o| {
                            o.ends_with("private") || o.ends_with("shared") || o.ends_with("slave")
                        })
                        .cloned()
                        .unwrap_or_else(|| "rprivate".to_owned()),
                    options: mount_options,
                }),
                _ => {}
            }
        }

        let annotations: BTreeMap<String, String> = spec["annotations"]
            .as_object()
            .map(|o| {
                o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect()
            })
            .unwrap_or_default();
        let ulimits = spec["process"]["rlimits"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| json!({"Name": r["type"], "Soft": r["soft"], "Hard": r["hard"]}))
                    .collect()
            })
            .unwrap_or_default();
        let namespaces: Vec<String> = spec["linux"]["namespaces"]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n["type"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let private =
            |ns: &str| if namespaces.iter().any(|n| n == ns) { "private" } else { "host" };

        let resources = &spec["linux"]["resources"];
        let cpu_period = resources["cpu"]["period"].as_u64().unwrap_or(0);
        Ok(Self {
            id: record.id.clone(),
            created: record.created_at.to_rfc3339_nanos(),
            path: args.first().cloned().unwrap_or_default(),
            args: args.iter().skip(1).cloned().collect(),
            state: InspectState {
                oci_version: spec["ociVersion"].as_str().unwrap_or_default().to_owned(),
                status: match record.state {
                    ContainerState::Configured => "created".to_owned(),
                    other => other.as_str().to_owned(),
                },
                running: record.state == ContainerState::Running,
                paused: record.state == ContainerState::Paused,
                restarting: false,
                oom_killed: crate::stats::oom_killed(&options.userdata_dir),
                dead: false,
                pid: record.pid.unwrap_or(0),
                conmon_pid: 0,
                exit_code: record.exit_code.unwrap_or(if finished { -1 } else { 0 }),
                error: record.state_error.clone().unwrap_or_default(),
                started_at: time_or_zero(record.started_at),
                finished_at: time_or_zero(record.finished_at),
                health: health_value(&options),
                checkpointed_at: GO_ZERO_TIME.to_owned(),
                restored_at: GO_ZERO_TIME.to_owned(),
            },
            image: record.image_id.clone(),
            image_digest: options.image_digest.clone().unwrap_or_default(),
            image_name: record.image_name.clone(),
            rootfs: String::new(),
            pod: String::new(),
            resolv_conf_path: if has_resolv { in_userdata("resolv.conf") } else { String::new() },
            hostname_path: in_userdata("hostname"),
            hosts_path: in_userdata("hosts"),
            static_dir: userdata.clone(),
            oci_config_path: in_userdata("config.json"),
            oci_runtime: "berth".to_owned(),
            conmon_pid_file: in_userdata("monitor.pid"),
            pid_file: in_userdata("pidfile"),
            name: record.name.clone(),
            restart_count: crate::monitor::restart::restart_count(&options.userdata_dir),
            driver: options.storage_driver.clone(),
            mount_label: String::new(),
            process_label: String::new(),
            app_armor_profile: String::new(),
            effective_caps: effective,
            bounding_caps: bounding,
            exec_ids: Vec::new(),
            graph_driver: GraphDriver { name: options.storage_driver.clone(), data: None },
            mounts,
            dependencies: Vec::new(),
            network_settings: json!({
                "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "MacAddress": "", "Bridge": "", "SandboxID": "", "HairpinMode": false,
                "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {},
                "SandboxKey": "",
            }),
            namespace: String::new(),
            is_infra: false,
            is_service: false,
            config: InspectConfig {
                hostname: spec["hostname"].as_str().unwrap_or_default().to_owned(),
                domainname: String::new(),
                user: options.user.clone(),
                attach_stdin: run.interactive,
                attach_stdout: false,
                attach_stderr: false,
                tty: run.tty,
                open_stdin: run.interactive,
                stdin_once: false,
                env: strings(&spec["process"]["env"]),
                cmd: options.cmd.clone(),
                image: record.image_name.clone(),
                volumes: None,
                working_dir: spec["process"]["cwd"].as_str().unwrap_or("/").to_owned(),
                entrypoint: options.entrypoint.join(" "),
                on_build: None,
                labels: record.labels.clone(),
                annotations,
                stop_signal: options.stop_signal,
                create_command: options.create_command.clone(),
                umask: "0022".to_owned(),
                timeout: 0,
                stop_timeout: options.stop_timeout,
                healthcheck: options.duties.health.clone(),
                healthcheck_on_failure_action: options.duties.health_on_failure.name(),
            },
            host_config: InspectHostConfig {
                binds: Vec::new(),
                cgroup_manager: "cgroupfs".to_owned(),
                cgroup_mode: private("cgroup").to_owned(),
                container_id_file: String::new(),
                log_config: json!({
                    "Type": options.duties.log.driver.name(),
                    "Config": null,
                    "Path": options.log_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                    "Tag": "",
                    "Size": options.duties.log.size_label(),
                }),
                network_mode: options.network.as_str().to_owned(),
                port_bindings: BTreeMap::new(),
                restart_policy: json!({
                    "Name": options.duties.restart.name(),
                    "MaximumRetryCount": options.duties.restart.max_retries(),
                }),
                auto_remove: options.auto_remove,
                cap_add,
                cap_drop,
                dns: Vec::new(),
                dns_options: Vec::new(),
                dns_search: Vec::new(),
                extra_hosts: Vec::new(),
                group_add: run.group_add.clone(),
                ipc_mode: private("ipc").to_owned(),
                cgroup: String::new(),
                cgroups: "default".to_owned(),
                oom_score_adj: spec["process"]["oomScoreAdj"].as_i64().unwrap_or(0) as i32,
                pid_mode: private("pid").to_owned(),
                privileged: run.privileged,
                publish_all_ports: false,
                readonly_rootfs: run.read_only,
                security_opt: run.security_opt.clone(),
                tmpfs,
                uts_mode: private("uts").to_owned(),
                userns_mode: if namespaces.iter().any(|n| n == "user") {
                    "private".to_owned()
                } else {
                    String::new()
                },
                shm_size: shm_size(&spec),
                runtime: "oci".to_owned(),
                console_size: [0, 0],
                // The limits as the spec has them (issue 7), in Podman's fields.
                cpu_shares: resources["cpu"]["shares"].as_u64().unwrap_or(0),
                memory: resources["memory"]["limit"].as_i64().unwrap_or(0),
                memory_reservation: resources["memory"]["reservation"].as_i64().unwrap_or(0),
                nano_cpus: match (resources["cpu"]["quota"].as_i64(), cpu_period) {
                    (Some(quota), period) if period > 0 => {
                        (quota as f64 / period as f64 * 1e9) as i64
                    }
                    _ => 0,
                },
                cpu_period,
                cpu_quota: resources["cpu"]["quota"].as_i64().unwrap_or(0),
                cpuset_cpus: resources["cpu"]["cpus"].as_str().unwrap_or_default().to_owned(),
                memory_swap: resources["memory"]["swap"].as_i64().unwrap_or(0),
                devices: devices(run),
                pids_limit: spec["linux"]["resources"]["pids"]["limit"].as_i64().unwrap_or(0),
                ulimits,
                init: options.run.init.init,
            },
        })
    }
}

/// The size of the spec's /dev/shm tmpfs (`--shm-size`; 64 MiB when it says none).
fn shm_size(spec: &Value) -> u64 {
    let shm =
        spec["mounts"].as_array().into_iter().flatten().find(|m| m["destination"] == "/dev/shm");
    let size = shm
        .and_then(|m| m["options"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|o| o.as_str()?.strip_prefix("size="))
        .next_back();
    match size {
        Some(s) if s.ends_with('k') => {
            s.trim_end_matches('k').parse::<u64>().map_or(0, |k| k * 1024)
        }
        Some(s) => s.parse().unwrap_or(0),
        None => 65_536 * 1024,
    }
}

/// `--device`s as Podman lists them: the host's node, the container's path, the access.
fn devices(run: &crate::spec::RunOptions) -> Vec<Value> {
    run.resources
        .devices
        .iter()
        .filter_map(|d| crate::spec::resources::split_device(d))
        .map(|(host, container, access)| {
            json!({"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": access})
        })
        .collect()
}

/// State.Health: the healthcheck log of a container with a healthcheck, Podman's empty value
/// for one without.
fn health_value(options: &CreateOptions) -> Value {
    let state = options
        .duties
        .health
        .as_ref()
        .map(|_| crate::monitor::health::read_state(&options.userdata_dir).unwrap_or_default());
    match state {
        Some(state) => serde_json::to_value(state).unwrap_or(Value::Null),
        None => json!({"Status": "", "FailingStreak": 0, "Log": null}),
    }
}

/// Whether the spec mounts something at `destination`.
fn user_mounts_or_defaults(spec: &Value, destination: &str) -> bool {
    spec["mounts"].as_array().is_some_and(|m| m.iter().any(|m| m["destination"] == destination))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::tests::record_for;
    use crate::spec::RunOptions;

    fn keys(value: &Value) -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    fn sorted(list: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    // The resource flags show in HostConfig as Podman shows them (issue 7), and --init too.
    #[test]
    fn resource_flags_show_in_host_config() {
        let rootfs = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(rootfs.path().join("etc")).unwrap();
        std::fs::write(rootfs.path().join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
            .unwrap();
        let mut opts = RunOptions::default();
        opts.resources.memory = Some("32m".into());
        opts.resources.memory_reservation = Some("16m".into());
        opts.resources.cpus = Some("0.5".into());
        opts.resources.cpu_shares = Some(512);
        opts.resources.pids_limit = Some(10);
        opts.resources.shm_size = Some("1m".into());
        opts.resources.oom_score_adj = Some(100);
        opts.resources.devices = vec!["/dev/null:/dev/n2:r".into()];
        opts.init.init = true;
        opts.init.init_binary = Some("/var/lib/berth/init/berth-init-x".into());
        let record = record_for(opts, rootfs.path());
        let json = serde_json::to_value(InspectContainer::from_record(&record).unwrap()).unwrap();
        let host = &json["HostConfig"];
        assert_eq!(host["Memory"], 32 << 20);
        assert_eq!(host["MemoryReservation"], 16 << 20);
        assert_eq!((&host["CpuQuota"], &host["CpuPeriod"]), (&json!(50_000), &json!(100_000)));
        assert_eq!(host["NanoCpus"], 500_000_000);
        assert_eq!(host["CpuShares"], 512);
        assert_eq!(host["PidsLimit"], 10);
        assert_eq!(host["ShmSize"], 1 << 20);
        assert_eq!(host["OomScoreAdj"], 100);
        assert_eq!(
            host["Devices"],
            json!([{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n2", "CgroupPermissions": "r"}])
        );
        assert_eq!(host["Init"], true);
        assert_eq!((&json["Path"], &json["Args"][0]), (&json!("/run/berth-init"), &json!("--")));
    }

    // The same flags Podman was given for its own inspect output: field names, nesting and
    // the values berth knows must agree with Podman 4.3's.
    #[test]
    fn inspect_has_podmans_shape_and_values() {
        let rootfs = tempfile::tempdir().unwrap();
        berth_testkit::busybox::rootfs(rootfs.path()).unwrap();
        let opts = RunOptions {
            command: vec!["sh".into(), "-c".into(), "true".into()],
            labels: vec!["app=web".into()],
            env: vec!["FOO=bar".into()],
            workdir: Some("/srv".into()),
            user: Some("user".into()),
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["KILL".into()],
            read_only: true,
            tmpfs: vec!["/scratch".into()],
            stop_signal: Some("SIGQUIT".into()),
            stop_timeout: Some(5),
            annotations: vec!["a=b".into()],
            ulimits: vec!["nofile=1024:2048".into()],
            tty: true,
            ..Default::default()
        };
        let record = record_for(opts, rootfs.path());
        let doc = InspectContainer::from_record(&record).unwrap();
        let json = serde_json::to_value(&doc).unwrap();

        assert_eq!(
            keys(&json),
            sorted(&[
                "Id",
                "Created",
                "Path",
                "Args",
                "State",
                "Image",
                "ImageDigest",
                "ImageName",
                "Rootfs",
                "Pod",
                "ResolvConfPath",
                "HostnamePath",
                "HostsPath",
                "StaticDir",
                "OCIConfigPath",
                "OCIRuntime",
                "ConmonPidFile",
                "PidFile",
                "Name",
                "RestartCount",
                "Driver",
                "MountLabel",
                "ProcessLabel",
                "AppArmorProfile",
                "EffectiveCaps",
                "BoundingCaps",
                "ExecIDs",
                "GraphDriver",
                "Mounts",
                "Dependencies",
                "NetworkSettings",
                "Namespace",
                "IsInfra",
                "IsService",
                "Config",
                "HostConfig",
            ])
        );
        assert_eq!(
            keys(&json["State"]),
            sorted(&[
                "OciVersion",
                "Status",
                "Running",
                "Paused",
                "Restarting",
                "OOMKilled",
                "Dead",
                "Pid",
                "ConmonPid",
                "ExitCode",
                "Error",
                "StartedAt",
                "FinishedAt",
                "Health",
                "CheckpointedAt",
                "RestoredAt",
            ])
        );
        for key in [
            "Hostname",
            "User",
            "Tty",
            "Env",
            "Cmd",
            "Image",
            "WorkingDir",
            "Entrypoint",
            "Labels",
            "Annotations",
            "StopSignal",
            "StopTimeout",
            "CreateCommand",
            "Umask",
        ] {
            assert!(json["Config"].get(key).is_some(), "Config.{key} missing");
        }
        for key in [
            "NetworkMode",
            "CapAdd",
            "CapDrop",
            "Privileged",
            "ReadonlyRootfs",
            "Tmpfs",
            "Ulimits",
            "PidsLimit",
            "AutoRemove",
            "SecurityOpt",
            "LogConfig",
            "PidMode",
            "IpcMode",
            "UTSMode",
            "GroupAdd",
        ] {
            assert!(json["HostConfig"].get(key).is_some(), "HostConfig.{key} missing");
        }

        // Values, as Podman printed them for the same container.
        assert_eq!(json["Created"], "2026-12-03T10:51:42.857105877Z");
        assert_eq!(
            (json["Path"].as_str(), json["Args"].clone()),
            (Some("sh"), json!(["-c", "true"]))
        );
        assert_eq!(json["State"]["Status"], "created");
        assert_eq!(json["State"]["StartedAt"], GO_ZERO_TIME);
        assert_eq!(json["Config"]["User"], "user");
        assert_eq!(json["Config"]["Tty"], true);
        assert_eq!(json["Config"]["Cmd"], json!(["sh", "-c", "true"]));
        assert_eq!(json["Config"]["Entrypoint"], "");
        assert_eq!(json["Config"]["WorkingDir"], "/srv");
        assert_eq!(json["Config"]["StopSignal"], 3);
        assert_eq!(json["Config"]["StopTimeout"], 5);
        assert_eq!(json["Config"]["Annotations"]["a"], "b");
        assert_eq!(json["Config"]["Labels"]["app"], "web");
        assert!(strings(&json["Config"]["Env"]).contains(&"FOO=bar".to_owned()));
        assert_eq!(json["EffectiveCaps"], json!(["CAP_NET_ADMIN"]));
        assert_eq!(json["BoundingCaps"].as_array().unwrap().len(), 11);
        assert_eq!(json["HostConfig"]["CapAdd"], json!(["CAP_NET_ADMIN"]));
        assert_eq!(
            json["HostConfig"]["CapDrop"],
            json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_MKNOD", "CAP_NET_RAW"])
        );
        assert_eq!(json["HostConfig"]["ReadonlyRootfs"], true);
        // No --network: the default bridge network, as Podman names it rootful.
        assert_eq!(json["HostConfig"]["NetworkMode"], "bridge");
        assert_eq!(json["HostConfig"]["PidsLimit"], 2048);
        assert_eq!(
            keys(&json["HostConfig"]["Tmpfs"]),
            sorted(&["/run", "/scratch", "/tmp", "/var/tmp"])
        );
        assert_eq!(json["HostConfig"]["Tmpfs"]["/scratch"], "rw,rprivate,nosuid,nodev,tmpcopyup");
        assert_eq!(
            json["HostConfig"]["Ulimits"],
            json!([
                {"Name": "RLIMIT_NOFILE", "Soft": 1024, "Hard": 2048},
                {"Name": "RLIMIT_NPROC", "Soft": 96362, "Hard": 96362},
            ])
        );
        assert_eq!(json["HostConfig"]["PidMode"], "private");
        assert_eq!(json["Mounts"], json!([]));
        assert!(json["ResolvConfPath"].as_str().unwrap().ends_with("/userdata/resolv.conf"));
        assert!(json["HostsPath"].as_str().unwrap().ends_with("/userdata/hosts"));
    }

    #[test]
    fn exited_state_reads_like_podmans() {
        let rootfs = tempfile::tempdir().unwrap();
        berth_testkit::busybox::rootfs(rootfs.path()).unwrap();
        let mut record = record_for(RunOptions::default(), rootfs.path());
        record.state = ContainerState::Exited;
        record.started_at = Some(Timestamp(1_796_295_103_000_000_000));
        record.finished_at = Some(Timestamp(1_796_295_104_500_000_000));
        record.exit_code = Some(137);
        let json = serde_json::to_value(InspectContainer::from_record(&record).unwrap()).unwrap();
        assert_eq!(json["State"]["Status"], "exited");
        assert_eq!(json["State"]["Running"], false);
        assert_eq!(json["State"]["ExitCode"], 137);
        assert_eq!(json["State"]["StartedAt"], "2026-12-03T10:51:43Z");
        assert_eq!(json["State"]["FinishedAt"], "2026-12-03T10:51:44.5Z");
        record.exit_code = None;
        record.state_error = Some("process 42 is gone and no exit code was recorded".into());
        let json = serde_json::to_value(InspectContainer::from_record(&record).unwrap()).unwrap();
        assert_eq!(json["State"]["ExitCode"], -1);
        assert_eq!(json["State"]["Error"], "process 42 is gone and no exit code was recorded");
    }
}
