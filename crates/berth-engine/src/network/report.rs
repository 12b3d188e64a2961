//! A container's networking as `inspect` and `ps` show it, in Podman's shapes: inspect's
//! `NetworkSettings` (the first network's addresses at the top, every network under
//! `Networks`, published ports under `Ports`), `HostConfig.PortBindings`, and the PORTS column
//! of `ps` (`127.0.0.1:8080->80/tcp, 0.0.0.0:8443->443/tcp`).
//!
//! Everything comes from what [`attach`](super::attach) recorded for the running container;
//! a container that is not running has no addresses, and shows the empty values Podman shows
//! for it, under the names of the networks it joins when it starts.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::attach::{ContainerNetwork, NetworkStatus};
use super::mode::NetworkAttach;
use super::ports::PortMapping;

/// The first address of the family wanted, with its prefix length.
fn first_of(net: &NetworkStatus, v4: bool) -> (String, u8) {
    net.addresses
        .iter()
        .zip(net.prefix_lengths.iter().chain(std::iter::repeat(&0)))
        .find(|(a, _)| a.is_ipv4() == v4)
        .map(|(a, p)| (a.to_string(), *p))
        .unwrap_or_default()
}

fn gateway_of(net: &NetworkStatus, v4: bool) -> String {
    net.gateways.iter().find(|g| g.is_ipv4() == v4).map(IpAddr::to_string).unwrap_or_default()
}

/// The address fields Podman repeats at the top and per network.
fn address_fields(net: Option<&NetworkStatus>) -> Map<String, Value> {
    let (ip, prefix) = net.map(|n| first_of(n, true)).unwrap_or_default();
    let (ip6, prefix6) = net.map(|n| first_of(n, false)).unwrap_or_default();
    let mut out = Map::new();
    out.insert("EndpointID".into(), json!(""));
    out.insert("Gateway".into(), json!(net.map(|n| gateway_of(n, true)).unwrap_or_default()));
    out.insert("IPAddress".into(), json!(ip));
    out.insert("IPPrefixLen".into(), json!(prefix));
    out.insert("IPv6Gateway".into(), json!(net.map(|n| gateway_of(n, false)).unwrap_or_default()));
    out.insert("GlobalIPv6Address".into(), json!(ip6));
    out.insert("GlobalIPv6PrefixLen".into(), json!(prefix6));
    out.insert("MacAddress".into(), json!(net.and_then(|n| n.mac.clone()).unwrap_or_default()));
    out
}

/// `NetworkSettings.Ports` and `HostConfig.PortBindings`: `{"80/tcp": [{"HostIp": "",
/// "HostPort": "8080"}]}`, with an empty HostIp for every host address, as Podman prints it.
pub fn port_bindings(ports: &[PortMapping]) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for m in ports {
        out.entry(format!("{}/{}", m.container_port, m.protocol)).or_default().push(json!({
            "HostIp": m.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            "HostPort": m.host_port.to_string(),
        }));
    }
    out.into_iter().map(|(k, v)| (k, Value::Array(v))).collect()
}

/// Inspect's `NetworkSettings` for a container with `net` recorded (`None`: not running, or
/// no networking of berth's).
pub fn network_settings(net: Option<&ContainerNetwork>) -> Value {
    let first = net.and_then(|n| n.networks.first());
    let mut out = address_fields(first);
    out.insert("Bridge".into(), json!(""));
    out.insert("SandboxID".into(), json!(""));
    out.insert("HairpinMode".into(), json!(false));
    out.insert("LinkLocalIPv6Address".into(), json!(""));
    out.insert("LinkLocalIPv6PrefixLen".into(), json!(0));
    let ports = net.map(|n| port_bindings(&n.ports)).unwrap_or_default();
    out.insert("Ports".into(), json!(ports));
    let sandbox = net.and_then(|n| n.netns_path.as_ref()).map(|p| p.display().to_string());
    out.insert("SandboxKey".into(), json!(sandbox.unwrap_or_default()));
    if let Some(net) = net.filter(|n| !n.networks.is_empty()) {
        let networks =
            net.networks.iter().map(|on| network_entry(Some(on), &on.name, &on.aliases)).collect();
        out.insert("Networks".into(), Value::Object(networks));
    }
    Value::Object(out)
}

/// Inspect's `NetworkSettings` for a container that is not running: as Podman shows it, the
/// bridge networks it joins at its next start, by name and aliases, with empty addresses.
pub fn configured_network_settings(nets: &[NetworkAttach]) -> Value {
    let mut out = network_settings(None);
    if !nets.is_empty() {
        let networks = nets.iter().map(|n| network_entry(None, &n.name, &n.aliases)).collect();
        out["Networks"] = Value::Object(networks);
    }
    out
}

/// One entry of `NetworkSettings.Networks`: network `name`'s addresses (empty when `on` is
/// `None`) and the container's aliases on it.
fn network_entry(on: Option<&NetworkStatus>, name: &str, aliases: &[String]) -> (String, Value) {
    let mut entry = address_fields(on);
    entry.insert("NetworkID".into(), json!(name));
    entry.insert("DriverOpts".into(), Value::Null);
    entry.insert("IPAMConfig".into(), Value::Null);
    entry.insert("Links".into(), Value::Null);
    entry.insert("Aliases".into(), json!(aliases));
    (name.to_owned(), Value::Object(entry))
}

/// The PORTS column of `ps`: `127.0.0.1:8080->80/tcp, 0.0.0.0:8443->443/tcp`.
pub fn ports_column(ports: &[PortMapping]) -> String {
    ports
        .iter()
        .map(|m| {
            let ip = m.host_ip.map_or_else(|| "0.0.0.0".to_owned(), |ip| ip.to_string());
            format!("{ip}:{}->{}/{}", m.host_port, m.container_port, m.protocol)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ps --format json`'s Ports: `[{"host_ip": "", "container_port": 80, "host_port": 8080,
/// "range": 1, "protocol": "tcp"}]`, Podman's field names.
pub fn ports_json(ports: &[PortMapping]) -> Vec<Value> {
    ports
        .iter()
        .map(|m| {
            json!({
                "host_ip": m.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                "container_port": m.container_port,
                "host_port": m.host_port,
                "range": 1,
                "protocol": m.protocol.as_str(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ports::Protocol;

    #[test]
    fn settings_and_columns_read_like_podmans() {
        let ports = vec![
            PortMapping {
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp,
            },
            PortMapping {
                host_ip: None,
                host_port: 5353,
                container_port: 53,
                protocol: Protocol::Udp,
            },
        ];
        let net = ContainerNetwork {
            mode: "bridge".into(),
            networks: vec![NetworkStatus {
                name: "berth".into(),
                network_id: "abc".into(),
                interface: "eth0".into(),
                addresses: vec!["10.89.0.2".parse().unwrap()],
                prefix_lengths: vec![24],
                gateways: vec!["10.89.0.1".parse().unwrap()],
                mac: Some("02:00:00:00:00:01".into()),
                aliases: vec!["web".into()],
            }],
            ports: ports.clone(),
            netns_path: Some("/run/berth/netns/berth-x".into()),
            hosts: String::new(),
            resolv_conf: String::new(),
        };
        let s = network_settings(Some(&net));
        assert_eq!(s["IPAddress"], "10.89.0.2");
        assert_eq!(s["IPPrefixLen"], 24);
        assert_eq!(s["Gateway"], "10.89.0.1");
        assert_eq!(s["MacAddress"], "02:00:00:00:00:01");
        assert_eq!(s["SandboxKey"], "/run/berth/netns/berth-x");
        assert_eq!(s["Ports"]["80/tcp"], json!([{"HostIp": "127.0.0.1", "HostPort": "8080"}]));
        assert_eq!(s["Ports"]["53/udp"], json!([{"HostIp": "", "HostPort": "5353"}]));
        assert_eq!(s["Networks"]["berth"]["IPAddress"], "10.89.0.2");
        assert_eq!(s["Networks"]["berth"]["NetworkID"], "berth");
        assert_eq!(s["Networks"]["berth"]["Aliases"], json!(["web"]));
        assert_eq!(ports_column(&ports), "127.0.0.1:8080->80/tcp, 0.0.0.0:5353->53/udp");
        let none = network_settings(None);
        assert_eq!(none["IPAddress"], "");
        assert_eq!(none["Ports"], json!({}));
        assert!(none.get("Networks").is_none());

        // Not running: the networks of its next start, with no address.
        let side = NetworkAttach {
            name: "side".into(),
            addresses: vec!["10.250.52.77".parse().unwrap()],
            aliases: vec!["extra".into()],
            ..Default::default()
        };
        let berth = NetworkAttach { name: "berth".into(), ..Default::default() };
        let stopped = configured_network_settings(&[berth, side]);
        let names: Vec<&String> = stopped["Networks"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["berth", "side"]);
        assert_eq!(stopped["Networks"]["side"]["IPAddress"], "");
        assert_eq!(stopped["Networks"]["side"]["NetworkID"], "side");
        assert_eq!(stopped["Networks"]["side"]["Aliases"], json!(["extra"]));
        assert_eq!(stopped["IPAddress"], "");
        assert!(configured_network_settings(&[]).get("Networks").is_none());
    }
}
