//! Connections (listed by signed-in users, managed by superusers) and a run's deliveries.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::ReadRun;
use crate::App;
use crate::api::*;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::routes::RunAccess;
use crate::store::outbox::{ConnectionRow, NOTIFIERS, NewConnection, OTHER_KINDS, SecretRef};

fn connection_json(c: &ConnectionRow, superuser: bool) -> V1Connection {
    V1Connection {
        name: c.name.clone(),
        kind: c.kind.clone(),
        description: c.description.clone(),
        tags: c.tags(),
        schema: c.spec(),
        secret: c.secret().filter(|_| superuser).map(|s| match s {
            SecretRef::Env(n) => format!("env:{n}"),
            SecretRef::File(p) => format!("file:{p}"),
        }),
        has_secret: Some(c.secret.is_some()),
        created_at: Some(time(c.created_at)),
        updated_at: Some(time(c.updated_at)),
    }
}

/// The connections.
#[utoipa::path(get, path = "/api/v1/orgs/{owner}/connections", tag = "connections", params(("owner" = String, Path)),
    responses((status = 200, body = V1ListConnectionsResponse)))]
pub async fn list(
    State(app): State<App>,
    who: Principal,
    Path(_owner): Path<String>,
) -> ApiResult<Json<V1ListConnectionsResponse>> {
    who.require_user_scope()?;
    let results: Vec<_> = app
        .store
        .connections()
        .await?
        .iter()
        .map(|c| connection_json(c, who.user.is_superuser))
        .collect();
    Ok(Json(V1ListConnectionsResponse {
        count: results.len() as i64,
        results,
    }))
}

/// A connection.
#[utoipa::path(get, path = "/api/v1/orgs/{owner}/connections/{name}", tag = "connections",
    params(("owner" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = V1Connection), (status = 404, body = ApiErrorBody)))]
pub async fn get(
    State(app): State<App>,
    who: Principal,
    Path((_owner, name)): Path<(String, String)>,
) -> ApiResult<Json<V1Connection>> {
    who.require_user_scope()?;
    let c = app.store.connection(&name).await?;
    Ok(Json(connection_json(&c, who.user.is_superuser)))
}

/// Creates a connection (superusers). A notifier's URL is checked as its deliveries are.
#[utoipa::path(post, path = "/api/v1/orgs/{owner}/connections", tag = "connections", params(("owner" = String, Path)),
    request_body = V1Connection,
    responses((status = 200, body = V1Connection), (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn create(
    State(app): State<App>,
    who: Principal,
    Path(_owner): Path<String>,
    ApiJson(c): ApiJson<V1Connection>,
) -> ApiResult<Json<V1Connection>> {
    who.require_user_scope()?;
    if !who.user.is_superuser {
        return Err(ApiError::Forbidden(
            "only superusers manage connections".into(),
        ));
    }
    let new = validate(&app, c)?;
    let row = app.store.create_connection(new).await?;
    Ok(Json(connection_json(&row, true)))
}

/// What a new connection may be: a name, a known kind, a schema without secrets' values.
pub fn validate(app: &App, c: V1Connection) -> ApiResult<NewConnection> {
    validate_with(app.config.notify.allow_link_local, c)
}

/// [`validate`], with whether link-local URLs are allowed (a server's config file, read before
/// the app exists).
pub fn validate_with(allow_link_local: bool, c: V1Connection) -> ApiResult<NewConnection> {
    let bad = |m: String| Err(ApiError::BadRequest(m));
    if c.name.is_empty()
        || !c
            .name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
    {
        return bad(format!(
            "`{}` is not a connection name: use letters, digits, `-`, `_` and `.`",
            c.name
        ));
    }
    if !NOTIFIERS.contains(&c.kind.as_str()) && !OTHER_KINDS.contains(&c.kind.as_str()) {
        return bad(format!(
            "`{}` is not a kind of connection (notifiers: {}; others: {})",
            c.kind,
            NOTIFIERS.join(", "),
            OTHER_KINDS.join(", ")
        ));
    }
    for key in [
        "password",
        "token",
        "secret",
        "signing_key",
        "service_key",
        "api_key",
    ] {
        if c.schema.contains_key(key) {
            return bad(format!(
                "the schema of a connection is readable by every user: give `{key}` through `secret` (`env:NAME` or `file:/path`), not in the schema"
            ));
        }
    }
    if let Some(u) = c.schema.get("url") {
        let Some(u) = u.as_str() else {
            return bad("`url` must be text".into());
        };
        if NOTIFIERS.contains(&c.kind.as_str()) {
            crate::notify::check_url(u, allow_link_local).map_err(ApiError::BadRequest)?;
        } else if u.trim().is_empty() || u.contains(char::is_whitespace) {
            // A registry's `host[:port][/path]`, a git remote (`git@host:org/repo`), …
            return bad(format!(
                "`url` of a `{}` connection is an address without spaces",
                c.kind
            ));
        }
    }
    if let Some(m) = c.schema.get("method").and_then(|m| m.as_str()) {
        let m = m.to_ascii_uppercase();
        if m != "POST" && !(m == "GET" && c.kind == "webhook") {
            return bad(format!(
                "method `{m}` is not supported: notifiers POST (a webhook may GET)"
            ));
        }
    }
    if let Some(t) = c.schema.get("timeout")
        && !t.as_f64().is_some_and(|t| t > 0.0 && t <= 60.0)
    {
        return bad("`timeout` is seconds, more than 0 and at most 60".into());
    }
    // Slack's, Discord's, Mattermost's and Teams' webhook URLs are credentials: not in the
    // schema every user reads.
    if ["slack", "discord", "mattermost", "teams"].contains(&c.kind.as_str())
        && c.schema.contains_key("url")
    {
        return bad(format!(
            "a `{}` webhook URL is a credential, and the schema is readable by every user: give it through `secret` (`env:NAME` or `file:/path`)",
            c.kind
        ));
    }
    let secret = match c.secret.as_deref() {
        Some(s) => Some(crate::notify::parse_secret_ref(s).map_err(ApiError::BadRequest)?),
        None => None,
    };
    if NOTIFIERS.contains(&c.kind.as_str())
        && c.kind != "pagerduty"
        && !c.schema.contains_key("url")
        && secret.is_none()
    {
        return bad(format!(
            "a `{}` connection needs its URL: `url` in the schema, or a secret holding it",
            c.kind
        ));
    }
    if NOTIFIERS.contains(&c.kind.as_str())
        && ["slack", "discord", "mattermost", "teams"].contains(&c.kind.as_str())
        && secret.is_none()
    {
        return bad(format!(
            "a `{}` connection needs its URL through `secret` (`env:NAME` or `file:/path`)",
            c.kind
        ));
    }
    Ok(NewConnection {
        name: c.name,
        kind: c.kind,
        description: c.description,
        tags: c.tags,
        spec: c.schema,
        secret,
    })
}

/// Deletes a connection (superusers).
#[utoipa::path(delete, path = "/api/v1/orgs/{owner}/connections/{name}", tag = "connections",
    params(("owner" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn delete(
    State(app): State<App>,
    who: Principal,
    Path((_owner, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    who.require_user_scope()?;
    if !who.user.is_superuser {
        return Err(ApiError::Forbidden(
            "only superusers manage connections".into(),
        ));
    }
    app.store.delete_connection(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A run's deliveries: its notifications and hooks, with each one's state, tries and last
/// error.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}/notifications", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = V1ListDeliveriesResponse), (status = 404, body = ApiErrorBody)))]
pub async fn deliveries(
    State(app): State<App>,
    RunAccess { run: r, .. }: ReadRun,
) -> ApiResult<Json<V1ListDeliveriesResponse>> {
    let results: Vec<V1Delivery> = app
        .store
        .outbox_of_run(r.id)
        .await?
        .into_iter()
        .map(|o| V1Delivery {
            id: crate::notify::delivery_id(&o.key),
            next_at: (o.state == "pending").then(|| time(o.next_at)),
            source: o.source,
            trigger: o.trigger,
            status: o.status,
            connection: o.connection,
            state: o.state,
            tries: o.tries,
            last_error: o.last_error,
            response_code: o.response_code,
            hook_run: o.hook_run,
            created_at: time(o.created_at),
            delivered_at: o.delivered_at.map(time),
        })
        .collect();
    Ok(Json(V1ListDeliveriesResponse {
        count: results.len() as i64,
        results,
    }))
}
