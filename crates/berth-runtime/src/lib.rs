//! berth-runtime turns an OCI runtime-spec bundle (config.json and a root file system) into a
//! running, isolated process: namespaces, user-id maps, the root file system and its mounts,
//! pivot_root, devices, cgroups, capabilities, seccomp, rlimits, hooks, the console, exec,
//! kill and the on-disk state of each container.
//!
//! The crate is synchronous on purpose: fork, clone and setns do not mix with an async
//! executor. berth-oci exposes it with runc's command line; berth-engine calls it in-process.

pub mod cgroups;
pub mod seccomp;
