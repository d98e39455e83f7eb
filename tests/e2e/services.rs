//! A service run reached through the server: `/services/v1/polyaxon/{owner}/{project}/runs/
//! {uuid}/…` proxied (HTTP and a WebSocket) to the job the process executor started, under the
//! base URL the job was given; authorised like the run; gone when the run is stopped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value as J;

use polyaxon_tests::sealed::{stderr, stdout};
use polyaxon_tests::server::http_with;

use super::remote::logged_in_with_project;

/// A service of the standard library: echoes what it was asked (path, cookies, auth), echoes
/// POST bodies, and speaks just enough WebSocket to echo one text frame.
const SERVICE: &str = r#"
import base64, hashlib, http.server, sys
PORT, BASE = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            key = self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
            accept = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            head = self.rfile.read(2)
            n = head[1] & 0x7F
            mask = self.rfile.read(4)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
            self.wfile.write(bytes([0x81, len(data)]) + data)
            self.wfile.flush()
            self.close_connection = True
            return
        body = f"path={self.path} base={BASE} cookie={self.headers.get('Cookie')} auth={self.headers.get('Authorization')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A request with extra header lines; the status, the headers and the body.
fn request(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

/// The configured server's URL and address.
fn host_of(env: &polyaxon_tests::sealed::Env) -> (String, String) {
    let host = stdout(&env.cmd().args(["config", "get", "host"]).output().unwrap())
        .trim()
        .to_string();
    let addr = host.trim_start_matches("http://").to_string();
    (host, addr)
}

/// A token of `user`'s, from the server's login.
fn login(addr: &str, user: &str, password: &str) -> String {
    let body = serde_json::json!({"username": user, "password": password}).to_string();
    let (_, got) = http_with(addr, "POST", "/api/v1/auth/token", Some(&body), None);
    serde_json::from_str::<J>(&got).unwrap()["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token for {user}: {got}"))
        .to_string()
}

/// A WebSocket upgrade of `path`: the connection and the answer's head.
fn upgrade(addr: &str, path: &str, auth: &str) -> (TcpStream, String) {
    let mut ws = TcpStream::connect(addr).unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        ws,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ws.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    (ws, String::from_utf8_lossy(&head).to_string())
}

#[test]
fn a_service_is_reached_through_the_server() {
    let (_server, env, _server_home) = logged_in_with_project(None);
    let (host, addr) = host_of(&env);
    let token = login(&addr, "root", "s3cret-admin-pass");
    let work = env.home.path().join("svc");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("svc.py"), SERVICE).unwrap();
    let port = free_port();
    std::fs::write(
        work.join("polyaxonfile.yml"),
        format!(
            "version: 1.1\nkind: component\nname: web\nrun:\n  kind: service\n  ports: [{port}]\n  container:\n    image: python\n    command: [python3, svc.py, \"{{{{ globals.ports[0] }}}}\", \"{{{{ globals.base_url }}}}\"]\n"
        ),
    )
    .unwrap();
    let out = env
        .cmd()
        .current_dir(&work)
        .args(["run", "-p", "demo", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let uuid = serde_json::from_str::<J>(&stdout(&out)).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let _stop = StopRun(&env, uuid.clone());
    let base = format!("/services/v1/polyaxon/root/demo/runs/{uuid}");
    let auth = format!("Authorization: Token {token}\r\n");
    // Up once the job listens.
    let end = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let (st, resp) = request(&addr, "GET", &format!("{base}/hello?x=1"), &auth, "");
        if st == 200 {
            break resp;
        }
        assert!(Instant::now() < end, "the service never answered: {resp}");
        std::thread::sleep(Duration::from_millis(200));
    };
    // The path as it came, the job given the prefix as its base URL, our token kept here.
    assert!(page.contains(&format!("path={base}/hello?x=1 ")), "{page}");
    assert!(page.contains(&format!("base={base} ")), "{page}");
    assert!(page.contains("auth=None"), "{page}");
    // The dashboard's cookie works too and stays here; the service's own cookies pass.
    let (st, page) = request(
        &addr,
        "GET",
        &format!("{base}/"),
        &format!("Cookie: _xsrf=abc; plx_token={token}\r\n"),
        "",
    );
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("cookie=_xsrf=abc "), "{page}");
    // A body goes through.
    let (st, page) = request(&addr, "POST", &format!("{base}/echo"), &auth, "a body");
    assert_eq!(st, 200, "{page}");
    assert!(page.ends_with("a body"), "{page}");
    // Nobody, and another user: refused, the service not reached.
    let (st, _) = request(&addr, "GET", &format!("{base}/"), "", "");
    assert_eq!(st, 401);
    let (_, created) = http_with(
        &addr,
        "POST",
        "/api/v1/admin/users",
        Some(r#"{"username": "bob", "password": "bobs-password"}"#),
        Some(&token),
    );
    assert!(created.contains("bob"), "{created}");
    let bob = login(&addr, "bob", "bobs-password");
    let (st, _) = request(
        &addr,
        "GET",
        &format!("{base}/"),
        &format!("Authorization: Token {bob}\r\n"),
        "",
    );
    assert_eq!(st, 404);
    // A WebSocket: upgraded end to end, a frame there and back.
    let (mut ws, head) = upgrade(&addr, &format!("{base}/ws"), &auth);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | 4];
    frame.extend_from_slice(&mask);
    frame.extend(b"ping".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    ws.write_all(&frame).unwrap();
    let mut back = [0u8; 6];
    ws.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"\x81\x04ping");
    // `ops service` gives the address through the server first.
    let out = env
        .cmd()
        .args(["ops", "service", "--url", "-p", "demo", "--uid", &uuid])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().next().unwrap(),
        format!("{host}{base}/")
    );
    // Stopped: the proxy says so, and nothing listens any more.
    let out = env
        .cmd()
        .args(["ops", "stop", "-y", "-p", "demo", "--uid", &uuid])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (st, _) = request(&addr, "GET", &format!("{base}/"), &auth, "");
        if st == 409 && TcpStream::connect(("127.0.0.1", port)).is_err() {
            break;
        }
        assert!(Instant::now() < end, "still served after the stop: {st}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Where the test virtualenv's programs are (`jupyter`, `tensorboard`), when it has them.
fn venv_bin(program: &str) -> Option<std::path::PathBuf> {
    let python = std::env::var_os("POLYAXON_TEST_PYTHON");
    let bin = python
        .as_ref()
        .and_then(|p| std::path::Path::new(p).parent().map(|d| d.to_path_buf()));
    match bin {
        Some(b) if b.join(program).is_file() => Some(b),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "the test virtualenv must have `{program}` in CI (scripts/test installs it)"
            );
            eprintln!("skipped: no `{program}` in the test virtualenv (scripts/test installs it)");
            None
        }
    }
}

/// Stops a run when the test ends, passed or not: its job is not left running.
struct StopRun<'a>(&'a polyaxon_tests::sealed::Env, String);

impl Drop for StopRun<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .cmd()
            .args(["ops", "stop", "-y", "-p", "demo", "--uid", &self.1])
            .output();
    }
}

/// Polls `path` through the server until it answers 200; the whole answer.
fn until_served(addr: &str, path: &str, auth: &str, secs: u64) -> String {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let (st, resp) = request(addr, "GET", path, auth, "");
        if st == 200 {
            return resp;
        }
        assert!(
            Instant::now() < end && !resp.contains("is failed") && !resp.contains("is stopped"),
            "{path} never answered 200: {resp}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// JupyterLab and TensorBoard from the built-in hub, on the process executor, opened through
/// the server: their pages, a kernel's WebSocket; stopped, nothing left listening.
#[test]
fn hub_notebooks_and_tensorboards_open_through_the_server() {
    let (Some(bin), Some(_)) = (venv_bin("jupyter"), venv_bin("tensorboard")) else {
        return;
    };
    let (_server, env, _server_home) = logged_in_with_project(None);
    let (_, addr) = host_of(&env);
    let token = login(&addr, "root", "s3cret-admin-pass");
    let auth = format!("Authorization: Token {token}\r\n");
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    let start = |args: &[&str]| -> String {
        let out = env
            .cmd()
            .env("PATH", &path)
            .args(["run", "-p", "demo", "-o", "json"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str::<J>(&stdout(&out)).unwrap()["uuid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let stop = |uuid: &str, port: u16| {
        let out = env
            .cmd()
            .args(["ops", "stop", "-y", "-p", "demo", "--uid", uuid])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let end = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(
                Instant::now() < end,
                "port {port} still served after the stop"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    // JupyterLab: its page, a kernel started over the API, the kernel's channels upgraded.
    let uuid = start(&["--hub", "jupyterlab"]);
    let _stop = StopRun(&env, uuid.clone());
    let base = format!("/services/v1/polyaxon/root/demo/runs/{uuid}");
    let page = until_served(&addr, &format!("{base}/lab"), &auth, 90);
    assert!(page.contains("JupyterLab"), "{page}");
    let (st, kernel) = request(
        &addr,
        "POST",
        &format!("{base}/api/kernels"),
        &format!("{auth}Content-Type: application/json\r\n"),
        "{}",
    );
    assert_eq!(st, 201, "{kernel}");
    let body = kernel.split_once("\r\n\r\n").unwrap().1;
    let body = if body.trim_start().starts_with('{') {
        body.to_string()
    } else {
        // Chunked: the JSON is on the line after the size.
        body.lines().nth(1).unwrap_or_default().to_string()
    };
    let id = serde_json::from_str::<J>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ws, head) = upgrade(&addr, &format!("{base}/api/kernels/{id}/channels"), &auth);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    drop(ws);
    stop(&uuid, 8888);

    // TensorBoard over a directory: its page under the base URL.
    let logs = env.home.path().join("tb-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let uuid = start(&[
        "--hub",
        "tensorboard:path",
        "-P",
        &format!("path={}", logs.display()),
    ]);
    let _stop_tb = StopRun(&env, uuid.clone());
    let base = format!("/services/v1/polyaxon/root/demo/runs/{uuid}");
    let page = until_served(&addr, &format!("{base}/"), &auth, 90);
    assert!(page.to_lowercase().contains("tensorboard"), "{page}");
    stop(&uuid, 6006);
}
