//! Where the CLI keeps its state and what it is configured to do, resolved once from the
//! environment, the config files and the flags. Commands see [`Settings`], never raw env vars.
//!
//! Files (upstream's names, JSON): in `$POLYAXON_HOME` (default `~/.polyaxon`) `.client` (host,
//! TLS, timeout, owner), `.user` (who logged in), `.auth` (credentials when no keyring is
//! available, mode 0600); in the context directory — the nearest `./.polyaxon/` made by
//! `polyaxon init`, else `$POLYAXON_HOME` — `.project` and `.run`, the current project and the
//! last run. The embedded store lives in `$POLYAXON_HOME` too (`polyaxon.db`, `artifacts/`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use polyaxon_server::api::ExecutorKind;

use crate::env;
use crate::error::UserError;

/// The default request timeout, as upstream's client.
pub const DEFAULT_TIMEOUT_SECS: f64 = 20.0;

fn user_home() -> PathBuf {
    env::get_os(env::HOME)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `$POLYAXON_HOME`; else the directory named in `~/.polyaxon/.home` (`config set --home`);
/// else `~/.polyaxon`.
pub fn home_dir() -> PathBuf {
    if let Some(h) = env::get_os(env::POLYAXON_HOME) {
        return PathBuf::from(h);
    }
    let default = user_home().join(".polyaxon");
    if let Ok(p) = std::fs::read_to_string(default.join(".home")) {
        let p = p.trim();
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    default
}

/// The nearest `.polyaxon/` holding a `.project` from the current directory up, else the home.
pub fn context_dir(home: &Path) -> PathBuf {
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let c = dir.join(".polyaxon");
            if c.join(".project").is_file() {
                return c;
            }
        }
    }
    home.to_path_buf()
}

/// Directories searched for named presets: the project's, then the user's (in `home`).
pub fn preset_dirs(home: &Path) -> Vec<PathBuf> {
    vec![PathBuf::from(".polyaxon/presets"), home.join("presets")]
}

/// Directories searched for `hubRef` components: the project's, then the user's (in `home`),
/// then the built-in library (see `hub`).
pub fn hub_dirs(home: &Path) -> Vec<PathBuf> {
    crate::hub::dirs(home).into_iter().map(|(d, _)| d).collect()
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

/// `.client`: how to reach the server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientConfig {
    /// The server; none means the embedded store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_ssl: Option<bool>,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// The owner (user or organization) of projects named without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_api: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    /// Accepted for upstream's scripts; this CLI reports no errors anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_errors_reporting: Option<bool>,
    /// The executor of `polyaxon run` when `--executor` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
}

/// `.user`: who logged in, on which host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserCache {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// `.project`: the current project.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectCache {
    pub owner: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
}

/// `.run`: the last run used.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunCache {
    pub uuid: String,
    pub owner: String,
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Reads a JSON state file; a missing file is `None`, a corrupt one an error naming it.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(None),
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            UserError::new(format!("`{}` is not valid: {e}", path.display()))
                .hint("fix or delete it (`polyaxon config purge` resets the CLI's files)")
                .into()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading `{}`", path.display())),
    }
}

/// Writes a JSON state file atomically (a temporary file renamed over it), private to the user.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    write_private(path, text.as_bytes())
}

/// Writes a cache file (the last run, the user): atomically, but without waiting for the disk
/// (losing one to a power cut costs nothing, and the wait is on every `polyaxon run`).
pub fn write_cache<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    write_file(path, text.as_bytes(), false)
}

/// Writes a file atomically with mode 0600, durably.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file(path, bytes, true)
}

fn write_file(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("writing `{}`", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|_| if durable { f.sync_all() } else { Ok(()) })
            .with_context(|| format!("writing `{}`", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing `{}`", path.display()))
}

/// Removes a file if it is there.
pub fn remove_file(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing `{}`", path.display())),
    }
}

/// Where runs go on a cluster (`POLYAXON_K8S_*`).
#[derive(Clone, Debug, Default)]
pub struct KubeSettings {
    /// The kubeconfig context (default: the current one, or the in-cluster config).
    pub context: Option<String>,
    /// The namespace of runs (default: the context's, else `default`).
    pub namespace: Option<String>,
    /// The API the pods call (default: the configured host).
    pub api_host: Option<String>,
    /// The image of the init steps (default: the manifests' own).
    pub init_image: Option<String>,
    /// The volume claim the pods share with the server for the artifacts store.
    pub artifacts_claim: Option<String>,
    /// The image of the pods' sidecar (`polyaxon sidecar`), which sends their files.
    pub sidecar_image: Option<String>,
    /// Pull secrets every run's pods get.
    pub image_pull_secrets: Vec<String>,
}

/// Where images built for a cluster are pushed, and the credentials to push with.
#[derive(Clone, Default)]
pub struct RegistrySettings {
    /// `POLYAXON_K8S_REGISTRY`, as written (parsed when an image is pushed).
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The Docker config file (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
    pub docker_config: Option<PathBuf>,
    /// `DOCKER_HOST`.
    pub docker_host: Option<String>,
}

impl std::fmt::Debug for RegistrySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrySettings")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("docker_config", &self.docker_config)
            .field("docker_host", &self.docker_host)
            .finish()
    }
}

/// Everything a command needs to know about its environment.
#[derive(Clone, Debug)]
pub struct Settings {
    pub home: PathBuf,
    /// `POLYAXON_HOME` chose the home (it wins over `config set --home`).
    pub home_from_env: bool,
    /// The user's home directory (`HOME`).
    pub user_home: PathBuf,
    /// Where `.project` and `.run` live.
    pub context: PathBuf,
    /// The config file as written.
    pub client: ClientConfig,
    /// The server after `POLYAXON_HOST`; none means embedded.
    pub host: Option<String>,
    pub verify_ssl: bool,
    pub timeout: Duration,
    /// `POLYAXON_AUTH_TOKEN`.
    pub env_token: Option<String>,
    /// `POLYAXON_CREDENTIAL_STORE`.
    pub credential_store: String,
    /// `POLYAXON_EXECUTOR`.
    pub env_executor: Option<String>,
    pub kube: KubeSettings,
    pub registry: RegistrySettings,
    /// `BROWSER`.
    pub browser: Option<String>,
    /// The agent this process is (`polyaxon agent start`): the runs it claimed are its own.
    pub agent: Option<String>,
    /// `POLYAXON_RUN_INSTANCE`: the run this process belongs to (in a job's pod).
    pub run_instance: Option<String>,
    /// `POLYAXON_RUN_ARTIFACTS_PATH`: that run's artifacts directory.
    pub run_artifacts_path: Option<PathBuf>,
}

impl Settings {
    pub fn resolve() -> Result<Settings> {
        let home = home_dir();
        let context = context_dir(&home);
        let client: ClientConfig = read_json(&home.join(".client"))?.unwrap_or_default();
        let var = env::get;
        let host = match var(env::POLYAXON_HOST) {
            Some(h) => Some(normalize_host(&h)?),
            None => client.host.clone(),
        };
        let verify_ssl = match var(env::POLYAXON_VERIFY_SSL) {
            Some(v) => parse_bool(&v).ok_or_else(|| {
                UserError::new(format!(
                    "{}=`{v}` is not true or false",
                    env::POLYAXON_VERIFY_SSL
                ))
            })?,
            None => client.verify_ssl.unwrap_or(true),
        };
        let timeout = match var(env::POLYAXON_TIMEOUT) {
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|t| *t > 0.0 && t.is_finite())
                .ok_or_else(|| {
                    UserError::new(format!(
                        "{}=`{v}` is not a number of seconds",
                        env::POLYAXON_TIMEOUT
                    ))
                })?,
            None => client.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS),
        };
        let user_home = user_home();
        Ok(Settings {
            home,
            home_from_env: env::get_os(env::POLYAXON_HOME).is_some(),
            context,
            client,
            host,
            verify_ssl,
            timeout: Duration::from_secs_f64(timeout),
            env_token: var(env::POLYAXON_AUTH_TOKEN),
            credential_store: var(env::POLYAXON_CREDENTIAL_STORE).unwrap_or_else(|| "auto".into()),
            env_executor: var(env::POLYAXON_EXECUTOR),
            kube: KubeSettings {
                context: var(env::POLYAXON_K8S_CONTEXT),
                namespace: var(env::POLYAXON_K8S_NAMESPACE),
                api_host: var(env::POLYAXON_K8S_API_HOST),
                init_image: var(env::POLYAXON_K8S_INIT_IMAGE),
                artifacts_claim: var(env::POLYAXON_K8S_ARTIFACTS_CLAIM),
                sidecar_image: var(env::POLYAXON_K8S_SIDECAR_IMAGE),
                image_pull_secrets: var(env::POLYAXON_K8S_IMAGE_PULL_SECRETS)
                    .map(|v| {
                        v.split(',')
                            .map(str::trim)
                            .filter(|n| !n.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            registry: RegistrySettings {
                url: var(env::POLYAXON_K8S_REGISTRY),
                username: var(env::POLYAXON_K8S_REGISTRY_USERNAME),
                password: var(env::POLYAXON_K8S_REGISTRY_PASSWORD),
                docker_config: Some(match env::get_os(env::DOCKER_CONFIG) {
                    Some(d) => PathBuf::from(d).join("config.json"),
                    None => user_home.join(".docker").join("config.json"),
                }),
                docker_host: var(env::DOCKER_HOST),
            },
            browser: var(env::BROWSER),
            agent: None,
            run_instance: var(env::POLYAXON_RUN_INSTANCE),
            run_artifacts_path: env::get_os(env::POLYAXON_RUN_ARTIFACTS_PATH).map(PathBuf::from),
            user_home,
        })
    }

    /// The executor of a run: `--executor`, else `POLYAXON_EXECUTOR`, else `config set
    /// --executor`, else `process`.
    pub fn executor(&self, flag: Option<&str>) -> Result<ExecutorKind> {
        let (given, from) = match (flag, &self.env_executor, self.client.executor.as_deref()) {
            (Some(f), _, _) => (f.to_string(), "--executor".to_string()),
            (None, Some(e), _) => (e.clone(), env::POLYAXON_EXECUTOR.to_string()),
            (None, None, Some(c)) => (c.to_string(), "the config's `executor`".to_string()),
            (None, None, None) => return Ok(ExecutorKind::Process),
        };
        ExecutorKind::parse(&given).ok_or_else(|| {
            UserError::new(format!("{from} `{given}` is not an executor"))
                .hint("use `process`, `docker` or `kubernetes` (`k8s`)")
                .into()
        })
    }

    /// Directories searched for named presets.
    pub fn preset_dirs(&self) -> Vec<PathBuf> {
        preset_dirs(&self.home)
    }

    /// Directories searched for `hubRef` components.
    pub fn hub_dirs(&self) -> Vec<PathBuf> {
        hub_dirs(&self.home)
    }

    /// Where a run's files live on this machine: the store's run directory in the embedded
    /// mode; a cache beside the CLI's state for a remote server.
    pub fn context_root(&self) -> PathBuf {
        match &self.host {
            None => self.home.clone(),
            Some(h) => {
                let key: String = h
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                self.home.join("remote").join(key)
            }
        }
    }

    /// A run's directory on this machine (outputs, events, logs, code).
    pub fn run_dir(&self, uuid: &str) -> PathBuf {
        self.context_root().join("artifacts").join(uuid)
    }

    pub fn client_path(&self) -> PathBuf {
        self.home.join(".client")
    }
    pub fn user_path(&self) -> PathBuf {
        self.home.join(".user")
    }
    pub fn project_path(&self) -> PathBuf {
        self.context.join(".project")
    }
    pub fn run_path(&self) -> PathBuf {
        self.context.join(".run")
    }

    /// The cached user, when it belongs to the current host.
    pub fn user(&self) -> Result<Option<UserCache>> {
        Ok(read_json::<UserCache>(&self.user_path())?.filter(|u| u.host == self.host))
    }

    pub fn project_cache(&self) -> Result<Option<ProjectCache>> {
        read_json(&self.project_path())
    }

    pub fn run_cache(&self) -> Result<Option<RunCache>> {
        read_json(&self.run_path())
    }

    /// Remembers the last run used (best effort: a read-only context is not an error).
    pub fn remember_run(&self, run: &RunCache) {
        if self.run_cache().ok().flatten().as_ref() != Some(run) {
            let _ = write_cache(&self.run_path(), run);
        }
    }

    pub fn is_embedded(&self) -> bool {
        self.host.is_none()
    }
}

/// What `polyaxon server start` runs with, from the environment (no `Debug`: it holds a secret).
#[derive(Clone)]
pub struct ServerSettings {
    pub home: PathBuf,
    /// `POLYAXON_ADMIN_PASSWORD`: the superuser's password at the first start.
    pub admin_password: Option<String>,
    /// `RUST_LOG`: the log filter.
    pub log_filter: Option<String>,
    /// `POLYAXON_AGENT_TOKEN`: a token the agents use, accepted as root's.
    pub agent_token: Option<String>,
}

impl ServerSettings {
    pub fn resolve() -> ServerSettings {
        ServerSettings {
            home: home_dir(),
            admin_password: env::get(env::POLYAXON_ADMIN_PASSWORD),
            log_filter: env::get(env::RUST_LOG),
            agent_token: env::get(env::POLYAXON_AGENT_TOKEN),
        }
    }
}

/// How this process delivers notifications, from the environment (`POLYAXON_NOTIFY_*`,
/// `POLYAXON_UI_URL`); `ui_url` is the default link base.
pub fn notify_config(ui_url: &str) -> polyaxon_server::notify::Config {
    let mut c = polyaxon_server::notify::Config {
        ui_url: env::get(env::POLYAXON_UI_URL).unwrap_or_else(|| ui_url.to_string()),
        ..Default::default()
    };
    let secs = |k: &str| {
        env::get(k)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(std::time::Duration::from_secs_f64)
    };
    if let Some(t) = secs(env::POLYAXON_NOTIFY_TIMEOUT) {
        // At most a minute: a try must end well within its lease.
        c.timeout = t.min(std::time::Duration::from_secs(60));
    }
    if let Some(t) = secs(env::POLYAXON_NOTIFY_RETRY_DELAY) {
        c.retry_base = t;
    }
    if let Some(n) =
        env::get(env::POLYAXON_NOTIFY_MAX_TRIES).and_then(|v| v.trim().parse::<u32>().ok())
    {
        c.max_tries = n.max(1);
    }
    c.allow_link_local = env::get(env::POLYAXON_NOTIFY_ALLOW_LINK_LOCAL)
        .and_then(|v| parse_bool(&v))
        .unwrap_or(false);
    c.paused = env::get(env::POLYAXON_NOTIFY_PAUSED)
        .and_then(|v| parse_bool(&v))
        .unwrap_or(false);
    c
}

/// `true`/`false` and upstream's spellings of them.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "on" | "t" => Some(true),
        "false" | "0" | "no" | "n" | "off" | "f" => Some(false),
        _ => None,
    }
}

/// A server address as typed (`localhost:8000`, `https://x.org/`) made a base URL.
pub fn normalize_host(h: &str) -> Result<String> {
    let h = h.trim();
    let with_scheme = if h.contains("://") {
        h.to_string()
    } else {
        format!("http://{h}")
    };
    let url = reqwest::Url::parse(&with_scheme).map_err(|e| {
        UserError::new(format!("`{h}` is not a server address: {e}"))
            .hint("use the form `http://host:port` or `https://host`")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(UserError::new(format!("`{h}` is not a server address"))
            .hint("use the form `http://host:port` or `https://host`")
            .into());
    }
    Ok(with_scheme.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(
            normalize_host("localhost:8000/").unwrap(),
            "http://localhost:8000"
        );
        assert_eq!(
            normalize_host("https://plx.example.org").unwrap(),
            "https://plx.example.org"
        );
        assert!(normalize_host("ftp://x").is_err());
        assert!(normalize_host("http://").is_err());
    }

    #[test]
    fn state_files_round_trip_privately() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/.run");
        let run = RunCache {
            uuid: "abc".into(),
            owner: "o".into(),
            project: "p".into(),
            name: None,
        };
        write_json(&p, &run).unwrap();
        assert_eq!(read_json::<RunCache>(&p).unwrap(), Some(run));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&p, "{nope").unwrap();
        let err = read_json::<RunCache>(&p).unwrap_err().to_string();
        assert!(err.contains(".run` is not valid"), "{err}");
        assert_eq!(
            read_json::<RunCache>(&dir.path().join("none")).unwrap(),
            None
        );
    }
}
