//! A mixed load against a live server: `clients` clients for `seconds`, each in turn listing
//! a project's runs (a page, and a PQL query), reading a run, reading a metric downsampled,
//! and sending a metrics batch to a run it shares with other clients. Shared by
//! `examples/loadgen.rs mixed` (the bench, against the release server) and the `load` test
//! (in `scripts/test`, bounded).

use std::time::{Duration, Instant};

use serde_json::{Value as J, json};

pub struct Figures {
    pub clients: usize,
    pub seconds: f64,
    pub requests: usize,
    pub errors: usize,
    /// Requests answered 503 (busy) and tried again.
    pub retried_503: usize,
    /// The first few errors, to say what went wrong.
    pub first_errors: Vec<String>,
    pub read_ms: Vec<f64>,
    pub write_ms: Vec<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

impl Figures {
    pub fn json(&self) -> J {
        let mut r = self.read_ms.clone();
        let mut w = self.write_ms.clone();
        r.sort_by(f64::total_cmp);
        w.sort_by(f64::total_cmp);
        json!({
            "clients": self.clients,
            "seconds": self.seconds,
            "requests": self.requests,
            "requests_per_second": self.requests as f64 / self.seconds,
            "errors": self.errors,
            "retried_503": self.retried_503,
            "first_errors": self.first_errors,
            "reads": {"count": r.len(), "p50_ms": percentile(&r, 0.5), "p99_ms": percentile(&r, 0.99), "max_ms": percentile(&r, 1.0)},
            "writes": {"count": w.len(), "p50_ms": percentile(&w, 0.5), "p99_ms": percentile(&w, 0.99), "max_ms": percentile(&w, 1.0)},
        })
    }
}

/// Creates the runs the clients share (with points to read) and drives the load.
pub async fn run(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    owner: &str,
    project: &str,
    clients: usize,
    seconds: f64,
) -> Figures {
    let auth = format!("Token {token}");
    let api = format!("{base}/api/v1/{owner}/{project}");
    let streams = format!("{base}/streams/v1/polyaxon/{owner}/{project}");
    let runs = clients.div_ceil(4).clamp(1, 50);
    let mut uuids = Vec::new();
    for i in 0..runs {
        let r: J = client
            .post(format!("{api}/runs"))
            .header("Authorization", &auth)
            .json(&json!({"name": format!("load-{i}"), "tags": ["load"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let uuid = r["uuid"].as_str().unwrap().to_string();
        let steps: Vec<i64> = (0..1000).collect();
        let values: Vec<f64> = steps.iter().map(|s| 1.0 / (1.0 + *s as f64)).collect();
        let resp = client
            .post(format!("{streams}/runs/{uuid}/metrics"))
            .header("Authorization", &auth)
            .json(&json!({"metrics": [{"name": "loss", "step": steps, "value": values}]}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        uuids.push(uuid);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, auth, api, streams) =
            (client.clone(), auth.clone(), api.clone(), streams.clone());
        let uuid = uuids[c % uuids.len()].clone();
        tasks.push(tokio::spawn(async move {
            let (mut reads, mut writes, mut errors) = (Vec::new(), Vec::new(), Vec::new());
            let mut retried = 0usize;
            let mut k: i64 = 0;
            while Instant::now() < deadline {
                let (req, write) = match k % 5 {
                    0 => (client.get(format!("{api}/runs?limit=20&sort=-created_at")), false),
                    1 => (client.get(format!("{api}/runs/{uuid}")), false),
                    2 => (
                        client.get(format!("{streams}/runs/{uuid}/events/metric?names=loss&sample=200")),
                        false,
                    ),
                    3 => {
                        // Steps of this client only: writers into one run never collide.
                        let first = 1_000_000 + (c as i64) * 10_000_000 + k * 50;
                        let steps: Vec<i64> = (first..first + 50).collect();
                        let values: Vec<f64> = steps.iter().map(|s| (*s % 97) as f64).collect();
                        let body = json!({"id": format!("{c}-{k}"), "metrics": [{"name": "loss", "step": steps, "value": values}]});
                        (client.post(format!("{streams}/runs/{uuid}/metrics")).json(&body), true)
                    }
                    _ => (
                        client.get(format!("{api}/runs?limit=20&query=tags:load,metrics.loss:<50")),
                        false,
                    ),
                };
                k += 1;
                let t = Instant::now();
                // A 503 (the server busy) is tried again after its Retry-After, as the CLI's
                // client does; every request here is safe to repeat (batches carry an id).
                let mut outcome = Err(String::new());
                for attempt in 0..4 {
                    let Some(req) = req.try_clone() else { break };
                    outcome = match req.header("Authorization", &auth).send().await {
                        Ok(resp) if resp.status().is_success() => {
                            resp.bytes().await.map(|_| ()).map_err(|e| e.to_string())
                        }
                        Ok(resp) if resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE && attempt < 3 => {
                            retried += 1;
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                        Ok(resp) => Err(format!("{} {}", resp.status(), resp.text().await.unwrap_or_default())),
                        Err(e) => Err(e.to_string()),
                    };
                    break;
                }
                let ms = t.elapsed().as_secs_f64() * 1e3;
                if write { writes.push(ms) } else { reads.push(ms) }
                if let Err(e) = outcome {
                    errors.push(e);
                }
            }
            (reads, writes, errors, retried)
        }));
    }
    let mut f = Figures {
        clients,
        seconds: 0.0,
        requests: 0,
        errors: 0,
        retried_503: 0,
        first_errors: Vec::new(),
        read_ms: Vec::new(),
        write_ms: Vec::new(),
    };
    for t in tasks {
        let (r, w, e, retried) = t.await.unwrap();
        f.retried_503 += retried;
        f.requests += r.len() + w.len();
        f.read_ms.extend(r);
        f.write_ms.extend(w);
        f.errors += e.len();
        for e in e {
            if f.first_errors.len() < 5 {
                f.first_errors.push(e);
            }
        }
    }
    f.seconds = started.elapsed().as_secs_f64();
    f
}
