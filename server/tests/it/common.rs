//! A server on an ephemeral port over a fresh store, and a small JSON client.

use polyaxon_server::store::Store;
use polyaxon_server::{App, AuthMode, Config};
use reqwest::{Method, StatusCode};
use serde_json::{Value as J, json};

pub const ADMIN_PASSWORD: &str = "admin-password-1";

pub struct TestServer {
    pub base: String,
    pub root_token: String,
    pub artifacts: tempfile::TempDir,
    pub client: reqwest::Client,
    pub app: App,
    /// The database's URL (for tests that set up what an older version left behind).
    pub url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pg_drop: Option<(String, String)>,
    _sqlite_dir: Option<tempfile::TempDir>,
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

impl TestServer {
    pub async fn sqlite() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("polyaxon.db").display()
        );
        TestServer::start(&url, None, Some(dir), |_| {}).await
    }

    /// A fresh database on the test PostgreSQL server; `None` (with a note) when none is set
    /// up, which CI does not allow.
    pub async fn postgres() -> Option<TestServer> {
        TestServer::postgres_with(|_| {}).await
    }

    pub async fn postgres_with(tweak: impl FnOnce(&mut Config)) -> Option<TestServer> {
        let Ok(admin_url) = std::env::var("POLYAXON_TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "POLYAXON_TEST_DATABASE_URL must be set in CI (scripts/test sets it)"
            );
            eprintln!("skipped: POLYAXON_TEST_DATABASE_URL is not set (scripts/test sets it)");
            return None;
        };
        let db = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = Store::raw_execute(&admin_url, &format!("CREATE DATABASE {db}")).await;
        admin.unwrap();
        let base = admin_url.rsplit_once('/').unwrap().0;
        let url = format!("{base}/{db}");
        Some(TestServer::start(&url, Some((admin_url.clone(), db)), None, tweak).await)
    }

    pub async fn sqlite_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("polyaxon.db").display()
        );
        TestServer::start(&url, None, Some(dir), tweak).await
    }

    async fn start(
        url: &str,
        pg_drop: Option<(String, String)>,
        sqlite_dir: Option<tempfile::TempDir>,
        tweak: impl FnOnce(&mut Config),
    ) -> TestServer {
        let store = Store::open(url).await.unwrap();
        let artifacts = tempfile::tempdir().unwrap();
        let mut config = Config::new(artifacts.path(), AuthMode::Tokens);
        tweak(&mut config);
        let open = matches!(config.auth, AuthMode::Open { .. });
        let started = App::start(store, config, Some(ADMIN_PASSWORD))
            .await
            .unwrap();
        let app = started.app;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve_app = app.clone();
        tokio::spawn(async move {
            polyaxon_server::serve(listener, serve_app, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let client = client();
        let mut s = TestServer {
            base,
            root_token: String::new(),
            artifacts,
            client,
            app,
            url: url.to_string(),
            shutdown: Some(tx),
            pg_drop,
            _sqlite_dir: sqlite_dir,
        };
        if !open {
            s.root_token = s.login("root", ADMIN_PASSWORD).await;
        }
        s
    }

    pub async fn login(&self, user: &str, password: &str) -> String {
        let (st, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/token",
                None,
                Some(json!({"username": user, "password": password})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// A JSON call; `token` `None` sends no Authorization header.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<J>,
    ) -> (StatusCode, J) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Token {t}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(J::String(text)),
        )
    }

    /// A call with a raw body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let resp = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Token {token}"))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.bytes().await.unwrap().to_vec())
    }

    pub async fn get(&self, path: &str) -> (StatusCode, J) {
        self.call(Method::GET, path, Some(&self.root_token), None)
            .await
    }

    pub async fn post(&self, path: &str, body: J) -> (StatusCode, J) {
        self.call(Method::POST, path, Some(&self.root_token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, body: J) -> (StatusCode, J) {
        self.call(Method::PATCH, path, Some(&self.root_token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, J) {
        self.call(Method::DELETE, path, Some(&self.root_token), None)
            .await
    }

    /// Creates `root/<name>` and returns its name.
    pub async fn project(&self, name: &str) -> String {
        let (st, b) = self
            .post("/api/v1/root/projects/create", json!({"name": name}))
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        name.to_string()
    }

    /// Creates a run in `root/<project>` and returns its uuid.
    pub async fn run(&self, project: &str, body: J) -> String {
        let (st, b) = self
            .post(&format!("/api/v1/root/{project}/runs"), body)
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        b["uuid"].as_str().unwrap().to_string()
    }

    /// Creates a user and returns a token of theirs.
    pub async fn user(&self, name: &str) -> String {
        let (st, b) = self
            .post(
                "/api/v1/admin/users",
                json!({"username": name, "password": "password-123"}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        self.login(name, "password-123").await
    }

    /// Stops the server and drops its database.
    pub async fn finish(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.app.store.close().await;
        if let Some((admin, db)) = self.pg_drop.take() {
            let _ = Store::raw_execute(
                &admin,
                &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            )
            .await;
        }
    }
}

/// Runs a test body on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! both {
    ($name:ident, |$s:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $s = $crate::common::TestServer::sqlite().await;
                $body
                $s.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($s) = $crate::common::TestServer::postgres().await else { return };
                $body
                $s.finish().await;
            }
        }
    };
}

/// Asserts a status and that the error message contains `text`.
pub fn expect_error(got: (StatusCode, J), status: StatusCode, text: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    let msg = got.1["error"].as_str().unwrap_or_default();
    assert!(msg.contains(text), "`{msg}` does not contain `{text}`");
}
