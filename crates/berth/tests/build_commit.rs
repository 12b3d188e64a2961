//! `berth commit` as a user runs it: a container's change becomes an image that runs with
//! the file, `--change` instructions set its config, `--pause` leaves a running container
//! running, the runtime's mount points are no change; bad input is one line and exit 125.
//! And `history` and `diff` show what a build and a container did.

use berth_testkit::cli::Berth;
use berth_testkit::image_tree::read_layout;

const BUSYBOX: &str = "localhost/busybox:latest";

fn berth() -> Berth {
    Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), BUSYBOX)
}

#[test]
fn a_committed_change_runs_in_the_new_image() {
    let berth = berth();
    berth.ok(&[
        "run",
        "--name",
        "c1",
        "-e",
        "FROM_RUN=1",
        BUSYBOX,
        "sh",
        "-c",
        "echo committed > /new-file && rm /etc/group",
    ]);
    let diff = berth.ok(&["diff", "c1"]);
    assert!(diff.lines().any(|l| l == "A /new-file"), "{diff}");
    assert!(diff.lines().any(|l| l == "D /etc/group"), "{diff}");

    let id = berth.ok(&[
        "commit",
        "-q",
        "-c",
        "CMD [\"cat\", \"/new-file\"]",
        "--change",
        "ENV GREETING=hello PATH=/opt/bin:$PATH",
        "-c",
        "LABEL stage=committed",
        "-m",
        "a message",
        "-a",
        "Someone <someone@example.invalid>",
        "c1",
        "snap",
    ]);
    assert_eq!(id.trim().len(), 64, "-q prints the id: {id}");
    assert_eq!(berth.ok(&["run", "--rm", "snap"]), "committed\n");
    let seen = berth.ok(&[
        "run",
        "--rm",
        "snap",
        "sh",
        "-c",
        "echo $GREETING $FROM_RUN $PATH; test ! -e /etc/group && echo group-gone",
    ]);
    assert_eq!(
        seen,
        "hello 1 /opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\ngroup-gone\n"
    );

    let layout = berth.dir().join("saved");
    berth.ok(&["save", "--format", "oci-dir", "-o", layout.to_str().unwrap(), "snap"]);
    let saved = read_layout(&layout).unwrap();
    let config = &saved.config;
    assert_eq!(config["author"], "Someone <someone@example.invalid>");
    assert_eq!(config["config"]["Labels"]["stage"], "committed");
    let last = config["history"].as_array().unwrap().last().unwrap();
    assert_eq!(last["comment"], "a message");
    assert!(last["created_by"].as_str().unwrap().contains("echo committed"), "{last}");
    // The runtime's mount points (the base has no /etc/resolv.conf) are no change.
    let top = saved.layers.last().unwrap();
    let paths: Vec<&str> = top.keys().map(String::as_str).collect();
    assert_eq!(paths, ["etc", "etc/.wh.group", "new-file"], "{top:?}");

    // The history shows the commit with its comment.
    let history = berth.ok(&["history", "--no-trunc", "--format", "{{.Comment}}", "snap"]);
    assert_eq!(history.lines().next(), Some("a message"), "{history}");
    berth.ok(&["rm", "c1"]);
    berth.assert_clean();
}

#[test]
fn pause_leaves_a_running_container_running() {
    let berth = berth();
    let id = berth.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        BUSYBOX,
        "sh",
        "-c",
        "echo live > /state && exec sleep 600",
    ]);
    let id = id.trim();
    berth.eventually("the container's file", || {
        berth.run(&["exec", "live", "test", "-e", "/state"]).status.success()
    });
    berth.ok(&["commit", "-q", "-p", "live", "live-snap"]);
    let state = berth.ok(&["inspect", "--format", "{{.State.Status}}", id]);
    assert_eq!(state.trim(), "running");
    assert_eq!(berth.ok(&["run", "--rm", "live-snap", "cat", "/state"]), "live\n");
    berth.ok(&["rm", "-f", "-t", "0", "live"]);
    berth.assert_clean();
}

#[test]
fn bad_commits_fail_with_one_line() {
    let berth = berth();
    let stderr = berth.fails(&["commit", "no-such-container", "x"], 125);
    assert!(stderr.starts_with("berth: ") && stderr.contains("no-such-container"), "{stderr}");
    berth.ok(&["run", "--name", "c", BUSYBOX, "true"]);
    let stderr = berth.fails(&["commit", "-c", "RUN true", "c", "x"], 125);
    assert!(stderr.contains("RUN cannot be applied by --change"), "{stderr}");
    let stderr = berth.fails(&["commit", "--squash", "c", "x"], 125);
    assert!(stderr.contains("not supported yet"), "{stderr}");
    let images = berth.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(!images.contains("localhost/x"), "{images}");
    berth.ok(&["rm", "c"]);
}

// `history` of a built image: one row per instruction, newest first, with what made it,
// empty for instructions that only change the config.
#[test]
fn history_shows_the_build_steps() {
    let berth = berth();
    let context = berth.dir().join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Containerfile"),
        "FROM localhost/busybox:latest\nRUN echo x > /f\nENV A=1\nCOPY data /data\n",
    )
    .unwrap();
    std::fs::write(context.join("data"), "some data\n").unwrap();
    berth.ok(&["build", "-q", "-t", "hist", context.to_str().unwrap()]);
    let rows = berth.ok(&[
        "history",
        "--no-trunc",
        "-H=false",
        "--format",
        "{{.CreatedBy}}|{{.Size}}",
        "hist",
    ]);
    let rows: Vec<(&str, u64)> = rows
        .lines()
        .map(|l| {
            let (by, size) = l.rsplit_once('|').unwrap();
            (by, size.parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows[0].0.contains("COPY") && rows[0].0.contains("/data") && rows[0].1 > 0, "{rows:?}");
    assert_eq!(rows[1], ("/bin/sh -c #(nop) ENV A=1", 0));
    assert!(rows[2].0.ends_with("/bin/sh -c echo x > /f") && rows[2].1 > 0, "{rows:?}");
}
