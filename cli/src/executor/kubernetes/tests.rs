//! The executor and the deploy against kube-rs's mock service: a scripted cluster answers
//! each request; the tests check what was asked, in which order, and what came out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value as J, json};

use super::*;
use crate::executor::Handle;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Where kube-rs sends requests about `K` objects in `namespace` (the API's own paths, not
/// written out here).
fn path_of<K: kube::Resource<DynamicType = ()>>(namespace: &str) -> String {
    K::url_path(&(), Some(namespace))
}

fn pods_of(namespace: &str) -> String {
    path_of::<core::Pod>(namespace)
}

/// One request as the cluster saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    body: J,
}

type Router = Box<dyn FnMut(&Seen) -> (u16, Vec<u8>) + Send>;

/// A client whose every request goes to `route`; the requests are recorded.
///
/// Routers answer plain requests: a list, or a get by name. Watches are made of them: a list
/// or watch selecting one object by name (`fieldSelector=metadata.name=…`) is routed as a get
/// of it, and a watch is answered with the routed list (or object) as events: each object
/// `MODIFIED`, and those gone since the last answer `DELETED`. Each answer is a new cluster
/// state (a new resourceVersion); a watch answer ends its stream, so the watcher watches
/// again and the router is asked again, a little later.
fn fake_cluster(mut route: Router) -> (kube::Client, Arc<Mutex<Vec<Seen>>>) {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut version = 0u64;
        let mut known: std::collections::HashMap<String, std::collections::BTreeMap<String, J>> =
            Default::default();
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or_default().to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap_or_default();
            let body = serde_json::from_slice(&bytes).unwrap_or(J::Null);
            let s = Seen {
                method,
                path,
                query,
                body,
            };
            let param = |k: &str| {
                s.query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .map(|v| v.replace("%3D", "=").replace("%2F", "/"))
            };
            let watching = param("watch").as_deref() == Some("true");
            let by_name = param("fieldSelector")
                .and_then(|f| f.strip_prefix("metadata.name=").map(str::to_string));
            let routed = match &by_name {
                Some(n) => Seen {
                    path: format!("{}/{n}", s.path),
                    query: String::new(),
                    ..s.clone()
                },
                None => s.clone(),
            };
            let (code, out) = route(&routed);
            log.lock().unwrap().push(s.clone());
            version += 1;
            let stamp = |mut o: J| {
                o["metadata"]["resourceVersion"] = json!(version.to_string());
                o
            };
            let answer: Option<Vec<J>> = if s.method != "GET" || !(watching || by_name.is_some()) {
                None
            } else if by_name.is_some() {
                // A get as a list of at most one.
                Some(if code == 200 {
                    vec![serde_json::from_slice(&out).unwrap()]
                } else {
                    vec![]
                })
            } else if code == 200 {
                let list: J = serde_json::from_slice(&out).unwrap_or(J::Null);
                Some(list["items"].as_array().cloned().unwrap_or_default())
            } else {
                None
            };
            let (code, out, delay) = match answer {
                // A watch the router says is too old: the API's 410 event, and a relist follows.
                None if watching && code == 410 => (
                    200,
                    format!(
                        "{}\n",
                        json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                            "status": "Failure", "reason": "Expired", "message": "too old resource version", "code": 410}})
                    )
                    .into_bytes(),
                    Some(Duration::from_millis(20)),
                ),
                None if s.method == "GET" && code == 200 && !s.path.ends_with("/log") => {
                    // Plain lists and gets carry a resourceVersion too.
                    let mut v: J = serde_json::from_slice(&out).unwrap_or(J::Null);
                    if let Some(items) = v["items"].as_array_mut() {
                        for it in items.iter_mut() {
                            *it = stamp(it.take());
                        }
                        v["metadata"]["resourceVersion"] = json!(version.to_string());
                        (code, serde_json::to_vec(&v).unwrap(), None)
                    } else {
                        (code, out, None)
                    }
                }
                None => (code, out, None),
                Some(items) if !watching => (
                    200,
                    serde_json::to_vec(&json!({"kind": "List", "apiVersion": "v1",
                        "metadata": {"resourceVersion": version.to_string()},
                        "items": items.into_iter().map(stamp).collect::<Vec<_>>()}))
                    .unwrap(),
                    None,
                ),
                Some(items) => {
                    let key = routed.path.clone();
                    let now: std::collections::BTreeMap<String, J> = items
                        .into_iter()
                        .map(|o| {
                            (
                                o["metadata"]["name"].as_str().unwrap_or("").to_string(),
                                stamp(o),
                            )
                        })
                        .collect();
                    let before = known.insert(key, now.clone()).unwrap_or_default();
                    let mut events = String::new();
                    for (n, o) in &before {
                        if !now.contains_key(n) {
                            events.push_str(&format!(
                                "{}\n",
                                json!({"type": "DELETED", "object": stamp(o.clone())})
                            ));
                        }
                    }
                    for o in now.values() {
                        events.push_str(&format!("{}\n", json!({"type": "MODIFIED", "object": o})));
                    }
                    (200, events.into_bytes(), Some(Duration::from_millis(20)))
                }
            };
            let resp = Response::builder()
                .status(code)
                .body(Body::from(out))
                .unwrap();
            match delay {
                Some(d) => {
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        send.send_response(resp);
                    });
                }
                None => send.send_response(resp),
            }
        }
    });
    (kube::Client::new(svc, "default"), seen)
}

fn ok(v: J) -> (u16, Vec<u8>) {
    (200, serde_json::to_vec(&v).unwrap())
}

fn not_found() -> (u16, Vec<u8>) {
    (404, serde_json::to_vec(&json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "not found", "reason": "NotFound", "code": 404})).unwrap())
}

fn pod_list(pods: Vec<J>) -> (u16, Vec<u8>) {
    ok(
        json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": pods}),
    )
}

const UUID: &str = "0123456789abcdef0123456789abcdef";

fn job_manifests(spec: &str) -> manifests::Manifests {
    let mut session = polyaxonfile::Session::new();
    let report =
        polyaxonfile::check_text(&mut session, "t", spec, &Default::default()).expect("compiles");
    let op = report.compiled.unwrap().operation;
    manifests::build(&manifests::Input {
        op: &op,
        uuid: UUID,
        name: Some("t"),
        owner: "acme",
        project: "mnist",
        namespace: "runs",
        env: &[("POLYAXON_HOST".into(), "http://api".into())],
        image: None,
        token: Some("tok"),
        uploaded_code: false,
        settings: &Default::default(),
    })
    .expect("manifests")
}

const JOB: &str = "version: 1.1\nkind: component\nrun:\n  kind: job\n  container: {image: 'busybox:1', command: [sh, -c, 'echo hi']}\n";

fn pod(phase: &str, node: Option<&str>, statuses: J, conditions: J) -> J {
    let name = format!("{}-x7k2p", manifests::resource_name(UUID));
    json!({
        "metadata": {"name": name, "namespace": "runs"},
        "spec": {"nodeName": node, "containers": [{"name": "polyaxon-main"}]},
        "status": {"phase": phase, "containerStatuses": statuses, "conditions": conditions}
    })
}

fn main_status(state: J) -> J {
    json!([{"name": "polyaxon-main", "image": "busybox:1", "imageID": "", "ready": false, "restartCount": 0, "state": state}])
}

async fn collect(h: &mut dyn Handle) -> (Vec<String>, Vec<String>) {
    let mut lines = h.lines().unwrap();
    let mut events = h.events().unwrap();
    let mut out = Vec::new();
    let mut evs = Vec::new();
    let exit = tokio::time::timeout(Duration::from_secs(20), h.wait())
        .await
        .expect("ends")
        .unwrap();
    while let Ok(Some(l)) = tokio::time::timeout(Duration::from_millis(300), lines.recv()).await {
        out.push(l.text);
    }
    while let Ok(e) = events.try_recv() {
        evs.push(format!("{} {}: {}", e.status, e.reason, e.message));
    }
    evs.push(format!("exit {exit:?}"));
    (out, evs)
}

#[tokio::test]
async fn submit_watch_logs_with_a_reconnect_then_cleanup() {
    let name = manifests::resource_name(UUID);
    let pod_name = format!("{name}-x7k2p");
    let mut lists = 0;
    let mut log_calls = 0;
    let mut deleted = false;
    let name2 = name.clone();
    let route: Router = Box::new(move |s: &Seen| {
        let name = &name2;
        let path = s.path.as_str();
        if s.method == "PATCH" {
            return ok(s.body.clone());
        }
        if s.method == "DELETE" {
            deleted = true;
            return ok(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
            );
        }
        if path == pods_of("runs") {
            lists += 1;
            if deleted {
                return pod_list(vec![]);
            }
            // The second watch finds its position gone: the watcher lists again.
            if lists == 2 && s.query.contains("watch=true") {
                return (410, Vec::new());
            }
            return pod_list(vec![match lists {
                1 => pod(
                    "Pending",
                    None,
                    json!([]),
                    json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes are available: 2 Insufficient cpu."}]),
                ),
                2..=4 => pod(
                    "Running",
                    Some("n1"),
                    main_status(json!({"running": {"startedAt": "2026-11-24T09:00:00Z"}})),
                    json!([]),
                ),
                _ => pod(
                    "Succeeded",
                    Some("n1"),
                    main_status(json!({"terminated": {"exitCode": 0, "reason": "Completed"}})),
                    json!([]),
                ),
            }]);
        }
        if path == format!("/apis/batch/v1/namespaces/runs/jobs/{name}") {
            if deleted {
                return not_found();
            }
            let status = if lists >= 5 {
                json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
            } else {
                json!({"active": 1})
            };
            return ok(
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "runs"}, "status": status}),
            );
        }
        if path == format!("{}/{name}", path_of::<core::Secret>("runs")) {
            return if deleted {
                not_found()
            } else {
                ok(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}))
            };
        }
        if path == format!("{}/{pod_name}/log", pods_of("runs")) {
            log_calls += 1;
            // The first stream drops after two lines; the reconnection starts from the last
            // line's second and so repeats it, which must not show twice.
            let body = match log_calls {
                1 => {
                    "2026-11-24T09:00:01.000000001Z epoch 1\n2026-11-24T09:00:02.000000002Z epoch 2\n"
                }
                2 => {
                    "2026-11-24T09:00:02.000000002Z epoch 2\n2026-11-24T09:00:03.000000003Z epoch 3\n"
                }
                _ => "",
            };
            return (200, body.as_bytes().to_vec());
        }
        if path == format!("{}/{pod_name}", pods_of("runs")) {
            // The container runs until the third log read.
            let state = if log_calls >= 2 {
                json!({"terminated": {"exitCode": 0}})
            } else {
                json!({"running": {}})
            };
            return ok(pod("Running", Some("n1"), main_status(state), json!([])));
        }
        not_found()
    });
    let (client, seen) = fake_cluster(route);
    let m = job_manifests(JOB);
    let mut h = submit(client, "runs", UUID, &m).await.unwrap();
    let (lines, events) = collect(&mut h).await;
    assert_eq!(
        lines,
        vec!["epoch 1", "epoch 2", "epoch 3"],
        "each line once, in order"
    );
    assert_eq!(
        events.first().unwrap(),
        "unschedulable Unschedulable: 0/2 nodes are available: 2 Insufficient cpu."
    );
    assert!(
        events.iter().any(|e| e.starts_with("running")),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap(), "exit Code(0)");
    h.cleanup().await.unwrap();

    let seen = seen.lock().unwrap().clone();
    let calls: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    // Submitted by server-side apply, the token's Secret first.
    assert_eq!(
        calls[0],
        format!("PATCH /api/v1/namespaces/runs/secrets/{name}")
    );
    assert_eq!(
        calls[1],
        format!("PATCH /apis/batch/v1/namespaces/runs/jobs/{name}")
    );
    assert!(
        seen[0].query.contains("fieldManager=polyaxon") && seen[0].query.contains("force=true"),
        "{}",
        seen[0].query
    );
    // Followed by watches (pods by the run's label, the Job by name), not by polling.
    let watches: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.query.contains("watch=true"))
        .collect();
    assert!(
        watches.iter().any(|w| w.path == pods_of("runs")
            && w.query
                .contains("labelSelector=app.kubernetes.io%2Finstance%3D")),
        "{watches:?}"
    );
    assert!(
        watches
            .iter()
            .any(|w| w.path == "/apis/batch/v1/namespaces/runs/jobs"
                && w.query
                    .contains(&format!("fieldSelector=metadata.name%3D{name}"))),
        "{watches:?}"
    );
    // After the expired watch, the pods were listed again, then watched from there.
    let pod_calls: Vec<bool> = seen
        .iter()
        .filter(|s| s.path == pods_of("runs") && s.method == "GET")
        .map(|s| s.query.contains("watch=true"))
        .collect();
    let relist = pod_calls
        .iter()
        .skip(1)
        .position(|w| !w)
        .expect("a second list after the 410");
    assert!(
        pod_calls[relist + 2..].iter().any(|w| *w),
        "watched again after the relist: {pod_calls:?}"
    );
    // The reconnection asked from the last line's second.
    let logs: Vec<&Seen> = seen.iter().filter(|s| s.path.ends_with("/log")).collect();
    assert!(logs[0].query.contains("follow=true") && logs[0].query.contains("timestamps=true"));
    assert!(
        logs[1].query.contains("sinceTime=2026-11-24T09%3A00%3A02"),
        "{}",
        logs[1].query
    );
    // Cleanup deletes the Job (dependents first) and the Secret, and waits for them.
    let deletes: Vec<&Seen> = seen.iter().filter(|s| s.method == "DELETE").collect();
    assert_eq!(deletes.len(), 2);
    assert!(
        deletes
            .iter()
            .all(|d| d.body["propagationPolicy"] == "Foreground"),
        "{:?}",
        deletes[0].body
    );
}

async fn failing_run(pods: Vec<J>, job_status: J) -> (Option<(String, String)>, Vec<String>) {
    let name = manifests::resource_name(UUID);
    let route: Router = Box::new(move |s: &Seen| {
        if s.method == "PATCH" {
            return ok(s.body.clone());
        }
        if s.path == pods_of("runs") {
            return pod_list(pods.clone());
        }
        if s.path == format!("/apis/batch/v1/namespaces/runs/jobs/{name}") {
            return ok(
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "status": job_status}),
            );
        }
        (200, Vec::new())
    });
    let (client, _) = fake_cluster(route);
    let m = job_manifests(JOB);
    let mut h = submit(client, "runs", UUID, &m).await.unwrap();
    let (_, events) = collect(&mut h).await;
    (h.failure(), events)
}

#[tokio::test]
async fn a_job_deleted_under_the_run_ends_it() {
    let name = manifests::resource_name(UUID);
    let mut gets = 0;
    let route: Router = Box::new(move |s: &Seen| {
        if s.method == "PATCH" {
            return ok(s.body.clone());
        }
        if s.path == pods_of("runs") {
            return pod_list(vec![pod(
                "Running",
                Some("n1"),
                main_status(json!({"running": {}})),
                json!([]),
            )]);
        }
        if s.path == format!("/apis/batch/v1/namespaces/runs/jobs/{name}") {
            gets += 1;
            // Listed, watched once, then gone (someone's `kubectl delete job`).
            return if gets <= 2 {
                ok(
                    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "status": {"active": 1}}),
                )
            } else {
                not_found()
            };
        }
        (200, Vec::new())
    });
    let (client, _) = fake_cluster(route);
    let m = job_manifests(JOB);
    let mut h = submit(client, "runs", UUID, &m).await.unwrap();
    let (_, events) = collect(&mut h).await;
    let (reason, message) = h.failure().unwrap();
    assert_eq!(reason, "Deleted");
    assert!(
        message.contains("was deleted from the cluster"),
        "{message}"
    );
    assert_eq!(events.last().unwrap(), "exit Signal(9)");
}

#[tokio::test]
async fn forwarded_services_are_read_with_their_selector_and_ports() {
    let route: Router = Box::new(|s: &Seen| {
        if s.path == format!("{}/plx-api", path_of::<core::Service>("plx")) {
            return ok(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "plx-api"},
                "spec": {"selector": {"app.kubernetes.io/name": "polyaxon", "app.kubernetes.io/component": "api"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"port": 9090}]}}),
            );
        }
        if s.path == pods_of("plx") {
            return pod_list(vec![
                json!({"metadata": {"name": "plx-api-1", "creationTimestamp": "2026-11-24T09:00:00Z"},
                    "spec": {"containers": [{"name": "api", "image": "i", "ports": [{"name": "http", "containerPort": 8000}]}]},
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
            ]);
        }
        not_found()
    });
    let (client, seen) = fake_cluster(route);
    let b = forward::backend(&client, "plx", "plx-api").await.unwrap();
    assert_eq!(
        b.selector,
        "app.kubernetes.io/component=api,app.kubernetes.io/name=polyaxon"
    );
    assert_eq!(b.ports.len(), 2);
    assert_eq!(b.ports[1].target, IntOrString::Int(9090));
    let pods: Api<core::Pod> = Api::namespaced(client.clone(), "plx");
    let p = forward::ready_pod(&pods, &b.selector, &b.service)
        .await
        .unwrap();
    assert_eq!(forward::pod_port(&p, &b.ports[0].target).unwrap(), 8000);
    assert!(seen.lock().unwrap().iter().any(|s| {
        s.query
            .contains("labelSelector=app.kubernetes.io%2Fcomponent%3Dapi")
    }));
    let e = forward::backend(&client, "plx", "nope").await.unwrap_err();
    let u = e.downcast_ref::<UserError>().unwrap();
    assert!(
        u.message.contains("no service `nope` in namespace `plx`")
            && u.hint
                .as_deref()
                .unwrap()
                .contains("kubectl -n plx get services"),
        "{u:?}"
    );
}

#[tokio::test]
async fn a_forbidden_watch_fails_the_run_with_what_is_missing() {
    let name = manifests::resource_name(UUID);
    let route: Router = Box::new(move |s: &Seen| {
        if s.method == "PATCH" {
            return ok(s.body.clone());
        }
        if s.path == pods_of("runs") {
            return (403, serde_json::to_vec(&json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "pods is forbidden: User \"ci\" cannot list resource \"pods\"", "reason": "Forbidden", "code": 403})).unwrap());
        }
        if s.path == format!("/apis/batch/v1/namespaces/runs/jobs/{name}") {
            return ok(
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "status": {"active": 1}}),
            );
        }
        (200, Vec::new())
    });
    let (client, _) = fake_cluster(route);
    let m = job_manifests(JOB);
    let mut h = submit(client, "runs", UUID, &m).await.unwrap();
    let (_, events) = collect(&mut h).await;
    let (reason, message) = h.failure().unwrap();
    assert_eq!(reason, "Forbidden");
    assert!(
        message.contains("may not watch the run's pods in namespace runs")
            && message.contains("get, list and watch"),
        "{message}"
    );
    assert_eq!(events.last().unwrap(), "exit Code(1)");
}

#[tokio::test]
async fn image_pull_errors_fail_the_run_with_their_reason() {
    let p = pod(
        "Pending",
        Some("n1"),
        json!([{"name": "polyaxon-main", "image": "busybox:nope", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}}}]),
        json!([]),
    );
    let (failure, events) = failing_run(vec![p], json!({"active": 1})).await;
    let (reason, message) = failure.unwrap();
    assert_eq!(reason, "ErrImagePull");
    assert!(
        message.contains("`busybox:nope`") && message.contains("manifest unknown"),
        "{message}"
    );
    assert_eq!(events.last().unwrap(), "exit Code(1)");
}

#[tokio::test]
async fn oom_kills_fail_the_run_with_their_reason() {
    let p = pod(
        "Failed",
        Some("n1"),
        main_status(json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})),
        json!([]),
    );
    let job = json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
    let (failure, events) = failing_run(vec![p], job).await;
    assert_eq!(failure.unwrap().0, "OOMKilled");
    assert_eq!(events.last().unwrap(), "exit Code(137)");
}

#[tokio::test]
async fn unschedulable_then_deadline() {
    let p = pod(
        "Pending",
        None,
        json!([]),
        json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity."}]),
    );
    let job = json!({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]});
    let (failure, _) = failing_run(vec![p], job).await;
    assert_eq!(
        failure.unwrap(),
        (
            "DeadlineExceeded".to_string(),
            "Job was active longer than specified deadline".to_string()
        )
    );
}

#[tokio::test]
async fn stop_deletes_in_the_foreground_and_waits_until_nothing_is_left() {
    let name = manifests::resource_name(UUID);
    let mut deletes = 0;
    let mut lists_after = 0;
    let name2 = name.clone();
    let route: Router = Box::new(move |s: &Seen| {
        let name = &name2;
        if s.method == "PATCH" {
            return ok(s.body.clone());
        }
        if s.method == "DELETE" {
            deletes += 1;
            return ok(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
            );
        }
        if s.path == pods_of("runs") {
            if deletes == 0 {
                return pod_list(vec![pod(
                    "Running",
                    Some("n1"),
                    main_status(json!({"running": {}})),
                    json!([]),
                )]);
            }
            // The pod takes two looks to go (its grace period).
            lists_after += 1;
            return if lists_after < 3 {
                pod_list(vec![pod(
                    "Running",
                    Some("n1"),
                    main_status(json!({"running": {}})),
                    json!([]),
                )])
            } else {
                pod_list(vec![])
            };
        }
        if s.path.ends_with(name.as_str()) && s.method == "GET" {
            return if deletes > 0 {
                not_found()
            } else {
                ok(
                    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "status": {"active": 1}}),
                )
            };
        }
        (200, Vec::new())
    });
    let (client, seen) = fake_cluster(route);
    let m = job_manifests(JOB);
    let mut h = submit(client, "runs", UUID, &m).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.stop(Duration::from_secs(7)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let dels: Vec<&Seen> = seen.iter().filter(|s| s.method == "DELETE").collect();
    assert_eq!(
        dels.iter().map(|d| d.path.clone()).collect::<Vec<_>>(),
        vec![
            format!("/apis/batch/v1/namespaces/runs/jobs/{name}"),
            format!("{}/{name}", path_of::<core::Secret>("runs"))
        ]
    );
    assert!(
        dels.iter()
            .all(|d| d.body["propagationPolicy"] == "Foreground"
                && d.body["gracePeriodSeconds"] == 7)
    );
    // It returned only once the pods were gone.
    let last_list = seen
        .iter()
        .rposition(|s| s.path == pods_of("runs"))
        .unwrap();
    assert!(seen[last_list..].iter().all(|s| s.method == "GET"));
}

const DEPLOY: &str = "namespace: plx\nrbac: {enabled: true}\ningress: {enabled: true, hostName: plx.example.com}\npostgresql: {persistence: {size: 20Gi}}\n";

#[tokio::test]
async fn deploy_applies_in_order_and_waits_for_the_rollout() {
    let c = crate::deploy::config::parse(DEPLOY).unwrap();
    let objects = crate::deploy::manifests(&c, &crate::deploy::Secrets::generate()).unwrap();
    let mut gets = 0;
    let route: Router = Box::new(move |s: &Seen| {
        if s.method == "PATCH" {
            return ok(s.body.clone());
        }
        gets += 1;
        // Not ready on the first look, ready on the next.
        let ready = if gets % 2 == 0 { 1 } else { 0 };
        ok(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "generation": 1},
            "spec": {"replicas": 1}, "status": {"observedGeneration": 1, "readyReplicas": ready, "updatedReplicas": 1}}),
        )
    });
    let (client, seen) = fake_cluster(route);
    let said = Mutex::new(Vec::new());
    crate::deploy::apply_all(
        &client,
        &objects,
        &|m: &str| said.lock().unwrap().push(m.to_string()),
        Duration::from_secs(10),
        Duration::from_millis(10),
    )
    .await
    .unwrap();
    let seen = seen.lock().unwrap().clone();
    let calls: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    let expected_order = [
        "PATCH /api/v1/namespaces/plx",
        "PATCH /api/v1/namespaces/plx/serviceaccounts/polyaxon-executor",
        "PATCH /apis/rbac.authorization.k8s.io/v1/namespaces/plx/roles/polyaxon-executor",
        "PATCH /apis/rbac.authorization.k8s.io/v1/namespaces/plx/rolebindings/polyaxon-executor",
        "PATCH /api/v1/namespaces/plx/secrets/polyaxon-secrets",
        "PATCH /api/v1/namespaces/plx/services/polyaxon-postgresql",
        "PATCH /apis/apps/v1/namespaces/plx/statefulsets/polyaxon-postgresql",
        "PATCH /api/v1/namespaces/plx/persistentvolumeclaims/polyaxon-artifacts",
        "PATCH /apis/apps/v1/namespaces/plx/deployments/polyaxon-api",
        "PATCH /api/v1/namespaces/plx/services/polyaxon-api",
        "PATCH /apis/apps/v1/namespaces/plx/deployments/polyaxon-agent",
        "PATCH /apis/networking.k8s.io/v1/namespaces/plx/ingresses/polyaxon-api",
        "GET /apis/apps/v1/namespaces/plx/statefulsets/polyaxon-postgresql",
    ];
    assert_eq!(&calls[..expected_order.len()], &expected_order[..]);
    assert!(
        calls.contains(&"GET /apis/apps/v1/namespaces/plx/deployments/polyaxon-api".to_string())
    );
    assert!(
        calls.contains(&"GET /apis/apps/v1/namespaces/plx/deployments/polyaxon-agent".to_string()),
        "the agent's rollout is waited for too"
    );
    let said = said.into_inner().unwrap();
    assert!(
        said.iter().any(|m| m.contains("0/1 ready"))
            && said.iter().any(|m| m.contains("1/1 ready")),
        "{said:?}"
    );
}

#[tokio::test]
async fn teardown_keeps_the_database_volume_unless_told() {
    let c = crate::deploy::config::parse(DEPLOY).unwrap();
    for delete_volumes in [false, true] {
        let route: Router = Box::new(|s: &Seen| {
            if s.method == "DELETE" {
                return ok(
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
                );
            }
            (200, Vec::new())
        });
        let (client, seen) = fake_cluster(route);
        crate::deploy::teardown(&client, &c, delete_volumes, &|_| {})
            .await
            .unwrap();
        let seen = seen.lock().unwrap().clone();
        let dels: Vec<String> = seen
            .iter()
            .filter(|s| s.method == "DELETE")
            .map(|s| s.path.clone())
            .collect();
        assert_eq!(
            dels[0], "/apis/networking.k8s.io/v1/namespaces/plx/ingresses/polyaxon-api",
            "the reverse order"
        );
        assert!(dels.contains(
            &"/apis/apps/v1/namespaces/plx/statefulsets/polyaxon-postgresql".to_string()
        ));
        let volumes = dels.iter().any(|d| d.contains("persistentvolumeclaims"));
        let secrets = dels.iter().any(|d| d.contains("/secrets/"));
        let namespace = dels.iter().any(|d| {
            *d == format!(
                "{}/plx",
                <core::Namespace as kube::Resource>::url_path(&(), None)
            )
        });
        assert_eq!(
            (volumes, secrets, namespace),
            (delete_volumes, delete_volumes, delete_volumes),
            "{dels:?}"
        );
    }
}
