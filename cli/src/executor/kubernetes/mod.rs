//! The kubernetes executor: a run becomes Kubernetes objects (see [`manifests`]), submitted by
//! server-side apply; a monitor follows its pods and main object into run statuses (see
//! [`status`]) and streams every container's logs, reconnecting without repeating a line;
//! stopping deletes with foreground propagation and waits until nothing is left.

pub mod forward;
mod logs;
pub mod manifests;
mod monitor;
pub mod status;

pub use logs::{follow_logs, split_timestamp};
use monitor::{Monitor, monitor};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value as J;
use tokio::sync::{mpsc, watch};

use super::{BoxFuture, Exit, Handle, Job, Line};
use crate::error::UserError;

/// The field manager of our server-side applies.
pub const FIELD_MANAGER: &str = "polyaxon";

impl manifests::Settings {
    /// The manifests' settings as the CLI's settings give them.
    pub fn of(k: &crate::settings::KubeSettings) -> manifests::Settings {
        let mut m = manifests::Settings::default();
        if let Some(i) = &k.init_image {
            m.init_image = i.clone();
        }
        m.artifacts_claim = k.artifacts_claim.clone();
        m.sidecar_image = k.sidecar_image.clone();
        m.image_pull_secrets = k.image_pull_secrets.clone();
        m
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
    /// The cluster of the settings' context (or the current one), in their namespace.
    pub async fn connect(k: &crate::settings::KubeSettings) -> Result<Kubernetes> {
        let (client, namespace) = connect(k.context.as_deref(), k.namespace.as_deref()).await?;
        Ok(Kubernetes {
            client,
            context: k.context.clone(),
            namespace,
            settings: manifests::Settings::of(k),
        })
    }

    /// The manifests of a job (also what `--dry-run` prints).
    pub fn manifests(&self, job: &Job) -> Result<manifests::Manifests> {
        build_manifests(job, &self.namespace, &self.settings, true)
    }
}

/// What the executor does with these settings (a dry run plans for it without connecting).
pub fn capabilities(settings: &manifests::Settings) -> super::Capabilities {
    super::Capabilities {
        place: super::Place::Cluster,
        retries_itself: true,
        images: super::Images::Pushed,
        // The pods write them into the artifacts store, when they share it with the server,
        // or their sidecar sends them there.
        event_files: if settings.artifacts_claim.is_some() || settings.sidecar_image.is_some() {
            super::EventFiles::Server
        } else {
            super::EventFiles::Unreachable
        },
        distributed: true,
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
    fn kind(&self) -> super::ExecutorKind {
        super::ExecutorKind::Kubernetes
    }

    fn capabilities(&self) -> super::Capabilities {
        capabilities(&self.settings)
    }

    fn job_root(&self, _host_root: &std::path::Path) -> std::path::PathBuf {
        manifests::CONTEXT_ROOT.into()
    }

    fn placement(&self) -> polyaxon_server::api::ExecutorMeta {
        polyaxon_server::api::ExecutorMeta {
            namespace: Some(self.namespace.clone()),
            context: self.context.clone(),
            ..Default::default()
        }
    }

    fn start<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<Box<dyn Handle>>> {
        Box::pin(async move {
            let m = self.manifests(job)?;
            let handle = submit(self.client.clone(), &self.namespace, &job.uuid, &m).await?;
            Ok(Box::new(handle) as Box<dyn Handle>)
        })
    }

    fn attach<'a>(
        &'a self,
        job: &'a Job,
        since: Option<i64>,
    ) -> Option<BoxFuture<'a, Result<Box<dyn Handle>>>> {
        Some(Box::pin(async move {
            let m = self.manifests(job)?;
            let mut found = Vec::new();
            for obj in &m.objects {
                let r = ObjRef::of(obj)?;
                if exists(&self.client, &r).await? {
                    found.push(r);
                }
            }
            if !found
                .iter()
                .any(|r| r.kind != "Secret" && r.kind != "Service")
            {
                return Err(UserError::new(format!(
                    "the run's job is no longer on the cluster (namespace `{}`)",
                    self.namespace
                ))
                .into());
            }
            let since = since.and_then(|us| jiff::Timestamp::from_microsecond(us).ok());
            let handle = follow(
                self.client.clone(),
                &self.namespace,
                &job.uuid,
                &m,
                found,
                since,
            )?;
            Ok(Box::new(handle) as Box<dyn Handle>)
        }))
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
    follow(client, namespace, uuid, m, applied, None)
}

/// Follows a run's applied objects (its log from after `since`, when adopted).
fn follow(
    client: kube::Client,
    namespace: &str,
    uuid: &str,
    m: &manifests::Manifests,
    applied: Vec<ObjRef>,
    since: Option<jiff::Timestamp>,
) -> Result<KubeHandle> {
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
        since,
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
