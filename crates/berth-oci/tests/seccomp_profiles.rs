//! seccomp through berth-oci, seen from inside busybox containers: a kill action ends the
//! process with SIGSYS, an argument filter tells two values of one argument apart, and the
//! host's default profile (containers-common's /usr/share/containers/seccomp.json, resolved
//! for a set of capabilities as the engine resolves it) refuses what those capabilities do not
//! cover.

mod common;

use common::Bundle;
use serde_json::json;

// SCMP_ACT_KILL_PROCESS on sync (what busybox sync calls, and sh does not): the process dies
// of SIGSYS (exit 128 + 31 through run), while a shell that only forks the killed command
// carries on.
#[test]
fn kill_action_ends_the_process_with_sigsys() {
    let rule = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS"}]
    });
    let mut b = Bundle::new(&["sync"]);
    b.config["linux"]["seccomp"] = rule.clone();
    let (code, out, err) = b.run(&format!("kill-{}", std::process::id()));
    assert_eq!(code, 128 + libc::SIGSYS, "stdout {out:?} stderr {err:?}");
    let mut b = Bundle::new(&[]);
    b.config["linux"]["seccomp"] = rule;
    assert_eq!(b.sh("sync; echo status=$?"), "status=159\n");
}

// An argument filter: chmod to mode 0777 gets EPERM, chmod to 0700 goes through. Both chmod
// and fchmodat carry the rule, at their mode argument.
#[test]
fn argument_filter_denies_one_mode_and_allows_another() {
    let mut b = Bundle::new(&[]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "args": [{"index": 1, "value": 0o777, "op": "SCMP_CMP_EQ"}]},
            {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "args": [{"index": 2, "value": 0o777, "op": "SCMP_CMP_EQ"}]}
        ]
    });
    let out = b.sh("touch /tmp/f; chmod 777 /tmp/f 2>&1; chmod 700 /tmp/f && stat -c %a /tmp/f");
    assert_eq!(out, "chmod: /tmp/f: Operation not permitted\n700\n");
}

const PODMAN_CAPS: [&str; 11] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// `script` in a container that holds CAP_SYS_ADMIN besides Podman's defaults, under the
/// host's default profile resolved for `profile_caps`.
fn under_default_profile(profile_caps: &[String], script: &str) -> String {
    let mut caps: Vec<String> = PODMAN_CAPS.map(String::from).to_vec();
    caps.push("CAP_SYS_ADMIN".into());
    let profile = berth_runtime::seccomp::Profile::host_default().unwrap().resolve(profile_caps);
    let mut b = Bundle::new(&[]);
    b.config["linux"]["seccomp"] = serde_json::to_value(&profile).unwrap();
    b.config["process"]["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": []
    });
    b.sh(script)
}

// The host's default profile (containers-common's file, else berth's built-in equivalent)
// decides by the capabilities it is resolved for, not only by what the process holds:
// resolved for Podman's defaults it refuses sethostname even to a process with CAP_SYS_ADMIN,
// resolved with CAP_SYS_ADMIN it lets it through. The filter is loaded (Seccomp: 2). mount
// is one of the syscalls containers-common 0.50.1 allows to everyone (the capability is what
// guards it), so it succeeds here in both cases.
#[test]
fn default_profile_rules_follow_the_capabilities_it_is_resolved_for() {
    let script = "hostname berth-x 2>&1; hostname; mount -t tmpfs none /tmp 2>&1 && echo mounted; \
                  grep ^Seccomp: /proc/self/status | tr -d '\\t'";
    let defaults: Vec<String> = PODMAN_CAPS.map(String::from).to_vec();
    let out = under_default_profile(&defaults, script);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    assert!(lines[0].ends_with("Operation not permitted"), "sethostname went through: {out}");
    assert_ne!(lines[1], "berth-x");
    assert_eq!(&lines[2..], ["mounted", "Seccomp:2"]);

    let mut with_admin = defaults;
    with_admin.push("CAP_SYS_ADMIN".into());
    let out = under_default_profile(&with_admin, script);
    assert_eq!(out, "berth-x\nmounted\nSeccomp:2\n");
}
