//! Who is calling: `Authorization: Token <t>` (or `Bearer <t>`) resolved to a user and a scope.
//! In open mode (the embedded, single-user default) a request without a token acts as the
//! implicit user; a token, when given, still applies with its scope.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::App;
use crate::error::ApiError;
use crate::store::{TokenScope, User};

/// The caller of a request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: User,
    pub scope: TokenScope,
}

impl Principal {
    /// Run-scoped tokens may only touch their own run.
    pub fn check_run(&self, uuid: &str) -> Result<(), ApiError> {
        match &self.scope {
            TokenScope::Run(r) if *r != uuid.replace('-', "") => Err(ApiError::Forbidden(
                "this token is scoped to another run".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses run-scoped tokens (for anything beyond their run).
    pub fn require_user_scope(&self) -> Result<(), ApiError> {
        match self.scope {
            TokenScope::Run(_) => Err(ApiError::Forbidden(
                "a run token can only read and write its own run".into(),
            )),
            TokenScope::User => Ok(()),
        }
    }
}

/// How long a resolved token is trusted before it is looked up again.
const CACHE_TTL: Duration = Duration::from_secs(10);

/// Recently resolved tokens, so that hot endpoints (metrics, logs) do not query for every call.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl TokenCache {
    fn get(&self, token: &str) -> Option<Principal> {
        let map = self.entries.lock().ok()?;
        map.get(token)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(p, _)| p.clone())
    }

    fn put(&self, token: &str, p: &Principal) {
        if let Ok(mut map) = self.entries.lock() {
            if map.len() > 10_000 {
                map.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            }
            map.insert(token.to_string(), (p.clone(), Instant::now()));
        }
    }

    /// Forgets every cached token (after a token is deleted).
    pub fn clear(&self) {
        if let Ok(mut map) = self.entries.lock() {
            map.clear();
        }
    }
}

fn bearer(headers: &http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(h) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let h = h
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not text".into()))?;
    let (scheme, token) = h
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthorized("expected `Authorization: Token <token>`".into()))?;
    if !scheme.eq_ignore_ascii_case("token") && !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthorized(format!(
            "unsupported authorization scheme `{scheme}`; use `Token <token>`"
        )));
    }
    Ok(Some(token.trim().to_string()))
}

/// The dashboard's session cookie.
pub const COOKIE: &str = "plx_token";

/// The token in the dashboard's session cookie, if any.
pub fn cookie_token(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The header the dashboard's scripts send with a change, the token of their page.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The CSRF token of a dashboard session: derived from its cookie (which no other site can
/// read), so it needs no storage and ends with the session.
pub fn csrf_token(session: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(format!("polyaxon-dashboard-csrf\0{session}"))
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a change may be authenticated by the dashboard's cookie: it carries the session's
/// CSRF token in its header (a cross-site form cannot set one, and a cross-site script may not
/// without CORS, which this server never allows), and when the browser says where it comes from
/// (`Origin`), that is this server. The cookie itself is `SameSite=Strict` too.
fn csrf_ok(headers: &http::HeaderMap) -> bool {
    let Some(session) = cookie_token(headers) else {
        return false;
    };
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if sent != Some(csrf_token(&session).as_str()) {
        return false;
    }
    match headers
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(origin) => {
            // The site's host as the browser knew it: `Host`, or behind a proxy that rewrites
            // it, the one the proxy says it was asked for (`X-Forwarded-Host`; a page of
            // another site can set neither on a request, and still has no token).
            let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
            let header = |h: &str| {
                headers
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(',').next())
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            };
            [header("host"), header("x-forwarded-host")]
                .into_iter()
                .flatten()
                .any(|h| h.eq_ignore_ascii_case(origin_host))
        }
    }
}

/// Who is calling, from the `Authorization` header, else (when `allow_cookie`: reads, and
/// changes that carry the page's CSRF token, so that no other site can make a browser change
/// anything) the dashboard's cookie, else the open-mode user.
pub async fn resolve(
    app: &App,
    headers: &http::HeaderMap,
    allow_cookie: bool,
) -> Result<Principal, ApiError> {
    let token = match bearer(headers)? {
        Some(t) => Some(t),
        None if allow_cookie => cookie_token(headers),
        None => None,
    };
    match token {
        Some(token) => {
            if let Some(p) = app.tokens.get(&token) {
                return Ok(p);
            }
            match app
                .store
                .lookup_token(&token, app.config.run_token_grace)
                .await?
            {
                Some((user, scope)) => {
                    let p = Principal { user, scope };
                    app.tokens.put(&token, &p);
                    Ok(p)
                }
                None => Err(ApiError::Unauthorized(
                    "the token is invalid or expired; run `polyaxon login`".into(),
                )),
            }
        }
        None => match &app.open_user {
            Some(user) => Ok(Principal {
                user: user.clone(),
                scope: TokenScope::User,
            }),
            None => Err(ApiError::Unauthorized(
                "authentication required; run `polyaxon login`".into(),
            )),
        },
    }
}

impl FromRequestParts<App> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let reading = parts.method == http::Method::GET || parts.method == http::Method::HEAD;
        resolve(app, &parts.headers, reading || csrf_ok(&parts.headers)).await
    }
}

/// Failed logins counted per username and per client address over a sliding window. Past
/// either limit a login is refused with 429 (even with the right password) until the oldest
/// failure in the window has aged out, so a password cannot be guessed faster than that.
pub struct LoginLimiter {
    per_user: usize,
    per_address: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(per_user: usize, per_address: usize, window: Duration) -> Self {
        LoginLimiter {
            per_user,
            per_address,
            window,
            failures: Mutex::default(),
        }
    }

    /// The counters a login attempt touches, each with its limit.
    fn keys(&self, username: &str, addr: Option<IpAddr>) -> impl Iterator<Item = (String, usize)> {
        let user = (format!("u:{}", username.to_lowercase()), self.per_user);
        let address = addr.map(|a| (format!("a:{a}"), self.per_address));
        std::iter::once(user).chain(address)
    }

    /// `Err(seconds)` to wait when the username or the address is over its limit.
    pub fn check(&self, username: &str, addr: Option<IpAddr>) -> Result<(), u64> {
        let Ok(mut map) = self.failures.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let mut wait = 0;
        for (key, limit) in self.keys(username, addr) {
            if let Some(q) = map.get_mut(&key) {
                while q
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    q.pop_front();
                }
                if q.len() >= limit {
                    let oldest = q[q.len() - limit];
                    let left = self.window.saturating_sub(now.duration_since(oldest));
                    wait = wait.max(left.as_secs() + 1);
                }
            }
        }
        if wait > 0 { Err(wait) } else { Ok(()) }
    }

    /// Counts a failed attempt against the username and the address.
    pub fn failed(&self, username: &str, addr: Option<IpAddr>) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        let now = Instant::now();
        if map.len() > 100_000 {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        for (key, limit) in self.keys(username, addr) {
            let q = map.entry(key).or_default();
            q.push_back(now);
            // Only the last `limit` failures decide anything.
            while q.len() > limit {
                q.pop_front();
            }
        }
    }

    /// A successful login forgets the username's failures (not the address's).
    pub fn succeeded(&self, username: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&format!("u:{}", username.to_lowercase()));
        }
    }
}

/// The client's address, when the server was started with connection info (`serve` does).
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_limited_per_user_and_per_address() {
        let l = LoginLimiter::new(3, 5, Duration::from_millis(300));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check("Ann", Some(a)).is_ok());
            l.failed("ann", Some(a));
        }
        // The user is locked from every address; others are not.
        assert!(l.check("ann", Some(b)).is_err());
        assert!(l.check("bob", Some(b)).is_ok());
        // Two more failures from `a` for other users lock the address.
        l.failed("bob", Some(a));
        l.failed("cat", Some(a));
        assert!(l.check("dan", Some(a)).is_err());
        assert!(l.check("dan", Some(b)).is_ok());
        // The window passes.
        std::thread::sleep(Duration::from_millis(350));
        assert!(l.check("ann", Some(a)).is_ok());
        // Success forgets the user's failures.
        l.failed("eve", None);
        l.failed("eve", None);
        l.succeeded("eve");
        l.failed("eve", None);
        l.failed("eve", None);
        assert!(l.check("eve", None).is_ok());
    }
}
