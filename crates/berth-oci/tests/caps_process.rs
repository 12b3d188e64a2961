//! Process confinement through berth-oci, seen from inside the container: the five capability
//! sets across the switch to the process's user, unknown capability names refused at create,
//! no_new_privileges against a setuid-root binary, and rlimits read back from
//! /proc/self/limits. The expected sets follow capabilities(7)'s rules for execve, which the
//! container's process goes through after berth sets its capabilities.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::Bundle;
use serde_json::{json, Value};

// Bits of the capabilities used here (linux/capability.h).
const CHOWN: u64 = 1 << 0;
const KILL: u64 = 1 << 5;
const NET_BIND_SERVICE: u64 = 1 << 10;

/// The container's Cap* lines as (inheritable, permitted, effective, bounding, ambient).
fn cap_sets(b: &mut Bundle) -> [u64; 5] {
    let out = b.sh("grep '^Cap' /proc/self/status");
    let mut sets = [0u64; 5];
    for (i, name) in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"].iter().enumerate() {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing: {out}"));
        let hex = line.split_whitespace().nth(1).unwrap();
        sets[i] = u64::from_str_radix(hex, 16).unwrap();
    }
    sets
}

fn caps(bounding: &[&str], effective: &[&str], inheritable: &[&str], ambient: &[&str]) -> Value {
    json!({
        "bounding": bounding, "effective": effective, "permitted": effective,
        "inheritable": inheritable, "ambient": ambient
    })
}

// Root keeps the permitted and effective sets it was given; the bounding set is cut to the
// spec's, and nothing outside it can come back.
#[test]
fn root_gets_the_sets_asked_for() {
    let mut b = Bundle::new(&[]);
    b.config["process"]["capabilities"] = caps(
        &["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        &["CAP_CHOWN", "CAP_KILL"],
        &[],
        &[],
    );
    let [inh, prm, eff, bnd, amb] = cap_sets(&mut b);
    // execve as root gives the permitted set all of the bounding set (capabilities(7), "Root
    // execution of programs"), so a spec's permitted set is at most the bounding set for root.
    assert_eq!(bnd, CHOWN | KILL | NET_BIND_SERVICE);
    assert_eq!(prm & !bnd, 0, "permitted outside the bounding set: {prm:x}");
    assert!(prm & (CHOWN | KILL) == CHOWN | KILL, "{prm:x}");
    assert!(eff & (CHOWN | KILL) == CHOWN | KILL, "{eff:x}");
    assert_eq!((inh, amb), (0, 0));
    // And they work or not: chown needs CAP_CHOWN (held); reading a mode-000 file needs
    // CAP_DAC_OVERRIDE (outside the bounding set, so even root cannot have it).
    let out = b.sh("touch /tmp/f; chmod 000 /tmp/f; chown 1000 /tmp/f && echo chown-ok; \
         cat /tmp/f 2>&1 | grep -c 'Permission denied'");
    assert_eq!(out, "chown-ok\n1\n");
}

// Root with ambient capabilities: the ambient set survives the exec as asked, beside the
// bounding set's capabilities that root's exec grants anyway.
#[test]
fn root_with_ambient_keeps_the_ambient_set() {
    let mut b = Bundle::new(&[]);
    let set = ["CAP_CHOWN", "CAP_KILL"];
    b.config["process"]["capabilities"] =
        caps(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"], &set, &set, &set);
    let [inh, prm, eff, bnd, amb] = cap_sets(&mut b);
    assert_eq!((inh, amb, bnd), (CHOWN | KILL, CHOWN | KILL, CHOWN | KILL | NET_BIND_SERVICE));
    assert_eq!(prm & (CHOWN | KILL), CHOWN | KILL, "{prm:x}");
    assert_eq!(eff & (CHOWN | KILL), CHOWN | KILL, "{eff:x}");
    assert_eq!(prm & !bnd, 0, "{prm:x}");
}

// uid 1000 without ambient capabilities: the exec of a plain binary clears the permitted and
// effective sets (no file capabilities), while bounding and inheritable stay as asked.
#[test]
fn non_root_without_ambient_loses_permitted_at_exec() {
    let mut b = Bundle::new(&[]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["capabilities"] = caps(
        &["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        &["CAP_CHOWN", "CAP_KILL"],
        &["CAP_KILL"],
        &[],
    );
    let [inh, prm, eff, bnd, amb] = cap_sets(&mut b);
    assert_eq!([inh, prm, eff, bnd, amb], [KILL, 0, 0, CHOWN | KILL | NET_BIND_SERVICE, 0]);
    let out = b.sh("touch /tmp/f; chown 0 /tmp/f 2>/dev/null || echo chown-denied");
    assert_eq!(out, "chown-denied\n");
}

// uid 1000 with ambient capabilities: they survive the exec into permitted and effective.
#[test]
fn non_root_with_ambient_keeps_them_across_exec() {
    let mut b = Bundle::new(&[]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let set = ["CAP_CHOWN", "CAP_KILL"];
    b.config["process"]["capabilities"] =
        caps(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"], &set, &set, &set);
    let sets = cap_sets(&mut b);
    let both = CHOWN | KILL;
    assert_eq!(sets, [both, both, both, both | NET_BIND_SERVICE, both]);
    let out = b.sh("touch /tmp/f; chown 0 /tmp/f && echo chown-ok");
    assert_eq!(out, "chown-ok\n");
}

// An ambient capability that is not also inheritable cannot be raised (the kernel refuses
// it), so it is absent, as with runc; the others are kept.
#[test]
fn ambient_without_inheritable_is_left_out() {
    let mut b = Bundle::new(&[]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["capabilities"] = caps(
        &["CAP_CHOWN", "CAP_KILL"],
        &["CAP_CHOWN", "CAP_KILL"],
        &["CAP_KILL"],
        &["CAP_CHOWN", "CAP_KILL"],
    );
    let [inh, prm, eff, _, amb] = cap_sets(&mut b);
    assert_eq!([inh, prm, eff, amb], [KILL, KILL, KILL, KILL]);
}

// An unknown capability name is refused at create with the name in the message, and no
// state is left behind.
#[test]
fn unknown_capability_name_is_refused_at_create() {
    for set in ["bounding", "effective", "ambient"] {
        let mut b = Bundle::new(&["true"]);
        b.config["process"]["capabilities"][set] = json!(["CAP_KILL", "CAP_BOGUS_THING"]);
        let (code, out, err) = b.run("badcap");
        assert_ne!(code, 0, "{set}: {out}");
        assert!(err.contains("CAP_BOGUS_THING"), "{set}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{set}: not one line: {err}");
        assert!(fs::read_dir(&b.root).map(|d| d.count() == 0).unwrap_or(true), "{set}: state left");
    }
}

/// A tiny static program that prints its effective uid. busybox cannot show a setuid
/// escalation: it drops a setuid bit for every applet itself.
const EUID_C: &str = "#include <stdio.h>\n#include <unistd.h>\n\
    int main(void) { printf(\"%d\\n\", (int)geteuid()); return 0; }\n";

/// A bundle for uid 1000 with /suid-euid, a setuid-root program printing its effective uid.
fn setuid_bundle(no_new_privileges: bool) -> Bundle {
    let mut b = Bundle::new(&[]);
    let src = b.tmp.path().join("euid.c");
    fs::write(&src, EUID_C).unwrap();
    let exe = b.dir.join("rootfs/suid-euid");
    let out = std::process::Command::new("cc")
        .args(["-static", "-O", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("cc (Debian: build-essential) builds the setuid probe");
    assert!(out.status.success(), "cc: {}", String::from_utf8_lossy(&out.stderr));
    std::os::unix::fs::chown(&exe, Some(0), Some(0)).unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o4755)).unwrap();
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let set = ["CAP_SETUID", "CAP_SETGID", "CAP_KILL"];
    b.config["process"]["capabilities"] = caps(&set, &[], &[], &[]);
    b.config["process"]["noNewPrivileges"] = json!(no_new_privileges);
    b
}

// Without no_new_privileges a setuid-root binary raises the effective uid to 0; with it the
// setuid bit is ignored and the uid stays 1000.
#[test]
fn no_new_privileges_stops_setuid_escalation() {
    let mut b = setuid_bundle(false);
    assert_eq!(b.sh("id -u; /suid-euid"), "1000\n0\n");
    let mut b = setuid_bundle(true);
    let out = b.sh("grep NoNewPrivs /proc/self/status | tr -d '\\t'; /suid-euid");
    assert_eq!(out, "NoNewPrivs:1\n1000\n");
}

// rlimits land as asked: soft and hard, read back from the kernel's /proc/self/limits.
#[test]
fn rlimits_are_set_and_read_back() {
    let mut b = Bundle::new(&[]);
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_STACK", "soft": 4194304, "hard": 8388608},
        {"type": "RLIMIT_MEMLOCK", "soft": 65536, "hard": 65536}
    ]);
    let out = b.sh("cat /proc/self/limits");
    let row = |name: &str| -> (String, String) {
        let line = out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{out}"));
        let f: Vec<&str> = line[name.len()..].split_whitespace().collect();
        (f[0].to_owned(), f[1].to_owned())
    };
    assert_eq!(row("Max open files"), ("512".into(), "1024".into()));
    assert_eq!(row("Max processes"), ("300".into(), "400".into()));
    assert_eq!(row("Max core file size"), ("0".into(), "0".into()));
    assert_eq!(row("Max stack size"), ("4194304".into(), "8388608".into()));
    assert_eq!(row("Max locked memory"), ("65536".into(), "65536".into()));
}

// An unknown rlimit type is refused at create, naming it.
#[test]
fn unknown_rlimit_is_refused_at_create() {
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]);
    let (code, _, err) = b.run("badrl");
    assert_ne!(code, 0);
    assert!(err.contains("RLIMIT_BOGUS"), "{err}");
}
