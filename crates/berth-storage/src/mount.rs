//! Overlay mounts of a container's root file system: the image's unpacked layers read-only
//! below, the container's own upper and work directories on top.
//!
//! The mount is made through the kernel's file-system context API (fsopen, fsconfig, fsmount,
//! move_mount), adding the lower layers one by one with `lowerdir+` (Linux 6.8 and later), so
//! neither the page-sized limit of mount(2)'s option string nor a `:` or `,` in a path gets in
//! the way. Older kernels get the classic mount(2) option string, where such paths are refused
//! with an error naming the path rather than mis-parsed.
//!
//! [`Driver`] picks how the overlay is made; callers choose one explicitly and a mount that the
//! kernel refuses is an error — nothing here falls back to copying layers. Rootless berth
//! (inside its per-user user namespace) asks [`rootless_driver`], which probes once per data
//! root and kernel whether the kernel mounts overlayfs there (Linux 5.11 and later) and takes
//! fuse-overlayfs where it does not.
//!
//! Layers unpacked in a user namespace carry 0/0 character-device whiteouts and
//! `user.overlay.opaque` markers, which both native overlayfs with `userxattr` and
//! fuse-overlayfs read. A FUSE mount is unmounted like any other, with umount2(2) in the
//! namespace that made it; its fuse-overlayfs process ends when the kernel drops the mount.
//!
//! A native overlay can be mounted [`Durability::Volatile`] (the kernel's `volatile` option,
//! Linux 5.10): overlayfs then skips every sync of the upper file system, above all the
//! `syncfs` of the whole upper file system that unmounting an overlay otherwise does, which
//! writes back everything dirty on that disk (other containers', builds', the state
//! database's) and waits for a cache flush. That is for a root that does not outlive its
//! container's one run (`--rm`, as Podman mounts those): after a crash its upper directory may
//! be incomplete, and the kernel marks it by leaving `WORK/work/incompat/volatile`, which
//! makes the next mount of that upper refuse. [`clear_volatile_marker`] removes it before a
//! mount that knows the previous one ended cleanly or does not care.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::fd::AsFd;
use rustix::fs::OFlags;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    unmount as umount2, FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags,
    UnmountFlags,
};
use tracing::debug;

/// How an overlay is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// The kernel's overlayfs mounted by real root, whiteouts as 0/0 character devices and
    /// `trusted.overlay.*` xattrs.
    Overlay,
    /// The kernel's overlayfs mounted inside a user namespace (Linux 5.11 and later), with the
    /// `userxattr` option: opaque directories (and xattr whiteouts) as `user.overlay.*`
    /// xattrs; 0/0 character-device whiteouts count too.
    OverlayUserxattr,
    /// fuse-overlayfs(1), exec'd inside the user namespace, where the kernel refuses overlayfs
    /// to it: whiteouts as 0/0 character devices, opaque directories as `user.overlay.opaque`.
    FuseOverlayfs,
}

impl Driver {
    /// The name berth shows and caches (`overlay` for both native kinds, as Podman names it).
    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay | Driver::OverlayUserxattr => "overlay",
            Driver::FuseOverlayfs => FUSE_OVERLAYFS,
        }
    }
}

/// The fuse-overlayfs program, looked up in PATH.
pub const FUSE_OVERLAYFS: &str = "fuse-overlayfs";

/// Internal override of [`rootless_driver`]'s choice (`overlay` or `fuse-overlayfs`), so tests
/// can run both drivers on one kernel.
pub const DRIVER_OVERRIDE: &str = "_BERTH_ROOTLESS_DRIVER";

/// Errors of mounting and unmounting overlays.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("overlay mount at {target}: no lower layers given")]
    NoLayers { target: PathBuf },
    #[error("overlay mount at {target}: layer path {path} contains ':' or ',' and this kernel has no lowerdir+ to pass it safely")]
    UnsafePath { target: PathBuf, path: PathBuf },
    #[error("overlay mount at {target}: its options are {len} bytes, more than mount(2) takes on this kernel")]
    OptionsTooLong { target: PathBuf, len: usize },
    #[error("overlay mount at {target}: {step}")]
    Mount {
        target: PathBuf,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("overlay mount at {target}: running fuse-overlayfs")]
    FuseExec {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("overlay mount at {target}: fuse-overlayfs failed ({status}): {stderr}")]
    Fuse { target: PathBuf, status: String, stderr: String },
    #[error("probing overlay mounts under {path}")]
    Probe {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "this kernel refuses overlayfs in a user namespace ({native}) and fuse-overlayfs is not \
         installed: install fuse-overlayfs (Debian: apt-get install fuse-overlayfs)"
    )]
    NoRootlessDriver { native: String },
    #[error("{DRIVER_OVERRIDE}={value:?} is not a rootless storage driver: use overlay or fuse-overlayfs")]
    UnknownDriver { value: String },
    #[error("removing the volatile mount's marker {path}")]
    ClearVolatileMarker {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unmounting {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Whether overlayfs syncs the upper file system (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The kernel's default: fsync, syncfs and the unmount reach the upper file system.
    #[default]
    Synced,
    /// The `volatile` option: no sync of the upper file system at all, for a root thrown away
    /// after one run. fuse-overlayfs and kernels before 5.10 mount it as [`Durability::Synced`].
    Volatile,
}

/// The directory overlayfs creates in the work directory of a volatile mount and leaves there;
/// while it exists the kernel refuses to mount that upper and work directory again.
pub fn volatile_marker(work: &Path) -> PathBuf {
    work.join("work").join("incompat").join("volatile")
}

/// Removes [`volatile_marker`] of `work`, so a root once mounted volatile mounts again; what
/// is not there is not an error.
pub fn clear_volatile_marker(work: &Path) -> Result<(), MountError> {
    let marker = volatile_marker(work);
    match fs::remove_dir_all(&marker) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(MountError::ClearVolatileMarker { path: marker, source }),
    }
}

/// One overlay: `lower` from the top-most layer down to the base, then the writable layer.
#[derive(Debug, Clone)]
pub struct Overlay<'a> {
    pub lower: &'a [PathBuf],
    pub upper: &'a Path,
    pub work: &'a Path,
}

/// Mounts `overlay` at `target` (an existing directory) with `driver`, synced.
pub fn mount_overlay(
    driver: Driver,
    overlay: &Overlay<'_>,
    target: &Path,
) -> Result<(), MountError> {
    mount_overlay_as(driver, overlay, target, Durability::Synced)
}

/// Mounts `overlay` at `target` (an existing directory) with `driver` and `durability`.
pub fn mount_overlay_as(
    driver: Driver,
    overlay: &Overlay<'_>,
    target: &Path,
    durability: Durability,
) -> Result<(), MountError> {
    if overlay.lower.is_empty() {
        return Err(MountError::NoLayers { target: target.to_owned() });
    }
    if driver == Driver::FuseOverlayfs {
        return mount_fuse(overlay, target);
    }
    let volatile = durability == Durability::Volatile;
    match mount_with_context(driver, overlay, target, volatile) {
        Ok(()) => Ok(()),
        // EINVAL from `lowerdir+` means a kernel older than 6.8: use mount(2)'s option string.
        Err(ContextError::LowerdirPlus) => match mount_classic(driver, overlay, target, volatile) {
            // Before 5.10 `volatile` is an unknown option: the mount is a synced one then.
            Err(MountError::Mount { source, .. })
                if volatile && source.raw_os_error() == Some(libc::EINVAL) =>
            {
                mount_classic(driver, overlay, target, false)
            }
            other => other,
        },
        Err(ContextError::Step(step, source)) => {
            Err(MountError::Mount { target: target.to_owned(), step, source })
        }
    }
}

/// Unmounts `target`, detaching it if it is busy. A target that is not mounted is not an error,
/// so cleanup after a crash can call this unconditionally.
pub fn unmount(target: &Path) -> Result<(), MountError> {
    match umount2(target, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW) {
        Ok(()) => {
            debug!(target = %target.display(), "unmounted");
            Ok(())
        }
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(MountError::Unmount { target: target.to_owned(), source: e.into() }),
    }
}

enum ContextError {
    LowerdirPlus,
    Step(&'static str, io::Error),
}

fn step(name: &'static str) -> impl FnOnce(rustix::io::Errno) -> ContextError {
    move |e| ContextError::Step(name, e.into())
}

fn mount_with_context(
    driver: Driver,
    overlay: &Overlay<'_>,
    target: &Path,
    volatile: bool,
) -> Result<(), ContextError> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(step("fsopen overlay"))?;
    for (index, lower) in overlay.lower.iter().enumerate() {
        match fsconfig_set_string(fs.as_fd(), "lowerdir+", lower) {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL) if index == 0 => return Err(ContextError::LowerdirPlus),
            Err(e) => return Err(ContextError::Step("adding a lower layer", e.into())),
        }
    }
    fsconfig_set_string(fs.as_fd(), "upperdir", overlay.upper).map_err(step("setting upperdir"))?;
    fsconfig_set_string(fs.as_fd(), "workdir", overlay.work).map_err(step("setting workdir"))?;
    if driver == Driver::OverlayUserxattr {
        fsconfig_set_flag(fs.as_fd(), "userxattr").map_err(step("setting userxattr"))?;
    }
    if volatile {
        // Every kernel with lowerdir+ (6.8) has `volatile` (5.10).
        fsconfig_set_flag(fs.as_fd(), "volatile").map_err(step("setting volatile"))?;
    }
    fsconfig_create(fs.as_fd()).map_err(step("creating the overlay"))?;
    let mnt = fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(step("fsmount"))?;
    move_mount(mnt.as_fd(), "", rustix::fs::CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .map_err(step("attaching the mount"))?;
    debug!(
        target = %target.display(),
        layers = overlay.lower.len(),
        ?driver,
        volatile,
        "overlay mounted"
    );
    Ok(())
}

/// The `lowerdir=…,upperdir=…,workdir=…` option string, refusing paths that it cannot carry.
fn option_string(overlay: &Overlay<'_>, target: &Path) -> Result<String, MountError> {
    let unsafe_path = overlay
        .lower
        .iter()
        .map(PathBuf::as_path)
        .chain([overlay.upper, overlay.work])
        .find(|p| p.to_string_lossy().contains([':', ',']));
    if let Some(path) = unsafe_path {
        return Err(MountError::UnsafePath { target: target.to_owned(), path: path.to_owned() });
    }
    let lower: Vec<String> = overlay.lower.iter().map(|p| p.display().to_string()).collect();
    Ok(format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        overlay.upper.display(),
        overlay.work.display()
    ))
}

/// Mounts with fuse-overlayfs, which forks its server into the background once the mount is
/// in place. Its standard error goes to an unlinked file rather than a pipe, so a server that
/// kept the descriptor could never make this wait.
fn mount_fuse(overlay: &Overlay<'_>, target: &Path) -> Result<(), MountError> {
    let options = option_string(overlay, target)?;
    let exec = |source| MountError::FuseExec { target: target.to_owned(), source };
    let stderr = unlinked_file(overlay.work).map_err(exec)?;
    let status = Command::new(FUSE_OVERLAYFS)
        .arg("-o")
        .arg(&options)
        .arg(target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr.try_clone().map_err(exec)?)
        .status()
        .map_err(exec)?;
    if !status.success() {
        let mut text = String::new();
        let mut stderr = stderr;
        let _ = stderr.seek(SeekFrom::Start(0));
        let _ = stderr.take(4096).read_to_string(&mut text);
        return Err(MountError::Fuse {
            target: target.to_owned(),
            status: status.to_string(),
            stderr: text.trim().replace('\n', " "),
        });
    }
    debug!(target = %target.display(), layers = overlay.lower.len(), "fuse-overlayfs mounted");
    Ok(())
}

/// An anonymous file in `dir` (O_TMPFILE), gone when closed.
fn unlinked_file(dir: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        rustix::fs::Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// The storage driver for rootless containers under `data_root`, called inside the per-user
/// user namespace: native overlayfs with `userxattr` where this kernel mounts it there,
/// fuse-overlayfs otherwise. The probe — a tiny mount under `data_root` — runs once per kernel
/// release; its answer is kept in `data_root/rootless-driver`.
pub fn rootless_driver(data_root: &Path) -> Result<Driver, MountError> {
    if let Some(value) = std::env::var_os(DRIVER_OVERRIDE).filter(|v| !v.is_empty()) {
        return match value.to_str() {
            Some("overlay") => Ok(Driver::OverlayUserxattr),
            Some(FUSE_OVERLAYFS) => Ok(Driver::FuseOverlayfs),
            _ => Err(MountError::UnknownDriver { value: value.to_string_lossy().into_owned() }),
        };
    }
    let kernel = rustix::system::uname().release().to_string_lossy().into_owned();
    let cache = data_root.join("rootless-driver");
    if let Ok(text) = fs::read_to_string(&cache) {
        let mut fields = text.split_whitespace();
        if fields.next() == Some(kernel.as_str()) {
            match fields.next() {
                Some("overlay") => return Ok(Driver::OverlayUserxattr),
                Some(FUSE_OVERLAYFS) => return Ok(Driver::FuseOverlayfs),
                _ => {}
            }
        }
    }
    let driver = match probe_native(data_root) {
        Ok(()) => Driver::OverlayUserxattr,
        Err(MountError::Probe { path, source }) => return Err(MountError::Probe { path, source }),
        Err(native) => {
            if !in_path(FUSE_OVERLAYFS) {
                return Err(MountError::NoRootlessDriver { native: one_line(&native) });
            }
            debug!(error = %one_line(&native), "native overlay refused; using fuse-overlayfs");
            Driver::FuseOverlayfs
        }
    };
    // The cache is an optimisation: failing to write it only means probing again next time.
    let tmp = data_root.join(format!("rootless-driver.{}", std::process::id()));
    if fs::write(&tmp, format!("{kernel} {}\n", driver.name())).is_ok() {
        let _ = fs::rename(&tmp, &cache);
    }
    Ok(driver)
}

/// Mounts a one-layer overlay with `userxattr` in a scratch directory under `data_root` and
/// unmounts it. Setup failures are [`MountError::Probe`]; a refused mount is the mount error.
fn probe_native(data_root: &Path) -> Result<(), MountError> {
    let probe_err = |path: &Path| {
        let path = path.to_owned();
        move |source| MountError::Probe { path, source }
    };
    fs::create_dir_all(data_root).map_err(probe_err(data_root))?;
    let dir = data_root.join(format!("overlay-probe.{}", std::process::id()));
    let result = (|| {
        let [lower, upper, work, merged] =
            ["lower", "upper", "work", "merged"].map(|name| dir.join(name));
        for d in [&lower, &upper, &work, &merged] {
            fs::create_dir_all(d).map_err(probe_err(d))?;
        }
        let layers = [lower];
        mount_overlay(
            Driver::OverlayUserxattr,
            &Overlay { lower: &layers, upper: &upper, work: &work },
            &merged,
        )?;
        unmount(&merged)
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}

fn in_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

fn one_line(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

fn mount_classic(
    driver: Driver,
    overlay: &Overlay<'_>,
    target: &Path,
    volatile: bool,
) -> Result<(), MountError> {
    let mut options = option_string(overlay, target)?;
    if driver == Driver::OverlayUserxattr {
        options.push_str(",userxattr");
    }
    if volatile {
        options.push_str(",volatile");
    }
    // The kernel copies at most one page of options.
    if options.len() >= 4096 {
        return Err(MountError::OptionsTooLong { target: target.to_owned(), len: options.len() });
    }
    let options = std::ffi::CString::new(options).map_err(|e| MountError::Mount {
        target: target.to_owned(),
        step: "building mount(2) options",
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })?;
    rustix::mount::mount("overlay", target, "overlay", MountFlags::empty(), options.as_c_str())
        .map_err(|e| MountError::Mount {
            target: target.to_owned(),
            step: "mount(2)",
            source: e.into(),
        })?;
    debug!(target = %target.display(), layers = overlay.lower.len(), ?driver, "overlay mounted (mount(2))");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{in_private_mount_ns, in_private_user_ns, is_root};

    fn layers(root: &Path, n: usize) -> Vec<PathBuf> {
        // Top-most first: layer 0 shadows the others.
        (0..n)
            .map(|i| {
                let dir = root.join(format!("l{i}"));
                fs::create_dir_all(&dir).unwrap();
                fs::write(dir.join("shared"), format!("layer {i}")).unwrap();
                fs::write(dir.join(format!("only{i}")), "x").unwrap();
                dir
            })
            .collect()
    }

    #[test]
    fn the_top_layer_wins_and_writes_go_to_upper() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let lower = layers(tmp.path(), 3);
        let (upper, work, target) =
            (tmp.path().join("upper"), tmp.path().join("work"), tmp.path().join("merged"));
        for d in [&upper, &work, &target] {
            fs::create_dir(d).unwrap();
        }
        in_private_mount_ns(|| {
            let overlay = Overlay { lower: &lower, upper: &upper, work: &work };
            mount_overlay(Driver::Overlay, &overlay, &target).map_err(|e| e.to_string())?;
            let shared = fs::read_to_string(target.join("shared")).map_err(|e| e.to_string())?;
            if shared != "layer 0" {
                return Err(format!("shared reads {shared:?}"));
            }
            for i in 0..3 {
                if !target.join(format!("only{i}")).exists() {
                    return Err(format!("only{i} missing"));
                }
            }
            fs::write(target.join("new"), "n").map_err(|e| e.to_string())?;
            fs::remove_file(target.join("only2")).map_err(|e| e.to_string())?;
            unmount(&target).map_err(|e| e.to_string())?;
            // Unmounting twice is fine: cleanup paths call it unconditionally.
            unmount(&target).map_err(|e| e.to_string())
        });
        assert_eq!(fs::read_to_string(upper.join("new")).unwrap(), "n");
        assert!(lower[2].join("only2").exists(), "a lower layer was changed");
        assert!(fs::read_dir(&target).unwrap().next().is_none(), "still mounted");
    }

    #[test]
    fn many_layers_with_long_paths_mount() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        // 130 layers of ~60-byte paths is far past the 4 KiB option string of mount(2).
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a-rather-long-directory-name-for-layers");
        let lower = layers(&deep, 130);
        let (upper, work, target) =
            (tmp.path().join("upper"), tmp.path().join("work"), tmp.path().join("merged"));
        for d in [&upper, &work, &target] {
            fs::create_dir(d).unwrap();
        }
        in_private_mount_ns(|| {
            let overlay = Overlay { lower: &lower, upper: &upper, work: &work };
            mount_overlay(Driver::Overlay, &overlay, &target).map_err(|e| e.to_string())?;
            if !target.join("only129").exists() {
                return Err("the base layer is not visible".into());
            }
            unmount(&target).map_err(|e| e.to_string())
        });
    }

    #[test]
    fn no_layers_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let overlay = Overlay { lower: &[], upper: tmp.path(), work: tmp.path() };
        let err = mount_overlay(Driver::Overlay, &overlay, tmp.path()).unwrap_err();
        assert!(err.to_string().contains("no lower layers"), "{err}");
    }

    #[test]
    fn a_missing_layer_is_named_in_the_error() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let lower = vec![tmp.path().join("does-not-exist")];
        let target = tmp.path().join("merged");
        fs::create_dir(&target).unwrap();
        let overlay = Overlay { lower: &lower, upper: tmp.path(), work: tmp.path() };
        let err = mount_overlay(Driver::Overlay, &overlay, &target).unwrap_err();
        assert!(err.to_string().contains("merged"), "{err}");
        assert!(fs::read_dir(&target).unwrap().next().is_none());
    }

    // The probe's answer is kept per kernel release: a cached answer for this kernel is used
    // as it is, one for another kernel is probed again (and rewritten).
    #[test]
    fn the_driver_probe_is_cached_per_kernel() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        in_private_mount_ns(|| {
            let kernel = rustix::system::uname().release().to_string_lossy().into_owned();
            let cache = root.join("rootless-driver");
            fs::write(&cache, format!("{kernel} fuse-overlayfs\n")).unwrap();
            match rootless_driver(&root) {
                Ok(Driver::FuseOverlayfs) => {}
                other => return Err(format!("cached answer not used: {other:?}")),
            }
            fs::write(&cache, "2.6.32-old fuse-overlayfs\n").unwrap();
            match rootless_driver(&root) {
                Ok(Driver::OverlayUserxattr) => {}
                other => return Err(format!("not probed again: {other:?}")),
            }
            let text = fs::read_to_string(&cache).unwrap();
            if text != format!("{kernel} overlay\n") {
                return Err(format!("cache reads {text:?}"));
            }
            let left: Vec<_> = fs::read_dir(&root).unwrap().filter_map(|e| e.ok()).collect();
            if left.len() != 1 {
                return Err(format!("the probe left {left:?}"));
            }
            Ok(())
        });
    }

    // Rootless storage: as the unprivileged test user, inside a user namespace of its own, both
    // rootless drivers mount layers whose whiteouts are 0/0 devices and whose opaque
    // directories carry user.overlay.opaque — the format layers unpacked there get.
    #[test]
    fn both_rootless_drivers_mount_as_the_test_user() {
        if !is_root() {
            eprintln!("skipped: needs root to switch to the test user");
            return;
        }
        let user = berth_testkit::user::TestUser::get();
        open_dev_fuse();
        let exe = berth_testkit::user::stage_binary(&std::env::current_exe().unwrap()).unwrap();
        for driver in ["overlay", FUSE_OVERLAYFS] {
            let out = user
                .command(&exe)
                .args(["--exact", "mount::tests::rootless_driver_helper", "--ignored"])
                .args(["--nocapture", "--test-threads=1"])
                .env("BERTH_TEST_DRIVER", driver)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "{driver} failed as the test user: {text}");
            assert!(text.contains(&format!("MOUNTED {driver}")), "{driver}: {text}");
        }
    }

    /// fuse-overlayfs needs /dev/fuse open to everyone, as Debian's udev rules make it; this
    /// VM has no udev and leaves it 0600.
    fn open_dev_fuse() {
        use std::os::unix::fs::PermissionsExt;
        let fuse = Path::new("/dev/fuse");
        let mode = fs::metadata(fuse).unwrap().permissions().mode();
        if mode & 0o666 != 0o666 {
            fs::set_permissions(fuse, fs::Permissions::from_mode(mode | 0o666)).unwrap();
        }
    }

    /// The test user's side of the test above: runs in a forked child that maps only the
    /// user's own id to 0 (no newuidmap needed), mounts with BERTH_TEST_DRIVER and checks.
    #[test]
    #[ignore = "run as the test user by both_rootless_drivers_mount_as_the_test_user"]
    fn rootless_driver_helper() {
        let driver = match std::env::var("BERTH_TEST_DRIVER").as_deref() {
            Ok(FUSE_OVERLAYFS) => Driver::FuseOverlayfs,
            _ => Driver::OverlayUserxattr,
        };
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        in_private_user_ns(uid, gid, || {
            let io = |step: &'static str| move |e: io::Error| format!("{step}: {e}");
            let (base, top) = (root.join("base"), root.join("top"));
            for d in [base.join("gone"), base.join("opaque"), top.join("opaque")] {
                fs::create_dir_all(&d).map_err(io("mkdir"))?;
            }
            fs::write(base.join("gone/file"), "x").map_err(io("write"))?;
            fs::write(base.join("opaque/hidden"), "x").map_err(io("write"))?;
            fs::write(base.join("kept"), "base").map_err(io("write"))?;
            fs::write(top.join("opaque/seen"), "x").map_err(io("write"))?;
            rustix::fs::mknodat(
                rustix::fs::CWD,
                top.join("gone"),
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .map_err(|e| format!("whiteout mknod: {e}"))?;
            rustix::fs::setxattr(
                top.join("opaque"),
                "user.overlay.opaque",
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(|e| format!("opaque xattr: {e}"))?;
            let (upper, work, merged) = (root.join("upper"), root.join("work"), root.join("m"));
            for d in [&upper, &work, &merged] {
                fs::create_dir_all(d).map_err(io("mkdir"))?;
            }
            let lower = [top, base];
            mount_overlay(driver, &Overlay { lower: &lower, upper: &upper, work: &work }, &merged)
                .map_err(|e| one_line(&e))?;
            let checks = (|| {
                if merged.join("gone").exists() {
                    return Err("a whiteout did not hide its file".to_owned());
                }
                if merged.join("opaque/hidden").exists() || !merged.join("opaque/seen").exists() {
                    return Err("the opaque directory shows the lower one".to_owned());
                }
                fs::write(merged.join("kept"), "changed").map_err(io("write through"))?;
                fs::remove_file(merged.join("opaque/seen")).map_err(io("remove"))?;
                Ok(())
            })();
            let unmounted = unmount(&merged).map_err(|e| one_line(&e));
            checks?;
            unmounted?;
            if fs::read_to_string(upper.join("kept")).map_err(io("read upper"))? != "changed" {
                return Err("the write did not reach upper".into());
            }
            let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(io("mountinfo"))?;
            if mountinfo.contains(&*merged.to_string_lossy()) {
                return Err("still mounted after unmount".into());
            }
            Ok(())
        });
        println!("MOUNTED {}", std::env::var("BERTH_TEST_DRIVER").unwrap_or_default());
    }
}
