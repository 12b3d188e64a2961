//! `attach` and `detach` rootless, as the unprivileged test user: inside a user and mount
//! namespace of that user (as rootless berth runs), berth's own namespace file is made,
//! pasta connects it and publishes a port on the host's loopback, and detach stops pasta and
//! removes the namespace.
//!
//! The scenario runs in this test binary run again as the test user under
//! `unshare --user --map-root-user --mount`, selected by `SCENARIO_ENV`; it prints `BODY …`
//! with what the published port served and `CLEAN` once detach left nothing.

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Stdio;

use berth_engine::network::attach::{self, ContainerNetworkRequest, NetworkPaths};
use berth_engine::network::mode::NetworkMode;
use berth_engine::network::netns;
use berth_engine::network::ports::{PortMapping, Protocol};
use berth_testkit::netns::http_get;
use berth_testkit::user::TestUser;

const SCENARIO_ENV: &str = "BERTH_TEST_ROOTLESS_ATTACH_DIR";

/// The rootless side: runs only when started by the test below.
#[test]
fn rootless_scenario() {
    let Some(dir) = std::env::var_os(SCENARIO_ENV) else { return };
    let dir = PathBuf::from(dir);
    let paths = NetworkPaths::new(&dir.join("root"), &dir.join("runroot"));
    let id = "7e".repeat(32);
    let port: u16 = std::env::var("PORT").unwrap().parse().unwrap();

    let ns = netns::create(&paths.runroot, &id).unwrap();
    let site = dir.join("site");
    let mut httpd = ns
        .command("busybox")
        .unwrap()
        .args(["httpd", "-f", "-p", "8080", "-h"])
        .arg(&site)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let req = ContainerNetworkRequest {
        id: id.clone(),
        name: "rootless-web".into(),
        netns: Some(ns),
        mode: NetworkMode::Pasta(Vec::new()),
        ports: vec![PortMapping {
            host_ip: Some(Ipv4Addr::LOCALHOST.into()),
            host_port: port,
            container_port: 8080,
            protocol: Protocol::Tcp,
        }],
        dns: Vec::new(),
        dns_search: Vec::new(),
        dns_options: Vec::new(),
        add_hosts: Vec::new(),
        hostname: "rootless".into(),
        rootless: true,
    };
    let result = std::panic::catch_unwind(|| {
        let attached = attach::attach(&paths, &req).unwrap();
        assert!(attached.network.resolv_conf.contains("nameserver 169.254.1.1"));
        let pid_file = paths.runroot.join("network/pasta").join(format!("{id}.pid"));
        println!("PASTA {}", std::fs::read_to_string(pid_file).unwrap().trim());
        let body = http_get(&format!("127.0.0.1:{port}"));
        println!("BODY {}", body.trim());
    });
    attach::detach(&paths, &id).unwrap();
    let _ = httpd.kill();
    let _ = httpd.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    let pid_file = paths.runroot.join("network/pasta").join(format!("{id}.pid"));
    assert!(!pid_file.exists(), "the pasta pid file went");
    assert!(!netns::path_for(&paths.runroot, &id).exists(), "the namespace file went");
    println!("CLEAN");
}

/// Whether process `pid` is alive (a zombie waiting for init to reap it is not).
fn alive(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
}

#[test]
fn pasta_publishes_a_rootless_containers_port_and_detach_leaves_nothing() {
    let user = TestUser::get();
    let dir =
        tempfile::Builder::new().prefix("berth-attach-").tempdir_in(user.runtime_dir()).unwrap();
    std::os::unix::fs::chown(dir.path(), Some(user.uid()), Some(user.gid())).unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("index.html"), "served rootless\n").unwrap();
    std::fs::set_permissions(&site, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(site.join("index.html"), std::fs::Permissions::from_mode(0o644))
        .unwrap();
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();

    let exe = berth_testkit::user::stage_binary(&std::env::current_exe().unwrap()).unwrap();
    let out = user
        .command("unshare")
        .args(["--user", "--map-root-user", "--mount", "--"])
        .arg(&exe)
        .args(["--exact", "rootless_scenario", "--nocapture", "--test-threads=1"])
        .env(SCENARIO_ENV, dir.path())
        .env("PORT", port.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the rootless scenario failed: {stdout}{stderr}");
    assert!(stdout.contains("BODY served rootless"), "{stdout}");
    assert!(stdout.contains("CLEAN"), "{stdout}");
    let pasta = stdout
        .lines()
        .find_map(|l| l.split_once("PASTA ").map(|(_, pid)| pid))
        .expect("the pasta pid");
    assert!(!alive(pasta), "pasta {pasta} still runs");
}
