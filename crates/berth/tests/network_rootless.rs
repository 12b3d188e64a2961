//! Rootless networking end to end, as a user runs it: berth as the unprivileged test user
//! (berth_testkit::user::TestUser), with pasta as the default network. busybox httpd
//! published with `-p 127.0.0.1:PORT:80` answers from the host, `-P` publishes what the image
//! EXPOSEs, a privileged port and a port in use (by a host process or by another container)
//! fail in one line with exit 125 and leave nothing behind, and no pasta outlives its
//! container — after `rm`, after a failed start, and after its monitor is killed.
//!
//! Traffic stays on the host's loopback. The guard removes the test's containers, ends its
//! pause process and kills whatever is left in its user namespace, also when a test fails.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::user::{stage_binary, TestUser};

/// One throwaway rootless engine of the test user.
struct Rootless {
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: &'static TestUser,
}

impl Rootless {
    fn new() -> Self {
        let user = TestUser::get();
        let dir = tempfile::Builder::new().prefix("berth-netrl-").tempdir_in("/tmp").unwrap();
        let xdg = dir.path().join("xdg");
        fs::create_dir(&xdg).unwrap();
        for d in [dir.path(), xdg.as_path()] {
            let (uid, gid) = (user.uid(), user.gid());
            std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
        }
        fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let bin = stage_binary(Path::new(env!("CARGO_BIN_EXE_berth"))).unwrap();
        let b = Self { dir, bin, user };
        let layout = b.dir.path().join("busybox");
        berth_testkit::busybox::image_layout(&layout).unwrap();
        b.load(&layout, "localhost/busybox:latest");
        b
    }

    fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.user.command(&self.bin);
        command
            .env("XDG_RUNTIME_DIR", self.dir.path().join("xdg"))
            .env("REGISTRIES_CONFIG_PATH", "/nonexistent")
            .arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.runroot())
            .args(args)
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running berth")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects exit 125 with a one-line error; returns that line.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(125), "berth {args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        stderr
    }

    /// Loads an OCI layout made by root (readable by everyone) and tags it `tag`.
    fn load(&self, layout: &Path, tag: &str) {
        open_to_all(layout);
        let out = self.ok(&["load", "-i", layout.to_str().unwrap()]);
        let id = out.trim().strip_prefix("Loaded image: sha256:").unwrap().to_owned();
        self.ok(&["tag", &id, tag]);
    }

    /// pasta (and slirp4netns) processes started for this engine: their command lines name
    /// files under its runroot.
    fn pastas(&self) -> Vec<i32> {
        let runroot = self.runroot().display().to_string();
        pids()
            .into_iter()
            .filter(|pid| {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                (comm.starts_with("pasta")
                    || comm.starts_with("passt")
                    || comm.starts_with("slirp4netns"))
                    && String::from_utf8_lossy(&cmdline).contains(&runroot)
            })
            .collect()
    }

    /// What a container could leave behind: pasta processes and namespace files.
    fn leftovers(&self) -> Vec<String> {
        let mut out: Vec<String> = self.pastas().iter().map(|p| format!("pasta pid {p}")).collect();
        if let Ok(dir) = fs::read_dir(self.runroot().join("netns")) {
            out.extend(dir.flatten().map(|e| format!("namespace file {}", e.path().display())));
        }
        out
    }

    fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        let userns = pause_userns(&self.dir.path().join("xdg/berth/pause.pid"));
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        let _ = self.run(&["system", "migrate"]);
        if let Some(ns) = userns {
            for pid in pids() {
                if userns_of(pid) == Some(ns) {
                    // SAFETY: kill(2) takes a pid and a signal by value.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        for pid in self.pastas() {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

fn userns_of(pid: i32) -> Option<(u64, u64)> {
    fs::metadata(format!("/proc/{pid}/ns/user")).ok().map(|m| (m.dev(), m.ino()))
}

fn pause_userns(pid_file: &Path) -> Option<(u64, u64)> {
    let pid: i32 = fs::read_to_string(pid_file).ok()?.split_whitespace().next()?.parse().ok()?;
    userns_of(pid)
}

/// Makes `dir` readable by everyone, so the test user can load what root built.
fn open_to_all(dir: &Path) {
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_symlink() {
            continue;
        }
        let add = if meta.is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(&path, fs::Permissions::from_mode(meta.permissions().mode() | add))
            .unwrap();
        if meta.is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
}

/// A port nobody listens on now, on the host's loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP GET of `/` at `addr`, retried while the server comes up (up to a minute).
fn fetch(addr: &str) -> String {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut reply = String::new();
            s.read_to_string(&mut reply)?;
            match reply.split_once("\r\n\r\n") {
                Some((head, body)) if head.contains(" 200 ") => Ok(body.to_owned()),
                _ => Err(std::io::Error::other(format!("unexpected reply {reply:?}"))),
            }
        })();
        match attempt {
            Ok(body) => return body,
            Err(e) => assert!(Instant::now() < deadline, "fetching {addr}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const HTTPD: &str = "echo served by $(hostname) > /tmp/index.html; exec httpd -f -p 80 -h /tmp";

#[test]
fn a_published_port_answers_from_the_host_and_bad_ports_are_one_line() {
    let b = Rootless::new();
    let image = "localhost/busybox";

    // No --network: pasta gives the container an interface besides lo.
    let links = b.ok(&["run", "--rm", image, "ip", "-o", "link"]);
    assert!(links.lines().count() >= 2, "only lo: {links}");
    assert!(b.leftovers().is_empty(), "after run --rm: {:?}", b.leftovers());

    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let args = ["run", "-d", "--name", "web", "--hostname", "web", "-p", &publish, image];
    b.ok(&[&args[..], &["sh", "-c", HTTPD]].concat());
    assert_eq!(fetch(&format!("127.0.0.1:{port}")), "served by web\n");
    assert_eq!(b.ok(&["port", "web"]), format!("80/tcp -> 127.0.0.1:{port}\n"));
    assert_eq!(b.pastas().len(), 1, "one pasta for the container, whatever its ports");

    // The same host port again: held by the first container's pasta.
    let err = b.fails(&["run", "-d", "--name", "twice", "-p", &publish, image, "sleep", "60"]);
    assert!(err.contains(&port.to_string()), "{err}");
    // A port a host process listens on.
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = format!("127.0.0.1:{}:80", host.local_addr().unwrap().port());
    let err = b.fails(&["run", "-d", "--name", "taken", "-p", &taken, image, "sleep", "60"]);
    assert!(err.contains(&host.local_addr().unwrap().port().to_string()), "{err}");
    // A privileged port: the error names the sysctl that allows it.
    let start: u16 = fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if start > 80 {
        let err = b.fails(&["run", "--rm", "-p", "127.0.0.1:80:80", image, "true"]);
        assert!(err.contains("net.ipv4.ip_unprivileged_port_start"), "{err}");
    }
    // None of the failures left a container, a pasta or a namespace behind.
    assert_eq!(b.ok(&["ps", "-a", "--format", "{{.Names}}"]), "web\n");
    assert_eq!(b.pastas().len(), 1);

    b.ok(&["rm", "-f", "web"]);
    assert!(b.leftovers().is_empty(), "after rm: {:?}", b.leftovers());

    // slirp4netns, pasta's fallback, publishes too and goes with its container.
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let args = ["run", "-d", "--name", "slirp", "--hostname", "slirp", "--network", "slirp4netns"];
    b.ok(&[&args[..], &["-p", &publish, image, "sh", "-c", HTTPD]].concat());
    assert_eq!(fetch(&format!("127.0.0.1:{port}")), "served by slirp\n");
    b.ok(&["rm", "-f", "slirp"]);
    assert!(b.leftovers().is_empty(), "after rm: {:?}", b.leftovers());
}

#[test]
fn publish_all_and_cleanup_after_a_failed_start_and_a_killed_monitor() {
    let b = Rootless::new();
    // An image that EXPOSEs two ports and serves both.
    let tree = tempfile::tempdir().unwrap();
    berth_testkit::busybox::rootfs(tree.path()).unwrap();
    let layout = b.dir.path().join("exposed");
    let mut builder = berth_testkit::layout::LayoutBuilder::new(&layout).unwrap();
    builder.add_dir_layer(tree.path()).unwrap();
    builder
        .finish(
            serde_json::json!({
                "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                "ExposedPorts": {"80/tcp": {}, "8080/tcp": {}},
                "Cmd": ["sh", "-c", "echo eighty > /tmp/index.html; mkdir /tmp/b; \
                    echo eighty-eighty > /tmp/b/index.html; httpd -p 8080 -h /tmp/b; \
                    exec httpd -f -p 80 -h /tmp"],
            }),
            "latest",
        )
        .unwrap();
    b.load(&layout, "localhost/exposed:latest");

    b.ok(&["run", "-d", "--name", "all", "-P", "localhost/exposed"]);
    let ports = b.ok(&["port", "all"]);
    let mut lines: Vec<&str> = ports.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{ports}");
    for (line, (container, body)) in lines.iter().zip([("80", "eighty"), ("8080", "eighty-eighty")])
    {
        let (left, host) = line.split_once(" -> ").unwrap();
        assert_eq!(left, format!("{container}/tcp"), "{ports}");
        let host_port = host.rsplit_once(':').unwrap().1;
        assert_eq!(fetch(&format!("127.0.0.1:{host_port}")), format!("{body}\n"));
    }

    // A start that fails (no such program) with a published port leaves nothing.
    let publish = format!("127.0.0.1:{}:80", free_port());
    let out = b.run(&["run", "--rm", "-p", &publish, "localhost/exposed", "/no/such"]);
    assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(b.pastas().len(), 1, "only the first container's pasta");

    // SIGKILL the monitor and the container; the next command stops their pasta.
    let pid: i32 = b.ok(&["inspect", "--format", "{{.State.Pid}}", "all"]).trim().parse().unwrap();
    let monitor: i32 =
        fs::read_to_string(b.ok(&["inspect", "--format", "{{.ConmonPidFile}}", "all"]).trim())
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    for victim in [monitor, pid] {
        // SAFETY: kill(2) with pids read just now and a plain signal number.
        unsafe { libc::kill(victim, libc::SIGKILL) };
    }
    b.eventually("the container to die", || !Path::new(&format!("/proc/{pid}/ns")).exists());
    assert_eq!(b.pastas().len(), 1, "pasta outlived the monitor");
    b.ok(&["ps", "-a"]);
    assert!(b.leftovers().is_empty(), "after the next command: {:?}", b.leftovers());
    b.ok(&["rm", "-f", "all"]);
    assert!(b.leftovers().is_empty(), "after the killed monitor: {:?}", b.leftovers());
}
