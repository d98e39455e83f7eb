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
