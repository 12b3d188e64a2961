//! `berth volume create|ls|inspect|rm|prune`, with Podman's columns, JSON and errors, over
//! berth-engine's volume store.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use berth_engine::spec::options::parse_key_values;
use berth_engine::volumes::{self, VolumeError, VolumeStore};
use clap::{Args, Subcommand};

use crate::cli::GlobalOptions;
use crate::format::{write_table, Format};

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum VolumeCommand {
    /// Create a volume.
    Create(CreateArgs),
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show volumes as JSON.
    Inspect(InspectArgs),
    /// Remove volumes.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove every volume no container uses.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Set a label: KEY=VALUE.
    #[arg(short, long, value_name = "LABEL")]
    pub label: Vec<String>,
    /// The driver (only local).
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Driver options (not supported yet).
    #[arg(short, long, value_name = "OPT")]
    pub opt: Vec<String>,
    /// Succeed when the volume exists already.
    #[arg(long)]
    pub ignore: bool,
    /// The name (random when not given).
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Go template or `json`.
    #[arg(long)]
    pub format: Option<String>,
    /// Print only the names.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Go template.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Inspect every volume.
    #[arg(short, long)]
    pub all: bool,
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Remove every volume.
    #[arg(short, long)]
    pub all: bool,
    /// Remove volumes in use too: not supported yet (stop and remove the containers first).
    #[arg(short, long)]
    pub force: bool,
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Filter which volumes go: not supported yet.
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
}

/// Runs a `volume` subcommand.
pub fn volume(global: &GlobalOptions, command: VolumeCommand) -> Result<ExitCode> {
    let root = crate::images::root_dir(global)?;
    let mut store = VolumeStore::open(&root).context("opening the volume store")?;
    match command {
        VolumeCommand::Create(args) => {
            if args.driver != "local" {
                anyhow::bail!("volume driver {:?} is not supported yet (only local)", args.driver);
            }
            if !args.opt.is_empty() {
                anyhow::bail!("volume driver options (-o) are not supported yet");
            }
            let labels: BTreeMap<String, String> = parse_key_values("--label", &args.label)?;
            match store.create(args.name.as_deref(), &labels, false) {
                Ok(v) => println!("{}", v.name),
                Err(VolumeError::Exists { name }) if args.ignore => println!("{name}"),
                Err(e) => return Err(e.into()),
            }
        }
        VolumeCommand::Ls(args) => {
            let list = store.list()?;
            let mut out = io::stdout().lock();
            if args.quiet {
                for v in &list {
                    writeln!(out, "{}", v.name)?;
                }
            } else if let Some(format) = &args.format {
                let items: Vec<_> = list.iter().map(|v| v.inspect()).collect();
                if format == "json" {
                    serde_json::to_writer_pretty(&mut out, &items)?;
                    writeln!(out)?;
                } else {
                    Format::parse(format)?.print_all(&items, &mut out)?;
                }
            } else {
                let mut rows = vec![vec!["DRIVER".to_owned(), "VOLUME NAME".to_owned()]];
                rows.extend(list.iter().map(|v| vec![v.driver.clone(), v.name.clone()]));
                write_table(&rows, &mut out)?;
            }
        }
        VolumeCommand::Inspect(args) => {
            let list = if args.all {
                store.list()?
            } else {
                if args.names.is_empty() {
                    anyhow::bail!("provide one or more volume names or use --all");
                }
                args.names.iter().map(|n| store.get(n)).collect::<Result<Vec<_>, _>>()?
            };
            let items: Vec<_> = list.iter().map(|v| v.inspect()).collect();
            let mut out = io::stdout().lock();
            match &args.format {
                Some(format) if format != "json" => {
                    Format::parse(format)?.print_all(&items, &mut out)?
                }
                _ => {
                    serde_json::to_writer_pretty(&mut out, &items)?;
                    writeln!(out)?;
                }
            }
        }
        VolumeCommand::Rm(args) => {
            if args.force {
                anyhow::bail!(
                    "volume rm --force is not supported yet: remove the containers first"
                );
            }
            let names: Vec<String> = if args.all {
                store.list()?.into_iter().map(|v| v.name).collect()
            } else {
                if args.names.is_empty() {
                    anyhow::bail!("provide one or more volume names or use --all");
                }
                args.names.clone()
            };
            let users = volumes::users(&root)?;
            for name in names {
                let using = users_of(&users, &name);
                store.remove(&name, &using)?;
                println!("{name}");
            }
        }
        VolumeCommand::Prune(args) => {
            let users = volumes::users(&root)?;
            let unused: Vec<String> = store
                .list()?
                .into_iter()
                .filter(|v| users_of(&users, &v.name).is_empty())
                .map(|v| v.name)
                .collect();
            if !args.filter.is_empty() {
                anyhow::bail!("volume prune --filter is not supported yet");
            }
            if unused.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            // Podman asks first unless --force; anything but y/yes keeps the volumes.
            if !args.force && !confirm_prune(&unused)? {
                return Ok(ExitCode::SUCCESS);
            }
            for name in unused {
                store.remove(&name, &[])?;
                println!("{name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Podman's question before `volume prune`; true when the answer is yes.
fn confirm_prune(names: &[String]) -> Result<bool> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "WARNING! This will remove all volumes not used by at least one container. The \
         following volumes will be removed:"
    )?;
    for name in names {
        writeln!(out, "{name}")?;
    }
    write!(out, "Are you sure you want to continue? [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    io::stdin().read_line(&mut answer).context("reading the answer")?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

fn users_of(users: &[(String, String)], name: &str) -> Vec<String> {
    users.iter().filter(|(v, _)| v == name).map(|(_, c)| c.clone()).collect()
}
