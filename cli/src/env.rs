//! Every environment variable the CLI reads, in one place.

/// Root of the CLI's state: config, credentials, the embedded store (default `~/.polyaxon`).
pub const POLYAXON_HOME: &str = "POLYAXON_HOME";
/// Disables colored output when set to anything (see no-color.org).
pub const NO_COLOR: &str = "NO_COLOR";
/// Forces colors on even when stderr is not a terminal.
pub const CLICOLOR_FORCE: &str = "CLICOLOR_FORCE";
/// The user's home directory, for the default `POLYAXON_HOME`.
pub const HOME: &str = "HOME";
/// The server's database (`postgres://…` or `sqlite://…`).
pub const POLYAXON_DATABASE_URL: &str = "POLYAXON_DATABASE_URL";
/// The password of the superuser `root` created at the server's first start.
pub const POLYAXON_ADMIN_PASSWORD: &str = "POLYAXON_ADMIN_PASSWORD";
/// Log filter of the server (`info`, `polyaxon_server=debug,…`).
pub const RUST_LOG: &str = "RUST_LOG";
