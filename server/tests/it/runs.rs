use reqwest::{Method, StatusCode};
use serde_json::{Value as J, json};

use crate::both;
use crate::common::{TestServer, expect_error};

fn operation(lr: f64) -> String {
    json!({
        "version": 1.1, "kind": "operation", "name": "train", "tags": ["from-spec"],
        "params": {"lr": {"value": lr}},
        "component": {
            "inputs": [{"name": "lr", "type": "float"}, {"name": "epochs", "type": "int", "value": 3, "isOptional": true}],
            "run": {"kind": "job", "container": {"image": "busybox", "command": ["echo", "{{ lr }}"]}}
        }
    })
    .to_string()
}

async fn status(s: &TestServer, p: &str, uuid: &str, to: &str) -> (StatusCode, J) {
    s.post(
        &format!("/api/v1/root/{p}/runs/{uuid}/statuses"),
        json!({"condition": {"type": to, "status": "True", "reason": "test"}}),
    )
    .await
}

both!(create_from_an_operation, |s| {
    let p = s.project("demo").await;
    let (st, run) = s
        .post(
            &format!("/api/v1/root/{p}/runs"),
            json!({"content": operation(0.05)}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{run}");
    assert_eq!(run["name"], "train");
    assert_eq!(run["kind"], "job");
    assert_eq!(
        run["status"], "queued",
        "a run with a spec waits in its queue for an agent"
    );
    assert_eq!(run["queue"], "default");
    assert_eq!(run["inputs"]["lr"], 0.05);
    assert_eq!(run["inputs"]["epochs"], 3);
    assert_eq!(run["tags"][0], "from-spec");
    // An invalid spec is a 400 that says what is wrong, with the line.
    let bad = operation(0.05).replace(
        "\"command\":[\"echo\",\"{{ lr }}\"]",
        "\"command\":\"echo hi\"",
    );
    expect_error(
        s.post(&format!("/api/v1/root/{p}/runs"), json!({"content": bad}))
            .await,
        StatusCode::BAD_REQUEST,
        "expected a list",
    );
    let missing = json!({"version": 1.1, "kind": "component", "inputs": [{"name": "x", "type": "int"}], "run": {"kind": "job", "container": {"image": "a"}}});
    expect_error(
        s.post(
            &format!("/api/v1/root/{p}/runs"),
            json!({"content": missing.to_string()}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "no value for a required input `x`",
    );
    // YAML content works too, and so does a bare tracking record.
    let (st, _) = s.post(&format!("/api/v1/root/{p}/runs"), json!({"content": "version: 1.1\nkind: component\nrun: {kind: job, container: {image: a}}\n"})).await;
    assert_eq!(st, StatusCode::OK);
    let (st, rec) = s
        .post(
            &format!("/api/v1/root/{p}/runs"),
            json!({"name": "notebook-exp", "is_managed": false}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(rec["is_managed"], false);
    expect_error(
        s.post(&format!("/api/v1/root/{p}/runs"), json!({"tags": "x"}))
            .await,
        StatusCode::BAD_REQUEST,
        "`tags`",
    );
    expect_error(
        s.post("/api/v1/root/nope/runs", json!({})).await,
        StatusCode::NOT_FOUND,
        "not found",
    );
});

both!(get_patch_put_delete, |s| {
    let p = s.project("demo").await;
    let uuid = s.run(&p, json!({"name": "r1", "tags": ["a"]})).await;
    let (st, got) = s.get(&format!("/api/v1/root/{p}/runs/{uuid}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(got["status_conditions"][0]["type"], "created");
    expect_error(
        s.get(&format!("/api/v1/root/{p}/runs/{}", "0".repeat(32)))
            .await,
        StatusCode::NOT_FOUND,
        "not found",
    );
    let base = format!("/api/v1/root/{p}/runs/{uuid}");
    let (st, _) = s.patch(&base, json!({"inputs": {"lr": 0.1}, "outputs": {"acc": 0.5}, "meta_info": {"a": 1}, "tags": ["b"], "merge": true})).await;
    assert_eq!(st, StatusCode::OK);
    let (_, r) = s.patch(&base, json!({"inputs": {"batch": 32}, "outputs": {"loss": 0.2}, "tags": ["c"], "merge": true})).await;
    assert_eq!(r["inputs"], json!({"lr": 0.1, "batch": 32}));
    assert_eq!(r["outputs"], json!({"acc": 0.5, "loss": 0.2}));
    assert_eq!(r["tags"], json!(["a", "b", "c"]));
    let (_, r) = s.patch(&base, json!({"outputs": {"only": 1}})).await;
    assert_eq!(
        r["outputs"],
        json!({"only": 1}),
        "without merge, a mapping is replaced"
    );
    let (_, r) = s
        .call(
            Method::PUT,
            &base,
            Some(&s.root_token),
            Some(json!({"name": "renamed", "description": "d"})),
        )
        .await;
    assert_eq!(r["name"], "renamed");
    expect_error(
        s.patch(&base, json!({"inputs": [1, 2]})).await,
        StatusCode::BAD_REQUEST,
        "`inputs`",
    );
    assert_eq!(s.delete(&base).await.0, StatusCode::NO_CONTENT);
    assert_eq!(s.get(&base).await.0, StatusCode::NOT_FOUND);
    // Bulk delete.
    let a = s.run(&p, json!({})).await;
    let b = s.run(&p, json!({})).await;
    let (st, del) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/root/{p}/runs/delete"),
            Some(&s.root_token),
            Some(json!({"uuids": [a, b, "ffffffffffffffffffffffffffffffff"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(del["uuids"].as_array().unwrap().len(), 2);
});

both!(status_lifecycle, |s| {
    let p = s.project("demo").await;
    let uuid = s.run(&p, json!({})).await;
    for st in ["queued", "starting", "running"] {
        let got = status(&s, &p, &uuid, st).await;
        assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    }
    // Repeating a status changes nothing.
    let (_, again) = status(&s, &p, &uuid, "running").await;
    assert_eq!(again["status_conditions"].as_array().unwrap().len(), 4);
    let (st, done) = status(&s, &p, &uuid, "succeeded").await;
    assert_eq!(st, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "succeeded");
    expect_error(
        status(&s, &p, &uuid, "running").await,
        StatusCode::CONFLICT,
        "cannot go from `succeeded` to `running`",
    );
    expect_error(
        status(&s, &p, &uuid, "flying").await,
        StatusCode::BAD_REQUEST,
        "not a run status",
    );
    let (st, _) = s
        .post(
            &format!("/api/v1/root/{p}/runs/{uuid}/statuses"),
            json!({"condition": {"type": "failed"}, "force": true}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, run) = s.get(&format!("/api/v1/root/{p}/runs/{uuid}")).await;
    assert!(
        run["started_at"].is_string() && run["finished_at"].is_string(),
        "{run}"
    );
    assert!(run["duration"].as_f64().unwrap() >= 0.0);
    expect_error(
        s.post(
            &format!("/api/v1/root/{p}/runs/{uuid}/statuses"),
            json!({"force": true}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "missing field `condition`",
    );
});

both!(stop_restart_copy_resume, |s| {
    let p = s.project("demo").await;
    // Not started: stopped at once. Running: stopping, for its executor to finish.
    let idle = s.run(&p, json!({})).await;
    let (_, st) = s
        .post(&format!("/api/v1/root/{p}/runs/{idle}/stop"), json!({}))
        .await;
    assert_eq!(st["status"], "stopped");
    expect_error(
        s.post(&format!("/api/v1/root/{p}/runs/{idle}/stop"), json!({}))
            .await,
        StatusCode::CONFLICT,
        "already ended",
    );
    let busy = s.run(&p, json!({"content": operation(0.1)})).await;
    status(&s, &p, &busy, "running").await;
    let (_, st) = s
        .post(&format!("/api/v1/root/{p}/runs/{busy}/stop"), json!({}))
        .await;
    assert_eq!(st["status"], "stopping");
    status(&s, &p, &busy, "stopped").await;
    // Restart: a new run linked to the original, same spec.
    let (st, re) = s
        .call(
            Method::POST,
            &format!("/api/v1/root/{p}/runs/{busy}/restart"),
            Some(&s.root_token),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{re}");
    assert_eq!(re["original"]["uuid"], busy.as_str());
    assert_eq!(re["original"]["kind"], "restart");
    assert_eq!(re["status"], "queued");
    let (_, full) = s
        .get(&format!(
            "/api/v1/root/{p}/runs/{}",
            re["uuid"].as_str().unwrap()
        ))
        .await;
    assert!(full["content"].as_str().unwrap().contains("busybox"));
    // Copy: outputs and files come along.
    s.patch(
        &format!("/api/v1/root/{p}/runs/{busy}"),
        json!({"outputs": {"acc": 0.9}}),
    )
    .await;
    let (st, _) = s
        .raw(
            Method::POST,
            &format!("/api/v1/root/{p}/runs/{busy}/artifacts/upload?path=outputs/model.txt"),
            &s.root_token,
            "application/octet-stream",
            b"weights".to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, cp) = s
        .post(
            &format!("/api/v1/root/{p}/runs/{busy}/copy"),
            json!({"name": "copied"}),
        )
        .await;
    assert_eq!(cp["name"], "copied");
    assert_eq!(cp["outputs"]["acc"], 0.9);
    let copy_uuid = cp["uuid"].as_str().unwrap();
    let (st, bytes) = s
        .raw(
            Method::GET,
            &format!(
                "/streams/v1/polyaxon/root/{p}/runs/{copy_uuid}/artifact?path=outputs/model.txt"
            ),
            &s.root_token,
            "text/plain",
            vec![],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(bytes, b"weights");
    // Resume continues the same run.
    let (st, res) = s
        .post(&format!("/api/v1/root/{p}/runs/{busy}/resume"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{res}");
    // Resumed with nobody named to drive it: back in its queue for an agent.
    assert_eq!(res["status"], "queued");
    assert_eq!(res["uuid"], busy.as_str());
    let (_, hist) = s
        .get(&format!("/api/v1/root/{p}/runs/{busy}/statuses"))
        .await;
    let kinds: Vec<&str> = hist["status_conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert!(kinds.ends_with(&["resuming", "queued"]), "{kinds:?}");
    // The caller may drive it itself instead (`polyaxon ops resume` with no agent).
    let (st, _) = s
        .post(
            &format!("/api/v1/root/{p}/runs/{busy}/statuses"),
            json!({"condition": {"type": "stopped", "status": "True"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, res) = s
        .post(
            &format!("/api/v1/root/{p}/runs/{busy}/resume"),
            json!({"agent": "local:here:1"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{res}");
    assert_eq!(res["status"], "resuming");
    assert_eq!(res["agent"], "local:here:1");
    expect_error(
        s.post(&format!("/api/v1/root/{p}/runs/{busy}/resume"), json!({}))
            .await,
        StatusCode::CONFLICT,
        "only a run that ended",
    );
});

both!(listing_with_the_query_language, |s| {
    let p = s.project("demo").await;
    let mut ids = Vec::new();
    for (i, (lr, loss, tag, st)) in [
        (0.1, 0.5, "baseline", "succeeded"),
        (0.01, 0.2, "tuned", "failed"),
        (0.001, 0.1, "tuned", "succeeded"),
    ]
    .iter()
    .enumerate()
    {
        let uuid = s
            .run(
                &p,
                json!({"name": format!("run-{i}-resnet"), "tags": [tag]}),
            )
            .await;
        s.patch(
            &format!("/api/v1/root/{p}/runs/{uuid}"),
            json!({"inputs": {"lr": lr, "opt": "adam"}, "outputs": {"loss": loss}}),
        )
        .await;
        status(&s, &p, &uuid, "running").await;
        status(&s, &p, &uuid, st).await;
        ids.push(uuid);
    }
    let enc = |q: &str| {
        q.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    let q = |query: &str| format!("/api/v1/root/{p}/runs?query={}", enc(query));
    let count = |v: &J| v["count"].as_i64().unwrap();
    assert_eq!(count(&s.get(&q("status: succeeded")).await.1), 2);
    assert_eq!(count(&s.get(&q("status: succeeded|failed")).await.1), 3);
    assert_eq!(count(&s.get(&q("status: ~succeeded")).await.1), 1);
    assert_eq!(count(&s.get(&q("tags: tuned")).await.1), 2);
    assert_eq!(count(&s.get(&q("tags: ~tuned")).await.1), 1);
    assert_eq!(count(&s.get(&q("metrics.loss: <0.3")).await.1), 2);
    assert_eq!(
        count(&s.get(&q("params.lr: >0.005, tags: tuned")).await.1),
        1
    );
    assert_eq!(count(&s.get(&q("params.opt: adam")).await.1), 3);
    assert_eq!(count(&s.get(&q("name: %resnet%")).await.1), 3);
    assert_eq!(count(&s.get(&q("name: run-1%")).await.1), 1);
    assert_eq!(count(&s.get(&q("created_at: >2000-01-01")).await.1), 3);
    assert_eq!(
        count(&s.get(&q("created_at: 2000-01-01 .. 2001-01-01")).await.1),
        0
    );
    assert_eq!(count(&s.get(&q("finished_at: ~nil")).await.1), 3);
    let (_, sorted) = s
        .get(&format!("/api/v1/root/{p}/runs?sort=-metrics.loss"))
        .await;
    assert!(sorted["results"].is_array(), "{sorted}");
    let order: Vec<&str> = sorted["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(order, [ids[0].as_str(), ids[1].as_str(), ids[2].as_str()]);
    let (_, sorted) = s
        .get(&format!("/api/v1/root/{p}/runs?sort=params.lr"))
        .await;
    assert_eq!(sorted["results"][0]["uuid"], ids[2].as_str());
    expect_error(
        s.get(&q("metrics.loss: 0.1|0.2")).await,
        StatusCode::BAD_REQUEST,
        "`|` is not allowed",
    );
    expect_error(
        s.get(&q("stauts: running")).await,
        StatusCode::BAD_REQUEST,
        "did you mean `status`?",
    );
    expect_error(
        s.get(&format!("/api/v1/root/{p}/runs?sort=-colour")).await,
        StatusCode::BAD_REQUEST,
        "unknown field",
    );
});

both!(run_scoped_tokens, |s| {
    let p = s.project("demo").await;
    let mine = s.run(&p, json!({})).await;
    let other = s.run(&p, json!({})).await;
    let (st, t) = s
        .post(
            &format!("/api/v1/root/{p}/runs/{mine}/impersonate"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let token = t["token"].as_str().unwrap();
    // Its own run: read and write.
    assert_eq!(
        s.call(
            Method::GET,
            &format!("/api/v1/root/{p}/runs/{mine}"),
            Some(token),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    let (st, _) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/root/{p}/runs/{mine}"),
            Some(token),
            Some(json!({"outputs": {"x": 1}, "merge": true})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/root/{p}/runs/{mine}/statuses"),
            Some(token),
            Some(json!({"condition": {"type": "running"}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    // Anything else: forbidden.
    expect_error(
        s.call(
            Method::GET,
            &format!("/api/v1/root/{p}/runs/{other}"),
            Some(token),
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "another run",
    );
    expect_error(
        s.call(
            Method::PATCH,
            &format!("/api/v1/root/{p}/runs/{other}"),
            Some(token),
            Some(json!({"name": "x"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "another run",
    );
    expect_error(
        s.call(
            Method::GET,
            &format!("/api/v1/root/{p}/runs"),
            Some(token),
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "its own run",
    );
    expect_error(
        s.call(Method::GET, "/api/v1/root/projects/list", Some(token), None)
            .await,
        StatusCode::FORBIDDEN,
        "its own run",
    );
    expect_error(
        s.call(
            Method::POST,
            &format!("/api/v1/root/{p}/runs"),
            Some(token),
            Some(json!({})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "its own run",
    );
    expect_error(
        s.call(
            Method::DELETE,
            &format!("/api/v1/root/{p}/runs/{mine}"),
            Some(token),
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "its own run",
    );
});

both!(lineage, |s| {
    let p = s.project("demo").await;
    let uuid = s.run(&p, json!({})).await;
    let path = format!("/api/v1/root/{p}/runs/{uuid}/lineage/artifacts");
    let (st, _) = s.post(&path, json!({"artifacts": [{"name": "loss", "kind": "metric", "path": "events/metric/loss.plx", "summary": {"last": 0.1}, "is_input": false}]})).await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, l) = s.get(&path).await;
    assert_eq!(l["results"][0]["summary"]["last"], 0.1);
    expect_error(
        s.post(&path, json!({"artifacts": [{"kind": "metric"}]}))
            .await,
        StatusCode::BAD_REQUEST,
        "needs a `name`",
    );
});

both!(artifacts_lineage_is_queried_read_and_deleted, |s| {
    let p = s.project("demo").await;
    let a = s.run(&p, json!({"name": "a"})).await;
    let b = s.run(&p, json!({"name": "b"})).await;
    let lineage = |run: &str| format!("/api/v1/root/{p}/runs/{run}/lineage/artifacts");
    let (st, body) = s
        .post(
            &lineage(&a),
            json!({"artifacts": [
                {"name": "best-model", "kind": "model", "path": "outputs/model", "summary": {"framework": "torch"}},
                {"name": "report", "kind": "file", "path": "outputs/report.txt"},
                {"name": "train-data", "kind": "data", "path": "s3://datasets/train.csv", "is_input": true},
            ]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, _) = s
        .post(
            &lineage(&b),
            json!({"artifacts": [{"name": "other-model", "kind": "model", "path": "outputs/m.pt"}]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let names = |v: &J| -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    };
    // One run's, sorted by name; a query on kind; names only.
    let (_, all) = s.get(&lineage(&a)).await;
    assert_eq!(all["count"], 3);
    assert_eq!(names(&all), ["best-model", "report", "train-data"]);
    assert_eq!(all["results"][0]["run"], a.as_str());
    assert_eq!(all["results"][0]["summary"]["framework"], "torch");
    assert_eq!(all["results"][2]["is_input"], true);
    let (_, models) = s
        .get(&format!("{}?query=kind:%20model|data", lineage(&a)))
        .await;
    assert_eq!(names(&models), ["best-model", "train-data"]);
    let (_, like) = s
        .get(&format!("{}?query=name:%20%25model%25", lineage(&a)))
        .await;
    assert_eq!(names(&like), ["best-model"]);
    let (_, only) = s.get(&format!("{}/names", lineage(&a))).await;
    assert_eq!(only["results"][1], json!({"name": "report"}));
    let (st, bad) = s.get(&format!("{}?query=weight:%201", lineage(&a))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}");
    // The project's, newest first, each naming its run; a query on the run.
    let (_, project) = s
        .get(&format!(
            "/api/v1/root/{p}/runs/lineage/artifacts?query=kind:%20model"
        ))
        .await;
    assert_eq!(names(&project), ["other-model", "best-model"]);
    assert_eq!(project["results"][0]["run"], b.as_str());
    let (_, of_b) = s
        .get(&format!(
            "/api/v1/root/{p}/runs/lineage/artifacts?query=run:%20{b}"
        ))
        .await;
    assert_eq!(names(&of_b), ["other-model"]);
    // One by name; deleted; then not found.
    let (st, one) = s.get(&format!("{}/report", lineage(&a))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(one["path"], "outputs/report.txt");
    let (st, _) = s.delete(&format!("{}/report", lineage(&a))).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    expect_error(
        s.get(&format!("{}/report", lineage(&a))).await,
        StatusCode::NOT_FOUND,
        "report",
    );
    expect_error(
        s.delete(&format!("{}/report", lineage(&a))).await,
        StatusCode::NOT_FOUND,
        "report",
    );
    let (_, left) = s.get(&lineage(&a)).await;
    assert_eq!(names(&left), ["best-model", "train-data"]);
});
