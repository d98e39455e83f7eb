//! Every environment variable the CLI reads, in one place.

/// Root of the CLI's state: config, credentials, the embedded store (default `~/.polyaxon`).
pub const POLYAXON_HOME: &str = "POLYAXON_HOME";
/// Disables colored output when set to anything (see no-color.org).
pub const NO_COLOR: &str = "NO_COLOR";
/// Forces colors on even when stderr is not a terminal.
pub const CLICOLOR_FORCE: &str = "CLICOLOR_FORCE";
/// The user's home directory, for the default `POLYAXON_HOME`.
pub const HOME: &str = "HOME";
