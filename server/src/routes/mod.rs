//! The HTTP routes, in Polyaxon's v1 shapes. Handlers check access, call the store, and map
//! rows to wire types; errors map to HTTP in `crate::error`.

pub mod agents;
pub mod auth;
pub mod connections;
pub mod meta;
pub mod projects;
pub mod runs;
pub mod services;
pub mod streams;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use serde::Deserialize;

use crate::App;
use crate::api::{RunStatus, V1Project, V1Run, V1StatusCondition, time};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::store::{ProjectRow, RunRow, StatusRow};

/// Every route of the API.
pub fn router(app: App) -> Router {
    let json_limit = app.config.max_body;
    let metrics_limit = app.config.max_metrics_body;
    Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/api/v1/openapi.json", get(meta::openapi))
        .route("/api/v1/installation", get(meta::installation))
        .route(
            "/api/v1/compatibility/{uuid}/{version}/{service}",
            get(meta::compatibility),
        )
        .route("/api/v1/auth/token", post(auth::login))
        .route("/api/v1/users", get(auth::whoami))
        .route(
            "/api/v1/users/tokens",
            get(auth::list_tokens).post(auth::create_token),
        )
        .route(
            "/api/v1/users/tokens/{uuid}",
            axum::routing::delete(auth::delete_token),
        )
        .route("/api/v1/admin/users", post(auth::create_user))
        .route(
            "/api/v1/admin/agents",
            get(agents::list).post(agents::register),
        )
        .route(
            "/api/v1/admin/agents/{name}",
            axum::routing::delete(agents::stop),
        )
        .route(
            "/api/v1/admin/agents/{name}/heartbeat",
            post(agents::heartbeat),
        )
        .route("/api/v1/admin/agents/{name}/claim", post(agents::claim))
        .route("/api/v1/admin/agents/{name}/release", post(agents::release))
        .route("/api/v1/admin/runs/claimed", get(agents::claimed))
        .route(
            "/api/v1/admin/queues",
            get(agents::queues).post(agents::put_queue),
        )
        .route(
            "/api/v1/admin/queues/{name}",
            get(agents::get_queue).delete(agents::delete_queue),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}/claim",
            post(agents::claim_run),
        )
        .route(
            "/api/v1/orgs/{owner}/connections",
            get(connections::list).post(connections::create),
        )
        .route(
            "/api/v1/orgs/{owner}/connections/{name}",
            get(connections::get).delete(connections::delete),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}/notifications",
            get(connections::deliveries),
        )
        .route("/api/v1/{owner}/projects/list", get(projects::list))
        .route("/api/v1/{owner}/projects/create", post(projects::create))
        .route(
            "/api/v1/{owner}/{project}",
            get(projects::get)
                .patch(projects::patch)
                .put(projects::put)
                .delete(projects::delete),
        )
        .route(
            "/api/v1/{owner}/{project}/runs",
            get(runs::list).post(runs::create),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/delete",
            axum::routing::delete(runs::delete_many),
        )
        .route("/api/v1/{owner}/{project}/runs/stop", post(runs::stop_many))
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}",
            get(runs::get)
                .patch(runs::patch)
                .put(runs::put)
                .delete(runs::delete),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}/statuses",
            get(runs::statuses).post(runs::create_status),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}/stop",
            post(runs::stop),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}/skip",
            post(runs::skip),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}/restart",
            post(runs::restart),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}/copy",
            post(runs::copy),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}/resume",
            post(runs::resume),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}/approve",
            post(runs::approve),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}/impersonate",
            post(runs::impersonate),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}/lineage/artifacts",
            get(runs::lineage).post(runs::create_lineage),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}/lineage/artifacts/names",
            get(runs::lineage_names),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}/lineage/artifacts/{name}",
            get(runs::lineage_one).delete(runs::delete_lineage),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/lineage/artifacts",
            get(runs::project_lineage),
        )
        .route(
            "/api/v1/{owner}/{project}/runs/{uuid}/artifacts/upload",
            // The handler enforces the upload limit as it streams (and refuses a declared
            // oversize cleanly).
            post(streams::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/logs",
            get(streams::logs).post(streams::append_logs),
        )
        .route(
            "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/events/{kind}",
            get(streams::events),
        )
        .route(
            "/streams/v1/{namespace}/{owner}/{project}/runs/multi/events/{kind}",
            get(streams::multi_events),
        )
        .route(
            "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/resources",
            get(streams::resources),
        )
        .route(
            "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/events/sync",
            post(streams::sync_event_files),
        )
        .route(
            "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/metrics",
            post(streams::ingest).layer(DefaultBodyLimit::max(metrics_limit)),
        )
        .route(
            "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/artifacts/tree",
            get(streams::tree),
        )
        .route(
            "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/artifact",
            get(streams::artifact).delete(streams::delete_artifact),
        )
        .route(
            "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/artifacts",
            get(streams::artifacts_archive).delete(streams::delete_artifacts),
        )
        // Every refusal of the API in its JSON shape, also those the framework writes itself
        // (a query string or path that does not parse, a method not allowed).
        .layer(axum::middleware::from_fn(json_errors))
        // A running service, HTTP and WebSocket, its bodies unlimited (a notebook's uploads);
        // after `json_errors`: the service's own answers pass as they are.
        .route(
            "/services/v1/{namespace}/{owner}/{project}/runs/{uuid}",
            any(services::proxy).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/services/v1/{namespace}/{owner}/{project}/runs/{uuid}/",
            any(services::proxy).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/services/v1/{namespace}/{owner}/{project}/runs/{uuid}/{*rest}",
            any(services::proxy).layer(DefaultBodyLimit::disable()),
        )
        .merge(crate::ui::routes())
        .layer(DefaultBodyLimit::max(json_limit))
        .with_state(app)
}

/// Rewrites a client error that is not JSON (the framework's own, in plain text or empty)
/// into the API's error body, keeping its status and headers (`Allow`, `Retry-After`).
async fn json_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    let resp = next.run(req).await;
    let status = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if !status.is_client_error() || json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 10)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let error = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("refused")
            .to_lowercase()
    } else {
        text
    };
    let code = match status.as_u16() {
        400 => "bad_request",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable_entity",
        _ => "client_error",
    };
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = axum::Json(crate::api::ApiErrorBody {
        error,
        code: code.to_string(),
    });
    (parts, body).into_response()
}

/// Query parameters of listings.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many results to skip.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// How many results at most (default 20, at most 1000; `no_page` returns all).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Sort fields, comma-separated, `-` for descending (`-created_at`).
    pub sort: Option<String>,
    /// A query in upstream's query language (`status: running, metrics.loss: <0.2`).
    pub query: Option<String>,
    /// Return everything in one page.
    pub no_page: Option<bool>,
}

impl ListQuery {
    pub fn page(&self) -> ApiResult<(i64, i64)> {
        let offset = self.offset.unwrap_or(0);
        let limit = if self.no_page == Some(true) {
            100_000
        } else {
            self.limit.unwrap_or(20)
        };
        if offset < 0 || self.limit.is_some_and(|l| !(1..=1000).contains(&l)) {
            return Err(ApiError::BadRequest(
                "`offset` must be >= 0 and `limit` between 1 and 1000".into(),
            ));
        }
        Ok((offset, limit))
    }

    /// `next`/`previous` links of a page.
    pub fn links(&self, count: i64, offset: i64, limit: i64) -> (Option<String>, Option<String>) {
        let extra = |o: i64| {
            let mut s = format!("?offset={o}&limit={limit}");
            if let Some(q) = &self.query {
                s.push_str(&format!("&query={}", url_escape(q)));
            }
            if let Some(so) = &self.sort {
                s.push_str(&format!("&sort={}", url_escape(so)));
            }
            s
        };
        // Saturating: an offset near the largest integer is a valid (empty) page.
        let next = (offset.saturating_add(limit) < count).then(|| extra(offset + limit));
        let prev = (offset > 0).then(|| extra(offset.saturating_sub(limit).max(0)));
        (next, prev)
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn project_json(p: &ProjectRow) -> V1Project {
    V1Project {
        uuid: Some(p.uuid.clone()),
        owner: Some(p.owner.clone()),
        user: Some(p.owner.clone()),
        name: Some(p.name.clone()),
        description: p.description.clone(),
        tags: Some(p.tags()),
        created_at: Some(time(p.created_at)),
        updated_at: Some(time(p.updated_at)),
        is_public: Some(p.is_public.0),
        readme: p.readme.clone(),
        role: None,
        bookmarked: Some(false),
        settings: p
            .settings
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok()),
    }
}

pub fn condition_json(s: &StatusRow) -> V1StatusCondition {
    V1StatusCondition {
        kind: RunStatus::parse(&s.kind).unwrap_or(RunStatus::Unknown),
        status: Some(serde_json::Value::String(s.status.clone())),
        reason: s.reason.clone(),
        message: s.message.clone(),
        last_update_time: Some(time(s.created_at)),
        last_transition_time: Some(time(s.created_at)),
        meta_info: s
            .meta_info
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok()),
    }
}

pub fn run_json(r: &RunRow, conditions: Option<Vec<V1StatusCondition>>) -> V1Run {
    let nonempty = |m: serde_json::Map<String, serde_json::Value>| Some(m);
    V1Run {
        uuid: Some(r.uuid.clone()),
        name: r.name.clone(),
        description: r.description.clone(),
        tags: Some(r.tags()),
        user: r.username.clone(),
        owner: Some(r.owner.clone()),
        project: Some(r.project.clone()),
        created_at: Some(time(r.created_at)),
        updated_at: Some(time(r.updated_at)),
        started_at: r.started_at.map(time),
        finished_at: r.finished_at.map(time),
        wait_time: r.wait_time,
        duration: r.duration,
        managed_by: r.managed_by.clone(),
        is_managed: Some(r.is_managed.0),
        is_approved: Some(r.is_approved.0),
        pending: r.pending.clone(),
        content: r.content.clone(),
        raw_content: r.raw_content.clone(),
        status: Some(r.status()),
        meta_info: nonempty(r.meta_info()),
        kind: r.kind.clone(),
        runtime: r.runtime.clone(),
        inputs: nonempty(r.inputs()),
        outputs: nonempty(r.outputs()),
        original: r.original_uuid.as_ref().map(|u| crate::api::V1Cloning {
            uuid: u.clone(),
            name: None,
            kind: r.cloning_kind.clone(),
        }),
        pipeline: r.pipeline_uuid.as_ref().map(|u| crate::api::V1Pipeline {
            uuid: u.clone(),
            name: None,
            kind: r.pipeline_kind.clone(),
        }),
        status_conditions: conditions,
        settings: Some(match (&r.queue, &r.agent) {
            (Some(q), Some(a)) => {
                serde_json::json!({"namespace": "polyaxon", "queue": {"name": q}, "agent": {"name": a}})
            }
            (Some(q), None) => serde_json::json!({"namespace": "polyaxon", "queue": {"name": q}}),
            _ => serde_json::json!({"namespace": "polyaxon"}),
        }),
        merge: None,
        queue: r.queue.clone(),
        priority: Some(r.priority),
        agent: r.agent.clone(),
    }
}

/// The project, visible to the caller; with `write`, writable by them too.
pub async fn project_for(
    app: &App,
    who: &Principal,
    owner: &str,
    name: &str,
    write: bool,
) -> ApiResult<ProjectRow> {
    let p = app.store.project(owner, name, &who.user).await?;
    if write && !app.store.can_write_project(&p, &who.user).await? {
        return Err(ApiError::Forbidden(format!(
            "you may read `{owner}/{name}` but not change it"
        )));
    }
    Ok(p)
}

/// The run a request's path names (`…/{owner}/{project}/runs/{uuid}…`), looked up for the
/// caller: 404 unless they may see it, 403 with `WRITE` unless they may change it too. What
/// every run route opens with.
pub struct RunAccess<const WRITE: bool> {
    pub who: Principal,
    pub project: ProjectRow,
    pub run: RunRow,
}

/// A run the caller may read.
pub type ReadRun = RunAccess<false>;
/// A run the caller may change.
pub type WriteRun = RunAccess<true>;

#[derive(serde::Deserialize)]
struct RunPathParams {
    owner: String,
    project: String,
    uuid: String,
}

impl<const WRITE: bool> axum::extract::FromRequestParts<App> for RunAccess<WRITE> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        app: &App,
    ) -> Result<Self, ApiError> {
        let who = Principal::from_request_parts(parts, app).await?;
        let axum::extract::Path(p) =
            axum::extract::Path::<RunPathParams>::from_request_parts(parts, app)
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let (project, run) = run_for(app, &who, &p.owner, &p.project, &p.uuid, WRITE).await?;
        Ok(RunAccess { who, project, run })
    }
}

/// The run, in the project, for this caller.
pub async fn run_for(
    app: &App,
    who: &Principal,
    owner: &str,
    project: &str,
    uuid: &str,
    write: bool,
) -> ApiResult<(ProjectRow, RunRow)> {
    who.check_run(uuid)?;
    let p = project_for(app, who, owner, project, write).await?;
    let r = app.store.run_by_uuid(uuid).await?;
    if r.project_id != p.id {
        return Err(ApiError::NotFound(format!(
            "run `{uuid}` not found in `{owner}/{project}`"
        )));
    }
    Ok((p, r))
}
