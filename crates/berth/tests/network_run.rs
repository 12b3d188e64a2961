//! `berth run` with networks, end to end and rootful: busybox httpd published on the host's
//! loopback answers, two containers on a user network fetch from each other by name,
//! `--network none` has only lo, and `rm` leaves no bridge, veth, rule or DNS server.
//!
//! Every berth command runs (through nsenter) in a network namespace the test makes and deletes
//! on drop (berth_testkit::netns), which stands in for the host: the machine's own interfaces
//! and firewall are not touched, and the traffic stays between that namespace and the
//! containers.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_testkit::cli::{processes_whose_cmdline, stderr, Berth};
use berth_testkit::netns::{free_port, HostNetns};

/// An engine with the busybox image whose every command runs in `host`.
fn engine(host: &HostNetns) -> Berth {
    let mut berth = Berth::new(env!("CARGO_BIN_EXE_berth"));
    host.enter(&mut berth);
    berth.load_busybox("localhost/busybox:latest");
    berth
}

const HTTPD: &str = "echo served by $(hostname) > /tmp/index.html; exec httpd -f -p 80 -h /tmp";

#[test]
fn a_published_port_answers_and_containers_fetch_each_other_by_name() {
    let host = HostNetns::new("web");
    let b = engine(&host);
    b.ok(&["network", "create", "--subnet", "10.250.50.0/24", "web"]);
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "ay",
        "--hostname",
        "ay",
        "--network",
        "web",
        "-p",
        &publish,
        "localhost/busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "bee",
        "--hostname",
        "bee",
        "--network",
        "web",
        "localhost/busybox",
        "sh",
        "-c",
        HTTPD,
    ]);

    // `berth port`, as Podman prints it.
    assert_eq!(b.ok(&["port", "ay"]), format!("80/tcp -> 127.0.0.1:{port}\n"));
    assert_eq!(b.ok(&["port", "ay", "80"]), format!("127.0.0.1:{port}\n"));
    assert_eq!(b.ok(&["port", "bee"]), "");
    // From the host, through the published port.
    assert_eq!(host.http_get(&format!("127.0.0.1:{port}")), "served by ay\n");
    // Between the containers, by name, through the network's DNS server.
    let got = b.ok(&["exec", "bee", "sh", "-c", "wget -q -O /tmp/got http://ay/ && cat /tmp/got"]);
    assert_eq!(got, "served by ay\n");
    let got = b.ok(&["exec", "ay", "sh", "-c", "wget -q -O /tmp/got http://bee/ && cat /tmp/got"]);
    assert_eq!(got, "served by bee\n");
    let resolv = b.ok(&["exec", "ay", "cat", "/etc/resolv.conf"]);
    assert!(resolv.starts_with("nameserver 10.250.50.1\n"), "{resolv}");

    b.ok(&["rm", "-f", "ay", "bee"]);
    assert_eq!(host.links(), ["lo"], "no bridge or veth is left");
    assert_eq!(host.nft_tables(), "", "no rule is left");
}

#[test]
fn none_has_only_lo_and_bad_network_input_is_one_line() {
    let host = HostNetns::new("none");
    let b = engine(&host);
    let out = b.ok(&["run", "--rm", "--network", "none", "localhost/busybox", "ip", "-o", "link"]);
    let names: Vec<&str> = out.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(names, ["lo"], "{out}");

    let out = b.run(&["run", "--rm", "--network", "nosuch", "localhost/busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = stderr(&out);
    assert!(stderr.lines().next().unwrap().contains("network nosuch not found"), "{stderr}");
    let out = b.run(&["run", "--rm", "-p", "80:80:80:80", "localhost/busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(b.ok(&["ps", "-aq"]).is_empty(), "no container was left by the bad -p");
    assert_eq!(host.links(), ["lo"]);
}

/// The pids of processes whose command line mentions `needle` (the monitors of an engine run
/// with their runroot on the command line or in the environment's paths).
fn pids_mentioning(needle: &str) -> Vec<i32> {
    processes_whose_cmdline(|cmdline| cmdline.contains(needle))
}

#[test]
fn the_next_command_cleans_up_after_a_killed_monitor() {
    let host = HostNetns::new("kill");
    let b = engine(&host);
    b.ok(&["network", "create", "--subnet", "10.250.51.0/24", "doomed"]);
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "victim",
        "--hostname",
        "victim",
        "--network",
        "doomed",
        "-p",
        &publish,
        "localhost/busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    assert_eq!(host.http_get(&format!("127.0.0.1:{port}")), "served by victim\n");
    let pid: i32 =
        b.ok(&["inspect", "--format", "{{.State.Pid}}", "victim"]).trim().parse().unwrap();

    // SIGKILL the monitor and the container: nobody is left to take the network down.
    let runroot = b.runroot().display().to_string();
    for monitor in pids_mentioning(&runroot) {
        // SAFETY: kill(2) with a pid read from /proc just now and a plain signal number.
        unsafe { libc::kill(monitor, libc::SIGKILL) };
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    b.eventually("the container to die", || !Path::new(&format!("/proc/{pid}/ns")).exists());
    assert!(host.links().iter().any(|l| l.starts_with("berth")), "the bridge outlived the monitor");

    // The next berth command notices and cleans up.
    b.ok(&["ps", "-a"]);
    assert_eq!(host.links(), ["lo"], "no bridge or veth is left");
    assert_eq!(host.nft_tables(), "", "no rule is left");
}

/// Runs and expects exit 125 with a one-line error; returns that line.
fn fails(b: &Berth, args: &[&str]) -> String {
    let out = b.run(args);
    let stderr = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "berth {args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

/// What networking could leave in the test's "host" namespace and under the engines' runroots.
fn leftovers(host: &HostNetns, engines: &[&Berth]) -> Vec<String> {
    let mut out: Vec<String> =
        host.links().into_iter().filter(|l| l != "lo").map(|l| format!("interface {l}")).collect();
    out.extend(host.nft_tables().lines().map(|t| format!("nftables {t}")));
    for e in engines {
        if let Ok(dir) = std::fs::read_dir(e.runroot().join("netns")) {
            out.extend(dir.flatten().map(|f| format!("namespace file {}", f.path().display())));
        }
        let dns = e.runroot().join("network/aardvark-dns");
        out.extend(pids_mentioning(&dns.display().to_string()).iter().map(|p| format!("pid {p}")));
    }
    out
}

#[test]
fn the_default_bridge_network_of_independent_roots_and_host() {
    let host = HostNetns::new("default");
    // Two independent engines (each its own --root) on the same "host".
    let a = engine(&host);
    let b = engine(&host);
    // No --network: eth0 on the default bridge network, with a default route.
    let script = "ip -o -4 addr show eth0; ip route show default; sleep 600";
    a.ok(&["run", "-d", "--name", "one", "localhost/busybox", "sh", "-c", script]);
    let serve = "ip -o -4 addr show eth0; ip route show default; echo two > /tmp/index.html; \
        exec httpd -f -p 80 -h /tmp";
    b.ok(&["run", "-d", "--name", "two", "localhost/busybox", "sh", "-c", serve]);
    let addr_of = |e: &Berth, name: &str| -> String {
        let mut log = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !log.contains("default via") {
            assert!(Instant::now() < deadline, "no address in the log of {name}: {log}");
            std::thread::sleep(Duration::from_millis(20));
            log = e.ok(&["logs", name]);
        }
        log.split_whitespace().nth(3).unwrap().split('/').next().unwrap().to_owned()
    };
    let (one, two) = (addr_of(&a, "one"), addr_of(&b, "two"));
    assert!(one.starts_with("10.89.") && two.starts_with("10.89."), "{one} {two}");
    // Two state roots, one host: each default network got a subnet and bridge of its own.
    assert_ne!(one.rsplit_once('.').unwrap().0, two.rsplit_once('.').unwrap().0);
    let bridges: Vec<String> =
        host.links().into_iter().filter(|l| l.starts_with("berth")).collect();
    assert_eq!(bridges.len(), 2, "{bridges:?}");
    // Each reaches the other's container through the host (routed, masqueraded).
    let get = format!("wget -q -O /tmp/got http://{two}/ && cat /tmp/got");
    assert_eq!(a.ok(&["exec", "one", "sh", "-c", &get]), "two\n");

    // --network host sees the host's interfaces, both bridges included.
    let out = a.ok(&["run", "--rm", "--network", "host", "localhost/busybox", "ip", "-o", "link"]);
    for bridge in &bridges {
        assert!(out.contains(&format!(": {bridge}:")), "{bridge} not seen: {out}");
    }

    // The first root's bridge goes with its last container; the second's stays.
    a.ok(&["rm", "-f", "one"]);
    let left: Vec<String> = host.links().into_iter().filter(|l| l.starts_with("berth")).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    b.ok(&["rm", "-f", "two"]);
    assert_eq!(leftovers(&host, &[&a, &b]), Vec::<String>::new());
}

#[test]
fn publish_all_ports_held_and_a_failed_start_leaves_nothing() {
    let host = HostNetns::new("ports");
    let b = engine(&host);
    let layout = b.dir().join("exposed");
    berth_testkit::netns::two_port_layout(&layout);
    b.load(&layout, "localhost/exposed:latest");

    // -P: every exposed port on a free host port, shown by `berth port`, answering.
    b.ok(&["run", "-d", "--name", "all", "-P", "localhost/exposed"]);
    let ports = b.ok(&["port", "all"]);
    let mut lines: Vec<&str> = ports.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{ports}");
    let mut held = Vec::new();
    for (line, (container, body)) in lines.iter().zip([("80", "eighty"), ("8080", "eighty-eighty")])
    {
        let (left, published) = line.split_once(" -> ").unwrap();
        assert_eq!(left, format!("{container}/tcp"), "{ports}");
        let host_port = published.rsplit_once(':').unwrap().1.to_owned();
        assert_eq!(host.http_get(&format!("127.0.0.1:{host_port}")), format!("{body}\n"));
        held.push(host_port);
    }

    // inspect's NetworkSettings and ps's PORTS column, as Podman shows them.
    let json: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "all"])).unwrap();
    let settings = &json[0]["NetworkSettings"];
    let ip = settings["IPAddress"].as_str().unwrap();
    assert!(ip.starts_with("10.89."), "{settings}");
    assert_eq!(settings["Networks"]["berth"]["IPAddress"], ip);
    assert_eq!(settings["Gateway"], settings["Networks"]["berth"]["Gateway"]);
    assert_eq!(settings["MacAddress"].as_str().unwrap().len(), 17, "{settings}");
    assert_eq!(settings["Ports"]["80/tcp"][0]["HostPort"], held[0].as_str());
    assert_eq!(json[0]["HostConfig"]["NetworkMode"], "bridge");
    let ps = b.ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps.trim(), format!("0.0.0.0:{}->80/tcp, 0.0.0.0:{}->8080/tcp", held[0], held[1]));

    // A published port stays taken while its container runs: by another container…
    let again = format!("{}:80", held[0]);
    let err =
        fails(&b, &["run", "-d", "--name", "twice", "-p", &again, "localhost/busybox", "true"]);
    assert!(err.contains(&held[0]) && err.contains("in use"), "{err}");
    // …and by a host process, which cannot bind it either.
    let held_port: u16 = held[0].parse().unwrap();
    let err = host.in_ns(move || std::net::TcpListener::bind(("127.0.0.1", held_port)).map(drop));
    assert_eq!(err.unwrap_err().kind(), std::io::ErrorKind::AddrInUse);
    // A port a host process listens on cannot be published.
    let (port, stop) = host.listen();
    let taken = format!("127.0.0.1:{port}:80");
    let err =
        fails(&b, &["run", "-d", "--name", "taken", "-p", &taken, "localhost/busybox", "true"]);
    drop(stop);
    assert!(err.contains(&port.to_string()) && err.contains("in use"), "{err}");

    // A start that fails (no such program) with a published port takes its network down.
    let publish = format!("127.0.0.1:{}:80", free_port());
    let out = b.run(&["run", "--rm", "-p", &publish, "localhost/busybox", "/no/such"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert_eq!(b.ok(&["ps", "-a", "--format", "{{.Names}}"]), "all\n");

    b.ok(&["rm", "-f", "all"]);
    assert_eq!(leftovers(&host, &[&b]), Vec::<String>::new());
}

#[test]
fn network_connect_and_disconnect_a_running_container() {
    let host = HostNetns::new("connect");
    let b = engine(&host);
    b.ok(&["network", "create", "--subnet", "10.250.52.0/24", "side"]);
    let serve = |name: &str| format!("echo {name} > /tmp/index.html; exec httpd -f -p 80 -h /tmp");
    b.ok(&["run", "-d", "--name", "first", "localhost/busybox", "sh", "-c", &serve("first")]);
    let peer = serve("peer");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "side",
        "localhost/busybox",
        "sh",
        "-c",
        &peer,
    ]);
    let interfaces = |name: &str| -> Vec<String> {
        let out = b.ok(&["exec", name, "ip", "-o", "link"]);
        out.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(interfaces("first"), ["lo", "eth0"]);

    b.ok(&["network", "connect", "--alias", "extra", "--ip", "10.250.52.77", "side", "first"]);
    assert_eq!(interfaces("first"), ["lo", "eth0", "eth1"]);
    let addr = b.ok(&["exec", "first", "ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(addr.contains("10.250.52.77/24"), "{addr}");
    // Names work both ways on the new network: the peer by name, the container by its alias.
    let get = |from: &str, to: &str| {
        let script = format!("wget -q -O /tmp/got http://{to}/ && cat /tmp/got");
        b.ok(&["exec", from, "sh", "-c", &script])
    };
    assert_eq!(get("first", "peer"), "peer\n");
    assert_eq!(get("peer", "extra"), "first\n");
    let json: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "first"])).unwrap();
    let networks = &json[0]["NetworkSettings"]["Networks"];
    assert_eq!(networks["side"]["IPAddress"], "10.250.52.77", "{networks}");
    assert_eq!(networks["side"]["Aliases"], serde_json::json!(["extra"]));
    let err = fails(&b, &["network", "connect", "side", "first"]);
    assert!(err.contains("already connected"), "{err}");

    b.ok(&["network", "disconnect", "-f", "side", "first"]);
    assert_eq!(interfaces("first"), ["lo", "eth0"]);
    let json: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "first"])).unwrap();
    assert!(json[0]["NetworkSettings"]["Networks"].get("side").is_none());
    let err = fails(&b, &["network", "disconnect", "side", "first"]);
    assert!(err.contains("not connected"), "{err}");

    b.ok(&["rm", "-f", "first", "peer"]);
    assert_eq!(leftovers(&host, &[&b]), Vec::<String>::new());
}
