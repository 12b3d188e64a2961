//! `berth network connect` and `disconnect` as Podman has them, end to end and rootful: a
//! created or stopped container connected to a network joins it at its next start, with the
//! address and alias asked for; disconnecting takes it off; a running container's connect and
//! disconnect last across a `restart`; and inspect's NetworkSettings.Networks names the
//! networks recorded, with addresses only while the container runs.
//!
//! Every command runs in a network namespace that stands in for the host
//! (berth_testkit::netns), so bridges, veths and rules never reach the machine's own.

use berth_testkit::cli::{stderr, Berth};
use berth_testkit::netns::HostNetns;

const IMAGE: &str = "localhost/busybox:latest";

/// An engine with the busybox image whose every command runs in `host`.
fn engine(host: &HostNetns) -> Berth {
    let mut berth = Berth::new(env!("CARGO_BIN_EXE_berth"));
    host.enter(&mut berth);
    berth.load_busybox(IMAGE);
    berth
}

/// Runs and expects exit 125 with a one-line `berth:` error; returns it.
fn fails(b: &Berth, args: &[&str]) -> String {
    let out = b.run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "berth {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("berth: "), "{err}");
    err
}

/// Inspect's NetworkSettings.Networks of `name`: each network's name and IPv4 address (empty
/// while it is not running), and its aliases.
fn networks(b: &Berth, name: &str) -> Vec<(String, String, Vec<String>)> {
    let json: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", name])).unwrap();
    let Some(nets) = json[0]["NetworkSettings"]["Networks"].as_object() else { return Vec::new() };
    nets.iter()
        .map(|(net, entry)| {
            let aliases = entry["Aliases"].as_array().unwrap();
            let aliases = aliases.iter().map(|a| a.as_str().unwrap().to_owned()).collect();
            (net.clone(), entry["IPAddress"].as_str().unwrap().to_owned(), aliases)
        })
        .collect()
}

/// The interfaces inside running container `name`, with the IPv4 address of each.
fn interfaces(b: &Berth, name: &str) -> Vec<(String, String)> {
    let out = b.ok(&["exec", name, "ip", "-o", "-4", "addr"]);
    out.lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields[1].to_owned(), fields[3].to_owned())
        })
        .collect()
}

fn serve(name: &str) -> String {
    format!("echo {name} > /tmp/index.html; exec httpd -f -p 80 -h /tmp")
}

/// `wget` of `http://to/` from inside running container `from`.
fn get(b: &Berth, from: &str, to: &str) -> String {
    let script = format!("wget -q -O /tmp/got http://{to}/ && cat /tmp/got");
    b.ok(&["exec", from, "sh", "-c", &script])
}

fn owned(items: &[(&str, &str, &[&str])]) -> Vec<(String, String, Vec<String>)> {
    items
        .iter()
        .map(|(n, ip, a)| {
            (n.to_string(), ip.to_string(), a.iter().map(|s| s.to_string()).collect())
        })
        .collect()
}

// A created container connected to a network (with --ip and --alias) shows it in inspect
// before it runs and is on it from its start: an interface with that address, reachable by
// its alias from a peer there. Connecting twice, to a network that does not exist, or a
// container without bridge networks fails in one line and changes nothing.
#[test]
fn a_created_container_joins_the_network_connected_before_its_start() {
    let host = HostNetns::new("cconn");
    let b = engine(&host);
    b.ok(&["network", "create", "--subnet", "10.250.53.0/24", "side"]);
    b.ok(&["run", "-d", "--name", "peer", "--network", "side", IMAGE, "sh", "-c", &serve("peer")]);
    b.ok(&["create", "--name", "late", IMAGE, "sh", "-c", &serve("late")]);
    assert_eq!(networks(&b, "late"), owned(&[("berth", "", &[])]));

    b.ok(&["network", "connect", "--ip", "10.250.53.77", "--alias", "extra", "side", "late"]);
    let recorded = owned(&[("berth", "", &[]), ("side", "", &["extra"])]);
    assert_eq!(networks(&b, "late"), recorded);
    let err = fails(&b, &["network", "connect", "side", "late"]);
    assert!(err.contains("already connected to network side"), "{err}");
    let err = fails(&b, &["network", "connect", "nosuch", "late"]);
    assert!(err.contains("nosuch"), "{err}");
    let err = fails(&b, &["network", "connect", "--mac-address", "zz", "side", "late"]);
    assert!(err.contains("--mac-address"), "{err}");
    b.ok(&["create", "--name", "alone", "--network", "none", IMAGE, "true"]);
    let err = fails(&b, &["network", "connect", "side", "alone"]);
    assert!(err.contains("bridge networks only"), "{err}");
    assert_eq!(networks(&b, "late"), recorded, "a failed connect changed the record");

    b.ok(&["start", "late"]);
    let inside = interfaces(&b, "late");
    assert_eq!(inside.len(), 3, "{inside:?}");
    assert_eq!(inside[2], ("eth1".to_owned(), "10.250.53.77/24".to_owned()), "{inside:?}");
    assert!(inside[1].1.starts_with("10.89."), "eth0 on the default network: {inside:?}");
    let running = networks(&b, "late");
    assert_eq!(running[1], ("side".to_owned(), "10.250.53.77".to_owned(), vec!["extra".into()]));
    assert_eq!(get(&b, "peer", "extra"), "late\n");
    assert_eq!(get(&b, "late", "peer"), "peer\n");
    b.ok(&["rm", "-f", "late", "peer", "alone"]);
    assert_eq!(host.links(), ["lo"], "no bridge or veth is left");
}

// A stopped container disconnected from a network (of the two its --network flags gave) starts
// without it; disconnected from its last one, it starts with only lo and can be connected
// again, now while it runs.
#[test]
fn a_stopped_container_disconnected_starts_without_the_network() {
    let host = HostNetns::new("sdisc");
    let b = engine(&host);
    b.ok(&["network", "create", "--subnet", "10.250.54.0/24", "side"]);
    let err = fails(&b, &["create", "--network", "none", "--network", "side", IMAGE, "true"]);
    assert!(err.contains("cannot be combined"), "{err}");
    let args = ["run", "-d", "--name", "c", "--network", "berth", "--network", "side", IMAGE];
    b.ok(&[&args[..], &["sleep", "600"]].concat());
    assert_eq!(interfaces(&b, "c").len(), 3);
    b.ok(&["stop", "-t", "0", "c"]);

    b.ok(&["network", "disconnect", "berth", "c"]);
    assert_eq!(networks(&b, "c"), owned(&[("side", "", &[])]));
    // The stopped container's network is in use, as Podman counts it.
    let err = fails(&b, &["network", "rm", "side"]);
    assert!(err.contains("network side is in use"), "{err}");
    b.ok(&["network", "prune", "-f"]);
    assert_eq!(b.ok(&["network", "ls", "-q"]), "berth\nside\n");
    let err = fails(&b, &["network", "disconnect", "berth", "c"]);
    assert!(err.contains("not connected to network berth"), "{err}");
    b.ok(&["start", "c"]);
    let inside = interfaces(&b, "c");
    assert_eq!(inside.len(), 2, "{inside:?}");
    assert!(inside[1].1.starts_with("10.250.54."), "{inside:?}");
    b.ok(&["stop", "-t", "0", "c"]);

    b.ok(&["network", "disconnect", "side", "c"]);
    assert_eq!(networks(&b, "c"), owned(&[]));
    b.ok(&["start", "c"]);
    assert_eq!(interfaces(&b, "c"), [("lo".to_owned(), "127.0.0.1/8".to_owned())]);
    let json: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "c"])).unwrap();
    assert_eq!(json[0]["HostConfig"]["NetworkMode"], "bridge");

    b.ok(&["network", "connect", "side", "c"]);
    let inside = interfaces(&b, "c");
    assert_eq!(inside.len(), 2, "{inside:?}");
    assert!(inside[1].1.starts_with("10.250.54."), "{inside:?}");
    b.ok(&["rm", "-f", "c"]);
    assert_eq!(host.links(), ["lo"], "no bridge or veth is left");
}

// What connect and disconnect do to a running container is recorded too: after a restart it
// is on the networks it was left on, with the alias it was given, and off the one it left.
#[test]
fn a_running_containers_connect_and_disconnect_last_across_a_restart() {
    let host = HostNetns::new("rconn");
    let b = engine(&host);
    b.ok(&["network", "create", "--subnet", "10.250.55.0/24", "side"]);
    b.ok(&["run", "-d", "--name", "peer", "--network", "side", IMAGE, "sh", "-c", &serve("peer")]);
    b.ok(&["run", "-d", "--name", "web", IMAGE, "sh", "-c", &serve("web")]);
    b.ok(&["network", "connect", "--alias", "www", "side", "web"]);
    b.ok(&["network", "disconnect", "berth", "web"]);
    let inside = interfaces(&b, "web");
    assert_eq!(inside.iter().map(|i| i.0.as_str()).collect::<Vec<_>>(), ["lo", "eth1"]);

    b.ok(&["restart", "-t", "0", "web"]);
    let inside = interfaces(&b, "web");
    assert_eq!(inside.len(), 2, "{inside:?}");
    assert!(inside[1].1.starts_with("10.250.55."), "{inside:?}");
    let nets = networks(&b, "web");
    assert_eq!(nets.len(), 1, "{nets:?}");
    assert_eq!((nets[0].0.as_str(), &nets[0].2), ("side", &vec!["www".to_owned()]));
    assert_eq!(format!("{}/24", nets[0].1), inside[1].1);
    assert_eq!(get(&b, "peer", "www"), "web\n");

    b.ok(&["rm", "-f", "web", "peer"]);
    assert_eq!(host.links(), ["lo"], "no bridge or veth is left");
    assert_eq!(host.nft_tables(), "", "no rule is left");
}
