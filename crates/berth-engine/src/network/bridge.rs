//! Rootful bridge plumbing: a Linux bridge carrying the network's gateway addresses, and per
//! container a veth pair whose inner end is created straight inside the container's network
//! namespace as `eth0`, with its addresses, default routes and `lo` up.
//!
//! Every step execs iproute2's `ip`, batching the commands of one side into one `ip -batch -`
//! run: the host side (create the pair, enslave, up) in the caller's namespace and the
//! container side in the container's, entered with setns(2) by [`Netns::command`]. The inner
//! end is born in the target namespace (`peer name eth0 netns PATH`), so no interface named
//! eth0 ever appears on the host, and a failure leaves at most the host end, which
//! [`attach`] removes before it returns the error; removing the host end removes its peer.
//!
//! The functions act on the network namespace of the calling thread, which is what lets the
//! tests run them inside a namespace of their own.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::netns::{Netns, NetnsError};

/// Errors of the bridge and veth plumbing, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("running {program}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{step} ({where_}): ip says: {stderr}")]
    Ip { step: &'static str, where_: String, stderr: String },
    #[error("reading the output of ip for {what}")]
    ParseIp {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing {value} to {path}")]
    Sysctl {
        path: PathBuf,
        value: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("interface name {name:?} is not 1 to 15 characters of letters, digits, '.', '-', '_'")]
    InterfaceName { name: String },
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

/// An address with its prefix length, as on an interface: `10.88.0.1/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl std::fmt::Display for IfAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The `ip` program; berth finds it on PATH as /usr/sbin is on root's PATH.
const IP: &str = "ip";

/// Checks an interface name as the kernel would (IFNAMSIZ is 16 with the NUL), and keeps it
/// free of anything `ip -batch` would read as a separator.
pub fn validate_interface_name(name: &str) -> Result<(), BridgeError> {
    let ok = (1..=15).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(BridgeError::InterfaceName { name: name.to_owned() })
    }
}

/// The host-side veth name of a container on a network: `veth` and 11 hex digits of a hash of
/// both, so it fits IFNAMSIZ, is stable across retries (cleanup can recompute it), and differs
/// per network when one container joins several.
pub fn host_veth_name(container_id: &str, network: &str) -> String {
    // FNV-1a, 64 bits: stable across builds and platforms, which std's hasher is not.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in container_id.bytes().chain([0]).chain(network.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("veth{:011x}", hash >> 20)
}

/// The MAC address of a container's interface on a network: locally administered, unicast,
/// and derived from both (as [`host_veth_name`] is), so berth knows it for inspect without
/// asking the container's namespace.
pub fn container_mac(container_id: &str, network: &str) -> String {
    bridge_mac(&format!("{container_id}\0{network}"))
}

/// The fixed MAC address of a bridge keyed `key`: locally administered, unicast, and derived
/// from the key so that a bridge made again keeps the address the containers have cached.
/// berth keys a network's bridge by the network's id, which no other state root shares, so
/// the address also tells whose bridge an interface of that name is ([`owner`]).
pub fn bridge_mac(key: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = hash.to_be_bytes();
    format!("02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[3], b[4], b[5], b[6], b[7])
}

/// Runs `ip -batch -` with `script` on stdin; `step` and `where_` go into the error.
fn run_batch(
    mut cmd: Command,
    script: &str,
    step: &'static str,
    where_: &str,
) -> Result<(), BridgeError> {
    tracing::debug!(step, where_, script, "ip -batch");
    cmd.args(["-batch", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| BridgeError::Spawn { program: IP, source })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error means ip died early; its stderr below says why.
        let _ = stdin.write_all(script.as_bytes());
    }
    let out =
        child.wait_with_output().map_err(|source| BridgeError::Spawn { program: IP, source })?;
    if out.status.success() {
        return Ok(());
    }
    Err(BridgeError::Ip { step, where_: where_.to_owned(), stderr: one_line(&out.stderr) })
}

/// Runs `ip ARGS…` in the calling thread's namespace and returns its stdout, or `None` when ip
/// says the device does not exist.
fn query(args: &[&str], step: &'static str, where_: &str) -> Result<Option<Vec<u8>>, BridgeError> {
    let out = Command::new(IP)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BridgeError::Spawn { program: IP, source })?;
    if out.status.success() {
        return Ok(Some(out.stdout));
    }
    let stderr = one_line(&out.stderr);
    if stderr.contains("does not exist") {
        return Ok(None);
    }
    Err(BridgeError::Ip { step, where_: where_.to_owned(), stderr })
}

fn one_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines.join("; ")
}

/// The part of `ip -j addr show` berth reads.
#[derive(Debug, Deserialize)]
struct LinkJson {
    ifname: String,
    #[serde(default)]
    addr_info: Vec<AddrJson>,
    #[serde(default)]
    operstate: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct AddrJson {
    local: Option<IpAddr>,
    prefixlen: Option<u8>,
}

/// What is known about an interface of the calling thread's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    pub addresses: Vec<IfAddr>,
    /// The administrative state: `ip link set up` was done.
    pub up: bool,
}

/// Whether interface `name` exists in the calling thread's namespace, without an exec:
/// if_nametoindex(3) asks through a socket, which lives in the thread's namespace (unlike
/// /sys/class/net, which shows the namespace sysfs was mounted in).
pub fn exists(name: &str) -> Result<bool, BridgeError> {
    validate_interface_name(name)?;
    let c = std::ffi::CString::new(name).expect("validated names hold no NUL");
    // SAFETY: `c` is a NUL-terminated string that outlives the call; if_nametoindex only
    // reads it.
    Ok(unsafe { libc::if_nametoindex(c.as_ptr()) } != 0)
}

/// The interface `name`, or `None` when it does not exist.
pub fn link(name: &str) -> Result<Option<LinkInfo>, BridgeError> {
    validate_interface_name(name)?;
    let Some(stdout) =
        query(&["-j", "addr", "show", "dev", name], "looking up the interface", name)?
    else {
        return Ok(None);
    };
    let links: Vec<LinkJson> = serde_json::from_slice(&stdout)
        .map_err(|source| BridgeError::ParseIp { what: name.to_owned(), source })?;
    Ok(links.into_iter().next().map(|l| LinkInfo {
        up: l.flags.iter().any(|f| f == "UP") || l.operstate.as_deref() == Some("UP"),
        addresses: l
            .addr_info
            .iter()
            .filter_map(|a| Some(IfAddr { addr: a.local?, prefix: a.prefixlen? }))
            .collect(),
        name: l.ifname,
    }))
}

/// The interfaces enslaved to bridge `name`.
pub fn bridge_members(name: &str) -> Result<Vec<String>, BridgeError> {
    validate_interface_name(name)?;
    let Some(stdout) =
        query(&["-j", "link", "show", "master", name], "listing bridge ports", name)?
    else {
        return Ok(Vec::new());
    };
    // ip prints nothing at all (not "[]") for a bridge without ports.
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let links: Vec<LinkJson> = serde_json::from_slice(&stdout)
        .map_err(|source| BridgeError::ParseIp { what: name.to_owned(), source })?;
    Ok(links.into_iter().map(|l| l.ifname).collect())
}

/// Who bridge `name` belongs to: `None` when there is no such interface, `Some(true)` when its
/// MAC address is [`bridge_mac`]`(key)`, `Some(false)` for anyone else's interface of that
/// name. Asked with ioctl(SIOCGIFHWADDR) on a socket, so it costs no exec and answers for the
/// calling thread's namespace.
pub fn owner(name: &str, key: &str) -> Result<Option<bool>, BridgeError> {
    validate_interface_name(name)?;
    let Some(mac) = hardware_address(name) else { return Ok(None) };
    Ok(Some(mac == bridge_mac(key)))
}

/// The MAC address of interface `name` as `02:ab:…`, `None` when it does not exist.
fn hardware_address(name: &str) -> Option<String> {
    // SAFETY: socket(2) with constant arguments; the descriptor is owned right below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // Validated names are at most 15 bytes, so the NUL of the zeroed array stays.
    for (slot, byte) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads ifr_name and writes ifr_hwaddr of the ifreq we own, which
    // outlives the call; the socket is open.
    let rc = unsafe {
        libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&sock), libc::SIOCGIFHWADDR, &mut req)
    };
    if rc < 0 {
        return None;
    }
    // SAFETY: a successful SIOCGIFHWADDR filled the ifru_hwaddr member of the union.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let bytes: Vec<String> = data[..6].iter().map(|b| format!("{:02x}", *b as u8)).collect();
    Some(bytes.join(":"))
}

/// Makes sure bridge `name` exists, is up and carries `addresses` (the gateways of the
/// network's subnets), with the MAC address of [`bridge_mac`]`(name)`. Returns whether it was
/// created now. Safe to call for every container that joins.
pub fn ensure_bridge(
    name: &str,
    addresses: &[IfAddr],
    mtu: Option<u32>,
) -> Result<bool, BridgeError> {
    ensure_bridge_keyed(name, name, addresses, mtu)
}

/// [`ensure_bridge`] with the MAC address of [`bridge_mac`]`(key)`.
pub fn ensure_bridge_keyed(
    name: &str,
    key: &str,
    addresses: &[IfAddr],
    mtu: Option<u32>,
) -> Result<bool, BridgeError> {
    // The common case, a bridge set up by an earlier container, costs no exec: an existing
    // bridge is taken as configured, since berth adds its addresses in the batch that creates
    // it. TODO: compare addresses too once netlink replaces the exec and that is cheap.
    if exists(name)? {
        return Ok(false);
    }
    // A fixed address: without one, a Linux bridge takes the lowest address of its ports and
    // changes it whenever a port with a lower one joins (about one container in three on a
    // network of two). The containers' neighbour caches then hold a gateway address the bridge
    // no longer answers to, and their packets to the gateway — DNS above all — are dropped
    // until the entry goes stale, tens of seconds later.
    let mac = bridge_mac(key);
    let mut script = format!("link add {name} address {mac} type bridge\n");
    if let Some(mtu) = mtu {
        script.push_str(&format!("link set dev {name} mtu {mtu}\n"));
    }
    for addr in addresses {
        // nodad: the gateway address is ours alone; waiting for DAD only delays the first run.
        let extra = if addr.addr.is_ipv6() { " nodad" } else { "" };
        script.push_str(&format!("addr add {addr} dev {name}{extra}\n"));
    }
    script.push_str(&format!("link set dev {name} up\n"));
    match run_batch(Command::new(IP), &script, "setting up the bridge", name) {
        // Another berth process created it between the check and now; it sets it up.
        Err(BridgeError::Ip { stderr, .. }) if stderr.contains("File exists") => Ok(false),
        Err(err) => Err(err),
        Ok(()) => {
            tracing::debug!(bridge = name, "bridge created");
            Ok(true)
        }
    }
}

/// Removes bridge `name` if it has no ports left, returning whether it is gone now. With
/// `force`, the veth pairs still on it are removed first (a bridge's deletion alone would only
/// release them). A missing bridge is no error.
pub fn remove_bridge(name: &str, force: bool) -> Result<bool, BridgeError> {
    if !exists(name)? {
        return Ok(true);
    }
    let members = bridge_members(name)?;
    if !force && !members.is_empty() {
        return Ok(false);
    }
    let mut script = String::new();
    for member in &members {
        validate_interface_name(member)?;
        script.push_str(&format!("link del {member}\n"));
    }
    script.push_str(&format!("link del {name}\n"));
    match run_batch(Command::new(IP), &script, "removing the bridge", name) {
        Err(BridgeError::Ip { stderr, .. }) if stderr.contains("Cannot find device") => Ok(true),
        other => other.map(|()| true),
    }
}

/// How one container joins a bridge.
#[derive(Debug, Clone)]
pub struct VethConfig {
    /// The host end, see [`host_veth_name`].
    pub host_name: String,
    /// The container end's name, `eth0` for the first network.
    pub container_name: String,
    pub netns: Netns,
    /// The container's addresses, one per subnet.
    pub addresses: Vec<IfAddr>,
    /// Default routes via these gateways (one per family at most); none on an internal
    /// network that should not route, or on a second network.
    pub gateways: Vec<IpAddr>,
    pub mtu: Option<u32>,
    /// A fixed MAC address (`--mac-address`), else the kernel's random one.
    pub mac: Option<String>,
}

/// Creates the veth pair of `cfg`, enslaves the host end to `bridge` and configures the
/// container end inside its namespace. On failure the pair is removed again.
pub fn attach(bridge: &str, cfg: &VethConfig) -> Result<(), BridgeError> {
    validate_interface_name(bridge)?;
    validate_interface_name(&cfg.host_name)?;
    validate_interface_name(&cfg.container_name)?;
    let ns_path = cfg.netns.path();
    let ns_text = ns_path.display().to_string();
    if ns_text.chars().any(char::is_whitespace) {
        return Err(BridgeError::Ip {
            step: "naming the namespace",
            where_: ns_text,
            stderr: "a namespace path with whitespace cannot be passed to ip -batch".into(),
        });
    }
    // Open the namespace first: a dead container fails here, before anything is created.
    let inner = cfg.netns.command(IP)?;

    let mtu = cfg.mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
    let mac = cfg.mac.as_ref().map(|m| format!(" address {m}")).unwrap_or_default();
    let host_script = format!(
        "link add {host}{mtu} type veth peer name {inner}{mtu}{mac} netns {ns_text}\n\
         link set dev {host} master {bridge}\n\
         link set dev {host} up\n",
        host = cfg.host_name,
        inner = cfg.container_name,
    );
    run_batch(Command::new(IP), &host_script, "creating the veth pair", &cfg.host_name)?;

    let mut inner_script = String::from("link set dev lo up\n");
    for addr in &cfg.addresses {
        let extra = if addr.addr.is_ipv6() { " nodad" } else { "" };
        inner_script.push_str(&format!("addr add {addr} dev {}{extra}\n", cfg.container_name));
    }
    inner_script.push_str(&format!("link set dev {} up\n", cfg.container_name));
    for gw in &cfg.gateways {
        // No "-6" in a batch line: ip takes the family from the gateway's address.
        inner_script.push_str(&format!("route add default via {gw} dev {}\n", cfg.container_name));
    }
    if let Err(err) =
        run_batch(inner, &inner_script, "configuring the container interface", &ns_text)
    {
        // Undo the pair; the error that matters is the one above.
        if let Err(undo) = detach(&cfg.host_name) {
            tracing::warn!(veth = %cfg.host_name, error = %undo, "removing a half-made veth pair");
        }
        return Err(err);
    }
    tracing::debug!(bridge, veth = %cfg.host_name, netns = %ns_text, "container attached");
    Ok(())
}

/// Removes a container's veth pair by its host end, returning whether it existed. Deleting
/// one end deletes the other; a pair whose namespace died is already gone, which is no error.
pub fn detach(host_name: &str) -> Result<bool, BridgeError> {
    if !exists(host_name)? {
        return Ok(false);
    }
    match run_batch(
        Command::new(IP),
        &format!("link del {host_name}\n"),
        "removing the veth pair",
        host_name,
    ) {
        Err(BridgeError::Ip { stderr, .. }) if stderr.contains("Cannot find device") => Ok(false),
        other => other.map(|()| true),
    }
}

/// Writes a sysctl of the calling thread's network namespace.
fn write_sysctl(path: PathBuf, value: &'static str) -> Result<(), BridgeError> {
    std::fs::write(&path, value).map_err(|source| BridgeError::Sysctl { path, value, source })
}

/// Turns on IPv4 (and, with `ipv6`, IPv6) forwarding, which masquerading and published ports
/// need, as Podman does when it sets up a bridge network.
pub fn enable_forwarding(ipv6: bool) -> Result<(), BridgeError> {
    write_sysctl(PathBuf::from("/proc/sys/net/ipv4/ip_forward"), "1")?;
    if ipv6 {
        write_sysctl(PathBuf::from("/proc/sys/net/ipv6/conf/all/forwarding"), "1")?;
    }
    Ok(())
}

/// Lets packets from 127.0.0.0/8 be routed out of `bridge`, so that a port published on the
/// host's loopback address reaches the container after DNAT (the route_localnet sysctl).
pub fn allow_localnet(bridge: &str) -> Result<(), BridgeError> {
    validate_interface_name(bridge)?;
    write_sysctl(PathBuf::from(format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet")), "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_fit_and_are_stable() {
        let a = host_veth_name("0123456789abcdef", "berth");
        assert_eq!(a.len(), 15);
        assert!(validate_interface_name(&a).is_ok());
        assert_eq!(a, host_veth_name("0123456789abcdef", "berth"));
        assert_ne!(a, host_veth_name("0123456789abcdef", "other"));
        assert_ne!(a, host_veth_name("0123456789abcdee", "berth"));
    }

    #[test]
    fn interface_names_are_checked() {
        for bad in ["", "sixteen-chars-xx", "a b", "a/b", "x\nlink del eth0"] {
            assert!(validate_interface_name(bad).is_err(), "{bad:?}");
        }
        let err = validate_interface_name("a b").unwrap_err().to_string();
        assert!(err.contains("\"a b\""), "{err}");
    }
}
