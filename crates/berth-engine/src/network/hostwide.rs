//! Keeping the bridge networks of independent state roots apart on one host.
//!
//! Every state root (`--root`) keeps its networks and addresses in its own state.db, and
//! nothing stops two roots — two users of `--root`, or every test with a throwaway root — from
//! recording the same bridge name and subnet. The kernel, though, has one set of interfaces
//! and routes per network namespace, so two bridges `berth0` carrying 10.89.0.0/24 cannot both
//! exist, and one root tearing down "its" bridge would cut off the other's containers.
//!
//! berth keeps them apart by asking the kernel, under one host-wide lock ([`lock`]):
//!
//! - A bridge's MAC address is derived from its network's id
//!   ([`bridge_mac`](super::bridge::bridge_mac)), and ids are random per root, so an existing
//!   interface of the recorded name is this root's bridge exactly when its MAC address says
//!   so ([`conflict`]). A bridge that is not ours is never joined, changed or removed.
//! - Where the bridge does not exist yet, no route of the host may overlap the network's
//!   subnets through another interface (another root's live bridge, Podman's `podman0`, a
//!   VPN, …).
//! - The default network is chosen on first use ([`choose_default`]): the first 10.89.N.0/24
//!   and the first `berthN` that neither the host nor the root's other networks use. When a
//!   later start finds its recorded choice taken by someone else and none of the root's
//!   containers is on it, the choice is made again; a user network is refused with a one-line
//!   error instead, since its subnet is what the user asked for or was shown.
//!
//! Why not host-wide network definitions, as Podman keeps them in /etc/containers/networks:
//! they would need a host-wide address allocator too (addresses live in each root's
//! state.db), they would outlive the throwaway roots of tests and scripts with nobody left to
//! remove them, and they would still not know about interfaces other programs made. A claim
//! read from the kernel lasts exactly as long as the bridge exists, covers every program, is
//! per network namespace (tests inside `ip netns` do not see each other), and costs one
//! ioctl and two reads of /proc per start.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use super::bridge::{self, BridgeError};
use super::ipam::{HostRoute, Network, Subnet};

/// Errors of the host-wide checks, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum HostwideError {
    #[error("taking the host-wide network lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("looking at the host's interface {name}")]
    Interface {
        name: String,
        #[source]
        source: BridgeError,
    },
    #[error("no free 10.89.N.0/24 subnet or berthN bridge name is left on this host")]
    NoFreeDefault,
}

/// The lock over every bridge change on the host, whichever state root makes it.
pub const LOCK_PATH: &str = "/run/lock/berth-network.lock";

/// The host-wide lock, released on drop.
#[derive(Debug)]
pub struct HostLock {
    _file: File,
}

/// Takes the host-wide lock (blocking). Bridge changes are few milliseconds each, so one lock
/// for all of them costs nothing worth a finer one.
pub fn lock() -> Result<HostLock, HostwideError> {
    let path = PathBuf::from(LOCK_PATH);
    let err = |source| HostwideError::Lock { path: path.clone(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(err)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| err(std::io::Error::from(e)))?;
    Ok(HostLock { _file: file })
}

/// What keeps a network from being set up on this host as recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("its bridge name {name} is an interface of another berth state root or program")]
    Interface { name: String },
    #[error("its subnet {subnet} overlaps the host's route {route} through {interface}")]
    Route { subnet: Subnet, route: Subnet, interface: String },
}

/// Whether network `net` can have its bridge on this host: `None` when its bridge exists and
/// is its own, or does not exist and no route of the host overlaps its subnets.
pub fn conflict(net: &Network, routes: &[HostRoute]) -> Result<Option<Conflict>, HostwideError> {
    let name = &net.network_interface;
    let owner = bridge::owner(name, &net.id)
        .map_err(|source| HostwideError::Interface { name: name.clone(), source })?;
    match owner {
        Some(true) => Ok(None),
        Some(false) => Ok(Some(Conflict::Interface { name: name.clone() })),
        None => Ok(net.subnets.iter().find_map(|s| {
            routes
                .iter()
                .find(|r| r.destination.prefix() > 0 && r.destination.overlaps(&s.subnet))
                .map(|r| Conflict::Route {
                    subnet: s.subnet,
                    route: r.destination,
                    interface: r.interface.clone(),
                })
        })),
    }
}

/// The subnet and bridge name for a root's default network: the first 10.89.N.0/24 (N from
/// 0) that no route of the host and none of the root's `existing` networks overlap, and the
/// first `berthN` (N from 0) that is neither an interface of the host nor another network's
/// bridge.
pub fn choose_default(
    existing: &[Network],
    routes: &[HostRoute],
) -> Result<(Subnet, String), HostwideError> {
    let taken = |candidate: &Subnet| {
        routes.iter().any(|r| r.destination.prefix() > 0 && r.destination.overlaps(candidate))
            || existing.iter().flat_map(|n| &n.subnets).any(|s| s.subnet.overlaps(candidate))
    };
    let subnet = (0u8..=255)
        .filter_map(|third| Subnet::new(IpAddr::V4(Ipv4Addr::new(10, 89, third, 0)), 24))
        .find(|s| !taken(s))
        .ok_or(HostwideError::NoFreeDefault)?;
    let mut name = None;
    for i in 0..1000 {
        let candidate = format!("berth{i}");
        if existing.iter().any(|n| n.network_interface == candidate) {
            continue;
        }
        let on_host = bridge::exists(&candidate)
            .map_err(|source| HostwideError::Interface { name: candidate.clone(), source })?;
        if !on_host {
            name = Some(candidate);
            break;
        }
    }
    Ok((subnet, name.ok_or(HostwideError::NoFreeDefault)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ipam::{plan_network, CreateOptions};

    fn route(interface: &str, subnet: &str) -> HostRoute {
        HostRoute { interface: interface.into(), destination: subnet.parse().unwrap() }
    }

    #[test]
    fn the_default_skips_what_the_host_and_the_root_use() {
        let opts = CreateOptions {
            name: "web".into(),
            subnets: vec!["10.89.1.0/24".parse().unwrap()],
            interface: Some("berthtestnope1".into()),
            ..Default::default()
        };
        let web = plan_network(&opts, "id", &[], &[]).unwrap();
        let routes = [route("eth0", "192.168.1.0/24"), route("berth0", "10.89.0.0/24")];
        let (subnet, _) = choose_default(&[web], &routes).unwrap();
        assert_eq!(subnet.to_string(), "10.89.2.0/24");
        let (subnet, _) = choose_default(&[], &[]).unwrap();
        assert_eq!(subnet.to_string(), "10.89.0.0/24");
    }

    #[test]
    fn a_missing_bridge_conflicts_only_with_an_overlapping_route() {
        let opts = CreateOptions {
            name: "web".into(),
            subnets: vec!["10.250.77.0/24".parse().unwrap()],
            interface: Some("berthnope77".into()),
            ..Default::default()
        };
        let net = plan_network(&opts, "id", &[], &[]).unwrap();
        assert_eq!(
            conflict(&net, &[route("eth0", "10.250.0.0/16")]).unwrap().unwrap().to_string(),
            "its subnet 10.250.77.0/24 overlaps the host's route 10.250.0.0/16 through eth0"
        );
        assert_eq!(conflict(&net, &[route("eth0", "10.251.0.0/16")]).unwrap(), None);
    }
}
