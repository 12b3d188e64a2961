//! berth-storage owns unpacked layers keyed by chain id, layer diffs (tar streams with OCI
//! whiteouts), container layers, the mount drivers (native overlay, rootless overlay,
//! fuse-overlayfs) and garbage collection of all of them.
//!
//! It reads layer blobs that berth-image verified and knows nothing of registries or processes.

pub mod container;
pub mod diff;
pub mod layers;
pub mod mount;
#[cfg(test)]
mod test_support;
pub mod unpack;

pub use container::{ContainerLayer, ContainerLayerError, ContainerLayers};
pub use layers::{LayerInfo, LayerStore, StagedLayer};
pub use mount::{
    mount_overlay, mount_overlay_as, unmount, Driver, Durability, MountError, Overlay,
};
pub use unpack::{apply_layer, UnpackOptions, Whiteouts};
