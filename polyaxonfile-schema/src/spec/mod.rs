//! The v1.1 polyaxonfile model, with upstream's camelCase keys.
//!
//! Types are read through [`crate::de`] (strict keys, located errors) and written with serde;
//! `None` fields are dropped on output by [`crate::to_clean_json`]. The JSON Schema of the format
//! is derived from these same types.

pub mod init;
pub mod k8s;
pub mod matrix;
pub mod misc;
pub mod ops;
pub mod run;

pub use init::*;
pub use k8s::*;
pub use matrix::*;
pub use misc::*;
pub use ops::*;
pub use run::*;
