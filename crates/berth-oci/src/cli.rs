//! runc's command line, flag for flag, so that Podman's conmon, containerd's shim and CRI-O
//! can call berth-oci where they would call runc. Kept apart from main so other binaries can
//! reuse it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// berth-oci: an OCI runtime with runc's command line.
#[derive(Debug, Parser)]
#[command(name = "berth-oci", version, about, disable_help_subcommand = true)]
pub struct Cli {
    /// Log debug messages.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Write logs to this file instead of stderr.
    #[arg(long, global = true, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Directory for container state (default /run/berth-oci, rootless
    /// $XDG_RUNTIME_DIR/berth-oci).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Path to criu (accepted for compatibility; checkpointing is not supported).
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    /// Use the systemd cgroup driver: cgroupsPath is slice:prefix:name.
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Treat the runtime as rootless: auto, true or false.
    #[arg(long, global = true, value_name = "auto|true|false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub rootless: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

/// The options `create` and `run` share.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The bundle directory (default: the current directory).
    #[arg(long, short = 'b', value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// A unix socket that receives the pty master of a terminal container.
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Write the init's pid to this file.
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root (for a root on ramfs).
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not make a new session keyring for the container.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many descriptors after stdio (3, 4, ...) into the container.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// The container's id.
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container; its process waits for `start`.
    Create(CreateArgs),
    /// Create and start a container, and wait for it unless detached.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the process started.
        #[arg(long, short = 'd')]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Start a created container's process.
    Start { id: String },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to a container's init.
    Kill {
        /// Signal every process in the container.
        #[arg(long, short = 'a')]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container's state (and with --force, kill it first).
    Delete {
        #[arg(long, short = 'f')]
        force: bool,
        id: String,
    },
    /// List containers.
    List {
        #[arg(long, short = 'f', value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Print only ids.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Show the processes of a container.
    Ps {
        #[arg(long, short = 'f', value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        id: String,
        /// Options for ps(1) (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Run another process in a container.
    Exec(ExecArgs),
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change the resource limits of a container's cgroup.
    Update(UpdateArgs),
    /// Print a container's resource usage (and OOM kills) as JSON events.
    Events {
        /// Print one stats event and exit.
        #[arg(long)]
        stats: bool,
        /// How often to print a stats event when watching (runc's default 5s).
        #[arg(long, value_name = "DURATION", default_value = "5s",
              value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        id: String,
    },
    /// Print what this runtime supports (the runtime spec's features document).
    Features,
    /// Write an example config.json.
    Spec {
        /// Where to write config.json. With the global --rootless, the example maps the
        /// calling user to root in a user namespace.
        #[arg(long, short = 'b', value_name = "DIR", default_value = ".")]
        bundle: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (NAME=value); repeatable.
    #[arg(long, short = 'e', value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Allocate a pty (needs --console-socket).
    #[arg(long, short = 't')]
    pub tty: bool,
    /// uid[:gid] to run as.
    #[arg(long, short = 'u', value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// An additional gid; repeatable.
    #[arg(long, short = 'g', value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// A process.json with the whole process to run.
    #[arg(long, short = 'p', value_name = "PATH")]
    pub process: Option<PathBuf>,
    /// Return once the process started.
    #[arg(long, short = 'd')]
    pub detach: bool,
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Set no_new_privs for the process.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Add a capability; repeatable.
    #[arg(long, short = 'c', value_name = "CAP")]
    pub cap: Vec<String>,
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// SELinux label (not supported yet).
    #[arg(long, value_name = "LABEL")]
    pub process_label: Option<String>,
    /// AppArmor profile (not supported yet).
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// Exec even into a paused container.
    #[arg(long)]
    pub ignore_paused: bool,
    pub id: String,
    /// The command and its arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `runc update`'s flags. With --resources the other flags are ignored, as in runc.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// A JSON file with the `linux.resources` to update, or `-` for stdin.
    #[arg(long, short = 'r', value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// CFS period of the CPU hard cap, in microseconds.
    #[arg(long, value_name = "N")]
    pub cpu_period: Option<u64>,
    /// CFS quota of the CPU hard cap, in microseconds per period.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (weight relative to other containers).
    #[arg(long = "cpu-share", visible_alias = "cpu-shares", value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// Realtime period, in microseconds.
    #[arg(long, value_name = "N")]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime, in microseconds per period.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to run on (`0-2,4`).
    #[arg(long, value_name = "CPUS")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long, value_name = "MEMS")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a unit: 64m, 1g).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap; -1 for unlimited swap.
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of processes.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight, 10 to 1000.
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<u16>,
    pub id: String,
}
