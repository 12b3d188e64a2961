//! How `berth` reports to the user: logging set-up, and the one-line error with its cause
//! chain, hint and exit code.
//!
//! Exit codes follow Docker and Podman: 125 when berth itself failed, 126 when the container's
//! command could not be invoked, 127 when it was not found, and otherwise the container's own
//! code (128+N when it died of signal N).

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::process::ExitCode;

use berth_engine::images::pull::RegistryFailure;
use tracing_subscriber::EnvFilter;

/// berth itself failed: bad input, a registry error, a runtime error.
pub const EXIT_ENGINE: u8 = 125;
/// The container's command exists but could not be invoked.
#[allow(dead_code)] // Used once `run` and `exec` land.
pub const EXIT_CANNOT_INVOKE: u8 = 126;
/// The container's command was not found.
#[allow(dead_code)] // Used once `run` and `exec` land.
pub const EXIT_NOT_FOUND: u8 = 127;

/// Sets up tracing: quiet (warnings and errors) unless `--log-level` or BERTH_LOG asks for
/// more. Logs go to standard error so they never mix with a command's output.
pub fn init_logging(level: Option<&str>) {
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false)
        .init();
}

/// Prints `berth: <message>: <cause>: <cause>` on one line, then a hint line where the usual
/// cause of the failure is known, and returns the exit code for it.
pub fn fail(err: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(err) {
        // The reader went away (`berth images | head`): end quietly, as a Unix tool does.
        return ExitCode::from(EXIT_ENGINE);
    }
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "berth: {}", one_line(err));
    if let Some(hint) = hint(err) {
        let _ = writeln!(stderr, "hint: {hint}");
    }
    ExitCode::from(EXIT_ENGINE)
}

/// Reports a command-line usage error the way every other error is reported — one line,
/// exit 125, as Podman does — while help and version requests print normally and succeed.
pub fn usage(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = err.print();
        return ExitCode::from(EXIT_ENGINE);
    }
    let text = err.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let message = first.strip_prefix("error: ").unwrap_or(first);
    let _ = writeln!(io::stderr(), "berth: {message}");
    let _ = writeln!(io::stderr(), "hint: see 'berth --help'");
    ExitCode::from(EXIT_ENGINE)
}

/// The whole cause chain on one line, each cause after a colon.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for (i, cause) in err.chain().enumerate() {
        if i > 0 {
            line.push_str(": ");
        }
        let _ = write!(line, "{cause}");
    }
    line.replace('\n', " ")
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

/// A hint for failures whose usual cause is known. The library crates' typed errors are
/// matched here as they grow; anything unknown gets no hint rather than a guess.
fn hint(err: &anyhow::Error) -> Option<&'static str> {
    for cause in err.chain() {
        if let Some(RegistryFailure::Tls { .. }) = cause.downcast_ref::<RegistryFailure>() {
            return Some(
                "the registry may serve plain HTTP or a certificate not trusted here: for a \
                 registry you trust, use --tls-verify=false or mark it insecure in registries.conf",
            );
        }
        let Some(io) = cause.downcast_ref::<io::Error>() else { continue };
        if io.raw_os_error() == Some(libc::ENOSPC) {
            return Some("the file system is full: free space under --root");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // Pins the user-facing error format: every cause of the chain on one line, colon-separated.
    #[test]
    fn error_chain_prints_on_one_line() {
        let err = anyhow::Error::new(io::Error::from_raw_os_error(2))
            .context("reading /etc/subuid")
            .context("setting up the user namespace");
        assert_eq!(
            one_line(&err),
            "setting up the user namespace: reading /etc/subuid: No such file or directory (os \
             error 2)"
        );
    }

    #[test]
    fn a_full_disk_gets_a_hint() {
        let err = anyhow::Error::new(io::Error::from_raw_os_error(28)).context("writing blob");
        assert_eq!(hint(&err), Some("the file system is full: free space under --root"));
        let err = anyhow::Error::new(io::Error::from_raw_os_error(2)).context("reading");
        assert_eq!(hint(&err), None);
    }

    #[test]
    fn broken_pipe_is_recognised_through_context() {
        let err = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("out");
        assert!(is_broken_pipe(&err));
    }
}
