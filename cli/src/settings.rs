//! Where the CLI keeps its state, resolved once from the environment.

use std::path::PathBuf;

use crate::env;

/// `$POLYAXON_HOME`, or `~/.polyaxon`.
pub fn home_dir() -> PathBuf {
    if let Some(h) = std::env::var_os(env::POLYAXON_HOME).filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os(env::HOME)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".polyaxon")
}

/// Directories searched for named presets: the project's, then the user's.
pub fn preset_dirs() -> Vec<PathBuf> {
    vec![
        PathBuf::from(".polyaxon/presets"),
        home_dir().join("presets"),
    ]
}

/// Directories searched for `hubRef` components: the project's, then the user's.
pub fn hub_dirs() -> Vec<PathBuf> {
    vec![PathBuf::from(".polyaxon/hub"), home_dir().join("hub")]
}

/// The polyaxonfile names looked for when `-f` is not given, in order.
pub const DEFAULT_FILES: &[&str] = &[
    "polyaxon.yaml",
    "polyaxon.yml",
    "polyaxon.json",
    "polyaxonci.yaml",
    "polyaxonci.yml",
    "polyaxonci.json",
    "polyaxon-ci.yaml",
    "polyaxon-ci.yml",
    "polyaxon-ci.json",
    "polyaxon.ci.yaml",
    "polyaxon.ci.yml",
    "polyaxon.ci.json",
    "polyaxonfile.yaml",
    "polyaxonfile.yml",
    "polyaxonfile.json",
];

/// The first default polyaxonfile present in the current directory.
pub fn default_file() -> Option<PathBuf> {
    DEFAULT_FILES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}
