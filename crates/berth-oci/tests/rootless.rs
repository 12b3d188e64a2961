//! berth-oci run by the unprivileged test user (berth-test): user namespaces with id maps
//! written directly or through newuidmap/newgidmap, and the lifecycle without root.

mod common;

use common::{stderr, stdout, Bundle};
use serde_json::json;

fn user() -> &'static berth_testkit::user::TestUser {
    berth_testkit::user::TestUser::get()
}

// A single self-map is written directly (setgroups denied): the user is root inside, its own
// uid outside, and the container has its own hostname, pid 1 and /dev.
#[test]
fn rootless_run_with_a_self_map() {
    let mut b = Bundle::rootless(&[]);
    b.config["hostname"] = json!("rootless");
    let out = b.sh("id -u; cat /proc/self/uid_map | tr -s ' '; cat /proc/self/setgroups; hostname; echo $$; ls /dev/null /dev/pts/ptmx");
    let uid = user().uid();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(lines[1].trim(), format!("0 {uid} 1"));
    assert_eq!(lines[2], "deny");
    assert_eq!(lines[3], "rootless");
    assert_eq!(lines[4], "1");
    assert_eq!(lines[5], "/dev/null");
}

// Multi-range maps go through newuidmap/newgidmap and /etc/subuid: a second user inside the
// container maps to the test user's subordinate range, and setgroups stays allowed.
#[test]
fn rootless_multi_range_maps_through_newuidmap() {
    let mut b = Bundle::rootless(&[]);
    let (uid, gid) = (user().uid(), user().gid());
    let (su, sg) = (user().subuid(), user().subgid());
    b.config["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": uid, "size": 1},
        {"containerID": 1, "hostID": su.start, "size": 65536.min(su.count)}
    ]);
    b.config["linux"]["gidMappings"] = json!([
        {"containerID": 0, "hostID": gid, "size": 1},
        {"containerID": 1, "hostID": sg.start, "size": 65536.min(sg.count)}
    ]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10]});
    let out = b.sh("id -u; id -G; wc -l < /proc/self/uid_map; cat /proc/self/setgroups");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["1000", "1000 10", "2", "allow"]);
}

// create, start, state, exec, kill and delete work without root, under $XDG_RUNTIME_DIR's
// kind of state root.
#[test]
fn rootless_lifecycle_and_exec() {
    let b = Bundle::rootless(&["sleep", "100"]);
    b.create("rl");
    assert_eq!(b.state("rl")["status"], "created");
    let out = b.oci(&["start", "rl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.state("rl")["status"], "running");
    let out = b.oci(&["exec", "rl", "sh", "-c", "id -u; cat /proc/1/cmdline"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0\nsleep\x00100\x00");
    assert!(b.oci(&["kill", "rl", "KILL"]).status.success());
    b.wait_status("rl", "stopped");
    assert!(b.oci(&["delete", "rl"]).status.success());
}

// Without a state root given, a rootless berth-oci keeps its state under $XDG_RUNTIME_DIR.
#[test]
fn rootless_default_state_root_is_xdg_runtime_dir() {
    let b = Bundle::rootless(&["true"]);
    b.write();
    let id = format!("xdg-{}", std::process::id());
    let bin = common::staged_bin();
    let out = user()
        .command(&bin)
        .args(["create", "--bundle", b.dir.to_str().unwrap(), &id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    let dir = user().runtime_dir().join("berth-oci").join(&id);
    assert!(dir.join("state.json").exists(), "{}", dir.display());
    let del = user().command(&bin).args(["delete", "--force", &id]).output().unwrap();
    assert!(del.status.success(), "{}", stderr(&del));
    assert!(!dir.exists());
}
