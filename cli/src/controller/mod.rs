//! Run controllers: the code that drives a run to its end, whichever process runs it (the
//! detached supervisor `polyaxon run` starts, `polyaxon ops execute`, later an agent).
//!
//! [`execute`] claims a run, connects its executor and hands it to the controller of its
//! kind: [`job`] for jobs and services, [`search`] for a `matrix` (its trials are child runs,
//! each driven by a controller of its own). They share the phases, one module each:
//!
//! - [`plan`]: the run's spec compiled with the run's real context, the job it describes and
//!   the env contract;
//! - [`prepare`]: the code written out or uploaded, the image built and pushed;
//! - [`builder`]: a job that is an image build (the hub's `kaniko`, `dockerizer`), done by
//!   the controller with this machine's Docker Engine whatever the executor;
//! - [`attempt`]: one start of the job to its end (statuses, stop requests, the deadline), and
//!   the retries;
//! - [`track`]: logs, stdout metrics, event files and resources into the store while it runs;
//! - [`finish`]: the run's files sent to a server, the final status;
//! - [`orphans`]: runs whose supervisor died, noticed and ended.
//!
//! [`launch`] starts a supervisor process for a run; [`dry_run`] shows a run's manifests
//! without a cluster. State lives in the store (statuses, `meta_info`), never only here, so
//! another process can tell what happened. Controllers decide by the executor's
//! [`Capabilities`](crate::executor::Capabilities), never by its name.

pub mod attempt;
pub mod builder;
pub mod cache;
pub mod dag;
pub mod dry_run;
pub mod finish;
pub mod init;
pub mod job;
pub mod launch;
pub mod orphans;
pub mod plan;
pub mod prepare;
pub mod schedule;
pub mod search;
pub mod track;

mod run_api;

use std::sync::Arc;

use anyhow::{Context, Result};
use polyaxon_server::api::{ExecutorKind, ExecutorMeta, RunStatus};

pub use run_api::RunApi;

use crate::client::{Client, RunRef};
use crate::error::{UserError, said};
use crate::executor::{self, Executor};
use crate::printer::Printer;
use crate::settings::Settings;

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Succeeded,
    Failed(String),
    Stopped(String),
}

/// What a controller drives its run with.
pub struct Ctl<'a> {
    pub settings: &'a Settings,
    /// Notes and warnings (the supervisor's log file).
    pub printer: Printer,
    pub api: RunApi,
    pub executor: &'a dyn Executor,
    /// The concurrency budgets of the DAGs this run is in, outermost first: a job in a nested
    /// DAG holds a slot of each while it runs.
    pub budgets: Budgets,
    /// Following a job another agent started (see [`adopt`]): it is not started again.
    pub adopt: Option<Adopted>,
}

/// What an adopting controller knows of the job it takes over.
#[derive(Clone, Debug)]
pub struct Adopted {
    /// The last stored log line's time (microseconds): the log goes on from after it.
    pub logs_since: Option<i64>,
}

/// The concurrency budgets a run counts against (see [`Ctl::budgets`]).
pub type Budgets = Vec<Arc<tokio::sync::Semaphore>>;

/// Drives the run `r` to its end on the executor of `kind`; returns how it ended. The run's
/// final status is recorded whatever happens: a failure here fails the run, it is not left
/// running. `client` is opened without reaping orphans (a run being started is not one, and
/// start-up time counts).
pub async fn execute(
    settings: &Settings,
    printer: Printer,
    client: Client,
    r: &RunRef,
    kind: ExecutorKind,
) -> Result<Outcome> {
    execute_shared(settings, printer, Arc::new(client), r, kind, Vec::new()).await
}

/// [`execute`] with a client shared with other controllers of this process (a DAG's
/// operations), counting against the enclosing DAGs' `budgets`.
pub async fn execute_shared(
    settings: &Settings,
    printer: Printer,
    client: Arc<Client>,
    r: &RunRef,
    kind: ExecutorKind,
    budgets: Budgets,
) -> Result<Outcome> {
    execute_inner(settings, printer, client, r, kind, budgets, None).await
}

async fn execute_inner(
    settings: &Settings,
    printer: Printer,
    client: Arc<Client>,
    r: &RunRef,
    kind: ExecutorKind,
    budgets: Budgets,
    adopt: Option<Adopted>,
) -> Result<Outcome> {
    let api = RunApi::new(client, r.clone());
    let run = api.current().await?;
    crate::timing::mark("execute: run read");
    let status = run.status.unwrap_or_default();
    if adopt.is_none() && !status.is_startable() {
        return Err(UserError::new(format!(
            "run `{}` is {status}: only a run that has not started (or is resuming) can be executed",
            r.uuid
        ))
        .hint("`polyaxon ops restart` runs it again as a new run; `polyaxon ops resume` continues it")
        .into());
    }
    claim_top_level(settings, &api, &run).await?;
    let executor = match executor::connect(kind, settings).await {
        Ok(e) => e,
        Err(e) => {
            let _ = api
                .status(RunStatus::Failed, "ExecutorUnavailable", &said(&e), None)
                .await;
            return Err(e);
        }
    };
    let claim = claim(
        &api,
        executor.as_ref(),
        status == RunStatus::Created,
        settings.agent.clone(),
    );
    let ctl = Ctl {
        settings,
        printer,
        api,
        executor: executor.as_ref(),
        budgets,
        adopt,
    };
    match drive(&ctl, &run, claim).await {
        Ok(o) => Ok(o),
        Err(e) => {
            // Whatever went wrong, the run does not stay "running"; its status says what to
            // do, as the terminal would.
            let msg = said(&e);
            let _ = ctl
                .api
                .status(RunStatus::Failed, "ExecutorError", &msg, None)
                .await;
            Err(e)
        }
    }
}

/// What `polyaxon run`, `ops restart` and `ops resume` name as the driver of a run they hand to
/// a supervisor here: never queued for an agent, and judged alive by the supervisor's pid.
pub fn local_holder() -> String {
    format!(
        "{LOCAL_HOLDER}{}:{}",
        orphans::hostname(),
        std::process::id()
    )
}

const LOCAL_HOLDER: &str = "local:";

/// A top-level run is driven by whoever holds its claim: this agent's claim, a local hand-off,
/// or a claim taken here now (`ops execute` of a queued run). Another agent's run is refused.
async fn claim_top_level(
    settings: &Settings,
    api: &RunApi,
    run: &polyaxon_server::api::V1Run,
) -> Result<()> {
    if run.pipeline.is_some() || run.queue.is_none() {
        return Ok(());
    }
    match (&run.agent, &settings.agent) {
        (Some(a), Some(me)) if a == me => Ok(()),
        (Some(a), _) if a.starts_with(LOCAL_HOLDER) => Ok(()),
        (Some(a), _) => Err(UserError::new(format!(
            "run `{}` is driven by agent `{a}`",
            api.r.uuid
        ))
        .hint("`polyaxon ops logs` follows it; `polyaxon ops stop` stops it")
        .into()),
        (None, me) => {
            let holder = me.clone().unwrap_or_else(local_holder);
            match api.client.claim_run(&api.r, &holder).await {
                Ok(_) => Ok(()),
                Err(e) if e.status() == Some(http::StatusCode::CONFLICT) => {
                    Err(UserError::new(format!("{e}"))
                        .hint("another agent or supervisor took it first")
                        .into())
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Claims the run (who supervises it, so that a dead supervisor is noticed later) and queues
/// it, in the background while the spec compiles and the code is written out; awaited before
/// the job starts.
fn claim(
    api: &RunApi,
    executor: &dyn Executor,
    queue: bool,
    agent: Option<String>,
) -> tokio::task::JoinHandle<Result<()>> {
    let api = api.clone();
    let kind = executor.kind();
    let me = std::process::id();
    let (boot, start) = orphans::process_identity(me).unwrap_or_default();
    let claim = ExecutorMeta {
        kind: Some(kind),
        host: Some(orphans::hostname()),
        agent,
        pid: Some(me),
        boot_id: Some(boot),
        start: Some(start),
        ..executor.placement()
    };
    tokio::spawn(async move {
        api.record_executor(|e| *e = claim).await?;
        if queue {
            api.status(
                RunStatus::Queued,
                "PolyaxonRunQueued",
                &format!("queued for the {kind} executor"),
                None,
            )
            .await?;
        }
        Ok(())
    })
}

/// Compiles the run's spec with its real context and hands it to its kind's controller.
async fn drive(
    ctl: &Ctl<'_>,
    run: &polyaxon_server::api::V1Run,
    claim: tokio::task::JoinHandle<Result<()>>,
) -> Result<Outcome> {
    let r = &ctl.api.r;
    let dir = ctl.settings.run_dir(&r.uuid);
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
    // A top-level operation's joins read the project's runs now, at its start.
    let globals = || {
        let job_root = ctl.executor.job_root(&ctl.settings.context_root());
        plan::globals(r, run, &job_root, &job_root.join("artifacts").join(&r.uuid))
    };
    let joined;
    let run = match dag::top_level_joins(ctl, run, globals).await {
        Ok(Some(content)) => {
            joined = polyaxon_server::api::V1Run {
                content: Some(content),
                ..run.clone()
            };
            &joined
        }
        Ok(None) => run,
        Err(e) => {
            return Err(UserError::new(format!("the run's joins cannot be read: {e}")).into());
        }
    };
    // Templates see the catalogue's connections (read only when the spec names some).
    let connections = if run
        .content
        .as_deref()
        .is_some_and(|c| c.contains("connections"))
    {
        match ctl.api.client.list_connections().await {
            Ok(l) => crate::connections::template_context(&l.results),
            Err(e) => {
                ctl.printer
                    .warn(&format!("the connections cannot be read: {e}"));
                serde_json::Map::new()
            }
        }
    } else {
        serde_json::Map::new()
    };
    let spec = plan::RunSpec::compile(ctl, run, connections)?;
    crate::timing::mark("execute: compiled");
    // The run's record has its inputs as the server read them, with stand-ins for the run's
    // context (`{{ globals.uuid }}`, a schedule's `{{ globals.schedule_at }}`) and without
    // what only its start knows (the runs its joins found): the real ones.
    let inputs: serde_json::Map<String, serde_json::Value> = spec
        .compiled
        .values
        .iter()
        .filter(|v| !v.is_output && !v.value.is_null())
        .filter(|v| {
            run.inputs
                .as_ref()
                .and_then(|i| i.get(&v.name))
                .is_none_or(|old| *old != v.value)
        })
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    if !inputs.is_empty() {
        ctl.api
            .client
            .patch_run(
                r,
                &polyaxon_server::api::V1Run {
                    inputs: Some(inputs),
                    merge: Some(true),
                    ..Default::default()
                },
            )
            .await?;
    }
    if spec.compiled.skipped {
        ctl.api
            .status(
                RunStatus::Skipped,
                "ConditionsFalse",
                "the run's `conditions` are false",
                None,
            )
            .await?;
        return Ok(Outcome::Stopped("skipped".into()));
    }
    let op = &spec.compiled.operation;
    if ctl.adopt.is_some()
        && (op.schedule.is_some()
            || op.matrix.is_some()
            || matches!(op.run, Some(polyaxonfile::spec::Run::Dag(_))))
    {
        let msg = "the agent driving this run was lost; a schedule's, search's or DAG's controller cannot be taken over by another agent yet: restart the run";
        ctl.api
            .status(RunStatus::Failed, "AgentLost", msg, None)
            .await?;
        return Ok(Outcome::Failed(msg.into()));
    }
    if let Some(s) = &spec.compiled.operation.schedule {
        claim.await.context("claiming the run")??;
        return schedule::drive(ctl, run, &spec, s).await;
    }
    if let Some(m) = &spec.compiled.operation.matrix {
        claim.await.context("claiming the run")??;
        return search::drive(ctl, run, &spec, m).await;
    }
    if let Some(polyaxonfile::spec::Run::Dag(d)) = &spec.compiled.operation.run {
        claim.await.context("claiming the run")??;
        return dag::drive(ctl, run, &spec, d).await;
    }
    job::drive(ctl, run, &spec, &dir, claim).await
}

/// Takes over a run whose agent was lost while its job ran on a cluster (the claim says
/// `adopt`): finds the job by its labels and follows it to its end, its log from after the
/// last line stored. An executor that cannot find a job it did not start fails the run with
/// that reason instead of leaving it waiting.
pub async fn adopt(
    settings: &Settings,
    printer: Printer,
    client: Arc<Client>,
    r: &RunRef,
    kind: ExecutorKind,
) -> Result<Outcome> {
    let logs_since = last_log_time(&client, r).await;
    execute_inner(
        settings,
        printer,
        client,
        r,
        kind,
        Vec::new(),
        Some(Adopted { logs_since }),
    )
    .await
}

/// The time of a run's last stored log line, read through its log pages.
async fn last_log_time(client: &Client, r: &RunRef) -> Option<i64> {
    let (mut file, mut time, mut last) = (None::<String>, None::<String>, None);
    for _ in 0..100_000 {
        let page = client
            .logs(r, file.as_deref(), time.as_deref())
            .await
            .ok()?;
        let Some(l) = page.logs.last() else { break };
        last = l
            .timestamp
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_microsecond())
            .or(last);
        if page.last_file == file && page.last_time == time {
            break;
        }
        (file, time) = (page.last_file, page.last_time);
    }
    last
}
