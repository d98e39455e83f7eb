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
    /// A body read from a file as it is sent (never whole in memory; opened again for each
    /// try), instead of `body`.
    pub file_body: Option<(std::path::PathBuf, &'static str)>,
    /// Repeating it changes nothing more than sending it once (a status, a heartbeat, a
    /// metric batch with its id), so it may be retried whatever its method. GET, HEAD, PUT,
    /// DELETE and OPTIONS are retried anyway.
    pub repeatable: bool,
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
        // The process's TLS provider, for callers that are not the CLI's `main` (it does the
        // same): a no-op once one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
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
        if let Some((path, ctype)) = &req.file_body {
            let f = tokio::fs::File::open(path)
                .await
                .map_err(|e| TransportError::Other(format!("reading `{}`: {e}", path.display())))?;
            let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
            // As long as the upload takes at 1 MiB/s, beyond the usual timeout.
            let timeout = self.timeout + Duration::from_secs(len >> 20);
            rb = rb
                .header(http::header::CONTENT_TYPE, *ctype)
                .header(http::header::CONTENT_LENGTH, len)
                .timeout(timeout)
                .body(reqwest::Body::wrap_stream(
                    tokio_util::io::ReaderStream::new(f),
                ));
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
/// Tries after a busy answer (about half a minute of waiting in all).
const BUSY_RETRIES: u32 = 8;
/// The most a busy answer's `Retry-After` is waited, each time.
const MAX_BUSY_WAIT_SECS: u64 = 5;

impl Transport for Http {
    fn send(&self, req: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(async move {
            let idempotent = req.repeatable
                || matches!(
                    req.method,
                    Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
                );
            let mut attempt = 0;
            loop {
                let result = self.once(&req).await;
                // A server that says it is busy (503 with Retry-After: its database pool; 429
                // with Retry-After: too many transfers of this user at once) is waited for
                // longer, as it asks: a run's controller must outlast a burst.
                let busy = match &result {
                    Ok(r)
                        if matches!(
                            r.status(),
                            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
                        ) =>
                    {
                        r.headers()
                            .get(http::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    }
                    _ => None,
                };
                let limit = if busy.is_some() {
                    BUSY_RETRIES
                } else {
                    RETRIES
                };
                let retry = idempotent
                    && attempt < limit
                    && match &result {
                        Ok(r) => {
                            matches!(r.status().as_u16(), 502..=504)
                                || (busy.is_some() && r.status() == StatusCode::TOO_MANY_REQUESTS)
                        }
                        Err(TransportError::Connect { .. } | TransportError::Timeout { .. }) => {
                            true
                        }
                        Err(_) => false,
                    };
                if retry {
                    attempt += 1;
                    let wait = backoff(attempt).max(Duration::from_secs(
                        busy.unwrap_or(0).min(MAX_BUSY_WAIT_SECS),
                    ));
                    tokio::time::sleep(wait).await;
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
        let mut config = Config::new(
            home.join("artifacts"),
            AuthMode::Open {
                user: EMBEDDED_USER.into(),
            },
        );
        config.notify = crate::settings::notify_config("http://localhost:8000");
        let started = App::start(store, config, None)
            .await
            .map_err(|e| fail(e.to_string()))?;
        // The embedded config's connections: `$POLYAXON_CONNECTIONS_FILE`, else
        // `connections.yaml` in the home (read each time; written only when changed).
        let file = crate::env::get_os(crate::env::POLYAXON_CONNECTIONS_FILE)
            .map(std::path::PathBuf::from)
            .or_else(|| Some(home.join("connections.yaml")).filter(|p| p.exists()));
        if let Some(file) = file {
            crate::connections::sync_file(
                &started.app.store,
                &file,
                started.app.config.notify.allow_link_local,
            )
            .await
            .map_err(|e| fail(crate::error::said(&e)))?;
        }
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
                None => match &req.file_body {
                    Some((path, ctype)) => {
                        let f = tokio::fs::File::open(path).await.map_err(|e| {
                            TransportError::Other(format!("reading `{}`: {e}", path.display()))
                        })?;
                        builder = builder.header(http::header::CONTENT_TYPE, *ctype);
                        axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(f))
                    }
                    None => axum::body::Body::empty(),
                },
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

    /// A server answering `busy` times 503 (busy, `Retry-After: 0`), then 200; the requests
    /// it saw.
    fn busy_server(busy: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = seen.clone();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { return };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = std::io::Read::read_exact(&mut r, &mut body);
                let n = count.fetch_add(1, Ordering::SeqCst);
                let answer = if n < busy {
                    "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                };
                let mut s = s;
                let _ = s.write_all(answer.as_bytes());
            }
        });
        (format!("http://{addr}"), seen)
    }

    #[tokio::test]
    async fn a_busy_server_is_waited_for_when_the_call_may_be_repeated() {
        use std::sync::atomic::Ordering;
        let post = |repeatable| Request {
            method: Method::POST,
            path: "/api/v1/x".into(),
            body: Some((Bytes::from_static(b"{}"), "application/json")),
            file_body: None,
            repeatable,
        };
        // Busy for more tries than a connection failure gets: still waited for.
        let (host, seen) = busy_server(5);
        let http = Http::new(&host, None, Duration::from_secs(5), true).unwrap();
        let r = http.send(post(true)).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(seen.load(Ordering::SeqCst), 6);
        // A call that must not be sent twice is not.
        let (host, seen) = busy_server(1);
        let http = Http::new(&host, None, Duration::from_secs(5), true).unwrap();
        let r = http.send(post(false)).await.unwrap();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        // Busy for longer than the tries: the answer is the server's.
        let (host, seen) = busy_server(100);
        let http = Http::new(&host, None, Duration::from_secs(5), true).unwrap();
        let r = http.send(post(true)).await.unwrap();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(seen.load(Ordering::SeqCst), BUSY_RETRIES as usize + 1);
    }
}
