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
    /// Runs the files sidecar of each Job's pod (`polyaxon-sidecar`, an init container that
    /// restarts always) as a process of this binary, in a directory of `pods_root` standing
    /// for the pod's `/plx-context`. The main container writes an output and an event file
    /// there as it starts, and one more of each as it ends; the sidecar is then sent SIGTERM,
    /// as the kubelet does, and the pod succeeds once it has exited.
    pub sidecar_binary: Option<std::path::PathBuf>,
    pub pods_root: Option<std::path::PathBuf>,
    /// The sidecars run, by Job path.
    pub sidecars: BTreeMap<String, Sidecar>,
}

/// A pod's files sidecar, run as a process.
pub struct Sidecar {
    pub child: std::process::Child,
    /// The run's directory in the pod (`/plx-context/artifacts/<uuid>`).
    pub run_dir: std::path::PathBuf,
    /// Where its stdout and stderr go.
    pub log: std::path::PathBuf,
    pub stopped: bool,
    pub exit: Option<i32>,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl State {
    /// Moves the sidecars on: the main container of a pod whose time is up ends (writing its
    /// last files), its sidecar is told to stop, and one that exited is noted.
    fn tick(&mut self) {
        let paths: Vec<String> = self.sidecars.keys().cloned().collect();
        for p in paths {
            // A Job deleted stops its pod too.
            let done = !self.started.contains_key(&p) || self.age(&p) >= DONE_AFTER;
            let sc = self.sidecars.get_mut(&p).expect("listed");
            if done && !sc.stopped {
                main_container_ends(&sc.run_dir);
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &sc.child.id().to_string()])
                    .status();
                sc.stopped = true;
            }
            if sc.exit.is_none()
                && let Ok(Some(st)) = sc.child.try_wait()
            {
                sc.exit = Some(st.code().unwrap_or(-1));
            }
        }
    }

    /// Whether a Job's pod still runs a container: its main one's time is not up, or its
    /// sidecar has not exited yet.
    fn active(&self, path: &str) -> bool {
        self.age(path) < DONE_AFTER || self.sidecars.get(path).is_some_and(|s| s.exit.is_none())
    }

    /// Starts the files sidecar of a Job just applied, if it has one and sidecars are run.
    fn start_sidecar(&mut self, path: &str, job: &J) {
        let (Some(bin), Some(root)) = (self.sidecar_binary.clone(), self.pods_root.clone()) else {
            return;
        };
        let spec = &job["spec"]["template"]["spec"];
        let Some(c) = spec["initContainers"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == "polyaxon-sidecar"))
        else {
            return;
        };
        assert_eq!(c["restartPolicy"], "Always", "a native sidecar: {c}");
        let uuid = job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ctx = root.join(&uuid);
        let in_pod = |v: &str| v.replace("/plx-context", &ctx.display().to_string());
        let mut cmd = std::process::Command::new(&bin);
        cmd.env_clear().env("PATH", "/usr/bin:/bin");
        for e in c["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap_or_default();
            let value = match (&e["value"], &e["valueFrom"]["secretKeyRef"]) {
                _ if name == "POLYAXON_HOME" => ctx.join("home").display().to_string(),
                (J::String(v), _) => in_pod(v),
                (_, J::Object(r)) => {
                    let secret = format!(
                        "/api/v1/namespaces/runs/secrets/{}",
                        r["name"].as_str().unwrap_or_default()
                    );
                    self.objects[&secret]["stringData"][r["key"].as_str().unwrap_or_default()]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                }
                _ => continue,
            };
            cmd.env(name, value);
        }
        let command: Vec<String> = c["command"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(c["args"].as_array().into_iter().flatten())
            .filter_map(|a| a.as_str().map(in_pod))
            .collect();
        assert_eq!(command.first().map(String::as_str), Some("polyaxon"));
        let run_dir = ctx.join("artifacts").join(&uuid);
        main_container_starts(&run_dir);
        let log = ctx.join("sidecar.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .args(&command[1..])
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.sidecars.insert(
            path.to_string(),
            Sidecar {
                child,
                run_dir,
                log,
                stopped: false,
                exit: None,
            },
        );
    }

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

/// What the main container of a sidecar's pod writes as it starts: an output, and an event
/// file as `polyaxon.tracking` writes it (its last line without its newline yet).
fn main_container_starts(run_dir: &std::path::Path) {
    std::fs::create_dir_all(run_dir.join("outputs")).unwrap();
    std::fs::create_dir_all(run_dir.join("events/metric")).unwrap();
    std::fs::write(run_dir.join("outputs/model.txt"), "trained\n").unwrap();
    std::fs::write(
        run_dir.join("events/metric/acc.plx"),
        "step|timestamp|metric\n1|2026-11-24T09:00:01Z|0.5\n2|2026-11-24T09:00:02Z|0.75",
    )
    .unwrap();
}

/// And as it ends: one more point and one more output, which only the sidecar's last pass
/// can send.
fn main_container_ends(run_dir: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(run_dir.join("events/metric/acc.plx"))
        .unwrap();
    f.write_all(b"\n3|2026-11-24T09:00:03Z|0.875").unwrap();
    std::fs::write(
        run_dir.join("outputs/last.txt"),
        "written as the job ended\n",
    )
    .unwrap();
}

/// The pod of a Job at `age` (`active`: a container of it still runs).
fn pod_of(job: &J, age: Duration, active: bool, rv: u64) -> J {
    let name = job["metadata"]["name"].as_str().unwrap_or("job");
    let labels = job["spec"]["template"]["metadata"]["labels"].clone();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let cname = container["name"].as_str().unwrap_or("polyaxon-main");
    let image = container["image"].as_str().unwrap_or("");
    let (phase, state) = if age < RUNNING_AFTER {
        ("Pending", None)
    } else if active {
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

fn job_view(job: &J, active: bool, rv: u64) -> J {
    let mut j = job.clone();
    j["metadata"]["resourceVersion"] = json!(rv.to_string());
    j["status"] = if active {
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
        s.tick();
        let rv = s.version;
        let selector = selector_of(&query);
        let jobs: Vec<(J, Duration, bool)> = s
            .objects
            .iter()
            .filter(|(p, o)| p.contains("/jobs/") && selected(o, &selector))
            .map(|(p, o)| (o.clone(), s.age(p), s.active(p)))
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
                if p.contains("/jobs/") && !s.sidecars.contains_key(p) {
                    s.start_sidecar(p, &o);
                }
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
                let pods: Vec<J> = jobs
                    .iter()
                    .map(|(j, age, active)| pod_of(j, *age, *active, rv))
                    .collect();
                collection(watching, "PodList", "v1", pods, rv)
            }
            ("GET", "/apis/batch/v1/namespaces/runs/jobs") => {
                let items: Vec<J> = jobs
                    .iter()
                    .map(|(j, _, active)| job_view(j, *active, rv))
                    .collect();
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
                    .map(|(j, age, active)| pod_of(j, *age, *active, rv))
                    .find(|pod| pod["metadata"]["name"] == name);
                match pod {
                    Some(pod) => (reply(StatusCode::OK, pod), None),
                    None => (not_found(), None),
                }
            }
            ("GET", p) => match s.objects.get(p) {
                Some(o) if p.contains("/jobs/") => {
                    let active = s.active(p);
                    (reply(StatusCode::OK, job_view(o, active, rv)), None)
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
