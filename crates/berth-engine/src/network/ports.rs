//! Published ports: the `-p [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]` grammar of Docker and Podman,
//! port ranges, and the `-P` expansion of an image's EXPOSEd ports onto free host ports.
//!
//! Parsing is pure: [`PortSpec::parse`] turns one `-p` argument into a validated spec whose
//! [`Display`](fmt::Display) form parses back to the same spec. A spec with no host port (`-p 80`
//! or `-p 127.0.0.1::80`) or with a host range for a single container port (`-p 8000-8010:80`)
//! leaves the choice of a host port to [`PortSpec::resolve`], which asks a [`PortChooser`]; the
//! real chooser, [`FreePorts`], binds port 0 (or tries the range) on the host address and holds
//! each socket until every port of a run is chosen, so one run never picks the same port twice.
//!
//! Errors are one line and name the part of the argument that is wrong, as a user who typed
//! `-p 80800:80` needs to see.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd as _, BorrowedFd};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors of parsing and resolving published ports. Each names the argument and its bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("invalid port spec {spec:?}: it is empty")]
    Empty { spec: String },
    #[error("invalid port spec {spec:?}: too many ':'-separated parts (IPv6 addresses go in [])")]
    TooManyParts { spec: String },
    #[error(
        "invalid port spec {spec:?}: after a host IP comes HOSTPORT:CONTAINERPORT, or \
         :CONTAINERPORT for a free host port"
    )]
    MissingHostPort { spec: String },
    #[error("invalid port spec {spec:?}: host IP {ip:?} is not an IPv4 or bracketed IPv6 address")]
    HostIp { spec: String, ip: String },
    #[error("invalid port spec {spec:?}: {which} port {part:?} is not a number from 1 to 65535")]
    Port { spec: String, which: &'static str, part: String },
    #[error("invalid port spec {spec:?}: {which} port range {part:?} ends before it starts")]
    ReversedRange { spec: String, which: &'static str, part: String },
    #[error(
        "invalid port spec {spec:?}: host range {host} has {host_len} ports but container range \
         {container} has {container_len}"
    )]
    RangeLengths {
        spec: String,
        host: String,
        host_len: u32,
        container: String,
        container_len: u32,
    },
    #[error("invalid port spec {spec:?}: protocol {protocol:?} is not tcp, udp or sctp")]
    Protocol { spec: String, protocol: String },
    #[error("invalid exposed port {port:?}: expected PORT[/PROTO] or START-END[/PROTO]")]
    Exposed { port: String },
    #[error("no free {protocol} host port on {ip} in {range}")]
    NoFreePort { ip: IpAddr, protocol: Protocol, range: PortRange },
    #[error("host port {port}/{protocol} on {ip} is already in use")]
    InUse { ip: IpAddr, port: u16, protocol: Protocol },
    #[error("cannot bind host port {port}/{protocol} on {ip}: {reason}")]
    Bind { ip: IpAddr, port: u16, protocol: Protocol, reason: String },
    #[error("host port {port}/{protocol} on {ip} is published twice")]
    Duplicate { ip: IpAddr, port: u16, protocol: Protocol },
}

/// A transport protocol a port can be published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(()),
        }
    }
}

/// An inclusive range of ports, `start..=end`, both in 1..=65535. A single port has
/// `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        Self { start: port, end: port }
    }

    /// How many ports the range holds.
    pub fn count(self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }

    pub fn is_single(self) -> bool {
        self.start == self.end
    }

    pub fn ports(self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }

    /// Parses `PORT` or `START-END`; `which` names the part ("host", "container") in errors.
    fn parse(spec: &str, which: &'static str, part: &str) -> Result<Self, PortError> {
        let bad = || PortError::Port { spec: spec.to_owned(), which, part: part.to_owned() };
        let number = |s: &str| -> Result<u16, PortError> {
            // Only plain decimal digits: "+80" and " 80" are typos, not ports.
            if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            match s.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad()),
                Ok(port) => Ok(port),
            }
        };
        let range = match part.split_once('-') {
            None => PortRange::single(number(part)?),
            Some((start, end)) => PortRange { start: number(start)?, end: number(end)? },
        };
        if range.end < range.start {
            return Err(PortError::ReversedRange {
                spec: spec.to_owned(),
                which,
                part: part.to_owned(),
            });
        }
        Ok(range)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// One parsed `-p` argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// The host address to bind; `None` means every address (0.0.0.0 and ::).
    pub host_ip: Option<IpAddr>,
    /// The host port or range; `None` means "choose a free one".
    pub host_ports: Option<PortRange>,
    pub container_ports: PortRange,
    /// At least one protocol, without duplicates, in the order given.
    pub protocols: Vec<Protocol>,
}

impl PortSpec {
    /// Parses `[IP:][HOSTPORT:]CONTAINERPORT[/PROTO[,PROTO]]`, where IP is IPv4 or a bracketed
    /// IPv6 address, each port may be a range `START-END`, and PROTO is tcp (the default),
    /// udp or sctp. A host range must be as long as the container range, or the container
    /// port must be a single port (then one free port of the host range is chosen).
    pub fn parse(spec: &str) -> Result<Self, PortError> {
        if spec.trim().is_empty() {
            return Err(PortError::Empty { spec: spec.to_owned() });
        }

        // The protocol suffix comes off first: it never contains ':' or ']'.
        let (addr_ports, protocols) = match spec.rsplit_once('/') {
            Some((rest, protos)) => (rest, Self::parse_protocols(spec, protos)?),
            None => (spec, vec![Protocol::Tcp]),
        };

        // A bracketed IPv6 host address, then the remaining ':'-separated ports.
        let (host_ip, ports) = if let Some(rest) = addr_ports.strip_prefix('[') {
            let Some((ip, after)) = rest.split_once(']') else {
                return Err(PortError::HostIp { spec: spec.to_owned(), ip: addr_ports.to_owned() });
            };
            let ip6 = ip
                .parse::<Ipv6Addr>()
                .map_err(|_| PortError::HostIp { spec: spec.to_owned(), ip: format!("[{ip}]") })?;
            let Some(ports) = after.strip_prefix(':') else {
                return Err(PortError::HostIp { spec: spec.to_owned(), ip: format!("[{ip}]") });
            };
            if !ports.contains(':') {
                // "[::1]:80" has no host port slot; "[::1]::80" leaves the host port open.
                return Err(PortError::MissingHostPort { spec: spec.to_owned() });
            }
            (Some(IpAddr::V6(ip6)), ports.to_owned())
        } else {
            let parts: Vec<&str> = addr_ports.split(':').collect();
            match parts.len() {
                1 | 2 => (None, addr_ports.to_owned()),
                3 => {
                    let ip = Self::parse_ipv4(spec, parts[0])?;
                    (ip, format!("{}:{}", parts[1], parts[2]))
                }
                _ => return Err(PortError::TooManyParts { spec: spec.to_owned() }),
            }
        };

        let (host_part, container_part) = match ports.split_once(':') {
            Some((host, container)) => (Some(host), container),
            None => (None, ports.as_str()),
        };
        if container_part.contains(':') {
            return Err(PortError::TooManyParts { spec: spec.to_owned() });
        }
        let container_ports = PortRange::parse(spec, "container", container_part)?;
        let host_ports = match host_part {
            None | Some("") => None,
            Some(part) => Some(PortRange::parse(spec, "host", part)?),
        };

        if let Some(host) = host_ports {
            if !container_ports.is_single() && host.count() != container_ports.count() {
                return Err(PortError::RangeLengths {
                    spec: spec.to_owned(),
                    host: host.to_string(),
                    host_len: host.count(),
                    container: container_ports.to_string(),
                    container_len: container_ports.count(),
                });
            }
        }
        Ok(Self { host_ip, host_ports, container_ports, protocols })
    }

    fn parse_ipv4(spec: &str, ip: &str) -> Result<Option<IpAddr>, PortError> {
        if ip.is_empty() {
            return Ok(None);
        }
        ip.parse::<Ipv4Addr>()
            .map(|ip| Some(IpAddr::V4(ip)))
            .map_err(|_| PortError::HostIp { spec: spec.to_owned(), ip: ip.to_owned() })
    }

    fn parse_protocols(spec: &str, protos: &str) -> Result<Vec<Protocol>, PortError> {
        let mut out = Vec::new();
        for proto in protos.split(',') {
            let parsed = proto.parse::<Protocol>().map_err(|()| PortError::Protocol {
                spec: spec.to_owned(),
                protocol: proto.to_owned(),
            })?;
            if !out.contains(&parsed) {
                out.push(parsed);
            }
        }
        Ok(out)
    }

    /// Turns the spec into one mapping per port and protocol, asking `chooser` for host ports
    /// the spec leaves open.
    pub fn resolve(&self, chooser: &mut dyn PortChooser) -> Result<Vec<PortMapping>, PortError> {
        let ip = self.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut out = Vec::new();
        for &protocol in &self.protocols {
            for (i, container_port) in self.container_ports.ports().enumerate() {
                let host_port = match self.host_ports {
                    Some(host) if host.count() == self.container_ports.count() => {
                        host.start + i as u16
                    }
                    Some(host) => chooser.choose(ip, protocol, host)?,
                    None => chooser.choose(ip, protocol, PortRange { start: 1, end: 65535 })?,
                };
                out.push(PortMapping {
                    host_ip: self.host_ip,
                    host_port,
                    container_port,
                    protocol,
                });
            }
        }
        Ok(out)
    }
}

impl FromStr for PortSpec {
    type Err = PortError;

    fn from_str(s: &str) -> Result<Self, PortError> {
        Self::parse(s)
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(IpAddr::V4(ip)) => write!(f, "{ip}:")?,
            None => {}
        }
        match self.host_ports {
            Some(host) => write!(f, "{host}:")?,
            None if self.host_ip.is_some() => f.write_str(":")?,
            None => {}
        }
        write!(f, "{}", self.container_ports)?;
        let protos: Vec<&str> = self.protocols.iter().map(|p| p.as_str()).collect();
        write!(f, "/{}", protos.join(","))
    }
}

/// One resolved published port: a host port forwarded to a container port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// `None` means every host address.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for PortMapping {
    /// The form `berth port` prints: `80/tcp -> 0.0.0.0:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = self.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let host = SocketAddr::new(ip, self.host_port);
        write!(f, "{}/{} -> {host}", self.container_port, self.protocol)
    }
}

/// Chooses a host port for a mapping that leaves it open.
pub trait PortChooser {
    /// A port in `range` on `ip` that is free for `protocol` and not chosen before by this
    /// chooser.
    fn choose(
        &mut self,
        ip: IpAddr,
        protocol: Protocol,
        range: PortRange,
    ) -> Result<u16, PortError>;
}

/// The host's own free ports: a chosen port stays bound by this value until it is dropped, so
/// that no two mappings of one run get the same port and no other process takes it meanwhile.
/// Drop it right before the forwarder binds the ports.
#[derive(Debug, Default)]
pub struct FreePorts {
    held: Vec<Held>,
}

#[derive(Debug)]
#[allow(dead_code)] // The sockets are held only to keep their ports taken.
enum Held {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl FreePorts {
    pub fn new() -> Self {
        Self::default()
    }

    fn try_bind(ip: IpAddr, protocol: Protocol, port: u16) -> Option<Held> {
        Self::bind(ip, protocol, port).ok()
    }

    fn bind(ip: IpAddr, protocol: Protocol, port: u16) -> std::io::Result<Held> {
        let addr = SocketAddr::new(ip, port);
        match protocol {
            // SCTP has no std socket; a TCP probe on the same number is the usual stand-in.
            Protocol::Tcp | Protocol::Sctp => TcpListener::bind(addr).map(Held::Tcp),
            Protocol::Udp => UdpSocket::bind(addr).map(Held::Udp),
        }
    }

    fn port_of(held: &Held) -> Option<u16> {
        match held {
            Held::Tcp(l) => l.local_addr().ok().map(|a| a.port()),
            Held::Udp(s) => s.local_addr().ok().map(|a| a.port()),
        }
    }
}

impl PortChooser for FreePorts {
    fn choose(
        &mut self,
        ip: IpAddr,
        protocol: Protocol,
        range: PortRange,
    ) -> Result<u16, PortError> {
        let none = || PortError::NoFreePort { ip, protocol, range };
        if range.start == 1 && range.end == 65535 {
            // Any port: the kernel picks one from its ephemeral range.
            let held = Self::try_bind(ip, protocol, 0).ok_or_else(none)?;
            let port = Self::port_of(&held).ok_or_else(none)?;
            self.held.push(held);
            return Ok(port);
        }
        for port in range.ports() {
            if let Some(held) = Self::try_bind(ip, protocol, port) {
                self.held.push(held);
                return Ok(port);
            }
        }
        Err(none())
    }
}

/// The host ports of a container held bound while it runs, as Podman's conmon holds them for
/// rootful containers: nftables DNAT does not bind anything itself, so without this a port
/// already used by a host service (or another container) would be "published" silently and
/// never reached. The sockets are close-on-exec, so only the process holding this value (the
/// container's monitor) keeps them.
#[derive(Debug, Default)]
pub struct Reservation {
    held: Vec<Held>,
}

impl Reservation {
    /// How many sockets are held.
    pub fn count(&self) -> usize {
        self.held.len()
    }

    /// The sockets, for the container's monitor to inherit: it holds them for as long as it
    /// runs. The container's own process does not get them, as the runtime closes every
    /// descriptor but stdio.
    pub fn descriptors(&self) -> Vec<BorrowedFd<'_>> {
        self.held
            .iter()
            .map(|held| match held {
                Held::Tcp(l) => l.as_fd(),
                Held::Udp(s) => s.as_fd(),
            })
            .collect()
    }
}

/// Binds every mapping's host port, failing with the first one in use. SCTP ports are checked
/// with a TCP socket of the same number (std has no SCTP sockets).
pub fn reserve(mappings: &[PortMapping]) -> Result<Reservation, PortError> {
    let mut held = Vec::new();
    for m in mappings {
        let ip = m.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let (port, protocol) = (m.host_port, m.protocol);
        match FreePorts::bind(ip, protocol, port) {
            Ok(socket) => held.push(socket),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(PortError::InUse { ip, port, protocol })
            }
            Err(e) => {
                let reason = match e.raw_os_error() {
                    Some(libc::EADDRNOTAVAIL) => "the address is not one of this host's".to_owned(),
                    Some(libc::EACCES) => {
                        "ports below net.ipv4.ip_unprivileged_port_start need root".to_owned()
                    }
                    _ => e.to_string(),
                };
                return Err(PortError::Bind { ip, port, protocol, reason });
            }
        }
    }
    Ok(Reservation { held })
}

/// Resolves every `-p` spec of a container and checks that no host port is published twice.
pub fn resolve_all(
    specs: &[PortSpec],
    chooser: &mut dyn PortChooser,
) -> Result<Vec<PortMapping>, PortError> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for spec in specs {
        for mapping in spec.resolve(chooser)? {
            let ip = mapping.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            if !seen.insert((ip, mapping.host_port, mapping.protocol)) {
                return Err(PortError::Duplicate {
                    ip,
                    port: mapping.host_port,
                    protocol: mapping.protocol,
                });
            }
            out.push(mapping);
        }
    }
    Ok(out)
}

/// The `-P` expansion: every EXPOSEd port of the image config (keys such as `80/tcp`,
/// `53/udp`, `8000-8002/tcp`; a bare number is tcp) published on a free host port of
/// `host_ip` (every address when `None`). Ports already published by `-p` (same container
/// port and protocol) are left out, as Podman does.
pub fn publish_all<'a>(
    exposed: impl IntoIterator<Item = &'a str>,
    already: &[PortMapping],
    host_ip: Option<IpAddr>,
    chooser: &mut dyn PortChooser,
) -> Result<Vec<PortMapping>, PortError> {
    let mut wanted = BTreeSet::new();
    for key in exposed {
        let bad = || PortError::Exposed { port: key.to_owned() };
        let (ports, proto) = match key.split_once('/') {
            Some((ports, proto)) => (ports, proto.parse::<Protocol>().map_err(|()| bad())?),
            None => (key, Protocol::Tcp),
        };
        let range = PortRange::parse(key, "exposed", ports).map_err(|_| bad())?;
        for port in range.ports() {
            wanted.insert((port, proto));
        }
    }

    let ip = host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let mut out = Vec::new();
    for (container_port, protocol) in wanted {
        let published =
            already.iter().any(|m| m.container_port == container_port && m.protocol == protocol);
        if published {
            continue;
        }
        let host_port = chooser.choose(ip, protocol, PortRange { start: 1, end: 65535 })?;
        out.push(PortMapping { host_ip, host_port, container_port, protocol });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A chooser that hands out 40000, 40001, … without touching the host.
    struct Counter(u16);

    impl PortChooser for Counter {
        fn choose(&mut self, _: IpAddr, _: Protocol, range: PortRange) -> Result<u16, PortError> {
            let port = if range.count() == 65535 { self.0 } else { range.start };
            self.0 += 1;
            Ok(port)
        }
    }

    fn spec(s: &str) -> PortSpec {
        PortSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_forms_of_the_grammar() {
        let s = spec("80");
        assert_eq!((s.host_ip, s.host_ports), (None, None));
        assert_eq!(s.container_ports, PortRange::single(80));
        assert_eq!(s.protocols, vec![Protocol::Tcp]);

        let s = spec("8080:80/udp");
        assert_eq!(s.host_ports, Some(PortRange::single(8080)));
        assert_eq!(s.protocols, vec![Protocol::Udp]);

        let s = spec("127.0.0.1:8080:80");
        assert_eq!(s.host_ip, Some("127.0.0.1".parse().unwrap()));

        let s = spec("127.0.0.1::80");
        assert_eq!((s.host_ip.is_some(), s.host_ports), (true, None));

        let s = spec("[::1]:8080:80/sctp");
        assert_eq!(s.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(s.protocols, vec![Protocol::Sctp]);

        let s = spec("8000-8010:80-90/tcp,udp");
        assert_eq!(s.host_ports, Some(PortRange { start: 8000, end: 8010 }));
        assert_eq!(s.container_ports, PortRange { start: 80, end: 90 });
        assert_eq!(s.protocols, vec![Protocol::Tcp, Protocol::Udp]);

        // An empty IP before the host port means every address.
        assert_eq!(spec(":8080:80").host_ip, None);
    }

    #[test]
    fn errors_name_the_bad_part() {
        let cases = [
            ("", "it is empty"),
            ("80800:80", "host port \"80800\""),
            ("8080:0", "container port \"0\""),
            ("8080:http", "container port \"http\""),
            ("1.2.3:8080:80", "host IP \"1.2.3\""),
            ("[::1:8080:80", "host IP"),
            ("[fe80::zz]:8080:80", "host IP \"[fe80::zz]\""),
            ("::1:8080:80", "too many"),
            ("8080:80/icmp", "protocol \"icmp\""),
            ("8010-8000:80", "host port range \"8010-8000\" ends before it starts"),
            ("8000-8002:80-81", "host range 8000-8002 has 3 ports but container range 80-81 has 2"),
            ("+80", "container port \"+80\""),
            ("[::1]:80", "after a host IP comes HOSTPORT:CONTAINERPORT"),
        ];
        for (input, needle) in cases {
            let err = PortSpec::parse(input).expect_err(input).to_string();
            assert!(err.contains(needle), "{input:?}: {err:?} lacks {needle:?}");
            assert!(!err.contains('\n'), "{err:?} is not one line");
        }
    }

    #[test]
    fn resolving_ranges_and_open_host_ports() {
        let maps = spec("8000-8001:80-81/tcp,udp").resolve(&mut Counter(40000)).unwrap();
        let pairs: Vec<_> =
            maps.iter().map(|m| (m.host_port, m.container_port, m.protocol)).collect();
        assert_eq!(
            pairs,
            vec![
                (8000, 80, Protocol::Tcp),
                (8001, 81, Protocol::Tcp),
                (8000, 80, Protocol::Udp),
                (8001, 81, Protocol::Udp)
            ]
        );

        let maps = spec("127.0.0.1::80").resolve(&mut Counter(40000)).unwrap();
        assert_eq!(maps[0].host_port, 40000);
        assert_eq!(maps[0].to_string(), "80/tcp -> 127.0.0.1:40000");

        // A host range for one container port: one port of that range.
        let maps = spec("9000-9005:80").resolve(&mut Counter(40000)).unwrap();
        assert_eq!((maps.len(), maps[0].host_port), (1, 9000));
    }

    #[test]
    fn a_host_port_published_twice_is_refused() {
        let specs = [spec("8080:80"), spec("8080:81")];
        let err = resolve_all(&specs, &mut Counter(1)).unwrap_err();
        assert_eq!(err.to_string(), "host port 8080/tcp on 0.0.0.0 is published twice");
        // The same port for another protocol is fine.
        let specs = [spec("8080:80"), spec("8080:80/udp")];
        assert_eq!(resolve_all(&specs, &mut Counter(1)).unwrap().len(), 2);
    }

    #[test]
    fn publish_all_covers_exposed_ports_not_already_published() {
        let already = spec("8080:80").resolve(&mut Counter(1)).unwrap();
        let maps = publish_all(
            ["80/tcp", "53/udp", "9000-9001", "443"],
            &already,
            None,
            &mut Counter(40000),
        )
        .unwrap();
        let got: Vec<_> = maps.iter().map(|m| (m.container_port, m.protocol)).collect();
        assert_eq!(
            got,
            vec![
                (53, Protocol::Udp),
                (443, Protocol::Tcp),
                (9000, Protocol::Tcp),
                (9001, Protocol::Tcp)
            ]
        );
        let hosts: BTreeSet<u16> = maps.iter().map(|m| m.host_port).collect();
        assert_eq!(hosts.len(), 4, "each gets its own host port");
        let err = publish_all(["80/icmp"], &[], None, &mut Counter(1)).unwrap_err();
        assert!(err.to_string().contains("\"80/icmp\""));
    }

    #[test]
    fn free_ports_are_really_free_and_distinct() {
        let mut free = FreePorts::new();
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let a = free.choose(lo, Protocol::Tcp, PortRange { start: 1, end: 65535 }).unwrap();
        let b = free.choose(lo, Protocol::Tcp, PortRange { start: 1, end: 65535 }).unwrap();
        assert_ne!(a, b);
        // While held, nobody else can bind it; once dropped, it is free again.
        assert!(TcpListener::bind((lo, a)).is_err());
        drop(free);
        assert!(TcpListener::bind((lo, a)).is_ok());

        // A taken port inside a range is skipped.
        let taken = TcpListener::bind((lo, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let mut free = FreePorts::new();
        let range = PortRange { start: port, end: port };
        let err = free.choose(lo, Protocol::Tcp, range).unwrap_err();
        assert!(err.to_string().starts_with("no free tcp host port on 127.0.0.1"));
    }

    #[test]
    fn a_port_in_use_is_refused_in_one_line_and_reservations_hold_ports() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let taken = TcpListener::bind((lo, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let mapping = |port, protocol| PortMapping {
            host_ip: Some(lo),
            host_port: port,
            container_port: 80,
            protocol,
        };
        let err = reserve(&[mapping(port, Protocol::Tcp)]).unwrap_err();
        assert_eq!(err.to_string(), format!("host port {port}/tcp on 127.0.0.1 is already in use"));

        // An address this host does not have.
        let foreign = PortMapping {
            host_ip: Some("192.0.2.1".parse().unwrap()),
            ..mapping(port, Protocol::Tcp)
        };
        assert_eq!(
            reserve(&[foreign]).unwrap_err().to_string(),
            format!("cannot bind host port {port}/tcp on 192.0.2.1: the address is not one of this host's")
        );

        // The same number over UDP is free; once reserved, it is taken until dropped.
        let held = reserve(&[mapping(port, Protocol::Udp)]).unwrap();
        assert_eq!(held.count(), 1);
        assert!(UdpSocket::bind((lo, port)).is_err());
        drop(held);
        assert!(UdpSocket::bind((lo, port)).is_ok());
    }

    fn arb_spec() -> impl Strategy<Value = PortSpec> {
        let ip = prop_oneof![
            Just(None),
            any::<[u8; 4]>().prop_map(|b| Some(IpAddr::V4(Ipv4Addr::from(b)))),
            any::<[u16; 8]>().prop_map(|s| Some(IpAddr::V6(Ipv6Addr::from(s)))),
        ];
        let range = (1u16..=65535, 0u16..20)
            .prop_map(|(start, extra)| PortRange { start, end: start.saturating_add(extra) });
        let protos = proptest::sample::subsequence(
            vec![Protocol::Tcp, Protocol::Udp, Protocol::Sctp],
            1..=3,
        );
        (ip, range, proptest::option::of(1u16..=65535), any::<bool>(), protos).prop_map(
            |(host_ip, container_ports, host_start, single, protocols)| {
                let host_ports = host_start.map(|start| {
                    if single && container_ports.is_single() {
                        PortRange::single(start)
                    } else {
                        let start = start.min(65535 - (container_ports.count() as u16 - 1));
                        PortRange { start, end: start + (container_ports.count() as u16 - 1) }
                    }
                });
                PortSpec { host_ip, host_ports, container_ports, protocols }
            },
        )
    }

    proptest! {
        #[test]
        fn display_parses_back(s in arb_spec()) {
            let text = s.to_string();
            prop_assert_eq!(PortSpec::parse(&text).unwrap(), s);
        }

        #[test]
        fn parse_never_panics_and_errors_are_one_line(input in "[0-9a-f:\\[\\]./,-]{0,24}") {
            if let Err(err) = PortSpec::parse(&input) {
                prop_assert!(!err.to_string().contains('\n'));
            }
        }

        #[test]
        fn resolved_mappings_keep_range_offsets(s in arb_spec()) {
            let maps = s.resolve(&mut Counter(1)).unwrap();
            prop_assert_eq!(maps.len() as u32, s.container_ports.count() * s.protocols.len() as u32);
            if let Some(host) = s.host_ports {
                if host.count() == s.container_ports.count() {
                    for m in maps {
                        prop_assert_eq!(
                            m.host_port - host.start,
                            m.container_port - s.container_ports.start
                        );
                    }
                }
            }
        }
    }
}
