//! The polyaxon server library: Polyaxon's v1 REST API over a store (PostgreSQL for teams,
//! SQLite for the embedded default), its auth and artifacts. The CLI mounts it in-process for
//! the embedded mode and `polyaxon server start` serves it over HTTP.
//!
//! It depends on `polyaxonfile` for operation specs; it never depends on the CLI.
