//! The container commands as a user runs them, rootful, with the busybox image loaded into a
//! throwaway --root and --runroot: the lifecycle (run, exec, logs, stop, kill, rm, ps,
//! inspect, wait, attach, pause, rename), `-it` through a pty, exit codes, isolation seen from
//! inside a default container, bad input, concurrency, and a monitor killed with SIGKILL.
//!
//! Every test has its own roots; the guard removes every container it made and then checks
//! that no mount, monitor, runtime state or cgroup of it is left, also when the test fails.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use berth_testkit::cli::Berth;
use berth_testkit::pty::{self, read_until, wait_exit};

/// A throwaway engine with the busybox image as `localhost/busybox:latest`.
fn engine() -> Berth {
    if !rustix::process::geteuid().is_root() {
        panic!("the rootful container tests need root");
    }
    Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), "localhost/busybox:latest")
}

// run -d, ps, logs, exec, inspect, pause and unpause, rename, stop of a shell trapping
// SIGTERM, wait and rm: the whole lifecycle as a user drives it.
#[test]
fn lifecycle_of_a_detached_container() {
    let berth = engine();
    let script = "echo started; trap 'echo got TERM; exit 7' TERM; while true; do sleep 0.1; done";
    let id = berth.ok(&["run", "-d", "--name", "web", "localhost/busybox", "sh", "-c", script]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "run -d prints the full id: {id:?}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));

    let ps = berth.ok(&["ps"]);
    assert!(ps.starts_with("CONTAINER ID  IMAGE"), "{ps}");
    assert!(ps.contains(&id[..12]) && ps.contains(" web\n") && ps.contains("Up "), "{ps}");
    assert_eq!(berth.ok(&["ps", "-q"]).trim(), &id[..12]);
    assert_eq!(
        berth.ok(&["ps", "--format", "{{.Names}} {{.State}} {{.Image}}"]).trim(),
        "web Running localhost/busybox:latest"
    );
    assert_eq!(
        berth.ok(&["inspect", "--format", "{{.State.Status}} {{.Name}}", "web"]).trim(),
        "running web"
    );
    berth.eventually("the first log line", || berth.ok(&["logs", "web"]) == "started\n");

    assert_eq!(berth.ok(&["exec", "web", "sh", "-c", "echo from exec"]), "from exec\n");
    assert_eq!(berth.fails(&["exec", "web", "sh", "-c", "exit 4"], 4), "");
    assert_eq!(
        berth.ok(&[
            "exec",
            "-u",
            "1000",
            "-e",
            "X=y",
            "-w",
            "/tmp",
            "web",
            "sh",
            "-c",
            "echo $(id -u) $X $(pwd)"
        ]),
        "1000 y /tmp\n"
    );

    berth.ok(&["pause", "web"]);
    assert!(berth.ok(&["ps", "-a"]).contains("Paused"));
    berth.ok(&["unpause", "web"]);
    berth.ok(&["rename", "web", "site"]);
    assert_eq!(berth.ok(&["ps", "--format", "{{.Names}}"]).trim(), "site");

    // The trap sees SIGTERM; its exit code is the container's.
    assert_eq!(berth.ok(&["stop", "site"]).trim(), "site");
    assert_eq!(berth.ok(&["logs", "site"]), "started\ngot TERM\n");
    assert_eq!(berth.ok(&["wait", "site"]).trim(), "7");
    let ps = berth.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (7)"), "{ps}");
    assert_eq!(berth.ok(&["ps", "-q"]), "", "an exited container is not running");
    assert_eq!(
        berth.ok(&["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "site"]).trim(),
        "exited 7"
    );
    assert!(berth.mounts().is_empty(), "the root stays mounted after exit");

    // Start again: the same container runs again, its log goes on.
    berth.ok(&["start", "site"]);
    berth.eventually("the restarted container's log", || {
        berth.ok(&["logs", "site"]).matches("started").count() == 2
    });
    let logs = berth.ok(&["logs", "-t", "--tail", "1", "site"]);
    assert!(logs.ends_with(" started\n") && logs.starts_with("20"), "{logs}");

    // A running container is not removed without -f.
    let err = berth.fails(&["rm", "site"], 125);
    assert!(err.contains("running"), "{err}");
    assert_eq!(berth.ok(&["rm", "-f", "site"]).trim(), "site");
    assert!(berth.ids().is_empty());
    berth.assert_clean();
}

// A shell that ignores SIGTERM is killed after -t seconds with Podman's warning; kill -s
// sends the signal asked for; wait reports 128+N.
#[test]
fn stop_timeout_kill_and_wait() {
    let berth = engine();
    berth.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "localhost/busybox",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
    ]);
    let out = berth.run(&["stop", "-t", "1", "stubborn"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "StopSignal SIGTERM failed to stop container stubborn in 1 seconds, resorting to SIGKILL"
        ),
        "{err}"
    );
    assert_eq!(berth.ok(&["wait", "stubborn"]).trim(), "137");

    berth.ok(&["run", "-d", "--name", "victim", "localhost/busybox", "sleep", "1000"]);
    assert_eq!(berth.ok(&["kill", "-s", "KILL", "victim"]).trim(), "victim");
    assert_eq!(berth.ok(&["wait", "victim"]).trim(), "137");
    let err = berth.fails(&["kill", "victim"], 125);
    assert!(err.contains("can only kill running containers"), "{err}");
    berth.ok(&["rm", "stubborn", "victim"]);
    berth.assert_clean();
}

// The exit codes a user scripts against: the container's own, 125 for berth's failures,
// 126 for a command that cannot run, 127 for one that is not there, 137 for SIGKILL.
#[test]
fn exit_codes() {
    let berth = engine();
    assert_eq!(berth.ok(&["run", "--rm", "localhost/busybox", "echo", "hi"]), "hi\n");
    berth.fails(&["run", "--rm", "localhost/busybox", "sh", "-c", "exit 3"], 3);
    // Flags end at the image: `-c` here is the entrypoint's, not berth's --cpu-shares.
    let out = berth.ok(&["run", "--rm", "--entrypoint", "sh", "localhost/busybox", "-c", "echo x"]);
    assert_eq!(out, "x\n");
    let err = berth.fails(&["run", "--rm", "localhost/busybox", "no-such-command"], 127);
    assert!(err.contains("\"no-such-command\" not found"), "{err}");
    berth.fails(&["run", "--rm", "localhost/busybox", "/no/such/file"], 127);
    let err = berth.fails(&["run", "--rm", "localhost/busybox", "/etc/passwd"], 126);
    assert!(err.contains("not an executable file"), "{err}");
    let err = berth.fails(&["run", "--rm", "--pull", "never", "localhost/none", "true"], 125);
    assert_eq!(err.lines().count(), 1, "{err}");
    // A foreground run whose container is killed exits 137.
    let child = berth
        .command(&["run", "--rm", "--name", "fg", "localhost/busybox", "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    berth.eventually("the foreground container to run", || {
        berth.ok(&["ps", "--format", "{{.Names}}"]).trim() == "fg"
    });
    berth.ok(&["kill", "fg"]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(berth.ids().is_empty(), "--rm containers stay: {:?}", berth.ids());
    berth.assert_clean();
}

// What a default container sees from inside: only its own processes, Podman's 11
// capabilities, no mount, masked /proc files, a read-only /proc/sys, the seccomp filter;
// and what --read-only --tmpfs, --cap-drop ALL and -u change.
#[test]
fn isolation_from_inside() {
    let berth = engine();
    let out = berth.ok(&[
        "run",
        "--rm",
        "localhost/busybox",
        "sh",
        "-c",
        "ps -o pid | tail -n +2 | wc -l; grep CapEff /proc/self/status; \
         mount -t tmpfs none /tmp 2>/dev/null; echo mount=$?; \
         { wc -c < /proc/kcore || echo kcore=absent; } 2>/dev/null; \
         { wc -c < /proc/timer_list || echo timer_list=absent; } 2>/dev/null; \
         { echo 1 > /proc/sys/kernel/domainname; } 2>/dev/null; echo procsys=$?; \
         grep Seccomp: /proc/self/status",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    // sh, ps and its pipeline peers: only the container's own few processes.
    let pids: usize = lines[0].trim().parse().unwrap();
    assert!(pids <= 4, "the container sees {pids} processes");
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL NET_BIND_SERVICE SETFCAP SETGID SETPCAP SETUID
    // SYS_CHROOT: Podman's 11.
    assert_eq!(lines[1], "CapEff:\t00000000800405fb");
    assert_ne!(lines[2], "mount=0", "mount works in a default container");
    // This kernel has no /proc/kcore; where there is one it reads empty (masked).
    assert!(lines[3] == "kcore=absent" || lines[3].trim() == "0", "{}", lines[3]);
    if Path::new("/proc/timer_list").exists() {
        assert_eq!(lines[4].trim(), "0", "/proc/timer_list is not masked");
    }
    assert_eq!(lines[5], "procsys=1", "/proc/sys is writable");
    assert_eq!(lines[6], "Seccomp:\t2", "no seccomp filter: {out}");
    // keyctl: the containers-common profile here allows it (the kernel then confines the
    // container to a session keyring of its own); assert the rule the container really got.
    let id = berth.ok(&["create", "localhost/busybox", "true"]);
    let config = berth.runroot().join("containers").join(id.trim()).join("userdata/config.json");
    let spec: serde_json::Value = serde_json::from_slice(&fs::read(config).unwrap()).unwrap();
    let rules = spec["linux"]["seccomp"]["syscalls"].as_array().unwrap();
    let keyctl = rules
        .iter()
        .find(|r| r["names"].as_array().unwrap().iter().any(|n| n == "keyctl"))
        .expect("a rule for keyctl");
    assert_eq!(keyctl["action"], "SCMP_ACT_ALLOW");
    assert_eq!(spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    berth.ok(&["rm", id.trim()]);

    let out = berth.ok(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "localhost/busybox",
        "sh",
        "-c",
        "touch /x 2>/dev/null; echo root=$?; touch /tmp/y; echo tmp=$?",
    ]);
    assert_eq!(out, "root=1\ntmp=0\n");
    let out = berth.ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "localhost/busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(out, "CapEff:\t0000000000000000\n");
    assert_eq!(berth.ok(&["run", "--rm", "-u", "1000", "localhost/busybox", "id", "-u"]), "1000\n");
    berth.assert_clean();
}

// Bad input: one line, exit 125, nothing created.
#[test]
fn bad_input_is_one_line_and_leaves_nothing() {
    let berth = engine();
    berth.ok(&["create", "--name", "taken", "localhost/busybox", "true"]);
    let cases: &[&[&str]] = &[
        &["run", "--pull", "never", "localhost/unknown-image", "true"],
        &["run", "--name", "taken", "localhost/busybox", "true"],
        &["run", "--cap-add", "ALL", "--cap-drop", "ALL", "localhost/busybox", "true"],
        &["run", "--replace", "localhost/busybox", "true"],
        &["run", "--pull", "sometimes", "localhost/busybox", "true"],
        &["run", "-u", "nobody-here", "localhost/busybox", "true"],
        &["start", "no-such-container"],
        &["stop", "no-such-container"],
        &["rm", "no-such-container"],
        &["logs", "no-such-container"],
        &["exec", "no-such-container", "true"],
        &["inspect", "no-such-container"],
    ];
    for args in cases {
        let err = berth.fails(args, 125);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("berth: "), "{args:?}: {err}");
    }
    assert_eq!(berth.ids().len(), 1, "a failed command created a container");
    berth.ok(&["rm", "taken"]);
    berth.assert_clean();
}

// 20 parallel `run -d` then 20 parallel `rm -f`: every container ran, the database lists
// exactly them, and nothing is left afterwards.
#[test]
fn twenty_parallel_runs_and_removals() {
    let berth = engine();
    let runs: Vec<_> = (0..20)
        .map(|_| {
            berth
                .command(&["run", "-d", "localhost/busybox", "sleep", "1000"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids: Vec<String> = runs
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
        .collect();
    ids.sort();
    let mut listed = berth.ids();
    listed.sort();
    assert_eq!(listed, ids);
    assert_eq!(berth.ok(&["ps", "-q"]).lines().count(), 20, "not all 20 are running");
    let removals: Vec<_> = ids
        .iter()
        .map(|id| {
            berth
                .command(&["rm", "-f", id])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for r in removals {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(berth.ids().is_empty());
    berth.assert_clean();
}

// A monitor killed with SIGKILL: ps tells the truth (still running while the process
// lives, exited once it is gone) and rm removes everything.
#[test]
fn a_killed_monitor_leaves_a_truthful_container() {
    let berth = engine();
    berth.ok(&["run", "-d", "--name", "orphan", "localhost/busybox", "sleep", "1000"]);
    let monitors = berth.monitors();
    assert_eq!(monitors.len(), 1);
    // SAFETY: kill takes a pid and a signal by value.
    unsafe { libc::kill(monitors[0], libc::SIGKILL) };
    berth.eventually("the monitor to die", || berth.monitors().is_empty());
    assert!(berth.ok(&["ps", "-a"]).contains("Up "), "the process still runs");
    let pid: i32 =
        berth.ok(&["inspect", "--format", "{{.State.Pid}}", "orphan"]).trim().parse().unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    berth.eventually("ps to show the container exited", || {
        berth.ok(&["ps", "-a", "--format", "{{.State}}"]).trim() == "Exited"
    });
    berth.ok(&["rm", "orphan"]);
    assert!(berth.ids().is_empty());
    berth.assert_clean();

    // Killed while the container runs, then rm -f: the same.
    berth.ok(&["run", "-d", "--name", "orphan2", "localhost/busybox", "sleep", "1000"]);
    for m in berth.monitors() {
        // SAFETY: as above.
        unsafe { libc::kill(m, libc::SIGKILL) };
    }
    berth.eventually("the monitor to die", || berth.monitors().is_empty());
    berth.ok(&["rm", "-f", "orphan2"]);
    berth.assert_clean();
}

/// Starts berth on a new pty as its controlling terminal.
fn spawn_on_pty(berth: &Berth, args: &[&str]) -> (std::process::Child, fs::File) {
    pty::spawn(berth.command(args))
}

// `run -it` through a pty: the container's shell has a terminal of its own, reads what is
// typed, and berth exits with its code; ctrl-p ctrl-q detaches, `exec -it` gets a terminal
// too, and `attach` comes back to the container.
#[test]
fn run_it_through_a_pty_and_detach() {
    let berth = engine();
    let (mut child, mut master) =
        spawn_on_pty(&berth, &["run", "-it", "--rm", "--name", "tty", "localhost/busybox", "sh"]);
    master.write_all(b"tty; echo sum-$((40+2))\n").unwrap();
    let seen = read_until(&mut master, "sum-42");
    assert!(seen.contains("/dev/pts/"), "no terminal in the container: {seen:?}");
    master.write_all(b"exit 5\n").unwrap();
    assert_eq!(wait_exit(&mut child), Some(5));
    assert!(berth.ids().is_empty());

    let (mut child, mut master) =
        spawn_on_pty(&berth, &["run", "-it", "--name", "keep", "localhost/busybox", "sh"]);
    master.write_all(b"echo ready-$((1+1))\n").unwrap();
    read_until(&mut master, "ready-2");
    master.write_all(&[0x10, 0x11]).unwrap();
    assert_eq!(wait_exit(&mut child), Some(0), "detach keys end berth with 0");
    assert_eq!(berth.ok(&["ps", "--format", "{{.Names}}"]).trim(), "keep", "it still runs");

    // exec -it into it: a terminal of its own, the exit code through.
    let (mut child, mut master) = spawn_on_pty(&berth, &["exec", "-it", "keep", "sh"]);
    master.write_all(b"tty; echo e-$((5+5)); exit 6\n").unwrap();
    let seen = read_until(&mut master, "e-10");
    assert!(seen.contains("/dev/pts/"), "exec -t gave no terminal: {seen:?}");
    assert_eq!(wait_exit(&mut child), Some(6));

    let (mut child, mut master) = spawn_on_pty(&berth, &["attach", "keep"]);
    master.write_all(b"echo back-$((2+2)); exit 9\n").unwrap();
    read_until(&mut master, "back-4");
    assert_eq!(wait_exit(&mut child), Some(9));
    assert_eq!(berth.ok(&["wait", "keep"]).trim(), "9");
    berth.ok(&["rm", "keep"]);
    berth.assert_clean();
}

// stdin through -i, stdout and stderr kept apart, and the log keeps both streams.
#[test]
fn interactive_pipes_and_the_log() {
    let berth = engine();
    let mut child = berth
        .command(&[
            "run",
            "-i",
            "--name",
            "cat",
            "localhost/busybox",
            "sh",
            "-c",
            "cat; echo to-stderr >&2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"line one\nline two\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line one\nline two\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to-stderr\n");
    let logs = berth.run(&["logs", "cat"]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "line one\nline two\n");
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "to-stderr\n");
    berth.ok(&["rm", "cat"]);
    berth.assert_clean();
}

// --tmpfs starts with a copy of what the image has at that path, as in Podman; notmpcopyup
// starts it empty. Either way what the container writes there is gone with the container.
#[test]
fn a_tmpfs_starts_with_the_image_files() {
    let berth = engine();
    let image = "localhost/busybox:latest";
    let out = berth.ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/etc",
        image,
        "sh",
        "-c",
        "grep -c '^root:' /etc/passwd; stat -f -c %T /etc",
    ]);
    assert_eq!(out, "1\ntmpfs\n");
    let out = berth.ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/etc:notmpcopyup",
        image,
        "sh",
        "-c",
        "test -e /etc/passwd && echo copied || echo empty",
    ]);
    assert_eq!(out, "empty\n", "notmpcopyup leaves the image's files out");
    berth.assert_clean();
}
