//! Interop: Debian's podman 4.3 with `--runtime` pointing at berth-oci (rootful), in a
//! throwaway store, with an image imported from the busybox root file system. Podman calls
//! berth-oci through conmon exactly as it calls runc: create with --console-socket or
//! --pid-file, start, state, kill, delete, exec --process --detach.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Podman instances share one lock segment in /dev/shm whatever their --root: the tests that
/// run podman take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Podman asks for more open files and processes than this host's hard limits allow. And no
/// network: Podman 4.3's default bridge needs CNI plugins or netavark with iptables, neither
/// of which a fresh Debian 12 with setup-host's packages has (berth's own networking needs
/// neither); the runtime still gets a network namespace of its own to make.
const RUN_FLAGS: [&str; 6] =
    ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096", "--network", "none"];

struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Option<Podman> {
        if !Path::new("/usr/bin/podman").exists() {
            eprintln!("podman not installed: skipping");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("berth-podman").tempdir_in("/var/tmp").unwrap();
        let p = Podman { dir };
        let rootfs = p.dir.path().join("rootfs");
        berth_testkit::busybox::rootfs(&rootfs).unwrap();
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = p
            .cmd()
            .args(["import", "-", "localhost/bb:test"])
            .stdin(tar.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(tar.wait().unwrap().success());
        assert!(out.status.success(), "import: {}", common::stderr(&out));
        Some(p)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.path().join("store"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
                "--runtime",
                common::BIN,
            ]);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).stdin(Stdio::null()).output().unwrap()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        let _ = Command::new("umount").arg("-R").arg(self.dir.path().join("store")).output();
    }
}

// run --rm, --read-only, run -d then exec, logs, kill and stop, and run -it through a pty.
#[test]
fn podman_runs_containers_with_berth_oci() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(p) = Podman::new() else { return };
    let mut args = vec!["run", "--rm"];
    args.extend(RUN_FLAGS);
    args.extend([
        "localhost/bb:test",
        "sh",
        "-c",
        "echo hello; hostname | wc -c; cat /proc/1/cmdline; echo",
    ]);
    let out = p.run(&args);
    assert!(out.status.success(), "run --rm: {}", common::stderr(&out));
    assert!(
        common::stdout(&out).starts_with("hello\n13\nsh\0-c\0echo hello"),
        "{:?}",
        common::stdout(&out)
    );

    let mut args = vec!["run", "--rm", "--read-only"];
    args.extend(RUN_FLAGS);
    args.extend([
        "localhost/bb:test",
        "sh",
        "-c",
        "touch /x 2>/dev/null || echo ro; touch /tmp/y && echo tmp",
    ]);
    let out = p.run(&args);
    assert_eq!(common::stdout(&out), "ro\ntmp\n", "{}", common::stderr(&out));

    let mut args = vec!["run", "-d", "--name", "bg"];
    args.extend(RUN_FLAGS);
    args.extend([
        "localhost/bb:test",
        "sh",
        "-c",
        "echo started; trap 'exit 3' TERM; while :; do sleep 0.1; done",
    ]);
    let out = p.run(&args);
    assert!(out.status.success(), "run -d: {}", common::stderr(&out));
    let out = p.run(&["exec", "bg", "sh", "-c", "echo in-exec; cat /proc/1/cmdline | head -c 2"]);
    assert_eq!(common::stdout(&out), "in-exec\nsh", "{}", common::stderr(&out));
    let out = p.run(&["logs", "bg"]);
    assert_eq!(common::stdout(&out), "started\n");
    let out = p.run(&["stop", "-t", "5", "bg"]);
    assert!(out.status.success(), "stop: {}", common::stderr(&out));
    let out = p.run(&["wait", "bg"]);
    assert_eq!(common::stdout(&out).trim(), "3", "{}", common::stderr(&out));

    let mut args = vec!["run", "-d", "--name", "victim"];
    args.extend(RUN_FLAGS);
    args.extend(["localhost/bb:test", "sleep", "100"]);
    assert!(p.run(&args).status.success());
    let out = p.run(&["kill", "victim"]);
    assert!(out.status.success(), "kill: {}", common::stderr(&out));
    let out = p.run(&["wait", "victim"]);
    assert_eq!(common::stdout(&out).trim(), "137");

    // -it needs a terminal on podman's side: script(1) gives it one.
    let inner = format!(
        "{} run --rm -it {} localhost/bb:test sh -c 'tty; stty size'",
        shell_words(&p.cmd()),
        RUN_FLAGS.join(" ")
    );
    // script(1) forwards an end of its standard input to the terminal as end-of-file, which
    // can hang the container up before it prints: keep its input open until it is done.
    let mut child = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let keep_open = child.stdin.take();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut text).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    child.wait().unwrap();
    drop(keep_open);
    assert!(text.contains("/dev/pts/0"), "run -it: {text:?} {err}");
}

fn shell_words(c: &Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A containerd of the test's own: throwaway root, state and socket; stopped on drop.
struct Containerd {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Containerd {
    fn start() -> Option<Containerd> {
        if !Path::new("/usr/bin/containerd").exists() || !Path::new("/usr/bin/ctr").exists() {
            eprintln!("containerd not installed: skipping");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("berth-ctrd").tempdir_in("/var/tmp").unwrap();
        let d = dir.path();
        let config = format!("version = 2\n[grpc]\n  address = \"{}/sock\"\n", d.display());
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--state")
            .arg(d.join("state"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd { dir, child };
        for _ in 0..100 {
            if c.ctr(&["version"]).status.success() {
                return Some(c);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "containerd did not come up: {}",
            std::fs::read_to_string(c.dir.path().join("log")).unwrap()
        );
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("sock"))
            .args(["--namespace", "berth-test"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("umount").arg("-R").arg(self.dir.path().join("root")).output();
    }
}

// containerd's runc shim drives berth-oci with `ctr run --runc-binary`.
#[test]
fn containerd_runs_a_container_with_berth_oci() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(p) = Podman::new() else { return };
    let Some(c) = Containerd::start() else { return };
    let archive = c.dir.path().join("bb.tar");
    let out = p.run(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        "localhost/bb:test",
    ]);
    assert!(out.status.success(), "save: {}", common::stderr(&out));
    let out = c.ctr(&["images", "import", archive.to_str().unwrap()]);
    assert!(out.status.success(), "import: {}", common::stderr(&out));
    let out = c.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        common::BIN,
        "localhost/bb:test",
        "c1",
        "sh",
        "-c",
        "echo hello from containerd; cat /proc/1/cmdline; echo",
    ]);
    assert!(out.status.success(), "ctr run: {}", common::stderr(&out));
    assert!(
        common::stdout(&out).starts_with("hello from containerd\nsh\x00-c\x00echo hello"),
        "{:?}",
        common::stdout(&out)
    );
}

// Rootless podman (the unprivileged test user) runs berth-oci inside its own user namespace:
// berth-oci must see that it is rootless there (state under $XDG_RUNTIME_DIR, devices bound
// instead of made). The same lifecycle as rootful: run --rm, --read-only, run -d then exec,
// logs, stop, kill, and run -it through a pty.
#[test]
fn rootless_podman_runs_containers_with_berth_oci() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !Path::new("/usr/bin/podman").exists() {
        return;
    }
    let user = berth_testkit::user::TestUser::get();
    let dir = tempfile::Builder::new().prefix("berth-podman-rl").tempdir_in("/var/tmp").unwrap();
    let d = dir.path();
    berth_testkit::busybox::rootfs(&d.join("rootfs")).unwrap();
    let tar = Command::new("tar")
        .arg("-C")
        .arg(d.join("rootfs"))
        .arg("-cf")
        .arg(d.join("bb.tar"))
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    assert!(Command::new("chown")
        .args(["-R", &format!("{}:{}", user.uid(), user.gid())])
        .arg(d)
        .status()
        .unwrap()
        .success());
    let bin = common::staged_bin();
    let podman_cmd = |program: &str| {
        let mut c = user.command(program);
        c.arg("--root")
            .arg(d.join("store"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "none", "--runtime"])
            .arg(&bin);
        c
    };
    let podman = |args: &[&str]| podman_cmd("podman").args(args).stdin(Stdio::null()).output();
    let podman = |args: &[&str]| podman(args).unwrap();
    // Cleans up the store (owned by the user's subordinate ids) also when an assert fails.
    struct Cleanup<'a>(&'a dyn Fn(&[&str]) -> Output, std::path::PathBuf);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["rm", "-af", "-t", "0"]);
            let store = self.1.to_str().unwrap_or_default().to_owned();
            let _ = (self.0)(&["unshare", "rm", "-rf", &store]);
        }
    }
    let _cleanup = Cleanup(&podman, d.join("store"));

    let out = podman(&["import", d.join("bb.tar").to_str().unwrap(), "localhost/bb:test"]);
    assert!(out.status.success(), "import: {}", common::stderr(&out));
    // Within this host's hard limits, as the test user's own are.
    let ulimit = berth_testkit::host::podman_ulimit_args();
    let mut limits: Vec<&str> = ulimit.iter().map(String::as_str).collect();
    limits.extend(["--ulimit", "nproc=1024:1024"]);
    let run = |extra: &[&str], cmd: &[&str]| {
        let mut args = vec!["run"];
        args.extend(extra);
        args.extend(&limits);
        args.push("localhost/bb:test");
        args.extend(cmd);
        podman(&args)
    };

    let out = run(&["--rm"], &["sh", "-c", "echo hello rootless; id -u; ls /dev/null"]);
    assert!(out.status.success(), "run: {}", common::stderr(&out));
    assert_eq!(common::stdout(&out), "hello rootless\n0\n/dev/null\n");

    let script = "touch /x 2>/dev/null || echo ro; touch /tmp/y && echo tmp";
    let out = run(&["--rm", "--read-only"], &["sh", "-c", script]);
    assert_eq!(common::stdout(&out), "ro\ntmp\n", "--read-only: {}", common::stderr(&out));

    let script = "echo started; trap 'exit 3' TERM; while :; do sleep 0.1; done";
    let out = run(&["-d", "--name", "bg"], &["sh", "-c", script]);
    assert!(out.status.success(), "run -d: {}", common::stderr(&out));
    let out = podman(&["exec", "bg", "sh", "-c", "echo in-exec; id -u; head -c 2 /proc/1/cmdline"]);
    assert_eq!(common::stdout(&out), "in-exec\n0\nsh", "exec: {}", common::stderr(&out));
    let out = podman(&["logs", "bg"]);
    assert_eq!(common::stdout(&out), "started\n", "logs: {}", common::stderr(&out));
    let out = podman(&["stop", "-t", "5", "bg"]);
    assert!(out.status.success(), "stop: {}", common::stderr(&out));
    let out = podman(&["wait", "bg"]);
    assert_eq!(common::stdout(&out).trim(), "3", "wait after stop: {}", common::stderr(&out));

    let out = run(&["-d", "--name", "victim"], &["sleep", "100"]);
    assert!(out.status.success(), "run -d: {}", common::stderr(&out));
    let out = podman(&["kill", "victim"]);
    assert!(out.status.success(), "kill: {}", common::stderr(&out));
    let out = podman(&["wait", "victim"]);
    assert_eq!(common::stdout(&out).trim(), "137", "wait after kill: {}", common::stderr(&out));

    // -it through a pty that script(1), run as the test user, gives podman; its input stays
    // open until podman is done (see the rootful test).
    let inner = format!(
        "{} run --rm -it {} localhost/bb:test sh -c 'tty; stty size'",
        shell_words(&podman_cmd("podman")),
        limits.join(" ")
    );
    let mut child = user
        .command("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let keep_open = child.stdin.take();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut text).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    child.wait().unwrap();
    drop(keep_open);
    assert!(text.contains("/dev/pts/0"), "rootless run -it: {text:?} {err}");
}
