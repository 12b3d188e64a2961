//! The file system a container sees besides its image: Podman's default mounts, its masked
//! and read-only paths, `--tmpfs` and `--read-only`'s tmpfs mounts, the per-container
//! /etc/hosts, /etc/hostname and /etc/resolv.conf, and the host's devices for `--privileged`.
//!
//! The defaults are the ones `podman create` writes to config.json (Podman 4.3 here, checked
//! by a test that runs it), with one deliberate difference: /dev/shm is a tmpfs the runtime
//! mounts inside the container's mount namespace rather than a host-side tmpfs bind-mounted
//! in, so nothing stays mounted on the host when the container is gone; with a private IPC
//! namespace the two are the same to the container.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use super::options::{NetworkMode, TmpfsMount};
use super::SpecError;

/// Podman's masked paths: bind-mounted over with /dev/null (files) or an empty read-only
/// tmpfs (directories), so the container cannot read them.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/fs/selinux",
    "/sys/dev/block",
];

/// Podman's read-only paths: remounted read-only inside the container.
pub const READONLY_PATHS: &[&str] =
    &["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Where `--read-only` puts writable tmpfs mounts (unless `--read-only-tmpfs=false`).
pub const READ_ONLY_TMPFS: &[&str] = &["/run", "/tmp", "/var/tmp"];

/// One mount of the spec, serialised as the runtime spec writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountEntry {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

impl MountEntry {
    fn new(destination: &str, kind: &str, source: &str, options: &[&str]) -> Self {
        Self {
            destination: destination.to_owned(),
            kind: kind.to_owned(),
            source: source.to_owned(),
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    fn depth(&self) -> usize {
        self.destination.split('/').filter(|p| !p.is_empty()).count()
    }
}

/// What shapes the default mounts.
#[derive(Debug, Clone, Copy)]
pub struct MountContext {
    pub privileged: bool,
    pub read_only: bool,
    pub read_only_tmpfs: bool,
    pub network: NetworkMode,
    pub rootless: bool,
    /// Whether gid 5 (tty) exists in the container's user namespace, for devpts's `gid=5`.
    pub tty_gid_mapped: bool,
}

/// All mounts of a container, ordered parents first (a stable sort by path depth, as Podman
/// orders them): Podman's defaults, the /etc files from `etc`, then `--tmpfs` and the
/// `--read-only` tmpfs mounts. A `--tmpfs` on a default's destination replaces the default;
/// two `--tmpfs` on one destination are an error.
pub fn mounts(
    ctx: &MountContext,
    etc: &EtcFiles,
    tmpfs: &[TmpfsMount],
) -> Result<Vec<MountEntry>, SpecError> {
    let mut out = vec![
        MountEntry::new("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        MountEntry::new(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "noexec", "strictatime", "mode=755", "size=65536k"],
        ),
    ];
    // Mounting a fresh sysfs needs a network namespace owned by the mounting user namespace;
    // rootless with the host's network has neither, so it binds the host's /sys read-only.
    out.push(match (ctx.privileged, ctx.rootless && ctx.network == NetworkMode::Host) {
        (_, true) => {
            MountEntry::new("/sys", "bind", "/sys", &["rbind", "nosuid", "noexec", "nodev", "ro"])
        }
        (true, false) => MountEntry::new(
            "/sys",
            "sysfs",
            "sysfs",
            &["rprivate", "nosuid", "noexec", "nodev", "rw"],
        ),
        (false, false) => {
            MountEntry::new("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"])
        }
    });
    let mut devpts = vec!["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"];
    if ctx.tty_gid_mapped {
        devpts.push("gid=5");
    }
    out.push(MountEntry::new("/dev/pts", "devpts", "devpts", &devpts));
    out.push(MountEntry::new("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]));
    out.push(MountEntry::new(
        "/dev/shm",
        "tmpfs",
        "shm",
        &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    ));

    let etc_options: &[&str] = if ctx.read_only {
        &["bind", "rprivate", "ro", "nosuid", "noexec", "nodev"]
    } else {
        &["bind", "rprivate"]
    };
    for (destination, source) in etc.bind_mounts() {
        out.push(MountEntry::new(destination, "bind", &source.to_string_lossy(), etc_options));
    }
    let cgroup_mode = if ctx.privileged { "rw" } else { "ro" };
    out.push(MountEntry::new(
        "/sys/fs/cgroup",
        "cgroup",
        "cgroup",
        &["rprivate", "nosuid", "noexec", "nodev", "relatime", cgroup_mode],
    ));

    let mut user_destinations: Vec<&str> = Vec::new();
    for mount in tmpfs {
        if user_destinations.contains(&mount.destination.as_str()) {
            return Err(SpecError::DuplicateMount { destination: mount.destination.clone() });
        }
        user_destinations.push(&mount.destination);
    }
    out.retain(|m| !user_destinations.contains(&m.destination.as_str()));
    // Podman's --tmpfs options: the user's first, then its own; the runtime takes the first
    // of conflicting ones from the kernel's point of view (the last wins), so user options
    // such as `noexec` or `size=` still apply. As in Podman the tmpfs starts with a copy of
    // the image's files at that path (`tmpcopyup`) unless the user says `notmpcopyup`.
    let own = ["rw", "rprivate", "nosuid", "nodev"];
    for mount in tmpfs {
        let copy_up = !mount.options.iter().any(|o| o == "notmpcopyup");
        let mut options: Vec<String> =
            mount.options.iter().filter(|o| *o != "notmpcopyup").cloned().collect();
        options.extend(
            own.iter().filter(|o| !mount.options.iter().any(|u| u == *o)).map(|o| o.to_string()),
        );
        if copy_up && !options.iter().any(|o| o == "tmpcopyup") {
            options.push("tmpcopyup".to_owned());
        }
        out.push(MountEntry {
            destination: mount.destination.clone(),
            kind: "tmpfs".to_owned(),
            source: "tmpfs".to_owned(),
            options,
        });
    }
    if ctx.read_only && ctx.read_only_tmpfs {
        for destination in READ_ONLY_TMPFS {
            if !out.iter().any(|m| m.destination == *destination) {
                let options = ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"];
                out.push(MountEntry::new(destination, "tmpfs", "tmpfs", &options));
            }
        }
    }
    out.sort_by_key(MountEntry::depth);
    Ok(out)
}

/// The per-container /etc/hosts, /etc/hostname and /etc/resolv.conf, kept in the container's
/// runtime directory and bind-mounted over the image's. With `--network none` there is no
/// resolv.conf (nothing to resolve through), as with Podman; with `--network host` it is a
/// copy of the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcFiles {
    pub dir: PathBuf,
    pub hostname: String,
    pub network: NetworkMode,
}

impl EtcFiles {
    pub fn hosts_path(&self) -> PathBuf {
        self.dir.join("hosts")
    }

    pub fn hostname_path(&self) -> PathBuf {
        self.dir.join("hostname")
    }

    pub fn resolv_conf_path(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }

    fn has_resolv_conf(&self) -> bool {
        // Attached: network::engine rewrites the file with the network's DNS at start.
        matches!(self.network, NetworkMode::Host | NetworkMode::Attached)
    }

    /// (destination, source) of each file.
    pub fn bind_mounts(&self) -> Vec<(&'static str, PathBuf)> {
        let mut out =
            vec![("/etc/hostname", self.hostname_path()), ("/etc/hosts", self.hosts_path())];
        if self.has_resolv_conf() {
            out.push(("/etc/resolv.conf", self.resolv_conf_path()));
        }
        out
    }

    /// /etc/hosts: loopback names, then the container's hostname and name on 127.0.0.1. With
    /// the host's network, the host's /etc/hosts comes first, as Podman does.
    pub fn render_hosts(&self, name: &str, host_hosts: Option<&str>) -> String {
        let mut out = String::new();
        match host_hosts {
            Some(host) if self.network == NetworkMode::Host => {
                out.push_str(host);
                if !out.ends_with('\n') && !out.is_empty() {
                    out.push('\n');
                }
            }
            _ => out.push_str("127.0.0.1\tlocalhost localhost.localdomain\n::1\tlocalhost localhost.localdomain ip6-localhost ip6-loopback\n"),
        }
        if name.is_empty() || name == self.hostname {
            out.push_str(&format!("127.0.0.1\t{}\n", self.hostname));
        } else {
            out.push_str(&format!("127.0.0.1\t{} {}\n", self.hostname, name));
        }
        out
    }

    /// Writes the files (mode 0644, each replaced atomically) for a container named `name`.
    pub fn write(&self, name: &str) -> Result<(), SpecError> {
        fs::create_dir_all(&self.dir)
            .map_err(|source| SpecError::WriteEtcFile { path: self.dir.clone(), source })?;
        let host_hosts = if self.network == NetworkMode::Host {
            Some(read_host_file(Path::new("/etc/hosts"))?)
        } else {
            None
        };
        write_atomic(
            &self.hosts_path(),
            self.render_hosts(name, host_hosts.as_deref()).as_bytes(),
        )?;
        write_atomic(&self.hostname_path(), format!("{}\n", self.hostname).as_bytes())?;
        if self.has_resolv_conf() {
            let resolv = read_host_file(Path::new("/etc/resolv.conf"))?;
            write_atomic(&self.resolv_conf_path(), resolv.as_bytes())?;
        }
        Ok(())
    }
}

fn read_host_file(path: &Path) -> Result<String, SpecError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(SpecError::ReadHostFile { path: path.to_owned(), source }),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SpecError> {
    let err = |source| SpecError::WriteEtcFile { path: path.to_owned(), source };
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.set_permissions(fs::Permissions::from_mode(0o644)).map_err(err)?;
    drop(file);
    fs::rename(&tmp, path).map_err(err)
}

/// Every character and block device under `dev` (the host's /dev) as spec devices, for
/// `--privileged`, as Podman lists them: the runtime's own /dev/pts, /dev/shm and
/// /dev/mqueue, and the console it sets up itself, are left out.
pub fn host_devices(dev: &Path) -> Result<Vec<Value>, SpecError> {
    let mut out = Vec::new();
    walk_devices(dev, dev, &mut out)?;
    out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    Ok(out)
}

fn walk_devices(root: &Path, dir: &Path, out: &mut Vec<Value>) -> Result<(), SpecError> {
    let err = |source| SpecError::ScanDevices { path: dir.to_owned(), source };
    for entry in fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let first =
            relative.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
        if matches!(first.as_deref(), Some("pts" | "shm" | "mqueue" | "fd" | "console")) {
            continue;
        }
        // A device can vanish while we look (udev): skip what we cannot stat.
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        let kind = meta.file_type();
        if kind.is_dir() {
            walk_devices(root, &path, out)?;
            continue;
        }
        let typ = if kind.is_char_device() {
            "c"
        } else if kind.is_block_device() {
            "b"
        } else {
            continue;
        };
        let rdev = meta.rdev();
        out.push(json!({
            "path": Path::new("/dev").join(relative),
            "type": typ,
            "major": libc::major(rdev),
            "minor": libc::minor(rdev),
            "fileMode": meta.mode(),
            "uid": meta.uid(),
            "gid": meta.gid(),
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> MountContext {
        MountContext {
            privileged: false,
            read_only: false,
            read_only_tmpfs: true,
            network: NetworkMode::None,
            rootless: false,
            tty_gid_mapped: true,
        }
    }

    fn etc(network: NetworkMode) -> EtcFiles {
        EtcFiles { dir: PathBuf::from("/run/berth/c/abc"), hostname: "abc123".into(), network }
    }

    fn destinations(mounts: &[MountEntry]) -> Vec<&str> {
        mounts.iter().map(|m| m.destination.as_str()).collect()
    }

    #[test]
    fn default_mounts_in_podmans_order() {
        let m = mounts(&ctx(), &etc(NetworkMode::None), &[]).unwrap();
        assert_eq!(
            destinations(&m),
            [
                "/proc",
                "/dev",
                "/sys",
                "/dev/pts",
                "/dev/mqueue",
                "/dev/shm",
                "/etc/hostname",
                "/etc/hosts",
                "/sys/fs/cgroup"
            ]
        );
        assert_eq!(m[6].source, "/run/berth/c/abc/hostname");
        assert_eq!(m[6].options, ["bind", "rprivate"]);
        let host = mounts(&ctx(), &etc(NetworkMode::Host), &[]).unwrap();
        assert!(destinations(&host).contains(&"/etc/resolv.conf"));
    }

    // A --tmpfs starts with the image's files (tmpcopyup) unless the user says notmpcopyup,
    // which is berth's word and not a mount option the runtime sees.
    #[test]
    fn a_tmpfs_copies_up_unless_told_not_to() {
        let tmpfs = [
            TmpfsMount::parse("/etc:size=4m").unwrap(),
            TmpfsMount::parse("/cache:notmpcopyup").unwrap(),
        ];
        let m = mounts(&ctx(), &etc(NetworkMode::None), &tmpfs).unwrap();
        let find = |d: &str| m.iter().find(|m| m.destination == d).unwrap();
        assert_eq!(
            find("/etc").options,
            ["size=4m", "rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]
        );
        assert_eq!(find("/cache").options, ["rw", "rprivate", "nosuid", "nodev"]);
    }

    #[test]
    fn read_only_adds_tmpfs_and_read_only_etc_files() {
        let c = MountContext { read_only: true, ..ctx() };
        let tmpfs = [
            TmpfsMount::parse("/scratch:size=1m").unwrap(),
            TmpfsMount::parse("/tmp:noexec").unwrap(),
        ];
        let m = mounts(&c, &etc(NetworkMode::None), &tmpfs).unwrap();
        let find = |d: &str| m.iter().find(|m| m.destination == d).unwrap();
        let scratch = ["size=1m", "rw", "rprivate", "nosuid", "nodev", "tmpcopyup"];
        assert_eq!(find("/scratch").options, scratch);
        assert_eq!(
            find("/tmp").options,
            ["noexec", "rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]
        );
        assert_eq!(find("/var/tmp").options, ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]);
        assert_eq!(find("/run").kind, "tmpfs");
        assert_eq!(
            find("/etc/hosts").options,
            ["bind", "rprivate", "ro", "nosuid", "noexec", "nodev"]
        );
        let c = MountContext { read_only: true, read_only_tmpfs: false, ..ctx() };
        assert!(!destinations(&mounts(&c, &etc(NetworkMode::None), &[]).unwrap()).contains(&"/run"));
    }

    #[test]
    fn tmpfs_replaces_a_default_and_duplicates_fail() {
        let m = mounts(
            &ctx(),
            &etc(NetworkMode::None),
            &[TmpfsMount::parse("/dev/shm:size=1g").unwrap()],
        )
        .unwrap();
        let shm: Vec<_> = m.iter().filter(|m| m.destination == "/dev/shm").collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0].options[0], "size=1g");
        let twice = [TmpfsMount::parse("/x").unwrap(), TmpfsMount::parse("/x/").unwrap()];
        assert_eq!(
            mounts(&ctx(), &etc(NetworkMode::None), &twice).unwrap_err().to_string(),
            "duplicate mount destination /x"
        );
    }

    #[test]
    fn privileged_and_rootless_variants() {
        let m = mounts(&MountContext { privileged: true, ..ctx() }, &etc(NetworkMode::None), &[])
            .unwrap();
        assert_eq!(m[2].options, ["rprivate", "nosuid", "noexec", "nodev", "rw"]);
        assert!(m.last().unwrap().options.contains(&"rw".to_owned()));
        let c = MountContext {
            rootless: true,
            network: NetworkMode::Host,
            tty_gid_mapped: false,
            ..ctx()
        };
        let m = mounts(&c, &etc(NetworkMode::Host), &[]).unwrap();
        assert_eq!((m[2].kind.as_str(), m[2].source.as_str()), ("bind", "/sys"));
        assert!(!m[3].options.contains(&"gid=5".to_owned()));
    }

    #[test]
    fn etc_files_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let files = EtcFiles {
            dir: dir.path().join("userdata"),
            hostname: "abc123".into(),
            network: NetworkMode::None,
        };
        files.write("web").unwrap();
        assert_eq!(fs::read_to_string(files.hostname_path()).unwrap(), "abc123\n");
        let hosts = fs::read_to_string(files.hosts_path()).unwrap();
        assert!(hosts.starts_with("127.0.0.1\tlocalhost"), "{hosts}");
        assert!(hosts.ends_with("127.0.0.1\tabc123 web\n"), "{hosts}");
        assert!(!files.resolv_conf_path().exists());
        let host = EtcFiles { network: NetworkMode::Host, ..files.clone() };
        host.write("web").unwrap();
        assert_eq!(
            fs::read_to_string(host.resolv_conf_path()).unwrap(),
            fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
        );
        assert!(fs::read_to_string(host.hosts_path())
            .unwrap()
            .starts_with(&fs::read_to_string("/etc/hosts").unwrap()));
    }

    #[test]
    fn host_devices_include_null_but_not_pts() {
        let devices = host_devices(Path::new("/dev")).unwrap();
        let null = devices.iter().find(|d| d["path"] == "/dev/null").expect("/dev/null listed");
        assert_eq!(
            (null["type"].as_str(), null["major"].as_u64(), null["minor"].as_u64()),
            (Some("c"), Some(1), Some(3))
        );
        assert!(devices.iter().all(|d| !d["path"].as_str().unwrap().starts_with("/dev/pts")));
    }
}
