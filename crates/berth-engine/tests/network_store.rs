//! The SQLite address store under contention: many berth processes allocating addresses of one
//! network at the same moment never hand out one address twice.
//!
//! The processes are this test binary run again with `ALLOCATOR_ENV` set: each opens its own
//! connection to one state database, waits at a barrier file so that all start together, and
//! allocates addresses for several containers through the real [`Allocator`].

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_engine::network::ipam::{Allocator, CreateOptions};
use berth_engine::network::store::NetworkDb;

const ALLOCATOR_ENV: &str = "BERTH_TEST_IPAM_ALLOCATOR";
const PROCESSES: usize = 8;
const PER_PROCESS: usize = 12;

/// The allocating side: does its work only when run by the test below with `ALLOCATOR_ENV`
/// naming the state directory, and prints one `ADDR CONTAINER` line per allocation.
#[test]
fn allocator_process() {
    let Some(dir) = std::env::var_os(ALLOCATOR_ENV) else { return };
    let dir = Path::new(&dir);
    let me = std::process::id();
    let go = dir.join("go");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !go.exists() {
        assert!(Instant::now() < deadline, "the start signal never came");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut db = NetworkDb::open_root(dir).unwrap();
    let net = db.find("crowd").unwrap().network;
    for i in 0..PER_PROCESS {
        let container = format!("c{me}-{i}");
        let addrs = Allocator::new(&mut db).allocate(&net, &container, &[]).unwrap();
        for addr in addrs {
            println!("ALLOC {addr} {container}");
        }
    }
}

#[test]
fn concurrent_processes_never_share_an_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = NetworkDb::open_root(dir.path()).unwrap();
    let opts = CreateOptions {
        name: "crowd".into(),
        subnets: vec!["10.250.60.0/24".parse().unwrap()],
        ..Default::default()
    };
    db.create_network(&opts, &[]).unwrap();

    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "allocator_process", "--nocapture", "--test-threads=1"])
                .env(ALLOCATOR_ENV, dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(dir.path().join("go"), "").unwrap();

    let mut seen = BTreeSet::new();
    let mut total = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "an allocator failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The harness's own "test allocator_process ... " may start the first line.
        for line in stdout.lines().filter_map(|l| l.split_once("ALLOC ").map(|(_, r)| r)) {
            let (addr, _container) = line.split_once(' ').unwrap();
            let addr: IpAddr = addr.parse().unwrap();
            assert!(seen.insert(addr), "{addr} was handed out twice");
            total += 1;
        }
    }
    assert_eq!(total, PROCESSES * PER_PROCESS, "every allocation was reported");
    // What the processes reported is what the database holds.
    let held = berth_engine::network::ipam::IpamStore::allocated(&db, "crowd").unwrap();
    assert_eq!(held.keys().copied().collect::<BTreeSet<_>>(), seen);
    assert!(
        !seen.contains(&"10.250.60.1".parse::<IpAddr>().unwrap()),
        "the gateway is never given"
    );
}
