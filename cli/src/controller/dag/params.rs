//! A DAG operation's params, resolved when it is about to start: `ref: ops.NAME` (an upstream's
//! `outputs.*`, `inputs.*`, `globals.*`, `artifacts.*`), `ref: dag` (the DAG's own), `ref:
//! runs.UUID` (a run of the project); `{{ … }}` in a plain value rendered with the DAG's
//! inputs and globals (as upstream renders a DAG's operations); then `joins` (a query over the
//! project's runs, each join param receiving the list of the matches' values).
//!
//! A value that cannot be found fails the operation with what is missing.

use std::collections::BTreeMap;

use polyaxon_server::api::V1Run;
use polyaxonfile::spec::{Join, Operation, Param};
use serde_json::{Map, Value as J, json};

use crate::client::{ListQuery, RunRef};
use crate::controller::{Ctl, plan};

/// The most runs a join reads (upstream's default and cap).
const JOIN_LIMIT: i64 = 5000;

/// What refs read from.
pub struct Sources<'a> {
    /// The DAG run and its compiled inputs and globals (templates and `ref: dag`).
    pub dag: &'a V1Run,
    pub dag_inputs: &'a Map<String, J>,
    pub dag_globals: &'a J,
    /// The DAG's operations' runs, by operation name, as last seen.
    pub ops: &'a BTreeMap<String, V1Run>,
}

/// The operation's params with every `ref`, template and join resolved, as the `params`
/// mapping of its content; `Err` says why the operation cannot start.
pub async fn resolve(
    ctl: &Ctl<'_>,
    op: &Operation,
    src: &Sources<'_>,
) -> Result<Map<String, J>, String> {
    let mut out = Map::new();
    for (name, p) in op.params.iter().flat_map(|m| m.iter()) {
        let value = match &p.reference {
            Some(r) => from_ref(ctl, r, p, name, src).await?,
            None => match &p.value {
                Some(J::String(s)) if s.contains("{{") => render(s, src)?,
                Some(v) => v.clone(),
                None => J::Null,
            },
        };
        out.insert(name.clone(), with_value(p, value));
    }
    for join in op.joins.iter().flatten() {
        for (name, v) in join_params(ctl, join, src).await? {
            out.insert(name, v);
        }
    }
    Ok(out)
}

/// A top-level operation's `joins`, resolved at its start as a DAG's operations' are: its
/// content with each join param's list of values in `params`, and without `joins`. `None`
/// when it has no joins. `globals` (the run's, for the joins' templates) is made only then.
pub async fn top_level_joins(
    ctl: &Ctl<'_>,
    run: &V1Run,
    globals: impl FnOnce() -> J,
) -> Result<Option<String>, String> {
    let Some(content) = run.content.as_deref() else {
        return Ok(None);
    };
    let Ok(J::Object(mut op)) = serde_json::from_str::<J>(content) else {
        return Ok(None);
    };
    let Some(joins) = op.remove("joins") else {
        return Ok(None);
    };
    let joins: Vec<Join> =
        serde_json::from_value(joins).map_err(|e| format!("the run's `joins`: {e}"))?;
    if joins.is_empty() {
        return Ok(None);
    }
    let (inputs, ops, globals) = (Map::new(), BTreeMap::new(), globals());
    let src = Sources {
        dag: run,
        dag_inputs: &inputs,
        dag_globals: &globals,
        ops: &ops,
    };
    let mut joined = Vec::new();
    for join in &joins {
        joined.extend(join_params(ctl, join, &src).await?);
    }
    let params = op.entry("params").or_insert_with(|| J::Object(Map::new()));
    if let J::Object(m) = params {
        for (name, v) in joined {
            m.insert(name, v);
        }
    }
    Ok(Some(J::Object(op).to_string()))
}

/// The param as the content writes it: its value, and the flags it had (no `ref`).
fn with_value(p: &Param, value: J) -> J {
    let mut m = Map::new();
    m.insert("value".into(), value);
    if let Some(c) = p.context_only {
        m.insert("contextOnly".into(), J::Bool(c));
    }
    if let Some(c) = &p.connection {
        m.insert("connection".into(), J::String(c.clone()));
    }
    if let Some(t) = p.to_init {
        m.insert("toInit".into(), J::Bool(t));
    }
    if let Some(e) = &p.to_env {
        m.insert("toEnv".into(), J::String(e.clone()));
    }
    J::Object(m)
}

/// What a DAG operation's templates see: the DAG's inputs, then `values` (the operation's own
/// resolved params, which win), and the DAG's globals.
fn template_context(
    t: &polyaxonfile::template::Templates,
    src: &Sources<'_>,
    values: &Map<String, J>,
) -> Result<polyaxonfile::template::Context, String> {
    use polyaxonfile::template::{ParamContext, context};
    let mut all: BTreeMap<&str, &J> = src
        .dag_inputs
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    all.extend(values.iter().map(|(k, v)| (k.as_str(), v)));
    let params: Vec<ParamContext<'_>> = all
        .into_iter()
        .map(|(k, v)| ParamContext {
            name: k,
            iotype: None,
            value: v,
            is_flag: false,
            arg_format: None,
            connection: None,
        })
        .collect();
    context(t, &params, src.dag_globals, &J::Object(Map::new()))
}

/// `{{ x }}` rendered with the DAG's inputs and globals, read back as a YAML scalar (as a
/// polyaxonfile's own templates are).
fn render(text: &str, src: &Sources<'_>) -> Result<J, String> {
    let t = polyaxonfile::template::Templates::new(true);
    let ctx = template_context(&t, src, &Map::new())?;
    let out = t.render(text, &ctx).map_err(|e| format!("`{text}`: {e}"))?;
    Ok(polyaxonfile::types::scalar_json(&out))
}

/// Whether the operation's `conditions` hold, rendered with its resolved params (and the
/// DAG's inputs and globals). `Err` says why they cannot be read.
pub fn conditions_hold(
    op: &Operation,
    src: &Sources<'_>,
    params: &Map<String, J>,
) -> Result<bool, String> {
    let Some(cond) = op.conditions.as_deref().filter(|c| !c.trim().is_empty()) else {
        return Ok(true);
    };
    let values: Map<String, J> = params
        .iter()
        .map(|(k, p)| (k.clone(), p.get("value").cloned().unwrap_or(J::Null)))
        .collect();
    let t = polyaxonfile::template::Templates::new(true);
    let ctx = template_context(&t, src, &values)?;
    t.condition(cond, &ctx)
        .map_err(|e| format!("its conditions `{cond}`: {e}"))
}

/// `outputs.loss` (or `{{ outputs.loss }}`) as (section, key).
fn path_of(value: &str) -> (&str, &str) {
    let v = value
        .trim()
        .trim_start_matches("{{")
        .trim_end_matches("}}")
        .trim();
    v.split_once('.').unwrap_or(("", v))
}

async fn from_ref(
    ctl: &Ctl<'_>,
    reference: &str,
    p: &Param,
    name: &str,
    src: &Sources<'_>,
) -> Result<J, String> {
    let value = p.value.as_ref().and_then(J::as_str).unwrap_or("");
    let (section, key) = path_of(value);
    let (section, key) = match reference.strip_prefix("dag.") {
        // `ref: dag.inputs, value: bucket`
        Some(s) => (s, path_of(value).1),
        None => (section, key),
    };
    if reference == "dag" || reference.starts_with("dag.") {
        return read(
            &format!("the DAG's `{section}.{key}`"),
            section,
            key,
            src.dag,
            Some(src.dag_inputs),
            src.dag_globals,
        );
    }
    if let Some(op) = reference.strip_prefix("ops.") {
        let run = src
            .ops
            .get(op)
            .ok_or_else(|| format!("`{name}` takes its value from `{op}`, which has no run"))?;
        let globals = run_globals(ctl, run);
        let v = read(
            &format!("`{name}` from `{op}`"),
            section,
            key,
            run,
            None,
            &globals,
        )?;
        return artifact_or(v, section, key, run, ctl)
            .await
            .ok_or_else(|| format!("`{op}` has no artifact `{key}` for `{name}`"));
    }
    if let Some(uuid) = reference.strip_prefix("runs.") {
        let r = ctl.api.r.sibling(&uuid.replace('-', ""));
        let run = ctl
            .api
            .client
            .get_run(&r)
            .await
            .map_err(|e| format!("`{name}` takes its value from run `{uuid}`: {e}"))?;
        let globals = run_globals(ctl, &run);
        return read(
            &format!("`{name}` from run `{uuid}`"),
            section,
            key,
            &run,
            None,
            &globals,
        );
    }
    Err(format!(
        "`{name}` has `ref: {reference}`; use `ops.NAME`, `runs.UUID` or `dag`"
    ))
}

/// An `artifacts.*` value: a path in the run's artifacts, as the job sees it. `artifacts.NAME`
/// follows the run's lineage first: the path of its artifact `NAME` (what `polyaxon.tracking`
/// recorded with `log_model_ref`, `log_artifact_ref`, a tensorboard's logs…), under the run as
/// the job sees it, or as recorded when outside it (`s3://…`); else the run's own `NAME`
/// directory (`artifacts.outputs`).
async fn artifact_or(v: J, section: &str, key: &str, run: &V1Run, ctl: &Ctl<'_>) -> Option<J> {
    if section != "artifacts" {
        return Some(v);
    }
    if !v.is_null() {
        return Some(v);
    }
    let uuid = run.uuid.as_deref()?;
    let root = ctl.executor.job_root(&ctl.settings.context_root());
    let dir = root.join("artifacts").join(uuid);
    let r = ctl.api.r.sibling(uuid);
    // A run without lineage (or a server without the routes) has its directories only.
    if let Ok(l) = ctl.api.client.run_lineage(&r, None).await
        && let Some(a) = l.results.iter().find(|a| a["name"] == key)
    {
        let path = a["path"].as_str().unwrap_or_default();
        return Some(J::String(
            match crate::client::lineage_path_in_run(path, uuid) {
                Some(rel) => dir.join(rel).display().to_string(),
                None => path.to_string(),
            },
        ));
    }
    Some(J::String(dir.join(key).display().to_string()))
}

/// `section.key` of a run: its outputs, inputs, globals (or an `artifacts` placeholder the
/// caller fills).
fn read(
    what: &str,
    section: &str,
    key: &str,
    run: &V1Run,
    inputs: Option<&Map<String, J>>,
    globals: &J,
) -> Result<J, String> {
    let pick = |m: Option<&Map<String, J>>, kind: &str| -> Result<J, String> {
        let m = m.cloned().unwrap_or_default();
        m.get(key).cloned().ok_or_else(|| {
            let has: Vec<&String> = m.keys().collect();
            if has.is_empty() {
                format!("{what}: no {kind} were recorded")
            } else {
                format!(
                    "{what}: there is no {kind} `{key}` (there are {})",
                    has.iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        })
    };
    match section {
        "outputs" => pick(run.outputs.as_ref(), "outputs"),
        "inputs" => pick(inputs.or(run.inputs.as_ref()), "inputs"),
        "globals" => globals
            .get(key)
            .cloned()
            .ok_or_else(|| format!("{what}: `globals.{key}` is not a global")),
        "artifacts" => Ok(J::Null),
        other => Err(format!(
            "{what}: `{other}.{key}` names no section; use `outputs.`, `inputs.`, `globals.` or `artifacts.`"
        )),
    }
}

/// The globals of another run, as this DAG's jobs see its paths.
fn run_globals(ctl: &Ctl<'_>, run: &V1Run) -> J {
    let r = RunRef {
        uuid: run.uuid.clone().unwrap_or_default(),
        ..ctl.api.r.clone()
    };
    let root = ctl.executor.job_root(&ctl.settings.context_root());
    let dir = root.join("artifacts").join(&r.uuid);
    plan::globals(&r, run, &root, &dir)
}

/// A join's params: each receives the list of its value over the runs the query matches.
async fn join_params(
    ctl: &Ctl<'_>,
    join: &Join,
    src: &Sources<'_>,
) -> Result<Vec<(String, J)>, String> {
    let query = match render(&join.query, src)? {
        J::String(s) => s,
        other => other.to_string(),
    };
    let limit = join.limit.unwrap_or(JOIN_LIMIT).clamp(1, JOIN_LIMIT);
    let mut runs: Vec<V1Run> = Vec::new();
    let mut offset = join.offset.unwrap_or(0).max(0);
    // Pages of at most 1,000 (the API's own limit), until the join's limit.
    while (runs.len() as i64) < limit {
        let page = (limit - runs.len() as i64).min(1000);
        let q = ListQuery {
            query: Some(query.clone()),
            sort: join.sort.clone(),
            limit: Some(page),
            offset: Some(offset),
        };
        let r = &ctl.api.r;
        let got = ctl
            .api
            .client
            .list_runs(&r.owner, &r.project, &q)
            .await
            .map_err(|e| format!("the join `{query}`: {e}"))?;
        let n = got.results.len() as i64;
        runs.extend(got.results);
        offset += n;
        if n < page {
            break;
        }
    }
    let mut out = Vec::new();
    for (name, p) in join.params.iter().flat_map(|m| m.iter()) {
        let value = p.value.as_ref().and_then(J::as_str).unwrap_or("");
        let (section, key) = path_of(value);
        let mut list = Vec::new();
        for run in &runs {
            let globals = run_globals(ctl, run);
            if let Ok(v) = read("", section, key, run, None, &globals)
                && let Some(v) = artifact_or(v, section, key, run, ctl).await
                && !v.is_null()
            {
                list.push(v);
            }
        }
        out.push((name.clone(), with_value(p, J::Array(list))));
    }
    Ok(out)
}

/// The content of a DAG operation about to start: its tree (component inline), with the
/// resolved params and without what only the DAG reads (dependencies, trigger, events,
/// joins, skipOnUpstreamSkip); what the DAG pushes down (termination, plugins, queue, cache)
/// filled where the operation has none.
pub fn content(node: &J, params: Map<String, J>, dag: &J) -> J {
    let mut op = node.as_object().cloned().unwrap_or_default();
    for k in [
        "dependencies",
        "trigger",
        "events",
        "joins",
        "skipOnUpstreamSkip",
        "conditions",
        "dagRef",
    ] {
        op.remove(k);
    }
    op.insert("version".into(), json!(1.1));
    op.insert("kind".into(), J::String("operation".into()));
    op.insert("params".into(), J::Object(params));
    for k in ["termination", "plugins", "queue", "cache"] {
        if !op.contains_key(k)
            && let Some(v) = dag.get(k)
        {
            let mut v = v.clone();
            // The DAG's notifications are the DAG's: its operations do not send them too.
            if k == "plugins"
                && let Some(p) = v.as_object_mut()
            {
                p.remove("notifications");
            }
            op.insert(k.into(), v);
        }
    }
    J::Object(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_paths() {
        assert_eq!(path_of("outputs.loss"), ("outputs", "loss"));
        assert_eq!(path_of("{{ inputs.lr }}"), ("inputs", "lr"));
        assert_eq!(path_of("bucket"), ("", "bucket"));
    }

    #[test]
    fn reading_a_run() {
        let run: V1Run = serde_json::from_value(json!({
            "uuid": "u1", "outputs": {"loss": 0.5}, "inputs": {"lr": 0.1}
        }))
        .unwrap();
        let g = json!({"uuid": "u1"});
        assert_eq!(read("x", "outputs", "loss", &run, None, &g).unwrap(), 0.5);
        assert_eq!(read("x", "inputs", "lr", &run, None, &g).unwrap(), 0.1);
        assert_eq!(read("x", "globals", "uuid", &run, None, &g).unwrap(), "u1");
        let e = read("`data` from `prep`", "outputs", "dataset", &run, None, &g).unwrap_err();
        assert!(
            e.contains("no outputs `dataset`") && e.contains("`loss`"),
            "{e}"
        );
        assert!(read("x", "metrics", "loss", &run, None, &g).is_err());
    }

    #[test]
    fn contents_lose_what_only_the_dag_reads() {
        let node = json!({"name": "b", "dependencies": ["a"], "trigger": "all_done", "conditions": "{{ x }}",
            "params": {"x": {"ref": "ops.a", "value": "outputs.y"}}, "component": {"run": {"kind": "job"}}});
        let c = content(
            &node,
            Map::from_iter([("x".to_string(), json!({"value": 1}))]),
            &json!({"termination": {"maxRetries": 2}}),
        );
        assert!(c.get("dependencies").is_none() && c.get("trigger").is_none());
        assert!(c.get("conditions").is_none(), "the DAG decided them");
        assert_eq!(c["params"]["x"]["value"], 1);
        assert_eq!(c["kind"], "operation");
        assert_eq!(c["termination"]["maxRetries"], 2);
    }
}
