//! Measurements of the networking pieces, not pass/fail tests: ignored by default, they print
//! their figures. Run them with
//!
//! ```text
//! CARGO_TARGET_DIR=target cargo test --release -p berth-engine --test network_bench \
//!     -- --ignored --nocapture --test-threads=1
//! ```
//!
//! - `bench_connect_disconnect`: the time a rootful container's network adds (connect with one
//!   published port, then disconnect), as a median over 20 rounds.
//! - `bench_throughput`: one 1 GiB download from a server inside a container's namespace
//!   through each way of publishing a port: plain loopback inside the namespace (the floor),
//!   the bridge with nftables DNAT, pasta and slirp4netns; plus pasta's and slirp4netns's
//!   resident memory and start-up time.
//!
//! Traffic stays on loopback and between namespaces made here.
//!
//! Figures of 2026-12-03 (debug build, 2-core VM at a load average of about 10 from parallel
//! builds, so throughput varies by ±30% between runs):
//!
//! | what | berth | peer, same machine |
//! |---|---|---|
//! | connect with one `-p` / without / disconnect | 49 ms / 28 ms / 48 ms | — |
//! | 1 GiB through the published port, rootful (DNAT from 127.0.0.1) | 494–513 MB/s | loopback floor 1014–1049 MB/s |
//! | 1 GiB through the published port, rootless pasta | 442–448 MB/s | — |
//! | same, busybox httpd + curl, rootless | pasta 153–557 MB/s | podman 4.3 (slirp4netns + rootlessport) 129–493 MB/s |
//! | 1 GiB, rootless slirp4netns with its own hostfwd | 178–196 MB/s | — |
//! | forwarder memory per container (RSS) | pasta 30.2 MB; slirp4netns 3.3–3.6 MB | podman: slirp4netns 3.4 MB + rootlessport 6.9 MB |
//! | forwarder start to ready | pasta 63–97 ms; slirp4netns 17–28 ms | — |
//!
//! A second run at a load average of 4.4: connect with `-p` 39 ms, without 32 ms, disconnect
//! 52 ms; 1 GiB at 2073 MB/s over plain loopback, 948 MB/s through DNAT, 964 MB/s through
//! pasta, 532 MB/s through slirp4netns; pasta 29.6 MB RSS idle and 142 ms to ready,
//! slirp4netns 3.5 MB and 15 ms.
//!
//! Debian 12's pasta (2023-03-09) keeps about 29 MB of private dirty memory from start-up on,
//! independent of traffic: lighter per port than a forwarder per port, but not lighter than
//! Podman 4.3's default per container.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_engine::network::ipam::{plan_network, CreateOptions, MemoryStore};
use berth_engine::network::netns::Netns;
use berth_engine::network::ports::{PortMapping, Protocol};
use berth_engine::network::rootful::{self, ConnectRequest};
use berth_engine::network::rootless::{Pasta, PastaOptions, Slirp, SlirpOptions};
use berth_testkit::user::TestUser;

const TOTAL: usize = 1 << 30;

fn enter(fd: &OwnedFd) {
    // SAFETY: setns(2) on the calling thread with a namespace descriptor held by the caller.
    let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// A sleeping process in new namespaces (`unshare ARGS… sleep`), killed on drop.
struct Sleeper(Child);

impl Sleeper {
    fn start(mut cmd: Command) -> Self {
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let me = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let path = format!("/proc/{}/ns/net", child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_link(&path).map(|l| l == me).unwrap_or(true) {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        }
        Self(child)
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves one connection on `port` inside `ns`, writing TOTAL bytes.
fn serve_once(ns: &Netns, port: u16) -> std::thread::JoinHandle<()> {
    let fd = ns.open().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        enter(&fd);
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap();
        tx.send(()).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        let buf = vec![0x5a_u8; 1 << 20];
        let mut sent = 0;
        while sent < TOTAL {
            conn.write_all(&buf).unwrap();
            sent += buf.len();
        }
    });
    rx.recv().unwrap();
    handle
}

/// Downloads everything from `addr` (from the calling thread's namespace) and returns MB/s.
fn download(addr: SocketAddr) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match TcpStream::connect(addr) {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "{addr}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let start = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    loop {
        let n = conn.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    assert_eq!(got, TOTAL);
    TOTAL as f64 / 1e6 / start.elapsed().as_secs_f64()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

fn tcp(host_port: u16, container_port: u16) -> PortMapping {
    PortMapping {
        host_ip: Some(Ipv4Addr::LOCALHOST.into()),
        host_port,
        container_port,
        protocol: Protocol::Tcp,
    }
}

fn in_own_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare(2) of this thread's network namespace only.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
        assert!(Command::new("ip").args(["link", "set", "lo", "up"]).status().unwrap().success());
        f()
    })
    .join()
    .unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn bench_connect_disconnect() {
    in_own_netns(|| {
        let opts = CreateOptions {
            name: "bench".into(),
            subnets: vec!["10.250.9.0/24".parse().unwrap()],
            interface: Some("bbench0".into()),
            ..Default::default()
        };
        let net = plan_network(&opts, "id", &[], &[]).unwrap();
        let mut store = MemoryStore::default();
        // One container stays attached, so the bridge stays as on a busy host.
        let keep = Sleeper::start({
            let mut c = Command::new("unshare");
            c.args(["--net", "sleep", "600"]);
            c
        });
        let req = |id: &'static str, pid: u32, ports: &'static [PortMapping]| ConnectRequest {
            network: Box::leak(Box::new(net.clone())),
            container_id: id,
            netns: Netns::Pid(pid),
            interface: "eth0",
            requested: &[],
            ports,
            default_route: true,
            mac: None,
        };
        rootful::connect(&req("keep", keep.0.id(), &[]), &mut store).unwrap();

        let ports: &'static [PortMapping] = Box::leak(Box::new([tcp(8300, 80)]));
        let (mut up, mut down, mut up_noports) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..20 {
            let c = Sleeper::start({
                let mut c = Command::new("unshare");
                c.args(["--net", "sleep", "600"]);
                c
            });
            let t = Instant::now();
            rootful::connect(&req("c", c.0.id(), ports), &mut store).unwrap();
            up.push(t.elapsed());
            let t = Instant::now();
            rootful::disconnect(&net, "c", true, &mut store).unwrap();
            down.push(t.elapsed());
            let t = Instant::now();
            rootful::connect(&req("c", c.0.id(), &[]), &mut store).unwrap();
            up_noports.push(t.elapsed());
            rootful::disconnect(&net, "c", true, &mut store).unwrap();
        }
        rootful::disconnect(&net, "keep", true, &mut store).unwrap();
        println!(
            "rootful connect with -p: median {:?}; without -p: {:?}; disconnect: {:?} (20 rounds)",
            median(up),
            median(up_noports),
            median(down)
        );
    });
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn bench_throughput() {
    // The floor: loopback inside one namespace, no forwarding at all.
    let floor = in_own_netns(|| {
        let me = Netns::Path("/proc/thread-self/ns/net".into());
        let server = serve_once(&me, 9000);
        let rate = download(SocketAddr::from((Ipv4Addr::LOCALHOST, 9000)));
        server.join().unwrap();
        rate
    });
    println!("loopback, no forwarding: {floor:.0} MB/s");

    // Rootful: the bridge and nftables DNAT from 127.0.0.1.
    let dnat = in_own_netns(|| {
        let opts = CreateOptions {
            name: "bench".into(),
            subnets: vec!["10.250.10.0/24".parse().unwrap()],
            interface: Some("bbench1".into()),
            ..Default::default()
        };
        let net = plan_network(&opts, "id", &[], &[]).unwrap();
        let mut store = MemoryStore::default();
        let c = Sleeper::start({
            let mut c = Command::new("unshare");
            c.args(["--net", "sleep", "600"]);
            c
        });
        let ports = [tcp(8301, 9000)];
        let req = ConnectRequest {
            network: &net,
            container_id: "c",
            netns: Netns::Pid(c.0.id()),
            interface: "eth0",
            requested: &[],
            ports: &ports,
            default_route: true,
            mac: None,
        };
        rootful::connect(&req, &mut store).unwrap();
        let server = serve_once(&Netns::Pid(c.0.id()), 9000);
        let rate = download(SocketAddr::from((Ipv4Addr::LOCALHOST, 8301)));
        server.join().unwrap();
        rootful::disconnect(&net, "c", true, &mut store).unwrap();
        rate
    });
    println!("rootful bridge + nftables DNAT from 127.0.0.1: {dnat:.0} MB/s");

    // Rootless: pasta and slirp4netns, as the test user.
    let user = TestUser::get();
    let dir =
        tempfile::Builder::new().prefix("berth-bench-").tempdir_in(user.runtime_dir()).unwrap();
    std::os::unix::fs::chown(dir.path(), Some(user.uid()), Some(user.gid())).unwrap();
    let rootless = || {
        let mut c = user.command("unshare");
        c.args(["--user", "--map-root-user", "--net", "sleep", "600"]);
        Sleeper::start(c)
    };

    let c = rootless();
    let port = free_port();
    let mut opts = PastaOptions::new(Netns::Pid(c.0.id()));
    opts.ports = vec![tcp(port, 9000)];
    let t = Instant::now();
    let pasta =
        Pasta::start_with(user.command("pasta"), &opts, &dir.path().join("pasta.pid")).unwrap();
    let pasta_start = t.elapsed();
    let pasta_idle = rss_kib(pasta.pid());
    let server = serve_once(&Netns::Pid(c.0.id()), 9000);
    let rate = download(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    server.join().unwrap();
    let pasta_rss = rss_kib(pasta.pid());
    pasta.stop().unwrap();
    drop(c);
    println!(
        "rootless pasta: {rate:.0} MB/s; start to ready {pasta_start:?}; RSS idle {pasta_idle} KiB, \
         after the transfer {pasta_rss} KiB"
    );

    let c = rootless();
    let port = free_port();
    let mut opts = SlirpOptions::new(Netns::Pid(c.0.id()));
    opts.api_socket = Some(dir.path().join("slirp.sock"));
    let t = Instant::now();
    let slirp =
        Slirp::start_with(user.command("slirp4netns"), &opts, Duration::from_secs(10)).unwrap();
    slirp.add_port(&tcp(port, 9000)).unwrap();
    let slirp_start = t.elapsed();
    let slirp_idle = rss_kib(slirp.pid());
    let server = serve_once(&Netns::Pid(c.0.id()), 9000);
    let rate = download(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    server.join().unwrap();
    let slirp_rss = rss_kib(slirp.pid());
    slirp.stop().unwrap();
    drop(c);
    println!(
        "rootless slirp4netns: {rate:.0} MB/s; start to ready {slirp_start:?}; RSS idle \
         {slirp_idle} KiB, after the transfer {slirp_rss} KiB"
    );
}
