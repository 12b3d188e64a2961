//! Rootless networking on real namespaces: as the unprivileged test user, a "container" is an
//! `unshare --user --map-root-user --net` process running busybox httpd; pasta (and
//! slirp4netns, the fallback) connect it and publish its port on the host's loopback, where the
//! test fetches a page. Traffic stays on loopback and inside the container's namespace.

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use berth_engine::network::netns::Netns;
use berth_engine::network::ports::{PortMapping, Protocol};
use berth_engine::network::rootless::{Pasta, PastaOptions, Slirp, SlirpOptions};
use berth_testkit::netns::{free_port, http_get, http_get_once};
use berth_testkit::user::TestUser;

/// A rootless fake container, killed on drop.
struct Container {
    child: Child,
    _root: tempfile::TempDir,
}

impl Container {
    /// busybox httpd on port 8080 in a new user and network namespace of the test user,
    /// serving `text`.
    fn httpd(text: &str) -> Self {
        let user = TestUser::get();
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let index = root.path().join("index.html");
        std::fs::write(&index, text).unwrap();
        std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o644)).unwrap();
        let child = user
            .command("unshare")
            .args([
                "--user",
                "--map-root-user",
                "--net",
                "--",
                "busybox",
                "httpd",
                "-f",
                "-p",
                "8080",
                "-h",
            ])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the process has its own namespace (unshare runs before exec).
        let me = std::fs::read_link("/proc/self/ns/net").unwrap();
        let path = PathBuf::from(format!("/proc/{}/ns/net", child.id()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_link(&path).map(|l| l == me).unwrap_or(true) {
            assert!(Instant::now() < deadline, "the container never entered its namespace");
            std::thread::sleep(Duration::from_millis(5));
        }
        Self { child, _root: root }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page from 127.0.0.1:`port`, retried while httpd inside comes up.
fn fetch(port: u16) -> String {
    http_get(&format!("127.0.0.1:{port}"))
}

/// A directory the test user can write (for pid files and sockets), removed on drop.
fn user_dir() -> tempfile::TempDir {
    let user = TestUser::get();
    let dir = tempfile::Builder::new().prefix("berth-net-").tempdir_in(user.runtime_dir()).unwrap();
    std::os::unix::fs::chown(dir.path(), Some(user.uid()), Some(user.gid())).unwrap();
    dir
}

fn tcp(host_port: u16, container_port: u16) -> PortMapping {
    PortMapping {
        host_ip: Some(Ipv4Addr::LOCALHOST.into()),
        host_port,
        container_port,
        protocol: Protocol::Tcp,
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn pasta_publishes_a_rootless_port_on_loopback_and_stops_cleanly() {
    let user = TestUser::get();
    let container = Container::httpd("hello through pasta\n");
    let dir = user_dir();
    let pid_file = dir.path().join("pasta.pid");
    let port = free_port();

    let mut opts = PastaOptions::new(Netns::Pid(container.pid()));
    opts.ports = vec![tcp(port, 8080)];
    let pasta = Pasta::start_with(user.command("pasta"), &opts, &pid_file).unwrap();
    assert!(pasta.is_running().unwrap());
    let status = std::fs::read_to_string(format!("/proc/{}/status", pasta.pid())).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:") && l.contains(&user.uid().to_string())),
        "pasta runs as the test user"
    );

    assert_eq!(fetch(port), "hello through pasta\n");

    // Inside: pasta configured an interface besides lo.
    let links = std::fs::read_to_string(format!("/proc/{}/net/dev", container.pid())).unwrap();
    assert!(links.lines().skip(2).count() >= 2, "{links}");

    // A later berth command can take pasta over from its pid file and stop it.
    let pid = pasta.pid();
    drop(pasta);
    let again = Pasta::from_pid_file(&pid_file).unwrap().expect("pasta still runs");
    assert_eq!(again.pid(), pid);
    again.stop().unwrap();
    assert!(!alive(pid), "pasta is gone");
    assert!(
        http_get_once(&format!("127.0.0.1:{port}")).is_err(),
        "nothing listens on the published port any more"
    );
}

#[test]
fn pasta_joins_a_namespace_given_by_path_with_its_user_namespace() {
    let user = TestUser::get();
    let container = Container::httpd("by path\n");
    let dir = user_dir();
    let port = free_port();

    let mut opts =
        PastaOptions::new(Netns::Path(format!("/proc/{}/ns/net", container.pid()).into()));
    opts.userns = Some(format!("/proc/{}/ns/user", container.pid()).into());
    opts.ports = vec![tcp(port, 8080)];
    let pasta =
        Pasta::start_with(user.command("pasta"), &opts, &dir.path().join("pasta.pid")).unwrap();
    assert_eq!(fetch(port), "by path\n");
    let pid = pasta.pid();
    pasta.stop().unwrap();
    assert!(!alive(pid));
}

#[test]
fn pasta_left_behind_by_a_killed_container_is_found_and_stopped_by_its_pid_file() {
    let user = TestUser::get();
    let mut container = Container::httpd("x");
    let dir = user_dir();
    let pid_file = dir.path().join("pasta.pid");
    let port = free_port();
    let mut opts = PastaOptions::new(Netns::Pid(container.pid()));
    opts.ports = vec![tcp(port, 8080)];
    let pasta = Pasta::start_with(user.command("pasta"), &opts, &pid_file).unwrap();
    let pid = pasta.pid();
    drop(pasta);

    // As after a SIGKILL of the container and its monitor: pasta stays, holding the port.
    container.child.kill().unwrap();
    container.child.wait().unwrap();
    assert!(alive(pid), "pasta does not notice by itself");
    assert!(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err(), "the port is still held");

    // The next berth command's cleanup.
    let found = Pasta::from_pid_file(&pid_file).unwrap().expect("pasta is found");
    found.stop().unwrap();
    assert!(!alive(pid));
    assert!(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok(), "the port is free again");

    // A stale pid file (or none) finds nothing, and never signals another process.
    assert!(Pasta::from_pid_file(&pid_file).unwrap().is_none());
    std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
    assert!(Pasta::from_pid_file(&pid_file).unwrap().is_none(), "this test process is not pasta");
    assert!(Pasta::from_pid_file(&dir.path().join("missing.pid")).unwrap().is_none());
}

#[test]
fn pasta_refuses_a_port_already_in_use_in_one_line() {
    let user = TestUser::get();
    let container = Container::httpd("x");
    let dir = user_dir();
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();

    let mut opts = PastaOptions::new(Netns::Pid(container.pid()));
    opts.ports = vec![tcp(port, 8080)];
    let err =
        Pasta::start_with(user.command("pasta"), &opts, &dir.path().join("pasta.pid")).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("pasta failed to set up the network of /proc/"), "{text}");
    assert!(!text.contains('\n'), "{text}");
    assert!(
        text.contains(&format!("Failed to bind any port for '-t 127.0.0.1/{port}:8080'")),
        "{text}"
    );
    assert!(!text.contains("syslog"), "{text}");
}

#[test]
fn slirp4netns_publishes_a_rootless_port_through_its_api() {
    let user = TestUser::get();
    let container = Container::httpd("hello through slirp4netns\n");
    let dir = user_dir();
    let port = free_port();

    let mut opts = SlirpOptions::new(Netns::Pid(container.pid()));
    opts.api_socket = Some(dir.path().join("slirp.sock"));
    let slirp =
        Slirp::start_with(user.command("slirp4netns"), &opts, Duration::from_secs(10)).unwrap();
    slirp.add_port(&tcp(port, 8080)).unwrap();
    assert_eq!(fetch(port), "hello through slirp4netns\n");

    // The same host port twice is refused by slirp4netns, and the error says so.
    let err = slirp.add_port(&tcp(port, 8080)).unwrap_err().to_string();
    assert!(err.contains("add_hostfwd"), "{err}");

    let pid = slirp.pid();
    slirp.stop().unwrap();
    assert!(!alive(pid));
    assert!(http_get_once(&format!("127.0.0.1:{port}")).is_err());
}
