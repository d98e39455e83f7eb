//! Every environment variable the CLI reads, in one place, and the one reader of them: the
//! settings ([`crate::settings`]) resolve what commands see from these at start.

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
/// A token the server accepts as the superuser `root`'s, for the agents `admin deploy` runs
/// beside it (kept hashed like every token; set from the deploy's secret).
pub const POLYAXON_AGENT_TOKEN: &str = "POLYAXON_AGENT_TOKEN";
/// Seconds a notification's receiver may take to answer (default 10; a connection's
/// `timeout` wins).
pub const POLYAXON_NOTIFY_TIMEOUT: &str = "POLYAXON_NOTIFY_TIMEOUT";
/// Tries of a notification before it is marked failed (default 5).
pub const POLYAXON_NOTIFY_MAX_TRIES: &str = "POLYAXON_NOTIFY_MAX_TRIES";
/// Seconds before a failed notification's first retry (default 1; each next one doubles).
pub const POLYAXON_NOTIFY_RETRY_DELAY: &str = "POLYAXON_NOTIFY_RETRY_DELAY";
/// `true`: notifications may be sent to link-local and cloud metadata addresses.
pub const POLYAXON_NOTIFY_ALLOW_LINK_LOCAL: &str = "POLYAXON_NOTIFY_ALLOW_LINK_LOCAL";
/// `true`: this process delivers no notification (they wait, pending, for one that does).
pub const POLYAXON_NOTIFY_PAUSED: &str = "POLYAXON_NOTIFY_PAUSED";
/// A connections file (YAML: a list of `{name, kind, schema, secret}`) a server, or the
/// embedded store, loads at start (the embedded default: `$POLYAXON_HOME/connections.yaml`).
pub const POLYAXON_CONNECTIONS_FILE: &str = "POLYAXON_CONNECTIONS_FILE";
/// The server's object store for runs' files (`s3://…`, `gs://…`, `az://…`).
pub const POLYAXON_ARTIFACTS_STORE: &str = "POLYAXON_ARTIFACTS_STORE";
/// Where the server's services proxy reaches a Kubernetes run's Service (`{name}`,
/// `{namespace}`; default `{name}.{namespace}.svc`).
pub const POLYAXON_K8S_SERVICE_HOST: &str = "POLYAXON_K8S_SERVICE_HOST";
/// The dashboard's address in the links notifications carry (default: the server's).
pub const POLYAXON_UI_URL: &str = "POLYAXON_UI_URL";
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
/// `true` in a job's container env (not read from this process's): its `name=value` stdout
/// lines are metrics.
pub const POLYAXON_STDOUT_METRICS: &str = "POLYAXON_STDOUT_METRICS";

// --- Kubernetes: where runs go on a cluster ----------------------------------------------------

/// The kubeconfig context of runs (default: the current one, or the in-cluster config).
pub const POLYAXON_K8S_CONTEXT: &str = "POLYAXON_K8S_CONTEXT";
/// The namespace of runs (default: the context's, else `default`).
pub const POLYAXON_K8S_NAMESPACE: &str = "POLYAXON_K8S_NAMESPACE";
/// The API as the run's pods reach it (default: the configured host).
pub const POLYAXON_K8S_API_HOST: &str = "POLYAXON_K8S_API_HOST";
/// The image of the pods' init steps (git, files, artifacts).
pub const POLYAXON_K8S_INIT_IMAGE: &str = "POLYAXON_K8S_INIT_IMAGE";
/// The volume claim the pods share with the server for the artifacts store.
pub const POLYAXON_K8S_ARTIFACTS_CLAIM: &str = "POLYAXON_K8S_ARTIFACTS_CLAIM";
/// The image of the sidecar that sends a pod's files to the server (this binary; default:
/// none, and then runs' files stay in their pods unless they share a volume claim).
pub const POLYAXON_K8S_SIDECAR_IMAGE: &str = "POLYAXON_K8S_SIDECAR_IMAGE";
/// The run a job's process or pod is (`owner.project.runs.uuid`), set by the executors; read
/// by `polyaxon sidecar`.
pub const POLYAXON_RUN_INSTANCE: &str = "POLYAXON_RUN_INSTANCE";
/// The run's artifacts directory, set by the executors; read by `polyaxon sidecar`.
pub const POLYAXON_RUN_ARTIFACTS_PATH: &str = "POLYAXON_RUN_ARTIFACTS_PATH";
/// Pull secrets every run's pods get, comma-separated.
pub const POLYAXON_K8S_IMAGE_PULL_SECRETS: &str = "POLYAXON_K8S_IMAGE_PULL_SECRETS";
/// The registry images built for a cluster are pushed to (`host[:port][/path]`).
pub const POLYAXON_K8S_REGISTRY: &str = "POLYAXON_K8S_REGISTRY";
/// The registry's user and password (else the Docker config file's credentials).
pub const POLYAXON_K8S_REGISTRY_USERNAME: &str = "POLYAXON_K8S_REGISTRY_USERNAME";
pub const POLYAXON_K8S_REGISTRY_PASSWORD: &str = "POLYAXON_K8S_REGISTRY_PASSWORD";

// --- Docker ------------------------------------------------------------------------------------

/// The directory of the Docker config file (`config.json`; default `~/.docker`).
pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// The Docker Engine's address (`unix:///path/to/docker.sock`).
pub const DOCKER_HOST: &str = "DOCKER_HOST";

/// The value of `key`, when set and not blank. The one place the environment is read: the
/// settings resolve everything from it once, at start.
pub fn get(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

/// The same, for values that need not be UTF-8 (paths).
pub fn get_os(key: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(key).filter(|v| !v.is_empty())
}
