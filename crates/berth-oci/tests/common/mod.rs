//! Helpers for berth-oci's integration tests: a busybox bundle with an editable config.json,
//! a throwaway state root, and the binary run as root or as the unprivileged test user.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-oci");

/// A bundle in a temporary directory: rootfs/ from busybox and config.json from `spec`.
pub struct Bundle {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub config: Value,
    pub rootless: bool,
}

static ROOTFS: OnceLock<PathBuf> = OnceLock::new();

/// One busybox tree per test run, copied (hard links would share inodes) per bundle. A static
/// has no destructor, so each run removes the trees of earlier runs whose process is gone.
fn template() -> &'static Path {
    ROOTFS.get_or_init(|| {
        for entry in fs::read_dir("/var/tmp").into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("berth-oci-tests-") else { continue };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let dir = PathBuf::from(format!("/var/tmp/berth-oci-tests-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        berth_testkit::busybox::rootfs(&dir.join("rootfs")).unwrap();
        dir.join("rootfs")
    })
}

impl Bundle {
    /// A rootful bundle running `args` without a terminal.
    pub fn new(args: &[&str]) -> Bundle {
        Self::make(args, false)
    }

    /// A rootless bundle (the test user mapped to root) running `args`.
    pub fn rootless(args: &[&str]) -> Bundle {
        Self::make(args, true)
    }

    fn make(args: &[&str], rootless: bool) -> Bundle {
        let tmp = tempfile::Builder::new().prefix("berth-oci-test").tempdir_in("/var/tmp").unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tmp.path().join("bundle");
        fs::create_dir(&dir).unwrap();
        let st =
            Command::new("cp").arg("-a").arg(template()).arg(dir.join("rootfs")).status().unwrap();
        assert!(st.success());
        let root = tmp.path().join("state");
        let mut config = berth_runtime::example::example(false);
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["root"]["readonly"] = json!(false);
        if rootless {
            let user = berth_testkit::user::TestUser::get();
            let (uid, gid) = (user.uid(), user.gid());
            config["linux"]["namespaces"] = json!([
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                {"type": "user"}, {"type": "network"}
            ]);
            config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
            config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
            let mounts = config["mounts"].as_array_mut().unwrap();
            mounts.retain(|m| m["type"] != "cgroup");
            for m in mounts.iter_mut() {
                if m["type"] == "devpts" {
                    m["options"] =
                        json!(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]);
                }
            }
            let st = Command::new("chown")
                .args(["-R", &format!("{uid}:{gid}")])
                .arg(tmp.path())
                .status()
                .unwrap();
            assert!(st.success());
        }
        Bundle { tmp, dir, root, config, rootless }
    }

    pub fn write(&self) {
        fs::write(self.dir.join("config.json"), self.config.to_string()).unwrap();
        if self.rootless {
            let user = berth_testkit::user::TestUser::get();
            std::os::unix::fs::chown(
                self.dir.join("config.json"),
                Some(user.uid()),
                Some(user.gid()),
            )
            .unwrap();
        }
    }

    /// berth-oci with `--root` set, as root or as the test user.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = if self.rootless {
            let user = berth_testkit::user::TestUser::get();
            let bin = staged_bin();
            user.command(bin)
        } else {
            Command::new(BIN)
        };
        cmd.arg("--root").arg(&self.root).args(args);
        cmd
    }

    /// Runs berth-oci and returns its output.
    pub fn oci(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Writes the config and runs the container to its end: (exit code, stdout, stderr).
    pub fn run(&self, id: &str) -> (i32, String, String) {
        self.write();
        let bundle = self.dir.to_str().unwrap().to_owned();
        let out = self.oci(&["run", "--bundle", &bundle, id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs a shell command in the container and returns its stdout; panics on failure.
    pub fn sh(&mut self, script: &str) -> String {
        self.config["process"]["args"] = json!(["sh", "-c", script]);
        // Unique per bundle: the default cgroup is named after the id.
        let id = format!("sh-{}", self.tmp.path().file_name().unwrap().to_string_lossy());
        let (code, out, err) = self.run(&id);
        assert_eq!(code, 0, "script {script:?} failed: stdout {out:?} stderr {err:?}");
        out
    }

    /// `create` with the config written; panics on failure. The init inherits create's
    /// stdio, as with runc, so it goes to files: a pipe would stay open until the container
    /// ends. Returns the path of the file the container's stdout goes to.
    pub fn create(&self, id: &str) -> PathBuf {
        self.write();
        let bundle = self.dir.to_str().unwrap().to_owned();
        let out_path = self.tmp.path().join(format!("{id}.out"));
        let err_path = self.tmp.path().join(format!("{id}.err"));
        let status = self
            .cmd(&["create", "--bundle", &bundle, id])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out_path).unwrap())
            .stderr(fs::File::create(&err_path).unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "create: {}", fs::read_to_string(&err_path).unwrap());
        out_path
    }

    /// Runs berth-oci where a process outlives it (run -d, exec -d): stdio that the process
    /// inherits goes to files, so nothing waits for it to close. Panics on failure.
    pub fn detached(&self, args: &[&str]) {
        let err_path = self.tmp.path().join("detached.err");
        let status = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&err_path).unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "{args:?}: {}", fs::read_to_string(&err_path).unwrap());
    }

    /// The `state` document of a container.
    pub fn state(&self, id: &str) -> Value {
        let out = self.oci(&["state", id]);
        assert!(out.status.success(), "state: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Waits until the container's status is `status` (the kernel reaps asynchronously).
    pub fn wait_status(&self, id: &str, status: &str) -> Value {
        for _ in 0..500 {
            let s = self.state(id);
            if s["status"] == status {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("container {id} never reached {status}: {}", self.state(id));
    }

    pub fn add_mount(&mut self, m: Value) {
        self.config["mounts"].as_array_mut().unwrap().push(m);
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        // Leave no container behind, whatever the test did.
        if let Ok(entries) = fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.oci(&["delete", "--force", &id]);
            }
        }
    }
}

/// The binary, copied where the test user can execute it.
pub fn staged_bin() -> PathBuf {
    static STAGED: OnceLock<PathBuf> = OnceLock::new();
    STAGED.get_or_init(|| berth_testkit::user::stage_binary(Path::new(BIN)).unwrap()).clone()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
