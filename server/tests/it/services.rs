//! The services proxy to a run on Kubernetes: its Service, named by the server from the run's
//! uuid and the namespace its executor recorded, on the port its spec declares (here the
//! Service's host template points at this machine, where a stand-in service listens).

use reqwest::StatusCode;
use serde_json::json;

use crate::common::TestServer;

async fn service_on_a_cluster(s: &TestServer, namespace: &str) -> (String, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(|uri: axum::http::Uri| async move {
        format!("the cluster's service got {}", uri.path())
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let p = s.project(&format!("svc-{port}")).await;
    let content = json!({
        "version": 1.1, "kind": "component", "name": "board",
        "run": {"kind": "service", "ports": [port], "container": {"image": "board", "command": ["serve"]}},
    });
    let uuid = s.run(&p, json!({"content": content.to_string()})).await;
    let path = format!("/api/v1/root/{p}/runs/{uuid}");
    let (st, b) = s
        .patch(&path, json!({"meta_info": {"executor": {"kind": "kubernetes", "namespace": namespace}}, "merge": true}))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = s
        .post(
            &format!("{path}/statuses"),
            json!({"condition": {"type": "running", "status": "True"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    (p, uuid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_runs_service_is_proxied_through_its_service() {
    let s = TestServer::sqlite_with(|c| c.k8s_service_host = "127.0.0.1".into()).await;
    let (p, uuid) = service_on_a_cluster(&s, "ml-team").await;
    let prefix = format!("/services/v1/polyaxon/root/{p}/runs/{uuid}");
    let resp = s
        .client
        .get(format!("{}{prefix}/tree", s.base))
        .header("Authorization", format!("Token {}", s.root_token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.text().await.unwrap(),
        format!("the cluster's service got {prefix}/tree")
    );
    // A namespace that is not a DNS label cannot steer the host: not proxied.
    let (p2, uuid2) = service_on_a_cluster(&s, "evil.example.com:80/").await;
    let (st, b) = s
        .get(&format!("/services/v1/polyaxon/root/{p2}/runs/{uuid2}/"))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{b}");
    s.finish().await;
}
