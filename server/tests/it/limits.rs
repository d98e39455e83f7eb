//! Clients that hold a connection without finishing their request are cut off: headers
//! trickled past the header timeout, a body paused past the idle timeout.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::TestServer;

fn quick(c: &mut polyaxon_server::Config) {
    c.header_timeout = Duration::from_secs(1);
    c.body_idle_timeout = Duration::from_secs(1);
}

/// What the server sends before it closes, read for at most `limit`; `None` when it keeps the
/// connection open that long.
async fn until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + limit;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

async fn slow_clients(s: TestServer) {
    let addr = s.base.trim_start_matches("http://").to_string();
    // Headers never finished.
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
        .await
        .unwrap();
    let started = Instant::now();
    let got = until_closed(&mut c, Duration::from_secs(10)).await;
    assert!(
        got.is_some(),
        "a client trickling its headers keeps its connection"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // A body that stops half way: the request fails and the connection goes.
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    c.write_all(
        b"POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\"",
    )
    .await
    .unwrap();
    let got = until_closed(&mut c, Duration::from_secs(10)).await;
    let got = got.expect("a client pausing its body keeps its connection");
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 4"), "{got}");

    // Someone who sends promptly is served meanwhile and after.
    let (st, _) = s.get("/healthz").await;
    assert_eq!(st, reqwest::StatusCode::OK);
    s.finish().await;
}

mod slow_clients_are_cut_off {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::slow_clients(crate::common::TestServer::sqlite_with(super::quick).await).await;
    }
}

crate::both!(paths_never_leave_the_run, |s| {
    use reqwest::{Method, StatusCode};
    let p = s.project("paths").await;
    let uuid = s.run(&p, serde_json::json!({})).await;
    let upload = |path: &str| format!("/api/v1/root/{p}/runs/{uuid}/artifacts/upload?path={path}");
    let read =
        |path: &str| format!("/streams/v1/polyaxon/root/{p}/runs/{uuid}/artifact?path={path}");
    let (st, _) = s
        .raw(
            Method::POST,
            &upload("outputs/ok.txt"),
            &s.root_token,
            "application/octet-stream",
            b"ok".to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    // `..` as written, percent-encoded, double-encoded, mixed with `/`; NUL; all refused.
    for bad in [
        "../x",
        "outputs/../../x",
        "%2e%2e/x",
        "outputs%2f%2e%2e%2f%2e%2e%2fx",
        "..%2f..%2fetc%2fpasswd",
        "outputs/%00x",
    ] {
        let (st, body) = s
            .raw(
                Method::POST,
                &upload(bad),
                &s.root_token,
                "application/octet-stream",
                b"x".to_vec(),
            )
            .await;
        assert_eq!(
            st,
            StatusCode::BAD_REQUEST,
            "upload {bad}: {}",
            String::from_utf8_lossy(&body)
        );
        let (st, _) = s
            .raw(Method::GET, &read(bad), &s.root_token, "text/plain", vec![])
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "read {bad}");
    }
    // Double-encoded stays a literal name inside the run; an absolute path is taken as relative.
    let (st, _) = s
        .raw(
            Method::GET,
            &read("%252e%252e/x"),
            &s.root_token,
            "text/plain",
            vec![],
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .raw(
            Method::GET,
            &read("/etc/passwd"),
            &s.root_token,
            "text/plain",
            vec![],
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // A job's links that leave the run: neither read nor written through.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "host data").unwrap();
    let outputs = s.artifacts.path().join(&uuid).join("outputs");
    std::os::unix::fs::symlink(outside.path(), outputs.join("escape")).unwrap();
    let (st, body) = s
        .raw(
            Method::GET,
            &read("outputs/escape/secret"),
            &s.root_token,
            "text/plain",
            vec![],
        )
        .await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(!String::from_utf8_lossy(&body).contains("host data"));
    let (st, _) = s
        .raw(
            Method::POST,
            &upload("outputs/escape/planted"),
            &s.root_token,
            "application/octet-stream",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(!outside.path().join("planted").exists());
    // An archive unpacked through the link writes nothing outside either.
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    t.append_data(&mut h, "escape/from-tar", &b"x"[..]).unwrap();
    let tarball = t.into_inner().unwrap();
    let (st, _) = s
        .raw(
            Method::POST,
            &format!("/api/v1/root/{p}/runs/{uuid}/artifacts/upload?path=outputs&untar=true"),
            &s.root_token,
            "application/octet-stream",
            tarball,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(!outside.path().join("from-tar").exists());
});
