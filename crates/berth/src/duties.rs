//! The monitor's duties on the command line (issue 7): `--restart`, the healthcheck flags and
//! `--log-driver`/`--log-opt` of `run` and `create`, and `berth healthcheck run`, with
//! Podman's names and exit codes (0 healthy, 1 unhealthy, 125 for no healthcheck or another
//! failure).

use std::process::ExitCode;

use anyhow::Result;
use berth_engine::monitor::duties::DutyOptions;
use berth_engine::monitor::health::{self, HealthFlags};
use clap::{Args, Subcommand};

use crate::cli::GlobalOptions;

// The duty flags of `run` and `create` (flattened into their arguments).
#[derive(Debug, Args, Clone, Default)]
pub struct DutyArgs {
    /// Restart policy: no, on-failure[:MAX], always or unless-stopped. The container's monitor
    /// restarts it (there is no daemon): nothing restarts after a reboot, `always` included,
    /// and a stop or kill by the user is never followed by a restart.
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// A command that checks the container's health: a shell command, a JSON array
    /// (exec form), or NONE.
    #[arg(long, value_name = "COMMAND")]
    pub health_cmd: Option<String>,
    /// Time between healthchecks (default 30s; `disable` runs them only by hand).
    #[arg(long, value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Failures in a row that make the container unhealthy (default 3).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub health_retries: Option<String>,
    /// Time after the start during which failures do not count (default 0s).
    #[arg(long, value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// The longest a healthcheck may run (default 30s).
    #[arg(long, value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// No healthcheck, not even the image's.
    #[arg(long)]
    pub no_healthcheck: bool,
    /// What to do once the healthcheck turns the container unhealthy: none (default), kill,
    /// restart or stop.
    #[arg(long, value_name = "ACTION")]
    pub health_on_failure: Option<String>,
    /// Where the output goes: k8s-file (default), json-file or none.
    #[arg(long, value_name = "DRIVER")]
    pub log_driver: Option<String>,
    /// A log option: max-size=SIZE, max-file=N, path=FILE (repeatable, or joined with commas).
    #[arg(long, value_name = "OPT")]
    pub log_opt: Vec<String>,
}

impl DutyArgs {
    /// The flags as the engine stores them.
    pub fn options(&self) -> DutyOptions {
        DutyOptions {
            restart: self.restart.clone(),
            health: HealthFlags {
                health_cmd: self.health_cmd.clone(),
                health_interval: self.health_interval.clone(),
                health_retries: self.health_retries.clone(),
                health_start_period: self.health_start_period.clone(),
                health_timeout: self.health_timeout.clone(),
                no_healthcheck: self.no_healthcheck,
                health_on_failure: self.health_on_failure.clone(),
            },
            log_driver: self.log_driver.clone(),
            log_opt: self.log_opt.clone(),
        }
    }

    /// Checks every value before anything is pulled or created.
    pub fn validate(&self, auto_remove: bool) -> Result<()> {
        Ok(self.options().validate(auto_remove)?)
    }
}

/// `berth healthcheck`.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum HealthcheckCommand {
    /// Run a container's healthcheck now: exit 0 if it passed, 1 (printing "unhealthy") if
    /// it failed.
    Run(HealthcheckRunArgs),
}

#[derive(Debug, Args)]
pub struct HealthcheckRunArgs {
    /// The container.
    pub container: String,
}

/// `berth healthcheck run`.
pub fn healthcheck(global: &GlobalOptions, command: HealthcheckCommand) -> Result<ExitCode> {
    let HealthcheckCommand::Run(args) = command;
    let ctx = crate::containers::context(global)?;
    let mut containers = berth_engine::containers::ops::Containers::open(&ctx)?;
    let checked = health::healthcheck(&mut containers, &args.container)?;
    if checked.passed {
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", health::UNHEALTHY);
    Ok(ExitCode::from(1))
}
