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
/// The server to talk to (overrides `polyaxon config set --host`); unset means embedded.
pub const POLYAXON_HOST: &str = "POLYAXON_HOST";
/// The executor of `polyaxon run` when `--executor` is not given.
pub const POLYAXON_EXECUTOR: &str = "POLYAXON_EXECUTOR";
/// An API token (overrides the stored credentials).
pub const POLYAXON_AUTH_TOKEN: &str = "POLYAXON_AUTH_TOKEN";
/// `false` to accept any TLS certificate from the server (overrides the config).
pub const POLYAXON_VERIFY_SSL: &str = "POLYAXON_VERIFY_SSL";
/// Seconds before an API call gives up (overrides the config).
pub const POLYAXON_TIMEOUT: &str = "POLYAXON_TIMEOUT";
/// Where credentials are kept: `keyring`, `file` or `auto` (the default: the keyring when the
/// system has one, else a private file).
pub const POLYAXON_CREDENTIAL_STORE: &str = "POLYAXON_CREDENTIAL_STORE";
/// The terminal's width, for tables (read when stdout is not a terminal too).
pub const COLUMNS: &str = "COLUMNS";
/// The browser `dashboard` commands open.
pub const BROWSER: &str = "BROWSER";
/// Prints how long each start-up step took (for tuning; any value turns it on).
pub const POLYAXON_TIMINGS: &str = "POLYAXON_TIMINGS";
