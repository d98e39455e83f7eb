//! Login, whoami, personal tokens, and creating users (superusers only).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::App;
use crate::api::{V1Auth, V1Credentials, V1ListTokenResponse, V1Token, V1User, V1UserCreate, time};
use crate::auth::{ClientAddr, Principal};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::store::{TokenScope, User};

fn user_json(u: &User) -> V1User {
    V1User {
        username: u.username.clone(),
        email: u.email.clone(),
        name: None,
        kind: "user".into(),
        created_at: Some(time(u.created_at)),
    }
}

/// The longest password taken (hashing is deliberately slow; a megabyte one would be a lever).
pub const MAX_PASSWORD: usize = 1024;

/// A new password's length: from 8 to [`MAX_PASSWORD`] characters.
pub fn check_password(p: &str) -> ApiResult<()> {
    if p.chars().count() < 8 {
        return Err(ApiError::BadRequest(
            "the password must have at least 8 characters".into(),
        ));
    }
    if p.chars().count() > MAX_PASSWORD {
        return Err(ApiError::BadRequest(format!(
            "the password must have at most {MAX_PASSWORD} characters"
        )));
    }
    Ok(())
}

/// Exchanges a username and password for an API token.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", request_body = V1Credentials,
    responses((status = 200, body = V1Auth), (status = 401, body = crate::api::ApiErrorBody),
        (status = 429, description = "too many failed logins for the user or the address; `Retry-After` says when to try again", body = crate::api::ApiErrorBody)))]
pub async fn login(
    State(app): State<App>,
    ClientAddr(addr): ClientAddr,
    ApiJson(c): ApiJson<V1Credentials>,
) -> ApiResult<Json<V1Auth>> {
    if let Err(wait) = app.logins.check(&c.username, addr) {
        tracing::warn!(user = %c.username, address = ?addr, "login refused: too many failed attempts");
        return Err(ApiError::TooMany(
            format!("too many failed logins for this user or address; try again in {wait} s"),
            wait,
        ));
    }
    if c.password.chars().count() > MAX_PASSWORD {
        app.logins.failed(&c.username, addr);
        return Err(ApiError::Unauthorized("wrong username or password".into()));
    }
    let Some(user) = app.store.authenticate(&c.username, &c.password).await? else {
        app.logins.failed(&c.username, addr);
        tracing::info!(user = %c.username, address = ?addr, "login failed");
        return Err(ApiError::Unauthorized("wrong username or password".into()));
    };
    app.logins.succeeded(&c.username);
    let (_, token) = app
        .store
        .create_token(user.id, &TokenScope::User, Some("login"), None)
        .await?;
    tracing::info!(user = %user.username, "login");
    Ok(Json(V1Auth { token }))
}

/// The calling user.
#[utoipa::path(get, path = "/api/v1/users", tag = "auth", responses((status = 200, body = V1User), (status = 401, body = crate::api::ApiErrorBody)))]
pub async fn whoami(who: Principal) -> Json<V1User> {
    Json(user_json(&who.user))
}

/// The caller's personal tokens (without their secrets).
#[utoipa::path(get, path = "/api/v1/users/tokens", tag = "auth", responses((status = 200, body = V1ListTokenResponse)))]
pub async fn list_tokens(
    State(app): State<App>,
    who: Principal,
) -> ApiResult<Json<V1ListTokenResponse>> {
    who.require_user_scope()?;
    let rows = app.store.list_tokens(who.user.id).await?;
    let results: Vec<V1Token> = rows
        .into_iter()
        .map(|t| V1Token {
            uuid: Some(t.uuid),
            key: None,
            name: t.name,
            scopes: Some(vec![t.scope]),
            // Seconds of validity, as the token was created with.
            expiration: t.expires_at.map(|e| (e - t.created_at) / 1_000_000),
            created_at: Some(time(t.created_at)),
        })
        .collect();
    Ok(Json(V1ListTokenResponse {
        count: results.len() as i64,
        results,
        previous: None,
        next: None,
    }))
}

/// Creates a personal token; its secret is in `key`, shown this once.
#[utoipa::path(post, path = "/api/v1/users/tokens", tag = "auth", request_body = V1Token, responses((status = 200, body = V1Token)))]
pub async fn create_token(
    State(app): State<App>,
    who: Principal,
    ApiJson(t): ApiJson<V1Token>,
) -> ApiResult<Json<V1Token>> {
    who.require_user_scope()?;
    const TEN_YEARS: i64 = crate::api::MAX_TOKEN_SECONDS;
    if t.expiration.is_some_and(|e| e <= 0 || e > TEN_YEARS) {
        return Err(ApiError::BadRequest(format!(
            "`expiration` is the token's life in seconds: from 1 to {TEN_YEARS} (ten years); leave it out for a token that lasts until revoked"
        )));
    }
    let (row, secret) = app
        .store
        .create_token(
            who.user.id,
            &TokenScope::User,
            t.name.as_deref(),
            t.expiration,
        )
        .await?;
    Ok(Json(V1Token {
        uuid: Some(row.uuid),
        key: Some(secret),
        name: row.name,
        scopes: Some(vec![row.scope]),
        expiration: t.expiration,
        created_at: Some(time(row.created_at)),
    }))
}

/// Revokes a personal token.
#[utoipa::path(delete, path = "/api/v1/users/tokens/{uuid}", tag = "auth", params(("uuid" = String, Path)),
    responses((status = 204), (status = 404, body = crate::api::ApiErrorBody)))]
pub async fn delete_token(
    State(app): State<App>,
    who: Principal,
    Path(uuid): Path<String>,
) -> ApiResult<StatusCode> {
    who.require_user_scope()?;
    app.store.delete_token(who.user.id, &uuid).await?;
    app.tokens.clear();
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a user (superusers only).
#[utoipa::path(post, path = "/api/v1/admin/users", tag = "auth", request_body = V1UserCreate,
    responses((status = 200, body = V1User), (status = 403, body = crate::api::ApiErrorBody), (status = 409, body = crate::api::ApiErrorBody)))]
pub async fn create_user(
    State(app): State<App>,
    who: Principal,
    ApiJson(u): ApiJson<V1UserCreate>,
) -> ApiResult<Json<V1User>> {
    who.require_user_scope()?;
    if !who.user.is_superuser {
        return Err(ApiError::Forbidden("only superusers create users".into()));
    }
    check_password(&u.password)?;
    let user = app
        .store
        .create_user(
            &u.username,
            u.email.as_deref(),
            Some(&u.password),
            u.is_superuser,
        )
        .await?;
    Ok(Json(user_json(&user)))
}
