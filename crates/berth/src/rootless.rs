//! Rootless berth's command-line pieces: the start-up hook that joins the per-user user
//! namespace before anything else runs, `berth unshare` (a command inside that namespace, as
//! `podman unshare`) and `berth system migrate` (ending its pause process).
//!
//! The hook decides from the raw arguments, before clap parses them, because joining must
//! happen while the process is still single-threaded. Commands that touch neither storage nor
//! containers (version, help, login, logout, system migrate) never join, so they work for a
//! user without subordinate id ranges too.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use anyhow::Context;
use berth_engine::containers::ops::Containers;
use berth_engine::userns;
use clap::{Args, CommandFactory, Subcommand};

use crate::cli::{Cli, GlobalOptions};
use crate::report;

/// Joins the per-user namespace when the command needs it. Called first thing in main, while
/// the process has one thread. Returns an exit code when berth must stop here.
pub fn enter() -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if !userns::host_ids().rootless() || !joins(&args) {
        return None;
    }
    match userns::join() {
        Ok(_) => None,
        Err(err) => Some(report::fail(
            &anyhow::Error::new(err).context("setting up the rootless user namespace"),
        )),
    }
}

/// Global options that take a value as the next argument.
const GLOBAL_WITH_VALUE: &[&str] = &["--log-level", "--root", "--runroot"];
/// Commands that need no user namespace.
const NO_JOIN: &[&str] = &["version", "help", "login", "logout"];

/// Whether the command line `args` (argv\[0\] first) names a command that touches storage or
/// containers.
fn joins(args: &[OsString]) -> bool {
    let mut rest = args.iter().skip(1).map(OsString::as_os_str);
    let command = loop {
        let Some(arg) = rest.next() else { return false };
        let Some(text) = arg.to_str() else { return false };
        if matches!(text, "--help" | "-h" | "--version" | "-V") {
            return false;
        }
        if GLOBAL_WITH_VALUE.contains(&text) {
            rest.next();
        } else if !text.starts_with('-') {
            break text;
        }
    };
    if NO_JOIN.contains(&command) || Cli::command().find_subcommand(command).is_none() {
        return false;
    }
    // Help of a command needs nothing either: look at the flags before its first operand.
    let mut after: Vec<&OsStr> = rest.collect();
    if command == "system" {
        if after.first().is_some_and(|s| *s == "migrate") {
            return false;
        }
        after.retain(|a| *a != "migrate");
    }
    !after
        .iter()
        .take_while(|a| a.to_str().is_some_and(|t| t.starts_with('-')))
        .any(|a| *a == "--help" || *a == "-h")
}

// Arguments of `berth unshare`.
#[derive(Debug, Args)]
pub struct UnshareArgs {
    /// The command to run (default: $SHELL, else /bin/sh) and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// `berth system` subcommands.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum SystemCommand {
    /// End the rootless user namespace's pause process; the next command makes a new one
    /// (after a change to /etc/subuid or /etc/subgid).
    Migrate,
    /// df, prune, info, events (issue 7).
    #[command(flatten)]
    Part2(crate::part2::SystemPart2),
}

/// Runs a command inside the user's namespace (which the start-up hook has joined), replacing
/// berth. Its exit code is the command's; 127 when it is not found, 126 when it cannot run.
pub fn unshare(_global: &GlobalOptions, args: UnshareArgs) -> anyhow::Result<ExitCode> {
    let ids = userns::host_ids();
    if !ids.rootless() {
        anyhow::bail!("berth unshare is for rootless users; as root, use unshare(1)");
    }
    let mut command = args.command.into_iter();
    let program = command
        .next()
        .or_else(|| std::env::var_os("SHELL").filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "/bin/sh".into());
    let err = std::process::Command::new(&program).args(command).exec();
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        report::EXIT_NOT_FOUND
    } else {
        report::EXIT_CANNOT_INVOKE
    };
    let err = anyhow::Error::new(err).context(format!("running {}", program.to_string_lossy()));
    eprintln!("berth: {}", report::one_line(&err));
    Ok(ExitCode::from(code))
}

/// `berth system …`.
pub fn system(global: &GlobalOptions, command: SystemCommand) -> anyhow::Result<ExitCode> {
    match command {
        SystemCommand::Migrate => {
            migrate(global)?;
            Ok(ExitCode::SUCCESS)
        }
        SystemCommand::Part2(command) => crate::part2::system(global, command),
    }
}

/// Stops the user's running containers (inside the namespace, where their processes and
/// mounts are), then ends the pause process, as `podman system migrate` does: the next
/// command makes a namespace with the current /etc/subuid and /etc/subgid.
fn migrate(global: &GlobalOptions) -> anyhow::Result<()> {
    let context = "migrating the rootless user namespace";
    // Still single-threaded here: nothing before this starts a thread.
    if userns::join_existing().context(context)?.is_some() {
        let ctx = crate::containers::context(global)?;
        let mut containers = Containers::open(&ctx).context("opening the container store")?;
        for record in containers.list().context(context)? {
            if record.state.has_process() {
                containers
                    .stop(&record.id, None)
                    .with_context(|| format!("{context}: stopping container {}", record.name))?;
            }
        }
    }
    if let Some(pid) = userns::stop().context(context)? {
        tracing::info!(pid, "pause process ended");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn storage_and_container_commands_join() {
        assert!(joins(&args("berth images")));
        assert!(joins(&args("berth --root /x --log-level debug pull busybox")));
        assert!(joins(&args("berth unshare cat /proc/self/uid_map")));
        assert!(joins(&args("berth unshare sh --help")), "the command's own flags");
    }

    #[test]
    fn commands_that_need_no_namespace_do_not() {
        for line in [
            "berth",
            "berth --help",
            "berth version",
            "berth --version",
            "berth login localhost:5000",
            "berth logout --all",
            "berth system migrate",
            "berth images --help",
            "berth no-such-command",
            "berth --root",
        ] {
            assert!(!joins(&args(line)), "{line}");
        }
    }
}
