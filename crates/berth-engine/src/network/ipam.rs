//! Network configuration and IP address management: what `network create` validates and
//! records, how a subnet is chosen when none is given, and how container addresses are
//! allocated and released.
//!
//! A [`Network`] has the shape of Podman's network config files (netavark's JSON), so the
//! fields a Podman user reads in `network inspect` mean the same here. [`plan_network`] turns
//! [`CreateOptions`] into a `Network` without side effects: it checks the subnet, gateway and
//! ip-range against each other, refuses a subnet that overlaps another network or a route of
//! the host, and picks the default subnet (10.89.0.0/24 for the default network, beside
//! Podman's 10.88.0.0/16) or the first free /24 after it for a new network without `--subnet`.
//!
//! Addresses live in an [`IpamStore`]: the engine's state database implements it (later, with
//! a table keyed by network and address), tests use [`MemoryStore`]. [`Allocator`] holds the
//! policy — which addresses of a subnet are usable, the lowest free one first — and the store
//! holds the truth, so two berth processes allocating at once cannot hand out one address
//! twice as long as the store's [`IpamStore::reserve`] is atomic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors of network planning and address allocation, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("invalid subnet {text:?}: {reason}")]
    ParseSubnet { text: String, reason: &'static str },
    #[error("invalid network name {name:?}: use letters, digits, '.', '_' and '-', not first")]
    Name { name: String },
    #[error("interface name {name:?} is not 1 to 15 letters, digits, '.', '-' or '_'")]
    Interface { name: String },
    #[error("interface {name} is already the bridge of network {network}")]
    InterfaceTaken { name: String, network: String },
    #[error("network {name} already exists")]
    Exists { name: String },
    #[error("network {name} not found")]
    NotFound { name: String },
    #[error("subnet {subnet} overlaps the subnet {other} of network {network}")]
    OverlapsNetwork { subnet: Subnet, other: Subnet, network: String },
    #[error("subnet {subnet} overlaps the host's route to {route}")]
    OverlapsHost { subnet: Subnet, route: Subnet },
    #[error("gateway {gateway} is not a usable address of subnet {subnet}")]
    Gateway { gateway: IpAddr, subnet: Subnet },
    #[error("ip-range {range} is not inside subnet {subnet}")]
    IpRange { range: Subnet, subnet: Subnet },
    #[error("{option} needs a --subnet to go with it")]
    NeedsSubnet { option: &'static str },
    #[error("driver {driver:?} is not supported yet (only bridge)")]
    Driver { driver: String },
    #[error("network option {option:?} is not supported yet")]
    Option { option: String },
    #[error("no free subnet left in the default pools for network {name}")]
    NoFreeSubnet { name: String },
    #[error("address {addr} is not in network {network}'s subnets")]
    AddressOutside { addr: IpAddr, network: String },
    #[error("address {addr} of network {network} is already in use")]
    AddressInUse { addr: IpAddr, network: String },
    #[error("no free address left in subnet {subnet} of network {network}")]
    Exhausted { subnet: Subnet, network: String },
    #[error("reading the host's routes from {path}")]
    ReadRoutes {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("address store for network {network}")]
    Store {
        network: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// An IP subnet `ADDR/PREFIX`, stored with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    addr: IpAddr,
    prefix: u8,
}

impl Subnet {
    /// The subnet of `addr/prefix`, host bits cleared; `None` when the prefix is too long.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let bits = Self::family_bits(addr);
        if prefix > bits {
            return None;
        }
        let masked = Self::from_bits(addr, Self::to_bits(addr) & Self::mask(bits, prefix));
        Some(Self { addr: masked, prefix })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }

    fn family_bits(addr: IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// The netmask of `prefix` in a family of `bits` bits, as a number.
    fn mask(bits: u8, prefix: u8) -> u128 {
        if prefix == 0 {
            return 0;
        }
        let full = if bits == 32 { u128::from(u32::MAX) } else { u128::MAX };
        // prefix > 0, so the shift is below 128.
        full & !((1u128 << (bits - prefix)) - 1)
    }

    fn to_bits(addr: IpAddr) -> u128 {
        match addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn from_bits(like: IpAddr, bits: u128) -> IpAddr {
        match like {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(bits as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(bits)),
        }
    }

    fn host_bits(&self) -> u8 {
        Self::family_bits(self.addr) - self.prefix
    }

    /// The first and last address of the subnet, as numbers.
    fn bounds(&self) -> (u128, u128) {
        let start = Self::to_bits(self.addr);
        let size_minus_one =
            if self.host_bits() >= 128 { u128::MAX } else { (1u128 << self.host_bits()) - 1 };
        (start, start | size_minus_one)
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        if addr.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let (lo, hi) = self.bounds();
        (lo..=hi).contains(&Self::to_bits(addr))
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        if self.addr.is_ipv4() != other.addr.is_ipv4() {
            return false;
        }
        let (a_lo, a_hi) = self.bounds();
        let (b_lo, b_hi) = other.bounds();
        a_lo <= b_hi && b_lo <= a_hi
    }

    /// Whether `other` lies wholly inside this subnet.
    pub fn covers(&self, other: &Subnet) -> bool {
        self.contains(other.addr) && self.prefix <= other.prefix
    }

    /// The addresses a host may use: IPv4 leaves out the network and broadcast addresses
    /// (except in /31 and /32), IPv6 leaves out the subnet-router anycast address.
    fn usable_bounds(&self) -> (u128, u128) {
        let (lo, hi) = self.bounds();
        match (self.addr, self.host_bits()) {
            (IpAddr::V4(_), 0 | 1) => (lo, hi),
            (IpAddr::V4(_), _) => (lo + 1, hi - 1),
            (IpAddr::V6(_), 0) => (lo, hi),
            (IpAddr::V6(_), _) => (lo + 1, hi),
        }
    }

    /// Whether `addr` is a usable host address of this subnet.
    pub fn is_usable(&self, addr: IpAddr) -> bool {
        if !self.contains(addr) {
            return false;
        }
        let (lo, hi) = self.usable_bounds();
        (lo..=hi).contains(&Self::to_bits(addr))
    }

    /// The first usable address, the usual gateway (10.88.0.1 in 10.88.0.0/16).
    pub fn first_usable(&self) -> IpAddr {
        Self::from_bits(self.addr, self.usable_bounds().0)
    }

    /// The last usable address.
    pub fn last_usable(&self) -> IpAddr {
        Self::from_bits(self.addr, self.usable_bounds().1)
    }

    /// The address `n` places after `addr`, if it stays in the family's range.
    fn offset(addr: IpAddr, n: u128) -> Option<IpAddr> {
        let bits = Self::to_bits(addr).checked_add(n)?;
        if addr.is_ipv4() && bits > u128::from(u32::MAX) {
            return None;
        }
        Some(Self::from_bits(addr, bits))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = IpamError;

    /// Parses `ADDR/PREFIX`. Host bits must be zero (`10.88.0.1/16` is refused, as Podman
    /// does), since a typo there usually means the user meant another subnet.
    fn from_str(text: &str) -> Result<Self, IpamError> {
        let bad = |reason| IpamError::ParseSubnet { text: text.to_owned(), reason };
        let (addr, prefix) = text.split_once('/').ok_or_else(|| bad("expected ADDR/PREFIX"))?;
        let addr: IpAddr = addr.parse().map_err(|_| bad("the address is not IPv4 or IPv6"))?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 3 {
            return Err(bad("the prefix length is not a number"));
        }
        let prefix: u8 = prefix.parse().map_err(|_| bad("the prefix length is not a number"))?;
        let subnet =
            Subnet::new(addr, prefix).ok_or_else(|| bad("the prefix length is too long"))?;
        if subnet.addr != addr {
            return Err(bad("host bits are set; give the network address"));
        }
        Ok(subnet)
    }
}

impl Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The addresses of a subnet handed to containers, netavark's `lease_range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRange {
    pub start_ip: IpAddr,
    pub end_ip: IpAddr,
}

/// One subnet of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetConfig {
    pub subnet: Subnet,
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_range: Option<LeaseRange>,
}

/// A network as recorded and shown by `network inspect`, in Podman's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub driver: String,
    /// The bridge interface on the host, `berth0`, `berth1`, ….
    pub network_interface: String,
    pub subnets: Vec<SubnetConfig>,
    pub ipv6_enabled: bool,
    pub internal: bool,
    pub dns_enabled: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Network {
    /// The subnet config holding `addr`.
    pub fn subnet_of(&self, addr: IpAddr) -> Option<&SubnetConfig> {
        self.subnets.iter().find(|s| s.subnet.contains(addr))
    }
}

/// The name of the network containers join when no `--network` is given, rootful.
pub const DEFAULT_NETWORK: &str = "berth";
/// Its subnet. Not Podman's 10.88.0.0/16: rootful Podman on the same host puts that on its
/// own `podman0` bridge, and two bridges routing one subnet would each lose the other's
/// traffic (berth would refuse to create it anyway, as it overlaps the host's route). The
/// default pool for new networks starts right above it.
pub const DEFAULT_SUBNET: &str = "10.89.0.0/24";
/// Its bridge interface.
pub const DEFAULT_INTERFACE: &str = "berth0";

/// What `network create` was asked for. Each subnet may carry a gateway and an ip-range, in
/// the order the flags were given (as Podman pairs them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    pub name: String,
    /// `None` means bridge.
    pub driver: Option<String>,
    pub subnets: Vec<Subnet>,
    pub gateways: Vec<IpAddr>,
    pub ip_ranges: Vec<Subnet>,
    pub internal: bool,
    pub disable_dns: bool,
    pub ipv6: bool,
    /// `--interface-name`; `None` picks the next free `berthN`.
    pub interface: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `-o KEY=VALUE` driver options; none is supported yet.
    pub options: BTreeMap<String, String>,
}

/// Checks a network name as Podman does: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn validate_network_name(name: &str) -> Result<(), IpamError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(IpamError::Name { name: name.to_owned() })
    }
}

/// Turns `opts` into a network, checked against the `existing` networks and the host's own
/// routes (`host_routes`, see [`host_routes`]). Nothing is created; the caller records the
/// result and sets up the bridge when the first container joins.
pub fn plan_network(
    opts: &CreateOptions,
    id: &str,
    existing: &[Network],
    host_routes: &[Subnet],
) -> Result<Network, IpamError> {
    validate_network_name(&opts.name)?;
    if existing.iter().any(|n| n.name == opts.name) {
        return Err(IpamError::Exists { name: opts.name.clone() });
    }
    match opts.driver.as_deref() {
        None | Some("bridge") => {}
        Some(other) => return Err(IpamError::Driver { driver: other.to_owned() }),
    }
    if let Some(option) = opts.options.keys().next() {
        return Err(IpamError::Option { option: option.clone() });
    }
    if opts.subnets.is_empty() {
        if !opts.gateways.is_empty() {
            return Err(IpamError::NeedsSubnet { option: "--gateway" });
        }
        if !opts.ip_ranges.is_empty() {
            return Err(IpamError::NeedsSubnet { option: "--ip-range" });
        }
    }
    if opts.gateways.len() > opts.subnets.len() {
        return Err(IpamError::NeedsSubnet { option: "each --gateway" });
    }
    if opts.ip_ranges.len() > opts.subnets.len() {
        return Err(IpamError::NeedsSubnet { option: "each --ip-range" });
    }

    let taken: Vec<(&Subnet, &str)> = existing
        .iter()
        .flat_map(|n| n.subnets.iter().map(move |s| (&s.subnet, n.name.as_str())))
        .collect();
    let check_free = |subnet: &Subnet| -> Result<(), IpamError> {
        if let Some((other, network)) = taken.iter().find(|(s, _)| s.overlaps(subnet)) {
            return Err(IpamError::OverlapsNetwork {
                subnet: *subnet,
                other: **other,
                network: (*network).to_owned(),
            });
        }
        // A default route (prefix 0) overlaps everything and says nothing.
        if let Some(route) = host_routes.iter().find(|r| r.prefix > 0 && r.overlaps(subnet)) {
            return Err(IpamError::OverlapsHost { subnet: *subnet, route: *route });
        }
        Ok(())
    };

    let mut subnets = Vec::new();
    if opts.subnets.is_empty() {
        let subnet = if opts.name == DEFAULT_NETWORK {
            let subnet: Subnet = DEFAULT_SUBNET.parse()?;
            check_free(&subnet)?;
            subnet
        } else {
            free_default_subnet(&opts.name, &check_free)?
        };
        subnets.push(SubnetConfig {
            gateway: Some(subnet.first_usable()),
            subnet,
            lease_range: None,
        });
    }
    for (i, subnet) in opts.subnets.iter().enumerate() {
        check_free(subnet)?;
        let gateway = opts.gateways.get(i).copied().unwrap_or_else(|| subnet.first_usable());
        if !subnet.is_usable(gateway) {
            return Err(IpamError::Gateway { gateway, subnet: *subnet });
        }
        let lease_range = match opts.ip_ranges.get(i) {
            None => None,
            Some(range) if subnet.covers(range) => Some(LeaseRange {
                start_ip: if subnet.is_usable(range.addr) {
                    range.addr
                } else {
                    subnet.first_usable()
                },
                end_ip: {
                    let (_, hi) = range.bounds();
                    let last = Subnet::from_bits(range.addr, hi);
                    if subnet.is_usable(last) {
                        last
                    } else {
                        subnet.last_usable()
                    }
                },
            }),
            Some(range) => return Err(IpamError::IpRange { range: *range, subnet: *subnet }),
        };
        subnets.push(SubnetConfig { subnet: *subnet, gateway: Some(gateway), lease_range });
    }
    // Subnets of one network must not overlap each other either.
    for (i, a) in subnets.iter().enumerate() {
        if let Some(b) = subnets[..i].iter().find(|b| b.subnet.overlaps(&a.subnet)) {
            return Err(IpamError::OverlapsNetwork {
                subnet: a.subnet,
                other: b.subnet,
                network: opts.name.clone(),
            });
        }
    }

    let network_interface = match &opts.interface {
        Some(name) => {
            super::bridge::validate_interface_name(name)
                .map_err(|_| IpamError::Interface { name: name.clone() })?;
            if let Some(other) = existing.iter().find(|n| &n.network_interface == name) {
                return Err(IpamError::InterfaceTaken {
                    name: name.clone(),
                    network: other.name.clone(),
                });
            }
            name.clone()
        }
        None if opts.name == DEFAULT_NETWORK => DEFAULT_INTERFACE.to_owned(),
        None => {
            let used: BTreeSet<&str> =
                existing.iter().map(|n| n.network_interface.as_str()).collect();
            (1..)
                .map(|i| format!("berth{i}"))
                .find(|name| !used.contains(name.as_str()))
                .expect("an unbounded range always has a free name")
        }
    };
    let ipv6_enabled = opts.ipv6 || subnets.iter().any(|s| s.subnet.is_ipv6());
    Ok(Network {
        name: opts.name.clone(),
        id: id.to_owned(),
        driver: "bridge".to_owned(),
        network_interface,
        subnets,
        ipv6_enabled,
        internal: opts.internal,
        dns_enabled: !opts.disable_dns,
        labels: opts.labels.clone(),
    })
}

/// The first /24 of 10.89.1.0 … 10.255.255.0 that passes `check_free`, as Podman's default
/// subnet pool hands them out.
fn free_default_subnet(
    name: &str,
    check_free: &dyn Fn(&Subnet) -> Result<(), IpamError>,
) -> Result<Subnet, IpamError> {
    for second in 89u8..=255 {
        for third in 0u8..=255 {
            let subnet =
                Subnet { addr: IpAddr::V4(Ipv4Addr::new(10, second, third, 0)), prefix: 24 };
            // The default network's subnet stays free for it, even before it exists.
            if subnet.to_string() == DEFAULT_SUBNET {
                continue;
            }
            if check_free(&subnet).is_ok() {
                return Ok(subnet);
            }
        }
    }
    Err(IpamError::NoFreeSubnet { name: name.to_owned() })
}

/// The destinations of the host's own routes (IPv4 from /proc/net/route, IPv6 from
/// /proc/net/ipv6_route), so that a new network does not shadow a subnet the host reaches
/// through another interface. Default routes are left out. The files describe the network
/// namespace of the reading process.
pub fn host_routes() -> Result<Vec<Subnet>, IpamError> {
    let mut out: Vec<Subnet> = host_route_table()?.into_iter().map(|r| r.destination).collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// One route of the host: where to, and through which interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    pub interface: String,
    pub destination: Subnet,
}

/// The host's routes as [`host_routes`] reads them, each with its interface.
pub fn host_route_table() -> Result<Vec<HostRoute>, IpamError> {
    let mut out = Vec::new();
    let v4 = std::fs::read_to_string("/proc/net/route")
        .map_err(|source| IpamError::ReadRoutes { path: "/proc/net/route", source })?;
    out.extend(parse_proc_route(&v4));
    // A host without IPv6 has no such file; that is no error.
    if let Ok(v6) = std::fs::read_to_string("/proc/net/ipv6_route") {
        out.extend(parse_proc_ipv6_route(&v6));
    }
    Ok(out)
}

/// Parses /proc/net/route: a header line, then `Iface Destination Gateway Flags … Mask …`
/// with the addresses in little-endian hex.
fn parse_proc_route(text: &str) -> Vec<HostRoute> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            continue;
        }
        let (Ok(dest), Ok(mask)) =
            (u32::from_str_radix(fields[1], 16), u32::from_str_radix(fields[7], 16))
        else {
            continue;
        };
        let prefix = u32::from_be(mask).leading_ones() as u8;
        if prefix == 0 {
            continue;
        }
        let addr = IpAddr::V4(Ipv4Addr::from(u32::from_be(dest)));
        out.extend(
            Subnet::new(addr, prefix)
                .map(|destination| HostRoute { interface: fields[0].to_owned(), destination }),
        );
    }
    out
}

/// Parses /proc/net/ipv6_route: `DEST PREFIXLEN SRC SRCLEN NEXTHOP METRIC REF USE FLAGS IFACE`
/// in plain hex. Link-local, multicast and loopback routes are left out.
fn parse_proc_ipv6_route(text: &str) -> Vec<HostRoute> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 10 || fields[9] == "lo" {
            continue;
        }
        let (Ok(dest), Ok(prefix)) =
            (u128::from_str_radix(fields[0], 16), u8::from_str_radix(fields[1], 16))
        else {
            continue;
        };
        let addr = Ipv6Addr::from(dest);
        let special = addr.segments()[0] & 0xffc0 == 0xfe80 || addr.segments()[0] >> 8 == 0xff;
        if prefix == 0 || special {
            continue;
        }
        out.extend(
            Subnet::new(IpAddr::V6(addr), prefix)
                .map(|destination| HostRoute { interface: fields[9].to_owned(), destination }),
        );
    }
    out
}

/// The outcome of [`IpamStore::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// The address is now the container's.
    Reserved,
    /// Another container holds it.
    Taken,
}

/// Where allocated addresses are kept. The engine implements it over its state database;
/// [`MemoryStore`] is the implementation for tests. [`check_store_conformance`] checks an
/// implementation against the list below.
///
/// What an implementation owes:
/// - [`reserve`](Self::reserve) is atomic per (network, address): of two concurrent
///   reservations of one address, across processes, exactly one gets
///   [`Reserve::Reserved`] (in SQLite: a primary key on (network, address) and an
///   `INSERT` inside `BEGIN IMMEDIATE`; a constraint violation means [`Reserve::Taken`]).
///   Reserving an address the same container already holds returns `Reserved`.
/// - [`allocated`](Self::allocated) may be stale by the time the caller acts on it; the
///   allocator treats it as a hint and relies on `reserve` alone for correctness.
/// - [`release`](Self::release) removes every address of that container in that network and
///   is idempotent: releasing twice, or releasing a container that holds nothing, is no
///   error (cleanup after a killed monitor may run it again).
/// - Errors are the store's own (I/O, SQLite); the allocator wraps them with the network.
pub trait IpamStore {
    /// Every address of `network` in use, with the container holding it.
    fn allocated(
        &self,
        network: &str,
    ) -> Result<BTreeMap<IpAddr, String>, Box<dyn std::error::Error + Send + Sync>>;

    /// Records `addr` of `network` as `container`'s, unless someone else holds it.
    fn reserve(
        &mut self,
        network: &str,
        addr: IpAddr,
        container: &str,
    ) -> Result<Reserve, Box<dyn std::error::Error + Send + Sync>>;

    /// Forgets every address `container` holds in `network` and returns them.
    fn release(
        &mut self,
        network: &str,
        container: &str,
    ) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>>;
}

/// An [`IpamStore`] in a map, for tests and for throwaway networks.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    addrs: BTreeMap<String, BTreeMap<IpAddr, String>>,
}

impl IpamStore for MemoryStore {
    fn allocated(
        &self,
        network: &str,
    ) -> Result<BTreeMap<IpAddr, String>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.addrs.get(network).cloned().unwrap_or_default())
    }

    fn reserve(
        &mut self,
        network: &str,
        addr: IpAddr,
        container: &str,
    ) -> Result<Reserve, Box<dyn std::error::Error + Send + Sync>> {
        let net = self.addrs.entry(network.to_owned()).or_default();
        match net.get(&addr) {
            Some(holder) if holder != container => Ok(Reserve::Taken),
            _ => {
                net.insert(addr, container.to_owned());
                Ok(Reserve::Reserved)
            }
        }
    }

    fn release(
        &mut self,
        network: &str,
        container: &str,
    ) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let Some(net) = self.addrs.get_mut(network) else {
            return Ok(Vec::new());
        };
        let mine: Vec<IpAddr> =
            net.iter().filter(|(_, c)| *c == container).map(|(a, _)| *a).collect();
        for addr in &mine {
            net.remove(addr);
        }
        Ok(mine)
    }
}

/// Hands out addresses of a network's subnets through an [`IpamStore`].
pub struct Allocator<'s> {
    store: &'s mut dyn IpamStore,
}

impl<'s> Allocator<'s> {
    pub fn new(store: &'s mut dyn IpamStore) -> Self {
        Self { store }
    }

    fn store_err(
        network: &Network,
    ) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> IpamError + '_ {
        move |source| IpamError::Store { network: network.name.clone(), source }
    }

    /// One address per subnet of `network` for `container`: the `requested` address where it
    /// belongs to a subnet (`--ip`, `--ip6`), else the lowest free address of the lease range
    /// (or the whole subnet) that is not the gateway. On failure nothing stays reserved.
    pub fn allocate(
        &mut self,
        network: &Network,
        container: &str,
        requested: &[IpAddr],
    ) -> Result<Vec<IpAddr>, IpamError> {
        for addr in requested {
            if network.subnet_of(*addr).is_none_or(|s| !s.subnet.is_usable(*addr)) {
                return Err(IpamError::AddressOutside {
                    addr: *addr,
                    network: network.name.clone(),
                });
            }
        }
        let result = self.allocate_inner(network, container, requested);
        if result.is_err() {
            // Leave nothing half reserved; a failure to undo is reported by the caller's
            // cleanup on the next run, so only the first error matters here.
            let _ = self.store.release(&network.name, container);
        }
        result
    }

    fn allocate_inner(
        &mut self,
        network: &Network,
        container: &str,
        requested: &[IpAddr],
    ) -> Result<Vec<IpAddr>, IpamError> {
        let mut out = Vec::new();
        for config in &network.subnets {
            if let Some(addr) = requested.iter().find(|a| config.subnet.contains(**a)) {
                match self
                    .store
                    .reserve(&network.name, *addr, container)
                    .map_err(Self::store_err(network))?
                {
                    Reserve::Reserved => out.push(*addr),
                    Reserve::Taken => {
                        return Err(IpamError::AddressInUse {
                            addr: *addr,
                            network: network.name.clone(),
                        })
                    }
                }
                continue;
            }
            out.push(self.next_free(network, config, container)?);
        }
        Ok(out)
    }

    fn next_free(
        &mut self,
        network: &Network,
        config: &SubnetConfig,
        container: &str,
    ) -> Result<IpAddr, IpamError> {
        let used = self.store.allocated(&network.name).map_err(Self::store_err(network))?;
        let (start, end) = match config.lease_range {
            Some(range) => (range.start_ip, range.end_ip),
            None => (config.subnet.first_usable(), config.subnet.last_usable()),
        };
        let span = Subnet::to_bits(end).saturating_sub(Subnet::to_bits(start));
        let mut n = 0u128;
        while n <= span {
            let Some(addr) = Subnet::offset(start, n) else { break };
            n += 1;
            if Some(addr) == config.gateway || used.get(&addr).is_some_and(|c| c != container) {
                continue;
            }
            match self
                .store
                .reserve(&network.name, addr, container)
                .map_err(Self::store_err(network))?
            {
                Reserve::Reserved => return Ok(addr),
                // Another process got there between `allocated` and `reserve`: go on.
                Reserve::Taken => continue,
            }
        }
        Err(IpamError::Exhausted { subnet: config.subnet, network: network.name.clone() })
    }

    /// Gives back every address `container` holds in `network`.
    pub fn release(
        &mut self,
        network: &Network,
        container: &str,
    ) -> Result<Vec<IpAddr>, IpamError> {
        self.store.release(&network.name, container).map_err(Self::store_err(network))
    }
}

/// The behaviour every [`IpamStore`] owes, as one check the engine's SQLite store can run in
/// its own tests (as [`MemoryStore`] does here): it panics, naming the broken
/// promise, if `store` breaks one. `store` must start empty.
pub fn check_store_conformance(store: &mut dyn IpamStore) {
    let a: IpAddr = "10.250.0.2".parse().expect("literal");
    let b: IpAddr = "10.250.0.3".parse().expect("literal");
    let ok = |r: Result<Reserve, Box<dyn std::error::Error + Send + Sync>>| {
        r.unwrap_or_else(|e| panic!("the store failed: {e}"))
    };

    assert!(store.allocated("n").expect("allocated").is_empty(), "a new store is empty");
    assert_eq!(ok(store.reserve("n", a, "c1")), Reserve::Reserved, "a free address is reserved");
    assert_eq!(ok(store.reserve("n", a, "c2")), Reserve::Taken, "a held address is taken");
    assert_eq!(ok(store.reserve("n", a, "c1")), Reserve::Reserved, "the holder may reserve again");
    assert_eq!(ok(store.reserve("m", a, "c2")), Reserve::Reserved, "networks are separate");
    assert_eq!(ok(store.reserve("n", b, "c1")), Reserve::Reserved, "a container may hold several");

    let held = store.allocated("n").expect("allocated");
    assert_eq!(held.len(), 2, "allocated lists every address of the network");
    assert_eq!(held.get(&a).map(String::as_str), Some("c1"), "allocated names the holder");

    let mut gone = store.release("n", "c1").expect("release");
    gone.sort();
    assert_eq!(gone, vec![a, b], "release returns every address of the container");
    assert!(store.release("n", "c1").expect("release").is_empty(), "release is idempotent");
    assert!(store.release("x", "nobody").expect("release").is_empty(), "unknown is no error");
    assert_eq!(ok(store.reserve("n", a, "c2")), Reserve::Reserved, "released addresses are free");
    assert_eq!(store.allocated("m").expect("allocated").len(), 1, "release kept other networks");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> Subnet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn opts(name: &str) -> CreateOptions {
        CreateOptions { name: name.to_owned(), ..Default::default() }
    }

    #[test]
    fn subnet_parsing_and_arithmetic() {
        let s = net("10.88.0.0/16");
        assert_eq!(s.first_usable(), ip("10.88.0.1"));
        assert_eq!(s.last_usable(), ip("10.88.255.254"));
        assert!(s.contains(ip("10.88.3.4")) && !s.contains(ip("10.89.0.1")));
        assert!(!s.is_usable(ip("10.88.255.255")) && !s.is_usable(ip("10.88.0.0")));
        assert!(!s.contains(ip("::1")));

        let v6 = net("fd00:1::/64");
        assert_eq!(v6.first_usable(), ip("fd00:1::1"));
        assert_eq!(v6.last_usable(), ip("fd00:1::ffff:ffff:ffff:ffff"));

        assert_eq!(net("0.0.0.0/0").last_usable(), ip("255.255.255.254"));
        assert_eq!(net("10.0.0.4/31").first_usable(), ip("10.0.0.4"));

        for (bad, reason) in [
            ("10.88.0.1/16", "host bits are set"),
            ("10.88.0.0", "expected ADDR/PREFIX"),
            ("10.88.0.0/33", "too long"),
            ("10.88.0/16", "not IPv4 or IPv6"),
            ("10.88.0.0/x", "not a number"),
        ] {
            let err = bad.parse::<Subnet>().unwrap_err().to_string();
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }

    #[test]
    fn overlap_detection() {
        assert!(net("10.88.0.0/16").overlaps(&net("10.88.4.0/24")));
        assert!(net("10.88.4.0/24").overlaps(&net("10.88.0.0/16")));
        assert!(!net("10.88.0.0/24").overlaps(&net("10.88.1.0/24")));
        assert!(!net("10.88.0.0/16").overlaps(&net("fd00::/8")));
        assert!(net("fd00::/8").overlaps(&net("fd00:1::/64")));
    }

    #[test]
    fn default_network_and_pool() {
        let default = plan_network(&opts("berth"), "id0", &[], &[]).unwrap();
        assert_eq!(default.subnets[0].subnet, net("10.89.0.0/24"));
        assert_eq!(default.subnets[0].gateway, Some(ip("10.89.0.1")));
        assert_eq!(default.network_interface, "berth0");
        assert!(default.dns_enabled && !default.internal && !default.ipv6_enabled);

        // New networks take /24s from 10.89.1.0 on, skipping taken ones and host routes, and
        // leaving the default network's subnet free even before it exists.
        let first = plan_network(&opts("first"), "idf", &[], &[]).unwrap();
        assert_eq!(first.subnets[0].subnet, net("10.89.1.0/24"));
        let a =
            plan_network(&opts("a"), "id1", std::slice::from_ref(&default), &[net("10.89.1.0/24")])
                .unwrap();
        assert_eq!(a.subnets[0].subnet, net("10.89.2.0/24"));
        assert_eq!(a.network_interface, "berth1");
        let b = plan_network(&opts("b"), "id2", &[default, a], &[net("10.89.1.0/24")]).unwrap();
        assert_eq!(b.subnets[0].subnet, net("10.89.3.0/24"));
        assert_eq!(b.network_interface, "berth2");
    }

    #[test]
    fn create_options_are_checked() {
        let existing = vec![plan_network(&opts("berth"), "id0", &[], &[]).unwrap()];
        let with = |f: &dyn Fn(&mut CreateOptions)| {
            let mut o = opts("n");
            f(&mut o);
            plan_network(&o, "id", &existing, &[net("192.168.1.0/24")]).map_err(|e| e.to_string())
        };

        let ok = with(&|o| {
            o.subnets = vec![net("10.250.0.0/24")];
            o.gateways = vec![ip("10.250.0.254")];
            o.ip_ranges = vec![net("10.250.0.128/25")];
            o.internal = true;
            o.disable_dns = true;
        })
        .unwrap();
        let sc = &ok.subnets[0];
        assert_eq!(sc.gateway, Some(ip("10.250.0.254")));
        assert_eq!(
            sc.lease_range,
            Some(LeaseRange { start_ip: ip("10.250.0.128"), end_ip: ip("10.250.0.254") })
        );
        assert!(ok.internal && !ok.dns_enabled);

        let err = with(&|o| o.subnets = vec![net("10.89.0.128/25")]).unwrap_err();
        assert_eq!(err, "subnet 10.89.0.128/25 overlaps the subnet 10.89.0.0/24 of network berth");
        let err = with(&|o| o.subnets = vec![net("192.168.0.0/16")]).unwrap_err();
        assert_eq!(err, "subnet 192.168.0.0/16 overlaps the host's route to 192.168.1.0/24");
        let err = with(&|o| {
            o.subnets = vec![net("10.250.0.0/24")];
            o.gateways = vec![ip("10.251.0.1")];
        })
        .unwrap_err();
        assert_eq!(err, "gateway 10.251.0.1 is not a usable address of subnet 10.250.0.0/24");
        let err = with(&|o| {
            o.subnets = vec![net("10.250.0.0/24")];
            o.ip_ranges = vec![net("10.250.1.0/25")];
        })
        .unwrap_err();
        assert_eq!(err, "ip-range 10.250.1.0/25 is not inside subnet 10.250.0.0/24");
        assert_eq!(
            with(&|o| o.gateways = vec![ip("10.1.1.1")]).unwrap_err(),
            "--gateway needs a --subnet to go with it"
        );
        assert!(with(&|o| o.name = "-bad".into()).unwrap_err().contains("invalid network name"));
        assert_eq!(with(&|o| o.name = "berth".into()).unwrap_err(), "network berth already exists");
        assert_eq!(
            with(&|o| o.driver = Some("macvlan".into())).unwrap_err(),
            "driver \"macvlan\" is not supported yet (only bridge)"
        );
        assert_eq!(
            with(&|o| {
                o.options.insert("mtu".into(), "1400".into());
            })
            .unwrap_err(),
            "network option \"mtu\" is not supported yet"
        );
        assert!(with(&|o| o.interface = Some("a bridge".into()))
            .unwrap_err()
            .contains("interface name"));
        assert_eq!(
            with(&|o| o.interface = Some("berth0".into())).unwrap_err(),
            "interface berth0 is already the bridge of network berth"
        );
        let dual = with(&|o| o.subnets = vec![net("10.250.0.0/24"), net("fd00:250::/64")]).unwrap();
        assert!(dual.ipv6_enabled);
    }

    #[test]
    fn the_host_route_tables_parse() {
        let v4 =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                  eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let route = |interface: &str, subnet| HostRoute {
            interface: interface.into(),
            destination: net(subnet),
        };
        assert_eq!(parse_proc_route(v4), vec![route("eth0", "192.168.1.0/24")]);
        let v6 = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 \
                  00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n\
                  fe800000000000000000000000000000 40 00000000000000000000000000000000 00 \
                  00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n";
        assert_eq!(parse_proc_ipv6_route(v6), vec![route("eth0", "fd00::/64")]);
        // And this host's own tables read without error.
        host_routes().unwrap();
    }

    fn network(subnet: &str, range: Option<LeaseRange>) -> Network {
        let subnet = net(subnet);
        Network {
            name: "n".into(),
            id: "id".into(),
            driver: "bridge".into(),
            network_interface: "berth9".into(),
            subnets: vec![SubnetConfig {
                subnet,
                gateway: Some(subnet.first_usable()),
                lease_range: range,
            }],
            ipv6_enabled: false,
            internal: false,
            dns_enabled: true,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn the_memory_store_conforms() {
        check_store_conformance(&mut MemoryStore::default());
    }

    #[test]
    fn allocation_release_and_reuse() {
        let n = network("10.250.0.0/29", None);
        let mut store = MemoryStore::default();
        let mut alloc = Allocator::new(&mut store);
        // .1 is the gateway; .2 … .6 are usable; .7 is broadcast.
        let got: Vec<IpAddr> =
            (0..5).map(|i| alloc.allocate(&n, &format!("c{i}"), &[]).unwrap()[0]).collect();
        assert_eq!(
            got,
            ["10.250.0.2", "10.250.0.3", "10.250.0.4", "10.250.0.5", "10.250.0.6"].map(ip)
        );
        let err = alloc.allocate(&n, "c5", &[]).unwrap_err().to_string();
        assert_eq!(err, "no free address left in subnet 10.250.0.0/29 of network n");

        assert_eq!(alloc.release(&n, "c2").unwrap(), vec![ip("10.250.0.4")]);
        assert!(alloc.release(&n, "c2").unwrap().is_empty(), "release is idempotent");
        assert_eq!(alloc.allocate(&n, "c6", &[]).unwrap(), vec![ip("10.250.0.4")]);

        let err = alloc.allocate(&n, "c7", &[ip("10.250.0.3")]).unwrap_err().to_string();
        assert_eq!(err, "address 10.250.0.3 of network n is already in use");
        let err = alloc.allocate(&n, "c7", &[ip("10.250.0.7")]).unwrap_err().to_string();
        assert_eq!(err, "address 10.250.0.7 is not in network n's subnets");
        assert!(store.allocated("n").unwrap().values().all(|c| c != "c7"), "nothing half kept");
    }

    #[test]
    fn allocation_stays_in_the_lease_range() {
        let range = LeaseRange { start_ip: ip("10.250.0.200"), end_ip: ip("10.250.0.201") };
        let n = network("10.250.0.0/24", Some(range));
        let mut store = MemoryStore::default();
        let mut alloc = Allocator::new(&mut store);
        assert_eq!(alloc.allocate(&n, "a", &[]).unwrap(), vec![ip("10.250.0.200")]);
        assert_eq!(alloc.allocate(&n, "b", &[]).unwrap(), vec![ip("10.250.0.201")]);
        assert!(alloc.allocate(&n, "c", &[]).is_err());
        // A requested address outside the lease range but inside the subnet is allowed.
        assert_eq!(alloc.allocate(&n, "c", &[ip("10.250.0.9")]).unwrap(), vec![ip("10.250.0.9")]);
    }

    #[test]
    fn network_json_has_podmans_shape() {
        let n = network("10.250.0.0/24", None);
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["subnets"][0]["subnet"], "10.250.0.0/24");
        assert_eq!(json["subnets"][0]["gateway"], "10.250.0.1");
        assert_eq!(json["network_interface"], "berth9");
        let back: Network = serde_json::from_value(json).unwrap();
        assert_eq!(back, n);
    }

    proptest! {
        #[test]
        fn overlap_matches_a_brute_force_check(a in any::<u32>(), pa in 20u8..=32, b in any::<u32>(), pb in 20u8..=32) {
            let sa = Subnet::new(IpAddr::V4(Ipv4Addr::from(a)), pa).unwrap();
            let sb = Subnet::new(IpAddr::V4(Ipv4Addr::from(b)), pb).unwrap();
            let (lo, hi) = sa.bounds();
            // Small subnets: scanning the smaller one is cheap.
            let (small, big) = if pa >= pb { (sa, sb) } else { (sb, sa) };
            let (slo, shi) = small.bounds();
            let brute = (slo..=shi).any(|x| big.contains(Subnet::from_bits(big.addr, x)));
            prop_assert_eq!(sa.overlaps(&sb), brute);
            prop_assert!(lo <= hi);
        }

        #[test]
        fn subnet_display_parses_back(a in any::<u128>(), p in 0u8..=128) {
            let s = Subnet::new(IpAddr::V6(Ipv6Addr::from(a)), p).unwrap();
            prop_assert_eq!(s.to_string().parse::<Subnet>().unwrap(), s);
        }

        #[test]
        fn allocations_are_distinct_and_usable(n_alloc in 1usize..20, releases in proptest::collection::vec(0usize..20, 0..10)) {
            let n = network("10.250.0.0/27", None);
            let mut store = MemoryStore::default();
            let mut alloc = Allocator::new(&mut store);
            let mut live = BTreeMap::new();
            for i in 0..n_alloc {
                let a = alloc.allocate(&n, &format!("c{i}"), &[]).unwrap()[0];
                prop_assert!(n.subnets[0].subnet.is_usable(a) && Some(a) != n.subnets[0].gateway);
                prop_assert!(live.insert(a, i).is_none());
                if let Some(&r) = releases.get(i) {
                    if r <= i {
                        let gone = alloc.release(&n, &format!("c{r}")).unwrap();
                        for g in gone { live.remove(&g); }
                    }
                }
            }
        }
    }
}
