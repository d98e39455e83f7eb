//! Errors of the API and their HTTP form, mapped in one place; and the JSON body extractor
//! whose errors name the offending field.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::api::ApiErrorBody;
use crate::store::StoreError;

#[derive(Clone, Debug)]
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

impl From<crate::artifacts::StoreError> for ApiError {
    fn from(e: crate::artifacts::StoreError) -> Self {
        use crate::artifacts::StoreError as E;
        match e {
            E::NotFound(m) => ApiError::NotFound(format!("`{m}` not found")),
            E::Outside(_) => ApiError::BadRequest(e.to_string()),
            E::Io(io) => io.into(),
            // What the store answered (its URL, a backend's reply with request details) is for
            // the server's log, not for API clients.
            E::Checksum { ref key, .. } => {
                tracing::error!(error = %e, "a corrupted object in the artifacts store");
                ApiError::Internal(format!(
                    "`{key}` is corrupted in the artifacts store (its checksum does not match)"
                ))
            }
            E::Refused { ref what, .. } => {
                tracing::warn!(error = %e, "the artifacts store refused");
                ApiError::Unavailable(
                    format!("the artifacts store refused {what}; the server's log says why"),
                    30,
                )
            }
            E::Failed { ref what, .. } => {
                tracing::warn!(error = %e, "the artifacts store failed");
                // Out of reach or failing: nothing was lost, try again later.
                ApiError::Unavailable(
                    format!("the artifacts store is not answering ({what}); try again"),
                    5,
                )
            }
            E::Config { .. } => ApiError::Internal(e.to_string()),
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
    // Text is stored in PostgreSQL, which cannot hold a NUL character: refused alike on
    // both stores, saying where (raw control characters are not JSON at all).
    if bytes.windows(6).any(|w| w == br"\u0000")
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(at) = nul_at(&v, String::new())
    {
        return Err(ApiError::BadRequest(format!(
            "invalid value at `{}`: text cannot hold a NUL character (\\u0000)",
            if at.is_empty() { "." } else { &at }
        )));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let first = serde_path_to_error::deserialize(de);
    // JSON (and its schema) counts `400.0` as the integer 400, serde does not: an integral
    // number with a fraction where an integer is wanted is taken as that integer, at the
    // place serde refused it (never elsewhere: `1.0` in inputs stays a float).
    let result = match first {
        Err(e)
            if e.inner()
                .to_string()
                .contains("invalid type: floating point") =>
        {
            integral_retry(bytes).unwrap_or(Err(e))
        }
        other => other,
    };
    result.map_err(|e| {
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

/// Where a string (or a key) holds a NUL character, as a path (`a.b[2]`).
fn nul_at(v: &serde_json::Value, here: String) -> Option<String> {
    match v {
        serde_json::Value::String(s) if s.contains('\0') => Some(here),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_at(x, format!("{here}[{i}]"))),
        serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
            let at = if here.is_empty() {
                k.clone()
            } else {
                format!("{here}.{k}")
            };
            if k.contains('\0') {
                Some(at)
            } else {
                nul_at(x, at)
            }
        }),
        _ => None,
    }
}

type PathResult<T> = Result<T, serde_path_to_error::Error<serde_json::Error>>;

/// Deserializes again from the parsed value, each float refused for an integer made that
/// integer when it has no fraction; `None` when one cannot be (a real fraction, say).
fn integral_retry<T: DeserializeOwned>(bytes: &[u8]) -> Option<PathResult<T>> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    for _ in 0..64 {
        match serde_path_to_error::deserialize::<_, T>(&value) {
            Err(e)
                if e.inner()
                    .to_string()
                    .contains("invalid type: floating point") =>
            {
                let mut at = &mut value;
                for seg in e.path().iter() {
                    at = match seg {
                        serde_path_to_error::Segment::Seq { index } => at.get_mut(*index)?,
                        serde_path_to_error::Segment::Map { key } => at.get_mut(key.as_str())?,
                        _ => return Some(Err(e)),
                    };
                }
                let f = at.as_f64()?;
                if f.fract() != 0.0 || f.abs() > 9.007_199_254_740_992e15 {
                    return Some(Err(e));
                }
                *at = serde_json::Value::from(f as i64);
            }
            other => return Some(other),
        }
    }
    None
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
    fn integral_floats_are_integers_where_integers_are_wanted() {
        #[derive(serde::Deserialize, Debug)]
        struct N {
            n: i64,
            v: Vec<u32>,
            j: serde_json::Value,
            f: f64,
        }
        let n: N =
            parse_json(br#"{"n": 400.0, "v": [1.0, 2e0], "j": {"x": 1.0}, "f": 2.0}"#).unwrap();
        assert_eq!((n.n, n.v), (400, vec![1, 2]));
        assert_eq!(n.j["x"].as_f64(), Some(1.0));
        assert!(n.j["x"].is_f64(), "free-form values stay as sent");
        assert_eq!(n.f, 2.0);
        let e = parse_json::<N>(br#"{"n": 400.5, "v": [], "j": null, "f": 1}"#).unwrap_err();
        assert!(
            matches!(&e, ApiError::BadRequest(m) if m.contains("`n`") && m.contains("400.5")),
            "{e:?}"
        );
    }

    #[test]
    fn nul_characters_are_refused_where_they_are() {
        let e = parse_json::<T>(br#"{"name": "a\u0000b", "tags": []}"#).unwrap_err();
        assert!(
            matches!(&e, ApiError::BadRequest(m) if m.contains("`name`") && m.contains("NUL")),
            "{e:?}"
        );
        let e = parse_json::<T>(br#"{"name": "a", "tags": ["x", "\u0000"]}"#).unwrap_err();
        assert!(
            matches!(&e, ApiError::BadRequest(m) if m.contains("`tags[1]`")),
            "{e:?}"
        );
        // An escaped backslash before `u0000` is text, not a NUL.
        parse_json::<T>(br#"{"name": "a\\u0000", "tags": []}"#).unwrap();
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
