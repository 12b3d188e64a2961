//! Name resolution between containers of a network, through aardvark-dns (Debian's
//! aardvark-dns package, the server Podman uses): containers reach each other by name and
//! alias, and other names are forwarded to the host's resolvers.
//!
//! Why aardvark-dns rather than a server of berth's own: it is packaged, small, already speaks
//! the configuration berth needs, and reloads on SIGHUP, so one process serves every network
//! of a host. berth writes one file per network into a configuration directory (the runroot's
//! `aardvark-dns/`): the first line lists the addresses to listen on (the network's gateways),
//! each further line is `ID IPV4S IPV6S NAMES` for one container. aardvark-dns forks into the
//! background once it listens and keeps its pid in `aardvark.pid` in that directory; a later
//! change is a rewrite of the file and a SIGHUP, and the last network going stops it.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
/// server follow: started if it is not running, told to reload with SIGHUP if it is, stopped
/// when no network is left. `port` is the port to serve on (53; tests may pick another).
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

    let running = running(dir)?;
    let networks_left =
        std::fs::read_dir(dir).map_err(|e| write(dir, e))?.filter_map(Result::ok).any(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            !n.starts_with('.') && n != "aardvark.pid"
        });
    match (running, networks_left) {
        (Some(server), true) => {
            server.signal(libc::SIGHUP)?;
        }
        (Some(server), false) => {
            server.stop()?;
            let _ = std::fs::remove_file(dir.join("aardvark.pid"));
        }
        (None, true) => start(dir, port)?,
        (None, false) => {}
    }
    Ok(())
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

fn start(dir: &Path, port: u16) -> Result<(), DnsError> {
    let out = Command::new(program()?)
        .arg("--config")
        .arg(dir)
        .args(["-p", &port.to_string(), "run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(DnsError::Spawn)?;
    // aardvark-dns complains on stderr when there is no syslog; that is no failure.
    if !out.status.success() || running(dir)?.is_none() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.contains("syslog"))
            .collect();
        return Err(DnsError::Start { dir: dir.to_owned(), stderr: lines.join("; ") });
    }
    tracing::debug!(?dir, port, "aardvark-dns started");
    Ok(())
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
}
