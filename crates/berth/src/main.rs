//! The `berth` command: argument parsing, output and exit codes over berth-engine and
//! berth-build. Everything that does work lives in the library crates; this binary parses,
//! resolves the options into one configuration, calls the engine and reports.

mod build;
mod cli;
mod commit;
mod containers;
mod duties;
mod format;
mod images;
mod network;
mod part2;
mod paths;
mod report;
mod rootless;
mod volumes;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A container's monitor: berth re-executed by `run`/`start`, before anything else.
    if let Some(code) = berth_engine::monitor::run_if_requested() {
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    // Rootless: join the per-user user namespace while this process is still single-threaded.
    if let Some(code) = rootless::enter() {
        return code;
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return report::usage(&err),
    };
    report::init_logging(cli.global.log_level.as_deref());
    match cli.run() {
        Ok(code) => code,
        Err(err) => report::fail(&err),
    }
}
