//! The pipeline from files to a runnable operation:
//!
//! 1. **prepare**: read every `-f` file (upgrading v0.6 ones), wrap a component in an
//!    operation, apply presets and later files with their patch strategy, resolve `pathRef` /
//!    `hubRef` components, read the result into typed specs and run the semantic checks.
//! 2. **compile**: give every input its value (`-P`, `params`, a matrix trial, its default),
//!    coerce and validate them, render the templates, and read the rendered tree strictly into a
//!    [`CompiledOperation`]. `--lint` stops after step 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value as J;

use crate::de::{Ctx, from_node, is_template};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean, one_of};
use crate::load::{self, DocKind, Session};
use crate::node::{Node, PathSeg, Span, Value};
use crate::path;
use crate::spec::*;
use crate::template::{ParamContext, Templates};
use crate::types::{IoType, coerce, coerce_cli};
use crate::validate::{self, Checker};

/// What to compile with.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `-P name=value`, as written.
    pub params: Vec<(String, String)>,
    /// Check the specification only: no values, no templates rendered.
    pub lint: bool,
    /// Named presets to apply (`--presets`), looked up in `preset_dirs`.
    pub presets: Vec<String>,
    pub preset_dirs: Vec<PathBuf>,
    /// Where `hubRef` components are looked up.
    pub hub_dirs: Vec<PathBuf>,
    /// Values of `globals.*`; [`placeholder_globals`] when checking without a run.
    pub globals: Option<J>,
    /// Connections known to templates (`connections['name']`).
    pub connections: serde_json::Map<String, J>,
    /// Fetches `urlRef` components; without one they are refused.
    pub url_fetcher: Option<UrlFetcher>,
}

/// What fetching a `urlRef` gave: a local copy of the component, and what to tell the user
/// about it (an old cached copy used offline, say).
pub struct Fetched {
    pub path: PathBuf,
    pub warning: Option<String>,
}

/// Fetches one `urlRef` URL: the local copy, or why not.
pub type FetchUrl = dyn Fn(&str) -> Result<Fetched, String> + Send + Sync;

/// Fetches a `urlRef` URL (the CLI's: over HTTPS, cached with revalidation).
#[derive(Clone)]
pub struct UrlFetcher(pub std::sync::Arc<FetchUrl>);

impl std::fmt::Debug for UrlFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlFetcher")
    }
}

/// Upstream's defaults for `globals.*`, with a placeholder run: what `polyaxon check` renders with.
pub fn placeholder_globals(name: Option<&str>) -> J {
    let uuid = "f0000000000000000000000000000000";
    let now = jiff::Timestamp::now().to_string();
    serde_json::json!({
        "owner_name": "default",
        "project_name": "default",
        "project_uuid": "00000000000000000000000000000000",
        "uuid": uuid,
        "name": name.unwrap_or("run"),
        "namespace": "polyaxon",
        "run_info": format!("default.default.runs.{uuid}"),
        "context_path": "/plx-context",
        "artifacts_path": "/plx-context/artifacts",
        "run_artifacts_path": format!("/plx-context/artifacts/{uuid}"),
        "run_outputs_path": format!("/plx-context/artifacts/{uuid}/outputs"),
        "run_relative_outputs_path": format!("{uuid}/outputs"),
        "store_path": "/plx-context/artifacts",
        "base_url": format!("/services/v1/polyaxon/default/default/runs/{uuid}"),
        "created_at": now,
        "compiled_at": now,
        "cloning_kind": null,
        "original_uuid": null,
        "iteration": null,
        "schedule_at": null,
        "ports": [],
    })
}

spec! {
    /// An operation with its component folded in, every input valued and templates rendered:
    /// what an executor runs and what the server stores.
    pub struct CompiledOperation {
        pub version: Option<f64>,
        pub kind: Option<String>,
        pub name: Option<String>,
        pub description: Option<String>,
        pub tags: Option<Vec<String>>,
        pub presets: Option<Vec<String>>,
        pub queue: Option<String>,
        pub namespace: Option<String>,
        pub cache: Option<Cache>,
        pub termination: Option<Termination>,
        pub plugins: Option<Plugins>,
        pub build: Option<Build>,
        pub hooks: Option<Vec<Hook>>,
        pub is_approved: Option<bool>,
        pub cost: Option<f64>,
        pub mount: Option<Vec<Mount>>,
        pub template: Option<Template>,
        pub inputs: Option<Vec<Io>>,
        pub outputs: Option<Vec<Io>>,
        pub matrix: Option<Matrix>,
        pub schedule: Option<Schedule>,
        pub events: Option<Vec<EventTrigger>>,
        pub joins: Option<Vec<Join>>,
        pub dependencies: Option<Vec<String>>,
        pub trigger: Option<TriggerPolicy>,
        pub conditions: Option<String>,
        pub skip_on_upstream_skip: Option<bool>,
        pub run: Option<Run>,
    }
}

impl CompiledOperation {
    /// The value an input or output received.
    pub fn value(&self, name: &str) -> Option<&J> {
        self.inputs
            .iter()
            .flatten()
            .chain(self.outputs.iter().flatten())
            .find(|io| io.name == name)
            .and_then(|io| io.value.as_ref())
    }
}

/// The files read into one checked operation.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The operation tree, component inline, after presets and patches.
    pub node: Node,
    pub operation: Operation,
    pub component: Component,
    /// 1 when the user's file was a component (its paths are shown without `component.`).
    pub hidden: usize,
    /// Upgraded from v0.6.
    pub legacy: bool,
    /// Directory of the first file (`pathRef`s resolve from here).
    pub dir: PathBuf,
    /// The operations of a DAG run, resolved, in their stages.
    pub dag: Option<DagPlan>,
}

#[derive(Clone, Debug)]
pub struct DagPlan {
    /// Operation names by stage: each stage depends only on earlier ones.
    pub stages: Vec<Vec<String>>,
    pub ops: Vec<DagOp>,
}

#[derive(Clone, Debug)]
pub struct DagOp {
    pub name: String,
    pub operation: Operation,
    pub component: Option<Component>,
    /// The operation's tree with its component inline, ready to compile.
    pub node: Option<Node>,
}

/// Where an input's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueSource {
    Default,
    Param,
    Cli,
    Matrix,
    /// Filled at run time from another run (`ref`).
    Ref,
    Missing,
}

#[derive(Clone, Debug, Serialize)]
pub struct ResolvedIo {
    pub name: String,
    #[serde(rename = "type")]
    pub iotype: Option<String>,
    pub value: J,
    pub source: ValueSource,
    pub is_output: bool,
}

/// A compiled operation and how its values were decided.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub operation: CompiledOperation,
    pub values: Vec<ResolvedIo>,
    /// `conditions` rendered false: the operation would be skipped.
    pub skipped: bool,
    /// The trial compiled when the operation is a search (its first combination).
    pub trial: Option<Vec<(String, J)>>,
    /// The DAG's operations compiled with their literal params.
    pub dag_ops: Vec<(String, CompiledOperation)>,
}

/// A polyaxonfile to read: a file on disk, or text already in memory.
#[derive(Clone, Debug)]
pub enum Input {
    Path(PathBuf),
    /// Text with a name for messages and the directory its `pathRef`s resolve from.
    Text {
        name: String,
        text: String,
        dir: PathBuf,
    },
}

/// Reads files into one checked operation.
pub fn prepare(
    session: &mut Session,
    files: &[PathBuf],
    opts: &Options,
) -> Result<Prepared, Diagnostics> {
    let inputs: Vec<Input> = files.iter().cloned().map(Input::Path).collect();
    prepare_inputs(session, &inputs, opts)
}

/// Reads inputs (files or texts) into one checked operation.
pub fn prepare_inputs(
    session: &mut Session,
    inputs: &[Input],
    opts: &Options,
) -> Result<Prepared, Diagnostics> {
    let mut diags = Diagnostics::default();
    if inputs.is_empty() {
        return Err(Diagnostics::one(Diagnostic::error(
            "no polyaxonfile given",
            Span::NONE,
        )));
    }
    let mut docs: Vec<(Node, DocKind, bool, PathBuf)> = Vec::new();
    for input in inputs {
        let doc = match input {
            Input::Path(f) => session.read_file(f),
            Input::Text { name, text, dir } => {
                session.read_bytes(name, text.as_bytes(), dir.clone())
            }
        };
        match doc.and_then(|doc| load_doc(session, doc)) {
            Ok(x) => docs.push(x),
            Err(e) => diags.0.extend(e.0),
        }
    }
    if diags.has_errors() {
        diags.normalize();
        return Err(diags);
    }
    let mut iter = docs.into_iter();
    let (mut base, first_kind, legacy, dir) = iter.next().expect("at least one file");
    let hidden = usize::from(first_kind == DocKind::Component);
    let rest: Vec<_> = iter.collect();

    // Presets named in the file, then on the command line, then later files.
    let mut named: Vec<(String, bool)> = Vec::new();
    for key in [&path!["presets"], &path!["component", "presets"]] {
        if let (n, true) = base.locate(key) {
            for p in n.as_seq().unwrap_or_default() {
                if let Some(s) = p.as_str() {
                    named.push((s.to_string(), false));
                }
            }
        }
    }
    named.extend(opts.presets.iter().map(|p| (p.clone(), true)));
    for (name, required) in named {
        match load::find_named(&opts.preset_dirs, &name) {
            Some(path) => match session.read_file(&path).and_then(|d| load_doc(session, d)) {
                Ok((node, _, _, _)) => load::apply_override(&mut base, &node),
                Err(e) => diags.0.extend(e.0),
            },
            None => {
                let dirs = opts
                    .preset_dirs
                    .iter()
                    .map(|d| format!("`{}`", d.display()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let msg = format!("preset `{name}` is not defined");
                let hint = if dirs.is_empty() {
                    "presets are operation files (`isPreset: true`) kept in the presets directory"
                        .to_string()
                } else {
                    format!("looked for `{name}.yaml` in {dirs}")
                };
                if required {
                    diags.push(Diagnostic::error(msg, Span::NONE).with_hint(hint));
                } else {
                    session.warn(
                        Diagnostic::warning(
                            format!("{msg}; it is not applied"),
                            base.key_span(&path!["presets"]),
                        )
                        .with_hint(hint),
                    );
                }
            }
        }
    }
    for (node, _, _, _) in &rest {
        load::apply_override(&mut base, node);
    }
    if let Err(e) = resolve_component(session, &mut base, &dir, opts, 0) {
        diags.0.extend(e.0);
    }
    if diags.has_errors() {
        diags.normalize();
        return Err(diags);
    }

    // Typed reading (templates may stand for any value until compile).
    let comp_node = base
        .get("component")
        .cloned()
        .unwrap_or_else(|| Node::new(Value::Map(vec![]), base.span));
    let mut op_node = base.clone();
    op_node.remove("component");
    let op = from_node::<Operation>(&op_node, &Ctx::lenient(), &[]);
    let comp_base: Vec<PathSeg> = if hidden == 1 {
        vec![]
    } else {
        path!["component"]
    };
    let comp = from_node::<Component>(&comp_node, &Ctx::lenient(), &comp_base);
    let (op, comp) = match (op, comp) {
        (Ok(o), Ok(c)) => (o, c),
        (o, c) => {
            diags.0.extend(o.err().into_iter().flat_map(|d| d.0));
            diags.0.extend(c.err().into_iter().flat_map(|d| d.0));
            diags.normalize();
            return Err(diags);
        }
    };

    let templates = Templates::new(!legacy);
    let mut checker = Checker::new(&base, hidden, &templates);
    checker.template_syntax(&[]);
    validate::component(&mut checker, &comp, &path!["component"]);
    validate::operation(&mut checker, &op, Some(&comp), &[], false);
    let dag = match &comp.run {
        Some(Run::Dag(d)) => {
            let (plan, errs) = plan_dag(session, &mut checker, d, &dir, opts);
            diags.0.extend(errs.0);
            plan
        }
        _ => None,
    };
    for d in checker.diags {
        if d.is_error() {
            diags.push(d)
        } else {
            session.warn(d)
        }
    }
    if diags.has_errors() {
        diags.normalize();
        return Err(diags);
    }
    // A DAG's operations that refer to a file, the hub or a URL are stored with their
    // component inline: whoever reads the run later (the server, an agent on another machine)
    // has neither the file nor this machine's hub.
    if let Some(plan) = &dag {
        let seq = base
            .get_mut("component")
            .and_then(|c| c.get_mut("run"))
            .and_then(|r| r.get_mut("operations"));
        if let Some(Node {
            value: Value::Seq(items),
            ..
        }) = seq
        {
            for (item, op) in items.iter_mut().zip(&plan.ops) {
                let external = item.get("component").is_none()
                    && ["pathRef", "hubRef", "urlRef"]
                        .iter()
                        .any(|k| item.get(k).is_some());
                if let (true, Some(resolved)) = (external, &op.node) {
                    let mut inline = resolved.clone();
                    for k in ["pathRef", "hubRef", "urlRef"] {
                        inline.remove(k);
                    }
                    *item = inline;
                }
            }
        }
    }
    Ok(Prepared {
        node: base,
        operation: op,
        component: comp,
        hidden,
        legacy,
        dir,
        dag,
    })
}

fn load_doc(
    session: &mut Session,
    doc: load::Doc,
) -> Result<(Node, DocKind, bool, PathBuf), Diagnostics> {
    let kind = load::classify(&doc)?;
    let dir = doc.dir.clone();
    if kind == DocKind::V06 {
        let node = crate::v06::upgrade(session, &doc)?;
        return Ok((node, DocKind::Operation, true, dir));
    }
    Ok((load::as_operation(doc.node, kind), kind, false, dir))
}

/// Puts the component an operation refers to (`pathRef`, `hubRef`) inline, and applies the
/// operation's `runPatch` to it.
fn resolve_component(
    session: &mut Session,
    op: &mut Node,
    dir: &Path,
    opts: &Options,
    depth: usize,
) -> Result<(), Diagnostics> {
    if op.get("component").is_none() {
        let reference = ["pathRef", "hubRef", "urlRef", "dagRef"]
            .into_iter()
            .find_map(|k| op.get(k).map(|n| (k, n.clone())));
        let Some((key, node)) = reference else {
            if op.get("isPreset").and_then(|n| match n.value {
                Value::Bool(b) => Some(b),
                _ => None,
            }) == Some(true)
            {
                return Err(Diagnostics::one(
                    Diagnostic::error("this file is a preset (`isPreset: true`); it patches an operation and cannot run alone", op.span)
                        .with_hint("pass it after the polyaxonfile it patches: `-f polyaxonfile.yml -f preset.yml`"),
                ));
            }
            return Err(Diagnostics::one(
                Diagnostic::error("the operation has no component", op.span)
                    .with_label("this operation")
                    .with_hint("add `component:` inline, or refer to one with `pathRef: path/to/component.yml` or `hubRef: name`"),
            ));
        };
        let value = node.as_str().unwrap_or_default().to_string();
        let located = |msg: String| Diagnostic::error(msg, node.span).with_path(key);
        let file = match key {
            "pathRef" => {
                let p = dir.join(&value);
                if !p.is_file() {
                    return Err(Diagnostics::one(
                        located(format!(
                            "`pathRef: {value}` does not exist (looked for `{}`)",
                            p.display()
                        ))
                        .with_hint("paths are relative to the file that holds the `pathRef`"),
                    ));
                }
                p
            }
            "hubRef" => match load::find_hub(&opts.hub_dirs, &value) {
                Some(p) => p,
                None => {
                    let hint = if opts.hub_dirs.is_empty() {
                        "put the component inline under `component:`, or refer to a file with `pathRef`".to_string()
                    } else {
                        format!(
                            "add `{value}.yaml` to {}, put the component inline, or use `pathRef`",
                            opts.hub_dirs
                                .iter()
                                .map(|d| format!("`{}`", d.display()))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        )
                    };
                    return Err(Diagnostics::one(
                        located(format!("hub component `{value}` is not available"))
                            .with_hint(hint),
                    ));
                }
            },
            "urlRef" => match &opts.url_fetcher {
                Some(fetch) => match (fetch.0)(&value) {
                    Ok(got) => {
                        if let Some(w) = got.warning {
                            session.warn(Diagnostic::warning(w, node.span).with_path(key));
                        }
                        got.path
                    }
                    Err(e) => {
                        return Err(Diagnostics::one(located(e).with_hint(
                            "check the URL and the network, or download the component and refer to it with `pathRef`",
                        )));
                    }
                },
                None => {
                    return Err(Diagnostics::one(
                        located(format!("`urlRef: {value}` cannot be fetched here"))
                            .with_hint("download the component and refer to it with `pathRef`"),
                    ));
                }
            },
            _ => {
                return Err(Diagnostics::one(
                    located(format!("`dagRef: {value}` names a component of an enclosing DAG, and this operation is not in one"))
                        .with_hint("use `pathRef`, `hubRef` or an inline `component`"),
                ));
            }
        };
        if depth > 16 {
            return Err(Diagnostics::one(located(
                "component references nest too deeply (a loop of `pathRef`s?)".into(),
            )));
        }
        // A fetched component is shown by its URL in messages, not by its cached copy's path.
        let doc = if key == "urlRef" {
            let bytes = std::fs::read(&file).map_err(|e| {
                Diagnostics::one(located(format!(
                    "reading the cached copy of `urlRef: {value}` (`{}`): {e}",
                    file.display()
                )))
            })?;
            let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
            session.read_bytes(&value, &bytes, dir)?
        } else {
            session.read_file(&file)?
        };
        let kind = load::classify(&doc)?;
        let comp_dir = doc.dir.clone();
        let mut comp = match kind {
            DocKind::Component => doc.node,
            DocKind::Operation => {
                // An operation file: use its component (resolving its own references).
                let mut inner = doc.node;
                resolve_component(session, &mut inner, &comp_dir, opts, depth + 1)?;
                inner
                    .remove("component")
                    .unwrap_or_else(|| Node::new(Value::Map(vec![]), node.span))
            }
            DocKind::V06 => {
                return Err(Diagnostics::one(located(format!(
                    "`{value}` is a v0.6 polyaxonfile; components must be version 1.1"
                ))));
            }
        };
        comp.remove("version");
        op.set("component", comp);
    }
    if let Some(run_patch) = op.remove("runPatch") {
        let strategy = load::strategy_of(op);
        if let Some(comp) = op.get_mut("component") {
            match comp.get_mut("run") {
                Some(run) => load::patch(run, &run_patch, strategy),
                None => comp.set("run", run_patch),
            }
        }
    }
    Ok(())
}

/// Resolves and checks a DAG's operations; returns the plan and errors found while resolving.
fn plan_dag(
    session: &mut Session,
    c: &mut Checker<'_>,
    d: &Dag,
    dir: &Path,
    opts: &Options,
) -> (Option<DagPlan>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let run_path = path!["component", "run"];
    let components_node = c.root.locate(&path!["component", "run", "components"]);
    let ops = d.operations.as_deref().unwrap_or_default();
    for (k, comp) in d.components.iter().flatten().enumerate() {
        validate::component(
            c,
            comp,
            &[run_path.clone(), path!["components", k]].concat(),
        );
    }
    let mut resolved: Vec<Option<Component>> = Vec::new();
    let mut nodes: Vec<Option<Node>> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let op_path = [run_path.clone(), path!["operations", i]].concat();
        let (op_node, _) = c.root.locate(&op_path);
        let mut op_tree = op_node.clone();
        let comp_node: Option<Node> = if op.component.is_some() {
            op_tree.get("component").cloned()
        } else if let Some(r) = &op.dag_ref {
            components_node
                .1
                .then(|| {
                    components_node
                        .0
                        .as_seq()
                        .unwrap_or_default()
                        .iter()
                        .find(|n| n.get("name").and_then(Node::as_str) == Some(r))
                        .cloned()
                })
                .flatten()
        } else {
            op_tree.remove("dagRef");
            match resolve_component(session, &mut op_tree, dir, opts, 1) {
                Ok(()) => op_tree.get("component").cloned(),
                Err(e) => {
                    diags.0.extend(e.0);
                    None
                }
            }
        };
        let comp = comp_node.as_ref().and_then(|n| {
            let base = if op.component.is_some() {
                [op_path.clone(), path!["component"]].concat()
            } else {
                vec![]
            };
            match from_node::<Component>(n, &Ctx::lenient(), &base) {
                Ok(comp) => Some(comp),
                Err(e) => {
                    diags.0.extend(e.0);
                    None
                }
            }
        });
        if op.component.is_some()
            && let Some(comp) = &comp
        {
            validate::component(c, comp, &[op_path.clone(), path!["component"]].concat());
        }
        validate::operation(c, op, comp.as_ref(), &op_path, true);
        let tree = comp_node.map(|mut cn| {
            cn.remove("version");
            op_tree.remove("dagRef");
            op_tree.set("component", cn);
            if let Some(run_patch) = op_tree.remove("runPatch") {
                let strategy = load::strategy_of(&op_tree);
                if let Some(run) = op_tree.get_mut("component").and_then(|c| c.get_mut("run")) {
                    load::patch(run, &run_patch, strategy);
                }
            }
            op_tree
        });
        resolved.push(comp);
        nodes.push(tree);
    }
    let stages = validate::dag(c, d, &run_path, &resolved);
    let plan = stages.map(|stages| DagPlan {
        stages,
        ops: ops
            .iter()
            .zip(resolved)
            .zip(nodes)
            .map(|((op, component), node)| DagOp {
                name: op.name.clone().unwrap_or_default(),
                operation: op.clone(),
                component,
                node,
            })
            .collect(),
    });
    (plan, diags)
}

/// Values for inputs that come from a search trial.
pub type Trial = Vec<(String, J)>;

/// Compiles a prepared operation (see the module docs).
pub fn compile(
    session: &mut Session,
    prep: &Prepared,
    opts: &Options,
) -> Result<Compiled, Diagnostics> {
    compile_with(session, prep, opts, None)
}

/// Compiles with the values of one search trial.
pub fn compile_with(
    session: &mut Session,
    prep: &Prepared,
    opts: &Options,
    trial: Option<Trial>,
) -> Result<Compiled, Diagnostics> {
    let templates = Templates::new(!prep.legacy);
    let trial = trial.or_else(|| prep.operation.matrix.as_ref().map(first_trial));
    let globals = opts.globals.clone().unwrap_or_else(|| {
        placeholder_globals(
            prep.operation
                .name
                .as_deref()
                .or(prep.component.name.as_deref()),
        )
    });
    let connections = J::Object(opts.connections.clone());
    let unit = Unit {
        node: &prep.node,
        operation: &prep.operation,
        component: &prep.component,
        hidden: prep.hidden,
        label: None,
        in_dag: false,
        outer: &[],
    };
    let (operation, values, skipped) = compile_unit(
        &unit,
        &opts.params,
        trial.as_deref(),
        &globals,
        &connections,
        &templates,
    )?;
    let mut dag_ops = Vec::new();
    if let Some(plan) = &prep.dag {
        let mut diags = Diagnostics::default();
        for op in &plan.ops {
            let (Some(comp), Some(node)) = (&op.component, &op.node) else {
                continue;
            };
            let unit = Unit {
                node,
                operation: &op.operation,
                component: comp,
                hidden: 0,
                label: Some(&op.name),
                in_dag: true,
                outer: &values,
            };
            let op_trial = op.operation.matrix.as_ref().map(first_trial);
            match compile_unit(
                &unit,
                &[],
                op_trial.as_deref(),
                &globals,
                &connections,
                &templates,
            ) {
                Ok((compiled, _, _)) => dag_ops.push((op.name.clone(), compiled)),
                Err(e) => diags.0.extend(e.0),
            }
        }
        if diags.has_errors() {
            diags.normalize();
            return Err(diags);
        }
    }
    let _ = session;
    Ok(Compiled {
        operation,
        values,
        skipped,
        trial,
        dag_ops,
    })
}

/// The first trial of a search: the first combination, row, or typical value of each param.
pub fn first_trial(m: &Matrix) -> Trial {
    match m {
        Matrix::Mapping(mp) => mp
            .values
            .first()
            .map(|row| row.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        _ => {
            let mut t: Trial = m
                .params()
                .map(|ps| {
                    ps.iter()
                        .map(|(k, p)| (k.clone(), crate::space::representative(p)))
                        .collect()
                })
                .unwrap_or_default();
            if let Matrix::Hyperband(h) = m
                && let Some(r) = &h.resource
            {
                let brackets = crate::space::hyperband_brackets(
                    h.max_iterations.unwrap_or(1) as f64,
                    h.eta.unwrap_or(3.0),
                );
                let first = brackets
                    .ok()
                    .and_then(|b| b.first().and_then(|b| b.rungs.first().map(|(_, r)| *r)))
                    .unwrap_or(1.0);
                let v = match r.kind {
                    Some(ResourceType::Float) => serde_json::json!(first),
                    _ => serde_json::json!(first.round() as i64),
                };
                t.push((r.name.clone(), v));
            }
            t
        }
    }
}

struct Unit<'a> {
    node: &'a Node,
    operation: &'a Operation,
    component: &'a Component,
    hidden: usize,
    /// The DAG operation this is, for messages.
    label: Option<&'a str>,
    in_dag: bool,
    /// A DAG operation's params render with its DAG's values (upstream renders them so).
    outer: &'a [ResolvedIo],
}

impl Unit<'_> {
    fn shown(&self, path: &[PathSeg]) -> String {
        crate::node::DisplayPath(&path[self.hidden.min(path.len())..]).to_string()
    }

    fn err(&self, path: &[PathSeg], msg: String) -> Diagnostic {
        let msg = match self.label {
            Some(l) => format!("operation `{l}`: {msg}"),
            None => msg,
        };
        Diagnostic::error(msg, self.node.locate(path).0.span).with_path(self.shown(path))
    }
}

fn compile_unit(
    unit: &Unit<'_>,
    cli: &[(String, String)],
    trial: Option<&[(String, J)]>,
    globals: &J,
    connections: &J,
    templates: &Templates,
) -> Result<(CompiledOperation, Vec<ResolvedIo>, bool), Diagnostics> {
    let comp = unit.component;
    let op = unit.operation;
    // A service's templates see its ports (`{{ globals.ports[0] }}`), as upstream's.
    let service_globals;
    let globals = match &comp.run {
        Some(crate::spec::run::Run::Service(svc))
            if svc.ports.as_ref().is_some_and(|p| !p.is_empty())
                && globals["ports"].as_array().is_none_or(Vec::is_empty) =>
        {
            let mut g = globals.clone();
            g["ports"] = serde_json::json!(svc.ports);
            service_globals = g;
            &service_globals
        }
        _ => globals,
    };
    let mut diags = Diagnostics::default();
    let ios: Vec<(&Io, bool, usize)> = comp
        .inputs
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, io)| (io, false, i))
        .chain(
            comp.outputs
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, io)| (io, true, i)),
        )
        .collect();
    let matrix_names: Vec<String> = op
        .matrix
        .as_ref()
        .map(Matrix::param_names)
        .unwrap_or_default();
    // Inputs a join fills with values collected from other runs, at run time.
    let joined: Vec<&str> = op
        .joins
        .iter()
        .flatten()
        .flat_map(|j| j.params.iter().flat_map(|p| p.keys()))
        .map(String::as_str)
        .collect();

    // -P values.
    let mut cli_values: BTreeMap<&str, J> = BTreeMap::new();
    for (name, raw) in cli {
        let Some((io, _, _)) = ios.iter().find(|(io, _, _)| io.name == *name) else {
            let mut d = Diagnostic::error(
                format!("`-P {name}=…` matches no input or output"),
                Span::NONE,
            );
            let names: Vec<&str> = ios.iter().map(|(io, _, _)| io.name.as_str()).collect();
            d = match did_you_mean(name, names.iter().copied()) {
                Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                None if names.is_empty() => d.with_hint("the component declares no inputs"),
                None => d.with_hint(format!("inputs and outputs: {}", one_of(&names))),
            };
            diags.push(d);
            continue;
        };
        if matrix_names.contains(name) {
            diags.push(
                Diagnostic::error(
                    format!("`{name}` is searched by the matrix and cannot also be set with `-P`"),
                    Span::NONE,
                )
                .with_hint("remove `-P` for it, or remove it from the matrix"),
            );
            continue;
        }
        let ty = io
            .iotype
            .as_deref()
            .and_then(IoType::parse)
            .unwrap_or(IoType::Any);
        match coerce_cli(raw, &ty, io.list()) {
            Ok(v) => {
                cli_values.insert(name.as_str(), v);
            }
            Err(e) => diags.push(
                Diagnostic::error(format!("`-P {name}={raw}`: {e}"), Span::NONE)
                    .with_hint(format!("`{name}` is of type {}", ty.name())),
            ),
        }
    }

    // Param values that are templates render against globals and connections (and, in a DAG,
    // the DAG's own values).
    let outer: Vec<crate::template::ParamContext<'_>> = unit
        .outer
        .iter()
        .filter(|v| !v.is_output)
        .map(|v| crate::template::ParamContext {
            name: &v.name,
            iotype: v.iotype.as_deref(),
            value: &v.value,
            is_flag: false,
            arg_format: None,
            connection: None,
        })
        .collect();
    let param_ctx = crate::template::context(templates, &outer, globals, connections)
        .map_err(|e| Diagnostics::one(Diagnostic::error(e, Span::NONE)))?;

    let mut values: Vec<ResolvedIo> = Vec::new();
    let mut missing: Vec<(&Io, usize)> = Vec::new();
    for (io, is_output, idx) in &ios {
        let section = if *is_output { "outputs" } else { "inputs" };
        let ty = io
            .iotype
            .as_deref()
            .and_then(IoType::parse)
            .unwrap_or(IoType::Any);
        let param = op.params.as_ref().and_then(|p| p.get(&io.name));
        let trial_value = trial
            .and_then(|t| t.iter().find(|(k, _)| *k == io.name))
            .map(|(_, v)| v.clone());
        if joined.contains(&io.name.as_str()) && !cli_values.contains_key(io.name.as_str()) {
            values.push(ResolvedIo {
                name: io.name.clone(),
                iotype: io.iotype.clone(),
                value: placeholder(&ty, true, "join"),
                source: ValueSource::Ref,
                is_output: *is_output,
            });
            continue;
        }
        let (raw, source, at): (Option<J>, ValueSource, Vec<PathSeg>) =
            if let Some(v) = cli_values.get(io.name.as_str()) {
                (Some(v.clone()), ValueSource::Cli, vec![])
            } else if let Some(v) = trial_value {
                (Some(v), ValueSource::Matrix, path!["matrix"])
            } else if let Some(p) = param {
                if let Some(r) = &p.reference {
                    let shown = format!(
                        "{r}.{}",
                        p.value
                            .as_ref()
                            .map(crate::template::as_str)
                            .unwrap_or_default()
                    );
                    values.push(ResolvedIo {
                        name: io.name.clone(),
                        iotype: io.iotype.clone(),
                        value: placeholder(&ty, io.list(), &shown),
                        source: ValueSource::Ref,
                        is_output: *is_output,
                    });
                    continue;
                }
                (
                    p.value.clone(),
                    ValueSource::Param,
                    path!["params", io.name.as_str(), "value"],
                )
            } else {
                (
                    io.value.clone(),
                    ValueSource::Default,
                    path!["component", section, *idx, "value"],
                )
            };
        let raw = match raw {
            Some(J::String(s)) if is_template(&s) => match templates.render(&s, &param_ctx) {
                // v0.6 referred to other runs' values in templates (`{{ jobs.1.outputs.x }}`);
                // they render empty here and arrive at run time.
                Ok(out) if out.trim().is_empty() && !templates.is_strict() => {
                    values.push(ResolvedIo {
                        name: io.name.clone(),
                        iotype: io.iotype.clone(),
                        value: placeholder(&ty, io.list(), &s),
                        source: ValueSource::Ref,
                        is_output: *is_output,
                    });
                    continue;
                }
                Ok(out) => Some(crate::types::scalar_json(&out)),
                Err(e) => {
                    diags.push(unit.err(&at, format!("the value of `{}`: {e}", io.name)));
                    continue;
                }
            },
            other => other,
        };
        let value = match raw {
            None | Some(J::Null) => {
                if !is_output && !io.optional() {
                    missing.push((io, *idx));
                }
                values.push(ResolvedIo {
                    name: io.name.clone(),
                    iotype: io.iotype.clone(),
                    value: J::Null,
                    source: ValueSource::Missing,
                    is_output: *is_output,
                });
                continue;
            }
            Some(v) => match coerce(&v, &ty, io.list()) {
                Ok(v) => v,
                Err(e) => {
                    let msg = format!(
                        "the value of `{}` does not fit its type {}: {e}",
                        io.name,
                        ty.name()
                    );
                    diags.push(if source == ValueSource::Cli {
                        Diagnostic::error(msg, Span::NONE)
                    } else {
                        unit.err(&at, msg)
                    });
                    continue;
                }
            },
        };
        if let Some(val) = &io.validation
            && let Err(e) = crate::types::validate(&value, val)
        {
            let msg = format!("the value of `{}` fails its validation: {e}", io.name);
            diags.push(if source == ValueSource::Cli {
                Diagnostic::error(msg, Span::NONE)
            } else {
                unit.err(&at, msg)
            });
        }
        values.push(ResolvedIo {
            name: io.name.clone(),
            iotype: io.iotype.clone(),
            value,
            source,
            is_output: *is_output,
        });
    }
    if !missing.is_empty() {
        let list: Vec<String> = missing
            .iter()
            .map(|(io, _)| {
                format!(
                    "`{}`{}",
                    io.name,
                    io.iotype
                        .as_deref()
                        .map(|t| format!(" ({t})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let noun = if missing.len() == 1 {
            "a required input"
        } else {
            "required inputs"
        };
        let example: Vec<String> = missing
            .iter()
            .map(|(io, _)| {
                format!(
                    "-P {}=<{}>",
                    io.name,
                    io.iotype.as_deref().unwrap_or("value")
                )
            })
            .collect();
        let hint = if unit.in_dag {
            format!("give the operation `params` for {}", list.join(", "))
        } else {
            format!(
                "pass {}, give the input a `value` with `isOptional: true`, or set it in `params`",
                example.join(" ")
            )
        };
        let d = unit.err(
            &path!["component", "inputs", missing[0].1, "name"],
            format!("no value for {noun} {}", list.join(", ")),
        );
        diags.push(d.with_label("declared here").with_hint(hint));
    }
    if diags.has_errors() {
        diags.normalize();
        return Err(diags);
    }

    // The compiled tree: component, overlaid by the operation's own sections.
    let mut tree = unit
        .node
        .get("component")
        .cloned()
        .unwrap_or_else(|| Node::new(Value::Map(vec![]), unit.node.span));
    for k in ["version", "kind"] {
        tree.remove(k);
    }
    const OP_ONLY: &[&str] = &[
        "version",
        "kind",
        "component",
        "params",
        "hubRef",
        "dagRef",
        "urlRef",
        "pathRef",
        "runPatch",
        "patchStrategy",
        "isPreset",
    ];
    for (k, v) in unit.node.as_map().unwrap_or_default() {
        let key = k.key_text();
        if OP_ONLY.contains(&key.as_str()) {
            continue;
        }
        match tree.get_mut(&key) {
            Some(existing) => load::merge(existing, v, true),
            None => tree.set(&key, v.clone()),
        }
    }
    let io_nodes = |outputs: bool| -> Node {
        let list: Vec<J> = ios
            .iter()
            .filter(|(_, o, _)| *o == outputs)
            .map(|(io, _, _)| {
                let mut io = (*io).clone();
                if let Some(r) = values.iter().find(|r| {
                    r.name == io.name
                        && r.source != ValueSource::Missing
                        && r.source != ValueSource::Ref
                }) {
                    io.value = Some(r.value.clone());
                }
                crate::to_clean_json(&io)
            })
            .collect();
        Node::from_json(&J::Array(list), unit.node.span)
    };
    if comp.inputs.is_some() {
        tree.set("inputs", io_nodes(false));
    }
    if comp.outputs.is_some() {
        tree.set("outputs", io_nodes(true));
    }

    let params_ctx: Vec<ParamContext<'_>> = ios
        .iter()
        .map(|(io, _, _)| {
            let v = values
                .iter()
                .find(|r| r.name == io.name)
                .map(|r| &r.value)
                .expect("every io has a value entry");
            ParamContext {
                name: &io.name,
                iotype: io.iotype.as_deref(),
                value: v,
                is_flag: io.flag(),
                arg_format: io.arg_format.as_deref(),
                // A param's connection (`params: {destination: {connection: …}}`) wins.
                connection: op
                    .params
                    .as_ref()
                    .and_then(|p| p.get(&io.name))
                    .and_then(|p| p.connection.as_deref())
                    .or(io.connection.as_deref()),
            }
        })
        .collect();
    let ctx = crate::template::context(templates, &params_ctx, globals, connections)
        .map_err(|e| Diagnostics::one(unit.err(&path!["component", "inputs"], e)))?;

    // Render everything but the sections rendered later (or never).
    const LATER: &[&str] = &[
        "inputs",
        "outputs",
        "matrix",
        "schedule",
        "events",
        "joins",
        "conditions",
        "hooks",
        "dependencies",
        "trigger",
    ];
    let mut held: Vec<(String, Node)> = LATER
        .iter()
        .filter_map(|k| tree.remove(k).map(|n| (k.to_string(), n)))
        .collect();
    let mut dag_held: Vec<(String, Node)> = Vec::new();
    if let Some(run) = tree.get_mut("run") {
        for k in ["operations", "components"] {
            if let Some(n) = run.remove(k) {
                dag_held.push((k.to_string(), n));
            }
        }
    }
    let mut rendered = templates.render_node(&tree, &ctx).map_err(|d| {
        let d = match unit.label {
            Some(l) => Diagnostic {
                message: format!("operation `{l}`: {}", d.message),
                ..d
            },
            None => d,
        };
        Diagnostics::one(d)
    })?;
    if let Some(run) = rendered.get_mut("run") {
        for (k, n) in dag_held.drain(..) {
            run.set(&k, n);
        }
    }
    for (k, n) in held.drain(..) {
        rendered.set(&k, n);
    }
    rendered.set("version", Node::synthetic(Value::Float(load::VERSION)));
    rendered.set("kind", Node::str("compiled_operation"));
    if unit.node.get("name").is_none() && comp.name.is_none() && unit.label.is_some() {
        rendered.set("name", Node::str(unit.label.unwrap_or_default()));
    }
    let base: Vec<PathSeg> = vec![];
    let compiled: CompiledOperation =
        from_node(&rendered, &Ctx::strict(), &base).map_err(|mut d| {
            for x in &mut d.0 {
                if let Some(l) = unit.label {
                    x.message = format!("operation `{l}`: {}", x.message);
                }
            }
            d
        })?;
    let mut skipped = false;
    if !unit.in_dag
        && let Some(cond) = &op.conditions
    {
        match templates.condition(cond, &ctx) {
            Ok(b) => skipped = !b,
            Err(e) => return Err(Diagnostics::one(unit.err(&path!["conditions"], e))),
        }
    }
    Ok((compiled, values, skipped))
}

/// A stand-in of the right type for a value that arrives at run time.
fn placeholder(ty: &IoType, list: bool, shown: &str) -> J {
    let one = match ty {
        IoType::Int => J::from(0),
        IoType::Float | IoType::Metric => serde_json::json!(0.0),
        IoType::Bool => J::Bool(false),
        IoType::Dict | IoType::DictOfDicts | IoType::DictOf(_) | IoType::Metadata => {
            serde_json::json!({})
        }
        IoType::List | IoType::ListOf(_) => serde_json::json!([]),
        _ => J::String(format!("<{shown}>")),
    };
    if list { J::Array(vec![]) } else { one }
}
