//! Driving a search: the parent run (`ops execute` of a run whose operation has a `matrix`)
//! asks its tuner for trials, starts each as a child run (`pipeline` = the parent) on the
//! executor, at most `concurrency` at once, tells the tuner each result (the trial's last value
//! of the metric), applies early stopping, and keeps the parent's outputs up to date (trials,
//! best so far) so that `ops get` shows the progress from anywhere. Stopping the parent stops
//! every trial.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use http::Method;
use polyaxon_server::api::{V1OperationBody, V1Run};
use polyaxonfile::spec::{EarlyStopping, Matrix, Optimization, OptimizationMetric, StoppingPolicy};
use serde_json::{Map, Value as J, json};

use super::tuner::{self, Ask};
use crate::client::RunRef;
use crate::context::Ctx;
use crate::supervisor::{Api, Outcome};

const FINAL: &[&str] = &[
    "succeeded",
    "failed",
    "stopped",
    "skipped",
    "upstream_failed",
];

/// A started trial.
struct Trial {
    ask: Ask,
    uuid: String,
    /// Its status and objective once ended.
    ended: Option<(String, Option<f64>)>,
}

/// The metric the search optimizes or watches: the matrix's, else its early stopping's.
pub fn objective(m: &Matrix) -> Option<OptimizationMetric> {
    let own = match m {
        Matrix::Hyperband(h) => h.metric.clone(),
        Matrix::Bayes(b) => Some(b.metric.clone()),
        Matrix::Hyperopt(h) => h.metric.clone(),
        Matrix::Tpe(t) => Some(t.metric.clone()),
        _ => None,
    };
    own.or_else(|| {
        m.early_stopping().iter().find_map(|e| match e {
            EarlyStopping::Metric(me) => Some(OptimizationMetric {
                name: me.metric.clone(),
                optimization: Some(me.optimization),
            }),
            EarlyStopping::Failure(_) => None,
        })
    })
}

/// The operation a trial runs: the search's, without its matrix, with the trial's params.
fn trial_content(base: &J, params: &[(String, J)]) -> Result<String> {
    let mut op = base.clone();
    let obj = op
        .as_object_mut()
        .context("the search's operation is not a mapping")?;
    obj.remove("matrix");
    let p = obj.entry("params").or_insert_with(|| J::Object(Map::new()));
    let p = p.as_object_mut().context("`params` is not a mapping")?;
    for (name, v) in params {
        p.insert(name.clone(), json!({ "value": v }));
    }
    Ok(serde_json::to_string(&op)?)
}

fn show_params(params: &[(String, J)]) -> String {
    params
        .iter()
        .map(|(k, v)| match v {
            J::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `v` reached the early-stopping `target` for `opt`.
fn reached(opt: Optimization, v: f64, target: f64) -> bool {
    match opt {
        Optimization::Maximize => v >= target,
        Optimization::Minimize => v <= target,
    }
}

/// Runs the search to its end. The parent's final status is written here.
pub(crate) async fn drive(
    ctx: &Ctx,
    api: &Api,
    parent: &V1Run,
    matrix: &Matrix,
    executor: &str,
) -> Result<Outcome> {
    let r = api.r.clone();
    let content = parent.content.as_deref().unwrap_or("");
    let base: J = serde_json::from_str(content)
        .context("the search's operation is not JSON (create it with `polyaxon run`)")?;
    if let Matrix::Iterative(it) = matrix {
        return drive_iterative(ctx, api, parent, matrix, it, executor).await;
    }
    let mut tuner = match tuner::for_matrix(matrix, None) {
        Ok(t) => t,
        Err(e) => {
            api.status("failed", "MatrixInvalid", &e, None).await?;
            return Ok(Outcome::Failed(e));
        }
    };
    let concurrency = matrix.concurrency().filter(|c| *c > 0).unwrap_or(1) as usize;
    let metric = objective(matrix);
    let early = matrix.early_stopping().to_vec();
    let parent_meta = parent.meta_info.clone().unwrap_or_default();
    let name = parent.name.clone().unwrap_or_else(|| "trial".into());
    if !api
        .status(
            "running",
            "MatrixRunning",
            &format!(
                "the `{}` search is running, {concurrency} trial(s) at a time",
                matrix.kind()
            ),
            None,
        )
        .await?
    {
        return Ok(Outcome::Stopped("stopped before it started".into()));
    }

    let mut trials: BTreeMap<usize, Trial> = BTreeMap::new();
    let mut stopping: Option<String> = None;
    let mut published = J::Null;
    let mut series: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    let mut evaluated: BTreeMap<String, i64> = BTreeMap::new();
    let mut last_policy_check = std::time::Instant::now();
    loop {
        // The parent stopped from elsewhere: every trial goes too.
        let me = api.current().await?;
        if stopping.is_none() && matches!(me.status.as_deref(), Some("stopping" | "stopped")) {
            stopping = Some("stopped on request".into());
        }
        // Start what the tuner has, up to the concurrency.
        let running = trials.values().filter(|t| t.ended.is_none()).count();
        if stopping.is_none() && running < concurrency {
            for ask in tuner.ask(concurrency - running) {
                let t = start_trial(
                    ctx,
                    api,
                    &r,
                    &base,
                    &parent_meta,
                    &name,
                    executor,
                    &ask,
                    &trials,
                )
                .await?;
                api.log(format!(
                    "trial {} started ({}{}): {}",
                    ask.id,
                    show_params(&ask.params),
                    if ask.note.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", ask.note)
                    },
                    t.uuid
                ))
                .await;
                trials.insert(ask.id, t);
            }
        }
        // What the trials did.
        let mut children: BTreeMap<String, V1Run> = BTreeMap::new();
        for t in trials.values().filter(|t| t.ended.is_none()) {
            let tr = RunRef {
                uuid: t.uuid.clone(),
                ..r.clone()
            };
            children.insert(t.uuid.clone(), api.client.get_run(&tr).await?);
        }
        let mut told = Vec::new();
        for (id, t) in trials.iter_mut().filter(|(_, t)| t.ended.is_none()) {
            let Some(c) = children.get(&t.uuid) else {
                continue;
            };
            let value = metric.as_ref().and_then(|m| {
                c.outputs
                    .as_ref()
                    .and_then(|o| o.get(&m.name))
                    .and_then(J::as_f64)
            });
            // A threshold reached, even while the trial still runs.
            if stopping.is_none() {
                for e in &early {
                    if let EarlyStopping::Metric(me) = e
                        && me.policy.is_none()
                        && let Some(v) = c
                            .outputs
                            .as_ref()
                            .and_then(|o| o.get(&me.metric))
                            .and_then(J::as_f64)
                        && reached(me.optimization, v, me.value)
                    {
                        stopping = Some(format!(
                            "early stopping: trial {id} reached {}={v} ({} {})",
                            me.metric,
                            if me.optimization == Optimization::Maximize {
                                ">="
                            } else {
                                "<="
                            },
                            me.value
                        ));
                    }
                }
            }
            let status = c.status.clone().unwrap_or_default();
            if FINAL.contains(&status.as_str()) {
                let v = if status == "succeeded" { value } else { None };
                t.ended = Some((status.clone(), v));
                told.push((*id, v, status));
            }
        }
        for (id, v, status) in told {
            tuner.tell(id, v);
            let shown = match (&metric, v) {
                (Some(m), Some(v)) => format!(", {}={v}", m.name),
                _ => String::new(),
            };
            api.log(format!("trial {id} {status}{shown}")).await;
        }
        // Policies: trials doing worse than the others at the same step are stopped.
        if stopping.is_none() && last_policy_check.elapsed() >= Duration::from_secs(1) {
            last_policy_check = std::time::Instant::now();
            for e in &early {
                if let EarlyStopping::Metric(me) = e
                    && let Some(policy) = &me.policy
                {
                    apply_policy(api, &r, &trials, me, policy, &mut series, &mut evaluated).await;
                }
            }
        }
        // Failures past the allowed share stop the search.
        let done: Vec<&Trial> = trials.values().filter(|t| t.ended.is_some()).collect();
        if stopping.is_none() && !done.is_empty() {
            let failed = done
                .iter()
                .filter(|t| t.ended.as_ref().is_some_and(|e| e.0 == "failed"))
                .count();
            for e in &early {
                if let EarlyStopping::Failure(f) = e
                    && failed as f64 * 100.0 / done.len() as f64 > f.percent
                {
                    stopping = Some(format!(
                        "early stopping: {failed} of {} trials failed, more than {}%",
                        done.len(),
                        f.percent
                    ));
                }
            }
        }
        // Progress and the best so far, in the parent's outputs.
        let summary = summarize(&trials, metric.as_ref());
        if summary != published {
            let _ = api
                .client
                .json::<V1Run>(
                    Method::PATCH,
                    &r.api(""),
                    Some(&json!({"outputs": summary, "merge": true})),
                )
                .await;
            published = summary;
        }
        let active = trials.values().filter(|t| t.ended.is_none()).count();
        if let Some(why) = &stopping {
            // Stop what runs, then end once nothing does.
            for t in trials.values().filter(|t| t.ended.is_none()) {
                let tr = RunRef {
                    uuid: t.uuid.clone(),
                    ..r.clone()
                };
                if let Ok(cur) = api.client.get_run(&tr).await
                    && !matches!(cur.status.as_deref(), Some("stopping" | "stopped"))
                {
                    let _ = api.client.stop_run(&tr).await;
                }
            }
            if active == 0 {
                let user_stop = why == "stopped on request";
                let (kind, reason) = if user_stop {
                    ("stopped", "MatrixStopped")
                } else {
                    ("succeeded", "EarlyStopping")
                };
                if user_stop {
                    api.status(kind, reason, why, None).await?;
                    return Ok(Outcome::Stopped(why.clone()));
                }
                api.log(why.clone()).await;
                api.status(kind, reason, why, None).await?;
                return Ok(Outcome::Succeeded);
            }
        } else if active == 0 && tuner.exhausted() {
            return finish(api, &trials).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits for runs to end (`None` when the parent was stopped meanwhile: they are stopped).
async fn wait_all(api: &Api, r: &RunRef, uuids: &[String]) -> Result<Option<Vec<V1Run>>> {
    loop {
        let me = api.current().await?;
        let stop = matches!(me.status.as_deref(), Some("stopping" | "stopped"));
        let mut runs = Vec::new();
        for u in uuids {
            let tr = RunRef {
                uuid: u.clone(),
                ..r.clone()
            };
            let run = api.client.get_run(&tr).await?;
            let st = run.status.clone().unwrap_or_default();
            if stop && !FINAL.contains(&st.as_str()) && st != "stopping" {
                let _ = api.client.stop_run(&tr).await;
            }
            runs.push(run);
        }
        let all_done = runs
            .iter()
            .all(|t| FINAL.contains(&t.status.as_deref().unwrap_or("")));
        if all_done {
            return Ok(if stop { None } else { Some(runs) });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `iterative`: a tuner run (the `tuner.hubRef` component) proposes each batch. It gets
/// `iteration` (int), `results` (the trials so far: params, status, outputs) and `matrix` as
/// params, and answers with `suggestions`, a list of param mappings, as an output
/// (`log_outputs(suggestions=[...])`) or in `outputs/suggestions.json`. An empty list ends
/// the search.
async fn drive_iterative(
    ctx: &Ctx,
    api: &Api,
    parent: &V1Run,
    matrix: &Matrix,
    it: &polyaxonfile::spec::Iterative,
    executor: &str,
) -> Result<Outcome> {
    let r = api.r.clone();
    let Some(tuner) = &it.tuner else {
        let msg =
            "an `iterative` matrix needs `tuner: {hubRef: …}`, the component proposing each batch";
        api.status("failed", "MatrixInvalid", msg, None).await?;
        return Ok(Outcome::Failed(msg.into()));
    };
    let base: J = serde_json::from_str(parent.content.as_deref().unwrap_or(""))
        .context("the search's operation is not JSON (create it with `polyaxon run`)")?;
    let matrix_json = base.get("matrix").cloned().unwrap_or(J::Null);
    let concurrency = matrix.concurrency().filter(|c| *c > 0).unwrap_or(1) as usize;
    let parent_meta = parent.meta_info.clone().unwrap_or_default();
    let name = parent.name.clone().unwrap_or_else(|| "trial".into());
    if !api
        .status(
            "running",
            "MatrixRunning",
            "the `iterative` search is running",
            None,
        )
        .await?
    {
        return Ok(Outcome::Stopped("stopped before it started".into()));
    }
    let mut trials: BTreeMap<usize, Trial> = BTreeMap::new();
    let mut results: Vec<J> = Vec::new();
    for iteration in 0..it.max_iterations.max(0) {
        let mut params = Map::new();
        if let Some(p) = &tuner.params {
            for (k, v) in p.iter() {
                params.insert(k.clone(), serde_json::to_value(v)?);
            }
        }
        params.insert("iteration".into(), json!({ "value": iteration }));
        params.insert("results".into(), json!({ "value": results }));
        params.insert("matrix".into(), json!({ "value": matrix_json }));
        let op =
            json!({"version": 1.1, "kind": "operation", "hubRef": tuner.hub_ref, "params": params});
        // The hub component resolved here (the hub is this machine's), inlined.
        let content = {
            let opts = polyaxonfile::Options {
                hub_dirs: crate::settings::hub_dirs(),
                preset_dirs: crate::settings::preset_dirs(),
                ..Default::default()
            };
            let mut session = polyaxonfile::Session::new();
            let text = serde_json::to_string(&op)?;
            match polyaxonfile::check_text(&mut session, "the tuner", &text, &opts) {
                Ok(report) => report.prepared.node.to_json(),
                Err(d) => {
                    let msg = format!(
                        "the tuner `{}` cannot run:\n{}",
                        tuner.hub_ref,
                        d.render(&session.sources, false)
                    );
                    api.status("failed", "TunerFailed", &msg, None).await?;
                    return Ok(Outcome::Failed(msg));
                }
            }
        };
        let mut meta = Map::new();
        meta.insert("executor_kind".into(), J::String(executor.into()));
        meta.insert("pipeline".into(), J::String(r.uuid.clone()));
        meta.insert("pipeline_kind".into(), J::String("matrix".into()));
        meta.insert("tuner".into(), J::Bool(true));
        if let Some(cwd) = parent_meta.get("cwd") {
            meta.insert("cwd".into(), cwd.clone());
        }
        let tr = start_child(
            ctx,
            api,
            &r,
            serde_json::to_string(&content)?,
            format!("{name}-tuner-{iteration}"),
            meta,
            executor,
        )
        .await
        .with_context(|| format!("creating the tuner run of iteration {iteration}"))?;
        let tuner_uuid = tr.uuid.clone();
        api.log(format!(
            "iteration {iteration}: the tuner runs ({tuner_uuid})"
        ))
        .await;
        let Some(done) = wait_all(api, &r, std::slice::from_ref(&tuner_uuid)).await? else {
            api.status("stopped", "MatrixStopped", "stopped on request", None)
                .await?;
            return Ok(Outcome::Stopped("stopped on request".into()));
        };
        let t = &done[0];
        if t.status.as_deref() != Some("succeeded") {
            let msg = format!(
                "the tuner of iteration {iteration} {} (see `polyaxon logs {tuner_uuid}`)",
                t.status.clone().unwrap_or_default()
            );
            api.status("failed", "TunerFailed", &msg, None).await?;
            return Ok(Outcome::Failed(msg));
        }
        let suggestions = match t.outputs.as_ref().and_then(|o| o.get("suggestions")) {
            Some(s) => s.clone(),
            None => match api
                .client
                .download_file(&tr, "outputs/suggestions.json")
                .await
            {
                Ok(resp) => serde_json::from_slice(&resp.bytes().await.unwrap_or_default())
                    .unwrap_or(J::Null),
                Err(_) => J::Null,
            },
        };
        let Some(list) = suggestions.as_array() else {
            let msg = format!(
                "the tuner of iteration {iteration} gave no `suggestions` (a list of param mappings, as an output or in outputs/suggestions.json)"
            );
            api.status("failed", "TunerFailed", &msg, None).await?;
            return Ok(Outcome::Failed(msg));
        };
        if list.is_empty() {
            api.log(format!(
                "iteration {iteration}: the tuner has no more suggestions"
            ))
            .await;
            break;
        }
        // The batch, `concurrency` at a time.
        let mut batch: Vec<Ask> = Vec::new();
        for s in list {
            let Some(obj) = s.as_object() else {
                let msg = format!("a suggestion of iteration {iteration} is not a mapping: {s}");
                api.status("failed", "TunerFailed", &msg, None).await?;
                return Ok(Outcome::Failed(msg));
            };
            batch.push(Ask {
                id: trials.len() + batch.len(),
                params: obj.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                resume_of: None,
                note: format!("iteration {iteration}"),
            });
        }
        for chunk in batch.chunks(concurrency) {
            let mut uuids = Vec::new();
            for ask in chunk {
                let t = start_trial(
                    ctx,
                    api,
                    &r,
                    &base,
                    &parent_meta,
                    &name,
                    executor,
                    ask,
                    &trials,
                )
                .await?;
                api.log(format!(
                    "trial {} started ({}; iteration {iteration}): {}",
                    ask.id,
                    show_params(&ask.params),
                    t.uuid
                ))
                .await;
                uuids.push(t.uuid.clone());
                trials.insert(ask.id, t);
            }
            let Some(ended) = wait_all(api, &r, &uuids).await? else {
                api.status("stopped", "MatrixStopped", "stopped on request", None)
                    .await?;
                return Ok(Outcome::Stopped("stopped on request".into()));
            };
            for (ask, run) in chunk.iter().zip(&ended) {
                let st = run.status.clone().unwrap_or_default();
                api.log(format!("trial {} {st}", ask.id)).await;
                if let Some(t) = trials.get_mut(&ask.id) {
                    t.ended = Some((st.clone(), None));
                }
                results.push(json!({
                    "params": J::Object(ask.params.iter().cloned().collect()),
                    "status": st,
                    "outputs": run.outputs.clone().unwrap_or_default(),
                    "uuid": run.uuid,
                }));
            }
            let _ = api
                .client
                .json::<V1Run>(
                    Method::PATCH,
                    &r.api(""),
                    Some(&json!({"outputs": summarize(&trials, None), "merge": true})),
                )
                .await;
        }
    }
    finish(api, &trials).await
}

/// A trial's series of `metric`: (step, value), steps increasing.
async fn metric_series(api: &Api, r: &RunRef, uuid: &str, metric: &str) -> Vec<(i64, f64)> {
    let tr = RunRef {
        uuid: uuid.to_string(),
        ..r.clone()
    };
    let Ok(ev) = api.client.metrics(&tr, &[metric.to_string()], None).await else {
        return Vec::new();
    };
    let Some(s) = ev.data.into_iter().find(|s| s.name == metric) else {
        return Vec::new();
    };
    let mut out: Vec<(i64, f64)> = crate::commands::ops::metrics::xy(&s)
        .into_iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(x, v)| (x as i64, v))
        .collect();
    out.sort_by_key(|p| p.0);
    out
}

/// The best value of `s` up to `step`, and the running average up to it.
fn up_to(s: &[(i64, f64)], step: i64, opt: Optimization) -> Option<(f64, f64)> {
    let pts: Vec<f64> = s.iter().take_while(|p| p.0 <= step).map(|p| p.1).collect();
    if pts.is_empty() {
        return None;
    }
    let best = match opt {
        Optimization::Maximize => pts.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        Optimization::Minimize => pts.iter().cloned().fold(f64::INFINITY, f64::min),
    };
    Some((best, pts.iter().sum::<f64>() / pts.len() as f64))
}

/// The verdict of a stopping policy on a trial at `step`: why to stop it, if it should be.
pub fn verdict(
    policy: &StoppingPolicy,
    opt: Optimization,
    mine: &[(i64, f64)],
    others: &[&[(i64, f64)]],
    step: i64,
) -> Option<String> {
    let (min_interval, min_samples) = match policy {
        StoppingPolicy::Median(p) => (p.min_interval, p.min_samples),
        StoppingPolicy::Truncation(p) => (p.min_interval, p.min_samples),
        StoppingPolicy::Diff(p) => (p.min_interval, p.min_samples),
    };
    if step < min_interval.unwrap_or(0) {
        return None;
    }
    let (my_best, _) = up_to(mine, step, opt)?;
    // Others that got as far.
    let peers: Vec<(f64, f64)> = others
        .iter()
        .filter(|o| o.last().is_some_and(|p| p.0 >= step))
        .filter_map(|o| up_to(o, step, opt))
        .collect();
    if peers.is_empty() || peers.len() < min_samples.unwrap_or(1).max(1) as usize {
        return None;
    }
    let worse = |a: f64, b: f64| match opt {
        Optimization::Maximize => a < b,
        Optimization::Minimize => a > b,
    };
    match policy {
        StoppingPolicy::Median(_) => {
            let mut avgs: Vec<f64> = peers.iter().map(|p| p.1).collect();
            avgs.sort_by(f64::total_cmp);
            let m = avgs.len();
            let median = if m % 2 == 1 {
                avgs[m / 2]
            } else {
                (avgs[m / 2 - 1] + avgs[m / 2]) / 2.0
            };
            worse(my_best, median).then(|| {
                format!("its best {my_best} is worse than the median {median} of the others' running averages at step {step}")
            })
        }
        StoppingPolicy::Truncation(p) => {
            let mut all: Vec<f64> = peers.iter().map(|p| p.0).collect();
            all.push(my_best);
            // Rank from the worst: the trial goes when it is within the worst `percent`.
            all.sort_by(|a, b| {
                if worse(*a, *b) {
                    std::cmp::Ordering::Less
                } else if worse(*b, *a) {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            });
            let cut = ((all.len() as f64) * p.percent / 100.0).floor() as usize;
            let rank = all.iter().position(|v| *v == my_best).unwrap_or(all.len());
            (rank < cut).then(|| {
                format!(
                    "it is in the worst {}% of the trials at step {step} ({my_best})",
                    p.percent
                )
            })
        }
        StoppingPolicy::Diff(p) => {
            let best = peers
                .iter()
                .map(|p| p.0)
                .fold(None::<f64>, |acc, v| match acc {
                    Some(a) if !worse(a, v) => Some(a),
                    _ => Some(v),
                })?;
            let gap = (best - my_best).abs() / best.abs().max(1e-12) * 100.0;
            (worse(my_best, best) && gap > p.percent).then(|| {
                format!("its best {my_best} is {gap:.1}% off the best {best} at step {step}")
            })
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn apply_policy(
    api: &Api,
    r: &RunRef,
    trials: &BTreeMap<usize, Trial>,
    me: &polyaxonfile::spec::MetricEarlyStopping,
    policy: &StoppingPolicy,
    cache: &mut BTreeMap<String, Vec<(i64, f64)>>,
    evaluated: &mut BTreeMap<String, i64>,
) {
    let interval = match policy {
        StoppingPolicy::Median(p) => p.evaluation_interval,
        StoppingPolicy::Truncation(p) => p.evaluation_interval,
        StoppingPolicy::Diff(p) => p.evaluation_interval,
    }
    .max(1);
    let include_ended = match policy {
        StoppingPolicy::Truncation(p) => p.include_succeeded.unwrap_or(true),
        _ => true,
    };
    // Fresh series for running trials; ended ones are read once.
    for t in trials.values() {
        if t.ended.is_none() || !cache.contains_key(&t.uuid) {
            let s = metric_series(api, r, &t.uuid, &me.metric).await;
            cache.insert(t.uuid.clone(), s);
        }
    }
    for (id, t) in trials.iter().filter(|(_, t)| t.ended.is_none()) {
        let Some(mine) = cache.get(&t.uuid) else {
            continue;
        };
        let Some(&(step, _)) = mine.last() else {
            continue;
        };
        let last = evaluated.get(&t.uuid).copied().unwrap_or(i64::MIN);
        if last != i64::MIN && step - last < interval {
            continue;
        }
        let others: Vec<&[(i64, f64)]> = trials
            .values()
            .filter(|o| o.uuid != t.uuid && (include_ended || o.ended.is_none()))
            .filter_map(|o| cache.get(&o.uuid).map(Vec::as_slice))
            .collect();
        evaluated.insert(t.uuid.clone(), step);
        if let Some(why) = verdict(policy, me.optimization, mine, &others, step) {
            let tr = RunRef {
                uuid: t.uuid.clone(),
                ..r.clone()
            };
            let _ = api.client.stop_run(&tr).await;
            api.log(format!(
                "trial {id} stopped early ({} policy): {why}",
                policy.kind()
            ))
            .await;
        }
    }
}

/// Creates a child run of the search with `content` and starts its executor.
async fn start_child(
    ctx: &Ctx,
    api: &Api,
    r: &RunRef,
    content: String,
    name: String,
    meta: Map<String, J>,
    executor: &str,
) -> Result<RunRef> {
    let created: V1Run = api
        .client
        .json(
            Method::POST,
            &format!(
                "/api/v1/{}/{}/runs",
                crate::client::seg(&r.owner),
                crate::client::seg(&r.project)
            ),
            Some(&V1OperationBody {
                content: Some(content),
                is_managed: Some(true),
                managed_by: Some("cli".into()),
                name: Some(name),
                meta_info: Some(meta),
                ..Default::default()
            }),
        )
        .await?;
    let tr = RunRef {
        uuid: created.uuid.unwrap_or_default(),
        ..r.clone()
    };
    crate::commands::run::spawn_executor(ctx, &tr, executor)?;
    Ok(tr)
}

/// The search's final status once every trial ended: failed when none succeeded.
async fn finish(api: &Api, trials: &BTreeMap<usize, Trial>) -> Result<Outcome> {
    let ok = trials
        .values()
        .filter(|t| t.ended.as_ref().is_some_and(|e| e.0 == "succeeded"))
        .count();
    let msg = format!("{} trials, {ok} succeeded", trials.len());
    if ok == 0 && !trials.is_empty() {
        let msg = format!("every trial failed ({msg})");
        api.status("failed", "MatrixFailed", &msg, None).await?;
        return Ok(Outcome::Failed(msg));
    }
    api.status("succeeded", "MatrixSucceeded", &msg, None)
        .await?;
    Ok(Outcome::Succeeded)
}

#[allow(clippy::too_many_arguments)]
async fn start_trial(
    ctx: &Ctx,
    api: &Api,
    r: &RunRef,
    base: &J,
    parent_meta: &Map<String, J>,
    name: &str,
    executor: &str,
    ask: &Ask,
    trials: &BTreeMap<usize, Trial>,
) -> Result<Trial> {
    let content = trial_content(base, &ask.params)?;
    // Hyperband's `resume`: the previous rung's run continues, with more of the resource.
    if let Some(prev) = ask.resume_of.and_then(|p| trials.get(&p)) {
        let tr = RunRef {
            uuid: prev.uuid.clone(),
            ..r.clone()
        };
        api.client
            .resume_run(
                &tr,
                &V1Run {
                    content: Some(content),
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("resuming trial {}", prev.ask.id))?;
        crate::commands::run::spawn_executor(ctx, &tr, executor)?;
        return Ok(Trial {
            ask: ask.clone(),
            uuid: prev.uuid.clone(),
            ended: None,
        });
    }
    let mut meta = Map::new();
    for k in ["code_ref", "cwd", "stdout_metrics"] {
        if let Some(v) = parent_meta.get(k) {
            meta.insert(k.into(), v.clone());
        }
    }
    meta.insert("executor_kind".into(), J::String(executor.into()));
    meta.insert("pipeline".into(), J::String(r.uuid.clone()));
    meta.insert("pipeline_kind".into(), J::String("matrix".into()));
    meta.insert("trial".into(), J::from(ask.id));
    let tr = start_child(
        ctx,
        api,
        r,
        content,
        format!("{name}-{}", ask.id),
        meta,
        executor,
    )
    .await
    .with_context(|| format!("creating trial {}", ask.id))?;
    Ok(Trial {
        ask: ask.clone(),
        uuid: tr.uuid,
        ended: None,
    })
}

/// The parent's outputs: counts, and the best trial so far with its params.
fn summarize(trials: &BTreeMap<usize, Trial>, metric: Option<&OptimizationMetric>) -> J {
    let count = |s: &str| {
        trials
            .values()
            .filter(|t| t.ended.as_ref().is_some_and(|e| e.0 == s))
            .count()
    };
    let mut out = json!({
        "trials": trials.len(),
        "trials_running": trials.values().filter(|t| t.ended.is_none()).count(),
        "trials_succeeded": count("succeeded"),
        "trials_failed": count("failed"),
        "trials_stopped": count("stopped"),
    });
    if let Some(m) = metric {
        let best = trials
            .values()
            .filter_map(|t| t.ended.as_ref().and_then(|e| e.1).map(|v| (t, v)))
            .fold(None::<(&Trial, f64)>, |acc, (t, v)| match acc {
                Some((_, bv)) if !tuner::better(m, Some(v), Some(bv)) => acc,
                _ => Some((t, v)),
            });
        if let Some((t, v)) = best {
            out["best_trial"] = J::String(t.uuid.clone());
            out[format!("best_{}", m.name)] = json!(v);
            out["best_params"] = J::Object(t.ask.params.iter().cloned().collect());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_operations_drop_the_matrix_and_set_params() {
        let base = json!({"version": 1.1, "kind": "operation", "matrix": {"kind": "grid"}, "params": {"epochs": {"value": 3}}, "component": {"run": {}}});
        let c: J = serde_json::from_str(
            &trial_content(
                &base,
                &[("lr".into(), json!(0.1)), ("act".into(), json!("relu"))],
            )
            .unwrap(),
        )
        .unwrap();
        assert!(c.get("matrix").is_none());
        assert_eq!(c["params"]["epochs"]["value"], 3);
        assert_eq!(c["params"]["lr"]["value"], 0.1);
        assert_eq!(c["params"]["act"]["value"], "relu");
    }

    #[test]
    fn stopping_policies() {
        let median: StoppingPolicy = crate::scheduler::spec_of(
            r#"{"kind": "median", "evaluationInterval": 1, "minSamples": 2}"#,
        );
        let good: Vec<(i64, f64)> = (0..10).map(|s| (s, 0.5 + s as f64 * 0.05)).collect();
        let ok: Vec<(i64, f64)> = (0..10).map(|s| (s, 0.4 + s as f64 * 0.05)).collect();
        let bad: Vec<(i64, f64)> = (0..5).map(|s| (s, 0.1)).collect();
        let max = Optimization::Maximize;
        assert!(verdict(&median, max, &bad, &[&good, &ok], 4).is_some());
        assert!(verdict(&median, max, &good, &[&bad, &ok], 4).is_none());
        // Too few peers: no verdict.
        assert!(verdict(&median, max, &bad, &[&good], 4).is_none());
        // Minimizing, the same series is the best.
        assert!(verdict(&median, Optimization::Minimize, &bad, &[&good, &ok], 4).is_none());
        let trunc: StoppingPolicy = crate::scheduler::spec_of(
            r#"{"kind": "truncation", "percent": 50, "evaluationInterval": 1}"#,
        );
        assert!(verdict(&trunc, max, &bad, &[&good, &ok, &good], 4).is_some());
        assert!(verdict(&trunc, max, &good, &[&bad, &ok], 4).is_none());
        let diff: StoppingPolicy = crate::scheduler::spec_of(
            r#"{"kind": "diff", "percent": 30, "evaluationInterval": 1, "minInterval": 3}"#,
        );
        assert!(verdict(&diff, max, &bad, &[&good], 4).is_some());
        assert!(
            verdict(&diff, max, &ok, &[&good], 4).is_none(),
            "within 30%"
        );
        assert!(
            verdict(&diff, max, &bad, &[&good], 2).is_none(),
            "before minInterval"
        );
    }

    #[test]
    fn thresholds_follow_the_direction() {
        assert!(reached(Optimization::Maximize, 0.9, 0.9));
        assert!(!reached(Optimization::Maximize, 0.8, 0.9));
        assert!(reached(Optimization::Minimize, 0.1, 0.2));
        assert!(!reached(Optimization::Minimize, 0.3, 0.2));
    }
}
