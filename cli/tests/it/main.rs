//! Tests of the `polyaxon` binary, run sealed: empty environment, temporary home.

mod check;
mod common;
mod docker;
mod docs;
mod embedded;
mod fake_kube;
mod kubernetes;
mod registry;
mod remote;
mod run;
mod server;
mod snapshots_cli;
