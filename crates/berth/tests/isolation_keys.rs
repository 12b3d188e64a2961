//! The kernel's key management from inside a default container, rootful and rootless, read
//! by a small static program the test compiles (busybox has no keyctl applet):
//!
//! - `add_key` and `request_key` fail (ENOSYS): containers-common's seccomp profile, which a
//!   default container gets, does not allow them (Podman's containers fail the same way);
//! - `keyctl` itself is allowed by that profile (containers-common 0.50 allows it, and so do
//!   Podman's containers here), but it reaches only a session keyring of the container's
//!   own: the runtime joins a new one before the container's process starts, so the host's
//!   session keyring (and the keys in it) is not the container's.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_testkit::cli::Berth;
use berth_testkit::rootless_cli::{open_to_all, RootlessBerth};

/// The probe: the id of the session keyring keyctl reaches (0 create), and what add_key and
/// request_key return (the errno's name).
const PROBE: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    long session = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
    printf("session=%ld\n", session);
    long added = syscall(SYS_add_key, "user", "berth-test", "v", 1, -3);
    printf("add_key=%s\n", added < 0 ? strerrorname_np(errno) : "ok");
    long requested = syscall(SYS_request_key, "user", "berth-test", NULL, 0);
    printf("request_key=%s\n", requested < 0 ? strerrorname_np(errno) : "ok");
    return 0;
}
"#;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Compiles the probe, static (the image has no C library), into a directory everyone can
/// read.
fn probe() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("berth-keys-").tempdir_in("/var/tmp").unwrap();
    let source = dir.path().join("probe.c");
    fs::write(&source, PROBE).unwrap();
    let bin = dir.path().join("probe");
    let out = Command::new("cc")
        .args(["-static", "-O1", "-Werror", "-o"])
        .arg(&bin)
        .arg(&source)
        .output();
    let out = out.expect("running cc (build-essential)");
    assert!(out.status.success(), "cc: {}", String::from_utf8_lossy(&out.stderr));
    open_to_all(dir.path());
    (dir, bin)
}

/// The host's session keyring as this test process reaches it.
fn host_session() -> i64 {
    // SAFETY: keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) takes no pointer.
    unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) }
}

fn check(out: &str, host: i64) {
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {out:?}"))
            .to_owned()
    };
    let session: i64 = field("session").parse().unwrap();
    assert!(session > 0, "keyctl reaches no session keyring: {out}");
    assert_ne!(session, host, "the container shares the host's session keyring");
    assert_eq!(field("add_key"), "ENOSYS", "add_key is allowed: {out}");
    assert_eq!(field("request_key"), "ENOSYS", "request_key is allowed: {out}");
}

fn volume(dir: &Path) -> String {
    format!("{}:/probe:ro", dir.display())
}

#[test]
fn keys_from_inside_a_default_container() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (dir, _) = probe();
    let host = host_session();
    let berth = Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), "localhost/bb");
    let volume = volume(dir.path());
    let run = ["run", "--rm", "--network", "none", "-v", &volume, "localhost/bb", "/probe/probe"];
    check(&berth.ok(&run), host);
    berth.assert_clean();

    let rootless =
        RootlessBerth::with_busybox(Path::new(env!("CARGO_BIN_EXE_berth")), "localhost/bb");
    check(&rootless.ok(&run), host);
}
