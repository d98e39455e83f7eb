//! The API client: every call the CLI makes, typed in and out, over a [`Transport`] (HTTP to a
//! server, or the embedded one in-process). Errors say what failed and what to do about it.
//! No API path is written outside this module.

pub mod transport;

use bytes::Bytes;
use http::{Method, StatusCode};
use polyaxon_server::api::{
    ApiErrorBody, EventFilesSynced, MetricsBatch, MetricsBatchResult, RunStatus, V1Agent,
    V1AgentHeartbeat, V1AgentHeld, V1ArtifactTree, V1Auth, V1ClaimRequest, V1ClaimResponse,
    V1Connection, V1Credentials, V1EntityStatusBodyRequest, V1EventsResponse, V1Installation,
    V1ListAgentsResponse, V1ListClaimedResponse, V1ListConnectionsResponse,
    V1ListDeliveriesResponse, V1ListProjectsResponse, V1ListQueuesResponse, V1ListRunsResponse,
    V1ListTokenResponse, V1Log, V1Logs, V1OperationBody, V1Project, V1Queue, V1Release, V1Run,
    V1Status, V1StatusCondition, V1Token, V1User,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as J};

pub use transport::{EMBEDDED_USER, Response, Transport, TransportError};

use crate::credentials;
use crate::settings::Settings;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server answered with an error.
    #[error("{message}")]
    Api {
        status: StatusCode,
        message: String,
        /// Where the call went, for hints.
        target: String,
        token_from_env: bool,
    },
    #[error("unexpected answer from {target} ({what}): {reason}")]
    Decode {
        target: String,
        what: String,
        reason: String,
    },
}

impl ClientError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// What to do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            ClientError::Transport(TransportError::Connect { host, .. }) => Some(format!(
                "is the server running at {host}? `polyaxon config show` shows the host; `polyaxon config set --host` changes it"
            )),
            ClientError::Transport(TransportError::Timeout { .. }) => Some(
                "the server may be busy; raise the limit with `polyaxon config set --timeout SECONDS`".into(),
            ),
            ClientError::Transport(TransportError::Embedded { .. }) => Some(
                "check that `POLYAXON_HOME` is writable; a store from a newer polyaxon needs that version".into(),
            ),
            ClientError::Api {
                status,
                token_from_env,
                ..
            } if *status == StatusCode::UNAUTHORIZED => Some(if *token_from_env {
                "POLYAXON_AUTH_TOKEN is set: check its value, or unset it and run `polyaxon login`".into()
            } else {
                "log in with `polyaxon login`".into()
            }),
            ClientError::Api { status, .. } if *status == StatusCode::FORBIDDEN => {
                Some("ask the project's owner for access, or check `polyaxon whoami`".into())
            }
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A client of one server (or of the embedded store).
pub struct Client {
    transport: Box<dyn Transport>,
    token_from_env: bool,
    embedded: bool,
    /// The embedded server, when that is where calls go.
    app: Option<polyaxon_server::App>,
}

/// Query parameters for list calls.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub query: Option<String>,
    pub sort: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl ListQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(q) = &self.query {
            v.push(("query", q.clone()));
        }
        if let Some(s) = &self.sort {
            v.push(("sort", s.clone()));
        }
        if let Some(l) = self.limit {
            v.push(("limit", l.to_string()));
        }
        if let Some(o) = self.offset {
            v.push(("offset", o.to_string()));
        }
        v
    }
}

/// `path?k=v&…`, percent-encoded.
fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return path.to_string();
    }
    let mut url = reqwest::Url::parse("http://x/").expect("a valid base");
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    format!("{path}?{}", url.query().unwrap_or_default())
}

/// A path segment, percent-encoded.
fn seg(s: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("a valid base");
    url.path_segments_mut().expect("a base URL").push(s);
    url.path().trim_start_matches('/').to_string()
}

impl Client {
    /// A client for the configured server, or for the embedded store when there is none.
    pub async fn connect(settings: &Settings) -> Result<Client, anyhow::Error> {
        match &settings.host {
            None => {
                let t = transport::Embedded::open(&settings.home)
                    .await
                    .map_err(ClientError::from)?;
                let app = Some(t.app.clone());
                Ok(Client {
                    transport: Box::new(t),
                    token_from_env: false,
                    embedded: true,
                    app,
                })
            }
            Some(host) => {
                let token = credentials::token(settings)?;
                Ok(Client {
                    transport: Box::new(
                        transport::Http::new(host, token, settings.timeout, settings.verify_ssl)
                            .map_err(ClientError::from)?,
                    ),
                    token_from_env: settings.env_token.is_some(),
                    embedded: false,
                    app: None,
                })
            }
        }
    }

    /// A client over any transport (tests; the embedded server shared with a job).
    pub fn with_transport(transport: Box<dyn Transport>, embedded: bool) -> Client {
        Client {
            transport,
            token_from_env: false,
            embedded,
            app: None,
        }
    }

    /// The embedded server this client calls, if it is one.
    pub fn embedded_app(&self) -> Option<&polyaxon_server::App> {
        self.app.as_ref()
    }

    pub fn is_embedded(&self) -> bool {
        self.embedded
    }

    pub fn describe(&self) -> String {
        self.transport.describe()
    }

    /// Sends a request; a non-2xx answer is an error carrying the server's message. Commands
    /// use the typed calls below; this is for them and for tests.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<Response> {
        self.call_as(method, path, body, false).await
    }

    /// As [`Client::call`], for a call that may be repeated: sending it twice does what
    /// sending it once does, so it is retried when the server is busy or out of reach.
    pub async fn call_repeatable(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<Response> {
        self.call_as(method, path, body, true).await
    }

    async fn call_as(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
        repeatable: bool,
    ) -> Result<Response> {
        let resp = self
            .transport
            .send(transport::Request {
                method,
                path: path.to_string(),
                body,
                file_body: None,
                repeatable,
            })
            .await?;
        self.answered(resp).await
    }

    /// The response, or the error a non-2xx one carries (the server's message).
    async fn answered(&self, resp: Response) -> Result<Response> {
        if resp.status.is_success() {
            return Ok(resp);
        }
        let status = resp.status;
        let bytes = resp.bytes().await.unwrap_or_default();
        let message = serde_json::from_slice::<ApiErrorBody>(&bytes)
            .map(|b| b.error)
            .unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(&bytes);
                let text = text.trim();
                if text.is_empty() || text.len() > 300 {
                    format!("{} answered {status}", self.transport.describe())
                } else {
                    format!("{} answered {status}: {text}", self.transport.describe())
                }
            });
        Err(ClientError::Api {
            status,
            message,
            target: self.transport.describe(),
            token_from_env: self.token_from_env,
        })
    }

    /// A JSON call.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T> {
        self.json_as(method, path, body, false).await
    }

    /// A JSON call that may be repeated (see [`Client::call_repeatable`]).
    pub async fn json_repeatable<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T> {
        self.json_as(method, path, body, true).await
    }

    async fn json_as<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        repeatable: bool,
    ) -> Result<T> {
        let body = body.map(|b| {
            (
                Bytes::from(serde_json::to_vec(b).expect("serializable")),
                "application/json",
            )
        });
        let resp = self.call_as(method, path, body, repeatable).await?;
        let bytes = resp.bytes().await.map_err(|e| {
            ClientError::Transport(TransportError::Other(format!("reading the answer: {e}")))
        })?;
        if bytes.is_empty() {
            // No content: a unit-like type.
            return serde_json::from_slice(b"null").map_err(|e| self.decode_error(path, e));
        }
        serde_json::from_slice(&bytes).map_err(|e| self.decode_error(path, e))
    }

    fn decode_error(&self, path: &str, e: serde_json::Error) -> ClientError {
        ClientError::Decode {
            target: self.transport.describe(),
            what: path.split('?').next().unwrap_or(path).to_string(),
            reason: e.to_string(),
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.json(Method::GET, path, None::<&()>).await
    }

    // --- users ---

    pub async fn login(&self, username: &str, password: &str) -> Result<String> {
        let a: V1Auth = self
            .json(
                Method::POST,
                "/api/v1/auth/token",
                Some(&V1Credentials {
                    username: username.into(),
                    password: password.into(),
                }),
            )
            .await?;
        Ok(a.token)
    }

    pub async fn whoami(&self) -> Result<V1User> {
        self.get("/api/v1/users").await
    }

    /// The signed-in user's personal tokens, without their secrets.
    pub async fn list_tokens(&self) -> Result<V1ListTokenResponse> {
        self.get("/api/v1/users/tokens").await
    }

    /// A new personal token; its secret is in `key`, this once.
    pub async fn create_token(&self, t: &V1Token) -> Result<V1Token> {
        self.json(Method::POST, "/api/v1/users/tokens", Some(t))
            .await
    }

    /// Revokes a personal token by id.
    pub async fn delete_token(&self, uuid: &str) -> Result<()> {
        self.call(
            Method::DELETE,
            &format!("/api/v1/users/tokens/{}", seg(uuid)),
            None,
        )
        .await?;
        Ok(())
    }

    // --- connections and deliveries ---

    /// The connections (their secrets' places shown to superusers only, never a value).
    pub async fn list_connections(&self) -> Result<V1ListConnectionsResponse> {
        self.get("/api/v1/orgs/default/connections").await
    }

    pub async fn get_connection(&self, name: &str) -> Result<V1Connection> {
        self.get(&format!("/api/v1/orgs/default/connections/{}", seg(name)))
            .await
    }

    pub async fn create_connection(&self, c: &V1Connection) -> Result<V1Connection> {
        self.json(Method::POST, "/api/v1/orgs/default/connections", Some(c))
            .await
    }

    pub async fn delete_connection(&self, name: &str) -> Result<()> {
        self.call(
            Method::DELETE,
            &format!("/api/v1/orgs/default/connections/{}", seg(name)),
            None,
        )
        .await?;
        Ok(())
    }

    /// A run's notifications and hooks, each with its state, tries and last error.
    pub async fn deliveries(&self, r: &RunRef) -> Result<V1ListDeliveriesResponse> {
        self.get(&r.api("/notifications")).await
    }

    pub async fn installation(&self) -> Result<V1Installation> {
        self.get("/api/v1/installation").await
    }

    // --- projects ---

    pub async fn list_projects(
        &self,
        owner: &str,
        q: &ListQuery,
    ) -> Result<V1ListProjectsResponse> {
        self.get(&with_query(
            &format!("/api/v1/{}/projects/list", seg(owner)),
            &q.pairs(),
        ))
        .await
    }

    pub async fn create_project(&self, owner: &str, p: &V1Project) -> Result<V1Project> {
        self.json(
            Method::POST,
            &format!("/api/v1/{}/projects/create", seg(owner)),
            Some(p),
        )
        .await
    }

    pub async fn get_project(&self, owner: &str, name: &str) -> Result<V1Project> {
        self.get(&project_path(owner, name)).await
    }

    pub async fn patch_project(&self, owner: &str, name: &str, p: &V1Project) -> Result<V1Project> {
        self.json_repeatable(Method::PATCH, &project_path(owner, name), Some(p))
            .await
    }

    pub async fn delete_project(&self, owner: &str, name: &str) -> Result<()> {
        self.call(Method::DELETE, &project_path(owner, name), None)
            .await?;
        Ok(())
    }

    // --- runs ---

    pub async fn list_runs(
        &self,
        owner: &str,
        project: &str,
        q: &ListQuery,
    ) -> Result<V1ListRunsResponse> {
        self.get(&with_query(
            &format!("{}/runs", project_path(owner, project)),
            &q.pairs(),
        ))
        .await
    }

    /// A run's artifacts lineage (`query` over name, kind, path…), every entry.
    pub async fn run_lineage(
        &self,
        r: &RunRef,
        query: Option<&str>,
    ) -> Result<polyaxon_server::api::V1ListRunArtifactsResponse> {
        let mut pairs = vec![("no_page", "true".to_string())];
        if let Some(q) = query {
            pairs.push(("query", q.to_string()));
        }
        self.get(&with_query(&r.api("/lineage/artifacts"), &pairs))
            .await
    }

    pub async fn get_run(&self, r: &RunRef) -> Result<V1Run> {
        self.get(&r.api("")).await
    }

    pub async fn patch_run(&self, r: &RunRef, patch: &V1Run) -> Result<V1Run> {
        self.json_repeatable(Method::PATCH, &r.api(""), Some(patch))
            .await
    }

    pub async fn delete_run(&self, r: &RunRef) -> Result<()> {
        self.call(Method::DELETE, &r.api(""), None).await?;
        Ok(())
    }

    pub async fn stop_run(&self, r: &RunRef) -> Result<()> {
        self.call_repeatable(Method::POST, &r.api("/stop"), None)
            .await?;
        Ok(())
    }

    /// Restarts (`copy` false) or copies a run; the new run.
    pub async fn restart_run(&self, r: &RunRef, copy: bool, body: &V1Run) -> Result<V1Run> {
        let what = if copy { "/copy" } else { "/restart" };
        self.json(Method::POST, &r.api(what), Some(body)).await
    }

    pub async fn resume_run(&self, r: &RunRef, body: &V1Run) -> Result<V1Run> {
        self.json(Method::POST, &r.api("/resume"), Some(body)).await
    }

    pub async fn statuses(&self, r: &RunRef) -> Result<V1Status> {
        self.get(&r.api("/statuses")).await
    }

    pub async fn logs(
        &self,
        r: &RunRef,
        last_file: Option<&str>,
        last_time: Option<&str>,
    ) -> Result<V1Logs> {
        let mut q = Vec::new();
        if let Some(f) = last_file {
            q.push(("last_file", f.to_string()));
        }
        if let Some(t) = last_time {
            q.push(("last_time", t.to_string()));
        }
        self.get(&with_query(&r.streams("/logs"), &q)).await
    }

    /// Metric series; all when `names` is empty; downsampled to `sample` points when given.
    pub async fn metrics(
        &self,
        r: &RunRef,
        names: &[String],
        sample: Option<usize>,
    ) -> Result<V1EventsResponse> {
        let mut q = Vec::new();
        if !names.is_empty() {
            q.push(("names", names.join(",")));
        }
        if let Some(n) = sample {
            q.push(("sample", n.to_string()));
        }
        self.get(&with_query(&r.streams("/events/metric"), &q))
            .await
    }

    pub async fn artifacts_tree(&self, r: &RunRef, path: Option<&str>) -> Result<V1ArtifactTree> {
        let q: Vec<(&str, String)> = path.map(|p| ("path", p.to_string())).into_iter().collect();
        self.get(&with_query(&r.streams("/artifacts/tree"), &q))
            .await
    }

    /// A run's file, streamed.
    pub async fn download_file(&self, r: &RunRef, path: &str) -> Result<Response> {
        self.call(
            Method::GET,
            &with_query(&r.streams("/artifact"), &[("path", path.to_string())]),
            None,
        )
        .await
    }

    /// A run's directory (or all its files) as a tar.gz stream.
    pub async fn download_archive(&self, r: &RunRef, path: Option<&str>) -> Result<Response> {
        let q: Vec<(&str, String)> = path.map(|p| ("path", p.to_string())).into_iter().collect();
        self.call(Method::GET, &with_query(&r.streams("/artifacts"), &q), None)
            .await
    }
}

// --- a run's life: what `polyaxon run` and the run controllers send ---

impl Client {
    /// Creates a run from an operation (`content`), in `owner/project`.
    pub async fn create_run(
        &self,
        owner: &str,
        project: &str,
        body: &V1OperationBody,
    ) -> Result<V1Run> {
        self.json(
            Method::POST,
            &format!("{}/runs", project_path(owner, project)),
            Some(body),
        )
        .await
    }

    /// Adds a status. `Ok(false)` when the run may not take it (409: it moved on meanwhile,
    /// e.g. it was stopped); repeating the current status is `Ok(true)` and changes nothing.
    pub async fn add_status(
        &self,
        r: &RunRef,
        kind: RunStatus,
        reason: &str,
        message: &str,
        meta: Option<Map<String, J>>,
    ) -> Result<bool> {
        let body = V1EntityStatusBodyRequest {
            condition: V1StatusCondition {
                kind,
                status: Some(J::String("True".into())),
                reason: Some(reason.to_string()),
                message: Some(message.to_string()),
                meta_info: meta,
                ..Default::default()
            },
            ..Default::default()
        };
        match self
            .json_repeatable::<V1Status>(Method::POST, &r.api("/statuses"), Some(&body))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(StatusCode::CONFLICT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Merges `meta` into the run's `meta_info` (each key replaced whole).
    pub async fn patch_meta(&self, r: &RunRef, meta: Map<String, J>) -> Result<V1Run> {
        self.patch_run(
            r,
            &V1Run {
                meta_info: Some(meta),
                merge: Some(true),
                ..Default::default()
            },
        )
        .await
    }

    /// Merges `outputs` into the run's outputs.
    pub async fn patch_outputs(&self, r: &RunRef, outputs: Map<String, J>) -> Result<V1Run> {
        self.patch_run(
            r,
            &V1Run {
                outputs: Some(outputs),
                merge: Some(true),
                ..Default::default()
            },
        )
        .await
    }

    /// Appends lines to the run's logs; a batch retried with the same `id` is written once.
    pub async fn append_logs(&self, r: &RunRef, logs: &[V1Log], id: Option<&str>) -> Result<()> {
        /// [`V1LogsAppend`], borrowed (a batch is retried as it is).
        #[derive(Serialize)]
        struct Append<'a> {
            logs: &'a [V1Log],
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<&'a str>,
        }
        self.json::<J>(
            Method::POST,
            &r.streams("/logs"),
            Some(&Append { logs, id }),
        )
        .await?;
        Ok(())
    }

    /// Adds metric points; a batch retried with the same `id` is applied once.
    pub async fn ingest_metrics(
        &self,
        r: &RunRef,
        batch: &MetricsBatch,
    ) -> Result<MetricsBatchResult> {
        self.json_repeatable(Method::POST, &r.streams("/metrics"), Some(batch))
            .await
    }

    /// Has the server ingest the metric event files the run's pods wrote into the artifacts
    /// store it shares with them; `last` once the job ended (a last line without its newline
    /// counts too).
    pub async fn sync_event_files(&self, r: &RunRef, last: bool) -> Result<EventFilesSynced> {
        self.json_repeatable(
            Method::POST,
            &with_query(&r.streams("/events/sync"), &[("last", last.to_string())]),
            None::<&()>,
        )
        .await
    }

    /// Unpacks a tar.gz into the run's artifacts, at `to` (the root when `None`), replacing
    /// what is there.
    pub async fn upload_artifacts(
        &self,
        r: &RunRef,
        to: Option<&str>,
        tar_gz: Bytes,
    ) -> Result<()> {
        // Unpacked over what is there: sending it again writes the same files.
        self.call_repeatable(
            Method::POST,
            &untar_upload_path(r, to),
            Some((tar_gz, "application/gzip")),
        )
        .await?;
        Ok(())
    }

    /// As [`Client::upload_artifacts`], the archive read from the file `tar_gz` as it is
    /// sent (a sidecar's batches, whatever their size).
    pub async fn upload_artifacts_file(
        &self,
        r: &RunRef,
        to: Option<&str>,
        tar_gz: &std::path::Path,
    ) -> Result<()> {
        let resp = self
            .transport
            .send(transport::Request {
                method: Method::POST,
                path: untar_upload_path(r, to),
                body: None,
                file_body: Some((tar_gz.to_path_buf(), "application/gzip")),
                repeatable: true,
            })
            .await?;
        self.answered(resp).await?;
        Ok(())
    }

    /// Skips a run that has not started.
    pub async fn skip_run(&self, r: &RunRef) -> Result<()> {
        self.call_repeatable(Method::POST, &r.api("/skip"), None)
            .await?;
        Ok(())
    }

    /// Approves a run that waits for approval.
    pub async fn approve_run(&self, r: &RunRef) -> Result<()> {
        self.call_repeatable(Method::POST, &r.api("/approve"), None)
            .await?;
        Ok(())
    }

    /// Claims a run for `holder`, who drives it (a conflict when someone else does).
    pub async fn claim_run(&self, r: &RunRef, holder: &str) -> Result<V1Run> {
        let body = V1Run {
            agent: Some(holder.to_string()),
            ..Default::default()
        };
        self.json_repeatable(Method::POST, &r.api("/claim"), Some(&body))
            .await
    }

    // --- agents and queues ---

    pub async fn register_agent(&self, a: &V1Agent) -> Result<V1Agent> {
        self.json(Method::POST, "/api/v1/admin/agents", Some(a))
            .await
    }

    pub async fn list_agents(&self) -> Result<V1ListAgentsResponse> {
        self.get("/api/v1/admin/agents").await
    }

    /// Renews the agent's claims; the runs it holds.
    pub async fn agent_heartbeat(&self, name: &str, h: &V1AgentHeartbeat) -> Result<V1AgentHeld> {
        self.json_repeatable(
            Method::POST,
            &format!("/api/v1/admin/agents/{}/heartbeat", seg(name)),
            Some(h),
        )
        .await
    }

    /// Claims queued runs, waiting up to `c.wait_ms` for one.
    pub async fn claim_runs(&self, name: &str, c: &V1ClaimRequest) -> Result<V1ClaimResponse> {
        self.json(
            Method::POST,
            &format!("/api/v1/admin/agents/{}/claim", seg(name)),
            Some(c),
        )
        .await
    }

    /// The agent stopped.
    pub async fn agent_stopped(&self, name: &str) -> Result<()> {
        self.call(
            Method::DELETE,
            &format!("/api/v1/admin/agents/{}", seg(name)),
            None,
        )
        .await?;
        Ok(())
    }

    /// Hands a claimed run that has not started back to its queue.
    pub async fn release_run(&self, agent: &str, r: &RunRef, why: &str) -> Result<()> {
        let body = V1Release {
            uuid: r.uuid.clone(),
            reason: why.to_string(),
        };
        self.call_repeatable(
            Method::POST,
            &format!("/api/v1/admin/agents/{}/release", seg(agent)),
            Some((
                Bytes::from(serde_json::to_vec(&body).expect("serializable")),
                "application/json",
            )),
        )
        .await?;
        Ok(())
    }

    /// Runs claimed on machine `host` and not ended, across projects (superusers).
    pub async fn claimed_on_host(&self, host: &str) -> Result<V1ListClaimedResponse> {
        self.get(&with_query(
            "/api/v1/admin/runs/claimed",
            &[("host", host.to_string())],
        ))
        .await
    }

    pub async fn list_queues(&self) -> Result<V1ListQueuesResponse> {
        self.get("/api/v1/admin/queues").await
    }

    pub async fn get_queue(&self, name: &str) -> Result<V1Queue> {
        self.get(&format!("/api/v1/admin/queues/{}", seg(name)))
            .await
    }

    /// Creates or changes a queue.
    pub async fn put_queue(&self, q: &V1Queue) -> Result<V1Queue> {
        self.json_repeatable(Method::POST, "/api/v1/admin/queues", Some(q))
            .await
    }

    pub async fn delete_queue(&self, name: &str) -> Result<()> {
        self.call(
            Method::DELETE,
            &format!("/api/v1/admin/queues/{}", seg(name)),
            None,
        )
        .await?;
        Ok(())
    }

    /// A token that can only read and write this run, for its job.
    pub async fn run_token(&self, r: &RunRef) -> Result<String> {
        // Another token for the same run, should an answer be lost: they all end with it.
        let a: V1Auth = self
            .json_repeatable(Method::POST, &r.api("/impersonate"), None::<&()>)
            .await?;
        Ok(a.token)
    }
}

fn project_path(owner: &str, name: &str) -> String {
    format!("/api/v1/{}/{}", seg(owner), seg(name))
}

/// The upload of a tar.gz unpacked into a run's artifacts at `to`, over what is there.
fn untar_upload_path(r: &RunRef, to: Option<&str>) -> String {
    let mut q: Vec<(&str, String)> = to.map(|p| ("path", p.to_string())).into_iter().collect();
    q.push(("untar", "true".into()));
    q.push(("overwrite", "true".into()));
    with_query(&r.api("/artifacts/upload"), &q)
}

/// A lineage path as a path under the run: relative already, or absolute under the run's
/// directory (`…/<uuid>/outputs/model`) as the tracking client may record it; `None` for a
/// URL or a path elsewhere.
pub fn lineage_path_in_run(path: &str, uuid: &str) -> Option<String> {
    if path.is_empty() || path.contains("://") {
        return None;
    }
    if let Some((_, rest)) = path.split_once(&format!("{uuid}/")) {
        return Some(rest.to_string());
    }
    if path.starts_with('/') {
        return None;
    }
    Some(path.trim_start_matches("./").to_string())
}

/// A run by owner, project and uuid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRef {
    pub owner: String,
    pub project: String,
    pub uuid: String,
}

impl RunRef {
    /// This run in another run's project (a search's trials, a DAG's ops).
    pub fn sibling(&self, uuid: &str) -> RunRef {
        RunRef {
            uuid: uuid.to_string(),
            ..self.clone()
        }
    }

    fn api(&self, rest: &str) -> String {
        format!(
            "/api/v1/{}/{}/runs/{}{rest}",
            seg(&self.owner),
            seg(&self.project),
            seg(&self.uuid)
        )
    }

    fn streams(&self, rest: &str) -> String {
        format!(
            "/streams/v1/polyaxon/{}/{}/runs/{}{rest}",
            seg(&self.owner),
            seg(&self.project),
            seg(&self.uuid)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded() {
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(
            with_query("/x", &[("query", "status: running|failed".into())]),
            "/x?query=status%3A+running%7Cfailed"
        );
        assert_eq!(with_query("/x", &[]), "/x");
    }
}
