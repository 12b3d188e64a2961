//! Issue 7 rootless, as the unprivileged test user runs it: named volumes that keep data, are
//! pre-filled from the image and are owned right inside the user namespace; read-only binds;
//! `cp` round trips; `--init`; and the resource flags, which on a host without cgroup
//! delegation fail with one line saying why the limit cannot be applied.
//!
//! Each test has a throwaway rootless engine (berth_testkit::rootless_cli): its own roots,
//! runtime directory, user namespace and pause process, all gone when the test ends.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_testkit::cli::stderr;
use berth_testkit::rootless_cli::RootlessBerth;

fn engine() -> Option<RootlessBerth> {
    // Rootless tests switch to the test user, which only root can do.
    rustix::process::geteuid().is_root().then(|| {
        RootlessBerth::with_busybox(Path::new(env!("CARGO_BIN_EXE_berth")), "localhost/bb")
    })
}

/// The host path of volume `name`'s data.
fn mountpoint(berth: &RootlessBerth, name: &str) -> PathBuf {
    PathBuf::from(berth.ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", name]).trim())
}

// A named volume keeps what one container wrote for the next and is pre-filled from the
// image. A file container root makes is the user's own on the host; one made by container
// uid 1000 is the user's subordinate uid 1000 (subuid start + 999). A fresh volume belongs to
// the container's user (Podman's rule), so `-u 1000` can write to it; mounted over a
// directory of the image, it takes that directory's owner and mode instead (Docker's copy-up).
#[test]
fn named_volumes_keep_data_are_prefilled_and_owned_in_the_user_namespace() {
    let Some(berth) = engine() else { return };
    let user = berth.user();
    let out = berth.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/etc",
        "localhost/bb",
        "sh",
        "-c",
        "echo kept > /etc/note; grep -c '^user:' /etc/passwd",
    ]);
    assert_eq!(out.trim(), "1");
    let out = berth.ok(&["run", "--rm", "-v", "data:/mnt", "localhost/bb", "cat", "/mnt/note"]);
    assert_eq!(out, "kept\n");
    let data = mountpoint(&berth, "data");
    assert_eq!(fs::metadata(data.join("note")).unwrap().uid(), user.uid());
    assert_eq!(fs::metadata(data.join("passwd")).unwrap().uid(), user.uid());

    // Not in the image: the volume is uid 1000's, and what it writes is its subordinate uid.
    let out = berth.ok(&[
        "run",
        "--rm",
        "-u",
        "1000:1000",
        "-v",
        "mine:/work",
        "localhost/bb",
        "sh",
        "-c",
        "echo hi > /work/f && stat -c '%u:%g' /work /work/f",
    ]);
    assert_eq!(out, "1000:1000\n1000:1000\n");
    let mine = mountpoint(&berth, "mine");
    let (host_uid, host_gid) = (user.subuid().start + 999, user.subgid().start + 999);
    let f = fs::metadata(mine.join("f")).unwrap();
    assert_eq!((f.uid(), f.gid()), (host_uid, host_gid));
    assert_eq!(fs::metadata(&mine).unwrap().uid(), host_uid);

    // Over the image's /root (root's, 0700): the volume takes both, so uid 1000 cannot write.
    let out = berth.run(&[
        "run",
        "--rm",
        "-u",
        "1000",
        "-v",
        "roots:/root",
        "localhost/bb",
        "touch",
        "/root/x",
    ]);
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    let roots = fs::metadata(mountpoint(&berth, "roots")).unwrap();
    assert_eq!((roots.uid(), roots.mode() & 0o7777), (user.uid(), 0o700));
}

// -v HOST:CTR binds a directory of the user's; with :ro the container cannot write to it.
#[test]
fn read_only_binds_refuse_writes() {
    let Some(berth) = engine() else { return };
    let host = berth.dir().join("bind");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("in"), "from host").unwrap();
    let user = berth.user();
    for path in [host.as_path(), host.join("in").as_path()] {
        std::os::unix::fs::chown(path, Some(user.uid()), Some(user.gid())).unwrap();
    }
    let rw = format!("{}:/data", host.display());
    let out = berth.ok(&[
        "run",
        "--rm",
        "-v",
        &rw,
        "localhost/bb",
        "sh",
        "-c",
        "cat /data/in; echo w > /data/out",
    ]);
    assert_eq!(out, "from host");
    let written = fs::metadata(host.join("out")).unwrap();
    assert_eq!(
        (written.uid(), fs::read_to_string(host.join("out")).unwrap()),
        (user.uid(), "w\n".into())
    );
    let ro = format!("{}:/data:ro", host.display());
    let out =
        berth.run(&["run", "--rm", "-v", &ro, "localhost/bb", "sh", "-c", "echo x > /data/in"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("Read-only file system"), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(host.join("in")).unwrap(), "from host");
}

// cp into a rootless container and back keeps the tree, its modes and its owners as the
// namespace sees them: a file of container uid 1000 is the subordinate uid on the host side
// of the round trip, and uid 1000 again inside.
#[test]
fn cp_round_trips_a_directory_with_modes_and_owners() {
    let Some(berth) = engine() else { return };
    let user = berth.user();
    let (sub_uid, sub_gid) = (user.subuid().start + 999, user.subgid().start + 999);
    let tree = berth.dir().join("tree");
    fs::create_dir_all(tree.join("sub")).unwrap();
    fs::write(tree.join("sub/file"), "data").unwrap();
    fs::set_permissions(tree.join("sub/file"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(tree.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("sub/file", tree.join("link")).unwrap();
    for path in [&tree, &tree.join("sub")] {
        std::os::unix::fs::chown(path, Some(user.uid()), Some(user.gid())).unwrap();
    }
    std::os::unix::fs::lchown(tree.join("link"), Some(user.uid()), Some(user.gid())).unwrap();
    std::os::unix::fs::chown(tree.join("sub/file"), Some(sub_uid), Some(sub_gid)).unwrap();

    let show = "stat -c '%u:%g %a' /srv/sub/file /srv/sub";
    berth.ok(&["create", "--name", "box", "localhost/bb", "sh", "-c", show]);
    berth.ok(&["cp", tree.to_str().unwrap(), "box:/srv"]);
    assert_eq!(berth.ok(&["start", "-a", "box"]), "1000:1000 640\n0:0 750\n");
    let back = berth.dir().join("back");
    berth.ok(&["cp", "box:/srv", back.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(back.join("sub/file")).unwrap(), "data");
    let file = fs::metadata(back.join("sub/file")).unwrap();
    assert_eq!((file.mode() & 0o7777, file.uid(), file.gid()), (0o640, sub_uid, sub_gid));
    let sub = fs::metadata(back.join("sub")).unwrap();
    assert_eq!((sub.mode() & 0o7777, sub.uid()), (0o750, user.uid()));
    assert_eq!(fs::read_link(back.join("link")).unwrap(), Path::new("sub/file"));
}

// Rootless on a host without cgroup delegation (cgroup v1 here): every cgroup limit is one
// `berth:` line, exit 125, saying it cannot be applied and why, and nothing is created;
// `update` and `stats` say the same. What needs no cgroup works: an unlimited
// --pids-limit, --oom-score-adj, --shm-size, --ulimit, and --device (a bind mount of the
// host's node, as Podman makes it rootless).
#[test]
fn resource_limits_without_a_cgroup_say_why_and_the_rest_works() {
    let Some(berth) = engine() else { return };
    for flag in [
        &["--memory", "32m"][..],
        &["--memory-reservation", "16m"],
        &["--cpus", "1"],
        &["--cpu-shares", "100"],
        &["--cpuset-cpus", "0"],
        &["--pids-limit", "10"],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(flag);
        args.extend(["-v", "keep:/keep", "localhost/bb", "true"]);
        let err = berth.fails(&args, 125);
        assert_eq!(err.lines().count(), 1, "{flag:?}: {err}");
        let says = format!("berth: {} cannot be applied: berth runs rootless", flag[0]);
        assert!(err.starts_with(&says), "{flag:?}: {err}");
        assert!(err.contains("cgroup"), "{flag:?}: {err}");
        assert_eq!(berth.ok(&["ps", "-aq"]), "", "{flag:?} left a container");
        assert_eq!(berth.ok(&["volume", "ls", "-q"]), "", "{flag:?} left a volume");
    }

    let out = berth.ok(&[
        "run",
        "--rm",
        "--pids-limit",
        "-1",
        "--oom-score-adj",
        "100",
        "--shm-size",
        "1m",
        "--ulimit",
        "nofile=100:100",
        "--device",
        "/dev/null:/dev/n2",
        "localhost/bb",
        "sh",
        "-c",
        "cat /proc/self/oom_score_adj; ulimit -n; df -k /dev/shm | tail -n 1 | awk '{print $2}'; \
         echo x > /dev/n2 && test -c /dev/n2 && echo device",
    ]);
    assert_eq!(out, "100\n100\n1024\ndevice\n");

    berth.ok(&["run", "-d", "--name", "up", "localhost/bb", "sleep", "3600"]);
    let err = berth.fails(&["update", "--memory", "64m", "up"], 125);
    assert!(err.contains("cannot be applied: berth runs rootless"), "{err}");
    let err = berth.fails(&["stats", "--no-stream"], 125);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("berth: stats cannot be shown: berth runs rootless"), "{err}");
}

/// (pid, parent pid, state, command line) of the processes in container `name`, the ps
/// itself left out.
fn processes(berth: &RootlessBerth, name: &str) -> Vec<(u32, u32, String, String)> {
    let out = berth.ok(&["exec", name, "ps", "-o", "pid,ppid,stat,args"]);
    out.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let pid = fields.next()?.parse().ok()?;
            let ppid = fields.next()?.parse().ok()?;
            let stat = fields.next()?.to_owned();
            Some((pid, ppid, stat, fields.collect::<Vec<_>>().join(" ")))
        })
        .filter(|(_, _, _, args)| !args.starts_with("ps -o"))
        .collect()
}

// --init rootless: PID 1 is the init with the command as its child, orphans are reaped, and
// stop reaches a command without a SIGTERM handler (143) through it.
#[test]
fn init_reaps_orphans_and_forwards_stop() {
    let Some(berth) = engine() else { return };
    assert_eq!(
        berth.code(&["run", "--rm", "--init", "localhost/bb", "sh", "-c", "exit 3"]),
        Some(3)
    );
    // The orphans outlive the shell's last wait (for the second subshell), so nothing but an
    // init reaps them once the shell has become `sleep 3600`.
    let workload = "(sleep 2 &); (sleep 2 &); exec sleep 3600";
    berth.ok(&["run", "-d", "--init", "--name", "init", "localhost/bb", "sh", "-c", workload]);
    let mut seen = Vec::new();
    berth.eventually("the orphans reaped", || {
        seen = processes(&berth, "init");
        seen.len() == 2
            && seen
                .iter()
                .any(|(pid, _, _, args)| *pid == 1 && args.starts_with("/run/berth-init --"))
            && seen.iter().any(|(_, ppid, stat, args)| {
                *ppid == 1 && args == "sleep 3600" && !stat.starts_with('Z')
            })
    });
    berth.ok(&["stop", "-t", "60", "init"]);
    let code = berth.ok(&["inspect", "--format", "{{.State.ExitCode}}", "init"]);
    assert_eq!(code.trim(), "143");
}
