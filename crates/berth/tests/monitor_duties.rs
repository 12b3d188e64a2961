//! Issue 7's monitor duties as a user meets them: `--restart` (on-failure:N restarts exactly N
//! times and keeps one log, always restarts after a clean exit and a stop or kill ends it),
//! healthchecks (unhealthy after the retries, healthy again when the check passes, by hand with
//! Podman's exit codes, the image's HEALTHCHECK), log drivers and rotation (at most max-file
//! files, `logs` reads every kept line in order, json-file in Docker's format, none refused),
//! and bad values refused with one line, exit 125 and nothing created. Rootful, and the
//! restart and healthcheck as the unprivileged test user.
//!
//! Each test has its own engine; its guard removes the containers, monitors, mounts and
//! cgroups also when an assertion fails.

use std::fs;
use std::path::{Path, PathBuf};

use berth_testkit::cli::{stderr, stdout, Berth};

fn engine() -> Berth {
    Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), "localhost/bb")
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn inspect(berth: &Berth, name: &str, format: &str) -> String {
    berth.ok(&["inspect", "--format", format, name]).trim().to_owned()
}

fn status(berth: &Berth, name: &str) -> String {
    let filter = format!("name={name}");
    berth.ok(&["ps", "-a", "--filter", &filter, "--format", "{{.Status}}"]).trim().to_owned()
}

/// The events of container `name` in the journal, as (status, exit code).
fn events(berth: &Berth, name: &str) -> Vec<(String, Option<i64>)> {
    let journal = fs::read_to_string(berth.runroot().join("events/events.log")).unwrap_or_default();
    journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["Name"] == name)
        .map(|e| (e["Status"].as_str().unwrap_or("").to_owned(), e["ContainerExitCode"].as_i64()))
        .collect()
}

/// Removes every container and checks that nothing of them is left (mounts, monitors,
/// cgroups, runtime state).
fn removed_and_clean(berth: &Berth) {
    berth.ok(&["rm", "-af", "-t", "0"]);
    settled(berth);
    berth.assert_clean();
}

/// Waits until no monitor of this engine runs: the container is in its final state.
fn settled(berth: &Berth) {
    // Twice, 50 ms apart: a monitor in the middle of one of its execs (to berth-monitor and
    // back, or into a restart) can show an empty command line for a moment.
    let gone = || berth.monitors().is_empty();
    berth.eventually("the monitors to finish", || {
        gone() && {
            std::thread::sleep(std::time::Duration::from_millis(50));
            gone()
        }
    });
}

// on-failure:2 with a command that exits 1: two restarts, not one and not three; the same
// log holds the output of all three runs; each restart is died/start in the journal.
#[test]
fn restart_on_failure_2_restarts_exactly_twice() {
    if !is_root() {
        return;
    }
    let berth = engine();
    let cmd = "echo start; exit 1";
    berth.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "localhost/bb",
        "sh",
        "-c",
        cmd,
    ]);
    settled(&berth);
    assert_eq!(inspect(&berth, "flaky", "{{.RestartCount}}"), "2");
    assert_eq!(inspect(&berth, "flaky", "{{.State.Status}} {{.State.ExitCode}}"), "exited 1");
    assert_eq!(
        inspect(
            &berth,
            "flaky",
            "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure 2"
    );
    assert_eq!(berth.ok(&["logs", "flaky"]), "start\nstart\nstart\n");
    let statuses: Vec<String> = events(&berth, "flaky").into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses, ["create", "start", "died", "start", "died", "start", "died"]);
    assert!(events(&berth, "flaky")
        .iter()
        .filter(|(s, _)| s == "died")
        .all(|(_, c)| *c == Some(1)));
    // A start by the user begins the count again.
    berth.ok(&["start", "flaky"]);
    settled(&berth);
    assert_eq!(inspect(&berth, "flaky", "{{.RestartCount}}"), "2");
    assert_eq!(berth.ok(&["logs", "flaky"]).lines().count(), 6);
    removed_and_clean(&berth);
}

// always: a clean exit is followed by a restart; `stop` ends it for good, and so does `kill`
// of an unless-stopped container (Podman's StoppedByUser).
#[test]
fn restart_always_restarts_after_exit_0_and_stop_ends_it() {
    if !is_root() {
        return;
    }
    let berth = engine();
    berth.ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--restart",
        "always",
        "localhost/bb",
        "sh",
        "-c",
        "echo up; sleep 0.2",
    ]);
    berth.eventually("two restarts", || {
        inspect(&berth, "again", "{{.RestartCount}}").parse::<u32>().unwrap_or(0) >= 2
    });
    assert_eq!(berth.ok(&["stop", "-t", "1", "again"]).trim(), "again");
    settled(&berth);
    let count = inspect(&berth, "again", "{{.RestartCount}}");
    assert_eq!(inspect(&berth, "again", "{{.State.Status}}"), "exited");
    assert_eq!(berth.ok(&["ps", "-q"]), "", "nothing runs after the stop");
    // The monitor is gone, so nothing is left to restart it: the count stays.
    assert_eq!(inspect(&berth, "again", "{{.RestartCount}}"), count);
    assert!(berth.ok(&["logs", "again"]).lines().filter(|l| *l == "up").count() >= 3);

    berth.ok(&[
        "run",
        "-d",
        "--name",
        "stays",
        "--restart",
        "unless-stopped",
        "localhost/bb",
        "sleep",
        "1000",
    ]);
    berth.ok(&["kill", "stays"]);
    settled(&berth);
    assert_eq!(inspect(&berth, "stays", "{{.State.Status}} {{.State.ExitCode}}"), "exited 137");
    assert_eq!(inspect(&berth, "stays", "{{.RestartCount}}"), "0");
    removed_and_clean(&berth);
}

// A check that fails `retries` times in a row makes the container unhealthy, one success makes
// it healthy again: a file the check reads disappears and comes back.
#[test]
fn a_failing_healthcheck_turns_unhealthy_after_the_retries_and_heals() {
    if !is_root() {
        return;
    }
    let berth = engine();
    berth.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--health-cmd",
        "cat /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "localhost/bb",
        "sh",
        "-c",
        "touch /tmp/ok; exec sleep 1000",
    ]);
    berth.eventually("healthy", || status(&berth, "web").ends_with("(healthy)"));
    assert!(status(&berth, "web").starts_with("Up "), "{}", status(&berth, "web"));
    assert_eq!(berth.code(&["healthcheck", "run", "web"]), Some(0));

    berth.ok(&["exec", "web", "rm", "/tmp/ok"]);
    berth.eventually("unhealthy", || status(&berth, "web").ends_with("(unhealthy)"));
    let health: serde_json::Value =
        serde_json::from_str(&inspect(&berth, "web", "{{json .State.Health}}")).unwrap();
    assert_eq!(health["Status"], "unhealthy");
    assert!(health["FailingStreak"].as_u64().unwrap() >= 2, "{health}");
    let log = health["Log"].as_array().unwrap();
    assert!(log.len() <= 5, "{health}");
    let last = log.last().unwrap();
    assert_eq!(last["ExitCode"], 1);
    assert!(last["Output"].as_str().unwrap().contains("/tmp/ok"), "{last}");
    let by_hand = berth.run(&["healthcheck", "run", "web"]);
    assert_eq!(by_hand.status.code(), Some(1));
    assert_eq!(stdout(&by_hand), "unhealthy\n");

    berth.ok(&["exec", "web", "touch", "/tmp/ok"]);
    berth.eventually("healthy again", || status(&berth, "web").ends_with("(healthy)"));
    let health_events: Vec<_> =
        events(&berth, "web").into_iter().filter(|(s, _)| s == "health_status").collect();
    assert!(health_events.len() >= 3, "{health_events:?}");

    // A check that outlives its timeout is killed and counts as a failure.
    berth.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 30",
        "--health-timeout",
        "1s",
        "--health-interval",
        "disable",
        "localhost/bb",
        "sleep",
        "1000",
    ]);
    let timed_out = berth.run(&["healthcheck", "run", "slow"]);
    assert_eq!(timed_out.status.code(), Some(1), "{}", stderr(&timed_out));
    let last =
        inspect(&berth, "slow", "{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{end}}");
    assert_eq!(last, "-1 healthcheck command exceeded timeout of 1s");

    // A container without a check: 125, as Podman.
    berth.ok(&["run", "-d", "--name", "plain", "localhost/bb", "sleep", "1000"]);
    let err = berth.fails(&["healthcheck", "run", "plain"], 125);
    assert!(err.contains("has no healthcheck"), "{err}");
    removed_and_clean(&berth);
}

// The image's HEALTHCHECK is the container's unless a flag replaces or removes it.
#[test]
fn the_images_healthcheck_is_used_and_flags_win() {
    if !is_root() {
        return;
    }
    let berth = engine();
    let context = berth.dir().join("context");
    fs::create_dir_all(&context).unwrap();
    fs::write(
        context.join("Containerfile"),
        "FROM localhost/bb\nHEALTHCHECK --interval=1s --retries=1 CMD [\"test\", \"-e\", \"/etc/passwd\"]\n",
    )
    .unwrap();
    berth.ok(&["build", "-q", "-t", "localhost/checked", context.to_str().unwrap()]);
    berth.ok(&["run", "-d", "--name", "img", "localhost/checked", "sleep", "1000"]);
    assert_eq!(
        inspect(&berth, "img", "{{json .Config.Healthcheck.Test}}"),
        r#"["CMD","test","-e","/etc/passwd"]"#
    );
    berth.eventually("healthy by the image's check", || {
        status(&berth, "img").ends_with("(healthy)")
    });
    berth.ok(&["create", "--name", "off", "--no-healthcheck", "localhost/checked", "true"]);
    assert_eq!(inspect(&berth, "off", "{{.State.Health.Status}}"), "");
    berth.ok(&["create", "--name", "other", "--health-retries", "5", "localhost/checked", "true"]);
    assert_eq!(inspect(&berth, "other", "{{.Config.Healthcheck.Retries}}"), "5");
    berth.ok(&["rm", "-f", "-t", "0", "img"]);
    settled(&berth);
    removed_and_clean(&berth);
}

/// The live log file of container `name` and its rotated siblings that exist.
fn log_files(berth: &Berth, name: &str) -> Vec<PathBuf> {
    let path = PathBuf::from(inspect(berth, name, "{{.HostConfig.LogConfig.Path}}"));
    let mut files = vec![path.clone()];
    for n in 1..10 {
        files.push(PathBuf::from(format!("{}.{n}", path.display())));
    }
    files.into_iter().filter(|p| p.exists()).collect()
}

fn numbered(lines: &str) -> Vec<u32> {
    lines.lines().map(|l| l.strip_prefix("line ").unwrap().parse().unwrap()).collect()
}

// max-size and max-file: no file grows past the size, at most max-file files stay, and `logs`
// shows the lines of all of them in order, with nothing missing between the oldest kept and
// the last. Under the limit nothing at all is lost.
#[test]
fn log_rotation_keeps_at_most_max_file_files_and_logs_shows_every_line_in_order() {
    if !is_root() {
        return;
    }
    let berth = engine();
    let write =
        |n: u32| format!("i=0; while [ $i -lt {n} ]; do echo \"line $i\"; i=$((i+1)); done");
    for (name, lines) in [("few", 60), ("many", 600)] {
        berth.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--log-opt",
            "max-size=2k,max-file=3",
            "localhost/bb",
            "sh",
            "-c",
            &write(lines),
        ]);
    }
    settled(&berth);
    for (name, lines) in [("few", 60u32), ("many", 600)] {
        let files = log_files(&berth, name);
        assert!(files.len() <= 3, "{name}: {files:?}");
        for f in &files {
            let len = fs::metadata(f).unwrap().len();
            assert!(len <= 2048, "{name}: {} has {len} bytes", f.display());
        }
        let seen = numbered(&berth.ok(&["logs", name]));
        let first = seen[0];
        assert_eq!(seen, (first..lines).collect::<Vec<_>>(), "{name}");
        if name == "few" {
            assert_eq!(first, 0, "under the limit every line stays");
            assert!(files.len() >= 2, "{files:?}: 60 lines of ~50 bytes rotate once");
        } else {
            assert_eq!(files.len(), 3);
            assert!(first > 0, "the oldest lines went with the oldest file");
        }
    }
    assert_eq!(inspect(&berth, "few", "{{.HostConfig.LogConfig.Size}}"), "2KiB");
    removed_and_clean(&berth);
}

// json-file is Docker's line format and `logs` reads it; none keeps nothing and `logs` says so
// with Podman's words.
#[test]
fn json_file_and_none_drivers() {
    if !is_root() {
        return;
    }
    let berth = engine();
    berth.ok(&[
        "run",
        "-d",
        "--name",
        "js",
        "--log-driver",
        "json-file",
        "localhost/bb",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    berth.ok(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "localhost/bb",
        "echo",
        "lost",
    ]);
    settled(&berth);
    let out = berth.run(&["logs", "js"]);
    assert_eq!((stdout(&out).as_str(), stderr(&out).as_str()), ("out\n", "err\n"));
    let file = fs::read_to_string(log_files(&berth, "js")[0].as_path()).unwrap();
    let first: serde_json::Value = serde_json::from_str(file.lines().next().unwrap()).unwrap();
    assert_eq!(first["log"], "out\n");
    assert_eq!(first["stream"], "stdout");
    assert!(first["time"].as_str().unwrap().ends_with('Z'), "{first}");
    assert_eq!(inspect(&berth, "js", "{{.HostConfig.LogConfig.Type}}"), "json-file");
    let err = berth.fails(&["logs", "quiet"], 125);
    assert_eq!(
        err,
        "berth: this container is using the 'none' log driver, cannot read logs: this container \
         is not logging output\n"
    );
    assert!(log_files(&berth, "quiet").is_empty());
    removed_and_clean(&berth);
}

// Bad duty values: one `berth:` line naming what was wrong, exit 125, nothing created.
#[test]
fn bad_restart_health_and_log_values_are_one_line_errors_and_create_nothing() {
    if !is_root() {
        return;
    }
    let berth = engine();
    for (args, says) in [
        (vec!["--restart", "sometimes"], "invalid --restart \"sometimes\""),
        (vec!["--restart", "on-failure:x"], "invalid --restart \"on-failure:x\""),
        (vec!["--health-cmd", "true", "--health-retries", "-1"], "invalid --health-retries \"-1\""),
        (vec!["--health-interval", "5"], "invalid --health-interval \"5\""),
        (vec!["--log-opt", "max-size=12x"], "invalid --log-opt max-size \"12x\""),
        (vec!["--log-driver", "journald"], "invalid --log-driver \"journald\""),
        (vec!["--rm", "--restart", "always"], "--rm cannot be used with --restart always"),
    ] {
        for verb in ["run", "create"] {
            let mut full = vec![verb];
            full.extend(&args);
            full.extend(["localhost/bb", "true"]);
            let out = berth.run(&full);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.starts_with("berth: ") && err.contains(says), "{args:?}: {err}");
        }
    }
    assert_eq!(berth.ok(&["ps", "-aq"]), "");
    assert!(berth.created_ids().is_empty(), "{:?}", berth.created_ids());
    removed_and_clean(&berth);
}

/// The restart policy and a healthcheck as the unprivileged test user: the monitor runs in
/// the per-user namespace and its `healthcheck run` children join it too.
#[test]
fn rootless_restart_and_healthcheck() {
    if !is_root() {
        return;
    }
    let rootless = Rootless::new();
    let berth = &rootless.berth;
    berth.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:1",
        "localhost/bb",
        "sh",
        "-c",
        "echo start; exit 3",
    ]);
    berth.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "localhost/bb",
        "sh",
        "-c",
        "touch /tmp/ok; exec sleep 1000",
    ]);
    berth.eventually("healthy", || status(berth, "web").ends_with("(healthy)"));
    berth.ok(&["exec", "web", "rm", "/tmp/ok"]);
    berth.eventually("unhealthy", || status(berth, "web").ends_with("(unhealthy)"));
    berth.eventually("the restarts to end", || {
        inspect(berth, "flaky", "{{.RestartCount}} {{.State.Status}}") == "1 exited"
    });
    assert_eq!(berth.ok(&["logs", "flaky"]), "start\nstart\n");
    assert_eq!(inspect(berth, "flaky", "{{.State.ExitCode}}"), "3");
}

/// A throwaway engine of the test user: berth staged where the user can run it, the engine's
/// directory and an XDG_RUNTIME_DIR of its own (so a pause process of its own), ended with
/// `system migrate` and removed when dropped.
struct Rootless {
    berth: Berth,
    xdg: PathBuf,
}

impl Rootless {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let user = berth_testkit::user::TestUser::get();
        let bin =
            berth_testkit::user::stage_binary(Path::new(env!("CARGO_BIN_EXE_berth"))).unwrap();
        let mut berth = Berth::new(bin);
        let xdg = berth.dir().join("xdg");
        fs::create_dir(&xdg).unwrap();
        fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(berth.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        for d in [berth.dir(), xdg.as_path()] {
            rustix::fs::chown(
                d,
                Some(rustix::process::Uid::from_raw(user.uid())),
                Some(rustix::process::Gid::from_raw(user.gid())),
            )
            .unwrap();
        }
        let (uid, gid) = (user.uid().to_string(), user.gid().to_string());
        let setpriv = ["setpriv", "--reuid", &uid, "--regid", &gid, "--clear-groups", "--"];
        berth.wrap_in(&setpriv);
        berth.set_env("XDG_RUNTIME_DIR", &xdg);
        berth.set_env("HOME", user.home());
        // Loaded as the user, with the layout readable to them.
        let layout = berth.dir().join("layout");
        berth_testkit::busybox::image_layout(&layout).unwrap();
        let _ = std::process::Command::new("chmod").args(["-R", "a+rX"]).arg(&layout).status();
        let out = berth.ok(&["load", "-i", layout.to_str().unwrap()]);
        let id = out.trim().strip_prefix("Loaded image: sha256:").unwrap().to_owned();
        berth.ok(&["tag", &id, "localhost/bb"]);
        Self { berth, xdg }
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        let _ = self.berth.run(&["rm", "-af", "-t", "0"]);
        let _ = self.berth.run(&["system", "migrate"]);
        // Anything of the user's namespace still there (a pause process whose pid file is in
        // our XDG_RUNTIME_DIR).
        let pid_file = self.xdg.join("berth/pause.pid");
        if let Some(pid) = fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.split_whitespace().next().and_then(|p| p.parse::<i32>().ok()))
        {
            // SAFETY: kill takes a pid and a signal by value; the pid is this test's pause
            // process, read from its own pid file.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // The engine's own guard runs next and would start the namespace again for its `rm`:
        // everything is removed already, so its commands become `true`.
        self.berth.wrap_in(&["true"]);
    }
}
