//! The network of RUN steps: by default a namespace of the step's own connected to the default
//! bridge network, as a `berth run` container is (and taken down when the step ends); none
//! with `--network none` (a namespace of its own with only loopback); the host's with
//! `--network host`; and `RUN --network=host|none` choosing for one step over the build's
//! flag.

use berth_testkit::cli::Berth;
use berth_testkit::image_tree::{read_layout, Listing};

const CONTAINERFILE: &str = r#"FROM localhost/busybox:latest
RUN readlink /proc/self/ns/net > /build-ns && tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /build-devs
RUN --network=none readlink /proc/self/ns/net > /none-ns && tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /none-devs
RUN --network=host readlink /proc/self/ns/net > /host-ns
"#;

fn build(berth: &Berth, context: &str, extra: &[&str]) -> Listing {
    let mut args = vec!["build", "-q", "--no-cache", "-t", "net"];
    args.extend_from_slice(extra);
    args.push(context);
    berth.ok(&args);
    let layout = berth.dir().join("saved");
    let _ = std::fs::remove_dir_all(&layout);
    berth.ok(&["save", "--format", "oci-dir", "-o", layout.to_str().unwrap(), "net"]);
    read_layout(&layout).unwrap().tree()
}

#[test]
fn run_steps_get_the_network_asked_for() {
    let berth = Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), "localhost/busybox:latest");
    let context = berth.dir().join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("Containerfile"), CONTAINERFILE).unwrap();
    let context = context.to_str().unwrap();
    let host = format!("{}\n", std::fs::read_link("/proc/self/ns/net").unwrap().display());
    let loopback_only = "lo\n";

    // Default: a namespace of the step's own with the bridge's interface, gone afterwards;
    // RUN --network=none still gets only loopback.
    let tree = build(&berth, context, &[]);
    assert_ne!(tree["build-ns"].detail, host);
    assert_eq!(tree["build-devs"].detail, "lo\neth0\n");
    assert_eq!(tree["host-ns"].detail, host);
    assert_ne!(tree["none-ns"].detail, host);
    assert_eq!(tree["none-devs"].detail, loopback_only);
    let namespaces: Vec<_> = std::fs::read_dir(berth.runroot().join("netns"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(namespaces.is_empty(), "the steps' network namespaces are left: {namespaces:?}");

    // --network none: no step sees the host's, except the one that asks for it.
    let tree = build(&berth, context, &["--network", "none"]);
    assert_ne!(tree["build-ns"].detail, host);
    assert_eq!(tree["build-devs"].detail, loopback_only);
    assert_eq!(tree["host-ns"].detail, host);

    // --network host and bridge say so.
    let tree = build(&berth, context, &["--network=host"]);
    assert_eq!(tree["build-ns"].detail, host);
    let tree = build(&berth, context, &["--network", "bridge"]);
    assert_eq!(tree["build-devs"].detail, "lo\neth0\n");

    // Modes berth cannot give a build yet are refused before any work.
    let stderr = berth.fails(&["build", "--network", "container:x", context], 125);
    assert!(stderr.contains("--network container:x is not supported yet"), "{stderr}");
}
