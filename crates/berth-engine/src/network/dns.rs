//! Name resolution between containers of a network, through aardvark-dns (Debian's
//! aardvark-dns package, the server Podman uses): containers reach each other by name and
//! alias, and other names are forwarded to the host's resolvers.
//!
//! Why aardvark-dns rather than a server of berth's own: it is packaged, small, already speaks
//! the configuration berth needs, and reloads on SIGHUP, so one process serves every network
//! of a host. berth writes one file per network into a configuration directory (the runroot's
//! `aardvark-dns/`): the first line lists the addresses to listen on (the network's gateways),
//! each further line is `ID IPV4S IPV6S NAMES` for one container. aardvark-dns forks into the
//! background and keeps its pid in `aardvark.pid` in that directory; the last network going
//! stops it.
//!
//! How the server is started and restarted follows what strace showed of Debian 12's
//! aardvark-dns 1.4:
//!
//! - Its pid file is written, and the starting process exits, *before* the listener threads
//!   bind (27 ms apart in one trace), so a query sent as soon as `aardvark-dns run` returns is
//!   refused. Readiness is therefore taken from the sockets: [`update`] waits until every
//!   listen address of every network is bound on the DNS port, as the server's own
//!   `/proc/PID/net/udp` shows.
//! - On SIGHUP it tears down every listener and binds them again (aardvark-dns issue 389,
//!   changed in 1.11), silently dropping what arrives meanwhile, and nothing outside shows
//!   when the new listeners are bound. berth therefore restarts the server on a change: the
//!   new process's sockets are the readiness signal, and a query in the gap is refused at
//!   once (ICMP port unreachable) rather than left to time out.
//!
//! The flake that once kept the DNS test out of CI (a query from a container unanswered for
//! 15 s, about one run in three) was not aardvark-dns at all: the bridge's MAC address changed
//! when a third container joined, so the containers' cached gateway address went nowhere. The
//! bridge now has a fixed address; see [`bridge::ensure_bridge`](super::bridge::ensure_bridge).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::ipam::Network;
use super::rootless::{is_zombie, read_pid_file, Held, RootlessError};

/// Errors of the DNS configuration and server, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("writing the DNS configuration {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("aardvark-dns is not installed (looked for {looked})")]
    Missing { looked: String },
    #[error("running aardvark-dns")]
    Spawn(#[source] std::io::Error),
    #[error("aardvark-dns failed to start for {dir}: {stderr}")]
    Start { dir: PathBuf, stderr: String },
    #[error("aardvark-dns pid {pid} did not listen on {addr} port {port} within {seconds} s")]
    Listen { pid: u32, addr: IpAddr, port: u16, seconds: u64 },
    #[error("reading the DNS configuration {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("network {network} has no gateway address to serve DNS on")]
    NoGateway { network: String },
    #[error("name {name:?} of container {container} cannot go into the DNS configuration")]
    Name { name: String, container: String },
    #[error(transparent)]
    Process(#[from] RootlessError),
}

const PROGRAM: &str = "aardvark-dns";
/// Where Debian and Fedora install it; PATH is tried last.
const CANDIDATES: [&str; 2] = ["/usr/lib/podman/aardvark-dns", "/usr/libexec/podman/aardvark-dns"];

/// One container's names on a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEntry {
    pub container_id: String,
    pub addresses: Vec<IpAddr>,
    /// The container's name first, then its aliases.
    pub names: Vec<String>,
}

/// The text of a network's aardvark-dns configuration file.
pub fn network_config(net: &Network, entries: &[DnsEntry]) -> Result<String, DnsError> {
    let gateways: Vec<String> =
        net.subnets.iter().filter_map(|s| s.gateway).map(|g| g.to_string()).collect();
    if gateways.is_empty() {
        return Err(DnsError::NoGateway { network: net.name.clone() });
    }
    let mut out = gateways.join(",");
    out.push('\n');
    for entry in entries {
        let join = |v6: bool| {
            let list: Vec<String> = entry
                .addresses
                .iter()
                .filter(|a| a.is_ipv6() == v6)
                .map(|a| a.to_string())
                .collect();
            list.join(",")
        };
        for name in entry.names.iter().chain([&entry.container_id]) {
            let ok = !name.is_empty() && !name.contains([',', ' ', '\t', '\n']);
            if !ok {
                return Err(DnsError::Name {
                    name: name.clone(),
                    container: entry.container_id.clone(),
                });
            }
        }
        let _ = writeln!(
            out,
            "{} {} {} {}",
            entry.container_id,
            join(false),
            join(true),
            entry.names.join(",")
        );
    }
    Ok(out)
}

/// Finds the aardvark-dns binary.
pub fn program() -> Result<PathBuf, DnsError> {
    for candidate in CANDIDATES {
        if Path::new(candidate).exists() {
            return Ok(PathBuf::from(candidate));
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(PROGRAM);
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(DnsError::Missing { looked: format!("{} and PATH", CANDIDATES.join(", ")) })
}

/// Writes (or, with `None`, removes) network `name`'s file in `dir` atomically, then makes the
/// server follow: a running server is stopped, and a fresh one started while any network is
/// left; this returns once the new server listens on every address. `port` is the port to
/// serve on (53; tests may pick another). The caller sets up the networks' bridges, with
/// their gateway addresses, before calling this, since the server binds those addresses.
pub fn update(dir: &Path, name: &str, config: Option<&str>, port: u16) -> Result<(), DnsError> {
    let write = |path: &Path, source| DnsError::Write { path: path.to_owned(), source };
    std::fs::create_dir_all(dir).map_err(|e| write(dir, e))?;
    let file = dir.join(name);
    match config {
        Some(text) => {
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, text).map_err(|e| write(&tmp, e))?;
            std::fs::rename(&tmp, &file).map_err(|e| write(&file, e))?;
        }
        None => match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(write(&file, e)),
            _ => {}
        },
    }

    // A restart rather than a SIGHUP: see the module documentation for why.
    if let Some(server) = running(dir)? {
        server.stop()?;
        let _ = std::fs::remove_file(dir.join("aardvark.pid"));
    }
    let listen = listen_addresses(dir)?;
    if !listen.is_empty() {
        start(dir, port, &listen)?;
    }
    Ok(())
}

/// Stops the server of `dir` if one runs, leaving the configuration files in place.
pub fn stop(dir: &Path) -> Result<(), DnsError> {
    if let Some(server) = running(dir)? {
        server.stop()?;
    }
    let _ = std::fs::remove_file(dir.join("aardvark.pid"));
    Ok(())
}

/// The addresses every network file of `dir` asks the server to listen on: the first line
/// of each, comma-separated.
fn listen_addresses(dir: &Path) -> Result<Vec<IpAddr>, DnsError> {
    let read = |path: &Path, source| DnsError::Read { path: path.to_owned(), source };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read(dir, e))? {
        let entry = entry.map_err(|e| read(dir, e))?;
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with('.') || file_name == "aardvark.pid" {
            continue;
        }
        let path = entry.path();
        let text = std::fs::read_to_string(&path).map_err(|e| read(&path, e))?;
        let first = text.lines().next().unwrap_or_default();
        for addr in first.split(',').filter_map(|a| a.trim().parse::<IpAddr>().ok()) {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    Ok(out)
}

/// The running server of `dir`, if any.
fn running(dir: &Path) -> Result<Option<Held>, DnsError> {
    let pid_file = dir.join("aardvark.pid");
    if !pid_file.exists() {
        return Ok(None);
    }
    let pid = read_pid_file(PROGRAM, &pid_file)?;
    let held = match Held::new(PROGRAM, pid) {
        Ok(held) => held,
        Err(RootlessError::Pidfd { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {
            return Ok(None)
        }
        Err(err) => return Err(err.into()),
    };
    // The pidfd pins the process: a reused pid shows another name.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if !comm.starts_with("aardvark") || is_zombie(pid) {
        return Ok(None);
    }
    Ok(Some(held))
}

/// How long a fresh server may take to bind its sockets; generous, for a loaded machine.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

fn start(dir: &Path, port: u16, listen: &[IpAddr]) -> Result<(), DnsError> {
    let out = Command::new(program()?)
        .arg("--config")
        .arg(dir)
        .args(["-p", &port.to_string(), "run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(DnsError::Spawn)?;
    let failed = |stderr: &[u8]| {
        // aardvark-dns complains on stderr when there is no syslog; that is no failure.
        let stderr = String::from_utf8_lossy(stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.contains("syslog"))
            .collect();
        DnsError::Start { dir: dir.to_owned(), stderr: lines.join("; ") }
    };
    let Some(server) = running(dir)?.filter(|_| out.status.success()) else {
        return Err(failed(&out.stderr));
    };

    // Ready once every listener is bound: the pid file comes before the sockets.
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    let mut missing = listen.to_vec();
    loop {
        let bound = bound_udp(server.pid());
        missing.retain(|addr| !bound.contains(&SocketAddr::new(*addr, port)));
        if missing.is_empty() {
            break;
        }
        if !server.signal(0)? || is_zombie(server.pid()) {
            return Err(failed(&out.stderr));
        }
        if Instant::now() >= deadline {
            let pid = server.pid();
            let _ = server.stop();
            let _ = std::fs::remove_file(dir.join("aardvark.pid"));
            return Err(DnsError::Listen {
                pid,
                addr: missing[0],
                port,
                seconds: LISTEN_TIMEOUT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    tracing::debug!(?dir, port, pid = server.pid(), "aardvark-dns listening");
    Ok(())
}

/// The UDP sockets bound in the network namespace of process `pid`, from its
/// `/proc/PID/net/udp` and `udp6` (the namespace of that process, not of the reader).
fn bound_udp(pid: u32) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for file in ["udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap_or_default();
        out.extend(text.lines().skip(1).filter_map(parse_proc_udp_line));
    }
    out
}

/// The local address of one line of /proc/net/udp or udp6: `sl ADDR:PORT …`, where ADDR is
/// the address's bytes printed as native-endian 32-bit words in hex and PORT is hex.
fn parse_proc_udp_line(line: &str) -> Option<SocketAddr> {
    let local = line.split_whitespace().nth(1)?;
    let (addr, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::from(word(0)?),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::from(bytes)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ipam::{plan_network, CreateOptions};

    #[test]
    fn the_configuration_file_has_aardvarks_format() {
        let opts = CreateOptions {
            name: "web".into(),
            subnets: vec!["10.89.3.0/24".parse().unwrap(), "fd00:3::/64".parse().unwrap()],
            ..Default::default()
        };
        let net = plan_network(&opts, "id", &[], &[]).unwrap();
        let entries = [
            DnsEntry {
                container_id: "abc".into(),
                addresses: vec!["10.89.3.2".parse().unwrap(), "fd00:3::2".parse().unwrap()],
                names: vec!["db".into(), "database".into()],
            },
            DnsEntry {
                container_id: "def".into(),
                addresses: vec!["10.89.3.3".parse().unwrap()],
                names: vec!["app".into()],
            },
        ];
        assert_eq!(
            network_config(&net, &entries).unwrap(),
            "10.89.3.1,fd00:3::1\nabc 10.89.3.2 fd00:3::2 db,database\ndef 10.89.3.3  app\n"
        );
        let bad = DnsEntry { names: vec!["a b".into()], ..entries[1].clone() };
        let err = network_config(&net, &[bad]).unwrap_err().to_string();
        assert_eq!(err, "name \"a b\" of container def cannot go into the DNS configuration");
    }

    #[test]
    fn proc_net_udp_lines_give_the_bound_address() {
        // 10.250.13.1:53 and [fd00::1]:53 as this machine's kernel prints them.
        let v4 = format!(
            "  12: {:08X}:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0",
            u32::from_ne_bytes([10, 250, 13, 1])
        );
        assert_eq!(parse_proc_udp_line(&v4), Some("10.250.13.1:53".parse().unwrap()));
        let b: [u8; 16] = "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
        let words: String = b
            .chunks(4)
            .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
            .collect();
        let v6 = format!("  3: {words}:0035 00000000000000000000000000000000:0000 07");
        assert_eq!(parse_proc_udp_line(&v6), Some("[fd00::1]:53".parse().unwrap()));
        assert_eq!(parse_proc_udp_line("  sl  local_address rem_address"), None);
    }
}
