//! The rootful firewall: masquerading for a network's outbound traffic and DNAT for published
//! ports, in nftables, by exec'ing `nft -j -f -` with a JSON batch.
//!
//! Why nftables through `nft`: Debian 12's iptables is already the nf_tables backend, so
//! native nftables is the same kernel path without iptables' compatibility layer; one JSON
//! batch is one kernel transaction, so a container's rules appear all at once or not at all;
//! and JSON input needs no quoting of rule text. The crates that speak nftables' netlink
//! directly are GPL (rustables) or link GPL libnftnl, which berth avoids.
//!
//! Everything berth adds lives in one table, `inet berth`, with base chains `postrouting`
//! (srcnat: masquerade), `prerouting` and `output` (dstnat: published ports) and `forward`
//! (filter: isolation of internal networks). Every rule carries a comment tag: `berth net=NAME`
//! for a network's rules, `berth ctr=ID` for a container's published ports. Cleanup lists the
//! table, deletes the rules whose tag matches and, when no rule is left, the table itself —
//! so a crashed monitor's rules are found again by the next berth command from the container
//! id alone.

use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::ipam::Subnet;
use super::ports::Protocol;

/// Errors of the firewall, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("running nft")]
    Spawn(#[source] std::io::Error),
    #[error("{step}: nft says: {stderr}")]
    Nft { step: &'static str, stderr: String },
    #[error("reading nft's listing of table inet {TABLE}")]
    ParseListing(#[source] serde_json::Error),
    #[error("published port {host_port}/{protocol} maps to {container_ip} and {host_ip}: families differ")]
    Family { host_ip: IpAddr, host_port: u16, protocol: Protocol, container_ip: IpAddr },
}

/// The table all of berth's rules live in.
pub const TABLE: &str = "berth";
const NFT: &str = "nft";

/// The tag of a network's rules.
pub fn network_tag(network: &str) -> String {
    format!("berth net={network}")
}

/// The tag of a container's rules.
pub fn container_tag(container_id: &str) -> String {
    format!("berth ctr={container_id}")
}

/// A network's rules: masquerade for traffic leaving its subnets (unless internal), and for an
/// internal network, a forward filter that keeps its traffic on the bridge.
#[derive(Debug, Clone)]
pub struct NetworkRules<'a> {
    pub name: &'a str,
    pub bridge: &'a str,
    pub subnets: &'a [Subnet],
    pub internal: bool,
}

/// One published port of a container: traffic to the host's `host_ip` (every local address
/// when `None`) and `host_port` goes to `container_ip:container_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortForward {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub protocol: Protocol,
    pub container_ip: IpAddr,
    pub container_port: u16,
}

/// A tagged rule found in berth's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedRule {
    pub chain: String,
    pub handle: u64,
    pub comment: String,
}

fn run_nft(batch: &Value, step: &'static str) -> Result<Vec<u8>, FirewallError> {
    let text = batch.to_string();
    tracing::debug!(step, batch = %text, "nft");
    let mut child = Command::new(NFT)
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(FirewallError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A failed write means nft exited early; its stderr tells why.
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(FirewallError::Spawn)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        return Err(FirewallError::Nft { step, stderr: stderr.join("; ") });
    }
    Ok(out.stdout)
}

/// The table and base chains, as `add` commands (which leave existing ones alone).
fn skeleton() -> Vec<Value> {
    let chain = |name: &str, kind: &str, hook: &str, prio: i32| {
        json!({"add": {"chain": {
            "family": "inet", "table": TABLE, "name": name,
            "type": kind, "hook": hook, "prio": prio, "policy": "accept"
        }}})
    };
    vec![
        json!({"add": {"table": {"family": "inet", "name": TABLE}}}),
        chain("postrouting", "nat", "postrouting", 100),
        chain("prerouting", "nat", "prerouting", -100),
        chain("output", "nat", "output", -100),
        chain("forward", "filter", "forward", 0),
    ]
}

fn rule(chain: &str, tag: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {
        "family": "inet", "table": TABLE, "chain": chain, "comment": tag, "expr": expr
    }}})
}

fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

fn match_prefix(field: &str, op: &str, subnet: &Subnet) -> Value {
    let proto = family(subnet.addr());
    json!({"match": {"op": op,
        "left": {"payload": {"protocol": proto, "field": field}},
        "right": {"prefix": {"addr": subnet.addr().to_string(), "len": subnet.prefix()}}}})
}

fn match_iface(key: &str, op: &str, name: &str) -> Value {
    json!({"match": {"op": op, "left": {"meta": {"key": key}}, "right": name}})
}

/// The commands that delete every rule tagged `tag` in `rules`.
fn deletions(rules: &[TaggedRule], tag: &str) -> Vec<Value> {
    rules
        .iter()
        .filter(|r| r.comment == tag)
        .map(|r| {
            json!({"delete": {"rule": {
                "family": "inet", "table": TABLE, "chain": r.chain, "handle": r.handle
            }}})
        })
        .collect()
}

/// Every tagged rule in berth's table; an absent table has none.
pub fn tagged_rules() -> Result<Vec<TaggedRule>, FirewallError> {
    let out = Command::new(NFT)
        .args(["-j", "list", "table", "inet", TABLE])
        .stdin(Stdio::null())
        .output()
        .map_err(FirewallError::Spawn)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No such file or directory") {
            return Ok(Vec::new());
        }
        return Err(FirewallError::Nft {
            step: "listing berth's table",
            stderr: stderr.trim().into(),
        });
    }
    parse_listing(&out.stdout)
}

fn parse_listing(stdout: &[u8]) -> Result<Vec<TaggedRule>, FirewallError> {
    let listing: Value = serde_json::from_slice(stdout).map_err(FirewallError::ParseListing)?;
    let items = listing["nftables"].as_array().cloned().unwrap_or_default();
    Ok(items
        .iter()
        .filter_map(|item| {
            let rule = item.get("rule")?;
            Some(TaggedRule {
                chain: rule["chain"].as_str()?.to_owned(),
                handle: rule["handle"].as_u64()?,
                comment: rule["comment"].as_str()?.to_owned(),
            })
        })
        .filter(|r| r.comment.starts_with("berth "))
        .collect())
}

/// Runs `build(existing rules)` as one batch; if a rule vanished meanwhile (another berth
/// process cleaned up at the same moment), lists again and retries once.
fn transact(
    step: &'static str,
    build: &dyn Fn(&[TaggedRule]) -> Vec<Value>,
) -> Result<(), FirewallError> {
    let mut last = None;
    for _ in 0..2 {
        let existing = tagged_rules()?;
        let commands = build(&existing);
        if commands.is_empty() {
            return Ok(());
        }
        match run_nft(&json!({ "nftables": commands }), step) {
            Ok(_) => return Ok(()),
            Err(FirewallError::Nft { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                last = Some(FirewallError::Nft { step, stderr });
            }
            Err(err) => return Err(err),
        }
    }
    Err(last.expect("the loop ran and failed"))
}

/// The commands that add the rules of a network (after the caller deleted its old ones).
fn network_commands(net: &NetworkRules<'_>) -> Vec<Value> {
    let tag = network_tag(net.name);
    let mut cmds = Vec::new();
    if net.internal {
        // Nothing in or out of the bridge except between its own ports.
        cmds.push(rule(
            "forward",
            &tag,
            vec![
                match_iface("iifname", "==", net.bridge),
                match_iface("oifname", "!=", net.bridge),
                json!({"drop": null}),
            ],
        ));
        cmds.push(rule(
            "forward",
            &tag,
            vec![
                match_iface("oifname", "==", net.bridge),
                match_iface("iifname", "!=", net.bridge),
                json!({"drop": null}),
            ],
        ));
        return cmds;
    }
    for subnet in net.subnets {
        cmds.push(rule(
            "postrouting",
            &tag,
            vec![
                match_prefix("saddr", "==", subnet),
                match_prefix("daddr", "!=", subnet),
                json!({"masquerade": null}),
            ],
        ));
    }
    // Hairpin: a container reaching a published port of its own network through a host
    // address. Without br_netfilter the reply would go straight back over the bridge with
    // the container's own source address, which the client does not expect.
    cmds.push(rule(
        "postrouting",
        &tag,
        vec![
            match_iface("iifname", "==", net.bridge),
            match_iface("oifname", "==", net.bridge),
            json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
            json!({"masquerade": null}),
        ],
    ));
    // Connections to a port published on 127.0.0.1 keep their loopback source after DNAT;
    // the container could not answer it, so it is masqueraded to the gateway.
    let loopback: Subnet = "127.0.0.0/8".parse().expect("a valid literal");
    cmds.push(rule(
        "postrouting",
        &tag,
        vec![
            match_prefix("saddr", "==", &loopback),
            match_iface("oifname", "==", net.bridge),
            json!({"masquerade": null}),
        ],
    ));
    cmds
}

fn check_families(forwards: &[PortForward]) -> Result<(), FirewallError> {
    for f in forwards {
        if let Some(ip) = f.host_ip {
            if ip.is_ipv4() != f.container_ip.is_ipv4() && !ip.is_unspecified() {
                return Err(FirewallError::Family {
                    host_ip: ip,
                    host_port: f.host_port,
                    protocol: f.protocol,
                    container_ip: f.container_ip,
                });
            }
        }
    }
    Ok(())
}

/// The commands that add a container's published ports.
fn port_commands(container_id: &str, forwards: &[PortForward]) -> Vec<Value> {
    let tag = container_tag(container_id);
    let mut cmds = Vec::new();
    for f in forwards {
        let fam = family(f.container_ip);
        let mut expr = Vec::new();
        match f.host_ip.filter(|ip| !ip.is_unspecified()) {
            Some(ip) => expr.push(json!({"match": {"op": "==",
                "left": {"payload": {"protocol": fam, "field": "daddr"}},
                "right": ip.to_string()}})),
            None => {
                let nfproto = if f.container_ip.is_ipv4() { "ipv4" } else { "ipv6" };
                expr.push(json!({"match": {"op": "==",
                    "left": {"meta": {"key": "nfproto"}}, "right": nfproto}}));
                expr.push(json!({"match": {"op": "==",
                    "left": {"fib": {"result": "type", "flags": ["daddr"]}},
                    "right": "local"}}));
            }
        }
        expr.push(json!({"match": {"op": "==",
            "left": {"payload": {"protocol": f.protocol.as_str(), "field": "dport"}},
            "right": f.host_port}}));
        expr.push(json!({"dnat": {"family": fam,
            "addr": f.container_ip.to_string(), "port": f.container_port}}));
        // From other hosts and containers (prerouting) and from the host itself (output).
        cmds.push(rule("prerouting", &tag, expr.clone()));
        cmds.push(rule("output", &tag, expr));
    }
    cmds
}

/// Adds (or replaces) the rules of a network.
pub fn add_network_rules(net: &NetworkRules<'_>) -> Result<(), FirewallError> {
    connect_rules(net, None)
}

/// Adds (or replaces) a container's published ports, all in one transaction.
pub fn add_port_forwards(
    container_id: &str,
    forwards: &[PortForward],
) -> Result<(), FirewallError> {
    check_families(forwards)?;
    let tag = container_tag(container_id);
    transact("adding published ports", &|existing| {
        let mut cmds = skeleton();
        cmds.extend(deletions(existing, &tag));
        cmds.extend(port_commands(container_id, forwards));
        cmds
    })
}

/// What a container joining a network needs, in one listing and one transaction: the
/// network's rules (replaced, in case they were flushed) and the container's published ports.
pub fn connect_rules(
    net: &NetworkRules<'_>,
    ports: Option<(&str, &[PortForward])>,
) -> Result<(), FirewallError> {
    if let Some((_, forwards)) = ports {
        check_families(forwards)?;
    }
    let net_tag = network_tag(net.name);
    transact("adding the rules of a network and its container", &|existing| {
        let mut cmds = skeleton();
        cmds.extend(deletions(existing, &net_tag));
        cmds.extend(network_commands(net));
        if let Some((id, forwards)) = ports {
            cmds.extend(deletions(existing, &container_tag(id)));
            cmds.extend(port_commands(id, forwards));
        }
        cmds
    })
}

/// Removes a network's rules; returns how many there were.
pub fn remove_network_rules(network: &str) -> Result<usize, FirewallError> {
    remove_tagged(&[network_tag(network)], "removing the rules of a network")
}

/// Removes a container's published ports; returns how many rules there were.
pub fn remove_container_rules(container_id: &str) -> Result<usize, FirewallError> {
    remove_tagged(&[container_tag(container_id)], "removing published ports")
}

/// Removes a container's published ports and, with `network`, that network's rules, in one
/// transaction; returns how many rules went.
pub fn disconnect_rules(container_id: &str, network: Option<&str>) -> Result<usize, FirewallError> {
    let mut tags = vec![container_tag(container_id)];
    tags.extend(network.map(network_tag));
    remove_tagged(&tags, "removing the rules of a container")
}

fn remove_tagged(tags: &[String], step: &'static str) -> Result<usize, FirewallError> {
    let found = std::cell::Cell::new(0);
    transact(step, &|existing| {
        let mut cmds: Vec<Value> = tags.iter().flat_map(|t| deletions(existing, t)).collect();
        found.set(cmds.len());
        if cmds.is_empty() {
            return cmds;
        }
        // The last rules going: the table goes too, so an idle host shows nothing of berth.
        if existing.iter().all(|r| tags.contains(&r.comment)) {
            cmds = vec![json!({"delete": {"table": {"family": "inet", "name": TABLE}}})];
        }
        cmds
    })?;
    Ok(found.get())
}

/// Removes berth's whole table (`network prune` with nothing left, `system reset`). An absent
/// table is no error.
pub fn remove_table() -> Result<(), FirewallError> {
    let batch = json!({"nftables": [
        {"add": {"table": {"family": "inet", "name": TABLE}}},
        {"delete": {"table": {"family": "inet", "name": TABLE}}}
    ]});
    run_nft(&batch, "removing berth's table").map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_yields_only_berths_tagged_rules() {
        let listing = br#"{"nftables":[{"metainfo":{"version":"1.0.6"}},
            {"table":{"family":"inet","name":"berth","handle":3}},
            {"chain":{"family":"inet","table":"berth","name":"postrouting","handle":1}},
            {"rule":{"family":"inet","table":"berth","chain":"postrouting","handle":7,
                     "comment":"berth net=a","expr":[]}},
            {"rule":{"family":"inet","table":"berth","chain":"output","handle":9,"expr":[]}},
            {"rule":{"family":"inet","table":"berth","chain":"output","handle":10,
                     "comment":"someone else's","expr":[]}}]}"#;
        let rules = parse_listing(listing).unwrap();
        assert_eq!(
            rules,
            vec![TaggedRule {
                chain: "postrouting".into(),
                handle: 7,
                comment: "berth net=a".into()
            }]
        );
        let dels = deletions(&rules, "berth net=a");
        assert_eq!(dels[0]["delete"]["rule"]["handle"], 7);
        assert!(deletions(&rules, "berth net=ab").is_empty(), "tags match whole");
    }
}
