//! berth-build turns a Dockerfile or Containerfile and its context into an OCI image: parsing,
//! the stage graph, the build cache, running each step through berth-engine and committing
//! its change as a layer.
//!
//! What stands on its own is here today: the parser ([`dockerfile`]), variable expansion and
//! ARG scoping ([`expand`], [`args`]), `.dockerignore` matching and the hashed context
//! ([`ignore`], [`context`]), the stage graph ([`graph`]) and the cache key ([`cache`]).

pub mod args;
pub mod cache;
pub mod config;
pub mod context;
pub mod dockerfile;
pub mod expand;
pub mod graph;
pub mod ignore;
pub mod plan;
