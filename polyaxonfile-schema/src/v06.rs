//! v0.6 polyaxonfiles (`version: 1`; kinds experiment, group, job, build, notebook,
//! tensorboard, pipeline): checked as v0.6 checked them, then upgraded to the equivalent v1.1
//! operation, which the rest of the pipeline treats like any other file.
//!
//! The upgrade keeps the v0.6 nodes' positions, so errors found later still point into the
//! user's v0.6 file. What has no v1.1 equivalent is dropped with a warning that says so.

use crate::diag::{Diagnostic, Diagnostics, did_you_mean, one_of};
use crate::load::{Doc, Session};
use crate::node::{Node, Span, Value};
use crate::types::IoType;

const KINDS: &[&str] = &[
    "experiment",
    "group",
    "job",
    "build",
    "notebook",
    "tensorboard",
    "pipeline",
];

const COMMON: &[&str] = &[
    "version",
    "kind",
    "name",
    "description",
    "tags",
    "logging",
    "backend",
    "framework",
    "inputs",
    "outputs",
    "params",
    "declarations",
    "environment",
    "build",
    "run",
];

fn allowed(kind: &str) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = COMMON.to_vec();
    match kind {
        "group" => v.push("hptuning"),
        "build" => v.extend([
            "image",
            "dockerfile",
            "context",
            "build_steps",
            "env_vars",
            "lang_env",
            "commit",
            "branch",
            "nocache",
            "ref",
        ]),
        "pipeline" => v.extend(["ops", "templates", "concurrency", "schedule"]),
        _ => {}
    }
    v
}

struct Up<'a> {
    session: &'a mut Session,
    diags: Diagnostics,
}

impl Up<'_> {
    fn err(&mut self, span: Span, msg: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(msg, span));
        self.diags.0.last_mut().expect("just pushed")
    }

    fn warn(&mut self, span: Span, msg: impl Into<String>) {
        self.session.warn(Diagnostic::warning(msg, span));
    }

    /// Flags keys of `node` outside `keys`.
    fn keys(&mut self, node: &Node, keys: &[&str], place: &str) {
        for (k, _) in node.as_map().unwrap_or_default() {
            let name = k.key_text();
            if keys.contains(&name.as_str()) {
                continue;
            }
            let d = self.err(k.span, format!("unknown key `{name}` in {place}"));
            match did_you_mean(&name, keys.iter().copied()) {
                Some(s) => d.label = Some(format!("did you mean `{s}`?")),
                None => d.hint = Some(format!("v0.6 keys here: {}", one_of(keys))),
            }
        }
    }

    fn map<'n>(&mut self, node: Option<&'n Node>, what: &str) -> Option<&'n Node> {
        let n = node?;
        if n.is_null() {
            return None;
        }
        if n.as_map().is_none() {
            self.err(
                n.span,
                format!("`{what}` must be a mapping, found {}", n.describe()),
            );
            return None;
        }
        Some(n)
    }
}

fn m(entries: Vec<(&str, Node)>, span: Span) -> Node {
    Node::new(
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Node::new(Value::Str(k.into()), span), v))
                .collect(),
        ),
        span,
    )
}

fn s(text: impl Into<String>, span: Span) -> Node {
    Node::new(Value::Str(text.into()), span)
}

fn seq(items: Vec<Node>, span: Span) -> Node {
    Node::new(Value::Seq(items), span)
}

/// A scalar as text (for quantities, labels, node selectors).
fn text_of(n: &Node) -> Option<String> {
    Some(match &n.value {
        Value::Str(x) => x.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    })
}

/// Checks a v0.6 document and upgrades it to a v1.1 operation tree.
pub fn upgrade(session: &mut Session, doc: &Doc) -> Result<Node, Diagnostics> {
    let mut up = Up {
        session,
        diags: Diagnostics::default(),
    };
    let node = upgrade_file(&mut up, &doc.node, true);
    if up.diags.has_errors() {
        up.diags.normalize();
        return Err(up.diags);
    }
    let mut node = node.unwrap_or_else(|| Node::new(Value::Map(vec![]), doc.node.span));
    drop_undefined(up.session, &mut node);
    Ok(node)
}

/// Whether a param's value is one template expression naming nothing the file defines.
fn lone_foreign_expr(param: &Node, names: &[String]) -> bool {
    let t = param
        .get("value")
        .and_then(Node::as_str)
        .unwrap_or_default()
        .trim();
    if !(t.starts_with("{{") && t.ends_with("}}") && t.matches("{{").count() == 1) {
        return false;
    }
    let e = t[2..t.len() - 2].trim();
    let end = e
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(e.len());
    !names.iter().any(|d| d == &e[..end])
}

fn declared_names(comp: &Node) -> Vec<String> {
    ["inputs", "outputs"]
        .iter()
        .flat_map(|k| {
            comp.get(k)
                .and_then(Node::as_seq)
                .unwrap_or_default()
                .iter()
        })
        .filter_map(|io| io.get("name").and_then(Node::as_str).map(str::to_string))
        .chain(["globals", "params", "connections"].map(String::from))
        .collect()
}

/// The upgraded operation as written out by `--upgrade`: without the params that referred to
/// other v0.6 runs' values (see the warnings given when upgrading).
pub fn for_output(op: &Node) -> Node {
    let mut op = op.clone();
    let names = op.get("component").map(declared_names).unwrap_or_default();
    if let Some(params) = op.get_mut("params").and_then(Node::as_map_mut) {
        params.retain(|(_, v)| !lone_foreign_expr(v, &names));
        if params.is_empty() {
            op.remove("params");
        }
    }
    op
}

/// v0.6 rendered names it did not know as empty text; v1.1 refuses them. The upgrade removes
/// such template expressions (and params made only of them), saying so, so that the upgraded
/// file behaves as the v0.6 one did.
fn drop_undefined(session: &mut Session, op: &mut Node) {
    fn root_name(expr: &str) -> &str {
        let e = expr.trim();
        let end = e
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(e.len());
        &e[..end]
    }
    fn clean(n: &mut Node, names: &[String], dropped: &mut Vec<(Span, String)>) {
        match &mut n.value {
            Value::Str(s) if s.contains("{{") => {
                let mut out = String::new();
                let mut rest = s.as_str();
                while let Some(i) = rest.find("{{") {
                    let Some(j) = rest[i..].find("}}") else { break };
                    let expr = &rest[i + 2..i + j];
                    let name = root_name(expr);
                    out.push_str(&rest[..i]);
                    if name.is_empty() || names.iter().any(|d| d == name) {
                        out.push_str(&rest[i..i + j + 2]);
                    } else {
                        dropped.push((n.span, format!("{{{{{expr}}}}}")));
                    }
                    rest = &rest[i + j + 2..];
                }
                out.push_str(rest);
                *s = out;
            }
            Value::Seq(items) => items.iter_mut().for_each(|x| clean(x, names, dropped)),
            Value::Map(entries) => entries
                .iter_mut()
                .for_each(|(_, v)| clean(v, names, dropped)),
            _ => {}
        }
    }
    let Some(comp) = op.get("component") else {
        return;
    };
    let names = declared_names(comp);
    let mut dropped = Vec::new();
    if let Some(run) = op.get_mut("component").and_then(|c| c.get_mut("run"))
        && run.get("kind").and_then(Node::as_str) != Some("dag")
    {
        clean(run, &names, &mut dropped);
    }
    for (span, expr) in &dropped {
        session.warn(Diagnostic::warning(format!("`{expr}` names nothing this file defines; v0.6 rendered it empty, so the upgrade removes it"), *span));
    }
    // Params whose whole value is such an expression (`{{ jobs.1.outputs.x }}`) stay in the
    // checked operation (they arrive at run time, as in v0.6) but not in the upgraded file.
    for (k, v) in op.get("params").and_then(Node::as_map).unwrap_or_default() {
        if lone_foreign_expr(v, &names) {
            let t = v
                .get("value")
                .and_then(Node::as_str)
                .unwrap_or_default()
                .trim();
            session.warn(Diagnostic::warning(
                format!("param `{}` takes `{t}`, another v0.6 run's value; the upgraded file leaves it to be given with `-P` or a `ref: runs.<uuid>`", k.key_text()),
                v.span,
            ));
        }
    }
}

fn upgrade_file(up: &mut Up<'_>, root: &Node, top: bool) -> Option<Node> {
    let span = root.span;
    let kind = match root.get("kind") {
        None => {
            up.err(span, "missing `kind`").hint = Some(format!("v0.6 kinds: {}", one_of(KINDS)));
            return None;
        }
        Some(k) => match k.as_str() {
            Some(x) if KINDS.contains(&x) => x.to_string(),
            _ => {
                let shown = k
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| k.describe());
                let d = up.err(k.span, format!("unknown v0.6 kind `{shown}`"));
                d.hint = Some(format!("v0.6 kinds: {}", one_of(KINDS)));
                return None;
            }
        },
    };
    let place = if top {
        "a v0.6 polyaxonfile".to_string()
    } else {
        "a v0.6 pipeline template".to_string()
    };
    up.keys(root, &allowed(&kind), &place);
    let run = root.get("run");
    let build = up.map(root.get("build"), "build");
    match kind.as_str() {
        "experiment" | "job" if top => {
            if build.is_none() {
                up.err(span, format!("a v0.6 {kind} needs a `build` section"))
                    .hint = Some("add `build: {image: <image>}`".into());
            }
            if run.and_then(|r| r.get("cmd")).is_none() {
                up.err(
                    run.map_or(span, |r| r.span),
                    format!("a v0.6 {kind} needs `run.cmd`"),
                )
                .hint = Some("add `run: {cmd: <command>}`".into());
            }
        }
        "group" => {
            if root.get("hptuning").and_then(|h| h.get("matrix")).is_none() {
                up.err(span, "a v0.6 group needs `hptuning` with a `matrix`");
            }
            if top && run.and_then(|r| r.get("cmd")).is_none() {
                up.err(run.map_or(span, |r| r.span), "a v0.6 group needs `run.cmd`");
            }
        }
        "notebook" | "tensorboard" | "build" => {
            if let Some(r) = run {
                up.err(
                    r.span,
                    format!("a v0.6 {kind} does not take a `run` section"),
                )
                .hint = Some(format!("a {kind} runs its own command; remove `run`"));
            }
        }
        _ => {}
    }
    if let Some(r) = run {
        up.keys(r, &["cmd"], "`run`");
    }

    if kind == "pipeline" {
        return upgrade_pipeline(up, root);
    }

    let mut component: Vec<(&str, Node)> = Vec::new();
    for key in ["name", "description", "tags"] {
        if let Some(v) = root.get(key) {
            component.push((key, v.clone()));
        }
    }
    if let Some(level) = root.get("logging").and_then(|l| {
        up.keys(l, &["level"], "`logging`");
        l.get("level")
    }) {
        component.push(("plugins", m(vec![("logLevel", level.clone())], level.span)));
    }

    // Inputs, outputs and params.
    let mut inputs = ios(up, root.get("inputs"));
    let outputs = ios(up, root.get("outputs"));
    let declared = root.get("inputs").is_some() || root.get("outputs").is_some();
    let params_node = match (root.get("params"), root.get("declarations")) {
        (Some(p), _) => Some(p),
        (None, Some(d)) => {
            up.warn(d.span, "`declarations` is the deprecated name of `params`");
            Some(d)
        }
        _ => None,
    };
    let mut params: Vec<(Node, Node)> = Vec::new();
    if let Some(p) = up.map(params_node, "params") {
        for (k, v) in p.as_map().unwrap_or_default() {
            let name = k.key_text();
            let is_declared = inputs
                .iter()
                .chain(outputs.iter())
                .any(|io| io.get("name").and_then(Node::as_str) == Some(&name));
            if is_declared {
                params.push((k.clone(), m(vec![("value", v.clone())], v.span)));
            } else if declared {
                let d = up.err(k.span, format!("param `{name}` matches no declared input"));
                d.hint = Some("declare it under `inputs` with a `type`, or remove it".into());
            } else {
                // Untyped v0.6 params become optional inputs with this value.
                let mut io = vec![
                    ("name", s(name.clone(), k.span)),
                    ("isOptional", Node::new(Value::Bool(true), k.span)),
                    ("value", v.clone()),
                ];
                if let Some(t) = infer_type(v) {
                    io.insert(1, ("type", s(t, k.span)));
                }
                inputs.push(m(io, k.span));
            }
        }
    }

    let env = up.map(root.get("environment"), "environment");
    let mut matrix = None;
    if kind == "group"
        && let Some(h) = up.map(root.get("hptuning"), "hptuning")
    {
        matrix = upgrade_hptuning(up, h, &mut inputs);
    }

    if !inputs.is_empty() {
        component.push(("inputs", seq(inputs, span)));
    }
    if !outputs.is_empty() {
        component.push(("outputs", seq(outputs, span)));
    }
    if let Some(n) = env.and_then(|e| e.get("max_restarts")) {
        component.push(("termination", m(vec![("maxRetries", n.clone())], n.span)));
    }

    // The run.
    let image_info = build
        .map(|b| upgrade_build(up, b, &kind))
        .unwrap_or_default();
    let top_build = if kind == "build" {
        Some(upgrade_build(up, root, &kind))
    } else {
        None
    };
    let image_info = top_build.unwrap_or(image_info);
    let cmd = run.and_then(|r| r.get("cmd"));
    let run_node = upgrade_run(up, root, &kind, env, cmd, &image_info, span);
    if let Some(b) = &image_info.build_section {
        component.push(("build", b.clone()));
    }
    component.push(("run", run_node));

    let mut op = vec![
        (
            "version",
            Node::new(Value::Float(crate::load::VERSION), span),
        ),
        ("kind", s("operation", span)),
    ];
    if !params.is_empty() {
        op.push(("params", Node::new(Value::Map(params), span)));
    }
    if let Some(mx) = matrix {
        op.push(("matrix", mx));
    }
    op.push(("component", m(component, span)));
    Some(m(op, span))
}

fn infer_type(v: &Node) -> Option<&'static str> {
    Some(match &v.value {
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Seq(_) => "list",
        Value::Map(_) => "dict",
        Value::Null => return None,
    })
}

fn ios(up: &mut Up<'_>, list: Option<&Node>) -> Vec<Node> {
    let Some(list) = list else { return vec![] };
    let Some(items) = list.as_seq() else {
        up.err(list.span, "inputs and outputs are lists");
        return vec![];
    };
    let mut out = Vec::new();
    for item in items {
        up.keys(
            item,
            &[
                "name",
                "description",
                "type",
                "default",
                "value",
                "is_optional",
                "is_list",
                "is_flag",
                "options",
            ],
            "an input or output",
        );
        let mut io: Vec<(&str, Node)> = Vec::new();
        for (from, to) in [
            ("name", "name"),
            ("description", "description"),
            ("default", "value"),
            ("value", "value"),
            ("is_optional", "isOptional"),
            ("is_list", "isList"),
            ("is_flag", "isFlag"),
        ] {
            if let Some(v) = item.get(from) {
                io.push((to, v.clone()));
            }
        }
        if let Some(t) = item.get("type") {
            match t.as_str().and_then(IoType::parse) {
                Some(ty) => io.push(("type", s(ty.name(), t.span))),
                None => {
                    let shown = t.as_str().unwrap_or("?").to_string();
                    up.err(t.span, format!("unknown type `{shown}`"));
                }
            }
        }
        if let Some(o) = item.get("options") {
            io.push(("validation", m(vec![("options", o.clone())], o.span)));
        }
        out.push(m(io, item.span));
    }
    out
}

fn upgrade_hptuning(up: &mut Up<'_>, h: &Node, inputs: &mut Vec<Node>) -> Option<Node> {
    up.keys(
        h,
        &[
            "seed",
            "concurrency",
            "matrix",
            "grid_search",
            "random_search",
            "hyperband",
            "bo",
            "early_stopping",
        ],
        "`hptuning`",
    );
    let span = h.span;
    let mut params: Vec<(Node, Node)> = Vec::new();
    if let Some(mx) = up.map(h.get("matrix"), "matrix") {
        for (k, v) in mx.as_map().unwrap_or_default() {
            let name = k.key_text();
            let dists = [
                "values",
                "pvalues",
                "range",
                "linspace",
                "logspace",
                "geomspace",
                "uniform",
                "quniform",
                "loguniform",
                "qloguniform",
                "normal",
                "qnormal",
                "lognormal",
                "qlognormal",
            ];
            up.keys(v, &dists, &format!("matrix param `{name}`"));
            let Some((dk, dv)) = v
                .as_map()
                .and_then(|m| m.first())
                .map(|(a, b)| (a.key_text(), b))
            else {
                up.err(
                    v.span,
                    format!("matrix param `{name}` needs a distribution such as `values: [...]`"),
                );
                continue;
            };
            let kind = match dk.as_str() {
                "values" => "choice",
                "pvalues" => "pchoice",
                other => other,
            };
            params.push((
                k.clone(),
                m(
                    vec![("kind", s(kind, v.span)), ("value", dv.clone())],
                    v.span,
                ),
            ));
            let declared = inputs
                .iter()
                .any(|io| io.get("name").and_then(Node::as_str) == Some(&name));
            if !declared {
                let ty = match kind {
                    "choice" | "pchoice" => {
                        let vals: Vec<&Node> = match kind {
                            "choice" => dv.as_seq().unwrap_or_default().iter().collect(),
                            _ => dv
                                .as_seq()
                                .unwrap_or_default()
                                .iter()
                                .filter_map(|p| p.as_seq().and_then(|x| x.first()))
                                .collect(),
                        };
                        let types: Vec<&str> = vals.iter().filter_map(|n| infer_type(n)).collect();
                        if types.iter().all(|t| *t == "int") {
                            "int"
                        } else if types.iter().all(|t| *t == "int" || *t == "float") {
                            "float"
                        } else if types.iter().all(|t| *t == "bool") {
                            "bool"
                        } else if types.iter().all(|t| *t == "str") {
                            "str"
                        } else {
                            "any"
                        }
                    }
                    "range" => "float",
                    _ => "float",
                };
                inputs.push(m(
                    vec![("name", s(name.clone(), k.span)), ("type", s(ty, k.span))],
                    k.span,
                ));
            }
        }
    }
    let algo: Vec<&str> = ["grid_search", "random_search", "hyperband", "bo"]
        .into_iter()
        .filter(|a| h.get(a).is_some())
        .collect();
    if algo.len() > 1 {
        up.err(
            span,
            format!(
                "`hptuning` takes one search algorithm, found {}",
                one_of(&algo)
            ),
        );
        return None;
    }
    let mut out: Vec<(&str, Node)> = Vec::new();
    match algo.first().copied() {
        None | Some("grid_search") => {
            out.push(("kind", s("grid", span)));
            if let Some(n) = h.get("grid_search").and_then(|g| {
                up.keys(g, &["n_experiments"], "`grid_search`");
                g.get("n_experiments")
            }) {
                out.push(("numRuns", n.clone()));
            }
        }
        Some("random_search") => {
            out.push(("kind", s("random", span)));
            let r = h.get("random_search").expect("present");
            up.keys(r, &["n_experiments"], "`random_search`");
            match r.get("n_experiments") {
                Some(n) => out.push(("numRuns", n.clone())),
                None => {
                    up.err(r.span, "`random_search` needs `n_experiments`");
                }
            }
            if let Some(seed) = h.get("seed") {
                out.push(("seed", seed.clone()));
            }
        }
        Some("hyperband") => {
            let hb = h.get("hyperband").expect("present");
            up.keys(
                hb,
                &["max_iter", "eta", "resource", "metric", "resume"],
                "`hyperband`",
            );
            out.push(("kind", s("hyperband", span)));
            for (from, to) in [
                ("max_iter", "maxIterations"),
                ("eta", "eta"),
                ("resume", "resume"),
            ] {
                if let Some(v) = hb.get(from) {
                    out.push((to, v.clone()));
                }
            }
            if let Some(r) = hb.get("resource") {
                out.push(("resource", r.clone()));
                if let Some(name) = r.get("name").and_then(Node::as_str)
                    && !inputs
                        .iter()
                        .any(|io| io.get("name").and_then(Node::as_str) == Some(name))
                {
                    let ty = r
                        .get("type")
                        .and_then(Node::as_str)
                        .unwrap_or("int")
                        .to_string();
                    inputs.push(m(
                        vec![("name", s(name, r.span)), ("type", s(ty, r.span))],
                        r.span,
                    ));
                }
            }
            if let Some(mt) = hb.get("metric") {
                out.push(("metric", mt.clone()));
            }
            if let Some(seed) = h.get("seed") {
                out.push(("seed", seed.clone()));
            }
        }
        Some(_) => {
            let bo = h.get("bo").expect("present");
            up.keys(
                bo,
                &[
                    "n_initial_trials",
                    "n_iterations",
                    "metric",
                    "utility_function",
                ],
                "`bo`",
            );
            out.push(("kind", s("bayes", span)));
            for (from, to) in [
                ("n_initial_trials", "numInitialRuns"),
                ("n_iterations", "maxIterations"),
                ("metric", "metric"),
            ] {
                if let Some(v) = bo.get(from) {
                    out.push((to, v.clone()));
                }
            }
            if let Some(uf) = bo.get("utility_function") {
                up.keys(
                    uf,
                    &[
                        "acquisition_function",
                        "kappa",
                        "eps",
                        "n_warmup",
                        "n_iter",
                        "gaussian_process",
                    ],
                    "`utility_function`",
                );
                let mut u: Vec<(&str, Node)> = Vec::new();
                for (from, to) in [
                    ("acquisition_function", "acquisitionFunction"),
                    ("kappa", "kappa"),
                    ("eps", "eps"),
                    ("n_warmup", "numWarmup"),
                    ("n_iter", "numIterations"),
                ] {
                    if let Some(v) = uf.get(from) {
                        u.push((to, v.clone()));
                    }
                }
                if let Some(gp) = uf.get("gaussian_process") {
                    up.keys(
                        gp,
                        &["kernel", "length_scale", "nu", "n_restarts_optimizer"],
                        "`gaussian_process`",
                    );
                    let mut g: Vec<(&str, Node)> = Vec::new();
                    for (from, to) in [
                        ("kernel", "kernel"),
                        ("length_scale", "lengthScale"),
                        ("nu", "nu"),
                        ("n_restarts_optimizer", "numRestartsOptimizer"),
                    ] {
                        if let Some(v) = gp.get(from) {
                            g.push((to, v.clone()));
                        }
                    }
                    u.push(("gaussianProcess", m(g, gp.span)));
                }
                out.push(("utilityFunction", m(u, uf.span)));
            }
            if let Some(seed) = h.get("seed") {
                out.push(("seed", seed.clone()));
            }
        }
    }
    if let Some(c) = h.get("concurrency") {
        out.push(("concurrency", c.clone()));
    }
    out.push(("params", Node::new(Value::Map(params), span)));
    if let Some(es) = h.get("early_stopping") {
        let items: Vec<Node> = es
            .as_seq()
            .unwrap_or_default()
            .iter()
            .map(|e| {
                up.keys(
                    e,
                    &["metric", "value", "optimization", "policy"],
                    "an early stopping rule",
                );
                let mut entries = vec![("kind", s("metric_early_stopping", e.span))];
                for k in ["metric", "value", "optimization", "policy"] {
                    if let Some(v) = e.get(k) {
                        entries.push((k, v.clone()));
                    }
                }
                m(entries, e.span)
            })
            .collect();
        out.push(("earlyStopping", seq(items, es.span)));
    }
    Some(m(out, span))
}

/// What a v0.6 `build` turns into.
#[derive(Default)]
struct ImageInfo {
    image: Option<Node>,
    init: Vec<Node>,
    build_section: Option<Node>,
}

fn upgrade_build(up: &mut Up<'_>, b: &Node, kind: &str) -> ImageInfo {
    if kind != "build" {
        up.keys(
            b,
            &[
                "image",
                "dockerfile",
                "context",
                "build_steps",
                "env_vars",
                "lang_env",
                "commit",
                "branch",
                "nocache",
                "ref",
                "environment",
            ],
            "`build`",
        );
    }
    let mut info = ImageInfo::default();
    let steps = b.get("build_steps");
    let env_vars = b.get("env_vars");
    if let Some(image) = b.get("image") {
        info.image = Some(image.clone());
        if steps.is_some() || env_vars.is_some() || b.get("lang_env").is_some() {
            let mut d = vec![("image", image.clone())];
            if let Some(st) = steps {
                d.push(("run", st.clone()));
            }
            if let Some(ev) = env_vars {
                // `[[name, value], ...]` with values as text.
                let pairs: Vec<Node> = ev
                    .as_seq()
                    .unwrap_or_default()
                    .iter()
                    .map(|p| {
                        let items: Vec<Node> = p
                            .as_seq()
                            .unwrap_or_default()
                            .iter()
                            .map(|x| s(text_of(x).unwrap_or_default(), x.span))
                            .collect();
                        seq(items, p.span)
                    })
                    .collect();
                d.push(("env", seq(pairs, ev.span)));
            }
            if let Some(l) = b.get("lang_env") {
                d.push(("langEnv", l.clone()));
            }
            info.init
                .push(m(vec![("dockerfile", m(d, b.span))], b.span));
        }
    } else if let Some(df) = b.get("dockerfile") {
        let mut params = vec![("dockerfile", m(vec![("value", df.clone())], df.span))];
        if let Some(ctx) = b.get("context") {
            params.push(("context", m(vec![("value", ctx.clone())], ctx.span)));
        }
        info.build_section = Some(m(
            vec![
                ("hubRef", s("kaniko", df.span)),
                ("params", m(params, df.span)),
            ],
            b.span,
        ));
        up.warn(
            df.span,
            "`build.dockerfile` is upgraded to a `build` section with the `kaniko` builder",
        );
    } else if let Some(r) = b.get("ref") {
        up.warn(r.span, "`build.ref` points to a v0.6 build; it is not carried over, set an image on the upgraded container");
    } else if kind != "build" {
        up.err(b.span, "`build` needs an `image` or a `dockerfile`");
    } else {
        up.err(b.span, "a v0.6 build needs an `image` or a `dockerfile`");
    }
    for k in ["commit", "branch", "nocache"] {
        if let Some(v) = b.get(k) {
            up.warn(
                v.span,
                format!("`build.{k}` has no v1.1 equivalent and is dropped"),
            );
        }
    }
    if let Some(e) = b.get("environment") {
        up.warn(
            e.span,
            "`build.environment` has no v1.1 equivalent here and is dropped",
        );
    }
    info
}

fn quantity(n: &Node, memory: bool) -> Node {
    let t = match (&n.value, memory) {
        (Value::Int(i), true) => format!("{i}Mi"),
        (Value::Float(f), true) => format!("{}Mi", f.round() as i64),
        _ => text_of(n).unwrap_or_default(),
    };
    s(t, n.span)
}

/// `resources: {cpu: {requests, limits}, memory, gpu, tpu}` → Kubernetes resources.
fn resources(up: &mut Up<'_>, r: &Node) -> Option<Node> {
    up.keys(r, &["cpu", "memory", "gpu", "tpu"], "`resources`");
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for (key, name, memory) in [
        ("cpu", "cpu", false),
        ("memory", "memory", true),
        ("gpu", "nvidia.com/gpu", false),
        ("tpu", "cloud-tpus.google.com/v2", false),
    ] {
        let Some(spec) = r.get(key) else { continue };
        up.keys(spec, &["requests", "limits"], &format!("`resources.{key}`"));
        if let Some(v) = spec.get("requests") {
            requests.push((name, quantity(v, memory)));
        }
        if let Some(v) = spec.get("limits") {
            limits.push((name, quantity(v, memory)));
        }
    }
    let mut out = Vec::new();
    if !requests.is_empty() {
        out.push(("requests", m(requests, r.span)));
    }
    if !limits.is_empty() {
        out.push(("limits", m(limits, r.span)));
    }
    (!out.is_empty()).then(|| m(out, r.span))
}

fn string_map(n: &Node) -> Node {
    let entries = n
        .as_map()
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| (k.clone(), s(text_of(v).unwrap_or_default(), v.span)))
        .collect();
    Node::new(Value::Map(entries), n.span)
}

/// Drops empty parts of an affinity that Kubernetes would reject (`{}` where terms are required).
fn clean_affinity(up: &mut Up<'_>, n: &Node) -> Option<Node> {
    fn prune(n: &Node, dropped: &mut Vec<Span>) -> Option<Node> {
        match &n.value {
            Value::Map(entries) => {
                if entries.is_empty() {
                    dropped.push(n.span);
                    return None;
                }
                let kept: Vec<(Node, Node)> = entries
                    .iter()
                    .filter_map(|(k, v)| prune(v, dropped).map(|v| (k.clone(), v)))
                    .collect();
                (!kept.is_empty()).then(|| Node {
                    value: Value::Map(kept),
                    ..n.clone()
                })
            }
            _ => Some(n.clone()),
        }
    }
    let mut dropped = Vec::new();
    let out = prune(n, &mut dropped);
    for sp in dropped {
        up.warn(
            sp,
            "an empty affinity rule is dropped (Kubernetes requires its terms)",
        );
    }
    out
}

/// Pod environment and container extras from a v0.6 `environment` (or replica override).
struct EnvParts {
    environment: Vec<(&'static str, Node)>,
    resources: Option<Node>,
    env_from: Vec<Node>,
    connections: Vec<Node>,
}

fn env_parts(up: &mut Up<'_>, e: &Node, replica: bool) -> EnvParts {
    let keys: &[&str] = if replica {
        &[
            "resources",
            "node_selector",
            "tolerations",
            "affinity",
            "labels",
            "annotations",
            "index",
        ]
    } else {
        &[
            "resources",
            "node_selector",
            "tolerations",
            "affinity",
            "labels",
            "annotations",
            "persistence",
            "data_refs",
            "artifact_refs",
            "secret_refs",
            "config_map_refs",
            "configmap_refs",
            "service_account",
            "image_pull_secrets",
            "max_restarts",
            "outputs",
            "replicas",
        ]
    };
    up.keys(
        e,
        keys,
        if replica {
            "a replica"
        } else {
            "`environment`"
        },
    );
    let mut parts = EnvParts {
        environment: Vec::new(),
        resources: None,
        env_from: Vec::new(),
        connections: Vec::new(),
    };
    if let Some(ns) = e.get("node_selector") {
        parts.environment.push(("nodeSelector", string_map(ns)));
    }
    for (k, to) in [("labels", "labels"), ("annotations", "annotations")] {
        if let Some(v) = e.get(k) {
            parts.environment.push((to, string_map(v)));
        }
    }
    if let Some(t) = e.get("tolerations") {
        parts.environment.push(("tolerations", t.clone()));
    }
    if let Some(a) = e.get("affinity").and_then(|a| clean_affinity(up, a)) {
        parts.environment.push(("affinity", a));
    }
    if let Some(sa) = e.get("service_account") {
        parts.environment.push(("serviceAccountName", sa.clone()));
    }
    if let Some(ips) = e.get("image_pull_secrets") {
        parts.environment.push(("imagePullSecrets", ips.clone()));
    }
    if let Some(r) = e.get("resources") {
        parts.resources = resources(up, r);
    }
    for (k, kind) in [
        ("secret_refs", "secretRef"),
        ("config_map_refs", "configMapRef"),
        ("configmap_refs", "configMapRef"),
    ] {
        for name in e.get(k).and_then(Node::as_seq).unwrap_or_default() {
            parts.env_from.push(m(
                vec![(kind, m(vec![("name", name.clone())], name.span))],
                name.span,
            ));
        }
    }
    for k in ["data_refs", "artifact_refs"] {
        parts.connections.extend(
            e.get(k)
                .and_then(Node::as_seq)
                .unwrap_or_default()
                .iter()
                .cloned(),
        );
    }
    if let Some(p) = e.get("persistence") {
        up.warn(
            p.span,
            "`persistence` is deprecated; its stores become `connections`",
        );
        for k in ["data", "outputs"] {
            match p.get(k).map(|n| &n.value) {
                Some(Value::Seq(items)) => parts.connections.extend(items.iter().cloned()),
                Some(Value::Str(_)) => parts.connections.push(p.get(k).cloned().expect("present")),
                _ => {}
            }
        }
    }
    if let Some(o) = e.get("outputs") {
        up.warn(o.span, "`environment.outputs` (refs to other runs' outputs) has no v1.1 equivalent and is dropped");
    }
    parts
}

fn container(
    image: Option<&Node>,
    cmd: Option<(Node, Node)>,
    parts: &EnvParts,
    span: Span,
) -> Node {
    let mut c: Vec<(&str, Node)> = Vec::new();
    if let Some(i) = image {
        c.push(("image", i.clone()));
    }
    if let Some((command, args)) = cmd {
        c.push(("command", command));
        c.push(("args", args));
    }
    if let Some(r) = &parts.resources {
        c.push(("resources", r.clone()));
    }
    if !parts.env_from.is_empty() {
        c.push(("envFrom", seq(parts.env_from.clone(), span)));
    }
    m(c, span)
}

fn shell_cmd(cmd: &Node) -> (Node, Node) {
    let script = match &cmd.value {
        Value::Seq(items) => items
            .iter()
            .filter_map(text_of)
            .collect::<Vec<_>>()
            .join(" && "),
        _ => text_of(cmd).unwrap_or_default(),
    };
    (
        seq(vec![s("/bin/sh", cmd.span), s("-c", cmd.span)], cmd.span),
        seq(vec![s(script, cmd.span)], cmd.span),
    )
}

#[allow(clippy::too_many_arguments)]
fn upgrade_run(
    up: &mut Up<'_>,
    root: &Node,
    kind: &str,
    env: Option<&Node>,
    cmd: Option<&Node>,
    img: &ImageInfo,
    span: Span,
) -> Node {
    let parts = env.map(|e| env_parts(up, e, false)).unwrap_or(EnvParts {
        environment: vec![],
        resources: None,
        env_from: vec![],
        connections: vec![],
    });
    let framework = root
        .get("framework")
        .and_then(Node::as_str)
        .unwrap_or_default()
        .to_string();
    let backend = root
        .get("backend")
        .and_then(Node::as_str)
        .unwrap_or_default()
        .to_string();
    let replicas = env.and_then(|e| e.get("replicas"));
    let command = match kind {
        "notebook" => {
            let app = if backend == "lab" { "lab" } else { "notebook" };
            let args = [
                "jupyter",
                app,
                "--no-browser",
                "--ip=0.0.0.0",
                "--port=8888",
                "--allow-root",
                "--NotebookApp.token=",
                "--NotebookApp.base_url={{ globals.base_url }}",
            ];
            Some((
                seq(args.iter().map(|a| s(*a, span)).collect(), span),
                seq(vec![], span),
            ))
        }
        "tensorboard" => {
            let args = [
                "tensorboard",
                "--logdir={{ globals.artifacts_path }}",
                "--port=6006",
                "--host=0.0.0.0",
                // Served under the server's proxy.
                "--path_prefix={{ globals.base_url }}",
            ];
            Some((
                seq(args.iter().map(|a| s(*a, span)).collect(), span),
                seq(vec![], span),
            ))
        }
        _ => cmd.map(shell_cmd),
    };
    let main = container(img.image.as_ref(), command.clone(), &parts, span);
    let mut run: Vec<(&str, Node)> = Vec::new();
    let environment = m(parts.environment.clone(), span);
    let with_common = |run: &mut Vec<(&str, Node)>| {
        if !parts.environment.is_empty() {
            run.push(("environment", environment.clone()));
        }
        if !parts.connections.is_empty() {
            run.push(("connections", seq(parts.connections.clone(), span)));
        }
        if !img.init.is_empty() {
            run.push(("init", seq(img.init.clone(), span)));
        }
    };
    match (kind, replicas) {
        ("notebook" | "tensorboard", _) => {
            run.push(("kind", s("service", span)));
            with_common(&mut run);
            run.push((
                "ports",
                seq(
                    vec![Node::new(
                        Value::Int(if kind == "notebook" { 8888 } else { 6006 }),
                        span,
                    )],
                    span,
                ),
            ));
            run.push(("container", main));
        }
        (_, Some(reps)) => {
            up.keys(
                reps,
                &[
                    "n_workers",
                    "n_ps",
                    "default_worker",
                    "default_ps",
                    "worker",
                    "ps",
                ],
                "`environment.replicas`",
            );
            let dist = if backend == "mpi" || framework == "horovod" {
                "mpijob"
            } else {
                match framework.as_str() {
                    "tensorflow" => "tfjob",
                    "pytorch" => "pytorchjob",
                    "mxnet" => {
                        up.warn(reps.span, "distributed MXNet has no v1.1 run kind; upgraded to a single-pod job, `replicas` is dropped");
                        "job"
                    }
                    other => {
                        up.warn(reps.span, format!("replicas without a distributed framework ({}) run as a single-pod job", if other.is_empty() { "none set" } else { other }));
                        "job"
                    }
                }
            };
            for (k, what) in [("worker", "workers"), ("ps", "parameter servers")] {
                let idx: Vec<String> = reps
                    .get(k)
                    .and_then(Node::as_seq)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|r| r.get("index").and_then(text_of))
                    .collect();
                if !idx.is_empty() {
                    up.warn(reps.get(k).expect("present").span, format!("per-index settings of {what} {} are dropped: v1.1 replicas of a role share one spec", idx.join(", ")));
                }
                for r in reps.get(k).and_then(Node::as_seq).unwrap_or_default() {
                    env_parts(up, r, true);
                }
            }
            run.push(("kind", s(dist, span)));
            if dist == "job" {
                with_common(&mut run);
                run.push(("container", main));
            } else {
                let replica = |up: &mut Up<'_>,
                               n: Option<&Node>,
                               default: Option<&Node>,
                               count: Option<Node>|
                 -> Node {
                    let over = default.map(|d| env_parts(up, d, true));
                    let mut r: Vec<(&str, Node)> = Vec::new();
                    if let Some(c) = count {
                        r.push(("replicas", c));
                    }
                    let merged_env: Vec<(&str, Node)> = parts
                        .environment
                        .iter()
                        .cloned()
                        .chain(over.iter().flat_map(|o| o.environment.clone()))
                        .fold(Vec::new(), |mut acc, (k, v)| {
                            acc.retain(|(k2, _)| *k2 != k);
                            acc.push((k, v));
                            acc
                        });
                    if !merged_env.is_empty() {
                        r.push(("environment", m(merged_env, span)));
                    }
                    if !parts.connections.is_empty() {
                        r.push(("connections", seq(parts.connections.clone(), span)));
                    }
                    if !img.init.is_empty() {
                        r.push(("init", seq(img.init.clone(), span)));
                    }
                    let merged = EnvParts {
                        environment: vec![],
                        resources: over
                            .as_ref()
                            .and_then(|o| o.resources.clone())
                            .or(parts.resources.clone()),
                        env_from: parts.env_from.clone(),
                        connections: vec![],
                    };
                    r.push((
                        "container",
                        container(
                            img.image.as_ref(),
                            command.clone(),
                            &merged,
                            n.map_or(span, |x| x.span),
                        ),
                    ));
                    m(r, span)
                };
                let one = Some(Node::new(Value::Int(1), span));
                let (lead, lead_count) = match dist {
                    "tfjob" => ("chief", one.clone()),
                    "pytorchjob" => ("master", one.clone()),
                    _ => ("launcher", one.clone()),
                };
                let lead_node = replica(up, None, None, lead_count);
                run.push((lead, lead_node));
                let workers = reps.get("n_workers").cloned();
                if workers.is_some() || reps.get("default_worker").is_some() {
                    let w = replica(
                        up,
                        reps.get("default_worker"),
                        reps.get("default_worker"),
                        workers,
                    );
                    run.push(("worker", w));
                }
                if dist == "tfjob"
                    && (reps.get("n_ps").is_some() || reps.get("default_ps").is_some())
                {
                    let p = replica(
                        up,
                        reps.get("default_ps"),
                        reps.get("default_ps"),
                        reps.get("n_ps").cloned(),
                    );
                    run.push(("ps", p));
                } else if let Some(ps) = reps.get("n_ps") {
                    up.warn(
                        ps.span,
                        format!("parameter servers have no place in a {dist}; `n_ps` is dropped"),
                    );
                }
            }
        }
        _ => {
            run.push(("kind", s("job", span)));
            with_common(&mut run);
            run.push(("container", main));
        }
    }
    m(run, span)
}

fn upgrade_pipeline(up: &mut Up<'_>, root: &Node) -> Option<Node> {
    let span = root.span;
    let mut ops = Vec::new();
    for op in root.get("ops").and_then(Node::as_seq).unwrap_or_default() {
        up.keys(
            op,
            &[
                "name",
                "template",
                "dependencies",
                "params",
                "trigger",
                "skip_on_upstream_skip",
                "conditions",
            ],
            "a pipeline op",
        );
        let mut o: Vec<(&str, Node)> = Vec::new();
        if let Some(n) = op.get("name") {
            o.push(("name", n.clone()));
        }
        match op.get("template").and_then(|t| t.get("name")) {
            Some(t) => o.push(("dagRef", t.clone())),
            None => {
                up.err(op.span, "a pipeline op needs `template: {name: ...}`");
            }
        }
        for (from, to) in [
            ("dependencies", "dependencies"),
            ("trigger", "trigger"),
            ("skip_on_upstream_skip", "skipOnUpstreamSkip"),
            ("conditions", "conditions"),
        ] {
            if let Some(v) = op.get(from) {
                o.push((to, v.clone()));
            }
        }
        if let Some(p) = op.get("params") {
            let entries = p
                .as_map()
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| (k.clone(), m(vec![("value", v.clone())], v.span)))
                .collect();
            o.push(("params", Node::new(Value::Map(entries), p.span)));
        }
        ops.push(m(o, op.span));
    }
    let mut components = Vec::new();
    for t in root
        .get("templates")
        .and_then(Node::as_seq)
        .unwrap_or_default()
    {
        if let Some(op) = upgrade_file(up, t, false)
            && let Some(mut comp) = op.get("component").cloned()
        {
            if let Some(n) = t.get("name") {
                comp.set("name", n.clone());
            }
            if let Some(run) = comp.get_mut("run")
                && run.get("container").is_none()
                && run.get("kind").and_then(Node::as_str) == Some("job")
            {
                run.set("container", m(vec![], t.span));
            }
            components.push(comp);
        }
    }
    let mut run = vec![
        ("kind", s("dag", span)),
        (
            "operations",
            seq(ops, root.get("ops").map_or(span, |o| o.span)),
        ),
    ];
    if !components.is_empty() {
        run.push((
            "components",
            seq(components, root.get("templates").map_or(span, |t| t.span)),
        ));
    }
    if let Some(c) = root.get("concurrency") {
        run.push(("concurrency", c.clone()));
    }
    let mut component = Vec::new();
    for key in ["name", "description", "tags"] {
        if let Some(v) = root.get(key) {
            component.push((key, v.clone()));
        }
    }
    if let Some(level) = root.get("logging").and_then(|l| l.get("level")) {
        component.push(("plugins", m(vec![("logLevel", level.clone())], level.span)));
    }
    component.push(("run", m(run, span)));
    let mut op = vec![
        (
            "version",
            Node::new(Value::Float(crate::load::VERSION), span),
        ),
        ("kind", s("operation", span)),
    ];
    if let Some(sch) = root.get("schedule") {
        up.keys(
            sch,
            &[
                "kind",
                "cron",
                "start_at",
                "end_at",
                "frequency",
                "depends_on_past",
                "max_runs",
            ],
            "`schedule`",
        );
        let mut entries = Vec::new();
        for (from, to) in [
            ("kind", "kind"),
            ("cron", "cron"),
            ("start_at", "startAt"),
            ("end_at", "endAt"),
            ("frequency", "frequency"),
            ("depends_on_past", "dependsOnPast"),
            ("max_runs", "maxRuns"),
        ] {
            if let Some(v) = sch.get(from) {
                entries.push((to, v.clone()));
            }
        }
        op.push(("schedule", m(entries, sch.span)));
    }
    op.push(("component", m(component, span)));
    Some(m(op, span))
}
