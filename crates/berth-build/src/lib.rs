//! berth-build turns a Dockerfile or Containerfile and its context into an OCI image: parsing,
//! the stage graph, the build cache, running each step through berth-engine and committing
//! its change as a layer.
//!
//! What stands on its own is here today: the parser ([`dockerfile`]), variable expansion and
//! ARG scoping ([`expand`], [`args`], [`plan`]), `.dockerignore` matching and the hashed
//! context ([`ignore`], [`context`]), the stage graph ([`graph`]), the cache key ([`cache`]),
//! the image config and history a stage builds up ([`config`]), COPY and ADD laid out and
//! written as layer tars without a container ([`copy`]), build secrets ([`secrets`]), and
//! [`prepare`], which runs the phases before any work for one build request. [`exec`] runs a
//! prepared build through berth-engine: RUN steps as containers, layers from the cache or
//! made anew, and the committed image.

pub mod args;
pub mod cache;
pub mod config;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod exec;
pub mod expand;
pub mod graph;
pub mod ignore;
pub mod plan;
pub mod prepare;
pub mod secrets;

use std::path::PathBuf;

/// Every error of berth-build, by the module that found it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no Containerfile or Dockerfile in {} (name one with -f)", .0.display())]
    NoDockerfile(PathBuf),
    #[error(transparent)]
    Parse(#[from] dockerfile::ParseError),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error(transparent)]
    Graph(#[from] graph::GraphError),
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
    #[error(transparent)]
    Ignore(#[from] ignore::IgnoreError),
    #[error(transparent)]
    Context(#[from] context::ContextError),
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Copy(#[from] copy::CopyError),
    #[error(transparent)]
    Args(#[from] args::ArgsError),
    #[error(transparent)]
    Expand(#[from] expand::ExpandError),
}
