//! The API against real stores: every test runs on SQLite and on PostgreSQL
//! (`POLYAXON_TEST_DATABASE_URL`, which `scripts/test` provides).

mod common;

mod artifacts;
mod auth;
mod authz;
mod browser;
mod limits;
mod load;
mod notify;
mod openapi;
mod projects;
mod python_client;
mod queues;
mod runs;
mod services;
mod store;
mod streams;
mod ui;
