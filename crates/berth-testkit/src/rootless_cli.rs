//! The berth binary run by the unprivileged test user, for rootless end-to-end tests: the
//! rootless twin of [`crate::cli::Berth`]. Each engine has its own `--root`, `--runroot` and
//! XDG_RUNTIME_DIR under a temporary directory the user owns, so it gets a per-user
//! namespace and pause process of its own and shares nothing with other tests.
//!
//! Besides the commands it gives what the rootless tests look at: the pause process and its
//! pid file, the mounts its namespace sees, the processes in that namespace, an engine on
//! fuse-overlayfs ([`RootlessBerth::on_fuse_overlayfs`]) and extra environment per engine.
//!
//! The binary is staged where the user can read it ([`crate::user::stage_binary`]). Dropping
//! an engine removes its containers, ends its pause process (`berth system migrate`), kills
//! whatever still runs in its user namespace or names its directory (pasta, slirp4netns) and
//! removes the directory, also when the test failed.

use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::user::{stage_binary, TestUser};

/// One throwaway rootless engine of the test user.
pub struct RootlessBerth {
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: &'static TestUser,
    /// (device, inode) of the pause process's user namespace, once one was seen.
    userns: Cell<Option<(u64, u64)>>,
    /// Extra environment for every command (a storage-driver override, say).
    env: Vec<(OsString, OsString)>,
}

impl RootlessBerth {
    /// An engine with empty roots, for the berth binary at `bin`. Needs root (to become the
    /// test user).
    pub fn new(bin: &Path) -> Self {
        assert!(is_root(), "rootless tests need root to switch to the test user");
        let user = TestUser::get();
        let dir = tempfile::Builder::new()
            .prefix("berth-rootless-")
            .tempdir_in("/tmp")
            .expect("a temp dir");
        let xdg = dir.path().join("xdg");
        fs::create_dir(&xdg).expect("the runtime dir");
        for d in [dir.path(), xdg.as_path()] {
            std::os::unix::fs::chown(d, Some(user.uid()), Some(user.gid())).expect("chown");
        }
        fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).expect("chmod");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let bin = stage_binary(bin).expect("staging the berth binary");
        Self { dir, bin, user, userns: Cell::new(None), env: Vec::new() }
    }

    /// The same, with the busybox image loaded and tagged `tag`.
    pub fn with_busybox(bin: &Path, tag: &str) -> Self {
        let berth = Self::new(bin);
        berth.load_busybox(tag);
        berth
    }

    /// An engine whose storage is fuse-overlayfs, as where the kernel refuses native overlay
    /// in a user namespace (`_BERTH_ROOTLESS_DRIVER`). /dev/fuse is opened to everyone first,
    /// as Debian's udev rules leave it and this VM, without udev, does not.
    pub fn on_fuse_overlayfs(bin: &Path) -> Self {
        let fuse = Path::new("/dev/fuse");
        let mode = fs::metadata(fuse).expect("/dev/fuse").permissions().mode();
        if mode & 0o666 != 0o666 {
            fs::set_permissions(fuse, fs::Permissions::from_mode(mode | 0o666))
                .expect("opening /dev/fuse to everyone");
        }
        let mut berth = Self::new(bin);
        berth.set_env("_BERTH_ROOTLESS_DRIVER", "fuse-overlayfs");
        berth
    }

    /// Loads the busybox image (berth_testkit::busybox) and tags it `tag`; returns its id.
    pub fn load_busybox(&self, tag: &str) -> String {
        let layout = self.dir.path().join("busybox-layout");
        crate::busybox::image_layout(&layout).expect("the busybox layout");
        let id = self.load(&layout, tag);
        let _ = fs::remove_dir_all(&layout);
        id
    }

    /// Loads the OCI layout at `layout` (made by root; opened to everyone here) and tags it
    /// `tag`; returns the image id.
    pub fn load(&self, layout: &Path, tag: &str) -> String {
        let id = self.load_untagged(layout);
        self.ok(&["tag", &id, tag]);
        id
    }

    /// Loads the OCI layout at `layout` without a tag; returns the image id.
    pub fn load_untagged(&self, layout: &Path) -> String {
        open_to_all(layout);
        let out = self.ok(&["load", "-i", layout.to_str().expect("a UTF-8 layout path")]);
        out.trim()
            .strip_prefix("Loaded image: sha256:")
            .unwrap_or_else(|| panic!("load printed {out:?}"))
            .to_owned()
    }

    /// Sets an environment variable for every later command.
    pub fn set_env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) {
        let key = key.as_ref().to_owned();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.as_ref().to_owned()));
    }

    pub fn user(&self) -> &'static TestUser {
        self.user
    }

    /// A directory the test user owns, for the test's own files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn xdg_runtime_dir(&self) -> PathBuf {
        self.dir.path().join("xdg")
    }

    /// The pause process's pid file.
    pub fn pause_pid_file(&self) -> PathBuf {
        self.xdg_runtime_dir().join("berth/pause.pid")
    }

    /// `berth --root … --runroot … ARGS` as the test user, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.user.command(&self.bin);
        command
            .env("XDG_RUNTIME_DIR", self.xdg_runtime_dir())
            .env("REGISTRIES_CONFIG_PATH", "/nonexistent")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.runroot())
            .args(args);
        command
    }

    /// Runs with standard input from /dev/null and collects the output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(self.command(args))
    }

    /// Runs `command` (one of [`RootlessBerth::command`], changed) with standard input from
    /// /dev/null and collects the output.
    pub fn run_with(&self, mut command: Command) -> Output {
        let out = command.stdin(Stdio::null()).output().expect("running berth");
        self.note_userns();
        out
    }

    /// Runs and expects success; returns standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        crate::cli::expect_success("rootless berth", args, self.run(args))
    }

    /// Runs and expects exit `code`; returns standard error.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        crate::cli::expect_code("rootless berth", args, self.run(args), code)
    }

    /// The exit code alone (None when a signal ended berth).
    pub fn code(&self, args: &[&str]) -> Option<i32> {
        self.run(args).status.code()
    }

    /// Polls `check` until it holds, for up to a minute: the machine may be loaded.
    pub fn eventually(&self, what: &str, check: impl FnMut() -> bool) {
        crate::cli::eventually(what, check);
    }

    /// The pause process's pid, if its pid file names one that runs.
    pub fn pause_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.pause_pid_file()).ok()?;
        let pid: i32 = text.split_whitespace().next()?.parse().ok()?;
        alive(pid).then_some(pid)
    }

    /// The mountinfo lines of the mounts under this engine's directory, as its user
    /// namespace (the pause process's mount namespace) sees them; none without a pause
    /// process.
    pub fn mounts(&self) -> Vec<String> {
        let Some(pid) = self.pause_pid() else { return Vec::new() };
        let dir = self.dir.path().to_string_lossy().into_owned();
        fs::read_to_string(format!("/proc/{pid}/mountinfo"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&dir)))
            .map(str::to_owned)
            .collect()
    }

    /// The processes in this engine's user namespace (once a command has seen it).
    pub fn namespace_pids(&self) -> Vec<i32> {
        self.note_userns();
        let Some(ns) = self.userns.get() else { return Vec::new() };
        pids().into_iter().filter(|pid| userns_of(*pid) == Some(ns)).collect()
    }

    /// Remembers the pause process's user namespace, for the cleanup.
    fn note_userns(&self) {
        if self.userns.get().is_none() {
            if let Some(pid) = self.pause_pid() {
                self.userns.set(userns_of(pid));
            }
        }
    }
}

impl Drop for RootlessBerth {
    fn drop(&mut self) {
        self.note_userns();
        if self.pause_pid().is_some() {
            let _ = self.command(&["rm", "-af", "-t", "0"]).stdin(Stdio::null()).output();
        }
        let _ = self.command(&["system", "migrate"]).stdin(Stdio::null()).output();
        // Anything still in the namespace (a container, a fuse-overlayfs server) goes too,
        // and whatever names this engine's directory (a pasta or slirp4netns it started).
        let dir = self.dir.path().to_string_lossy().into_owned();
        let named = crate::cli::processes_whose_cmdline(|cmdline| cmdline.contains(&dir));
        for pid in self.namespace_pids().into_iter().chain(named) {
            // SAFETY: kill takes a pid and a signal by value; the pid was read from /proc
            // just now and is in this engine's namespace or names its directory.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Whether `pid` runs (a zombie waiting for its reaper counts as ended).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rfind(')').is_some_and(|i| !stat[i + 1..].trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The first regular file named `name` below `dir`, depth first.
pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let ty = entry.file_type().ok()?;
        if ty.is_file() && entry.file_name() == name {
            return Some(entry.path());
        }
        if ty.is_dir() {
            if let Some(found) = find_file(&entry.path(), name) {
                return Some(found);
            }
        }
    }
    None
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()).collect())
        .unwrap_or_default()
}

fn userns_of(pid: i32) -> Option<(u64, u64)> {
    fs::metadata(format!("/proc/{pid}/ns/user")).ok().map(|m| (m.dev(), m.ino()))
}

/// Makes `dir` readable by everyone, so the test user can load what root built.
pub fn open_to_all(dir: &Path) {
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        if meta.is_symlink() {
            continue;
        }
        let add = if meta.is_dir() { 0o755 } else { 0o644 };
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode() | add));
        if meta.is_dir() {
            stack.extend(fs::read_dir(&path).into_iter().flatten().flatten().map(|e| e.path()));
        }
    }
}
