//! berth-image owns everything about an image that is not a file system: references in the
//! docker/distribution grammar, digests, manifests and indexes, image configs, the
//! content-addressed blob store, archives (oci-dir, oci-archive, docker-archive) and the
//! registry client of the OCI distribution spec.
//!
//! It knows nothing of containers or of unpacked layers; berth-storage turns the blobs kept
//! here into directories.

pub mod archive;
pub mod config;
pub mod digest;
pub mod host;
pub mod manifest;
pub mod platform;
pub mod reference;
pub mod registries_conf;
pub mod registry;
pub mod store;

pub use config::ImageConfig;
pub use digest::Digest;
pub use manifest::{Descriptor, ImageIndex, ImageManifest, Manifest};
pub use platform::Platform;
pub use reference::Reference;
pub use store::BlobStore;
