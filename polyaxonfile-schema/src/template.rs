//! Jinja templating of polyaxonfiles (minijinja), with upstream's context: inputs and outputs
//! by name, `params.<name>.value|as_str|as_arg|type`, `globals.*` and `connections`.
//!
//! Values print the way upstream's Python Jinja prints them (`True`, `None`, `['a', 'b']`), so
//! commands written for upstream keep their meaning.

use std::collections::BTreeMap;

use minijinja::value::ValueKind;
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value as JValue};

/// What templates render with (built by [`context`]).
pub type Context = JValue;
use serde_json::Value as J;

use crate::de::is_template;
use crate::diag::Diagnostic;
use crate::node::{Node, Value};

/// Fuel for one template: bounds loops so a template cannot run away.
const FUEL: u64 = 200_000;
/// Longest text one template may produce.
const MAX_OUTPUT: usize = 4 * 1024 * 1024;

/// A configured template engine.
pub struct Templates {
    env: Environment<'static>,
    strict: bool,
}

impl Templates {
    /// `strict`: using a name that is not defined is an error (v1.1). Legacy v0.6 files render
    /// undefined names as empty text, as v0.6 did.
    pub fn new(strict: bool) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(if strict {
            UndefinedBehavior::Strict
        } else {
            UndefinedBehavior::Chainable
        });
        env.set_fuel(Some(FUEL));
        env.set_formatter(|out, _state, value| {
            if value.is_undefined() {
                return Ok(());
            }
            let text = match value.kind() {
                ValueKind::String => value.as_str().unwrap_or_default().to_string(),
                _ => py_repr(value),
            };
            out.write_str(&text)
                .map_err(|e| minijinja::Error::new(ErrorKind::WriteFailure, e.to_string()))
        });
        Templates { env, strict }
    }

    /// Whether undefined names are errors (v1.1) rather than empty text (v0.6).
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// Checks a template's syntax without rendering it.
    pub fn check_syntax(&self, src: &str) -> Result<(), String> {
        self.env
            .template_from_str(src)
            .map(|_| ())
            .map_err(|e| format!("invalid template: {}", e.detail().unwrap_or("syntax error")))
    }

    /// Renders one template string.
    pub fn render(&self, src: &str, ctx: &JValue) -> Result<String, String> {
        let out = self
            .env
            .render_str(src, ctx.clone())
            .map_err(|e| self.explain(src, ctx, &e))?;
        if out.len() > MAX_OUTPUT {
            return Err(format!(
                "the template renders {} bytes, more than the {} MiB allowed",
                out.len(),
                MAX_OUTPUT >> 20
            ));
        }
        Ok(out)
    }

    fn explain(&self, src: &str, ctx: &JValue, e: &minijinja::Error) -> String {
        match e.kind() {
            ErrorKind::UndefinedError => {
                if let Ok(t) = self.env.template_from_str(src) {
                    let mut names: Vec<String> = t.undeclared_variables(true).into_iter().collect();
                    names.sort();
                    for name in names {
                        if !path_defined(ctx, &name) {
                            let root = name.split('.').next().unwrap_or(&name).to_string();
                            let known = known_names(ctx);
                            let hint =
                                crate::diag::did_you_mean(&root, known.iter().map(String::as_str))
                                    .map(|s| format!(" (did you mean `{s}`?)"))
                                    .unwrap_or_default();
                            return format!("`{name}` is not defined{hint}");
                        }
                    }
                }
                "the template uses a value that is not defined".to_string()
            }
            ErrorKind::SyntaxError => {
                format!("invalid template: {}", e.detail().unwrap_or("syntax error"))
            }
            ErrorKind::OutOfFuel => {
                "the template does too much work (an endless or huge loop?)".to_string()
            }
            _ => match e.detail() {
                Some(d) => format!("the template failed: {d}"),
                None => format!("the template failed: {}", e.kind()),
            },
        }
    }

    /// Renders every templated string in a tree; rendered strings are marked so fields read
    /// them as their own type.
    pub fn render_node(&self, node: &Node, ctx: &JValue) -> Result<Node, Diagnostic> {
        Ok(match &node.value {
            Value::Str(s) if is_template(s) => {
                let out = self
                    .render(s, ctx)
                    .map_err(|m| Diagnostic::error(m, node.span).with_label("in this template"))?;
                Node {
                    value: Value::Str(out),
                    span: node.span,
                    rendered: true,
                }
            }
            Value::Seq(items) => Node {
                value: Value::Seq(
                    items
                        .iter()
                        .map(|n| self.render_node(n, ctx))
                        .collect::<Result<_, _>>()?,
                ),
                span: node.span,
                rendered: node.rendered,
            },
            Value::Map(entries) => Node {
                value: Value::Map(
                    entries
                        .iter()
                        .map(|(k, v)| Ok((k.clone(), self.render_node(v, ctx)?)))
                        .collect::<Result<_, Diagnostic>>()?,
                ),
                span: node.span,
                rendered: node.rendered,
            },
            _ => node.clone(),
        })
    }

    /// Evaluates a `conditions` template to a boolean.
    pub fn condition(&self, src: &str, ctx: &JValue) -> Result<bool, String> {
        let out = if is_template(src) {
            self.render(src, ctx)?
        } else {
            self.render(&format!("{{{{ {src} }}}}"), ctx)?
        };
        match out.trim() {
            "True" | "true" | "1" | "yes" => Ok(true),
            "False" | "false" | "0" | "no" | "" | "None" | "none" => Ok(false),
            other => Err(format!(
                "conditions must render to true or false, got \"{other}\""
            )),
        }
    }
}

fn known_names(ctx: &JValue) -> Vec<String> {
    ctx.try_iter()
        .map(|it| it.filter_map(|k| k.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn path_defined(ctx: &JValue, path: &str) -> bool {
    let mut cur = ctx.clone();
    for part in path.split('.') {
        match cur.get_attr(part) {
            Ok(v) if !v.is_undefined() => cur = v,
            _ => return false,
        }
    }
    true
}

/// Python's `repr`-like text of a value, as upstream's Jinja prints it.
pub fn py_repr(v: &JValue) -> String {
    match v.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::None => "None".into(),
        ValueKind::Bool => {
            if v.is_true() {
                "True".into()
            } else {
                "False".into()
            }
        }
        ValueKind::String => format!(
            "'{}'",
            v.as_str()
                .unwrap_or_default()
                .replace('\\', "\\\\")
                .replace('\'', "\\'")
        ),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = v
                .try_iter()
                .map(|it| it.map(|x| py_repr(&x)).collect())
                .unwrap_or_default();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let items: Vec<String> = v
                .try_iter()
                .map(|it| {
                    it.map(|k| {
                        format!(
                            "{}: {}",
                            py_repr(&k),
                            py_repr(&v.get_item(&k).unwrap_or_default())
                        )
                    })
                    .collect()
                })
                .unwrap_or_default();
            format!("{{{}}}", items.join(", "))
        }
        _ => v.to_string(),
    }
}

/// Text of a JSON value as upstream's `as_str` gives it: strings as they are, other values as JSON.
pub fn as_str(v: &J) -> String {
    match v {
        J::Null => String::new(),
        J::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What a template sees of one input or output.
pub struct ParamContext<'a> {
    pub name: &'a str,
    pub iotype: Option<&'a str>,
    pub value: &'a J,
    pub is_flag: bool,
    pub arg_format: Option<&'a str>,
    pub connection: Option<&'a str>,
}

/// Builds the context templates render with.
pub fn context(
    templates: &Templates,
    params: &[ParamContext<'_>],
    globals: &J,
    connections: &J,
) -> Result<JValue, String> {
    let mut root: BTreeMap<String, JValue> = BTreeMap::new();
    let mut pmap: BTreeMap<String, JValue> = BTreeMap::new();
    for p in params {
        let display = if p.is_flag {
            J::String(if truthy(p.value) {
                format!("--{}", p.name)
            } else {
                String::new()
            })
        } else {
            p.value.clone()
        };
        let as_string = if p.is_flag {
            as_str(&display)
        } else {
            as_str(p.value)
        };
        let as_arg = if p.value.is_null() {
            String::new()
        } else if let Some(fmt) = p.arg_format {
            let mut local = BTreeMap::new();
            local.insert(p.name.to_string(), JValue::from_serialize(p.value));
            templates
                .render(fmt, &JValue::from(local))
                .map_err(|e| format!("argFormat of `{}`: {e}", p.name))?
        } else if p.is_flag {
            as_string.clone()
        } else {
            format!("--{}={}", p.name, as_string)
        };
        let entry = serde_json::json!({
            "value": p.value,
            "as_str": as_string,
            "as_arg": as_arg,
            "type": p.iotype,
            "connection": p.connection,
        });
        pmap.insert(p.name.to_string(), JValue::from_serialize(&entry));
        root.insert(p.name.to_string(), JValue::from_serialize(&display));
    }
    root.insert("params".into(), JValue::from(pmap));
    root.insert("globals".into(), JValue::from_serialize(globals));
    root.insert("connections".into(), JValue::from_serialize(connections));
    Ok(JValue::from(root))
}

fn truthy(v: &J) -> bool {
    match v {
        J::Null => false,
        J::Bool(b) => *b,
        J::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        J::String(s) => !s.is_empty() && !matches!(s.to_lowercase().as_str(), "false" | "0" | "no"),
        J::Array(a) => !a.is_empty(),
        J::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(t: &Templates) -> JValue {
        let lr = json!(0.01);
        let flag = json!(true);
        let off = json!(false);
        let layers = json!(["a", "b"]);
        let params = [
            ParamContext {
                name: "lr",
                iotype: Some("float"),
                value: &lr,
                is_flag: false,
                arg_format: None,
                connection: None,
            },
            ParamContext {
                name: "flag",
                iotype: Some("bool"),
                value: &flag,
                is_flag: true,
                arg_format: None,
                connection: None,
            },
            ParamContext {
                name: "off",
                iotype: Some("bool"),
                value: &off,
                is_flag: true,
                arg_format: None,
                connection: None,
            },
            ParamContext {
                name: "layers",
                iotype: Some("list"),
                value: &layers,
                is_flag: false,
                arg_format: Some("--layers={{ layers|join(',') }}"),
                connection: None,
            },
        ];
        context(
            t,
            &params,
            &json!({"uuid": "abc", "run_outputs_path": "/out"}),
            &json!({}),
        )
        .unwrap()
    }

    #[test]
    fn renders_upstream_context() {
        let t = Templates::new(true);
        let c = ctx(&t);
        assert_eq!(t.render("--lr={{ lr }}", &c).unwrap(), "--lr=0.01");
        assert_eq!(t.render("{{ flag }}|{{ off }}", &c).unwrap(), "--flag|");
        assert_eq!(t.render("{{ params.lr.as_arg }}", &c).unwrap(), "--lr=0.01");
        assert_eq!(
            t.render("{{ params.layers.as_arg }}", &c).unwrap(),
            "--layers=a,b"
        );
        assert_eq!(t.render("{{ layers }}", &c).unwrap(), "['a', 'b']");
        assert_eq!(
            t.render("{{ globals.run_outputs_path }}/m.pt", &c).unwrap(),
            "/out/m.pt"
        );
        assert_eq!(
            t.render("{{ params.lr.value > 0.001 }}", &c).unwrap(),
            "True"
        );
    }

    #[test]
    fn undefined_names_are_errors_with_suggestions() {
        let t = Templates::new(true);
        let c = ctx(&t);
        let e = t.render("{{ lrr }}", &c).unwrap_err();
        assert!(
            e.contains("`lrr` is not defined") && e.contains("`lr`"),
            "{e}"
        );
        let e = t.render("{{ connections.foo.key }}", &c).unwrap_err();
        assert!(e.contains("connections.foo"), "{e}");
        let lenient = Templates::new(false);
        assert_eq!(lenient.render("x{{ jobs.1.outputs }}y", &c).unwrap(), "xy");
    }

    #[test]
    fn runaway_templates_stop() {
        let t = Templates::new(true);
        let e = t
            .render(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
                &JValue::from(()),
            )
            .unwrap_err();
        assert!(e.contains("too much work") || e.contains("failed"), "{e}");
        assert!(
            t.render("{{ 1 + }}", &JValue::from(()))
                .unwrap_err()
                .contains("invalid template")
        );
    }

    #[test]
    fn conditions() {
        let t = Templates::new(true);
        let c = ctx(&t);
        assert!(t.condition("{{ lr < 0.1 }}", &c).unwrap());
        assert!(!t.condition("lr > 0.1", &c).unwrap());
        assert!(t.condition("{{ lr }}", &c).is_err());
    }
}
