//! The berth binary as a user runs it, for end-to-end tests: one throwaway engine with its own
//! `--root` and `--runroot` under a temporary directory, and the checks every such test
//! repeats (a command succeeds and prints, fails with a given code, something eventually
//! holds, nothing of a container is left on the host).
//!
//! The binary's path comes from the test (`env!("CARGO_BIN_EXE_berth")` only exists in the
//! berth crate's own tests). Dropping an engine removes every container it made, kills any
//! monitor still running, lifts its mounts and removes its cgroups, also when the test failed.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The v1 controllers berth makes a container cgroup in, under `berth_parent/berth-ID`.
const CONTROLLERS: [&str; 7] = ["pids", "memory", "cpu", "cpuacct", "devices", "freezer", "blkio"];

/// One throwaway engine.
pub struct Berth {
    dir: tempfile::TempDir,
    bin: PathBuf,
    env: Vec<(OsString, OsString)>,
    /// Variables of the test's own environment that commands do not inherit.
    env_removed: Vec<OsString>,
    /// A program (and its arguments) every command runs under, e.g. `unshare --net --`.
    wrapper: Vec<OsString>,
}

impl Berth {
    /// An engine with empty roots. Registries come from no registries.conf, so short names
    /// never reach out.
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        let dir = tempfile::Builder::new().prefix("berth-cli-").tempdir().expect("a temp dir");
        let env = vec![("REGISTRIES_CONFIG_PATH".into(), "/nonexistent".into())];
        Self { dir, bin: bin.into(), env, env_removed: Vec::new(), wrapper: Vec::new() }
    }

    /// The same, with the busybox image loaded and tagged `tag` (e.g. `localhost/busybox`).
    pub fn with_busybox(bin: impl Into<PathBuf>, tag: &str) -> Self {
        let berth = Self::new(bin);
        berth.load_busybox(tag);
        berth
    }

    /// Loads the busybox image (berth_testkit::busybox) and tags it `tag`; returns its id.
    pub fn load_busybox(&self, tag: &str) -> String {
        let layout = tempfile::tempdir().expect("a temp dir");
        crate::busybox::image_layout(layout.path()).expect("the busybox layout");
        self.load(layout.path(), tag)
    }

    /// Loads the OCI layout at `layout` and tags it `tag`; returns the image id.
    pub fn load(&self, layout: &Path, tag: &str) -> String {
        let out = self.ok(&["load", "-i", layout.to_str().expect("a UTF-8 layout path")]);
        let id = out
            .trim()
            .strip_prefix("Loaded image: sha256:")
            .unwrap_or_else(|| panic!("load printed {out:?}"))
            .to_owned();
        self.ok(&["tag", &id, tag]);
        id
    }

    /// Sets an environment variable for every later command.
    pub fn set_env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) {
        let key = key.as_ref().to_owned();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.as_ref().to_owned()));
    }

    /// Keeps variable `key` of the test's environment from every later command (a
    /// SOURCE_DATE_EPOCH set around the tests, say).
    pub fn remove_env(&mut self, key: impl AsRef<OsStr>) {
        let key = key.as_ref().to_owned();
        self.env.retain(|(k, _)| *k != key);
        self.env_removed.push(key);
    }

    /// Runs every later command under `wrapper` (a program and its leading arguments, such as
    /// `["unshare", "--net", "--"]` or an `nsenter` into a test's network namespace).
    pub fn wrap_in(&mut self, wrapper: &[&str]) {
        self.wrapper = wrapper.iter().map(OsString::from).collect();
    }

    /// The temporary directory holding both roots; tests may put their own files here.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// `berth --root … --runroot … ARGS`, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = match self.wrapper.split_first() {
            Some((program, leading)) => {
                let mut command = Command::new(program);
                command.args(leading).arg(&self.bin);
                command
            }
            None => Command::new(&self.bin),
        };
        command.arg("--root").arg(self.root()).arg("--runroot").arg(self.runroot()).args(args);
        for key in &self.env_removed {
            command.env_remove(key);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs with standard input from /dev/null and collects the output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().expect("running berth")
    }

    /// Runs and expects success; returns standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        expect_success("berth", args, self.run(args))
    }

    /// Runs and expects exit `code`; returns standard error.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        expect_code("berth", args, self.run(args), code)
    }

    /// The exit code alone (None when a signal ended berth).
    pub fn code(&self, args: &[&str]) -> Option<i32> {
        self.run(args).status.code()
    }

    /// Polls `check` until it holds, for up to a minute: the machine may be loaded.
    pub fn eventually(&self, what: &str, check: impl FnMut() -> bool) {
        eventually(what, check);
    }

    /// Every container id, full length.
    pub fn ids(&self) -> Vec<String> {
        self.ok(&["ps", "-aq", "--no-trunc"]).lines().map(str::to_owned).collect()
    }

    /// Mount points under this engine's directory.
    pub fn mounts(&self) -> Vec<String> {
        let dir = self.dir.path().to_string_lossy().into_owned();
        fs::read_to_string("/proc/self/mountinfo")
            .expect("reading mountinfo")
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&dir))
            .map(str::to_owned)
            .collect()
    }

    /// Monitor processes of this engine that still run.
    pub fn monitors(&self) -> Vec<i32> {
        let run = self.runroot().to_string_lossy().into_owned();
        processes_whose_cmdline(|text| text.contains("__berth-monitor") && text.contains(&run))
    }

    /// Ids this engine ever gave (from the per-container lock and layer directories).
    pub fn created_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for dir in [self.runroot().join("locks"), self.root().join("overlay-containers")] {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                ids.push(name.trim_end_matches(".lock").to_owned());
            }
        }
        ids.sort();
        ids.dedup();
        ids
    }

    /// What is left of containers: mounts, monitors, runtime state, cgroups, directories.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = self.mounts();
        left.extend(self.monitors().iter().map(|p| format!("monitor process {p}")));
        for dir in ["runtime", "containers", "overlay-containers"] {
            for entry in fs::read_dir(self.runroot().join(dir)).into_iter().flatten().flatten() {
                if !entry.file_name().to_string_lossy().starts_with('.') {
                    left.push(entry.path().display().to_string());
                }
            }
        }
        for entry in fs::read_dir(self.root().join("overlay-containers")).into_iter().flatten() {
            left.push(entry.expect("a directory entry").path().display().to_string());
        }
        for id in self.created_ids() {
            for cgroup in container_cgroups(&id) {
                if cgroup.exists() {
                    left.push(cgroup.display().to_string());
                }
            }
        }
        left
    }

    /// Panics with the list when anything of a container is left.
    pub fn assert_clean(&self) {
        let left = self.leftovers();
        assert!(left.is_empty(), "left behind: {left:#?}");
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        for pid in self.monitors() {
            // SAFETY: kill takes a pid and a signal by value; the pid was read from /proc just
            // now and names this engine's monitor.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for mount in self.mounts().iter().rev() {
            if let Ok(path) = std::ffi::CString::new(mount.as_str()) {
                // SAFETY: umount2 reads a NUL-terminated path that lives across the call.
                unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
            }
        }
        for id in self.created_ids() {
            for cgroup in container_cgroups(&id) {
                let _ = fs::remove_dir(cgroup);
            }
        }
    }
}

/// The standard output of a command `who ARGS` that must have succeeded.
pub fn expect_success(who: &str, args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{who} {args:?} failed ({:?}): {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The standard error of a command `who ARGS` that must have exited with `code`.
pub fn expect_code(who: &str, args: &[&str], out: Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{who} {args:?}: stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).expect("UTF-8 error output")
}

/// Polls `check` until it holds, for up to a minute: the machine may be loaded.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The standard error of a finished command, lossily decoded.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The standard output of a finished command, lossily decoded.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn container_cgroups(id: &str) -> impl Iterator<Item = PathBuf> + '_ {
    CONTROLLERS
        .iter()
        .map(move |c| PathBuf::from(format!("/sys/fs/cgroup/{c}/berth_parent/berth-{id}")))
}

/// Pids of the processes whose NUL-separated command line, read as text, satisfies `matches`.
pub fn processes_whose_cmdline(matches: impl Fn(&str) -> bool) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| matches(&String::from_utf8_lossy(&command_line(*pid))))
        .collect()
}

/// A process's command line. One in the middle of an exec (berth's monitor execs between its
/// two binaries) shows none for a moment, so an empty one is read again for a while unless
/// the process is a kernel thread or a zombie, which never have one.
fn command_line(pid: i32) -> Vec<u8> {
    /// stat's flags: a kernel thread.
    const PF_KTHREAD: u64 = 0x0020_0000;
    let deadline = Instant::now() + Duration::from_millis(200);
    loop {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return cmdline };
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        let zombie = fields.first().is_some_and(|s| *s == "Z" || *s == "X");
        let kernel =
            fields.get(6).and_then(|f| f.parse::<u64>().ok()).is_some_and(|f| f & PF_KTHREAD != 0);
        if !cmdline.is_empty() || zombie || kernel || Instant::now() > deadline {
            return cmdline;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    // Every command gets both roots before its own arguments and the extra environment, and
    // `ok` / `fails` / `code` judge by the exit status.
    #[test]
    fn commands_carry_the_roots_and_the_environment() {
        let scripts = tempfile::tempdir().unwrap();
        let bin = scripts.path().join("fake-berth");
        fs::write(&bin, "#!/bin/sh\necho \"$* $BERTH_CLI_PROBE\"\nexit ${FAKE_EXIT:-0}\n").unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let mut berth = Berth::new(&bin);
        berth.set_env("BERTH_CLI_PROBE", "seen");
        let expected = format!(
            "--root {} --runroot {} ps -a seen\n",
            berth.root().display(),
            berth.runroot().display()
        );
        assert_eq!(berth.ok(&["ps", "-a"]), expected);
        berth.set_env("FAKE_EXIT", "3");
        assert_eq!(berth.code(&["ps"]), Some(3));
        assert_eq!(berth.fails(&["ps"], 3), "");
        assert!(berth.root().starts_with(berth.dir()));

        // A removed variable is neither set nor inherited.
        berth.remove_env("BERTH_CLI_PROBE");
        berth.set_env("FAKE_EXIT", "0");
        assert!(berth.ok(&["ps"]).ends_with(" ps \n"), "the variable reached the command");
        let command = berth.command(&["ps"]);
        assert!(command.get_envs().any(|(k, v)| k == "BERTH_CLI_PROBE" && v.is_none()));

        berth.wrap_in(&["env", "FAKE_EXIT=0"]);
        assert!(berth.ok(&["ps"]).starts_with("--root "), "env ran the binary with the roots");
    }
}
