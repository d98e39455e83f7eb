//! Integration tests of the polyaxonfile crate.

mod compat;
mod fixtures;
mod pyyaml;
mod robustness;
mod schema;
mod upgrade;
