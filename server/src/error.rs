//! Errors of the API and their HTTP form, mapped in one place; and the JSON body extractor
//! whose errors name the offending field.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::api::ApiErrorBody;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    TooLarge(String),
    /// 429, with the seconds to wait in `Retry-After`.
    TooMany(String, u64),
    /// 503, with the seconds to wait in `Retry-After` (the database is out of reach or busy).
    Unavailable(String, u64),
    /// 507: the artifacts' filesystem is full (nothing half-written is left behind).
    InsufficientStorage(String),
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &str) {
        match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", m),
            ApiError::TooMany(m, _) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests", m),
            ApiError::Unavailable(m, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m),
            ApiError::InsufficientStorage(m) => {
                (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage", m)
            }
            ApiError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = message, "internal error");
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = message, "unavailable");
        }
        let mut response = (
            status,
            axum::Json(ApiErrorBody {
                error: message.to_string(),
                code: code.to_string(),
            }),
        )
            .into_response();
        if let ApiError::TooLarge(_) = &self {
            // The body was not read to its end: the connection cannot carry another request,
            // and a client that pooled it would see its next request cut off.
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        if let ApiError::TooMany(_, wait) | ApiError::Unavailable(_, wait) = &self {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(*wait));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(w) => ApiError::NotFound(format!("{w} not found")),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            // Every connection busy for the pool's whole wait, or the database out of reach:
            // the statement did not run; the client may try again.
            StoreError::Db(
                e @ (sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)),
            ) => ApiError::Unavailable(
                format!("the database is busy or out of reach ({e}); try again"),
                1,
            ),
            // PostgreSQL shutting down or restarting under the connection (57P01-57P03), or
            // the connection lost (class 08): the statement did not commit; try again.
            StoreError::Db(sqlx::Error::Database(d))
                if d.code()
                    .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")) =>
            {
                ApiError::Unavailable(
                    format!("the database is restarting or out of reach ({d}); try again"),
                    1,
                )
            }
            StoreError::Db(e) => ApiError::Internal(format!("database error: {e}")),
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => ApiError::NotFound("no such file".into()),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                ApiError::InsufficientStorage(format!(
                    "the server's artifacts filesystem is full ({e}): nothing of this request was kept; free space there (or give the server more) and send it again"
                ))
            }
            _ => ApiError::Internal(format!("i/o error: {e}")),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose errors say which field is wrong and how (400), or that it is too big (413).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes =
            axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e: BytesRejection| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::TooLarge("the request body is too large".into())
                    } else {
                        ApiError::BadRequest(format!("cannot read the request body: {e}"))
                    }
                })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON, naming the path of a wrong value.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::BadRequest(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    // A body is a JSON object: serde would also take an array for a struct (its fields in
    // order), which no client means.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object (`{...}`)".into(),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let what = inner.to_string();
        let what = what.split(" at line ").next().unwrap_or(&what).to_string();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::BadRequest(format!("the request body is not valid JSON: {inner}"))
        } else if path == "." || path.is_empty() {
            ApiError::BadRequest(format!("invalid request: {what}"))
        } else {
            ApiError::BadRequest(format!("invalid value at `{path}`: {what}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct T {
        name: String,
        tags: Vec<String>,
    }

    #[test]
    fn bodies_are_objects() {
        for body in [&b"[\"a\", []]"[..], b"null", b"  3", b"\"x\""] {
            let e = parse_json::<T>(body).unwrap_err();
            assert!(format!("{e:?}").contains("JSON object"), "{e:?}");
        }
        parse_json::<T>(b" \n{\"name\": \"a\", \"tags\": []}").unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_json::<T>(br#"{"tags": []}"#).unwrap_err();
        assert!(
            matches!(&e, ApiError::BadRequest(m) if m.contains("missing field `name`")),
            "{e:?}"
        );
        let e = parse_json::<T>(br#"{"name": "a", "tags": [1]}"#).unwrap_err();
        assert!(
            matches!(&e, ApiError::BadRequest(m) if m.contains("`tags[0]`")),
            "{e:?}"
        );
        let e = parse_json::<T>(b"{nope").unwrap_err();
        assert!(
            matches!(&e, ApiError::BadRequest(m) if m.contains("not valid JSON")),
            "{e:?}"
        );
    }
}
