//! `--health-on-failure` as a Podman user meets it: once the check finds the container
//! unhealthy, `kill` kills it (137), `stop` stops it with its stop signal (a trap sees it),
//! `restart` stops and starts it again; inspect shows the action; a bad action, or one
//! without a healthcheck, is a one-line error that creates nothing. Rootful.

use berth_testkit::cli::Berth;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn engine() -> Berth {
    Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), "localhost/bb")
}

fn inspect(berth: &Berth, name: &str, format: &str) -> String {
    berth.ok(&["inspect", "--format", format, name]).trim().to_owned()
}

/// `run -d` of a container whose check fails from the first run on (no /tmp/ok), one
/// failure making it unhealthy.
fn run_failing(berth: &Berth, name: &str, action: &str, command: &str) {
    berth.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "--health-cmd",
        "cat /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "--health-on-failure",
        action,
        "localhost/bb",
        "sh",
        "-c",
        command,
    ]);
}

#[test]
fn an_unhealthy_container_is_killed_stopped_or_restarted_as_asked() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let berth = engine();
    run_failing(&berth, "k", "kill", "trap 'exit 7' TERM; while true; do sleep 0.1; done");
    run_failing(&berth, "s", "stop", "trap 'exit 7' TERM; while true; do sleep 0.1; done");
    run_failing(
        &berth,
        "r",
        "restart",
        "trap 'exit 0' TERM; echo started; while true; do sleep 0.1; done",
    );
    assert_eq!(inspect(&berth, "k", "{{.Config.HealthcheckOnFailureAction}}"), "kill");
    assert_eq!(inspect(&berth, "r", "{{.Config.HealthcheckOnFailureAction}}"), "restart");

    berth.eventually("the unhealthy container is killed", || {
        inspect(&berth, "k", "{{.State.Status}}") == "exited"
    });
    assert_eq!(inspect(&berth, "k", "{{.State.ExitCode}}"), "137");
    berth.eventually("the unhealthy container is stopped", || {
        inspect(&berth, "s", "{{.State.Status}}") == "exited"
    });
    assert_eq!(
        inspect(&berth, "s", "{{.State.ExitCode}}"),
        "7",
        "the stop signal reached the trap"
    );
    berth.eventually("the unhealthy container is started again, and runs", || {
        berth.ok(&["logs", "r"]).lines().filter(|l| *l == "started").count() >= 2
            && inspect(&berth, "r", "{{.State.Status}}") == "running"
    });
    // A container that stays healthy is left alone.
    berth.ok(&[
        "run",
        "-d",
        "--name",
        "fine",
        "--network",
        "none",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "--health-on-failure",
        "kill",
        "localhost/bb",
        "sleep",
        "1000",
    ]);
    berth
        .eventually("healthy", || inspect(&berth, "fine", "{{.State.Health.Status}}") == "healthy");
    assert_eq!(inspect(&berth, "fine", "{{.State.Status}}"), "running");
    berth.ok(&["rm", "-af", "-t", "0"]);
    berth.eventually("every monitor is gone", || berth.monitors().is_empty());
    berth.assert_clean();
}

#[test]
fn bad_actions_and_an_action_without_a_check_are_one_line_errors() {
    let berth = engine();
    let err = berth.fails(
        &[
            "create",
            "--health-cmd",
            "true",
            "--health-on-failure",
            "reboot",
            "localhost/bb",
            "true",
        ],
        125,
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("invalid --health-on-failure \"reboot\""), "{err}");
    let err = berth.fails(&["create", "--health-on-failure", "kill", "localhost/bb", "true"], 125);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--health-on-failure kill needs a healthcheck"), "{err}");
    assert!(berth.ids().is_empty(), "created: {:?}", berth.ids());
    let id = berth.ok(&["create", "--health-cmd", "true", "localhost/bb", "true"]);
    assert_eq!(inspect(&berth, id.trim(), "{{.Config.HealthcheckOnFailureAction}}"), "none");
}
