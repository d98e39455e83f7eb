//! `polyaxon server start` as a process the test owns, and plain HTTP/1.1 requests to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::sealed::Env;

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
            .env("RUST_LOG", "info")
            .envs(vars.iter().copied())
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
