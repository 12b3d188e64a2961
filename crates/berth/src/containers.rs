//! The container commands — run, create, start, stop, restart, kill, rm, ps, logs, exec,
//! attach, inspect, wait, pause, unpause, rename — with Podman's names, flags, columns and
//! exit codes, over berth-engine's container operations.
//!
//! Exit codes: a container's own code passes through (128+N for signal N); 125 is berth's
//! own failure, 126 a container command that cannot be invoked, 127 one that is not found.

use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_engine::containers::lifecycle::{StopOutcome, ENGINE_FAILURE};
use berth_engine::containers::logs::{parse_time, LogOptions, LogReader, Stream};
use berth_engine::containers::ops::{
    prepare_network, Containers, ExecRequest, NewRun, OpsError, Process,
};
use berth_engine::containers::{
    select, ContainerSummary, CreateOptions, InspectContainer, PsFilter,
};
use berth_engine::context::EngineContext;
use berth_engine::images::pull::RegistryOptions;
use berth_engine::images::{Image, Images};
use berth_engine::monitor::client::{session, RawTerminal, SessionEnd, SessionOptions};
use berth_engine::monitor::{self, AttachIo};
use berth_engine::spec::options::parse_signal;
use berth_engine::spec::RunOptions;
use berth_engine::state::{ContainerState, Timestamp};
use clap::{ArgAction, Args, Subcommand};
use serde::Serialize;

use crate::cli::GlobalOptions;
use crate::format::{write_table, Format};

/// The container commands, flattened into berth's top level.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ContainerCommand {
    /// Run a command in a new container.
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Create a container without starting it.
    #[command(disable_help_flag = true)]
    Create(RunArgs),
    /// Start one or more containers.
    Start(StartArgs),
    /// Stop one or more containers.
    Stop(StopArgs),
    /// Restart one or more containers.
    Restart(StopArgs),
    /// Send a signal to one or more containers.
    Kill(KillArgs),
    /// Remove one or more containers.
    Rm(RmArgs),
    /// List containers.
    Ps(PsArgs),
    /// Show a container's output.
    Logs(LogsArgs),
    /// Run a process in a running container.
    Exec(ExecArgs),
    /// Attach to a running container's stdio.
    Attach(AttachArgs),
    /// Show containers' configuration and state as JSON.
    Inspect(InspectArgs),
    /// Wait for containers to exit and print their exit codes.
    Wait(NamesArgs),
    /// Freeze all processes of one or more containers.
    Pause(NamesArgs),
    /// Thaw all processes of one or more containers.
    Unpause(NamesArgs),
    /// Give a container a new name.
    Rename(RenameArgs),
}

// The flags of `run` and `create`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Run in the background and print the container's id.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the container a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// The container's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (KEY=VALUE, KEY to take berth's, PREFIX* for all matching).
    #[arg(short, long = "env", value_name = "ENV")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// The working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// The user (and group) to run as: NAME|UID[:GROUP|GID].
    #[arg(short, long)]
    pub user: Option<String>,
    /// Add a supplementary group.
    #[arg(long, value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Replace the image's entrypoint (a command or a JSON array).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// The container's hostname.
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Mount the root file system read-only.
    #[arg(long)]
    pub read_only: bool,
    /// With --read-only, mount tmpfs on /run, /tmp and /var/tmp.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    pub read_only_tmpfs: bool,
    /// Mount a tmpfs: DEST[:OPTIONS].
    #[arg(long, value_name = "TMPFS")]
    pub tmpfs: Vec<String>,
    /// Add a capability (or ALL).
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (or ALL).
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// seccomp=FILE|unconfined, no-new-privileges[=true|false].
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Turn off the confinement: all capabilities, no seccomp filter, no masked or read-only
    /// paths, writable /sys, all host devices. The namespaces stay.
    #[arg(long)]
    pub privileged: bool,
    /// The network: bridge (the default rootful), pasta (the default rootless), slirp4netns,
    /// none, host, NAME[:ip=IP,mac=MAC,alias=NAME], container:ID or ns:PATH; repeat it to
    /// join several networks.
    #[arg(long, visible_alias = "net", value_name = "MODE")]
    pub network: Vec<String>,
    /// Publish a port: [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp], ranges allowed.
    #[arg(short, long, value_name = "PORT")]
    pub publish: Vec<String>,
    /// Publish every port the image EXPOSEs on a free host port.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// A DNS server for the container's resolv.conf (repeatable).
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// A DNS search domain (repeatable; `.` for none).
    #[arg(long, value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// A resolv.conf option (repeatable).
    #[arg(long, value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// An /etc/hosts entry HOST:IP (repeatable).
    #[arg(long, value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Another name of the container on its network (repeatable).
    #[arg(long, value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// When to pull the image: always, missing or never.
    #[arg(long, value_name = "POLICY", default_value = "missing")]
    pub pull: String,
    /// The platform to pull (OS/ARCH[/VARIANT]).
    #[arg(long)]
    pub platform: Option<String>,
    /// Set a label: KEY=VALUE.
    #[arg(short, long, value_name = "LABEL")]
    pub label: Vec<String>,
    /// Set an annotation: KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
    /// Write the container's id to this file.
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<PathBuf>,
    /// Remove a container of the same --name first.
    #[arg(long)]
    pub replace: bool,
    /// Forward signals berth receives to the container.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    pub sig_proxy: bool,
    /// The keys that detach from the container: ctrl-X or a character, comma-separated
    /// (default ctrl-p,ctrl-q; empty: none).
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// The signal that stops the container.
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds to wait for the stop signal before SIGKILL.
    #[arg(long, value_name = "SECONDS")]
    pub stop_timeout: Option<u32>,
    /// Set a resource limit: NAME=SOFT[:HARD].
    #[arg(long, value_name = "ULIMIT")]
    pub ulimit: Vec<String>,
    /// Do not verify TLS for the pull.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Resource and mount flags (issue 7).
    #[command(flatten)]
    pub part2: crate::part2::Part2RunArgs,
    /// Restart, healthcheck and log flags (issue 7, the monitor's duties).
    #[command(flatten)]
    pub duties: crate::duties::DutyArgs,
    /// The image, then the command and its arguments. Flags end at the image, as in Podman:
    /// `run IMAGE -c x` passes `-c x` to the container.
    #[arg(
        value_name = "IMAGE [COMMAND [ARG...]]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    image_and_command: Vec<String>,
    /// The image (the first of `image_and_command`).
    #[arg(skip)]
    pub image: String,
    /// The command and its arguments (the rest of `image_and_command`).
    #[arg(skip)]
    pub command: Vec<String>,
}

impl RunArgs {
    /// Splits the positional arguments into the image and the command.
    fn split_positionals(mut self) -> Self {
        let mut rest = std::mem::take(&mut self.image_and_command).into_iter();
        self.image = rest.next().unwrap_or_default();
        self.command = rest.collect();
        self
    }
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach to the container's output and wait for it.
    #[arg(short, long)]
    pub attach: bool,
    /// With --attach, attach stdin too.
    #[arg(short, long)]
    pub interactive: bool,
    /// The keys that detach from the container (default ctrl-p,ctrl-q; empty: none).
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL (default: the container's stop timeout).
    #[arg(short = 't', long = "time", visible_alias = "timeout", value_name = "SECONDS")]
    pub time: Option<u32>,
    /// Every running container.
    #[arg(short, long)]
    pub all: bool,
    /// Do not fail on unknown containers.
    #[arg(short, long)]
    pub ignore: bool,
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// The signal to send.
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill running containers first.
    #[arg(short, long)]
    pub force: bool,
    /// Remove the containers' anonymous volumes too (named volumes stay).
    #[arg(short, long)]
    pub volumes: bool,
    /// Every container.
    #[arg(short, long)]
    pub all: bool,
    /// Seconds to wait for a stop before the kill (with --force).
    #[arg(short = 't', long = "time", value_name = "SECONDS")]
    pub time: Option<u32>,
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers, not only running ones.
    #[arg(short, long)]
    pub all: bool,
    /// Print ids only.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate ids and commands.
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter: status=, name=, label=, ancestor=, id=.
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Show the n last created containers.
    #[arg(short = 'n', long, value_name = "N")]
    pub last: Option<usize>,
    /// Show the latest container (as --last 1).
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// A Go template, or json.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow the log.
    #[arg(short, long)]
    pub follow: bool,
    /// Lines since a time or duration.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Lines until a time or duration.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    /// The number of last lines to show (-1: all).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub tail: Option<i64>,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Set an environment variable.
    #[arg(short, long = "env", value_name = "ENV")]
    pub env: Vec<String>,
    /// The working directory.
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// The user.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Extended privileges (not yet).
    #[arg(long)]
    pub privileged: bool,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not attach stdin.
    #[arg(long)]
    pub no_stdin: bool,
    /// Forward signals to the container.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    pub sig_proxy: bool,
    /// The keys that detach from the container (default ctrl-p,ctrl-q; empty: none).
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Go template, or json.
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    pub container: String,
    pub name: String,
}

/// Runs a container command.
pub fn dispatch(global: &GlobalOptions, command: ContainerCommand) -> Result<ExitCode> {
    match command {
        ContainerCommand::Run(args) => run(global, args.split_positionals(), true),
        ContainerCommand::Create(args) => run(global, args.split_positionals(), false),
        ContainerCommand::Start(args) => start(global, args),
        ContainerCommand::Stop(args) => stop(global, args, false),
        ContainerCommand::Restart(args) => stop(global, args, true),
        ContainerCommand::Kill(args) => kill(global, args),
        ContainerCommand::Rm(args) => rm(global, args),
        ContainerCommand::Ps(args) => ps(global, args),
        ContainerCommand::Logs(args) => logs(global, args),
        ContainerCommand::Exec(args) => exec(global, args),
        ContainerCommand::Attach(args) => attach(global, args),
        ContainerCommand::Inspect(args) => inspect(global, args),
        ContainerCommand::Wait(args) => wait(global, args),
        ContainerCommand::Pause(args) => pause(global, args, true),
        ContainerCommand::Unpause(args) => pause(global, args, false),
        ContainerCommand::Rename(args) => rename(global, args),
    }
}

/// The engine context of this process: its roots and whether it is rootless.
pub fn context(global: &GlobalOptions) -> Result<EngineContext> {
    let root = crate::images::root_dir(global)?;
    // The host uid: inside rootless berth's user namespace the effective uid is 0.
    let uid = berth_engine::userns::host_ids().uid;
    let runroot = match &global.runroot {
        Some(dir) => dir.clone(),
        None if uid == 0 => PathBuf::from("/run/berth"),
        None => match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(dir) => PathBuf::from(dir).join("berth"),
            None => PathBuf::from(format!("/tmp/berth-{uid}")),
        },
    };
    Ok(EngineContext::detect(&root, &runroot))
}

fn open(global: &GlobalOptions) -> Result<Containers> {
    let ctx = context(global)?;
    Containers::open(&ctx).context("opening the container store")
}

/// Prints a failure of an operation as every berth error is printed, and returns its code.
fn report(err: OpsError) -> ExitCode {
    let code = err.exit_code();
    let err = anyhow::Error::new(err);
    let _ = writeln!(io::stderr(), "berth: {}", crate::report::one_line(&err));
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// Checks the flags that cannot go together, before anything is looked up or created.
fn check_run_flags(args: &RunArgs) -> Result<()> {
    if args.replace && args.name.is_none() {
        bail!("cannot replace container without --name being set");
    }
    if !matches!(args.pull.as_str(), "always" | "missing" | "never" | "newer") {
        bail!("invalid pull policy {:?}: must be always, missing or never", args.pull);
    }
    if args.pull == "newer" {
        bail!("--pull newer is not supported yet");
    }
    detach_keys(args.detach_keys.as_deref())?;
    if let Some(path) = &args.cidfile {
        if path.exists() {
            bail!("container id file {} exists: remove it or use another", path.display());
        }
    }
    args.duties.validate(args.rm)?;
    Ok(())
}

/// A `--detach-keys` value, parsed (`None`: the default).
fn detach_keys(value: Option<&str>) -> Result<Option<Vec<u8>>> {
    value.map(|v| monitor::detach::parse(v).map_err(anyhow::Error::msg)).transpose()
}

/// The image for `run`/`create`, by `--pull`.
fn resolve_image(images: &Images, args: &RunArgs) -> Result<Image> {
    let pull = |images: &Images| -> Result<Image> {
        let options = RegistryOptions {
            tls_verify: args.tls_verify,
            platform: match &args.platform {
                Some(p) => Some(p.parse().context("--platform")?),
                None => None,
            },
            ..Default::default()
        };
        Ok(images.pull(&args.image, &options, &|_| {})?)
    };
    match args.pull.as_str() {
        "always" => pull(images),
        "never" => Ok(images.find(&args.image)?),
        _ => match images.find(&args.image) {
            Ok(image) => Ok(image),
            Err(berth_engine::images::ImageError::NotFound(_)) => pull(images),
            Err(e) => Err(e.into()),
        },
    }
}

/// The network flags as the engine's networking takes them.
fn networking(args: &RunArgs) -> berth_engine::network::engine::ContainerNetworkOptions {
    berth_engine::network::engine::ContainerNetworkOptions {
        network: args.network.clone(),
        network_aliases: args.network_alias.clone(),
        publish: args.publish.clone(),
        publish_all: args.publish_all,
        dns: args.dns.clone(),
        dns_search: args.dns_search.clone(),
        dns_option: args.dns_option.clone(),
        add_host: args.add_host.clone(),
        bridge_networks: None,
    }
}

fn run_options(args: &RunArgs) -> RunOptions {
    RunOptions {
        name: args.name.clone(),
        command: args.command.clone(),
        env: args.env.clone(),
        env_files: args.env_file.clone(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        group_add: args.group_add.clone(),
        entrypoint: args.entrypoint.clone(),
        hostname: args.hostname.clone(),
        read_only: args.read_only,
        read_only_tmpfs: args.read_only_tmpfs,
        tmpfs: args.tmpfs.clone(),
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        security_opt: args.security_opt.clone(),
        privileged: args.privileged,
        // The spec's choice (none, host, or berth's networking) follows the first; the
        // networking checks that the rest go with it.
        network: args.network.first().cloned(),
        networking: networking(args),
        tty: args.tty,
        interactive: args.interactive,
        labels: args.label.clone(),
        annotations: args.annotation.clone(),
        stop_signal: args.stop_signal.clone(),
        stop_timeout: args.stop_timeout,
        ulimits: args.ulimit.clone(),
        resources: args.part2.resources(),
        volumes: args.part2.volumes(),
        init: args.part2.init(),
        duties: args.duties.options(),
    }
}

/// `run` and `create`.
fn run(global: &GlobalOptions, args: RunArgs, start_it: bool) -> Result<ExitCode> {
    check_run_flags(&args)?;
    prepare_network(&networking(&args), berth_engine::userns::host_ids().uid != 0)?;
    let ctx = context(global)?;
    let images = Images::open(&ctx.root)
        .with_context(|| format!("opening the image store in {}", ctx.root.display()))?;
    let image = resolve_image(&images, &args)?;
    let mut containers = Containers::open(&ctx).context("opening the container store")?;
    if args.replace {
        if let Some(name) = &args.name {
            if containers.store().lookup(name).is_ok() {
                containers.remove(name, true)?;
            }
        }
    }
    let new = NewRun {
        options: run_options(&args),
        auto_remove: args.rm,
        create_command: std::env::args().collect(),
        image_name: image_display_name(&image, &args.image),
        keep_mounted: start_it,
    };
    let record = containers.create(&images, &image, &new)?;
    drop(images);
    if let Some(path) = &args.cidfile {
        std::fs::write(path, &record.id)
            .with_context(|| format!("writing the container id to {}", path.display()))?;
    }
    if !start_it {
        println!("{}", record.id);
        return Ok(ExitCode::SUCCESS);
    }
    if args.detach {
        return match containers.start(&record.id, None) {
            Ok(_) => {
                println!("{}", record.id);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                if args.rm {
                    containers.remove_after_failed_start(&record.id);
                }
                Ok(report(e))
            }
        };
    }
    if Containers::can_run_here(&record, args.sig_proxy) {
        return Ok(run_here(&mut containers, &record.id));
    }
    let attached = Attached {
        tty: args.tty,
        interactive: args.interactive,
        sig_proxy: args.sig_proxy,
        detach_keys: detach_keys(args.detach_keys.as_deref())?,
    };
    foreground(&mut containers, &record.id, &attached, args.rm)
}

/// How a foreground session is attached.
struct Attached {
    tty: bool,
    interactive: bool,
    sig_proxy: bool,
    detach_keys: Option<Vec<u8>>,
}

/// A foreground `run --rm` without a pty or stdin: this process watches the container itself
/// instead of starting a monitor for it (the same log, signals and exit code, less start-up).
fn run_here(containers: &mut Containers, id: &str) -> ExitCode {
    let stdout = io::stdout();
    let stderr = io::stderr();
    let io = AttachIo { stdin: None, stdout: stdout.as_fd(), stderr: stderr.as_fd() };
    match containers.run_here(id, io) {
        Ok(code) => exit(code),
        Err(e) => {
            containers.remove_after_failed_start(id);
            report(e)
        }
    }
}

/// Starts container `id` attached to this terminal and waits for it.
fn foreground(
    containers: &mut Containers,
    id: &str,
    attached: &Attached,
    auto_remove: bool,
) -> Result<ExitCode> {
    let Attached { tty, interactive, sig_proxy, .. } = *attached;
    let stdin = io::stdin();
    let stdout = io::stdout();
    let stderr = io::stderr();
    let io = AttachIo {
        stdin: interactive.then(|| stdin.as_fd()),
        stdout: stdout.as_fd(),
        stderr: if tty { stdout.as_fd() } else { stderr.as_fd() },
    };
    let raw =
        (tty && interactive && stdin.is_terminal()).then(|| RawTerminal::enter(stdin.as_fd()));
    let (_, started) = match containers.start(id, Some(io)) {
        Ok(s) => s,
        Err(e) => {
            drop(raw);
            if auto_remove {
                containers.remove_after_failed_start(id);
            }
            return Ok(report(e));
        }
    };
    let terminal = (tty && stdin.is_terminal()).then(|| stdin.as_fd());
    let end = session(
        &started.sock,
        SessionOptions {
            pid: started.pid,
            terminal,
            sig_proxy: sig_proxy && !tty,
            detach_keys: attached.detach_keys.as_deref(),
        },
    )
    .context("attached session")?;
    drop(raw);
    match end {
        SessionEnd::Exited(code) => {
            monitor::reap(started.monitor_pid);
            Ok(exit(code))
        }
        SessionEnd::Detached => Ok(ExitCode::SUCCESS),
        SessionEnd::MonitorGone => {
            let record = containers.lookup(id).ok();
            Ok(exit(record.and_then(|r| r.exit_code).unwrap_or(ENGINE_FAILURE)))
        }
    }
}

/// The image name `ps` shows: the name the user typed as stored, else the id.
fn image_display_name(image: &Image, typed: &str) -> String {
    let names = &image.record.names;
    names
        .iter()
        .find(|n| n.ends_with(typed) || n.ends_with(&format!("{typed}:latest")))
        .or(names.first())
        .cloned()
        .unwrap_or_else(|| image.id().hex().to_owned())
}

fn start(global: &GlobalOptions, args: StartArgs) -> Result<ExitCode> {
    let mut containers = open(global)?;
    if args.attach {
        if args.containers.len() != 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let record = containers.lookup(&args.containers[0])?;
        let options = CreateOptions::of(&record)?;
        let attached = Attached {
            tty: options.run.tty,
            interactive: args.interactive && options.run.interactive,
            sig_proxy: true,
            detach_keys: detach_keys(args.detach_keys.as_deref())?,
        };
        return foreground(&mut containers, &record.id, &attached, false);
    }
    let mut code = ExitCode::SUCCESS;
    for query in &args.containers {
        match containers.start(query, None) {
            Ok(_) => println!("{query}"),
            Err(OpsError::BadState { state: ContainerState::Running, .. }) => println!("{query}"),
            Err(e) => code = report(e),
        }
    }
    Ok(code)
}

fn stop(global: &GlobalOptions, args: StopArgs, restart: bool) -> Result<ExitCode> {
    let mut containers = open(global)?;
    let queries = if args.all {
        containers.list()?.into_iter().filter(|r| r.state.has_process()).map(|r| r.id).collect()
    } else if args.containers.is_empty() {
        bail!(
            "{} needs at least one container (or --all)",
            if restart { "restart" } else { "stop" }
        );
    } else {
        args.containers.clone()
    };
    let mut code = ExitCode::SUCCESS;
    for query in &queries {
        let started = std::time::Instant::now();
        match containers.stop(query, args.time) {
            Ok((_, outcome)) => {
                if let StopOutcome::Killed { warning } = outcome {
                    eprintln!("WARN[{:04}] {warning}", started.elapsed().as_secs());
                }
                if restart {
                    if let Err(e) = containers.start(query, None) {
                        code = report(e);
                        continue;
                    }
                }
                println!("{query}");
            }
            Err(e) if args.ignore && e.is_no_such_container() => {}
            Err(e) => code = report(e),
        }
    }
    Ok(code)
}

fn kill(global: &GlobalOptions, args: KillArgs) -> Result<ExitCode> {
    let signal = parse_signal(args.signal.trim_start_matches("SIG"))
        .or_else(|_| parse_signal(&args.signal))?;
    let mut containers = open(global)?;
    let mut code = ExitCode::SUCCESS;
    for query in &args.containers {
        match containers.kill(query, signal) {
            Ok(_) => println!("{query}"),
            Err(e) => code = report(e),
        }
    }
    Ok(code)
}

fn rm(global: &GlobalOptions, args: RmArgs) -> Result<ExitCode> {
    let mut containers = open(global)?;
    let queries = if args.all {
        containers.list()?.into_iter().map(|r| r.id).collect()
    } else if args.containers.is_empty() {
        bail!("rm needs at least one container (or --all)");
    } else {
        args.containers.clone()
    };
    let mut code = ExitCode::SUCCESS;
    for query in &queries {
        if args.force {
            if let Some(t) = args.time {
                let _ = containers.stop(query, Some(t));
            }
        }
        match containers.remove(query, args.force) {
            Ok(removed) => {
                // -v: the container's anonymous volumes go too (issue 7).
                if args.volumes {
                    let root = &containers.context().root;
                    berth_engine::volumes::remove_anonymous(root, &removed).with_context(|| {
                        format!("removing the anonymous volumes of container {query}")
                    })?;
                }
                println!("{}", if args.all { &removed.id } else { query })
            }
            Err(e) => code = report(e),
        }
    }
    Ok(code)
}

/// A `ps` row for templates and the table: Podman's fields as strings.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PsRow {
    #[serde(rename = "ID")]
    id: String,
    image: String,
    command: String,
    created_at: String,
    running_for: String,
    status: String,
    state: String,
    ports: String,
    names: String,
    labels: std::collections::BTreeMap<String, String>,
    exit_code: i32,
    pid: i32,
    #[serde(rename = "ImageID")]
    image_id: String,
    auto_remove: bool,
    created: i64,
}

fn ps(global: &GlobalOptions, args: PsArgs) -> Result<ExitCode> {
    let filter = PsFilter::parse(&args.filter)?;
    let mut containers = open(global)?;
    let records = containers.list()?;
    let last = if args.latest { Some(1) } else { args.last };
    let records = select(records, args.all, last, &filter);
    let now = Timestamp::now();
    let mut summaries: Vec<ContainerSummary> =
        records.iter().map(|r| ContainerSummary::from_record(r, now)).collect::<Result<_, _>>()?;
    // The networking engineer's lines: published ports of the running containers.
    let ctx = containers.context();
    let net = berth_engine::network::attach::NetworkPaths::new(&ctx.root, &ctx.runroot);
    let statuses = berth_engine::network::attach::statuses(&net)?;
    for s in &mut summaries {
        if let Some(status) = statuses.get(&s.id) {
            s.ports = Some(berth_engine::network::report::ports_json(&status.ports));
            s.networks = status.networks.iter().map(|n| n.name.clone()).collect();
        }
    }
    let mut out = io::stdout().lock();
    if args.quiet {
        for s in &summaries {
            let id = if args.no_trunc { s.id.as_str() } else { s.short_id() };
            writeln!(out, "{id}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.format.as_deref() == Some("json") {
        serde_json::to_writer_pretty(&mut out, &summaries)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<PsRow> = summaries
        .iter()
        .map(|s| {
            let mut command = s.command_line();
            if !args.no_trunc && command.chars().count() > 17 {
                command = command.chars().take(17).collect::<String>() + "...";
            }
            PsRow {
                id: if args.no_trunc { s.id.clone() } else { s.short_id().to_owned() },
                image: s.image.clone(),
                command,
                created_at: s.created_at_go(),
                running_for: s.created_at.clone(),
                status: s.status.clone(),
                state: s.state_title(),
                ports: statuses
                    .get(&s.id)
                    .map(|n| berth_engine::network::report::ports_column(&n.ports))
                    .unwrap_or_default(),
                names: s.names_joined(),
                labels: s.labels.clone(),
                exit_code: s.exit_code,
                pid: s.pid,
                image_id: s.image_id.clone(),
                auto_remove: s.auto_remove,
                created: s.created,
            }
        })
        .collect();
    if let Some(source) = &args.format {
        Format::parse(source)?.print_all(&rows, &mut out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table =
        vec![["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
            .map(str::to_owned)
            .to_vec()];
    for r in rows {
        table.push(vec![r.id, r.image, r.command, r.running_for, r.status, r.ports, r.names]);
    }
    write_table(&table, &mut out)?;
    Ok(ExitCode::SUCCESS)
}

fn logs(global: &GlobalOptions, args: LogsArgs) -> Result<ExitCode> {
    let now = Timestamp::now();
    let opts = LogOptions {
        since: args.since.as_deref().map(|v| parse_time("--since", v, now)).transpose()?,
        until: args.until.as_deref().map(|v| parse_time("--until", v, now)).transpose()?,
        tail: args.tail.filter(|n| *n >= 0).map(|n| n as usize),
        timestamps: args.timestamps,
    };
    let mut containers = open(global)?;
    let record = containers.lookup(&args.container)?;
    let options = CreateOptions::of(&record)?;
    let log_config = &options.duties.log;
    if log_config.driver == berth_engine::containers::log_files::LogDriver::None {
        bail!(berth_engine::containers::log_files::NONE_DRIVER_MESSAGE);
    }
    let path = options.log_path.clone().unwrap_or_else(|| options.userdata_dir.join("ctr.log"));
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    let emit = |lines: Vec<_>, out: &mut io::StdoutLock, err: &mut io::StderrLock| {
        for line in lines {
            let bytes = opts.render(&line);
            let r = match line.stream {
                Stream::Stdout => out.write_all(&bytes),
                Stream::Stderr => err.write_all(&bytes),
            };
            r?;
        }
        out.flush()?;
        io::Result::Ok(())
    };
    let mut reader = match LogReader::open_with(&path, log_config) {
        Ok(r) => r,
        Err(_) if !path.exists() => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e.into()),
    };
    // A monitor that waits to restart the container (--restart) writes to the same log again.
    let live = |c: &mut Containers| {
        c.lookup(&record.id).map(|r| {
            r.state.has_process()
                || r.state == ContainerState::Configured
                || monitor::monitor_alive(&options.userdata_dir, &record.id)
        })
    };
    if !args.follow {
        let lines = opts.select(reader.read_new(true)?);
        emit(lines, &mut out, &mut err)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Follow: --tail applies to what is there now; then every new line until the exit.
    let first = opts.select(reader.read_new(false)?);
    emit(first, &mut out, &mut err)?;
    let follow_opts = LogOptions { tail: None, ..opts.clone() };
    let changes = LogChanges::watch(&path);
    loop {
        let still = live(&mut containers).unwrap_or(false);
        let lines: Vec<_> =
            reader.read_new(!still)?.into_iter().filter(|l| follow_opts.wants(l)).collect();
        emit(lines, &mut out, &mut err)?;
        if !still {
            return Ok(ExitCode::SUCCESS);
        }
        changes.wait();
    }
}

/// Wake-ups for `logs -f`: inotify on the log file, so a new line shows at once, and a
/// timeout, so the container's exit (which may write nothing) is seen too. Without inotify
/// (no instances left), a 50 ms poll.
struct LogChanges {
    inotify: Option<OwnedFd>,
}

impl LogChanges {
    /// How long a wait lasts when nothing is written: the delay in noticing a quiet exit.
    const TIMEOUT_MS: i32 = 250;

    fn watch(path: &std::path::Path) -> Self {
        use rustix::fs::inotify;
        let inotify = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .ok()
            .filter(|fd| {
                let flags = inotify::WatchFlags::MODIFY | inotify::WatchFlags::CLOSE_WRITE;
                inotify::add_watch(fd, path, flags).is_ok()
            });
        Self { inotify }
    }

    /// Waits until the log changes or the timeout passes.
    fn wait(&self) {
        let Some(fd) = &self.inotify else {
            std::thread::sleep(Duration::from_millis(50));
            return;
        };
        monitor::fds::poll_one(fd.as_raw_fd(), libc::POLLIN, Self::TIMEOUT_MS);
        // Drain the events: only their arrival matters.
        let mut buf = [0u8; 4096];
        while matches!(monitor::fds::read(fd.as_fd(), &mut buf), Ok(n) if n > 0) {}
    }
}

fn exec(global: &GlobalOptions, args: ExecArgs) -> Result<ExitCode> {
    let mut containers = open(global)?;
    let record = containers.lookup(&args.container)?;
    let req = ExecRequest {
        command: args.command.clone(),
        env: args.env.clone(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        tty: args.tty,
        detach: args.detach,
        privileged: args.privileged,
    };
    let process = match containers.exec_process(&record, &req) {
        Ok(p) => p,
        Err(e) => return Ok(report(e)),
    };
    if args.detach || !args.interactive {
        // Its stdin reads /dev/null, as Podman's without -i.
        if let Ok(null) = std::fs::File::open("/dev/null") {
            let _ = monitor::fds::dup_onto(&null, 0);
        }
    }
    if args.detach {
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            let _ = monitor::fds::dup_onto(&null, 1);
            let _ = monitor::fds::dup_onto(&null, 2);
        }
    }
    if !args.tty || args.detach {
        let process = if args.detach {
            let mut p = process;
            p.set_terminal(Some(false));
            p
        } else {
            process
        };
        return Ok(match containers.exec(&record, process, args.detach, None) {
            Ok(code) => exit(code),
            Err(e) => report(e),
        });
    }
    exec_tty(&containers, &record, process, args.interactive)
}

/// `exec -t`: a forked child runs the runtime's exec (which waits for the process) while
/// this process copies between the terminal and the pty master it receives.
fn exec_tty(
    containers: &Containers,
    record: &berth_engine::state::ContainerRecord,
    process: Process,
    interactive: bool,
) -> Result<ExitCode> {
    let dir = tempfile::Builder::new().prefix("berth-exec-").tempdir()?;
    let socket = dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket)?;
    // SAFETY: berth is single-threaded here (no runtime, no helper threads); the child only
    // runs the exec and exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        bail!("forking for exec: {}", io::Error::last_os_error());
    }
    if child == 0 {
        drop(listener);
        let code = match containers.exec(record, process, false, Some(socket.clone())) {
            Ok(code) => code,
            Err(e) => {
                let _ = writeln!(io::stderr(), "berth: {e}");
                e.exit_code()
            }
        };
        // SAFETY: _exit ends the forked child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let master = receive_master(&listener, child);
    let code = match master {
        Some(master) => {
            let stdin = io::stdin();
            let raw = stdin.is_terminal().then(|| RawTerminal::enter(stdin.as_fd()));
            if let Some((rows, cols)) = berth_engine::monitor::client::window_size(stdin.as_fd()) {
                let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
                // SAFETY: TIOCSWINSZ reads one winsize, valid for the call.
                unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
            }
            pump_pty(&master, interactive.then(|| stdin.as_fd()), io::stdout().as_fd());
            drop(raw);
            wait_child(child)
        }
        None => wait_child(child),
    };
    Ok(exit(code))
}

fn receive_master(listener: &std::os::unix::net::UnixListener, child: i32) -> Option<OwnedFd> {
    listener.set_nonblocking(true).ok()?;
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).ok()?;
                let mut buf = [0u8; 64];
                let (_, mut fds) = monitor::fds::recv_with_fds(conn.as_fd(), &mut buf).ok()?;
                return fds.pop();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut status = 0;
                // SAFETY: WNOHANG waitpid on our own child; the status is only peeked.
                let done =
                    unsafe { libc::waitpid(child, &mut status, libc::WNOHANG | libc::WNOWAIT) };
                if done == child {
                    return None;
                }
                monitor::fds::poll_one(listener.as_raw_fd(), libc::POLLIN, 50);
            }
            Err(_) => return None,
        }
    }
}

/// Copies the terminal to the pty and the pty to stdout until the pty closes.
fn pump_pty(master: &OwnedFd, stdin: Option<BorrowedFd<'_>>, stdout: BorrowedFd<'_>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut stdin = stdin;
    loop {
        let mut pfds =
            vec![libc::pollfd { fd: master.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        if let Some(fd) = stdin {
            pfds.push(libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        if monitor::fds::poll(&mut pfds, -1).is_err() {
            return;
        }
        if pfds[0].revents != 0 {
            match monitor::fds::read(master.as_fd(), &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if monitor::fds::write_all(stdout, &buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
        if pfds.len() > 1 && pfds[1].revents != 0 {
            match stdin.map(|fd| monitor::fds::read(fd, &mut buf)) {
                Some(Ok(n)) if n > 0 => {
                    let _ = monitor::fds::write_all(master.as_fd(), &buf[..n]);
                }
                _ => stdin = None,
            }
        }
    }
}

fn wait_child(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: waitpid on our own child writes its status into `status`.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    berth_engine::containers::lifecycle::exit_code(status)
}

fn attach(global: &GlobalOptions, args: AttachArgs) -> Result<ExitCode> {
    let keys = detach_keys(args.detach_keys.as_deref())?;
    let mut containers = open(global)?;
    let record = containers.lookup(&args.container)?;
    if record.state != ContainerState::Running {
        bail!(
            "you can only attach to running containers: container {} is {}",
            record.name,
            record.state
        );
    }
    let options = CreateOptions::of(&record)?;
    let tty = options.run.tty;
    let stdin = io::stdin();
    let stdout = io::stdout();
    let stderr = io::stderr();
    let with_stdin = !args.no_stdin && options.run.interactive;
    let io = AttachIo {
        stdin: with_stdin.then(|| stdin.as_fd()),
        stdout: stdout.as_fd(),
        stderr: if tty { stdout.as_fd() } else { stderr.as_fd() },
    };
    let raw = (tty && with_stdin && stdin.is_terminal()).then(|| RawTerminal::enter(stdin.as_fd()));
    let sock = monitor::connect(&options.userdata_dir, io)?;
    let terminal = (tty && stdin.is_terminal()).then(|| stdin.as_fd());
    let end = session(
        &sock,
        SessionOptions {
            pid: record.pid.unwrap_or(0),
            terminal,
            sig_proxy: args.sig_proxy && !tty,
            detach_keys: keys.as_deref(),
        },
    )?;
    drop(raw);
    Ok(match end {
        SessionEnd::Exited(code) => exit(code),
        SessionEnd::Detached => ExitCode::SUCCESS,
        SessionEnd::MonitorGone => exit(
            containers.lookup(&record.id).ok().and_then(|r| r.exit_code).unwrap_or(ENGINE_FAILURE),
        ),
    })
}

fn inspect(global: &GlobalOptions, args: InspectArgs) -> Result<ExitCode> {
    let mut containers = open(global)?;
    let mut docs = Vec::new();
    let ctx = containers.context();
    let net = berth_engine::network::attach::NetworkPaths::new(&ctx.root, &ctx.runroot);
    let rootless = ctx.rootless;
    for query in &args.containers {
        let record = containers.lookup(query)?;
        let mut doc = InspectContainer::from_record(&record)?;
        // The networking engineer's lines: what the running container is connected to, or
        // else the bridge networks its next start joins.
        let status = berth_engine::network::attach::status(&net, &record.id)?;
        doc.network_settings = match &status {
            Some(status) => berth_engine::network::report::network_settings(Some(status)),
            None => {
                let options = berth_engine::containers::CreateOptions::of(&record)?;
                let nets = options.run.networking.bridge_attaches(rootless).unwrap_or_default();
                berth_engine::network::report::configured_network_settings(&nets)
            }
        };
        if let Some(status) = &status {
            doc.host_config.network_mode = status.mode.clone();
            doc.host_config.port_bindings =
                berth_engine::network::report::port_bindings(&status.ports);
        }
        docs.push(doc);
    }
    let mut out = io::stdout().lock();
    match args.format.as_deref() {
        None | Some("json") => {
            serde_json::to_writer_pretty(&mut out, &docs)?;
            writeln!(out)?;
        }
        Some(source) => {
            let format = Format::parse(source)?;
            for doc in &docs {
                writeln!(out, "{}", format.render(doc)?)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn wait(global: &GlobalOptions, args: NamesArgs) -> Result<ExitCode> {
    let mut containers = open(global)?;
    let mut code = ExitCode::SUCCESS;
    for query in &args.containers {
        match containers.wait(query) {
            Ok(exit_code) => println!("{exit_code}"),
            Err(e) => code = report(e),
        }
    }
    Ok(code)
}

fn pause(global: &GlobalOptions, args: NamesArgs, freeze: bool) -> Result<ExitCode> {
    let mut containers = open(global)?;
    let mut code = ExitCode::SUCCESS;
    for query in &args.containers {
        let done = if freeze { containers.pause(query) } else { containers.unpause(query) };
        match done {
            Ok(_) => println!("{query}"),
            Err(e) => code = report(e),
        }
    }
    Ok(code)
}

fn rename(global: &GlobalOptions, args: RenameArgs) -> Result<ExitCode> {
    let mut containers = open(global)?;
    containers.store().rename(&args.container, &args.name)?;
    Ok(ExitCode::SUCCESS)
}
