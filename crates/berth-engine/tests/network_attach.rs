//! The engine's two network calls, `attach` and `detach`, on real namespaces without the
//! engine: berth's own namespace files under a temporary runroot, the state database in a
//! temporary root, bridges, nftables rules and aardvark-dns for real.
//!
//! As in network_bridge.rs, each scenario runs on a thread inside a network namespace of its
//! own, which is the "host": nothing touches the machine's interfaces or firewall, and
//! traffic stays between namespaces of the test on 10.250.x addresses.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_engine::network::attach::{self, ContainerNetworkRequest, NetworkPaths};
use berth_engine::network::ipam::CreateOptions;
use berth_engine::network::mode::{NetworkAttach, NetworkMode};
use berth_engine::network::netns::{self, Netns};
use berth_engine::network::ports::{FreePorts, PortSpec};
use berth_engine::network::store::NetworkDb;

/// Runs `f` on a new thread inside a new network namespace with `lo` up.
fn in_own_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's network namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
        run("ip", &["link", "set", "lo", "up"]);
        f()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn links() -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_str(&run("ip", &["-j", "link", "show"])).unwrap();
    json.as_array().unwrap().iter().map(|l| l["ifname"].as_str().unwrap().to_owned()).collect()
}

/// A throwaway berth root and runroot, and whatever a test leaves in them detached on drop.
struct Roots {
    root: tempfile::TempDir,
    runroot: tempfile::TempDir,
    ids: Vec<String>,
}

impl Roots {
    fn new() -> Self {
        Self {
            root: tempfile::tempdir().unwrap(),
            runroot: tempfile::tempdir().unwrap(),
            ids: Vec::new(),
        }
    }

    fn paths(&self) -> NetworkPaths {
        NetworkPaths::new(self.root.path(), self.runroot.path())
    }

    /// A container id of 64 hex digits, remembered for cleanup.
    fn id(&mut self, n: u8) -> String {
        let id = format!("{n:02x}").repeat(32);
        self.ids.push(id.clone());
        id
    }
}

impl Drop for Roots {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = attach::detach(&self.paths(), id);
        }
    }
}

/// A process running inside namespace `ns`, killed on drop.
struct InNs(Child);

impl InNs {
    fn start(ns: &Netns, args: &[&str]) -> Self {
        let child = ns
            .command("busybox")
            .unwrap()
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }
}

impl Drop for InNs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn request(id: &str, name: &str, ns: &Netns, mode: NetworkMode) -> ContainerNetworkRequest {
    ContainerNetworkRequest {
        id: id.to_owned(),
        name: name.to_owned(),
        netns: Some(ns.clone()),
        mode,
        ports: Vec::new(),
        dns: Vec::new(),
        dns_search: Vec::new(),
        dns_options: Vec::new(),
        add_hosts: Vec::new(),
        hostname: id[..12].to_owned(),
        rootless: false,
    }
}

fn on(network: &str, aliases: &[&str]) -> NetworkMode {
    NetworkMode::Bridge(vec![NetworkAttach {
        name: network.to_owned(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }])
}

/// One HTTP GET of `/` at `addr`, from inside `ns` (or the calling thread's namespace), on a
/// thread that enters it with setns(2). (busybox wget crashes writing to stdout here.)
fn http_get(ns: Option<&Netns>, addr: &str) -> std::io::Result<String> {
    let fd = match ns {
        Some(ns) => ns.open().unwrap(),
        None => std::fs::File::open("/proc/thread-self/ns/net").unwrap().into(),
    };
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read as _, Write as _};
        use std::os::fd::AsRawFd as _;
        // SAFETY: setns(2) on this new thread only, with a descriptor held open meanwhile.
        let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
        if !head.contains(" 200 ") {
            return Err(std::io::Error::other(format!("unexpected reply {head:?}")));
        }
        Ok(body.to_owned())
    })
    .join()
    .unwrap()
}

/// [`http_get`], retried while the server comes up (up to 10 s).
fn fetch(ns: Option<&Netns>, addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match http_get(ns, addr) {
            Ok(body) => return body,
            Err(err) => assert!(Instant::now() < deadline, "fetching {addr}: {err}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The address `name` resolves to through the DNS server `server`, asked from inside `ns`.
fn lookup_in(ns: &Netns, server: &str, name: &str) -> String {
    let out = ns.command("busybox").unwrap().args(["nslookup", name, server]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // busybox prints the server first, then "Name: NAME" and "Address: ADDR" lines.
    let after = text.split_once(&format!("Name:\t{name}")).map(|(_, r)| r).unwrap_or("");
    after
        .lines()
        .find_map(|l| l.trim().strip_prefix("Address:").map(|a| a.trim().to_owned()))
        .unwrap_or_else(|| panic!("no answer for {name} from {server}: {text}"))
}

fn web_root(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), text).unwrap();
    dir
}

fn create_network(roots: &Roots, name: &str, subnet: &str, bridge: &str) {
    let mut db = NetworkDb::open_root(roots.root.path()).unwrap();
    let opts = CreateOptions {
        name: name.into(),
        subnets: vec![subnet.parse().unwrap()],
        interface: Some(bridge.into()),
        labels: BTreeMap::new(),
        ..Default::default()
    };
    db.create_network(&opts, &[]).unwrap();
}

#[test]
fn two_containers_publish_and_find_each_other_by_name_then_leave_nothing() {
    in_own_netns(|| {
        let mut roots = Roots::new();
        let paths = roots.paths();
        create_network(&roots, "web", "10.250.20.0/24", "btest20");
        let (id_a, id_b) = (roots.id(0xa1), roots.id(0xb2));

        let ns_a = netns::create(roots.runroot.path(), &id_a).unwrap();
        let ns_b = netns::create(roots.runroot.path(), &id_b).unwrap();
        assert_eq!(ns_a.path(), netns::path_for(roots.runroot.path(), &id_a));
        let site = web_root("hello from ay\n");
        let _httpd =
            InNs::start(&ns_a, &["httpd", "-f", "-p", "80", "-h", site.path().to_str().unwrap()]);
        let _sleeper = InNs::start(&ns_b, &["sleep", "600"]);

        let ports =
            PortSpec::parse("127.0.0.1::80").unwrap().resolve(&mut FreePorts::new()).unwrap();
        let mut req_a = request(&id_a, "ay", &ns_a, on("web", &["ay-alias"]));
        req_a.ports = ports.clone();
        let a = attach::attach(&paths, &req_a).unwrap();
        let b = attach::attach(&paths, &request(&id_b, "bee", &ns_b, on("web", &[]))).unwrap();

        // What inspect shows.
        assert_eq!(
            a.network.networks[0].addresses,
            ["10.250.20.2".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(
            a.network.networks[0].gateways,
            ["10.250.20.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(a.network.networks[0].interface, "eth0");
        assert!(a.network.networks[0].mac.as_deref().is_some_and(|m| m.len() == 17));
        assert_eq!(a.network.ports, ports);
        assert_eq!(a.held_ports.count(), 1, "the published port is held bound");
        assert!(
            a.network.resolv_conf.starts_with("nameserver 10.250.20.1\n"),
            "{}",
            a.network.resolv_conf
        );
        assert!(a.network.hosts.contains("10.250.20.2\t"), "{}", a.network.hosts);
        assert_eq!(attach::status(&paths, &id_a).unwrap(), Some(a.network.clone()));

        // Published on the host's loopback; by name and alias between the containers.
        let published = format!("127.0.0.1:{}", ports[0].host_port);
        assert_eq!(fetch(None, &published), "hello from ay\n");
        assert_eq!(lookup_in(&ns_b, "10.250.20.1", "ay"), "10.250.20.2");
        assert_eq!(lookup_in(&ns_b, "10.250.20.1", "ay-alias"), "10.250.20.2");
        assert_eq!(lookup_in(&ns_a, "10.250.20.1", "bee"), "10.250.20.3");
        assert_eq!(fetch(Some(&ns_b), "10.250.20.2:80"), "hello from ay\n");
        drop(b);

        attach::detach(&paths, &id_a).unwrap();
        attach::detach(&paths, &id_a).unwrap();
        attach::detach(&paths, &id_b).unwrap();
        assert_eq!(links(), ["lo"], "no bridge or veth is left");
        assert_eq!(run("nft", &["list", "tables"]), "", "no rule is left");
        assert!(!netns::path_for(roots.runroot.path(), &id_a).exists(), "the namespace file went");
        let db = NetworkDb::open_root(roots.root.path()).unwrap();
        assert!(db.attached_containers().unwrap().is_empty(), "no record is left");
        let dns_dir = roots.runroot.path().join("network/aardvark-dns");
        assert!(!dns_dir.join("aardvark.pid").exists(), "aardvark-dns stopped with the last name");
    });
}

#[test]
fn a_port_in_use_fails_the_attach_and_leaves_nothing() {
    in_own_netns(|| {
        let mut roots = Roots::new();
        let paths = roots.paths();
        create_network(&roots, "web", "10.250.21.0/24", "btest21");
        let id = roots.id(0xc3);
        let ns = netns::create(roots.runroot.path(), &id).unwrap();
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let mut req = request(&id, "busy", &ns, on("web", &[]));
        req.ports = PortSpec::parse(&format!("127.0.0.1:{port}:80"))
            .unwrap()
            .resolve(&mut FreePorts::new())
            .unwrap();
        let err = attach::attach(&paths, &req).unwrap_err().to_string();
        assert!(err.contains(&format!("{port}")) && err.contains("in use"), "{err}");
        assert_eq!(links(), ["lo"]);
        let db = NetworkDb::open_root(roots.root.path()).unwrap();
        assert!(db.attached_containers().unwrap().is_empty());
        assert!(!netns::path_for(roots.runroot.path(), &id).exists());
    });
}

#[test]
fn a_container_whose_monitor_died_is_cleaned_up_by_the_next_command() {
    in_own_netns(|| {
        let mut roots = Roots::new();
        let paths = roots.paths();
        create_network(&roots, "web", "10.250.22.0/24", "btest22");
        let id = roots.id(0xd4);
        let ns = netns::create(roots.runroot.path(), &id).unwrap();
        let mut req = request(&id, "doomed", &ns, on("web", &[]));
        req.ports =
            PortSpec::parse("127.0.0.1::80").unwrap().resolve(&mut FreePorts::new()).unwrap();
        let attached = attach::attach(&paths, &req).unwrap();
        // As after SIGKILL: the process holding the ports is gone, and nobody detached.
        drop(attached);
        assert!(links().contains(&"btest22".to_owned()));

        // What the next command's reconciliation runs for it (Containers::cleanup).
        attach::detach(&paths, &id).unwrap();
        let db = NetworkDb::open_root(roots.root.path()).unwrap();
        assert!(db.attached_containers().unwrap().is_empty(), "the record is gone");
        assert_eq!(links(), ["lo"]);
        assert_eq!(run("nft", &["list", "tables"]), "");
        assert!(!netns::path_for(roots.runroot.path(), &id).exists());
        attach::detach(&paths, &id).unwrap();
        assert_eq!(links(), ["lo"], "idempotent");
    });
}

#[test]
fn none_has_only_lo_and_host_shares_the_hosts_interfaces() {
    in_own_netns(|| {
        let mut roots = Roots::new();
        let paths = roots.paths();
        let id = roots.id(0xe5);
        let ns = netns::create(roots.runroot.path(), &id).unwrap();
        let none = attach::attach(&paths, &request(&id, "alone", &ns, NetworkMode::None)).unwrap();
        let out = ns.command("ip").unwrap().args(["-j", "link"]).output().unwrap();
        let inner: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let names: Vec<&str> =
            inner.as_array().unwrap().iter().map(|l| l["ifname"].as_str().unwrap()).collect();
        assert_eq!(names, ["lo"]);
        assert!(inner[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "lo is up");
        assert!(none.network.networks.is_empty());
        assert!(none.network.hosts.contains("127.0.0.1\t"), "{}", none.network.hosts);
        attach::detach(&paths, &id).unwrap();
        assert!(!Path::new(&netns::path_for(roots.runroot.path(), &id)).exists());

        let id = roots.id(0xf6);
        let mut req = request(&id, "hosty", &ns, NetworkMode::Host);
        req.netns = None;
        let host = attach::attach(&paths, &req).unwrap();
        assert_eq!(host.network.netns_path, None, "host networking joins no namespace");
        attach::detach(&paths, &id).unwrap();
    });
}
