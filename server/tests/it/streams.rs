use reqwest::{Method, StatusCode};
use serde_json::{Value as J, json};

use crate::both;
use crate::common::{TestServer, expect_error};

fn streams(p: &str, uuid: &str, rest: &str) -> String {
    format!("/streams/v1/polyaxon/root/{p}/runs/{uuid}/{rest}")
}

both!(logs_append_and_continue, |s| {
    let p = s.project("demo").await;
    let uuid = s.run(&p, json!({})).await;
    let lines: Vec<J> = (0..7000)
        .map(|i| json!({"value": format!("line {i}")}))
        .collect();
    assert_eq!(
        s.post(&streams(&p, &uuid, "logs"), json!({"logs": lines}))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (st, first) = s.get(&streams(&p, &uuid, "logs")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(first["logs"].as_array().unwrap().len(), 7000);
    assert_eq!(
        first["files"].as_array().unwrap().len(),
        2,
        "6000 lines a file"
    );
    assert_eq!(first["logs"][6999]["value"], "line 6999");
    // Nothing new: an empty page that keeps the position.
    let next = format!(
        "{}?last_file={}&last_time={}",
        streams(&p, &uuid, "logs"),
        first["last_file"].as_str().unwrap(),
        first["last_time"].as_str().unwrap().replace('+', "%2B")
    );
    let (_, empty) = s.get(&next).await;
    assert_eq!(empty["logs"].as_array().unwrap().len(), 0);
    assert_eq!(empty["last_time"], first["last_time"]);
    // New lines arrive after the position, none repeated.
    s.post(
        &streams(&p, &uuid, "logs"),
        json!({"logs": [{"value": "late", "container": "main"}]}),
    )
    .await;
    let (_, more) = s.get(&next).await;
    assert_eq!(more["logs"].as_array().unwrap().len(), 1);
    assert_eq!(more["logs"][0]["value"], "late");
    expect_error(
        s.get(&format!(
            "{}?last_time=yesterday",
            streams(&p, &uuid, "logs")
        ))
        .await,
        StatusCode::BAD_REQUEST,
        "not a datetime",
    );
    expect_error(
        s.post(&streams(&p, &uuid, "logs"), json!({"lines": []}))
            .await,
        StatusCode::BAD_REQUEST,
        "missing field `logs`",
    );
});

both!(metrics_batches_and_events, |s| {
    let p = s.project("demo").await;
    let uuid = s.run(&p, json!({})).await;
    let n = 5000;
    let batch = json!({
        "id": "batch-1",
        "metrics": [
            {"name": "loss", "step": (0..n).collect::<Vec<i64>>(), "value": (0..n).map(|i| 1.0 / (1.0 + i as f64)).collect::<Vec<f64>>()},
            {"name": "acc", "value": [0.1, 0.5, 0.9], "timestamp": [1700000000.0, "2023-11-14T22:13:21Z", 1700000002.5]}
        ]
    });
    let (st, r) = s.post(&streams(&p, &uuid, "metrics"), batch.clone()).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["points"], n + 3);
    // The same batch again (a retry): recognised, nothing doubled.
    let (_, again) = s.post(&streams(&p, &uuid, "metrics"), batch).await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["points"], 0);
    // Small live batches append to the same series.
    for step in n..n + 10 {
        s.post(
            &streams(&p, &uuid, "metrics"),
            json!({"metrics": [{"name": "loss", "step": [step], "value": [0.0001]}]}),
        )
        .await;
    }
    let (_, ev) = s
        .get(&format!(
            "{}?names=loss",
            streams(&p, &uuid, "events/metric")
        ))
        .await;
    let series = &ev["data"][0];
    assert_eq!(series["name"], "loss");
    assert_eq!(series["kind"], "metric");
    assert_eq!(
        series["data"]["metric"].as_array().unwrap().len(),
        (n + 10) as usize
    );
    assert_eq!(series["data"]["step"][0], 0);
    // Downsampled, first and last kept.
    let (_, ds) = s
        .get(&format!(
            "{}?names=loss&sample=100",
            streams(&p, &uuid, "events/metric")
        ))
        .await;
    let steps = ds["data"][0]["data"]["step"].as_array().unwrap();
    assert_eq!(steps.len(), 100);
    assert_eq!(steps[0], 0);
    assert_eq!(steps[99], n + 9);
    // All series, and csv.
    let (_, all) = s.get(&streams(&p, &uuid, "events/metric")).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
    let (_, csv) = s
        .get(&format!(
            "{}?names=acc&orient=csv",
            streams(&p, &uuid, "events/metric")
        ))
        .await;
    assert!(
        csv["data"][0]["data"]
            .as_str()
            .unwrap()
            .starts_with("step|timestamp|metric\n|2023-11-14T22:13:20")
    );
    // The last values are the run's outputs, queryable.
    let (_, run) = s.get(&format!("/api/v1/root/{p}/runs/{uuid}")).await;
    assert_eq!(run["outputs"]["acc"], 0.9);
    let (_, found) = s
        .get(&format!(
            "/api/v1/root/{p}/runs?query=metrics.loss:%3C0.001"
        ))
        .await;
    assert_eq!(found["count"], 1);
    // Multi-run reads.
    let (_, multi) = s
        .get(&format!(
            "/streams/v1/polyaxon/root/{p}/runs/multi/events/metric?names=acc&runs={uuid}"
        ))
        .await;
    assert_eq!(multi["data"][&uuid][0]["name"], "acc");
    // Bad batches.
    expect_error(
        s.post(
            &streams(&p, &uuid, "metrics"),
            json!({"metrics": [{"name": "x", "step": [1, 2], "value": [1.0]}]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "same length",
    );
    expect_error(
        s.post(
            &streams(&p, &uuid, "metrics"),
            json!({"metrics": [{"name": "x", "value": ["a"]}]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "`metrics[0].value[0]`",
    );
    expect_error(
        s.post(
            &streams(&p, &uuid, "metrics"),
            json!({"metrics": [{"name": "x", "value": [1.0], "timestamp": ["noon"]}]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "not a time",
    );
    expect_error(
        s.post(
            &streams(&p, &uuid, "metrics"),
            json!({"metrics": [{"name": "", "value": [1.0]}]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "metric name",
    );
    expect_error(
        s.get(&streams(&p, &uuid, "events/bad-kind")).await,
        StatusCode::BAD_REQUEST,
        "not an event kind",
    );
});

both!(long_series_downsample_from_overviews, |s| {
    let p = s.project("demo").await;
    let uuid = s.run(&p, json!({})).await;
    let url = streams(&p, &uuid, "metrics");
    // 60,000 points in batches, one spike and one dip; plus a series sent out of order.
    let n: i64 = 60_000;
    for start in (0..n).step_by(20_000) {
        let steps: Vec<i64> = (start..start + 20_000).collect();
        let values: Vec<f64> = steps
            .iter()
            .map(|&i| match i {
                31_337 => 100.0,
                47_001 => -100.0,
                _ => (i as f64 / 1000.0).sin(),
            })
            .collect();
        let back: Vec<i64> = steps.iter().map(|i| n - 1 - i).collect();
        let (st, r) = s
            .post(
                &url,
                json!({"metrics": [
                    {"name": "wave", "step": steps, "value": values},
                    {"name": "backwards", "step": back, "value": values},
                ]}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{r}");
    }
    let (_, ds) = s
        .get(&format!(
            "{}?names=wave,backwards&sample=200",
            streams(&p, &uuid, "events/metric")
        ))
        .await;
    let data = ds["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{ds}");
    for series in data {
        let steps: Vec<i64> = series["data"]["step"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let values: Vec<f64> = series["data"]["metric"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(steps.len(), 200, "{}", series["name"]);
        assert_eq!(series["total"], n);
        assert_eq!((steps[0], steps[199]), (0, n - 1));
        assert!(steps.windows(2).all(|w| w[0] < w[1]), "in step order");
        assert!(values.contains(&100.0) && values.contains(&-100.0));
        // The stats are of the whole series, exact.
        let stats = &series["stats"];
        assert_eq!(stats["max"]["value"], 100.0);
        assert_eq!(stats["min"]["value"], -100.0);
        assert_eq!(stats["last"]["step"], n - 1);
    }
    let wave_max_step =
        data.iter().find(|s| s["name"] == "wave").unwrap()["stats"]["max"]["step"].clone();
    assert_eq!(wave_max_step, 31_337);
});

both!(tracking_files_are_read_as_events, |s| {
    let p = s.project("demo").await;
    let uuid = s.run(&p, json!({})).await;
    let dir = s.artifacts.path().join(&uuid);
    std::fs::create_dir_all(dir.join("events/metric")).unwrap();
    std::fs::create_dir_all(dir.join("events/text")).unwrap();
    std::fs::create_dir_all(dir.join("resources/metric")).unwrap();
    std::fs::write(dir.join("events/metric/f1.plx"), "step|timestamp|metric\n0|2026-11-24 01:31:17.054180+00:00|1.0\n1|2026-11-24 01:31:17.054327+00:00|0.5").unwrap();
    std::fs::write(
        dir.join("events/text/notes.plx"),
        "{\"timestamp\": \"2026-11-24 01:31:17+00:00\", \"step\": 0, \"text\": \"hello\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("resources/metric/cpu.plx"),
        "step|timestamp|metric\n|2026-11-24 01:31:17+00:00|12.5",
    )
    .unwrap();
    let (_, m) = s
        .get(&format!("{}?names=f1", streams(&p, &uuid, "events/metric")))
        .await;
    assert_eq!(m["data"][0]["data"]["metric"], json!([1.0, 0.5]));
    let (_, t) = s.get(&streams(&p, &uuid, "events/text")).await;
    assert_eq!(t["data"][0]["data"]["text"][0], "hello");
    let (_, r) = s.get(&streams(&p, &uuid, "resources")).await;
    assert_eq!(r["data"][0]["name"], "cpu");
    assert_eq!(r["data"][0]["data"]["metric"][0], 12.5);
});

both!(artifacts_upload_tree_download, |s| {
    let p = s.project("demo").await;
    let uuid = s.run(&p, json!({})).await;
    let up = |path: &str| format!("/api/v1/root/{p}/runs/{uuid}/artifacts/upload?path={path}");
    let (st, _) = s
        .raw(
            Method::POST,
            &up("outputs/model.bin"),
            &s.root_token,
            "application/octet-stream",
            vec![7u8; 100_000],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    // Multipart, as upstream's client sends: the file goes under `path` with its own name.
    let form = reqwest::multipart::Form::new().part(
        "uploadfile",
        reqwest::multipart::Part::bytes(b"a,b\n1,2\n".to_vec()).file_name("data.csv"),
    );
    let resp = s
        .client
        .post(format!("{}{}", s.base, up("inputs")))
        .header("Authorization", format!("Token {}", s.root_token))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, tree) = s.get(&streams(&p, &uuid, "artifacts/tree")).await;
    assert_eq!(tree["dirs"], json!(["inputs", "outputs"]));
    let (_, sub) = s
        .get(&format!(
            "{}?path=outputs",
            streams(&p, &uuid, "artifacts/tree")
        ))
        .await;
    assert_eq!(sub["files"]["model.bin"], 100_000);
    let (st, bytes) = s
        .raw(
            Method::GET,
            &format!("{}?path=inputs/data.csv", streams(&p, &uuid, "artifact")),
            &s.root_token,
            "text/plain",
            vec![],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(bytes, b"a,b\n1,2\n");
    let (st, tgz) = s
        .raw(
            Method::GET,
            &format!("{}?path=outputs", streams(&p, &uuid, "artifacts")),
            &s.root_token,
            "text/plain",
            vec![],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(&tgz[..2], &[0x1f, 0x8b], "a gzip archive");
    // Never outside the run's directory.
    let (st, _) = s
        .raw(
            Method::POST,
            &up("../escape.txt"),
            &s.root_token,
            "application/octet-stream",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    expect_error(
        s.get(&format!(
            "{}?path=../../etc/passwd",
            streams(&p, &uuid, "artifact")
        ))
        .await,
        StatusCode::BAD_REQUEST,
        "leaves the run's directory",
    );
    expect_error(
        s.get(&format!(
            "{}?path=outputs/none",
            streams(&p, &uuid, "artifact")
        ))
        .await,
        StatusCode::NOT_FOUND,
        "not found",
    );
    let (st, _) = s
        .raw(
            Method::POST,
            &format!("{}&overwrite=false", up("outputs/model.bin")),
            &s.root_token,
            "application/octet-stream",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(
        s.call(
            Method::DELETE,
            &format!("{}?path=outputs", streams(&p, &uuid, "artifact")),
            Some(&s.root_token),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (_, tree) = s.get(&streams(&p, &uuid, "artifacts/tree")).await;
    assert_eq!(tree["dirs"], json!(["inputs"]));
});

async fn limits(s: TestServer) {
    let p = s.project("demo").await;
    let uuid = s.run(&p, json!({})).await;
    // JSON bodies over the limit: 413.
    let big = json!({"name": "x".repeat(200_000)});
    expect_error(
        s.post("/api/v1/root/projects/create", big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too large",
    );
    let values: Vec<f64> = vec![1.0; 100_000];
    expect_error(
        s.post(
            &streams(&p, &uuid, "metrics"),
            json!({"metrics": [{"name": "x", "value": values}]}),
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too large",
    );
    let (st, _) = s
        .raw(
            Method::POST,
            &format!("/api/v1/root/{p}/runs/{uuid}/artifacts/upload?path=big.bin"),
            &s.root_token,
            "application/octet-stream",
            vec![0u8; 300_000],
        )
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    s.finish().await;
}

fn tar_gz(entries: &[(&str, &[u8], u32, tar::EntryType)]) -> Vec<u8> {
    let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut t = tar::Builder::new(enc);
    for (name, data, mode, kind) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_size(data.len() as u64);
        if *kind == tar::EntryType::Symlink {
            h.set_size(0);
            h.set_link_name("/etc/passwd").unwrap();
            t.append_data(&mut h, name, &[][..]).unwrap();
        } else {
            // Written raw: `append_data` refuses `..`, which a hostile client would not.
            let mut name_bytes = [0u8; 100];
            name_bytes[..name.len()].copy_from_slice(name.as_bytes());
            h.as_old_mut().name = name_bytes;
            h.set_cksum();
            t.append(&h, *data).unwrap();
        }
    }
    t.into_inner().unwrap().finish().unwrap()
}

both!(artifacts_upload_untar, |s| {
    let p = s.project("demo").await;
    let uuid = s.run(&p, json!({})).await;
    let up = |path: &str| {
        format!("/api/v1/root/{p}/runs/{uuid}/artifacts/upload?path={path}&untar=true")
    };
    let archive = tar_gz(&[
        ("train.py", b"print(1)\n", 0o644, tar::EntryType::Regular),
        ("bin/run.sh", b"#!/bin/sh\n", 0o755, tar::EntryType::Regular),
        ("link", b"", 0o777, tar::EntryType::Symlink),
    ]);
    let (st, body) = s
        .raw(
            Method::POST,
            &up("uploads"),
            &s.root_token,
            "application/gzip",
            archive,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let written: J = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        written["paths"],
        json!(["uploads/train.py", "uploads/bin/run.sh"])
    );
    let (_, tree) = s
        .get(&format!(
            "{}?path=uploads",
            streams(&p, &uuid, "artifacts/tree")
        ))
        .await;
    assert_eq!(
        tree["files"],
        json!({"train.py": 9}),
        "the link is not taken"
    );
    assert_eq!(tree["dirs"], json!(["bin"]));
    // Multipart too, and an uncompressed archive.
    let mut plain = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    plain.append_data(&mut h, "data.csv", &b"a\n"[..]).unwrap();
    let form = reqwest::multipart::Form::new().part(
        "uploadfile",
        reqwest::multipart::Part::bytes(plain.into_inner().unwrap()).file_name("code.tar"),
    );
    let resp = s
        .client
        .post(format!("{}{}", s.base, up("")))
        .header("Authorization", format!("Token {}", s.root_token))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, root) = s.get(&streams(&p, &uuid, "artifacts/tree")).await;
    assert_eq!(root["files"]["data.csv"], 2);
    // A path leaving the destination is refused, whole.
    let as_json = |(st, b): (StatusCode, Vec<u8>)| (st, serde_json::from_slice::<J>(&b).unwrap());
    let evil = tar_gz(&[
        ("first.txt", b"x", 0o644, tar::EntryType::Regular),
        ("../../escape.txt", b"x", 0o644, tar::EntryType::Regular),
    ]);
    expect_error(
        as_json(
            s.raw(
                Method::POST,
                &up("uploads"),
                &s.root_token,
                "application/gzip",
                evil,
            )
            .await,
        ),
        StatusCode::BAD_REQUEST,
        "leaves the destination",
    );
    let (_, tree) = s
        .get(&format!(
            "{}?path=uploads",
            streams(&p, &uuid, "artifacts/tree")
        ))
        .await;
    assert!(
        tree["files"].get("first.txt").is_none(),
        "nothing of a refused archive is written"
    );
    // Not an archive.
    expect_error(
        as_json(
            s.raw(
                Method::POST,
                &up("uploads"),
                &s.root_token,
                "application/gzip",
                vec![0x1f, 0x8b, 1, 2, 3],
            )
            .await,
        ),
        StatusCode::BAD_REQUEST,
        "not usable",
    );
});

fn small(c: &mut polyaxon_server::Config) {
    c.max_body = 100_000;
    c.max_metrics_body = 100_000;
    c.max_upload = 200_000;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_sqlite() {
    limits(TestServer::sqlite_with(small).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_postgres() {
    if let Some(s) = TestServer::postgres_with(small).await {
        limits(s).await;
    }
}

both!(event_files_in_the_store_are_ingested_once, |s| {
    let p = s.project("demo").await;
    let uuid = s.run(&p, json!({})).await;
    // What `polyaxon.tracking` writes in a pod whose artifacts volume the server shares.
    let dir = s.artifacts.path().join(&uuid).join("events/metric");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("loss.plx");
    let line = |i: i64| {
        format!(
            "\n{i}|2026-11-24 09:00:{i:02}.000000+00:00|{}",
            1.0 / (1 + i) as f64
        )
    };
    let mut text = "step|timestamp|metric".to_string();
    for i in 0..5 {
        text.push_str(&line(i));
    }
    std::fs::write(&file, &text).unwrap();
    let sync = |last: bool| {
        let url = format!("{}?last={last}", streams(&p, &uuid, "events/sync"));
        let s = &s;
        async move { s.post(&url, json!({})).await }
    };
    // Two at once: one reads the lines, the other finds nothing new.
    let ((st1, a), (st2, b)) = tokio::join!(sync(false), sync(false));
    assert_eq!((st1, st2), (StatusCode::OK, StatusCode::OK), "{a} {b}");
    assert_eq!(
        a["points"].as_u64().unwrap() + b["points"].as_u64().unwrap(),
        4,
        "the last line is not known complete yet: {a} {b}"
    );
    assert_eq!(sync(false).await.1["points"], 0);
    // Another server that read from the start, while the file grew, stores nothing: the
    // offset it started from is not where the file was read to any more.
    let run_id = s.app.store.run_by_uuid(&uuid).await.unwrap().id;
    let late = s
        .app
        .store
        .ingest_file_range(
            run_id,
            "loss",
            0,
            999,
            vec![polyaxon_server::store::Point {
                step: Some(0),
                ts: 0,
                value: 1.0,
            }],
        )
        .await
        .unwrap();
    assert_eq!(late, None);
    let mut more = String::new();
    for i in 5..8 {
        more.push_str(&line(i));
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, more.as_bytes()))
        .unwrap();
    let (_, r) = sync(false).await;
    assert_eq!(r["points"], 3);
    assert_eq!(r["series"], json!(["loss"]));
    // The job ended: its last line counts.
    let (_, r) = sync(true).await;
    assert_eq!(r["points"], 1);
    assert_eq!(sync(true).await.1["points"], 0);
    let (_, ev) = s
        .get(&format!(
            "{}?names=loss",
            streams(&p, &uuid, "events/metric")
        ))
        .await;
    let steps: Vec<i64> = ev["data"][0]["data"]["step"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(
        steps,
        (0..8).collect::<Vec<_>>(),
        "each point once, in order"
    );
    let (_, run) = s.get(&format!("/api/v1/root/{p}/runs/{uuid}")).await;
    assert_eq!(run["outputs"]["loss"], 0.125);
    // The uuid with dashes is the same run: nothing new.
    let dashed = format!(
        "{}-{}-{}-{}-{}",
        &uuid[0..8],
        &uuid[8..12],
        &uuid[12..16],
        &uuid[16..20],
        &uuid[20..]
    );
    let (st, r) = s
        .post(
            &format!("{}?last=true", streams(&p, &dashed, "events/sync")),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["points"], 0);
    // A run without event files: nothing to do.
    let other = s.run(&p, json!({})).await;
    let (st, r) = s.post(&streams(&p, &other, "events/sync"), json!({})).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["points"], 0);
});

both!(concurrent_writers_into_one_run, |s| {
    // Eight writers (the workers of a distributed job, or the event-file sync beside the
    // tracking client) send batches into one run at once, into one shared series and their
    // own; every batch is retried once with its id, as a client does after a lost response.
    let p = s.project("demo").await;
    let uuid = s.run(&p, json!({})).await;
    let url = format!("{}{}", s.base, streams(&p, &uuid, "metrics"));
    let (writers, batches, per) = (8i64, 30i64, 20i64);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (client, url, token) = (s.client.clone(), url.clone(), s.root_token.clone());
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for b in 0..batches {
                let steps: Vec<i64> = (0..per).map(|i| (b * writers + w) * per + i).collect();
                let values: Vec<f64> = steps.iter().map(|&s| s as f64).collect();
                let body = json!({
                    "id": format!("w{w}-b{b}"),
                    "metrics": [
                        {"name": "shared", "step": steps, "value": values},
                        {"name": format!("own-{w}"), "step": steps, "value": values},
                    ]
                });
                for _ in 0..2 {
                    let r = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let status = r.status();
                    if status != StatusCode::OK {
                        failures.push(format!("{status}: {}", r.text().await.unwrap()));
                    }
                }
            }
            failures
        }));
    }
    // Beside them, the tracking client logs outputs (merged) and the run's statuses move on.
    {
        let (client, token) = (s.client.clone(), s.root_token.clone());
        let run_url = format!("{}/api/v1/root/{p}/runs/{uuid}", s.base);
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in 0..40 {
                let r = client
                    .patch(&run_url)
                    .bearer_auth(&token)
                    .json(&json!({"merge": true, "outputs": {format!("extra-{i}"): i}}))
                    .send()
                    .await
                    .unwrap();
                if r.status() != StatusCode::OK {
                    failures.push(format!("{}: {}", r.status(), r.text().await.unwrap()));
                }
                if i % 10 == 0 {
                    let status = ["compiled", "queued", "scheduled", "running"][i / 10];
                    let r = client
                        .post(format!("{run_url}/statuses"))
                        .bearer_auth(&token)
                        .json(&json!({"condition": {"type": status, "status": "True"}}))
                        .send()
                        .await
                        .unwrap();
                    if !r.status().is_success() {
                        failures.push(format!("{}: {}", r.status(), r.text().await.unwrap()));
                    }
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {}",
        failures.len(),
        failures[0]
    );
    let (_, ev) = s.get(&streams(&p, &uuid, "events/metric")).await;
    let data = ev["data"].as_array().unwrap();
    assert_eq!(data.len(), 1 + writers as usize);
    let total = writers * batches * per;
    for series in data {
        let mut steps: Vec<i64> = series["data"]["step"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let expected = if series["name"] == "shared" {
            total
        } else {
            batches * per
        };
        assert_eq!(
            steps.len() as i64,
            expected,
            "{}: every point, once",
            series["name"]
        );
        steps.dedup();
        assert_eq!(
            steps.len() as i64,
            expected,
            "{}: none doubled",
            series["name"]
        );
    }
    // The run's outputs hold each series' value at its highest step, whichever batch was
    // committed last.
    let (_, run) = s.get(&format!("/api/v1/root/{p}/runs/{uuid}")).await;
    assert_eq!(run["outputs"]["shared"], (total - 1) as f64);
    for w in 0..writers {
        let last = ((batches - 1) * writers + w) * per + per - 1;
        assert_eq!(run["outputs"][format!("own-{w}")], last as f64);
    }
    for i in 0..40 {
        assert_eq!(
            run["outputs"][format!("extra-{i}")],
            i,
            "{}",
            run["outputs"]
        );
    }
    assert_eq!(run["status"], "running");
});
