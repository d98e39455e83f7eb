//! The located document tree every polyaxonfile is read into before it becomes typed.
//!
//! A [`Node`] is a YAML value that remembers where it came from (file, line, column), so that
//! every later stage — schema errors, semantic checks, template failures — can point at the
//! exact place in the user's file. It also marks scalars produced by template rendering, whose
//! type is only known once a field asks for one.

use std::fmt;

/// A position in a source file: 1-based line and column (columns count characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// Where a node sits: which source (an index into a [`crate::SourceMap`]) and its extent.
/// `end` is exclusive; a span with `start == end` marks a point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: u32,
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    /// A span that belongs to no file (values made by the program, e.g. `-P` params).
    pub const NONE: Span = Span {
        file: u32::MAX,
        start: Pos { line: 0, col: 0 },
        end: Pos { line: 0, col: 0 },
    };

    pub fn is_none(&self) -> bool {
        self.file == u32::MAX
    }
}

/// A document value. Maps keep their keys in file order.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A value with its location. `rendered` marks a string produced by a template: such a
/// scalar takes the type the reading field asks for (`"0.01"` becomes a float for a float field).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
    pub rendered: bool,
}

impl Node {
    pub fn new(value: Value, span: Span) -> Self {
        Node {
            value,
            span,
            rendered: false,
        }
    }

    /// A node made by the program rather than read from a file.
    pub fn synthetic(value: Value) -> Self {
        Node::new(value, Span::NONE)
    }

    pub fn str(s: impl Into<String>) -> Self {
        Node::synthetic(Value::Str(s.into()))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Vec<(Node, Node)>> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The value under `key` of a map node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The key node itself (for pointing at a key rather than its value).
    pub fn get_key(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| k)
    }

    /// Sets `key` to `value`, replacing an existing entry in place or appending a new one.
    pub fn set(&mut self, key: &str, value: Node) {
        if let Some(map) = self.as_map_mut() {
            if let Some(slot) = map.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
                slot.1 = value;
            } else {
                map.push((Node::str(key), value));
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Node> {
        let map = self.as_map_mut()?;
        let idx = map.iter().position(|(k, _)| k.as_str() == Some(key))?;
        Some(map.remove(idx).1)
    }

    /// Follows a path of keys and indexes, returning the deepest node reached and whether the
    /// whole path resolved. Used to point diagnostics at the closest existing place.
    pub fn locate<'a>(&'a self, path: &[PathSeg]) -> (&'a Node, bool) {
        let mut cur = self;
        for seg in path {
            let next = match seg {
                PathSeg::Key(k) => cur.get(k),
                PathSeg::Index(i) => cur.as_seq().and_then(|s| s.get(*i)),
            };
            match next {
                Some(n) => cur = n,
                None => return (cur, false),
            }
        }
        (cur, true)
    }

    /// The span of the key `path` ends with, falling back to the value or the closest parent.
    pub fn key_span(&self, path: &[PathSeg]) -> Span {
        if let Some((PathSeg::Key(last), parent)) = path.split_last()
            && let (p, true) = self.locate(parent)
            && let Some(k) = p.get_key(last)
        {
            return k.span;
        }
        self.locate(path).0.span
    }

    /// A short description of the value's kind, for error messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "null".to_string(),
            Value::Bool(b) => format!("the boolean `{b}`"),
            Value::Int(i) => format!("the integer `{i}`"),
            Value::Float(f) => format!("the number `{f}`"),
            Value::Str(s) if s.chars().count() > 40 => {
                format!("the string \"{}…\"", s.chars().take(40).collect::<String>())
            }
            Value::Str(s) => format!("the string \"{s}\""),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }

    /// Converts to JSON. Map keys that are not strings are written in their text form.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(s) => J::Array(s.iter().map(Node::to_json).collect()),
            Value::Map(m) => {
                J::Object(m.iter().map(|(k, v)| (k.key_text(), v.to_json())).collect())
            }
        }
    }

    /// Builds a node tree from JSON, every node located at `span`.
    pub fn from_json(v: &serde_json::Value, span: Span) -> Node {
        use serde_json::Value as J;
        let value = match v {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::Str(s.clone()),
            J::Array(a) => Value::Seq(a.iter().map(|x| Node::from_json(x, span)).collect()),
            J::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, x)| {
                        (
                            Node::new(Value::Str(k.clone()), span),
                            Node::from_json(x, span),
                        )
                    })
                    .collect(),
            ),
        };
        Node::new(value, span)
    }

    /// The text of a scalar used as a map key.
    pub fn key_text(&self) -> String {
        match &self.value {
            Value::Str(s) => s.clone(),
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Seq(_) | Value::Map(_) => "<complex key>".into(),
        }
    }

    /// Number of nodes in this tree (itself included).
    pub fn size(&self) -> usize {
        1 + match &self.value {
            Value::Seq(s) => s.iter().map(Node::size).sum(),
            Value::Map(m) => m.iter().map(|(k, v)| k.size() + v.size()).sum(),
            _ => 0,
        }
    }
}

/// One step of a path into a document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

impl From<&str> for PathSeg {
    fn from(s: &str) -> Self {
        PathSeg::Key(s.to_string())
    }
}

impl From<usize> for PathSeg {
    fn from(i: usize) -> Self {
        PathSeg::Index(i)
    }
}

/// Renders a path the way users write it: `run.operations[2].dependencies`.
pub struct DisplayPath<'a>(pub &'a [PathSeg]);

impl fmt::Display for DisplayPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in self.0 {
            match seg {
                PathSeg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                PathSeg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// Builds a path from a mixed list: `path!["run", "operations", 2]`.
#[macro_export]
macro_rules! path {
    ($($seg:expr),* $(,)?) => {
        vec![$($crate::node::PathSeg::from($seg)),*]
    };
}
