//! The commands and `run` flags of issue 7 ("containers, part 2") outside the monitor:
//! the resource and mount flags of `run`/`create`, `update`, `stats` and `top`, with
//! Podman's names, columns and exit codes. `volume` lives in [`crate::volumes`].

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_engine::containers::ops::Containers;
use berth_engine::init::InitOptions;
use berth_engine::spec::resources::ResourceOptions;
use berth_engine::state::{ContainerState, Timestamp};
use berth_engine::stats::{self, Sample};
use berth_engine::volumes::VolumeOptions;
use clap::Args;
use serde::Serialize;

use crate::cli::GlobalOptions;
use crate::format::{write_table, Format};

// The cgroup limits both `run`/`create` and `update` take (flattened into each).
#[derive(Debug, Args, Clone, Default)]
pub struct LimitArgs {
    /// Memory limit (e.g. 512m, 1g).
    #[arg(short, long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory plus swap limit, or -1 for unlimited swap.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Number of CPUs (a decimal, e.g. 1.5).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long, value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on (0-1, 0,2).
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Limit the number of processes (-1 for unlimited; default 2048).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
}

impl LimitArgs {
    /// These limits as the engine's options, with nothing else set.
    fn options(&self) -> ResourceOptions {
        ResourceOptions {
            memory: self.memory.clone(),
            memory_swap: self.memory_swap.clone(),
            memory_reservation: self.memory_reservation.clone(),
            cpus: self.cpus.clone(),
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus.clone(),
            pids_limit: self.pids_limit,
            ..Default::default()
        }
    }
}

// The flags issue 7 adds to `run` and `create` (flattened into their arguments).
#[derive(Debug, Args, Clone, Default)]
pub struct Part2RunArgs {
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Add a host device: HOST[:CONTAINER][:PERMISSIONS].
    #[arg(long, value_name = "DEVICE")]
    pub device: Vec<String>,
    /// Tune the OOM killer's preference for the container (-1000 to 1000).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub oom_score_adj: Option<i32>,
    /// Size of /dev/shm (default 64m).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub shm_size: Option<String>,
    /// Bind mount or volume: SOURCE:DESTINATION[:OPTIONS], or DESTINATION for an anonymous
    /// volume.
    #[arg(short, long, value_name = "VOLUME")]
    pub volume: Vec<String>,
    /// Mount: type=bind|volume|tmpfs,source=…,target=…[,readonly,…].
    #[arg(long, value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// Run an init as PID 1 that reaps zombies and forwards signals to the command.
    #[arg(long)]
    pub init: bool,
    /// The host executable --init runs (default: berth's own init).
    #[arg(long, value_name = "PATH")]
    pub init_path: Option<std::path::PathBuf>,
}

impl Part2RunArgs {
    pub fn resources(&self) -> ResourceOptions {
        ResourceOptions {
            devices: self.device.clone(),
            oom_score_adj: self.oom_score_adj,
            shm_size: self.shm_size.clone(),
            ..self.limits.options()
        }
    }

    pub fn volumes(&self) -> VolumeOptions {
        VolumeOptions {
            volume: self.volume.clone(),
            mount: self.mount.clone(),
            resolved_mounts: Vec::new(),
        }
    }

    pub fn init(&self) -> InitOptions {
        InitOptions { init: self.init, init_path: self.init_path.clone(), init_binary: None }
    }
}

// `berth update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The container.
    pub container: String,
}

// `berth stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one reading and exit.
    #[arg(long)]
    pub no_stream: bool,
    /// Show all containers (by default only running ones).
    #[arg(short, long)]
    pub all: bool,
    /// Go template or `json`.
    #[arg(long)]
    pub format: Option<String>,
    /// Seconds between readings when streaming.
    #[arg(short, long, default_value_t = 5)]
    pub interval: u64,
    /// Containers (default: all running).
    pub containers: Vec<String>,
}

// `berth top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The container.
    pub container: String,
    /// ps(1) format descriptors (only Podman's default set for now).
    pub descriptors: Vec<String>,
}

// `berth events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Filter: container=NAME|ID, event=STATUS, image=NAME, type=container.
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Go template or `json` (one JSON object per line).
    #[arg(long)]
    pub format: Option<String>,
    /// Only events from this time on (a duration back from now, RFC 3339, or Unix seconds).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events up to this time; the stream ends then.
    #[arg(long)]
    pub until: Option<String>,
    /// Keep printing new events (default true).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub stream: bool,
}

/// `berth events`.
pub fn events(global: &GlobalOptions, args: EventsArgs) -> Result<ExitCode> {
    use berth_engine::containers::logs::parse_time;
    use berth_engine::events::{self, EventFilter};
    let ctx = crate::containers::context(global)?;
    let mut filter = EventFilter::parse(&args.filter)?;
    let now = Timestamp::now();
    filter.since =
        args.since.as_deref().map(|s| parse_time("--since", s, now)).transpose()?.map(|t| t.0);
    filter.until =
        args.until.as_deref().map(|u| parse_time("--until", u, now)).transpose()?.map(|t| t.0);
    let format = match args.format.as_deref() {
        None | Some("json") => None,
        Some(source) => Some(Format::parse(source)?),
    };
    let json = args.format.as_deref() == Some("json");
    let stdout = io::stdout();
    let mut failed = None;
    events::read(&ctx.runroot, &filter, args.stream, &mut |event| {
        let mut out = stdout.lock();
        let line = if json {
            serde_json::to_string(event).map_err(anyhow::Error::from)
        } else if let Some(f) = &format {
            f.render(event)
        } else {
            Ok(event.human())
        };
        let written = line.and_then(|l| {
            writeln!(out, "{l}")?;
            out.flush()?;
            Ok(())
        });
        match written {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    match failed {
        // A closed pipe (`| head`) ends quietly.
        Some(e)
            if e.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

fn open(global: &GlobalOptions) -> Result<Containers> {
    let ctx = crate::containers::context(global)?;
    Containers::open(&ctx).context("opening the container store")
}

/// `berth update`.
pub fn update(global: &GlobalOptions, args: UpdateArgs) -> Result<ExitCode> {
    let mut containers = open(global)?;
    let record = containers.lookup(&args.container)?;
    if !matches!(record.state, ContainerState::Running | ContainerState::Paused) {
        bail!(
            "container {} is {}: only running containers can be updated",
            record.name,
            record.state
        );
    }
    let opts = args.limits.options();
    stats::update(containers.context(), &record.id, &opts)?;
    println!("{}", record.id);
    Ok(ExitCode::SUCCESS)
}

/// One row of `stats`, with Podman's template field names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StatsRow {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    #[serde(rename = "CPUPerc")]
    cpu_perc: String,
    mem_usage: String,
    mem_perc: String,
    #[serde(rename = "NetIO")]
    net_io: String,
    #[serde(rename = "BlockIO")]
    block_io: String,
    #[serde(rename = "PIDs")]
    pids: String,
    /// Raw figures, for `--format json` and templates.
    #[serde(rename = "MemUsageBytes")]
    mem_usage_bytes: u64,
    #[serde(rename = "MemLimit")]
    mem_limit: u64,
    #[serde(rename = "CPUNano")]
    cpu_nano: u64,
}

/// Docker's `HumanSizeWithPrecision(n, 3)`: decimal units, three significant digits.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", significant(value, 3), UNITS[unit])
}

/// `value` with `digits` significant digits and no trailing zeros (Go's `%.3g` for values
/// below 1000).
fn significant(value: f64, digits: i32) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

struct Watched {
    id: String,
    name: String,
    pid: Option<i32>,
    started: Option<Timestamp>,
    last: Option<Sample>,
}

fn select(containers: &mut Containers, args: &StatsArgs) -> Result<Vec<Watched>> {
    let records = if args.containers.is_empty() {
        containers.list()?
    } else {
        args.containers.iter().map(|q| containers.lookup(q)).collect::<Result<Vec<_>, _>>()?
    };
    let mut out = Vec::new();
    for record in records {
        let running = matches!(record.state, ContainerState::Running | ContainerState::Paused);
        if !running && !args.all {
            if !args.containers.is_empty() {
                bail!("container {} is not running", record.name);
            }
            continue;
        }
        out.push(Watched {
            id: record.id,
            name: record.name,
            pid: running.then_some(record.pid).flatten(),
            started: record.started_at,
            last: None,
        });
    }
    Ok(out)
}

fn row(ctx: &berth_engine::context::EngineContext, w: &mut Watched) -> StatsRow {
    let short: String = w.id.chars().take(12).collect();
    let sample = if w.pid.is_some() { stats::sample(ctx, &w.id, w.pid).ok() } else { None };
    let Some(sample) = sample else {
        return StatsRow {
            id: short,
            name: w.name.clone(),
            cpu_perc: "--".into(),
            mem_usage: "-- / --".into(),
            mem_perc: "--".into(),
            net_io: "-- / --".into(),
            block_io: "-- / --".into(),
            pids: "--".into(),
            mem_usage_bytes: 0,
            mem_limit: 0,
            cpu_nano: 0,
        };
    };
    let running_for = w
        .started
        .map(|s| Duration::from_nanos((Timestamp::now().0 - s.0).max(0) as u64))
        .unwrap_or_default();
    let cpu = stats::cpu_percent(&sample, w.last.as_ref(), running_for);
    let limit = sample.memory_limit.unwrap_or_else(stats::host_memory);
    let mem_perc = if limit > 0 { sample.memory_usage as f64 / limit as f64 * 100.0 } else { 0.0 };
    let out = StatsRow {
        id: short,
        name: w.name.clone(),
        cpu_perc: format!("{cpu:.2}%"),
        mem_usage: format!("{} / {}", human_size(sample.memory_usage), human_size(limit)),
        mem_perc: format!("{mem_perc:.2}%"),
        net_io: format!("{} / {}", human_size(sample.net_rx), human_size(sample.net_tx)),
        block_io: format!("{} / {}", human_size(sample.block_read), human_size(sample.block_write)),
        pids: sample.pids.to_string(),
        mem_usage_bytes: sample.memory_usage,
        mem_limit: limit,
        cpu_nano: sample.cpu_ns,
    };
    w.last = Some(sample);
    out
}

fn print_stats(rows: &[StatsRow], format: Option<&str>, out: &mut impl Write) -> Result<()> {
    match format {
        Some("json") => {
            serde_json::to_writer_pretty(&mut *out, rows)?;
            writeln!(out)?;
        }
        Some(source) => Format::parse(source)?.print_all(rows, out)?,
        None => {
            let mut cells = vec![[
                "ID",
                "NAME",
                "CPU %",
                "MEM USAGE / LIMIT",
                "MEM %",
                "NET IO",
                "BLOCK IO",
                "PIDS",
            ]
            .map(str::to_owned)
            .to_vec()];
            for r in rows {
                cells.push(vec![
                    r.id.clone(),
                    r.name.clone(),
                    r.cpu_perc.clone(),
                    r.mem_usage.clone(),
                    r.mem_perc.clone(),
                    r.net_io.clone(),
                    r.block_io.clone(),
                    r.pids.clone(),
                ]);
            }
            write_table(&cells, out)?;
        }
    }
    Ok(())
}

/// `berth stats`.
pub fn stats(global: &GlobalOptions, args: StatsArgs) -> Result<ExitCode> {
    let mut containers = open(global)?;
    stats::check_available(containers.context())?;
    let mut watched = select(&mut containers, &args)?;
    let ctx = containers.context().clone();
    let stdout = io::stdout();
    let redraw = stdout.is_terminal();
    loop {
        let rows: Vec<StatsRow> = watched.iter_mut().map(|w| row(&ctx, w)).collect();
        let mut out = stdout.lock();
        if redraw && !args.no_stream {
            // Clear the screen and go home, as Podman redraws.
            write!(out, "\x1b[2J\x1b[H")?;
        }
        print_stats(&rows, args.format.as_deref(), &mut out)?;
        out.flush()?;
        drop(out);
        if args.no_stream {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_secs(args.interval.max(1)));
        if args.containers.is_empty() {
            // Pick up containers started since, keep the readings of the others.
            let fresh = select(&mut containers, &args)?;
            let mut kept = Vec::new();
            for mut f in fresh {
                if let Some(old) = watched.iter_mut().find(|w| w.id == f.id) {
                    f.last = old.last.take();
                }
                kept.push(f);
            }
            watched = kept;
        }
    }
}

/// `berth top`: Podman's default columns, USER PID PPID %CPU ELAPSED TTY TIME COMMAND.
pub fn top(global: &GlobalOptions, args: TopArgs) -> Result<ExitCode> {
    if !args.descriptors.is_empty() {
        bail!("top format descriptors are not supported yet");
    }
    let mut containers = open(global)?;
    let record = containers.lookup(&args.container)?;
    if !matches!(record.state, ContainerState::Running | ContainerState::Paused) {
        bail!("top can only be used on running containers: {} is {}", record.name, record.state);
    }
    let pids = stats::processes(containers.context(), &record.id, record.pid)?;
    let mut rows = vec![["USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME", "COMMAND"]
        .map(str::to_owned)
        .to_vec()];
    let boot = boot_time();
    let ticks = clock_ticks();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    for pid in pids {
        let Some(p) = ProcInfo::read(pid) else { continue };
        let started = boot + p.start_ticks as f64 / ticks;
        let elapsed = (now - started).max(0.0);
        let cpu_secs = (p.utime + p.stime) as f64 / ticks;
        let cpu_perc = if elapsed > 0.0 { cpu_secs / elapsed * 100.0 } else { 0.0 };
        rows.push(vec![
            p.user,
            p.ns_pid.to_string(),
            p.ns_ppid.to_string(),
            format!("{cpu_perc:.3}"),
            go_duration(elapsed),
            p.tty,
            go_duration(cpu_secs.floor()),
            p.command,
        ]);
    }
    write_table(&rows, &mut io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

/// Go's `time.Duration` text, as Podman prints ELAPSED and TIME (`1m2.5s`, `0s`).
fn go_duration(secs: f64) -> String {
    if secs < 1e-9 {
        return "0s".to_owned();
    }
    let total = secs;
    let hours = (total / 3600.0).floor();
    let minutes = ((total - hours * 3600.0) / 60.0).floor();
    let seconds = total - hours * 3600.0 - minutes * 60.0;
    let secs_text = significant_seconds(seconds);
    match (hours as u64, minutes as u64) {
        (0, 0) => format!("{secs_text}s"),
        (0, m) => format!("{m}m{secs_text}s"),
        (h, m) => format!("{h}h{m}m{secs_text}s"),
    }
}

fn significant_seconds(seconds: f64) -> String {
    let text = format!("{seconds:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// What `top` shows of one process, from /proc.
struct ProcInfo {
    user: String,
    ns_pid: i32,
    ns_ppid: i32,
    tty: String,
    utime: u64,
    stime: u64,
    start_ticks: u64,
    command: String,
}

impl ProcInfo {
    fn read(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, rest) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the command: state(0) ppid(1) pgrp(2) session(3) tty_nr(4) … utime(11)
        // stime(12) … starttime(19).
        let tty_nr: u64 = fields.get(4)?.parse().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned())
        };
        let last =
            |text: Option<String>| -> Option<i32> { text?.split_whitespace().last()?.parse().ok() };
        let ns_pid = last(field("NSpid:")).unwrap_or(pid);
        let ppid_host: i32 = fields.get(1)?.parse().ok()?;
        let ns_ppid = if ns_pid == 1 {
            0
        } else {
            std::fs::read_to_string(format!("/proc/{ppid_host}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("NSpid:"))
                        .and_then(|v| v.split_whitespace().last()?.parse().ok())
                })
                .unwrap_or(ppid_host)
        };
        let uid: u32 = field("Uid:")?.split_whitespace().next()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let command = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let user = user_name(pid, uid);
        Some(Self {
            user,
            ns_pid,
            ns_ppid,
            tty: if tty_nr == 0 { "?".to_owned() } else { tty_name(tty_nr) },
            utime: fields.get(11)?.parse().ok()?,
            stime: fields.get(12)?.parse().ok()?,
            start_ticks: fields.get(19)?.parse().ok()?,
            command,
        })
    }
}

/// The name of `uid` in the container's own /etc/passwd (read through /proc/PID/root), as
/// Podman's top shows container users.
fn user_name(pid: i32, uid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/root/etc/passwd"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut f = line.split(':');
                let name = f.next()?;
                (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// `pts/N` for a pseudo-terminal's device number, else the number.
fn tty_name(dev: u64) -> String {
    let major = (dev >> 8) & 0xfff;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    if (136..=143).contains(&major) {
        format!("pts/{}", (major - 136) * 256 + minor)
    } else {
        format!("{major}:{minor}")
    }
}

fn boot_time() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok()))
        .unwrap_or(0.0)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(33_554_432), "33.6MB");
        assert_eq!(human_size(2_147_483_648), "2.15GB");
        assert_eq!(human_size(1_000_000), "1MB");
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(0.0), "0s");
        assert_eq!(go_duration(3.0), "3s");
        assert_eq!(go_duration(62.5), "1m2.5s");
        assert_eq!(go_duration(3725.0), "1h2m5s");
    }
}

// `berth info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Go template or `json` (default: YAML, as Podman prints it).
    #[arg(short, long)]
    pub format: Option<String>,
}

/// `berth info`: host, store and version in Podman's shape (a subset of its fields).
pub fn info(global: &GlobalOptions, args: InfoArgs) -> Result<ExitCode> {
    let ctx = crate::containers::context(global)?;
    let mut containers = Containers::open(&ctx).context("opening the container store")?;
    let records = containers.list()?;
    let count = |f: &dyn Fn(ContainerState) -> bool| records.iter().filter(|r| f(r.state)).count();
    let images = match berth_engine::images::Images::open(&ctx.root) {
        Ok(store) => store.list().map(|l| l.len()).unwrap_or(0),
        Err(_) => 0,
    };
    let volumes = berth_engine::volumes::VolumeStore::open(&ctx.root)
        .and_then(|s| s.list())
        .map(|l| l.len())
        .unwrap_or(0);
    let uname = rustix::system::uname();
    let cgroup_version = match berth_runtime_mode() {
        Some("unified") => "v2",
        _ => "v1",
    };
    let value = serde_json::json!({
        "host": {
            "arch": std::env::consts::ARCH,
            "cgroupManager": "cgroupfs",
            "cgroupVersion": cgroup_version,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "hostname": uname.nodename().to_string_lossy(),
            "kernel": uname.release().to_string_lossy(),
            "memTotal": stats::host_memory(),
            "os": std::env::consts::OS,
            "ociRuntime": {"name": "berth-runtime", "package": "berth (in-process)", "version": env!("CARGO_PKG_VERSION")},
            "security": {"rootless": ctx.rootless, "seccompEnabled": true, "selinuxEnabled": false, "apparmorEnabled": false},
            "uptime": uptime(),
        },
        "store": {
            "graphRoot": ctx.root,
            "runRoot": ctx.runroot,
            "graphDriverName": ctx.storage_driver_name(),
            "volumePath": ctx.root.join("volumes"),
            "containerStore": {
                "number": records.len(),
                "running": count(&|s| s == ContainerState::Running),
                "paused": count(&|s| s == ContainerState::Paused),
                "stopped": count(&|s| !matches!(s, ContainerState::Running | ContainerState::Paused)),
            },
            "imageStore": {"number": images},
            "volumeStore": {"number": volumes},
        },
        "version": {
            "Version": env!("CARGO_PKG_VERSION"),
            "OsArch": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        },
    });
    let mut out = io::stdout().lock();
    match args.format.as_deref() {
        Some("json") => {
            serde_json::to_writer_pretty(&mut out, &value)?;
            writeln!(out)?;
        }
        Some(source) => writeln!(out, "{}", Format::parse(source)?.render(&value)?)?,
        None => write_yaml(&value, 0, &mut out)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The cgroup layout of this host ("legacy", "hybrid" or "unified").
fn berth_runtime_mode() -> Option<&'static str> {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        Some("unified")
    } else if Path::new("/sys/fs/cgroup/unified").exists() {
        Some("hybrid")
    } else {
        Some("legacy")
    }
}

/// The host's uptime as Go prints a duration, like Podman's info.
fn uptime() -> String {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .map(|s| go_duration(s.floor()))
        .unwrap_or_default()
}

/// A small YAML rendering of JSON (maps and scalars; lists inline), as `podman info` reads.
fn write_yaml(value: &serde_json::Value, indent: usize, out: &mut impl Write) -> Result<()> {
    let Some(map) = value.as_object() else { return Ok(()) };
    for (key, v) in map {
        let pad = " ".repeat(indent);
        match v {
            serde_json::Value::Object(_) => {
                writeln!(out, "{pad}{key}:")?;
                write_yaml(v, indent + 2, out)?;
            }
            serde_json::Value::String(s) => writeln!(out, "{pad}{key}: {s}")?,
            other => writeln!(out, "{pad}{key}: {other}")?,
        }
    }
    Ok(())
}

// `berth cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// CONTAINER:PATH, a host path, or `-` for a tar stream on stdin.
    pub source: String,
    /// CONTAINER:PATH, a host path, or `-` for a tar stream on stdout.
    pub destination: String,
}

// `berth diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// `json` for a JSON object of changed, added and deleted paths.
    #[arg(long)]
    pub format: Option<String>,
    pub container: String,
}

// `berth export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    pub container: String,
}

/// `CONTAINER:PATH` → (container, path); a host path (with a `/` before any `:`, or no `:`)
/// → None, as Podman tells them apart.
fn container_path(arg: &str) -> Option<(&str, &str)> {
    let (name, path) = arg.split_once(':')?;
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return None;
    }
    Some((name, path))
}

/// `berth cp`.
pub fn cp(global: &GlobalOptions, args: CpArgs) -> Result<ExitCode> {
    use berth_engine::container_fs::{self, MountedRoot};
    let mut containers = open(global)?;
    let ctx = containers.context().clone();
    match (container_path(&args.source), container_path(&args.destination)) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported yet"),
        (None, None) => bail!("one of the source and destination must be CONTAINER:PATH"),
        (Some((name, path)), None) => {
            let record = containers.lookup(name)?;
            let root = MountedRoot::open(&ctx, &record)?;
            if args.destination == "-" {
                container_fs::tar_out(&root, &record.name, path, io::stdout().lock())?;
            } else {
                let dest = std::path::PathBuf::from(&args.destination);
                container_fs::copy_out(&root, &record.name, path, &dest)?;
            }
        }
        (None, Some((name, path))) => {
            let record = containers.lookup(name)?;
            let root = MountedRoot::open(&ctx, &record)?;
            if args.source == "-" {
                container_fs::untar_in(&root, io::stdin().lock(), path)?;
            } else {
                container_fs::copy_in(&root, Path::new(&args.source), path)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth diff`.
pub fn diff(global: &GlobalOptions, args: DiffArgs) -> Result<ExitCode> {
    use berth_engine::container_fs::{self, MountedRoot};
    let mut containers = open(global)?;
    let ctx = containers.context().clone();
    let record = containers.lookup(&args.container)?;
    let root = MountedRoot::open(&ctx, &record)?;
    let changes = container_fs::diff(&root.upper, &root.lower)
        .with_context(|| format!("reading the changes of container {}", record.name))?;
    let mut out = io::stdout().lock();
    match args.format.as_deref() {
        Some("json") => {
            let of = |k: char| -> Vec<&str> {
                changes.iter().filter(|c| c.kind == k).map(|c| c.path.as_str()).collect()
            };
            let value =
                serde_json::json!({"changed": of('C'), "added": of('A'), "deleted": of('D')});
            serde_json::to_writer_pretty(&mut out, &value)?;
            writeln!(out)?;
        }
        Some(other) => bail!("diff --format {other:?}: only json is supported"),
        None => {
            for c in &changes {
                writeln!(out, "{} {}", c.kind, c.path)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth export`.
pub fn export(global: &GlobalOptions, args: ExportArgs) -> Result<ExitCode> {
    use berth_engine::container_fs::{self, MountedRoot};
    let mut containers = open(global)?;
    let ctx = containers.context().clone();
    let record = containers.lookup(&args.container)?;
    let root = MountedRoot::open(&ctx, &record)?;
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            container_fs::export(&root, io::BufWriter::new(file))?;
        }
        None => {
            if io::stdout().is_terminal() {
                bail!("refusing to export to a terminal: use -o FILE or redirect stdout");
            }
            container_fs::export(&root, io::BufWriter::new(io::stdout().lock()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `system` subcommands of issue 7 (flattened into `berth system`).
#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub enum SystemPart2 {
    /// Show the disk space used by images, containers and volumes.
    Df,
    /// Remove stopped containers and dangling images (and unused volumes with --volumes).
    Prune(SystemPruneArgs),
    /// Show how berth and this host are set up (as `berth info`).
    Info(InfoArgs),
    /// Show the events journal (as `berth events`).
    Events(EventsArgs),
}

#[derive(Debug, Args)]
pub struct SystemPruneArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Remove every image no container uses, not only dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Also remove volumes no container uses.
    #[arg(long)]
    pub volumes: bool,
}

/// `berth container …`: the container group's verbs of issue 7.
#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub enum ContainerGroup {
    /// Remove every stopped container.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// `berth system df|prune|info|events`.
pub fn system(global: &GlobalOptions, command: SystemPart2) -> Result<ExitCode> {
    match command {
        SystemPart2::Df => system_df(global),
        SystemPart2::Prune(args) => system_prune(global, args),
        SystemPart2::Info(args) => info(global, args),
        SystemPart2::Events(args) => events(global, args),
    }
}

/// `berth container prune`.
pub fn container(global: &GlobalOptions, command: ContainerGroup) -> Result<ExitCode> {
    match command {
        ContainerGroup::Prune(_) => {
            let mut containers = open(global)?;
            for id in prune_containers(&mut containers)? {
                println!("{id}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Removes every container without a process; returns their ids.
fn prune_containers(containers: &mut Containers) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for record in containers.list()? {
        if record.state.has_process() {
            continue;
        }
        containers.remove(&record.id, false)?;
        removed.push(record.id);
    }
    Ok(removed)
}

/// Bytes under `path` (files counted once per inode, directories not counted).
fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}

fn system_df(global: &GlobalOptions) -> Result<ExitCode> {
    let ctx = crate::containers::context(global)?;
    let mut containers = Containers::open(&ctx).context("opening the container store")?;
    let records = containers.list()?;
    let images = berth_engine::images::Images::open(&ctx.root)?.list()?;
    let used_images: std::collections::HashSet<&str> =
        records.iter().map(|r| r.image_id.as_str()).collect();
    let image_size: u64 = images.iter().map(|i| i.size).sum();
    let active_images: Vec<_> =
        images.iter().filter(|i| used_images.contains(i.id().hex())).collect();
    let active_image_size: u64 = active_images.iter().map(|i| i.size).sum();
    let volumes = berth_engine::volumes::VolumeStore::open(&ctx.root)?.list()?;
    let users = berth_engine::volumes::users(&ctx.root)?;
    let volume_size = |v: &berth_engine::volumes::Volume| disk_usage(&v.mountpoint);
    let active_volumes: Vec<_> =
        volumes.iter().filter(|v| users.iter().any(|(n, _)| *n == v.name)).collect();
    let all_volume_size: u64 = volumes.iter().map(volume_size).sum();
    let active_volume_size: u64 = active_volumes.iter().map(|v| volume_size(v)).sum();
    let layers = berth_storage_layers(&ctx);
    let upper = |id: &str| disk_usage(&layers.layer(id).upper);
    let container_size: u64 = records.iter().map(|r| upper(&r.id)).sum();
    let running: Vec<_> = records.iter().filter(|r| r.state.has_process()).collect();
    let running_size: u64 = running.iter().map(|r| upper(&r.id)).sum();
    let reclaim = |total: u64, active: u64| {
        let free = total.saturating_sub(active);
        let pct = (free * 100).checked_div(total).unwrap_or(0);
        format!("{} ({pct}%)", human_size(free))
    };
    let rows = vec![
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"].map(str::to_owned).to_vec(),
        vec![
            "Images".into(),
            images.len().to_string(),
            active_images.len().to_string(),
            human_size(image_size),
            reclaim(image_size, active_image_size),
        ],
        vec![
            "Containers".into(),
            records.len().to_string(),
            running.len().to_string(),
            human_size(container_size),
            reclaim(container_size, running_size),
        ],
        vec![
            "Local Volumes".into(),
            volumes.len().to_string(),
            active_volumes.len().to_string(),
            human_size(all_volume_size),
            reclaim(all_volume_size, active_volume_size),
        ],
    ];
    write_table(&rows, &mut io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

/// The container layers of `ctx` (through the engine's re-export of berth-storage).
fn berth_storage_layers(
    ctx: &berth_engine::context::EngineContext,
) -> berth_engine::container_fs::ContainerLayers {
    berth_engine::container_fs::ContainerLayers::new(&ctx.root, &ctx.runroot)
}

fn system_prune(global: &GlobalOptions, args: SystemPruneArgs) -> Result<ExitCode> {
    if !args.force && io::stdin().is_terminal() {
        bail!("system prune removes stopped containers and dangling images: confirm with --force");
    }
    let ctx = crate::containers::context(global)?;
    let mut containers = Containers::open(&ctx).context("opening the container store")?;
    let removed = prune_containers(&mut containers)?;
    let mut out = io::stdout().lock();
    writeln!(out, "Deleted Containers")?;
    for id in &removed {
        writeln!(out, "{id}")?;
    }
    if args.volumes {
        let root = &ctx.root;
        let mut store = berth_engine::volumes::VolumeStore::open(root)?;
        let users = berth_engine::volumes::users(root)?;
        writeln!(out, "Deleted Volumes")?;
        for v in store.list()? {
            if !users.iter().any(|(n, _)| *n == v.name) {
                store.remove(&v.name, &[])?;
                writeln!(out, "{}", v.name)?;
            }
        }
    }
    // Images a remaining (running) container uses are kept, whatever their names.
    let in_use: std::collections::HashSet<String> =
        containers.list()?.into_iter().map(|r| r.image_id).collect();
    let images = berth_engine::images::Images::open(&ctx.root)?;
    let candidates: Vec<String> = images
        .list()?
        .into_iter()
        .filter(|i| (args.all || i.dangling()) && !in_use.contains(i.id().hex()))
        .map(|i| i.id().hex().to_owned())
        .collect();
    writeln!(out, "Deleted Images")?;
    if !candidates.is_empty() {
        let removed = images.remove(&candidates, false)?;
        for id in removed.deleted.iter() {
            writeln!(out, "{id}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
