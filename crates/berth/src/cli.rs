//! The command-line surface of `berth`, in clap's derive form. Doc comments are the help text.
//! Commands and flags follow Podman's, which follow Docker's.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::containers;
use crate::images;
use crate::rootless;

/// berth: a daemonless, rootless-first container engine.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,

    #[command(subcommand)]
    pub command: Command,
}

// Options every command takes.
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
// Each command's flags are made when the command line names it (clap's Command::defer): the
// whole tree, made for every command, cost about 850 KiB of heap and half a millisecond.
// The other subcommand enums defer theirs too.
#[command(defer = true)]
// Parsed once per process: the size of the `run` flags does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Show the berth version.
    Version,
    /// Build an image from a Containerfile or Dockerfile.
    Build(crate::build::BuildArgsCli),
    /// Make an image from a container's changes.
    Commit(crate::commit::CommitArgs),

    /// Pull an image from a registry.
    Pull(images::PullArgs),
    /// Push an image to a registry.
    Push(images::PushArgs),
    /// List images.
    Images(images::ImagesArgs),
    /// Remove images.
    Rmi(images::RmiArgs),
    /// Add names to an image.
    Tag(images::TagArgs),
    /// Remove names from an image.
    Untag(images::UntagArgs),
    /// Write images to an archive (docker-archive, oci-archive, oci-dir).
    Save(images::SaveArgs),
    /// Read images from an archive.
    Load(images::LoadArgs),
    /// Make an image from a root file system tarball.
    Import(images::ImportArgs),
    /// Show an image's layers and how they were made.
    History(images::HistoryArgs),
    /// Store credentials for a registry.
    Login(images::LoginArgs),
    /// Remove stored credentials for a registry.
    Logout(images::LogoutArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// Inspect manifests and indexes in registries.
    #[command(subcommand)]
    Manifest(images::ManifestCommand),
    #[command(flatten)]
    Containers(containers::ContainerCommand),
    /// Run a command inside the rootless user namespace (as `podman unshare`).
    Unshare(rootless::UnshareArgs),
    /// Manage berth itself.
    #[command(subcommand)]
    System(rootless::SystemCommand),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(crate::volumes::VolumeCommand),
    /// Change the resource limits of a running container.
    Update(crate::part2::UpdateArgs),
    /// Show containers' resource usage.
    Stats(crate::part2::StatsArgs),
    /// Show a container's processes.
    Top(crate::part2::TopArgs),
    /// Show the events journal: create, start, died, stop, remove.
    Events(crate::part2::EventsArgs),
    /// Show how berth and this host are set up.
    Info(crate::part2::InfoArgs),
    /// Copy files between a container and the host.
    Cp(crate::part2::CpArgs),
    /// Show what a container changed in its file system.
    Diff(crate::part2::DiffArgs),
    /// Write a container's file system as a tar archive.
    Export(crate::part2::ExportArgs),
    /// Manage containers (prune).
    #[command(subcommand)]
    Container(crate::part2::ContainerGroup),
    /// Manage networks.
    #[command(subcommand)]
    Network(crate::network::NetworkCommand),
    /// List a container's published ports.
    Port(crate::network::PortArgs),
    /// Run a container's healthcheck.
    #[command(subcommand)]
    Healthcheck(crate::duties::HealthcheckCommand),
}

impl Cli {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        tracing::debug!(command = ?self.command, root = ?self.global.root, "running");
        match self.command {
            Command::Version => {
                println!("berth version {}", env!("CARGO_PKG_VERSION"));
                Ok(ExitCode::SUCCESS)
            }
            Command::Build(args) => crate::build::build(&self.global, args),
            Command::Commit(args) => crate::commit::commit(&self.global, args),
            Command::Pull(args) => images::pull(&self.global, args),
            Command::Push(args) => images::push(&self.global, args),
            Command::Images(args) => images::images(&self.global, args),
            Command::Rmi(args) => images::rmi(&self.global, args),
            Command::Tag(args) => images::tag(&self.global, args),
            Command::Untag(args) => images::untag(&self.global, args),
            Command::Save(args) => images::save(&self.global, args),
            Command::Load(args) => images::load(&self.global, args),
            Command::Import(args) => images::import(&self.global, args),
            Command::History(args) => images::history(&self.global, args),
            Command::Login(args) => images::login(&self.global, args),
            Command::Logout(args) => images::logout(&self.global, args),
            Command::Image(command) => images::image(&self.global, command),
            Command::Manifest(command) => images::manifest(&self.global, command),
            Command::Containers(command) => containers::dispatch(&self.global, command),
            Command::Unshare(args) => rootless::unshare(&self.global, args),
            Command::System(command) => rootless::system(&self.global, command),
            Command::Volume(command) => crate::volumes::volume(&self.global, command),
            Command::Update(args) => crate::part2::update(&self.global, args),
            Command::Stats(args) => crate::part2::stats(&self.global, args),
            Command::Top(args) => crate::part2::top(&self.global, args),
            Command::Events(args) => crate::part2::events(&self.global, args),
            Command::Info(args) => crate::part2::info(&self.global, args),
            Command::Cp(args) => crate::part2::cp(&self.global, args),
            Command::Diff(args) => crate::part2::diff(&self.global, args),
            Command::Export(args) => crate::part2::export(&self.global, args),
            Command::Container(command) => crate::part2::container(&self.global, command),
            Command::Network(command) => crate::network::dispatch(&self.global, command),
            Command::Port(args) => crate::network::port(&self.global, args),
            Command::Healthcheck(command) => crate::duties::healthcheck(&self.global, command),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Each subcommand's path and about, recursively, in `command` as it stands.
    fn abouts(command: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        for sub in command.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            out.push((path.clone(), sub.get_about().map(|a| a.to_string()).unwrap_or_default()));
            abouts(sub, &path, out);
        }
    }

    #[test]
    fn deferred_flags_keep_each_commands_help_line() {
        // The commands' own flags are made only when a command is parsed (defer = true), after
        // the line that `berth --help` shows: nothing made then may replace that line.
        let mut command = Cli::command();
        let mut before = Vec::new();
        abouts(&command, "berth", &mut before);
        command.build();
        let mut after = Vec::new();
        abouts(&command, "berth", &mut after);
        let top: Vec<&(String, String)> =
            before.iter().filter(|(p, _)| p.matches(' ').count() == 1).collect();
        assert!(top.len() > 30, "{top:?}");
        for (path, about) in &top {
            assert!(!about.is_empty(), "{path} has no help line");
        }
        // Building adds clap's own `help` subcommands; every command there before keeps its line.
        let changed: Vec<_> = before.iter().filter(|entry| !after.contains(entry)).collect();
        assert!(changed.is_empty(), "help lines changed once built: {changed:?}");
        assert!(after
            .iter()
            .any(|(p, a)| p == "berth run" && a == "Run a command in a new container"));
    }
}
