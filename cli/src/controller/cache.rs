//! The cache: a job whose component, inputs (the `cache.io` subset when given) and code equal
//! those of a run that succeeded (within `cache.ttl` seconds) is not run again: it ends
//! `succeeded` with the reason `CacheHit`, takes that run's outputs, and names it in
//! `meta_info.reused_from`.
//!
//! On for a DAG's operations unless `cache: {disable: true}`; for other runs only when asked
//! (a `cache` section, or `polyaxon run --cache`), as upstream (its issue #1018);
//! `polyaxon run --nocache` turns it off.

use anyhow::Result;
use polyaxon_server::api::{RunMeta, RunStatus, V1Run};
use serde_json::{Map, Value as J, json};
use sha2::{Digest, Sha256};

use super::plan::RunSpec;
use super::{Ctl, Outcome};
use crate::client::ListQuery;

/// Whether the cache applies to this run.
pub fn enabled(spec: &RunSpec, meta: &RunMeta) -> bool {
    let section = spec.compiled.operation.cache.as_ref();
    if section.and_then(|c| c.disable) == Some(true) {
        return false;
    }
    match meta.cache {
        Some(asked) => asked,
        None => section.is_some() || meta.pipeline_kind.as_deref() == Some("dag"),
    }
}

/// The key of what the run's results depend on: its component's run section, its inputs (or
/// those `cache.io` names), its code (the snapshot's tree, or the directory it runs in), and a
/// DAG operation's name.
pub fn key(spec: &RunSpec, meta: &RunMeta) -> String {
    let op = &spec.compiled.operation;
    let io = op.cache.as_ref().and_then(|c| c.io.as_ref());
    let inputs: Map<String, J> = spec
        .compiled
        .values
        .iter()
        .filter(|v| !v.is_output)
        .filter(|v| io.is_none_or(|names| names.contains(&v.name)))
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    let code = match (&meta.code_ref, &meta.cwd) {
        (Some(c), _) => json!({"tree": c.tree, "path": c.path}),
        (None, Some(cwd)) => json!({"cwd": cwd}),
        (None, None) => J::Null,
    };
    // A DAG's operation is cached under its name: two operations written alike in one DAG
    // still both run; the same operation of a DAG run again is reused.
    let what = json!({"run": op.run, "inputs": inputs, "code": code, "op": meta.op});
    let digest = Sha256::digest(serde_json::to_vec(&what).unwrap_or_default());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Looks for a run to reuse (when the cache applies); when there is one, this run ends with
/// its results. `None`: run it.
pub async fn lookup(ctl: &Ctl<'_>, run: &V1Run, spec: &RunSpec) -> Result<Option<Outcome>> {
    let meta = run.meta();
    if !enabled(spec, &meta) {
        return Ok(None);
    }
    let key = key(spec, &meta);
    let api = &ctl.api;
    let q = ListQuery {
        query: Some(format!("cache_key: {key}, status: succeeded")),
        sort: Some("-finished_at".into()),
        limit: Some(1),
        ..Default::default()
    };
    let r = &api.r;
    let Some(hit) = api
        .client
        .list_runs(&r.owner, &r.project, &q)
        .await?
        .results
        .into_iter()
        .find(|h| h.uuid.as_deref() != Some(r.uuid.as_str()))
    else {
        return Ok(None);
    };
    if let Some(ttl) = spec.compiled.operation.cache.as_ref().and_then(|c| c.ttl) {
        let age = hit
            .finished_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| jiff::Timestamp::now().duration_since(t).as_secs());
        if age.is_none_or(|a| a > ttl) {
            return Ok(None);
        }
    }
    let from = hit.uuid.clone().unwrap_or_default();
    api.client
        .patch_run(
            r,
            &V1Run {
                outputs: hit.outputs.clone(),
                meta_info: Some(
                    RunMeta {
                        reused_from: Some(from.clone()),
                        cache_key: Some(key),
                        ..Default::default()
                    }
                    .to_map(),
                ),
                merge: Some(true),
                ..Default::default()
            },
        )
        .await?;
    let msg = format!(
        "the same component, inputs and code succeeded as run {from}: its results are reused"
    );
    api.log(msg.clone()).await;
    api.status(RunStatus::Succeeded, "CacheHit", &msg, None)
        .await?;
    Ok(Some(Outcome::Succeeded))
}
