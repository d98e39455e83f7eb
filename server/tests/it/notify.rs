//! Notifications and notifier hooks delivered from the outbox to local HTTP receivers: each
//! backend's payload shape, the webhook's signature, triggers, conditions, disableDefaults,
//! retries (a 500 then a 200: delivered once), a receiver slower than the timeout, an
//! unreachable one, refused URLs, and two workers on one outbox.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use polyaxon_server::notify::{Config, Worker};
use reqwest::StatusCode;
use serde_json::{Value as J, json};

use crate::both;
use crate::common::{TestServer, expect_error};

/// What a receiver got: the request's headers (lower-case names) and its body.
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

/// A local HTTP receiver answering each request with the next of `answers` (status, delay),
/// then 200s.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(answers: Vec<(u16, Duration)>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hook/T000/secret-path",
            listener.local_addr().unwrap()
        );
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let answers = Arc::new(Mutex::new(std::collections::VecDeque::from(answers)));
        let g = got.clone();
        let app =
            axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: String| {
                let g = g.clone();
                let answers = answers.clone();
                async move {
                    g.lock().unwrap().push(Got {
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect(),
                        body,
                    });
                    let (code, delay) = answers
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or((200, Duration::ZERO));
                    tokio::time::sleep(delay).await;
                    (StatusCode::from_u16(code).unwrap(), "answer")
                }
            });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url, got, task }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (or 20 s), then a moment more for any extra one.
    async fn wait_for(&self, n: usize) -> Vec<Got> {
        for _ in 0..400 {
            if self.got().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.got()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fast() -> Config {
    Config {
        timeout: Duration::from_millis(800),
        retry_base: Duration::from_millis(100),
        max_tries: 3,
        ui_url: "http://ui.test".into(),
        ..Default::default()
    }
}

fn worker(s: &TestServer, config: Config) -> tokio::task::JoinHandle<()> {
    Worker::new(
        s.app.store.clone(),
        config,
        format!("test-{}", uuid::Uuid::new_v4()),
    )
    .spawn()
}

async fn connection(s: &TestServer, body: J) {
    let (st, b) = s.post("/api/v1/orgs/root/connections", body).await;
    assert_eq!(st, StatusCode::OK, "{b}");
}

/// A job whose component has these `plugins.notifications` and `hooks`.
fn job(notifications: J, hooks: J) -> String {
    json!({
        "version": 1.1, "kind": "operation",
        "params": {"lr": {"value": 0.1}},
        "component": {
            "name": "train",
            "inputs": [{"name": "lr", "type": "float"}],
            "run": {"kind": "job", "container": {"image": "busybox", "command": ["true"]}},
            "plugins": {"notifications": notifications},
            "hooks": hooks,
        }
    })
    .to_string()
}

/// A run of `content` taken to `end` (through running), with `outputs`; its uuid.
async fn ended(s: &TestServer, p: &str, content: String, end: &str, outputs: J) -> String {
    let uuid = s.run(p, json!({"content": content, "name": "train"})).await;
    let path = format!("/api/v1/root/{p}/runs/{uuid}");
    let (st, b) = s.patch(&path, json!({"outputs": outputs})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    for to in ["running", end] {
        let (st, b) = s
            .post(
                &format!("{path}/statuses"),
                json!({"condition": {"type": to, "status": "True", "reason": "Test", "message": format!("went {to}")}}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }
    uuid
}

async fn deliveries(s: &TestServer, p: &str, uuid: &str) -> Vec<J> {
    let (st, b) = s
        .get(&format!("/api/v1/root/{p}/runs/{uuid}/notifications"))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    b["results"].as_array().unwrap().clone()
}

/// Waits until no delivery of the run is pending.
async fn settled(s: &TestServer, p: &str, uuid: &str) -> Vec<J> {
    for _ in 0..400 {
        let d = deliveries(s, p, uuid).await;
        if !d.is_empty() && d.iter().all(|d| d["state"] != "pending") {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    deliveries(s, p, uuid).await
}

both!(each_backend_gets_its_payload_shape, |s| {
    let p = s.project("shapes").await;
    let _w = worker(&s, fast());
    let secrets = tempfile::tempdir().unwrap();
    let key_file = secrets.path().join("signing-key");
    std::fs::write(&key_file, "k3y-for-tests\n").unwrap();
    let mut receivers = Vec::new();
    for kind in [
        "slack",
        "webhook",
        "discord",
        "mattermost",
        "pagerduty",
        "teams",
    ] {
        let r = Receiver::start(vec![]).await;
        let mut body = json!({"name": format!("to-{kind}"), "kind": kind, "schema": {"url": r.url, "channel": "#ml"}});
        match kind {
            // A webhook's plain secret is its signing key.
            "webhook" => body["secret"] = json!(format!("file:{}", key_file.display())),
            // Teams: its URL as a plain secret, no signing key, so no signature.
            "teams" => {
                let f = secrets.path().join("teams-url");
                std::fs::write(&f, &r.url).unwrap();
                body["schema"].as_object_mut().unwrap().remove("url");
                body["secret"] = json!(format!("file:{}", f.display()));
            }
            // The others: a JSON secret with the URL (a credential for Slack, Discord and
            // Mattermost) or PagerDuty's service key, and a signing key.
            _ => {
                let f = secrets.path().join(kind);
                let mut secret = json!({"signing_key": format!("key-of-{kind}")});
                if kind == "pagerduty" {
                    secret["service_key"] = json!("pd-service-key");
                } else {
                    secret["url"] = json!(r.url);
                    body["schema"].as_object_mut().unwrap().remove("url");
                }
                std::fs::write(&f, secret.to_string()).unwrap();
                body["secret"] = json!(format!("file:{}", f.display()));
            }
        }
        connection(&s, body).await;
        receivers.push((kind, r));
    }
    let names: Vec<String> = receivers.iter().map(|(k, _)| format!("to-{k}")).collect();
    let uuid = ended(
        &s,
        &p,
        job(
            json!([{"connections": names, "trigger": "failed"}]),
            json!([]),
        ),
        "failed",
        json!({"loss": 0.25}),
    )
    .await;
    let link = format!("http://ui.test/ui/root/{p}/runs/{uuid}");
    for (kind, r) in &receivers {
        let got = r.wait_for(1).await;
        assert_eq!(got.len(), 1, "{kind}: delivered once: {got:?}");
        let g = &got[0];
        let b = g.json();
        assert_eq!(g.header("content-type"), Some("application/json"), "{kind}");
        assert_eq!(g.header("x-polyaxon-event"), Some("run.failed"), "{kind}");
        assert!(
            g.header("x-polyaxon-delivery")
                .is_some_and(|d| d.len() == 32),
            "{kind}"
        );
        let title = format!("train ({uuid}) Status: failed");
        match *kind {
            "slack" => {
                let a = &b["attachments"][0];
                assert_eq!(a["title"], title);
                assert_eq!(a["fallback"], title);
                assert_eq!(a["title_link"], link);
                assert_eq!(a["footer"], "Polyaxon");
                assert_eq!(a["mrkdwn_in"], json!(["text"]));
                assert_eq!(a["color"], "#db3b21");
                assert!(a["text"].as_str().unwrap().contains("Reason: Test"), "{b}");
                assert!(
                    a["fields"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|f| f["title"] == "Outputs"),
                    "{b}"
                );
                assert_eq!(b["channel"], "#ml");
            }
            "discord" => {
                assert_eq!(b["username"], "Polyaxon");
                assert_eq!(b["tts"], false);
                let c = b["content"].as_str().unwrap();
                assert!(c.contains(&title) && c.contains(&link), "{c}");
                assert!(c.chars().count() <= 2000);
            }
            "mattermost" => {
                let a = &b["attachments"][0];
                assert_eq!(a["title"], title);
                assert_eq!(a["author_link"], link);
                assert_eq!(a["author_name"], "Polyaxon");
                assert!(a["pretext"].as_str().unwrap().contains(&p));
                assert_eq!(b["channel"], "#ml");
            }
            "pagerduty" => {
                assert_eq!(b["service_key"], "pd-service-key");
                assert_eq!(b["event_type"], "trigger");
                assert_eq!(
                    b["incident_key"],
                    format!("polyaxon-{uuid}"),
                    "one incident per run"
                );
                assert_eq!(b["description"], title);
                assert_eq!(b["client"], "Polyaxon");
                assert_eq!(b["client_url"], link);
                assert_eq!(b["contexts"], json!([]));
                assert_eq!(b["details"]["outputs"]["loss"], 0.25);
            }
            "teams" => {
                assert_eq!(b["@type"], "MessageCard");
                assert_eq!(b["title"], title);
                assert_eq!(b["potentialAction"][0]["targets"][0]["uri"], link);
                assert!(
                    b["sections"][0]["facts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|f| f["name"] == "Status" && f["value"] == "failed")
                );
            }
            "webhook" => {
                for (k, v) in [
                    ("owner", json!("root")),
                    ("project", json!(p)),
                    ("uuid", json!(uuid)),
                    ("name", json!("train")),
                    ("title", json!(title)),
                    ("status", json!("failed")),
                    ("url", json!(link)),
                ] {
                    assert_eq!(b[k], v, "{k}: {b}");
                }
                assert!(
                    b["finished_at"].as_str().is_some_and(|t| t.ends_with('Z')),
                    "{b}"
                );
                assert!(
                    b["details"]
                        .as_str()
                        .unwrap()
                        .contains("Message: went failed"),
                    "{b}"
                );
                assert_eq!(b["context"]["inputs"]["lr"], 0.1);
                assert_eq!(b["context"]["condition"]["reason"], "Test");
                let sig = g.header("x-polyaxon-signature").expect("signed");
                polyaxon_server::notify::verify(
                    "k3y-for-tests",
                    sig,
                    &g.body,
                    Duration::from_secs(300),
                )
                .expect("the signature verifies");
                assert!(
                    polyaxon_server::notify::verify(
                        "wrong",
                        sig,
                        &g.body,
                        Duration::from_secs(300)
                    )
                    .is_err()
                );
                assert_eq!(b["delivery"], g.header("x-polyaxon-delivery").unwrap());
            }
            _ => unreachable!(),
        }
        match *kind {
            "teams" => assert!(
                g.header("x-polyaxon-signature").is_none(),
                "{kind}: no key, no signature"
            ),
            "webhook" => {}
            _ => polyaxon_server::notify::verify(
                &format!("key-of-{kind}"),
                g.header("x-polyaxon-signature").expect("signed"),
                &g.body,
                Duration::from_secs(300),
            )
            .unwrap_or_else(|e| panic!("{kind}: {e}")),
        }
    }
    let d = settled(&s, &p, &uuid).await;
    assert_eq!(d.len(), 6);
    assert!(
        d.iter()
            .all(|d| d["state"] == "delivered" && d["tries"] == 1 && d["response_code"] == 200),
        "{d:?}"
    );
});

both!(triggers_conditions_and_defaults, |s| {
    let p = s.project("triggers").await;
    let _w = worker(&s, fast());
    let r = Receiver::start(vec![]).await;
    connection(
        &s,
        json!({"name": "wh", "kind": "webhook", "schema": {"url": r.url}}),
    )
    .await;
    let notifications = json!([
        {"connections": ["wh"], "trigger": "succeeded"},
        {"connections": ["wh"], "trigger": "failed"},
        {"connections": ["wh"], "trigger": "done"},
    ]);
    let hooks = json!([
        // conditions over the finished run's outputs
        {"hubRef": "webhook", "connection": "wh", "trigger": "succeeded", "conditions": "{{ loss < 0.5 }}",
         "params": {"note": {"value": "good: {{ loss }}"}}},
        {"hubRef": "webhook", "connection": "wh", "trigger": "succeeded", "conditions": "{{ loss > 0.5 }}"},
        {"hubRef": "webhook", "connection": "wh", "trigger": "done", "disableDefaults": true,
         "params": {"only": {"value": 1}}},
    ]);
    let ok = ended(
        &s,
        &p,
        job(notifications.clone(), hooks.clone()),
        "succeeded",
        json!({"loss": 0.2}),
    )
    .await;
    let got = r.wait_for(4).await;
    assert_eq!(
        got.len(),
        4,
        "succeeded + done + the true hook + the defaults-off hook: {got:?}"
    );
    let triggers: Vec<String> = got
        .iter()
        .map(|g| g.json()["trigger"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        triggers.iter().filter(|t| *t == "failed").count(),
        0,
        "{triggers:?}"
    );
    let hook = got
        .iter()
        .find(|g| g.json()["context"]["note"].is_string())
        .expect("the conditions-true hook");
    assert_eq!(hook.json()["context"]["note"], "good: 0.2");
    assert_eq!(
        hook.json()["context"]["status"],
        "succeeded",
        "defaults are in"
    );
    let bare = got
        .iter()
        .find(|g| g.json()["context"]["only"] == 1)
        .expect("the disableDefaults hook");
    let ctx = bare.json()["context"].clone();
    assert_eq!(ctx, json!({"only": 1}), "no defaults: {ctx}");
    assert!(
        !bare.json()["details"].as_str().unwrap().contains("Inputs"),
        "{}",
        bare.body
    );
    let d = settled(&s, &p, &ok).await;
    let skipped: Vec<&J> = d.iter().filter(|d| d["state"] == "skipped").collect();
    assert_eq!(skipped.len(), 1, "{d:?}");
    assert!(
        skipped[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("are false")
    );
    // A notifier hook is a run too, linked to its source.
    let (_, runs) = s
        .get(&format!(
            "/api/v1/root/{p}/runs?query=kind:notifier&limit=50"
        ))
        .await;
    let hooks_of: Vec<&J> = runs["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["meta_info"]["hook"]["source"] == ok.as_str())
        .collect();
    assert_eq!(hooks_of.len(), 3, "{runs}");
    assert!(hooks_of.iter().any(|r| r["status"] == "skipped"));
    assert_eq!(
        hooks_of
            .iter()
            .filter(|r| r["status"] == "succeeded")
            .count(),
        2
    );

    // failed: the failed and done notifications, the done hook.
    let before = r.got().len();
    let bad = ended(
        &s,
        &p,
        job(notifications, hooks),
        "failed",
        json!({"loss": 0.2}),
    )
    .await;
    let got = r.wait_for(before + 3).await;
    let new: Vec<J> = got[before..].iter().map(Got::json).collect();
    assert_eq!(new.len(), 3, "{new:?}");
    assert!(
        new.iter()
            .all(|b| b["uuid"] == bad.as_str() && b["status"] == "failed")
    );
    let mut t: Vec<&str> = new.iter().map(|b| b["trigger"].as_str().unwrap()).collect();
    t.sort();
    assert_eq!(t, ["done", "done", "failed"]);
});

both!(a_500_then_a_200_is_delivered_once, |s| {
    let p = s.project("retry").await;
    let _w = worker(&s, fast());
    let r = Receiver::start(vec![(500, Duration::ZERO), (503, Duration::ZERO)]).await;
    connection(
        &s,
        json!({"name": "flaky", "kind": "webhook", "schema": {"url": r.url}}),
    )
    .await;
    let uuid = ended(
        &s,
        &p,
        job(json!([{"connections": ["flaky"]}]), json!([])),
        "succeeded",
        json!({}),
    )
    .await;
    let got = r.wait_for(3).await;
    assert_eq!(got.len(), 3, "two failures, then the delivery: {got:?}");
    let ids: std::collections::BTreeSet<_> = got
        .iter()
        .map(|g| g.header("x-polyaxon-delivery").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "one delivery, tried three times");
    let d = settled(&s, &p, &uuid).await;
    assert_eq!(d[0]["state"], "delivered");
    assert_eq!(d[0]["tries"], 3);
    assert!(
        d[0]["last_error"].as_str().unwrap().contains("503"),
        "{d:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.got().len(), 3, "nothing sent after the delivery");
});

both!(
    slow_and_unreachable_receivers_fail_the_delivery_not_the_run,
    |s| {
        let p = s.project("slow").await;
        let _w = worker(&s, fast());
        let slow = Receiver::start(vec![(200, Duration::from_secs(3)); 3]).await;
        connection(
            &s,
            json!({"name": "slow", "kind": "webhook", "schema": {"url": slow.url, "timeout": 0.3}}),
        )
        .await;
        // A port nothing listens on.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}/x", free.local_addr().unwrap());
        drop(free);
        connection(
            &s,
            json!({"name": "dead", "kind": "webhook", "schema": {"url": dead}}),
        )
        .await;
        connection(&s, json!({"name": "no", "kind": "webhook", "schema": {"url": slow.url.replace("/hook", "/gone")}})).await;
        let uuid = ended(
            &s,
            &p,
            job(json!([{"connections": ["slow", "dead"]}]), json!([])),
            "succeeded",
            json!({}),
        )
        .await;
        let d = settled(&s, &p, &uuid).await;
        assert_eq!(d.len(), 2);
        for x in &d {
            assert_eq!(x["state"], "failed", "{x}");
            assert_eq!(x["tries"], 3, "{x}");
        }
        let err = |c: &str| {
            d.iter().find(|x| x["connection"] == c).unwrap()["last_error"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert!(
            err("slow").contains("no answer") && err("slow").contains("try 3 of 3"),
            "{}",
            err("slow")
        );
        assert!(err("dead").contains("cannot reach"), "{}", err("dead"));
        assert!(
            !err("slow").contains("secret-path"),
            "a webhook's path is not shown: {}",
            err("slow")
        );
        assert_eq!(slow.got().len(), 3);
        let (_, run) = s.get(&format!("/api/v1/root/{p}/runs/{uuid}")).await;
        assert_eq!(run["status"], "succeeded", "the run's status is left alone");
    }
);

both!(refused_urls_and_unknown_connections, |s| {
    let p = s.project("refused").await;
    expect_error(
        s.post("/api/v1/orgs/root/connections", json!({"name": "meta", "kind": "webhook", "schema": {"url": "http://169.254.169.254/latest/meta-data/"}})).await,
        StatusCode::BAD_REQUEST, "link-local",
    );
    expect_error(
        s.post(
            "/api/v1/orgs/root/connections",
            json!({"name": "ftp", "kind": "webhook", "schema": {"url": "ftp://example.com/"}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "only http and https",
    );
    expect_error(
        s.post("/api/v1/orgs/root/connections", json!({"name": "x", "kind": "slack", "schema": {"url": "http://127.0.0.1:1/", "token": "abc"}})).await,
        StatusCode::BAD_REQUEST, "through `secret`",
    );
    expect_error(
        s.post(
            "/api/v1/orgs/root/connections",
            json!({"name": "x", "kind": "slack", "secret": "hunter2"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "env:NAME",
    );
    expect_error(
        s.post(
            "/api/v1/orgs/root/connections",
            json!({"name": "x", "kind": "carrier-pigeon", "schema": {}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "not a kind of connection",
    );
    // A URL held in a secret is checked when it is sent.
    let secrets = tempfile::tempdir().unwrap();
    let url_file = secrets.path().join("url");
    std::fs::write(&url_file, "http://169.254.169.254/x").unwrap();
    let url_ref = format!("file:{}", url_file.display());
    connection(
        &s,
        json!({"name": "sneaky", "kind": "slack", "secret": url_ref}),
    )
    .await;
    connection(
        &s,
        json!({"name": "unset", "kind": "slack", "secret": "env:NOTIFY_TEST_NOT_SET"}),
    )
    .await;
    let _w = worker(&s, fast());
    let uuid = ended(
        &s,
        &p,
        job(
            json!([{"connections": ["sneaky", "unset", "nobody"]}]),
            json!([]),
        ),
        "succeeded",
        json!({}),
    )
    .await;
    let d = settled(&s, &p, &uuid).await;
    let err = |c: &str| {
        d.iter().find(|x| x["connection"] == c).unwrap()["last_error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(err("sneaky").contains("link-local"), "{}", err("sneaky"));
    assert!(
        !err("sneaky").contains("/x"),
        "a secret URL is not shown: {}",
        err("sneaky")
    );
    assert!(
        err("unset").contains("NOTIFY_TEST_NOT_SET"),
        "{}",
        err("unset")
    );
    assert!(
        err("nobody").contains("no connection is named `nobody`")
            && err("nobody").contains("sneaky"),
        "{}",
        err("nobody")
    );
    assert!(d.iter().all(|x| x["state"] == "failed"), "{d:?}");
    let tries = |c: &str| d.iter().find(|x| x["connection"] == c).unwrap()["tries"].clone();
    assert_eq!(tries("sneaky"), 1, "a refusal is not retried");
    assert_eq!(tries("nobody"), 1, "an unknown connection is not retried");
    assert_eq!(
        tries("unset"),
        3,
        "a secret this process cannot read may be readable by another: retried"
    );
    // Connections: listed by users without where their secrets are; managed by superusers.
    let user = s.user("alice").await;
    let (st, b) = s
        .call(
            reqwest::Method::GET,
            "/api/v1/orgs/root/connections",
            Some(&user),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let sneaky = b["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sneaky")
        .unwrap();
    assert_eq!(sneaky["has_secret"], true);
    assert!(sneaky.get("secret").is_none(), "{sneaky}");
    let (_, b) = s.get("/api/v1/orgs/root/connections/sneaky").await;
    assert_eq!(b["secret"], url_ref.as_str(), "superusers see where");
    expect_error(
        s.call(reqwest::Method::POST, "/api/v1/orgs/root/connections", Some(&user), Some(json!({"name": "mine", "kind": "webhook", "schema": {"url": "http://127.0.0.1:1/"}}))).await,
        StatusCode::FORBIDDEN, "superusers",
    );
    expect_error(
        s.post(
            "/api/v1/orgs/root/connections",
            json!({"name": "sneaky", "kind": "slack", "secret": "env:X"}),
        )
        .await,
        StatusCode::CONFLICT,
        "already exists",
    );
    let (st, _) = s.delete("/api/v1/orgs/root/connections/unset").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.get("/api/v1/orgs/root/connections/unset").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
});

both!(two_workers_deliver_each_once, |s| {
    let p = s.project("many").await;
    let r = Receiver::start(vec![]).await;
    connection(
        &s,
        json!({"name": "wh", "kind": "webhook", "schema": {"url": r.url}}),
    )
    .await;
    let mut uuids = Vec::new();
    for _ in 0..20 {
        uuids.push(
            ended(
                &s,
                &p,
                job(json!([{"connections": ["wh"]}]), json!([])),
                "succeeded",
                json!({}),
            )
            .await,
        );
    }
    // The rows were written with no worker running; three start at once on the same store.
    let workers: Vec<_> = (0..3).map(|_| worker(&s, fast())).collect();
    let got = r.wait_for(20).await;
    assert_eq!(got.len(), 20, "each run's notification once");
    let mut seen: Vec<String> = got
        .iter()
        .map(|g| g.json()["uuid"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    uuids.sort();
    assert_eq!(seen, uuids);
    drop(workers);
});

both!(a_paused_worker_sends_nothing, |s| {
    let p = s.project("paused").await;
    let r = Receiver::start(vec![]).await;
    connection(
        &s,
        json!({"name": "wh", "kind": "webhook", "schema": {"url": r.url}}),
    )
    .await;
    let paused = worker(
        &s,
        Config {
            paused: true,
            ..fast()
        },
    );
    let uuid = ended(
        &s,
        &p,
        job(json!([{"connections": ["wh"]}]), json!([])),
        "stopped",
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(r.got().is_empty());
    assert_eq!(deliveries(&s, &p, &uuid).await[0]["state"], "pending");
    paused.abort();
    let _w = worker(&s, fast());
    assert_eq!(r.wait_for(1).await.len(), 1);
    assert_eq!(settled(&s, &p, &uuid).await[0]["state"], "delivered");
});
