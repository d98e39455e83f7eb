//! Tests of the `polyaxon` binary, run sealed: empty environment, temporary home.

mod check;
mod common;
mod connections;
mod dag;
mod docs;
mod embedded;
mod hooks;
mod hub;
mod kubernetes;
mod registry;
mod run;
mod schedule;
mod snapshots_cli;
mod work;
