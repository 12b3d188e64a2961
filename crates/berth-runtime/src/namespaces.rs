//! Namespaces (runtime spec, Linux "Namespaces" and "User namespace mappings"): which to make,
//! which to join, and the user namespace's id maps.
//!
//! Maps are written by the runtime, outside the new namespace, as user_namespaces(7) requires.
//! Root writes /proc/PID/uid_map and gid_map directly. An unprivileged caller may write only a
//! single line mapping its own ids, after denying setgroups; anything wider goes through the
//! setuid helpers newuidmap and newgidmap (Debian's uidmap), which check /etc/subuid and
//! /etc/subgid and leave setgroups allowed.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::process::Command;

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::spec::{ns_flag, ns_name};
use crate::sys;

/// What went wrong with a namespace or an id map.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("opening the {typ} namespace {path}: {source}")]
    Open {
        typ: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {path}: {source}")]
    WriteMap {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("running {helper}: {source}")]
    Helper {
        helper: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{helper} {args}: {stderr}")]
    HelperFailed { helper: &'static str, args: String, stderr: String },
}

/// The namespace plan for one container.
#[derive(Debug, Default)]
pub struct Plan {
    /// CLONE_NEW* flags of the namespaces to make, without CLONE_NEWUSER.
    pub new_flags: libc::c_int,
    /// Whether a new user namespace is made.
    pub new_user: bool,
    /// Namespaces to join, opened before any change: (type, CLONE_NEW* flag, fd).
    pub join: Vec<(LinuxNamespaceType, libc::c_int, File)>,
}

impl Plan {
    /// Opens every join path; namespaces not listed are shared with the runtime.
    pub fn from_spec(spec: &Spec) -> Result<Plan, NamespaceError> {
        let mut plan = Plan::default();
        let list = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
        for ns in list {
            let flag = ns_flag(ns.typ());
            match ns.path() {
                Some(path) => {
                    let file = File::open(path).map_err(|source| NamespaceError::Open {
                        typ: ns_name(ns.typ()),
                        path: path.clone(),
                        source,
                    })?;
                    plan.join.push((ns.typ(), flag, file));
                }
                None if ns.typ() == LinuxNamespaceType::User => plan.new_user = true,
                None => plan.new_flags |= flag,
            }
        }
        // The user namespace is joined first so that joining the others is checked against
        // it, the mount namespace last because it changes the paths of everything after it.
        plan.join.sort_by_key(|(t, _, _)| match t {
            LinuxNamespaceType::User => 0,
            LinuxNamespaceType::Mount => 2,
            _ => 1,
        });
        Ok(plan)
    }

    pub fn has(&self, typ: LinuxNamespaceType) -> bool {
        self.new_flags & ns_flag(typ) != 0
            || (typ == LinuxNamespaceType::User && self.new_user)
            || self.join.iter().any(|(t, _, _)| *t == typ)
    }

    pub fn joins(&self, typ: LinuxNamespaceType) -> bool {
        self.join.iter().any(|(t, _, _)| *t == typ)
    }

    /// The CLONE_NEW* flags with which one clone3 can make the init, as pid 1 of its new pid
    /// namespace, where that is all a two-stage start would do between its fork and the
    /// init's: `None` with a user namespace (made or joined first, its ids mapped by the
    /// runtime in between), a joined pid namespace, a time namespace (its offsets are set
    /// before its first process) or no new pid namespace (the first stage is the init then,
    /// one process either way). The cgroup namespace is not among them: the init makes it
    /// once it is in its cgroup.
    pub fn direct_flags(&self) -> Option<u64> {
        let blocked = self.new_user
            || self.joins(LinuxNamespaceType::User)
            || self.joins(LinuxNamespaceType::Pid)
            || self.new_flags & libc::CLONE_NEWTIME != 0
            || !self.has(LinuxNamespaceType::Pid);
        (!blocked).then_some((self.new_flags & !libc::CLONE_NEWCGROUP) as u32 as u64)
    }
}

/// How the id maps of a new user namespace get written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapMethod {
    /// Root, or an unprivileged user's single self-map after denying setgroups.
    Direct { deny_setgroups: bool },
    /// newuidmap and newgidmap.
    Helpers,
}

impl MapMethod {
    /// The method the calling process can use for these maps.
    pub fn choose(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> MapMethod {
        if sys::geteuid() == 0 {
            return MapMethod::Direct { deny_setgroups: false };
        }
        let own = |m: &[LinuxIdMapping], id: u32| {
            m.len() == 1 && m[0].host_id() == id && m[0].size() == 1
        };
        if own(uid, sys::geteuid()) && own(gid, sys::getegid()) {
            MapMethod::Direct { deny_setgroups: true }
        } else {
            MapMethod::Helpers
        }
    }

    /// Whether setgroups(2) works in the namespace afterwards.
    pub fn setgroups_allowed(self) -> bool {
        !matches!(self, MapMethod::Direct { deny_setgroups: true })
    }
}

fn map_lines(maps: &[LinuxIdMapping]) -> String {
    maps.iter().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect()
}

/// Writes the id maps of process `pid`'s user namespace.
pub fn write_maps(
    pid: i32,
    uid: &[LinuxIdMapping],
    gid: &[LinuxIdMapping],
    method: MapMethod,
) -> Result<(), NamespaceError> {
    match method {
        MapMethod::Direct { deny_setgroups } => {
            let write = |name: &str, data: &str| {
                let path = PathBuf::from(format!("/proc/{pid}/{name}"));
                std::fs::write(&path, data)
                    .map_err(|source| NamespaceError::WriteMap { path, source })
            };
            if deny_setgroups {
                write("setgroups", "deny")?;
            }
            write("uid_map", &map_lines(uid))?;
            write("gid_map", &map_lines(gid))
        }
        MapMethod::Helpers => {
            helper("newuidmap", pid, uid)?;
            helper("newgidmap", pid, gid)
        }
    }
}

fn helper(name: &'static str, pid: i32, maps: &[LinuxIdMapping]) -> Result<(), NamespaceError> {
    let mut args = vec![pid.to_string()];
    for m in maps {
        args.extend([m.container_id(), m.host_id(), m.size()].map(|v| v.to_string()));
    }
    let out = Command::new(name)
        .args(&args)
        .output()
        .map_err(|source| NamespaceError::Helper { helper: name, source })?;
    if !out.status.success() {
        return Err(NamespaceError::HelperFailed {
            helper: name,
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// The inode of namespace `name` of process `pid`, to tell whether two processes share it.
pub fn ns_inode(pid: &str, name: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{name}")).ok().map(|m| m.ino())
}
