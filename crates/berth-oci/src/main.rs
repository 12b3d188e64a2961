//! The `berth-oci` command: runc's command line over berth-runtime, so that Podman,
//! containerd and CRI-O can use berth as their OCI runtime.
//!
//! Errors go to stderr as `berth-oci: ...` with the whole cause chain on one line, and, with
//! `--log`, to the log file too — in `--log-format json` as the logrus-shaped lines
//! (`{"level","msg","time"}`) that conmon and containerd read back to report runc's errors.
//! Exit status 1 on error; `run` and `exec` exit with the container process's code.

mod cli;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_runtime::create::{self, CreateOptions, Mode};
use berth_runtime::exec::ExecOptions;
use berth_runtime::state::{self, StateRoot, Status};
use berth_runtime::{cgroups, delete, exec, features, kill, pause, start};
use clap::Parser;
use cli::{Cli, Command, ListFormat, LogFormat};
use oci_spec::runtime::LinuxResources;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match run(&cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            let msg = one_line(&e);
            eprintln!("berth-oci: {msg}");
            if let Some(log) = &cli.log {
                log_error(log, cli.log_format, &msg);
            }
            ExitCode::from(1)
        }
    }
}

/// The cause chain on one line; a cause already quoted by the message above it is skipped.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}

fn init_logging(cli: &Cli) {
    let level = if cli.debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false);
    let file = cli
        .log
        .as_ref()
        .and_then(|p| fs::OpenOptions::new().create(true).append(true).open(p).ok());
    match (file, cli.log_format) {
        (Some(f), LogFormat::Json) => {
            builder.event_format(JsonLine).with_writer(std::sync::Mutex::new(f)).init()
        }
        (Some(f), LogFormat::Text) => builder.with_writer(std::sync::Mutex::new(f)).init(),
        (None, _) => builder.with_writer(std::io::stderr).init(),
    }
}

/// logrus's JSON line shape: {"level":"debug","msg":"...","time":"..."}.
struct JsonLine;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLine
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = String::new();
        use tracing_subscriber::fmt::FormatFields as _;
        ctx.format_fields(tracing_subscriber::fmt::format::Writer::new(&mut fields), event)?;
        let line = serde_json::json!({
            "level": event.metadata().level().to_string().to_lowercase(),
            "msg": fields,
            "time": state::rfc3339(std::time::SystemTime::now()),
        });
        writeln!(writer, "{line}")
    }
}

fn log_error(path: &Path, format: LogFormat, msg: &str) {
    let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) else { return };
    let time = state::rfc3339(std::time::SystemTime::now());
    let line = match format {
        LogFormat::Json => {
            serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
        }
        LogFormat::Text => format!("{time} ERROR {msg}"),
    };
    let _ = writeln!(f, "{line}");
}

fn state_root(cli: &Cli) -> StateRoot {
    StateRoot::new(cli.root.clone().unwrap_or_else(state::default_root))
}

fn rootless(cli: &Cli) -> Result<bool> {
    Ok(match cli.rootless.as_deref() {
        None | Some("auto") => berth_runtime::sys::is_rootless(),
        Some("true") => true,
        Some("false") => false,
        Some(other) => bail!("--rootless: {other:?} is not auto, true or false"),
    })
}

fn check_systemd(cli: &Cli) -> Result<()> {
    if cli.systemd_cgroup && !Path::new("/run/systemd/system").is_dir() {
        bail!(
            "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); \
             drop the flag to use cgroupfs"
        );
    }
    Ok(())
}

fn create_options(cli: &Cli, args: &cli::CreateArgs) -> Result<CreateOptions> {
    Ok(CreateOptions {
        id: args.id.clone(),
        bundle: args.bundle.clone(),
        pid_file: args.pid_file.as_ref().map(|p| absolute(p)),
        console_socket: args.console_socket.clone(),
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        preserve_fds: args.preserve_fds,
        systemd_cgroup: cli.systemd_cgroup,
        rootless: rootless(cli)?,
    })
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

fn run(cli: &Cli) -> Result<i32> {
    let root = state_root(cli);
    match &cli.command {
        Command::Create(args) => {
            check_systemd(cli)?;
            let opts = create_options(cli, args)?;
            create::launch(&root, &opts, Mode::Create)?;
            Ok(0)
        }
        Command::Run { create: args, detach, keep } => {
            check_systemd(cli)?;
            let opts = create_options(cli, args)?;
            let c = create::launch(&root, &opts, Mode::Run)?;
            if *detach {
                return Ok(0);
            }
            let code = create::wait_init(c.record.pid);
            if !keep {
                delete::delete(&root, &args.id, true)?;
            }
            Ok(code)
        }
        Command::Start { id } => {
            start::start(&root, id)?;
            Ok(0)
        }
        Command::State { id } => {
            let c = root.load(id)?;
            println!("{}", serde_json::to_string_pretty(&c.state_doc())?);
            Ok(0)
        }
        Command::Kill { all, id, signal } => {
            let sig = kill::parse_signal(signal)?;
            kill::kill(&root, id, sig, *all)?;
            Ok(0)
        }
        Command::Delete { force, id } => {
            match delete::delete(&root, id, *force) {
                // runc: deleting a container that is gone is an error only without --force.
                Err(berth_runtime::Error::State(state::StateError::NotFound { .. })) if *force => {}
                other => other?,
            }
            Ok(0)
        }
        Command::List { format, quiet } => list(&root, *format, *quiet),
        Command::Ps { format, id, ps_args } => ps(&root, id, *format, ps_args),
        Command::Exec(args) => exec_cmd(&root, args),
        Command::Pause { id } => {
            pause::pause(&root, id)?;
            Ok(0)
        }
        Command::Resume { id } => {
            pause::resume(&root, id)?;
            Ok(0)
        }
        Command::Update(args) => {
            let resources = update_resources(args)?;
            berth_runtime::update::update(&root, &args.id, &resources)?;
            Ok(0)
        }
        Command::Events { stats, interval, id } => events(&root, id, *stats, *interval),
        Command::Features => {
            println!("{}", serde_json::to_string_pretty(&features::features())?);
            Ok(0)
        }
        Command::Spec { bundle } => {
            let rootless = cli.rootless.as_deref().is_some_and(|r| r == "true");
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{}: file exists; remove it first", path.display());
            }
            let spec = berth_runtime::example::example(rootless);
            fs::write(&path, serde_json::to_string_pretty(&spec)? + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(0)
        }
    }
}

/// The `linux.resources` an `update` asks for: the --resources document alone when one is
/// given (runc ignores the other flags then), else the flags.
fn update_resources(args: &cli::UpdateArgs) -> Result<LinuxResources> {
    if let Some(path) = &args.resources {
        if path == Path::new("-") {
            return Ok(cgroups::oci::resources_from_reader("stdin", std::io::stdin().lock())?);
        }
        let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        return Ok(cgroups::oci::resources_from_reader(&path.display().to_string(), file)?);
    }
    let request = cgroups::oci::UpdateRequest {
        memory: args.memory.clone(),
        memory_reservation: args.memory_reservation.clone(),
        memory_swap: args.memory_swap.clone(),
        kernel_memory: None,
        kernel_memory_tcp: None,
        cpu_shares: args.cpu_shares,
        cpu_quota: args.cpu_quota,
        cpu_period: args.cpu_period,
        cpu_rt_period: args.cpu_rt_period,
        cpu_rt_runtime: args.cpu_rt_runtime,
        cpuset_cpus: args.cpuset_cpus.clone(),
        cpuset_mems: args.cpuset_mems.clone(),
        pids_limit: args.pids_limit,
        blkio_weight: args.blkio_weight,
    };
    Ok(request.to_resources(None)?)
}

/// `events`: one stats line with `--stats`; else a stats line every `interval` and an `oom`
/// line for each new OOM kill, until the container stops (or stdout is closed).
fn events(root: &StateRoot, id: &str, once: bool, interval: Duration) -> Result<i32> {
    if interval.is_zero() {
        bail!("--interval: must be greater than 0");
    }
    let c = root.load(id)?;
    if c.status() == Status::Stopped {
        bail!("container {id} is not running");
    }
    let disabled = c.record.cgroup_state.as_ref().is_some_and(|s| s.disabled.is_some());
    let cgroup = c.cgroup_manager().filter(|_| !disabled).with_context(|| {
        format!("container {id} has no cgroup (rootless without cgroup delegation): no stats")
    })?;
    if once {
        let event = cgroups::oci::stats_event(&cgroup, id)
            .with_context(|| format!("reading the stats of container {id}"))?;
        println!("{}", serde_json::to_string(&event)?);
        return Ok(0);
    }

    let mut out = std::io::stdout().lock();
    cgroups::oci::watch(&cgroup, id, interval, |event| {
        // A closed stdout ends the watch quietly, as a stopped container does.
        c.init_alive()
            && serde_json::to_string(event)
                .is_ok_and(|line| writeln!(out, "{line}").and_then(|()| out.flush()).is_ok())
    })
    .with_context(|| format!("watching the cgroup of container {id}"))?;
    Ok(0)
}

fn list(root: &StateRoot, format: ListFormat, quiet: bool) -> Result<i32> {
    let containers = root.list()?;
    if quiet {
        for c in &containers {
            println!("{}", c.record.id);
        }
        return Ok(0);
    }
    let docs: Vec<_> = containers.iter().map(|c| c.state_doc()).collect();
    match format {
        ListFormat::Json => println!("{}", serde_json::to_string(&docs)?),
        ListFormat::Table => {
            let rows: Vec<[String; 6]> = std::iter::once(
                ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from),
            )
            .chain(docs.iter().map(|d| {
                [
                    d.id.clone(),
                    d.pid.to_string(),
                    d.status.to_string(),
                    d.bundle.display().to_string(),
                    d.created.clone(),
                    d.owner.clone(),
                ]
            }))
            .collect();
            let widths: Vec<usize> =
                (0..6).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
            for r in &rows {
                let line: Vec<String> =
                    (0..6).map(|i| format!("{:<w$}", r[i], w = widths[i])).collect();
                println!("{}", line.join("   ").trim_end());
            }
        }
    }
    Ok(0)
}

fn ps(root: &StateRoot, id: &str, format: ListFormat, ps_args: &[String]) -> Result<i32> {
    let c = root.load(id)?;
    if c.status() == Status::Stopped {
        bail!("container {id} is not running");
    }
    let pids = kill::container_pids(&c);
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let args: Vec<String> = if ps_args.is_empty() { vec!["-ef".into()] } else { ps_args.to_vec() };
    let out = std::process::Command::new("ps").args(&args).output().context("running ps")?;
    if !out.status.success() {
        bail!("ps {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for line in lines {
        let pid = line.split_whitespace().nth(pid_col).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(0)
}

fn exec_cmd(root: &StateRoot, args: &cli::ExecArgs) -> Result<i32> {
    if args.process_label.is_some() {
        bail!("--process-label: not supported yet");
    }
    if args.apparmor.is_some() {
        bail!("--apparmor: not supported yet");
    }
    let process: oci_spec::runtime::Process = match &args.process {
        Some(path) => {
            let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?
        }
        None => {
            if args.command.is_empty() {
                bail!("exec: give a command or --process");
            }
            let c = root.load(&args.id)?;
            let config = c.record.bundle.join("config.json");
            let bytes =
                fs::read(&config).with_context(|| format!("reading {}", config.display()))?;
            let spec = berth_runtime::spec::parse(&config, &bytes)?;
            let mut p = spec.process().clone().context("the container's config has no process")?;
            p.set_args(Some(args.command.clone()));
            p.set_terminal(Some(args.tty));
            p.set_console_size(None);
            let env =
                berth_runtime::process::merge_env(p.env().as_deref().unwrap_or(&[]), &args.env);
            p.set_env(Some(env));
            if let Some(cwd) = &args.cwd {
                p.set_cwd(cwd.clone());
            }
            if let Some(user) = &args.user {
                let (uid, gid) = match user.split_once(':') {
                    Some((u, g)) => (u.parse()?, g.parse()?),
                    None => (user.parse().context("--user: uid[:gid], numeric")?, 0),
                };
                let mut u = p.user().clone();
                u.set_uid(uid);
                u.set_gid(gid);
                p.set_user(u);
            }
            if !args.additional_gids.is_empty() {
                let mut u = p.user().clone();
                u.set_additional_gids(Some(args.additional_gids.clone()));
                p.set_user(u);
            }
            if args.no_new_privs {
                p.set_no_new_privileges(Some(true));
            }
            if !args.cap.is_empty() {
                let mut caps = p.capabilities().clone().unwrap_or_default();
                for name in &args.cap {
                    let cap: oci_spec::runtime::Capability =
                        serde_json::from_value(serde_json::Value::String(name.clone()))
                            .with_context(|| format!("--cap: unknown capability {name:?}"))?;
                    let add = |s: Option<oci_spec::runtime::Capabilities>| {
                        let mut s = s.unwrap_or_default();
                        s.insert(cap);
                        Some(s)
                    };
                    let b = add(caps.bounding().clone());
                    let e = add(caps.effective().clone());
                    let pm = add(caps.permitted().clone());
                    caps.set_bounding(b);
                    caps.set_effective(e);
                    caps.set_permitted(pm);
                }
                p.set_capabilities(Some(caps));
            }
            p
        }
    };
    let opts = ExecOptions {
        process,
        detach: args.detach,
        pid_file: args.pid_file.as_ref().map(|p| absolute(p)),
        console_socket: args.console_socket.clone(),
        preserve_fds: args.preserve_fds,
    };
    if !args.ignore_paused && root.load(&args.id)?.status() == Status::Paused {
        bail!("container {} is paused; use --ignore-paused", args.id);
    }
    Ok(exec::exec(root, &args.id, &opts)?)
}
