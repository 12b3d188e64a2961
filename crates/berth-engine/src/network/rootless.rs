//! Rootless networking: pasta (Debian's passt) connects a container's network namespace to
//! the host without privileges, and forwards published ports with its own sockets — one
//! small process per container, whatever the number of ports, instead of a forwarder per
//! port. slirp4netns is the fallback where pasta is missing.
//!
//! pasta is started after the container's namespaces exist and before its process runs:
//! [`pasta_args`] builds the command line, [`Pasta::start`] runs it and returns once pasta is
//! ready. pasta signals readiness by forking into the background only after the tap device
//! is configured and every forwarded port is bound, so its first process exiting with 0 is
//! the readiness signal, and its `--pid` file names the process to stop later. berth holds a
//! pidfd for that process, so stopping never signals a recycled pid.
//!
//! slirp4netns reports readiness on `--ready-fd` and forwards ports only when asked through its
//! API socket ([`Slirp::add_port`]).

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::netns::Netns;
use super::ports::{PortMapping, Protocol};

/// Errors of the rootless network helpers, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    #[error("running {program}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed to set up the network of {netns}: {stderr}")]
    Setup { program: &'static str, netns: String, stderr: String },
    #[error("reading {program}'s pid file {path}")]
    PidFile {
        program: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening a pidfd for {program} pid {pid}")]
    Pidfd {
        program: &'static str,
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("stopping {program} pid {pid}")]
    Stop {
        program: &'static str,
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot publish port {port} rootless: ports below {start} are privileged \
         (lower the net.ipv4.ip_unprivileged_port_start sysctl to allow it)"
    )]
    PrivilegedPort { port: u16, start: u16 },
    #[error("reading {path}")]
    Sysctl {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("publishing {protocol} ports through {program} is not supported yet")]
    Protocol { program: &'static str, protocol: Protocol },
    #[error("{program} did not become ready within {seconds} s")]
    Timeout { program: &'static str, seconds: u64 },
    #[error("slirp4netns API at {path}: {step}")]
    Api {
        path: PathBuf,
        step: String,
        #[source]
        source: Option<std::io::Error>,
    },
}

/// The address pasta answers DNS queries on inside the container and forwards to the host's
/// first resolver, as Podman configures it; it goes first into the container's resolv.conf.
pub const PASTA_DNS_FORWARD: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 1, 1));

const PASTA: &str = "pasta";
const SLIRP: &str = "slirp4netns";

/// Whether `pasta` is on PATH (Debian's passt package); without it rootless containers fall
/// back to slirp4netns, as Podman does.
pub fn pasta_installed() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).any(|dir| dir.join(PASTA).is_file())
}

/// Refuses host ports below net.ipv4.ip_unprivileged_port_start, which a rootless forwarder
/// could not bind; the error names the sysctl.
pub fn check_unprivileged_ports(ports: &[PortMapping]) -> Result<(), RootlessError> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
    let text = std::fs::read_to_string(PATH)
        .map_err(|source| RootlessError::Sysctl { path: PATH, source })?;
    let start: u16 = text.trim().parse().unwrap_or(1024);
    check_ports_against(ports, start)
}

fn check_ports_against(ports: &[PortMapping], start: u16) -> Result<(), RootlessError> {
    match ports.iter().find(|p| p.host_port < start) {
        Some(p) => Err(RootlessError::PrivilegedPort { port: p.host_port, start }),
        None => Ok(()),
    }
}

/// How to run pasta for one container.
#[derive(Debug, Clone)]
pub struct PastaOptions {
    /// The container's namespace. By pid, pasta also joins that process's user namespace; by
    /// path, [`userns`](Self::userns) names the user namespace that owns it.
    pub netns: Netns,
    pub userns: Option<PathBuf>,
    pub ports: Vec<PortMapping>,
    /// Answer DNS on this address inside the container (see [`PASTA_DNS_FORWARD`]).
    pub dns_forward: Option<IpAddr>,
    /// Whether the container may reach the host's loopback through the gateway address;
    /// Podman turns this off (`--no-map-gw`), and so does berth by default.
    pub map_gateway: bool,
    pub mtu: Option<u32>,
    /// More arguments, from containers.conf's `pasta_options`.
    pub extra: Vec<String>,
}

impl PastaOptions {
    pub fn new(netns: Netns) -> Self {
        Self {
            netns,
            userns: None,
            ports: Vec::new(),
            dns_forward: Some(PASTA_DNS_FORWARD),
            map_gateway: false,
            mtu: None,
            extra: Vec::new(),
        }
    }
}

/// pasta's form of one mapping: `[ADDR/]HOSTPORT:CONTAINERPORT`.
fn pasta_port(m: &PortMapping) -> String {
    match m.host_ip.filter(|ip| !ip.is_unspecified()) {
        Some(ip) => format!("{ip}/{}:{}", m.host_port, m.container_port),
        None => format!("{}:{}", m.host_port, m.container_port),
    }
}

/// pasta's command line for `opts`, writing its pid to `pid_file`.
pub fn pasta_args(opts: &PastaOptions, pid_file: &Path) -> Result<Vec<OsString>, RootlessError> {
    let mut args: Vec<OsString> = vec!["--config-net".into(), "--quiet".into()];
    args.extend(["--pid".into(), pid_file.as_os_str().to_owned()]);

    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    for m in &opts.ports {
        match m.protocol {
            Protocol::Tcp => tcp.push(pasta_port(m)),
            Protocol::Udp => udp.push(pasta_port(m)),
            Protocol::Sctp => {
                return Err(RootlessError::Protocol { program: PASTA, protocol: m.protocol })
            }
        }
    }
    // Explicit "none": pasta's default "auto" would forward whatever the host listens on.
    for (flag, list) in [("-t", tcp), ("-u", udp)] {
        if list.is_empty() {
            args.extend([flag.into(), "none".into()]);
        }
        for spec in list {
            args.extend([flag.into(), spec.into()]);
        }
    }
    // Nothing from the container to the host's ports, unless asked.
    args.extend(["-T".into(), "none".into(), "-U".into(), "none".into()]);
    if !opts.map_gateway {
        args.push("--no-map-gw".into());
    }
    if let Some(dns) = opts.dns_forward {
        args.extend(["--dns-forward".into(), dns.to_string().into()]);
    }
    if let Some(mtu) = opts.mtu {
        args.extend(["--mtu".into(), mtu.to_string().into()]);
    }
    args.extend(opts.extra.iter().map(OsString::from));
    match &opts.netns {
        Netns::Pid(pid) => args.push(pid.to_string().into()),
        Netns::Path(path) => {
            if let Some(userns) = &opts.userns {
                args.extend(["--userns".into(), userns.as_os_str().to_owned()]);
            }
            args.extend(["--netns".into(), path.as_os_str().to_owned()]);
        }
    }
    Ok(args)
}

/// A process berth started that runs on its own (pasta daemonized, slirp4netns), held by a
/// pidfd so that stopping it can never hit another process that got its pid.
#[derive(Debug)]
pub(super) struct Held {
    program: &'static str,
    pid: u32,
    pidfd: OwnedFd,
}

impl Held {
    pub(super) fn new(program: &'static str, pid: u32) -> Result<Self, RootlessError> {
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor that this
        // function owns alone; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(RootlessError::Pidfd {
                program,
                pid,
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(Self { program, pid, pidfd })
    }

    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` (0 probes); Ok(false) means the process is gone.
    pub(super) fn signal(&self, signal: i32) -> Result<bool, RootlessError> {
        // SAFETY: pidfd_send_signal(2) with a pidfd this value owns, a null siginfo (the
        // kernel fills it in as for kill(2)) and no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ESRCH) {
            return Ok(false);
        }
        Err(RootlessError::Stop { program: self.program, pid: self.pid, source: err })
    }

    /// Waits until the pidfd turns readable (the process exited) or `timeout` passes.
    fn wait_exit(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd { fd: self.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `pfd` is one valid pollfd on this stack frame, and the count says one.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        rc > 0
    }

    /// SIGTERM, a grace period, then SIGKILL.
    pub(super) fn stop(&self) -> Result<(), RootlessError> {
        if !self.signal(libc::SIGTERM)? {
            return Ok(());
        }
        if self.wait_exit(Duration::from_secs(2)) {
            return Ok(());
        }
        tracing::warn!(program = self.program, pid = self.pid, "no exit after SIGTERM; killing");
        self.signal(libc::SIGKILL)?;
        self.wait_exit(Duration::from_secs(2));
        Ok(())
    }
}

/// A running pasta.
#[derive(Debug)]
pub struct Pasta {
    held: Held,
}

impl Pasta {
    /// Runs pasta for `opts` and returns once it is ready (its ports are bound and the
    /// namespace configured). `pid_file` is written by pasta and can be read by a later berth
    /// process to stop it.
    pub fn start(opts: &PastaOptions, pid_file: &Path) -> Result<Self, RootlessError> {
        Self::start_with(Command::new(PASTA), opts, pid_file)
    }

    /// As [`start`](Self::start), with `cmd` as the pasta command (to run it as another user
    /// in tests, or from another path).
    pub fn start_with(
        mut cmd: Command,
        opts: &PastaOptions,
        pid_file: &Path,
    ) -> Result<Self, RootlessError> {
        let args = pasta_args(opts, pid_file)?;
        let netns = opts.netns.path().display().to_string();
        tracing::debug!(?args, netns, "starting pasta");
        let out = cmd
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| RootlessError::Spawn { program: PASTA, source })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            // pasta also reports its failure to reach syslog, which says nothing to the user.
            let stderr: Vec<&str> = stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !is_syslog_noise(l))
                .collect();
            return Err(RootlessError::Setup { program: PASTA, netns, stderr: stderr.join("; ") });
        }
        let pid = read_pid_file(PASTA, pid_file)?;
        Ok(Self { held: Held::new(PASTA, pid)? })
    }

    /// Takes over a pasta started earlier, by its pid file: a later berth command cleaning up
    /// after a container whose monitor died. pasta started for a pid does not exit when that
    /// process dies, so this is how it goes away. `None` when it is not running any more: no
    /// pid file, no such process, or a process that is not pasta (the pid was reused).
    pub fn from_pid_file(pid_file: &Path) -> Result<Option<Self>, RootlessError> {
        if !pid_file.exists() {
            return Ok(None);
        }
        let pid = read_pid_file(PASTA, pid_file)?;
        let held = match Held::new(PASTA, pid) {
            Ok(held) => held,
            Err(RootlessError::Pidfd { source, .. })
                if source.raw_os_error() == Some(libc::ESRCH) =>
            {
                return Ok(None)
            }
            Err(err) => return Err(err),
        };
        // The pidfd pins the process, so its name read now is the name of the held process.
        // Debian's pasta runs as "pasta" or, exec'd by itself, "passt.avx2".
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !(comm.starts_with("pasta") || comm.starts_with("passt")) || is_zombie(pid) {
            return Ok(None);
        }
        Ok(Some(Self { held }))
    }

    pub fn pid(&self) -> u32 {
        self.held.pid
    }

    /// Whether pasta still runs (an exited pasta its parent has not reaped yet does not).
    pub fn is_running(&self) -> Result<bool, RootlessError> {
        Ok(self.held.signal(0)? && !is_zombie(self.held.pid))
    }

    /// Stops pasta (SIGTERM, then SIGKILL after two seconds).
    pub fn stop(self) -> Result<(), RootlessError> {
        self.held.stop()
    }
}

/// Whether `pid` has exited and waits to be reaped: the state field of /proc/PID/stat, after
/// the command name in parentheses (which may itself hold spaces and parentheses).
pub(super) fn is_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    state.is_some_and(|s| s.starts_with('Z') || s.starts_with('X'))
}

/// pasta's complaint that it cannot reach syslog, which says nothing to the user.
fn is_syslog_noise(line: &str) -> bool {
    line.starts_with("Failed to send") && line.ends_with("syslog")
}

pub(super) fn read_pid_file(program: &'static str, path: &Path) -> Result<u32, RootlessError> {
    let text = std::fs::read_to_string(path).map_err(|source| RootlessError::PidFile {
        program,
        path: path.to_owned(),
        source,
    })?;
    text.trim().parse().map_err(|_| RootlessError::PidFile {
        program,
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{:?} is not a pid", text.trim()),
        ),
    })
}

/// How to run slirp4netns for one container.
#[derive(Debug, Clone)]
pub struct SlirpOptions {
    pub netns: Netns,
    pub userns: Option<PathBuf>,
    /// The tap device inside the container, `tap0`.
    pub ifname: String,
    pub mtu: u32,
    /// Whether the container may reach the host's loopback through 10.0.2.2 (Podman: no).
    pub allow_host_loopback: bool,
    pub enable_ipv6: bool,
    /// The API socket, needed for published ports.
    pub api_socket: Option<PathBuf>,
    /// Where slirp4netns's standard error goes; `None` keeps it in a pipe, which only works
    /// while the caller lives (slirp4netns would get SIGPIPE writing to it later).
    pub log_file: Option<PathBuf>,
}

impl SlirpOptions {
    pub fn new(netns: Netns) -> Self {
        Self {
            netns,
            userns: None,
            ifname: "tap0".into(),
            mtu: 65520,
            allow_host_loopback: false,
            enable_ipv6: false,
            api_socket: None,
            log_file: None,
        }
    }
}

/// The address slirp4netns answers DNS on inside the container (`--configure`).
pub const SLIRP_DNS: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 3));

/// The address slirp4netns gives the container (`--configure`, default CIDR 10.0.2.0/24).
pub const SLIRP_GUEST_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 100));
/// The descriptor slirp4netns gets for `--ready-fd`.
const READY_FD: RawFd = 3;

/// slirp4netns's command line for `opts`.
pub fn slirp4netns_args(opts: &SlirpOptions) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--configure".into(),
        format!("--mtu={}", opts.mtu).into(),
        format!("--ready-fd={READY_FD}").into(),
        // Isolate slirp4netns itself, as Podman does.
        "--enable-sandbox".into(),
        "--enable-seccomp".into(),
    ];
    if !opts.allow_host_loopback {
        args.push("--disable-host-loopback".into());
    }
    if opts.enable_ipv6 {
        args.push("--enable-ipv6".into());
    }
    if let Some(api) = &opts.api_socket {
        let mut arg = OsString::from("--api-socket=");
        arg.push(api);
        args.push(arg);
    }
    match &opts.netns {
        Netns::Pid(pid) => args.push(pid.to_string().into()),
        Netns::Path(path) => {
            args.push("--netns-type=path".into());
            if let Some(userns) = &opts.userns {
                let mut arg = OsString::from("--userns-path=");
                arg.push(userns);
                args.push(arg);
            }
            args.push(path.as_os_str().to_owned());
        }
    }
    args.push(opts.ifname.clone().into());
    args
}

/// The API request that forwards one port through slirp4netns.
pub fn slirp_hostfwd_request(m: &PortMapping) -> Result<String, RootlessError> {
    let proto = match m.protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => {
            return Err(RootlessError::Protocol { program: SLIRP, protocol: m.protocol })
        }
    };
    let host_addr = m.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    Ok(serde_json::json!({"execute": "add_hostfwd", "arguments": {
        "proto": proto,
        "host_addr": host_addr.to_string(),
        "host_port": m.host_port,
        "guest_port": m.container_port,
    }})
    .to_string())
}

/// A running slirp4netns. Unlike pasta it stays berth's child; dropping it does not stop it.
#[derive(Debug)]
pub struct Slirp {
    child: Child,
    api_socket: Option<PathBuf>,
}

impl Slirp {
    /// Starts slirp4netns and waits (up to `timeout`) until it reports the tap device ready.
    pub fn start_with(
        mut cmd: Command,
        opts: &SlirpOptions,
        timeout: Duration,
    ) -> Result<Self, RootlessError> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| RootlessError::Spawn { program: SLIRP, source: e.into() })?;
        let write_raw = write.as_raw_fd();
        let stderr = match &opts.log_file {
            Some(path) => Stdio::from(
                std::fs::File::create(path)
                    .map_err(|source| RootlessError::Spawn { program: SLIRP, source })?,
            ),
            None => Stdio::piped(),
        };
        cmd.args(slirp4netns_args(opts)).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
        // SAFETY: runs between fork and exec; dup2(2) is async-signal-safe and allocates
        // nothing. The duplicate at READY_FD has no CLOEXEC, so slirp4netns inherits it;
        // `write` itself stays CLOEXEC and is closed by exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(write_raw, READY_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child =
            cmd.spawn().map_err(|source| RootlessError::Spawn { program: SLIRP, source })?;
        drop(write);

        // slirp4netns writes "1" once ready; EOF first means it died.
        let deadline = Instant::now() + timeout;
        let mut file = std::fs::File::from(read);
        let mut buf = [0u8; 1];
        let mut pfd = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = deadline.saturating_duration_since(Instant::now()).as_millis() as i32;
        // SAFETY: one valid pollfd on the stack, count one.
        let ready =
            unsafe { libc::poll(&mut pfd, 1, ms) } > 0 && matches!(file.read(&mut buf), Ok(1));
        if !ready {
            let _ = child.kill();
            let out = child.wait_with_output();
            let text = match &opts.log_file {
                Some(path) => std::fs::read(path).unwrap_or_default(),
                None => out.map(|o| o.stderr).unwrap_or_default(),
            };
            let stderr = String::from_utf8_lossy(&text).trim().replace('\n', "; ");
            if stderr.is_empty() {
                return Err(RootlessError::Timeout { program: SLIRP, seconds: timeout.as_secs() });
            }
            return Err(RootlessError::Setup {
                program: SLIRP,
                netns: opts.netns.path().display().to_string(),
                stderr,
            });
        }
        Ok(Self { child, api_socket: opts.api_socket.clone() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Forwards one host port to the container through the API socket.
    pub fn add_port(&self, m: &PortMapping) -> Result<(), RootlessError> {
        let Some(path) = &self.api_socket else {
            return Err(RootlessError::Api {
                path: PathBuf::new(),
                step: "no API socket configured".into(),
                source: None,
            });
        };
        let api = |step: &str, source| RootlessError::Api {
            path: path.clone(),
            step: step.to_owned(),
            source,
        };
        let request = slirp_hostfwd_request(m)?;
        let mut stream = UnixStream::connect(path).map_err(|e| api("connecting", Some(e)))?;
        stream.write_all(request.as_bytes()).map_err(|e| api("sending add_hostfwd", Some(e)))?;
        stream
            .shutdown(std::net::Shutdown::Write)
            .map_err(|e| api("sending add_hostfwd", Some(e)))?;
        let mut reply = String::new();
        BufReader::new(stream)
            .read_line(&mut reply)
            .map_err(|e| api("reading the reply", Some(e)))?;
        let value: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
        if value.get("error").is_some() || value.get("return").is_none() {
            return Err(api(&format!("add_hostfwd {}: {}", m, reply.trim()), None));
        }
        Ok(())
    }

    /// Stops a slirp4netns started by an earlier berth process, by the pid file that process
    /// wrote; no pid file, no such process or a reused pid (another program) is no error.
    pub fn stop_by_pid_file(pid_file: &Path) -> Result<(), RootlessError> {
        if !pid_file.exists() {
            return Ok(());
        }
        let pid = read_pid_file(SLIRP, pid_file)?;
        let held = match Held::new(SLIRP, pid) {
            Ok(held) => held,
            Err(RootlessError::Pidfd { source, .. })
                if source.raw_os_error() == Some(libc::ESRCH) =>
            {
                return Ok(())
            }
            Err(err) => return Err(err),
        };
        // The pidfd pins the process, so the name read now is the held process's.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !comm.starts_with(SLIRP) || is_zombie(pid) {
            return Ok(());
        }
        held.stop()
    }

    /// Stops slirp4netns and reaps it.
    pub fn stop(mut self) -> Result<(), RootlessError> {
        let pid = self.child.id();
        let stop = |source| RootlessError::Stop { program: SLIRP, pid, source };
        match self.child.try_wait().map_err(stop)? {
            Some(_) => Ok(()),
            None => {
                self.child.kill().map_err(stop)?;
                self.child.wait().map_err(stop)?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|a| a.to_str().unwrap()).collect()
    }

    fn mapping(ip: Option<&str>, host: u16, ctr: u16, protocol: Protocol) -> PortMapping {
        PortMapping {
            host_ip: ip.map(|i| i.parse().unwrap()),
            host_port: host,
            container_port: ctr,
            protocol,
        }
    }

    #[test]
    fn pasta_command_line() {
        let mut opts = PastaOptions::new(Netns::Pid(4242));
        opts.ports = vec![
            mapping(Some("127.0.0.1"), 8080, 80, Protocol::Tcp),
            mapping(None, 5353, 53, Protocol::Udp),
            mapping(Some("::1"), 8443, 443, Protocol::Tcp),
        ];
        let args = pasta_args(&opts, Path::new("/run/x/pasta.pid")).unwrap();
        assert_eq!(
            strs(&args),
            [
                "--config-net",
                "--quiet",
                "--pid",
                "/run/x/pasta.pid",
                "-t",
                "127.0.0.1/8080:80",
                "-t",
                "::1/8443:443",
                "-u",
                "5353:53",
                "-T",
                "none",
                "-U",
                "none",
                "--no-map-gw",
                "--dns-forward",
                "169.254.1.1",
                "4242"
            ]
        );

        let mut opts = PastaOptions::new(Netns::Path("/run/user/1000/netns/c1".into()));
        opts.userns = Some("/proc/77/ns/user".into());
        opts.dns_forward = None;
        opts.map_gateway = true;
        let args = pasta_args(&opts, Path::new("/p")).unwrap();
        assert_eq!(
            strs(&args),
            [
                "--config-net",
                "--quiet",
                "--pid",
                "/p",
                "-t",
                "none",
                "-u",
                "none",
                "-T",
                "none",
                "-U",
                "none",
                "--userns",
                "/proc/77/ns/user",
                "--netns",
                "/run/user/1000/netns/c1"
            ]
        );

        opts.ports = vec![mapping(None, 9, 9, Protocol::Sctp)];
        let err = pasta_args(&opts, Path::new("/p")).unwrap_err().to_string();
        assert_eq!(err, "publishing sctp ports through pasta is not supported yet");
    }

    #[test]
    fn slirp_command_line_and_requests() {
        let mut opts = SlirpOptions::new(Netns::Pid(99));
        opts.api_socket = Some("/run/x/slirp.sock".into());
        assert_eq!(
            strs(&slirp4netns_args(&opts)),
            [
                "--configure",
                "--mtu=65520",
                "--ready-fd=3",
                "--enable-sandbox",
                "--enable-seccomp",
                "--disable-host-loopback",
                "--api-socket=/run/x/slirp.sock",
                "99",
                "tap0"
            ]
        );
        let req =
            slirp_hostfwd_request(&mapping(Some("127.0.0.1"), 8080, 80, Protocol::Tcp)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&req).unwrap();
        assert_eq!(v["execute"], "add_hostfwd");
        assert_eq!(v["arguments"]["host_addr"], "127.0.0.1");
        assert_eq!(v["arguments"]["host_port"], 8080);
        assert_eq!(v["arguments"]["guest_port"], 80);
    }

    #[test]
    fn privileged_ports_name_the_sysctl() {
        let ports = [mapping(None, 8080, 80, Protocol::Tcp), mapping(None, 80, 80, Protocol::Tcp)];
        let err = check_ports_against(&ports, 1024).unwrap_err().to_string();
        assert!(
            err.contains("port 80 rootless") && err.contains("net.ipv4.ip_unprivileged_port_start"),
            "{err}"
        );
        assert!(check_ports_against(&ports, 80).is_ok());
        check_unprivileged_ports(&[]).unwrap();
    }
}
