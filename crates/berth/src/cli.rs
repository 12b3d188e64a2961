//! The command-line surface of `berth`, in clap's derive form. Doc comments are the help text.
//! Commands and flags follow Podman's, which follow Docker's.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// berth: a daemonless, rootless-first container engine.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalOptions {
    /// Log messages at this level and above: error, warn, info, debug or trace.
    /// BERTH_LOG (tracing's filter syntax) is used when this is not given.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Where berth keeps images and containers (default /var/lib/berth, rootless
    /// ~/.local/share/berth).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Where berth keeps per-boot runtime state (default /run/berth, rootless
    /// $XDG_RUNTIME_DIR/berth).
    #[arg(long, global = true, value_name = "DIR")]
    pub runroot: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the berth version.
    Version,
}

impl Cli {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        tracing::debug!(command = ?self.command, root = ?self.global.root, "running");
        match self.command {
            Command::Version => {
                println!("berth version {}", env!("CARGO_PKG_VERSION"));
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
