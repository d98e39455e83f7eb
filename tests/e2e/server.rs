//! `polyaxon server start` as a process: first start, health, login, graceful stop, errors.

use polyaxon_tests::sealed::Env;
use polyaxon_tests::server::{http, start, terminate};

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
    let err = polyaxon_tests::sealed::stderr(&out);
    assert!(err.contains("cannot connect to the database"), "{err}");
    assert!(!err.contains("hunter2secret"), "{err}");

    let out = env
        .cmd()
        .args(["server", "start", "--host", "not an address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(polyaxon_tests::sealed::stderr(&out).contains("--host 0.0.0.0"));

    // The port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = env
        .cmd()
        .args(["server", "start", "--port", &port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = polyaxon_tests::sealed::stderr(&out);
    assert!(
        err.contains("cannot listen on") && err.contains("--port"),
        "{err}"
    );
}
