//! Agents and queues: agents register, heartbeat (renewing their claims) and claim queued
//! runs with a long poll; queues are listed with what waits and runs in them, and managed
//! by superusers.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::App;
use crate::api::*;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::store::now_micros;
use crate::store::queues::{AGENT_GONE_MICROS, AgentRow, QueueState};

fn superuser(who: &Principal, what: &str) -> ApiResult<()> {
    who.require_user_scope()?;
    if !who.user.is_superuser {
        return Err(ApiError::Forbidden(format!(
            "only superusers {what} (an agent runs with a superuser's token)"
        )));
    }
    Ok(())
}

/// Whether an agent of `version` may work for this server: the same release line (major and
/// minor; 0.x releases change their minor when they break).
/// An agent of this server's release line: `MAJOR.MINOR` as the server's, then nothing or
/// `.…` (an optional `v` first). The OpenAPI document states it as a pattern.
fn compatible(version: &str) -> bool {
    let line = crate::VERSION
        .rsplit_once('.')
        .map_or(crate::VERSION, |v| v.0);
    let v = version.strip_prefix('v').unwrap_or(version);
    v.strip_prefix(line)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

fn agent_json(a: &AgentRow) -> V1Agent {
    let gone = a.state != "stopped" && now_micros() - a.last_seen >= AGENT_GONE_MICROS;
    V1Agent {
        name: a.name.clone(),
        instance: a.instance.clone(),
        version: a.version.clone(),
        executor: a.executor.clone(),
        queues: a.queues(),
        capacity: a.capacity,
        running: Some(a.running),
        host: a.host.clone(),
        state: Some(if gone { "gone".into() } else { a.state.clone() }),
        started_at: Some(time(a.started_at)),
        last_seen: Some(time(a.last_seen)),
    }
}

async fn queue_json(app: &App, q: QueueState) -> ApiResult<V1Queue> {
    let agents = app.store.agents_serving(&q.queue.name).await?;
    Ok(V1Queue {
        name: q.queue.name,
        concurrency: q.queue.concurrency,
        priority: Some(q.queue.priority),
        queued: Some(q.queued),
        running: Some(q.running),
        agents: Some(agents.into_iter().map(|a| a.name).collect()),
    })
}

/// Looks for lapsed leases, at most once a second whoever asks.
async fn sweep(app: &App) {
    use std::sync::atomic::Ordering;
    let now = now_micros();
    let last = app.last_sweep.load(Ordering::Relaxed);
    if now - last < 1_000_000
        || app
            .last_sweep
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    match app.store.expire_leases(now).await {
        Ok(lapsed) => {
            for (uuid, what) in lapsed {
                tracing::warn!(run = %uuid, "lease lapsed: {what:?}");
            }
        }
        Err(e) => tracing::warn!("looking for lapsed leases: {e}"),
    }
}

/// Registers an agent (or its new start). 400 when its version cannot work with this
/// server; 409 while another agent of that name is alive.
#[utoipa::path(post, path = "/api/v1/admin/agents", tag = "agents", request_body = V1Agent,
    responses((status = 200, body = V1Agent), (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn register(
    State(app): State<App>,
    who: Principal,
    ApiJson(a): ApiJson<V1Agent>,
) -> ApiResult<Json<V1Agent>> {
    superuser(&who, "run agents")?;
    if !compatible(&a.version) {
        return Err(ApiError::BadRequest(format!(
            "agent `{}` is version {}, and this server is {}: run an agent of the server's release line ({}.*)",
            a.name,
            a.version,
            crate::VERSION,
            crate::VERSION
                .rsplit_once('.')
                .map_or(crate::VERSION, |v| v.0)
        )));
    }
    if a.name.is_empty() || a.instance.is_empty() || a.queues.is_empty() || a.capacity < 1 {
        return Err(ApiError::BadRequest(
            "an agent needs a name, an instance, at least one queue and a capacity of at least 1"
                .into(),
        ));
    }
    app.listen_queued();
    let row = app
        .store
        .register_agent(&AgentRow {
            name: a.name,
            instance: a.instance,
            version: a.version,
            executor: a.executor,
            queues: serde_json::to_string(&a.queues).unwrap_or_else(|_| "[]".into()),
            capacity: a.capacity,
            running: 0,
            host: a.host,
            state: "running".into(),
            started_at: 0,
            last_seen: 0,
        })
        .await?;
    tracing::info!(agent = %row.name, queues = %row.queues, "agent registered");
    Ok(Json(agent_json(&row)))
}

/// Lists the agents: alive, draining, stopped, or gone (not heard from lately).
#[utoipa::path(get, path = "/api/v1/admin/agents", tag = "agents",
    responses((status = 200, body = V1ListAgentsResponse)))]
pub async fn list(State(app): State<App>, who: Principal) -> ApiResult<Json<V1ListAgentsResponse>> {
    who.require_user_scope()?;
    let rows = app.store.agents().await?;
    Ok(Json(V1ListAgentsResponse {
        count: rows.len() as i64,
        results: rows.iter().map(agent_json).collect(),
    }))
}

/// An agent's heartbeat: renews its claims; answers the runs it holds.
#[utoipa::path(post, path = "/api/v1/admin/agents/{name}/heartbeat", tag = "agents", params(("name" = String, Path)),
    request_body = V1AgentHeartbeat,
    responses((status = 200, body = V1AgentHeld), (status = 409, body = ApiErrorBody)))]
pub async fn heartbeat(
    State(app): State<App>,
    who: Principal,
    Path(name): Path<String>,
    ApiJson(h): ApiJson<V1AgentHeartbeat>,
) -> ApiResult<Json<V1AgentHeld>> {
    superuser(&who, "run agents")?;
    if !matches!(h.state.as_str(), "running" | "draining" | "stopped") {
        return Err(ApiError::BadRequest(format!(
            "an agent's state is `running`, `draining` or `stopped`, not `{}`",
            h.state
        )));
    }
    let until = now_micros() + lease_micros(h.lease_seconds)?;
    let runs = app
        .store
        .heartbeat(&name, &h.instance, h.running, &h.state, until)
        .await?;
    sweep(&app).await;
    Ok(Json(V1AgentHeld {
        runs: runs
            .into_iter()
            .map(|r| V1ClaimedRun {
                owner: r.owner,
                project: r.project,
                uuid: r.uuid,
                adopt: false,
            })
            .collect(),
    }))
}

fn lease_micros(seconds: f64) -> ApiResult<i64> {
    if !(1.0..=3600.0).contains(&seconds) {
        return Err(ApiError::BadRequest(format!(
            "a lease lasts from 1 to 3600 seconds, not {seconds}"
        )));
    }
    Ok((seconds * 1e6) as i64)
}

/// Claims queued runs for an agent; with `wait_ms`, waits that long for one to be queued when
/// none is (woken at once by runs queued through this server, or other servers on
/// PostgreSQL; SQLite is polled every 50 ms).
#[utoipa::path(post, path = "/api/v1/admin/agents/{name}/claim", tag = "agents", params(("name" = String, Path)),
    request_body = V1ClaimRequest,
    responses((status = 200, body = V1ClaimResponse), (status = 400, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn claim(
    State(app): State<App>,
    who: Principal,
    Path(name): Path<String>,
    ApiJson(c): ApiJson<V1ClaimRequest>,
) -> ApiResult<Json<V1ClaimResponse>> {
    superuser(&who, "run agents")?;
    app.listen_queued();
    let agent = app.store.agent(&name).await?;
    if agent.instance != c.instance {
        return Err(ApiError::Conflict(format!(
            "agent `{name}` is registered as another instance: register again"
        )));
    }
    let lease = lease_micros(c.lease_seconds)?;
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(c.wait_ms.unwrap_or(0).min(60_000));
    let poll = match app.store.dialect() {
        crate::store::Dialect::Sqlite => Duration::from_millis(50),
        crate::store::Dialect::Postgres => Duration::from_secs(2),
    };
    loop {
        sweep(&app).await;
        // Registered before claiming, so that a run queued meanwhile is not missed.
        let woken = app.store.queued.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let got = app
            .store
            .claim(&name, &c.queues, c.max, now_micros() + lease)
            .await?;
        let now = tokio::time::Instant::now();
        if !got.is_empty() || now >= deadline {
            return Ok(Json(V1ClaimResponse {
                runs: got
                    .into_iter()
                    .map(|r| V1ClaimedRun {
                        owner: r.owner,
                        project: r.project,
                        uuid: r.uuid,
                        adopt: r.adopt != 0,
                    })
                    .collect(),
            }));
        }
        let _ = tokio::time::timeout((deadline - now).min(poll), woken).await;
    }
}

/// Hands a claimed run that has not started back to its queue (an agent stopping).
#[utoipa::path(post, path = "/api/v1/admin/agents/{name}/release", tag = "agents", params(("name" = String, Path)),
    request_body = V1Release,
    responses((status = 204), (status = 409, body = ApiErrorBody)))]
pub async fn release(
    State(app): State<App>,
    who: Principal,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<V1Release>,
) -> ApiResult<StatusCode> {
    superuser(&who, "run agents")?;
    if !app
        .store
        .release_run(&b.uuid.replace('-', ""), &name, &b.reason)
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "run `{}` is not a run agent `{name}` holds that has not started",
            b.uuid
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// An agent that stops: it drives nothing more.
#[utoipa::path(delete, path = "/api/v1/admin/agents/{name}", tag = "agents", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
pub async fn stop(
    State(app): State<App>,
    who: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    superuser(&who, "run agents")?;
    let a = app.store.agent(&name).await?;
    app.store
        .heartbeat(&name, &a.instance, 0, "stopped", now_micros())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The queues, with what waits and runs in each and the live agents serving it.
#[utoipa::path(get, path = "/api/v1/admin/queues", tag = "agents",
    responses((status = 200, body = V1ListQueuesResponse)))]
pub async fn queues(
    State(app): State<App>,
    who: Principal,
) -> ApiResult<Json<V1ListQueuesResponse>> {
    who.require_user_scope()?;
    let mut results = Vec::new();
    for q in app.store.queues().await? {
        results.push(queue_json(&app, q).await?);
    }
    Ok(Json(V1ListQueuesResponse {
        count: results.len() as i64,
        results,
    }))
}

/// A queue.
#[utoipa::path(get, path = "/api/v1/admin/queues/{name}", tag = "agents", params(("name" = String, Path)),
    responses((status = 200, body = V1Queue), (status = 404, body = ApiErrorBody)))]
pub async fn get_queue(
    State(app): State<App>,
    who: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<V1Queue>> {
    who.require_user_scope()?;
    let q = app.store.queue(&name).await?;
    Ok(Json(queue_json(&app, q).await?))
}

/// Creates or changes a queue (superusers).
#[utoipa::path(post, path = "/api/v1/admin/queues", tag = "agents", request_body = V1Queue,
    responses((status = 200, body = V1Queue), (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
pub async fn put_queue(
    State(app): State<App>,
    who: Principal,
    ApiJson(q): ApiJson<V1Queue>,
) -> ApiResult<Json<V1Queue>> {
    superuser(&who, "manage queues")?;
    let row = app
        .store
        .put_queue(&q.name, q.concurrency, q.priority.unwrap_or(0))
        .await?;
    Ok(Json(queue_json(&app, row).await?))
}

/// Deletes a queue that holds no run (superusers; never `default`).
#[utoipa::path(delete, path = "/api/v1/admin/queues/{name}", tag = "agents", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn delete_queue(
    State(app): State<App>,
    who: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    superuser(&who, "manage queues")?;
    app.store.delete_queue(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HostQuery {
    /// Only runs claimed on this machine.
    pub host: Option<String>,
}

/// Runs claimed and not ended, across projects (superusers): a machine's agent looks here
/// for runs whose supervising process on that machine died.
#[utoipa::path(get, path = "/api/v1/admin/runs/claimed", tag = "agents", params(HostQuery),
    responses((status = 200, body = V1ListClaimedResponse), (status = 403, body = ApiErrorBody)))]
pub async fn claimed(
    State(app): State<App>,
    who: Principal,
    axum::extract::Query(q): axum::extract::Query<HostQuery>,
) -> ApiResult<Json<V1ListClaimedResponse>> {
    superuser(&who, "list every project's runs")?;
    let rows = app.store.claimed_runs(q.host.as_deref()).await?;
    Ok(Json(V1ListClaimedResponse {
        results: rows
            .into_iter()
            .map(|c| V1ClaimedOnHost {
                owner: c.owner,
                project: c.project,
                uuid: c.uuid,
                status: c.status,
                executor: c.executor,
            })
            .collect(),
    }))
}

/// Claims a run for the caller, who drives it (`polyaxon ops execute` of a queued run);
/// 409 naming who drives it otherwise.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/claim", tag = "agents",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)), request_body = V1Run,
    responses((status = 200, body = V1Run), (status = 409, body = ApiErrorBody)))]
pub async fn claim_run(
    State(app): State<App>,
    super::RunAccess { who, run, .. }: super::WriteRun,
    ApiJson(body): ApiJson<V1Run>,
) -> ApiResult<Json<V1Run>> {
    who.require_user_scope()?;
    let holder = body
        .agent
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::BadRequest("name who drives the run in `agent`".into()))?;
    app.store.claim_run(&run.uuid, &holder, None).await?;
    Ok(Json(super::run_json(
        &app.store.run_by_uuid(&run.uuid).await?,
        None,
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_of_the_same_line_are_compatible() {
        let v = crate::VERSION;
        assert!(super::compatible(v));
        let (line, _) = v.rsplit_once('.').unwrap();
        assert!(super::compatible(&format!("{line}.999")));
        assert!(!super::compatible("99.0.0"));
        assert!(!super::compatible(&format!("{line}0.1")), "another minor");
        assert!(super::compatible(&format!("v{line}")));
        assert!(!super::compatible("nonsense"));
    }
}
