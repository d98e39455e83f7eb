//! Load generator for `bench/server_vs_mlflow.py`: drives a running polyaxon server over HTTP
//! and prints one JSON line of figures.
//!
//! ```text
//! loadgen ingest BASE TOKEN OWNER PROJECT RUNS POINTS_PER_RUN BATCH [WRITERS_PER_RUN]
//! loadgen fetch  BASE TOKEN OWNER PROJECT UUID NAME SAMPLE REPEATS
//! loadgen runs   BASE TOKEN OWNER PROJECT COUNT CONCURRENCY
//! loadgen list   BASE TOKEN OWNER PROJECT REPEATS
//! loadgen mixed  BASE TOKEN OWNER PROJECT CLIENTS SECONDS
//! ```

#[path = "../tests/support/mixed_load.rs"]
mod mixed_load;

use std::time::Instant;

use serde_json::{Value as J, json};

fn arg(i: usize) -> String {
    std::env::args()
        .nth(i)
        .unwrap_or_else(|| panic!("missing argument {i}; see the module docs"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// GETs `url` `repeats` times: the times in milliseconds and the last answer.
async fn timed_gets(
    client: &reqwest::Client,
    url: &str,
    auth: &str,
    repeats: usize,
) -> (Vec<f64>, J) {
    let mut times = Vec::new();
    let mut last = J::Null;
    for _ in 0..repeats {
        let t = Instant::now();
        last = client
            .get(url)
            .header("Authorization", auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    (times, last)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (mode, base, token, owner, project) = (arg(1), arg(2), arg(3), arg(4), arg(5));
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let auth = format!("Token {token}");
    let api = format!("{base}/api/v1/{owner}/{project}");
    let streams = format!("{base}/streams/v1/polyaxon/{owner}/{project}");
    match mode.as_str() {
        "ingest" => {
            let (runs, per_run, batch): (usize, usize, usize) = (
                arg(6).parse().unwrap(),
                arg(7).parse().unwrap(),
                arg(8).parse().unwrap(),
            );
            // Several writers into one run (a distributed job's workers) share its batches
            // round-robin, into the same series.
            let writers: usize = std::env::args().nth(9).map_or(1, |w| w.parse().unwrap());
            let mut uuids = Vec::new();
            for i in 0..runs {
                let r: J = client
                    .post(format!("{api}/runs"))
                    .header("Authorization", &auth)
                    .json(&json!({"name": format!("ingest-{i}")}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                uuids.push(r["uuid"].as_str().unwrap().to_string());
            }
            // Bodies are built before the clock starts: the figure is the server's.
            let mut bodies: Vec<(String, Vec<String>)> = Vec::new();
            let mut split = |uuid: &str, per: Vec<String>| {
                let mut parts: Vec<Vec<String>> = vec![Vec::new(); writers];
                for (i, body) in per.into_iter().enumerate() {
                    parts[i % writers].push(body);
                }
                for part in parts {
                    bodies.push((uuid.to_string(), part));
                }
            };
            for uuid in &uuids {
                let mut per = Vec::new();
                let mut step = 0usize;
                while step < per_run {
                    let n = batch.min(per_run - step);
                    let steps: Vec<usize> = (step..step + n).collect();
                    let values: Vec<f64> = steps.iter().map(|s| 1.0 / (1.0 + *s as f64)).collect();
                    let ts: Vec<f64> = steps
                        .iter()
                        .map(|s| 1_700_000_000.0 + *s as f64 * 0.001)
                        .collect();
                    per.push(json!({"id": format!("{uuid}-{step}"), "metrics": [{"name": "loss", "step": steps, "timestamp": ts, "value": values}]}).to_string());
                    step += n;
                }
                split(uuid, per);
            }
            let start = Instant::now();
            let mut tasks = Vec::new();
            for (uuid, per) in bodies {
                let (client, auth, url) = (
                    client.clone(),
                    auth.clone(),
                    format!("{streams}/runs/{uuid}/metrics"),
                );
                tasks.push(tokio::spawn(async move {
                    for body in per {
                        let resp = client
                            .post(&url)
                            .header("Authorization", &auth)
                            .header("Content-Type", "application/json")
                            .body(body)
                            .send()
                            .await
                            .unwrap();
                        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let secs = start.elapsed().as_secs_f64();
            let points = runs * per_run;
            println!(
                "{}",
                json!({"points": points, "seconds": secs, "points_per_second": points as f64 / secs, "writers_per_run": writers, "runs": uuids})
            );
        }
        "fetch" => {
            let (uuid, name, sample, repeats): (String, String, usize, usize) = (
                arg(6),
                arg(7),
                arg(8).parse().unwrap(),
                arg(9).parse().unwrap(),
            );
            let url = format!("{streams}/runs/{uuid}/events/metric?names={name}&sample={sample}");
            let (times, r) = timed_gets(&client, &url, &auth, repeats).await;
            let got = r["data"][0]["data"]["metric"]
                .as_array()
                .map_or(0, Vec::len);
            assert!(r["data"][0]["total"].as_u64().unwrap_or(0) > 0, "{r}");
            println!(
                "{}",
                json!({"median_ms": median(times.clone()), "min_ms": times.iter().cloned().fold(f64::MAX, f64::min), "points_returned": got})
            );
        }
        "runs" => {
            let (count, conc): (usize, usize) = (arg(6).parse().unwrap(), arg(7).parse().unwrap());
            let start = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..conc {
                let (client, auth, url) = (client.clone(), auth.clone(), format!("{api}/runs"));
                tasks.push(tokio::spawn(async move {
                    let mut i = w;
                    while i < count {
                        let body = json!({"name": format!("run-{i}"), "tags": [if i % 2 == 0 { "even" } else { "odd" }], "meta_info": {"i": i}});
                        let resp = client.post(&url).header("Authorization", &auth).json(&body).send().await.unwrap();
                        assert!(resp.status().is_success());
                        i += conc;
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            println!(
                "{}",
                json!({"created": count, "seconds": start.elapsed().as_secs_f64()})
            );
        }
        "list" => {
            let repeats: usize = arg(6).parse().unwrap();
            let mut out = serde_json::Map::new();
            for (label, q) in [
                ("first_page", "limit=20"),
                ("page_at_50000", "limit=20&offset=50000"),
                (
                    "query_tag_sorted",
                    "limit=20&query=tags:even&sort=-created_at",
                ),
            ] {
                let url = format!("{api}/runs?{q}");
                let (times, r) = timed_gets(&client, &url, &auth, repeats).await;
                let count = r["count"].as_i64().unwrap_or(0);
                out.insert(
                    label.into(),
                    json!({"median_ms": median(times), "count": count}),
                );
            }
            println!("{}", J::Object(out));
        }
        "mixed" => {
            let (clients, seconds): (usize, f64) =
                (arg(6).parse().unwrap(), arg(7).parse().unwrap());
            let f =
                mixed_load::run(&client, &base, &token, &owner, &project, clients, seconds).await;
            println!("{}", f.json());
        }
        other => panic!("unknown mode {other}"),
    }
}
