//! Reading polyaxonfiles into one operation: version and kind checks, wrapping a component in
//! an operation, applying presets and later `-f` files with their patch strategy, and resolving
//! `pathRef`/`hubRef` components from disk.

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics, SourceMap, did_you_mean, one_of};
use crate::node::{Node, Span, Value};
use crate::spec::PatchStrategy;
use crate::yaml;

/// The supported polyaxonfile version.
pub const VERSION: f64 = 1.1;

/// Keys a component may have at its root.
pub const COMPONENT_KEYS: &[&str] = &[
    "version",
    "kind",
    "name",
    "description",
    "tags",
    "presets",
    "queue",
    "namespace",
    "cache",
    "termination",
    "plugins",
    "build",
    "hooks",
    "isApproved",
    "cost",
    "mount",
    "inputs",
    "outputs",
    "run",
    "template",
];

/// Keys an operation may have at its root.
pub const OPERATION_KEYS: &[&str] = &[
    "version",
    "kind",
    "name",
    "description",
    "tags",
    "presets",
    "queue",
    "namespace",
    "cache",
    "termination",
    "plugins",
    "build",
    "hooks",
    "isApproved",
    "cost",
    "mount",
    "template",
    "params",
    "matrix",
    "schedule",
    "events",
    "joins",
    "dependencies",
    "trigger",
    "conditions",
    "skipOnUpstreamSkip",
    "component",
    "hubRef",
    "dagRef",
    "urlRef",
    "pathRef",
    "runPatch",
    "patchStrategy",
    "isPreset",
];

/// Where a root section that does not belong there usually goes.
fn section_hint(key: &str, kind: &str) -> Option<String> {
    let run_keys = [
        "environment",
        "container",
        "init",
        "sidecars",
        "connections",
        "volumes",
        "replicas",
        "ports",
    ];
    if run_keys.contains(&key) {
        return Some(format!("`{key}` belongs under `run:` in version 1.1"));
    }
    match (key, kind) {
        ("inputs" | "outputs" | "run", "operation") => Some(format!("`{key}` belongs to the component: put it under `component:`")),
        ("params" | "matrix" | "schedule" | "joins" | "dependencies" | "trigger" | "conditions" | "events", "component") => {
            Some(format!("`{key}` belongs to an operation: use `kind: operation` with this component under `component:`"))
        }
        ("logging", _) => Some("use `plugins: {logLevel: ...}` in version 1.1".into()),
        ("hptuning", _) | ("declarations", _) | ("framework", _) | ("backend", _) => {
            Some("this is a v0.6 section; v0.6 files use `version: 1`, or upgrade with `polyaxon check --upgrade`".into())
        }
        _ => None,
    }
}

/// A file as read: its tree and where it lives.
#[derive(Clone, Debug)]
pub struct Doc {
    pub node: Node,
    pub file: u32,
    pub dir: PathBuf,
    /// Upgraded from a v0.6 polyaxonfile.
    pub legacy: bool,
}

/// The files a check reads, and what it warns about.
#[derive(Default)]
pub struct Session {
    pub sources: SourceMap,
    pub warnings: Vec<Diagnostic>,
}

impl Session {
    pub fn new() -> Self {
        Session::default()
    }

    pub fn warn(&mut self, d: Diagnostic) {
        self.warnings.push(Diagnostic {
            severity: crate::Severity::Warning,
            ..d
        });
    }

    /// Reads a file from disk.
    pub fn read_file(&mut self, path: &Path) -> Result<Doc, Diagnostics> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            let file = self.sources.add(name.clone(), "");
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            let mut d = Diagnostic::error(
                format!("cannot read `{name}`: {why}"),
                Span {
                    file,
                    ..Span::default()
                },
            );
            if path.is_dir() {
                d = d.with_hint("this is a directory; pass the polyaxonfile inside it");
            }
            Diagnostics::one(d)
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.read_bytes(&name, &bytes, dir)
    }

    /// Reads a file's bytes (already loaded).
    pub fn read_bytes(
        &mut self,
        name: &str,
        bytes: &[u8],
        dir: PathBuf,
    ) -> Result<Doc, Diagnostics> {
        let next = self.sources.len() as u32;
        let text = match yaml::decode(bytes, next) {
            Ok(t) => t,
            Err(d) => {
                self.sources
                    .add(name, String::from_utf8_lossy(bytes).into_owned());
                return Err(Diagnostics::one(d));
            }
        };
        let parsed = yaml::parse(&text, next);
        let json_fallback = match &parsed {
            Err(_) if name.ends_with(".json") => {
                serde_json::from_str::<serde_json::Value>(&text).ok()
            }
            _ => None,
        };
        let file = self.sources.add(name, text);
        let node = match (parsed, json_fallback) {
            (Ok(n), _) => n,
            (Err(_), Some(j)) => Node::from_json(
                &j,
                Span {
                    file,
                    ..Span::default()
                },
            ),
            (Err(e), None) => return Err(Diagnostics::one(e)),
        };
        Ok(Doc {
            node,
            file,
            dir,
            legacy: false,
        })
    }
}

/// What a document declares itself to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocKind {
    Component,
    Operation,
    /// A v0.6 polyaxonfile (`version: 1`).
    V06,
}

/// Checks `version` and `kind` (reporting every problem at the root at once).
pub fn classify(doc: &Doc) -> Result<DocKind, Diagnostics> {
    let root = &doc.node;
    let Some(map) = root.as_map() else {
        return Err(Diagnostics::one(
            Diagnostic::error(
                format!(
                    "a polyaxonfile is a mapping of sections, found {}",
                    root.describe()
                ),
                root.span,
            )
            .with_hint("start the file with `version: 1.1` and `kind: component`"),
        ));
    };
    let mut diags = Diagnostics::default();
    let version = root.get("version");
    let kind_node = root.get("kind");
    let kind = kind_node.and_then(Node::as_str);

    // `version: 1` (or `1.0`) is v0.6 unless the kind is one of v1.1's: upstream's own
    // examples write `version: 1` with `kind: component`.
    let one = matches!(version.map(|v| &v.value), Some(Value::Int(1)))
        || matches!(version.map(|v| &v.value), Some(Value::Float(f)) if *f == 1.0);
    let v11_kind = matches!(kind, Some("component" | "operation"));
    if one && !v11_kind {
        return Ok(DocKind::V06);
    }
    match version.map(|v| &v.value) {
        _ if one => {}
        None => diags.push(
            Diagnostic::error("missing `version`", root.span)
                .with_label("the file starts here")
                .with_hint("add `version: 1.1` at the top of the file"),
        ),
        Some(Value::Float(v)) if (*v - VERSION).abs() < 1e-9 => {}
        Some(_) => {
            let v = version.expect("matched Some");
            let shown = match &v.value {
                Value::Float(f) => format!("{f:?}"),
                Value::Int(i) => i.to_string(),
                Value::Str(s) => s.clone(),
                _ => v.describe(),
            };
            diags.push(
                Diagnostic::error(format!("version {shown} is not supported"), v.span)
                    .with_label("this version")
                    .with_hint("polyaxonfiles are version 1.1 (or 1 for the v0.6 format, which is upgraded)"),
            );
        }
    }
    let doc_kind = match (kind, kind_node) {
        (Some("component"), _) => Some(DocKind::Component),
        (Some("operation"), _) => Some(DocKind::Operation),
        (Some(k), Some(n)) => {
            let mut d = Diagnostic::error(format!("unknown kind `{k}`"), n.span);
            d = match did_you_mean(k, ["component", "operation"]) {
                Some(s) => d.with_label(format!("did you mean `{s}`?")),
                None if ["experiment", "group", "job", "build", "notebook", "tensorboard", "pipeline"].contains(&k) => d
                    .with_hint("this is a v0.6 kind; v0.6 files say `version: 1` and are upgraded, version 1.1 files are `component` or `operation`"),
                None => d.with_hint("`kind` is `component` or `operation`"),
            };
            diags.push(d);
            None
        }
        (None, Some(n)) => {
            diags.push(Diagnostic::error(
                "`kind` must be `component` or `operation`",
                n.span,
            ));
            None
        }
        (_, None) => {
            diags.push(
                Diagnostic::error("missing `kind`", root.span)
                    .with_label("the file starts here")
                    .with_hint("add `kind: component` (what runs and its inputs) or `kind: operation` (a component with values)"),
            );
            None
        }
    };
    if let Some(k) = doc_kind {
        let (allowed, kind_name) = match k {
            DocKind::Component => (COMPONENT_KEYS, "component"),
            _ => (OPERATION_KEYS, "operation"),
        };
        for (key, _) in map {
            let name = key.key_text();
            if allowed.contains(&name.as_str()) {
                continue;
            }
            let mut d = Diagnostic::error(
                format!("unexpected section `{name}` in a version 1.1 {kind_name}"),
                key.span,
            )
            .with_path(name.clone());
            if let Some(h) = section_hint(&name, kind_name) {
                d = d.with_hint(h);
            } else if let Some(s) = did_you_mean(&name, allowed.iter().copied()) {
                d = d.with_label(format!("did you mean `{s}`?"));
            } else {
                d = d.with_hint(format!("sections of a {kind_name}: {}", one_of(allowed)));
            }
            diags.push(d);
        }
    } else if let Some(map) = root.as_map() {
        // Without a kind, still flag keys that fit neither kind.
        for (key, _) in map {
            let name = key.key_text();
            if !COMPONENT_KEYS.contains(&name.as_str()) && !OPERATION_KEYS.contains(&name.as_str())
            {
                diags.push(
                    Diagnostic::error(format!("unexpected section `{name}`"), key.span)
                        .with_path(name),
                );
            }
        }
    }
    if diags.is_empty() {
        Ok(doc_kind.unwrap_or(DocKind::Operation))
    } else {
        Err(diags)
    }
}

/// Turns a component document into an operation running it; operations are returned as is.
pub fn as_operation(node: Node, kind: DocKind) -> Node {
    if kind != DocKind::Component {
        return node;
    }
    let span = node.span;
    let mut component = node;
    component.remove("version");
    let key = |k: &str| Node::new(Value::Str(k.into()), span);
    Node::new(
        Value::Map(vec![
            (key("version"), Node::new(Value::Float(VERSION), span)),
            (key("kind"), Node::new(Value::Str("operation".into()), span)),
            (key("component"), component),
        ]),
        span,
    )
}

/// Whether two trees hold the same values, wherever they were written.
pub fn same_value(a: &Node, b: &Node) -> bool {
    a.to_json() == b.to_json()
}

/// Applies `patch` onto `target` with a patch strategy.
pub fn patch(target: &mut Node, patch: &Node, strategy: PatchStrategy) {
    let (Some(_), Some(entries)) = (target.as_map(), patch.as_map()) else {
        if strategy != PatchStrategy::Isnull || target.is_null() {
            *target = patch.clone();
        }
        return;
    };
    for (k, v) in entries {
        let key = k.key_text();
        match target.get_mut(&key) {
            None => target.set(&key, v.clone()),
            Some(existing) => match strategy {
                PatchStrategy::Replace => *existing = v.clone(),
                PatchStrategy::Isnull => {
                    if existing.is_null() {
                        *existing = v.clone();
                    }
                }
                PatchStrategy::PostMerge => merge(existing, v, true),
                PatchStrategy::PreMerge => merge(existing, v, false),
            },
        }
    }
}

/// Deep merge: mappings merge key by key; lists of named mappings merge by `name`; other lists
/// concatenate without duplicates (patch after target when `patch_wins`, before otherwise);
/// scalars take the patch's value when `patch_wins`.
pub fn merge(target: &mut Node, patch: &Node, patch_wins: bool) {
    match (&mut target.value, &patch.value) {
        (Value::Map(_), Value::Map(entries)) => {
            for (k, v) in entries {
                let key = k.key_text();
                match target.get_mut(&key) {
                    Some(existing) => merge(existing, v, patch_wins),
                    None => target.set(&key, v.clone()),
                }
            }
        }
        (Value::Seq(items), Value::Seq(extra)) => {
            let named = |n: &Node| n.get("name").and_then(Node::as_str).map(str::to_string);
            if !items.is_empty() && items.iter().chain(extra.iter()).all(|n| named(n).is_some()) {
                for e in extra {
                    let name = named(e);
                    match items.iter_mut().find(|i| named(i) == name) {
                        Some(existing) => merge(existing, e, patch_wins),
                        None => items.push(e.clone()),
                    }
                }
                return;
            }
            let mut out: Vec<Node> = Vec::new();
            let (first, second): (Vec<Node>, Vec<Node>) = if patch_wins {
                (items.clone(), extra.clone())
            } else {
                (extra.clone(), items.clone())
            };
            for n in first.into_iter().chain(second) {
                if !out.iter().any(|o| same_value(o, &n)) {
                    out.push(n);
                }
            }
            *items = out;
        }
        _ => {
            if patch_wins || target.is_null() {
                *target = patch.clone();
            }
        }
    }
}

/// The patch strategy an operation document declares (default `post_merge`).
pub fn strategy_of(op: &Node) -> PatchStrategy {
    match op.get("patchStrategy").and_then(Node::as_str) {
        Some("replace") => PatchStrategy::Replace,
        Some("isnull") => PatchStrategy::Isnull,
        Some("pre_merge") => PatchStrategy::PreMerge,
        _ => PatchStrategy::PostMerge,
    }
}

/// Applies an operation document (a preset or a later `-f` file) onto the base operation:
/// its own fields by its patch strategy, its `runPatch` onto the component's `run`, and its
/// inline component merged into the base component.
pub fn apply_override(base: &mut Node, over: &Node) {
    let strategy = strategy_of(over);
    let mut fields = over.clone();
    for k in [
        "version",
        "kind",
        "isPreset",
        "patchStrategy",
        "runPatch",
        "component",
    ] {
        fields.remove(k);
    }
    patch(base, &fields, strategy);
    if let Some(comp) = over.get("component") {
        match base.get_mut("component") {
            Some(existing) => merge(existing, comp, true),
            None => base.set("component", comp.clone()),
        }
    }
    if let Some(run_patch) = over.get("runPatch") {
        if let Some(component) = base.get_mut("component") {
            match component.get_mut("run") {
                Some(run) => patch(run, run_patch, strategy),
                None => component.set("run", run_patch.clone()),
            }
        } else {
            // The component is not known yet (a reference): keep the patch on the operation.
            match base.get_mut("runPatch") {
                Some(existing) => patch(existing, run_patch, strategy),
                None => base.set("runPatch", run_patch.clone()),
            }
        }
    }
}

/// Finds a named preset (`name.yaml`, `name.yml`, `name.json`) in the preset directories.
pub fn find_named(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    let file_name = name.replace([' ', '/'], "_");
    for dir in dirs {
        for cand in [name.to_string(), file_name.clone()] {
            for ext in ["yaml", "yml", "json"] {
                let p = dir.join(format!("{cand}.{ext}"));
                if p.is_file() {
                    return Some(p);
                }
            }
        }
    }
    None
}

/// Finds a hub component `name[:tag]` in the hub directories (`name/tag.yaml` or `name.yaml`).
pub fn find_hub(dirs: &[PathBuf], reference: &str) -> Option<PathBuf> {
    let (name, tag) = match reference.split_once(':') {
        Some((n, t)) => (n, Some(t)),
        None => (reference, None),
    };
    let name = name.rsplit('/').next().unwrap_or(name);
    for dir in dirs {
        for ext in ["yaml", "yml", "json"] {
            let candidates = match tag {
                Some(t) => vec![
                    dir.join(name).join(format!("{t}.{ext}")),
                    dir.join(format!("{name}-{t}.{ext}")),
                ],
                None => vec![
                    dir.join(name).join(format!("latest.{ext}")),
                    dir.join(format!("{name}.{ext}")),
                ],
            };
            if let Some(p) = candidates.into_iter().find(|p| p.is_file()) {
                return Some(p);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(s: &str) -> Node {
        yaml::parse(s, 0).unwrap()
    }

    #[test]
    fn merges_named_lists_and_maps() {
        let mut a =
            node("env: [{name: A, value: '1'}, {name: B, value: '2'}]\ntags: [x]\nm: {a: 1}\n");
        let b =
            node("env: [{name: B, value: '3'}, {name: C, value: '4'}]\ntags: [x, y]\nm: {b: 2}\n");
        merge(&mut a, &b, true);
        let env: Vec<String> = a
            .get("env")
            .unwrap()
            .as_seq()
            .unwrap()
            .iter()
            .map(|e| e.get("value").unwrap().as_str().unwrap().to_string())
            .collect();
        assert_eq!(env, ["1", "3", "4"]);
        assert_eq!(a.get("tags").unwrap().as_seq().unwrap().len(), 2);
        assert!(a.get("m").unwrap().get("a").is_some() && a.get("m").unwrap().get("b").is_some());
    }

    #[test]
    fn patch_strategies() {
        let base = node("queue: q1\ntermination: {timeout: 10}\n");
        let mut t = base.clone();
        patch(
            &mut t,
            &node("queue: q2\ntermination: {maxRetries: 2}\n"),
            PatchStrategy::Replace,
        );
        assert!(t.get("termination").unwrap().get("timeout").is_none());
        let mut t = base.clone();
        patch(
            &mut t,
            &node("queue: q2\nnamespace: ns\n"),
            PatchStrategy::Isnull,
        );
        assert_eq!(t.get("queue").unwrap().as_str(), Some("q1"));
        assert_eq!(t.get("namespace").unwrap().as_str(), Some("ns"));
        let mut t = base.clone();
        patch(
            &mut t,
            &node("queue: q2\ntermination: {maxRetries: 2}\n"),
            PatchStrategy::PreMerge,
        );
        assert_eq!(t.get("queue").unwrap().as_str(), Some("q1"));
        assert!(t.get("termination").unwrap().get("maxRetries").is_some());
    }
}
