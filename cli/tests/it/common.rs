//! The sealed environment (from `polyaxon-tests`), and seeding the embedded store in-process.

use std::path::PathBuf;

pub use polyaxon_tests::sealed::*;

/// Writes to the embedded store of a sealed environment through the API, in-process, the way
/// the CLI itself does: projects, runs with statuses, metrics, logs, files.
pub struct Seed {
    rt: tokio::runtime::Runtime,
    client: polyaxon_cli::client::Client,
    pub home: PathBuf,
}

impl Seed {
    pub fn new(env: &Env) -> Seed {
        let home = env.home.path().join(".polyaxon");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let t = rt
            .block_on(polyaxon_cli::client::transport::Embedded::open(&home))
            .unwrap();
        Seed {
            rt,
            client: polyaxon_cli::client::Client::with_transport(Box::new(t), true),
            home,
        }
    }

    pub fn call(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let m = http::Method::from_bytes(method.as_bytes()).unwrap();
        self.rt
            .block_on(self.client.json::<serde_json::Value>(m, path, Some(&body)))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn project(&self, name: &str) {
        self.call(
            "POST",
            "/api/v1/default/projects/create",
            serde_json::json!({"name": name}),
        );
    }

    /// A run; returns its uuid.
    pub fn run(&self, project: &str, body: serde_json::Value) -> String {
        let r = self.call("POST", &format!("/api/v1/default/{project}/runs"), body);
        r["uuid"].as_str().unwrap().to_string()
    }

    pub fn status(&self, project: &str, uuid: &str, to: &str) {
        self.call(
            "POST",
            &format!("/api/v1/default/{project}/runs/{uuid}/statuses"),
            serde_json::json!({"condition": {"type": to, "status": "True", "reason": "Seeded", "message": format!("set to {to}")}}),
        );
    }

    pub fn metrics(&self, project: &str, uuid: &str, name: &str, values: &[f64]) {
        self.call(
            "POST",
            &format!("/streams/v1/polyaxon/default/{project}/runs/{uuid}/metrics"),
            serde_json::json!({"metrics": [{"name": name, "step": (0..values.len() as i64).collect::<Vec<_>>(), "value": values}]}),
        );
    }

    pub fn logs(&self, project: &str, uuid: &str, lines: &[&str]) {
        let logs: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::json!({"value": l}))
            .collect();
        self.rt
            .block_on(
                self.client.call(
                    http::Method::POST,
                    &format!("/streams/v1/polyaxon/default/{project}/runs/{uuid}/logs"),
                    Some((
                        serde_json::to_vec(&serde_json::json!({"logs": logs}))
                            .unwrap()
                            .into(),
                        "application/json",
                    )),
                ),
            )
            .unwrap();
    }

    /// Puts a file in a run's directory.
    pub fn file(&self, uuid: &str, rel: &str, content: &[u8]) {
        let p = self.home.join("artifacts").join(uuid).join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}
