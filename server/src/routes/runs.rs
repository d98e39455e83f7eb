//! Runs: create from an operation, list with queries, get, patch, delete, status history,
//! stop, restart/copy/resume, run-scoped tokens, lineage.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Map, Value as J};

use super::{ListQuery, ReadRun, RunAccess, WriteRun, condition_json, project_for, run_json};
use crate::App;
use crate::api::*;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::store::{LineageScope, NewRun, RunPatch, RunRow, TokenScope};

/// What the server learns from a run's spec.
struct Spec {
    kind: Option<String>,
    runtime: Option<String>,
    name: Option<String>,
    tags: Vec<String>,
    inputs: Map<String, J>,
    /// The spec's queue (`agent/queue` names keep the queue).
    queue: Option<String>,
    is_approved: Option<bool>,
}

/// Checks an operation (JSON or YAML text) and reads what the run record needs from it; its
/// templates see the connections' non-secret part (read only when it names connections).
async fn read_spec(app: &App, content: &str) -> ApiResult<Spec> {
    let connections = if content.contains("connections") {
        crate::notify::template_connections(&app.store.connections().await?)
    } else {
        Map::new()
    };
    let mut session = polyaxonfile::Session::new();
    let opts = polyaxonfile::Options {
        connections,
        ..Default::default()
    };
    let report =
        polyaxonfile::check_text(&mut session, "content", content, &opts).map_err(|d| {
            ApiError::BadRequest(format!(
                "the operation in `content` is not valid:\n{}",
                d.render(&session.sources, false)
            ))
        })?;
    let comp = &report.prepared.component;
    let op = &report.prepared.operation;
    let run_kind = comp.run.as_ref().map(|r| r.kind().to_string());
    let mut inputs = Map::new();
    if let Some(c) = &report.compiled {
        for v in c
            .values
            .iter()
            .filter(|v| !v.is_output && !v.value.is_null())
        {
            if !matches!(
                v.source,
                polyaxonfile::compile::ValueSource::Matrix
                    | polyaxonfile::compile::ValueSource::Ref
            ) {
                inputs.insert(v.name.clone(), v.value.clone());
            }
        }
    }
    let mut tags: Vec<String> = comp.tags.clone().unwrap_or_default();
    for t in op.tags.iter().flatten() {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    Ok(Spec {
        kind: if op.schedule.is_some() {
            Some("schedule".into())
        } else if op.matrix.is_some() {
            Some("matrix".into())
        } else {
            run_kind.clone()
        },
        runtime: op
            .matrix
            .as_ref()
            .map(|m| m.kind().to_string())
            .or(run_kind),
        name: op.name.clone().or_else(|| comp.name.clone()),
        tags,
        inputs,
        queue: op
            .queue
            .clone()
            .or_else(|| comp.queue.clone())
            .map(|q| queue_name(&q)),
        is_approved: op.is_approved.or(comp.is_approved),
    })
}

/// Creates a run. With `content`, the operation is checked first (400 with the diagnostics
/// when it is not valid); without, the run is a tracking record (as `polyaxon.tracking` makes).
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs", tag = "runs", params(("owner" = String, Path), ("project" = String, Path)),
    request_body = V1OperationBody,
    responses((status = 200, body = V1Run), (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn create(
    State(app): State<App>,
    who: Principal,
    Path((owner, project)): Path<(String, String)>,
    ApiJson(body): ApiJson<V1OperationBody>,
) -> ApiResult<Json<V1Run>> {
    who.require_user_scope()?;
    let p = project_for(&app, &who, &owner, &project, true).await?;
    let spec = match body.content.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(c) => Some(read_spec(&app, c).await?),
        None => None,
    };
    // Kept as sent (a user's own keys too); the platform's are read typed.
    let mut meta = body.meta_info.unwrap_or_default();
    let typed = RunMeta::from_map(&meta);
    let pipeline = typed.parent().map(|u| {
        (
            u.replace('-', ""),
            typed
                .pipeline_kind
                .as_deref()
                .unwrap_or("matrix")
                .to_string(),
        )
    });
    if let Some(p) = &typed.pipeline {
        meta.insert("pipeline_uuid".into(), J::String(p.clone()));
    }
    let new = NewRun {
        name: body
            .name
            .or_else(|| spec.as_ref().and_then(|s| s.name.clone())),
        description: body.description,
        tags: body
            .tags
            .unwrap_or_else(|| spec.as_ref().map(|s| s.tags.clone()).unwrap_or_default()),
        kind: spec.as_ref().and_then(|s| s.kind.clone()),
        runtime: spec.as_ref().and_then(|s| s.runtime.clone()),
        content: body.content,
        raw_content: None,
        inputs: spec.as_ref().map(|s| s.inputs.clone()).unwrap_or_default(),
        outputs: Map::new(),
        meta_info: meta,
        managed_by: body.managed_by.or_else(|| {
            Some(if body.is_managed == Some(false) {
                "user".into()
            } else {
                "cli".into()
            })
        }),
        is_managed: body.is_managed.unwrap_or(spec.is_some()),
        pending: body.pending,
        original: None,
        needs_approval: body
            .is_approved
            .or_else(|| spec.as_ref().and_then(|s| s.is_approved))
            == Some(false),
        queue: body
            .queue
            .filter(|q| !q.is_empty())
            .or_else(|| spec.as_ref().and_then(|s| s.queue.clone()))
            .or_else(|| project_queue_of(&p)),
        priority: body.priority.unwrap_or(0),
        agent: body.agent.filter(|a| !a.is_empty()),
        pipeline,
    };
    let run = app.store.create_run(p.id, &who.user, new).await?;
    tracing::info!(run = %run.uuid, project = %format!("{owner}/{project}"), "run created");
    Ok(Json(run_json(&run, None)))
}

/// The queue a project's runs go to unless they name one (its settings' `queue`).
fn project_queue_of(p: &crate::store::ProjectRow) -> Option<String> {
    let settings: J = serde_json::from_str(p.settings.as_deref()?).ok()?;
    project_queue(&settings)
}

/// Lists a project's runs, with upstream's query language and sort.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs", tag = "runs", params(("owner" = String, Path), ("project" = String, Path), ListQuery),
    responses((status = 200, body = V1ListRunsResponse), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn list(
    State(app): State<App>,
    who: Principal,
    Path((owner, project)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<V1ListRunsResponse>> {
    who.require_user_scope()?;
    let p = project_for(&app, &who, &owner, &project, false).await?;
    let (offset, limit) = q.page()?;
    let (count, rows) = app
        .store
        .list_runs(
            p.id,
            q.query.as_deref().unwrap_or(""),
            q.sort.as_deref().unwrap_or(""),
            limit,
            offset,
        )
        .await?;
    let (next, previous) = q.links(count, offset, limit);
    Ok(Json(V1ListRunsResponse {
        count,
        results: rows.iter().map(|r| run_json(r, None)).collect(),
        previous,
        next,
    }))
}

/// A run, with its status history.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = V1Run), (status = 404, body = ApiErrorBody)))]
pub async fn get(
    State(app): State<App>,
    RunAccess { run: r, .. }: ReadRun,
) -> ApiResult<Json<V1Run>> {
    let conds = app
        .store
        .statuses(r.id)
        .await?
        .iter()
        .map(condition_json)
        .collect();
    Ok(Json(run_json(&r, Some(conds))))
}

fn patch_of(body: V1Run, merge: bool) -> RunPatch {
    RunPatch {
        name: body.name,
        description: body.description,
        tags: body.tags,
        inputs: body.inputs,
        outputs: body.outputs,
        meta_info: body.meta_info,
        content: None,
        merge,
    }
}

/// Changes a run's name, description, tags, inputs, outputs or meta info; `"merge": true`
/// merges mappings and tags instead of replacing them. Before the run starts, `content` sets
/// its spec (checked first; its inputs become the run's).
#[utoipa::path(patch, path = "/api/v1/{owner}/{project}/runs/{uuid}", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)), request_body = V1Run,
    responses((status = 200, body = V1Run), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn patch(
    State(app): State<App>,
    RunAccess { run: r, .. }: WriteRun,
    ApiJson(body): ApiJson<V1Run>,
) -> ApiResult<Json<V1Run>> {
    let merge = body.merge.unwrap_or(false);
    let mut row = None;
    if let Some(c) = body.content.as_deref() {
        let spec = read_spec(&app, c).await?;
        row = Some(
            app.store
                .set_spec(&r.uuid, c, spec.kind, spec.runtime, &spec.inputs)
                .await?,
        );
    }
    let patch = patch_of(body, merge);
    let row = match row {
        Some(row) if patch.is_empty() => row,
        _ => app.store.patch_run(&r.uuid, patch).await?,
    };
    Ok(Json(run_json(&row, None)))
}

/// Replaces a run's fields (as `patch` without merging).
#[utoipa::path(put, path = "/api/v1/{owner}/{project}/runs/{uuid}", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)), request_body = V1Run,
    responses((status = 200, body = V1Run), (status = 404, body = ApiErrorBody)))]
pub async fn put(
    State(app): State<App>,
    RunAccess { run: r, .. }: WriteRun,
    ApiJson(body): ApiJson<V1Run>,
) -> ApiResult<Json<V1Run>> {
    let row = app.store.patch_run(&r.uuid, patch_of(body, false)).await?;
    Ok(Json(run_json(&row, None)))
}

/// Deletes a run and its files.
#[utoipa::path(delete, path = "/api/v1/{owner}/{project}/runs/{uuid}", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
pub async fn delete(
    State(app): State<App>,
    RunAccess {
        who,
        project: p,
        run: r,
    }: WriteRun,
) -> ApiResult<StatusCode> {
    who.require_user_scope()?;
    app.store
        .delete_runs(p.id, std::slice::from_ref(&r.uuid))
        .await?;
    app.remove_run_files(&r.uuid).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes several runs.
#[utoipa::path(delete, path = "/api/v1/{owner}/{project}/runs/delete", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path)), request_body = V1Uuids,
    responses((status = 200, body = V1Uuids, description = "the runs deleted"), (status = 404, body = ApiErrorBody)))]
pub async fn delete_many(
    State(app): State<App>,
    who: Principal,
    Path((owner, project)): Path<(String, String)>,
    ApiJson(body): ApiJson<V1Uuids>,
) -> ApiResult<Json<V1Uuids>> {
    who.require_user_scope()?;
    let p = project_for(&app, &who, &owner, &project, true).await?;
    let deleted = app.store.delete_runs(p.id, &body.uuids).await?;
    for u in &deleted {
        app.remove_run_files(u).await;
    }
    Ok(Json(V1Uuids { uuids: deleted }))
}

/// Stops several runs.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/stop", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path)), request_body = V1Uuids,
    responses((status = 200, body = V1Uuids, description = "the runs asked to stop"), (status = 404, body = ApiErrorBody)))]
pub async fn stop_many(
    State(app): State<App>,
    who: Principal,
    Path((owner, project)): Path<(String, String)>,
    ApiJson(body): ApiJson<V1Uuids>,
) -> ApiResult<Json<V1Uuids>> {
    who.require_user_scope()?;
    let p = project_for(&app, &who, &owner, &project, true).await?;
    let mut stopped = Vec::new();
    for u in body.uuids {
        let r = app.store.run_by_uuid(&u).await?;
        if r.project_id == p.id && app.store.stop_run(&r.uuid).await.is_ok() {
            stopped.push(r.uuid);
        }
    }
    Ok(Json(V1Uuids { uuids: stopped }))
}

async fn status_json(app: &App, r: &RunRow) -> ApiResult<V1Status> {
    let run = app.store.run_by_uuid(&r.uuid).await?;
    let conds = app.store.statuses(run.id).await?;
    Ok(V1Status {
        uuid: run.uuid.clone(),
        status: run.status(),
        status_conditions: conds.iter().map(condition_json).collect(),
    })
}

/// A run's status and its history of conditions.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}/statuses", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = V1Status), (status = 404, body = ApiErrorBody)))]
pub async fn statuses(
    State(app): State<App>,
    RunAccess { run: r, .. }: ReadRun,
) -> ApiResult<Json<V1Status>> {
    Ok(Json(status_json(&app, &r).await?))
}

/// Adds a status condition. Only legal transitions are accepted (409 otherwise) unless
/// `force`; repeating the current status changes nothing.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/statuses", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)), request_body = V1EntityStatusBodyRequest,
    responses((status = 200, body = V1Status), (status = 400, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn create_status(
    State(app): State<App>,
    RunAccess { who, run: r, .. }: WriteRun,
    ApiJson(body): ApiJson<V1EntityStatusBodyRequest>,
) -> ApiResult<Json<V1Status>> {
    let c = body.condition;
    // A job does not end its own run while an executor supervises it: the executor records
    // the end once everything the job wrote is stored (a tracking client's `end()` would
    // otherwise mark it done too early).
    if matches!(who.scope, crate::store::TokenScope::Run(_))
        && c.kind.is_done()
        && r.meta().executor.is_some()
    {
        tracing::info!(run = %r.uuid, status = %c.kind, "final status from the job ignored: its executor records the end");
        return Ok(Json(status_json(&app, &r).await?));
    }
    app.store
        .add_status(
            &r.uuid,
            c.kind,
            c.reason.as_deref(),
            c.message.as_deref(),
            c.meta_info.as_ref(),
            body.force.unwrap_or(false),
        )
        .await?;
    // The run's logs, whole now, go to the artifacts store too (not waited for: a store out
    // of reach does not hold up the run's end; the logs stay here meanwhile).
    if c.kind.is_done() && app.config.artifacts_store.is_some() {
        let (app, uuid) = (app.clone(), r.uuid.clone());
        tokio::spawn(async move {
            if let Err(e) = app.keep_logs(&uuid).await {
                tracing::warn!(run = %uuid, "the run's logs are not in the artifacts store: {e:?}");
            }
        });
    }
    Ok(Json(status_json(&app, &r).await?))
}

/// Stops a run: at once if it has not started, else its executor is asked to (`stopping`).
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/stop", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = V1Status), (status = 409, body = ApiErrorBody)))]
pub async fn stop(
    State(app): State<App>,
    RunAccess { run: r, .. }: WriteRun,
) -> ApiResult<Json<V1Status>> {
    app.store.stop_run(&r.uuid).await?;
    Ok(Json(status_json(&app, &r).await?))
}

/// Skips a run that has not started (a DAG's operation: what depends on it sees it skipped).
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/skip", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = V1Status), (status = 409, body = ApiErrorBody)))]
pub async fn skip(
    State(app): State<App>,
    RunAccess { run: r, .. }: WriteRun,
) -> ApiResult<Json<V1Status>> {
    app.store.skip_run(&r.uuid).await?;
    Ok(Json(status_json(&app, &r).await?))
}

async fn clone(
    app: &App,
    who: &Principal,
    r: &RunRow,
    kind: &str,
    body: Option<V1Run>,
) -> ApiResult<Json<V1Run>> {
    who.require_user_scope()?;
    let body = body.unwrap_or_default();
    if let Some(c) = body.content.as_deref() {
        read_spec(app, c).await?;
    }
    let content = body.content.clone();
    let agent = body.agent.clone().filter(|a| !a.is_empty());
    let new = app
        .store
        .clone_run(r, &who.user, kind, content, patch_of(body, false), agent)
        .await?;
    if kind == "copy" {
        app.copy_run_files(&r.uuid, &new.uuid).await?;
    }
    Ok(Json(run_json(&new, None)))
}

fn optional_body(bytes: &[u8]) -> ApiResult<Option<V1Run>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(None)
    } else {
        crate::error::parse_json(bytes).map(Some)
    }
}

/// A new run with the same spec (another spec may be given in `content`).
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/restart", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)), request_body = Option<V1Run>,
    responses((status = 200, body = V1Run), (status = 404, body = ApiErrorBody)))]
pub async fn restart(
    State(app): State<App>,
    RunAccess { who, run: r, .. }: WriteRun,
    body: axum::body::Bytes,
) -> ApiResult<Json<V1Run>> {
    clone(&app, &who, &r, "restart", optional_body(&body)?).await
}

/// A new run with the same spec, its outputs and files copied.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/copy", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)), request_body = Option<V1Run>,
    responses((status = 200, body = V1Run), (status = 404, body = ApiErrorBody)))]
pub async fn copy(
    State(app): State<App>,
    RunAccess { who, run: r, .. }: WriteRun,
    body: axum::body::Bytes,
) -> ApiResult<Json<V1Run>> {
    clone(&app, &who, &r, "copy", optional_body(&body)?).await
}

/// Resumes a run that ended: the same run continues (`resuming`).
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/resume", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)), request_body = Option<V1Run>,
    responses((status = 200, body = V1Run), (status = 409, body = ApiErrorBody)))]
pub async fn resume(
    State(app): State<App>,
    RunAccess { who, run: r, .. }: WriteRun,
    body: axum::body::Bytes,
) -> ApiResult<Json<V1Run>> {
    who.require_user_scope()?;
    if !r.status().is_done() {
        return Err(ApiError::Conflict(format!(
            "the run is {}; only a run that ended can be resumed",
            r.status
        )));
    }
    let body = optional_body(&body)?;
    let agent = body
        .as_ref()
        .and_then(|b| b.agent.clone())
        .filter(|a| !a.is_empty());
    if let Some(b) = body
        && let Some(c) = b.content
    {
        // A new spec (e.g. more epochs): its params become the run's inputs.
        let spec = read_spec(&app, &c).await?;
        app.store
            .patch_run(
                &r.uuid,
                RunPatch {
                    content: Some(c),
                    inputs: Some(spec.inputs),
                    ..RunPatch::default()
                },
            )
            .await?;
    }
    if !r.status().is_done() {
        return Err(ApiError::Conflict(format!(
            "the run is {}; only a run that ended can be resumed",
            r.status
        )));
    }
    app.store
        .add_status(
            &r.uuid,
            RunStatus::Resuming,
            Some("PolyaxonRunResumed"),
            Some("Resume requested"),
            None,
            false,
        )
        .await?;
    // The caller drives it, or it waits in its queue for an agent.
    match agent {
        Some(a) => app.store.claim_run(&r.uuid, &a, None).await?,
        None if r.queue.is_some() && r.pipeline_uuid.is_none() => {
            app.store.queue_run(&r.uuid, "resumed").await?
        }
        None => {}
    }
    let row = app.store.run_by_uuid(&r.uuid).await?;
    Ok(Json(run_json(&row, None)))
}

/// Approves a run that waits for approval.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/approve", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = V1Run), (status = 404, body = ApiErrorBody)))]
pub async fn approve(
    State(app): State<App>,
    RunAccess { who, run: r, .. }: WriteRun,
) -> ApiResult<Json<V1Run>> {
    who.require_user_scope()?;
    app.store.approve_run(r.id).await?;
    // Approved, it goes to its queue (unless someone drives it already).
    if r.status() == RunStatus::Created
        && r.agent.is_none()
        && r.pipeline_uuid.is_none()
        && r.queue.is_some()
        && r.content.is_some()
    {
        app.store.queue_run(&r.uuid, "approved").await?;
    }
    Ok(Json(run_json(&app.store.run_by_uuid(&r.uuid).await?, None)))
}

/// A token that can only read and write this run, for the run's job.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/impersonate", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = V1Auth), (status = 403, body = ApiErrorBody)))]
pub async fn impersonate(
    State(app): State<App>,
    RunAccess { who, run: r, .. }: WriteRun,
) -> ApiResult<Json<V1Auth>> {
    who.require_user_scope()?;
    let (_, token) = app
        .store
        .create_token(
            who.user.id,
            &TokenScope::Run(r.uuid.clone()),
            Some("run"),
            None,
        )
        .await?;
    Ok(Json(V1Auth { token }))
}

/// Records artifacts a run produced or used (`polyaxon.tracking` sends them at the end).
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/lineage/artifacts", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)), request_body = V1RunArtifacts,
    responses((status = 201), (status = 400, body = ApiErrorBody)))]
pub async fn create_lineage(
    State(app): State<App>,
    RunAccess { run: r, .. }: WriteRun,
    ApiJson(body): ApiJson<V1RunArtifacts>,
) -> ApiResult<StatusCode> {
    app.store.upsert_artifacts(r.id, &body.artifacts).await?;
    Ok(StatusCode::CREATED)
}

/// The artifacts lineage recorded for a run, filtered by a query on `name`, `kind`, `path`,
/// `connection`, `created_at` (`kind: model|data, name: %best%`) and sorted (by name).
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}/lineage/artifacts", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), ListQuery),
    responses((status = 200, body = V1ListRunArtifactsResponse), (status = 400, body = ApiErrorBody)))]
pub async fn lineage(
    State(app): State<App>,
    RunAccess { run: r, .. }: ReadRun,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<V1ListRunArtifactsResponse>> {
    lineage_page(&app, LineageScope::Run(r.id), &q)
        .await
        .map(Json)
}

async fn lineage_page(
    app: &App,
    scope: LineageScope,
    q: &ListQuery,
) -> ApiResult<V1ListRunArtifactsResponse> {
    let (offset, limit) = q.page()?;
    let (count, results) = app
        .store
        .lineage(
            scope,
            q.query.as_deref().unwrap_or(""),
            q.sort.as_deref().unwrap_or(""),
            limit,
            offset,
        )
        .await?;
    let (next, previous) = q.links(count, offset, limit);
    Ok(V1ListRunArtifactsResponse {
        count,
        results,
        previous,
        next,
    })
}

/// The names of a run's artifacts lineage (the query and sort as for the list).
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}/lineage/artifacts/names", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), ListQuery),
    responses((status = 200, body = V1ListRunArtifactsResponse), (status = 400, body = ApiErrorBody)))]
pub async fn lineage_names(
    State(app): State<App>,
    RunAccess { run: r, .. }: ReadRun,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<V1ListRunArtifactsResponse>> {
    let mut page = lineage_page(&app, LineageScope::Run(r.id), &q).await?;
    for a in &mut page.results {
        *a = serde_json::json!({"name": a.get("name")});
    }
    Ok(Json(page))
}

#[derive(serde::Deserialize)]
pub struct LineagePath {
    name: String,
}

/// One artifact of a run's lineage, by name.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}/lineage/artifacts/{name}", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ApiErrorBody)))]
pub async fn lineage_one(
    State(app): State<App>,
    RunAccess { run: r, .. }: ReadRun,
    Path(LineagePath { name }): Path<LineagePath>,
) -> ApiResult<Json<J>> {
    // A run's lineage is a few entries: read whole, found by its exact name.
    let q = ListQuery {
        no_page: Some(true),
        ..Default::default()
    };
    let page = lineage_page(&app, LineageScope::Run(r.id), &q).await?;
    page.results
        .into_iter()
        .find(|a| a.get("name").and_then(J::as_str) == Some(name.as_str()))
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "run `{}` has no artifact `{name}` in its lineage",
                r.uuid
            ))
        })
}

/// Removes one artifact from a run's lineage (the files stay).
#[utoipa::path(delete, path = "/api/v1/{owner}/{project}/runs/{uuid}/lineage/artifacts/{name}", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
pub async fn delete_lineage(
    State(app): State<App>,
    RunAccess { run: r, .. }: WriteRun,
    Path(LineagePath { name }): Path<LineagePath>,
) -> ApiResult<StatusCode> {
    if app.store.delete_lineage(r.id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "run `{}` has no artifact `{name}` in its lineage",
            r.uuid
        )))
    }
}

/// The artifacts lineage of a project's runs, newest first; each names its `run`. The query
/// takes `run: UUID` too.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/lineage/artifacts", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ListQuery),
    responses((status = 200, body = V1ListRunArtifactsResponse), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn project_lineage(
    State(app): State<App>,
    who: Principal,
    Path((owner, project)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<V1ListRunArtifactsResponse>> {
    who.require_user_scope()?;
    let p = project_for(&app, &who, &owner, &project, false).await?;
    lineage_page(&app, LineageScope::Project(p.id), &q)
        .await
        .map(Json)
}
