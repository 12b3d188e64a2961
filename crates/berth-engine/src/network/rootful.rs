//! Connecting a container to a rootful bridge network, and disconnecting it, as single
//! operations over the pieces: an address from [`ipam`](super::ipam), the bridge and veth pair
//! from [`bridge`](super::bridge), the masquerade and DNAT rules from
//! [`firewall`](super::firewall).
//!
//! [`connect`] either finishes or undoes what it did, so a failed start leaves no veth, rule
//! or reserved address behind. [`disconnect`] needs nothing but the network and the container
//! id — the veth name is derived from both, the rules are found by their tag, the addresses
//! by the store — so the next berth command can clean up after a monitor killed with SIGKILL,
//! and running it twice is harmless. The bridge and the network's rules go when the last
//! container leaves.
//!
//! Two berth processes connecting and disconnecting the last container of one network at the
//! same moment could race between "bridge has no ports" and deleting it; callers hold the
//! lock of [`attach`](super::attach) around both calls, as `attach` and `detach` do.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::bridge::{self, BridgeError, IfAddr, VethConfig};
use super::firewall::{self, FirewallError, NetworkRules, PortForward};
use super::ipam::{Allocator, IpamError, IpamStore, Network};
use super::netns::Netns;
use super::ports::PortMapping;

/// Errors of connecting and disconnecting, named after the step that failed, with the
/// network and container they were about.
#[derive(Debug, thiserror::Error)]
pub enum RootfulError {
    #[error("allocating an address on network {network} for {container}")]
    Allocate {
        network: String,
        container: String,
        #[source]
        source: IpamError,
    },
    #[error("releasing the addresses of {container} on network {network}")]
    Release {
        network: String,
        container: String,
        #[source]
        source: IpamError,
    },
    #[error("setting up the bridge {bridge} of network {network}")]
    Bridge {
        network: String,
        bridge: String,
        #[source]
        source: BridgeError,
    },
    #[error("connecting {container} to network {network}")]
    Veth {
        network: String,
        container: String,
        #[source]
        source: BridgeError,
    },
    #[error("disconnecting {container} from network {network}")]
    Detach {
        network: String,
        container: String,
        #[source]
        source: BridgeError,
    },
    #[error("firewall rules of network {network}")]
    NetworkRules {
        network: String,
        #[source]
        source: FirewallError,
    },
    #[error("published ports of {container}")]
    Ports {
        container: String,
        #[source]
        source: FirewallError,
    },
    #[error("container {container} publishes ports but has no address on network {network}")]
    NoAddressForPorts { container: String, network: String },
}

/// A container's request to join a network.
#[derive(Debug, Clone)]
pub struct ConnectRequest<'a> {
    pub network: &'a Network,
    pub container_id: &'a str,
    pub netns: Netns,
    /// The interface inside, `eth0` for the first network, `eth1` … after.
    pub interface: &'a str,
    /// `--ip`/`--ip6` for this network.
    pub requested: &'a [IpAddr],
    /// Published ports, forwarded to this network's address of the container.
    pub ports: &'a [PortMapping],
    /// Whether this network gives the container its default route (the first one does).
    pub default_route: bool,
    pub mac: Option<String>,
}

/// What a connection made, for `inspect` and `berth port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    pub interface: String,
    pub host_veth: String,
    pub addresses: Vec<IpAddr>,
    pub gateways: Vec<IpAddr>,
    pub ports: Vec<PortMapping>,
    /// The container interface's MAC address.
    #[serde(default)]
    pub mac: String,
}

/// Connects a container to a bridge network; on failure, undoes every step before returning.
///
/// nftables DNAT binds no socket, so the caller first reserves the host ports with
/// [`ports::reserve`](super::ports::reserve) — a port in use then fails before anything is set
/// up — and keeps the reservation in the container's monitor for as long as it runs.
pub fn connect(
    req: &ConnectRequest<'_>,
    store: &mut dyn IpamStore,
) -> Result<Attachment, RootfulError> {
    let net = req.network;
    let container = req.container_id.to_owned();

    // The address first: the cheapest step to undo, and the one most likely to fail.
    let addresses =
        Allocator::new(store).allocate(net, req.container_id, req.requested).map_err(|source| {
            RootfulError::Allocate {
                network: net.name.clone(),
                container: container.clone(),
                source,
            }
        })?;

    let result = connect_after_allocation(req, &addresses);
    if result.is_err() {
        // Undo everything; the first error is the one the user needs.
        if let Err(undo) = disconnect(net, req.container_id, true, store) {
            tracing::warn!(network = %net.name, container = %container, error = %undo, "undoing a failed connect");
        }
    }
    result
}

fn connect_after_allocation(
    req: &ConnectRequest<'_>,
    addresses: &[IpAddr],
) -> Result<Attachment, RootfulError> {
    let net = req.network;
    let bridge_err = |source| RootfulError::Bridge {
        network: net.name.clone(),
        bridge: net.network_interface.clone(),
        source,
    };

    // The bridge carries every subnet's gateway.
    let gateways: Vec<IfAddr> = net
        .subnets
        .iter()
        .filter_map(|s| Some(IfAddr { addr: s.gateway?, prefix: s.subnet.prefix() }))
        .collect();
    // The bridge's MAC address is keyed by the network's id, which marks it as this state
    // root's (attach's claim checks that before anything is set up).
    let created = bridge::ensure_bridge_keyed(&net.network_interface, &net.id, &gateways, None)
        .map_err(bridge_err)?;

    // Routing beyond the bridge, and ports published on 127.0.0.1, need these sysctls.
    if !net.internal {
        bridge::enable_forwarding(net.ipv6_enabled).map_err(bridge_err)?;
    }
    if !req.ports.is_empty() {
        bridge::allow_localnet(&net.network_interface).map_err(bridge_err)?;
    }
    // The veth pair, with the container's addresses and default routes inside.
    let host_veth = bridge::host_veth_name(req.container_id, &net.name);
    let mut routes = Vec::new();
    let mut if_addrs = Vec::new();
    for addr in addresses {
        let Some(config) = net.subnet_of(*addr) else { continue };
        if_addrs.push(IfAddr { addr: *addr, prefix: config.subnet.prefix() });
        let family_routed = routes.iter().any(|g: &IpAddr| g.is_ipv4() == addr.is_ipv4());
        if req.default_route && !net.internal && !family_routed {
            routes.extend(config.gateway);
        }
    }
    // A MAC address of berth's choosing, so inspect knows it without an exec into the
    // namespace.
    let mac = req.mac.clone().unwrap_or_else(|| bridge::container_mac(req.container_id, &net.name));
    let veth = VethConfig {
        host_name: host_veth.clone(),
        container_name: req.interface.to_owned(),
        netns: req.netns.clone(),
        addresses: if_addrs,
        gateways: routes.clone(),
        mtu: None,
        mac: Some(mac.clone()),
    };
    bridge::attach(&net.network_interface, &veth).map_err(|source| RootfulError::Veth {
        network: net.name.clone(),
        container: req.container_id.to_owned(),
        source,
    })?;

    // Published ports go to the container's address of the host address's family.
    let mut forwards = Vec::new();
    for m in req.ports {
        let want_v4 = m.host_ip.is_none_or(|ip| ip.is_ipv4());
        let target = addresses.iter().find(|a| a.is_ipv4() == want_v4).ok_or_else(|| {
            RootfulError::NoAddressForPorts {
                container: req.container_id.to_owned(),
                network: net.name.clone(),
            }
        })?;
        forwards.push(PortForward {
            host_ip: m.host_ip,
            host_port: m.host_port,
            protocol: m.protocol,
            container_ip: *target,
            container_port: m.container_port,
        });
    }
    // The network's rules and the container's ports, in one nftables transaction. The rules
    // are made with the bridge and go with it, so a container joining an existing bridge
    // without ports needs no nft at all (two execs less on the path of every `run`).
    if created || !forwards.is_empty() {
        let subnets: Vec<_> = net.subnets.iter().map(|s| s.subnet).collect();
        let rules = NetworkRules {
            name: &net.network_interface,
            bridge: &net.network_interface,
            subnets: &subnets,
            internal: net.internal,
        };
        let ports = (!forwards.is_empty()).then_some((req.container_id, forwards.as_slice()));
        firewall::connect_rules(&rules, ports)
            .map_err(|source| RootfulError::NetworkRules { network: net.name.clone(), source })?;
    }

    tracing::debug!(network = %net.name, container = req.container_id, ?addresses, "connected");
    Ok(Attachment {
        network: net.name.clone(),
        interface: req.interface.to_owned(),
        host_veth,
        addresses: addresses.to_vec(),
        gateways: routes,
        ports: req.ports.to_vec(),
        mac,
    })
}

/// Disconnects a container from a bridge network: its published ports, its veth pair and its
/// addresses go; the bridge and the network's rules go too when no container is left on it
/// and the bridge is this network's (an interface of that name with another MAC address
/// belongs to another state root or program and is left alone). `had_ports: false` says the
/// container published nothing here, which saves listing the firewall while the bridge stays.
/// Every step runs even if an earlier one failed; the first error is returned.
pub fn disconnect(
    net: &Network,
    container_id: &str,
    had_ports: bool,
    store: &mut dyn IpamStore,
) -> Result<(), RootfulError> {
    let mut first: Option<RootfulError> = None;
    let mut keep = |r: Result<(), RootfulError>| {
        if let Err(e) = r {
            tracing::debug!(error = %e, "disconnect step failed");
            first.get_or_insert(e);
        }
    };

    let host_veth = bridge::host_veth_name(container_id, &net.name);
    keep(bridge::detach(&host_veth).map(drop).map_err(|source| RootfulError::Detach {
        network: net.name.clone(),
        container: container_id.to_owned(),
        source,
    }));
    keep(Allocator::new(store).release(net, container_id).map(drop).map_err(|source| {
        RootfulError::Release {
            network: net.name.clone(),
            container: container_id.to_owned(),
            source,
        }
    }));

    // The last one out removes the bridge, and with it the network's rules.
    let bridge_err = |source| RootfulError::Bridge {
        network: net.name.clone(),
        bridge: net.network_interface.clone(),
        source,
    };
    let bridge_gone = match bridge::owner(&net.network_interface, &net.id) {
        Ok(Some(true)) => match bridge::remove_bridge(&net.network_interface, false) {
            Ok(gone) => gone,
            Err(source) => {
                keep(Err(bridge_err(source)));
                false
            }
        },
        // Gone already (its rules may not be, after a crash), or someone else's.
        Ok(None) => true,
        Ok(Some(false)) => false,
        Err(source) => {
            keep(Err(bridge_err(source)));
            false
        }
    };
    if had_ports || bridge_gone {
        let network = bridge_gone.then_some(net.network_interface.as_str());
        keep(
            firewall::disconnect_rules(container_id, network).map(drop).map_err(|source| {
                RootfulError::Ports { container: container_id.to_owned(), source }
            }),
        );
    }
    match first {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Removes what a network has on the host — its bridge (with any veth still on it) and its
/// rules — for `network rm --force` and `network prune`. The addresses in the store are the
/// caller's to drop with the network's record. Missing pieces are no error.
pub fn remove_network(net: &Network) -> Result<(), RootfulError> {
    let bridge_err = |source| RootfulError::Bridge {
        network: net.name.clone(),
        bridge: net.network_interface.clone(),
        source,
    };
    // Another state root's (or program's) interface of the same name is not ours to remove.
    if bridge::owner(&net.network_interface, &net.id).map_err(bridge_err)? == Some(false) {
        return Ok(());
    }
    bridge::remove_bridge(&net.network_interface, true).map_err(bridge_err)?;
    firewall::remove_network_rules(&net.network_interface)
        .map(drop)
        .map_err(|source| RootfulError::NetworkRules { network: net.name.clone(), source })
}
