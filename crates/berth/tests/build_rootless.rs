//! `berth build` run by the unprivileged test user, on both rootless storage drivers: RUN
//! steps in the per-user namespace, COPY --chown, a non-root USER, deletions as whiteouts and
//! the cache, with the layers keeping the owners the namespace gives (a file chowned to 1000
//! in the build is 1000 in the image's tar, not the host id it is stored under).
//!
//! Each test has a throwaway --root, --runroot and XDG_RUNTIME_DIR, so a namespace and pause
//! process of its own; the guard ends them (`berth system migrate`), kills anything left in
//! the namespace and removes the directories, also when the test fails.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::image_tree::{read_layout, SavedImage};
use berth_testkit::user::{stage_binary, TestUser};

struct Rootless {
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: &'static TestUser,
    env: Vec<(&'static str, String)>,
    /// (device, inode) of the pause process's user namespace, once seen.
    userns: std::cell::Cell<Option<(u64, u64)>>,
}

impl Rootless {
    fn new(env: Vec<(&'static str, String)>) -> Self {
        assert!(rustix::process::geteuid().is_root(), "the rootless tests need root to switch");
        let user = TestUser::get();
        let dir = tempfile::Builder::new().prefix("berth-build-rl-").tempdir_in("/tmp").unwrap();
        let xdg = dir.path().join("xdg");
        fs::create_dir(&xdg).unwrap();
        for d in [dir.path(), xdg.as_path()] {
            std::os::unix::fs::chown(d, Some(user.uid()), Some(user.gid())).unwrap();
        }
        fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let bin = stage_binary(Path::new(env!("CARGO_BIN_EXE_berth"))).unwrap();
        Self { dir, bin, user, env, userns: std::cell::Cell::new(None) }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.user.command(&self.bin);
        command
            .env("XDG_RUNTIME_DIR", self.path("xdg"))
            .env("REGISTRIES_CONFIG_PATH", "/nonexistent");
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command.arg("--root").arg(self.path("root")).arg("--runroot").arg(self.path("run"));
        command.args(args).stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("running berth");
        if self.userns.get().is_none() {
            self.userns.set(self.pause_pid().and_then(userns_of));
        }
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn pause_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.path("xdg/berth/pause.pid")).ok()?;
        let pid: i32 = text.split_whitespace().next()?.parse().ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// Mounts under this test's directory, as the namespace's processes see them.
    fn mounts(&self) -> Vec<String> {
        let Some(pid) = self.pause_pid() else { return Vec::new() };
        let dir = self.dir.path().to_string_lossy().into_owned();
        fs::read_to_string(format!("/proc/{pid}/mountinfo"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&dir)))
            .map(str::to_owned)
            .collect()
    }

    fn load_busybox(&self) {
        let layout = self.path("layout");
        berth_testkit::busybox::image_layout(&layout).unwrap();
        open_to_all(&layout);
        let out = self.ok(&["load", "-i", layout.to_str().unwrap()]);
        let id = out.trim().strip_prefix("Loaded image: sha256:").unwrap().to_owned();
        self.ok(&["tag", &id, "localhost/busybox:latest"]);
    }

    /// The image as `berth save --format oci-dir` writes it.
    fn saved(&self, image: &str) -> SavedImage {
        let out = self.path("saved");
        let _ = fs::remove_dir_all(&out);
        self.ok(&["save", "--format", "oci-dir", "-o", out.to_str().unwrap(), image]);
        read_layout(&out).unwrap()
    }

    /// No scratch directory and no mount is left by a build.
    fn assert_clean(&self) {
        let tmp = self.path("root/build/tmp");
        let left: Vec<_> =
            fs::read_dir(&tmp).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "scratch directories left: {left:?}");
        assert_eq!(self.mounts(), Vec::<String>::new(), "mounts left");
        // A fuse-overlayfs server ends once the kernel has dropped its unmounted file system,
        // a moment after the step's namespace is gone.
        let servers = || -> Vec<i32> {
            self.namespace_pids()
                .into_iter()
                .filter(|pid| {
                    fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim() == "fuse-overlayfs")
                })
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !servers().is_empty() {
            assert!(Instant::now() < deadline, "fuse-overlayfs servers left: {:?}", servers());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The processes in this test's user namespace.
    fn namespace_pids(&self) -> Vec<i32> {
        let Some(ns) = self.userns.get() else { return Vec::new() };
        fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| userns_of(*pid) == Some(ns))
            .collect()
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        let _ = self.command(&["system", "migrate"]).output();
        for pid in self.namespace_pids() {
            // SAFETY: kill takes a pid and a signal by value.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn userns_of(pid: i32) -> Option<(u64, u64)> {
    fs::metadata(format!("/proc/{pid}/ns/user")).ok().map(|m| (m.dev(), m.ino()))
}

/// Makes `dir` readable by everyone, so the test user can read what root wrote.
fn open_to_all(dir: &Path) {
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_symlink() {
            continue;
        }
        let add = if meta.is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode() | add)).unwrap();
        if meta.is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
}

const CONTAINERFILE: &str = r#"FROM localhost/busybox:latest
RUN mkdir -p /srv/data && echo root > /srv/data/by-root && echo x > /srv/data/owned && chown 1000:1000 /srv/data/owned /home/user && rm /etc/group && echo step-one-ran
COPY --chown=1000:1000 app.sh /srv/app.sh
USER user
WORKDIR /home/user
RUN echo "$(id -u):$(id -g)" > ids && echo step-two-ran
CMD ["sh", "/srv/app.sh"]
"#;

fn build_as_the_user(env: Vec<(&'static str, String)>) {
    let b = Rootless::new(env);
    b.load_busybox();
    let context = b.path("context");
    fs::create_dir(&context).unwrap();
    fs::write(context.join("Containerfile"), CONTAINERFILE).unwrap();
    fs::write(context.join("app.sh"), "cat /home/user/ids\n").unwrap();
    open_to_all(&context);
    let ctx = context.to_str().unwrap();

    // A step's output is a line of its own; the STEP line that shows the command is not.
    let ran = |out: &str, step: &str| out.lines().any(|l| l == step);
    let out = b.ok(&["build", "-t", "app", ctx]);
    assert!(ran(&out, "step-one-ran") && ran(&out, "step-two-ran"), "{out}");
    b.assert_clean();

    // The layers carry the namespace's owners.
    let saved = b.saved("app");
    let n = saved.layers.len();
    let (first, copy, second) = (&saved.layers[n - 3], &saved.layers[n - 2], &saved.layers[n - 1]);
    assert_eq!((first["srv/data/owned"].uid, first["srv/data/owned"].gid), (1000, 1000));
    assert_eq!((first["srv/data/by-root"].uid, first["srv/data/by-root"].gid), (0, 0));
    assert_eq!(first["home/user"].uid, 1000);
    assert!(first.contains_key("etc/.wh.group"), "the deletion is a whiteout: {first:?}");
    assert_eq!((copy["srv/app.sh"].uid, copy["srv/app.sh"].gid), (1000, 1000));
    assert_eq!(second["home/user/ids"].detail, "1000:1000\n");
    assert_eq!(second["home/user/ids"].uid, 1000);
    assert_eq!(saved.config["config"]["User"], "user");

    // On the host the file chowned to 1000 is the subuid range's 1000th id.
    let layers = b.path("root");
    let stored = find(&layers, "owned").expect("the unpacked layer file");
    assert_eq!(fs::metadata(stored).unwrap().uid(), b.user.subuid().start + 999);

    // The image runs rootless, as the user it names.
    assert_eq!(b.ok(&["run", "--rm", "app"]), "1000:1000\n");

    // A rebuild with no change runs no step.
    let again = b.ok(&["build", "-t", "app", ctx]);
    assert!(!ran(&again, "step-one-ran") && !ran(&again, "step-two-ran"), "{again}");
    assert_eq!(again.matches("--> Using cache").count(), 3, "{again}");
    b.assert_clean();
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let ty = entry.file_type().ok()?;
        if ty.is_file() && entry.file_name() == name {
            return Some(entry.path());
        }
        if ty.is_dir() {
            if let Some(found) = find(&entry.path(), name) {
                return Some(found);
            }
        }
    }
    None
}

// Rootless on native overlay in the user namespace (this kernel allows it).
#[test]
fn a_rootless_build_keeps_the_namespaces_owners() {
    build_as_the_user(Vec::new());
}

// The same build on fuse-overlayfs, as where the kernel refuses native overlay: the step's
// fuse-overlayfs server ends with the step.
#[test]
fn a_rootless_build_on_fuse_overlayfs() {
    // fuse-overlayfs needs /dev/fuse open to everyone (setup-host makes it so; this VM has no
    // udev to do it).
    let fuse = Path::new("/dev/fuse");
    let mode = fs::metadata(fuse).unwrap().permissions().mode();
    if mode & 0o666 != 0o666 {
        fs::set_permissions(fuse, fs::Permissions::from_mode(mode | 0o666)).unwrap();
    }
    build_as_the_user(vec![("_BERTH_ROOTLESS_DRIVER", "fuse-overlayfs".into())]);
}
