//! What the end-to-end tests share (and the CLI's own integration tests use): a sealed
//! environment for the real binary, a `polyaxon server start` process, the Docker Engine
//! checks, and a stand-in for a Kubernetes API server.

pub mod docker;
pub mod fake_kube;
pub mod sealed;
pub mod server;
