//! The connections a polyaxonfile names, checked against the catalogue (`polyaxon check`,
//! `polyaxon run`): a hook's `connection`, a notification's `connections`, a run's
//! `connections:`. An unknown name is an error that lists the known ones.

use polyaxon_server::api::V1Connection;
use polyaxon_server::store::outbox::NOTIFIERS;
use polyaxonfile::diag::{Diagnostic, Diagnostics};
use polyaxonfile::node::{Node, PathSeg, Value};

/// One name a spec gives, where, and what it is for.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub name: String,
    pub path: Vec<PathSeg>,
    /// A notifier is needed (hooks of a notifier and notifications).
    pub notifier: bool,
    /// The notifier hook's backend (`hubRef`), when it is one.
    pub hub_ref: Option<String>,
}

/// Every connection a prepared operation names (its component, a DAG's operations, theirs).
pub fn referenced(node: &Node) -> Vec<Reference> {
    let mut out = Vec::new();
    walk(node, &mut Vec::new(), &mut out);
    out
}

fn walk(node: &Node, path: &mut Vec<PathSeg>, out: &mut Vec<Reference>) {
    match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                let Some(key) = k.as_str() else { continue };
                path.push(PathSeg::Key(key.to_string()));
                match key {
                    "hooks" => {
                        for (i, h) in v.as_seq().into_iter().flatten().enumerate() {
                            let hub = h.get("hubRef").and_then(Node::as_str);
                            let notifier = hub.is_some_and(|r| {
                                NOTIFIERS.contains(&r.split(':').next().unwrap_or_default())
                            });
                            if let Some(c) = h.get("connection").and_then(Node::as_str) {
                                let mut p = path.clone();
                                p.extend([PathSeg::Index(i), PathSeg::Key("connection".into())]);
                                out.push(Reference {
                                    name: c.to_string(),
                                    path: p,
                                    notifier,
                                    hub_ref: hub.map(str::to_string),
                                });
                            }
                        }
                    }
                    "notifications" => {
                        for (i, n) in v.as_seq().into_iter().flatten().enumerate() {
                            for (j, c) in n
                                .get("connections")
                                .and_then(Node::as_seq)
                                .into_iter()
                                .flatten()
                                .enumerate()
                            {
                                if let Some(name) = c.as_str() {
                                    let mut p = path.clone();
                                    p.extend([
                                        PathSeg::Index(i),
                                        PathSeg::Key("connections".into()),
                                        PathSeg::Index(j),
                                    ]);
                                    out.push(Reference {
                                        name: name.to_string(),
                                        path: p,
                                        notifier: true,
                                        hub_ref: None,
                                    });
                                }
                            }
                        }
                    }
                    "connections"
                        if path.len() >= 2
                            && path[path.len() - 2] == PathSeg::Key("run".into()) =>
                    {
                        for (j, c) in v.as_seq().into_iter().flatten().enumerate() {
                            if let Some(name) = c.as_str() {
                                let mut p = path.clone();
                                p.push(PathSeg::Index(j));
                                out.push(Reference {
                                    name: name.to_string(),
                                    path: p,
                                    notifier: false,
                                    hub_ref: None,
                                });
                            }
                        }
                    }
                    _ => walk(v, path, out),
                }
                path.pop();
            }
        }
        Value::Seq(items) => {
            for (i, it) in items.iter().enumerate() {
                path.push(PathSeg::Index(i));
                walk(it, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// A checked spec's connections against the catalogue (when there is one): errors refuse it,
/// warnings go to the session's. What `polyaxon check` and `polyaxon run` both do.
pub fn check_report(
    report: polyaxonfile::Report,
    catalogue: Option<&[V1Connection]>,
    session: &mut polyaxonfile::Session,
) -> Result<polyaxonfile::Report, Diagnostics> {
    let Some(known) = catalogue else {
        return Ok(report);
    };
    let refs = referenced(&report.prepared.node);
    if refs.is_empty() {
        return Ok(report);
    }
    let d = check(&report.prepared.node, &refs, known, report.prepared.hidden);
    if d.has_errors() {
        return Err(d);
    }
    session.warnings.extend(d.0);
    Ok(report)
}

/// The references that are not in `known`, or not of a kind that can do what they are for,
/// located: errors for notifiers (hooks of a notifier, notifications), warnings for the rest. `hidden`: leading path segments the user's file does not show
/// (`component.` of a component file).
pub fn check(
    node: &Node,
    refs: &[Reference],
    known: &[V1Connection],
    hidden: usize,
) -> Diagnostics {
    let mut d = Diagnostics::default();
    let names = |notifier: bool| -> String {
        let list: Vec<&str> = known
            .iter()
            .filter(|c| !notifier || NOTIFIERS.contains(&c.kind.as_str()))
            .map(|c| c.name.as_str())
            .collect();
        if list.is_empty() {
            "none are configured".to_string()
        } else {
            format!("known: {}", list.join(", "))
        }
    };
    for r in refs {
        let span = node.locate(&r.path).0.span;
        let shown: String = r
            .path
            .iter()
            .skip(hidden)
            .map(|s| match s {
                PathSeg::Key(k) => format!(".{k}"),
                PathSeg::Index(i) => format!("[{i}]"),
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_string();
        match known.iter().find(|c| c.name == r.name) {
            // A notification that cannot be sent is an error; a run's connection that is not
            // in the catalogue gives the run nothing, which may be meant elsewhere: a warning.
            None => {
                let msg = format!(
                    "no connection is named `{}` ({})",
                    r.name,
                    names(r.notifier)
                );
                let diag = if r.notifier {
                    Diagnostic::error(msg, span)
                } else {
                    Diagnostic::warning(msg, span)
                };
                d.push(diag.with_path(shown).with_hint(
                    "create it with `polyaxon connections create --name NAME --kind KIND …`, or fix the name",
                ));
            }
            Some(c) if r.notifier && !NOTIFIERS.contains(&c.kind.as_str()) => d.push(
                Diagnostic::error(
                    format!(
                        "connection `{}` is a `{}` connection, not a notifier ({})",
                        r.name,
                        c.kind,
                        NOTIFIERS.join(", ")
                    ),
                    span,
                )
                .with_path(shown),
            ),
            Some(_) => {}
        }
    }
    d
}

/// Reads a connections file (YAML or JSON): a list of `{name, kind, description, tags, schema,
/// secret}`, `secret` being `env:NAME` or `file:/path` (or `{env: NAME}`, `{file: PATH}`).
pub fn read_file(path: &std::path::Path) -> anyhow::Result<Vec<V1Connection>> {
    let what = || format!("the connections file `{}`", path.display());
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::error::UserError::new(format!("cannot read {}: {e}", what())))?;
    let node = polyaxonfile::yaml::parse(&text, 0).map_err(|d| {
        crate::error::UserError::new(format!("{} is not valid YAML: {}", what(), d.message))
    })?;
    let mut doc = node.to_json();
    if let Some(list) = doc.get_mut("connections") {
        doc = list.take();
    }
    let items = match doc {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Null => Vec::new(),
        _ => {
            return Err(crate::error::UserError::new(format!(
                "{} must be a list of connections (or `connections:` and one)",
                what()
            ))
            .into());
        }
    };
    let mut out = Vec::new();
    for (i, mut item) in items.into_iter().enumerate() {
        if let Some(obj) = item.as_object_mut()
            && let Some(serde_json::Value::Object(sec)) = obj.get("secret").cloned()
        {
            let text = match (sec.get("env"), sec.get("file")) {
                (Some(serde_json::Value::String(n)), None) => format!("env:{n}"),
                (None, Some(serde_json::Value::String(p))) => format!("file:{p}"),
                _ => {
                    return Err(crate::error::UserError::new(format!(
                        "connection {i} of {}: `secret` is `env:NAME`, `file:/path`, `{{env: NAME}}` or `{{file: PATH}}`",
                        what()
                    ))
                    .into());
                }
            };
            obj.insert("secret".into(), text.into());
        }
        let c: V1Connection = serde_json::from_value(item).map_err(|e| {
            crate::error::UserError::new(format!("connection {i} of {}: {e}", what()))
        })?;
        out.push(c);
    }
    Ok(out)
}

/// Writes a connections file's entries into a store (checked as the API checks them).
pub async fn sync_file(
    store: &polyaxon_server::store::Store,
    path: &std::path::Path,
    allow_link_local: bool,
) -> anyhow::Result<usize> {
    let mut list = Vec::new();
    for c in read_file(path)? {
        let name = c.name.clone();
        let new = polyaxon_server::routes::connections::validate_with(allow_link_local, c)
            .map_err(|e| {
                let why = match e {
                    polyaxon_server::error::ApiError::BadRequest(m) => m,
                    other => format!("{other:?}"),
                };
                crate::error::UserError::new(format!(
                    "connection `{name}` of `{}`: {why}",
                    path.display()
                ))
            })?;
        list.push(new);
    }
    Ok(store.sync_connections(list).await?)
}

/// The non-secret part of the connections, as templates see them (`connections['name']`):
/// `kind`, the schema's keys, `description` and `tags`.
pub fn template_context(known: &[V1Connection]) -> serde_json::Map<String, serde_json::Value> {
    known
        .iter()
        .map(|c| {
            let mut m = c.schema.clone();
            m.insert("kind".into(), c.kind.clone().into());
            m.insert("name".into(), c.name.clone().into());
            m.insert("schema".into(), serde_json::Value::Object(c.schema.clone()));
            if let Some(d) = &c.description {
                m.insert("description".into(), d.clone().into());
            }
            m.insert("tags".into(), serde_json::json!(c.tags));
            (c.name.clone(), serde_json::Value::Object(m))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(yaml: &str) -> Node {
        polyaxonfile::yaml::parse(yaml, 0).expect("valid yaml")
    }

    #[test]
    fn finds_every_place() {
        let n = node(
            "kind: operation\nhooks:\n  - hubRef: slack\n    connection: team\ncomponent:\n  plugins:\n    notifications:\n      - connections: [a, b]\n  run:\n    kind: job\n    connections: [data]\n",
        );
        let r = referenced(&n);
        let names: Vec<_> = r.iter().map(|r| (r.name.as_str(), r.notifier)).collect();
        assert_eq!(
            names,
            [("team", true), ("a", true), ("b", true), ("data", false)]
        );
    }

    #[test]
    fn unknown_names_listed() {
        let n = node("hooks:\n  - hubRef: slack\n    connection: tema\n");
        let refs = referenced(&n);
        let known = vec![
            V1Connection {
                name: "team".into(),
                kind: "slack".into(),
                ..Default::default()
            },
            V1Connection {
                name: "data".into(),
                kind: "s3".into(),
                ..Default::default()
            },
        ];
        let d = check(&n, &refs, &known, 0);
        assert_eq!(d.0.len(), 1);
        assert!(d.0[0].message.contains("known: team"), "{}", d.0[0].message);
        let right = node("hooks:\n  - hubRef: slack\n    connection: team\n");
        assert!(
            check(&right, &referenced(&right), &known[..1], 0)
                .0
                .is_empty()
        );
        let wrong = node("hooks:\n  - hubRef: slack\n    connection: data\n");
        let d = check(&wrong, &referenced(&wrong), &known, 0);
        assert!(
            d.0[0].message.contains("not a notifier"),
            "{}",
            d.0[0].message
        );
    }
}
