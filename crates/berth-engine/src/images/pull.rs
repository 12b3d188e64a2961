//! Pulling and pushing images through berth-image's registry client.

#[derive(Debug, thiserror::Error)]
pub enum PullError {}
