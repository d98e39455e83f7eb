//! The DAG controller: a DAG run creates its operations as child runs (`pipeline` = the DAG)
//! at once, in `created`, and decides as each upstream ends which start, which are skipped and
//! which fail upstream ([`decide`]). An operation starts when its trigger is met (or an event it
//! waits for happened), with its params resolved from its upstreams ([`params`]), at most
//! `concurrency` at a time; its controller runs in this process, beside the others. The DAG ends
//! by upstream's rule once every operation ended; `earlyStopping` and a stop request stop every
//! operation still going.
//!
//! A DAG restarted from one operation (`ops restart --downstream`) reuses what the other
//! operations of the run it restarts produced, and runs that one and its downstream again.

pub mod decide;
mod params;

pub use params::top_level_joins;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use polyaxon_server::api::{
    DagMeta, DagOpRun, RunMeta, RunStatus, V1OperationBody, V1Run, V1StatusCondition,
};
use polyaxonfile::spec::{Dag, EarlyStopping, Optimization, TriggerPolicy};
use serde_json::{Map, Value as J};

use self::decide::Decision;
use super::plan::RunSpec;
use super::{Ctl, Outcome};
use crate::client::{ListQuery, RunRef};

/// How often the controller looks at its operations.
const POLL: Duration = Duration::from_millis(100);

/// One operation of the DAG.
struct Op {
    name: String,
    operation: polyaxonfile::spec::Operation,
    /// Its tree, component inline (params as written).
    node: J,
    /// The operations it waits for.
    upstream: Vec<usize>,
    /// Events that start it: (operation, statuses).
    events: Vec<(usize, Vec<RunStatus>)>,
    uuid: String,
    /// Its controller, once started here.
    task: Option<tokio::task::JoinHandle<()>>,
    /// Its status as last seen, and every status it was seen in.
    status: RunStatus,
    seen: HashSet<RunStatus>,
}

impl Op {
    fn done(&self) -> bool {
        self.status.is_done()
    }

    fn pending(&self) -> bool {
        self.task.is_none() && self.status == RunStatus::Created
    }

    /// Whether it is a nested DAG (not a search of one).
    fn is_dag(&self) -> bool {
        self.node.get("matrix").is_none_or(J::is_null)
            && self.node["component"]["run"]["kind"] == "dag"
    }
}

/// A slot of every budget, or none if one is full.
fn slots(
    budgets: &[Arc<tokio::sync::Semaphore>],
) -> Option<Vec<tokio::sync::OwnedSemaphorePermit>> {
    budgets
        .iter()
        .map(|b| b.clone().try_acquire_owned().ok())
        .collect()
}

/// Runs the DAG of `spec` to its end. Its final status is written here.
pub async fn drive(ctl: &Ctl<'_>, run: &V1Run, spec: &RunSpec, dag: &Dag) -> Result<Outcome> {
    let api = &ctl.api;
    let plan = spec
        .prepared
        .dag
        .as_ref()
        .context("the DAG's operations were not planned")?;
    let mut ops = operations(plan)?;
    let meta = run.meta();
    if !api
        .status(
            RunStatus::Running,
            "DagRunning",
            &format!("the DAG is running its {} operations", ops.len()),
            None,
        )
        .await?
    {
        return Ok(Outcome::Stopped("stopped before it started".into()));
    }
    create_children(ctl, &meta, &mut ops).await?;
    if let Some(from) = &meta.restart_from {
        reuse(ctl, from, &mut ops).await?;
    }
    // This DAG's budget after its enclosing DAGs': each job below it holds a slot of each.
    let mut budgets = ctl.budgets.clone();
    if let Some(c) = dag.concurrency.filter(|c| *c > 0) {
        budgets.push(Arc::new(tokio::sync::Semaphore::new(c as usize)));
    }
    let early = dag.early_stopping.clone().unwrap_or_default();
    let dag_inputs: Map<String, J> = spec
        .compiled
        .values
        .iter()
        .filter(|v| !v.is_output)
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    let dag_globals = super::plan::globals(&api.r, run, &spec.job_root, &spec.job_dir);
    let mut stopping: Option<(String, &'static str)> = None;
    // Woken when an operation's controller ends, not only every `POLL`.
    let ended = Arc::new(tokio::sync::Notify::new());
    loop {
        if stopping.is_none() && api.stop_requested().await? {
            stopping = Some(("stopped on request".into(), "DagStopped"));
        }
        let runs = look(ctl, &mut ops).await?;
        if stopping.is_none() {
            stopping = early_stop(&early, &ops, &runs).map(|why| (why, "EarlyStopping"));
        }
        if let Some((why, reason)) = &stopping {
            for op in ops.iter().filter(|o| !o.done()) {
                let tr = api.r.sibling(&op.uuid);
                if op.status != RunStatus::Stopping {
                    let _ = api.client.stop_run(&tr).await;
                }
            }
            if ops.iter().all(Op::done) {
                api.log(why.clone()).await;
                api.status(RunStatus::Stopped, reason, why, None).await?;
                return Ok(Outcome::Stopped(why.clone()));
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        // Decide what has not started.
        let mut ready = Vec::new();
        for i in 0..ops.len() {
            if !ops[i].pending() {
                continue;
            }
            match decision(&ops, i) {
                Decision::Wait => {}
                Decision::Start => ready.push(i),
                Decision::End(status, reason, msg) => {
                    let tr = api.r.sibling(&ops[i].uuid);
                    api.client
                        .add_status(&tr, status, reason, &msg, None)
                        .await?;
                    api.log(format!("`{}` {status}: {msg}", ops[i].name)).await;
                    ops[i].status = status;
                }
            }
        }
        let by_name: BTreeMap<String, V1Run> = ops
            .iter()
            .filter_map(|o| runs.get(&o.uuid).map(|r| (o.name.clone(), r.clone())))
            .collect();
        let src = params::Sources {
            dag: run,
            dag_inputs: &dag_inputs,
            dag_globals: &dag_globals,
            ops: &by_name,
        };
        // In the DAG's order while the budgets have room; a nested DAG holds no slot (its
        // jobs do), so it never starves its own operations.
        let mut starting: BTreeMap<usize, Vec<tokio::sync::OwnedSemaphorePermit>> = BTreeMap::new();
        for i in ready {
            if ops[i].is_dag() {
                starting.insert(i, Vec::new());
                continue;
            }
            match slots(&budgets) {
                Some(permits) => {
                    starting.insert(i, permits);
                }
                None => break,
            }
        }
        // Started together: their specs and controllers are set up side by side.
        let started = ops
            .iter_mut()
            .enumerate()
            .filter_map(|(i, op)| starting.remove(&i).map(|p| (op, p)))
            .map(|(op, permits)| start(ctl, op, &src, spec, &ended, &budgets, permits));
        for r in futures_util::future::join_all(started).await {
            r?;
        }
        if ops.iter().all(Op::done) {
            let statuses: Vec<RunStatus> = ops.iter().map(|o| o.status).collect();
            let end = decide::dag_end(&statuses);
            let count = |s: RunStatus| statuses.iter().filter(|x| **x == s).count();
            let msg = format!(
                "{} operations: {} succeeded, {} failed, {} upstream failed, {} skipped, {} stopped",
                ops.len(),
                count(RunStatus::Succeeded),
                count(RunStatus::Failed),
                count(RunStatus::UpstreamFailed),
                count(RunStatus::Skipped),
                count(RunStatus::Stopped)
            );
            let reason = match end {
                RunStatus::Failed => "DagFailed",
                RunStatus::Stopped => "DagStopped",
                _ => "DagSucceeded",
            };
            api.status(end, reason, &msg, None).await?;
            return Ok(match end {
                RunStatus::Succeeded => Outcome::Succeeded,
                RunStatus::Stopped => Outcome::Stopped(msg),
                _ => Outcome::Failed(msg),
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = ended.notified() => {}
        }
    }
}

/// The DAG's operations with their edges: `dependencies`, `ref: ops.NAME` params and events.
fn operations(plan: &polyaxonfile::compile::DagPlan) -> Result<Vec<Op>> {
    let index: BTreeMap<&str, usize> = plan
        .ops
        .iter()
        .enumerate()
        .map(|(i, o)| (o.name.as_str(), i))
        .collect();
    let mut ops = Vec::new();
    for o in &plan.ops {
        let op = &o.operation;
        let mut up: BTreeSet<usize> = BTreeSet::new();
        for d in op.dependencies.iter().flatten() {
            up.extend(index.get(d.as_str()));
        }
        for (_, p) in op.params.iter().flat_map(|m| m.iter()) {
            if let Some(name) = p.reference.as_deref().and_then(|r| r.strip_prefix("ops.")) {
                up.extend(index.get(name));
            }
        }
        let mut events = Vec::new();
        for e in op.events.iter().flatten() {
            let Some(&j) = e.reference.strip_prefix("ops.").and_then(|n| index.get(n)) else {
                continue;
            };
            let kinds = e
                .kinds
                .iter()
                .filter_map(|k| decide::event_status(k))
                .collect();
            events.push((j, kinds));
        }
        ops.push(Op {
            name: o.name.clone(),
            operation: op.clone(),
            node: o
                .node
                .as_ref()
                .map(|n| n.to_json())
                .context("an operation's component was not resolved")?,
            // An operation started by an event does not wait for that upstream's end.
            upstream: up
                .into_iter()
                .filter(|j| !events.iter().any(|(e, _)| e == j))
                .collect(),
            events,
            uuid: String::new(),
            task: None,
            status: RunStatus::Created,
            seen: HashSet::new(),
        });
    }
    Ok(ops)
}

/// Creates a run per operation (no spec yet: it is set when the operation starts), and records
/// them with the edges in the DAG's `meta_info.dag`.
async fn create_children(ctl: &Ctl<'_>, meta: &RunMeta, ops: &mut [Op]) -> Result<()> {
    let r = &ctl.api.r;
    let create = |op: &Op| {
        let child = RunMeta {
            code_ref: meta.code_ref.clone(),
            cwd: meta.cwd.clone(),
            stdout_metrics: meta.stdout_metrics,
            executor_kind: Some(ctl.executor.kind()),
            pipeline: Some(r.uuid.clone()),
            pipeline_kind: Some("dag".into()),
            op: Some(op.name.clone()),
            cache: meta.cache,
            ..Default::default()
        };
        let name = op.name.clone();
        async move {
            let created = ctl
                .api
                .client
                .create_run(
                    &r.owner,
                    &r.project,
                    &V1OperationBody {
                        name: Some(name.clone()),
                        is_managed: Some(true),
                        managed_by: Some("cli".into()),
                        meta_info: Some(child.to_map()),
                        ..Default::default()
                    },
                )
                .await
                .with_context(|| format!("creating the run of operation `{name}`"))?;
            Ok::<String, anyhow::Error>(created.uuid.unwrap_or_default())
        }
    };
    // A few at a time: their requests' work overlaps, in the DAG's order.
    for chunk in ops.chunks_mut(8) {
        let uuids = futures_util::future::join_all(chunk.iter().map(create)).await;
        for (op, uuid) in chunk.iter_mut().zip(uuids) {
            op.uuid = uuid?;
        }
    }
    let dag = DagMeta {
        ops: ops
            .iter()
            .map(|o| DagOpRun {
                name: o.name.clone(),
                uuid: o.uuid.clone(),
            })
            .collect(),
        edges: ops
            .iter()
            .flat_map(|o| {
                o.upstream
                    .iter()
                    .chain(o.events.iter().map(|(j, _)| j))
                    .map(|&j| (ops[j].name.clone(), o.name.clone()))
                    .collect::<Vec<_>>()
            })
            .collect(),
    };
    ctl.api
        .client
        .patch_meta(
            r,
            RunMeta {
                dag: Some(dag),
                ..Default::default()
            }
            .to_map(),
        )
        .await?;
    Ok(())
}

/// A DAG restarted from `from.op`: every other operation that succeeded in the restarted run,
/// and is not downstream of that one, is not run again; its run takes the results.
async fn reuse(
    ctl: &Ctl<'_>,
    from: &polyaxon_server::api::DagRestart,
    ops: &mut [Op],
) -> Result<()> {
    let api = &ctl.api;
    let old = api.client.get_run(&api.r.sibling(&from.run)).await?;
    let old_ops: BTreeMap<String, String> = old
        .meta()
        .dag
        .map(|d| d.ops.into_iter().map(|o| (o.name, o.uuid)).collect())
        .unwrap_or_default();
    let Some(start) = ops.iter().position(|o| o.name == from.op) else {
        anyhow::bail!("the restarted DAG has no operation `{}`", from.op);
    };
    // What depends on `start`, directly or not.
    let mut rerun = BTreeSet::from([start]);
    loop {
        let more: Vec<usize> = (0..ops.len())
            .filter(|i| !rerun.contains(i))
            .filter(|&i| {
                ops[i].upstream.iter().any(|j| rerun.contains(j))
                    || ops[i].events.iter().any(|(j, _)| rerun.contains(j))
            })
            .collect();
        if more.is_empty() {
            break;
        }
        rerun.extend(more);
    }
    for (i, op) in ops.iter_mut().enumerate() {
        if rerun.contains(&i) {
            // Asked to run again: not from the cache.
            api.client
                .patch_meta(
                    &api.r.sibling(&op.uuid),
                    RunMeta {
                        cache: Some(false),
                        ..Default::default()
                    }
                    .to_map(),
                )
                .await?;
            continue;
        }
        let Some(old_uuid) = old_ops.get(&op.name) else {
            continue;
        };
        let prev = api.client.get_run(&api.r.sibling(old_uuid)).await?;
        if prev.status != Some(RunStatus::Succeeded) {
            continue;
        }
        let tr = api.r.sibling(&op.uuid);
        api.client
            .patch_run(
                &tr,
                &V1Run {
                    inputs: prev.inputs.clone(),
                    outputs: prev.outputs.clone(),
                    meta_info: Some(
                        RunMeta {
                            reused_from: Some(old_uuid.clone()),
                            ..Default::default()
                        }
                        .to_map(),
                    ),
                    merge: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        api.client
            .add_status(
                &tr,
                RunStatus::Succeeded,
                "ReusedFromRun",
                &format!("not run again: the results of run {old_uuid} are reused"),
                None,
            )
            .await?;
        op.status = RunStatus::Succeeded;
    }
    api.log(format!(
        "restarted from `{}`: {} operation(s) run again",
        from.op,
        rerun.len()
    ))
    .await;
    Ok(())
}

/// The operations' runs as they are now (one listing), their statuses noted.
async fn look(ctl: &Ctl<'_>, ops: &mut [Op]) -> Result<BTreeMap<String, V1Run>> {
    let r = &ctl.api.r;
    let mut runs: BTreeMap<String, V1Run> = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = ctl
            .api
            .client
            .list_runs(
                &r.owner,
                &r.project,
                &ListQuery {
                    query: Some(format!("pipeline: {}", r.uuid)),
                    sort: Some("created_at".into()),
                    limit: Some(1000),
                    offset: Some(offset),
                },
            )
            .await?;
        let n = page.results.len() as i64;
        for run in page.results {
            runs.insert(run.uuid.clone().unwrap_or_default(), run);
        }
        offset += n;
        if n < 1000 {
            break;
        }
    }
    let watched: BTreeSet<usize> = ops
        .iter()
        .flat_map(|o| o.events.iter().map(|(j, _)| *j))
        .collect();
    for (i, op) in ops.iter_mut().enumerate() {
        if let Some(s) = runs.get(&op.uuid).and_then(|r| r.status) {
            op.status = s;
            op.seen.insert(s);
        }
        // An upstream that events wait on may pass a status between two looks: its history.
        if watched.contains(&i)
            && let Ok(st) = ctl.api.client.statuses(&ctl.api.r.sibling(&op.uuid)).await
        {
            op.seen.extend(
                st.status_conditions
                    .iter()
                    .map(|c: &V1StatusCondition| c.kind),
            );
        }
    }
    Ok(runs)
}

/// What to do with operation `i`, not started yet.
fn decision(ops: &[Op], i: usize) -> Decision {
    let op = &ops[i];
    if !op.events.is_empty() {
        // Started by an event, whatever its trigger; an upstream that ended without it
        // happening leaves it waiting for nothing.
        if op
            .events
            .iter()
            .any(|(j, kinds)| kinds.iter().any(|k| ops[*j].seen.contains(k)))
        {
            return Decision::Start;
        }
        if op.events.iter().all(|(j, _)| ops[*j].done()) {
            let names: Vec<String> = op
                .events
                .iter()
                .map(|(j, _)| format!("`{}`", ops[*j].name))
                .collect();
            return Decision::End(
                RunStatus::UpstreamFailed,
                "UpstreamEventMissed",
                format!("{} ended without the event it waits for", names.join(", ")),
            );
        }
        return Decision::Wait;
    }
    let upstream: Vec<(&str, Option<RunStatus>)> = op
        .upstream
        .iter()
        .map(|&j| {
            let u = &ops[j];
            (u.name.as_str(), u.done().then_some(u.status))
        })
        .collect();
    decide::by_trigger(
        op.operation.trigger.unwrap_or(TriggerPolicy::AllSucceeded),
        op.operation.skip_on_upstream_skip.unwrap_or(false),
        &upstream,
    )
}

/// Starts an operation: its params resolved, its spec set, its controller running here.
async fn start(
    ctl: &Ctl<'_>,
    op: &mut Op,
    src: &params::Sources<'_>,
    spec: &RunSpec,
    ended: &Arc<tokio::sync::Notify>,
    budgets: &super::Budgets,
    permits: Vec<tokio::sync::OwnedSemaphorePermit>,
) -> Result<()> {
    let api = &ctl.api;
    let tr = api.r.sibling(&op.uuid);
    let failed = tr.clone();
    let fail = |reason: &'static str, msg: String| async move {
        api.client
            .add_status(&failed, RunStatus::Failed, reason, &msg, None)
            .await
            .map(|_| ())
    };
    let resolved = match params::resolve(ctl, &op.operation, src).await {
        Ok(p) => p,
        Err(why) => {
            api.log(format!("`{}` cannot start: {why}", op.name)).await;
            fail("DagParamsUnresolved", why).await?;
            op.status = RunStatus::Failed;
            return Ok(());
        }
    };
    match params::conditions_hold(&op.operation, src, &resolved) {
        Ok(true) => {}
        Ok(false) => {
            api.client
                .add_status(
                    &tr,
                    RunStatus::Skipped,
                    "ConditionsFalse",
                    "its `conditions` are false",
                    None,
                )
                .await?;
            api.log(format!("`{}` skipped: its conditions are false", op.name))
                .await;
            op.status = RunStatus::Skipped;
            return Ok(());
        }
        Err(why) => {
            api.log(format!("`{}` cannot start: {why}", op.name)).await;
            fail("DagConditionsInvalid", why).await?;
            op.status = RunStatus::Failed;
            return Ok(());
        }
    }
    let content = params::content(&op.node, resolved, &spec.operation);
    let set = api
        .client
        .patch_run(
            &tr,
            &V1Run {
                content: Some(serde_json::to_string(&content)?),
                ..Default::default()
            },
        )
        .await;
    if let Err(e) = set {
        let msg = format!("its spec does not compile: {e}");
        api.log(format!("`{}` cannot start: {msg}", op.name)).await;
        fail("CompilationFailed", msg).await?;
        op.status = RunStatus::Failed;
        return Ok(());
    }
    api.log(format!("`{}` starts ({})", op.name, op.uuid)).await;
    let inner = if op.is_dag() {
        budgets.clone()
    } else {
        Vec::new()
    };
    op.task = Some(spawn_controller(
        ctl,
        tr,
        Some(ended.clone()),
        inner,
        permits,
    ));
    Ok(())
}

/// A child run's controller, as a task of this process (`ended` told when it ends), counting
/// against `budgets` and holding `permits` (its slots in them) until it ends.
pub(super) fn spawn_controller(
    ctl: &Ctl<'_>,
    r: RunRef,
    ended: Option<Arc<tokio::sync::Notify>>,
    budgets: super::Budgets,
    permits: Vec<tokio::sync::OwnedSemaphorePermit>,
) -> tokio::task::JoinHandle<()> {
    let settings = ctl.settings.clone();
    let printer = ctl.printer;
    let client = ctl.api.client.clone();
    let kind = ctl.executor.kind();
    tokio::spawn(async move {
        let uuid = r.uuid.clone();
        let run: std::pin::Pin<Box<dyn std::future::Future<Output = Result<Outcome>> + Send>> =
            Box::pin(async move {
                super::execute_shared(&settings, printer, client, &r, kind, budgets).await
            });
        if let Err(e) = run.await {
            printer.warn(&format!("operation run {uuid}: {e:#}"));
        }
        drop(permits);
        if let Some(e) = ended {
            e.notify_one();
        }
    })
}

/// Why the DAG's early stopping fires, if it does: too many operations failed, or one's
/// output reached a threshold.
fn early_stop(
    early: &[EarlyStopping],
    ops: &[Op],
    runs: &BTreeMap<String, V1Run>,
) -> Option<String> {
    let done: Vec<&Op> = ops.iter().filter(|o| o.done()).collect();
    for e in early {
        match e {
            EarlyStopping::Failure(f) if !done.is_empty() => {
                let failed = done
                    .iter()
                    .filter(|o| matches!(o.status, RunStatus::Failed | RunStatus::UpstreamFailed))
                    .count();
                if failed as f64 * 100.0 / done.len() as f64 > f.percent {
                    return Some(format!(
                        "early stopping: {failed} of {} ended operations failed, more than {}%",
                        done.len(),
                        f.percent
                    ));
                }
            }
            EarlyStopping::Metric(m) => {
                for o in ops {
                    let Some(v) = runs
                        .get(&o.uuid)
                        .and_then(|r| r.outputs.as_ref())
                        .and_then(|out| out.get(&m.metric))
                        .and_then(J::as_f64)
                    else {
                        continue;
                    };
                    let hit = match m.optimization {
                        Optimization::Maximize => v >= m.value,
                        Optimization::Minimize => v <= m.value,
                    };
                    if hit {
                        return Some(format!(
                            "early stopping: `{}` reached {}={v}",
                            o.name, m.metric
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    None
}
