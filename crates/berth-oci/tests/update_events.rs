//! `update` and `events` through berth-oci, rootful, on a running busybox container with its
//! own cgroupsPath: an update reaches the kernel's files of the container's cgroup and the
//! container's state.

mod common;

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use common::{stderr, stdout, Bundle};
use serde_json::{json, Value};

/// A bundle running `sleep 100` in the cgroup `/berth-test-upd-<pid>-<name>`.
fn sleeper(name: &str) -> (Bundle, String) {
    let mut b = Bundle::new(&["sleep", "100"]);
    let path = format!("/berth-test-upd-{}-{name}", std::process::id());
    b.config["linux"]["cgroupsPath"] = json!(path);
    b.config["linux"]["resources"] = json!({"memory": {"limit": 134217728}, "pids": {"limit": 64}});
    (b, path)
}

fn start(b: &Bundle, id: &str) -> i64 {
    b.create(id);
    let out = b.oci(&["start", id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    b.state(id)["pid"].as_i64().unwrap()
}

/// The directory of `controller` (v1) holding the init of the container, or its v2 cgroup.
fn cgroup_dir(pid: i64, controller: &str) -> PathBuf {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let found = if unified {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        if found {
            let base = if unified {
                "/sys/fs/cgroup".into()
            } else {
                format!("/sys/fs/cgroup/{controller}")
            };
            return PathBuf::from(base).join(&path[1..]);
        }
    }
    panic!("pid {pid} is in no {controller} cgroup: {text}");
}

/// memory limit and pids.max of the container's cgroup, as the kernel reports them.
fn limits(pid: i64) -> (String, String) {
    let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let file = if unified { "memory.max" } else { "memory.limit_in_bytes" };
    let read = |dir: PathBuf, name: &str| {
        fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .trim()
            .to_owned()
    };
    (read(cgroup_dir(pid, "memory"), file), read(cgroup_dir(pid, "pids"), "pids.max"))
}

fn one_line_error(out: &std::process::Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} succeeded: {}", stdout(out));
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{what}: not one line: {err:?}");
    assert!(err.starts_with("berth-oci: "), "{what}: {err}");
    err
}

// The flags, then a --resources document on stdin, reach the kernel's files; the state keeps
// the merged limits.
#[test]
fn update_reaches_the_cgroup_and_the_state() {
    let (b, _) = sleeper("flags");
    let pid = start(&b, "upd");
    assert_eq!(limits(pid), ("134217728".to_owned(), "64".to_owned()));

    let out = b.oci(&["update", "--memory", "64M", "--pids-limit", "20", "upd"]);
    assert!(out.status.success(), "update: {}", stderr(&out));
    assert_eq!(limits(pid), ("67108864".to_owned(), "20".to_owned()));

    let mut child = b
        .cmd(&["update", "--resources", "-", "upd"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let doc = json!({"memory": {"limit": 100663296}, "pids": {"limit": 30}});
    child.stdin.take().unwrap().write_all(doc.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "update -r -: {}", stderr(&out));
    assert_eq!(limits(pid), ("100663296".to_owned(), "30".to_owned()));

    // The state keeps the config's limits with the updates merged in.
    let record: Value =
        serde_json::from_slice(&fs::read(b.root.join("upd/state.json")).unwrap()).unwrap();
    assert_eq!(record["resources"]["memory"]["limit"], 100663296, "{record}");
    assert_eq!(record["resources"]["pids"]["limit"], 30, "{record}");
}

// An unknown container and a stopped one: update fails with one line naming it.
#[test]
fn unknown_and_stopped_containers_are_one_line_errors() {
    let (mut b, _) = sleeper("stopped");
    let err = one_line_error(&b.oci(&["update", "--memory", "64M", "nosuch"]), "update");
    assert!(err.contains("\"nosuch\" does not exist"), "{err}");

    b.config["process"]["args"] = json!(["true"]);
    start(&b, "done");
    b.wait_status("done", "stopped");
    let err = one_line_error(&b.oci(&["update", "--pids-limit", "10", "done"]), "update");
    assert!(err.contains("done is stopped"), "{err}");
}
