//! Issue 7 as a user meets it, rootful: resource limits that hold (a 32 MiB limit OOM-kills a
//! larger allocation and inspect says so; `--pids-limit 10` stops a fork loop), bad resource
//! flags refused with one line and nothing created, named volumes that keep data and are
//! pre-filled from the image, read-only binds, volumes in use that cannot be removed, and
//! `stats --no-stream` showing what a container allocated.
//!
//! Each test has its own root and runroot; a guard stops and removes its containers (and
//! with them their cgroups and mounts) also when an assertion fails.

use std::path::Path;

use berth_testkit::cli::{stderr, Berth};

/// A throwaway engine with the busybox image as `localhost/bb`.
fn engine() -> Berth {
    Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), "localhost/bb")
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

// Bad resource input: one `berth:` line naming the flag, exit 125, no container made.
#[test]
fn bad_resource_flags_are_one_line_errors_and_create_nothing() {
    if !is_root() {
        return;
    }
    let berth = engine();
    for (args, says) in [
        (vec!["-m", "12x"], "invalid --memory \"12x\""),
        (vec!["--cpus", "-1"], "invalid --cpus \"-1\""),
        (vec!["--device", "/dev/no-such-device"], "/dev/no-such-device"),
        (vec!["--pids-limit", "-5"], "invalid --pids-limit"),
        (vec!["-v", "/no/such/dir:/data"], "the host path /no/such/dir does not exist"),
    ] {
        let mut full = vec!["run", "--rm"];
        full.extend(&args);
        full.extend(["-v", "keep:/keep", "localhost/bb", "true"]);
        let out = berth.run(&full);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("berth: ") && err.contains(says), "{args:?}: {err}");
        assert_eq!(berth.ok(&["ps", "-aq"]), "", "{args:?} left a container");
        assert_eq!(berth.ok(&["volume", "ls", "-q"]), "", "{args:?} left a volume");
    }
}

// A 32 MiB limit: an allocation of 100 MB is killed by the OOM killer, and inspect says so.
#[test]
fn a_memory_limit_oom_kills_a_larger_allocation() {
    if !is_root() {
        return;
    }
    let berth = engine();
    // busybox tail keeps a line it has not seen the end of in memory: all 100 MB of it.
    let out = berth.run(&[
        "run",
        "--name",
        "oom",
        "-m",
        "32m",
        "localhost/bb",
        "sh",
        "-c",
        "head -c 100m /dev/zero | tail > /dev/null",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    let killed = berth.ok(&["inspect", "--format", "{{.State.OOMKilled}}", "oom"]);
    assert_eq!(killed.trim(), "true");
    let spec: serde_json::Value = serde_json::from_str(&berth.ok(&["inspect", "oom"])).unwrap();
    assert_eq!(spec[0]["State"]["OOMKilled"], true);

    // The same allocation with room to spare is not killed.
    let out = berth.run(&[
        "run",
        "--name",
        "roomy",
        "-m",
        "256m",
        "localhost/bb",
        "sh",
        "-c",
        "head -c 100m /dev/zero | tail > /dev/null",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let killed = berth.ok(&["inspect", "--format", "{{.State.OOMKilled}}", "roomy"]);
    assert_eq!(killed.trim(), "false");
}

// --pids-limit 10: a loop that starts 20 background processes cannot fork them all.
#[test]
fn a_pids_limit_stops_a_fork_loop() {
    if !is_root() {
        return;
    }
    let berth = engine();
    let script = "i=0; while [ $i -lt 20 ]; do sleep 2 & i=$((i+1)); done; wait; echo finished";
    let out = berth.run(&["run", "--rm", "--pids-limit", "10", "localhost/bb", "sh", "-c", script]);
    let err = stderr(&out);
    assert!(err.contains("can't fork"), "the fork loop was not stopped: {err}");
    // Without the flag the default (2048) lets all 20 through.
    let out = berth.run(&["run", "--rm", "localhost/bb", "sh", "-c", script]);
    assert!(!stderr(&out).contains("can't fork"), "{}", stderr(&out));
}

// A named volume is pre-filled from the image at its first mount point, keeps what a
// container writes, and cannot be removed while a container uses it.
#[test]
fn named_volumes_keep_data_and_are_prefilled_from_the_image() {
    if !is_root() {
        return;
    }
    let berth = engine();
    // First mounted over the image's /etc: it gets the image's passwd.
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
    // Mounted elsewhere by another container: both the copied-up and the written file.
    let out = berth.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=data,target=/mnt",
        "localhost/bb",
        "sh",
        "-c",
        "cat /mnt/note; grep -c '^user:' /mnt/passwd",
    ]);
    assert_eq!(out, "kept\n1\n");
    assert_eq!(berth.ok(&["volume", "ls", "-q"]), "data\n");
    let inspect: serde_json::Value =
        serde_json::from_str(&berth.ok(&["volume", "inspect", "data"])).unwrap();
    assert_eq!(inspect[0]["Name"], "data");
    assert_eq!(inspect[0]["Driver"], "local");
    let mountpoint = inspect[0]["Mountpoint"].as_str().unwrap().to_owned();
    assert!(Path::new(&mountpoint).join("note").is_file());

    // In use by a container (even a stopped one): refused, and the data stays.
    berth.ok(&["create", "--name", "user1", "-v", "data:/data", "localhost/bb", "true"]);
    let out = berth.run(&["volume", "rm", "data"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("volume data is being used"), "{}", stderr(&out));
    assert!(Path::new(&mountpoint).join("note").is_file());
    berth.ok(&["rm", "user1"]);
    assert_eq!(berth.ok(&["volume", "rm", "data"]), "data\n");
    assert!(!Path::new(&mountpoint).exists());
}

// -v HOST:CTR binds; with :ro the container cannot write.
#[test]
fn read_only_binds_refuse_writes() {
    if !is_root() {
        return;
    }
    let berth = engine();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in"), "from host").unwrap();
    let rw = format!("{}:/data", host.path().display());
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
    assert_eq!(std::fs::read_to_string(host.path().join("out")).unwrap(), "w\n");
    let ro = format!("{}:/data:ro", host.path().display());
    let out =
        berth.run(&["run", "--rm", "-v", &ro, "localhost/bb", "sh", "-c", "echo x > /data/in"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("Read-only file system"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(host.path().join("in")).unwrap(), "from host");
}

// stats --no-stream shows a memory figure within 10% of what the container allocated (64 MiB
// written to its /dev/shm, which the memory cgroup charges to it).
#[test]
fn stats_shows_the_memory_a_container_allocated() {
    if !is_root() {
        return;
    }
    let berth = engine();
    berth.ok(&[
        "run",
        "-d",
        "--name",
        "hog",
        "--shm-size",
        "128m",
        "localhost/bb",
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=64 2>/dev/null; echo filled; exec sleep 600",
    ]);
    berth.eventually("the container to fill its memory", || {
        String::from_utf8_lossy(&berth.run(&["logs", "hog"]).stdout).contains("filled")
    });
    let bytes: u64 = berth
        .ok(&["stats", "--no-stream", "--format", "{{.MemUsageBytes}}", "hog"])
        .trim()
        .parse()
        .unwrap();
    let allocated = 64.0 * 1024.0 * 1024.0;
    let off = (bytes as f64 - allocated).abs() / allocated;
    assert!(off < 0.10, "stats says {bytes} bytes for 64 MiB allocated");

    let table = berth.ok(&["stats", "--no-stream"]);
    let mut lines = table.lines();
    let header: Vec<&str> =
        lines.next().unwrap().split("  ").filter(|c| !c.is_empty()).map(str::trim).collect();
    assert_eq!(
        header,
        ["ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET IO", "BLOCK IO", "PIDS"]
    );
    let row = lines.next().unwrap();
    assert!(row.contains("hog") && row.contains("MB / "), "{table}");

    // top lists the init (PID 1 in the container) and its command.
    let top = berth.ok(&["top", "hog"]);
    assert!(top.starts_with("USER"), "{top}");
    assert!(
        top.lines().any(|l| l.contains("sleep 600") && l.split_whitespace().nth(1) == Some("1")),
        "{top}"
    );

    // update lowers the limit of the running container; stats shows the new limit.
    berth.ok(&["update", "--memory", "100m", "hog"]);
    let limit = berth.ok(&["stats", "--no-stream", "--format", "{{.MemLimit}}", "hog"]);
    assert_eq!(limit.trim(), (100u64 << 20).to_string());
}

// cp into a container and back out keeps the tree, its modes and its owners; diff shows what
// the container changed; events lists the lifecycle of a run.
#[test]
fn cp_round_trips_a_directory_with_modes_and_owners() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !is_root() {
        return;
    }
    let berth = engine();
    let host = tempfile::tempdir().unwrap();
    let tree = host.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/file"), "data").unwrap();
    std::fs::set_permissions(tree.join("sub/file"), std::fs::Permissions::from_mode(0o640))
        .unwrap();
    std::fs::set_permissions(tree.join("sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(tree.join("sub/file"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::symlink("sub/file", tree.join("link")).unwrap();

    berth.ok(&["create", "--name", "box", "localhost/bb", "true"]);
    // The image has no /srv: as in Docker, the tree becomes /srv, and back out it becomes
    // the host's `back`.
    berth.ok(&["cp", tree.to_str().unwrap(), "box:/srv"]);
    let out_dir = host.path().join("back");
    berth.ok(&["cp", "box:/srv", out_dir.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out_dir.join("sub/file")).unwrap(), "data");
    let file = std::fs::metadata(out_dir.join("sub/file")).unwrap();
    assert_eq!((file.mode() & 0o7777, file.uid(), file.gid()), (0o640, 1000, 1000));
    let sub = std::fs::metadata(out_dir.join("sub")).unwrap();
    assert_eq!(sub.mode() & 0o7777, 0o750);
    assert_eq!(std::fs::read_link(out_dir.join("link")).unwrap(), Path::new("sub/file"));

    // The copied tree is what the container added.
    let diff = berth.ok(&["diff", "box"]);
    assert!(diff.lines().any(|l| l == "A /srv/sub/file"), "{diff}");
    assert!(diff.lines().any(|l| l == "A /srv"), "{diff}");

    // As a tar stream on stdout.
    let out = berth.run(&["cp", "box:/srv/sub/file", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["file"]);

    berth.ok(&["run", "--rm", "--name", "short", "localhost/bb", "true"]);
    let events = || {
        berth.ok(&[
            "events",
            "--stream=false",
            "--filter",
            "container=short",
            "--format",
            "{{.Status}}",
        ])
    };
    // The monitor writes `died` as it records the exit and, for --rm, `remove` as it removes
    // the container, which may be just after `run` returns.
    berth.eventually("the remove event", || events().contains("remove"));
    assert_eq!(events(), "create\nstart\ndied\nremove\n");
}

/// `ps -o pid,ppid,stat,args` inside container `name`, without the ps itself:
/// (pid, parent pid, state, command line).
fn processes(berth: &Berth, name: &str) -> Vec<(u32, u32, String, String)> {
    let out = berth.ok(&["exec", name, "ps", "-o", "pid,ppid,stat,args"]);
    out.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let pid = fields.next()?.parse().ok()?;
            let ppid = fields.next()?.parse().ok()?;
            let stat = fields.next()?.to_owned();
            let args = fields.collect::<Vec<_>>().join(" ");
            Some((pid, ppid, stat, args))
        })
        .filter(|(_, _, _, args)| !args.starts_with("ps -o"))
        .collect()
}

// With --init, PID 1 is berth's init and the command is its child; ps shows the command.
#[test]
fn init_is_pid_1_with_the_command_as_its_child() {
    if !is_root() {
        return;
    }
    let berth = engine();
    let out = berth.ok(&["run", "--rm", "--init", "localhost/bb", "ps", "-o", "pid,ppid,args"]);
    let rows: Vec<Vec<&str>> =
        out.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0][..4], ["1", "0", "/run/berth-init", "--"], "{out}");
    assert!(rows.iter().any(|r| r[1] == "1" && r[2] == "ps"), "{out}");

    berth.ok(&["run", "-d", "--init", "--name", "shown", "localhost/bb", "sleep", "3600"]);
    assert_eq!(berth.ok(&["ps", "--format", "{{.Command}}"]).trim(), "sleep 3600");
    let init = berth.ok(&["inspect", "--format", "{{.HostConfig.Init}} {{.Path}}", "shown"]);
    assert_eq!(init.trim(), "true /run/berth-init");
}

// Orphans reparented to PID 1: without an init a command that never waits (here `sleep`,
// exec'd by the shell) leaves them zombies; with --init none stays.
#[test]
fn init_leaves_no_zombies() {
    if !is_root() {
        return;
    }
    let berth = engine();
    // The orphans outlive the shell's last wait (for the second subshell), so nothing but an
    // init reaps them once the shell has become `sleep 3600`.
    let workload = "(sleep 2 &); (sleep 2 &); exec sleep 3600";
    berth.ok(&["run", "-d", "--name", "plain", "localhost/bb", "sh", "-c", workload]);
    berth.ok(&["run", "-d", "--init", "--name", "init", "localhost/bb", "sh", "-c", workload]);

    berth.eventually("a zombie without --init", || {
        processes(&berth, "plain").iter().any(|(_, _, stat, _)| stat.starts_with('Z'))
    });
    // Once the shell has exec'd `sleep 3600`, both orphans exist; they must be reaped.
    let mut seen = Vec::new();
    berth.eventually("the orphans reaped with --init", || {
        seen = processes(&berth, "init");
        seen.len() == 2
            && seen.iter().any(|(pid, _, _, args)| *pid == 1 && args.starts_with("/run/berth-init"))
            && seen.iter().any(|(_, ppid, stat, args)| {
                *ppid == 1 && args == "sleep 3600" && !stat.starts_with('Z')
            })
    });
    assert!(seen.iter().all(|(_, _, stat, _)| !stat.starts_with('Z')), "{seen:?}");
}

// stop reaches the command through the init, and the exit code passes through: a command
// without a SIGTERM handler ends with 143 (as PID 1 alone it would ignore SIGTERM until the
// SIGKILL after the timeout: 137), a trap's `exit 3` is 3, and so is a plain `exit 3`.
#[test]
fn stop_reaches_the_command_through_the_init() {
    if !is_root() {
        return;
    }
    let berth = engine();
    assert_eq!(
        berth.code(&["run", "--rm", "--init", "localhost/bb", "sh", "-c", "exit 3"]),
        Some(3)
    );

    berth.ok(&["run", "-d", "--init", "--name", "sleeper", "localhost/bb", "sleep", "3600"]);
    berth.ok(&["stop", "-t", "60", "sleeper"]);
    let code = berth.ok(&["inspect", "--format", "{{.State.ExitCode}}", "sleeper"]);
    assert_eq!(code.trim(), "143");

    let script = "trap 'exit 3' TERM; touch /ready; while :; do sleep 0.1; done";
    berth.ok(&["run", "-d", "--init", "--name", "trap", "localhost/bb", "sh", "-c", script]);
    berth.eventually("the trap set", || {
        berth.code(&["exec", "trap", "test", "-e", "/ready"]) == Some(0)
    });
    berth.ok(&["stop", "-t", "60", "trap"]);
    let code = berth.ok(&["inspect", "--format", "{{.State.ExitCode}}", "trap"]);
    assert_eq!(code.trim(), "3");
}

fn volume_names(berth: &Berth) -> Vec<String> {
    let mut names: Vec<String> =
        berth.ok(&["volume", "ls", "-q"]).lines().map(str::to_owned).collect();
    names.sort();
    names
}

// rm -v removes a container's anonymous volumes and keeps its named ones; plain rm keeps
// both; run --rm removes the anonymous ones as the container goes, and its monitor writes
// the remove event; volume prune asks first unless -f, then removes every unused volume.
#[test]
fn anonymous_volumes_go_with_rm_v_and_run_rm() {
    if !is_root() {
        return;
    }
    let berth = engine();
    berth.ok(&["create", "--name", "a", "-v", "keep:/keep", "-v", "/anon", "localhost/bb", "true"]);
    assert_eq!(volume_names(&berth).len(), 2);
    berth.ok(&["rm", "-v", "a"]);
    assert_eq!(volume_names(&berth), ["keep"]);

    berth.ok(&["create", "--name", "b", "-v", "/anon", "localhost/bb", "true"]);
    berth.ok(&["rm", "b"]);
    assert_eq!(volume_names(&berth).len(), 2, "rm without -v keeps the anonymous volume");

    // Foreground: the volume is gone by the time run returns (the monitor removes it first).
    let out = berth.run(&["run", "--rm", "--name", "c", "-v", "/anon", "localhost/bb", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(volume_names(&berth).len(), 2);
    let removed = berth.ok(&[
        "events",
        "--stream=false",
        "--filter",
        "event=remove",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(removed.lines().filter(|n| *n == "c").count(), 1, "{removed}");
    // Detached.
    berth.ok(&["run", "-d", "--rm", "--name", "d", "-v", "/anon", "localhost/bb", "true"]);
    // Its container goes before its volume: wait for both.
    berth.eventually("d and its volume removed", || {
        berth.ok(&["ps", "-aq"]).is_empty() && volume_names(&berth).len() == 2
    });

    // No answer on stdin: nothing is pruned.
    let asked = berth.ok(&["volume", "prune"]);
    assert!(asked.contains("Are you sure you want to continue? [y/N]"), "{asked}");
    assert_eq!(volume_names(&berth).len(), 2);
    let before = volume_names(&berth);
    let mut pruned: Vec<String> =
        berth.ok(&["volume", "prune", "-f"]).lines().map(str::to_owned).collect();
    pruned.sort();
    assert_eq!(pruned, before);
    assert!(volume_names(&berth).is_empty());
}

// An image's VOLUME gets an anonymous volume, pre-filled from the image, that `rm -v` removes;
// --mount makes tmpfs mounts of the size asked for and read-only binds.
#[test]
fn image_volumes_and_mount_types() {
    if !is_root() {
        return;
    }
    let berth = engine();
    let tree = tempfile::tempdir().unwrap();
    berth_testkit::busybox::rootfs(tree.path()).unwrap();
    std::fs::create_dir(tree.path().join("data")).unwrap();
    std::fs::write(tree.path().join("data/seed"), "from the image\n").unwrap();
    let layout = tempfile::tempdir().unwrap();
    let mut builder = berth_testkit::layout::LayoutBuilder::new(layout.path()).unwrap();
    builder.add_dir_layer(tree.path()).unwrap();
    builder
        .finish(
            serde_json::json!({"Cmd": ["sh"], "Volumes": {"/data": {}},
                "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}),
            "latest",
        )
        .unwrap();
    let out = berth.ok(&["load", "-i", layout.path().to_str().unwrap()]);
    let id = out.trim().strip_prefix("Loaded image: sha256:").unwrap().to_owned();
    berth.ok(&["tag", &id, "localhost/vol"]);

    let out = berth.ok(&[
        "run",
        "--name",
        "v",
        "localhost/vol",
        "sh",
        "-c",
        "cat /data/seed; grep ' /data ' /proc/mounts | wc -l",
    ]);
    assert_eq!(out, "from the image\n1\n");
    let names = volume_names(&berth);
    assert!(names.len() == 1 && names[0].len() == 64, "{names:?}");
    let anonymous = berth.ok(&["volume", "inspect", "--format", "{{.Anonymous}}", &names[0]]);
    assert_eq!(anonymous.trim(), "true");
    berth.ok(&["rm", "-v", "v"]);
    assert!(volume_names(&berth).is_empty());

    let out = berth.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m",
        "localhost/bb",
        "sh",
        "-c",
        "grep ' /t ' /proc/mounts | cut -d' ' -f3; df -k /t | tail -n 1 | awk '{print $2}'",
    ]);
    assert_eq!(out, "tmpfs\n1024\n");
    let host = tempfile::tempdir().unwrap();
    let bind = format!("type=bind,source={},target=/b,readonly", host.path().display());
    let out = berth.run(&["run", "--rm", "--mount", &bind, "localhost/bb", "touch", "/b/x"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("Read-only file system"), "{}", stderr(&out));
}
