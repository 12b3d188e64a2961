//! The monitor while its container runs: berth hands it to the small `berth-monitor` binary
//! beside it (same process, so `ps`, `stop`, `attach` and the exit see nothing change) and
//! takes it back at the exit to restart or clean up; a monitor holds none of its caller's
//! stray descriptors; and without `berth-monitor` beside berth the monitor does it all
//! itself. Rootful (the rootless paths go through the same code and run in rootless.rs).

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_testkit::cli::Berth;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The program a process runs (its /proc exe link).
fn exe_of(pid: i32) -> PathBuf {
    fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default()
}

/// The one monitor of `berth`'s single running container.
fn the_monitor(berth: &Berth) -> i32 {
    let monitors = berth.monitors();
    assert_eq!(monitors.len(), 1, "one monitor: {monitors:?}");
    monitors[0]
}

/// What each of `pid`'s descriptors links to (`pipe:[INODE]`, paths).
fn descriptors_of(pid: i32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| fs::read_link(e.path()).ok())
                .map(|l| l.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A pipe whose ends a child process would inherit (no close-on-exec), as a shell's or a
/// build tool's own pipes are.
fn inheritable_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into the array, which lives for the call.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both were just created and are owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

#[test]
fn the_running_monitor_is_the_small_watcher_and_goes_back_to_berth_to_restart_and_clean_up() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let berth = Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), "localhost/bb");
    let (_read, write) = inheritable_pipe();
    let stray = format!(
        "pipe:[{}]",
        fs::metadata(format!("/proc/self/fd/{}", write.as_raw_fd())).unwrap().ino()
    );

    berth.ok(&[
        "run",
        "-d",
        "--name",
        "w",
        "--network",
        "none",
        "localhost/bb",
        "sh",
        "-c",
        "echo hello; sleep 100",
    ]);
    let monitor = the_monitor(&berth);
    berth.eventually("the monitor becomes berth-monitor", || {
        exe_of(monitor).file_name().is_some_and(|n| n == "berth-monitor")
    });
    assert!(
        !descriptors_of(monitor).contains(&stray),
        "the monitor holds the caller's pipe: {:?}",
        descriptors_of(monitor)
    );
    berth.eventually("the output is logged", || berth.ok(&["logs", "w"]) == "hello\n");
    let pid = berth.ok(&["inspect", "--format", "{{.State.Pid}}", "w"]);
    let ppid = fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap();
    let ppid = ppid.rsplit(')').next().unwrap().split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(ppid, monitor.to_string(), "the container's init stays the monitor's child");

    // The exit goes back to berth: recorded, cleaned up, the monitor gone.
    berth.ok(&["stop", "-t", "0", "w"]);
    assert_eq!(
        berth.ok(&["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "w"]),
        "exited 137\n"
    );
    berth.eventually("the monitor is gone", || berth.monitors().is_empty());
    berth.ok(&["rm", "w"]);
    berth.assert_clean();

    // A restart goes through berth and back to the watcher, the same process throughout.
    berth.ok(&[
        "run",
        "-d",
        "--name",
        "r",
        "--network",
        "none",
        "--restart",
        "always",
        "localhost/bb",
        "sh",
        "-c",
        "echo run; sleep 0.3; exit 1",
    ]);
    let monitor = the_monitor(&berth);
    berth.eventually("two restarts", || {
        berth
            .ok(&["inspect", "--format", "{{.RestartCount}}", "r"])
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
            >= 2
    });
    assert_eq!(the_monitor(&berth), monitor, "the same monitor process restarts it");
    berth.eventually("the restarted container is watched by berth-monitor again", || {
        exe_of(monitor).file_name().is_some_and(|n| n == "berth-monitor")
            && berth.ok(&["inspect", "--format", "{{.State.Status}}", "r"]) == "running\n"
    });
    assert!(berth.ok(&["logs", "r"]).lines().filter(|l| *l == "run").count() >= 3);
    berth.ok(&["rm", "-f", "-t", "0", "r"]);
    berth.eventually("the restarting container's monitor is gone", || berth.monitors().is_empty());
    berth.assert_clean();
}

#[test]
fn without_berth_monitor_beside_berth_the_monitor_serves_in_process() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let alone = tempfile::tempdir().unwrap();
    let bin = alone.path().join("berth");
    assert!(std::process::Command::new("cp")
        .arg(env!("CARGO_BIN_EXE_berth"))
        .arg(&bin)
        .status()
        .unwrap()
        .success());
    assert!(!Path::new(&bin).with_file_name("berth-monitor").exists());
    let berth = Berth::with_busybox(&bin, "localhost/bb");
    berth.ok(&[
        "run",
        "-d",
        "--name",
        "s",
        "--network",
        "none",
        "localhost/bb",
        "sh",
        "-c",
        "echo hi; sleep 100",
    ]);
    let monitor = the_monitor(&berth);
    berth.eventually("the output is logged", || berth.ok(&["logs", "s"]) == "hi\n");
    assert_eq!(exe_of(monitor), bin, "the monitor stays berth");
    berth.ok(&["stop", "-t", "0", "s"]);
    assert_eq!(berth.ok(&["inspect", "--format", "{{.State.ExitCode}}", "s"]), "137\n");
    berth.ok(&["rm", "s"]);
    berth.assert_clean();
}
