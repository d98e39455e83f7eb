//! The kubernetes executor: a run becomes Kubernetes objects (see [`manifests`]), submitted by
//! server-side apply; a monitor follows its pods and main object into run statuses (see
//! [`status`]) and streams every container's logs, reconnecting without repeating a line;
//! stopping deletes with foreground propagation and waits until nothing is left.

pub mod forward;
pub mod manifests;
pub mod status;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use futures_util::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1 as core;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
};
use kube::runtime::watcher;
use serde_json::Value as J;
use tokio::sync::{mpsc, watch};

use super::{BoxFuture, Exit, Handle, Job, Line, Stream};
use crate::error::UserError;

/// The field manager of our server-side applies.
pub const FIELD_MANAGER: &str = "polyaxon";

/// Where runs go on a cluster, from the environment (`POLYAXON_K8S_*`).
#[derive(Clone, Debug, Default)]
pub struct KubeSettings {
    /// The kubeconfig context (default: the current one, or the in-cluster config).
    pub context: Option<String>,
    /// The namespace of runs (default: the context's, else `default`).
    pub namespace: Option<String>,
    /// The API the pods call (default: the configured host).
    pub api_host: Option<String>,
    pub manifests: manifests::Settings,
}

impl KubeSettings {
    pub fn from_env() -> KubeSettings {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut m = manifests::Settings::default();
        if let Some(i) = var("POLYAXON_K8S_INIT_IMAGE") {
            m.init_image = i;
        }
        m.artifacts_claim = var("POLYAXON_K8S_ARTIFACTS_CLAIM");
        m.image_pull_secrets = var("POLYAXON_K8S_IMAGE_PULL_SECRETS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        KubeSettings {
            context: var("POLYAXON_K8S_CONTEXT"),
            namespace: var("POLYAXON_K8S_NAMESPACE"),
            api_host: var("POLYAXON_K8S_API_HOST"),
            manifests: m,
        }
    }
}

/// A client for the cluster and the namespace to use.
pub async fn connect(
    context: Option<&str>,
    namespace: Option<&str>,
) -> Result<(kube::Client, String)> {
    let config = match context {
        Some(ctx) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
            context: Some(ctx.to_string()),
            ..Default::default()
        })
        .await
        .map_err(|e| {
            UserError::new(format!("kubeconfig context `{ctx}`: {e}"))
                .hint("`kubectl config get-contexts` lists them; POLYAXON_K8S_CONTEXT or --context picks one")
        })?,
        None => kube::Config::infer().await.map_err(|e| {
            UserError::new(format!("no Kubernetes cluster is configured: {e}"))
                .hint("point KUBECONFIG at a kubeconfig file (or run inside a cluster)")
        })?,
    };
    let ns = namespace
        .map(str::to_string)
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).context("creating the Kubernetes client")?;
    Ok((client, ns))
}

/// The namespace of the kubeconfig's current context, read without contacting the cluster.
pub fn kubeconfig_namespace() -> Option<String> {
    let kc = kube::config::Kubeconfig::read().ok()?;
    let current = kc.current_context.as_deref()?;
    kc.contexts
        .iter()
        .find(|c| c.name == current)?
        .context
        .as_ref()?
        .namespace
        .clone()
}

/// The REST coordinates of an object's kind, and whether it lives in a namespace.
pub fn resource_of(api_version: &str, kind: &str) -> Result<(ApiResource, bool)> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    let (plural, namespaced) = match kind {
        "Namespace" => ("namespaces", false),
        "ClusterRole" => ("clusterroles", false),
        "ClusterRoleBinding" => ("clusterrolebindings", false),
        "PersistentVolume" => ("persistentvolumes", false),
        "Secret" => ("secrets", true),
        "ConfigMap" => ("configmaps", true),
        "Service" => ("services", true),
        "ServiceAccount" => ("serviceaccounts", true),
        "PersistentVolumeClaim" => ("persistentvolumeclaims", true),
        "Pod" => ("pods", true),
        "Job" => ("jobs", true),
        "Deployment" => ("deployments", true),
        "StatefulSet" => ("statefulsets", true),
        "Role" => ("roles", true),
        "RoleBinding" => ("rolebindings", true),
        "Ingress" => ("ingresses", true),
        "TFJob" => ("tfjobs", true),
        "PyTorchJob" => ("pytorchjobs", true),
        "MPIJob" => ("mpijobs", true),
        other => return Err(anyhow!("no REST mapping for kind `{other}`")),
    };
    Ok((
        ApiResource {
            group,
            version,
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
        },
        namespaced,
    ))
}

/// An object's kind, name and namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

impl ObjRef {
    pub fn of(obj: &J) -> Result<ObjRef> {
        let s = |p: &str| obj.pointer(p).and_then(J::as_str).map(str::to_string);
        Ok(ObjRef {
            api_version: s("/apiVersion").context("an object without apiVersion")?,
            kind: s("/kind").context("an object without kind")?,
            name: s("/metadata/name").context("an object without a name")?,
            namespace: s("/metadata/namespace"),
        })
    }

    pub fn api(&self, client: &kube::Client) -> Result<Api<DynamicObject>> {
        let (ar, namespaced) = resource_of(&self.api_version, &self.kind)?;
        Ok(match (&self.namespace, namespaced) {
            (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        })
    }

    pub fn describe(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
}

/// Creates or updates an object by server-side apply (our fields win).
pub async fn apply(client: &kube::Client, obj: &J) -> Result<DynamicObject> {
    let r = ObjRef::of(obj)?;
    let api = r.api(client)?;
    api.patch(
        &r.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|e| explain(e, &format!("applying {}", r.describe())))
}

/// Deletes an object (its dependents first: foreground). False when it was not there.
pub async fn delete(client: &kube::Client, r: &ObjRef, grace: Option<u32>) -> Result<bool> {
    let api = r.api(client)?;
    let mut dp = DeleteParams::foreground();
    dp.grace_period_seconds = grace;
    match api.delete(&r.name, &dp).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(explain(e, &format!("deleting {}", r.describe()))),
    }
}

/// Whether an object exists.
pub async fn exists(client: &kube::Client, r: &ObjRef) -> Result<bool> {
    match r.api(client)?.get_opt(&r.name).await {
        Ok(o) => Ok(o.is_some()),
        Err(e) => Err(explain(e, &format!("reading {}", r.describe()))),
    }
}

/// An API error said plainly: who refused what, and what to do.
pub fn explain(e: kube::Error, doing: &str) -> anyhow::Error {
    match &e {
        kube::Error::Api(s) => {
            let hint = match s.code {
                401 => {
                    Some("the cluster does not accept these credentials: refresh your kubeconfig")
                }
                403 => Some(
                    "your account may not do this: ask for a Role that allows it (`polyaxon admin deploy` creates one for the executor)",
                ),
                404 if s
                    .message
                    .contains("the server could not find the requested resource") =>
                {
                    Some(
                        "the cluster does not know this kind: install its operator (Kubeflow's training operator for tfjob, pytorchjob, mpijob)",
                    )
                }
                422 => Some(
                    "the cluster rejected the manifest: `polyaxon run --dry-run -o yaml` prints it",
                ),
                _ => None,
            };
            let mut u = UserError::new(format!("{doing}: {} ({})", s.message, s.code));
            if let Some(h) = hint {
                u = u.hint(h);
            }
            u.into()
        }
        _ => anyhow::Error::new(e).context(doing.to_string()),
    }
}

/// Runs jobs on a cluster.
pub struct Kubernetes {
    pub client: kube::Client,
    /// The kubeconfig context it was reached with (none: the current one or in-cluster).
    pub context: Option<String>,
    pub namespace: String,
    pub settings: manifests::Settings,
}

impl Kubernetes {
    /// The manifests of a job (also what `--dry-run` prints).
    pub fn manifests(&self, job: &Job) -> Result<manifests::Manifests> {
        build_manifests(job, &self.namespace, &self.settings, true)
    }
}

/// The manifests of a job prepared by the supervisor.
pub fn build_manifests(
    job: &Job,
    namespace: &str,
    settings: &manifests::Settings,
    with_token: bool,
) -> Result<manifests::Manifests> {
    let op = job
        .spec
        .as_deref()
        .context("the kubernetes executor needs the run's compiled spec")?;
    let token = job
        .env
        .iter()
        .find(|(k, _)| k == "POLYAXON_AUTH_TOKEN")
        .map(|(_, v)| v.as_str());
    let env: Vec<(String, String)> = job
        .env
        .iter()
        .filter(|(k, _)| k != "POLYAXON_AUTH_TOKEN")
        .cloned()
        .collect();
    manifests::build(&manifests::Input {
        op,
        uuid: &job.uuid,
        name: job.name.as_deref(),
        owner: &job.owner,
        project: &job.project,
        namespace,
        env: &env,
        image: job.image.as_deref().filter(|_| job.image_built),
        token: if with_token { token } else { None },
        uploaded_code: job.uploaded_code,
        settings,
    })
}

impl super::Executor for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn job_root(&self, _host_root: &std::path::Path) -> std::path::PathBuf {
        manifests::CONTEXT_ROOT.into()
    }

    fn placement(&self) -> serde_json::Map<String, J> {
        let mut m = serde_json::Map::new();
        m.insert("namespace".into(), J::String(self.namespace.clone()));
        if let Some(c) = &self.context {
            m.insert("context".into(), J::String(c.clone()));
        }
        m
    }

    fn start<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<Box<dyn Handle>>> {
        Box::pin(async move {
            let m = self.manifests(job)?;
            let handle = submit(self.client.clone(), &self.namespace, &job.uuid, &m).await?;
            Ok(Box::new(handle) as Box<dyn Handle>)
        })
    }
}

/// Applies a run's manifests (removing what was applied if one fails) and starts following it.
pub async fn submit(
    client: kube::Client,
    namespace: &str,
    uuid: &str,
    m: &manifests::Manifests,
) -> Result<KubeHandle> {
    let mut applied: Vec<ObjRef> = Vec::new();
    for obj in &m.objects {
        match apply(&client, obj).await {
            Ok(_) => applied.push(ObjRef::of(obj)?),
            Err(e) => {
                for r in applied.iter().rev() {
                    let _ = delete(&client, r, Some(0)).await;
                }
                return Err(e);
            }
        }
    }
    let main = applied
        .iter()
        .find(|r| r.kind != "Secret" && r.kind != "Service")
        .cloned()
        .context("no workload among the manifests")?;
    let main_container = main_container_of(&main.kind).to_string();
    let (lines_tx, lines_rx) = mpsc::channel(4096);
    let (events_tx, events_rx) = mpsc::channel(64);
    let (end_tx, end_rx) = watch::channel(None);
    let failure = Arc::new(Mutex::new(None));
    let streams = expected_streams(m);
    let monitor = tokio::spawn(monitor(Monitor {
        client: client.clone(),
        namespace: namespace.to_string(),
        selector: manifests::selector(uuid),
        main: main.clone(),
        main_container,
        lines: lines_tx,
        events: events_tx,
        end: end_tx,
        failure: failure.clone(),
        prefix: streams > 1,
    }));
    Ok(KubeHandle {
        client,
        namespace: namespace.to_string(),
        uuid: uuid.to_string(),
        objects: applied,
        main,
        lines: Some(lines_rx),
        events: Some(events_rx),
        end: end_rx,
        failure,
        monitor: Some(monitor),
        keep: m.keep_after_end,
    })
}

fn main_container_of(kind: &str) -> &'static str {
    match kind {
        "TFJob" => "tensorflow",
        "PyTorchJob" => "pytorch",
        "MPIJob" => "mpi",
        _ => manifests::MAIN_CONTAINER,
    }
}

/// How many log streams of a run's pods run side by side (containers × replicas), to know
/// whether lines need a prefix saying where they come from. Init containers run one after
/// another before them, so their lines do not mix with others'.
fn expected_streams(m: &manifests::Manifests) -> usize {
    let per_template = |t: &J, replicas: i64| {
        let n = t
            .pointer("/spec/containers")
            .and_then(J::as_array)
            .map_or(0, Vec::len);
        n * replicas.max(0) as usize
    };
    m.objects
        .iter()
        .map(|o| {
            if let Some(t) = o.pointer("/spec/template") {
                let replicas = o.pointer("/spec/replicas").and_then(J::as_i64).unwrap_or(1);
                per_template(t, replicas)
            } else if let Some(specs) = o.get("spec").and_then(J::as_object) {
                specs
                    .iter()
                    .filter(|(k, _)| k.ends_with("ReplicaSpecs"))
                    .filter_map(|(_, v)| v.as_object())
                    .flat_map(|roles| roles.values())
                    .map(|r| {
                        let replicas = r.get("replicas").and_then(J::as_i64).unwrap_or(1);
                        r.get("template")
                            .map(|t| per_template(t, replicas))
                            .unwrap_or(0)
                    })
                    .sum()
            } else {
                0
            }
        })
        .sum()
}

struct Monitor {
    client: kube::Client,
    namespace: String,
    selector: String,
    main: ObjRef,
    main_container: String,
    lines: mpsc::Sender<Line>,
    events: mpsc::Sender<super::StatusEvent>,
    end: watch::Sender<Option<Exit>>,
    failure: Arc<Mutex<Option<(String, String)>>>,
    prefix: bool,
}

/// What the watchers have seen of the run: its pods by name and its main object.
#[derive(Default)]
struct Seen {
    pods: BTreeMap<String, core::Pod>,
    /// Pods of a relist in progress (between `Init` and `InitDone`).
    pods_relist: Option<BTreeMap<String, core::Pod>>,
    pods_listed: bool,
    main: Option<DynamicObject>,
    main_relist: Option<Option<DynamicObject>>,
    main_listed: bool,
}

impl Seen {
    fn pod_event(&mut self, e: watcher::Event<core::Pod>) {
        let key = |p: &core::Pod| p.metadata.name.clone().unwrap_or_default();
        match e {
            watcher::Event::Apply(p) => {
                self.pods.insert(key(&p), p);
            }
            watcher::Event::Delete(p) => {
                self.pods.remove(&key(&p));
            }
            watcher::Event::Init => self.pods_relist = Some(BTreeMap::new()),
            watcher::Event::InitApply(p) => {
                self.pods_relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key(&p), p);
            }
            watcher::Event::InitDone => {
                self.pods = self.pods_relist.take().unwrap_or_default();
                self.pods_listed = true;
            }
        }
    }

    fn main_event(&mut self, e: watcher::Event<DynamicObject>) {
        match e {
            watcher::Event::Apply(o) => self.main = Some(o),
            watcher::Event::Delete(_) => self.main = None,
            watcher::Event::Init => self.main_relist = Some(None),
            watcher::Event::InitApply(o) => self.main_relist = Some(Some(o)),
            watcher::Event::InitDone => {
                self.main = self.main_relist.take().flatten();
                self.main_listed = true;
            }
        }
    }
}

/// The HTTP status an API error of a watch carries.
fn watch_status(e: &watcher::Error) -> Option<u16> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(s.code),
        watcher::Error::WatchError(s) => Some(s.code),
        _ => None,
    }
}

/// Follows a run through two watches (its pods by label, its main object by name) and turns
/// each change into statuses and log followers. The watches reconnect with backoff, relisting
/// when the API server says their position is gone.
async fn monitor(m: Monitor) {
    use kube::runtime::WatchStreamExt;
    let pods: Api<core::Pod> = Api::namespaced(m.client.clone(), &m.namespace);
    let main_api = match m.main.api(&m.client) {
        Ok(a) => a,
        Err(_) => return,
    };
    let mut pod_events =
        watcher::watcher(pods.clone(), watcher::Config::default().labels(&m.selector))
            .default_backoff()
            .boxed();
    let mut main_events = watcher::watcher(
        main_api,
        watcher::Config::default().fields(&format!("metadata.name={}", m.main.name)),
    )
    .default_backoff()
    .boxed();
    let mut seen = Seen::default();
    let mut last: Option<status::State> = None;
    let mut followed: HashMap<(String, String), tokio::task::JoinHandle<()>> = HashMap::new();
    // Errors in a row, per watch (pods, main object).
    let mut errors = [0u32; 2];
    let fail = |reason: &str, message: String| {
        *m.failure.lock().expect("not poisoned") = Some((reason.to_string(), message));
        let _ = m.end.send(Some(Exit::Code(1)));
    };
    loop {
        let failed = tokio::select! {
            e = pod_events.next() => match e {
                Some(Ok(e)) => { seen.pod_event(e); errors[0] = 0; None }
                Some(Err(e)) => Some((0, "pods", e)),
                None => {
                    fail("WatchEnded", "the watch of the run's pods ended".into());
                    return;
                }
            },
            e = main_events.next() => match e {
                Some(Ok(e)) => { seen.main_event(e); errors[1] = 0; None }
                Some(Err(e)) => Some((1, m.main.kind.as_str(), e)),
                None => {
                    fail("WatchEnded", format!("the watch of {} ended", m.main.describe()));
                    return;
                }
            },
        };
        if let Some((which, what, e)) = failed {
            if watch_status(&e) == Some(403) {
                // No retry fixes permissions: say what is missing.
                drain(followed).await;
                fail(
                    "Forbidden",
                    format!(
                        "this identity may not watch the run's {what} in namespace {}: {e}; the executor needs get, list and watch on pods and its workloads (the Role `polyaxon admin deploy` creates has them)",
                        m.namespace
                    ),
                );
                return;
            }
            errors[which] += 1;
            // The API being away for a while is not the run failing.
            if errors[which] == 1 || errors[which].is_multiple_of(30) {
                let _ = m
                    .events
                    .send(super::StatusEvent {
                        status: "warning".into(),
                        reason: "ClusterUnreachable".into(),
                        message: format!("watching the run's {what}: {e}"),
                    })
                    .await;
            }
            continue;
        }
        if !(seen.pods_listed && seen.main_listed) {
            continue;
        }
        // Logs of every container that has started (init ones included), followed once.
        for (name, pod) in &seen.pods {
            for c in started_containers(pod) {
                let key = (name.clone(), c.clone());
                if followed.contains_key(&key) {
                    continue;
                }
                let prefix = m.prefix.then(|| {
                    let short = pod_short(name, &m.main.name);
                    format!("[{short}/{c}] ")
                });
                followed.insert(
                    key,
                    tokio::spawn(follow_logs(
                        pods.clone(),
                        name.clone(),
                        c,
                        prefix,
                        m.lines.clone(),
                    )),
                );
            }
        }
        let Some(main) = &seen.main else {
            // Deleted under us (someone else's `kubectl delete`).
            let f = (
                "Deleted".to_string(),
                format!("{} was deleted from the cluster", m.main.describe()),
            );
            *m.failure.lock().expect("not poisoned") = Some(f);
            drain(followed).await;
            let _ = m.end.send(Some(Exit::Signal(9)));
            return;
        };
        let pod_list: Vec<core::Pod> = seen.pods.values().cloned().collect();
        let state = status::assess(
            &m.main.kind,
            main.data.get("status"),
            &pod_list,
            &m.main_container,
        );
        if last.as_ref() != Some(&state) {
            if !state.is_done() {
                let (st, reason, message) = state.status();
                let _ = m
                    .events
                    .send(super::StatusEvent {
                        status: st.into(),
                        reason,
                        message,
                    })
                    .await;
            }
            last = Some(state.clone());
        }
        match state {
            status::State::Succeeded => {
                drain(followed).await;
                let _ = m.end.send(Some(Exit::Code(0)));
                return;
            }
            status::State::Failed {
                reason,
                message,
                exit_code,
            } => {
                *m.failure.lock().expect("not poisoned") = Some((reason, message));
                // Log streams of failed pods end on their own; do not wait for pods that
                // will never start (image pull errors).
                let _ = tokio::time::timeout(Duration::from_secs(5), drain(followed)).await;
                let _ = m
                    .end
                    .send(Some(Exit::Code(exit_code.filter(|c| *c != 0).unwrap_or(1))));
                return;
            }
            _ => {}
        }
    }
}

async fn drain(followed: HashMap<(String, String), tokio::task::JoinHandle<()>>) {
    for (_, t) in followed {
        let _ = t.await;
    }
}

/// `worker-0` of `plx-operation-…-worker-0`, `x7k2p` of a Job's `plx-operation-…-x7k2p`.
fn pod_short(pod: &str, owner: &str) -> String {
    pod.strip_prefix(owner)
        .map(|s| s.trim_start_matches('-'))
        .filter(|s| !s.is_empty())
        .unwrap_or(pod)
        .to_string()
}

/// Containers of a pod that have left `waiting` (so their logs can be read).
fn started_containers(pod: &core::Pod) -> Vec<String> {
    let Some(st) = &pod.status else {
        return Vec::new();
    };
    st.init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .filter(|c| {
            c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        })
        .map(|c| c.name.clone())
        .collect()
}

/// Whether a container is done (terminated, or its pod gone).
async fn container_done(pods: &Api<core::Pod>, pod: &str, container: &str) -> bool {
    let Ok(Some(p)) = pods.get_opt(pod).await else {
        return true;
    };
    let Some(st) = p.status else { return false };
    if matches!(st.phase.as_deref(), Some("Succeeded") | Some("Failed")) {
        return true;
    }
    st.init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .find(|c| c.name == container)
        .is_some_and(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
}

/// Splits `2026-11-24T09:15:19.123456789Z text` into its time and text.
pub fn split_timestamp(line: &str) -> (Option<jiff::Timestamp>, &str) {
    match line.split_once(' ') {
        Some((ts, rest)) => match ts.parse::<jiff::Timestamp>() {
            Ok(t) => (Some(t), rest),
            Err(_) => (None, line),
        },
        None => match line.parse::<jiff::Timestamp>() {
            Ok(t) => (Some(t), ""),
            Err(_) => (None, line),
        },
    }
}

/// Which lines of a reconnected log stream were already sent: a reconnection asks from the
/// last line's second, so lines before that time, and those of that time already sent, are
/// skipped.
#[derive(Default)]
struct Dedup {
    last: Option<jiff::Timestamp>,
    /// Lines sent with the time `last` (several lines can share one).
    sent_at_last: usize,
    /// Lines with the time `last` seen in the current stream.
    seen_at_last: usize,
}

impl Dedup {
    fn new_stream(&mut self) {
        self.seen_at_last = 0;
    }

    /// Whether a line with this time is new (and records it).
    fn admit(&mut self, ts: Option<jiff::Timestamp>) -> bool {
        let Some(t) = ts else { return true };
        match self.last {
            Some(l) if t < l => false,
            Some(l) if t == l => {
                self.seen_at_last += 1;
                if self.seen_at_last <= self.sent_at_last {
                    return false;
                }
                self.sent_at_last += 1;
                true
            }
            _ => {
                self.last = Some(t);
                self.sent_at_last = 1;
                self.seen_at_last = 1;
                true
            }
        }
    }
}

/// Reads one log stream into `tx`; false when the receiver is gone.
async fn read_stream(
    stream: impl futures_util::AsyncBufRead + Unpin,
    dedup: &mut Dedup,
    prefix: Option<&str>,
    tx: &mpsc::Sender<Line>,
) -> bool {
    dedup.new_stream();
    let mut lines = stream.lines();
    while let Ok(Some(line)) = lines.try_next().await {
        let (ts, text) = split_timestamp(&line);
        if !dedup.admit(ts) {
            continue;
        }
        let at = ts
            .map(|t| t.as_microsecond())
            .unwrap_or_else(super::now_micros);
        let text = match prefix {
            Some(p) => format!("{p}{text}"),
            None => text.to_string(),
        };
        let line = Line {
            stream: Stream::Stdout,
            text,
            at,
        };
        if tx.send(line).await.is_err() {
            return false;
        }
    }
    true
}

/// Follows one container's log, reconnecting when the stream drops while the container runs
/// (from the last line's second, without repeating a line); ends with the container.
pub async fn follow_logs(
    pods: Api<core::Pod>,
    pod: String,
    container: String,
    prefix: Option<String>,
    tx: mpsc::Sender<Line>,
) {
    let mut dedup = Dedup::default();
    let mut failures = 0u32;
    loop {
        let lp = LogParams {
            container: Some(container.clone()),
            follow: true,
            timestamps: true,
            since_time: dedup.last,
            ..Default::default()
        };
        match pods.log_stream(&pod, &lp).await {
            Ok(stream) => {
                failures = 0;
                if !read_stream(stream, &mut dedup, prefix.as_deref(), &tx).await {
                    return;
                }
            }
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(_) => {
                failures += 1;
                if failures > 300 {
                    return;
                }
            }
        }
        if container_done(&pods, &pod, &container).await {
            // One last read picks up lines written between the drop and the end.
            if failures == 0 && dedup.last.is_some() {
                let lp = LogParams {
                    container: Some(container.clone()),
                    timestamps: true,
                    since_time: dedup.last,
                    ..Default::default()
                };
                if let Ok(stream) = pods.log_stream(&pod, &lp).await {
                    read_stream(stream, &mut dedup, prefix.as_deref(), &tx).await;
                }
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A run submitted to a cluster.
pub struct KubeHandle {
    client: kube::Client,
    namespace: String,
    uuid: String,
    objects: Vec<ObjRef>,
    main: ObjRef,
    lines: Option<mpsc::Receiver<Line>>,
    events: Option<mpsc::Receiver<super::StatusEvent>>,
    end: watch::Receiver<Option<Exit>>,
    failure: Arc<Mutex<Option<(String, String)>>>,
    monitor: Option<tokio::task::JoinHandle<()>>,
    /// The workload stays after the end (its `ttl` removes it).
    keep: bool,
}

impl KubeHandle {
    /// Deletes every object of the run (dependents first) and waits until none is left, pods
    /// included.
    pub async fn delete_all(&self, grace: Option<u32>, keep_main: bool) -> Result<()> {
        for r in self.objects.iter().rev() {
            if keep_main && *r == self.main {
                continue;
            }
            delete(&self.client, r, grace).await?;
        }
        let pods: Api<core::Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let lp = ListParams::default().labels(&manifests::selector(&self.uuid));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            let mut left: Vec<String> = Vec::new();
            for r in &self.objects {
                if keep_main && *r == self.main {
                    continue;
                }
                if exists(&self.client, r).await? {
                    left.push(r.describe());
                }
            }
            if !keep_main {
                let p = pods
                    .list(&lp)
                    .await
                    .map_err(|e| explain(e, "listing the run's pods"))?;
                left.extend(
                    p.items
                        .iter()
                        .filter_map(|p| p.metadata.name.clone())
                        .map(|n| format!("Pod {n}")),
                );
            }
            if left.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(UserError::new(format!(
                    "still on the cluster after 3 minutes: {}",
                    left.join(", ")
                ))
                .hint(format!(
                    "`kubectl -n {} get all -l {}` shows them",
                    self.namespace,
                    manifests::selector(&self.uuid)
                ))
                .into());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Handle for KubeHandle {
    fn lines(&mut self) -> Option<mpsc::Receiver<Line>> {
        self.lines.take()
    }

    fn events(&mut self) -> Option<mpsc::Receiver<super::StatusEvent>> {
        self.events.take()
    }

    fn failure(&self) -> Option<(String, String)> {
        self.failure.lock().expect("not poisoned").clone()
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<Exit>> {
        Box::pin(async move {
            loop {
                if let Some(e) = *self.end.borrow_and_update() {
                    return Ok(e);
                }
                if self.end.changed().await.is_err() {
                    return Err(anyhow!("the cluster monitor ended"));
                }
            }
        })
    }

    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let secs = u32::try_from(grace.as_secs()).unwrap_or(u32::MAX);
            self.delete_all(Some(secs), false).await?;
            if let Some(m) = self.monitor.take() {
                m.abort();
            }
            Ok(())
        })
    }

    fn cleanup(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if let Some(m) = self.monitor.take() {
                m.abort();
            }
            let keep = self.keep;
            self.delete_all(None, keep).await
        })
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn describe(&self) -> String {
        format!("{} in namespace {}", self.main.describe(), self.namespace)
    }
}

/// Labels shared by what `polyaxon` creates, for `kubectl get -l`.
pub fn managed_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(
        "app.kubernetes.io/managed-by".to_string(),
        "polyaxon".to_string(),
    )])
}

#[cfg(test)]
mod tests;
