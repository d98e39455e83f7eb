//! `iterative` searches: a tuner run (the `tuner.hubRef` component) proposes each batch. It
//! gets `iteration` (int), `results` (the trials so far: params, status, outputs) and `matrix`
//! as params, and answers with `suggestions`, a list of param mappings, as an output
//! (`log_outputs(suggestions=[...])`) or in `outputs/suggestions.json`. An empty list ends the
//! search.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use polyaxon_server::api::{RunMeta, RunStatus};
use polyaxonfile::spec::{Iterative, Matrix};
use serde_json::{Map, Value as J, json};

use super::{
    Parent, Trial, child_meta, finish, show_params, start_child, start_trial, summarize, wait_all,
};
use crate::controller::{Ctl, Outcome, plan};
use crate::scheduler::tuner::Ask;

/// Fails the search with `msg` (the tuner could not go on).
async fn tuner_failed(ctl: &Ctl<'_>, msg: String) -> Result<Outcome> {
    ctl.api
        .status(RunStatus::Failed, "TunerFailed", &msg, None)
        .await?;
    Ok(Outcome::Failed(msg))
}

async fn stopped(ctl: &Ctl<'_>) -> Result<Outcome> {
    ctl.api
        .status(
            RunStatus::Stopped,
            "MatrixStopped",
            "stopped on request",
            None,
        )
        .await?;
    Ok(Outcome::Stopped("stopped on request".into()))
}

pub(super) async fn drive(
    ctl: &Ctl<'_>,
    parent: &Parent<'_>,
    matrix: &Matrix,
    it: &Iterative,
) -> Result<Outcome> {
    let api = &ctl.api;
    let Some(tuner) = &it.tuner else {
        let msg =
            "an `iterative` matrix needs `tuner: {hubRef: …}`, the component proposing each batch";
        api.status(RunStatus::Failed, "MatrixInvalid", msg, None)
            .await?;
        return Ok(Outcome::Failed(msg.into()));
    };
    let matrix_json = parent.base.get("matrix").cloned().unwrap_or(J::Null);
    let concurrency = matrix.concurrency().filter(|c| *c > 0).unwrap_or(1) as usize;
    if !api
        .status(
            RunStatus::Running,
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
        let content = match plan::compile(
            ctl.settings,
            "the tuner",
            &format!("the tuner `{}` cannot run", tuner.hub_ref),
            &serde_json::to_string(&op)?,
            polyaxonfile::placeholder_globals(None),
            Default::default(),
        ) {
            Ok(report) => report.prepared.node.to_json(),
            Err(e) => return tuner_failed(ctl, crate::error::said(&e)).await,
        };
        let meta = RunMeta {
            tuner: Some(true),
            code_ref: None,
            stdout_metrics: None,
            ..child_meta(ctl, parent)
        };
        let tr = start_child(
            ctl,
            serde_json::to_string(&content)?,
            format!("{}-tuner-{iteration}", parent.name),
            meta,
        )
        .await
        .with_context(|| format!("creating the tuner run of iteration {iteration}"))?;
        let tuner_uuid = tr.uuid.clone();
        api.log(format!(
            "iteration {iteration}: the tuner runs ({tuner_uuid})"
        ))
        .await;
        let Some(done) = wait_all(ctl, std::slice::from_ref(&tuner_uuid)).await? else {
            return stopped(ctl).await;
        };
        let t = &done[0];
        if t.status != Some(RunStatus::Succeeded) {
            let msg = format!(
                "the tuner of iteration {iteration} {} (see `polyaxon logs {tuner_uuid}`)",
                t.status.unwrap_or_default()
            );
            return tuner_failed(ctl, msg).await;
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
            return tuner_failed(ctl, msg).await;
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
                return tuner_failed(ctl, msg).await;
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
                let t = start_trial(ctl, parent, ask, &trials).await?;
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
            let Some(ended) = wait_all(ctl, &uuids).await? else {
                return stopped(ctl).await;
            };
            for (ask, run) in chunk.iter().zip(&ended) {
                let st = run.status.unwrap_or_default();
                api.log(format!("trial {} {st}", ask.id)).await;
                if let Some(t) = trials.get_mut(&ask.id) {
                    t.ended = Some((st, None));
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
                .patch_outputs(&api.r, summarize(&trials, None))
                .await;
        }
    }
    finish(ctl, &trials).await
}
