//! Integration tests of the polyaxonfile crate.

mod compat;
mod fixtures;
mod robustness;
mod schema;
mod upgrade;
