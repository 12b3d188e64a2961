//! Resource limits through berth-oci, made to bite from inside the container: each test runs
//! a busybox bundle with `linux.resources` set and checks what the workload inside meets. The
//! tests drive whichever cgroup driver the host has — v1 on this project's hybrid host, v2 in
//! the qemu guest of scripts/cgroup-v2-lane, which runs this file on a pure cgroup2 hierarchy —
//! and read the container's own cgroup files through its cgroup namespace to see what the
//! kernel counted.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{stderr, Bundle};
use serde_json::json;

/// True when the host runs a pure cgroup v2 hierarchy (the qemu lane), false on v1 or hybrid.
fn unified_host() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Polls `f` every 20 ms until it returns Some, for at most a minute: generous, since the
/// qemu lane runs 10–100 times slower than the host.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// A process allocating past memory.limit is OOM-killed inside the container, and the
// container's own memory cgroup counts the kill.
#[test]
fn memory_limit_oom_kills_an_allocation_and_counts_it() {
    let mut b = Bundle::new(&[]);
    b.config["linux"]["resources"] =
        json!({"memory": {"limit": 33554432, "swap": 33554432}, "pids": {"limit": 64}});
    // busybox dd allocates its whole block: 128 MiB against 32 MiB without swap.
    let out = b.sh("dd if=/dev/zero of=/dev/null bs=128M count=1 2>/dev/null; echo dd=$?; \
         cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control \
         2>/dev/null | grep '^oom_kill '");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("dd=137"), "dd was not SIGKILLed: {out}");
    let kills: u64 = lines
        .next()
        .and_then(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no oom_kill count in the container's cgroup: {out}"));
    assert!(kills >= 1, "{out}");
}

// A fork loop stops at pids.limit: the shell inside gets EAGAIN from fork.
#[test]
fn pids_limit_stops_a_fork_loop() {
    let mut b = Bundle::new(&[]);
    b.config["linux"]["resources"] = json!({"pids": {"limit": 6}});
    // busybox sh gives up at the first failed fork, so the loop runs in a subshell.
    let out = b.sh(
        "(i=0; while [ $i -lt 20 ]; do sleep 30 & i=$((i+1)); done; echo all-forked) 2>/tmp/err; \
         grep -c -e \"can't fork\" -e 'Resource temporarily' /tmp/err; \
         cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null || true",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    // The shell, the subshell and four sleeps fill the six; the fifth sleep's fork fails.
    assert!(lines[0].parse::<u32>().unwrap() >= 1, "no fork failed: {out}");
    assert_eq!(lines[1], "6");
}

// A cpu quota of 0.2 CPU throttles a busy loop: the container's cpu.stat counts throttled
// periods (the share itself is not asserted: timings stay out of pass/fail tests).
#[test]
fn cpu_quota_throttles_a_busy_loop() {
    let mut b = Bundle::new(&[]);
    b.config["linux"]["resources"] = json!({"cpu": {"quota": 20000, "period": 100000}});
    let out = b.sh("f=/sys/fs/cgroup/cpu.stat; [ -e $f ] || f=/sys/fs/cgroup/cpu/cpu.stat; \
         cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null; \
         (while :; do :; done) & i=0; \
         while [ $i -lt 3000 ]; do \
           n=$(sed -n 's/^nr_throttled //p' $f); [ \"$n\" -ge 3 ] && break; \
           sleep 0.02; i=$((i+1)); done; \
         kill $!; echo throttled=$n");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0] == "20000 100000" || lines[0] == "20000", "quota not set: {out}");
    let n: u64 = lines[1].strip_prefix("throttled=").unwrap().parse().unwrap();
    assert!(n >= 3, "the busy loop was not throttled: {out}");
}

// A device the cgroup denies cannot be opened, whether its node came with the rootfs or was
// made inside with mknod; allowing it makes the same open reach the driver. mknod itself stays
// allowed for every device, as runc's default rules have it (the manager's own tests in
// berth-runtime deny mknod without those defaults); the default devices keep working.
#[test]
fn denied_device_cannot_be_opened() {
    let script =
        "cat /tun 2>&1 >/dev/null; mknod /tmp/tun c 10 200 && cat /tmp/tun 2>&1 >/dev/null; \
                  echo x > /dev/null && echo null-ok";
    let deny_all = json!({"allow": false, "access": "rwm"});
    let allow_tun = json!({"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"});
    let mut outputs = Vec::new();
    for rules in [json!([deny_all]), json!([deny_all, allow_tun])] {
        let mut b = Bundle::new(&[]);
        // The tun device: opening it needs no capability, and reading an unattached one fails
        // with EBADFD in the driver, past the cgroup's check.
        let st = std::process::Command::new("mknod")
            .arg(b.dir.join("rootfs/tun"))
            .args(["c", "10", "200"])
            .status()
            .unwrap();
        assert!(st.success());
        // CAP_MKNOD, so that mknod inside is up to the cgroup and not a missing capability.
        for set in ["bounding", "effective", "permitted"] {
            b.config["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_MKNOD"));
        }
        b.config["linux"]["resources"] = json!({"devices": rules});
        outputs.push(b.sh(script));
    }
    let denied = "cat: can't open '/tun': Operation not permitted\n\
                  cat: can't open '/tmp/tun': Operation not permitted\nnull-ok\n";
    assert_eq!(outputs[0], denied);
    // Allowed, the driver answers: EBADFD from an unattached tun device, or ENODEV where the
    // kernel has no tun driver loaded (the qemu lane's guest).
    let allowed = &outputs[1];
    let driver = allowed
        .lines()
        .filter(|l| l.ends_with("File descriptor in bad state") || l.ends_with("No such device"))
        .count();
    assert!(driver == 2 && allowed.ends_with("null-ok\n"), "{allowed}");
}

// pause freezes a counting loop and resume lets it count on.
#[test]
fn pause_stops_a_counter_and_resume_restarts_it() {
    // Unique: the default cgroup is named after the id, and other test binaries may run.
    let id = format!("frz-{}", std::process::id());
    let id = id.as_str();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /count.new; mv /count.new /count; done",
    ]);
    b.create(id);
    assert!(b.oci(&["start", id]).status.success());
    let counter = b.dir.join("rootfs/count");
    let read = || fs::read_to_string(&counter).ok().and_then(|s| s.trim().parse::<u64>().ok());
    wait_for("the counter to start", || read().filter(|&n| n > 0));
    let out = b.oci(&["pause", id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.state(id)["status"], "paused");
    // Frozen: the value read now stays put while the container stays paused.
    let frozen = read().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read(), Some(frozen), "the counter moved while paused");
    let out = b.oci(&["resume", id]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("the counter to move after resume", || read().filter(|&n| n > frozen));
    assert!(b.oci(&["delete", "--force", id]).status.success());
}

// linux.resources.unified writes cgroup v2 files as given on a unified host; on v1 or hybrid
// it is refused at create, naming the field, and leaves nothing behind.
#[test]
fn unified_passthrough_on_v2_and_refused_on_v1() {
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["resources"] =
        json!({"unified": {"memory.high": "52428800", "pids.max": "9"}});
    if unified_host() {
        let out = b.sh("cat /sys/fs/cgroup/memory.high /sys/fs/cgroup/pids.max");
        assert_eq!(out, "52428800\n9\n");
    } else {
        let (code, _, err) = b.run(&format!("uni-{}", std::process::id()));
        assert_ne!(code, 0);
        assert!(err.contains("linux.resources.unified"), "{err}");
        assert!(fs::read_dir(&b.root).map(|d| d.count() == 0).unwrap_or(true), "state left");
    }
}

// A relative cgroupsPath on v1 lands under the runtime's own cgroup of each controller, which
// differ here (this host's memory cgroup is not its pids one): pause, the stats of a later
// command and delete reopen exactly the directories create made, from the container's state,
// and delete removes every one of them.
#[test]
fn relative_cgroups_path_is_found_again_per_controller() {
    let mut b = Bundle::new(&["sleep", "100"]);
    let rel = format!("berth-test-rel-{}/c", std::process::id());
    b.config["linux"]["cgroupsPath"] = json!(rel);
    b.config["linux"]["resources"] = json!({"pids": {"limit": 20}});
    b.create("rel");
    assert!(b.oci(&["start", "rel"]).status.success());
    let pid = b.state("rel")["pid"].as_i64().unwrap();
    // Where the kernel put the init, hierarchy by hierarchy.
    let dirs: Vec<std::path::PathBuf> = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let dir = if controllers.is_empty() {
                if unified_host() {
                    "".to_owned()
                } else {
                    "unified".to_owned()
                }
            } else {
                controllers.split(',').next()?.to_owned()
            };
            path.ends_with(&rel).then(|| Path::new("/sys/fs/cgroup").join(dir).join(&path[1..]))
        })
        .collect();
    assert!(!dirs.is_empty(), "the init is in no cgroup named {rel}");
    for d in &dirs {
        assert!(d.is_dir(), "{} missing", d.display());
    }
    let out = b.oci(&["pause", "rel"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.oci(&["resume", "rel"]).status.success());
    let out = b.oci(&["delete", "--force", "rel"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for d in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
        // The parent made for the relative path: removed too where berth made it.
        let _ = fs::remove_dir(d.parent().unwrap());
    }
}
