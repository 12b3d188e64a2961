//! Capabilities: names, Podman's default set, and `--cap-add`/`--cap-drop` merged the way
//! Podman merges them.
//!
//! Names are accepted in any case, with or without the `CAP_` prefix. `ALL` in `--cap-add`
//! starts from every capability berth itself may pass on ([`kernel_caps`]); `ALL` in
//! `--cap-drop` starts from none, and then only the added ones are granted. Adding and dropping
//! the same capability, or ALL and ALL, is an error rather than a guess.

use std::collections::BTreeSet;
use std::str::FromStr;

use oci_spec::runtime::{Capabilities, Capability};

use super::SpecError;

/// Every capability by number (capabilities(7)).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",              // 0
    "CAP_DAC_OVERRIDE",       // 1
    "CAP_DAC_READ_SEARCH",    // 2
    "CAP_FOWNER",             // 3
    "CAP_FSETID",             // 4
    "CAP_KILL",               // 5
    "CAP_SETGID",             // 6
    "CAP_SETUID",             // 7
    "CAP_SETPCAP",            // 8
    "CAP_LINUX_IMMUTABLE",    // 9
    "CAP_NET_BIND_SERVICE",   // 10
    "CAP_NET_BROADCAST",      // 11
    "CAP_NET_ADMIN",          // 12
    "CAP_NET_RAW",            // 13
    "CAP_IPC_LOCK",           // 14
    "CAP_IPC_OWNER",          // 15
    "CAP_SYS_MODULE",         // 16
    "CAP_SYS_RAWIO",          // 17
    "CAP_SYS_CHROOT",         // 18
    "CAP_SYS_PTRACE",         // 19
    "CAP_SYS_PACCT",          // 20
    "CAP_SYS_ADMIN",          // 21
    "CAP_SYS_BOOT",           // 22
    "CAP_SYS_NICE",           // 23
    "CAP_SYS_RESOURCE",       // 24
    "CAP_SYS_TIME",           // 25
    "CAP_SYS_TTY_CONFIG",     // 26
    "CAP_MKNOD",              // 27
    "CAP_LEASE",              // 28
    "CAP_AUDIT_WRITE",        // 29
    "CAP_AUDIT_CONTROL",      // 30
    "CAP_SETFCAP",            // 31
    "CAP_MAC_OVERRIDE",       // 32
    "CAP_MAC_ADMIN",          // 33
    "CAP_SYSLOG",             // 34
    "CAP_WAKE_ALARM",         // 35
    "CAP_BLOCK_SUSPEND",      // 36
    "CAP_AUDIT_READ",         // 37
    "CAP_PERFMON",            // 38
    "CAP_BPF",                // 39
    "CAP_CHECKPOINT_RESTORE", // 40
];

/// Podman's default capabilities (containers.conf `default_capabilities`).
pub const DEFAULT_CAPS: &[&str] = &[
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

/// What `ALL` means: the capabilities in berth's own bounding set (/proc/self/status
/// `CapBnd`), as Podman takes it — a container can never hold one its engine could not pass
/// on (this VM, for one, has CAP_SYS_RESOURCE out of every bounding set). Falls back on
/// everything up to /proc/sys/kernel/cap_last_cap.
pub fn kernel_caps() -> Vec<&'static str> {
    let bounding = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
        let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?.trim().to_owned();
        u64::from_str_radix(&hex, 16).ok()
    });
    if let Some(mask) = bounding {
        return ALL_CAPS
            .iter()
            .enumerate()
            .filter(|(bit, _)| mask & (1 << bit) != 0)
            .map(|(_, c)| *c)
            .collect();
    }
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(ALL_CAPS.len() - 1);
    ALL_CAPS[..=last.min(ALL_CAPS.len() - 1)].to_vec()
}

/// `chown`, `CAP_CHOWN`, `Cap_Chown` → `CAP_CHOWN`; `all` → `ALL`; unknown → error.
pub fn normalize(name: &str) -> Result<String, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SpecError::UnknownCapability { name: name.to_owned() })
    }
}

/// The bounding set: `base` with `add` and `drop` applied.
pub fn merge(
    base: &[&str],
    add: &[String],
    drop: &[String],
) -> Result<BTreeSet<String>, SpecError> {
    let add: Vec<String> = add.iter().map(|c| normalize(c)).collect::<Result<_, _>>()?;
    let drop: Vec<String> = drop.iter().map(|c| normalize(c)).collect::<Result<_, _>>()?;
    let add_all = add.iter().any(|c| c == "ALL");
    let drop_all = drop.iter().any(|c| c == "ALL");
    if add_all && drop_all {
        return Err(SpecError::CapabilityAllAndAll);
    }
    for cap in &add {
        if cap != "ALL" && drop.contains(cap) {
            return Err(SpecError::CapabilityAddedAndDropped { name: cap.clone() });
        }
    }
    let mut set: BTreeSet<String> = if add_all {
        kernel_caps().into_iter().map(str::to_owned).collect()
    } else if drop_all {
        BTreeSet::new()
    } else {
        base.iter().map(|c| c.to_string()).collect()
    };
    set.extend(add.into_iter().filter(|c| c != "ALL"));
    for cap in drop.iter().filter(|c| *c != "ALL") {
        set.remove(cap);
    }
    Ok(set)
}

/// The explicitly added capabilities (what a non-root user gets in its effective set).
pub fn added(add: &[String]) -> Result<BTreeSet<String>, SpecError> {
    let mut out = BTreeSet::new();
    for cap in add {
        match normalize(cap)?.as_str() {
            "ALL" => out.extend(kernel_caps().into_iter().map(str::to_owned)),
            other => {
                out.insert(other.to_owned());
            }
        }
    }
    Ok(out)
}

/// oci-spec's set from `CAP_*` names.
pub fn to_oci(names: &BTreeSet<String>) -> Result<Capabilities, SpecError> {
    names
        .iter()
        .map(|name| {
            let bare = name.strip_prefix("CAP_").unwrap_or(name);
            Capability::from_str(bare)
                .map_err(|_| SpecError::UnknownCapability { name: name.clone() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_known_name_converts_to_oci() {
        let all: BTreeSet<String> = ALL_CAPS.iter().map(|s| s.to_string()).collect();
        assert_eq!(to_oci(&all).unwrap().len(), ALL_CAPS.len());
    }

    #[test]
    fn merging_follows_podman() {
        let defaults = merge(DEFAULT_CAPS, &[], &[]).unwrap();
        assert_eq!(defaults.len(), 11);
        let m = merge(DEFAULT_CAPS, &strings(&["net_admin"]), &strings(&["CAP_CHOWN", "kill"]))
            .unwrap();
        assert!(m.contains("CAP_NET_ADMIN") && !m.contains("CAP_CHOWN") && !m.contains("CAP_KILL"));
        assert_eq!(m.len(), 10);
        assert!(merge(DEFAULT_CAPS, &[], &strings(&["ALL"])).unwrap().is_empty());
        assert_eq!(
            merge(DEFAULT_CAPS, &strings(&["chown"]), &strings(&["all"])).unwrap(),
            BTreeSet::from(["CAP_CHOWN".to_owned()])
        );
        let all_but_raw = merge(DEFAULT_CAPS, &strings(&["ALL"]), &strings(&["NET_RAW"])).unwrap();
        assert_eq!(all_but_raw.len(), kernel_caps().len() - 1);
        assert!(!all_but_raw.contains("CAP_NET_RAW"));
    }

    #[test]
    fn bad_capability_flags() {
        assert_eq!(
            merge(DEFAULT_CAPS, &strings(&["CAP_FLY"]), &[]).unwrap_err().to_string(),
            "unknown capability \"CAP_FLY\""
        );
        assert_eq!(
            merge(DEFAULT_CAPS, &strings(&["chown"]), &strings(&["CAP_CHOWN"]))
                .unwrap_err()
                .to_string(),
            "capability \"CAP_CHOWN\" cannot be both added and dropped"
        );
        assert!(matches!(
            merge(DEFAULT_CAPS, &strings(&["ALL"]), &strings(&["ALL"])),
            Err(SpecError::CapabilityAllAndAll)
        ));
    }
}
