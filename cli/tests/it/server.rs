//! `polyaxon server start` as a process: first start, health, login, graceful stop, errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::Env;

/// One HTTP/1.1 request without keep-alive: the status and the body.
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    http_with(addr, method, path, body, None)
}

/// The same, with a token.
pub fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Token {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_string())
}

/// Starts the server and waits for its "listening" line; returns the child, the address and
/// the stderr lines so far, with the rest arriving on the channel.
/// A server process that is killed when the test ends, passed or not.
pub struct Server(pub Child);

impl std::ops::Deref for Server {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start(env: &Env, extra: &[&str]) -> (Server, String, Vec<String>, mpsc::Receiver<String>) {
    start_with(env, extra, &[])
}

pub fn start_with(
    env: &Env,
    extra: &[&str],
    vars: &[(&str, &str)],
) -> (Server, String, Vec<String>, mpsc::Receiver<String>) {
    // Killed on drop from here on, even when the test fails while it starts.
    let mut server = Server(
        env.cmd_std()
            .args(["server", "start", "--port", "0"])
            .args(extra)
            .envs(vars.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let err = server.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no listening line; stderr so far: {seen:#?}"));
        seen.push(line.clone());
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().to_string();
            return (server, addr, seen, rx);
        }
    }
}

pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let ok = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(ok.success());
    child.wait().unwrap()
}

#[test]
fn first_start_creates_the_superuser_then_stops_gracefully() {
    let env = Env::new();
    let (mut child, addr, seen, _rx) = start(&env, &[]);
    let text = seen.join("\n");
    // The generated password, shown once.
    let password = text
        .split("with the password ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no generated password in: {text}"))
        .to_string();
    assert!(password.len() >= 16, "{password}");
    assert!(env.home.path().join(".polyaxon/polyaxon.db").is_file());
    let (st, _) = http(&addr, "GET", "/healthz", None);
    assert_eq!(st, 200);
    let (st, body) = http(
        &addr,
        "POST",
        "/api/v1/auth/token",
        Some(&format!(
            r#"{{"username": "root", "password": "{password}"}}"#
        )),
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"token\""), "{body}");
    let (st, _) = http(&addr, "GET", "/api/v1/users", None);
    assert_eq!(st, 401, "no token, no answer");
    let status = terminate(&mut child);
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");

    // The second start keeps the superuser and says nothing about passwords.
    let (mut child, addr, seen, _rx) = start(&env, &[]);
    assert!(!seen.join("\n").contains("password"), "{seen:#?}");
    let (st, _) = http(
        &addr,
        "POST",
        "/api/v1/auth/token",
        Some(&format!(
            r#"{{"username": "root", "password": "{password}"}}"#
        )),
    );
    assert_eq!(st, 200);
    assert!(terminate(&mut child).success());
}

#[test]
fn open_mode_needs_no_login_and_requests_are_logged() {
    let env = Env::new();
    let (mut child, addr, _seen, rx) = start(&env, &["--open"]);
    let (st, body) = http(&addr, "GET", "/api/v1/users", None);
    assert_eq!(st, 200, "{body}");
    assert!(terminate(&mut child).success());
    let logs: Vec<String> = rx.try_iter().collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("/api/v1/users") && l.contains("200")),
        "a request log line: {logs:#?}"
    );
}

#[test]
fn errors_say_what_to_fix() {
    let env = Env::new();
    let out = env
        .cmd()
        .args([
            "server",
            "start",
            "--database-url",
            "postgres://someone:hunter2secret@127.0.0.1:1/polyaxon",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = crate::common::stderr(&out);
    assert!(err.contains("cannot connect to the database"), "{err}");
    assert!(!err.contains("hunter2secret"), "{err}");

    let out = env
        .cmd()
        .args(["server", "start", "--host", "not an address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(crate::common::stderr(&out).contains("--host 0.0.0.0"));

    // The port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = env
        .cmd()
        .args(["server", "start", "--port", &port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = crate::common::stderr(&out);
    assert!(
        err.contains("cannot listen on") && err.contains("--port"),
        "{err}"
    );
}
