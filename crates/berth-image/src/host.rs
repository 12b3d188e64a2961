//! Who berth runs for on the host. Inside berth's per-user user namespace the effective uid
//! is 0, yet the configuration that applies (registries.conf, certs.d, the short-name alias
//! cache) is the unprivileged user's, as Podman keeps using the rootless user's files after
//! it has joined its namespace. The host uid comes from /proc/self/uid_map.

use std::fs;

/// The host uid of this process: its effective uid mapped through /proc/self/uid_map (the
/// effective uid itself in the initial user namespace, or when the map cannot be read).
pub fn uid() -> u32 {
    let euid = rustix::process::geteuid().as_raw();
    let map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    map_to_host(&map, euid).unwrap_or(euid)
}

/// berth runs for an unprivileged user, whether or not it has joined a user namespace.
pub fn rootless() -> bool {
    uid() != 0
}

/// Maps `id` through the text of a uid_map (`inside outside count` lines).
fn map_to_host(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|line| {
        let mut fields = line.split_whitespace().map(|v| v.parse::<u64>().ok());
        let (inside, outside, count) = (fields.next()??, fields.next()??, fields.next()??);
        let id = u64::from(id);
        if id >= inside && id < inside + count {
            u32::try_from(outside + id - inside).ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_through_the_uid_map() {
        assert_eq!(map_to_host("0 0 4294967295\n", 0), Some(0));
        let rootless = "         0       1000          1\n         1     100000      65536\n";
        assert_eq!(map_to_host(rootless, 0), Some(1000));
        assert_eq!(map_to_host(rootless, 1000), Some(100_999));
        assert_eq!(map_to_host(rootless, 70_000), None);
        assert_eq!(map_to_host("", 5), None);
    }
}
