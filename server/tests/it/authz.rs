//! The authorisation matrix: every operation of the served OpenAPI document, called by each
//! kind of caller, against objects Alice owns. The expected status of each cell comes from the
//! route's class below; an operation without a class fails the test, so a new route cannot
//! land without its row. Each cell gets fresh objects, so a delete or stop in one cell decides
//! nothing in another.

use super::*;
use crate::common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value as J, json};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Anonymous,
    Alice,
    Bob,
    Superuser,
    /// A token of Alice's run `r1` (the run the path names).
    RunToken,
    /// A token of Alice's other run `r2`.
    OtherRunToken,
}

const CALLERS: [Who; 6] = [
    Who::Anonymous,
    Who::Alice,
    Who::Bob,
    Who::Superuser,
    Who::RunToken,
    Who::OtherRunToken,
];

/// What a cell expects: past authorisation (2xx, or 409 where the object's state refuses the
/// action, e.g. resuming a run that has not ended), or exactly this status.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Allowed,
    Status(u16),
}
use Expect::{Allowed as OK, Status as S};

/// The expected status for each caller, in `CALLERS` order.
fn expected(method: &str, path: &str) -> Option<[Expect; 6]> {
    let run_route = path.contains("/runs/{uuid}");
    let user_only_on_a_run = [
        "DELETE /api/v1/{owner}/{project}/runs/{uuid}",
        "POST /api/v1/{owner}/{project}/runs/{uuid}/restart",
        "POST /api/v1/{owner}/{project}/runs/{uuid}/copy",
        "POST /api/v1/{owner}/{project}/runs/{uuid}/resume",
        "POST /api/v1/{owner}/{project}/runs/{uuid}/approve",
        "POST /api/v1/{owner}/{project}/runs/{uuid}/impersonate",
        "POST /api/v1/{owner}/{project}/runs/{uuid}/claim",
    ];
    let key = format!("{method} {path}");
    Some(match path {
        "/healthz"
        | "/api/v1/openapi.json"
        | "/api/v1/installation"
        | "/api/v1/compatibility/{uuid}/{version}/{service}" => [OK; 6],
        // Wrong credentials, whoever asks.
        "/api/v1/auth/token" => [S(401); 6],
        "/api/v1/users" => [S(401), OK, OK, OK, OK, OK],
        "/api/v1/users/tokens" => [S(401), OK, OK, OK, S(403), S(403)],
        // Alice's personal token: nobody else's to revoke.
        "/api/v1/users/tokens/{uuid}" => [S(401), OK, S(404), S(404), S(403), S(403)],
        // Signed-in users see the queues and the agents serving them (not run tokens).
        "/api/v1/admin/queues" | "/api/v1/admin/queues/{name}" | "/api/v1/admin/agents"
            if method == "GET" =>
        {
            [S(401), OK, OK, OK, S(403), S(403)]
        }
        p if p.starts_with("/api/v1/admin/") => [S(401), S(403), S(403), OK, S(403), S(403)],
        // Signed-in users list and read connections (never where their secrets are, unless
        // superusers); superusers manage them; run tokens neither.
        "/api/v1/orgs/{owner}/connections" | "/api/v1/orgs/{owner}/connections/{name}"
            if method == "GET" =>
        {
            [S(401), OK, OK, OK, S(403), S(403)]
        }
        "/api/v1/orgs/{owner}/connections" | "/api/v1/orgs/{owner}/connections/{name}" => {
            [S(401), S(403), S(403), OK, S(403), S(403)]
        }
        "/api/v1/{owner}/projects/list" => [S(401), OK, OK, OK, S(403), S(403)],
        "/api/v1/{owner}/projects/create" => [S(401), OK, S(404), OK, S(403), S(403)],
        _ if run_route && user_only_on_a_run.contains(&key.as_str()) => {
            [S(401), OK, S(404), OK, S(403), S(403)]
        }
        _ if run_route => [S(401), OK, S(404), OK, OK, S(403)],
        p if p.starts_with("/api/v1/{owner}/{project}")
            || p.starts_with("/streams/v1/{namespace}/{owner}/{project}/runs/multi") =>
        {
            [S(401), OK, S(404), OK, S(403), S(403)]
        }
        _ => return None,
    })
}

/// What one cell acts on: Alice's private project with two runs, tokens of each run and a
/// personal one of Alice, an agent and a queue.
struct Fixture {
    project: String,
    r1: String,
    r2: String,
    run_token: String,
    other_run_token: String,
    alice_token_uuid: String,
    agent: String,
    instance: String,
    queue: String,
    connection: String,
}

async fn fixture(s: &TestServer, alice: &str, n: usize) -> Fixture {
    let project = format!("secret-{n}");
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/alice/projects/create",
            Some(alice),
            Some(json!({"name": project})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let mut runs = Vec::new();
    let mut tokens = Vec::new();
    for name in ["one", "two"] {
        let (st, b) = s
            .call(
                Method::POST,
                &format!("/api/v1/alice/{project}/runs"),
                Some(alice),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        let uuid = b["uuid"].as_str().unwrap().to_string();
        let (st, t) = s
            .call(
                Method::POST,
                &format!("/api/v1/alice/{project}/runs/{uuid}/impersonate"),
                Some(alice),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{t}");
        tokens.push(t["token"].as_str().unwrap().to_string());
        runs.push(uuid);
    }
    // A file in r1's outputs, for the artifact routes.
    let (st, _) = s
        .raw(
            Method::POST,
            &format!(
                "/api/v1/alice/{project}/runs/{}/artifacts/upload?path=outputs/a.txt",
                runs[0]
            ),
            alice,
            "application/octet-stream",
            b"alice's data".to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/alice/{project}/runs/{}/lineage/artifacts", runs[0]),
            Some(alice),
            Some(json!({"artifacts": [{"name": "model", "kind": "model", "path": "outputs/model.bin"}]})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, t) = s
        .call(
            Method::POST,
            "/api/v1/users/tokens",
            Some(alice),
            Some(json!({"name": format!("laptop-{n}")})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{t}");
    let agent = format!("agent-{n}");
    let (st, a) = s
        .post(
            "/api/v1/admin/agents",
            json!({"name": agent, "instance": format!("i-{n}"), "version": env!("CARGO_PKG_VERSION"), "executor": "process",
                   "queues": ["default"], "capacity": 1}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{a}");
    let queue = format!("queue-{n}");
    let (st, q) = s
        .post(
            "/api/v1/admin/queues",
            json!({"name": queue, "concurrency": 1}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{q}");
    let connection = format!("conn-{n}");
    let (st, c) = s
        .post(
            "/api/v1/orgs/root/connections",
            json!({"name": connection, "kind": "webhook", "schema": {"url": "http://127.0.0.1:9/hook"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{c}");
    Fixture {
        connection,
        project,
        r1: runs[0].clone(),
        r2: runs[1].clone(),
        run_token: tokens[0].clone(),
        other_run_token: tokens[1].clone(),
        alice_token_uuid: t["uuid"].as_str().unwrap().to_string(),
        agent,
        instance: a["instance"].as_str().unwrap_or_default().to_string(),
        queue,
    }
}

/// The concrete path and body of an operation for a fixture.
fn request(
    method: &str,
    template: &str,
    f: &Fixture,
    n: usize,
) -> (String, Option<J>, Option<Vec<u8>>) {
    let token_path = template == "/api/v1/users/tokens/{uuid}";
    let compat = template.starts_with("/api/v1/compatibility/");
    let mut path = template
        .replace("{namespace}", "polyaxon")
        .replace("{owner}", "alice")
        .replace("{project}", &f.project)
        .replace("{kind}", "metric")
        .replace("{version}", "2.0.0")
        .replace("{service}", "cli");
    path = if token_path {
        path.replace("{uuid}", &f.alice_token_uuid)
    } else if compat {
        path.replace("{uuid}", "installation")
    } else {
        path.replace("{uuid}", &f.r1)
    };
    path = if path.contains("/lineage/artifacts/") {
        path.replace("{name}", "model")
    } else if path.contains("/agents/") {
        path.replace("{name}", &f.agent)
    } else if path.contains("/connections/") {
        path.replace("{name}", &f.connection)
    } else {
        path.replace("{name}", &f.queue)
    };
    let tail = template.rsplit('/').next().unwrap_or_default();
    let query = match (method, tail) {
        ("GET", "{kind}") if template.contains("/multi/") => {
            format!("?runs={},{}&names=loss", f.r1, f.r2)
        }
        ("GET", "{kind}") => "?names=loss".to_string(),
        (_, "artifact") => "?path=outputs/a.txt".to_string(),
        ("GET", "artifacts") => "?path=outputs".to_string(),
        ("DELETE", "artifacts") => "?path=outputs/a.txt".to_string(),
        ("POST", "upload") => "?path=outputs/up.bin".to_string(),
        _ => String::new(),
    };
    path.push_str(&query);
    let body = match (method, template) {
        ("POST", "/api/v1/auth/token") => {
            json!({"username": "alice", "password": "not-her-password"})
        }
        ("POST", "/api/v1/users/tokens") => json!({"name": "another"}),
        ("POST", "/api/v1/admin/users") => {
            json!({"username": format!("new-{n}"), "password": "long-enough-1"})
        }
        ("POST", "/api/v1/admin/agents") => {
            json!({"name": format!("new-agent-{n}"), "instance": "new", "version": env!("CARGO_PKG_VERSION"),
            "executor": "process", "queues": ["default"], "capacity": 1})
        }
        ("POST", "/api/v1/admin/agents/{name}/claim") => {
            json!({"instance": f.instance, "queues": ["default"], "max": 1, "lease_seconds": 30, "wait_ms": 0})
        }
        ("POST", "/api/v1/admin/agents/{name}/heartbeat") => {
            json!({"instance": f.instance, "running": 0, "state": "running", "lease_seconds": 30})
        }
        ("POST", "/api/v1/admin/agents/{name}/release") => {
            json!({"uuid": f.r1, "reason": "matrix"})
        }
        ("POST", "/api/v1/orgs/{owner}/connections") => {
            json!({"name": format!("new-conn-{n}"), "kind": "webhook", "schema": {"url": "http://127.0.0.1:9/x"}})
        }
        ("POST", "/api/v1/admin/queues") => {
            json!({"name": format!("new-queue-{n}"), "concurrency": 2})
        }
        ("POST", "/api/v1/{owner}/projects/create") => json!({"name": format!("new-{n}")}),
        ("PATCH" | "PUT", "/api/v1/{owner}/{project}") => json!({"description": "changed"}),
        ("POST", "/api/v1/{owner}/{project}/runs") => json!({"name": "three"}),
        (
            "DELETE" | "POST",
            "/api/v1/{owner}/{project}/runs/delete" | "/api/v1/{owner}/{project}/runs/stop",
        ) => json!({"uuids": [f.r2]}),
        ("PUT" | "PATCH", "/api/v1/{owner}/{project}/runs/{uuid}") => {
            json!({"description": "changed"})
        }
        ("POST", "/api/v1/{owner}/{project}/runs/{uuid}/claim") => json!({"agent": "by-hand"}),
        ("POST", "/api/v1/{owner}/{project}/runs/{uuid}/lineage/artifacts") => {
            json!({"artifacts": [{"name": "model", "kind": "model", "path": "outputs/model.bin", "is_input": false}]})
        }
        ("POST", "/api/v1/{owner}/{project}/runs/{uuid}/statuses") => {
            json!({"condition": {"type": "running", "status": "True"}})
        }
        ("POST", p) if p.ends_with("/logs") => json!({"logs": [{"value": "a line"}]}),
        ("POST", p) if p.ends_with("/metrics") => {
            json!({"metrics": [{"name": "loss", "step": [1], "value": [0.5]}]})
        }
        ("POST", p) if p.ends_with("/upload") => return (path, None, Some(b"uploaded".to_vec())),
        _ => return (path, None, None),
    };
    (path, Some(body), None)
}

/// The token each caller presents.
fn token_of<'a>(
    who: Who,
    s: &'a TestServer,
    alice: &'a str,
    bob: &'a str,
    f: &'a Fixture,
) -> Option<&'a str> {
    match who {
        Who::Anonymous => None,
        Who::Alice => Some(alice),
        Who::Bob => Some(bob),
        Who::Superuser => Some(s.root_token.as_str()),
        Who::RunToken => Some(f.run_token.as_str()),
        Who::OtherRunToken => Some(f.other_run_token.as_str()),
    }
}

async fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<J>,
    raw: Option<Vec<u8>>,
) -> (StatusCode, String) {
    let m = Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = s.client.request(m, format!("{}{path}", s.base));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Token {t}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(r) = raw {
        req = req
            .header("Content-Type", "application/octet-stream")
            .body(r);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap_or_default())
}

both!(every_route_for_every_caller, |s| {
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let (_, doc) = s.get("/api/v1/openapi.json").await;
    let mut operations: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            operations.push((method.to_uppercase(), path.clone()));
        }
    }
    operations.sort();
    let unclassified: Vec<String> = operations
        .iter()
        .filter(|(m, p)| expected(m, p).is_none())
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(
        unclassified.is_empty(),
        "give these operations a row in the authorisation matrix: {unclassified:?}"
    );
    let mut n = 0;
    let mut failures = Vec::new();
    for (method, template) in &operations {
        let want = expected(method, template).unwrap();
        for (who, want) in CALLERS.iter().zip(want) {
            n += 1;
            let f = fixture(&s, &alice, n).await;
            let token = token_of(*who, &s, &alice, &bob, &f);
            let (path, body, raw) = request(method, template, &f, n);
            let (got, text) = send(&s, method, &path, token, body, raw).await;
            let ok = match want {
                OK => got.is_success() || got == StatusCode::CONFLICT,
                S(code) => got.as_u16() == code,
            };
            if !ok {
                failures.push(format!(
                    "{method} {template} as {who:?}: got {got}, want {want:?}: {}",
                    text.chars().take(300).collect::<String>()
                ));
            }
            // Whatever Bob is given never holds Alice's private objects.
            if *who == Who::Bob && got.is_success() {
                for secret in [&f.project, &f.r1, &f.r2, &"alice's data".to_string()] {
                    assert!(
                        !text.contains(secret.as_str()),
                        "{method} {template} gave Bob `{secret}`: {text}"
                    );
                }
            }
            assert!(
                got.as_u16() < 500,
                "{method} {template} as {who:?}: {got} {text}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "authorisation matrix: {} operations x {} callers = {n} cells",
        operations.len(),
        CALLERS.len()
    );
});

// The dashboard's pages, by each caller, with the token in the `Authorization` header and in
// the dashboard's cookie (the browser's way): signed out → the sign-in page; a run's token →
// 403 (it is for its run's API); Bob → 404 for Alice's project and run; never her data.
// Sign-in is limited as the API's login is.
both!(dashboard_pages_for_every_caller, |s| {
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let f = fixture(&s, &alice, 0).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    const SIGN_IN: u16 = 303;
    let pages: [(String, [u16; 6]); 4] = [
        ("/ui".into(), [SIGN_IN, 200, 200, 200, 403, 403]),
        ("/ui/login".into(), [200; 6]),
        (
            format!("/ui/alice/{}", f.project),
            [SIGN_IN, 200, 404, 200, 403, 403],
        ),
        (
            format!("/ui/alice/{}/runs/{}", f.project, f.r1),
            [SIGN_IN, 200, 404, 200, 403, 403],
        ),
    ];
    let mut cells = 0;
    let mut failures = Vec::new();
    for (path, want) in &pages {
        for (who, want) in CALLERS.iter().zip(want) {
            let token = token_of(*who, &s, &alice, &bob, &f);
            for by_cookie in [false, true] {
                cells += 1;
                let mut req = client.get(format!("{}{path}", s.base));
                match (token, by_cookie) {
                    (Some(t), false) => req = req.header("Authorization", format!("Token {t}")),
                    (Some(t), true) => req = req.header("Cookie", format!("plx_token={t}")),
                    (None, _) => {}
                }
                let resp = req.send().await.unwrap();
                let got = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                // The sign-in page is the same for everyone; a token there is not needed.
                let want = if path == "/ui/login" { 200 } else { *want };
                if got != want {
                    failures.push(format!(
                        "GET {path} as {who:?} (by {}): got {got}, want {want}",
                        if by_cookie { "cookie" } else { "header" }
                    ));
                }
                if *who == Who::Bob && path == "/ui" {
                    assert!(
                        !text.contains(&f.project),
                        "Bob's projects list Alice's: {text}"
                    );
                }
                if matches!(who, Who::Bob | Who::RunToken | Who::OtherRunToken)
                    && path.starts_with("/ui/alice")
                {
                    assert!(
                        !text.contains("alice's data") && !text.contains(&f.r2),
                        "GET {path} as {who:?} shows Alice's data: {text}"
                    );
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} dashboard cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Signing in through the form is limited too: failures for one user, then 429.
    let mut last = 0;
    for _ in 0..s.app.config.login_failures_per_user + 1 {
        let resp = client
            .post(format!("{}/ui/login", s.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("username=alice&password=not-her-password")
            .send()
            .await
            .unwrap();
        last = resp.status().as_u16();
        if last == 429 {
            assert!(resp.headers().contains_key("retry-after"));
            break;
        }
        assert_eq!(last, 303, "a wrong password goes back to the form");
    }
    assert_eq!(last, 429, "sign-in attempts are limited");
    eprintln!(
        "dashboard matrix: {} pages x {} callers x 2 ways = {cells} cells",
        pages.len(),
        CALLERS.len()
    );
});
