//! Image config + [`RunOptions`] → OCI runtime spec, by Docker's rules and Podman's defaults.
//!
//! The command is the entrypoint followed by the command: `--entrypoint` replaces the image's
//! Entrypoint and also resets its Cmd (as in Docker), positional arguments replace the Cmd.
//! The environment, user and mounts follow [`super::env`], [`super::user`] and
//! [`super::mounts`]. Capabilities are Podman's 11 defaults with `--cap-add`/`--cap-drop`
//! applied; a non-root user keeps them only in the bounding set, and gets the explicitly added
//! ones in its effective, permitted, inheritable and ambient sets, as Podman does. The
//! seccomp profile is resolved for the bounding set into `linux.seccomp`, rule for rule what
//! Podman writes (a test compares them).
//!
//! What `--privileged` turns off, exactly: the capability limit (every capability the kernel
//! has, minus any `--cap-drop`), the seccomp filter (unless a profile file is given
//! explicitly), the masked paths and the read-only paths, the read-only /sys and
//! /sys/fs/cgroup (both become writable), and the device restriction (the device cgroup allows
//! every device and all of the host's devices appear in /dev). It does not turn off the
//! namespaces (the container still has its own pid, mount, ipc, uts and, unless
//! `--network host`, network namespace; rootless, still its user namespace), nor
//! `no-new-privileges` when that is asked for. berth applies no SELinux or AppArmor
//! confinement, so there is none for it to turn off.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_image::config::ContainerConfig;
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use super::caps::{self, DEFAULT_CAPS};
use super::env::{Environment, DEFAULT_PATH};
use super::mounts::{self, EtcFiles, MountContext, MASKED_PATHS, READONLY_PATHS};
use super::options::{
    parse_key_values, parse_signal, NetworkMode, RunOptions, SeccompChoice, SecurityOpts,
    TmpfsMount, Ulimit, DEFAULT_STOP_TIMEOUT,
};
use super::user::{self, ResolvedUser};
use super::SpecError;

/// The runtime-spec version berth writes.
pub const OCI_VERSION: &str = "1.2.0";

/// Podman's default limits (rootful); berth never asks for more than the host's hard limit,
/// which on this machine is 20000 open files, well below Podman's 1048576.
pub const DEFAULT_NOFILE: u64 = 1_048_576;
pub const DEFAULT_NPROC: u64 = 1_048_576;

/// Podman's default pids limit (containers.conf `pids_limit`).
pub const DEFAULT_PIDS_LIMIT: i64 = 2048;

/// One user-namespace id range: container ids `container_id..+size` are host ids
/// `host_id..+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

impl IdMap {
    fn contains_container_id(&self, id: u32) -> bool {
        id >= self.container_id
            && u64::from(id) < u64::from(self.container_id) + u64::from(self.size)
    }
}

/// Facts about the host the spec depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// berth runs without root: the container gets a user namespace with these maps.
    pub rootless: bool,
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
    /// The hard RLIMIT_NOFILE and RLIMIT_NPROC of berth itself: the most a container may get.
    pub nofile_hard: u64,
    pub nproc_hard: u64,
    /// /sys/fs/cgroup is cgroup v2 (then the container gets a cgroup namespace, as Podman's).
    pub cgroup_v2: bool,
    /// The host's hostname, which `--network host` containers take.
    pub hostname: String,
    /// Where `--privileged` looks for the host's devices (normally /dev).
    pub dev_dir: PathBuf,
}

impl HostInfo {
    /// This host as berth sees it. Rootless (berth's effective uid is not 0), the user
    /// namespace maps come from /etc/subuid and /etc/subgid for that user, and a user without
    /// ranges is an error saying how to add them.
    pub fn detect() -> Result<Self, SpecError> {
        let hard = |resource| {
            let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: getrlimit writes one rlimit into `limit`, which lives for the call.
            let rc = unsafe { libc::getrlimit(resource, &mut limit) };
            if rc == 0 {
                limit.rlim_max
            } else {
                u64::MAX
            }
        };
        // f_type's integer type differs between architectures, hence the casts.
        #[allow(clippy::unnecessary_cast)]
        let cgroup_v2 = rustix::fs::statfs("/sys/fs/cgroup")
            .map(|s| s.f_type as i64 == libc::CGROUP2_SUPER_MAGIC as i64)
            .unwrap_or(false);
        // Rootless inside berth's per-user namespace the maps are empty (rootless engineer's edit).
        let (rootless, uid_map, gid_map) = super::idmap::host_maps(host_user_name)?;
        Ok(Self {
            rootless,
            uid_map,
            gid_map,
            nofile_hard: hard(libc::RLIMIT_NOFILE),
            // Rootless, capped at pid_max as Podman's is (rootless engineer's edit).
            nproc_hard: super::idmap::rootless_nproc(rootless, hard(libc::RLIMIT_NPROC)),
            cgroup_v2,
            hostname: rustix::system::uname().nodename().to_string_lossy().into_owned(),
            dev_dir: PathBuf::from("/dev"),
        })
    }
}

/// The host's name for uid `uid` (/etc/passwd), or the number itself: /etc/subuid may list a
/// user by either.
fn host_user_name(uid: u32) -> Result<String, SpecError> {
    let passwd = match std::fs::read_to_string("/etc/passwd") {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(SpecError::ReadHostFile { path: "/etc/passwd".into(), source }),
    };
    Ok(passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
        })
        .unwrap_or_else(|| uid.to_string()))
}

/// Everything spec generation reads.
pub struct SpecInput<'a> {
    /// The container's id (its first 12 digits are the default hostname).
    pub id: &'a str,
    /// The image's `config` object, if the image has one.
    pub image: Option<&'a ContainerConfig>,
    /// The container's root file system as the runtime will see it (the mounted overlay);
    /// users and groups are looked up in it.
    pub rootfs: &'a Path,
    pub options: &'a RunOptions,
    pub host: &'a HostInfo,
    /// The container's runtime directory, where /etc/hosts and friends are kept.
    pub userdata_dir: &'a Path,
    /// The cgroup the container goes into, as the runtime spec names it.
    pub cgroups_path: Option<String>,
    /// berth's own environment, for `-e KEY` and env-file lines without a value.
    pub host_env: &'a dyn Fn(&str) -> Option<String>,
    /// All of berth's environment, for `-e PREFIX*`.
    pub host_vars: &'a dyn Fn() -> Vec<(String, String)>,
}

/// berth's own process environment, for [`SpecInput::host_env`].
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// All of berth's own environment, for [`SpecInput::host_vars`].
pub fn process_vars() -> Vec<(String, String)> {
    std::env::vars().collect()
}

/// The spec and what goes with it into the container record.
#[derive(Debug, Clone)]
pub struct GeneratedSpec {
    pub spec: Spec,
    /// Which seccomp filter was chosen; its resolved rules are in `spec.linux.seccomp`.
    pub seccomp: SeccompChoice,
    pub stop_signal: i32,
    pub stop_timeout: u32,
    /// The image's labels overlaid with `--label`: the container's labels.
    pub labels: BTreeMap<String, String>,
    pub etc_files: EtcFiles,
    /// The entrypoint and command the process line was made of (inspect shows them apart).
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// The user as given (`-u`, else the image's User), before resolution.
    pub user_spec: String,
    pub user: ResolvedUser,
    pub network: NetworkMode,
    pub hostname: String,
}

/// Builds the runtime spec. Every input is validated first; nothing is written.
pub fn generate(input: &SpecInput<'_>) -> Result<GeneratedSpec, SpecError> {
    let opts = input.options;
    let image = input.image.cloned().unwrap_or_default();

    // Parse every flag before using any, so the first bad one is reported alone.
    let network = NetworkMode::parse(opts.network.as_deref())?;
    let security = SecurityOpts::parse(&opts.security_opt)?;
    let ulimits: Vec<Ulimit> =
        opts.ulimits.iter().map(|u| Ulimit::parse(u)).collect::<Result<_, _>>()?;
    let tmpfs: Vec<TmpfsMount> =
        opts.tmpfs.iter().map(|t| TmpfsMount::parse(t)).collect::<Result<_, _>>()?;
    let user_labels = parse_key_values("--label", &opts.labels)?;
    let annotations = parse_key_values("--annotation", &opts.annotations)?;
    let stop_signal = match (&opts.stop_signal, &image.stop_signal) {
        (Some(flag), _) => parse_signal(flag)?,
        (None, Some(from_image)) if !from_image.is_empty() => parse_signal(from_image)?,
        _ => 15,
    };

    let (entrypoint, cmd) = command_line(opts, &image)?;
    let args: Vec<String> = entrypoint.iter().chain(&cmd).cloned().collect();
    let cwd = match opts
        .workdir
        .as_deref()
        .filter(|w| !w.is_empty())
        .or(image.working_dir.as_deref().filter(|w| !w.is_empty()))
    {
        None => "/".to_owned(),
        Some(dir) if dir.starts_with('/') => dir.to_owned(),
        Some(dir) => return Err(SpecError::WorkdirNotAbsolute { dir: dir.to_owned() }),
    };
    let hostname = match &opts.hostname {
        Some(name) => {
            check_hostname(name)?;
            name.clone()
        }
        None if network == NetworkMode::Host => input.host.hostname.clone(),
        None => input.id.chars().take(12).collect(),
    };

    let user_spec = opts.user.as_deref().or(image.user.as_deref()).unwrap_or("");
    let user = user::resolve(input.rootfs, user_spec, &opts.group_add)?;

    let mut env = Environment::default();
    env.extend_from_image(image.env.as_deref().unwrap_or_default());
    for file in &opts.env_files {
        env.add_file(file, input.host_env)?;
    }
    for entry in &opts.env {
        env.add_flag(entry, input.host_env, input.host_vars)?;
    }
    env.set_default("PATH", DEFAULT_PATH);
    if opts.tty {
        env.set_default("TERM", "xterm");
    }
    env.set_default("container", "berth");
    env.set_default("HOME", &user.home);
    env.set_default("HOSTNAME", &hostname);

    let capabilities = capabilities(opts, &user)?;
    let seccomp = match security.seccomp {
        SeccompChoice::Default if opts.privileged => SeccompChoice::Unconfined,
        choice => choice,
    };
    let bounding: Vec<String> = capabilities["bounding"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let seccomp_filter = resolve_seccomp(&seccomp, &bounding)?;
    let rlimits = rlimits(input.host, &ulimits);

    let etc_files =
        EtcFiles { dir: input.userdata_dir.to_owned(), hostname: hostname.clone(), network };
    let tty_gid_mapped = input.host.gid_map.is_empty()
        || input.host.gid_map.iter().any(|m| m.contains_container_id(5));
    let ctx = MountContext {
        privileged: opts.privileged,
        read_only: opts.read_only,
        read_only_tmpfs: opts.read_only_tmpfs,
        network,
        rootless: input.host.rootless,
        tty_gid_mapped,
    };
    let mounts = mounts::mounts(&ctx, &etc_files, &tmpfs)?;

    let mut namespaces = vec![json!({"type": "pid"})];
    if network != NetworkMode::Host {
        namespaces.push(json!({"type": "network"}));
    }
    namespaces.extend([json!({"type": "ipc"}), json!({"type": "uts"}), json!({"type": "mount"})]);
    if input.host.cgroup_v2 {
        namespaces.push(json!({"type": "cgroup"}));
    }
    // No maps: rootful, or rootless inside berth's per-user namespace, which the container shares.
    if !input.host.uid_map.is_empty() {
        namespaces.push(json!({"type": "user"}));
    }

    let mut linux = json!({ "namespaces": namespaces });
    if network != NetworkMode::Host {
        linux["sysctl"] = json!({"net.ipv4.ping_group_range": "0 0"});
    }
    if !input.host.uid_map.is_empty() {
        let maps = |maps: &[IdMap]| -> Value {
            maps.iter()
                .map(
                    |m| json!({"containerID": m.container_id, "hostID": m.host_id, "size": m.size}),
                )
                .collect()
        };
        linux["uidMappings"] = maps(&input.host.uid_map);
        linux["gidMappings"] = maps(&input.host.gid_map);
    }
    if !input.host.rootless {
        // Rootless on cgroup v1 has no delegated cgroups to limit anything with.
        linux["resources"] = json!({
            "devices": [{"allow": opts.privileged, "access": "rwm"}],
            "pids": {"limit": DEFAULT_PIDS_LIMIT},
        });
    }
    if let Some(path) = &input.cgroups_path {
        linux["cgroupsPath"] = json!(path);
    }
    if let Some(filter) = &seccomp_filter {
        linux["seccomp"] =
            serde_json::to_value(filter).map_err(|e| SpecError::Build(e.to_string()))?;
    }
    if opts.privileged {
        linux["devices"] = Value::Array(mounts::host_devices(&input.host.dev_dir)?);
    } else {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }

    let mut spec_annotations = annotations;
    spec_annotations
        .insert("org.opencontainers.image.stopSignal".to_owned(), stop_signal.to_string());

    let mut process = json!({
        "terminal": opts.tty,
        "user": {"uid": user.uid, "gid": user.gid, "umask": 0o022},
        "args": args,
        "env": env.to_vec(),
        "cwd": cwd,
        "capabilities": capabilities,
        "rlimits": rlimits,
    });
    if !user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(user.additional_gids);
    }
    if security.no_new_privileges {
        process["noNewPrivileges"] = json!(true);
    }

    let mut spec_json = json!({
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": input.rootfs, "readonly": opts.read_only},
        "hostname": hostname,
        "mounts": mounts,
        "annotations": spec_annotations,
        "linux": linux,
    });
    // Resources, devices and -v/--mount mounts (issue 7).
    super::resources::apply(&mut spec_json, opts, input.host)?;
    let spec: Spec =
        serde_json::from_value(spec_json).map_err(|e| SpecError::Build(e.to_string()))?;

    let mut labels = image.labels.clone().unwrap_or_default();
    labels.extend(user_labels);

    Ok(GeneratedSpec {
        spec,
        seccomp,
        stop_signal,
        stop_timeout: opts.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT),
        labels,
        etc_files,
        entrypoint,
        cmd,
        user_spec: user_spec.to_owned(),
        user,
        network,
        hostname,
    })
}

/// (entrypoint, command), by Docker's rules; the process runs the two joined.
fn command_line(
    opts: &RunOptions,
    image: &ContainerConfig,
) -> Result<(Vec<String>, Vec<String>), SpecError> {
    let (entrypoint, cmd) = match &opts.entrypoint {
        Some(value) => {
            let entrypoint = if value.is_empty() {
                Vec::new()
            } else if value.trim_start().starts_with('[') {
                serde_json::from_str::<Vec<String>>(value).map_err(|e| SpecError::Entrypoint {
                    value: value.clone(),
                    reason: e.to_string(),
                })?
            } else {
                vec![value.clone()]
            };
            // A new entrypoint makes the image's Cmd meaningless: only the user's arguments.
            (entrypoint, opts.command.clone())
        }
        None => {
            let cmd = if opts.command.is_empty() {
                image.cmd.clone().unwrap_or_default()
            } else {
                opts.command.clone()
            };
            (image.entrypoint.clone().unwrap_or_default(), cmd)
        }
    };
    if entrypoint.is_empty() && cmd.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok((entrypoint, cmd))
}

fn check_hostname(name: &str) -> Result<(), SpecError> {
    let bad =
        |reason: &str| SpecError::BadHostname { value: name.to_owned(), reason: reason.to_owned() };
    if name.is_empty() || name.len() > 64 {
        return Err(bad("a hostname has 1 to 64 characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) {
        return Err(bad("a hostname holds only letters, digits, '-', '.' and '_'"));
    }
    Ok(())
}

/// The capability sets, as JSON for the spec.
fn capabilities(opts: &RunOptions, user: &ResolvedUser) -> Result<Value, SpecError> {
    let bounding = if opts.privileged {
        let all: Vec<String> = vec!["ALL".to_owned()];
        caps::merge(DEFAULT_CAPS, &all, &opts.cap_drop)?
    } else {
        caps::merge(DEFAULT_CAPS, &opts.cap_add, &opts.cap_drop)?
    };
    // Validate the names even where they end up unused.
    let added = caps::added(&opts.cap_add)?;
    let list = |set: &std::collections::BTreeSet<String>| json!(set.iter().collect::<Vec<_>>());
    if user.uid == 0 {
        return Ok(
            json!({"bounding": list(&bounding), "effective": list(&bounding), "permitted": list(&bounding)}),
        );
    }
    // A non-root process loses its capabilities at exec unless they are ambient: it keeps
    // the defaults as a ceiling (bounding) and gets only what was explicitly added.
    let granted: std::collections::BTreeSet<String> =
        added.intersection(&bounding).cloned().collect();
    let mut out = json!({"bounding": list(&bounding), "effective": list(&granted), "permitted": list(&granted)});
    if !granted.is_empty() {
        out["inheritable"] = list(&granted);
        out["ambient"] = list(&granted);
    }
    Ok(out)
}

/// The filter for `choice`, resolved for a container whose bounding set is `caps` (rules of
/// the profile that need a capability apply only with it, as Podman resolves them): the
/// host's default profile (containers-common's file, or berth-runtime's embedded equivalent),
/// the given file, or none.
pub fn resolve_seccomp(
    choice: &SeccompChoice,
    caps: &[String],
) -> Result<Option<oci_spec::runtime::LinuxSeccomp>, SpecError> {
    use berth_runtime::seccomp::Profile;
    let profile = match choice {
        SeccompChoice::Unconfined => return Ok(None),
        SeccompChoice::Default => Profile::host_default().map_err(SpecError::Seccomp)?,
        SeccompChoice::File(path) => Profile::from_path(path).map_err(SpecError::Seccomp)?,
    };
    Ok(Some(profile.resolve(caps)))
}

/// Podman's default NOFILE and NPROC, clamped to the host's hard limits, then `--ulimit`.
fn rlimits(host: &HostInfo, ulimits: &[Ulimit]) -> Value {
    let mut out: Vec<(String, u64, u64)> = Vec::new();
    let name = |kind: oci_spec::runtime::PosixRlimitType| {
        serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let nofile = DEFAULT_NOFILE.min(host.nofile_hard);
    let nproc = DEFAULT_NPROC.min(host.nproc_hard);
    out.push(("RLIMIT_NOFILE".to_owned(), nofile, nofile));
    out.push(("RLIMIT_NPROC".to_owned(), nproc, nproc));
    for ulimit in ulimits {
        let kind = name(ulimit.kind);
        match out.iter_mut().find(|(k, _, _)| *k == kind) {
            Some(entry) => *entry = (kind, ulimit.soft, ulimit.hard),
            None => out.push((kind, ulimit.soft, ulimit.hard)),
        }
    }
    out.into_iter()
        .map(|(kind, soft, hard)| json!({"type": kind, "soft": soft, "hard": hard}))
        .collect()
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
