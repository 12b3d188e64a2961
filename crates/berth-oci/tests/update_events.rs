//! `update` and `events` through berth-oci, rootful, on a running busybox container with its
//! own cgroupsPath: an update reaches the kernel's files of the container's cgroup and the
//! container's state, and `events` reports the usage and the new limits in runc's shape.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

fn stats(b: &Bundle, id: &str) -> Value {
    let out = b.oci(&["events", "--stats", id]);
    assert!(out.status.success(), "events --stats: {}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "one event line: {text}");
    serde_json::from_str(&text).unwrap()
}

fn one_line_error(out: &std::process::Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} succeeded: {}", stdout(out));
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{what}: not one line: {err:?}");
    assert!(err.starts_with("berth-oci: "), "{what}: {err}");
    err
}

// The flags, then a --resources document on stdin, reach the kernel's files; the state keeps
// the merged limits, and events --stats shows the usage against the new limits.
#[test]
fn update_reaches_the_cgroup_the_state_and_the_stats() {
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

    let e = stats(&b, "upd");
    assert_eq!(e["type"], "stats");
    assert_eq!(e["id"], "upd");
    let data = &e["data"];
    assert!(data["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{e}");
    assert_eq!(data["memory"]["usage"]["limit"], 100663296, "{e}");
    assert!(data["pids"]["current"].as_u64().unwrap() >= 1, "{e}");
    assert_eq!(data["pids"]["limit"], 30, "{e}");
    assert!(data["cpu"]["usage"]["total"].is_u64(), "{e}");
}

// Without --stats, events prints a stats line every interval and ends when the container
// stops.
#[test]
fn events_stream_until_the_container_stops() {
    let (b, _) = sleeper("stream");
    start(&b, "ev");
    let mut child = b
        .cmd(&["events", "--interval", "100ms", "ev"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let line = lines.next().expect("an event line").unwrap();
        let e: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(e["type"], "stats", "{line}");
        assert_eq!(e["id"], "ev", "{line}");
    }
    let out = b.oci(&["kill", "ev", "KILL"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "events exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "events did not end after the container stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// An unknown container and a stopped one: update and events fail with one line naming it.
#[test]
fn unknown_and_stopped_containers_are_one_line_errors() {
    let (mut b, _) = sleeper("stopped");
    for args in [&["update", "--memory", "64M", "nosuch"][..], &["events", "--stats", "nosuch"][..]]
    {
        let err = one_line_error(&b.oci(args), args[0]);
        assert!(err.contains("\"nosuch\" does not exist"), "{err}");
    }

    b.config["process"]["args"] = json!(["true"]);
    start(&b, "done");
    b.wait_status("done", "stopped");
    let err = one_line_error(&b.oci(&["update", "--pids-limit", "10", "done"]), "update");
    assert!(err.contains("done is stopped"), "{err}");
    let err = one_line_error(&b.oci(&["events", "--stats", "done"]), "events");
    assert!(err.contains("done is not running"), "{err}");
}

// The keys runc 1.1.5 prints in `events --stats` for the memory usage, pids and cpu usage of
// the same bundle are all in berth-oci's event too. Skipped where runc cannot run the bundle.
#[test]
fn stats_keys_cover_runcs() {
    let (b, _) = sleeper("runc-berth");
    start(&b, "keys");
    let ours = stats(&b, "keys");

    let (r, _) = sleeper("runc");
    r.write();
    let runc_root = r.tmp.path().join("runc-state");
    let runc = |args: &[&str]| {
        Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
    };
    let bundle = r.dir.to_str().unwrap().to_owned();
    let log = fs::File::create(r.tmp.path().join("runc.out")).unwrap();
    let created = Command::new("runc")
        .arg("--root")
        .arg(&runc_root)
        .args(["create", "--bundle", &bundle, "rk"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status();
    if !created.is_ok_and(|s| s.success()) {
        eprintln!(
            "skipped: runc cannot create the bundle: {:?}",
            fs::read_to_string(r.tmp.path().join("runc.out"))
        );
        return;
    }
    let theirs = runc(&["start", "rk"])
        .ok()
        .filter(|o| o.status.success())
        .and_then(|_| runc(&["events", "--stats", "rk"]).ok())
        .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok());
    let _ = runc(&["delete", "--force", "rk"]);
    let Some(theirs) = theirs else {
        eprintln!("skipped: runc events --stats gave no JSON");
        return;
    };
    assert_eq!(theirs["type"], ours["type"]);
    for section in ["/data/memory/usage", "/data/pids", "/data/cpu/usage", "/data/cpu/throttling"] {
        let keys = |v: &Value| -> Vec<String> {
            v.pointer(section).and_then(Value::as_object).map_or_else(Vec::new, |o| {
                o.keys().filter(|k| !k.starts_with("percpu")).cloned().collect()
            })
        };
        let ours_keys = keys(&ours);
        for k in keys(&theirs) {
            assert!(ours_keys.contains(&k), "{section}/{k} is in runc's event only: {ours}");
        }
    }
}
