//! The container's root file system (runtime spec, "Root", "Mounts" and the Linux
//! "Devices", "Masked Paths", "Readonly Paths" and "Rootfs Mount Propagation" sections).
//!
//! Runs inside the container's new mount namespace, in the init process, before the user's
//! process starts: make the host's mounts unreachable by propagation, bind the root onto
//! itself, apply each `mounts` entry (with every documented option, recursive ones through
//! mount_setattr(2)), set up /dev, pivot into the root (or MS_MOVE and chroot with
//! `--no-pivot`), then mask and protect paths and make the root read-only if asked.
//!
//! Destinations are resolved inside the root with symlinks clamped to it ([`secure_join`]), so
//! a rootfs whose `/dev` is a symlink to `/etc` on the host cannot turn a mount outwards.
//!
//! Two kinds of mount need more than mount(2): a `cgroup` mount in a cgroup namespace is the
//! container's own cgroupfs (one mount per host hierarchy on a tmpfs on v1, one cgroup2 mount
//! on v2), and an id-mapped bind (`idmap`, `ridmap`, or a mount's own uidMappings and
//! gidMappings) is made detached by [`prepare_idmapped`] before the init leaves the host's
//! user namespace, then moved into place.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, DirBuilderExt};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, LinuxIdMapping, Mount};

use crate::sys;

/// What went wrong while setting up the root file system; each variant is a step.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("making / {flags:#x} before binding the root: {source}")]
    PrepareRoot {
        flags: u64,
        #[source]
        source: io::Error,
    },
    #[error("binding the root {path} onto itself: {source}")]
    BindRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mounts: {destination}: option {option:?} is not supported yet")]
    Unsupported { destination: PathBuf, option: String },
    #[error("mounts: creating the mount point {path}: {source}")]
    MountPoint {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mounts: mounting {typ} {source_path} on {destination}: {source}")]
    Mount {
        typ: String,
        source_path: PathBuf,
        destination: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mounts: remounting {destination} with its options: {source}")]
    Remount {
        destination: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mounts: setting propagation of {destination}: {source}")]
    Propagation {
        destination: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mounts: setting recursive attributes of {destination}: {source}")]
    SetAttr {
        destination: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("/dev: creating {path}: {source}")]
    Device {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("pivot_root into {path}: {source}")]
    PivotRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("moving the root {path} to / (--no-pivot): {source}")]
    MoveRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mounts: {destination}: making a user namespace for the id map: {source}")]
    IdmapUserns {
        destination: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mounts: {destination}: id-mapping the bind of {source_path}: {source}")]
    Idmap {
        source_path: PathBuf,
        destination: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("masking {path}: {source}")]
    Mask {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("making {path} read-only: {source}")]
    ReadOnly {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The mount(2) flags, data string and extra steps one `options` list asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount call itself.
    pub flags: libc::c_ulong,
    /// Flags a bind mount needs a remount for (ro, nosuid, ...): bind ignores them.
    pub cleared: libc::c_ulong,
    /// Propagation changes, applied after the mount in order.
    pub propagation: Vec<libc::c_ulong>,
    /// Recursive attributes: (set, clear) for mount_setattr(2) with AT_RECURSIVE.
    pub rec_set: u64,
    pub rec_clear: u64,
    /// Options passed on to the file system.
    pub data: Vec<String>,
    /// runc's tmpcopyup: a tmpfs starts with a copy of what it covers.
    pub tmpcopyup: bool,
    /// `idmap` (false) or `ridmap` (true, recursive): an id-mapped bind mount.
    pub idmap: Option<bool>,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_RELATIME: u64 = 0x0;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR__ATIME: u64 = 0x70;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
const MS_NOSYMFOLLOW: libc::c_ulong = 256;

/// The propagation flag a rootfsPropagation or mount option names.
pub fn propagation_flag(name: &str) -> Option<libc::c_ulong> {
    Some(match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

impl MountOptions {
    /// Whether berth recognises `opt` at all; every option it does not know goes to the file
    /// system as data, so this only refuses the ones it knows and cannot do yet. Since
    /// `idmap` and `ridmap` are done, that is none.
    pub fn known(_opt: &str) -> Option<()> {
        Some(())
    }

    /// Sorts an options list into flags, propagation, recursive attributes and data.
    pub fn parse<'a>(options: impl IntoIterator<Item = &'a String>) -> Result<Self, String> {
        let mut o = MountOptions::default();
        for opt in options {
            let set = |o: &mut MountOptions, f: libc::c_ulong| {
                o.flags |= f;
                o.cleared &= !f;
            };
            let clear = |o: &mut MountOptions, f: libc::c_ulong| {
                o.flags &= !f;
                o.cleared |= f;
            };
            match opt.as_str() {
                "defaults" => {}
                "ro" => set(&mut o, libc::MS_RDONLY),
                "rw" => clear(&mut o, libc::MS_RDONLY),
                "nosuid" => set(&mut o, libc::MS_NOSUID),
                "suid" => clear(&mut o, libc::MS_NOSUID),
                "nodev" => set(&mut o, libc::MS_NODEV),
                "dev" => clear(&mut o, libc::MS_NODEV),
                "noexec" => set(&mut o, libc::MS_NOEXEC),
                "exec" => clear(&mut o, libc::MS_NOEXEC),
                "sync" => set(&mut o, libc::MS_SYNCHRONOUS),
                "async" => clear(&mut o, libc::MS_SYNCHRONOUS),
                "dirsync" => set(&mut o, libc::MS_DIRSYNC),
                "remount" => set(&mut o, libc::MS_REMOUNT),
                "mand" => set(&mut o, libc::MS_MANDLOCK),
                "nomand" => clear(&mut o, libc::MS_MANDLOCK),
                "atime" => clear(&mut o, libc::MS_NOATIME),
                "noatime" => set(&mut o, libc::MS_NOATIME),
                "diratime" => clear(&mut o, libc::MS_NODIRATIME),
                "nodiratime" => set(&mut o, libc::MS_NODIRATIME),
                "relatime" => set(&mut o, libc::MS_RELATIME),
                "norelatime" => clear(&mut o, libc::MS_RELATIME),
                "strictatime" => set(&mut o, libc::MS_STRICTATIME),
                "nostrictatime" => clear(&mut o, libc::MS_STRICTATIME),
                "lazytime" => set(&mut o, libc::MS_LAZYTIME),
                "nolazytime" => clear(&mut o, libc::MS_LAZYTIME),
                "silent" => set(&mut o, libc::MS_SILENT),
                "loud" => clear(&mut o, libc::MS_SILENT),
                "nosymfollow" => set(&mut o, MS_NOSYMFOLLOW),
                "symfollow" => clear(&mut o, MS_NOSYMFOLLOW),
                "tmpcopyup" => o.tmpcopyup = true,
                "idmap" => o.idmap = Some(o.idmap == Some(true)),
                "ridmap" => o.idmap = Some(true),
                "bind" => o.flags |= libc::MS_BIND,
                "rbind" => o.flags |= libc::MS_BIND | libc::MS_REC,
                "rro" => o.rec_set |= MOUNT_ATTR_RDONLY,
                "rrw" => o.rec_clear |= MOUNT_ATTR_RDONLY,
                "rnosuid" => o.rec_set |= MOUNT_ATTR_NOSUID,
                "rsuid" => o.rec_clear |= MOUNT_ATTR_NOSUID,
                "rnodev" => o.rec_set |= MOUNT_ATTR_NODEV,
                "rdev" => o.rec_clear |= MOUNT_ATTR_NODEV,
                "rnoexec" => o.rec_set |= MOUNT_ATTR_NOEXEC,
                "rexec" => o.rec_clear |= MOUNT_ATTR_NOEXEC,
                "rnodiratime" => o.rec_set |= MOUNT_ATTR_NODIRATIME,
                "rdiratime" => o.rec_clear |= MOUNT_ATTR_NODIRATIME,
                "rnosymfollow" => o.rec_set |= MOUNT_ATTR_NOSYMFOLLOW,
                "rsymfollow" => o.rec_clear |= MOUNT_ATTR_NOSYMFOLLOW,
                "rrelatime" => {
                    o.rec_clear |= MOUNT_ATTR__ATIME;
                    o.rec_set |= MOUNT_ATTR_RELATIME;
                }
                "rnoatime" => {
                    o.rec_clear |= MOUNT_ATTR__ATIME;
                    o.rec_set |= MOUNT_ATTR_NOATIME;
                }
                "rstrictatime" => {
                    o.rec_clear |= MOUNT_ATTR__ATIME;
                    o.rec_set |= MOUNT_ATTR_STRICTATIME;
                }
                "ratime" | "rnorelatime" | "rnostrictatime" => o.rec_clear |= MOUNT_ATTR__ATIME,
                other if propagation_flag(other).is_some() => {
                    o.propagation.extend(propagation_flag(other));
                }
                other if Self::known(other).is_none() => return Err(other.to_owned()),
                other => o.data.push(other.to_owned()),
            }
        }
        Ok(o)
    }
}

/// Resolves `path` under `root` the way the container will see it: `..` and absolute symlinks
/// stop at the root. The result is a host path inside `root`; missing tails are kept as given.
pub fn secure_join(root: &Path, path: &Path) -> PathBuf {
    let mut parts: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> =
        path.components().rev().filter_map(component_name).collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            parts.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&parts);
        candidate.push(&part);
        match fs::read_link(&candidate) {
            Ok(target) if links < 255 => {
                links += 1;
                if target.is_absolute() {
                    parts.clear();
                }
                pending.extend(target.components().rev().filter_map(component_name));
            }
            _ => parts.push(part),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(parts);
    out
}

fn component_name(c: Component<'_>) -> Option<std::ffi::OsString> {
    match c {
        Component::Normal(n) => Some(n.to_owned()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    }
}

/// Everything [`setup_rootfs`] needs besides the mounts list.
pub struct RootfsConfig<'a> {
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub mounts: &'a [Mount],
    pub devices: &'a [LinuxDevice],
    pub propagation: Option<&'a str>,
    /// True in a user namespace not owned by the initial one: mknod is refused there, so
    /// devices are bind mounted from the host instead.
    pub in_userns: bool,
    /// True when a new cgroup namespace was made.
    pub cgroupns: bool,
    /// The id-mapped trees made by [`prepare_idmapped`], by index into `mounts`.
    pub idmapped: &'a [Option<std::os::fd::OwnedFd>],
}

/// Mounts everything below the root, before the pivot.
pub fn setup_rootfs(cfg: &RootfsConfig<'_>) -> Result<(), MountError> {
    // Nothing mounted from here on may reach the host by propagation; slave by default, as
    // runc does, so that host mounts still reach the container.
    let flags = cfg.propagation.and_then(propagation_flag).unwrap_or(libc::MS_SLAVE | libc::MS_REC)
        | libc::MS_REC;
    sys::mount(None, Path::new("/"), None, flags, None)
        .map_err(|source| MountError::PrepareRoot { flags, source })?;
    make_parent_private(cfg.rootfs);

    // The root must be a mount point of its own for pivot_root.
    sys::mount(Some(cfg.rootfs), cfg.rootfs, None, libc::MS_BIND | libc::MS_REC, None)
        .map_err(|source| MountError::BindRoot { path: cfg.rootfs.to_owned(), source })?;

    let mut dev_mounted = false;
    for (i, m) in cfg.mounts.iter().enumerate() {
        if let Some(Some(tree)) = cfg.idmapped.get(i) {
            mount_idmapped(cfg, m, tree)?;
            continue;
        }
        if m.destination() == Path::new("/dev") {
            dev_mounted = m.typ().as_deref() != Some("bind")
                && !m.options().iter().flatten().any(|o| o == "bind" || o == "rbind");
        }
        mount_one(cfg, m)?;
    }
    let dev_from_spec = cfg.mounts.iter().any(|m| m.destination() == Path::new("/dev"));
    if dev_mounted || !dev_from_spec {
        default_devices(cfg)?;
    }
    for d in cfg.devices {
        create_device(cfg, d)?;
    }
    Ok(())
}

/// pivot_root needs the root's parent mount not to be shared: make just that one private.
fn make_parent_private(rootfs: &Path) {
    let mut dir = rootfs.parent();
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else { return };
    let points: Vec<PathBuf> =
        info.lines().filter_map(|l| l.split(' ').nth(4)).map(unescape_mountinfo).collect();
    while let Some(d) = dir {
        if points.iter().any(|p| p == d) {
            let _ = sys::mount(None, d, None, libc::MS_PRIVATE, None);
            return;
        }
        dir = d.parent();
    }
}

/// Copies a directory tree (files, directories, symlinks, device nodes skipped) keeping
/// modes and owners; for tmpcopyup, where the tree is an image's small /tmp or /run.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let md = fs::symlink_metadata(from)?;
    fs::set_permissions(to, fs::Permissions::from_mode(md.mode() & 0o7777))?;
    let _ = std::os::unix::fs::lchown(to, Some(md.uid()), Some(md.gid()));
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let md = fs::symlink_metadata(&src)?;
        let ft = md.file_type();
        if ft.is_dir() {
            fs::create_dir(&dst)?;
            copy_tree(&src, &dst)?;
        } else if ft.is_symlink() {
            symlink(fs::read_link(&src)?, &dst)?;
        } else if ft.is_file() {
            fs::copy(&src, &dst)?;
        } else {
            continue;
        }
        let _ = std::os::unix::fs::lchown(&dst, Some(md.uid()), Some(md.gid()));
    }
    Ok(())
}

fn unescape_mountinfo(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(OsStr::from_bytes(&out))
}

fn mount_one(cfg: &RootfsConfig<'_>, m: &Mount) -> Result<(), MountError> {
    let destination = m.destination().clone();
    let opts = MountOptions::parse(m.options().iter().flatten())
        .map_err(|option| MountError::Unsupported { destination: destination.clone(), option })?;
    let typ = m.typ().clone().unwrap_or_default();
    let is_bind = opts.flags & libc::MS_BIND != 0 || typ == "bind";
    let target = secure_join(cfg.rootfs, &destination);
    let source = m.source().clone().unwrap_or_default();

    if is_bind {
        let source = if source.is_relative() { cfg.bundle.join(&source) } else { source };
        make_mount_point(&target, source.is_dir())?;
        bind(&source, &target, opts.flags | libc::MS_BIND, &destination)?;
        remount_bind(&target, &opts, &destination)?;
    } else if (typ == "cgroup" || typ == "cgroup2") && cfg.cgroupns {
        make_mount_point(&target, true)?;
        match mount_cgroupfs(&target, &opts, &destination) {
            Ok(()) => {}
            // A user namespace that may not mount a hierarchy gets the host's, bound.
            Err(MountError::Mount { source, .. })
                if cfg.in_userns && source.raw_os_error() == Some(libc::EPERM) =>
            {
                bind_host_cgroup(&target, &opts, &destination)?;
            }
            Err(e) => return Err(e),
        }
    } else if typ == "cgroup" || typ == "cgroup2" {
        // Without a cgroup namespace the container still sees only its own cgroups: each
        // hierarchy's directory of this process (the init is in its cgroups by now), bound.
        make_mount_point(&target, true)?;
        bind_own_cgroups(&target, &opts, &destination)?;
    } else {
        make_mount_point(&target, true)?;
        let data = opts.data.join(",");
        // With tmpcopyup, keep hold of the directory the tmpfs will cover: its descriptor
        // still reaches the covered contents once the tmpfs is on top.
        let covered = if opts.tmpcopyup && typ == "tmpfs" {
            Some(
                fs::File::open(&target)
                    .map_err(|source| MountError::MountPoint { path: target.clone(), source })?,
            )
        } else {
            None
        };
        let res = sys::mount(Some(&source), &target, Some(&typ), opts.flags, Some(&data));
        match res {
            Ok(()) => {
                if let Some(dir) = covered {
                    use std::os::fd::AsRawFd;
                    let from = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
                    copy_tree(&from, &target).map_err(|source| MountError::Mount {
                        typ: "tmpfs (tmpcopyup)".into(),
                        source_path: from.clone(),
                        destination: destination.clone(),
                        source,
                    })?;
                }
            }
            // In a user namespace sysfs needs a network namespace it owns and mqueue an ipc
            // namespace it owns: fall back to binding the host's, as runc does.
            Err(e)
                if cfg.in_userns
                    && e.raw_os_error() == Some(libc::EPERM)
                    && (typ == "sysfs" || typ == "mqueue") =>
            {
                let host = if typ == "sysfs" { "/sys" } else { "/dev/mqueue" };
                bind(Path::new(host), &target, libc::MS_BIND | libc::MS_REC, &destination)?;
                let mut ro = opts.clone();
                ro.cleared |= libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                remount_bind(&target, &ro, &destination)?;
            }
            Err(source_err) => {
                return Err(MountError::Mount {
                    typ,
                    source_path: source,
                    destination,
                    source: source_err,
                })
            }
        }
    }

    for flag in &opts.propagation {
        sys::mount(None, &target, None, *flag, None).map_err(|source| MountError::Propagation {
            destination: destination.clone(),
            source,
        })?;
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        set_attr(&target, opts.rec_set, opts.rec_clear, &destination)?;
    }
    Ok(())
}

/// A user namespace holding `maps` (uid, gid) for an id-mapped mount: a child unshares one
/// and waits while its maps are written; its /proc ns file stays open after it is gone.
fn idmap_userns(maps: (&[LinuxIdMapping], &[LinuxIdMapping])) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    let (parent, child) = sys::seqpacket_pair()?;
    let pid = match sys::fork()? {
        sys::Fork::Child => {
            drop(parent);
            let ok = sys::unshare(libc::CLONE_NEWUSER).is_ok();
            let _ = sys::write_all(&child, if ok { b"1" } else { b"0" });
            // Wait for the parent to be done with our namespace: end of file.
            let mut b = [0u8; 1];
            // SAFETY: b is a valid buffer of the length passed.
            unsafe { libc::read(child.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
            sys::exit_child(0)
        }
        sys::Fork::Parent(pid) => pid,
    };
    drop(child);
    let res = (|| {
        let mut b = [0u8; 1];
        // SAFETY: b is a valid buffer of the length passed.
        let n = unsafe { libc::read(parent.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        if n != 1 || b[0] != b'1' {
            return Err(io::Error::other("the helper could not unshare a user namespace"));
        }
        let text = |m: &[LinuxIdMapping]| {
            m.iter()
                .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                .collect::<String>()
        };
        fs::write(format!("/proc/{pid}/uid_map"), text(maps.0))?;
        fs::write(format!("/proc/{pid}/gid_map"), text(maps.1))?;
        sys::open(Path::new(&format!("/proc/{pid}/ns/user")), libc::O_RDONLY | libc::O_CLOEXEC, 0)
    })();
    drop(parent);
    let _ = sys::waitpid(pid);
    res
}

/// Whether a mount asks for an id-mapped bind: option `idmap` or `ridmap`, or maps of its own.
pub(crate) fn wants_idmap(m: &Mount) -> bool {
    m.options().iter().flatten().any(|o| o == "idmap" || o == "ridmap")
        || m.uid_mappings().is_some()
        || m.gid_mappings().is_some()
}

/// Makes the id-mapped trees of every mount that asks for one (mount options `idmap` and
/// `ridmap`, or the mount's own uidMappings and gidMappings), indexed like `mounts`.
///
/// The kernel lets only a holder of CAP_SYS_ADMIN over the file system's superblock (the
/// host's user namespace) id-map a mount, and only while it is still detached: so this runs
/// in the init's first stage, before it enters the container's user namespace. Each tree is
/// a detached copy of the source (open_tree(2) OPEN_TREE_CLONE, recursive for rbind) given
/// MOUNT_ATTR_IDMAP with a user namespace holding the maps (mount_setattr(2), recursive with
/// `ridmap`); [`setup_rootfs`] moves it into place. An `idmap` without maps of its own maps
/// as the container's user namespace does. A file owned by id N on disk then shows as the
/// host id N maps to.
pub fn prepare_idmapped(
    mounts: &[Mount],
    bundle: &Path,
    container_maps: (&[LinuxIdMapping], &[LinuxIdMapping]),
) -> Result<Vec<Option<std::os::fd::OwnedFd>>, MountError> {
    let mut out = Vec::with_capacity(mounts.len());
    for m in mounts {
        if !wants_idmap(m) {
            out.push(None);
            continue;
        }
        let dest = m.destination();
        let opts = MountOptions::parse(m.options().iter().flatten())
            .map_err(|option| MountError::Unsupported { destination: dest.clone(), option })?;
        let source = m.source().clone().unwrap_or_default();
        let source = if source.is_relative() { bundle.join(&source) } else { source };
        let maps = match (m.uid_mappings().as_deref(), m.gid_mappings().as_deref()) {
            (Some(u), Some(g)) => (u, g),
            _ => container_maps,
        };
        let tree = idmapped_tree(&source, opts.flags, opts.idmap == Some(true), maps, dest)?;
        out.push(Some(tree));
    }
    Ok(out)
}

fn idmapped_tree(
    source: &Path,
    flags: libc::c_ulong,
    recursive: bool,
    maps: (&[LinuxIdMapping], &[LinuxIdMapping]),
    dest: &Path,
) -> Result<std::os::fd::OwnedFd, MountError> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let err = |source_err: io::Error| MountError::Idmap {
        source_path: source.to_owned(),
        destination: dest.to_owned(),
        source: source_err,
    };
    if maps.0.is_empty() || maps.1.is_empty() {
        return Err(err(io::Error::other("no uidMappings and gidMappings to map ids with")));
    }
    let userns = idmap_userns(maps)
        .map_err(|source| MountError::IdmapUserns { destination: dest.to_owned(), source })?;
    let src = sys::cstr(source).map_err(err)?;
    let mut open_flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if flags & libc::MS_REC != 0 {
        open_flags |= AT_RECURSIVE;
    }
    // SAFETY: src is a NUL-terminated path alive for the call; open_tree only reads it.
    let fd =
        unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, src.as_ptr(), open_flags) };
    let fd = sys::cvt(fd as libc::c_int).map_err(err)?;
    // SAFETY: open_tree returned a new descriptor that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd) };

    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let set_flags = libc::AT_EMPTY_PATH as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: tree is an open mount descriptor, the empty path a NUL-terminated string and
    // attr a mount_attr of the size passed, all alive for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            set_flags,
            &attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    sys::cvt(ret as libc::c_int).map_err(err)?;
    Ok(tree)
}

/// Moves a tree made by [`prepare_idmapped`] onto the mount's destination (move_mount(2)),
/// then applies the mount's flags and propagation as for any bind.
fn mount_idmapped(
    cfg: &RootfsConfig<'_>,
    m: &Mount,
    tree: &std::os::fd::OwnedFd,
) -> Result<(), MountError> {
    use std::os::fd::AsRawFd;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let destination = m.destination().clone();
    let opts = MountOptions::parse(m.options().iter().flatten())
        .map_err(|option| MountError::Unsupported { destination: destination.clone(), option })?;
    let source = m.source().clone().unwrap_or_default();
    let source = if source.is_relative() { cfg.bundle.join(&source) } else { source };
    let target = secure_join(cfg.rootfs, &destination);
    make_mount_point(&target, source.is_dir())?;
    let err = |source_err: io::Error| MountError::Idmap {
        source_path: source.clone(),
        destination: destination.clone(),
        source: source_err,
    };
    let to = sys::cstr(&target).map_err(err)?;
    // SAFETY: tree is an open detached mount; both strings are NUL-terminated and alive.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    sys::cvt(ret as libc::c_int).map_err(err)?;
    remount_bind(&target, &opts, &destination)?;
    for flag in &opts.propagation {
        sys::mount(None, &target, None, *flag, None).map_err(|source| MountError::Propagation {
            destination: destination.clone(),
            source,
        })?;
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        set_attr(&target, opts.rec_set, opts.rec_clear, &destination)?;
    }
    Ok(())
}

/// Binds the host's /sys/fs/cgroup (read-only, recursively, if asked).
fn bind_host_cgroup(target: &Path, opts: &MountOptions, dest: &Path) -> Result<(), MountError> {
    bind(Path::new("/sys/fs/cgroup"), target, libc::MS_BIND | libc::MS_REC, dest)?;
    remount_bind(target, opts, dest)?;
    if opts.flags & libc::MS_RDONLY != 0 {
        set_attr(target, MOUNT_ATTR_RDONLY, 0, dest)?;
    }
    Ok(())
}

/// The cgroups of this process, as runc shows them to a container without a cgroup
/// namespace: on a unified host its cgroup2 directory bound at the target; on v1 or hybrid a
/// tmpfs holding, per host hierarchy, the directory of this process's cgroup in it, plus the
/// host's links between hierarchies. Nothing of the host's other cgroups is in view.
fn bind_own_cgroups(target: &Path, opts: &MountOptions, dest: &Path) -> Result<(), MountError> {
    let host = Path::new("/sys/fs/cgroup");
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let ro = opts.flags & libc::MS_RDONLY != 0;
    let bind_dir = |source: &Path, at: &Path| -> Result<(), MountError> {
        bind(source, at, libc::MS_BIND, dest)?;
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        let flags = if ro { flags | libc::MS_RDONLY } else { flags };
        sys::mount(None, at, None, libc::MS_BIND | libc::MS_REMOUNT | flags, None)
            .map_err(|source| MountError::Remount { destination: dest.to_owned(), source })
    };
    if host.join("cgroup.controllers").exists() {
        let path = cgroup_of(&own, "cgroup2", "").unwrap_or_default();
        return bind_dir(&host.join(path.trim_start_matches('/')), target);
    }

    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let known = fs::read_to_string("/proc/cgroups").unwrap_or_default();
    let controllers: Vec<&str> = known
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    sys::mount(Some(Path::new("tmpfs")), target, Some("tmpfs"), flags, Some("mode=755")).map_err(
        |source| MountError::Mount {
            typ: "tmpfs".into(),
            source_path: PathBuf::from("tmpfs"),
            destination: dest.to_owned(),
            source,
        },
    )?;
    for h in hierarchies(&mountinfo, &controllers) {
        let Some(path) = cgroup_of(&own, &h.fstype, &h.data) else { continue };
        let at = target.join(&h.name);
        make_mount_point(&at, true)?;
        bind_dir(&host.join(&h.name).join(path.trim_start_matches('/')), &at)?;
    }
    for entry in fs::read_dir(host).into_iter().flatten().flatten() {
        let Ok(link) = fs::read_link(entry.path()) else { continue };
        let at = target.join(entry.file_name());
        symlink(&link, &at)
            .map_err(|source| MountError::MountPoint { path: at.clone(), source })?;
    }
    if ro {
        let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | flags;
        sys::mount(None, target, None, flags, None)
            .map_err(|source| MountError::Remount { destination: dest.to_owned(), source })?;
    }
    Ok(())
}

/// The path of a process's cgroup in one hierarchy, from its /proc/PID/cgroup text: the
/// cgroup2 line (`0::PATH`) for `cgroup2`, else the v1 line whose controller list is the
/// hierarchy's (`data`, e.g. `cpu,cpuacct` or `name=systemd`), compared as sets.
fn cgroup_of(proc_cgroup: &str, fstype: &str, data: &str) -> Option<String> {
    let wanted: std::collections::BTreeSet<&str> = data.split(',').collect();
    proc_cgroup.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, list, path) = (fields.next()?, fields.next()?, fields.next()?);
        let matches = if fstype == "cgroup2" {
            list.is_empty()
        } else {
            !list.is_empty() && list.split(',').collect::<std::collections::BTreeSet<_>>() == wanted
        };
        matches.then(|| path.to_owned())
    })
}

/// One cgroup hierarchy the host has mounted directly below /sys/fs/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hierarchy {
    /// The mount point's name below /sys/fs/cgroup (`cpu,cpuacct`, `systemd`, `unified`).
    name: String,
    /// `cgroup` or `cgroup2`.
    fstype: String,
    /// The mount data that names the hierarchy again: its controllers and `name=`.
    data: String,
}

/// The hierarchies in a mountinfo text, with the controllers the kernel knows (from
/// /proc/cgroups) picked out of each v1 mount's super options.
fn hierarchies(mountinfo: &str, controllers: &[&str]) -> Vec<Hierarchy> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else { continue };
        let (Some(point), Some(fstype), Some(sup)) =
            (fields.get(4), fields.get(sep + 1), fields.get(sep + 3))
        else {
            continue;
        };
        let point = unescape_mountinfo(point);
        if point.parent() != Some(Path::new("/sys/fs/cgroup")) {
            continue;
        }
        let Some(name) = point.file_name().and_then(|n| n.to_str()) else { continue };
        let data = match *fstype {
            "cgroup2" => String::new(),
            "cgroup" => sup
                .split(',')
                .filter(|o| controllers.contains(o) || o.starts_with("name="))
                .collect::<Vec<_>>()
                .join(","),
            _ => continue,
        };
        out.push(Hierarchy { name: name.to_owned(), fstype: (*fstype).to_owned(), data });
    }
    out
}

/// The container's own cgroupfs in its cgroup namespace, where every hierarchy's root is the
/// container's cgroup, as runc sets it up: on a unified host one cgroup2 mount; on v1 or
/// hybrid a tmpfs holding one mount per host hierarchy, plus the host's links between them
/// (`cpu -> cpu,cpuacct`), the tmpfs made read-only last if asked.
fn mount_cgroupfs(target: &Path, opts: &MountOptions, dest: &Path) -> Result<(), MountError> {
    let ro = opts.flags & libc::MS_RDONLY;
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | ro;
    let mount = |source: &str, at: &Path, fstype: &str, flags, data: &str| {
        sys::mount(Some(Path::new(source)), at, Some(fstype), flags, Some(data)).map_err(|e| {
            MountError::Mount {
                typ: fstype.to_owned(),
                source_path: PathBuf::from(source),
                destination: dest.join(at.strip_prefix(target).unwrap_or(Path::new(""))),
                source: e,
            }
        })
    };
    let host = Path::new("/sys/fs/cgroup");
    if host.join("cgroup.controllers").exists() {
        return mount("cgroup2", target, "cgroup2", flags, "");
    }

    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let known = fs::read_to_string("/proc/cgroups").unwrap_or_default();
    let controllers: Vec<&str> = known
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    mount("tmpfs", target, "tmpfs", flags & !libc::MS_RDONLY, "mode=755")?;
    for h in hierarchies(&mountinfo, &controllers) {
        let at = target.join(&h.name);
        make_mount_point(&at, true)?;
        let source = if h.data == "name=systemd" { "systemd" } else { "cgroup" };
        mount(source, &at, &h.fstype, flags, &h.data)?;
    }
    for entry in fs::read_dir(host).into_iter().flatten().flatten() {
        let Ok(link) = fs::read_link(entry.path()) else { continue };
        let at = target.join(entry.file_name());
        symlink(&link, &at)
            .map_err(|source| MountError::MountPoint { path: at.clone(), source })?;
    }
    if ro != 0 {
        let flags = libc::MS_REMOUNT | libc::MS_BIND | flags;
        sys::mount(None, target, None, flags, None)
            .map_err(|source| MountError::Remount { destination: dest.to_owned(), source })?;
    }
    Ok(())
}

fn bind(source: &Path, target: &Path, flags: libc::c_ulong, dest: &Path) -> Result<(), MountError> {
    let flags = flags & (libc::MS_BIND | libc::MS_REC);
    sys::mount(Some(source), target, None, flags, None).map_err(|e| MountError::Mount {
        typ: "bind".into(),
        source_path: source.to_owned(),
        destination: dest.to_owned(),
        source: e,
    })
}

/// A bind mount ignores ro, nosuid and friends: they need a remount. In a user namespace the
/// kernel refuses to clear flags the source mount has locked, so those are kept.
fn remount_bind(target: &Path, opts: &MountOptions, dest: &Path) -> Result<(), MountError> {
    let wanted = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
    if wanted == 0 {
        return Ok(());
    }
    let flags = libc::MS_BIND | libc::MS_REMOUNT | wanted;
    match sys::mount(None, target, None, flags, None) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let locked = locked_flags(target);
            sys::mount(None, target, None, flags | locked, None)
        }
        other => other,
    }
    .map_err(|source| MountError::Remount { destination: dest.to_owned(), source })
}

/// The flags of the mount at `path` that a remount in a user namespace must keep.
fn locked_flags(path: &Path) -> libc::c_ulong {
    let Ok(c) = sys::cstr(path) else { return 0 };
    // SAFETY: statvfs is plain data and c is a NUL-terminated path that outlives the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; st is a valid place for the kernel's answer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let mut flags = 0;
    for (st_flag, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            flags |= ms;
        }
    }
    flags
}

/// mount_setattr(2) with AT_RECURSIVE: the recursive options (rro, rnosuid, ...).
fn set_attr(target: &Path, set: u64, clear: u64, dest: &Path) -> Result<(), MountError> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr { attr_set: set, attr_clr: clear, propagation: 0, userns_fd: 0 };
    let c = sys::cstr(target)
        .map_err(|source| MountError::SetAttr { destination: dest.to_owned(), source })?;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    // SAFETY: c is a NUL-terminated path and attr a mount_attr of the size passed, both alive
    // for the whole call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            AT_RECURSIVE,
            &attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    sys::cvt(ret as libc::c_int)
        .map(drop)
        .map_err(|source| MountError::SetAttr { destination: dest.to_owned(), source })
}

fn make_mount_point(target: &Path, dir: bool) -> Result<(), MountError> {
    let err = |source| MountError::MountPoint { path: target.to_owned(), source };
    if dir {
        if !target.is_dir() {
            fs::DirBuilder::new().recursive(true).mode(0o755).create(target).map_err(err)?;
        }
    } else if target.symlink_metadata().is_err() {
        if let Some(parent) = target.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o755).create(parent).map_err(err)?;
        }
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(target)
            .map_err(err)?;
    }
    Ok(())
}

/// The devices every container gets (runtime spec, "Default Devices"), and /dev's links.
fn default_devices(cfg: &RootfsConfig<'_>) -> Result<(), MountError> {
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let path = PathBuf::from("/dev").join(name);
        let dev = LinuxDevice::default();
        let mut dev = dev;
        dev.set_path(path);
        dev.set_typ(LinuxDeviceType::C);
        dev.set_major(major);
        dev.set_minor(minor);
        dev.set_file_mode(Some(0o666));
        dev.set_uid(Some(0));
        dev.set_gid(Some(0));
        create_device(cfg, &dev)?;
    }
    let dev = secure_join(cfg.rootfs, Path::new("/dev"));
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let path = dev.join(link);
        if path.symlink_metadata().is_err() {
            symlink(target, &path).map_err(|source| MountError::Device { path, source })?;
        }
    }
    if Path::new("/proc/kcore").exists() {
        let path = dev.join("core");
        if path.symlink_metadata().is_err() {
            symlink("/proc/kcore", &path).map_err(|source| MountError::Device { path, source })?;
        }
    }
    // /dev/ptmx is the devpts instance's multiplexer (devpts(5), "newinstance").
    let ptmx = dev.join("ptmx");
    if dev.join("pts").is_dir() {
        let _ = fs::remove_file(&ptmx);
        symlink("pts/ptmx", &ptmx).map_err(|source| MountError::Device { path: ptmx, source })?;
    }
    Ok(())
}

/// One linux.devices entry: mknod, or a bind mount of the host's node in a user namespace.
fn create_device(cfg: &RootfsConfig<'_>, d: &LinuxDevice) -> Result<(), MountError> {
    let target = secure_join(cfg.rootfs, d.path());
    let err = |source| MountError::Device { path: d.path().clone(), source };
    if let Some(parent) = target.parent() {
        fs::DirBuilder::new().recursive(true).mode(0o755).create(parent).map_err(err)?;
    }
    if cfg.in_userns {
        make_mount_point(&target, false)?;
        return sys::mount(Some(d.path()), &target, None, libc::MS_BIND, None).map_err(err);
    }
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(err(io::Error::new(io::ErrorKind::InvalidInput, "type \"a\" is no device")))
        }
    };
    let _ = fs::remove_file(&target);
    let c = sys::cstr(&target).map_err(err)?;
    let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
    let dev = libc::makedev(d.major() as u32, d.minor() as u32);
    // SAFETY: c is a NUL-terminated path that outlives the call.
    sys::cvt(unsafe { libc::mknod(c.as_ptr(), kind | mode, dev) }).map_err(err)?;
    // mknod applies the umask; the spec's mode is exact.
    // SAFETY: as above.
    sys::cvt(unsafe { libc::chmod(c.as_ptr(), mode) }).map_err(err)?;
    // SAFETY: as above.
    sys::cvt(unsafe { libc::chown(c.as_ptr(), d.uid().unwrap_or(0), d.gid().unwrap_or(0)) })
        .map_err(err)?;
    Ok(())
}

/// Makes `rootfs` the root: pivot_root(2) with the old root stacked on the new one and then
/// detached (the trick runc uses, needing no directory for the old root), or, with
/// `no_pivot`, MS_MOVE onto / and chroot for roots that live on a ramfs.
pub fn enter_root(rootfs: &Path, no_pivot: bool) -> Result<(), MountError> {
    let err = |source| MountError::PivotRoot { path: rootfs.to_owned(), source };
    std::env::set_current_dir(rootfs).map_err(err)?;
    if no_pivot {
        let err = |source| MountError::MoveRoot { path: rootfs.to_owned(), source };
        sys::mount(Some(rootfs), Path::new("/"), None, libc::MS_MOVE, None).map_err(err)?;
        sys::chroot(Path::new(".")).map_err(err)?;
    } else {
        sys::pivot_root(Path::new("."), Path::new(".")).map_err(err)?;
        // The old root now sits on top of the new one: keep its unmount from propagating to
        // the host, then detach it.
        sys::mount(None, Path::new("."), None, libc::MS_SLAVE | libc::MS_REC, None).map_err(err)?;
        sys::umount2(Path::new("."), libc::MNT_DETACH).map_err(err)?;
    }
    std::env::set_current_dir("/").map_err(err)?;
    Ok(())
}

/// maskedPaths: a directory gets an empty read-only tmpfs, anything else /dev/null on top.
pub fn mask_path(path: &Path) -> Result<(), MountError> {
    let err = |source| MountError::Mask { path: path.to_owned(), source };
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(e)),
        Ok(md) if md.is_dir() => sys::mount(
            Some(Path::new("tmpfs")),
            path,
            Some("tmpfs"),
            libc::MS_RDONLY,
            Some("size=0k"),
        )
        .map_err(err),
        Ok(_) => {
            sys::mount(Some(Path::new("/dev/null")), path, None, libc::MS_BIND, None).map_err(err)
        }
    }
}

/// readonlyPaths, and a read-only root: bind the path onto itself, then remount read-only.
pub fn readonly_path(path: &Path) -> Result<(), MountError> {
    let err = |source| MountError::ReadOnly { path: path.to_owned(), source };
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(e)),
        Ok(_) => {}
    }
    sys::mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None).map_err(err)?;
    remount_readonly(path)
}

/// Remounts the mount at `path` read-only, keeping the flags the kernel has locked.
pub fn remount_readonly(path: &Path) -> Result<(), MountError> {
    let err = |source| MountError::ReadOnly { path: path.to_owned(), source };
    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked_flags(path);
    sys::mount(None, path, None, flags, None).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_cgroup_is_found_per_hierarchy() {
        let own = "12:pids:/berth_parent/berth-a\n4:cpu,cpuacct:/berth_parent/berth-a\n\
                   1:name=systemd:/user.slice\n0::/init.scope\n";
        assert_eq!(cgroup_of(own, "cgroup", "pids").as_deref(), Some("/berth_parent/berth-a"));
        assert_eq!(
            cgroup_of(own, "cgroup", "cpuacct,cpu").as_deref(),
            Some("/berth_parent/berth-a"),
            "the controller list is a set"
        );
        assert_eq!(cgroup_of(own, "cgroup", "name=systemd").as_deref(), Some("/user.slice"));
        assert_eq!(cgroup_of(own, "cgroup2", "").as_deref(), Some("/init.scope"));
        assert_eq!(cgroup_of(own, "cgroup", "memory"), None);
        assert_eq!(cgroup_of(own, "cgroup", "cpu"), None, "cpu alone is not cpu,cpuacct");
    }

    #[test]
    fn cgroup_hierarchies_come_from_mountinfo() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:40 / /var/lib/x/sys/fs/cgroup/pids rw - cgroup cgroup rw,pids";
        let got = hierarchies(info, &["cpu", "cpuacct", "pids"]);
        let names: Vec<(&str, &str, &str)> =
            got.iter().map(|h| (h.name.as_str(), h.fstype.as_str(), h.data.as_str())).collect();
        assert_eq!(
            names,
            [
                ("cpu,cpuacct", "cgroup", "cpu,cpuacct"),
                ("systemd", "cgroup", "name=systemd"),
                ("unified", "cgroup2", ""),
            ]
        );
    }

    fn opts(list: &[&str]) -> MountOptions {
        let owned: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        MountOptions::parse(&owned).unwrap()
    }

    // Later options win, as in mount(8): "ro,rw" is read-write.
    #[test]
    fn options_sort_into_flags_propagation_and_data() {
        let o = opts(&["nosuid", "ro", "rw", "rbind", "rslave", "mode=755", "size=64k"]);
        assert_eq!(o.flags & libc::MS_RDONLY, 0);
        assert_ne!(o.flags & libc::MS_NOSUID, 0);
        assert_eq!(o.flags & (libc::MS_BIND | libc::MS_REC), libc::MS_BIND | libc::MS_REC);
        assert_eq!(o.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
        assert_eq!(o.data, vec!["mode=755", "size=64k"]);
        let r = opts(&["rro", "rnosuid"]);
        assert_eq!(r.rec_set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID);
    }

    #[test]
    fn unsupported_options_are_named() {
        let list = vec!["idmap".to_string()];
        assert_eq!(MountOptions::parse(&list).unwrap().idmap, Some(false));
        let list = vec!["ridmap".to_string()];
        assert_eq!(MountOptions::parse(&list).unwrap().idmap, Some(true));
    }

    // A symlink inside the root cannot lead a mount outside it.
    #[test]
    fn secure_join_clamps_symlinks_to_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("etc")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../..", root.join("etc/up")).unwrap();
        assert_eq!(secure_join(root, Path::new("/abs/passwd")), root.join("etc/passwd"));
        assert_eq!(secure_join(root, Path::new("/etc/up/x")), root.join("x"));
        assert_eq!(secure_join(root, Path::new("/../../y")), root.join("y"));
    }
}
