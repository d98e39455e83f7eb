//! Projects: create, list, get, update, delete.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use super::{ListQuery, project_for, project_json};
use crate::App;
use crate::api::{V1ListProjectsResponse, V1Project};
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::store::{NewProject, ProjectPatch};

/// Lists the owner's projects the caller may see.
#[utoipa::path(get, path = "/api/v1/{owner}/projects/list", tag = "projects", params(("owner" = String, Path), ListQuery),
    responses((status = 200, body = V1ListProjectsResponse), (status = 400, body = crate::api::ApiErrorBody)))]
pub async fn list(
    State(app): State<App>,
    who: Principal,
    Path(owner): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<V1ListProjectsResponse>> {
    who.require_user_scope()?;
    let (offset, limit) = q.page()?;
    let (count, rows) = app
        .store
        .list_projects(
            &owner,
            &who.user,
            q.query.as_deref().unwrap_or(""),
            q.sort.as_deref().unwrap_or(""),
            limit,
            offset,
        )
        .await?;
    let (next, previous) = q.links(count, offset, limit);
    Ok(Json(V1ListProjectsResponse {
        count,
        results: rows.iter().map(project_json).collect(),
        previous,
        next,
    }))
}

/// Creates a project owned by `owner` (the caller, or anyone for a superuser).
#[utoipa::path(post, path = "/api/v1/{owner}/projects/create", tag = "projects", params(("owner" = String, Path)), request_body = V1Project,
    responses((status = 200, body = V1Project), (status = 400, body = crate::api::ApiErrorBody), (status = 409, body = crate::api::ApiErrorBody)))]
pub async fn create(
    State(app): State<App>,
    who: Principal,
    Path(owner): Path<String>,
    ApiJson(p): ApiJson<V1Project>,
) -> ApiResult<Json<V1Project>> {
    who.require_user_scope()?;
    let name = p
        .name
        .ok_or_else(|| ApiError::BadRequest("invalid request: missing field `name`".into()))?;
    let row = app
        .store
        .create_project(
            &owner,
            &who.user,
            NewProject {
                name,
                description: p.description,
                tags: p.tags.unwrap_or_default(),
                is_public: p.is_public.unwrap_or(false),
                readme: p.readme,
            },
        )
        .await?;
    tracing::info!(project = %format!("{}/{}", row.owner, row.name), "project created");
    Ok(Json(project_json(&row)))
}

/// A project.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}", tag = "projects", params(("owner" = String, Path), ("project" = String, Path)),
    responses((status = 200, body = V1Project), (status = 404, body = crate::api::ApiErrorBody)))]
pub async fn get(
    State(app): State<App>,
    who: Principal,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<V1Project>> {
    who.require_user_scope()?;
    Ok(Json(project_json(
        &project_for(&app, &who, &owner, &name, false).await?,
    )))
}

/// Changes a project's name, description, tags, visibility or readme.
#[utoipa::path(patch, path = "/api/v1/{owner}/{project}", tag = "projects", params(("owner" = String, Path), ("project" = String, Path)), request_body = V1Project,
    responses((status = 200, body = V1Project), (status = 403, body = crate::api::ApiErrorBody), (status = 404, body = crate::api::ApiErrorBody)))]
pub async fn patch(
    State(app): State<App>,
    who: Principal,
    Path((owner, name)): Path<(String, String)>,
    ApiJson(p): ApiJson<V1Project>,
) -> ApiResult<Json<V1Project>> {
    who.require_user_scope()?;
    let row = project_for(&app, &who, &owner, &name, true).await?;
    let row = app
        .store
        .patch_project(
            &row,
            ProjectPatch {
                name: p.name,
                description: p.description,
                tags: p.tags,
                is_public: p.is_public,
                readme: p.readme,
            },
        )
        .await?;
    Ok(Json(project_json(&row)))
}

/// Changes a project, as `PATCH` does (upstream's clients send either).
#[utoipa::path(put, path = "/api/v1/{owner}/{project}", tag = "projects", params(("owner" = String, Path), ("project" = String, Path)), request_body = V1Project,
    responses((status = 200, body = V1Project), (status = 403, body = crate::api::ApiErrorBody), (status = 404, body = crate::api::ApiErrorBody)))]
pub async fn put(
    app: State<App>,
    who: Principal,
    path: Path<(String, String)>,
    body: ApiJson<V1Project>,
) -> ApiResult<Json<V1Project>> {
    patch(app, who, path, body).await
}

/// Deletes a project with its runs and their files.
#[utoipa::path(delete, path = "/api/v1/{owner}/{project}", tag = "projects", params(("owner" = String, Path), ("project" = String, Path)),
    responses((status = 204), (status = 403, body = crate::api::ApiErrorBody), (status = 404, body = crate::api::ApiErrorBody)))]
pub async fn delete(
    State(app): State<App>,
    who: Principal,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    who.require_user_scope()?;
    let row = project_for(&app, &who, &owner, &name, true).await?;
    let runs = app.store.delete_project(&row).await?;
    for r in runs {
        app.remove_run_files(&r).await;
    }
    Ok(StatusCode::NO_CONTENT)
}
