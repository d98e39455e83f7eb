//! End-to-end flows across the crates: the CLI against a real server process (on SQLite and
//! PostgreSQL), the Docker Engine, and the stand-in Kubernetes API; the server process itself.

mod agents;
mod contract;
mod docker;
mod faults;
mod notifications;
mod object_store;
mod remote;
mod secrets;
mod server;
mod services;
