//! Notifications and hooks as users set them up: `polyaxon connections create`, a DAG whose
//! operation has a hook and which notifies itself, run with `polyaxon run` on the embedded
//! store; `polyaxon check` naming an unknown connection; and a server killed with `kill -9`
//! between a run's end and the send, which delivers it once after its restart.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value as J, json};

use polyaxon_tests::sealed::{Env, stderr, stdout};
use polyaxon_tests::server::{http, start_with};

/// One request a receiver got: its headers (lower-case names) and body.
#[derive(Clone, Debug)]
struct Got {
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> J {
        serde_json::from_str(&self.body).unwrap_or(J::Null)
    }
}

/// A receiver on a thread: answers 200 to everything, keeps what it got.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/ml", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let g = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut headers = Vec::new();
                let mut line = String::new();
                let _ = r.read_line(&mut line); // request line
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let n: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; n];
                let _ = r.read_exact(&mut body);
                g.lock().unwrap().push(Got {
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        });
        Receiver { url, got }
    }

    /// Waits for `n` requests (up to `within`), then a moment for any extra one.
    fn wait_for(&self, n: usize, within: Duration) -> Vec<Got> {
        let start = Instant::now();
        while self.got.lock().unwrap().len() < n && start.elapsed() < within {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        self.got.lock().unwrap().clone()
    }
}

fn ok(env: &Env, args: &[&str]) -> String {
    let out = env.cmd().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "`polyaxon {}` failed: {}{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

const DAG: &str = r#"
version: 1.1
kind: component
name: pipeline
plugins:
  notifications:
    - connections: [team-hook]
      trigger: done
hooks:
  - hubRef: webhook
    connection: team-hook
    trigger: succeeded
    params:
      summary: {value: "pipeline {{ status }}"}
run:
  kind: dag
  operations:
    - name: prepare
      hooks:
        - hubRef: webhook
          connection: team-hook
          trigger: succeeded
      component:
        run:
          kind: job
          container: {command: [sh, -c, "echo prepared"]}
    - name: train
      dependencies: [prepare]
      component:
        run:
          kind: job
          container: {command: [sh, -c, "echo trained"]}
"#;

#[test]
fn a_dag_its_operations_hook_and_its_notification_on_the_embedded_store() {
    let env = Env::new();
    let r = Receiver::start();
    let key = env.home.path().join("webhook-key");
    std::fs::write(&key, "dag-signing-key\n").unwrap();
    ok(
        &env,
        &[
            "connections",
            "create",
            "--name",
            "team-hook",
            "--kind",
            "webhook",
            "--url",
            &r.url,
            "--secret",
            &format!("file:{}", key.display()),
        ],
    );
    let listed: J = serde_json::from_str(&ok(&env, &["connections", "ls", "-o", "json"])).unwrap();
    assert_eq!(listed[0]["name"], "team-hook");
    assert_eq!(listed[0]["has_secret"], true);
    ok(&env, &["project", "create", "--name", "notify"]);
    std::fs::write(env.home.path().join("dag.yml"), DAG).unwrap();

    // An unknown connection is a check error listing the known ones, and nothing runs.
    std::fs::write(
        env.home.path().join("typo.yml"),
        DAG.replace(
            "connection: team-hook\n          trigger",
            "connection: team-hok\n          trigger",
        ),
    )
    .unwrap();
    for args in [
        vec!["check", "-f", "typo.yml"],
        vec!["run", "-f", "typo.yml", "-p", "notify"],
    ] {
        let out = env.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("no connection is named `team-hok` (known: team-hook)"),
            "{err}"
        );
        assert!(err.contains("typo.yml:21:23"), "points at the name: {err}");
    }
    ok(&env, &["check", "-f", "dag.yml"]);

    ok(&env, &["run", "-f", "dag.yml", "-p", "notify"]);
    // prepare's hook, the DAG's notification and the DAG's hook; train has none.
    let got = r.wait_for(3, Duration::from_secs(90));
    assert_eq!(got.len(), 3, "{got:#?}");
    for g in &got {
        let sig = g.header("x-polyaxon-signature").expect("signed");
        polyaxon_server::notify::verify("dag-signing-key", sig, &g.body, Duration::from_secs(300))
            .expect("the signature verifies");
    }
    let mut names: Vec<String> = got
        .iter()
        .map(|g| g.json()["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["pipeline", "pipeline", "prepare"], "{got:#?}");
    let hook = got
        .iter()
        .find(|g| g.json()["context"]["summary"].is_string())
        .expect("the DAG's hook");
    assert_eq!(hook.json()["context"]["summary"], "pipeline succeeded");
    let dag_uuid = hook.json()["uuid"].as_str().unwrap().to_string();

    let d: J = serde_json::from_str(&ok(
        &env,
        &[
            "ops",
            "notifications",
            "-p",
            "notify",
            "-uid",
            &dag_uuid,
            "-o",
            "json",
        ],
    ))
    .unwrap();
    let d = d.as_array().unwrap();
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(
        d.iter()
            .all(|x| x["state"] == "delivered" && x["tries"] == 1),
        "{d:?}"
    );
    let table = ok(
        &env,
        &["ops", "notifications", "-p", "notify", "-uid", &dag_uuid],
    );
    assert!(
        table.contains("delivered") && table.contains("team-hook"),
        "{table}"
    );
    // The notifier hooks are runs, linked to their sources.
    let runs: J = serde_json::from_str(&ok(
        &env,
        &[
            "ops",
            "ls",
            "-p",
            "notify",
            "-o",
            "json",
            "-q",
            "kind:notifier",
        ],
    ))
    .unwrap();
    let sources: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meta_info"]["hook"]["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources.len(), 2, "{runs}");
    assert!(sources.contains(&dag_uuid.as_str()));
}

/// A server that records a run's end with its deliveries paused (as if it died before
/// sending), killed with SIGKILL, started again: the notification arrives once, and once
/// only across another restart.
fn killed_before_sending(database_url: Option<&str>) {
    let env = Env::new();
    let r = Receiver::start();
    let mut args = vec!["--open"];
    if let Some(u) = database_url {
        args.extend(["--database-url", u]);
    }
    let (mut server, addr, _, _rx) = start_with(&env, &args, &[("POLYAXON_NOTIFY_PAUSED", "true")]);
    let post = |addr: &str, path: &str, body: J| {
        let (st, b) = http(addr, "POST", path, Some(&body.to_string()));
        assert_eq!(st, 200, "{path}: {b}");
        serde_json::from_str::<J>(&b).unwrap()
    };
    let name = format!("k{}", std::process::id());
    post(
        &addr,
        "/api/v1/orgs/default/connections",
        json!({"name": name, "kind": "webhook", "schema": {"url": r.url}}),
    );
    post(
        &addr,
        "/api/v1/default/projects/create",
        json!({"name": name}),
    );
    let content = json!({
        "version": 1.1, "kind": "component", "name": "killed",
        "plugins": {"notifications": [{"connections": [name], "trigger": "succeeded"}]},
        "run": {"kind": "job", "container": {"command": ["true"]}},
    });
    let run = post(
        &addr,
        &format!("/api/v1/default/{name}/runs"),
        json!({"content": content.to_string()}),
    );
    let uuid = run["uuid"].as_str().unwrap().to_string();
    for to in ["running", "succeeded"] {
        post(
            &addr,
            &format!("/api/v1/default/{name}/runs/{uuid}/statuses"),
            json!({"condition": {"type": to, "status": "True"}}),
        );
    }
    let deliveries = |addr: &str| -> J {
        let (st, b) = http(
            addr,
            "GET",
            &format!("/api/v1/default/{name}/runs/{uuid}/notifications"),
            None,
        );
        assert_eq!(st, 200, "{b}");
        serde_json::from_str::<J>(&b).unwrap()["results"].clone()
    };
    assert_eq!(deliveries(&addr)[0]["state"], "pending");
    std::thread::sleep(Duration::from_millis(300));
    assert!(r.got.lock().unwrap().is_empty());
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();

    let (mut server, addr, _, _rx) = start_with(&env, &args, &[]);
    let got = r.wait_for(1, Duration::from_secs(30));
    assert_eq!(got.len(), 1, "delivered once after the restart: {got:#?}");
    assert_eq!(got[0].json()["uuid"], uuid.as_str());
    let d = deliveries(&addr);
    assert_eq!(d[0]["state"], "delivered", "{d}");
    assert_eq!(d[0]["tries"], 1, "{d}");
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let (_server, _, _, _rx) = start_with(&env, &args, &[]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        r.got.lock().unwrap().len(),
        1,
        "not sent again by the next start"
    );
}

#[test]
fn a_server_killed_before_sending_delivers_once_after_restart_on_sqlite() {
    killed_before_sending(None);
}

#[test]
fn a_server_killed_before_sending_delivers_once_after_restart_on_postgres() {
    super::remote::with_database("notify", killed_before_sending);
}

/// `polyaxon server start --connections FILE`: the file's connections are there at start; a
/// bad one stops the start with the file and the reason named.
#[test]
fn a_server_loads_its_connections_file() {
    let env = Env::new();
    let file = env.home.path().join("connections.yaml");
    std::fs::write(
        &file,
        "- name: alerts\n  kind: slack\n  schema: {channel: \"#ops\"}\n  secret: env:SLACK_URL\n- name: data\n  kind: s3\n  schema: {bucket: s3://ml}\n",
    )
    .unwrap();
    let f = file.display().to_string();
    let (_server, addr, _, _rx) = start_with(&env, &["--open", "--connections", &f], &[]);
    let (st, b) = http(&addr, "GET", "/api/v1/orgs/default/connections", None);
    assert_eq!(st, 200, "{b}");
    let list: J = serde_json::from_str(&b).unwrap();
    assert_eq!(list["count"], 2, "{list}");
    assert_eq!(list["results"][0]["secret"], "env:SLACK_URL");
    drop(_server);
    std::fs::write(
        &file,
        "- name: bad\n  kind: webhook\n  schema: {url: \"http://169.254.169.254/\"}\n",
    )
    .unwrap();
    let out = env
        .cmd()
        .args([
            "server",
            "start",
            "--open",
            "--port",
            "0",
            "--connections",
            &f,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("connection `bad`")
            && err.contains("connections.yaml")
            && err.contains("link-local"),
        "{err}"
    );
}
