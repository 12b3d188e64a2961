//! Rootless networking end to end, as a user runs it: berth as the unprivileged test user
//! (berth_testkit::user::TestUser), with pasta as the default network. busybox httpd
//! published with `-p 127.0.0.1:PORT:80` answers from the host, `-P` publishes what the image
//! EXPOSEs, a privileged port and a port in use (by a host process or by another container)
//! fail in one line with exit 125 and leave nothing behind, and no pasta outlives its
//! container — after `rm`, after a failed start, and after its monitor is killed.
//!
//! Traffic stays on the host's loopback. The engine (berth_testkit::rootless_cli) removes the
//! test's containers, ends its pause process and kills whatever is left in its user namespace
//! or names its directories when dropped, also when a test fails.

use std::fs;
use std::path::Path;

use berth_testkit::cli::{processes_whose_cmdline, stderr};
use berth_testkit::netns::{free_port, http_get as fetch};
use berth_testkit::rootless_cli::RootlessBerth;

/// A throwaway rootless engine of the test user with the busybox image.
fn engine() -> RootlessBerth {
    RootlessBerth::with_busybox(Path::new(env!("CARGO_BIN_EXE_berth")), "localhost/busybox:latest")
}

/// Runs and expects exit 125 with a one-line error; returns that line.
fn fails(b: &RootlessBerth, args: &[&str]) -> String {
    let err = b.fails(args, 125);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

/// pasta (and slirp4netns) processes started for engine `b`: their command lines name files
/// under its runroot.
fn pastas(b: &RootlessBerth) -> Vec<i32> {
    let runroot = b.runroot().display().to_string();
    processes_whose_cmdline(|cmdline| cmdline.contains(&runroot))
        .into_iter()
        .filter(|pid| {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            comm.starts_with("pasta")
                || comm.starts_with("passt")
                || comm.starts_with("slirp4netns")
        })
        .collect()
}

/// What a container could leave behind: pasta processes and namespace files.
fn leftovers(b: &RootlessBerth) -> Vec<String> {
    let mut out: Vec<String> = pastas(b).iter().map(|p| format!("pasta pid {p}")).collect();
    if let Ok(dir) = fs::read_dir(b.runroot().join("netns")) {
        out.extend(dir.flatten().map(|e| format!("namespace file {}", e.path().display())));
    }
    out
}

const HTTPD: &str = "echo served by $(hostname) > /tmp/index.html; exec httpd -f -p 80 -h /tmp";

#[test]
fn a_published_port_answers_from_the_host_and_bad_ports_are_one_line() {
    let b = engine();
    let image = "localhost/busybox";

    // No --network: pasta gives the container an interface besides lo.
    let links = b.ok(&["run", "--rm", image, "ip", "-o", "link"]);
    assert!(links.lines().count() >= 2, "only lo: {links}");
    assert!(leftovers(&b).is_empty(), "after run --rm: {:?}", leftovers(&b));

    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let args = ["run", "-d", "--name", "web", "--hostname", "web", "-p", &publish, image];
    b.ok(&[&args[..], &["sh", "-c", HTTPD]].concat());
    assert_eq!(fetch(&format!("127.0.0.1:{port}")), "served by web\n");
    assert_eq!(b.ok(&["port", "web"]), format!("80/tcp -> 127.0.0.1:{port}\n"));
    assert_eq!(pastas(&b).len(), 1, "one pasta for the container, whatever its ports");

    // The same host port again: held by the first container's pasta.
    let err = fails(&b, &["run", "-d", "--name", "twice", "-p", &publish, image, "sleep", "60"]);
    assert!(err.contains(&port.to_string()), "{err}");
    // A port a host process listens on.
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = format!("127.0.0.1:{}:80", host.local_addr().unwrap().port());
    let err = fails(&b, &["run", "-d", "--name", "taken", "-p", &taken, image, "sleep", "60"]);
    assert!(err.contains(&host.local_addr().unwrap().port().to_string()), "{err}");
    // A privileged port: the error names the sysctl that allows it.
    let start: u16 = fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if start > 80 {
        let err = fails(&b, &["run", "--rm", "-p", "127.0.0.1:80:80", image, "true"]);
        assert!(err.contains("net.ipv4.ip_unprivileged_port_start"), "{err}");
    }
    // None of the failures left a container, a pasta or a namespace behind.
    assert_eq!(b.ok(&["ps", "-a", "--format", "{{.Names}}"]), "web\n");
    assert_eq!(pastas(&b).len(), 1);

    b.ok(&["rm", "-f", "web"]);
    assert!(leftovers(&b).is_empty(), "after rm: {:?}", leftovers(&b));

    // slirp4netns, pasta's fallback, publishes too and goes with its container.
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let args = ["run", "-d", "--name", "slirp", "--hostname", "slirp", "--network", "slirp4netns"];
    b.ok(&[&args[..], &["-p", &publish, image, "sh", "-c", HTTPD]].concat());
    assert_eq!(fetch(&format!("127.0.0.1:{port}")), "served by slirp\n");
    b.ok(&["rm", "-f", "slirp"]);
    assert!(leftovers(&b).is_empty(), "after rm: {:?}", leftovers(&b));
}

#[test]
fn publish_all_and_cleanup_after_a_failed_start_and_a_killed_monitor() {
    let b = engine();
    // An image that EXPOSEs two ports and serves both.
    let layout = b.dir().join("exposed");
    berth_testkit::netns::two_port_layout(&layout);
    b.load(&layout, "localhost/exposed:latest");

    b.ok(&["run", "-d", "--name", "all", "-P", "localhost/exposed"]);
    let ports = b.ok(&["port", "all"]);
    let mut lines: Vec<&str> = ports.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{ports}");
    for (line, (container, body)) in lines.iter().zip([("80", "eighty"), ("8080", "eighty-eighty")])
    {
        let (left, host) = line.split_once(" -> ").unwrap();
        assert_eq!(left, format!("{container}/tcp"), "{ports}");
        let host_port = host.rsplit_once(':').unwrap().1;
        assert_eq!(fetch(&format!("127.0.0.1:{host_port}")), format!("{body}\n"));
    }

    // A start that fails (no such program) with a published port leaves nothing.
    let publish = format!("127.0.0.1:{}:80", free_port());
    let out = b.run(&["run", "--rm", "-p", &publish, "localhost/exposed", "/no/such"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert_eq!(pastas(&b).len(), 1, "only the first container's pasta");

    // SIGKILL the monitor and the container; the next command stops their pasta.
    let pid: i32 = b.ok(&["inspect", "--format", "{{.State.Pid}}", "all"]).trim().parse().unwrap();
    let monitor: i32 =
        fs::read_to_string(b.ok(&["inspect", "--format", "{{.ConmonPidFile}}", "all"]).trim())
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    for victim in [monitor, pid] {
        // SAFETY: kill(2) with pids read just now and a plain signal number.
        unsafe { libc::kill(victim, libc::SIGKILL) };
    }
    b.eventually("the container to die", || !Path::new(&format!("/proc/{pid}/ns")).exists());
    assert_eq!(pastas(&b).len(), 1, "pasta outlived the monitor");
    b.ok(&["ps", "-a"]);
    assert!(leftovers(&b).is_empty(), "after the next command: {:?}", leftovers(&b));
    b.ok(&["rm", "-f", "all"]);
    assert!(leftovers(&b).is_empty(), "after the killed monitor: {:?}", leftovers(&b));
}
