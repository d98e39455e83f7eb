//! Planning: the run's spec compiled with the run's real context (its paths as the job sees
//! them, its uuid and name), the job it describes ([`Plan`]) and upstream's env contract.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use polyaxon_server::api::V1Run;
use serde_json::{Map, Value as J, json};

use super::Ctl;
use crate::client::RunRef;
use crate::error::UserError;
use crate::executor::{Capabilities, Job};
use crate::settings::Settings;

/// A run's operation, compiled for the executor that runs it.
pub struct RunSpec {
    pub compiled: polyaxonfile::Compiled,
    /// The operation as checked: its tree, typed parts and a DAG's plan.
    pub prepared: polyaxonfile::Prepared,
    /// The operation as stored, as JSON: what a search's trials are made from.
    pub operation: J,
    /// The context root and the run's directory as the job sees them (the same as this
    /// machine's for its processes; under `/plx-context` in an image).
    pub job_root: PathBuf,
    pub job_dir: PathBuf,
}

impl RunSpec {
    /// Compiles the stored operation of `run` with its real context.
    /// `connections`: what templates see as `connections['name']`.
    pub fn compile(
        ctl: &Ctl<'_>,
        run: &V1Run,
        connections: serde_json::Map<String, J>,
    ) -> Result<RunSpec> {
        let r = &ctl.api.r;
        let content = run
            .content
            .clone()
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| UserError::new(format!("run `{}` has no spec to execute", r.uuid)))?;
        let job_root = ctl.executor.job_root(&ctl.settings.context_root());
        let job_dir = job_root.join("artifacts").join(&r.uuid);
        let report = compile(
            ctl.settings,
            &format!("run {}", r.uuid),
            "the run's spec does not compile",
            &content,
            globals(r, run, &job_root, &job_dir),
            connections,
        )?;
        let operation = match serde_json::from_str::<J>(&content) {
            Ok(op @ J::Object(_)) => op,
            // Written as YAML (through the API): the same tree, read.
            _ => operation_json(&report.prepared),
        };
        Ok(RunSpec {
            compiled: report.compiled.context("compiled")?,
            prepared: report.prepared,
            operation,
            job_root,
            job_dir,
        })
    }
}

/// Checks and compiles an operation given as text (`name` in messages), as the settings find
/// presets and hub components, with these `globals.*`. One that does not compile is a user
/// error: `failure` (`the run's spec does not compile`), then every diagnostic.
pub fn compile(
    settings: &Settings,
    name: &str,
    failure: &str,
    content: &str,
    globals: J,
    connections: serde_json::Map<String, J>,
) -> Result<polyaxonfile::Report> {
    let opts = polyaxonfile::Options {
        globals: Some(globals),
        connections,
        preset_dirs: settings.preset_dirs(),
        hub_dirs: settings.hub_dirs(),
        url_fetcher: Some(crate::urlref::fetcher(&settings.home)),
        ..Default::default()
    };
    let mut session = polyaxonfile::Session::new();
    polyaxonfile::check_text(&mut session, name, content, &opts).map_err(|d| {
        UserError::new(format!("{failure}:\n{}", d.render(&session.sources, false))).into()
    })
}

/// A checked operation as the JSON a run stores (`content`): its tree after presets and
/// patches, with its component inline (a v0.6 file upgraded).
pub fn operation_json(prepared: &polyaxonfile::Prepared) -> J {
    let node = if prepared.legacy {
        polyaxonfile::v06::for_output(&prepared.node)
    } else {
        prepared.node.clone()
    };
    node.to_json()
}

/// The values of `globals.*` for a run, its paths as the job sees them.
pub fn globals(r: &RunRef, run: &V1Run, root: &Path, dir: &Path) -> J {
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
        // The prefix the server proxies the run's service under.
        "base_url": format!("/services/v1/polyaxon/{}/{}/runs/{}", r.owner, r.project, r.uuid),
        "created_at": run.created_at,
        "compiled_at": now,
        "cloning_kind": run.original.as_ref().and_then(|o| o.kind.clone()),
        "original_uuid": run.original.as_ref().map(|o| o.uuid.clone()),
        "iteration": null,
        "schedule_at": run.meta().schedule_at,
        "ports": [],
    })
}

/// The job described by a compiled spec.
pub struct Plan {
    pub job: Job,
    pub timeout: Option<Duration>,
    pub max_retries: u32,
    pub stdout_metrics: bool,
    pub is_service: bool,
    /// What the user should know (said once, before the job starts).
    pub notes: Vec<String>,
    /// The run's cache key, recorded when it succeeds (a later run may reuse it).
    pub cache_key: Option<String>,
}

/// The job `op` describes for an executor with `caps`: the job's code in `code_dir` (as the
/// job sees it), the run's directory `dir` on this machine.
pub fn plan(
    op: &polyaxonfile::CompiledOperation,
    r: &RunRef,
    code_dir: &Path,
    dir: &Path,
    caps: Capabilities,
) -> Result<Plan> {
    use polyaxonfile::spec::Run;
    // Distributed runs describe their containers per replica (the manifests read them).
    static NO_CONTAINER: std::sync::LazyLock<polyaxonfile::spec::Container> =
        std::sync::LazyLock::new(Default::default);
    let in_image = caps.in_image();
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
        Run::TfJob(_) | Run::PytorchJob(_) | Run::MpiJob(_) if caps.distributed => {
            (None, false, vec![])
        }
        other => {
            return Err(UserError::new(format!(
                "`run.kind: {}` needs a cluster: this executor runs `job` and `service`",
                other.kind()
            ))
            .hint("run it with `--executor kubernetes` against a cluster")
            .into());
        }
    };
    let Some(c) = container.or(caps.distributed.then_some(&NO_CONTAINER)) else {
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
    let stdout_metrics = env.iter().any(|(k, v)| {
        k == crate::env::POLYAXON_STDOUT_METRICS && crate::settings::parse_bool(v) == Some(true)
    });
    let limits = c
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .map(|l| l.iter().map(|(k, q)| (k.clone(), q.0.clone())).collect())
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
                ("operation.polyaxon.com/kind".into(), run.kind().into()),
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
        cache_key: None,
    })
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
