//! A foreground `run --rm` (no -t, no -i) runs without a monitor process: berth itself writes
//! the log, forwards its signals and records the exit. These tests pin that a user sees the
//! same as with a monitor: `logs` (also `-f`) while it runs, a SIGTERM to berth reaching the
//! container's shell, `stop` from another shell, the exit codes, stdout and stderr apart, and
//! nothing left afterwards.

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::cli::{stdout, Berth};

fn engine() -> Berth {
    if !rustix::process::geteuid().is_root() {
        panic!("the rootful container tests need root");
    }
    Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), "localhost/busybox:latest")
}

/// A shell that says `ready`, then prints a line per tick until SIGTERM, which it answers
/// with `got TERM` and exit 7.
const TRAPPING: &str =
    "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done";

/// Starts `berth run --rm --name NAME busybox sh -c TRAPPING` with its output piped.
fn spawn_trapping(berth: &Berth, name: &str) -> Child {
    berth
        .command(&["run", "--rm", "--name", name, "localhost/busybox", "sh", "-c", TRAPPING])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting berth run")
}

/// Waits (a minute at most) for `child` to exit; returns its code and standard output.
fn finish(mut child: Child) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "berth run did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    (status.code(), out)
}

// The log is there while the container runs (`logs` and `logs -f`), no monitor process is
// started for it, and a SIGTERM sent to berth reaches the shell, whose trap and exit code come
// back through berth.
#[test]
fn sigterm_to_berth_reaches_the_container_and_logs_follow_it() {
    let berth = engine();
    let child = spawn_trapping(&berth, "fg");
    berth.eventually("the first log line", || stdout(&berth.run(&["logs", "fg"])) == "ready\n");
    assert!(berth.ok(&["ps", "--format", "{{.Names}} {{.State}}"]).contains("fg Running"));
    assert!(berth.monitors().is_empty(), "a monitor was started: {:?}", berth.monitors());
    let follow = berth
        .command(&["logs", "-f", "fg"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    // SAFETY: kill takes a pid and a signal number by value; the pid is our child's.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let (code, out) = finish(child);
    assert_eq!(code, Some(7), "berth's exit code is the container's");
    assert_eq!(out, "ready\ngot TERM\n");
    let (code, followed) = finish(follow);
    assert_eq!(code, Some(0));
    assert_eq!(followed, "ready\ngot TERM\n", "logs -f ends with the container");
    assert_eq!(berth.ok(&["ps", "-aq"]), "", "--rm removed it");
    berth.assert_clean();
}

// `stop` from another shell stops a container that runs this way, with berth exiting with
// the code of the container's trap.
#[test]
fn stop_from_another_shell() {
    let berth = engine();
    let child = spawn_trapping(&berth, "stopped");
    berth.eventually("the container to run", || {
        stdout(&berth.run(&["logs", "stopped"])) == "ready\n"
    });
    assert_eq!(berth.ok(&["stop", "stopped"]).trim(), "stopped");
    let (code, out) = finish(child);
    assert_eq!(code, Some(7));
    assert_eq!(out, "ready\ngot TERM\n");
    assert_eq!(berth.ok(&["ps", "-aq"]), "");
    berth.assert_clean();
}

// Exit codes 0, 3, 137 (killed by `kill`), 127, 126 and 125, stdout and stderr kept apart,
// and nothing left (the trash emptied too).
#[test]
fn exit_codes_and_streams() {
    let berth = engine();
    let out = berth.run(&[
        "run",
        "--rm",
        "localhost/busybox",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "to-out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to-err\n");
    // The removed container's directories went to the trash, which berth's detached child
    // empties with no other command's help.
    berth.eventually("the trash to be emptied", || {
        [berth.root().join("trash"), berth.runroot().join("trash")]
            .iter()
            .all(|dir| std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none()))
    });
    berth.fails(&["run", "--rm", "localhost/busybox", "sh", "-c", "exit 3"], 3);
    // Killed from outside (PID 1 ignores a SIGKILL from inside its own namespace).
    let child = berth
        .command(&["run", "--rm", "--name", "killed", "localhost/busybox", "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    berth.eventually("the container to run", || {
        stdout(&berth.run(&["ps", "--format", "{{.Names}}"])).trim() == "killed"
    });
    berth.ok(&["kill", "killed"]);
    assert_eq!(finish(child).0, Some(137));
    let err = berth.fails(&["run", "--rm", "localhost/busybox", "no-such-command"], 127);
    assert!(err.starts_with("berth: ") && err.lines().count() == 1, "{err}");
    berth.fails(&["run", "--rm", "localhost/busybox", "/etc/passwd"], 126);
    let err = berth.fails(&["run", "--rm", "localhost/no-such-image"], 125);
    assert!(err.lines().count() == 1, "{err}");
    assert_eq!(berth.ok(&["ps", "-aq"]), "");
    berth.assert_clean();
}

// berth itself killed with SIGKILL mid `run --rm`: nothing is left to watch the container, so
// the next command that reconciles (`ps -a`) ends it and removes it as `--rm` asked — no
// record, process, mount, cgroup or directory is left.
#[test]
fn a_killed_berth_run_leaves_nothing_after_the_next_command() {
    let berth = engine();
    let mut child = berth
        .command(&["run", "--rm", "--name", "abandoned", "localhost/busybox", "sleep", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    berth.eventually("the container to run", || {
        stdout(&berth.run(&["ps", "--format", "{{.Names}} {{.State}}"])).trim()
            == "abandoned Running"
    });
    let pid: i32 =
        berth.ok(&["inspect", "--format", "{{.State.Pid}}", "abandoned"]).trim().parse().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(berth.ok(&["ps", "-aq"]), "", "the container's record is left");
    assert!(!alive(pid), "the container's process {pid} still runs");
    berth.assert_clean();
}

/// Whether process `pid` lives (a zombie does not).
fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    state.is_some_and(|s| !matches!(s, "Z" | "X"))
}
