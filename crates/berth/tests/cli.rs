//! The `berth` binary as a user meets it: output, one-line errors and exit codes.

use std::process::{Command, Output};

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth")).args(args).output().expect("running berth")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn version_prints_the_crate_version() {
    let out = berth(&["version"]);
    assert!(out.status.success());
    let expected = format!("berth version {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

// A usage error is one `berth:` line naming what was wrong, exit 125, as Podman's are.
#[test]
fn an_unknown_command_is_a_one_line_error_with_exit_125() {
    let out = berth(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    let first = err.lines().next().unwrap();
    assert!(first.starts_with("berth: "), "{err}");
    assert!(first.contains("frobnicate"), "{err}");
}

#[test]
fn an_unknown_flag_is_named_in_the_error() {
    let out = berth(&["version", "--bogus"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).lines().next().unwrap().contains("--bogus"), "{}", stderr(&out));
}

#[test]
fn help_succeeds() {
    let out = berth(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("daemonless"));
}

// Logging is quiet by default and raised by --log-level or BERTH_LOG, always on stderr.
#[test]
fn logs_are_quiet_by_default_and_raised_by_flag_or_environment() {
    let out = berth(&["version"]);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let out = berth(&["--log-level", "debug", "version"]);
    assert!(stderr(&out).contains("running"), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("berth version"));
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("version")
        .env("BERTH_LOG", "debug")
        .output()
        .unwrap();
    assert!(stderr(&out).contains("running"), "{}", stderr(&out));
}
