//! Rootless berth as a user runs it: the unprivileged test user, with a throwaway --root,
//! --runroot and XDG_RUNTIME_DIR (so each test has a per-user namespace and pause process of
//! its own). The namespace and its pause process, `berth unshare` and `berth system migrate`,
//! the hint for missing subordinate ranges, layers unpacked with the image's owners mapped,
//! and containers end to end on both rootless storage drivers.
//!
//! Each test's engine (berth_testkit::rootless_cli) removes its containers, ends its pause
//! process (`berth system migrate`), kills anything still in its user namespace and removes its
//! directories when dropped, also when the test fails.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Output, Stdio};

use berth_testkit::rootless_cli::{alive, find_file as find, RootlessBerth};

const IMAGE: &str = "localhost/busybox:latest";

/// A throwaway rootless engine of the test user, with empty roots.
fn engine() -> RootlessBerth {
    RootlessBerth::new(Path::new(env!("CARGO_BIN_EXE_berth")))
}

/// The same, with the busybox image loaded as [`IMAGE`].
fn with_busybox() -> RootlessBerth {
    RootlessBerth::with_busybox(Path::new(env!("CARGO_BIN_EXE_berth")), IMAGE)
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

// The namespace maps the user's own uid to 0 and the /etc/subuid range above it, as Podman's
// does; one pause process holds it, detached and with no descriptors open, and later commands
// join that same namespace.
#[test]
fn unshare_runs_in_the_users_namespace_held_by_one_pause_process() {
    let b = engine();
    assert!(b.pause_pid().is_none());
    let maps = b.ok(&["unshare", "cat", "/proc/self/uid_map", "/proc/self/gid_map"]);
    let (u, g) = (b.user().subuid(), b.user().subgid());
    let lines: Vec<Vec<u64>> =
        maps.lines().map(|l| l.split_whitespace().map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(
        lines,
        [
            vec![0, u64::from(b.user().uid()), 1],
            vec![1, u64::from(u.start), u64::from(u.count)],
            vec![0, u64::from(b.user().gid()), 1],
            vec![1, u64::from(g.start), u64::from(g.count)],
        ]
    );

    let pid = b.pause_pid().expect("a pause process runs");
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_eq!(fields[3], pid.to_string(), "the pause process leads its own session");
    assert_eq!(fs::read_to_string(format!("/proc/{pid}/comm")).unwrap(), "berth-pause\n");
    let fds: Vec<_> = fs::read_dir(format!("/proc/{pid}/fd")).unwrap().collect();
    assert!(fds.is_empty(), "the pause process keeps descriptors open: {fds:?}");
    assert_eq!(fs::metadata(format!("/proc/{pid}")).unwrap().uid(), b.user().uid());

    // A second command joins the same namespace, with the working directory kept.
    let ns = b.ok(&["unshare", "sh", "-c", "readlink /proc/self/ns/user; pwd; id -u"]);
    let theirs = fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    let ns: Vec<&str> = ns.lines().collect();
    assert_eq!(ns[0], theirs.to_str().unwrap());
    assert_eq!(ns[1], b.user().home().to_str().unwrap());
    assert_eq!(ns[2], "0");
    assert_eq!(b.pause_pid(), Some(pid));

    // Its exit code is the command's; a missing command is 127.
    assert_eq!(b.code(&["unshare", "sh", "-c", "exit 7"]), Some(7));
    assert_eq!(b.code(&["unshare", "/no/such/program"]), Some(127));
}

// `system migrate` ends the pause process and removes its pid file; the next command makes a
// new namespace. A pid file naming a process that is gone, or a live process that is not a
// pause process, is replaced, and that other process is left alone.
#[test]
fn migrate_and_stale_pid_files() {
    let b = engine();
    b.ok(&["unshare", "true"]);
    let first = b.pause_pid().unwrap();
    b.ok(&["system", "migrate"]);
    assert!(!alive(first), "migrate left pause process {first}");
    assert!(!b.pause_pid_file().exists());
    b.ok(&["system", "migrate"]);

    // A reused pid: a live process of the user in the host's namespaces, recorded with the
    // start time it has, so only the namespace check can tell.
    let mut other = b.user().command("sleep").arg("600").spawn().unwrap();
    let start = {
        let stat = fs::read_to_string(format!("/proc/{}/stat", other.id())).unwrap();
        stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(19).unwrap().to_owned()
    };
    fs::create_dir_all(b.pause_pid_file().parent().unwrap()).unwrap();
    fs::write(b.pause_pid_file(), format!("{} {start}\n", other.id())).unwrap();
    b.ok(&["unshare", "true"]);
    let second = b.pause_pid().unwrap();
    assert_ne!(second, other.id() as i32);
    assert!(alive(other.id() as i32), "berth touched a process that was not its pause process");
    other.kill().unwrap();
    other.wait().unwrap();

    // A pid that names nothing.
    b.ok(&["system", "migrate"]);
    fs::write(b.pause_pid_file(), "2147483000 12345\n").unwrap();
    b.ok(&["unshare", "true"]);
    assert!(b.pause_pid().is_some_and(|p| p != 2_147_483_000));
}

// A user without /etc/subuid ranges gets one line naming the file and the usermod fix, exit
// 125, and no pause process; commands that need no namespace still work. (The override points
// berth at an empty subuid file, since no second test user exists.)
#[test]
fn missing_subordinate_ranges_get_the_fix() {
    let b = engine();
    let empty = b.dir().join("subuid");
    fs::write(&empty, "someoneelse:200000:65536\n").unwrap();
    let mut command = b.command(&["images"]);
    command.env("_BERTH_SUBUID_FILE", &empty);
    let out = b.run_with(command);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap();
    assert!(first.starts_with("berth: "), "{stderr}");
    assert!(first.contains(&format!("no subordinate ids in {}", empty.display())), "{stderr}");
    assert!(first.contains("usermod --add-subuids"), "{stderr}");
    assert!(b.pause_pid().is_none());
    let mut command = b.command(&["version"]);
    command.env("_BERTH_SUBUID_FILE", &empty);
    assert!(b.run_with(command).status.success());
}

// Layers unpack as root of the namespace: a file the image gives uid 1000 belongs to the
// subuid range's 1000th id on the host, root's files to the user; whiteouts and opaque
// directories hide lower files inside the container.
#[test]
fn layers_keep_the_images_owners_and_whiteouts() {
    let b = engine();
    let (base, top) = (b.dir().join("base"), b.dir().join("top"));
    berth_testkit::busybox::rootfs(&base).unwrap();
    for d in ["data", "opq"] {
        fs::create_dir_all(base.join(d)).unwrap();
        fs::create_dir_all(top.join(d)).unwrap();
    }
    for f in ["data/owned", "data/gone", "opq/old"] {
        fs::write(base.join(f), "x").unwrap();
    }
    rustix::fs::chown(
        base.join("data/owned"),
        Some(rustix::process::Uid::from_raw(1000)),
        Some(rustix::process::Gid::from_raw(1000)),
    )
    .unwrap();
    for f in ["data/.wh.gone", "opq/.wh..wh..opq", "opq/new"] {
        fs::write(top.join(f), "").unwrap();
    }
    let layout = b.dir().join("layout");
    let mut builder = berth_testkit::layout::LayoutBuilder::new(&layout).unwrap();
    builder.add_dir_layer(&base).unwrap();
    builder.add_dir_layer(&top).unwrap();
    builder
        .finish(
            serde_json::json!({"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]}),
            "latest",
        )
        .unwrap();
    let id = b.load_untagged(&layout);

    // On the host: the unpacked file owned by 1000 in the image.
    let owned = find(&b.root(), "owned").expect("the unpacked layer file");
    assert_eq!(fs::metadata(&owned).unwrap().uid(), b.user().subuid().start + 999);
    let data = owned.parent().unwrap();
    assert_eq!(fs::metadata(data).unwrap().uid(), b.user().uid(), "root's files are the user's");

    // In a container: owners as the image says, whiteouts and the opaque directory honoured.
    let seen = b.ok(&["run", "--rm", &id, "sh", "-c", "stat -c '%u %n' /data/*; ls /opq"]);
    assert_eq!(seen, "1000 /data/owned\nnew\n");
}

/// The lifecycle, as the test user, on the storage driver the engine was given.
fn lifecycle(b: &RootlessBerth, fs_type: &str) {
    b.load_busybox(IMAGE);
    let image = IMAGE;

    // Container root is the user's own uid on the host.
    let out = b.ok(&["run", "--rm", image, "sh", "-c", "cat /proc/self/uid_map; id -u"]);
    let first: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(first, ["0", &b.user().uid().to_string(), "1"], "{out}");
    assert!(out.ends_with("\n0\n"), "{out}");

    let id =
        b.ok(&["run", "-d", "--name", "web", image, "sh", "-c", "echo started; exec sleep 600"]);
    let id = id.trim().to_owned();
    assert!(b.mounts().iter().any(|m| m.contains(fs_type)), "{fs_type}: {:?}", b.mounts());
    b.ok(&["exec", "web", "sh", "-c", "echo hi > /made-by-root"]);
    let upper = find(&b.root(), "made-by-root").expect("the file in the container's upper dir");
    assert_eq!(fs::metadata(&upper).unwrap().uid(), b.user().uid());
    assert_eq!(b.code(&["exec", "web", "sh", "-c", "exit 3"]), Some(3));
    assert!(b.ok(&["ps"]).contains("web"));
    b.eventually("the log", || b.ok(&["logs", "web"]) == "started\n");
    let inspect: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "web"])).unwrap();
    assert_eq!(inspect[0]["Id"], id.as_str());
    assert_eq!(inspect[0]["State"]["Running"], true);

    b.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(b.ok(&["wait", "web"]).trim(), "137");
    assert_eq!(b.mounts(), Vec::<String>::new(), "mounted after stop");
    b.ok(&["start", "web"]);
    b.ok(&["kill", "web"]);
    assert_eq!(b.ok(&["wait", "web"]).trim(), "137");
    b.ok(&["rm", "web"]);
    assert!(b.ok(&["ps", "-aq"]).is_empty());
    assert_eq!(b.mounts(), Vec::<String>::new(), "mounted after rm");

    // Exit codes.
    assert_eq!(b.code(&["run", "--rm", image, "sh", "-c", "exit 3"]), Some(3));
    assert_eq!(b.code(&["run", "--rm", image, "/no/such/program"]), Some(127));
    assert_eq!(b.code(&["run", "--rm", "localhost/not-here:latest", "--pull", "never"]), Some(125));
    assert_eq!(b.mounts(), Vec::<String>::new());
}

// Containers end to end on native overlayfs inside the user namespace (this kernel allows it).
#[test]
fn containers_on_native_overlay() {
    let b = engine();
    lifecycle(&b, " - overlay ");
    let kernel = rustix::system::uname().release().to_string_lossy().into_owned();
    assert_eq!(
        fs::read_to_string(b.root().join("rootless-driver")).unwrap(),
        format!("{kernel} overlay\n"),
        "the probe chose native overlay and cached it"
    );
}

// Containers end to end on fuse-overlayfs, as where the kernel refuses native overlay.
#[test]
fn containers_on_fuse_overlayfs() {
    let b = RootlessBerth::on_fuse_overlayfs(Path::new(env!("CARGO_BIN_EXE_berth")));
    lifecycle(&b, " - fuse.fuse-overlayfs ");
}

// `system migrate` stops running containers inside the namespace first, as Podman's does,
// so the new namespace finds them exited and removes them cleanly.
#[test]
fn migrate_stops_running_containers() {
    let b = with_busybox();
    b.ok(&["run", "-d", "--name", "long", IMAGE, "sleep", "600"]);
    let before = b.pause_pid().unwrap();
    b.ok(&["system", "migrate"]);
    assert!(!alive(before));
    let state = b.ok(&["inspect", "--format", "{{.State.Status}}", "long"]);
    assert_eq!(state.trim(), "exited");
    assert_ne!(b.pause_pid(), Some(before));
    b.ok(&["rm", "long"]);
    assert_eq!(b.mounts(), Vec::<String>::new());
}

// The spec of a rootless container matches what Podman 4.3 writes for a rootless `podman
// create`: no user namespace or id maps of its own (it shares the per-user one), no cgroup
// resources or cgroupsPath, a fresh read-only sysfs, devpts with gid=5, RLIMIT_NPROC at most
// the kernel's pid_max.
#[test]
fn the_rootless_spec_follows_podmans() {
    let b = with_busybox();
    let id = b.ok(&["create", IMAGE, "true"]).trim().to_owned();
    let config = find(&b.runroot(), "config.json")
        .or_else(|| find(&b.root(), "config.json"))
        .expect("the container's config.json");
    assert!(config.to_string_lossy().contains(&id), "{}", config.display());
    let spec: serde_json::Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    let linux = &spec["linux"];
    let types: Vec<&str> = linux["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["pid", "network", "ipc", "uts", "mount"]);
    for absent in ["uidMappings", "gidMappings", "resources", "cgroupsPath"] {
        assert!(linux.get(absent).is_none(), "{absent}: {}", linux[absent]);
    }
    let mount = |dest: &str| {
        spec["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == dest).cloned()
    };
    let sys = mount("/sys").unwrap();
    assert_eq!(sys["type"], "sysfs");
    assert!(sys["options"].as_array().unwrap().iter().any(|o| o == "ro"));
    let devpts = mount("/dev/pts").unwrap();
    assert!(devpts["options"].as_array().unwrap().iter().any(|o| o == "gid=5"));
    assert_eq!(mount("/sys/fs/cgroup").unwrap()["type"], "cgroup");
    let pid_max: u64 =
        fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap();
    let nproc = spec["process"]["rlimits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "RLIMIT_NPROC")
        .unwrap()["hard"]
        .as_u64()
        .unwrap();
    assert!(nproc <= pid_max, "RLIMIT_NPROC {nproc} above pid_max {pid_max}");
    b.ok(&["rm", &id]);
}

// What a default rootless container sees from inside, as the rootful one does: only its own
// processes, Podman's 11 capabilities (in the user's namespace), no mount, a masked
// /proc/kcore, a read-only /proc/sys; --read-only --tmpfs /tmp, --cap-drop ALL and -u 1000;
// and the exit codes 0, 3, 137, 127, 126 and 125 of foreground runs.
#[test]
fn rootless_isolation_and_exit_codes() {
    let b = with_busybox();
    let image = IMAGE;
    let out = b.ok(&[
        "run",
        "--rm",
        image,
        "sh",
        "-c",
        "ps -o pid | tail -n +2 | wc -l; grep CapEff /proc/self/status; \
         mount -t tmpfs none /tmp 2>/dev/null; echo mount=$?; \
         { wc -c < /proc/kcore || echo kcore=absent; } 2>/dev/null; \
         { echo 1 > /proc/sys/kernel/domainname; } 2>/dev/null; echo procsys=$?",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    let pids: usize = lines[0].trim().parse().unwrap();
    assert!(pids <= 4, "the container sees {pids} processes: {out}");
    assert_eq!(lines[1], "CapEff:\t00000000800405fb", "{out}");
    assert_ne!(lines[2], "mount=0", "mount works in a default rootless container");
    assert!(lines[3] == "kcore=absent" || lines[3].trim() == "0", "{}", lines[3]);
    assert_eq!(lines[4], "procsys=1", "/proc/sys is writable");

    let args = ["run", "--rm", "--read-only", "--tmpfs", "/tmp", image, "sh", "-c"];
    let script = "touch /x 2>/dev/null; echo root=$?; touch /tmp/y; echo tmp=$?";
    assert_eq!(b.ok(&[&args[..], &[script]].concat()), "root=1\ntmp=0\n");
    let out =
        b.ok(&["run", "--rm", "--cap-drop", "ALL", image, "grep", "CapEff", "/proc/self/status"]);
    assert_eq!(out, "CapEff:\t0000000000000000\n");
    assert_eq!(b.ok(&["run", "--rm", "-u", "1000", image, "id", "-u"]), "1000\n");

    assert_eq!(b.ok(&["run", "--rm", image, "true"]), "");
    assert_eq!(b.code(&["run", "--rm", image, "sh", "-c", "exit 3"]), Some(3));
    // Killed from outside (PID 1 ignores a SIGKILL from inside its own namespace).
    let child = b
        .command(&["run", "--rm", "--name", "killed", image, "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    b.eventually("the container to run", || {
        String::from_utf8_lossy(&b.run(&["ps", "--format", "{{.Names}}"]).stdout).trim() == "killed"
    });
    b.ok(&["kill", "killed"]);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(137));
    assert_eq!(b.code(&["run", "--rm", image, "no-such-command"]), Some(127));
    assert_eq!(b.code(&["run", "--rm", image, "/etc/passwd"]), Some(126));
    let out = b.run(&["run", "--rm", "--pull", "never", "localhost/none", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1, "{}", text(&out));
    assert!(b.ok(&["ps", "-aq"]).is_empty());
    assert_eq!(b.mounts(), Vec::<String>::new());
}

// A rootless shell trapping SIGTERM sees it on stop, and an `attach` from another shell gets
// its output and its exit code; a foreground --rm run passes berth's SIGTERM on too.
#[test]
fn rootless_stop_reaches_a_trap_and_attach_sees_it() {
    let b = with_busybox();
    let image = IMAGE;
    let script = "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done";
    let ticking = "trap 'echo got TERM; exit 7' TERM; while true; do echo tick; sleep 0.2; done";
    b.ok(&["run", "-d", "--name", "trap", image, "sh", "-c", ticking]);
    let mut attach = b
        .command(&["attach", "trap"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A tick through the attach says the client is connected.
    let mut reader = std::io::BufReader::new(attach.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert_eq!(line, "tick\n");
    b.ok(&["stop", "trap"]);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert!(rest.ends_with("got TERM\n"), "{rest}");
    let status = attach.wait().unwrap();
    assert_eq!(status.code(), Some(7), "attach exits with the container's code");
    assert!(b.ok(&["logs", "trap"]).ends_with("tick\ngot TERM\n"));
    assert_eq!(b.ok(&["inspect", "--format", "{{.State.ExitCode}}", "trap"]).trim(), "7");
    b.ok(&["rm", "trap"]);

    let child = b
        .command(&["run", "--rm", "--name", "fg", image, "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    b.eventually("the foreground container's log", || {
        String::from_utf8_lossy(&b.run(&["logs", "fg"]).stdout) == "ready\n"
    });
    // SAFETY: kill takes a pid and a signal by value; the pid is our child's.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\ngot TERM\n");
    assert!(b.ok(&["ps", "-aq"]).is_empty());
    assert_eq!(b.mounts(), Vec::<String>::new());
}

// `-it` as the test user through a pty: the shell has a terminal that follows berth's size,
// ctrl-p ctrl-q detaches, `attach` comes back and the shell's exit code comes out.
#[test]
fn rootless_it_through_a_pty_with_resize_and_detach() {
    use berth_testkit::pty;
    use std::io::Write;
    let b = with_busybox();
    let (mut child, mut master) =
        pty::spawn(b.command(&["run", "-it", "--name", "tty", IMAGE, "sh"]));
    let size_inside = |master: &mut fs::File| {
        master.write_all(b"stty size; echo size-$((6*7))\n").unwrap();
        pty::read_until(master, "size-42\r\n")
    };
    pty::resize(&master, 33, 101);
    b.eventually("the size inside", || size_inside(&mut master).contains("33 101"));
    master.write_all(b"tty; echo sum-$((40+2))\n").unwrap();
    let seen = pty::read_until(&mut master, "sum-42\r\n");
    assert!(seen.contains("/dev/pts/"), "the shell has no terminal: {seen:?}");
    master.write_all(b"\x10\x11").unwrap();
    assert_eq!(pty::wait_exit(&mut child), Some(0), "berth exits 0 on detach");
    assert_eq!(b.ok(&["ps", "--format", "{{.Names}} {{.State}}"]).trim(), "tty Running");

    let (mut child, mut master) = pty::spawn(b.command(&["attach", "tty"]));
    master.write_all(b"echo back-$((2+2))\n").unwrap();
    pty::read_until(&mut master, "back-4\r\n");
    master.write_all(b"exit 5\n").unwrap();
    assert_eq!(pty::wait_exit(&mut child), Some(5));
    b.ok(&["rm", "tty"]);
    assert_eq!(b.mounts(), Vec::<String>::new());
}
