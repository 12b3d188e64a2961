//! `berth network create | ls | inspect | rm | prune` as a user meets them: Podman's columns
//! and JSON, one-line errors with exit 125 that leave nothing behind.
//!
//! Each command runs under `unshare --net`, in a fresh network namespace, so that the host's
//! routes, interfaces and firewall are neither consulted nor touched; the networks live in a
//! temporary root's state database.

use berth_testkit::cli::{stderr, stdout, Berth};

/// A throwaway engine whose every command runs in a fresh network namespace.
fn engine() -> Berth {
    let mut berth = Berth::new(env!("CARGO_BIN_EXE_berth"));
    berth.wrap_in(&["unshare", "--net", "--"]);
    berth
}

/// Runs `args`, expecting exit 125 with one `berth:` line and nothing on stdout; returns the
/// line.
fn fails(b: &Berth, args: &[&str]) -> String {
    let out = b.run(args);
    assert_eq!(out.status.code(), Some(125), "berth {args:?} should fail");
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", stdout(&out));
    let stderr = stderr(&out);
    let first = stderr.lines().next().unwrap_or("").to_owned();
    assert!(first.starts_with("berth: "), "{stderr}");
    first
}

fn names(b: &Berth) -> Vec<String> {
    b.ok(&["network", "ls", "-q"]).lines().map(str::to_owned).collect()
}

#[test]
fn create_list_inspect_and_remove_a_network() {
    let b = engine();
    let name = b.ok(&[
        "network",
        "create",
        "--subnet",
        "10.250.30.0/24",
        "--gateway",
        "10.250.30.254",
        "--ip-range",
        "10.250.30.128/25",
        "--label",
        "team=web",
        "--internal",
        "--disable-dns",
        "front",
    ]);
    assert_eq!(name, "front\n");
    // Without a name or subnet: berth1 on the first free /24 of the default pool.
    assert_eq!(b.ok(&["network", "create"]), "berth1\n");

    let table = b.ok(&["network", "ls"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NETWORK", "ID", "NAME", "DRIVER"]
    );
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[1].ends_with("berth1  bridge") || lines[1].contains(" berth1 "), "{table}");
    let id_column: Vec<&str> =
        lines[1..].iter().map(|l| l.split_whitespace().next().unwrap()).collect();
    assert!(id_column.iter().all(|id| id.len() == 12), "{table}");

    assert_eq!(names(&b), ["berth1", "front"]);
    assert_eq!(b.ok(&["network", "ls", "--filter", "label=team=web", "-q"]), "front\n");
    assert_eq!(
        b.ok(&["network", "ls", "--filter", "name=ber", "--format", "{{.Name}} {{.Driver}}"]),
        "berth1 bridge\n"
    );
    let custom = b.ok(&["network", "ls", "--format", "table {{.ID}}\t{{.Name}}"]);
    assert!(custom.starts_with("NETWORK ID"), "{custom}");

    let json: serde_json::Value =
        serde_json::from_str(&b.ok(&["network", "inspect", "front"])).unwrap();
    let net = &json[0];
    let keys: Vec<&str> = net.as_object().unwrap().keys().map(String::as_str).collect();
    for key in [
        "name",
        "id",
        "driver",
        "network_interface",
        "created",
        "subnets",
        "ipv6_enabled",
        "internal",
        "dns_enabled",
        "labels",
        "ipam_options",
    ] {
        assert!(keys.contains(&key), "inspect lacks {key}: {net}");
    }
    assert_eq!(net["driver"], "bridge");
    assert_eq!(net["subnets"][0]["subnet"], "10.250.30.0/24");
    assert_eq!(net["subnets"][0]["gateway"], "10.250.30.254");
    assert_eq!(net["subnets"][0]["lease_range"]["start_ip"], "10.250.30.128");
    assert_eq!(net["internal"], true);
    assert_eq!(net["dns_enabled"], false);
    assert_eq!(net["labels"]["team"], "web");
    assert_eq!(net["id"].as_str().unwrap().len(), 64);
    // By id prefix too, and with a template.
    let id = net["id"].as_str().unwrap();
    assert_eq!(b.ok(&["network", "inspect", "--format", "{{.name}}", &id[..10]]), "front\n");

    assert_eq!(b.ok(&["network", "rm", "front", "berth1"]), "front\nberth1\n");
    assert!(names(&b).is_empty());
}

#[test]
fn bad_input_is_one_line_exit_125_and_creates_nothing() {
    let b = engine();
    b.ok(&["network", "create", "--subnet", "10.250.31.0/24", "one"]);

    let err = fails(&b, &["network", "create", "--subnet", "10.250.31.128/25", "two"]);
    assert_eq!(
        err,
        "berth: subnet 10.250.31.128/25 overlaps the subnet 10.250.31.0/24 of network one"
    );
    let err = fails(&b, &["network", "create", "--subnet", "10.250.32.0/24", "one"]);
    assert_eq!(err, "berth: network one already exists");
    let err = fails(&b, &["network", "create", "--subnet", "10.250.33.1/24", "three"]);
    assert!(err.contains("host bits are set"), "{err}");
    let err = fails(&b, &["network", "create", "--gateway", "10.250.34.1", "four"]);
    assert!(err.contains("--gateway needs a --subnet"), "{err}");
    let err = fails(&b, &["network", "create", "-d", "macvlan", "five"]);
    assert!(err.contains("not supported yet"), "{err}");
    assert_eq!(names(&b), ["one"], "no failed create recorded anything");

    let err = fails(&b, &["network", "inspect", "one", "nosuch"]);
    assert_eq!(err, "berth: network nosuch not found");
    let err = fails(&b, &["network", "rm", "nosuch"]);
    assert_eq!(err, "berth: network nosuch not found");
    let err = fails(&b, &["network", "rm", "one", "nosuch"]);
    assert_eq!(err, "berth: network nosuch not found");
    assert_eq!(names(&b), ["one"], "rm of a list with an unknown name removes none");
}

#[test]
fn rm_refuses_a_network_in_use_and_prune_keeps_it() {
    let b = engine();
    b.ok(&["network", "create", "--subnet", "10.250.35.0/24", "used"]);
    b.ok(&["network", "create", "--subnet", "10.250.36.0/24", "idle"]);
    // A container holding an address, as attach records it.
    {
        use berth_engine::network::ipam::IpamStore as _;
        let mut db = berth_engine::network::store::NetworkDb::open_root(&b.root()).unwrap();
        db.reserve("used", "10.250.35.2".parse().unwrap(), &"ab".repeat(32)).unwrap();
    }
    let err = fails(&b, &["network", "rm", "used"]);
    assert!(err.contains("network used is in use by container(s) abababababab"), "{err}");

    assert_eq!(b.ok(&["network", "prune", "-f"]), "idle\n");
    assert_eq!(names(&b), ["used"]);
    assert_eq!(b.ok(&["network", "rm", "-f", "used"]), "used\n");
    assert!(names(&b).is_empty());
}
