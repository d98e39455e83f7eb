//! The search controller: the parent run of a `matrix` asks its tuner for trials, starts each
//! as a child run (`pipeline` = the parent) with a controller of its own on the same executor,
//! at most `concurrency` at once, tells the tuner each result (the trial's last value of the
//! metric), applies early stopping, and keeps the parent's outputs up to date (trials, best so
//! far) so that `ops get` shows the progress from anywhere. Stopping the parent stops every
//! trial. `iterative` searches are driven by a tuner run ([`iterative`]); stopping policies
//! are in [`policy`].

mod iterative;
mod policy;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use polyaxon_server::api::{RunMeta, RunStatus, V1OperationBody, V1Run};
use polyaxonfile::spec::{EarlyStopping, Matrix, Optimization, OptimizationMetric};
use serde_json::{Map, Value as J, json};

pub use policy::verdict;

use super::plan::RunSpec;
use super::{Ctl, Outcome, launch};
use crate::client::RunRef;
use crate::scheduler::tuner::{self, Ask};

/// A started trial.
struct Trial {
    ask: Ask,
    uuid: String,
    /// Its status and objective once ended.
    ended: Option<(RunStatus, Option<f64>)>,
}

/// What every trial of a search shares.
struct Parent<'a> {
    /// The search's operation: each trial's, without its matrix, with the trial's params.
    base: &'a J,
    meta: RunMeta,
    /// The prefix of the trials' names.
    name: String,
}

impl<'a> Parent<'a> {
    fn of(run: &V1Run, spec: &'a RunSpec) -> Parent<'a> {
        Parent {
            base: &spec.operation,
            meta: run.meta(),
            name: run.name.clone().unwrap_or_else(|| "trial".into()),
        }
    }
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
pub async fn drive(ctl: &Ctl<'_>, run: &V1Run, spec: &RunSpec, matrix: &Matrix) -> Result<Outcome> {
    let api = &ctl.api;
    let parent = Parent::of(run, spec);
    if let Matrix::Iterative(it) = matrix {
        return iterative::drive(ctl, &parent, matrix, it).await;
    }
    let mut tuner = match tuner::for_matrix(matrix, None) {
        Ok(t) => t,
        Err(e) => {
            api.status(RunStatus::Failed, "MatrixInvalid", &e, None)
                .await?;
            return Ok(Outcome::Failed(e));
        }
    };
    let concurrency = matrix.concurrency().filter(|c| *c > 0).unwrap_or(1) as usize;
    let metric = objective(matrix);
    let early = matrix.early_stopping().to_vec();
    if !api
        .status(
            RunStatus::Running,
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
    let mut published = Map::new();
    let mut policies = policy::Policies::default();
    loop {
        // The parent stopped from elsewhere: every trial goes too.
        if stopping.is_none() && api.stop_requested().await? {
            stopping = Some("stopped on request".into());
        }
        // Start what the tuner has, up to the concurrency.
        let running = trials.values().filter(|t| t.ended.is_none()).count();
        if stopping.is_none() && running < concurrency {
            for ask in tuner.ask(concurrency - running) {
                let t = start_trial(ctl, &parent, &ask, &trials).await?;
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
            children.insert(
                t.uuid.clone(),
                api.client.get_run(&api.r.sibling(&t.uuid)).await?,
            );
        }
        let mut told = Vec::new();
        for (id, t) in trials.iter_mut().filter(|(_, t)| t.ended.is_none()) {
            let Some(c) = children.get(&t.uuid) else {
                continue;
            };
            let output = |name: &str| {
                c.outputs
                    .as_ref()
                    .and_then(|o| o.get(name))
                    .and_then(J::as_f64)
            };
            let value = metric.as_ref().and_then(|m| output(&m.name));
            // A threshold reached, even while the trial still runs.
            if stopping.is_none() {
                for e in &early {
                    if let EarlyStopping::Metric(me) = e
                        && me.policy.is_none()
                        && let Some(v) = output(&me.metric)
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
            let status = c.status.unwrap_or_default();
            if status.is_done() {
                let v = if status == RunStatus::Succeeded {
                    value
                } else {
                    None
                };
                t.ended = Some((status, v));
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
        if stopping.is_none() {
            policies.apply(api, &trials, &early).await;
        }
        // Failures past the allowed share stop the search.
        let done: Vec<&Trial> = trials.values().filter(|t| t.ended.is_some()).collect();
        if stopping.is_none() && !done.is_empty() {
            let failed = done
                .iter()
                .filter(|t| t.ended.is_some_and(|e| e.0 == RunStatus::Failed))
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
            let _ = api.client.patch_outputs(&api.r, summary.clone()).await;
            published = summary;
        }
        let active = trials.values().filter(|t| t.ended.is_none()).count();
        if let Some(why) = &stopping {
            // Stop what runs, then end once nothing does.
            for t in trials.values().filter(|t| t.ended.is_none()) {
                stop_child(ctl, &t.uuid).await;
            }
            if active == 0 {
                if why == "stopped on request" {
                    api.status(RunStatus::Stopped, "MatrixStopped", why, None)
                        .await?;
                    return Ok(Outcome::Stopped(why.clone()));
                }
                api.log(why.clone()).await;
                api.status(RunStatus::Succeeded, "EarlyStopping", why, None)
                    .await?;
                return Ok(Outcome::Succeeded);
            }
        } else if active == 0 && tuner.exhausted() {
            return finish(ctl, &trials).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Asks a child to stop unless it is stopping or ended already.
async fn stop_child(ctl: &Ctl<'_>, uuid: &str) {
    let tr = ctl.api.r.sibling(uuid);
    if let Ok(cur) = ctl.api.client.get_run(&tr).await
        && !matches!(cur.status, Some(RunStatus::Stopping | RunStatus::Stopped))
        && !cur.is_done()
    {
        let _ = ctl.api.client.stop_run(&tr).await;
    }
}

/// Waits for runs to end (`None` when the parent was stopped meanwhile: they are stopped).
async fn wait_all(ctl: &Ctl<'_>, uuids: &[String]) -> Result<Option<Vec<V1Run>>> {
    let api = &ctl.api;
    loop {
        let stop = api.stop_requested().await?;
        let mut runs = Vec::new();
        for u in uuids {
            let tr = api.r.sibling(u);
            let run = api.client.get_run(&tr).await?;
            if stop && !run.is_done() && run.status != Some(RunStatus::Stopping) {
                let _ = api.client.stop_run(&tr).await;
            }
            runs.push(run);
        }
        if runs.iter().all(V1Run::is_done) {
            return Ok(if stop { None } else { Some(runs) });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Creates a child run of the search with `content` and starts its supervisor.
async fn start_child(
    ctl: &Ctl<'_>,
    content: String,
    name: String,
    meta: RunMeta,
) -> Result<RunRef> {
    let r = &ctl.api.r;
    let created = ctl
        .api
        .client
        .create_run(
            &r.owner,
            &r.project,
            &V1OperationBody {
                content: Some(content),
                is_managed: Some(true),
                managed_by: Some("cli".into()),
                name: Some(name),
                meta_info: Some(meta.to_map()),
                ..Default::default()
            },
        )
        .await?;
    let tr = r.sibling(&created.uuid.unwrap_or_default());
    launch::spawn(ctl.settings, &tr, ctl.executor.kind())?;
    Ok(tr)
}

/// The meta of a child: the parent's code, on the parent's executor, in the search.
fn child_meta(ctl: &Ctl<'_>, parent: &Parent<'_>) -> RunMeta {
    RunMeta {
        code_ref: parent.meta.code_ref.clone(),
        cwd: parent.meta.cwd.clone(),
        stdout_metrics: parent.meta.stdout_metrics,
        executor_kind: Some(ctl.executor.kind()),
        pipeline: Some(ctl.api.r.uuid.clone()),
        pipeline_kind: Some("matrix".into()),
        ..Default::default()
    }
}

/// The search's final status once every trial ended: failed when none succeeded.
async fn finish(ctl: &Ctl<'_>, trials: &BTreeMap<usize, Trial>) -> Result<Outcome> {
    let ok = trials
        .values()
        .filter(|t| t.ended.is_some_and(|e| e.0 == RunStatus::Succeeded))
        .count();
    let msg = format!("{} trials, {ok} succeeded", trials.len());
    if ok == 0 && !trials.is_empty() {
        let msg = format!("every trial failed ({msg})");
        ctl.api
            .status(RunStatus::Failed, "MatrixFailed", &msg, None)
            .await?;
        return Ok(Outcome::Failed(msg));
    }
    ctl.api
        .status(RunStatus::Succeeded, "MatrixSucceeded", &msg, None)
        .await?;
    Ok(Outcome::Succeeded)
}

async fn start_trial(
    ctl: &Ctl<'_>,
    parent: &Parent<'_>,
    ask: &Ask,
    trials: &BTreeMap<usize, Trial>,
) -> Result<Trial> {
    let content = trial_content(parent.base, &ask.params)?;
    // Hyperband's `resume`: the previous rung's run continues, with more of the resource.
    if let Some(prev) = ask.resume_of.and_then(|p| trials.get(&p)) {
        let tr = ctl.api.r.sibling(&prev.uuid);
        ctl.api
            .client
            .resume_run(
                &tr,
                &V1Run {
                    content: Some(content),
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("resuming trial {}", prev.ask.id))?;
        launch::spawn(ctl.settings, &tr, ctl.executor.kind())?;
        return Ok(Trial {
            ask: ask.clone(),
            uuid: prev.uuid.clone(),
            ended: None,
        });
    }
    let meta = RunMeta {
        trial: Some(ask.id as u64),
        ..child_meta(ctl, parent)
    };
    let tr = start_child(ctl, content, format!("{}-{}", parent.name, ask.id), meta)
        .await
        .with_context(|| format!("creating trial {}", ask.id))?;
    Ok(Trial {
        ask: ask.clone(),
        uuid: tr.uuid,
        ended: None,
    })
}

/// The parent's outputs: counts, and the best trial so far with its params.
fn summarize(
    trials: &BTreeMap<usize, Trial>,
    metric: Option<&OptimizationMetric>,
) -> Map<String, J> {
    let count = |s: RunStatus| {
        trials
            .values()
            .filter(|t| t.ended.is_some_and(|e| e.0 == s))
            .count()
    };
    let mut out = Map::from_iter([
        ("trials".to_string(), J::from(trials.len())),
        (
            "trials_running".to_string(),
            J::from(trials.values().filter(|t| t.ended.is_none()).count()),
        ),
        (
            "trials_succeeded".to_string(),
            J::from(count(RunStatus::Succeeded)),
        ),
        (
            "trials_failed".to_string(),
            J::from(count(RunStatus::Failed)),
        ),
        (
            "trials_stopped".to_string(),
            J::from(count(RunStatus::Stopped)),
        ),
    ]);
    if let Some(m) = metric {
        let best = trials
            .values()
            .filter_map(|t| t.ended.and_then(|e| e.1).map(|v| (t, v)))
            .fold(None::<(&Trial, f64)>, |acc, (t, v)| match acc {
                Some((_, bv)) if !tuner::better(m, Some(v), Some(bv)) => acc,
                _ => Some((t, v)),
            });
        if let Some((t, v)) = best {
            out.insert("best_trial".into(), J::String(t.uuid.clone()));
            out.insert(format!("best_{}", m.name), json!(v));
            out.insert(
                "best_params".into(),
                J::Object(t.ask.params.iter().cloned().collect()),
            );
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
    fn thresholds_follow_the_direction() {
        assert!(reached(Optimization::Maximize, 0.9, 0.9));
        assert!(!reached(Optimization::Maximize, 0.8, 0.9));
        assert!(reached(Optimization::Minimize, 0.1, 0.2));
        assert!(!reached(Optimization::Minimize, 0.3, 0.2));
    }
}
