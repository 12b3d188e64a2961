//! The id maps of a rootless container's user namespace, from /etc/subuid and /etc/subgid.
//!
//! Container root is the user's own id; container ids 1 and up are the user's subordinate
//! ranges, in the order the files list them (newuidmap(1) accepts exactly those). A user with
//! no ranges gets a clear error with the fix, since without them only one id exists in the
//! container and most images cannot even unpack.

use std::fs;
use std::path::{Path, PathBuf};

use super::generate::IdMap;
use super::SpecError;

/// The file of subordinate uids.
pub const SUBUID: &str = "/etc/subuid";
/// The file of subordinate gids.
pub const SUBGID: &str = "/etc/subgid";

/// Internal overrides of [`SUBUID`] and [`SUBGID`], so tests can show what a user without
/// ranges sees without a second test user. newuidmap(1) still checks the real files, so this
/// cannot widen what a user may map.
pub const SUBUID_OVERRIDE: &str = "_BERTH_SUBUID_FILE";
/// See [`SUBUID_OVERRIDE`].
pub const SUBGID_OVERRIDE: &str = "_BERTH_SUBGID_FILE";

/// The subordinate uid and gid files in use: the real ones unless overridden.
pub fn subid_files() -> (PathBuf, PathBuf) {
    let pick = |var: &str, default: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map_or_else(|| default.into(), PathBuf::from)
    };
    (pick(SUBUID_OVERRIDE, SUBUID), pick(SUBGID_OVERRIDE, SUBGID))
}

/// The ranges `name:start:count` (or `uid:start:count`) of `text` that belong to the user.
pub fn ranges(text: &str, name: &str, id: u32) -> Vec<(u32, u32)> {
    let id = id.to_string();
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let owner = fields.next()?;
            let start = fields.next()?.parse().ok()?;
            let count: u32 = fields.next()?.parse().ok()?;
            (owner == name || owner == id).then_some((start, count)).filter(|(_, c)| *c > 0)
        })
        .collect()
}

/// The maps for user `name` (`id` on the host) from one subordinate-id file's text.
pub fn maps(text: &str, file: &Path, name: &str, id: u32) -> Result<Vec<IdMap>, SpecError> {
    let ranges = ranges(text, name, id);
    if ranges.is_empty() {
        return Err(SpecError::NoSubordinateIds { user: name.to_owned(), file: file.to_owned() });
    }
    let mut out = vec![IdMap { container_id: 0, host_id: id, size: 1 }];
    let mut next = 1u32;
    for (start, count) in ranges {
        out.push(IdMap { container_id: next, host_id: start, size: count });
        next = next.saturating_add(count);
    }
    Ok(out)
}

/// The uid and gid maps of user `name` (uid `uid`, primary gid `gid`) from the files of
/// [`subid_files`].
pub fn rootless_maps(
    name: &str,
    uid: u32,
    gid: u32,
) -> Result<(Vec<IdMap>, Vec<IdMap>), SpecError> {
    let read = |path: &Path| {
        fs::read_to_string(path).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(String::new()),
            _ => Err(SpecError::ReadHostFile { path: path.into(), source: e }),
        })
    };
    let (subuid, subgid) = subid_files();
    let uids = maps(&read(&subuid)?, &subuid, name, uid)?;
    let gids = maps(&read(&subgid)?, &subgid, name, gid)?;
    Ok((uids, gids))
}

/// Whether berth is rootless, and the uid and gid maps of a container's own user namespace.
/// Real root has none. Inside berth's per-user namespace there are none either: the container
/// shares that namespace, as Podman's rootless containers share theirs, so container root is
/// the user's own uid and ids 1 and up are the subordinate ranges already. Outside it (an
/// unprivileged caller that has not joined) the maps come from the subordinate-id files, for
/// user `name_of(uid)`.
pub fn host_maps(
    name_of: impl FnOnce(u32) -> Result<String, SpecError>,
) -> Result<(bool, Vec<IdMap>, Vec<IdMap>), SpecError> {
    let ids = crate::userns::host_ids();
    if !ids.rootless() || ids.in_user_namespace {
        return Ok((ids.rootless(), Vec::new(), Vec::new()));
    }
    let (uids, gids) = rootless_maps(&name_of(ids.uid)?, ids.uid, ids.gid)?;
    Ok((true, uids, gids))
}

/// The most RLIMIT_NPROC a container gets by default: rootless, Podman lowers it to the
/// kernel's pid_max (containers-common's default process limits), which `hard` then bounds.
pub fn rootless_nproc(rootless: bool, hard: u64) -> u64 {
    if !rootless {
        return hard;
    }
    let pid_max = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    pid_max.map_or(hard, |max| max.min(hard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_the_users_own_entries_in_order() {
        let text = "alice:100000:65536\n# bob:1:1\nbob:300000:1000\n1500:500000:10\nbob:400000:5\n";
        let m = maps(text, Path::new(SUBUID), "bob", 1500).unwrap();
        assert_eq!(
            m,
            [
                IdMap { container_id: 0, host_id: 1500, size: 1 },
                IdMap { container_id: 1, host_id: 300_000, size: 1000 },
                IdMap { container_id: 1001, host_id: 500_000, size: 10 },
                IdMap { container_id: 1011, host_id: 400_000, size: 5 },
            ]
        );
    }

    #[test]
    fn a_user_without_ranges_gets_the_fix() {
        let err = maps("alice:100000:65536\n", Path::new(SUBUID), "carol", 1600).unwrap_err();
        assert_eq!(
            err.to_string(),
            "user carol has no subordinate ids in /etc/subuid: add a range, e.g. \
             `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 carol`"
        );
    }

    // Rootless containers get at most the kernel's pid_max processes by default, as Podman's.
    #[test]
    fn rootless_nproc_is_capped_at_pid_max() {
        let pid_max: u64 =
            fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap();
        assert_eq!(rootless_nproc(true, u64::MAX), pid_max);
        assert_eq!(rootless_nproc(true, 100), 100);
        assert_eq!(rootless_nproc(false, u64::MAX), u64::MAX);
    }

    // The test user made by the testkit has ranges in the real files; berth reads them.
    #[test]
    fn the_test_users_real_ranges() {
        let user = berth_testkit::user::TestUser::get();
        let (uids, gids) =
            rootless_maps(berth_testkit::user::NAME, user.uid(), user.gid()).unwrap();
        assert_eq!(uids[0], IdMap { container_id: 0, host_id: user.uid(), size: 1 });
        assert_eq!((uids[1].host_id, uids[1].size), (user.subuid().start, user.subuid().count));
        assert_eq!(gids[0].host_id, user.gid());
        assert_eq!((gids[1].host_id, gids[1].size), (user.subgid().start, user.subgid().count));
    }
}
