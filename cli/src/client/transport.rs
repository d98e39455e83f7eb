//! How requests reach the API: over HTTP to a server, or in-process to the embedded one. The
//! same router answers both ways, so commands never know which.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use polyaxon_server::store::Store;
use polyaxon_server::{App, AuthMode, Config};

use crate::credentials::Secret;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type BodyStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A request: method, path with query, and an optional body with its content type.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub body: Option<(Bytes, &'static str)>,
}

/// A response whose body may be read whole or streamed.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: BodyStream,
}

impl Response {
    pub async fn bytes(self) -> std::io::Result<Bytes> {
        let mut out = Vec::new();
        let mut body = self.body;
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(out))
    }
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {host}: {reason}")]
    Connect { host: String, reason: String },
    #[error("{host} did not answer within {secs} s")]
    Timeout { host: String, secs: f64 },
    #[error("{0}")]
    Other(String),
    #[error("the embedded store at `{path}` cannot be opened: {reason}")]
    Embedded { path: String, reason: String },
}

/// Sends requests somewhere.
pub trait Transport: Send + Sync {
    fn send(&self, req: Request) -> BoxFuture<'_, Result<Response, TransportError>>;
    /// Where requests go, for messages (`http://host:8000`, `the embedded store in …`).
    fn describe(&self) -> String;
}

/// HTTP to a server, with timeouts, and retries with backoff for idempotent calls.
pub struct Http {
    client: reqwest::Client,
    host: String,
    token: Option<Secret>,
    timeout: Duration,
}

impl Http {
    pub fn new(
        host: &str,
        token: Option<Secret>,
        timeout: Duration,
        verify_ssl: bool,
    ) -> Result<Http, TransportError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("polyaxon-rs/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            // Below the server's 30 s header timeout, which also closes idle connections:
            // a pooled one is dropped here before the server closes it under a request.
            .pool_idle_timeout(Duration::from_secs(20))
            .tls_danger_accept_invalid_certs(!verify_ssl)
            .build()
            .map_err(|e| TransportError::Other(format!("cannot set up HTTP: {e}")))?;
        Ok(Http {
            client,
            host: host.trim_end_matches('/').to_string(),
            token,
            timeout,
        })
    }

    async fn once(&self, req: &Request) -> Result<reqwest::Response, TransportError> {
        let mut rb = self
            .client
            .request(req.method.clone(), format!("{}{}", self.host, req.path));
        if let Some(t) = &self.token {
            rb = rb.header(http::header::AUTHORIZATION, format!("Token {}", t.expose()));
        }
        if let Some((body, ctype)) = &req.body {
            rb = rb
                .header(http::header::CONTENT_TYPE, *ctype)
                .body(body.clone());
        }
        rb.send().await.map_err(|e| {
            if e.is_timeout() {
                TransportError::Timeout {
                    host: self.host.clone(),
                    secs: self.timeout.as_secs_f64(),
                }
            } else if e.is_connect() {
                TransportError::Connect {
                    host: self.host.clone(),
                    reason: root_cause(&e),
                }
            } else {
                TransportError::Other(format!("{}: {}", self.host, root_cause(&e)))
            }
        })
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Pauses before retry `attempt` (1-based): 250 ms, 500 ms, 1 s, with jitter.
fn backoff(attempt: u32) -> Duration {
    let base = 250u64 << (attempt - 1).min(4);
    let jitter = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0) as u64)
        % (base / 4 + 1);
    Duration::from_millis(base + jitter)
}

const RETRIES: u32 = 3;

impl Transport for Http {
    fn send(&self, req: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(async move {
            let idempotent = matches!(
                req.method,
                Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
            );
            let mut attempt = 0;
            loop {
                let result = self.once(&req).await;
                let retry = idempotent
                    && attempt < RETRIES
                    && match &result {
                        Ok(r) => matches!(r.status().as_u16(), 502..=504),
                        Err(TransportError::Connect { .. } | TransportError::Timeout { .. }) => {
                            true
                        }
                        Err(_) => false,
                    };
                if retry {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                let r = result?;
                return Ok(Response {
                    status: r.status(),
                    headers: r.headers().clone(),
                    body: Box::pin(r.bytes_stream().map_err(std::io::Error::other)),
                });
            }
        })
    }

    fn describe(&self) -> String {
        self.host.clone()
    }
}

/// The embedded server: the same router, called in-process over the SQLite store in
/// `$POLYAXON_HOME`, as its single user `default`.
pub struct Embedded {
    router: axum::Router,
    home: String,
    pub app: App,
}

/// The embedded mode's user and owner (upstream's community edition has the same).
pub const EMBEDDED_USER: &str = "default";

impl Embedded {
    pub async fn open(home: &Path) -> Result<Embedded, TransportError> {
        let fail = |reason: String| TransportError::Embedded {
            path: home.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(home).map_err(|e| fail(e.to_string()))?;
        let url = format!("sqlite://{}?mode=rwc", home.join("polyaxon.db").display());
        let store = Store::open(&url).await.map_err(|e| fail(e.to_string()))?;
        let config = Config::new(
            home.join("artifacts"),
            AuthMode::Open {
                user: EMBEDDED_USER.into(),
            },
        );
        let started = App::start(store, config, None)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(Embedded {
            router: polyaxon_server::routes::router(started.app.clone()),
            home: home.display().to_string(),
            app: started.app,
        })
    }
}

impl Transport for Embedded {
    fn send(&self, req: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(async move {
            use tower::ServiceExt;
            let mut builder = http::Request::builder()
                .method(req.method)
                .uri(req.path)
                .header(http::header::HOST, HeaderValue::from_static("embedded"));
            let body = match req.body {
                Some((b, ctype)) => {
                    builder = builder.header(http::header::CONTENT_TYPE, ctype);
                    axum::body::Body::from(b)
                }
                None => axum::body::Body::empty(),
            };
            let request = builder
                .body(body)
                .map_err(|e| TransportError::Other(format!("bad request: {e}")))?;
            let resp = self
                .router
                .clone()
                .oneshot(request)
                .await
                .map_err(|e| TransportError::Other(e.to_string()))?;
            let (parts, body) = resp.into_parts();
            Ok(Response {
                status: parts.status,
                headers: parts.headers,
                body: Box::pin(body.into_data_stream().map_err(std::io::Error::other)),
            })
        })
    }

    fn describe(&self) -> String {
        format!("the embedded store in `{}`", self.home)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows() {
        assert!(backoff(1) >= Duration::from_millis(250));
        assert!(backoff(2) >= Duration::from_millis(500));
        assert!(backoff(3) >= Duration::from_millis(1000));
        assert!(backoff(3) < Duration::from_millis(1300));
    }
}
