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

/// A small tmpfs for the artifacts, unmounted when dropped; none (said why) where mounting is
/// not allowed.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("skipped: mounting a tmpfs needs root (or CAP_SYS_ADMIN) here");
            return None;
        }
        Some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// Every file under `dir`, relative.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The artifacts filesystem full: uploads (plain and unpacked) and log appends answer 507
/// saying so, nothing half-written is left under a file's name, the store stays as it was,
/// and writes work again once there is room.
#[tokio::test]
async fn a_full_disk_is_refused_cleanly() {
    use reqwest::{Method, StatusCode};
    let Some(disk) = SmallDisk::mount("512k") else {
        return;
    };
    let root = disk.0.path().to_path_buf();
    let s = TestServer::sqlite_with(|c| c.artifacts_root = root.clone()).await;
    let p = s.project("full").await;
    let uuid = s.run(&p, serde_json::json!({})).await;
    let upload = |q: &str| format!("/api/v1/root/{p}/runs/{uuid}/artifacts/upload?{q}");
    let logs = format!("/streams/v1/polyaxon/root/{p}/runs/{uuid}/logs");
    let (st, _) = s
        .raw(
            Method::POST,
            &upload("path=outputs/small.bin"),
            &s.root_token,
            "application/octet-stream",
            vec![1u8; 100 * 1024],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .post(&logs, serde_json::json!({"logs": [{"value": "before"}]}))
        .await;
    assert!(st.is_success(), "{st}");
    let before = files_under(&root);
    // Larger than what is left: refused, saying why; nothing of it left.
    let (st, body) = s
        .raw(
            Method::POST,
            &upload("path=outputs/big.bin"),
            &s.root_token,
            "application/octet-stream",
            vec![2u8; 1024 * 1024],
        )
        .await;
    let body = String::from_utf8_lossy(&body).to_string();
    assert_eq!(st, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert!(body.contains("filesystem is full"), "{body}");
    assert_eq!(files_under(&root), before, "a half-written file was left");
    // The same through an archive that is unpacked: the entries written before the full
    // disk are whole; the one it cut is not left under its name.
    let mut t = tar::Builder::new(Vec::new());
    for (name, size) in [("a.txt", 1000usize), ("huge.bin", 1024 * 1024)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, &vec![3u8; size][..]).unwrap();
    }
    let (st, body) = s
        .raw(
            Method::POST,
            &upload("path=outputs/unpacked&untar=true"),
            &s.root_token,
            "application/octet-stream",
            t.into_inner().unwrap(),
        )
        .await;
    let body = String::from_utf8_lossy(&body).to_string();
    assert_eq!(st, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    let now = files_under(&root);
    assert!(
        !now.iter()
            .any(|f| f.contains("huge.bin") || f.contains(".part-")),
        "{now:?}"
    );
    // Filled to the last byte: log lines are refused, not half-appended.
    let filler = root.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.write_all(&[0u8]);
    }
    let log_files: Vec<String> = files_under(&root)
        .into_iter()
        .filter(|f| f.contains("logs"))
        .collect();
    let sizes = |fs: &[String]| -> Vec<u64> {
        fs.iter()
            .map(|f| {
                std::fs::metadata(root.join(f))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .collect()
    };
    let log_sizes = sizes(&log_files);
    let lines: Vec<serde_json::Value> = (0..2000)
        .map(|i| serde_json::json!({"value": format!("line {i} {}", "x".repeat(100))}))
        .collect();
    let (st, body) = s.post(&logs, serde_json::json!({"logs": lines})).await;
    assert_eq!(st, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(sizes(&log_files), log_sizes, "log lines half-appended");
    // The store is as it was: the run reads, its logs are those sent before.
    let (st, run) = s.get(&format!("/api/v1/root/{p}/runs/{uuid}")).await;
    assert_eq!(st, StatusCode::OK, "{run}");
    // Room again: writes work.
    std::fs::remove_file(&filler).unwrap();
    let (st, _) = s
        .post(&logs, serde_json::json!({"logs": [{"value": "after"}]}))
        .await;
    assert!(st.is_success(), "{st}");
    let (st, got) = s.get(&logs).await;
    assert_eq!(st, StatusCode::OK);
    let text = got.to_string();
    assert!(text.contains("before") && text.contains("after"), "{text}");
    assert!(!text.contains("line 1999"), "{text}");
    s.finish().await;
}

/// One user's open downloads and uploads are capped: past the cap the next is answered 429
/// with a `Retry-After`, another user is served meanwhile, and a slot comes back when a
/// download's body is dropped.
async fn open_transfers(s: TestServer) {
    use reqwest::{Method, StatusCode};
    let p = s.project("transfers").await;
    let uuid = s.run(&p, serde_json::json!({})).await;
    // Larger than what the sockets between us buffer, so a body not read stays open.
    let outputs = s.artifacts.path().join(&uuid).join("outputs");
    std::fs::create_dir_all(&outputs).unwrap();
    std::fs::write(outputs.join("big.bin"), vec![7u8; 64 << 20]).unwrap();
    let url = format!(
        "{}/streams/v1/polyaxon/root/{p}/runs/{uuid}/artifact?path=outputs/big.bin",
        s.base
    );
    let get = |token: String| {
        let (client, url) = (s.client.clone(), url.clone());
        async move {
            client
                .get(url)
                .header("Authorization", format!("Token {token}"))
                .send()
                .await
                .unwrap()
        }
    };
    let first = get(s.root_token.clone()).await;
    let second = get(s.root_token.clone()).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let refused = get(s.root_token.clone()).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "2");
    let text = refused.text().await.unwrap();
    assert!(text.contains("2 downloads and uploads open"), "{text}");
    // An upload counts too, and its refused body is read so the client sees the answer.
    let (st, body) = s
        .raw(
            Method::POST,
            &format!("/api/v1/root/{p}/runs/{uuid}/artifacts/upload?path=outputs/up.bin"),
            &s.root_token,
            "application/octet-stream",
            vec![1u8; 1 << 20],
        )
        .await;
    assert_eq!(
        st,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(!outputs.join("up.bin").exists());
    // Another user, on a run of theirs, is not held up by root's transfers.
    let alice = s.user("alice").await;
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/alice/projects/create",
            Some(&alice),
            Some(serde_json::json!({"name": "hers"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/alice/hers/runs",
            Some(&alice),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let hers = b["uuid"].as_str().unwrap().to_string();
    let (st, body) = s
        .raw(
            Method::POST,
            &format!("/api/v1/alice/hers/runs/{hers}/artifacts/upload?path=outputs/a.txt"),
            &alice,
            "application/octet-stream",
            b"hers".to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    // A download read to its end and one dropped half way both give their slot back.
    let all = first.bytes().await.unwrap();
    assert_eq!(all.len(), 64 << 20);
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (a, b) = loop {
        let a = get(s.root_token.clone()).await;
        let b = get(s.root_token.clone()).await;
        if a.status() == StatusCode::OK && b.status() == StatusCode::OK {
            break (a, b);
        }
        assert!(
            Instant::now() < deadline,
            "slots not given back: {} {}",
            a.status(),
            b.status()
        );
        drop((a, b));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop((a, b));
    s.finish().await;
}

fn two_transfers(c: &mut polyaxon_server::Config) {
    c.max_transfers_per_user = 2;
}

mod open_transfers_are_capped_per_user {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::open_transfers(crate::common::TestServer::sqlite_with(super::two_transfers).await)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(s) = crate::common::TestServer::postgres_with(super::two_transfers).await else {
            return;
        };
        super::open_transfers(s).await;
    }
}
