//! Services through the server: `/services/v1/{namespace}/{owner}/{project}/runs/{uuid}/…` is
//! proxied, HTTP and WebSocket, to the running service's first port (where its executor said
//! it serves: `meta_info.executor.urls`). The path goes as it came, since a service is started
//! with that prefix as its base URL (`globals.base_url`); with `rewritePath: true` the prefix
//! is taken off. Authorised like the run: its readers may look (GET), its writers may do the
//! rest (a notebook runs code), by token or the dashboard's cookie (`SameSite=Strict`, so no
//! other site's page sends it).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use serde_json::Value as J;

use super::run_for;
use crate::App;
use crate::api::RunStatus;
use crate::error::{ApiError, ApiResult};

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
        && headers.contains_key(header::UPGRADE)
}

/// The request's headers for the service: without this hop's, our credentials or our cookie.
fn forwarded_headers(from: &HeaderMap, upgrade: bool, host: &str, prefix: &str) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in from {
        let name = k.as_str();
        if HOP_BY_HOP.contains(&name) || name == "authorization" || name == "host" {
            continue;
        }
        if name == "cookie" {
            let kept: Vec<&str> = v
                .to_str()
                .unwrap_or("")
                .split(';')
                .map(str::trim)
                .filter(|kv| {
                    !kv.starts_with(&format!("{}=", crate::auth::COOKIE)) && !kv.is_empty()
                })
                .collect();
            if !kept.is_empty()
                && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
            {
                out.append(header::COOKIE, v);
            }
            continue;
        }
        out.append(k.clone(), v.clone());
    }
    if upgrade {
        for h in [header::CONNECTION, header::UPGRADE] {
            if let Some(v) = from.get(&h) {
                out.insert(h, v.clone());
            }
        }
    }
    if let Ok(h) = HeaderValue::from_str(host) {
        out.insert(header::HOST, h);
    }
    if let Some(h) = from.get(header::HOST) {
        out.insert("x-forwarded-host", h.clone());
    }
    if let Ok(p) = HeaderValue::from_str(prefix) {
        out.insert("x-forwarded-prefix", p);
    }
    out.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    out
}

/// The `run` section of a run's content (an operation with its component inline).
fn run_section(content: Option<&str>) -> J {
    let c: J = content
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or(J::Null);
    let run = &c["component"]["run"];
    if run.is_null() {
        c["run"].clone()
    } else {
        run.clone()
    }
}

/// Where the run's service listens: `host:port`. Only on a port the run's spec declares (its
/// `run` section), and only on this machine's loopback, or — for a run on Kubernetes — at
/// its Service, whose name the server makes from the run's uuid (`k8s_host`: the template
/// with `{name}` and `{namespace}`): `meta_info` is written by the run's writers, and the
/// proxy must not become a way for them to reach any address the server can.
fn target(meta_info: Option<&str>, run: &J, uuid: &str, k8s_host: &str) -> Option<String> {
    let meta: J = serde_json::from_str(meta_info?).ok()?;
    if matches!(
        meta["executor"]["kind"].as_str(),
        Some("kubernetes" | "k8s")
    ) {
        let ns = meta["executor"]["namespace"].as_str()?;
        // A DNS label, so that it cannot steer the host elsewhere.
        let label = !ns.is_empty()
            && ns.len() <= 63
            && ns
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !ns.starts_with('-')
            && !ns.ends_with('-');
        if !label || !uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return None;
        }
        let port = run["ports"].as_array()?.first()?.as_u64()?;
        let host = k8s_host
            .replace("{name}", &crate::api::k8s_resource_name(uuid))
            .replace("{namespace}", ns);
        return Some(format!("{host}:{port}"));
    }
    let url = meta["executor"]["urls"].as_array()?.first()?.as_str()?;
    let rest = url.strip_prefix("http://")?.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let declared = run["ports"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p.as_u64() == Some(port as u64)));
    (loopback && declared).then(|| rest.to_string())
}

#[derive(serde::Deserialize)]
struct ServicePath {
    namespace: String,
    owner: String,
    project: String,
    uuid: String,
}

/// Proxies one request to the run's service.
pub async fn proxy(State(app): State<App>, req: Request) -> ApiResult<Response> {
    let (mut parts, body) = req.into_parts();
    let axum::extract::Path(p) =
        <axum::extract::Path<ServicePath> as axum::extract::FromRequestParts<App>>::from_request_parts(
            &mut parts, &app,
        )
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let upgrade = is_upgrade(&parts.headers);
    let reading =
        (parts.method == http::Method::GET || parts.method == http::Method::HEAD) && !upgrade;
    // The cookie on every method: it is `SameSite=Strict`, so only our own pages send it.
    let who = crate::auth::resolve(&app, &parts.headers, true).await?;
    let (_, run) = run_for(&app, &who, &p.owner, &p.project, &p.uuid, !reading).await?;
    if run.status != RunStatus::Running.as_str() {
        return Err(ApiError::Conflict(format!(
            "run `{}` is {}: its service is reached while it runs",
            p.uuid, run.status
        )));
    }
    let section = run_section(run.content.as_deref());
    let Some(addr) = target(
        run.meta_info.as_deref(),
        &section,
        &run.uuid,
        &app.config.k8s_service_host,
    ) else {
        return Err(ApiError::NotFound(format!(
            "run `{}` serves nothing here: it is not a service with `ports`, or it runs on another machine (reach it with `polyaxon ops service`)",
            p.uuid
        )));
    };
    let prefix = format!(
        "/services/v1/{}/{}/{}/runs/{}",
        p.namespace, p.owner, p.project, p.uuid
    );
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let path = if section["rewritePath"].as_bool() == Some(true) {
        match path_and_query.strip_prefix(&prefix) {
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            Some(rest) => format!("/{rest}"),
            None => path_and_query,
        }
    } else {
        path_and_query
    };
    let stream = tokio::net::TcpStream::connect(&addr).await.map_err(|e| {
        ApiError::Unavailable(
            format!(
                "the service of run `{}` does not answer on {addr}: {e}",
                p.uuid
            ),
            2,
        )
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ApiError::Unavailable(format!("the service did not answer: {e}"), 2))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let client_upgrade = if upgrade {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    let mut out = http::Request::builder()
        .method(parts.method.clone())
        .uri(path.as_str())
        .body(if upgrade { Body::empty() } else { body })
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    *out.headers_mut() = forwarded_headers(&parts.headers, upgrade, &addr, &prefix);
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| ApiError::Unavailable(format!("the service did not answer: {e}"), 2))?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let backend_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (Ok(client), Ok(backend)) = (client_upgrade.await, backend_upgrade.await) else {
                return;
            };
            let (mut a, mut b) = (TokioIo::new(client), TokioIo::new(backend));
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        });
        let mut answer = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
        for (k, v) in resp.headers() {
            answer = answer.header(k, v);
        }
        return answer
            .body(Body::empty())
            .map_err(|e| ApiError::Internal(e.to_string()));
    }
    let (rparts, rbody) = resp.into_parts();
    let mut answer = Response::from_parts(rparts, Body::new(rbody));
    for h in HOP_BY_HOP {
        answer.headers_mut().remove(*h);
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_credentials_stay_here() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Token secret"),
        );
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("_xsrf=abc; plx_token=secret; other=1"),
        );
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert(
            header::HOST,
            HeaderValue::from_static("polyaxon.example:8000"),
        );
        let out = forwarded_headers(&h, false, "127.0.0.1:8888", "/services/v1/p/o/p/runs/u");
        assert!(out.get(header::AUTHORIZATION).is_none());
        assert_eq!(out[header::COOKIE], "_xsrf=abc; other=1");
        assert!(out.get(header::CONNECTION).is_none());
        assert_eq!(out[header::HOST], "127.0.0.1:8888");
        assert_eq!(out["x-forwarded-host"], "polyaxon.example:8000");
    }

    #[test]
    fn targets_and_rewrites() {
        let run = run_section(Some(
            r#"{"component": {"run": {"kind": "service", "ports": [8888], "rewritePath": true}}}"#,
        ));
        assert_eq!(run["rewritePath"], true);
        assert_eq!(
            run_section(Some(r#"{"run": {"ports": [1]}}"#))["ports"][0],
            1
        );
        let at = |url: &str| format!(r#"{{"executor": {{"urls": ["{url}"]}}}}"#);
        let t = |meta: &str, run: &J| target(Some(meta), run, "abc123", "{name}.{namespace}.svc");
        assert_eq!(
            t(&at("http://127.0.0.1:8888"), &run).as_deref(),
            Some("127.0.0.1:8888")
        );
        assert_eq!(t(r#"{"executor": {}}"#, &run), None);
        // Another host, or a port the spec does not declare: not proxied.
        assert_eq!(t(&at("http://169.254.169.254:80"), &run), None);
        assert_eq!(t(&at("http://10.0.0.5:8888"), &run), None);
        assert_eq!(t(&at("http://127.0.0.1:5432"), &run), None);
        assert_eq!(t(&at("http://127.0.0.1:8888"), &J::Null), None);
        // On Kubernetes: the run's Service, named by the server, on the declared port.
        let k8s = |ns: &str| {
            format!(
                r#"{{"executor": {{"kind": "kubernetes", "namespace": "{ns}", "urls": ["http://10.0.0.5:1"]}}}}"#
            )
        };
        assert_eq!(
            t(&k8s("ml-team"), &run).as_deref(),
            Some("plx-operation-abc123.ml-team.svc:8888")
        );
        for bad in ["", "Kube_System", "a.b", "evil.com:80/x", "-x"] {
            assert_eq!(t(&k8s(bad), &run), None, "{bad}");
        }
        assert_eq!(t(&k8s("ml"), &J::Null), None, "no declared port");
    }
}
