use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::common::expect_error;

both!(login_and_whoami, |s| {
    let (st, me) = s.get("/api/v1/users").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["username"], "root");
    expect_error(
        s.call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": "root", "password": "nope"})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "wrong username or password",
    );
    expect_error(
        s.call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": "ghost", "password": "nope"})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "wrong username or password",
    );
    expect_error(
        s.call(Method::GET, "/api/v1/users", None, None).await,
        StatusCode::UNAUTHORIZED,
        "polyaxon login",
    );
    expect_error(
        s.call(Method::GET, "/api/v1/users", Some("plx_forged"), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid or expired",
    );
    // Missing fields and bad JSON name the problem.
    expect_error(
        s.call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": "root"})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "missing field `password`",
    );
    expect_error(
        s.call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": 1, "password": "x"})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "`username`",
    );
    let (st, _) = s
        .raw(
            Method::POST,
            "/api/v1/auth/token",
            "x",
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
});

both!(personal_tokens, |s| {
    let (st, t) = s.post("/api/v1/users/tokens", json!({"name": "ci"})).await;
    assert_eq!(st, StatusCode::OK, "{t}");
    let secret = t["key"].as_str().unwrap().to_string();
    let uuid = t["uuid"].as_str().unwrap().to_string();
    assert_eq!(
        s.call(Method::GET, "/api/v1/users", Some(&secret), None)
            .await
            .0,
        StatusCode::OK
    );
    let (_, list) = s.get("/api/v1/users/tokens").await;
    assert!(
        list["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["uuid"] == uuid.as_str())
    );
    assert!(
        list["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x.get("key").is_none()),
        "secrets are never listed"
    );
    assert_eq!(
        s.delete(&format!("/api/v1/users/tokens/{uuid}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.call(Method::GET, "/api/v1/users", Some(&secret), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.delete(&format!("/api/v1/users/tokens/{uuid}")).await.0,
        StatusCode::NOT_FOUND
    );
    expect_error(
        s.post("/api/v1/users/tokens", json!({"expiration": -5}))
            .await,
        StatusCode::BAD_REQUEST,
        "expiration",
    );
});

both!(users_are_created_by_superusers_only, |s| {
    let alice = s.user("alice").await;
    let (_, me) = s
        .call(Method::GET, "/api/v1/users", Some(&alice), None)
        .await;
    assert_eq!(me["username"], "alice");
    expect_error(
        s.call(
            Method::POST,
            "/api/v1/admin/users",
            Some(&alice),
            Some(json!({"username": "bob", "password": "password-123"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "superusers",
    );
    expect_error(
        s.post(
            "/api/v1/admin/users",
            json!({"username": "alice", "password": "password-123"}),
        )
        .await,
        StatusCode::CONFLICT,
        "already exists",
    );
    expect_error(
        s.post(
            "/api/v1/admin/users",
            json!({"username": "carol", "password": "short"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "8 characters",
    );
    expect_error(
        s.post(
            "/api/v1/admin/users",
            json!({"username": "bad name", "password": "password-123"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "not a valid username",
    );
    expect_error(
        s.post(
            "/api/v1/admin/users",
            json!({"username": "x", "password": "password-123", "role": "god"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "unknown field `role`",
    );
});

both!(health_and_versions, |s| {
    let (st, _) = s.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, inst) = s
        .call(Method::GET, "/api/v1/installation", None, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(inst["auth"][0], "token");
    let (st, c) = s
        .call(
            Method::GET,
            "/api/v1/compatibility/x/2.18.0/cli",
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(c["cli"]["latest"].is_string());
});

async fn limits_and_expiry(s: crate::common::TestServer) {
    let login = |user: &'static str, password: &'static str| {
        s.call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": user, "password": password})),
        )
    };
    s.user("ann").await;
    // A huge password is a quick 401 (and counts as a failure).
    let (st, _) = s
        .call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": "ann", "password": "y".repeat(100_000)})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Three wrong passwords lock the user (the right one too), from any address.
    for _ in 0..2 {
        assert_eq!(login("ann", "wrong-one").await.0, StatusCode::UNAUTHORIZED);
    }
    let resp = s
        .client
        .post(format!("{}/api/v1/auth/token", s.base))
        .json(&json!({"username": "ann", "password": "password-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("too many failed logins")
    );
    // Two more failures from this address, for other names, lock the address for everyone.
    assert_eq!(login("ghost", "x").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(login("ghost2", "x").await.0, StatusCode::UNAUTHORIZED);
    expect_error(
        login("root", crate::common::ADMIN_PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "try again in",
    );
    // (The window passing is the limiter's unit test: hashing a password in a debug build
    // takes long enough to make a short window here flaky.)
    // New passwords: at least 8 characters, at most 1024 characters (a 4-byte character counts once).
    let (st, b) = s
        .post(
            "/api/v1/admin/users",
            json!({"username": "short", "password": "seven77"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    let (st, b) = s
        .post(
            "/api/v1/admin/users",
            json!({"username": "long", "password": "x".repeat(1025)}),
        )
        .await;
    assert!(
        st == StatusCode::BAD_REQUEST && b.to_string().contains("at most 1024"),
        "{b}"
    );
    let (st, b) = s
        .post(
            "/api/v1/admin/users",
            json!({"username": "wide", "password": "\u{1F511}".repeat(1024)}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");

    // A run's token works while the run does, and no longer once it ended (grace 0 here), nor
    // once the run is deleted.
    let p = s.project("tokens").await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let uuid = s.run(&p, json!({})).await;
        let (st, t) = s
            .post(
                &format!("/api/v1/root/{p}/runs/{uuid}/impersonate"),
                json!({}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{t}");
        tokens.push((uuid, t["token"].as_str().unwrap().to_string()));
    }
    let run_path = |uuid: &str| format!("/api/v1/root/{p}/runs/{uuid}");
    let (u0, t0) = &tokens[0];
    assert_eq!(
        s.call(Method::GET, &run_path(u0), Some(t0), None).await.0,
        StatusCode::OK
    );
    let (u1, t1) = &tokens[1];
    let (st, b) = s
        .post(
            &format!("{}/statuses", run_path(u1)),
            json!({"condition": {"type": "succeeded", "status": "True"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    expect_error(
        s.call(Method::GET, &run_path(u1), Some(t1), None).await,
        StatusCode::UNAUTHORIZED,
        "invalid or expired",
    );
    let (u2, t2) = &tokens[2];
    assert_eq!(s.delete(&run_path(u2)).await.0, StatusCode::NO_CONTENT);
    expect_error(
        s.call(Method::GET, "/api/v1/users", Some(t2), None).await,
        StatusCode::UNAUTHORIZED,
        "invalid or expired",
    );
    s.finish().await;
}

fn tight(c: &mut polyaxon_server::Config) {
    c.login_failures_per_user = 3;
    c.login_failures_per_address = 5;
    c.login_window = std::time::Duration::from_secs(60);
    c.run_token_grace = std::time::Duration::ZERO;
}

mod logins_are_limited_and_run_tokens_end_with_their_run {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::limits_and_expiry(crate::common::TestServer::sqlite_with(super::tight).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(s) = crate::common::TestServer::postgres_with(super::tight).await {
            super::limits_and_expiry(s).await;
        }
    }
}
