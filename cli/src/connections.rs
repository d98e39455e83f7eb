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

/// The references that are not in `known`, or not of a kind that can do what they are for,
/// as located errors. `hidden`: leading path segments the user's file does not show
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
            None => d.push(
                Diagnostic::error(
                    format!("no connection is named `{}` ({})", r.name, names(r.notifier)),
                    span,
                )
                .with_path(shown)
                .with_hint(
                    "create it with `polyaxon connections create --name NAME --kind KIND …`, or fix the name",
                ),
            ),
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
