//! Semantic checks on typed specs, located in the user's file: IO declarations, params against
//! inputs, matrix spaces, DAGs, schedules, init steps, and container mistakes that would only
//! show up at run time.

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{Diagnostic, did_you_mean, one_of};
use crate::node::{DisplayPath, Node, PathSeg, Span};
use crate::path;
use crate::spec::*;
use crate::template::Templates;
use crate::types::{IoType, TYPE_NAMES, coerce};

/// Collects diagnostics about one tree, turning paths into spans.
pub struct Checker<'a> {
    pub root: &'a Node,
    /// Prefix of paths (within `root`) that the user's file does not show (e.g. `component`
    /// when the file was a component wrapped into an operation).
    pub hidden: usize,
    pub diags: Vec<Diagnostic>,
    pub templates: &'a Templates,
}

impl<'a> Checker<'a> {
    pub fn new(root: &'a Node, hidden: usize, templates: &'a Templates) -> Self {
        Checker {
            root,
            hidden,
            diags: Vec::new(),
            templates,
        }
    }

    fn span(&self, path: &[PathSeg]) -> Span {
        self.root.locate(path).0.span
    }

    fn shown(&self, path: &[PathSeg]) -> String {
        DisplayPath(&path[self.hidden.min(path.len())..]).to_string()
    }

    /// An error at the value `path` designates.
    pub fn error(&mut self, path: &[PathSeg], msg: impl Into<String>) -> &mut Diagnostic {
        let d = Diagnostic::error(msg, self.span(path)).with_path(self.shown(path));
        self.diags.push(d);
        self.diags.last_mut().expect("just pushed")
    }

    /// An error at the key `path` ends with.
    pub fn key_error(&mut self, path: &[PathSeg], msg: impl Into<String>) -> &mut Diagnostic {
        let d = Diagnostic::error(msg, self.root.key_span(path)).with_path(self.shown(path));
        self.diags.push(d);
        self.diags.last_mut().expect("just pushed")
    }

    pub fn warning(&mut self, path: &[PathSeg], msg: impl Into<String>) -> &mut Diagnostic {
        let d = Diagnostic::warning(msg, self.span(path)).with_path(self.shown(path));
        self.diags.push(d);
        self.diags.last_mut().expect("just pushed")
    }

    /// Checks the syntax of every template string under `path`.
    pub fn template_syntax(&mut self, path: &[PathSeg]) {
        let (node, found) = self.root.locate(path);
        if !found {
            return;
        }
        let mut bad = Vec::new();
        walk_strings(node, &mut |n, s| {
            if crate::de::is_template(s)
                && let Err(e) = self.templates.check_syntax(s)
            {
                bad.push((n.span, e));
            }
        });
        for (span, e) in bad {
            self.diags
                .push(Diagnostic::error(e, span).with_label("in this template"));
        }
    }
}

fn walk_strings<'n>(node: &'n Node, f: &mut impl FnMut(&'n Node, &'n str)) {
    match &node.value {
        crate::node::Value::Str(s) => f(node, s),
        crate::node::Value::Seq(items) => items.iter().for_each(|n| walk_strings(n, f)),
        crate::node::Value::Map(entries) => entries.iter().for_each(|(_, v)| walk_strings(v, f)),
        _ => {}
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks a component at `at` (a path within the checker's root).
pub fn component(c: &mut Checker<'_>, comp: &Component, at: &[PathSeg]) {
    let p = |rest: Vec<PathSeg>| -> Vec<PathSeg> { at.iter().cloned().chain(rest).collect() };
    if let Some(name) = &comp.name
        && !valid_name(name)
    {
        c.error(&p(path!["name"]), format!("`{name}` is not a valid name"))
            .hint = Some("names use letters, digits, `-` and `_`".into());
    }
    let mut seen: BTreeMap<String, Vec<PathSeg>> = BTreeMap::new();
    for (section, list) in [("inputs", &comp.inputs), ("outputs", &comp.outputs)] {
        for (i, io) in list.iter().flatten().enumerate() {
            let io_path = p(path![section, i]);
            self::io(c, io, &io_path, section == "outputs");
            if let Some(first) = seen.get(&io.name) {
                let line = c.span(first).start.line;
                c.error(
                    &p(path![section, i, "name"]),
                    format!("`{}` is declared twice", io.name),
                )
                .label = Some(format!("also declared at line {line}"));
            } else {
                seen.insert(io.name.clone(), p(path![section, i, "name"]));
            }
        }
    }
    match &comp.run {
        None => {
            c.key_error(at, "a component needs a `run` section").hint =
                Some("add `run:` with a `kind` (job, service, dag, …) and what to run".into());
        }
        Some(run) => self::run(c, run, &p(path!["run"])),
    }
    if let Some(t) = &comp.termination {
        termination(c, t, &p(path!["termination"]));
    }
    for (i, h) in comp.hooks.iter().flatten().enumerate() {
        if let Some(cond) = &h.conditions {
            let _ = cond;
            c.template_syntax(&p(path!["hooks", i, "conditions"]));
        }
    }
}

fn io(c: &mut Checker<'_>, io: &Io, at: &[PathSeg], is_output: bool) {
    let p = |rest: Vec<PathSeg>| -> Vec<PathSeg> { at.iter().cloned().chain(rest).collect() };
    if ["globals", "params", "connections"].contains(&io.name.as_str()) {
        c.error(
            &p(path!["name"]),
            format!("`{}` is a reserved name", io.name),
        )
        .hint =
            Some("templates use `globals`, `params` and `connections`; choose another name".into());
    } else if !valid_name(&io.name) {
        c.error(
            &p(path!["name"]),
            format!("`{}` is not a valid input or output name", io.name),
        )
        .hint = Some("names use letters, digits, `-` and `_`".into());
    }
    let ty = match &io.iotype {
        None => None,
        Some(t) => match IoType::parse(t) {
            Some(ty) => Some(ty),
            None => {
                let d = c.error(&p(path!["type"]), format!("unknown type `{t}`"));
                match did_you_mean(t, TYPE_NAMES.iter().copied()) {
                    Some(s) => d.label = Some(format!("did you mean `{s}`?")),
                    None => d.hint = Some(format!("types: {}", TYPE_NAMES.join(", "))),
                }
                None
            }
        },
    };
    if io.flag() && !matches!(ty, Some(IoType::Bool) | None) {
        c.error(
            &p(path!["isFlag"]),
            format!("`{}` is a flag, so its type must be `bool`", io.name),
        );
    }
    if let (Some(ty), Some(v)) = (&ty, &io.value)
        && !v.is_null()
        && !value_is_template(v)
    {
        match coerce(v, ty, io.list()) {
            Err(e) => {
                c.error(
                    &p(path!["value"]),
                    format!(
                        "the value of `{}` does not fit its type {}: {e}",
                        io.name,
                        ty.name()
                    ),
                );
            }
            Ok(v) => {
                if let Some(val) = &io.validation
                    && let Err(e) = crate::types::validate(&v, val)
                {
                    c.error(
                        &p(path!["value"]),
                        format!("the value of `{}` fails its validation: {e}", io.name),
                    );
                }
            }
        }
    }
    if let Some(env) = &io.to_env
        && (env.is_empty() || env.contains('='))
    {
        c.error(
            &p(path!["toEnv"]),
            format!("`{env}` is not a valid environment variable name"),
        );
    }
    if io.arg_format.is_some() {
        c.template_syntax(&p(path!["argFormat"]));
    }
    let _ = is_output;
}

fn value_is_template(v: &serde_json::Value) -> bool {
    v.as_str().is_some_and(crate::de::is_template)
}

fn termination(c: &mut Checker<'_>, t: &Termination, at: &[PathSeg]) {
    for (name, v) in [
        ("maxRetries", t.max_retries),
        ("ttl", t.ttl),
        ("timeout", t.timeout),
    ] {
        if let Some(v) = v
            && v < 0
        {
            let path: Vec<PathSeg> = at.iter().cloned().chain(path![name]).collect();
            c.error(&path, format!("`{name}` cannot be negative"));
        }
    }
}

/// Checks the run section.
pub fn run(c: &mut Checker<'_>, run: &Run, at: &[PathSeg]) {
    let p = |rest: Vec<PathSeg>| -> Vec<PathSeg> { at.iter().cloned().chain(rest).collect() };
    match run {
        Run::Job(j) => {
            match &j.container {
                Some(ct) => container(c, ct, &p(path!["container"])),
                None => {
                    c.key_error(at, "a job needs a `container`").hint =
                        Some("add `container:` with an `image` and a `command`".into());
                }
            }
            inits(c, j.init.as_deref(), &p(path!["init"]));
            sidecars(c, j.sidecars.as_deref(), &p(path!["sidecars"]));
        }
        Run::Service(s) => {
            match &s.container {
                Some(ct) => container(c, ct, &p(path!["container"])),
                None => {
                    c.key_error(at, "a service needs a `container`");
                }
            }
            for (i, port) in s.ports.iter().flatten().enumerate() {
                if !(1..=65535).contains(port) {
                    c.error(
                        &p(path!["ports", i]),
                        format!("{port} is not a port number (1-65535)"),
                    );
                }
            }
            deployment_restart(
                c,
                s.environment.as_ref(),
                &p(path!["environment"]),
                "a service",
            );
            inits(c, s.init.as_deref(), &p(path!["init"]));
            sidecars(c, s.sidecars.as_deref(), &p(path!["sidecars"]));
        }
        Run::Dag(_) => {}
        Run::DaskCluster(d) => {
            for (role, r) in [("scheduler", &d.scheduler), ("worker", &d.worker)] {
                if let Some(r) = r {
                    deployment_restart(
                        c,
                        r.environment.as_ref(),
                        &p(path![role, "environment"]),
                        "a Dask scheduler or worker",
                    );
                }
            }
        }
        _ => {}
    }
    for (role, r) in run.replicas() {
        let rp = p(path![role.as_str()]);
        if let Some(n) = r.replicas
            && n < 0
        {
            c.error(
                &[rp.clone(), path!["replicas"]].concat(),
                "`replicas` cannot be negative",
            );
        }
        if let Some(ct) = r.container {
            container(c, ct, &[rp.clone(), path!["container"]].concat());
        }
        inits(c, r.init, &[rp.clone(), path!["init"]].concat());
        sidecars(c, r.sidecars, &[rp.clone(), path!["sidecars"]].concat());
    }
}

/// Deployments only take `restartPolicy: Always`.
fn deployment_restart(c: &mut Checker<'_>, env: Option<&Environment>, at: &[PathSeg], what: &str) {
    if let Some(policy) = env.and_then(|e| e.restart_policy)
        && policy != RestartPolicy::Always
    {
        let path: Vec<PathSeg> = at.iter().cloned().chain(path!["restartPolicy"]).collect();
        c.error(
            &path,
            format!(
                "{what} runs as a Kubernetes Deployment, which only accepts `restartPolicy: Always`"
            ),
        )
        .hint = Some("remove `restartPolicy` or set it to `Always`".into());
    }
}

fn sidecars(c: &mut Checker<'_>, list: Option<&[Container]>, at: &[PathSeg]) {
    for (i, s) in list.unwrap_or_default().iter().enumerate() {
        let path: Vec<PathSeg> = at.iter().cloned().chain(path![i]).collect();
        container(c, s, &path);
    }
}

fn inits(c: &mut Checker<'_>, list: Option<&[Init]>, at: &[PathSeg]) {
    for (i, init) in list.unwrap_or_default().iter().enumerate() {
        let ip: Vec<PathSeg> = at.iter().cloned().chain(path![i]).collect();
        let sources = init.sources();
        if sources.len() > 1 {
            c.error(
                &ip,
                format!("an init step takes one source, found {}", one_of(&sources)),
            )
            .hint = Some("split it into several init steps".into());
        }
        if sources.is_empty() && init.container.is_none() {
            c.error(&ip, "an init step needs a source (`git`, `artifacts`, `dockerfile`, `file`, …) or a `container`");
        }
        if let Some(g) = &init.git
            && g.url.as_deref().is_none_or(str::is_empty)
            && init.connection.is_none()
        {
            c.error(
                &[ip.clone(), path!["git"]].concat(),
                "a git init step needs a `url` (or a `connection`)",
            );
        }
        if let Some(f) = &init.file
            && f.content.is_none()
        {
            c.error(
                &[ip.clone(), path!["file"]].concat(),
                "a file init step needs `content`",
            );
        }
        if let Some(d) = &init.dockerfile
            && d.image.as_deref().is_none_or(str::is_empty)
        {
            c.error(
                &[ip.clone(), path!["dockerfile"]].concat(),
                "a dockerfile init step needs a base `image`",
            );
        }
        if let Some(ct) = &init.container {
            container(c, ct, &[ip.clone(), path!["container"]].concat());
        }
    }
}

fn is_shell(cmd: &str) -> bool {
    let base = cmd.rsplit('/').next().unwrap_or(cmd);
    matches!(
        base,
        "sh" | "bash" | "zsh" | "dash" | "ash" | "ksh" | "fish"
    )
}

/// Container checks that catch run-time surprises.
pub fn container(c: &mut Checker<'_>, ct: &Container, at: &[PathSeg]) {
    let p = |rest: Vec<PathSeg>| -> Vec<PathSeg> { at.iter().cloned().chain(rest).collect() };
    // A bare number is a quantity (Kubernetes reads `cpu: 1` so), but memory as a bare number
    // is bytes: under a mebibyte it is most likely a slip for `512Mi`.
    for (which, q) in ct
        .resources
        .iter()
        .flat_map(|r| [("limits", &r.limits), ("requests", &r.requests)])
    {
        let Some(memory) = q.as_ref().and_then(|q| q.get("memory")) else {
            continue;
        };
        let path = p(path!["resources", which, "memory"]);
        let (node, found) = c.root.locate(&path);
        let bare = found
            && matches!(
                node.value,
                crate::node::Value::Int(_) | crate::node::Value::Float(_)
            );
        if bare && memory.to_f64().is_some_and(|b| b < 1024.0 * 1024.0) {
            c.warning(
                &path,
                format!("`memory: {memory}` is {memory} bytes, less than a mebibyte"),
            )
            .hint = Some(format!(
                "write `memory: \"{memory}Mi\"` for mebibytes (or `\"{memory}\"` to mean bytes)"
            ));
        }
    }
    if let Some(name) = &ct.name
        && !crate::de::is_template(name)
        && !dns_label(name)
    {
        c.error(
            &p(path!["name"]),
            format!("`{name}` is not a valid container name"),
        )
        .hint = Some("use lowercase letters, digits and `-` (at most 63 characters)".into());
    }
    // Exec form passes each item verbatim: one item holding an option and a shell-quoted value
    // (`-c "print(1)"`) reaches the program with the quotes and the space inside it.
    let shell_script = ct
        .command
        .as_ref()
        .is_some_and(|cmd| cmd.first().is_some_and(|c0| is_shell(c0)));
    let items: Vec<(&str, usize, &String)> = ct
        .command
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, s)| ("command", i, s))
        .chain(
            ct.args
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, s)| ("args", i, s)),
        )
        .collect();
    if !shell_script {
        for (field, i, s) in items {
            if let Some((opt, quoted)) = option_with_quoted_value(s) {
                let key = if field == "args" && ct.args.as_ref().is_some_and(|a| a.len() == 1) {
                    let node = c.root.locate(&p(path!["args"])).0;
                    if node.as_str().is_some() {
                        p(path!["args"])
                    } else {
                        p(path!["args", i])
                    }
                } else {
                    p(path![field, i])
                };
                c.error(
                    &key,
                    format!("`{s}` is one argument holding an option and a quoted value"),
                )
                .hint = Some(format!(
                    "the program receives the quotes literally; split it: `[{opt}, {}]`",
                    yaml_quote(&quoted)
                ));
            }
        }
    }
    for (i, port) in ct.ports.iter().flatten().enumerate() {
        if let Some(name) = &port.name
            && (name.len() > 15
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                || !name.chars().any(|c| c.is_ascii_lowercase()))
        {
            c.error(
                &p(path!["ports", i, "name"]),
                format!("`{name}` is not a valid port name"),
            )
            .hint = Some("port names are at most 15 lowercase letters, digits and `-`".into());
        }
    }
}

/// `-c "print('x')"` → (`-c`, `print('x')`).
fn option_with_quoted_value(s: &str) -> Option<(String, String)> {
    let (opt, rest) = s.split_once(char::is_whitespace)?;
    if !opt.starts_with('-') || opt.len() < 2 {
        return None;
    }
    let rest = rest.trim();
    let q = rest.chars().next()?;
    if (q == '"' || q == '\'') && rest.len() >= 2 && rest.ends_with(q) {
        Some((opt.to_string(), rest[1..rest.len() - 1].to_string()))
    } else {
        None
    }
}

fn yaml_quote(s: &str) -> String {
    if s.contains('"') {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        format!("\"{s}\"")
    }
}

/// Checks an operation's own sections against its component.
pub fn operation(
    c: &mut Checker<'_>,
    op: &Operation,
    comp: Option<&Component>,
    at: &[PathSeg],
    in_dag: bool,
) {
    let p = |rest: Vec<PathSeg>| -> Vec<PathSeg> { at.iter().cloned().chain(rest).collect() };
    if let Some(name) = &op.name
        && !valid_name(name)
    {
        c.error(&p(path!["name"]), format!("`{name}` is not a valid name"))
            .hint = Some("names use letters, digits, `-` and `_`".into());
    }
    let declared: Option<BTreeMap<&str, &Io>> = comp.map(|c| {
        c.inputs
            .iter()
            .flatten()
            .chain(c.outputs.iter().flatten())
            .map(|io| (io.name.as_str(), io))
            .collect()
    });
    if let (Some(params), Some(declared)) = (&op.params, &declared) {
        for (name, param) in params.iter() {
            let pp = p(path!["params", name.as_str()]);
            if let Some(r) = &param.reference {
                check_ref(c, r, &[pp.clone(), path!["ref"]].concat(), in_dag);
            }
            if param.context_only.unwrap_or(false) {
                continue;
            }
            let Some(io) = declared.get(name.as_str()) else {
                let d = c.key_error(
                    &pp,
                    format!("param `{name}` matches no input or output of the component"),
                );
                match did_you_mean(name, declared.keys().copied()) {
                    Some(s) => d.label = Some(format!("did you mean `{s}`?")),
                    None if declared.is_empty() => d.hint = Some("the component declares no inputs; declare it under `inputs`, or mark the param `contextOnly: true`".into()),
                    None => d.hint = Some(format!("declared: {}", one_of(&declared.keys().copied().collect::<Vec<_>>()))),
                }
                continue;
            };
            if param.reference.is_none()
                && let (Some(v), Some(ty)) =
                    (&param.value, io.iotype.as_deref().and_then(IoType::parse))
                && !v.is_null()
                && !value_is_template(v)
                && let Err(e) = coerce(v, &ty, io.list())
            {
                c.error(
                    &[pp.clone(), path!["value"]].concat(),
                    format!(
                        "the value of `{name}` does not fit its type {}: {e}",
                        ty.name()
                    ),
                );
            }
        }
    }
    if let Some(m) = &op.matrix {
        matrix(c, m, declared.as_ref(), &p(path!["matrix"]));
    }
    if let Some(s) = &op.schedule {
        schedule(c, s, &p(path!["schedule"]));
    }
    for (i, e) in op.events.iter().flatten().enumerate() {
        for (k, kind) in e.kinds.iter().enumerate() {
            if !event_kind_ok(kind) {
                let d = c.error(
                    &p(path!["events", i, "kinds", k]),
                    format!("unknown event kind `{kind}`"),
                );
                let all = event_kinds();
                match did_you_mean(kind, all.iter().map(String::as_str)) {
                    Some(s) => d.label = Some(format!("did you mean `{s}`?")),
                    None => d.hint = Some("event kinds are `run_status_<status>` (e.g. `run_status_succeeded`), `run_approved_actor`, `run_invalidated_actor`, `run_new_artifacts`".into()),
                }
            }
        }
        if !e.reference.starts_with("ops.") {
            c.error(
                &p(path!["events", i, "ref"]),
                format!("`{}` is not an operation reference", e.reference),
            )
            .hint = Some("write `ref: ops.<operation name>`".into());
        }
    }
    for (i, j) in op.joins.iter().flatten().enumerate() {
        if j.query.trim().is_empty() {
            c.error(&p(path!["joins", i, "query"]), "a join needs a `query`");
        }
        for (name, param) in j.params.iter().flat_map(|m| m.iter()) {
            let v = param
                .value
                .as_ref()
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let ok = [
                "outputs.",
                "inputs.",
                "artifacts.",
                "globals.",
                "meta_info.",
                "lineage.",
            ]
            .iter()
            .any(|pre| v.starts_with(pre));
            if !ok {
                c.error(
                    &p(path!["joins", i, "params", name.as_str(), "value"]),
                    format!("join param `{name}` must name what to collect, e.g. `outputs.loss`"),
                );
            }
            if let Some(declared) = &declared {
                match declared.get(name.as_str()) {
                    None if !param.context_only.unwrap_or(false) => {
                        c.key_error(
                            &p(path!["joins", i, "params", name.as_str()]),
                            format!("join param `{name}` matches no input of the component"),
                        );
                    }
                    Some(io) if !io.list() => {
                        c.warning(
                            &p(path!["joins", i, "params", name.as_str()]),
                            format!(
                                "a join collects a list, but input `{name}` is not `isList: true`"
                            ),
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    if op.conditions.is_some() {
        c.template_syntax(&p(path!["conditions"]));
    }
    if let Some(t) = &op.termination {
        termination(c, t, &p(path!["termination"]));
    }
}

fn event_kinds() -> Vec<String> {
    let mut v: Vec<String> = Status::ALL
        .iter()
        .map(|s| format!("run_status_{}", s.as_str()))
        .collect();
    v.extend(
        [
            "run_approved_actor",
            "run_invalidated_actor",
            "run_new_artifacts",
        ]
        .map(String::from),
    );
    v
}

fn event_kind_ok(k: &str) -> bool {
    event_kinds().iter().any(|e| e == k)
}

fn check_ref(c: &mut Checker<'_>, r: &str, at: &[PathSeg], in_dag: bool) {
    let ok = if let Some(rest) = r.strip_prefix("ops.") {
        if !in_dag {
            c.error(
                at,
                format!("`{r}` refers to another operation, which only works inside a DAG"),
            )
            .hint = Some("use `ref: runs.<uuid>` to take a value from an existing run".into());
            return;
        }
        valid_name(rest)
    } else if let Some(rest) = r.strip_prefix("runs.") {
        !rest.is_empty()
    } else {
        matches!(
            r,
            "dag" | "dag.inputs" | "dag.outputs" | "dag.globals" | "dag.artifacts"
        )
    };
    if !ok {
        c.error(at, format!("`{r}` is not a valid reference")).hint =
            Some("references are `ops.<operation>`, `runs.<uuid>` or `dag`".into());
    }
}

fn matrix(c: &mut Checker<'_>, m: &Matrix, declared: Option<&BTreeMap<&str, &Io>>, at: &[PathSeg]) {
    let p = |rest: Vec<PathSeg>| -> Vec<PathSeg> { at.iter().cloned().chain(rest).collect() };
    let positive = |c: &mut Checker<'_>, name: &str, v: Option<i64>| {
        if let Some(v) = v
            && v <= 0
        {
            c.error(
                &p(path![name]),
                format!("`{name}` must be positive, found {v}"),
            );
        }
    };
    positive(c, "concurrency", m.concurrency());
    if let Some(params) = m.params() {
        if params.is_empty() {
            c.key_error(
                &p(path!["params"]),
                "the search space is empty: add params to search over",
            );
        }
        for (name, hp) in params.iter() {
            let pp = p(path!["params", name.as_str()]);
            match crate::space::check_param(hp) {
                Err(e) => {
                    c.error(
                        &[pp.clone(), path!["value"]].concat(),
                        format!("matrix param `{name}`: {e}"),
                    );
                }
                Ok(warnings) => {
                    for w in warnings {
                        c.warning(
                            &[pp.clone(), path!["value"]].concat(),
                            format!("matrix param `{name}`: {w}"),
                        );
                    }
                }
            }
            let grid_only_discrete = matches!(m, Matrix::Grid(_));
            if grid_only_discrete && !hp.is_discrete() {
                c.error(&[pp.clone(), path!["kind"]].concat(), format!("a grid search takes discrete params only, and `{name}` is `{}`", hp.kind()))
                    .hint = Some("use choice, range, linspace, logspace or geomspace, or switch to `kind: random`".into());
            }
            if matches!(m, Matrix::Hyperband(_)) && matches!(hp, HpParam::PChoice(_)) {
                c.error(
                    &[pp.clone(), path!["kind"]].concat(),
                    format!("hyperband does not take `pchoice` params (`{name}`)"),
                );
            }
        }
    }
    match m {
        Matrix::Random(r) => positive(c, "numRuns", Some(r.num_runs)),
        Matrix::Grid(g) => positive(c, "numRuns", g.num_runs),
        Matrix::Hyperband(h) => {
            positive(c, "maxIterations", h.max_iterations);
            if h.max_iterations.is_none() {
                c.key_error(
                    at,
                    "hyperband needs `maxIterations` (the largest resource a trial gets)",
                );
            }
            if let Some(eta) = h.eta
                && eta <= 1.0
            {
                c.error(
                    &p(path!["eta"]),
                    format!("`eta` must be greater than 1, found {eta}"),
                );
            }
            match &h.resource {
                None => {
                    c.key_error(at, "hyperband needs a `resource` (the input that receives each trial's budget)");
                }
                Some(r) => {
                    if let Some(d) = declared
                        && !d.contains_key(r.name.as_str())
                    {
                        c.error(
                            &p(path!["resource", "name"]),
                            format!(
                                "the resource `{}` matches no input of the component",
                                r.name
                            ),
                        );
                    }
                }
            }
            if h.metric.is_none() {
                c.key_error(at, "hyperband needs a `metric` to compare trials");
            }
        }
        Matrix::Bayes(b) => {
            positive(c, "numInitialRuns", Some(b.num_initial_runs));
            positive(c, "maxIterations", Some(b.max_iterations));
        }
        Matrix::Iterative(i) => positive(c, "maxIterations", Some(i.max_iterations)),
        Matrix::Tpe(t) => {
            positive(c, "numRuns", t.num_runs);
            positive(c, "maxIterations", t.max_iterations);
            if t.num_runs.is_none() && t.max_iterations.is_none() {
                c.key_error(at, "tpe needs `numRuns` (how many trials)");
            }
        }
        Matrix::Hyperopt(h) => {
            positive(c, "numRuns", h.num_runs);
            positive(c, "maxIterations", h.max_iterations);
        }
        Matrix::Mapping(mp) => {
            if mp.values.is_empty() {
                c.key_error(
                    &p(path!["values"]),
                    "a mapping needs at least one set of values",
                );
            }
        }
    }
    for (i, es) in m.early_stopping().iter().enumerate() {
        let ep = p(path!["earlyStopping", i]);
        match es {
            EarlyStopping::Failure(f) if !(f.percent > 0.0 && f.percent <= 100.0) => {
                c.error(
                    &[ep, path!["percent"]].concat(),
                    format!("`percent` must be in (0, 100], found {}", f.percent),
                );
            }
            EarlyStopping::Metric(me) => {
                if let Some(
                    StoppingPolicy::Truncation(TruncationStoppingPolicy { percent, .. })
                    | StoppingPolicy::Diff(DiffStoppingPolicy { percent, .. }),
                ) = &me.policy
                    && !(*percent > 0.0 && *percent <= 100.0)
                {
                    c.error(
                        &[ep.clone(), path!["policy", "percent"]].concat(),
                        format!("`percent` must be in (0, 100], found {percent}"),
                    );
                }
                if me.metric.trim().is_empty() {
                    c.error(&[ep, path!["metric"]].concat(), "`metric` cannot be empty");
                }
            }
            _ => {}
        }
    }
    // Params of the search must be inputs of the component.
    if let Some(declared) = declared {
        let names = m.param_names();
        for name in names {
            if declared.contains_key(name.as_str()) {
                continue;
            }
            let path = match m {
                Matrix::Mapping(_) => p(path!["values"]),
                Matrix::Hyperband(h) if h.resource.as_ref().is_some_and(|r| r.name == name) => {
                    p(path!["resource", "name"])
                }
                _ => p(path!["params", name.as_str()]),
            };
            let d = c.key_error(
                &path,
                format!("matrix param `{name}` matches no input of the component"),
            );
            match did_you_mean(&name, declared.keys().copied()) {
                Some(s) => d.label = Some(format!("did you mean `{s}`?")),
                None => {
                    d.hint = Some(format!(
                        "declare `{name}` under the component's `inputs` so each trial can receive it"
                    ))
                }
            }
        }
    }
}

fn schedule(c: &mut Checker<'_>, s: &Schedule, at: &[PathSeg]) {
    let p = |rest: Vec<PathSeg>| -> Vec<PathSeg> { at.iter().cloned().chain(rest).collect() };
    let (start, end, max_runs) = match s {
        Schedule::Cron(x) => (x.start_at.as_ref(), x.end_at.as_ref(), x.max_runs),
        Schedule::Interval(x) => (x.start_at.as_ref(), x.end_at.as_ref(), x.max_runs),
        Schedule::DateTime(_) => (None, None, None),
    };
    if let (Some(a), Some(b)) = (start, end)
        && let (Some(ta), Some(tb)) = (misc::parse_datetime(&a.0), misc::parse_datetime(&b.0))
        && tb <= ta
    {
        c.error(&p(path!["endAt"]), "`endAt` must come after `startAt`");
    }
    if let Some(n) = max_runs
        && n <= 0
    {
        c.error(&p(path!["maxRuns"]), "`maxRuns` must be positive");
    }
}

/// Checks a DAG: operations exist and resolve, names are unique, dependencies exist and form
/// no cycle, and values passed along edges have compatible types. Returns the operations in
/// topological order (names), when there is one.
pub fn dag(
    c: &mut Checker<'_>,
    d: &Dag,
    at: &[PathSeg],
    resolved: &[Option<Component>],
) -> Option<Vec<Vec<String>>> {
    let p = |rest: Vec<PathSeg>| -> Vec<PathSeg> { at.iter().cloned().chain(rest).collect() };
    let ops = d.operations.as_deref().unwrap_or_default();
    if ops.is_empty() {
        c.key_error(&p(path!["operations"]), "a DAG needs operations")
            .hint = Some("list what to run under `run.operations`, each with a `dagRef` to one of `run.components`".into());
        return None;
    }
    if let Some(n) = d.concurrency
        && n <= 0
    {
        c.error(
            &p(path!["concurrency"]),
            format!("`concurrency` must be positive, found {n}"),
        );
    }
    let mut comp_names = BTreeSet::new();
    for (i, comp) in d.components.iter().flatten().enumerate() {
        match &comp.name {
            None => {
                c.error(
                    &p(path!["components", i]),
                    "components of a DAG need a `name` for operations to refer to",
                );
            }
            Some(n) if !comp_names.insert(n.clone()) => {
                c.error(
                    &p(path!["components", i, "name"]),
                    format!("component `{n}` is defined twice"),
                );
            }
            _ => {}
        }
    }
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        let Some(name) = &op.name else {
            c.key_error(
                &p(path!["operations", i]),
                "operations of a DAG need a `name`",
            );
            continue;
        };
        if names.insert(name.clone(), i).is_some() {
            c.error(
                &p(path!["operations", i, "name"]),
                format!("operation `{name}` is defined twice"),
            );
        }
        if let Some(r) = &op.dag_ref
            && !comp_names.contains(r)
            && op.component.is_none()
        {
            let d = c.error(
                &p(path!["operations", i, "dagRef"]),
                format!("operation `{name}` uses component `{r}`, which this DAG does not define"),
            );
            match did_you_mean(r, comp_names.iter().map(String::as_str)) {
                Some(s) => d.label = Some(format!("did you mean `{s}`?")),
                None if comp_names.is_empty() => {
                    d.hint = Some("define it under `run.components`".into())
                }
                None => {
                    d.hint = Some(format!(
                        "components: {}",
                        comp_names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
    }
    // Edges: explicit dependencies plus `ref: ops.<name>` params and event triggers.
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); ops.len()];
    for (i, op) in ops.iter().enumerate() {
        let Some(name) = &op.name else { continue };
        for (k, dep) in op.dependencies.iter().flatten().enumerate() {
            match names.get(dep) {
                None => {
                    let d = c.error(
                        &p(path!["operations", i, "dependencies", k]),
                        format!(
                            "`{name}` depends on `{dep}`, which is not an operation of this DAG"
                        ),
                    );
                    if let Some(s) = did_you_mean(dep, names.keys().map(String::as_str)) {
                        d.label = Some(format!("did you mean `{s}`?"));
                    }
                }
                Some(j) if *j == i => {
                    c.error(
                        &p(path!["operations", i, "dependencies", k]),
                        format!("`{name}` depends on itself"),
                    );
                }
                Some(j) => {
                    deps[i].insert(*j);
                }
            }
        }
        let refs = op
            .params
            .iter()
            .flat_map(|m| m.iter())
            .filter_map(|(pn, prm)| {
                Some((
                    pn.clone(),
                    prm.reference.as_ref()?.strip_prefix("ops.")?.to_string(),
                    prm,
                ))
            });
        for (pname, up, prm) in refs.collect::<Vec<_>>() {
            let pp = p(path!["operations", i, "params", pname.as_str(), "ref"]);
            let Some(&j) = names.get(&up) else {
                c.error(&pp, format!("`{name}` takes `{pname}` from `{up}`, which is not an operation of this DAG"));
                continue;
            };
            if j == i {
                c.error(&pp, format!("`{name}` takes `{pname}` from itself"));
                continue;
            }
            deps[i].insert(j);
            // Type of what flows along the edge.
            let Some(value) = prm.value.as_ref().and_then(|v| v.as_str()) else {
                continue;
            };
            let (Some(Some(up_comp)), Some(Some(down_comp))) = (resolved.get(j), resolved.get(i))
            else {
                continue;
            };
            let Some((section, field)) = value.split_once('.') else {
                continue;
            };
            let source = match section {
                "outputs" => up_comp.outputs.iter().flatten().find(|o| o.name == field),
                "inputs" => up_comp.inputs.iter().flatten().find(|o| o.name == field),
                _ => continue,
            };
            let vp = p(path!["operations", i, "params", pname.as_str(), "value"]);
            let Some(source) = source else {
                let declared: Vec<&str> = match section {
                    "outputs" => up_comp
                        .outputs
                        .iter()
                        .flatten()
                        .map(|o| o.name.as_str())
                        .collect(),
                    _ => up_comp
                        .inputs
                        .iter()
                        .flatten()
                        .map(|o| o.name.as_str())
                        .collect(),
                };
                let d = c.error(
                    &vp,
                    format!(
                        "`{up}` has no {} named `{field}`",
                        &section[..section.len() - 1]
                    ),
                );
                if let Some(s) = did_you_mean(field, declared) {
                    d.label = Some(format!("did you mean `{s}`?"));
                }
                continue;
            };
            let target = down_comp
                .inputs
                .iter()
                .flatten()
                .chain(down_comp.outputs.iter().flatten())
                .find(|o| o.name == pname);
            if let (Some(target), Some(from), Some(to)) = (
                target,
                source.iotype.as_deref().and_then(IoType::parse),
                target
                    .and_then(|t| t.iotype.as_deref())
                    .and_then(IoType::parse),
            ) {
                let (from_list, to_list) = (source.list(), target.list());
                if !from.feeds(&to) || from_list != to_list {
                    let show = |t: &IoType, l: bool| {
                        if l {
                            format!("List[{}]", t.name())
                        } else {
                            t.name()
                        }
                    };
                    c.error(
                        &vp,
                        format!(
                            "`{up}.{section}.{field}` is {} but input `{pname}` of `{name}` is {}",
                            show(&from, from_list),
                            show(&to, to_list)
                        ),
                    )
                    .hint = Some(
                        "make the types agree, or pass the value through a compatible type".into(),
                    );
                }
            }
        }
    }
    // Topological order in stages (Kahn); what remains is a cycle.
    let mut indeg: Vec<usize> = deps.iter().map(BTreeSet::len).collect();
    let mut done = vec![false; ops.len()];
    let mut stages = Vec::new();
    loop {
        let ready: Vec<usize> = (0..ops.len())
            .filter(|i| !done[*i] && indeg[*i] == 0)
            .collect();
        if ready.is_empty() {
            break;
        }
        for &i in &ready {
            done[i] = true;
        }
        for (k, d) in deps.iter().enumerate() {
            if !done[k] {
                indeg[k] = d.iter().filter(|j| !done[**j]).count();
            }
        }
        stages.push(
            ready
                .iter()
                .map(|i| ops[*i].name.clone().unwrap_or_default())
                .collect(),
        );
    }
    if let Some(start) = (0..ops.len()).find(|i| !done[*i]) {
        // Walk dependencies from a node left over until one repeats: that is the cycle.
        let mut seen = vec![start];
        let mut cur = start;
        let cycle = loop {
            let next = *deps[cur]
                .iter()
                .find(|j| !done[**j])
                .expect("a node in a cycle has an undone dependency");
            if let Some(pos) = seen.iter().position(|s| *s == next) {
                break seen[pos..].to_vec();
            }
            seen.push(next);
            cur = next;
        };
        // Start the report at the operation written first, following dependencies.
        let start_at = cycle
            .iter()
            .enumerate()
            .min_by_key(|(_, i)| **i)
            .map(|(k, _)| k)
            .unwrap_or(0);
        let ordered: Vec<usize> = cycle[start_at..]
            .iter()
            .chain(&cycle[..start_at])
            .copied()
            .collect();
        let steps: Vec<String> = ordered
            .iter()
            .enumerate()
            .map(|(k, i)| {
                let next = ordered[(k + 1) % ordered.len()];
                format!(
                    "`{}` depends on `{}`",
                    ops[*i].name.as_deref().unwrap_or_default(),
                    ops[next].name.as_deref().unwrap_or_default()
                )
            })
            .collect();
        let first = ordered[0];
        c.error(
            &p(path!["operations", first, "dependencies"]),
            format!("the DAG has a cycle: {}", steps.join(", ")),
        )
        .hint = Some(
            "a DAG's dependencies must not loop back; remove one of these dependencies".into(),
        );
        return None;
    }
    Some(stages)
}
