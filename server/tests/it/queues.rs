//! Queues, agents and claims: many claimers at once never share a run, a queue's concurrency
//! holds, lapsed leases hand their runs on, registrations are checked.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value as J, json};

use crate::both;
use crate::common::{TestServer, expect_error};

fn job() -> String {
    json!({
        "version": 1.1, "kind": "component",
        "run": {"kind": "job", "container": {"image": "busybox", "command": ["true"]}}
    })
    .to_string()
}

async fn register(s: &TestServer, name: &str, queues: &[&str]) {
    let (st, b) = s
        .post(
            "/api/v1/admin/agents",
            json!({"name": name, "instance": format!("{name}-1"), "version": polyaxon_server::VERSION,
                   "executor": "process", "queues": queues, "capacity": 100}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
}

async fn claim(s: &TestServer, name: &str, queues: &[&str], max: i64) -> Vec<J> {
    let (st, b) = s
        .post(
            &format!("/api/v1/admin/agents/{name}/claim"),
            json!({"instance": format!("{name}-1"), "queues": queues, "max": max, "lease_seconds": 30}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    b["runs"].as_array().unwrap().clone()
}

both!(concurrent_claims_never_share_a_run, |s| {
    let p = s.project("q").await;
    let mut created = BTreeSet::new();
    for _ in 0..120 {
        let u = s.run(&p, json!({"content": job()})).await;
        created.insert(u);
    }
    let (_, r) = s
        .get(&format!(
            "/api/v1/root/{p}/runs/{}",
            created.first().unwrap()
        ))
        .await;
    assert_eq!(r["status"], "queued", "{r}");
    assert_eq!(r["queue"], "default");
    for i in 0..6 {
        register(&s, &format!("c{i}"), &["default"]).await;
    }
    let mut tasks = Vec::new();
    for i in 0..6 {
        let s2 = (s.base.clone(), s.root_token.clone());
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::builder().no_proxy().build().unwrap();
            let mut got = Vec::new();
            loop {
                let b: J = c
                    .post(format!("{}/api/v1/admin/agents/c{i}/claim", s2.0))
                    .header("Authorization", format!("Token {}", s2.1))
                    .json(&json!({"instance": format!("c{i}-1"), "queues": ["default"], "max": 7, "lease_seconds": 30}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let runs = b["runs"].as_array().unwrap().clone();
                if runs.is_empty() {
                    return got;
                }
                got.extend(runs.into_iter().map(|r| r["uuid"].as_str().unwrap().to_string()));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let once: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(all.len(), created.len(), "a run was handed out twice");
    assert_eq!(once, created);
    let (_, q) = s.get("/api/v1/admin/queues/default").await;
    assert_eq!(q["queued"], 0, "{q}");
    assert_eq!(q["running"], 120, "{q}");
});

both!(a_queue_concurrency_and_priority_hold, |s| {
    let p = s.project("q").await;
    let (st, b) = s
        .post(
            "/api/v1/admin/queues",
            json!({"name": "gpu", "concurrency": 2}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let mut uuids = Vec::new();
    for prio in [0, 0, 3, 0] {
        uuids.push(
            s.run(
                &p,
                json!({"content": job(), "queue": "gpu", "priority": prio}),
            )
            .await,
        );
    }
    register(&s, "g1", &["gpu"]).await;
    register(&s, "g2", &["gpu"]).await;
    let first = claim(&s, "g1", &["gpu"], 10).await;
    let second = claim(&s, "g2", &["gpu"], 10).await;
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(
        second.is_empty(),
        "the queue's two slots are taken: {second:?}"
    );
    // Priority first, then age.
    assert_eq!(first[0]["uuid"], uuids[2].as_str());
    assert_eq!(first[1]["uuid"], uuids[0].as_str());
    // One ends: one slot frees.
    let (st, b) = s
        .post(
            &format!("/api/v1/root/{p}/runs/{}/statuses", uuids[2]),
            json!({"condition": {"type": "succeeded", "status": "True"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let third = claim(&s, "g2", &["gpu"], 10).await;
    assert_eq!(third.len(), 1, "{third:?}");
    assert_eq!(third[0]["uuid"], uuids[1].as_str());
    let (_, q) = s.get("/api/v1/admin/queues/gpu").await;
    assert_eq!(
        (q["queued"].as_i64(), q["running"].as_i64()),
        (Some(1), Some(2)),
        "{q}"
    );
    // A queue that holds runs is not deleted; `default` never is.
    let (st, _) = s.delete("/api/v1/admin/queues/gpu").await;
    assert_eq!(st, StatusCode::CONFLICT);
    expect_error(
        s.delete("/api/v1/admin/queues/default").await,
        StatusCode::CONFLICT,
        "cannot be deleted",
    );
    expect_error(
        s.post(
            &format!("/api/v1/root/{p}/runs"),
            json!({"content": job(), "queue": "tpu"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "unknown queue `tpu`",
    );
    // The spec's queue counts, `agent/queue` names too.
    let spec = json!({
        "version": 1.1, "kind": "component", "queue": "agent-1/gpu",
        "run": {"kind": "job", "container": {"image": "busybox", "command": ["true"]}}
    })
    .to_string();
    let u = s.run(&p, json!({"content": spec})).await;
    let (_, r) = s.get(&format!("/api/v1/root/{p}/runs/{u}")).await;
    assert_eq!(r["queue"], "gpu", "{r}");
});

both!(lapsed_leases_hand_their_runs_on, |s| {
    let p = s.project("q").await;
    register(&s, "lost", &["default"]).await;
    let waiting = s.run(&p, json!({"content": job()})).await;
    let local = s.run(&p, json!({"content": job()})).await;
    let cluster = s.run(&p, json!({"content": job()})).await;
    let got = claim(&s, "lost", &["default"], 3).await;
    assert_eq!(got.len(), 3);
    for (u, kind) in [(&local, "process"), (&cluster, "kubernetes")] {
        let (st, b) = s
            .patch(
                &format!("/api/v1/root/{p}/runs/{u}"),
                json!({"meta_info": {"executor": {"kind": kind, "host": "gone-host", "pid": 1}}, "merge": true}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        for to in ["starting", "running"] {
            let (st, b) = s
                .post(
                    &format!("/api/v1/root/{p}/runs/{u}/statuses"),
                    json!({"condition": {"type": to, "status": "True"}}),
                )
                .await;
            assert_eq!(st, StatusCode::OK, "{b}");
        }
    }
    // The agent stops renewing: an hour later every claim has lapsed.
    let later = polyaxon_server::store::now_micros() + 3_600_000_000;
    let lapsed = s.app.store.expire_leases(later).await.unwrap();
    assert_eq!(lapsed.len(), 3, "{lapsed:?}");
    let (_, r) = s.get(&format!("/api/v1/root/{p}/runs/{waiting}")).await;
    assert_eq!(r["status"], "queued", "not started: back in the queue: {r}");
    assert_eq!(r["agent"], J::Null);
    let (_, r) = s.get(&format!("/api/v1/root/{p}/runs/{local}")).await;
    assert_eq!(r["status"], "failed", "{r}");
    let (_, st) = s
        .get(&format!("/api/v1/root/{p}/runs/{local}/statuses"))
        .await;
    let last = st["status_conditions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["reason"], "AgentLost");
    assert!(
        last["message"].as_str().unwrap().contains("gone-host"),
        "{last}"
    );
    // The next agent takes the waiting run, and adopts the cluster job.
    register(&s, "next", &["default"]).await;
    let got = claim(&s, "next", &["default"], 10).await;
    let by: std::collections::BTreeMap<String, bool> = got
        .iter()
        .map(|r| {
            (
                r["uuid"].as_str().unwrap().to_string(),
                r["adopt"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(by.get(&cluster), Some(&true), "{got:?}");
    assert_eq!(by.get(&waiting), Some(&false), "{got:?}");
    assert_eq!(by.len(), 2);
    // A late renewal changes nothing now: the runs are another agent's.
    let (st, b) = s
        .post(
            "/api/v1/admin/agents/lost/heartbeat",
            json!({"instance": "lost-1", "running": 3, "state": "running", "lease_seconds": 30}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["runs"], json!([]), "{b}");
    let (_, b) = s
        .post(
            "/api/v1/admin/agents/next/heartbeat",
            json!({"instance": "next-1", "running": 2, "state": "running", "lease_seconds": 30}),
        )
        .await;
    let mut held: Vec<&str> = b["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uuid"].as_str().unwrap())
        .collect();
    held.sort();
    let mut want = vec![cluster.as_str(), waiting.as_str()];
    want.sort();
    assert_eq!(held, want, "{b}");
    assert_eq!(b["runs"][0]["project"], "q");
});

both!(
    agents_register_with_a_compatible_version_and_one_name,
    |s| {
        expect_error(
        s.post(
            "/api/v1/admin/agents",
            json!({"name": "old", "instance": "i", "version": "99.1.0", "executor": "process", "queues": ["default"], "capacity": 1}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "is version 99.1.0, and this server is",
    );
        expect_error(
        s.post(
            "/api/v1/admin/agents",
            json!({"name": "a", "instance": "i", "version": polyaxon_server::VERSION, "executor": "process", "queues": ["nope"], "capacity": 1}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "unknown queue `nope`",
    );
        register(&s, "a", &["default"]).await;
        expect_error(
        s.post(
            "/api/v1/admin/agents",
            json!({"name": "a", "instance": "other", "version": polyaxon_server::VERSION, "executor": "process", "queues": ["default"], "capacity": 1}),
        )
        .await,
        StatusCode::CONFLICT,
        "an agent named `a` is running",
    );
        expect_error(
            s.post(
                "/api/v1/admin/agents/a/heartbeat",
                json!({"instance": "other", "running": 0, "state": "running", "lease_seconds": 30}),
            )
            .await,
            StatusCode::CONFLICT,
            "not registered as this instance",
        );
        // Not for everyone.
        let alice = s.user("alice").await;
        let (st, b) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/admin/agents/a/claim",
            Some(&alice),
            Some(json!({"instance": "a-1", "queues": ["default"], "max": 1, "lease_seconds": 30})),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
        let (_, l) = s.get("/api/v1/admin/agents").await;
        assert_eq!(l["results"][0]["name"], "a");
        assert_eq!(l["results"][0]["state"], "running");
    }
);

both!(a_waiting_claim_is_woken_by_a_queued_run, |s| {
    let p = s.project("q").await;
    register(&s, "w", &["default"]).await;
    let (base, token) = (s.base.clone(), s.root_token.clone());
    let waiting = tokio::spawn(async move {
        let c = reqwest::Client::builder().no_proxy().build().unwrap();
        let b: J = c
            .post(format!("{base}/api/v1/admin/agents/w/claim"))
            .header("Authorization", format!("Token {token}"))
            .json(&json!({"instance": "w-1", "queues": ["default"], "max": 1, "lease_seconds": 30, "wait_ms": 10000}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        b
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let u = s.run(&p, json!({"content": job()})).await;
    let b = waiting.await.unwrap();
    assert_eq!(b["runs"][0]["uuid"], u.as_str(), "{b}");
});

both!(approval_holds_a_run_until_approved, |s| {
    let p = s.project("q").await;
    let u = s
        .run(&p, json!({"content": job(), "is_approved": false}))
        .await;
    register(&s, "ap", &["default"]).await;
    assert!(claim(&s, "ap", &["default"], 5).await.is_empty());
    let (st, b) = s
        .post(&format!("/api/v1/root/{p}/runs/{u}/approve"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "queued", "{b}");
    let got = claim(&s, "ap", &["default"], 5).await;
    assert_eq!(got.len(), 1);
    // A spec's `isApproved: false` holds it too.
    let spec = json!({
        "version": 1.1, "kind": "component", "isApproved": false,
        "run": {"kind": "job", "container": {"image": "busybox", "command": ["true"]}}
    })
    .to_string();
    let held = s.run(&p, json!({"content": spec})).await;
    let (_, r) = s.get(&format!("/api/v1/root/{p}/runs/{held}")).await;
    assert_eq!(r["status"], "created", "{r}");
    assert_eq!(r["is_approved"], false);
});
