//! A network namespace that stands in for the host in rootful network tests, HTTP fetches with
//! retries for the servers those tests start, and an image that serves two exposed ports.
//!
//! [`HostNetns`] is made with `ip netns add` and deleted when dropped, also when the test
//! failed. [`HostNetns::enter`] runs every command of a [`Berth`] in it (through `nsenter
//! --net`, which unlike `ip netns exec` mounts no sysfs of its own and so keeps the cgroup
//! hierarchies), so bridges, veths, firewall rules and published ports live there and the
//! machine's own interfaces and firewall are never touched. Drop the engine before the
//! namespace (declare it after), so that its containers are removed inside.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cli::Berth;

/// One named network namespace with `lo` up.
pub struct HostNetns {
    name: String,
}

impl HostNetns {
    /// `berthtest-TAG-PID`: `tag` tells the tests of one binary apart. Needs root.
    pub fn new(tag: &str) -> Self {
        let name = format!("berthtest-{tag}-{}", std::process::id());
        let added = Command::new("ip").args(["netns", "add", &name]).status().expect("running ip");
        assert!(added.success(), "ip netns add {name}");
        let netns = Self { name };
        netns.run(&["ip", "link", "set", "lo", "up"]);
        netns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs every later command of `berth` in this namespace.
    pub fn enter(&self, berth: &mut Berth) {
        berth.wrap_in(&["nsenter", &format!("--net={}", self.path().display())]);
    }

    /// Runs a program in this namespace and returns its standard output; it must succeed.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("running ip netns exec");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The names of the interfaces in this namespace.
    pub fn links(&self) -> Vec<String> {
        let json: serde_json::Value =
            serde_json::from_str(&self.run(&["ip", "-j", "link", "show"])).expect("ip's JSON");
        let links = json.as_array().expect("a list of links");
        links.iter().filter_map(|l| l["ifname"].as_str().map(str::to_owned)).collect()
    }

    /// The nftables tables in this namespace, one line each (berth's rules live in its own).
    pub fn nft_tables(&self) -> String {
        self.run(&["nft", "list", "tables"])
    }

    /// Runs `f` on a thread inside this namespace.
    pub fn in_ns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = std::fs::File::open(self.path()).expect("opening the namespace");
        std::thread::spawn(move || {
            // SAFETY: setns(2) moves only this new thread, with a descriptor it holds open
            // for the call.
            assert_eq!(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            f()
        })
        .join()
        .expect("the thread in the namespace")
    }

    /// [`http_get`] from inside this namespace.
    pub fn http_get(&self, addr: &str) -> String {
        let addr: SocketAddr = addr.parse().expect("an address and port");
        self.in_ns(move || http_get_addr(addr))
    }

    /// A listener of a host process on this namespace's loopback: its port, and a sender
    /// whose drop closes it.
    pub fn listen(&self) -> (u16, mpsc::Sender<()>) {
        let ns = std::fs::File::open(self.path()).expect("opening the namespace");
        let (port_tx, port_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            // SAFETY: as in `in_ns`.
            assert_eq!(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            port_tx.send(listener.local_addr().expect("its address").port()).expect("sent");
            let _ = stop_rx.recv();
        });
        (port_rx.recv().expect("the listener's port"), stop_tx)
    }
}

impl Drop for HostNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Writes an OCI layout at `layout`, tagged `latest`: busybox that EXPOSEs 80/tcp and
/// 8080/tcp and serves `eighty` and `eighty-eighty` on them, for `-P` tests.
pub fn two_port_layout(layout: &Path) {
    let tree = tempfile::tempdir().expect("a temp dir");
    crate::busybox::rootfs(tree.path()).expect("the busybox tree");
    let mut builder = crate::layout::LayoutBuilder::new(layout).expect("a layout");
    builder.add_dir_layer(tree.path()).expect("the layer");
    let serve = "echo eighty > /tmp/index.html; mkdir /tmp/b; \
        echo eighty-eighty > /tmp/b/index.html; httpd -p 8080 -h /tmp/b; \
        exec httpd -f -p 80 -h /tmp";
    let config = serde_json::json!({
        "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        "ExposedPorts": {"80/tcp": {}, "8080/tcp": {}},
        "Cmd": ["sh", "-c", serve],
    });
    builder.finish(config, "latest").expect("the image");
}

/// A port nobody listens on now, on this namespace's loopback: in a fresh namespace (or on
/// the host) one the kernel would hand out.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// The body of an HTTP/1.0 GET of `/` at `addr` that answered 200, retried while the server
/// comes up, for up to a minute (the machine may be loaded).
pub fn http_get(addr: &str) -> String {
    http_get_addr(addr.parse().expect("an address and port"))
}

/// One HTTP/1.0 GET of `/` at `addr`: the body if the server answered 200.
pub fn http_get_once(addr: &str) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().map_err(std::io::Error::other)?;
    get_once(addr)
}

fn get_once(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    match reply.split_once("\r\n\r\n") {
        Some((head, body)) if head.contains(" 200 ") => Ok(body.to_owned()),
        _ => Err(std::io::Error::other(format!("unexpected reply {reply:?}"))),
    }
}

fn http_get_addr(addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match get_once(addr) {
            Ok(body) => return body,
            Err(e) => assert!(Instant::now() < deadline, "fetching {addr}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
