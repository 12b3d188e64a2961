//! The berth binary run by the unprivileged test user, for rootless end-to-end tests: the
//! rootless twin of [`crate::cli::Berth`]. Each engine has its own `--root`, `--runroot` and
//! XDG_RUNTIME_DIR under a temporary directory the user owns, so it gets a per-user
//! namespace and pause process of its own and shares nothing with other tests.
//!
//! The binary is staged where the user can read it ([`crate::user::stage_binary`]). Dropping
//! an engine removes its containers, ends its pause process (`berth system migrate`), kills
//! whatever still runs in its user namespace and removes the directory, also when the test
//! failed.

use std::cell::Cell;
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
        Self { dir, bin, user, userns: Cell::new(None) }
    }

    /// The same, with the busybox image loaded and tagged `tag`.
    pub fn with_busybox(bin: &Path, tag: &str) -> Self {
        let berth = Self::new(bin);
        let layout = berth.dir.path().join("layout");
        crate::busybox::image_layout(&layout).expect("the busybox layout");
        open_to_all(&layout);
        let out = berth.ok(&["load", "-i", layout.to_str().expect("a UTF-8 temp path")]);
        let id = out
            .trim()
            .strip_prefix("Loaded image: sha256:")
            .unwrap_or_else(|| panic!("load printed {out:?}"))
            .to_owned();
        berth.ok(&["tag", &id, tag]);
        let _ = fs::remove_dir_all(&layout);
        berth
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

    /// `berth --root … --runroot … ARGS` as the test user, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.user.command(&self.bin);
        command
            .env("XDG_RUNTIME_DIR", self.xdg_runtime_dir())
            .env("REGISTRIES_CONFIG_PATH", "/nonexistent")
            .arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.runroot())
            .args(args);
        command
    }

    /// Runs with standard input from /dev/null and collects the output.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).stdin(Stdio::null()).output().expect("running berth");
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
        let text = fs::read_to_string(self.xdg_runtime_dir().join("berth/pause.pid")).ok()?;
        let pid: i32 = text.split_whitespace().next()?.parse().ok()?;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat.rfind(')').map(|i| stat[i + 1..].trim_start().to_owned())?;
        (!state.starts_with('Z')).then_some(pid)
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
        // Anything still in the namespace (a container, a fuse-overlayfs server) goes too.
        if let Some(ns) = self.userns.get() {
            for pid in pids() {
                if userns_of(pid) == Some(ns) {
                    // SAFETY: kill takes a pid and a signal by value.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }
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
