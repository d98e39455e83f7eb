//! A small stateful stand-in for a Kubernetes API server over HTTP, enough for the kubernetes
//! executor end to end: server-side apply of Secrets and Jobs, a pod per Job that goes
//! Pending → Running → Succeeded on a clock, list and watch (each watch answers the current
//! state, then ends, as a server may), logs, and foreground deletes. Every request is kept.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use serde_json::{Value as J, json};

#[derive(Default)]
pub struct State {
    /// (method, path?query, body)
    pub requests: Vec<(String, String, J)>,
    /// Applied objects by path.
    pub objects: BTreeMap<String, J>,
    /// When each Job was applied.
    started: BTreeMap<String, Instant>,
    version: u64,
    /// A volume the "pods" share with the server: each Job's pod writes a metric event file
    /// into its run's directory there, as `polyaxon.tracking` does.
    pub shared_artifacts: Option<std::path::PathBuf>,
    /// How long a Job's pod runs before it succeeds (default 1.5 s).
    pub done_after: Option<Duration>,
}

impl State {
    /// A Job's age on the pods' clock: scaled so that it ends after `done_after`.
    fn age(&self, path: &str) -> Duration {
        let real = self.started[path].elapsed();
        match self.done_after {
            Some(d) if !d.is_zero() => real.mul_f64(DONE_AFTER.as_secs_f64() / d.as_secs_f64()),
            _ => real,
        }
    }
}

pub struct FakeKube {
    pub state: Arc<Mutex<State>>,
    pub url: String,
}

const RUNNING_AFTER: Duration = Duration::from_millis(300);
const DONE_AFTER: Duration = Duration::from_millis(1500);

impl FakeKube {
    pub fn start() -> FakeKube {
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(move |req: Request<Body>| {
                    let st = st.clone();
                    async move { handle(st, req).await }
                });
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        FakeKube {
            state,
            url: format!("http://{addr}"),
        }
    }

    /// A kubeconfig pointing at it, namespace `runs`.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let p = dir.join("kubeconfig");
        std::fs::write(
            &p,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: u, namespace: runs}}\ncurrent-context: fake\n",
                self.url
            ),
        )
        .unwrap();
        p
    }
}

fn reply(code: StatusCode, body: J) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn not_found() -> Response<Body> {
    reply(
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

/// The pod of a Job at `age`.
fn pod_of(job: &J, age: Duration, rv: u64) -> J {
    let name = job["metadata"]["name"].as_str().unwrap_or("job");
    let labels = job["spec"]["template"]["metadata"]["labels"].clone();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let cname = container["name"].as_str().unwrap_or("polyaxon-main");
    let image = container["image"].as_str().unwrap_or("");
    let (phase, state) = if age < RUNNING_AFTER {
        ("Pending", None)
    } else if age < DONE_AFTER {
        (
            "Running",
            Some(json!({"running": {"startedAt": "2026-11-24T09:00:00Z"}})),
        )
    } else {
        (
            "Succeeded",
            Some(json!({"terminated": {"exitCode": 0, "reason": "Completed"}})),
        )
    };
    let statuses = state.map(|s| {
        json!([{"name": cname, "image": image, "imageID": "", "ready": phase == "Running", "restartCount": 0, "state": s}])
    });
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{name}-x7k2p"), "namespace": "runs", "labels": labels,
            "resourceVersion": rv.to_string(), "creationTimestamp": "2026-11-24T09:00:00Z"},
        "spec": {"containers": [{"name": cname, "image": image}]},
        "status": {"phase": phase, "containerStatuses": statuses,
            "conditions": [{"type": "PodScheduled", "status": "True"}]}
    })
}

fn job_view(job: &J, age: Duration, rv: u64) -> J {
    let mut j = job.clone();
    j["metadata"]["resourceVersion"] = json!(rv.to_string());
    j["status"] = if age < DONE_AFTER {
        json!({"active": 1})
    } else {
        json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
    };
    j
}

async fn handle(st: Arc<Mutex<State>>, req: Request<Body>) -> Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let bytes = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let body: J = serde_json::from_slice(&bytes).unwrap_or(J::Null);
    let watching = query.contains("watch=true");
    let (resp, delay) = {
        let mut s = st.lock().unwrap();
        s.requests
            .push((method.clone(), format!("{path}?{query}"), body.clone()));
        s.version += 1;
        let rv = s.version;
        let selector = selector_of(&query);
        let jobs: Vec<(J, Duration)> = s
            .objects
            .iter()
            .filter(|(p, o)| p.contains("/jobs/") && selected(o, &selector))
            .map(|(p, o)| (o.clone(), s.age(p)))
            .collect();
        match (method.as_str(), path.as_str()) {
            ("PATCH", p) => {
                let mut o = body.clone();
                o["metadata"]["resourceVersion"] = json!(rv.to_string());
                if p.contains("/jobs/") {
                    s.started.insert(p.to_string(), Instant::now());
                    let uuid =
                        o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                    if let Some(root) = &s.shared_artifacts {
                        let dir = root.join(&uuid).join("events/metric");
                        std::fs::create_dir_all(&dir).unwrap();
                        std::fs::write(
                            dir.join("acc.plx"),
                            "step|timestamp|metric\n1|2026-11-24T09:00:01Z|0.5\n2|2026-11-24T09:00:02Z|0.75",
                        )
                        .unwrap();
                    }
                }
                s.objects.insert(p.to_string(), o.clone());
                (reply(StatusCode::OK, o), None)
            }
            ("DELETE", p) => {
                s.objects.remove(p);
                s.started.remove(p);
                (
                    reply(
                        StatusCode::OK,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
                    ),
                    None,
                )
            }
            ("GET", "/api/v1/namespaces/runs/pods") => {
                let pods: Vec<J> = jobs.iter().map(|(j, age)| pod_of(j, *age, rv)).collect();
                collection(watching, "PodList", "v1", pods, rv)
            }
            ("GET", "/apis/batch/v1/namespaces/runs/jobs") => {
                let items: Vec<J> = jobs.iter().map(|(j, age)| job_view(j, *age, rv)).collect();
                collection(watching, "JobList", "batch/v1", items, rv)
            }
            ("GET", p) if p.ends_with("/log") => {
                let body = "2026-11-24T09:00:01.000000001Z hello from the cluster\n2026-11-24T09:00:02.000000002Z loss=0.5\n";
                (
                    Response::builder()
                        .status(200)
                        .body(Body::from(body))
                        .unwrap(),
                    None,
                )
            }
            ("GET", p) if p.starts_with("/api/v1/namespaces/runs/pods/") => {
                let name = p.trim_start_matches("/api/v1/namespaces/runs/pods/");
                let pod = jobs
                    .iter()
                    .map(|(j, age)| pod_of(j, *age, rv))
                    .find(|pod| pod["metadata"]["name"] == name);
                match pod {
                    Some(pod) => (reply(StatusCode::OK, pod), None),
                    None => (not_found(), None),
                }
            }
            ("GET", p) => match s.objects.get(p) {
                Some(o) if p.contains("/jobs/") => {
                    let age = s.age(p);
                    (reply(StatusCode::OK, job_view(o, age, rv)), None)
                }
                Some(o) => (reply(StatusCode::OK, o.clone()), None),
                None => (not_found(), None),
            },
            _ => (not_found(), None),
        }
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    resp
}

/// The `key=value` pairs of a request's `labelSelector`.
fn selector_of(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("labelSelector="))
        .flat_map(|v| {
            let v = v
                .replace("%2F", "/")
                .replace("%3D", "=")
                .replace("%2C", ",");
            v.split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether a Job's pod template carries every label of `selector`.
fn selected(job: &J, selector: &[(String, String)]) -> bool {
    let labels = &job["spec"]["template"]["metadata"]["labels"];
    selector
        .iter()
        .all(|(k, v)| labels[k.as_str()] == v.as_str())
}

/// A list, or a watch's answer: every object as `MODIFIED`, then (a little later, as a quiet
/// watch would) the end of the stream.
fn collection(
    watching: bool,
    kind: &str,
    api_version: &str,
    items: Vec<J>,
    rv: u64,
) -> (Response<Body>, Option<Duration>) {
    if !watching {
        let list = json!({"kind": kind, "apiVersion": api_version,
            "metadata": {"resourceVersion": rv.to_string()}, "items": items});
        return (reply(StatusCode::OK, list), None);
    }
    let mut text = String::new();
    for o in &items {
        text.push_str(&json!({"type": "MODIFIED", "object": o}).to_string());
        text.push('\n');
    }
    (
        Response::builder()
            .status(200)
            .body(Body::from(text))
            .unwrap(),
        Some(Duration::from_millis(200)),
    )
}
