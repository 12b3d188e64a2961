//! berth-oci end to end, as root: each test builds a busybox bundle, runs the binary the way
//! Podman or containerd would, and checks from inside the container with busybox commands.

mod common;

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Stdio;

use common::{stderr, stdout, Bundle};
use serde_json::json;

// run: the process's output reaches berth-oci's stdout, its exit code is berth-oci's, and
// nothing is left in the state root afterwards.
#[test]
fn run_passes_output_and_exit_code_and_cleans_up() {
    let b = Bundle::new(&["sh", "-c", "echo hello; exit 7"]);
    let (code, out, err) = b.run("c1");
    assert_eq!(code, 7, "stderr: {err}");
    assert_eq!(out, "hello\n");
    assert!(fs::read_dir(&b.root).unwrap().next().is_none(), "state left behind");
}

// create → created (init waiting), start → running, init exits → stopped, delete → gone.
#[test]
fn lifecycle_create_start_state_delete() {
    let b = Bundle::new(&["sh", "-c", "read x < /dev/null; sleep 0.3"]);
    b.create("life");
    let s = b.state("life");
    assert_eq!(s["status"], "created");
    assert_eq!(s["id"], "life");
    let pid = s["pid"].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(s["bundle"], b.dir.canonicalize().unwrap().to_str().unwrap());

    let list = stdout(&b.oci(&["list", "--format", "json"]));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["id"], "life");
    assert_eq!(list[0]["status"], "created");

    assert!(b.oci(&["start", "life"]).status.success());
    assert_eq!(b.state("life")["status"], "running");
    // A second start is refused.
    let again = b.oci(&["start", "life"]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not created"), "{}", stderr(&again));

    // The init ends on its own: the state says so without anyone telling berth-oci.
    b.wait_status("life", "stopped");
    let del = b.oci(&["delete", "life"]);
    assert!(del.status.success(), "{}", stderr(&del));
    assert!(!b.oci(&["state", "life"]).status.success());
}

// kill takes names and numbers; --all reaches every process; delete refuses a running
// container without --force.
#[test]
fn kill_by_name_and_number_and_delete_force() {
    let b = Bundle::new(&["sleep", "100"]);
    for (id, sig) in [("k1", "9"), ("k2", "SIGKILL"), ("k3", "kill")] {
        b.create(id);
        assert!(b.oci(&["start", id]).status.success());
        let out = b.oci(&["kill", id, sig]);
        assert!(out.status.success(), "kill {sig}: {}", stderr(&out));
        b.wait_status(id, "stopped");
        assert!(b.oci(&["delete", id]).status.success());
    }
    let bad = b.oci(&["kill", "k1", "NOSUCH"]);
    assert!(!bad.status.success());
    // A stopped container: kill fails in runc's words (containerd matches them), kill --all
    // signals what is left in its cgroup and succeeds, as with runc.
    b.create("k6");
    assert!(b.oci(&["start", "k6"]).status.success());
    assert!(b.oci(&["kill", "k6", "KILL"]).status.success());
    b.wait_status("k6", "stopped");
    let out = b.oci(&["kill", "k6", "KILL"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("container not running"), "{}", stderr(&out));
    let out = b.oci(&["kill", "--all", "k6", "KILL"]);
    assert!(out.status.success(), "kill --all of a stopped container: {}", stderr(&out));

    let mut b = b;
    b.config["process"]["args"] = json!(["sh", "-c", "sleep 100 & sleep 100"]);
    b.create("k4");
    assert!(b.oci(&["start", "k4"]).status.success());
    let refused = b.oci(&["delete", "k4"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("not stopped"), "{}", stderr(&refused));
    // The background sleep may not be forked yet: wait for both.
    let mut pids: Vec<i32> = Vec::new();
    for _ in 0..200 {
        let ps = stdout(&b.oci(&["ps", "--format", "json", "k4"]));
        pids = serde_json::from_str(&ps).unwrap();
        if pids.len() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(pids.len() >= 2, "ps: {pids:?}");
    assert!(b.oci(&["kill", "--all", "k4", "KILL"]).status.success());
    b.wait_status("k4", "stopped");
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}/cmdline")).exists() || is_zombie(pid));
    }
    b.create("k5");
    assert!(b.oci(&["start", "k5"]).status.success());
    assert!(b.oci(&["delete", "--force", "k5"]).status.success());
    assert!(!b.oci(&["state", "k5"]).status.success());
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z"))
}

// The container's process is pid 1 of its own pid namespace, with its own hostname,
// domainname, network (only lo) and ipc namespace.
#[test]
fn namespaces_hostname_and_domainname() {
    let mut b = Bundle::new(&[]);
    b.config["hostname"] = json!("boxy");
    b.config["domainname"] = json!("example.org");
    let out = b.sh("cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; cat /proc/sys/kernel/domainname; ls /sys/class/net; ipcs -q | wc -l");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "sh -c cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; cat /proc/sys/kernel/domainname; ls /sys/class/net; ipcs -q | wc -l");
    assert_eq!(lines[1], "boxy");
    assert_eq!(lines[2], "example.org");
    assert_eq!(lines[3], "lo");
    let host_uts = fs::read_link("/proc/self/ns/uts").unwrap();
    let inner = b.sh("readlink /proc/self/ns/uts");
    assert_ne!(inner.trim(), host_uts.to_str().unwrap());
}

// A namespace given by path is joined: the second container shares the first one's network.
#[test]
fn namespaces_joined_by_path() {
    let mut a = Bundle::new(&["sleep", "100"]);
    a.create("owner");
    let pid = a.state("owner")["pid"].as_i64().unwrap();
    let want = fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    a.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"}, {"type": "uts"},
        {"type": "network", "path": format!("/proc/{pid}/ns/net")}
    ]);
    let got = a.sh("readlink /proc/self/ns/net");
    assert_eq!(got.trim(), want.to_str().unwrap());
}

// A time namespace with offsets: the container's monotonic clock is ahead by the offset.
#[test]
fn time_namespace_offsets() {
    let mut b = Bundle::new(&[]);
    b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400 * 365, "nanosecs": 0}});
    let up: f64 = b.sh("cut -d' ' -f1 /proc/uptime").trim().parse().unwrap();
    assert!(up > 86400.0 * 365.0, "uptime {up}");
}

// The root can be read-only; /dev has the default devices, pts, shm, mqueue and the links.
#[test]
fn rootfs_readonly_and_dev() {
    let mut b = Bundle::new(&[]);
    b.config["root"]["readonly"] = json!(true);
    let out = b.sh("touch /x 2>/dev/null && echo writable || echo readonly; ls /dev | tr '\\n' ' '; echo; readlink /dev/fd; readlink /dev/ptmx; grep -c ' /dev/pts devpts ' /proc/self/mounts; ls -l /dev/null | cut -c1");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "readonly");
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue", "fd",
        "stdin", "stdout", "stderr",
    ] {
        assert!(lines[1].split(' ').any(|d| d == dev), "/dev lacks {dev}: {}", lines[1]);
    }
    assert_eq!(lines[2], "/proc/self/fd");
    assert_eq!(lines[3], "pts/ptmx");
    assert_eq!(lines[4], "1");
    assert_eq!(lines[5], "c");
}

// Mounts with options: a tmpfs with size and nosuid, a read-only bind of a host directory,
// and recursive read-only (rro) over a bind with a submount.
#[test]
fn mounts_with_options() {
    let mut b = Bundle::new(&[]);
    let host = b.tmp.path().join("shared");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("file"), "from host\n").unwrap();
    b.add_mount(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "size=1m", "mode=700"]}));
    b.add_mount(json!({"destination": "/data", "type": "bind", "source": host,
                       "options": ["rbind", "ro"]}));
    b.add_mount(json!({"destination": "/rdata", "type": "bind", "source": host,
                       "options": ["rbind", "rro"]}));
    let out = b.sh("grep ' /scratch ' /proc/self/mounts; cat /data/file; touch /data/x 2>/dev/null || echo ro; touch /rdata/y 2>/dev/null || echo rro; stat -c %a /scratch");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("tmpfs")
            && lines[0].contains("nosuid")
            && lines[0].contains("nodev")
            && lines[0].contains("size=1024k"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "from host");
    assert_eq!(lines[2], "ro");
    assert_eq!(lines[3], "rro");
    assert_eq!(lines[4], "700");
}

// linux.devices, maskedPaths, readonlyPaths and sysctl.
#[test]
fn devices_masked_readonly_sysctl() {
    let mut b = Bundle::new(&[]);
    b.config["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                           "fileMode": 0o640, "uid": 0, "gid": 0}]);
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    let out = b.sh("stat -c '%F %t:%T %a' /dev/fuse; wc -c < /proc/timer_list; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo rofs; cat /proc/sys/net/ipv4/ip_forward");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "character special file a:e5 640");
    assert_eq!(lines[1].trim(), "0");
    assert_eq!(lines[2].trim(), "0");
    assert_eq!(lines[3], "rofs");
    assert_eq!(lines[4], "1");
}

// --no-pivot: the root is moved onto / and chrooted; the container still sees only its tree.
#[test]
fn no_pivot_root() {
    let b = Bundle::new(&["sh", "-c", "ls /bin/busybox && cat /etc/hostname"]);
    b.write();
    let bundle = b.dir.to_str().unwrap().to_owned();
    let out = b.oci(&["run", "--no-pivot", "--bundle", &bundle, "np"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/bin/busybox\nbusybox\n");
}

// rootfsPropagation: the container's / has the propagation asked for.
#[test]
fn rootfs_propagation() {
    let mut b = Bundle::new(&[]);
    b.config["linux"]["rootfsPropagation"] = json!("shared");
    let out = b.sh("awk '$5 == \"/\"' /proc/self/mountinfo");
    assert!(out.contains("shared:"), "{out}");
    b.config["linux"]["rootfsPropagation"] = json!("private");
    let out = b.sh("awk '$5 == \"/\"' /proc/self/mountinfo");
    assert!(!out.contains("shared:") && !out.contains("master:"), "{out}");
}

// Process: env, cwd, uid, gid, additional gids, umask, rlimits, no_new_privs, oom_score_adj.
#[test]
fn process_settings() {
    let mut b = Bundle::new(&[]);
    let p = &mut b.config["process"];
    p["env"] = json!(["PATH=/bin:/usr/bin", "GREETING=hi there"]);
    p["cwd"] = json!("/home/user");
    p["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 0o077});
    p["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 123, "soft": 100}]);
    p["noNewPrivileges"] = json!(true);
    p["oomScoreAdj"] = json!(345);
    let out = b.sh("echo $GREETING; pwd; id -u; id -g; id -G; umask; ulimit -n; ulimit -Hn; grep NoNewPrivs /proc/self/status | tr -d '\\t'; cat /proc/self/oom_score_adj");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "hi there",
            "/home/user",
            "1000",
            "1000",
            "1000 10 20",
            "0077",
            "100",
            "123",
            "NoNewPrivs:1",
            "345"
        ]
    );
}

// The five capability sets land as asked, after the switch to a non-root user.
#[test]
fn capabilities_after_user_switch() {
    let mut b = Bundle::new(&[]);
    let caps = json!(["CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
        "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps
    });
    let out = b.sh("grep '^Cap' /proc/self/status | tr -d '\\t'");
    // KILL is bit 5, NET_BIND_SERVICE bit 10, CHOWN bit 0.
    let want = [
        "CapInh:0000000000000420",
        "CapPrm:0000000000000420",
        "CapEff:0000000000000420",
        "CapBnd:0000000000000421",
        "CapAmb:0000000000000420",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
}

// The working directory is resolved inside the root: ".." cannot climb out of it.
#[test]
fn cwd_is_resolved_inside_the_root() {
    let mut b = Bundle::new(&[]);
    b.config["process"]["cwd"] = json!("/../../../..");
    assert_eq!(b.sh("pwd"), "/\n");
}

// Only stdio and --preserve-fds reach the container (CVE-2024-21626): a descriptor berth-oci
// inherited is closed, a preserved one is readable.
#[test]
fn only_stdio_and_preserved_fds_survive() {
    let mut b = Bundle::new(&[]);
    b.config["process"]["args"] =
        json!(["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '; echo; cat <&3"]);
    b.write();
    let leak = b.tmp.path().join("leak");
    fs::write(&leak, "preserved\n").unwrap();
    let bundle = b.dir.to_str().unwrap().to_owned();
    let f = fs::File::open(&leak).unwrap();
    let extra = fs::File::open("/").unwrap();
    let mut cmd = b.cmd(&["run", "--preserve-fds", "1", "--bundle", &bundle, "fds"]);
    let (fd3, fd9) = (f.as_raw_fd(), extra.as_raw_fd());
    use std::os::unix::process::CommandExt;
    // SAFETY: dup2 in the pre-exec child only rearranges descriptors the child owns.
    unsafe {
        cmd.pre_exec(move || {
            // Both without close-on-exec: berth-oci must close 9 itself and pass 3 on.
            for (from, to) in [(fd3, 3), (fd9, 9)] {
                if from != to {
                    libc::dup2(from, to);
                }
                libc::fcntl(to, libc::F_SETFD, 0);
            }
            Ok(())
        });
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    // ls opens the directory it lists: 0 1 2 3 and its own descriptor, never 9.
    let fds: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert!(!fds.contains(&"9"), "fd 9 leaked: {fds:?}");
    assert!(fds.len() <= 5, "{fds:?}");
    assert_eq!(lines.next(), Some("preserved"));
}

// CVE-2019-5736: while the init waits to be started it is still berth-oci's image, and a
// process in the container cannot open it through /proc/1/exe.
#[test]
fn init_binary_is_not_reachable_through_proc_exe() {
    let b = Bundle::new(&["true"]);
    b.create("cve");
    let out = b.oci(&["exec", "cve", "sh", "-c", "cat /proc/1/exe > /dev/null && echo opened || echo denied; readlink /proc/1/exe || echo nolink"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("denied"), "{text}");
    assert!(text.contains("nolink"), "{text}");
}

// exec: inline args with --env, --cwd and --user; a process.json; --detach with --pid-file.
#[test]
fn exec_inline_process_json_and_detach() {
    let b = Bundle::new(&["sleep", "100"]);
    b.create("ex");
    assert!(b.oci(&["start", "ex"]).status.success());
    let out = b.oci(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/etc",
        "--user",
        "1000:1000",
        "ex",
        "sh",
        "-c",
        "echo $FOO; pwd; id -u",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "bar\n/etc\n1000\n");

    let code = b.oci(&["exec", "ex", "sh", "-c", "exit 5"]).status.code();
    assert_eq!(code, Some(5));

    let process = b.tmp.path().join("process.json");
    fs::write(
        &process,
        json!({"args": ["cat", "/proc/self/cmdline"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                               "env": ["PATH=/bin"]})
        .to_string(),
    )
    .unwrap();
    let out = b.oci(&["exec", "--process", process.to_str().unwrap(), "ex"]);
    assert_eq!(stdout(&out), "cat\0/proc/self/cmdline\0");

    let pid_file = b.tmp.path().join("exec.pid");
    b.detached(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "ex",
        "sleep",
        "50",
    ]);
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let init = b.state("ex")["pid"].as_i64().unwrap();
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        fs::read_link(format!("/proc/{init}/ns/pid")).unwrap()
    );
}

/// Receives one descriptor sent with SCM_RIGHTS.
fn recv_fd(sock: &std::os::unix::net::UnixStream) -> OwnedFd {
    let mut buf = [0u8; 64];
    let mut cbuf = [0u8; 64];
    let mut iov =
        libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: msghdr is plain data; the buffers it points to outlive recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = cbuf.len();
    // SAFETY: as above; the kernel fills at most the lengths given.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    assert!(n > 0, "recvmsg: {}", std::io::Error::last_os_error());
    // SAFETY: recvmsg filled a control message; its data is one descriptor.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null());
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const i32);
        OwnedFd::from_raw_fd(fd)
    }
}

// A terminal: the pty master arrives over --console-socket; the process has the slave as its
// controlling terminal, sized as consoleSize says.
#[test]
fn console_socket_gets_the_pty_master() {
    let mut b = Bundle::new(&["sh", "-c", "tty; stty size"]);
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    b.write();
    let sock = b.tmp.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let bundle = b.dir.to_str().unwrap().to_owned();
    let out =
        b.oci(&["create", "--console-socket", sock.to_str().unwrap(), "--bundle", &bundle, "tty"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (conn, _) = listener.accept().unwrap();
    let master = recv_fd(&conn);
    assert!(b.oci(&["start", "tty"]).status.success());
    let mut f = fs::File::from(master);
    let mut text = String::new();
    use std::io::Read;
    let mut buf = [0u8; 256];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if text.contains("30 100") {
            break;
        }
    }
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(text.contains("30 100"), "{text:?}");
}

type Edit = Box<dyn Fn(&mut serde_json::Value)>;

// Bad configs fail at create with one line naming the field, and leave nothing behind.
#[test]
fn bad_configs_fail_at_create_and_leave_nothing() {
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|c| {
                c["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "bogus"}))
            }),
            "linux.namespaces[6].type: unknown namespace type \"bogus\"",
        ),
        (
            Box::new(|c| {
                c["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "pid"}))
            }),
            "linux.namespaces[6]: duplicate pid namespace",
        ),
        (
            Box::new(|c| c["linux"]["namespaces"][1]["path"] = json!("/etc/passwd")),
            "linux.namespaces[1].path: /etc/passwd is not a namespace",
        ),
        (
            Box::new(|c| {
                c["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
                c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 100},
                                                {"containerID": 50, "hostID": 300000, "size": 10}]);
                c["linux"]["gidMappings"] =
                    json!([{"containerID": 0, "hostID": 100000, "size": 100}]);
            }),
            "linux.uidMappings[1]: containerID range overlaps linux.uidMappings[0]",
        ),
        (
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("process");
            }),
            "process: missing: a container needs a process to run",
        ),
        (Box::new(|c| c["root"]["path"] = json!("../../..")), "root.path: ../../.. resolves to"),
        (
            Box::new(|c| c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0")),
            "process.selinuxLabel: not supported yet",
        ),
        (
            Box::new(|c| c["linux"]["intelRdt"] = json!({"closID": "berth"})),
            "linux.intelRdt: not supported yet",
        ),
        (
            Box::new(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"})),
            "linux.memoryPolicy: not supported yet",
        ),
        (
            Box::new(|c| c["linux"]["netDevices"] = json!({"dummy0": {"name": "eth1"}})),
            "linux.netDevices: not supported yet",
        ),
        (
            Box::new(|c| c["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["x"]})),
            "linux.personality.flags: not supported yet",
        ),
        (
            Box::new(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_ISO"})),
            "process.scheduler.policy: SCHED_ISO is not supported yet",
        ),
        (
            Box::new(|c| c["process"]["apparmorProfile"] = json!("containers-default-0.50")),
            "process.apparmorProfile: apparmor is not enabled on this host",
        ),
    ];
    for (i, (edit, want)) in cases.into_iter().enumerate() {
        let mut b = Bundle::new(&["true"]);
        edit(&mut b.config);
        b.write();
        let bundle = b.dir.to_str().unwrap().to_owned();
        let id = format!("bad{i}");
        let out = b.oci(&["create", "--bundle", &bundle, &id]);
        assert!(!out.status.success(), "case {i} succeeded");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "case {i}: {err}");
        assert!(err.contains(want), "case {i}: want {want:?}, got {err}");
        assert!(!b.root.join(&id).exists(), "case {i}: state dir left behind");
    }
}

// With a cgroup namespace the cgroup mount is the container's own: /proc/self/cgroup names
// "/" in every hierarchy, /sys/fs/cgroup shows the container's limits and processes (pid 1 is
// its init) and none of the host's other cgroups, and the mount is read-only as configured.
#[test]
fn cgroup_namespace_shows_the_container_cgroup_as_root() {
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["resources"] = json!({"pids": {"limit": 42}});
    let out = b.sh("cut -d: -f3 /proc/self/cgroup | sort -u; \
         cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; \
         cat /sys/fs/cgroup/pids/cgroup.procs /sys/fs/cgroup/cgroup.procs 2>/dev/null \
           | sort -n | head -n 1; \
         find /sys/fs/cgroup/pids -mindepth 1 -type d 2>/dev/null | wc -l; \
         mkdir /sys/fs/cgroup/x 2>/dev/null && echo writable || echo read-only");
    assert_eq!(out, "/\n42\n1\n0\nread-only\n", "{out}");
}

// Without a cgroup namespace the container still sees only its own cgroups, as with runc:
// each hierarchy's mount is its own directory (its limit at the top, no other cgroup below),
// read-only, while /proc/self/cgroup names the host's path.
#[test]
fn without_a_cgroup_namespace_the_container_sees_only_its_own_cgroups() {
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["resources"] = json!({"pids": {"limit": 42}});
    b.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "cgroup");
    let out = b.sh("grep -c berth /proc/self/cgroup; \
         cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; \
         find /sys/fs/cgroup/pids /sys/fs/cgroup/memory -mindepth 1 -type d | wc -l; \
         ls /sys/fs/cgroup/memory | grep -c '^memory.limit_in_bytes$'; \
         test -e /sys/fs/cgroup/memory/berth_parent && echo host-tree || echo own; \
         mkdir /sys/fs/cgroup/pids/x 2>/dev/null && echo writable || echo read-only");
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], "0", "the host path is in /proc/self/cgroup: {out}");
    assert_eq!(lines[1..], ["42", "0", "1", "own", "read-only"], "{out}");
}

// An exec'd process joins the container's cgroups, as with runc: in the container's cgroup
// namespace its cgroup is "/" everywhere (it would be "/.." or longer from outside).
#[test]
fn exec_joins_the_container_cgroup() {
    let b = Bundle::new(&["sleep", "100"]);
    b.create("excg");
    assert!(b.oci(&["start", "excg"]).status.success());
    let out = b.oci(&["exec", "excg", "sh", "-c", "cut -d: -f3 /proc/self/cgroup | sort -u"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/\n");
}

// An id-mapped bind (`idmap` with the mount's own maps) shows a file the host's root owns as
// the host ids 0 maps to, while a plain bind of the same directory shows root; in a container
// with a user namespace, `idmap` without maps of its own maps as the container does, so the
// host's root is the container's root there instead of nobody.
#[test]
fn idmapped_bind_mounts_show_mapped_owners() {
    let mut b = Bundle::new(&["true"]);
    let src = b.tmp.path().join("idsrc");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "x").unwrap();
    b.add_mount(json!({"destination": "/mapped", "type": "bind", "source": src,
        "options": ["bind", "idmap"],
        "uidMappings": [{"containerID": 0, "hostID": 1234, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 5678, "size": 1}]}));
    b.add_mount(json!({"destination": "/plain", "type": "bind", "source": src,
        "options": ["bind"]}));
    assert_eq!(b.sh("stat -c %u:%g /mapped/f /plain/f"), "1234:5678\n0:0\n");

    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| m["type"] != "cgroup" && m["destination"] != "/mapped");
    b.add_mount(json!({"destination": "/mapped", "type": "bind", "source": src,
        "options": ["rbind", "idmap"]}));
    b.config["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"},
        {"type": "user"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}]);
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    assert_eq!(b.sh("stat -c %u:%g /mapped/f /plain/f"), "0:0\n65534:65534\n");

    // Bad input: an id-mapped mount that is no bind fails at create, naming the mount.
    b.add_mount(json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
        "options": ["idmap"]}));
    b.config["process"]["args"] = json!(["true"]);
    let (code, _, err) = b.run("idmap-bad");
    assert_ne!(code, 0);
    assert!(err.contains("an id-mapped mount must be a bind"), "{err}");
}

/// Receives one message with one descriptor (SCM_RIGHTS): its text and the descriptor.
fn recv_text_and_fd(sock: &std::os::unix::net::UnixStream) -> (String, OwnedFd) {
    let mut buf = vec![0u8; 16384];
    let mut cbuf = [0u8; 64];
    let mut iov =
        libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: msghdr is plain data; the buffers it points to outlive recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = cbuf.len();
    // SAFETY: as above; the kernel fills at most the lengths given.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    assert!(n > 0, "recvmsg: {}", std::io::Error::last_os_error());
    // SAFETY: recvmsg filled a control message; its data is one descriptor.
    let fd = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null(), "no descriptor came");
        OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const i32))
    };
    (String::from_utf8_lossy(&buf[..n as usize]).into_owned(), fd)
}

/// struct seccomp_notif and seccomp_notif_resp of include/uapi/linux/seccomp.h.
#[repr(C)]
#[derive(Default)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp).
const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;

// SCMP_ACT_NOTIFY through linux.seccomp.listenerPath: the agent (a thread of the test) gets
// the notification fd with the container's state, answers the container's mkdir with
// ENOSPC, and the container sees that answer; an exec'd process's fd reaches it too.
#[test]
fn seccomp_notify_reaches_the_agent_and_its_answer_the_container() {
    let mut b = Bundle::new(&["sh", "-c", "mkdir /tmp/x; echo rc=$?; sleep 100"]);
    let sock = b.tmp.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "berth-test",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let (tx, rx) = std::sync::mpsc::channel();
    // Answers every notification with ENOSPC; reports each message the agent got.
    let agent = move || loop {
        let Ok((conn, _)) = listener.accept() else { return };
        let (text, fd) = recv_text_and_fd(&conn);
        let _ = tx.send(text);
        std::thread::spawn(move || loop {
            let mut req = SeccompNotif::default();
            // SAFETY: req is a zeroed seccomp_notif the kernel fills.
            if unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
                return;
            }
            let mut resp = SeccompNotifResp { id: req.id, val: 0, error: -libc::ENOSPC, flags: 0 };
            // SAFETY: resp is a seccomp_notif_resp for the notification just received.
            unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
        });
    };
    std::thread::spawn(agent);

    let out_path = b.create("notify");
    let timeout = std::time::Duration::from_secs(60);
    let state: serde_json::Value =
        serde_json::from_str(&rx.recv_timeout(timeout).unwrap()).unwrap();
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], "berth-test", "{state}");
    assert_eq!(state["state"]["id"], "notify", "{state}");
    assert_eq!(state["pid"], b.state("notify")["pid"], "{state}");
    assert!(b.oci(&["start", "notify"]).status.success());
    let mut seen = String::new();
    for _ in 0..3000 {
        seen = fs::read_to_string(&out_path).unwrap();
        if seen.contains("rc=") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(seen, "rc=1\n", "{seen}");
    let err = fs::read_to_string(b.tmp.path().join("notify.err")).unwrap();
    assert!(err.contains("No space left on device"), "{err}");

    let out = b.oci(&["exec", "notify", "sh", "-c", "mkdir /tmp/y 2>&1; echo rc=$?"]);
    let text = stdout(&out);
    assert!(text.contains("No space left on device") && text.ends_with("rc=1\n"), "{text}");
    let state: serde_json::Value =
        serde_json::from_str(&rx.recv_timeout(timeout).unwrap()).unwrap();
    assert_eq!(state["state"]["status"], "running", "{state}");
    b.config["linux"].as_object_mut().unwrap().remove("seccomp");
}

// linux.personality LINUX32: uname -m shows the 32-bit machine; LINUX leaves it alone.
#[test]
fn personality_domain_is_applied() {
    let mut b = Bundle::new(&["true"]);
    let native = b.sh("uname -m");
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    let m = b.sh("uname -m");
    assert!(matches!(m.trim(), "i686" | "armv8l" | "armv7l"), "LINUX32 gave {m:?}");
    b.config["linux"]["personality"] = json!({"domain": "LINUX"});
    assert_eq!(b.sh("uname -m"), native);
}

// An exec'd process gets the container's linux.personality too, as with runc.
#[test]
fn exec_applies_the_container_personality() {
    let mut b = Bundle::new(&["sleep", "100"]);
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    b.create("expers");
    assert!(b.oci(&["start", "expers"]).status.success());
    let out = b.oci(&["exec", "expers", "uname", "-m"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = stdout(&out);
    assert!(matches!(m.trim(), "i686" | "armv8l" | "armv7l"), "exec under LINUX32 gave {m:?}");
}

// process.scheduler: SCHED_BATCH with nice 7 shows in /proc/self/sched and /proc/self/stat.
#[test]
fn scheduler_policy_and_nice_are_applied() {
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    let out = b.sh("grep '^policy' /proc/self/sched; cut -d' ' -f19 /proc/self/stat");
    let mut lines = out.lines();
    assert!(lines.next().unwrap().ends_with(" 3"), "{out}");
    assert_eq!(lines.next(), Some("7"), "{out}");
    // A real-time policy needs a real-time budget in the container's cpu cgroup.
    b.config["linux"]["resources"]["cpu"] =
        json!({"realtimeRuntime": 10000, "realtimePeriod": 1000000});
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 10});
    let out = b.sh("grep -E '^(policy|prio) ' /proc/self/sched");
    assert!(out.lines().next().unwrap().ends_with(" 1"), "{out}");
    // The kernel's prio of an rt task is 99 - rt_priority.
    assert!(out.lines().nth(1).unwrap().ends_with(" 89"), "{out}");
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_DEADLINE", "runtime": 1000000,
                                              "deadline": 10000000, "period": 10000000});
    let out = b.sh("grep -E '^(policy|dl.runtime) ' /proc/self/sched");
    let vals: Vec<&str> = out.lines().filter_map(|l| l.split_whitespace().last()).collect();
    // dl.runtime is what is left of this period's budget, never more than the runtime.
    assert_eq!(vals[0], "6", "{out}");
    assert!(vals[1].parse::<i64>().is_ok_and(|r| r <= 1_000_000), "{out}");
}

// process.ioPriority: busybox ionice shows the class and level the process has.
#[test]
fn io_priority_is_applied() {
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    assert_eq!(b.sh("ionice").trim(), "idle");
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    assert_eq!(b.sh("ionice").trim(), "best-effort: prio 6");
}

// process.execCPUAffinity: the process runs on the final list, or on the initial one where
// no final list is given.
#[test]
fn exec_cpu_affinity_is_applied() {
    let mut b = Bundle::new(&["true"]);
    let last = std::thread::available_parallelism().unwrap().get() - 1;
    b.config["process"]["execCPUAffinity"] = json!({"initial": last.to_string(), "final": "0"});
    let out = b.sh("grep Cpus_allowed_list /proc/self/status");
    assert_eq!(out.split_whitespace().nth(1), Some("0"), "{out}");
    b.config["process"]["execCPUAffinity"] = json!({"initial": last.to_string()});
    let out = b.sh("grep Cpus_allowed_list /proc/self/status");
    assert_eq!(out.split_whitespace().nth(1), Some(last.to_string().as_str()), "{out}");
}

// exec: a process.json's ioPriority is applied to the exec'd process, and a field berth does
// not apply yet is refused in one line.
#[test]
fn exec_applies_io_priority_and_refuses_selinux_label() {
    let b = Bundle::new(&["sleep", "100"]);
    b.create("exprio");
    assert!(b.oci(&["start", "exprio"]).status.success());
    let process = b.tmp.path().join("process.json");
    let mut p = json!({"args": ["ionice"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                       "env": ["PATH=/bin"],
                       "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 3}});
    fs::write(&process, p.to_string()).unwrap();
    let out = b.oci(&["exec", "--process", process.to_str().unwrap(), "exprio"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "best-effort: prio 3");
    p["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
    fs::write(&process, p.to_string()).unwrap();
    let out = b.oci(&["exec", "--process", process.to_str().unwrap(), "exprio"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("process.selinuxLabel: not supported yet"), "{err}");
}

// A failure inside the init (a missing executable) fails create and leaves no process, no
// state directory and no cgroup.
#[test]
fn init_failure_leaves_nothing_behind() {
    let b = Bundle::new(&["/no/such/binary"]);
    b.write();
    let bundle = b.dir.to_str().unwrap().to_owned();
    let out = b.oci(&["create", "--bundle", &bundle, "nobin"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/no/such/binary"), "{}", stderr(&out));
    assert!(!b.root.join("nobin").exists());
    assert!(!Path::new("/sys/fs/cgroup/pids/nobin").exists());
    let leftovers =
        std::process::Command::new("pgrep").args(["-f", b.dir.to_str().unwrap()]).output().unwrap();
    assert!(stdout(&leftovers).trim().is_empty());
}

// Hooks: each kind runs at its point with the state on stdin; createContainer and
// startContainer run in the container's namespaces.
#[test]
fn hooks_run_with_state_on_stdin() {
    let mut b = Bundle::new(&["true"]);
    let out = b.tmp.path().join("hooks");
    fs::create_dir(&out).unwrap();
    b.add_mount(
        json!({"destination": "/hooks", "type": "bind", "source": out, "options": ["rbind"]}),
    );
    let host_hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}/{name}", out.display())]});
    let inner_hook = |name: &str, dir: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {dir}/{name}; echo >> {dir}/{name}; hostname >> {dir}/{name}")]});
    b.config["hostname"] = json!("hooked");
    b.config["hooks"] = json!({
        "prestart": [host_hook("prestart")],
        "createRuntime": [host_hook("createRuntime")],
        "createContainer": [inner_hook("createContainer", &format!("{}/bundle/rootfs/hooks", b.tmp.path().display()))],
        "startContainer": [inner_hook("startContainer", "/hooks")],
        "poststart": [host_hook("poststart")],
        "poststop": [host_hook("poststop")],
    });
    let (code, _, err) = b.run("hk");
    assert_eq!(code, 0, "{err}");
    for name in
        ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    {
        let text = fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let first = text.lines().next().unwrap();
        let state: serde_json::Value = serde_json::from_str(first).unwrap();
        assert_eq!(state["id"], "hk", "{name}");
        assert_eq!(state["bundle"], b.dir.canonicalize().unwrap().to_str().unwrap(), "{name}");
    }
    assert!(fs::read_to_string(out.join("startContainer")).unwrap().ends_with("hooked\n"));
}

// A failing prestart hook fails create and leaves nothing; a timeout is reported as one; a
// failing poststart hook only warns.
#[test]
fn hook_failure_semantics() {
    let mut b = Bundle::new(&["true"]);
    b.config["hooks"] = json!({"prestart": [{"path": "/bin/false"}]});
    let (code, _, err) = b.run("hf1");
    assert_ne!(code, 0);
    assert!(err.contains("prestart hook /bin/false"), "{err}");
    assert!(!b.root.join("hf1").exists());

    b.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}]});
    let (code, _, err) = b.run("hf2");
    assert_ne!(code, 0);
    assert!(err.contains("timed out after 1s"), "{err}");

    b.config["hooks"] = json!({"poststart": [{"path": "/bin/false"}]});
    let (code, _, err) = b.run("hf3");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning: poststart hook /bin/false"), "{err}");
}

// pause and resume through the cgroup freezer.
#[test]
fn pause_and_resume() {
    let b = Bundle::new(&["sleep", "100"]);
    b.create("pz");
    assert!(b.oci(&["start", "pz"]).status.success());
    let out = b.oci(&["pause", "pz"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.state("pz")["status"], "paused");
    let pid = b.state("pz")["pid"].as_i64().unwrap();
    let st = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(st.contains(") D ") || st.contains(") S "), "{st}");
    assert!(b.oci(&["resume", "pz"]).status.success());
    assert_eq!(b.state("pz")["status"], "running");
}

// features, spec and spec --rootless.
#[test]
fn features_and_spec() {
    let b = Bundle::new(&["true"]);
    let f: serde_json::Value = serde_json::from_slice(&b.oci(&["features"]).stdout).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert!(f["linux"]["namespaces"].as_array().unwrap().contains(&json!("time")));
    assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);
    assert!(f["linux"]["seccomp"]["actions"]
        .as_array()
        .unwrap()
        .contains(&json!("SCMP_ACT_NOTIFY")));
    assert!(f["mountOptions"].as_array().unwrap().contains(&json!("ridmap")));
    let dir = b.tmp.path().join("spec");
    fs::create_dir(&dir).unwrap();
    assert!(b.oci(&["spec", "--bundle", dir.to_str().unwrap()]).status.success());
    let spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], json!(["sh"]));
    assert!(!b.oci(&["spec", "--bundle", dir.to_str().unwrap()]).status.success(), "overwrote");
    fs::remove_file(dir.join("config.json")).unwrap();
    assert!(b.oci(&["spec", "--rootless", "--bundle", dir.to_str().unwrap()]).status.success());
    let spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert!(spec["linux"]["namespaces"].as_array().unwrap().contains(&json!({"type": "user"})));
    assert_eq!(spec["linux"]["uidMappings"][0]["hostID"], 0);
}

// Global flags: --systemd-cgroup fails clearly without systemd; --log-format json writes
// logrus-shaped error lines to --log.
#[test]
fn global_flags_systemd_and_json_log() {
    let b = Bundle::new(&["true"]);
    b.write();
    let bundle = b.dir.to_str().unwrap().to_owned();
    if !Path::new("/run/systemd/system").exists() {
        let out = b.oci(&["--systemd-cgroup", "run", "--bundle", &bundle, "sd"]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("systemd is not running"), "{}", stderr(&out));
    }
    let log = b.tmp.path().join("log.json");
    let out = b.oci(&["--log", log.to_str().unwrap(), "--log-format", "json", "start", "missing"]);
    assert!(!out.status.success());
    let line = fs::read_to_string(&log).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().contains("container \"missing\" does not exist"));
}

// run --detach returns at once with the container running; the pid file names its init.
#[test]
fn run_detach_with_pid_file() {
    let b = Bundle::new(&["sleep", "100"]);
    b.write();
    let bundle = b.dir.to_str().unwrap().to_owned();
    let pid_file = b.tmp.path().join("init.pid");
    b.detached(&[
        "run",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--bundle",
        &bundle,
        "det",
    ]);
    let s = b.state("det");
    assert_eq!(s["status"], "running");
    assert_eq!(fs::read_to_string(&pid_file).unwrap().trim(), s["pid"].to_string());
}

// linux.seccomp: the filter applies to the container's process and to exec'd ones.
#[test]
fn seccomp_filter_applies() {
    let mut b = Bundle::new(&["sleep", "100"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    b.create("sc");
    assert!(b.oci(&["start", "sc"]).status.success());
    let out = b.oci(&[
        "exec",
        "sc",
        "sh",
        "-c",
        "mkdir /tmp/d 2>&1 || true; touch /tmp/f && echo touched",
    ]);
    assert_eq!(
        stdout(&out),
        "mkdir: can't create directory '/tmp/d': Operation not permitted\ntouched\n"
    );
    let mut b2 = Bundle::new(&[]);
    b2.config["linux"]["seccomp"] = b.config["linux"]["seccomp"].clone();
    assert_eq!(b2.sh("mkdir /tmp/d 2>/dev/null || echo denied"), "denied\n");
}

// A spec that denies every device in the cgroup (runc's example does) still gets its
// default devices and its linux.devices, as with runc.
#[test]
fn device_cgroup_deny_all_keeps_default_devices() {
    let mut b = Bundle::new(&[]);
    b.config["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/kmsg2", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600}]);
    let out = b.sh("echo x > /dev/null && echo null-ok; head -c1 /dev/urandom > /dev/null && echo urandom-ok; ls /dev/kmsg2");
    assert_eq!(out, "null-ok\nurandom-ok\n/dev/kmsg2\n");
}

// tmpcopyup: a tmpfs over a directory of the image starts with that directory's contents.
#[test]
fn tmpfs_tmpcopyup_keeps_the_covered_files() {
    let mut b = Bundle::new(&[]);
    fs::create_dir_all(b.dir.join("rootfs/seed/sub")).unwrap();
    fs::write(b.dir.join("rootfs/seed/sub/file"), "seeded\n").unwrap();
    b.add_mount(json!({"destination": "/seed", "type": "tmpfs", "source": "tmpfs",
                       "options": ["tmpcopyup", "mode=755"]}));
    let out = b.sh("cat /seed/sub/file; grep -c ' /seed tmpfs ' /proc/self/mounts");
    assert_eq!(out, "seeded\n1\n");
}

// The spec: deleting a container that is not stopped is an error, a created one included;
// --force kills it and deletes.
#[test]
fn delete_of_a_created_container_needs_force() {
    let b = Bundle::new(&["true"]);
    b.create("cr");
    let out = b.oci(&["delete", "cr"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not stopped: created"), "{}", stderr(&out));
    assert_eq!(b.state("cr")["status"], "created");
    assert!(b.oci(&["delete", "--force", "cr"]).status.success());
    assert!(!b.oci(&["state", "cr"]).status.success());
}

// --debug with --log: the runtime's debug lines go to the log file (text by default, one
// JSON object a line with --log-format json), and none to stderr.
#[test]
fn debug_log_goes_to_the_log_file() {
    let b = Bundle::new(&["true"]);
    b.write();
    let bundle = b.dir.to_str().unwrap().to_owned();
    for format in ["text", "json"] {
        let log = b.tmp.path().join(format!("debug.{format}"));
        let id = format!("dbg-{format}");
        let out = b.oci(&[
            "--debug",
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            format,
            "run",
            "--bundle",
            &bundle,
            &id,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stderr(&out), "");
        let text = fs::read_to_string(&log).unwrap();
        let line = text.lines().find(|l| l.contains("forking the init")).expect("debug line");
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["level"], "debug");
        } else {
            assert!(line.contains("DEBUG"), "{line}");
        }
    }
}

// ps: the default table is ps(1)'s, filtered to the container's processes.
#[test]
fn ps_table_lists_the_container_processes() {
    let b = Bundle::new(&["sleep", "77"]);
    b.create("pst");
    assert!(b.oci(&["start", "pst"]).status.success());
    let out = stdout(&b.oci(&["ps", "pst"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("PID"), "{out}");
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[1].contains("sleep 77"), "{out}");
}
