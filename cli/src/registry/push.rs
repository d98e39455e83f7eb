//! Pushing an image through the Engine's API on its socket, reading the Engine's own progress
//! messages (which name the layer each is about) into lines for the run's logs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value as J;

use super::Auth;
use crate::env::{
    POLYAXON_K8S_REGISTRY as REGISTRY_ENV, POLYAXON_K8S_REGISTRY_PASSWORD as PASSWORD_ENV,
    POLYAXON_K8S_REGISTRY_USERNAME as USERNAME_ENV,
};
use crate::error::UserError;

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
    crate::output::human_bytes(b)
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

/// Tags the local image `local` as `repo:tag`.
pub async fn tag_image(docker: &bollard::Docker, local: &str, repo: &str, tag: &str) -> Result<()> {
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
    Ok(())
}

/// Tags the local image `local` as `repo:tag` and pushes it, each line of progress to `log`.
/// Returns the pushed image by digest (`repo:tag@sha256:…`), which is what pods should run.
pub async fn push(
    docker: &bollard::Docker,
    socket: &Path,
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
    tag_image(docker, local, repo, tag).await?;
    // Tags are `[A-Za-z0-9_.-]` (ours are hashes): nothing to escape in the query.
    anyhow::ensure!(
        tag.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')),
        "`{tag}` is not a valid image tag"
    );
    let stream = tokio::net::UnixStream::connect(socket)
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
