use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::common::expect_error;

both!(create_get_update_delete, |s| {
    let (st, p) = s
        .post(
            "/api/v1/root/projects/create",
            json!({"name": "mnist", "description": "digits", "tags": ["cv"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(p["owner"], "root");
    assert_eq!(p["tags"][0], "cv");
    assert_eq!(p["uuid"].as_str().unwrap().len(), 32);
    expect_error(
        s.post("/api/v1/root/projects/create", json!({"name": "mnist"}))
            .await,
        StatusCode::CONFLICT,
        "already exists",
    );
    expect_error(
        s.post("/api/v1/root/projects/create", json!({"name": "bad name!"}))
            .await,
        StatusCode::BAD_REQUEST,
        "not a valid project name",
    );
    expect_error(
        s.post("/api/v1/root/projects/create", json!({"description": "x"}))
            .await,
        StatusCode::BAD_REQUEST,
        "missing field `name`",
    );
    expect_error(
        s.post(
            "/api/v1/root/projects/create",
            json!({"name": "x", "tags": "cv"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "`tags`",
    );
    let (st, got) = s.get("/api/v1/root/mnist").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(got["description"], "digits");
    expect_error(
        s.get("/api/v1/root/nope").await,
        StatusCode::NOT_FOUND,
        "not found",
    );
    let (st, up) = s
        .patch(
            "/api/v1/root/mnist",
            json!({"description": "handwritten digits", "tags": ["cv", "small"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{up}");
    assert_eq!(up["description"], "handwritten digits");
    assert_eq!(up["tags"].as_array().unwrap().len(), 2);
    let (st, renamed) = s
        .patch("/api/v1/root/mnist", json!({"name": "digits"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{renamed}");
    assert_eq!(s.get("/api/v1/root/mnist").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        s.delete("/api/v1/root/digits").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(s.get("/api/v1/root/digits").await.0, StatusCode::NOT_FOUND);
});

both!(listing_with_query_sort_and_pages, |s| {
    for (i, name) in ["alpha", "beta", "gamma", "delta", "epsilon"]
        .iter()
        .enumerate()
    {
        let tags = if i % 2 == 0 {
            json!(["even"])
        } else {
            json!(["odd"])
        };
        assert_eq!(
            s.post(
                "/api/v1/root/projects/create",
                json!({"name": name, "tags": tags})
            )
            .await
            .0,
            StatusCode::OK
        );
    }
    let (_, all) = s.get("/api/v1/root/projects/list?sort=name").await;
    let names: Vec<&str> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta", "delta", "epsilon", "gamma"]);
    assert_eq!(all["count"], 5);
    let (_, page) = s
        .get("/api/v1/root/projects/list?sort=name&limit=2&offset=2")
        .await;
    assert_eq!(page["results"][0]["name"], "delta");
    assert!(page["next"].as_str().unwrap().contains("offset=4"));
    assert!(page["previous"].as_str().unwrap().contains("offset=0"));
    let (_, even) = s
        .get("/api/v1/root/projects/list?query=tags:even&sort=-name")
        .await;
    assert_eq!(even["count"], 3);
    assert_eq!(even["results"][0]["name"], "gamma");
    let (_, like) = s
        .get("/api/v1/root/projects/list?query=name:%25lt%25")
        .await;
    assert_eq!(like["count"], 1);
    expect_error(
        s.get("/api/v1/root/projects/list?query=colour:red").await,
        StatusCode::BAD_REQUEST,
        "unknown field `colour`",
    );
    expect_error(
        s.get("/api/v1/root/projects/list?limit=0").await,
        StatusCode::BAD_REQUEST,
        "limit",
    );
});

both!(visibility_between_users, |s| {
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let (st, _) = s
        .call(
            Method::POST,
            "/api/v1/alice/projects/create",
            Some(&alice),
            Some(json!({"name": "secret"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .call(
            Method::POST,
            "/api/v1/alice/projects/create",
            Some(&alice),
            Some(json!({"name": "open", "is_public": true})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    // Bob cannot see Alice's private project (not even that it exists), nor create in her name.
    assert_eq!(
        s.call(Method::GET, "/api/v1/alice/secret", Some(&bob), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.call(
            Method::POST,
            "/api/v1/alice/secret/runs",
            Some(&bob),
            Some(json!({}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.call(
            Method::POST,
            "/api/v1/alice/projects/create",
            Some(&bob),
            Some(json!({"name": "x"}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = s
        .call(Method::GET, "/api/v1/alice/projects/list", Some(&bob), None)
        .await;
    assert_eq!(list["count"], 1, "{list}");
    // A public project reads, but does not write.
    assert_eq!(
        s.call(Method::GET, "/api/v1/alice/open", Some(&bob), None)
            .await
            .0,
        StatusCode::OK
    );
    expect_error(
        s.call(
            Method::PATCH,
            "/api/v1/alice/open",
            Some(&bob),
            Some(json!({"description": "mine"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "not change it",
    );
    expect_error(
        s.call(Method::DELETE, "/api/v1/alice/open", Some(&bob), None)
            .await,
        StatusCode::FORBIDDEN,
        "not change it",
    );
    // The superuser sees everything.
    assert_eq!(s.get("/api/v1/alice/secret").await.0, StatusCode::OK);
});
