//! The committed OpenAPI document matches the handlers, and the server serves it.

use std::path::Path;

use reqwest::{Method, StatusCode};

use crate::both;

#[test]
fn committed_openapi_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let generated = polyaxon_server::openapi::document_text();
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} is stale: run `UPDATE_GENERATED=1 cargo test -p polyaxon-server --test it openapi` and commit it",
        path.display()
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/auth/token",
        "/api/v1/{owner}/{project}/runs",
        "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} is not documented");
    }
}

both!(served_document, |s| {
    let (st, doc) = s
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    // The document is public only to callers; anonymous calls need no token for it.
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
});
