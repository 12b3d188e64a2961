//! berth-runtime turns an OCI runtime-spec bundle (config.json and a root file system) into a
//! running, isolated process: namespaces, user-id maps, the root file system and its mounts,
//! pivot_root, devices, cgroups, capabilities, seccomp, rlimits, hooks, the console, exec,
//! kill and the on-disk state of each container.
//!
//! The crate is synchronous on purpose: fork, clone and setns do not mix with an async
//! executor. berth-oci exposes it with runc's command line; berth-engine calls it in-process.
//! The process calling [`create::launch`] or [`exec::exec`] must be single-threaded: the child
//! of the fork runs ordinary Rust code until it execs the container's process.
//!
//! One file per operation: [`create`] (create and run), [`start`], [`kill`], [`delete`],
//! [`exec`], [`pause`], [`update`]; the container's side of create is [`init`].

pub mod cgroups;
pub mod console;
pub mod create;
pub mod delete;
pub mod example;
pub mod exec;
pub mod features;
pub mod hooks;
pub mod init;
pub mod kill;
pub mod mounts;
pub mod namespaces;
pub mod pause;
pub mod process;
pub mod seccomp;
pub mod spec;
pub mod start;
pub mod state;
pub mod sync;
pub mod sys;
pub mod update;

/// Every error of the crate, by module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Create(#[from] create::CreateError),
    #[error(transparent)]
    Namespace(#[from] namespaces::NamespaceError),
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    #[error(transparent)]
    Start(#[from] start::StartError),
    #[error(transparent)]
    Kill(#[from] kill::KillError),
    #[error(transparent)]
    Delete(#[from] delete::DeleteError),
    #[error(transparent)]
    Exec(#[from] exec::ExecError),
    #[error(transparent)]
    Pause(#[from] pause::PauseError),
    #[error(transparent)]
    Update(#[from] update::UpdateError),
}
