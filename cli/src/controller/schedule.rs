//! The schedule controller: an operation with a `schedule` is the parent of one run per tick
//! (`pipeline` = the schedule, `globals.schedule_at` = the tick), each driven by its controller
//! as a task of the schedule's process. One child waits in `created` for the next tick, as
//! upstream keeps one. The schedule ends `succeeded` at `maxRuns` or `endAt`, once its last run
//! ended.
//!
//! Ticks that passed unseen (the machine slept, a `forbid` policy waited): `catchUp: latest`
//! (the default) runs the latest of them at once, `all` runs each, back to back (upstream's only
//! behaviour), `none` waits for the next. A tick while the previous run goes: `concurrencyPolicy:
//! allow` (the default) starts beside it, `forbid` (upstream's `dependsOnPast`) waits for it to
//! end, `replace` stops it first.

use std::time::Duration;

use anyhow::Result;
use jiff::{SignedDuration, Timestamp};
use polyaxon_server::api::{RunMeta, RunStatus, V1OperationBody, V1Run};
use polyaxonfile::spec::{CatchUp, ConcurrencyPolicy, Schedule};
use serde_json::Value as J;

use super::plan::RunSpec;
use super::{Ctl, Outcome};

/// A tick this late is one that was missed, not one that is due.
const LATE: SignedDuration = SignedDuration::from_secs(1);
/// The most missed ticks walked through to find the latest.
const MAX_MISSED: usize = 100_000;

/// A run the schedule made.
struct Child {
    uuid: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Runs the schedule to its end. Its final status is written here.
pub async fn drive(
    ctl: &Ctl<'_>,
    run: &V1Run,
    spec: &RunSpec,
    schedule: &Schedule,
) -> Result<Outcome> {
    let api = &ctl.api;
    let (_, end_at, max_runs) = schedule.bounds();
    let max_runs = max_runs.map(|n| n.max(0) as usize);
    let policy = schedule.concurrency_policy();
    let catch_up = schedule.catch_up();
    let content = child_content(&spec.operation);
    let name = run.name.clone().unwrap_or_else(|| "scheduled".into());
    let meta = run.meta();
    let mut children: Vec<Child> = Vec::new();
    let mut last_tick: Option<Timestamp> = None;
    let mut pending: Option<(String, Timestamp)> = None;
    let mut said_running = false;
    loop {
        if api.stop_requested().await? {
            return stop(ctl, &children, pending.as_ref()).await;
        }
        // The next tick: the pending child's, else the schedule's.
        let next = match &pending {
            Some((_, t)) => Some(*t),
            None => next_tick(schedule, last_tick, catch_up).map_err(anyhow::Error::msg)?,
        };
        let finished = match next {
            None => true,
            Some(t) => {
                end_at.is_some_and(|e| t > e) || max_runs.is_some_and(|m| children.len() >= m)
            }
        };
        if finished {
            if let Some((uuid, _)) = pending.take() {
                let _ = api
                    .client
                    .add_status(
                        &api.r.sibling(&uuid),
                        RunStatus::Skipped,
                        "PolyaxonScheduleFinished",
                        "the schedule ended before its tick",
                        None,
                    )
                    .await;
            }
            return finish(ctl, &mut children).await;
        }
        let tick = next.expect("a tick");
        if pending.is_none() {
            let uuid = create_child(ctl, &content, &name, &meta, children.len() + 1, tick).await?;
            pending = Some((uuid, tick));
        }
        if !said_running {
            said_running = true;
            if !api
                .status(
                    RunStatus::Running,
                    "PolyaxonScheduleRunning",
                    &format!("the next run at {tick}"),
                    None,
                )
                .await?
            {
                continue; // stopped meanwhile: the next look says so
            }
        }
        // Until the tick, looking for a stop now and then.
        let wait = tick.duration_since(Timestamp::now());
        if wait > SignedDuration::ZERO {
            let nap = wait.min(SignedDuration::from_millis(200));
            tokio::time::sleep(nap.unsigned_abs()).await;
            continue;
        }
        // Due. What goes still?
        let going = running(ctl, &children).await;
        match policy {
            ConcurrencyPolicy::Forbid if !going.is_empty() => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                // A tick that passed while waiting is a missed one (catchUp decides).
                if let Some((uuid, t)) = pending.clone()
                    && Timestamp::now().duration_since(t) > LATE
                    && catch_up == CatchUp::None
                    && let Some(next) =
                        next_tick(schedule, Some(t), catch_up).map_err(anyhow::Error::msg)?
                {
                    retime(ctl, &uuid, next).await?;
                    pending = Some((uuid, next));
                    last_tick = Some(t);
                }
                continue;
            }
            ConcurrencyPolicy::Replace => {
                for uuid in &going {
                    let _ = api.client.stop_run(&api.r.sibling(uuid)).await;
                }
                api.log(format!("the run at {tick} replaces {}", going.join(", ")))
                    .await;
            }
            _ => {}
        }
        let (uuid, t) = pending.take().expect("a pending run");
        api.log(format!("the run of {t} starts ({uuid})")).await;
        let task =
            super::dag::spawn_controller(ctl, api.r.sibling(&uuid), None, Vec::new(), Vec::new());
        children.push(Child {
            uuid,
            task: Some(task),
        });
        last_tick = Some(t);
    }
}

/// The first tick after `last` the schedule should fire, given what it does with missed ones.
fn next_tick(
    schedule: &Schedule,
    last: Option<Timestamp>,
    catch_up: CatchUp,
) -> Result<Option<Timestamp>, String> {
    let Some(mut t) = schedule.next_tick(last)? else {
        return Ok(None);
    };
    let now = Timestamp::now();
    if now.duration_since(t) <= LATE {
        return Ok(Some(t));
    }
    // Missed: `all` takes it as it comes; `latest` the last one due; `none` the first ahead.
    match catch_up {
        CatchUp::All => Ok(Some(t)),
        CatchUp::Latest | CatchUp::None => {
            for _ in 0..MAX_MISSED {
                match schedule.next_tick(Some(t))? {
                    Some(n) if n <= now => t = n,
                    Some(n) if catch_up == CatchUp::None => return Ok(Some(n)),
                    Some(_) => return Ok(Some(t)),
                    None if catch_up == CatchUp::None => return Ok(None),
                    None => return Ok(Some(t)),
                }
            }
            Ok(Some(t))
        }
    }
}

/// What each run of the schedule runs: its operation without what only the schedule (or a
/// DAG) reads.
fn child_content(op: &J) -> J {
    let mut op = op.as_object().cloned().unwrap_or_default();
    for k in [
        "schedule",
        "events",
        "dependencies",
        "trigger",
        "joins",
        "conditions",
    ] {
        op.remove(k);
    }
    J::Object(op)
}

async fn create_child(
    ctl: &Ctl<'_>,
    content: &J,
    name: &str,
    meta: &RunMeta,
    k: usize,
    tick: Timestamp,
) -> Result<String> {
    let r = &ctl.api.r;
    let child = RunMeta {
        code_ref: meta.code_ref.clone(),
        cwd: meta.cwd.clone(),
        stdout_metrics: meta.stdout_metrics,
        executor_kind: Some(ctl.executor.kind()),
        pipeline: Some(r.uuid.clone()),
        pipeline_kind: Some("schedule".into()),
        schedule_at: Some(tick.to_string()),
        ..Default::default()
    };
    let created = ctl
        .api
        .client
        .create_run(
            &r.owner,
            &r.project,
            &V1OperationBody {
                content: Some(serde_json::to_string(content)?),
                name: Some(format!("{name}-{k}")),
                is_managed: Some(true),
                managed_by: Some("cli".into()),
                meta_info: Some(child.to_map()),
                ..Default::default()
            },
        )
        .await?;
    Ok(created.uuid.unwrap_or_default())
}

/// Moves the pending run to a later tick.
async fn retime(ctl: &Ctl<'_>, uuid: &str, tick: Timestamp) -> Result<()> {
    ctl.api
        .client
        .patch_meta(
            &ctl.api.r.sibling(uuid),
            RunMeta {
                schedule_at: Some(tick.to_string()),
                ..Default::default()
            }
            .to_map(),
        )
        .await?;
    Ok(())
}

/// The schedule's runs that have not ended.
async fn running(ctl: &Ctl<'_>, children: &[Child]) -> Vec<String> {
    let mut out = Vec::new();
    for c in children {
        let done = match ctl.api.client.get_run(&ctl.api.r.sibling(&c.uuid)).await {
            Ok(r) => r.is_done(),
            Err(_) => true,
        };
        if !done {
            out.push(c.uuid.clone());
        }
    }
    out
}

/// The schedule is over: once its runs ended, it succeeded (a stop meanwhile stops them).
async fn finish(ctl: &Ctl<'_>, children: &mut [Child]) -> Result<Outcome> {
    loop {
        if ctl.api.stop_requested().await? {
            return stop(ctl, children, None).await;
        }
        if running(ctl, children).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for c in children.iter_mut() {
        if let Some(t) = c.task.take() {
            let _ = t.await;
        }
    }
    let msg = format!("the schedule made its {} run(s)", children.len());
    ctl.api
        .status(RunStatus::Succeeded, "PolyaxonScheduleFinished", &msg, None)
        .await?;
    Ok(Outcome::Succeeded)
}

/// A stop: the pending run and every run going are stopped, then the schedule.
async fn stop(
    ctl: &Ctl<'_>,
    children: &[Child],
    pending: Option<&(String, Timestamp)>,
) -> Result<Outcome> {
    let api = &ctl.api;
    for uuid in children
        .iter()
        .map(|c| &c.uuid)
        .chain(pending.map(|p| &p.0))
    {
        let _ = api.client.stop_run(&api.r.sibling(uuid)).await;
    }
    loop {
        if running(ctl, children).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let msg = "stopped on request".to_string();
    api.status(RunStatus::Stopped, "PolyaxonScheduleStopped", &msg, None)
        .await?;
    Ok(Outcome::Stopped(msg))
}
