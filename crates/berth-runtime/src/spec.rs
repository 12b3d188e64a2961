//! Loading and validating a bundle's config.json (runtime spec, "Configuration").
//!
//! A bundle is checked once, before any work starts, so that a bad config fails at `create`
//! with one line naming the field and leaves nothing behind. Parsing goes through
//! serde_path_to_error so that even a type error names its JSON path; the checks the spec's
//! types cannot express (duplicate namespaces, a join path that is not a namespace of the
//! named type, overlapping id maps, a root that escapes the bundle) follow.

use std::collections::HashSet;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

/// What went wrong while loading a bundle; each variant names the field or file.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {field}: {message}")]
    Parse { path: PathBuf, field: String, message: String },
    #[error("config.json: {field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::Invalid { field: field.into(), message: message.into() }
}

/// A loaded, validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory, absolute.
    pub dir: PathBuf,
    /// The container's root file system, absolute and with symlinks resolved.
    pub rootfs: PathBuf,
    /// The parsed configuration.
    pub spec: Spec,
}

/// The namespace types berth knows, with their JSON names and CLONE_NEW* flags.
pub const NAMESPACES: [(&str, LinuxNamespaceType, libc::c_int); 8] = [
    ("user", LinuxNamespaceType::User, libc::CLONE_NEWUSER),
    ("pid", LinuxNamespaceType::Pid, libc::CLONE_NEWPID),
    ("network", LinuxNamespaceType::Network, libc::CLONE_NEWNET),
    ("mount", LinuxNamespaceType::Mount, libc::CLONE_NEWNS),
    ("ipc", LinuxNamespaceType::Ipc, libc::CLONE_NEWIPC),
    ("uts", LinuxNamespaceType::Uts, libc::CLONE_NEWUTS),
    ("cgroup", LinuxNamespaceType::Cgroup, libc::CLONE_NEWCGROUP),
    ("time", LinuxNamespaceType::Time, libc::CLONE_NEWTIME),
];

/// The CLONE_NEW* flag of a namespace type.
pub fn ns_flag(typ: LinuxNamespaceType) -> libc::c_int {
    NAMESPACES.iter().find(|(_, t, _)| *t == typ).map_or(0, |(_, _, f)| *f)
}

/// The JSON name of a namespace type.
pub fn ns_name(typ: LinuxNamespaceType) -> &'static str {
    NAMESPACES.iter().find(|(_, t, _)| *t == typ).map_or("?", |(n, _, _)| n)
}

impl Bundle {
    /// Loads `dir/config.json` and validates it. `need_process` is false only for callers that
    /// never start the container's process.
    pub fn load(dir: &Path, need_process: bool) -> Result<Bundle, SpecError> {
        let dir = fs::canonicalize(dir)
            .map_err(|source| SpecError::Read { path: dir.to_owned(), source })?;
        let path = dir.join("config.json");
        let bytes =
            fs::read(&path).map_err(|source| SpecError::Read { path: path.clone(), source })?;
        let spec = parse(&path, &bytes)?;
        let rootfs = validate(&dir, &spec, need_process)?;
        Ok(Bundle { dir, rootfs, spec })
    }
}

/// Parses config.json, naming the JSON path of the first error.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Spec, SpecError> {
    // A valid document is read in one typed pass; only a bad one is read again, the slow
    // way, to say where it is wrong.
    match serde_json::from_slice::<Spec>(bytes) {
        Ok(spec) => Ok(spec),
        Err(_) => parse_for_error(path, bytes),
    }
}

/// [`parse`] through a JSON tree and a path-tracking deserializer, which name the entry at
/// fault.
fn parse_for_error(path: &Path, bytes: &[u8]) -> Result<Spec, SpecError> {
    // Namespace names are checked on the raw JSON first: the typed parse only says "unknown
    // variant", and the user wants to know which entry.
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| SpecError::Parse {
        path: path.to_owned(),
        field: format!("line {} column {}", e.line(), e.column()),
        message: e.to_string(),
    })?;
    if let Some(list) = value.pointer("/linux/namespaces").and_then(|v| v.as_array()) {
        for (i, ns) in list.iter().enumerate() {
            let typ = ns.get("type").and_then(|t| t.as_str()).unwrap_or("");
            if !NAMESPACES.iter().any(|(name, _, _)| *name == typ) {
                return Err(invalid(
                    format!("linux.namespaces[{i}].type"),
                    format!("unknown namespace type {typ:?}"),
                ));
            }
        }
    }
    serde_path_to_error::deserialize::<_, Spec>(value).map_err(|e| SpecError::Parse {
        path: path.to_owned(),
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Checks what the types cannot; returns the resolved root file system.
pub fn validate(dir: &Path, spec: &Spec, need_process: bool) -> Result<PathBuf, SpecError> {
    if !spec.version().starts_with("1.") {
        return Err(invalid("ociVersion", format!("{:?} is not a 1.x version", spec.version())));
    }

    let root = spec.root().as_ref().ok_or_else(|| invalid("root", "missing"))?;
    let rootfs = resolve_root(dir, root.path())?;

    let process = spec.process().as_ref();
    if need_process && process.is_none() {
        return Err(invalid("process", "missing: a container needs a process to run"));
    }
    if let Some(process) = process {
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(invalid("process.args", "missing or empty"));
        }
        if !process.cwd().is_absolute() {
            return Err(invalid("process.cwd", format!("{:?} is not absolute", process.cwd())));
        }
        let mut seen = HashSet::new();
        for (i, rl) in process.rlimits().iter().flatten().enumerate() {
            if !seen.insert(format!("{:?}", rl.typ())) {
                return Err(invalid(format!("process.rlimits[{i}]"), "duplicate rlimit type"));
            }
            if rl.soft() > rl.hard() {
                return Err(invalid(format!("process.rlimits[{i}]"), "soft limit above hard"));
            }
        }
        check_process_extras(process)?;
    }

    let linux = spec.linux().as_ref();
    let namespaces = linux.and_then(|l| l.namespaces().as_ref()).cloned().unwrap_or_default();
    let mut seen = HashSet::new();
    for (i, ns) in namespaces.iter().enumerate() {
        let name = ns_name(ns.typ());
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                format!("linux.namespaces[{i}]"),
                format!("duplicate {name} namespace"),
            ));
        }
        if let Some(path) = ns.path() {
            check_ns_path(path, ns.typ())
                .map_err(|m| invalid(format!("linux.namespaces[{i}].path"), m))?;
        }
    }
    let new_user =
        namespaces.iter().any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    for (field, maps) in [
        ("linux.uidMappings", linux.and_then(|l| l.uid_mappings().as_ref())),
        ("linux.gidMappings", linux.and_then(|l| l.gid_mappings().as_ref())),
    ] {
        let maps = maps.map(Vec::as_slice).unwrap_or_default();
        check_id_maps(field, maps)?;
        if !maps.is_empty() && !new_user {
            return Err(invalid(field, "id mappings need a new user namespace"));
        }
        if maps.is_empty() && new_user {
            return Err(invalid(field, "a new user namespace needs id mappings"));
        }
    }
    if let Some(prop) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        if crate::mounts::propagation_flag(prop).is_none() {
            return Err(invalid(
                "linux.rootfsPropagation",
                format!("unknown propagation {prop:?}"),
            ));
        }
    }
    let has_time = namespaces.iter().any(|n| n.typ() == LinuxNamespaceType::Time);
    if linux.and_then(|l| l.time_offsets().as_ref()).is_some_and(|t| !t.is_empty()) && !has_time {
        return Err(invalid("linux.timeOffsets", "time offsets need a time namespace"));
    }
    if let Some(offsets) = linux.and_then(|l| l.time_offsets().as_ref()) {
        for clock in offsets.keys() {
            if clock != "monotonic" && clock != "boottime" {
                return Err(invalid(format!("linux.timeOffsets.{clock}"), "unknown clock"));
            }
        }
    }
    if let Some(linux) = linux {
        check_linux_extras(linux)?;
    }
    let has_uts = namespaces.iter().any(|n| n.typ() == LinuxNamespaceType::Uts);
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !has_uts {
        return Err(invalid("hostname", "setting a hostname needs a uts namespace"));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !has_uts {
        return Err(invalid("domainname", "setting a domainname needs a uts namespace"));
    }

    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        for opt in m.options().iter().flatten() {
            if crate::mounts::MountOptions::known(opt).is_none() {
                return Err(invalid(
                    format!("mounts[{i}].options"),
                    format!("unknown option {opt:?}"),
                ));
            }
        }
        // An id-mapped mount is a bind with both maps, its own or the container's.
        let options = m.options().as_deref().unwrap_or(&[]);
        let has = |o: &str| options.iter().any(|x| x == o);
        let (uid, gid) = (m.uid_mappings().as_ref(), m.gid_mappings().as_ref());
        if has("idmap") || has("ridmap") || uid.is_some() || gid.is_some() {
            let bind = m.typ().as_deref() == Some("bind") || has("bind") || has("rbind");
            if !bind {
                return Err(invalid(format!("mounts[{i}]"), "an id-mapped mount must be a bind"));
            }
            if uid.is_some() != gid.is_some() {
                return Err(invalid(
                    format!("mounts[{i}]"),
                    "uidMappings and gidMappings go together",
                ));
            }
            let container_maps =
                linux.is_some_and(|l| l.uid_mappings().is_some() && l.gid_mappings().is_some());
            if uid.is_none() && !container_maps {
                return Err(invalid(
                    format!("mounts[{i}].uidMappings"),
                    "idmap without mappings needs the container's linux.uidMappings",
                ));
            }
        }
    }

    if let Some(hooks) = spec.hooks() {
        let lists = [
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ];
        for (name, list) in lists {
            for (i, h) in list.iter().flatten().enumerate() {
                if !h.path().is_absolute() {
                    return Err(invalid(format!("hooks.{name}[{i}].path"), "not an absolute path"));
                }
                if h.timeout().is_some_and(|t| t <= 0) {
                    return Err(invalid(format!("hooks.{name}[{i}].timeout"), "must be positive"));
                }
            }
        }
    }
    Ok(rootfs)
}

const NOT_YET: &str = "not supported yet";

/// The process fields berth applies only in part: what it cannot apply is refused here,
/// before anything is made, rather than ignored. `exec` checks its process the same way.
pub fn check_process_extras(process: &oci_spec::runtime::Process) -> Result<(), SpecError> {
    if process.selinux_label().as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(invalid("process.selinuxLabel", NOT_YET));
    }
    if process.apparmor_profile().as_ref().is_some_and(|p| !p.is_empty())
        && !crate::process::apparmor_enabled()
    {
        return Err(invalid("process.apparmorProfile", "apparmor is not enabled on this host"));
    }
    if let Some(sched) = process.scheduler() {
        if crate::process::sched_policy_number(*sched.policy()).is_none() {
            return Err(invalid(
                "process.scheduler.policy",
                format!("{} is {NOT_YET}", sched.policy()),
            ));
        }
    }
    if let Some(prio) = process.io_priority() {
        if !(0..=7).contains(&prio.priority()) {
            return Err(invalid(
                "process.ioPriority.priority",
                format!("{} is not in 0..7", prio.priority()),
            ));
        }
    }
    if let Some(aff) = process.exec_cpu_affinity() {
        for (field, list) in [("initial", aff.initial()), ("final", aff.cpu_affinity_final())] {
            if let Some(list) = list {
                if crate::process::parse_cpu_list(list).is_none() {
                    return Err(invalid(
                        format!("process.execCPUAffinity.{field}"),
                        format!("{list:?} is not a cpu list"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The linux fields berth does not apply yet, refused rather than ignored.
fn check_linux_extras(linux: &oci_spec::runtime::Linux) -> Result<(), SpecError> {
    if linux
        .personality()
        .as_ref()
        .is_some_and(|p| p.flags().as_ref().is_some_and(|f| !f.is_empty()))
    {
        return Err(invalid("linux.personality.flags", NOT_YET));
    }
    if linux.intel_rdt().is_some() {
        return Err(invalid("linux.intelRdt", NOT_YET));
    }
    if linux.memory_policy().is_some() {
        return Err(invalid("linux.memoryPolicy", NOT_YET));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(invalid("linux.netDevices", NOT_YET));
    }
    Ok(())
}

/// Resolves root.path: a relative path is taken from the bundle and must stay inside it after
/// symlinks are followed; an absolute path is the caller's explicit choice (Podman points it
/// at an overlay mount outside the bundle) and must only be a directory.
fn resolve_root(dir: &Path, path: &Path) -> Result<PathBuf, SpecError> {
    if path.as_os_str().is_empty() {
        return Err(invalid("root.path", "empty"));
    }
    let joined = dir.join(path);
    let resolved = fs::canonicalize(&joined)
        .map_err(|e| invalid("root.path", format!("{}: {e}", joined.display())))?;
    if path.is_relative() && !resolved.starts_with(dir) {
        return Err(invalid(
            "root.path",
            format!("{} resolves to {}, outside the bundle", path.display(), resolved.display()),
        ));
    }
    if !resolved.is_dir() {
        return Err(invalid("root.path", format!("{} is not a directory", resolved.display())));
    }
    Ok(resolved)
}

/// A join path must open and be a namespace of the named type (NS_GET_NSTYPE).
fn check_ns_path(path: &Path, typ: LinuxNamespaceType) -> Result<(), String> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let file = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the descriptor's inode.
    let got = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if got < 0 {
        return Err(format!("{} is not a namespace", path.display()));
    }
    if got != ns_flag(typ) {
        let actual = NAMESPACES.iter().find(|(_, _, f)| *f == got).map_or("other", |n| n.0);
        return Err(format!(
            "{} is a {actual} namespace, not a {} namespace",
            path.display(),
            ns_name(typ)
        ));
    }
    Ok(())
}

/// Id maps must not overlap on either side, and must not be empty.
fn check_id_maps(field: &str, maps: &[LinuxIdMapping]) -> Result<(), SpecError> {
    for (i, a) in maps.iter().enumerate() {
        if a.size() == 0 {
            return Err(invalid(format!("{field}[{i}].size"), "must not be zero"));
        }
        for (j, b) in maps.iter().enumerate().take(i) {
            let overlap = |x: u32, y: u32| {
                let (x, y, n, m) = (x as u64, y as u64, a.size() as u64, b.size() as u64);
                x < y + m && y < x + n
            };
            if overlap(a.container_id(), b.container_id()) {
                return Err(invalid(
                    format!("{field}[{i}]"),
                    format!("containerID range overlaps {field}[{j}]"),
                ));
            }
            if overlap(a.host_id(), b.host_id()) {
                return Err(invalid(
                    format!("{field}[{i}]"),
                    format!("hostID range overlaps {field}[{j}]"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: serde_json::Value) -> (tempfile::TempDir, Result<Bundle, SpecError>) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let res = Bundle::load(dir.path(), true);
        (dir, res)
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
        })
    }

    fn err_of(config: serde_json::Value) -> String {
        bundle_with(config).1.unwrap_err().to_string()
    }

    // A minimal valid config loads and its root resolves inside the bundle.
    #[test]
    fn valid_config_loads() {
        let (dir, res) = bundle_with(base());
        let b = res.unwrap();
        assert_eq!(b.rootfs, fs::canonicalize(dir.path().join("rootfs")).unwrap());
    }

    #[test]
    fn unknown_namespace_names_the_entry() {
        let mut c = base();
        c["linux"]["namespaces"][1]["type"] = "foo".into();
        assert_eq!(
            err_of(c),
            "config.json: linux.namespaces[1].type: unknown namespace type \"foo\""
        );
    }

    #[test]
    fn duplicate_namespace_names_the_entry() {
        let mut c = base();
        c["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "pid"}]);
        assert_eq!(err_of(c), "config.json: linux.namespaces[1]: duplicate pid namespace");
    }

    #[test]
    fn join_path_that_is_not_a_namespace_is_refused() {
        let mut c = base();
        c["linux"]["namespaces"][0]["path"] = "/etc/hostname".into();
        let err = err_of(c);
        assert!(err.starts_with("config.json: linux.namespaces[0].path: "), "{err}");
        assert!(err.contains("is not a namespace"), "{err}");
        let mut c = base();
        c["linux"]["namespaces"][0]["path"] = "/proc/self/ns/net".into();
        assert!(err_of(c).contains("is a network namespace, not a pid namespace"));
    }

    #[test]
    fn overlapping_id_maps_are_refused() {
        let mut c = base();
        c["linux"]["namespaces"] = serde_json::json!([{"type": "user"}]);
        c["linux"]["uidMappings"] = serde_json::json!([
            {"containerID": 0, "hostID": 1000, "size": 10},
            {"containerID": 5, "hostID": 5000, "size": 10}
        ]);
        c["linux"]["gidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        assert_eq!(
            err_of(c),
            "config.json: linux.uidMappings[1]: containerID range overlaps linux.uidMappings[0]"
        );
    }

    #[test]
    fn missing_process_is_refused() {
        let mut c = base();
        c.as_object_mut().unwrap().remove("process");
        assert_eq!(err_of(c), "config.json: process: missing: a container needs a process to run");
    }

    #[test]
    fn root_outside_the_bundle_is_refused() {
        let mut c = base();
        c["root"]["path"] = "../..".into();
        let err = err_of(c);
        assert!(err.starts_with("config.json: root.path: ../.. resolves to"), "{err}");
        assert!(err.ends_with("outside the bundle"), "{err}");
    }

    #[test]
    fn type_errors_name_their_path() {
        let mut c = base();
        c["process"]["user"]["uid"] = "zero".into();
        let err = err_of(c);
        assert!(err.contains(": process.user.uid: "), "{err}");
    }
}
