//! Health, version compatibility and the OpenAPI document.

use axum::Json;
use axum::extract::{Path, State};

use crate::App;
use crate::api::{V1Compatibility, V1Installation, V1Version};

/// Liveness and readiness: 200 when the store answers.
#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, description = "the server and its store are up")))]
pub async fn healthz(State(app): State<App>) -> Result<&'static str, crate::error::ApiError> {
    app.store.ping().await?;
    Ok("ok")
}

/// This API's OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, description = "the OpenAPI document")))]
pub async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

/// What this server is (clients check it before talking).
#[utoipa::path(get, path = "/api/v1/installation", tag = "meta", responses((status = 200, body = V1Installation)))]
pub async fn installation(State(app): State<App>) -> Json<V1Installation> {
    Json(V1Installation {
        key: app.installation_key.clone(),
        version: crate::VERSION.to_string(),
        dist: "ce".into(),
        mode: if app.open_user.is_some() {
            "sandbox".into()
        } else {
            "server".into()
        },
        auth: if app.open_user.is_some() {
            vec![]
        } else {
            vec!["token".into()]
        },
    })
}

/// The client versions this server works with.
#[utoipa::path(
    get, path = "/api/v1/compatibility/{uuid}/{version}/{service}", tag = "meta",
    params(("uuid" = String, Path), ("version" = String, Path), ("service" = String, Path)),
    responses((status = 200, body = V1Compatibility))
)]
pub async fn compatibility(
    Path((_uuid, _version, _service)): Path<(String, String, String)>,
) -> Json<V1Compatibility> {
    let v = || V1Version {
        min: "1.0.0".into(),
        latest: "2.18.0".into(),
    };
    Json(V1Compatibility {
        cli: v(),
        platform: v(),
        agent: v(),
        ui: v(),
    })
}
