//! Runs one run to its end on an executor: `polyaxon ops execute`, which `polyaxon run` starts
//! in the background. It compiles the run's spec with the run's real paths, gives the job its
//! environment (upstream's contract), and while the job runs it stores every output line as a
//! log, takes metrics from the job's event files and (when asked) its stdout, samples its
//! CPU and memory, enforces `termination.timeout`, retries per `termination.maxRetries`, and
//! obeys stop requests. Whatever happens, it records how the run ended and leaves nothing
//! running.
//!
//! In the embedded mode it also serves the API on `127.0.0.1` for the job's tracking client.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use http::Method;
use polyaxon_server::api::{V1Auth, V1Log, V1Run, V1Status};
use serde_json::{Map, Value as J, json};
use tokio::sync::mpsc;

use crate::client::{Client, RunRef};
use crate::context::Ctx;
use crate::error::UserError;
use crate::executor::{self, Handle, Job, Line, Stream};
use crate::settings::Settings;
use crate::snapshot;

/// How a run is asked to end, and what it ended with.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Succeeded,
    Failed(String),
    Stopped(String),
}

/// Statuses in which a run may be (re)started by an executor.
const STARTABLE: &[&str] = &[
    "created",
    "compiled",
    "queued",
    "scheduled",
    "resuming",
    "retrying",
    "unknown",
];

/// A point to ingest: step, timestamp (seconds or RFC 3339 text), value.
type Pt = (Option<i64>, J, f64);
/// Points of several series.
type SeriesPts = BTreeMap<String, Vec<Pt>>;
/// What one `name=value` line holds: a step and named values.
type MetricLine = (Option<i64>, Vec<(String, f64)>);

/// Flags the job's environment can carry to ask for stdout metrics.
pub const STDOUT_METRICS_ENV: &str = "POLYAXON_STDOUT_METRICS";

/// Where a run's files live on this machine: the store's run directory in the embedded mode;
/// a cache beside the CLI's state for a remote server.
pub fn context_root(settings: &Settings) -> PathBuf {
    match &settings.host {
        None => settings.home.clone(),
        Some(h) => {
            let key: String = h
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            settings.home.join("remote").join(key)
        }
    }
}

pub fn run_dir(settings: &Settings, uuid: &str) -> PathBuf {
    context_root(settings).join("artifacts").join(uuid)
}

/// The values of `globals.*` for a run.
fn globals(r: &RunRef, run: &V1Run, root: &Path, dir: &Path) -> J {
    let now = jiff::Timestamp::now().to_string();
    json!({
        "owner_name": r.owner,
        "project_name": r.project,
        "project_uuid": null,
        "uuid": r.uuid,
        "name": run.name,
        "namespace": "polyaxon",
        "run_info": format!("{}.{}.runs.{}", r.owner, r.project, r.uuid),
        "context_path": root.display().to_string(),
        "artifacts_path": root.join("artifacts").display().to_string(),
        "run_artifacts_path": dir.display().to_string(),
        "run_outputs_path": dir.join("outputs").display().to_string(),
        "run_relative_outputs_path": format!("{}/outputs", r.uuid),
        "store_path": root.join("artifacts").display().to_string(),
        "base_url": format!("/services/v1/{}/{}/runs/{}", r.owner, r.project, r.uuid),
        "created_at": run.created_at,
        "compiled_at": now,
        "cloning_kind": run.original.as_ref().and_then(|o| o.kind.clone()),
        "original_uuid": run.original.as_ref().map(|o| o.uuid.clone()),
        "iteration": null,
        "schedule_at": null,
        "ports": [],
    })
}

/// Identifies this process beyond its pid (which the system reuses): the boot and the
/// process's start time.
pub fn process_identity(pid: u32) -> Option<(String, u64)> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()?
        .trim()
        .to_string();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    // A zombie (dead, not yet reaped by whoever inherited it) is gone for our purposes.
    if rest.starts_with('Z') || rest.starts_with('X') {
        return None;
    }
    let start: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    Some((boot, start))
}

/// Whether the process recorded as (`pid`, `boot`, `start`) is still running.
pub fn is_alive(pid: u32, boot: &str, start: u64) -> bool {
    process_identity(pid).is_some_and(|(b, s)| b == boot && s == start)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The job described by a compiled spec.
struct Plan {
    job: Job,
    timeout: Option<Duration>,
    max_retries: u32,
    stdout_metrics: bool,
    is_service: bool,
    notes: Vec<String>,
}

fn quantity_text(q: &polyaxonfile::spec::k8s::Quantity) -> String {
    q.0.clone()
}

fn plan(
    op: &polyaxonfile::CompiledOperation,
    r: &RunRef,
    code_dir: &Path,
    dir: &Path,
    in_image: bool,
    on_cluster: bool,
) -> Result<Plan> {
    use polyaxonfile::spec::Run;
    // Distributed runs describe their containers per replica (the manifests read them).
    static NO_CONTAINER: std::sync::LazyLock<polyaxonfile::spec::Container> =
        std::sync::LazyLock::new(Default::default);
    let Some(run) = &op.run else {
        return Err(UserError::new("the run's spec has no `run` section").into());
    };
    let (container, is_service, ports) = match run {
        Run::Job(j) => (j.container.as_ref(), false, vec![]),
        Run::Service(s) => (
            s.container.as_ref(),
            true,
            s.ports
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| u16::try_from(p).ok())
                .collect(),
        ),
        Run::TfJob(_) | Run::PytorchJob(_) | Run::MpiJob(_) if on_cluster => (None, false, vec![]),
        other => {
            return Err(UserError::new(format!(
                "`run.kind: {}` needs a cluster: this executor runs `job` and `service`",
                run_kind(other)
            ))
            .hint("run it with `--executor kubernetes` against a cluster")
            .into());
        }
    };
    let Some(c) = container.or(on_cluster.then_some(&NO_CONTAINER)) else {
        return Err(UserError::new("the run's spec has no `run.container`").into());
    };
    let mut argv: Vec<String> = c.command.clone().unwrap_or_default();
    let command_len = argv.len();
    argv.extend(c.args.clone().unwrap_or_default());
    if argv.is_empty() && !in_image {
        return Err(UserError::new("the container has no `command` (the process executor cannot use an image's entrypoint)")
            .hint("give `run.container.command`, e.g. `command: [python3, train.py]`")
            .into());
    }
    let mut notes = Vec::new();
    let mut env: Vec<(String, String)> = Vec::new();
    for e in c.env.iter().flatten() {
        match (&e.value, &e.value_from) {
            (_, Some(_)) => notes.push(format!(
                "env `{}` comes from a secret or config map, which only a cluster has: not set",
                e.name
            )),
            (v, None) => env.push((e.name.clone(), v.clone().unwrap_or_default())),
        }
    }
    // Inputs with `toEnv` become environment variables.
    for io in op
        .inputs
        .iter()
        .flatten()
        .chain(op.outputs.iter().flatten())
    {
        if let (Some(var), Some(v)) = (&io.to_env, &io.value) {
            let text = match v {
                J::String(s) => s.clone(),
                other => other.to_string(),
            };
            env.push((var.clone(), text));
        }
    }
    let workdir = match c.working_dir.as_deref().filter(|w| !w.trim().is_empty()) {
        None => code_dir.to_path_buf(),
        Some(w) if Path::new(w).is_absolute() => {
            if in_image || Path::new(w).is_dir() {
                PathBuf::from(w)
            } else {
                notes.push(format!(
                    "`workingDir: {w}` is a path inside an image; the process runs in the code directory"
                ));
                code_dir.to_path_buf()
            }
        }
        Some(w) => code_dir.join(w),
    };
    let stdout_metrics = env
        .iter()
        .any(|(k, v)| k == STDOUT_METRICS_ENV && crate::settings::parse_bool(v) == Some(true));
    let limits = c
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .map(|l| {
            l.iter()
                .map(|(k, q)| (k.clone(), quantity_text(q)))
                .collect()
        })
        .unwrap_or_default();
    let termination = op.termination.as_ref();
    Ok(Plan {
        job: Job {
            uuid: r.uuid.clone(),
            argv,
            command_len,
            env,
            workdir,
            image: c.image.clone(),
            run_dir: dir.to_path_buf(),
            ports,
            limits,
            labels: vec![
                ("app.kubernetes.io/instance".into(), r.uuid.clone()),
                ("operation.polyaxon.com/uuid".into(), r.uuid.clone()),
                ("operation.polyaxon.com/owner".into(), r.owner.clone()),
                ("operation.polyaxon.com/project".into(), r.project.clone()),
                ("operation.polyaxon.com/kind".into(), run_kind(run).into()),
            ],
            ..Default::default()
        },
        timeout: termination
            .and_then(|t| t.timeout)
            .filter(|t| *t > 0)
            .map(|t| Duration::from_secs(t as u64)),
        max_retries: termination
            .and_then(|t| t.max_retries)
            .unwrap_or(0)
            .clamp(0, 100) as u32,
        stdout_metrics,
        is_service,
        notes,
    })
}

fn run_kind(r: &polyaxonfile::spec::Run) -> &'static str {
    use polyaxonfile::spec::Run;
    match r {
        Run::Job(_) => "job",
        Run::Service(_) => "service",
        Run::Dag(_) => "dag",
        Run::TfJob(_) => "tfjob",
        Run::PytorchJob(_) => "pytorchjob",
        Run::MpiJob(_) => "mpijob",
        Run::RayCluster(_) => "raycluster",
        Run::DaskCluster(_) => "daskcluster",
    }
}

/// Calls for the run this supervisor owns.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) client: Arc<Client>,
    pub(crate) r: RunRef,
    /// `meta_info.executor` as last written (patches of `meta_info` replace whole keys).
    executor: Arc<std::sync::Mutex<Map<String, J>>>,
}

impl Api {
    fn path(&self, rest: &str) -> String {
        format!(
            "/api/v1/{}/{}/runs/{}{rest}",
            crate::client::seg(&self.r.owner),
            crate::client::seg(&self.r.project),
            crate::client::seg(&self.r.uuid)
        )
    }

    fn streams(&self, rest: &str) -> String {
        format!(
            "/streams/v1/polyaxon/{}/{}/runs/{}{rest}",
            crate::client::seg(&self.r.owner),
            crate::client::seg(&self.r.project),
            crate::client::seg(&self.r.uuid)
        )
    }

    /// Adds a status; false when the run may not take it (it was stopped meanwhile).
    pub(crate) async fn status(
        &self,
        kind: &str,
        reason: &str,
        message: &str,
        meta: Option<J>,
    ) -> Result<bool> {
        let body = json!({"condition": {"type": kind, "status": "True", "reason": reason, "message": message, "meta_info": meta}});
        match self
            .client
            .json::<V1Status>(Method::POST, &self.path("/statuses"), Some(&body))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(http::StatusCode::CONFLICT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn current(&self) -> Result<V1Run> {
        Ok(self.client.get_run(&self.r).await?)
    }

    /// Adds fields to `meta_info.executor`.
    async fn record_executor(&self, fields: J) -> Result<()> {
        let all = {
            let mut m = self.executor.lock().expect("not poisoned");
            if let J::Object(f) = fields {
                m.extend(f);
            }
            J::Object(m.clone())
        };
        self.patch_meta(json!({ "executor": all })).await
    }

    async fn patch_meta(&self, meta: J) -> Result<()> {
        let _: V1Run = self
            .client
            .json(
                Method::PATCH,
                &self.path(""),
                Some(&json!({"meta_info": meta, "merge": true})),
            )
            .await?;
        Ok(())
    }

    /// A line of the executor's own in the run's logs (best effort).
    pub(crate) async fn log(&self, text: String) {
        let _ = self
            .append_logs(&[V1Log {
                timestamp: Some(polyaxon_server::api::time(executor::now_micros())),
                node: None,
                pod: None,
                container: Some("polyaxon".into()),
                value: text,
            }])
            .await;
    }

    async fn append_logs(&self, logs: &[V1Log]) -> Result<()> {
        self.client
            .call(
                Method::POST,
                &self.streams("/logs"),
                Some((
                    serde_json::to_vec(&json!({"logs": logs}))?.into(),
                    "application/json",
                )),
            )
            .await?;
        Ok(())
    }

    async fn ingest(&self, id: &str, series: &SeriesPts) -> Result<()> {
        let metrics: Vec<J> = series
            .iter()
            .map(|(name, pts)| {
                json!({
                    "name": name,
                    "step": pts.iter().map(|p| p.0).collect::<Vec<_>>(),
                    "timestamp": pts.iter().map(|p| p.1.clone()).collect::<Vec<_>>(),
                    "value": pts.iter().map(|p| p.2).collect::<Vec<_>>(),
                })
            })
            .collect();
        let _: J = self
            .client
            .json(
                Method::POST,
                &self.streams("/metrics"),
                Some(&json!({"id": id, "metrics": metrics})),
            )
            .await?;
        Ok(())
    }
}

/// A line without the `[pod/container] ` a cluster run's logs are prefixed with when it has
/// several containers (their metrics count like any other line's).
fn without_source(line: &str) -> &str {
    match line.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((source, rest)) if source.contains('/') && !source.contains(' ') => rest,
        _ => line,
    }
}

/// This process's execution: its pid and start time.
fn execution_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{}.{nanos}", std::process::id())
    })
}

/// Turns `step=3 loss=0.25 acc=0.9` (spaces or commas between pairs) into a step and metrics;
/// `None` unless every token is `name=number`.
pub fn parse_metric_line(line: &str) -> Option<MetricLine> {
    let mut step = None;
    let mut out = Vec::new();
    for tok in line.split([' ', ',', '\t']).filter(|t| !t.is_empty()) {
        let (k, v) = tok.split_once('=')?;
        let k = k.trim();
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
        {
            return None;
        }
        if k == "step" {
            step = Some(v.trim().parse::<i64>().ok()?);
            continue;
        }
        let x: f64 = v.trim().parse().ok()?;
        if !x.is_finite() {
            return None;
        }
        out.push((k.to_string(), x));
    }
    (!out.is_empty()).then_some((step, out))
}

/// Reads new complete lines of the job's metric event files (`events/metric/<name>.plx`)
/// since the last call (`at_end`: the last line without its newline too).
struct PlxTail {
    dir: PathBuf,
    offsets: BTreeMap<String, u64>,
}

impl PlxTail {
    fn read(&mut self, at_end: bool) -> Vec<(String, u64, Vec<Pt>)> {
        let mut out = Vec::new();
        for c in polyaxon_server::eventfiles::read_new(&self.dir, &self.offsets, at_end) {
            self.offsets.insert(c.name.clone(), c.end);
            if !c.points.is_empty() {
                let pts = c
                    .points
                    .into_iter()
                    .map(|(step, ts, v)| (step, J::String(ts), v))
                    .collect();
                out.push((c.name, c.start, pts));
            }
        }
        out
    }
}

/// For jobs on a cluster: has the server ingest the metric event files the pods write into the
/// artifacts store it shares with them, every 2 s, then once more with the last lines. The
/// server keeps how far it read, so repeated and retried calls never count a point twice.
async fn sync_events(api: Api, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut warned = false;
    loop {
        let at_end = *stop.borrow();
        let path = crate::client::with_query(
            &api.streams("/events/sync"),
            &[("last", at_end.to_string())],
        );
        for i in 0..if at_end { 20 } else { 1 } {
            match api.client.json::<J>(Method::POST, &path, None::<&J>).await {
                Ok(_) => break,
                // Refused (an older server, no permission): asking again will not help.
                Err(e) if e.status().is_some_and(|s| s.is_client_error()) => {
                    eprintln!("warning: the run's metric event files are not ingested: {e:#}");
                    return;
                }
                Err(e) if !warned || (at_end && i == 19) => {
                    warned = true;
                    eprintln!("warning: the run's metric event files could not be ingested: {e:#}");
                }
                Err(_) => {}
            }
            if at_end {
                tokio::time::sleep(Duration::from_millis(100 * (i + 1))).await;
            }
        }
        if at_end {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Appends a point to a resource series file in upstream's format.
fn append_resource(dir: &Path, name: &str, value: f64) {
    use std::io::Write;
    let path = dir.join(format!("{name}.plx"));
    let new = !path.exists();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let ts = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%S%.6f+00:00");
        if new {
            let _ = write!(f, "step|timestamp|metric");
        }
        let _ = write!(f, "\n|{ts}|{value}");
    }
}

/// Runs `r` to its end. Returns how it ended.
/// `client` is opened without reaping orphans: a run being started is not one, and
/// start-up time counts.
pub async fn execute(
    ctx: &Ctx,
    client: crate::client::Client,
    r: &RunRef,
    executor_name: &str,
) -> Result<Outcome> {
    let client = Arc::new(client);
    let api = Api {
        client: client.clone(),
        r: r.clone(),
        executor: Default::default(),
    };
    let run = api.current().await?;
    crate::timing::mark("execute: run read");
    let status = run.status.clone().unwrap_or_default();
    if !STARTABLE.contains(&status.as_str()) {
        return Err(UserError::new(format!(
            "run `{}` is {status}: only a run that has not started (or is resuming) can be executed",
            r.uuid
        ))
        .hint("`polyaxon ops restart` runs it again as a new run; `polyaxon ops resume` continues it")
        .into());
    }
    let executor_name = crate::settings::executor_name(executor_name).unwrap_or(executor_name);
    let connected: Result<Box<dyn executor::Executor>> = match executor_name {
        "process" => Ok(Box::new(executor::process::Process)),
        "docker" => executor::docker::Docker::connect()
            .await
            .map(|docker| Box::new(executor::docker::DockerExecutor { docker }) as _),
        "kubernetes" => {
            let ks = executor::kubernetes::KubeSettings::from_env();
            executor::kubernetes::connect(ks.context.as_deref(), ks.namespace.as_deref())
                .await
                .map(|(client, namespace)| {
                    Box::new(executor::kubernetes::Kubernetes {
                        client,
                        context: ks.context.clone(),
                        namespace,
                        settings: ks.manifests,
                    }) as _
                })
        }
        other => {
            return Err(UserError::new(format!("`{other}` is not an executor here"))
                .hint("use `process`, `docker` or `kubernetes`")
                .into());
        }
    };
    let executor = match connected {
        Ok(e) => e,
        Err(e) => {
            let _ = api
                .status("failed", "ExecutorUnavailable", &said(&e), None)
                .await;
            return Err(e);
        }
    };
    // Claim the run (who supervises it, so that a dead supervisor is noticed later) and queue
    // it, while the spec compiles and the code is written out; done before the job starts.
    let me = std::process::id();
    let (boot, start) = process_identity(me).unwrap_or_default();
    let claim = {
        let api = api.clone();
        let kind = executor.name();
        let mut claim = executor.placement();
        claim.extend(
            json!({"kind": kind, "host": hostname(), "pid": me, "boot_id": boot, "start": start})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let queue = status == "created";
        tokio::spawn(async move {
            api.record_executor(J::Object(claim)).await?;
            if queue {
                api.status(
                    "queued",
                    "PolyaxonRunQueued",
                    &format!("queued for the {kind} executor"),
                    None,
                )
                .await?;
            }
            Ok::<(), anyhow::Error>(())
        })
    };

    let root = context_root(&ctx.settings);
    let dir = run_dir(&ctx.settings, &r.uuid);
    for sub in [
        "outputs",
        "events/metric",
        "resources/metric",
        "assets",
        "plxlogs",
    ] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating `{}`", dir.join(sub).display()))?;
    }

    let result = supervise(ctx, &api, &run, executor.as_ref(), &root, &dir, claim).await;
    match result {
        Ok(o) => Ok(o),
        Err(e) => {
            // Whatever went wrong, the run does not stay "running".
            let msg = format!("{e:#}");
            let _ = api.status("failed", "ExecutorError", &msg, None).await;
            Err(e)
        }
    }
}

async fn supervise(
    ctx: &Ctx,
    api: &Api,
    run: &V1Run,
    executor: &dyn executor::Executor,
    root: &Path,
    dir: &Path,
    claim: tokio::task::JoinHandle<Result<()>>,
) -> Result<Outcome> {
    let r = &api.r;
    let content = run
        .content
        .clone()
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| UserError::new(format!("run `{}` has no spec to execute", r.uuid)))?;
    // Paths as the job sees them (the same on this machine's processes; under
    // `/plx-context` in a container).
    let job_root = executor.job_root(root);
    let job_dir = job_root.join("artifacts").join(&r.uuid);
    let opts = polyaxonfile::Options {
        globals: Some(globals(r, run, &job_root, &job_dir)),
        preset_dirs: crate::settings::preset_dirs(),
        hub_dirs: crate::settings::hub_dirs(),
        ..Default::default()
    };
    let mut session = polyaxonfile::Session::new();
    let report =
        polyaxonfile::check_text(&mut session, &format!("run {}", r.uuid), &content, &opts)
            .map_err(|d| {
                UserError::new(format!(
                    "the run's spec does not compile:\n{}",
                    d.render(&session.sources, false)
                ))
            })?;
    let compiled = report.compiled.context("compiled")?;
    crate::timing::mark("execute: compiled");
    if compiled.skipped {
        api.status(
            "skipped",
            "ConditionsFalse",
            "the run's `conditions` are false",
            None,
        )
        .await?;
        return Ok(Outcome::Stopped("skipped".into()));
    }
    // A search: this run drives its trials.
    if let Some(m) = &compiled.operation.matrix {
        claim.await.context("claiming the run")??;
        return crate::scheduler::drive::drive(ctx, api, run, m, executor.name()).await;
    }

    // The code: the snapshot written out, or the directory the run was started from.
    let meta = run.meta_info.clone().unwrap_or_default();
    let code_dir = prepare_code(&meta, dir)?;
    crate::timing::mark("execute: code written");
    let in_image = executor.name() != "process";
    let on_cluster = executor.name() == "kubernetes";
    let job_code_dir = if in_image {
        match code_dir.strip_prefix(dir) {
            Ok(rel) => job_dir.join(rel),
            // Run from its directory (no git): the container sees it mounted at `code/`.
            Err(_) => job_dir.join("code"),
        }
    } else {
        code_dir.clone()
    };
    let mut plan = plan(
        &compiled.operation,
        r,
        &job_code_dir,
        dir,
        in_image,
        on_cluster,
    )?;
    if on_cluster {
        // The cluster retries (backoffLimit) and enforces the deadline (activeDeadlineSeconds).
        plan.max_retries = 0;
        plan.timeout = None;
        plan.job.spec = Some(Arc::new(compiled.operation.clone()));
        plan.job.owner = r.owner.clone();
        plan.job.project = r.project.clone();
        plan.job.name = run.name.clone();
    } else if in_image {
        plan.job.mounts.push((dir.to_path_buf(), job_dir.clone()));
        if !code_dir.starts_with(dir) {
            plan.job
                .mounts
                .push((code_dir.clone(), job_dir.join("code")));
        }
        plan.job.user = Some(format!(
            "{}:{}",
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw()
        ));
    }
    // An image to build first (docker), or a note that there is none here (process).
    let dockerfile = build_source(&compiled.operation, &code_dir)?;
    match (&dockerfile, executor.name()) {
        (Some(_), "process") => plan.notes.push(
            "the image described by `init.dockerfile` is built by `--executor docker`; the process executor runs on this machine as it is".into(),
        ),
        (Some(text), "kubernetes") => {
            // Known before the build, so a missing registry or broken login fails fast.
            let registry = push_registry()?;
            let auth = crate::registry::credentials(&registry.host)?;
            crate::registry::engine_socket()?;
            let local = build_image(api, text, &code_dir, &compiled.operation).await?;
            plan.job.image = Some(push_image(api, &local, &registry, auth.as_ref()).await?);
            plan.job.image_built = true;
            if auth.is_some()
                && executor::kubernetes::KubeSettings::from_env()
                    .manifests
                    .image_pull_secrets
                    .is_empty()
            {
                plan.notes.push(format!(
                    "the image was pushed with credentials: pods pull it only with a pull secret for {} (POLYAXON_K8S_IMAGE_PULL_SECRETS, `environment.imagePullSecrets`, or the namespace's service account)",
                    registry.host
                ));
            }
        }
        (Some(text), "docker") => {
            let tag = build_image(api, text, &code_dir, &compiled.operation).await?;
            plan.job.image = Some(tag);
        }
        _ => {}
    }
    if meta.get("stdout_metrics").and_then(J::as_bool) == Some(true) {
        plan.stdout_metrics = true;
    }

    // The API for the job: the server itself (remote), or this process serving the embedded
    // store on a local port.
    let kube_host = on_cluster
        .then(|| executor::kubernetes::KubeSettings::from_env().api_host)
        .flatten();
    if on_cluster && kube_host.is_none() && ctx.settings.host.is_none() {
        return Err(UserError::new(
            "the kubernetes executor needs a server its pods can reach; this CLI uses the embedded store",
        )
        .hint("deploy one (`polyaxon admin deploy`) and `polyaxon config set --host URL`, or set POLYAXON_K8S_API_HOST")
        .into());
    }
    let host = match (
        kube_host.as_ref().or(ctx.settings.host.as_ref()),
        api.client.embedded_app(),
    ) {
        (Some(h), _) => h.clone(),
        (None, Some(app)) => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("opening a local port for the job's API")?;
            let addr = listener.local_addr()?;
            let app = app.clone();
            tokio::spawn(async move {
                let _ = polyaxon_server::serve(listener, app, std::future::pending()).await;
            });
            format!("http://{addr}")
        }
        (None, None) => anyhow::bail!("the embedded store is not open"),
    };
    crate::timing::mark("execute: api served");
    let token: V1Auth = api
        .client
        .json(Method::POST, &api.path("/impersonate"), None::<&()>)
        .await?;
    let mut env = contract_env(r, &host, Some(&token.token), &job_root, &job_dir, &compiled);
    // What the user set wins over the contract, as in a container.
    if on_cluster {
        // The manifests carry the container's own env (with its `valueFrom`s) after these.
        plan.job.env = env;
        if code_dir.starts_with(dir) || meta.get("cwd").is_some() {
            upload_code(api, &code_dir).await?;
            plan.job.uploaded_code = true;
        }
    } else {
        let user_keys: Vec<String> = plan.job.env.iter().map(|(k, _)| k.clone()).collect();
        env.retain(|(k, _)| !user_keys.contains(k));
        env.append(&mut plan.job.env);
        plan.job.env = env;
    }

    for n in &plan.notes {
        eprintln!("note: {n}");
    }
    claim.await.context("claiming the run")??;
    crate::timing::mark("execute: claimed");
    let mut attempt = 0u32;
    loop {
        let outcome = attempt_once(api, executor, &plan, dir, attempt).await?;
        match &outcome {
            Outcome::Failed(why) if attempt < plan.max_retries => {
                attempt += 1;
                let msg = format!("{why}; retry {attempt} of {}", plan.max_retries);
                if !api
                    .status(
                        "retrying",
                        "ExecutorRetrying",
                        &msg,
                        Some(json!({"attempt": attempt})),
                    )
                    .await?
                {
                    return Ok(Outcome::Stopped("stopped".into()));
                }
                continue;
            }
            _ => return Ok(outcome),
        }
    }
}

/// The env contract of a job (what upstream's agent gives a run's containers).
pub fn contract_env(
    r: &RunRef,
    host: &str,
    token: Option<&str>,
    job_root: &Path,
    job_dir: &Path,
    compiled: &polyaxonfile::Compiled,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("POLYAXON_HOST".to_string(), host.to_string()),
        ("POLYAXON_IS_MANAGED".into(), "true".into()),
        ("POLYAXON_API_VERSION".into(), "v1".into()),
        (
            "POLYAXON_RUN_INSTANCE".into(),
            format!("{}.{}.runs.{}", r.owner, r.project, r.uuid),
        ),
        (
            "POLYAXON_CONTEXT_ROOT".into(),
            job_root.display().to_string(),
        ),
        (
            "POLYAXON_ARTIFACTS_ROOT".into(),
            job_root.join("artifacts").display().to_string(),
        ),
        (
            "POLYAXON_RUN_ARTIFACTS_PATH".into(),
            job_dir.display().to_string(),
        ),
        (
            "POLYAXON_RUN_OUTPUTS_PATH".into(),
            job_dir.join("outputs").display().to_string(),
        ),
        ("POLYAXON_COLLECT_ARTIFACTS".into(), "true".into()),
        // This supervisor samples CPU and memory itself.
        ("POLYAXON_COLLECT_RESOURCES".into(), "false".into()),
        // POLYAXON_HAS_PROCESS_SIDECAR stays unset: this supervisor is the sidecar (the
        // library reads any value, even "false", as yes, and its own sidecar thread needs
        // pandas and would post the same summaries again).
        ("POLYAXON_HEADER".into(), "X-POLYAXON-SERVICE".into()),
        ("POLYAXON_HEADER_SERVICE".into(), "runner".into()),
        (
            "POLYAXON_LOG_LEVEL".into(),
            compiled
                .operation
                .plugins
                .as_ref()
                .and_then(|p| p.log_level.clone())
                .unwrap_or_else(|| "INFO".into()),
        ),
        ("PYTHONUNBUFFERED".into(), "1".into()),
    ];
    // v0.6 jobs read their params from POLYAXON_PARAMS.
    let params: Map<String, J> = compiled
        .values
        .iter()
        .filter(|v| !v.is_output)
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    env.push(("POLYAXON_PARAMS".into(), J::Object(params).to_string()));
    if let Some(t) = token {
        env.insert(1, ("POLYAXON_AUTH_TOKEN".into(), t.to_string()));
    }
    env
}

/// The manifests `--executor kubernetes` would submit for a spec, without a cluster or a run
/// (`polyaxon run --dry-run`): the token is a placeholder, the code an upload.
pub fn dry_run(
    ctx: &Ctx,
    content: &str,
    r: &RunRef,
    name: Option<&str>,
) -> Result<executor::kubernetes::manifests::Manifests> {
    use executor::kubernetes as k8s;
    let ks = k8s::KubeSettings::from_env();
    let job_root = PathBuf::from(k8s::manifests::CONTEXT_ROOT);
    let job_dir = job_root.join("artifacts").join(&r.uuid);
    let run = V1Run {
        uuid: Some(r.uuid.clone()),
        name: name.map(str::to_string),
        created_at: Some(polyaxon_server::api::time(executor::now_micros())),
        ..Default::default()
    };
    let opts = polyaxonfile::Options {
        globals: Some(globals(r, &run, &job_root, &job_dir)),
        preset_dirs: crate::settings::preset_dirs(),
        hub_dirs: crate::settings::hub_dirs(),
        ..Default::default()
    };
    let mut session = polyaxonfile::Session::new();
    let report = polyaxonfile::check_text(&mut session, "the polyaxonfile", content, &opts)
        .map_err(|d| {
            UserError::new(format!(
                "the spec does not compile:\n{}",
                d.render(&session.sources, false)
            ))
        })?;
    let compiled = report.compiled.context("compiled")?;
    if compiled.operation.matrix.is_some() {
        return Err(UserError::new(
            "a search has no manifests of its own: each trial gets its own when it starts",
        )
        .hint("print one trial's: remove `matrix` and pass its values with `-P`")
        .into());
    }
    let plan = plan(
        &compiled.operation,
        r,
        &job_dir.join("code"),
        &job_dir,
        true,
        true,
    )?;
    let host = ks
        .api_host
        .clone()
        .or_else(|| ctx.settings.host.clone())
        .unwrap_or_else(|| crate::deploy::IN_CLUSTER_API.to_string());
    let env = contract_env(r, &host, None, &job_root, &job_dir, &compiled);
    let namespace = ks
        .namespace
        .clone()
        .or_else(k8s::kubeconfig_namespace)
        .unwrap_or_else(|| "default".into());
    let job = Job {
        uuid: r.uuid.clone(),
        spec: Some(Arc::new(compiled.operation.clone())),
        name: name
            .map(str::to_string)
            .or_else(|| compiled.operation.name.clone()),
        owner: r.owner.clone(),
        project: r.project.clone(),
        env,
        uploaded_code: true,
        ..plan.job
    };
    let mut job = job;
    let mut notes = vec![];
    if describes_image(&compiled.operation) {
        let registry = push_registry()?;
        let (repo, _) = registry.target(&image_name(&compiled.operation));
        job.image = Some(format!("{repo}:{DRY_RUN_TAG}"));
        job.image_built = true;
        notes.push(format!(
            "the image is built and pushed to `{}` when the run starts; pods run it by digest, tagged with a hash of the build's inputs",
            registry.host
        ));
    }
    let mut m = k8s::build_manifests(&job, &namespace, &ks.manifests, false)?;
    m.notes.extend(notes);
    m.notes.extend(
        plan.notes
            .into_iter()
            .filter(|n| !n.contains("secret or config map")),
    );
    Ok(m)
}

/// The tag a dry run shows for an image built when the run starts.
pub const DRY_RUN_TAG: &str = "built-when-the-run-starts";

/// An error as one line for a status: a user error's message and hint, else the chain.
pub(crate) fn said(e: &anyhow::Error) -> String {
    match e.downcast_ref::<UserError>() {
        Some(u) => match &u.hint {
            Some(h) => format!("{}; {h}", u.message),
            None => u.message.clone(),
        },
        None => format!("{e:#}"),
    }
}

/// Sends the run's code to its artifacts (`code/`), where its pods' init step fetches it.
async fn upload_code(api: &Api, code_dir: &Path) -> Result<()> {
    let packed = crate::upload::pack(code_dir, None)
        .with_context(|| format!("packing the code in `{}`", code_dir.display()))?;
    let path = crate::client::with_query(
        &api.path("/artifacts/upload"),
        &[
            ("path", "code".to_string()),
            ("untar", "true".into()),
            ("overwrite", "true".into()),
        ],
    );
    api.client
        .call(
            Method::POST,
            &path,
            Some((bytes::Bytes::from(packed.bytes), "application/gzip")),
        )
        .await
        .context("uploading the code for the cluster")?;
    api.log(format!(
        "code uploaded for the cluster: {} files ({} bytes)",
        packed.files, packed.size
    ))
    .await;
    Ok(())
}

/// The Dockerfile to build the job's image from: generated from `init: [{dockerfile: …}]`,
/// or the file a `build` section names (`params.dockerfile`).
fn build_source(op: &polyaxonfile::CompiledOperation, code_dir: &Path) -> Result<Option<String>> {
    use polyaxonfile::spec::Run;
    let init = match &op.run {
        Some(Run::Job(j)) => j.init.as_ref(),
        Some(Run::Service(s)) => s.init.as_ref(),
        _ => None,
    };
    if let Some(d) = init
        .into_iter()
        .flatten()
        .find_map(|i| i.dockerfile.as_ref())
    {
        return Ok(Some(crate::build::dockerfile_of(d)));
    }
    if let Some(b) = &op.build {
        let named = b
            .params
            .as_ref()
            .and_then(|p| p.get("dockerfile"))
            .and_then(|p| p.value.as_ref())
            .and_then(J::as_str)
            .map(str::to_string);
        let path = code_dir.join(named.as_deref().unwrap_or("Dockerfile"));
        return match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) => Err(UserError::new(format!(
                "the `build` section's Dockerfile `{}` cannot be read: {e}",
                path.display()
            ))
            .into()),
        };
    }
    Ok(None)
}

/// Against a server: the files of the run written on this machine (outputs, assets, system
/// metrics, events) sent to it, in batches, so `ops artifacts` there has them; logs, metrics
/// and the code went by the API already. A failure is said in the run's logs (the files stay
/// here); it does not fail the run.
async fn sync_artifacts(api: &Api, dir: &Path) {
    if api.client.is_embedded() {
        return;
    }
    const BATCH: u64 = 64 << 20;
    const LARGEST: u64 = 2 << 30;
    let ignore = crate::upload::Ignore::parse("/code/\n/plxlogs/\n/.code-snapshot\n");
    let files = match tokio::task::block_in_place(|| crate::upload::list_files(dir, &ignore)) {
        Ok((f, _)) => f,
        Err(e) => {
            api.log(format!(
                "the run's files were not sent to the server: {e:#}"
            ))
            .await;
            return;
        }
    };
    let (files, too_big): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| f.size <= LARGEST);
    for f in &too_big {
        api.log(format!(
            "`{}` ({}) is too large to send to the server; it is kept at `{}`",
            f.rel,
            crate::commands::ops::artifacts::human_bytes(f.size),
            f.path.display()
        ))
        .await;
    }
    let mut batches: Vec<Vec<crate::upload::Found>> = Vec::new();
    let mut size = 0;
    for f in files {
        if batches.is_empty() || size + f.size > BATCH {
            batches.push(Vec::new());
            size = 0;
        }
        size += f.size;
        batches.last_mut().expect("a batch").push(f);
    }
    let path = crate::client::with_query(
        &api.r.api("/artifacts/upload"),
        &[("untar", "true".into()), ("overwrite", "true".into())],
    );
    let (mut sent, mut bytes) = (0usize, 0u64);
    for batch in batches.iter().filter(|b| !b.is_empty()) {
        let res = match tokio::task::block_in_place(|| crate::upload::pack_files(batch)) {
            Ok(p) => api
                .client
                .call(
                    Method::POST,
                    &path,
                    Some((p.bytes.into(), "application/gzip")),
                )
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            api.log(format!(
                    "some of the run's files were not sent to the server ({e:#}); they are kept at `{}`",
                    dir.display()
                ),
            )
            .await;
            return;
        }
        sent += batch.len();
        bytes += batch.iter().map(|f| f.size).sum::<u64>();
    }
    if sent > 0 {
        api.log(format!(
            "sent the run's {sent} files ({}) to the server",
            crate::commands::ops::artifacts::human_bytes(bytes)
        ))
        .await;
    }
}

/// Builds (or finds) the job's image, its output stored as the run's logs.
async fn build_image(
    api: &Api,
    dockerfile: &str,
    code_dir: &Path,
    op: &polyaxonfile::CompiledOperation,
) -> Result<String> {
    let docker = executor::docker::Docker::connect().await?;
    let spec = crate::build::BuildSpec {
        dockerfile: dockerfile.to_string(),
        context: code_dir.to_path_buf(),
        name: image_name(op),
    };
    api.status("starting", "ImageBuilding", "building the image", None)
        .await?;
    let (tx, rx) = mpsc::channel(1024);
    let pump = tokio::spawn(pump_logs(api.clone(), Some(rx), false, 0, Some("build")));
    let built = docker.build(&spec, &tx).await;
    drop(tx);
    let _ = pump.await;
    let (tag, fresh) = built?;
    let msg = if fresh {
        format!("built the image `{tag}`")
    } else {
        format!("the image `{tag}` is up to date (nothing changed since it was built)")
    };
    api.append_logs(&[V1Log {
        timestamp: Some(polyaxon_server::api::time(executor::now_micros())),
        node: None,
        pod: None,
        container: Some("build".into()),
        value: msg,
    }])
    .await?;
    Ok(tag)
}

/// The local name of the image built for `op` (without its tag).
fn image_name(op: &polyaxonfile::CompiledOperation) -> String {
    let base: String = op
        .name
        .as_deref()
        .unwrap_or("job")
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("polyaxon/{base}")
}

/// Whether `op` describes an image to build (`init.dockerfile` or a `build` section).
fn describes_image(op: &polyaxonfile::CompiledOperation) -> bool {
    use polyaxonfile::spec::Run;
    let init = match &op.run {
        Some(Run::Job(j)) => j.init.as_ref(),
        Some(Run::Service(s)) => s.init.as_ref(),
        _ => None,
    };
    op.build.is_some() || init.into_iter().flatten().any(|i| i.dockerfile.is_some())
}

/// The registry a built image goes to for the cluster (`POLYAXON_K8S_REGISTRY`).
fn push_registry() -> Result<crate::registry::Registry> {
    use crate::registry::{PASSWORD_ENV, REGISTRY_ENV, USERNAME_ENV};
    crate::registry::Registry::from_env()?.ok_or_else(|| {
        UserError::new(
            "the image `init.dockerfile` (or `build`) describes must go to a registry the cluster pulls from, and none is configured",
        )
        .hint(format!(
            "set {REGISTRY_ENV} (e.g. `registry.example.com:5000/ml`) and log in with `docker login` or {USERNAME_ENV}/{PASSWORD_ENV}; or set `run.container.image` to an image the cluster can pull"
        ))
        .into()
    })
}

/// Pushes the built image `local` for the cluster; its progress goes to the run's logs.
/// Returns the image by digest.
async fn push_image(
    api: &Api,
    local: &str,
    registry: &crate::registry::Registry,
    auth: Option<&crate::registry::Auth>,
) -> Result<String> {
    let docker = executor::docker::Docker::connect().await?;
    let (repo, tag) = registry.target(local);
    api.status(
        "starting",
        "ImagePushing",
        &format!("pushing the image to {}", registry.host),
        None,
    )
    .await?;
    api.log(format!(
        "pushing `{repo}:{tag}` ({})",
        auth.map_or("no credentials".to_string(), |a| format!(
            "credentials from {}",
            a.source
        ))
    ))
    .await;
    let (tx, rx) = mpsc::channel(1024);
    let pump = tokio::spawn(pump_logs(api.clone(), Some(rx), false, 0, Some("build")));
    let pushed = crate::registry::push(&docker.api, local, &repo, &tag, auth, &tx).await;
    drop(tx);
    let _ = pump.await;
    pushed
}

/// The directory the job runs in: the run's code snapshot written out into the run directory
/// (kept between attempts and resumes), or the directory the run was started from when there
/// was no repository.
fn prepare_code(meta: &Map<String, J>, dir: &Path) -> Result<PathBuf> {
    let code = dir.join("code");
    if let Some(cr) = meta.get("code_ref") {
        let repo = cr.get("repo").and_then(J::as_str).unwrap_or("");
        let snap = cr.get("snapshot").and_then(J::as_str).unwrap_or("");
        let sub = cr.get("path").and_then(J::as_str).unwrap_or("");
        if !snap.is_empty() {
            // Written once; kept for retries and resumes (outputs may live beside it).
            let marker = dir.join(".code-snapshot");
            if std::fs::read_to_string(&marker)
                .ok()
                .as_deref()
                .map(str::trim)
                != Some(snap)
            {
                snapshot::checkout(Path::new(repo), snap, &code).with_context(|| {
                    format!("writing the run's code (snapshot {snap} of `{repo}`)")
                })?;
                std::fs::write(&marker, format!("{snap}\n"))?;
            }
            let wd = code.join(sub);
            std::fs::create_dir_all(&wd)?;
            return Ok(wd);
        }
    }
    match meta.get("cwd").and_then(J::as_str) {
        Some(cwd) if Path::new(cwd).is_dir() => Ok(PathBuf::from(cwd)),
        _ => {
            std::fs::create_dir_all(&code)?;
            Ok(code)
        }
    }
}

/// One start of the job, to its end.
async fn attempt_once(
    api: &Api,
    executor: &dyn executor::Executor,
    plan: &Plan,
    dir: &Path,
    attempt: u32,
) -> Result<Outcome> {
    crate::timing::mark("execute: starting the job");
    let mut handle: Box<dyn Handle> = match executor.start(&plan.job).await {
        Ok(h) => h,
        Err(e) => {
            let msg = said(&e);
            api.status("failed", "ExecutorStartFailed", &msg, None)
                .await?;
            return Ok(Outcome::Failed(msg));
        }
    };
    crate::timing::mark("execute: job started");
    let started = Instant::now();
    // The job is started before its statuses are written: they are records, and the job's
    // start should not wait for them.
    if !api
        .status(
            "starting",
            "ExecutorStarting",
            &format!("started on the {} executor", executor.name()),
            None,
        )
        .await?
    {
        handle.stop(Duration::from_secs(10)).await?;
        handle.cleanup().await?;
        return Ok(Outcome::Stopped("stopped before it started".into()));
    }
    let job_pid = handle.pid();
    if let Some(pid) = job_pid {
        let (boot, start) = process_identity(pid).unwrap_or_default();
        api.record_executor(json!({"job": handle.describe(), "job_pid": pid, "job_start": start, "job_boot_id": boot}))
            .await?;
    }
    // Executors that see where the job runs report its statuses themselves.
    let mut events = handle.events();
    let mut running_msg = format!("running ({})", handle.describe());
    if plan.is_service && !plan.job.ports.is_empty() {
        let urls: Vec<String> = plan
            .job
            .ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        running_msg = format!("serving at {}", urls.join(", "));
        if events.is_none() {
            // Where `polyaxon ops service` finds it (on a cluster: through its Service).
            api.record_executor(json!({ "urls": urls })).await?;
        }
    }
    let (first, first_reason) = if events.is_some() {
        running_msg = format!("submitted: {}", handle.describe());
        ("scheduled", "ExecutorSubmitted")
    } else {
        ("running", "ExecutorRunning")
    };
    if !api
        .status(
            first,
            first_reason,
            &running_msg,
            Some(json!({"attempt": attempt})),
        )
        .await?
    {
        handle.stop(Duration::from_secs(10)).await?;
        handle.cleanup().await?;
        return Ok(Outcome::Stopped("stopped".into()));
    }

    // Output lines → logs (and stdout metrics).
    let lines = handle.lines();
    let pump = tokio::spawn(pump_logs(
        api.clone(),
        lines,
        plan.stdout_metrics,
        attempt,
        None,
    ));
    // Event files → metrics.
    let (tail_stop_tx, tail_stop_rx) = tokio::sync::watch::channel(false);
    let tail = if executor.name() == "kubernetes" {
        // The pods write them into the artifacts store, when they share it with the server.
        let shared = executor::kubernetes::KubeSettings::from_env()
            .manifests
            .artifacts_claim
            .is_some();
        let (api, stop) = (api.clone(), tail_stop_rx.clone());
        tokio::spawn(async move {
            if shared {
                sync_events(api, stop).await;
            }
        })
    } else {
        tokio::spawn(tail_events(
            api.clone(),
            dir.join("events/metric"),
            tail_stop_rx.clone(),
        ))
    };
    let sampler = job_pid.map(|pid| {
        tokio::spawn(sample_resources(
            pid,
            dir.join("resources/metric"),
            tail_stop_rx,
        ))
    });

    let grace = Duration::from_secs(10);
    let mut stop_check = tokio::time::interval(Duration::from_millis(200));
    stop_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let deadline = plan.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut exit_code: Option<i32> = None;
    let mut failure_reason: Option<String> = None;
    let outcome = loop {
        tokio::select! {
            exit = handle.wait() => {
                let exit = exit?;
                exit_code = match exit {
                    executor::Exit::Code(c) => Some(c),
                    executor::Exit::Signal(s) => Some(128 + s),
                };
                break if exit.success() {
                    Outcome::Succeeded
                } else {
                    match handle.failure() {
                        Some((reason, message)) => {
                            failure_reason = Some(reason);
                            Outcome::Failed(message)
                        }
                        None => Outcome::Failed(exit.describe()),
                    }
                };
            }
            Some(ev) = async { match events.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                if !api.status(&ev.status, &ev.reason, &ev.message, Some(json!({"attempt": attempt}))).await? {
                    handle.stop(grace).await?;
                    break Outcome::Stopped("stopped on request".into());
                }
            }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                handle.stop(grace).await?;
                break Outcome::Failed(format!("timed out after {} s (termination.timeout)", plan.timeout.unwrap_or_default().as_secs()));
            }
            _ = stop_check.tick() => {
                if let Ok(cur) = api.current().await
                    && matches!(cur.status.as_deref(), Some("stopping") | Some("stopped"))
                {
                    handle.stop(grace).await?;
                    break Outcome::Stopped("stopped on request".into());
                }
            }
            _ = sigterm.recv() => {
                handle.stop(grace).await?;
                break Outcome::Stopped("the executor was terminated".into());
            }
            _ = sigint.recv() => {
                handle.stop(grace).await?;
                break Outcome::Stopped("interrupted".into());
            }
        }
    };
    handle.cleanup().await?;
    // Every line and every point is stored before the final status.
    let _ = pump.await;
    let _ = tail_stop_tx.send(true);
    let _ = tail.await;
    if let Some(s) = sampler {
        let _ = s.await;
    }
    let took = started.elapsed().as_secs_f64();
    let (kind, reason, msg) = match &outcome {
        Outcome::Succeeded => (
            "succeeded",
            "ExecutorSucceeded",
            format!("exit code 0 after {took:.1} s"),
        ),
        Outcome::Failed(why) => (
            "failed",
            failure_reason.as_deref().unwrap_or("ExecutorFailed"),
            why.clone(),
        ),
        Outcome::Stopped(why) => ("stopped", "ExecutorStopped", why.clone()),
    };
    if matches!(outcome, Outcome::Failed(_)) {
        // A retry, if any, records its own status; the failure is recorded either way.
        if attempt < plan.max_retries {
            return Ok(outcome);
        }
    }
    sync_artifacts(api, dir).await;
    api.status(
        kind,
        reason,
        &msg,
        Some(json!({"exit_code": exit_code, "attempt": attempt})),
    )
    .await?;
    Ok(outcome)
}

/// Stores the job's output as logs, in small batches (a line shows in `polyaxon logs` within
/// a few tens of milliseconds); with `stdout_metrics`, `name=value` lines become metrics too.
async fn pump_logs(
    api: Api,
    lines: Option<mpsc::Receiver<Line>>,
    stdout_metrics: bool,
    attempt: u32,
    container: Option<&'static str>,
) {
    let Some(mut rx) = lines else { return };
    let mut batch: Vec<V1Log> = Vec::new();
    let mut metrics: SeriesPts = BTreeMap::new();
    let mut seq = 0u64;
    let mut metric_batch = 0u64;
    let flush_every = Duration::from_millis(20);
    loop {
        let line = tokio::time::timeout(flush_every, rx.recv()).await;
        let closed = matches!(line, Ok(None));
        if let Ok(Some(l)) = line {
            seq += 1;
            if stdout_metrics
                && l.stream == Stream::Stdout
                && let Some((step, pts)) = parse_metric_line(without_source(&l.text))
            {
                let ts = J::from(l.at as f64 / 1e6);
                for (name, v) in pts {
                    metrics.entry(name).or_default().push((step, ts.clone(), v));
                }
            }
            batch.push(V1Log {
                timestamp: Some(polyaxon_server::api::time(l.at)),
                node: None,
                pod: None,
                container: match (container, l.stream) {
                    (Some(c), _) => Some(c.to_string()),
                    (None, Stream::Stderr) => Some("stderr".to_string()),
                    (None, Stream::Stdout) => None,
                },
                value: l.text,
            });
            if batch.len() < 2000 {
                continue;
            }
        }
        if !batch.is_empty() {
            // Retried until stored: no line is lost to a busy server.
            for i in 0..20 {
                match api.append_logs(&batch).await {
                    Ok(()) => break,
                    Err(e) if i == 19 => eprintln!(
                        "warning: {} log lines could not be stored: {e:#}",
                        batch.len()
                    ),
                    Err(_) => tokio::time::sleep(Duration::from_millis(100 * (i + 1))).await,
                }
            }
            batch.clear();
        }
        if !metrics.is_empty() {
            metric_batch += 1;
            // Unique to this execution (a resumed run prints its lines again from the start),
            // the same across retries of the batch.
            let id = format!("stdout-{}-{attempt}-{metric_batch}-{seq}", execution_id());
            for i in 0..20 {
                match api.ingest(&id, &metrics).await {
                    Ok(()) => break,
                    Err(e) if i == 19 => {
                        eprintln!("warning: stdout metrics could not be stored: {e:#}")
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100 * (i + 1))).await,
                }
            }
            metrics.clear();
        }
        if closed {
            break;
        }
    }
}

/// Ingests the job's metric event files as they grow, and what is left at the end. Each batch
/// is named by file and offset, so a retried batch is never counted twice.
async fn tail_events(api: Api, dir: PathBuf, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tail = PlxTail {
        dir,
        offsets: BTreeMap::new(),
    };
    loop {
        let at_end = *stop.borrow();
        let found = tail.read(at_end);
        for (name, offset, pts) in found {
            let id = format!("plx-{name}-{offset}");
            let series = BTreeMap::from([(name.clone(), pts)]);
            for i in 0..20 {
                match api.ingest(&id, &series).await {
                    Ok(()) => break,
                    Err(e) if i == 19 => {
                        eprintln!("warning: metric `{name}` could not be stored: {e:#}")
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100 * (i + 1))).await,
                }
            }
        }
        if at_end {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Samples the job's CPU (percent of one core) and resident memory (bytes) every few
/// seconds, summed over its process group, into `resources/metric/{cpu,memory}.plx`.
async fn sample_resources(pid: u32, dir: PathBuf, mut stop: tokio::sync::watch::Receiver<bool>) {
    let ticks = 100.0; // USER_HZ on Linux
    let page = 4096.0;
    let mut last: Option<(Instant, u64)> = None;
    let every = Duration::from_secs(2);
    loop {
        if let Some(members) = executor::process::group_members(pid) {
            let live: Vec<_> = members.iter().filter(|m| m.state != 'Z').collect();
            if !live.is_empty() {
                let cpu: u64 = live.iter().map(|m| m.cpu_ticks).sum();
                let rss: u64 = live.iter().map(|m| m.rss_pages).sum();
                let now = Instant::now();
                if let Some((t, c)) = last {
                    let secs = now.duration_since(t).as_secs_f64();
                    if secs > 0.0 {
                        let pct = (cpu.saturating_sub(c)) as f64 / ticks / secs * 100.0;
                        append_resource(&dir, "cpu", (pct * 10.0).round() / 10.0);
                    }
                }
                append_resource(&dir, "memory", rss as f64 * page);
                last = Some((now, cpu));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
    }
}

/// Marks failed the runs whose supervisor died (a killed terminal, a reboot), and ends what
/// their jobs left running. Called when the embedded store is opened.
pub async fn reap_orphans(app: &polyaxon_server::App) {
    let Ok(active) = app.store.active_runs().await else {
        return;
    };
    for (uuid, status, meta) in active {
        if let Some((to, reason, msg)) = orphan(&uuid, &status, &meta).await {
            let _ = app
                .store
                .add_status(&uuid, to, Some(reason), Some(&msg), None, true)
                .await;
        }
    }
}

/// The same against a server: this machine's runs in `project` whose supervisor died.
pub async fn reap_remote_orphans(client: &crate::client::Client, owner: &str, project: &str) {
    let q = crate::client::ListQuery {
        query: Some("status:queued|starting|running|stopping".into()),
        limit: Some(200),
        ..Default::default()
    };
    let Ok(list) = client.list_runs(owner, project, &q).await else {
        return;
    };
    for run in list.results {
        let (Some(uuid), Some(status), Some(meta)) = (run.uuid, run.status, run.meta_info) else {
            continue;
        };
        let Some((to, reason, msg)) = orphan(&uuid, &status, &meta).await else {
            continue;
        };
        let r = RunRef {
            owner: owner.to_string(),
            project: project.to_string(),
            uuid,
        };
        let _ = client
            .json::<J>(
                Method::POST,
                &r.api("/statuses"),
                Some(&json!({"condition": {"type": to, "status": "True", "reason": reason, "message": msg}})),
            )
            .await;
    }
}

/// For an active run supervised on this machine by a process that is gone: its job ended
/// (if it outlived the supervisor) and the status to record.
async fn orphan(
    uuid: &str,
    status: &str,
    meta: &Map<String, J>,
) -> Option<(&'static str, &'static str, String)> {
    let ex = meta.get("executor")?;
    let pid = ex.get("pid").and_then(J::as_u64).unwrap_or(0) as u32;
    let boot = ex.get("boot_id").and_then(J::as_str).unwrap_or("");
    let start = ex.get("start").and_then(J::as_u64).unwrap_or(0);
    let host = ex.get("host").and_then(J::as_str).unwrap_or("");
    if pid == 0 || host != hostname() || is_alive(pid, boot, start) {
        return None;
    }
    // The job may outlive its supervisor: end it too.
    if ex.get("kind").and_then(J::as_str) == Some("docker")
        && let Ok(d) = executor::docker::Docker::connect().await
    {
        d.remove(uuid).await;
    }
    if let Some(job) = ex.get("job_pid").and_then(J::as_u64) {
        let jb = ex.get("job_boot_id").and_then(J::as_str).unwrap_or("");
        let js = ex.get("job_start").and_then(J::as_u64).unwrap_or(0);
        if is_alive(job as u32, jb, js) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(job as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    // A stop was asked for and the job is gone: that is what was asked.
    let (to, reason) = if status == "stopping" {
        ("stopped", "ExecutorLostWhileStopping")
    } else {
        ("failed", "ExecutorLost")
    };
    Some((
        to,
        reason,
        format!("the process supervising the run (pid {pid}) ended without finishing it"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_metric_lines() {
        assert_eq!(
            parse_metric_line("step=3 loss=0.25, acc=0.9"),
            Some((Some(3), vec![("loss".into(), 0.25), ("acc".into(), 0.9)]))
        );
        assert_eq!(
            parse_metric_line("loss=1e-3"),
            Some((None, vec![("loss".into(), 0.001)]))
        );
        assert_eq!(parse_metric_line("epoch 3 loss=0.25"), None);
        // A cluster run's source prefix does not hide a metric line.
        assert_eq!(without_source("[worker-0/pytorch] loss=0.5"), "loss=0.5");
        assert_eq!(without_source("[epoch 3] loss=0.5"), "[epoch 3] loss=0.5");
        assert_eq!(without_source("loss=0.5"), "loss=0.5");
        assert_eq!(parse_metric_line("loss=abc"), None);
        assert_eq!(parse_metric_line("loss=nan"), None);
        assert_eq!(parse_metric_line(""), None);
        assert_eq!(parse_metric_line("step=1"), None);
    }

    #[test]
    fn event_files_are_read_once_and_whole_lines_only() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("loss.plx");
        std::fs::write(&f, "step|timestamp|metric\n0|2026-11-24 01:31:17.054180+00:00|1.0\n1|2026-11-24 01:31:17.1+00:00|0.5").unwrap();
        let mut t = PlxTail {
            dir: d.path().to_path_buf(),
            offsets: BTreeMap::new(),
        };
        let first = t.read(false);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].2.len(), 1, "the last line has no newline yet");
        assert_eq!(first[0].2[0].0, Some(0));
        assert!(t.read(false).is_empty());
        let end = t.read(true);
        assert_eq!(
            end[0].2,
            vec![(
                Some(1),
                J::String("2026-11-24 01:31:17.1+00:00".into()),
                0.5
            )]
        );
        assert!(t.read(true).is_empty());
    }

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        let me = std::process::id();
        let (boot, start) = process_identity(me).unwrap();
        assert!(is_alive(me, &boot, start));
        assert!(
            !is_alive(me, &boot, start + 1),
            "a reused pid is not the same process"
        );
        assert!(!is_alive(me, "another-boot", start));
    }
}
