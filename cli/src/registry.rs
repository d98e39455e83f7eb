//! Pushing built images to the registry a cluster pulls from.
//!
//! The registry is `POLYAXON_K8S_REGISTRY` (`host[:port][/path]`). Credentials come from
//! `POLYAXON_K8S_REGISTRY_USERNAME` / `POLYAXON_K8S_REGISTRY_PASSWORD`, else from the Docker
//! config file (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: a `credHelpers` entry,
//! an `auths` entry, then `credsStore`), as `docker push` finds them.
//!
//! The push goes through the Engine's API on its socket and reads the Engine's own progress
//! messages, which name the layer each one is about (the typed client drops that id), so the
//! run's logs show every layer's progress.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value as J;

use crate::error::UserError;

pub const REGISTRY_ENV: &str = "POLYAXON_K8S_REGISTRY";
pub const USERNAME_ENV: &str = "POLYAXON_K8S_REGISTRY_USERNAME";
pub const PASSWORD_ENV: &str = "POLYAXON_K8S_REGISTRY_PASSWORD";

/// Where images are pushed: `host[:port]` and an optional path under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    pub host: String,
    pub path: String,
}

impl Registry {
    /// Parses `host[:port][/path]` (a scheme is tolerated and dropped).
    pub fn parse(text: &str) -> Result<Registry> {
        let t = text.trim();
        let t = t
            .strip_prefix("https://")
            .or_else(|| t.strip_prefix("http://"))
            .unwrap_or(t)
            .trim_end_matches('/');
        let (host, path) = t.split_once('/').unwrap_or((t, ""));
        let bad = |why: &str| {
            UserError::new(format!("{REGISTRY_ENV}=`{text}`: {why}")).hint(
                "write the registry as `host[:port][/path]`, e.g. `registry.example.com:5000/ml`",
            )
        };
        if host.is_empty() {
            return Err(bad("no host").into());
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Err(bad("the host has characters a registry host cannot have").into());
        }
        // What Docker reads as a registry host; anything else is a Docker Hub namespace.
        if !(host.contains('.') || host.contains(':') || host.eq_ignore_ascii_case("localhost")) {
            return Err(bad(
                "the first part is not a registry host (Docker would read it as a Docker Hub namespace)",
            )
            .into());
        }
        if let Some(p) = host.rsplit_once(':').map(|(_, p)| p)
            && !host.ends_with(']')
            && p.parse::<u16>().is_err()
        {
            return Err(bad("the port is not a number").into());
        }
        if !path.split('/').all(|seg| {
            seg.is_empty()
                || seg.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                })
        }) || path.contains("//")
        {
            return Err(bad(
                "a repository path is lowercase letters, digits, `.`, `_` and `-` between slashes",
            )
            .into());
        }
        Ok(Registry {
            host: host.to_ascii_lowercase(),
            path: path.to_string(),
        })
    }

    /// The registry configured for this machine, if any.
    pub fn from_env() -> Result<Option<Registry>> {
        match std::env::var(REGISTRY_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            Some(v) => Registry::parse(&v).map(Some),
            None => Ok(None),
        }
    }

    /// Where a locally built `name:tag` goes: the repository and the tag.
    pub fn target(&self, local: &str) -> (String, String) {
        let (name, tag) = split_tag(local);
        let base = name.rsplit('/').next().unwrap_or(name);
        let repo = if self.path.is_empty() {
            format!("{}/{base}", self.host)
        } else {
            format!("{}/{}/{base}", self.host, self.path)
        };
        (repo, tag.unwrap_or("latest").to_string())
    }
}

/// `name[:tag]` split at the tag's colon (not a registry port's).
pub fn split_tag(image: &str) -> (&str, Option<&str>) {
    match image.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (image, None),
    }
}

/// What the Engine sends the registry to log in: a user and password, or an identity token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Auth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identitytoken: Option<String>,
    pub serveraddress: String,
    /// Where they came from, for messages (never the secret itself).
    #[serde(skip)]
    pub source: String,
}

impl Auth {
    /// The `X-Registry-Auth` header's value.
    pub fn header(&self) -> String {
        base64::engine::general_purpose::URL_SAFE
            .encode(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// The Docker config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

#[derive(Debug, Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// A config key's host: `https://host/v1/` → `host` (Docker Hub's names all → `docker.io`).
fn key_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let h = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match h.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        _ => h,
    }
}

/// The server address the Engine wants in credentials for `host`.
fn server_address(host: &str) -> String {
    if key_host(host) == "docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        host.to_string()
    }
}

/// The credentials for `host`: the environment's, else the Docker config file's. None means
/// an anonymous push.
pub fn credentials(host: &str) -> Result<Option<Auth>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (var(USERNAME_ENV), var(PASSWORD_ENV)) {
        (Some(u), Some(p)) => {
            return Ok(Some(Auth {
                username: Some(u),
                password: Some(p),
                serveraddress: server_address(host),
                source: format!("{USERNAME_ENV}/{PASSWORD_ENV}"),
                ..Default::default()
            }));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(UserError::new(format!(
                "only one of {USERNAME_ENV} and {PASSWORD_ENV} is set"
            ))
            .hint("set both, or neither to use the Docker config file (`docker login`)")
            .into());
        }
        (None, None) => {}
    }
    match docker_config_path() {
        Some(path) => from_docker_config(&path, host),
        None => Ok(None),
    }
}

/// The credentials the Docker config file at `path` gives `host`.
pub fn from_docker_config(path: &Path, host: &str) -> Result<Option<Auth>> {
    lookup(path, host, None)
}

/// As [`from_docker_config`], with credential helpers looked for in `helpers` (else on PATH).
fn lookup(path: &Path, host: &str, helpers: Option<&Path>) -> Result<Option<Auth>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading `{}`", path.display())),
    };
    let config: DockerConfig = serde_json::from_str(&text).map_err(|e| {
        UserError::new(format!(
            "`{}` is not a valid Docker config file: {e}",
            path.display()
        ))
        .hint("fix it, or log in again with `docker login`")
    })?;
    let server = server_address(host);
    let host = key_host(host);
    if let Some((_, helper)) = config
        .cred_helpers
        .iter()
        .find(|(k, _)| key_host(k) == host)
    {
        return helper_get(helper, &server, helpers);
    }
    if let Some((key, entry)) = config.auths.iter().find(|(k, _)| key_host(k) == host) {
        let source = format!("`{}` (auths.{key})", path.display());
        if let Some(token) = entry.identitytoken.clone().filter(|t| !t.is_empty()) {
            return Ok(Some(Auth {
                identitytoken: Some(token),
                serveraddress: server.clone(),
                source,
                ..Default::default()
            }));
        }
        let (user, pass) = match &entry.auth {
            Some(a) if !a.is_empty() => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(a.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        UserError::new(format!("{source}: `auth` is not base64 of `user:password`"))
                            .hint(format!("log in again: `docker login {host}`"))
                    })?;
                let (u, p) = raw.split_once(':').ok_or_else(|| {
                    UserError::new(format!("{source}: `auth` has no `user:password`"))
                        .hint(format!("log in again: `docker login {host}`"))
                })?;
                (Some(u.to_string()), Some(p.to_string()))
            }
            _ => (entry.username.clone(), entry.password.clone()),
        };
        if user.is_some() || pass.is_some() {
            return Ok(Some(Auth {
                username: user,
                password: pass,
                serveraddress: server.clone(),
                source,
                ..Default::default()
            }));
        }
        // An empty entry next to a store: the store has the secret.
    }
    match config.creds_store.as_deref().filter(|s| !s.is_empty()) {
        Some(store) => helper_get(store, &server, helpers),
        None => Ok(None),
    }
}

/// Asks `docker-credential-<helper>` for `host`'s credentials (the helpers' protocol: the
/// server on stdin, `{"Username", "Secret"}` on stdout; `<token>` as the user means an identity
/// token).
fn helper_get(helper: &str, host: &str, dir: Option<&Path>) -> Result<Option<Auth>> {
    use std::io::Write;
    let program = format!("docker-credential-{helper}");
    let exe = dir.map_or_else(|| PathBuf::from(&program), |d| d.join(&program));
    let mut child = match std::process::Command::new(&exe)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Err(UserError::new(format!(
                "the Docker config names the credential helper `{helper}` but `{program}` cannot run: {e}"
            ))
            .hint(format!(
                "install `{program}`, or set {USERNAME_ENV} and {PASSWORD_ENV}"
            ))
            .into());
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(host.as_bytes());
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("running `{program} get`"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let said = format!(
            "{}{}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(UserError::new(format!("`{program} get` failed: {said}"))
            .hint(format!("log in again: `docker login {host}`"))
            .into());
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let a: Answer = serde_json::from_str(stdout.trim())
        .with_context(|| format!("reading what `{program} get` answered"))?;
    let source = format!("the credential helper `{helper}`");
    Ok(Some(if a.username == "<token>" {
        Auth {
            identitytoken: Some(a.secret),
            serveraddress: host.to_string(),
            source,
            ..Default::default()
        }
    } else {
        Auth {
            username: Some(a.username),
            password: Some(a.secret),
            serveraddress: host.to_string(),
            source,
            ..Default::default()
        }
    }))
}

/// One message of the Engine's push stream.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PushMessage {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, rename = "progressDetail")]
    pub progress_detail: Option<Progress>,
    #[serde(default, rename = "errorDetail")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub aux: Option<J>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Progress {
    #[serde(default)]
    pub current: Option<u64>,
    #[serde(default)]
    pub total: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum LayerState {
    Waiting,
    Pushing { current: u64, total: u64 },
    Pushed { total: u64 },
    Existed,
}

/// Turns the Engine's push messages into lines for the run's logs: a line when a layer starts,
/// finishes or is found in the registry already, and a progress line per layer at most every
/// `every` while it uploads.
pub struct PushProgress {
    every: Duration,
    layers: BTreeMap<String, (LayerState, Option<Instant>)>,
    pub digest: Option<String>,
    pub size: Option<u64>,
}

impl PushProgress {
    pub fn new(every: Duration) -> PushProgress {
        PushProgress {
            every,
            layers: BTreeMap::new(),
            digest: None,
            size: None,
        }
    }

    /// The lines `m` is worth; an error message becomes `Err`.
    pub fn feed(&mut self, m: &PushMessage, now: Instant) -> Result<Vec<String>, String> {
        if let Some(e) = m
            .error_detail
            .as_ref()
            .and_then(|d| d.message.clone())
            .or_else(|| m.error.clone())
        {
            return Err(e);
        }
        if let Some(aux) = &m.aux {
            if let Some(d) = aux.get("Digest").and_then(J::as_str) {
                self.digest = Some(d.to_string());
            }
            if let Some(s) = aux.get("Size").and_then(J::as_u64) {
                self.size = Some(s);
            }
            return Ok(vec![]);
        }
        let status = m.status.as_deref().unwrap_or("");
        let Some(id) = m.id.as_deref().filter(|id| !id.is_empty()) else {
            // `<tag>: digest: sha256:… size: N` when the aux message did not come.
            if let Some(rest) = status.split("digest: ").nth(1)
                && self.digest.is_none()
            {
                self.digest = rest.split_whitespace().next().map(str::to_string);
            }
            return Ok(vec![]);
        };
        let short = id.chars().take(12).collect::<String>();
        let entry = self
            .layers
            .entry(short.clone())
            .or_insert((LayerState::Waiting, None));
        let mut out = vec![];
        match status {
            "Pushing" => {
                let (current, total) = m
                    .progress_detail
                    .as_ref()
                    .map(|p| (p.current.unwrap_or(0), p.total.unwrap_or(0)))
                    .unwrap_or((0, 0));
                let first = !matches!(entry.0, LayerState::Pushing { .. });
                let due = entry.1.is_none_or(|t| now.duration_since(t) >= self.every);
                entry.0 = LayerState::Pushing { current, total };
                if first || due {
                    entry.1 = Some(now);
                    out.push(format!(
                        "layer {short}: pushing {}",
                        fraction(current, total)
                    ));
                }
            }
            "Pushed" => {
                let total = match entry.0 {
                    LayerState::Pushing { total, current } => total.max(current),
                    _ => 0,
                };
                entry.0 = LayerState::Pushed { total };
                out.push(if total > 0 {
                    format!("layer {short}: pushed ({})", human(total))
                } else {
                    format!("layer {short}: pushed")
                });
            }
            "Layer already exists" => {
                entry.0 = LayerState::Existed;
                out.push(format!("layer {short}: already in the registry"));
            }
            s if s.starts_with("Mounted from") => {
                entry.0 = LayerState::Existed;
                out.push(format!("layer {short}: {}", s.to_ascii_lowercase()));
            }
            // Preparing, Waiting, Retrying in N seconds…
            s if s.starts_with("Retrying") => out.push(format!("layer {short}: {s}")),
            _ => {}
        }
        Ok(out)
    }

    /// `N layers: a pushed, b already there`.
    pub fn summary(&self) -> String {
        let pushed = self
            .layers
            .values()
            .filter(|(s, _)| matches!(s, LayerState::Pushed { .. }))
            .count();
        let existed = self
            .layers
            .values()
            .filter(|(s, _)| *s == LayerState::Existed)
            .count();
        let bytes: u64 = self
            .layers
            .values()
            .map(|(s, _)| match s {
                LayerState::Pushed { total } => *total,
                _ => 0,
            })
            .sum();
        format!(
            "{} layer{}: {pushed} pushed ({}), {existed} already in the registry",
            self.layers.len(),
            if self.layers.len() == 1 { "" } else { "s" },
            human(bytes)
        )
    }
}

fn fraction(current: u64, total: u64) -> String {
    if total > 0 {
        format!(
            "{} / {} ({:.0}%)",
            human(current),
            human(total),
            100.0 * current.min(total) as f64 / total as f64
        )
    } else {
        human(current)
    }
}

fn human(b: u64) -> String {
    crate::commands::ops::artifacts::human_bytes(b)
}

/// The hint for a push error the Engine reported.
pub fn push_hint(message: &str, registry: &str, auth: Option<&Auth>) -> String {
    let m = message.to_ascii_lowercase();
    if m.contains("unauthorized")
        || m.contains("authentication required")
        || m.contains("no basic auth credentials")
        || m.contains("denied")
    {
        match auth {
            Some(a) => format!(
                "the registry refused the credentials from {}: log in again (`docker login {registry}`) or set {USERNAME_ENV} and {PASSWORD_ENV}",
                a.source
            ),
            None => format!(
                "the registry wants credentials: `docker login {registry}`, or set {USERNAME_ENV} and {PASSWORD_ENV}"
            ),
        }
    } else if m.contains("server gave http response to https client") {
        format!(
            "`{registry}` speaks plain HTTP: add it to `insecure-registries` in the Engine's daemon.json (or serve it with TLS)"
        )
    } else if m.contains("connection refused")
        || m.contains("no such host")
        || m.contains("i/o timeout")
    {
        format!(
            "the Engine cannot reach `{registry}`: check {REGISTRY_ENV} and that the registry is up"
        )
    } else {
        format!("check {REGISTRY_ENV}=`{registry}` and the registry's logs")
    }
}

/// The Engine's socket (`DOCKER_HOST=unix://…`, else the default one).
pub fn engine_socket() -> Result<PathBuf> {
    match std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        None => Ok(PathBuf::from("/var/run/docker.sock")),
        Some(h) => match h.strip_prefix("unix://") {
            Some(p) => Ok(PathBuf::from(p)),
            None => Err(UserError::new(format!(
                "DOCKER_HOST=`{h}`: images are built and pushed through a local Engine socket"
            ))
            .hint("unset DOCKER_HOST or point it at `unix:///path/to/docker.sock`")
            .into()),
        },
    }
}

/// Tags the local image `local` as `repo:tag` and pushes it, each line of progress to `log`.
/// Returns the pushed image by digest (`repo:tag@sha256:…`), which is what pods should run.
pub async fn push(
    docker: &bollard::Docker,
    local: &str,
    repo: &str,
    tag: &str,
    auth: Option<&Auth>,
    out: &tokio::sync::mpsc::Sender<crate::executor::Line>,
) -> Result<String> {
    let log = |text: String| async move {
        let _ = out
            .send(crate::executor::Line {
                stream: crate::executor::Stream::Stdout,
                text,
                at: crate::executor::now_micros(),
            })
            .await;
    };
    use http_body_util::BodyExt;
    docker
        .tag_image(
            local,
            Some(
                bollard::query_parameters::TagImageOptionsBuilder::default()
                    .repo(repo)
                    .tag(tag)
                    .build(),
            ),
        )
        .await
        .with_context(|| format!("tagging `{local}` as `{repo}:{tag}`"))?;
    // Tags are `[A-Za-z0-9_.-]` (ours are hashes): nothing to escape in the query.
    anyhow::ensure!(
        tag.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')),
        "`{tag}` is not a valid image tag"
    );
    let socket = engine_socket()?;
    let stream = tokio::net::UnixStream::connect(&socket)
        .await
        .with_context(|| format!("connecting to the Docker Engine at `{}`", socket.display()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .context("talking to the Docker Engine")?;
    let conn = tokio::spawn(conn);
    let v = docker.client_version();
    let uri = format!(
        "http://docker/v{}.{}/images/{}/push?tag={}",
        v.major_version, v.minor_version, repo, tag
    );
    let mut req = http::Request::post(uri).header("Host", "docker");
    // The Engine wants the header even for an anonymous push.
    let anonymous = Auth {
        serveraddress: repo.split('/').next().unwrap_or(repo).to_string(),
        ..Default::default()
    };
    req = req.header("X-Registry-Auth", auth.unwrap_or(&anonymous).header());
    let req = req
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .context("the push request")?;
    let resp = sender
        .send_request(req)
        .await
        .context("asking the Docker Engine to push")?;
    let registry = repo.split('/').next().unwrap_or(repo).to_string();
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
        let text = body
            .ok()
            .and_then(|b| serde_json::from_slice::<J>(&b).ok())
            .and_then(|j| j.get("message").and_then(J::as_str).map(str::to_string))
            .unwrap_or_else(|| status.to_string());
        return Err(
            UserError::new(format!("pushing `{repo}:{tag}` failed: {text}"))
                .hint(push_hint(&text, &registry, auth))
                .into(),
        );
    }
    let mut body = resp.into_body();
    let mut progress = PushProgress::new(Duration::from_secs(2));
    let mut pending: Vec<u8> = vec![];
    let fail = |e: &str| -> anyhow::Error {
        UserError::new(format!("pushing `{repo}:{tag}` failed: {e}"))
            .hint(push_hint(e, &registry, auth))
            .into()
    };
    let mut finished = false;
    while !finished {
        let data = match body.frame().await {
            Some(frame) => frame
                .context("reading the Engine's push progress")?
                .into_data()
                .unwrap_or_default(),
            None => {
                finished = true;
                pending.push(b'\n');
                bytes::Bytes::new()
            }
        };
        pending.extend_from_slice(&data);
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let m: PushMessage = serde_json::from_slice(&line).with_context(|| {
                format!(
                    "reading the Engine's push progress: `{}`",
                    String::from_utf8_lossy(&line)
                )
            })?;
            match progress.feed(&m, Instant::now()) {
                Ok(lines) => {
                    for l in lines {
                        log(l).await;
                    }
                }
                Err(e) => {
                    log(format!("error: {e}")).await;
                    return Err(fail(&e));
                }
            }
        }
    }
    conn.abort();
    let digest = progress.digest.clone().ok_or_else(|| {
        UserError::new(format!(
            "the Engine finished pushing `{repo}:{tag}` without naming its digest"
        ))
        .hint("look at the Engine's log (`journalctl -u docker`), then run again")
    })?;
    log(format!(
        "pushed `{repo}:{tag}` ({}), {digest}",
        progress.summary()
    ))
    .await;
    Ok(format!("{repo}:{tag}@{digest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_parse_and_name_targets() {
        let r = Registry::parse("Registry.Example.com:5000/ml/team/").unwrap();
        assert_eq!(r.host, "registry.example.com:5000");
        assert_eq!(r.path, "ml/team");
        assert_eq!(
            r.target("polyaxon/train:abc123"),
            (
                "registry.example.com:5000/ml/team/train".to_string(),
                "abc123".to_string()
            )
        );
        assert_eq!(Registry::parse("localhost/ml").unwrap().host, "localhost");
        let bare = Registry::parse("https://localhost:5000").unwrap();
        assert_eq!(bare.target("polyaxon/x").0, "localhost:5000/x");
        assert_eq!(bare.target("polyaxon/x").1, "latest");
        for bad in [
            "",
            "/path",
            "host:port",
            "reg.example.com/Upper",
            "ho st",
            "reg.example.com/a//b",
            "myregistry/ml",
        ] {
            let e = Registry::parse(bad).unwrap_err().to_string();
            assert!(e.contains(REGISTRY_ENV), "{bad}: {e}");
        }
        assert_eq!(split_tag("localhost:5000/x"), ("localhost:5000/x", None));
        assert_eq!(
            split_tag("localhost:5000/x:1"),
            ("localhost:5000/x", Some("1"))
        );
    }

    fn config(dir: &Path, json: &str) -> PathBuf {
        let p = dir.join("config.json");
        std::fs::write(&p, json).unwrap();
        p
    }

    #[test]
    fn docker_config_auths_are_read_like_docker_does() {
        let d = tempfile::tempdir().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode("ada:s3cret:with-colon");
        let p = config(
            d.path(),
            &format!(
                r#"{{"auths": {{"https://Reg.example.com:5000/v1/": {{"auth": "{b64}"}},
                    "tok.example.com": {{"identitytoken": "T0K"}},
                    "https://index.docker.io/v1/": {{"auth": "{b64}"}},
                    "empty.example.com": {{}}}}}}"#
            ),
        );
        let a = from_docker_config(&p, "reg.example.com:5000")
            .unwrap()
            .unwrap();
        assert_eq!(a.username.as_deref(), Some("ada"));
        assert_eq!(a.password.as_deref(), Some("s3cret:with-colon"));
        assert!(a.source.contains("auths.https://Reg.example.com:5000/v1/"));
        // Docker Hub: found under its index key, and named so to the Engine.
        let hub = from_docker_config(&p, "docker.io").unwrap().unwrap();
        assert_eq!(hub.serveraddress, "https://index.docker.io/v1/");
        assert_eq!(hub.username.as_deref(), Some("ada"));
        let t = from_docker_config(&p, "tok.example.com").unwrap().unwrap();
        assert_eq!(t.identitytoken.as_deref(), Some("T0K"));
        assert!(t.username.is_none());
        assert!(
            from_docker_config(&p, "empty.example.com")
                .unwrap()
                .is_none()
        );
        assert!(
            from_docker_config(&p, "other.example.com")
                .unwrap()
                .is_none()
        );
        assert!(
            from_docker_config(&d.path().join("missing.json"), "x")
                .unwrap()
                .is_none()
        );
        // The header is base64url JSON without the source.
        let h = base64::engine::general_purpose::URL_SAFE
            .decode(a.header())
            .unwrap();
        let j: J = serde_json::from_slice(&h).unwrap();
        assert_eq!(j["username"], "ada");
        assert_eq!(j["serveraddress"], "reg.example.com:5000");
        assert!(j.get("source").is_none());
    }

    #[test]
    fn broken_configs_and_missing_helpers_say_what_to_fix() {
        let d = tempfile::tempdir().unwrap();
        let p = config(d.path(), "{not json");
        let e = from_docker_config(&p, "x").unwrap_err().to_string();
        assert!(e.contains("not a valid Docker config file"), "{e}");
        let p = config(d.path(), r#"{"auths": {"x": {"auth": "%%%"}}}"#);
        let e = from_docker_config(&p, "x").unwrap_err();
        let u = e.downcast_ref::<UserError>().unwrap();
        assert!(u.message.contains("not base64"), "{}", u.message);
        let p = config(
            d.path(),
            r#"{"credHelpers": {"x": "nonexistent-helper-plx"}}"#,
        );
        let e = from_docker_config(&p, "x").unwrap_err();
        let u = e.downcast_ref::<UserError>().unwrap();
        assert!(
            u.message
                .contains("docker-credential-nonexistent-helper-plx"),
            "{}",
            u.message
        );
    }

    #[test]
    fn credential_helpers_are_asked_over_their_protocol() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("docker-credential-plxtest");
        // Answers for two hosts only, like a real helper.
        std::fs::write(
            &bin,
            "#!/bin/sh\nread host\n[ \"$1\" = get ] || exit 2\nif [ \"$host\" = reg.example.com ]; then\n  echo '{\"ServerURL\":\"reg.example.com\",\"Username\":\"bob\",\"Secret\":\"pw\"}'\nelif [ \"$host\" = tok.example.com ]; then\n  echo '{\"Username\":\"<token>\",\"Secret\":\"idt\"}'\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        // credsStore for every host; credHelpers wins for its own.
        let p = config(
            d.path(),
            r#"{"credsStore": "plxtest", "credHelpers": {"tok.example.com": "plxtest"},
                "auths": {"reg.example.com": {}}}"#,
        );
        let got = lookup(&p, "reg.example.com", Some(d.path()))
            .unwrap()
            .unwrap();
        assert_eq!(got.username.as_deref(), Some("bob"));
        assert_eq!(got.password.as_deref(), Some("pw"));
        assert!(got.source.contains("plxtest"));
        let tok = lookup(&p, "tok.example.com", Some(d.path()))
            .unwrap()
            .unwrap();
        assert_eq!(tok.identitytoken.as_deref(), Some("idt"));
        assert!(
            lookup(&p, "none.example.com", Some(d.path()))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn push_progress_is_per_layer_and_throttled() {
        let msgs = [
            r#"{"status":"The push refers to repository [localhost:5000/x]"}"#,
            r#"{"status":"Preparing","progressDetail":{},"id":"aaaaaaaaaaaa"}"#,
            r#"{"status":"Preparing","progressDetail":{},"id":"bbbbbbbbbbbb"}"#,
            r#"{"status":"Layer already exists","progressDetail":{},"id":"bbbbbbbbbbbb"}"#,
            r#"{"status":"Pushing","progressDetail":{"current":512,"total":2048},"progress":"[==>   ]","id":"aaaaaaaaaaaa"}"#,
            r#"{"status":"Pushing","progressDetail":{"current":1024,"total":2048},"id":"aaaaaaaaaaaa"}"#,
            r#"{"status":"Pushing","progressDetail":{"current":2048,"total":2048},"id":"aaaaaaaaaaaa"}"#,
            r#"{"status":"Pushed","progressDetail":{},"id":"aaaaaaaaaaaa"}"#,
            r#"{"status":"1: digest: sha256:abc size: 735"}"#,
            r#"{"progressDetail":{},"aux":{"Tag":"1","Digest":"sha256:abc","Size":735}}"#,
        ];
        let mut p = PushProgress::new(Duration::from_secs(2));
        let t0 = Instant::now();
        let mut lines = vec![];
        for (i, m) in msgs.iter().enumerate() {
            let m: PushMessage = serde_json::from_str(m).unwrap();
            // The third Pushing comes 3 s after the first: due again.
            let at = t0 + Duration::from_millis(if i == 6 { 3000 } else { 10 * i as u64 });
            lines.extend(p.feed(&m, at).unwrap());
        }
        assert_eq!(
            lines,
            [
                "layer bbbbbbbbbbbb: already in the registry",
                "layer aaaaaaaaaaaa: pushing 512 B / 2.0 KiB (25%)",
                "layer aaaaaaaaaaaa: pushing 2.0 KiB / 2.0 KiB (100%)",
                "layer aaaaaaaaaaaa: pushed (2.0 KiB)",
            ]
        );
        assert_eq!(p.digest.as_deref(), Some("sha256:abc"));
        assert_eq!(p.size, Some(735));
        assert_eq!(
            p.summary(),
            "2 layers: 1 pushed (2.0 KiB), 1 already in the registry"
        );
        let err: PushMessage = serde_json::from_str(
            r#"{"errorDetail":{"message":"unauthorized: authentication required"},"error":"unauthorized: authentication required"}"#,
        )
        .unwrap();
        let e = p.feed(&err, t0).unwrap_err();
        assert!(push_hint(&e, "localhost:5000", None).contains("docker login localhost:5000"));
        assert!(
            push_hint(
                "Get \"https://r:5000/v2/\": http: server gave HTTP response to HTTPS client",
                "r:5000",
                None
            )
            .contains("insecure-registries")
        );
    }
}
