//! berth-engine is the one service layer of berth, as libpod is for Podman: containers, pods,
//! volumes and networks; the state database; runtime-spec generation from an image config and
//! the user's options; the per-container monitor; logs, stats, healthchecks and restart policy.
//!
//! The command line (and later an API socket) are faces over this crate and never reach past
//! it into storage, the registry client or the runtime.

pub mod build_steps;
pub mod images;
pub mod network;

pub mod container_fs;
pub mod containers;
pub mod context;
pub mod events;
pub mod init;
pub mod monitor;
pub mod spec;
pub mod state;
pub mod stats;
pub mod userns;
pub mod volumes;
