//! A container's /etc/hosts and /etc/resolv.conf, written as Podman writes them.
//!
//! hosts: the `--add-host` entries first (so they win over everything), then the container's
//! own addresses with its hostname, name and network aliases, then localhost (unless the base
//! file has it), then `host.containers.internal`, then the base file (the host's /etc/hosts,
//! as containers.conf's default `base_hosts_file` asks).
//!
//! resolv.conf: nameservers are `--dns` where given, else the host's own minus loopback ones
//! (127.0.0.0/8 and ::1 mean nothing in another network namespace), minus IPv6 ones when the
//! container has no IPv6, falling back to Google's public resolvers when nothing is left, as
//! Podman does. A resolver berth puts in front — the network's own DNS server, or pasta's DNS
//! forwarder rootless — comes first. `--dns-search` and `--dns-option` replace the host's
//! search and options lines; a search of `.` means none.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// Errors of the hosts and resolv.conf input, one line each, naming the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilesError {
    #[error("invalid --add-host {value:?}: expected HOST:IP")]
    AddHostForm { value: String },
    #[error("invalid --add-host {value:?}: {ip:?} is not an IP address or host-gateway")]
    AddHostIp { value: String, ip: String },
    #[error("invalid --add-host {value:?}: host-gateway has no address here (rootless without a gateway?)")]
    HostGateway { value: String },
    #[error("invalid hostname {name:?}: use letters, digits, '-' and '.', at most 253 characters")]
    Hostname { name: String },
    #[error("invalid --dns-search {domain:?}: it contains whitespace")]
    Search { domain: String },
}

/// One `--add-host NAME:IP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddHost {
    pub names: Vec<String>,
    pub ip: IpAddr,
}

/// Parses `--add-host` values: `NAME:IP`, `NAME=IP`, `NAME:[IPv6]`, `NAME:IPv6`, several names
/// as `a;b:IP`, and `host-gateway` for `host_gateway` (the address under which the container
/// reaches the host).
pub fn parse_add_host(value: &str, host_gateway: Option<IpAddr>) -> Result<AddHost, FilesError> {
    let split = value.find([':', '=']);
    let Some(at) = split else {
        return Err(FilesError::AddHostForm { value: value.to_owned() });
    };
    let (names, ip) = (&value[..at], &value[at + 1..]);
    let names: Vec<String> = names.split(';').map(str::to_owned).collect();
    if names.iter().any(|n| n.is_empty() || n.chars().any(char::is_whitespace)) {
        return Err(FilesError::AddHostForm { value: value.to_owned() });
    }
    let ip_text = ip.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(ip);
    let ip = if ip_text == "host-gateway" {
        host_gateway.ok_or_else(|| FilesError::HostGateway { value: value.to_owned() })?
    } else {
        ip_text
            .parse()
            .map_err(|_| FilesError::AddHostIp { value: value.to_owned(), ip: ip.to_owned() })?
    };
    Ok(AddHost { names, ip })
}

/// Checks a hostname (`--hostname`, a container name used as one): RFC 1123 labels.
pub fn validate_hostname(name: &str) -> Result<(), FilesError> {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(FilesError::Hostname { name: name.to_owned() })
    }
}

/// What goes into a container's /etc/hosts.
#[derive(Debug, Clone, Default)]
pub struct HostsOptions {
    pub hostname: String,
    pub container_name: String,
    /// Network aliases of the container (`--network-alias`).
    pub aliases: Vec<String>,
    /// The container's own addresses on its networks.
    pub addresses: Vec<IpAddr>,
    pub add_hosts: Vec<AddHost>,
    /// The host as the container reaches it, written as `host.containers.internal`.
    pub host_ip: Option<IpAddr>,
    /// The base file's text (the host's /etc/hosts), `None` for none.
    pub base: Option<String>,
}

/// The text of /etc/hosts for `opts`.
pub fn hosts_file(opts: &HostsOptions) -> String {
    let mut out = String::new();
    let mut line = |ip: &dyn std::fmt::Display, names: &[&str]| {
        out.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    };

    for add in &opts.add_hosts {
        let names: Vec<&str> = add.names.iter().map(String::as_str).collect();
        line(&add.ip, &names);
    }

    let mut own: Vec<&str> = vec![opts.hostname.as_str()];
    for name in std::iter::once(&opts.container_name).chain(&opts.aliases) {
        if !name.is_empty() && !own.contains(&name.as_str()) {
            own.push(name);
        }
    }
    own.retain(|n| !n.is_empty());
    if !own.is_empty() {
        if opts.addresses.is_empty() {
            // --network none: the name still resolves, to loopback, as Podman writes it.
            line(&Ipv4Addr::LOCALHOST, &own);
            line(&Ipv6Addr::LOCALHOST, &own);
        }
        for addr in &opts.addresses {
            line(addr, &own);
        }
    }

    let base = opts.base.as_deref().unwrap_or("");
    let base_has_localhost = base.lines().any(|l| {
        let l = l.split('#').next().unwrap_or("");
        l.split_whitespace().skip(1).any(|n| n == "localhost")
    });
    if !base_has_localhost {
        line(
            &Ipv4Addr::LOCALHOST,
            &["localhost", "localhost.localdomain", "localhost4", "localhost4.localdomain4"],
        );
        line(
            &Ipv6Addr::LOCALHOST,
            &["localhost", "localhost.localdomain", "localhost6", "localhost6.localdomain6"],
        );
    }
    if let Some(host) = opts.host_ip {
        line(&host, &["host.containers.internal", "host.docker.internal"]);
    }
    for l in base.lines() {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// What goes into a container's /etc/resolv.conf.
#[derive(Debug, Clone, Default)]
pub struct ResolvOptions {
    /// The host's resolv.conf text (see [`host_resolv_conf_path`]).
    pub host: String,
    /// `--dns`.
    pub servers: Vec<IpAddr>,
    /// `--dns-search`; `["."]` means none.
    pub search: Vec<String>,
    /// `--dns-option`.
    pub options: Vec<String>,
    /// Resolvers berth puts first: the network's DNS server, or pasta's DNS forwarder.
    pub first: Vec<IpAddr>,
    /// Whether the container has IPv6 connectivity.
    pub ipv6: bool,
    /// The container shares the host's network (`--network host`): loopback servers work.
    pub host_network: bool,
}

/// The public resolvers Podman falls back on when the host offers none usable.
const FALLBACK_V4: [Ipv4Addr; 2] = [Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(8, 8, 4, 4)];
const FALLBACK_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888),
    Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8844),
];

/// The host's resolv.conf to start from: /etc/resolv.conf, unless it names only
/// systemd-resolved's stub 127.0.0.53, when the upstream list
/// /run/systemd/resolve/resolv.conf is the useful one (as Podman reads it).
pub fn host_resolv_conf_path() -> PathBuf {
    let etc = Path::new("/etc/resolv.conf");
    let upstream = Path::new("/run/systemd/resolve/resolv.conf");
    let only_stub = std::fs::read_to_string(etc).is_ok_and(|text| {
        let servers = nameservers(&text);
        !servers.is_empty()
            && servers.iter().all(|s| *s == IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53)))
    });
    if only_stub && upstream.exists() {
        upstream.to_path_buf()
    } else {
        etc.to_path_buf()
    }
}

fn nameservers(text: &str) -> Vec<IpAddr> {
    keyword_lines(text, "nameserver")
        .filter_map(|rest| rest.split_whitespace().next()?.split('%').next()?.parse().ok())
        .collect()
}

fn keyword_lines<'a>(text: &'a str, keyword: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    text.lines().filter_map(move |l| {
        let l = l.trim_start();
        let rest = l.strip_prefix(keyword)?;
        rest.starts_with([' ', '\t']).then_some(rest.trim())
    })
}

/// The text of /etc/resolv.conf for `opts`.
pub fn resolv_conf(opts: &ResolvOptions) -> Result<String, FilesError> {
    if let Some(bad) = opts.search.iter().find(|d| d.chars().any(char::is_whitespace)) {
        return Err(FilesError::Search { domain: bad.clone() });
    }
    let usable =
        |ip: &IpAddr| (opts.ipv6 || ip.is_ipv4()) && (opts.host_network || !ip.is_loopback());

    let mut servers: Vec<IpAddr> = if opts.servers.is_empty() {
        let mut from_host: Vec<IpAddr> =
            nameservers(&opts.host).into_iter().filter(usable).collect();
        if from_host.is_empty() && opts.first.is_empty() {
            from_host.extend(FALLBACK_V4.map(IpAddr::V4));
            if opts.ipv6 {
                from_host.extend(FALLBACK_V6.map(IpAddr::V6));
            }
        }
        from_host
    } else {
        opts.servers.clone()
    };
    let mut all = opts.first.clone();
    all.retain(|s| !servers.contains(s));
    all.append(&mut servers);

    let search: Vec<String> = if opts.search.is_empty() {
        keyword_lines(&opts.host, "search")
            .last()
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    } else if opts.search.iter().all(|d| d == ".") {
        Vec::new()
    } else {
        opts.search.iter().filter(|d| *d != ".").cloned().collect()
    };
    let options: Vec<String> = if opts.options.is_empty() {
        keyword_lines(&opts.host, "options")
            .flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    } else {
        opts.options.clone()
    };

    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for server in all {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn add_host_forms() {
        let gw = Some(ip("10.88.0.1"));
        assert_eq!(
            parse_add_host("db:10.0.0.5", gw).unwrap(),
            AddHost { names: vec!["db".into()], ip: ip("10.0.0.5") }
        );
        assert_eq!(parse_add_host("db=10.0.0.5", gw).unwrap().ip, ip("10.0.0.5"));
        assert_eq!(parse_add_host("v6:::1", gw).unwrap().ip, ip("::1"));
        assert_eq!(parse_add_host("v6:[fd00::2]", gw).unwrap().ip, ip("fd00::2"));
        assert_eq!(parse_add_host("a;b:10.0.0.1", gw).unwrap().names, vec!["a", "b"]);
        assert_eq!(parse_add_host("gw:host-gateway", gw).unwrap().ip, ip("10.88.0.1"));

        assert_eq!(
            parse_add_host("nocolon", gw).unwrap_err().to_string(),
            "invalid --add-host \"nocolon\": expected HOST:IP"
        );
        assert_eq!(
            parse_add_host("db:10.0.0", gw).unwrap_err().to_string(),
            "invalid --add-host \"db:10.0.0\": \"10.0.0\" is not an IP address or host-gateway"
        );
        assert!(parse_add_host("gw:host-gateway", None)
            .unwrap_err()
            .to_string()
            .contains("host-gateway has no address"));
        assert!(parse_add_host(":10.0.0.1", gw).is_err());
    }

    #[test]
    fn hostnames() {
        for ok in ["web", "web-1.example.com", "a1b2c3d4e5f6"] {
            validate_hostname(ok).unwrap();
        }
        for bad in ["", "-web", "web-", "a..b", "has space", &"x".repeat(64)] {
            assert!(validate_hostname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hosts_file_order_and_content() {
        let opts = HostsOptions {
            hostname: "abc123".into(),
            container_name: "web".into(),
            aliases: vec!["www".into(), "web".into()],
            addresses: vec![ip("10.88.0.2")],
            add_hosts: vec![parse_add_host("db:10.0.0.5", None).unwrap()],
            host_ip: Some(ip("10.88.0.1")),
            base: Some("# host file\n192.168.1.9\tnas\n".into()),
        };
        let text = hosts_file(&opts);
        assert_eq!(
            text,
            "10.0.0.5\tdb\n\
             10.88.0.2\tabc123 web www\n\
             127.0.0.1\tlocalhost localhost.localdomain localhost4 localhost4.localdomain4\n\
             ::1\tlocalhost localhost.localdomain localhost6 localhost6.localdomain6\n\
             10.88.0.1\thost.containers.internal host.docker.internal\n\
             # host file\n\
             192.168.1.9\tnas\n"
        );

        // A base with localhost gets no second localhost; no network: names on loopback.
        let opts = HostsOptions {
            hostname: "h".into(),
            base: Some("127.0.0.1 localhost\n".into()),
            ..Default::default()
        };
        assert_eq!(hosts_file(&opts), "127.0.0.1\th\n::1\th\n127.0.0.1 localhost\n");
    }

    const HOST: &str = "# generated\nsearch corp.example lan\nnameserver 127.0.0.53\n\
                        nameserver 10.255.255.53\nnameserver fd00::53\noptions edns0 trust-ad\n";

    #[test]
    fn resolv_conf_from_the_host_minus_loopback() {
        let opts = ResolvOptions { host: HOST.into(), ..Default::default() };
        assert_eq!(
            resolv_conf(&opts).unwrap(),
            "search corp.example lan\nnameserver 10.255.255.53\noptions edns0 trust-ad\n"
        );
        let v6 = ResolvOptions { host: HOST.into(), ipv6: true, ..Default::default() };
        assert!(resolv_conf(&v6).unwrap().contains("nameserver fd00::53\n"));
        let host_net =
            ResolvOptions { host: HOST.into(), host_network: true, ..Default::default() };
        assert!(resolv_conf(&host_net).unwrap().contains("nameserver 127.0.0.53\n"));
    }

    #[test]
    fn resolv_conf_flags_and_fallbacks() {
        let opts = ResolvOptions {
            host: HOST.into(),
            servers: vec![ip("1.1.1.1")],
            search: vec!["example.org".into()],
            options: vec!["ndots:2".into()],
            first: vec![ip("169.254.1.1")],
            ..Default::default()
        };
        assert_eq!(
            resolv_conf(&opts).unwrap(),
            "search example.org\nnameserver 169.254.1.1\nnameserver 1.1.1.1\noptions ndots:2\n"
        );

        let only_loopback = ResolvOptions {
            host: "nameserver 127.0.0.1\n".into(),
            search: vec![".".into()],
            ..Default::default()
        };
        assert_eq!(
            resolv_conf(&only_loopback).unwrap(),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );

        // With a forwarder in front there is no fallback to public resolvers.
        let forwarder = ResolvOptions {
            host: "nameserver 127.0.0.1\n".into(),
            first: vec![ip("169.254.1.1")],
            ..Default::default()
        };
        assert_eq!(resolv_conf(&forwarder).unwrap(), "nameserver 169.254.1.1\n");

        let bad = ResolvOptions { search: vec!["a b".into()], ..Default::default() };
        assert_eq!(
            resolv_conf(&bad).unwrap_err().to_string(),
            "invalid --dns-search \"a b\": it contains whitespace"
        );
    }
}
