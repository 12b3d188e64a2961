//! berth-build turns a Dockerfile or Containerfile and its context into an OCI image: parsing,
//! the stage graph, the build cache, running each step through berth-engine and committing
//! its change as a layer.
