//! The drivers on this host's real cgroups, with plain host processes (a busybox sh) placed
//! into the cgroup before their workload starts: each test makes a limit bite. The tests
//! without a version in their name run on the host's main driver (v1 here, v2 on a unified
//! host); the `v2_` ones use a cgroup2 hierarchy: the hybrid host's /sys/fs/cgroup/unified,
//! which has no controllers but does have the BPF device filter and cgroup.freeze, or the
//! whole hierarchy of a unified host. scripts/cgroup-v2-lane runs them all in a qemu guest
//! booted with `cgroup_no_v1=all` (BERTH_CGROUP_ROOT=/sys/fs/cgroup there).

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::testutil::resources;
use super::{Manager, ManagerBuilder};

const BUSYBOX: &str = "/bin/busybox";

/// A manager for a fresh cgroup `/berth-test-<name>-<pid>` under `root`, or None when this host
/// lacks what the test needs (not root, or no such hierarchy).
/// A test's cgroup, destroyed when the test ends, also when it fails.
struct TestCgroup(Manager);

impl std::ops::Deref for TestCgroup {
    type Target = Manager;
    fn deref(&self) -> &Manager {
        &self.0
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.0.destroy() {
            eprintln!("cleaning up the test cgroup: {e}");
        }
    }
}

fn manager(root: &str, probe: &str, name: &str) -> Option<TestCgroup> {
    if !rustix::process::geteuid().is_root() || !Path::new(root).join(probe).exists() {
        eprintln!("skipping: needs root and {root}/{probe}");
        return None;
    }
    // Top level, so that destroy leaves nothing behind.
    let path = format!("/berth-test-{name}-{}", std::process::id());
    let m =
        ManagerBuilder::new(name).with_root(root).with_cgroups_path(Some(path)).build().unwrap();
    m.destroy().unwrap();
    m.create().unwrap();
    Some(TestCgroup(m))
}

/// A manager on the host's main cgroup driver (v1 on this machine, v2 on a unified host such
/// as the qemu guest lane), if it has `controller`. BERTH_CGROUP_ROOT overrides the root.
fn host(controller: &str, name: &str) -> Option<TestCgroup> {
    let root = std::env::var("BERTH_CGROUP_ROOT").unwrap_or_else(|_| super::DEFAULT_ROOT.into());
    let controllers = std::fs::read_to_string(Path::new(&root).join("cgroup.controllers"));
    let probe = match controllers {
        // Unified: freezing and the device filter are part of cgroup v2 itself.
        Ok(list)
            if list.split_whitespace().any(|c| c == controller)
                || controller == "freezer"
                || controller == "devices" =>
        {
            "cgroup.controllers"
        }
        Ok(_) => {
            eprintln!("skipping: the unified hierarchy has no {controller} controller");
            return None;
        }
        Err(_) => controller,
    };
    manager(&root, probe, name)
}

/// The cgroup2 hierarchy the `v2_` tests run on: the host's main one where it is unified (the
/// qemu guest lane), else the hybrid host's `unified` mount beside the v1 controllers.
fn v2_root() -> String {
    let root = std::env::var("BERTH_CGROUP_ROOT").unwrap_or_else(|_| super::DEFAULT_ROOT.into());
    if Path::new(&root).join("cgroup.controllers").exists() {
        root
    } else {
        format!("{root}/unified")
    }
}

/// Starts `sh -c script` held at a `read` until [`release`], so it can join the cgroup first.
fn held_shell(script: &str) -> Child {
    Command::new(BUSYBOX)
        .args(["sh", "-c", &format!("read go; {script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn release(child: &mut Child) {
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
}

fn output(mut child: Child) -> (std::process::ExitStatus, String, String) {
    let status = child.wait().unwrap();
    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status, out, err)
}

#[test]
fn memory_limit_gets_an_allocating_process_oom_killed() {
    let Some(m) = host("memory", "oom") else { return };
    m.apply(&resources(r#"{"memory": {"limit": 33554432, "swap": 33554432}}"#)).unwrap();
    // busybox dd allocates its whole block: 128 MiB against a 32 MiB limit without swap.
    let mut child =
        held_shell(&format!("exec {BUSYBOX} dd if=/dev/zero of=/dev/null bs=128M count=1"));
    m.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    let (status, _, err) = output(child);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "dd was not OOM-killed: {status:?} {err}");
    assert!(m.oom_kill_count().unwrap() >= 1, "the kill is reported");
    assert_eq!(m.stats().unwrap().memory.usage.limit, 33554432);
    m.destroy().unwrap();
}

#[test]
fn pids_max_stops_a_fork_loop_and_destroy_kills_the_rest() {
    let Some(m) = host("pids", "pids") else { return };
    m.apply(&resources(r#"{"pids": {"limit": 8}}"#)).unwrap();
    // busybox sh gives up at the first fork that fails.
    let mut child = held_shell(&format!(
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do \
         {BUSYBOX} sleep 60 </dev/null >/dev/null 2>&1 & done; echo all-forked"
    ));
    m.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    let (_, out, err) = output(child);
    assert_eq!(out.trim(), "", "the loop ran to its end");
    assert!(err.contains("can't fork") || err.contains("Resource temporarily"), "{err}");
    // The shell counted as one of the 8 and has exited: 7 sleeps remain.
    let left = m.pids().unwrap();
    assert_eq!(left.len(), 7, "{left:?}");
    assert_eq!(m.stats().unwrap().pids.limit, 8);
    m.destroy().unwrap();
    for pid in left {
        // The killed sleeps were reparented to init; they are gone or at most zombies.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(state.is_empty() || state.contains(") Z"), "pid {pid} survived: {state}");
    }
    assert!(m.paths().iter().all(|p| !p.exists()));
}

fn read_counter(path: &Path) -> u64 {
    std::fs::read_to_string(path).unwrap_or_default().trim().parse().unwrap_or(0)
}

fn freeze_stops_a_counter(m: &Manager) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("n");
    let mut child = held_shell(&format!(
        "i=0; while true; do i=$((i+1)); echo $i > {}.tmp; mv {0}.tmp {0}; done",
        file.display()
    ));
    m.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    let started = Instant::now();
    while read_counter(&file) < 10 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    m.freeze().unwrap();
    let frozen_at = read_counter(&file);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read_counter(&file), frozen_at, "the counter moved while frozen");
    m.thaw().unwrap();
    let thawed = Instant::now();
    while read_counter(&file) == frozen_at && thawed.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(read_counter(&file) > frozen_at, "the counter did not resume");
    m.destroy().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

#[test]
fn freezer_stops_and_resumes_a_counter() {
    let Some(m) = host("freezer", "freeze") else { return };
    freeze_stops_a_counter(&m);
}

#[test]
fn v2_cgroup_freeze_stops_and_resumes_a_counter() {
    let Some(m) = manager(&v2_root(), "cgroup.controllers", "freeze2") else {
        return;
    };
    assert_eq!(m.version(), Some(2));
    freeze_stops_a_counter(&m);
}

const DEVICE_RULES: &str = r#"{"devices": [
    {"allow": false, "access": "rwm"},
    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"}
]}"#;

fn denied_device_cannot_be_opened_or_made(m: &Manager) {
    let tmp = tempfile::tempdir().unwrap();
    let node = tmp.path().join("zero");
    let full = tmp.path().join("full");
    let mut child = held_shell(&format!(
        "echo x > /dev/null && echo null-write-ok; \
         {BUSYBOX} head -c 1 /dev/zero > /dev/null && echo zero-read-ok; \
         echo x > /dev/zero || echo zero-write-denied; \
         {BUSYBOX} head -c 1 /dev/full > /dev/null || echo full-read-denied; \
         {BUSYBOX} mknod {} c 1 5 || echo mknod-zero-denied; \
         {BUSYBOX} mknod {} c 1 3 && echo mknod-null-ok",
        node.display(),
        full.display()
    ));
    m.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    let (_, out, err) = output(child);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "null-write-ok",
            "zero-read-ok",
            "zero-write-denied",
            "full-read-denied",
            "mknod-zero-denied",
            "mknod-null-ok"
        ],
        "stderr: {err}"
    );
    assert!(err.contains("Operation not permitted"), "{err}");
    m.destroy().unwrap();
}

#[test]
fn denied_device_cannot_be_opened_or_made_on_the_host_driver() {
    let Some(m) = host("devices", "dev") else { return };
    m.apply(&resources(DEVICE_RULES)).unwrap();
    denied_device_cannot_be_opened_or_made(&m);
}

#[test]
fn v2_bpf_device_filter_denies_like_v1() {
    let Some(m) = manager(&v2_root(), "cgroup.controllers", "dev2") else {
        return;
    };
    m.apply(&resources(DEVICE_RULES)).unwrap();
    denied_device_cannot_be_opened_or_made(&m);
}

#[test]
fn cpu_quota_throttles_a_busy_loop() {
    let Some(m) = host("cpu", "cpu") else { return };
    m.apply(&resources(r#"{"cpu": {"quota": 20000, "period": 100000}}"#)).unwrap();
    let mut child = held_shell("while true; do :; done");
    m.add_pid(child.id() as i32).unwrap();
    let started = Instant::now();
    release(&mut child);
    // Wait for throttling to be observed (it is after the first 100 ms period); the share of
    // CPU is printed, not asserted, since timings do not go into pass/fail tests.
    let mut stats = m.stats().unwrap();
    while stats.cpu.throttling.throttled_periods < 5 && started.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
        stats = m.stats().unwrap();
    }
    let wall = started.elapsed().as_nanos() as f64;
    eprintln!(
        "cpu quota 0.2: busy loop used {:.1}% of one CPU over {:.2}s, {} of {} periods throttled",
        stats.cpu.usage.total as f64 / wall * 100.0,
        wall / 1e9,
        stats.cpu.throttling.throttled_periods,
        stats.cpu.throttling.periods
    );
    assert!(stats.cpu.throttling.throttled_periods >= 5, "{stats:?}");
    m.destroy().unwrap();
    child.wait().unwrap();
}

/// Not a pass/fail test: prints what the cgroup steps of a container start cost here.
/// `cargo test -p berth-runtime --lib -- --ignored measure_cgroup --nocapture`
#[test]
#[ignore = "a measurement, not a pass/fail test: run by hand with --ignored measure_"]
fn measure_cgroup_create_apply_destroy() {
    let r = resources(
        r#"{"memory": {"limit": 67108864, "swap": 67108864}, "pids": {"limit": 128},
            "devices": [{"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]}"#,
    );
    for (root, probe) in
        [("/sys/fs/cgroup", "memory"), ("/sys/fs/cgroup/unified", "cgroup.controllers")]
    {
        let n = 50;
        let mut total = Duration::ZERO;
        for i in 0..n {
            let Some(m) = manager(root, probe, &format!("measure{i}")) else { return };
            m.destroy().unwrap();
            let start = Instant::now();
            m.create().unwrap();
            let devices_only = resources(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#);
            m.apply(if root.ends_with("unified") { &devices_only } else { &r }).unwrap();
            m.destroy().unwrap();
            total += start.elapsed();
        }
        eprintln!("{root}: create + apply + destroy, mean of {n}: {:?}", total / n);
    }
}

#[test]
fn update_raises_and_lowers_memory_in_the_order_the_kernel_needs() {
    // Pins the memsw ordering against the real kernel, which refuses memory above memsw.
    let Some(m) = manager("/sys/fs/cgroup", "memory/memory.memsw.limit_in_bytes", "update") else {
        return;
    };
    let dir = m.paths().into_iter().find(|p| p.starts_with("/sys/fs/cgroup/memory")).unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap().trim().to_string();
    for (limit, swap) in [(64u64 << 20, 128u64 << 20), (32 << 20, 32 << 20), (256 << 20, 512 << 20)]
    {
        let json = format!(r#"{{"memory": {{"limit": {limit}, "swap": {swap}}}}}"#);
        m.update(&resources(&json)).unwrap();
        assert_eq!(read("memory.limit_in_bytes"), limit.to_string());
        assert_eq!(read("memory.memsw.limit_in_bytes"), swap.to_string());
    }
    m.update(&resources(r#"{"memory": {"limit": -1}}"#)).unwrap();
    assert_eq!(read("memory.memsw.limit_in_bytes"), read("memory.limit_in_bytes"));
    m.update(&resources(r#"{"pids": {"limit": 3}}"#)).unwrap();
    let mut child = held_shell(&format!("{BUSYBOX} true; echo $?"));
    m.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    let (_, out, _) = output(child);
    assert_eq!(out.trim(), "0");
    let stats = m.stats().unwrap();
    assert_eq!(stats.pids.limit, 3);
    assert!(stats.cpu.usage.total > 0, "the shell's cpu time is counted: {stats:?}");
    assert!(stats.memory.usage.max > 0, "{stats:?}");
    m.destroy().unwrap();
}

#[test]
fn v2_updating_device_rules_replaces_the_filter() {
    let Some(m) = manager(&v2_root(), "cgroup.controllers", "dev2upd") else {
        return;
    };
    let deny_zero = r#"{"devices": [{"allow": false, "type": "c", "major": 1, "minor": 5,
                                     "access": "rwm"}]}"#;
    m.apply(&resources(deny_zero)).unwrap();
    m.apply(&resources(r#"{"devices": [{"allow": true, "access": "rwm"}]}"#)).unwrap();
    let mut child = held_shell(&format!("{BUSYBOX} head -c 1 /dev/zero | {BUSYBOX} wc -c"));
    m.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    let (_, out, err) = output(child);
    assert_eq!(out.trim(), "1", "the old filter still denies /dev/zero: {err}");
    m.destroy().unwrap();
}

#[test]
fn hybrid_host_joins_the_unified_cgroup_and_limits_hugetlb_there() {
    let Some(m) = manager("/sys/fs/cgroup", "unified/cgroup.controllers", "hybrid") else {
        return;
    };
    let unified = m.paths().into_iter().find(|p| p.starts_with("/sys/fs/cgroup/unified")).unwrap();
    let offered = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap();
    let hugepages_2m = Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists();
    if offered.split_whitespace().any(|c| c == "hugetlb") && hugepages_2m {
        m.apply(&resources(r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}"#))
            .unwrap();
        let value = std::fs::read_to_string(unified.join("hugetlb.2MB.max")).unwrap();
        assert_eq!(value.trim(), "4194304");
        let stats = m.stats().unwrap();
        assert!(stats.hugetlb.contains_key("2MB"), "{:?}", stats.hugetlb);
    }
    let mut child = held_shell("cat /proc/self/cgroup");
    m.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    let (_, out, _) = output(child);
    let inner = unified.strip_prefix("/sys/fs/cgroup/unified").unwrap();
    assert!(out.lines().any(|l| l == format!("0::/{}", inner.display())), "{out}");
    m.destroy().unwrap();
    assert!(!unified.exists());
}

#[test]
fn v2_nested_filter_can_only_narrow_the_containers() {
    // Pins BPF_F_ALLOW_MULTI: a runtime inside the container may attach its own filter to a
    // child cgroup, and the container's filter still applies to it.
    let Some(m) = manager(&v2_root(), "cgroup.controllers", "nest2") else {
        return;
    };
    let deny_zero = r#"{"devices": [{"allow": false, "type": "c", "major": 1, "minor": 5,
                                     "access": "rwm"}]}"#;
    m.apply(&resources(deny_zero)).unwrap();
    let child = m.paths()[0].join("nested");
    std::fs::create_dir(&child).unwrap();
    let allow_all: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
        serde_json::from_str(r#"[{"allow": true, "access": "rwm"}]"#).unwrap();
    super::devices::attach(&child, &allow_all).unwrap();
    let mut sh = held_shell(&format!(
        "{BUSYBOX} head -c 1 /dev/zero >/dev/null && echo zero-ok || echo zero-denied"
    ));
    std::fs::write(child.join("cgroup.procs"), sh.id().to_string()).unwrap();
    release(&mut sh);
    let (_, out, _) = output(sh);
    assert_eq!(out.trim(), "zero-denied");
    m.destroy().unwrap();
}

#[test]
fn destroy_kills_processes_in_child_cgroups_too() {
    // Pins the recursive kill: a nested runtime's cgroup below the container's must not keep
    // processes (and the cgroup) alive after delete.
    let Some(m) = host("freezer", "nestkill") else { return };
    let mut children = Vec::new();
    let sh = held_shell(&format!("exec {BUSYBOX} sleep 60"));
    m.add_pid(sh.id() as i32).unwrap();
    // Into a child cgroup where one needs no setup (a v1 cpuset child starts empty).
    for dir in m.paths().iter().filter(|d| !d.starts_with("/sys/fs/cgroup/cpuset")) {
        std::fs::create_dir(dir.join("nested")).unwrap();
        std::fs::write(dir.join("nested/cgroup.procs"), sh.id().to_string()).unwrap();
    }
    children.push(sh);
    release(&mut children[0]);
    assert_eq!(m.pids().unwrap(), vec![children[0].id() as i32]);
    m.destroy().unwrap();
    let status = children.remove(0).wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(m.paths().iter().all(|p| !p.exists()));
}

/// This test binary, copied where the test user can run it; staged once per process, since
/// concurrent staging from one process races on the copy's temporary name.
fn staged_self() -> std::path::PathBuf {
    static STAGED: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    STAGED
        .get_or_init(|| {
            berth_testkit::user::stage_binary(&std::env::current_exe().unwrap()).unwrap()
        })
        .clone()
}

/// The unprivileged half of the rootless test below; run only by it, as the test user.
#[test]
#[ignore = "the unprivileged half of rootless_without_delegation; its parent runs it"]
fn rootless_child() {
    let m = ManagerBuilder::new("rootless")
        .with_cgroups_path(Some("/berth-test-rootless"))
        .with_rootless(true)
        .build()
        .unwrap();
    assert_eq!(m.version(), None, "v1 here cannot be delegated: no cgroup");
    m.create().unwrap();
    m.add_pid(std::process::id() as i32).unwrap();
    // Podman always sends a device list; it holds in the user namespace without a cgroup.
    m.apply(&resources(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#)).unwrap();
    for (json, name) in [
        (r#"{"memory": {"limit": 33554432}}"#, "memory.limit"),
        (r#"{"pids": {"limit": 10}}"#, "pids.limit"),
        (r#"{"cpu": {"quota": 20000, "period": 100000}}"#, "cpu.quota"),
    ] {
        let err = m.apply(&resources(json)).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("rootless"), "{json}: {err}");
    }
    assert!(m.freeze().unwrap_err().to_string().contains("not supported yet"));
    m.destroy().unwrap();
}

#[test]
fn rootless_without_delegation_runs_without_a_cgroup_and_names_refused_limits() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: needs root to become the test user");
        return;
    }
    let exe = staged_self();
    let out = berth_testkit::user::TestUser::get()
        .command(&exe)
        .args(["--exact", "cgroups::real_tests::rootless_child", "--ignored", "--test-threads=1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the child test did not run: {stdout}");
    assert!(!Path::new("/sys/fs/cgroup/memory/berth-test-rootless").exists());
}

#[test]
fn ignored_kernel_memory_limit_is_refused_not_pretended() {
    let Some(m) = manager("/sys/fs/cgroup", "memory/memory.kmem.limit_in_bytes", "kmem") else {
        return;
    };
    let dir = m.paths().into_iter().find(|p| p.starts_with("/sys/fs/cgroup/memory")).unwrap();
    match m.apply(&resources(r#"{"memory": {"kernel": 33554432}}"#)) {
        // Kernels before 5.16 still enforce it.
        Ok(()) => {
            let value = std::fs::read_to_string(dir.join("memory.kmem.limit_in_bytes")).unwrap();
            assert_eq!(value.trim(), "33554432");
        }
        Err(e) => assert!(e.to_string().contains("ignores kernel memory limits"), "{e}"),
    }
}

#[test]
fn realtime_budget_is_granted_through_a_nested_path() {
    if !rustix::process::geteuid().is_root() || !Path::new("/sys/fs/cgroup/cpu").exists() {
        return;
    }
    let parent = format!("/berth-test-rt-{}", std::process::id());
    let m = ManagerBuilder::new("rt")
        .with_cgroups_path(Some(format!("{parent}/inner")))
        .build()
        .unwrap();
    m.create().unwrap();
    let guard = TestCgroup(m);
    let applied =
        guard.apply(&resources(r#"{"cpu": {"realtimeRuntime": 1000, "realtimePeriod": 1000000}}"#));
    let inner = Path::new("/sys/fs/cgroup/cpu").join(parent.trim_start_matches('/')).join("inner");
    let value = std::fs::read_to_string(inner.join("cpu.rt_runtime_us")).unwrap_or_default();
    drop(guard);
    for dir in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(dir.path().join(parent.trim_start_matches('/')));
    }
    applied.unwrap();
    assert_eq!(value.trim(), "1000");
}

/// Not a pass/fail test: what the confinement of a container start costs here, end to end,
/// without namespaces or a root file system: cgroup create + limits (memory, pids, devices),
/// fork, join the cgroup, no_new_privs + the default seccomp profile (from the cache), exec
/// /bin/true, wait, destroy. Printed beside a bare fork + exec.
/// `cargo test -p berth-runtime --lib -- --ignored measure_confined_start --nocapture`
#[test]
#[ignore = "a measurement, not a pass/fail test: run by hand with --ignored measure_"]
fn measure_confined_start() {
    use crate::seccomp::{compile_cached, Profile};
    let caps: Vec<String> = ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    let spec = Profile::host_default().unwrap().resolve(&caps);
    let cache = tempfile::tempdir().unwrap();
    compile_cached(&spec, cache.path()).unwrap();
    let limits = resources(
        r#"{"memory": {"limit": 67108864, "swap": 67108864}, "pids": {"limit": 128},
            "devices": [{"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]}"#,
    );
    let truth = c"/bin/true";
    let argv = [truth.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    let run = |cg: bool, sc: bool, i: usize| {
        let m = cg.then(|| {
            let path = format!("/berth-test-start-{}-{i}", std::process::id());
            let m = ManagerBuilder::new("s").with_cgroups_path(Some(path)).build().unwrap();
            m.create().unwrap();
            m.apply(&limits).unwrap();
            m
        });
        let filter = sc.then(|| compile_cached(&spec, cache.path()).unwrap());
        let (rd, wr) = rustix::pipe::pipe().unwrap();
        // SAFETY: the child only reads a pipe, loads the filter (one syscall) and execs.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: as above; execve's arrays are NUL-terminated and outlive the call.
            unsafe {
                let mut b = [0u8; 1];
                let _ = rustix::io::read(&rd, &mut b);
                if let Some(f) = &filter {
                    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                    if f.load().is_err() {
                        libc::_exit(100);
                    }
                }
                libc::execve(truth.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
        }
        if let Some(m) = &m {
            m.add_pid(pid).unwrap();
        }
        rustix::io::write(&wr, b"g").unwrap();
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(status, 0);
        if let Some(m) = m {
            m.destroy().unwrap();
        }
    };
    let cases = [
        ("bare fork+exec", false, false),
        ("with cgroup limits", true, false),
        ("with seccomp", false, true),
        ("with both", true, true),
    ];
    for (name, cg, sc) in cases {
        let n = 60;
        let mut times: Vec<Duration> = (0..n)
            .map(|i| {
                let start = Instant::now();
                run(cg, sc, i);
                start.elapsed()
            })
            .collect();
        times.sort();
        eprintln!("{name}: min {:?}, median {:?} of {n}", times[0], times[n / 2]);
    }
}

/// The unprivileged half of the delegation test below; run only by it, as the test user,
/// from inside `$BERTH_DELEGATED/runtime`.
#[test]
#[ignore = "the unprivileged half of the delegation test; its parent runs it"]
fn delegated_child() {
    let Ok(delegated) = std::env::var("BERTH_DELEGATED") else { return };
    // The parent moves this process into the delegated subtree right after starting it.
    let inside = format!("0::{delegated}/runtime");
    let started = Instant::now();
    while !std::fs::read_to_string("/proc/self/cgroup").unwrap().lines().any(|l| l == inside) {
        assert!(started.elapsed() < Duration::from_secs(10), "never moved into {inside}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let root = std::env::var("BERTH_V2_ROOT").unwrap_or_else(|_| v2_root());
    let m = ManagerBuilder::new("deleg")
        .with_root(root)
        .with_cgroups_path(Some(format!("{delegated}/c")))
        .with_rootless(true)
        .build()
        .unwrap();
    assert_eq!(m.version(), Some(2), "a writable delegated cgroup is used");
    m.create().unwrap();
    let m = TestCgroup(m);
    m.apply(&resources(DEVICE_RULES)).unwrap();
    freeze_stops_a_counter(&m);
}

#[test]
fn rootless_uses_a_delegated_cgroup_v2_subtree() {
    let root = v2_root();
    let unified = Path::new(&root);
    if !rustix::process::geteuid().is_root() || !unified.join("cgroup.controllers").exists() {
        eprintln!("skipping: needs root and a cgroup2 mount at {}", unified.display());
        return;
    }
    let user = berth_testkit::user::TestUser::get();
    let name = format!("/berth-test-deleg-{}", std::process::id());
    let delegated = unified.join(name.trim_start_matches('/'));
    /// Removes the delegated subtree when the test ends, also when it fails.
    struct Subtree(std::path::PathBuf);
    impl Drop for Subtree {
        fn drop(&mut self) {
            for dir in [self.0.join("runtime"), self.0.join("c"), self.0.clone()] {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
    std::fs::create_dir(&delegated).unwrap();
    let subtree = Subtree(delegated.clone());
    std::fs::create_dir(delegated.join("runtime")).unwrap();
    // Delegation as systemd does it: the directory and its procs, threads and
    // subtree_control files, handed to the user (cgroup-v2.rst, "Delegation").
    let owner = |p: &Path| {
        rustix::fs::chown(
            p,
            Some(rustix::process::Uid::from_raw(user.uid())),
            Some(rustix::process::Gid::from_raw(user.gid())),
        )
        .unwrap()
    };
    for dir in [delegated.clone(), delegated.join("runtime")] {
        owner(&dir);
        for f in ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"] {
            owner(&dir.join(f));
        }
    }
    let exe = staged_self();
    let child = user
        .command(&exe)
        .args(["--exact", "cgroups::real_tests::delegated_child", "--ignored", "--test-threads=1"])
        .env("BERTH_DELEGATED", &name)
        .env("BERTH_V2_ROOT", &root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(delegated.join("runtime/cgroup.procs"), child.id().to_string()).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(subtree);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the child test did not run: {stdout}");
    assert!(!delegated.exists());
}

#[test]
fn v2_clone_into_cgroup_starts_the_child_inside() {
    let Some(m) = manager(&v2_root(), "cgroup.controllers", "clone3") else {
        return;
    };
    let fd = m.clone_into_fd().unwrap().expect("a v2 cgroup has a directory fd");
    // struct clone_args up to .cgroup (linux/sched.h): flags, pidfd, child_tid, parent_tid,
    // exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup.
    let mut args = [0u64; 11];
    args[0] = 0x2_0000_0000; // CLONE_INTO_CGROUP
    args[4] = libc::SIGCHLD as u64;
    args[10] = std::os::fd::AsRawFd::as_raw_fd(&fd) as u64;
    // SAFETY: clone3 with a valid, sized clone_args and no CLONE_VM: the child is a fork that
    // only makes a system call and _exits.
    let pid = unsafe { libc::syscall(libc::SYS_clone3, args.as_mut_ptr(), 88usize) };
    assert!(pid >= 0, "clone3: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: pause until killed; nothing else in the child.
        unsafe {
            libc::pause();
            libc::_exit(0);
        }
    }
    assert_eq!(m.pids().unwrap(), vec![pid as i32], "the child was born in the cgroup");
    m.destroy().unwrap();
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid as i32, &mut status, 0) };
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
}

// linux.resources.unified is written through as given on a unified host, and a pids.max set
// that way bites; a v1 or hybrid host refuses it, naming the field, since the keys are
// cgroup v2 files.
#[test]
fn unified_passthrough_writes_v2_files_or_is_refused_on_v1() {
    let Some(m) = host("pids", "unified") else { return };
    let r = resources(r#"{"unified": {"pids.max": "4", "memory.high": "52428800"}}"#);
    if m.version() != Some(2) {
        let err = m.apply(&r).unwrap_err().to_string();
        assert!(err.contains("linux.resources.unified"), "{err}");
        return;
    }
    m.apply(&r).unwrap();
    let dir = m.paths()[0].clone();
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap().trim().to_string();
    assert_eq!((read("pids.max"), read("memory.high")), ("4".into(), "52428800".into()));
    let mut child = held_shell(&format!(
        "for i in 1 2 3 4 5 6 7 8; do {BUSYBOX} sleep 60 </dev/null >/dev/null 2>&1 & done; \
         echo all-forked"
    ));
    m.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    let (_, out, err) = output(child);
    assert_eq!(out.trim(), "", "the loop ran past pids.max: {err}");
    m.destroy().unwrap();
}
