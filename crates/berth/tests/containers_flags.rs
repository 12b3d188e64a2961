//! The container flags of issue 6's scope that the lifecycle tests do not drive, as a user
//! does: `ps` with `--filter` (label, status, name, ancestor, id), `--last` and `--no-trunc`,
//! `--cidfile`, `--replace`, `restart`, and `logs --since`/`--until`.

use berth_testkit::cli::Berth;

fn engine() -> Berth {
    if !rustix::process::geteuid().is_root() {
        panic!("the rootful container tests need root");
    }
    Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), "localhost/busybox:latest")
}

#[test]
fn ps_filters_cidfile_replace_restart_and_log_times() {
    let berth = engine();
    let names = |args: &[&str]| {
        let mut all = vec!["ps", "-a", "--format", "{{.Names}}"];
        all.extend_from_slice(args);
        berth.ok(&all)
    };
    let a =
        berth.ok(&["create", "--name", "a", "--label", "tier=web", "localhost/busybox", "true"]);
    berth.ok(&["create", "--name", "b", "--label", "tier=db", "localhost/busybox", "true"]);
    let cidfile = berth.dir().join("c.cid");
    let cid = cidfile.to_str().unwrap();
    let script = "echo first; sleep 1000";
    berth.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "--cidfile",
        cid,
        "localhost/busybox",
        "sh",
        "-c",
        script,
    ]);
    let c = std::fs::read_to_string(&cidfile).unwrap();
    assert_eq!(c.len(), 64, "--cidfile holds the full id: {c:?}");
    assert_eq!(berth.ok(&["inspect", "--format", "{{.Id}}", "c"]).trim(), c);
    // A second run with the same --cidfile is refused before anything is made.
    let err = berth.fails(&["run", "-d", "--cidfile", cid, "localhost/busybox", "true"], 125);
    assert!(err.contains("c.cid") && err.lines().count() == 1, "{err}");
    assert_eq!(berth.ids().len(), 3);

    assert_eq!(names(&["--filter", "label=tier=web"]), "a\n");
    assert_eq!(names(&["--filter", "label=tier"]), "b\na\n", "newest first");
    assert_eq!(names(&["--filter", "status=running"]), "c\n");
    assert_eq!(names(&["--filter", "status=created", "--filter", "status=running"]), "c\nb\na\n");
    assert_eq!(names(&["--filter", "name=^b$"]), "b\n");
    assert_eq!(names(&["--filter", "ancestor=localhost/busybox"]), "c\nb\na\n");
    assert_eq!(names(&["--filter", &format!("id={}", &a.trim()[..6])]), "a\n");
    assert_eq!(names(&["--last", "2"]), "c\nb\n");
    assert_eq!(berth.ok(&["ps", "-q", "--no-trunc"]).trim(), c);
    assert_eq!(berth.ok(&["ps", "-q"]).trim(), &c[..12]);
    berth.fails(&["ps", "--filter", "nonsense=1"], 125);

    // --replace removes the container of that name first.
    let replaced = berth.ok(&["create", "--replace", "--name", "a", "localhost/busybox", "true"]);
    assert_ne!(replaced.trim(), a.trim());
    let ids = berth.ok(&["ps", "-a", "--filter", "name=^a$", "--format", "{{.ID}}"]);
    assert_eq!(ids.trim(), &replaced[..12]);

    // restart: a new process, the same container and log.
    let pid = |b: &Berth| b.ok(&["inspect", "--format", "{{.State.Pid}}", "c"]).trim().to_owned();
    let before = pid(&berth);
    assert_eq!(berth.ok(&["restart", "-t", "0", "c"]).trim(), "c");
    assert_ne!(pid(&berth), before);
    assert_eq!(names(&["--filter", "status=running"]), "c\n");
    berth.eventually("the second start's line", || berth.ok(&["logs", "c"]) == "first\nfirst\n");

    // logs --since and --until select by the entries' times.
    assert_eq!(berth.ok(&["logs", "--since", "10m", "c"]), "first\nfirst\n");
    assert_eq!(berth.ok(&["logs", "--until", "2020-01-01T00:00:00Z", "c"]), "");
    assert_eq!(berth.ok(&["logs", "--since", "2099-01-01T00:00:00Z", "c"]), "");
    berth.ok(&["rm", "-f", "-t", "0", "a", "b", "c"]);
    berth.assert_clean();
}
