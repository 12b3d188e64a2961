//! Interop: Debian's podman 4.3 with `--runtime` pointing at berth-oci (rootful), in a
//! throwaway store, with an image imported from the busybox root file system. Podman calls
//! berth-oci through conmon exactly as it calls runc: create with --console-socket or
//! --pid-file, start, state, kill, delete, exec --process --detach.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Podman asks for more open files and processes than this host's hard limits allow.
const ULIMITS: [&str; 4] = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"];

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
    let Some(p) = Podman::new() else { return };
    let mut args = vec!["run", "--rm"];
    args.extend(ULIMITS);
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
    args.extend(ULIMITS);
    args.extend([
        "localhost/bb:test",
        "sh",
        "-c",
        "touch /x 2>/dev/null || echo ro; touch /tmp/y && echo tmp",
    ]);
    let out = p.run(&args);
    assert_eq!(common::stdout(&out), "ro\ntmp\n", "{}", common::stderr(&out));

    let mut args = vec!["run", "-d", "--name", "bg"];
    args.extend(ULIMITS);
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
    let out = p.run(&["inspect", "--format", "{{.State.ExitCode}}", "bg"]);
    assert_eq!(common::stdout(&out).trim(), "3");

    let mut args = vec!["run", "-d", "--name", "victim"];
    args.extend(ULIMITS);
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
        ULIMITS.join(" ")
    );
    let out = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = common::stdout(&out);
    assert!(text.contains("/dev/pts/0"), "run -it: {text:?} {}", common::stderr(&out));
}

fn shell_words(c: &Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
