//! `-u USER[:GROUP]` and `--group-add`, resolved against the image's /etc/passwd and
//! /etc/group by the rules of runc's user lookup that Docker and Podman share:
//!
//! - USER is a name or a uid. A name must exist in /etc/passwd; a uid need not, and then
//!   the primary group is 0 and HOME is `/`. No USER means root.
//! - GROUP, when given, is a name (which must exist in /etc/group) or a gid, and replaces the
//!   passwd entry's primary group. When GROUP is not given and the user was found by name or
//!   uid, the groups of /etc/group that list the user's name become supplementary groups.
//! - The additional gids, as Podman writes them, are the primary gid (unless it is 0), then
//!   those supplementary groups, then each `--group-add`.
//!
//! The files are read from the container's root through openat2(RESOLVE_IN_ROOT), so an image
//! whose /etc/passwd is a symlink to an absolute path reads its own file system, never the
//! host's.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};

use super::SpecError;

/// Image files larger than this are refused (they come from the image, which may be hostile).
const MAX_FILE: u64 = 16 << 20;

/// The process user of the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// From the passwd entry; `/` when there is none.
    pub home: String,
    /// The name, when the user was found in /etc/passwd.
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Reads `relative` (e.g. `etc/passwd`) inside `root`; a missing file reads as empty.
pub fn read_in_root(root: &Path, relative: &str) -> Result<String, SpecError> {
    let shown = format!("/{relative}");
    let err = |source: std::io::Error| SpecError::ReadImageFile { path: shown.clone(), source };
    let root_fd: OwnedFd =
        rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| err(e.into()))?;
    let fd = match openat2(
        &root_fd,
        relative,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(String::new()),
        Err(e) => return Err(err(e.into())),
    };
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    (&mut file).take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(err)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(err(std::io::Error::other("larger than 16 MiB")));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(PasswdEntry {
                name: fields.first()?.to_string(),
                uid: fields.get(2)?.parse().ok()?,
                gid: fields.get(3)?.parse().ok()?,
                home: fields.get(5).map(|h| h.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(GroupEntry {
                name: fields.first()?.to_string(),
                gid: fields.get(2)?.parse().ok()?,
                members: fields
                    .get(3)
                    .map(|m| m.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `spec` (`-u`, or the image's User; empty means root) and `group_add` in the root
/// file system `rootfs`.
pub fn resolve(rootfs: &Path, spec: &str, group_add: &[String]) -> Result<ResolvedUser, SpecError> {
    let passwd = parse_passwd(&read_in_root(rootfs, "etc/passwd")?);
    let groups = parse_group(&read_in_root(rootfs, "etc/group")?);
    resolve_with(&passwd, &groups, spec, group_add)
}

fn resolve_with(
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
    spec: &str,
    group_add: &[String],
) -> Result<ResolvedUser, SpecError> {
    let bad =
        |reason: &str| SpecError::BadUser { spec: spec.to_owned(), reason: reason.to_owned() };
    let (user_part, group_part) = match spec.split_once(':') {
        Some((_, "")) => return Err(bad("the group after ':' is empty")),
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    if group_part.is_some_and(|g| g.contains(':')) {
        return Err(bad("expected USER[:GROUP]"));
    }
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let numeric_uid = user_part.parse::<u32>().ok();
    let entry = match numeric_uid {
        Some(uid) => passwd.iter().find(|e| e.uid == uid),
        None => Some(
            passwd
                .iter()
                .find(|e| e.name == user_part)
                .ok_or_else(|| SpecError::UserNotFound { user: user_part.to_owned() })?,
        ),
    };
    let mut user = match entry {
        Some(e) => ResolvedUser {
            uid: e.uid,
            gid: e.gid,
            additional_gids: Vec::new(),
            home: if e.home.is_empty() { "/".to_owned() } else { e.home.clone() },
            name: Some(e.name.clone()),
        },
        None => ResolvedUser {
            uid: numeric_uid.expect("only a numeric user can lack an entry"),
            gid: 0,
            additional_gids: Vec::new(),
            home: "/".to_owned(),
            name: None,
        },
    };

    let lookup_group = |text: &str| -> Result<u32, SpecError> {
        if let Ok(gid) = text.parse::<u32>() {
            return Ok(gid);
        }
        groups
            .iter()
            .find(|g| g.name == text)
            .map(|g| g.gid)
            .ok_or_else(|| SpecError::GroupNotFound { group: text.to_owned() })
    };
    let mut supplementary = Vec::new();
    match group_part {
        Some(group) => user.gid = lookup_group(group)?,
        None => {
            if let Some(name) = &user.name {
                supplementary
                    .extend(groups.iter().filter(|g| g.members.contains(name)).map(|g| g.gid));
            }
        }
    }

    let mut additional = Vec::new();
    let mut push = |gid: u32| {
        if !additional.contains(&gid) {
            additional.push(gid);
        }
    };
    if user.gid != 0 {
        push(user.gid);
    }
    for gid in supplementary {
        push(gid);
    }
    for group in group_add {
        if group == "keep-groups" {
            return Err(SpecError::NotSupportedYet { what: "--group-add keep-groups".to_owned() });
        }
        push(lookup_group(group)?);
    }
    user.additional_gids = additional;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &str =
        "root:x:0:\nwheel:x:10:root\nuser:x:1000:\nstaff:x:50:user,root\nnogroup:x:65534:\n";

    fn resolve_text(spec: &str, add: &[&str]) -> Result<ResolvedUser, SpecError> {
        let add: Vec<String> = add.iter().map(|s| s.to_string()).collect();
        resolve_with(&parse_passwd(PASSWD), &parse_group(GROUP), spec, &add)
    }

    #[test]
    fn root_by_default_with_its_member_groups() {
        let u = resolve_text("", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert_eq!(u.additional_gids, [10, 50]);
    }

    #[test]
    fn names_uids_and_groups() {
        let u = resolve_text("user", &[]).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone(), u.home.as_str()),
            (1000, 1000, vec![1000, 50], "/home/user")
        );
        let u = resolve_text("1000", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000), "a uid with an entry takes the entry's group");
        // An explicit group replaces the primary group and drops the member groups.
        let u = resolve_text("user:wheel", &["65534"]).unwrap();
        assert_eq!((u.gid, u.additional_gids.clone()), (10, vec![10, 65534]));
        let u = resolve_text("4242:4343", &["nogroup"]).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone(), u.home.as_str()),
            (4242, 4343, vec![4343, 65534], "/")
        );
        let u = resolve_text("4242", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.name.clone()), (4242, 0, None));
    }

    #[test]
    fn missing_users_and_groups_are_named() {
        assert_eq!(
            resolve_text("bob", &[]).unwrap_err().to_string(),
            "unable to find user bob: no matching entries in the image's /etc/passwd"
        );
        assert_eq!(
            resolve_text("user:nosuch", &[]).unwrap_err().to_string(),
            "unable to find group nosuch: no matching entries in the image's /etc/group"
        );
        assert!(matches!(resolve_text("root", &["ghosts"]), Err(SpecError::GroupNotFound { .. })));
        assert!(matches!(resolve_text("user:", &[]), Err(SpecError::BadUser { .. })));
    }

    // An image's absolute symlink must resolve inside the image, not on the host.
    #[test]
    fn files_are_read_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::create_dir_all(root.path().join("real")).unwrap();
        std::fs::write(root.path().join("real/passwd"), "app:x:7:7::/app:/bin/sh\n").unwrap();
        // On the host, /real/passwd does not exist; inside the root it does.
        symlink("/real/passwd", root.path().join("etc/passwd")).unwrap();
        let u = resolve(root.path(), "app", &[]).unwrap();
        assert_eq!((u.uid, u.home.as_str()), (7, "/app"));
        // /etc/group is a symlink climbing out of the root to /etc/passwd, which on the host
        // has a line for "root": clamped to the root, it reads the image's passwd instead.
        symlink("/../../../etc/passwd", root.path().join("etc/group")).unwrap();
        assert!(matches!(
            resolve(root.path(), "app:root", &[]),
            Err(SpecError::GroupNotFound { .. })
        ));
        // No /etc/passwd at all: numeric users still work.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(resolve(empty.path(), "123", &[]).unwrap().uid, 123);
        assert!(matches!(resolve(empty.path(), "app", &[]), Err(SpecError::UserNotFound { .. })));
    }
}
