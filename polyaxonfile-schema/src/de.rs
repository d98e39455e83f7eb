//! A serde deserializer over located [`Node`]s.
//!
//! Typed spec structs (ours and k8s-openapi's) derive or implement `Deserialize`; reading them
//! through this deserializer adds what plain serde lacks:
//! - every error carries the file position and the dotted path of the value;
//! - keys a struct does not declare are errors with a "did you mean" (all of them are collected,
//!   not only the first), using the field list serde hands to `deserialize_struct`;
//! - types are strict, as upstream's are: `1` is not a string, `"1"` is not a number — except for
//!   scalars produced by templates, which take the type the field asks for;
//! - enums are tagged by a `kind` key inside the mapping (`run: {kind: job, ...}`), and unit
//!   enums are plain strings checked against their variants;
//! - in lenient mode (linting before params are known), a `{{ template }}` string stands in for
//!   a value of any type.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

use crate::diag::{Diagnostic, Diagnostics, did_you_mean, one_of};
use crate::node::{Node, PathSeg, Span, Value};
use crate::yaml::resolve_plain;

/// How strictly to read.
#[derive(Default)]
pub struct Ctx {
    /// Accept `{{ ... }}` strings in place of values of any type (they are filled in later).
    pub lenient_templates: bool,
    unknown: RefCell<Vec<Diagnostic>>,
}

impl Ctx {
    pub fn strict() -> Self {
        Ctx::default()
    }

    pub fn lenient() -> Self {
        Ctx {
            lenient_templates: true,
            ..Ctx::default()
        }
    }
}

/// Reads a typed value from a node; `base` is the path of `node` within its document.
pub fn from_node<T: DeserializeOwned>(
    node: &Node,
    cx: &Ctx,
    base: &[PathSeg],
) -> Result<T, Diagnostics> {
    let root = Path {
        parent: None,
        seg: Seg::Root,
    };
    let res = with_path(base, &root, |path| {
        T::deserialize(De {
            node,
            path,
            cx,
            skip_key: None,
            tag_key: "kind",
        })
    });
    let mut diags = Diagnostics(cx.unknown.borrow_mut().drain(..).collect());
    match res {
        Ok(v) if diags.is_empty() => Ok(v),
        Ok(_) => {
            diags.normalize();
            Err(diags)
        }
        Err(e) => {
            diags.push(e.into_diagnostic(node.span));
            diags.normalize();
            Err(diags)
        }
    }
}

/// Whether a string holds a template expression or statement.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

// ---- paths ---------------------------------------------------------------------------------

/// A path as a linked list on the stack, so descending costs no allocation.
#[derive(Clone, Copy)]
pub struct Path<'p> {
    parent: Option<&'p Path<'p>>,
    seg: Seg<'p>,
}

#[derive(Clone, Copy)]
enum Seg<'p> {
    Root,
    Key(&'p str),
    Index(usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            segs.push(p.seg);
            cur = p.parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    fn last_key(&self) -> Option<&str> {
        match self.seg {
            Seg::Key(k) => Some(k),
            _ => None,
        }
    }
}

/// Runs `f` with `base` turned into a stack-allocated path chain below `parent`.
fn with_path<R>(base: &[PathSeg], parent: &Path<'_>, f: impl FnOnce(&Path<'_>) -> R) -> R {
    match base.split_first() {
        None => f(parent),
        Some((seg, rest)) => {
            let seg = match seg {
                PathSeg::Key(k) => Seg::Key(k.as_str()),
                PathSeg::Index(i) => Seg::Index(*i),
            };
            let link = Path {
                parent: Some(parent),
                seg,
            };
            with_path(rest, &link, f)
        }
    }
}

// ---- errors --------------------------------------------------------------------------------

/// A deserialization error, located once it passes through the node that caused it.
#[derive(Debug)]
pub struct Error(Box<ErrorInner>);

#[derive(Debug)]
struct ErrorInner {
    message: String,
    expected: Option<String>,
    span: Option<Span>,
    path: String,
    label: Option<String>,
    hint: Option<String>,
}

impl Error {
    fn new(message: impl Into<String>) -> Self {
        Error(Box::new(ErrorInner {
            message: message.into(),
            expected: None,
            span: None,
            path: String::new(),
            label: None,
            hint: None,
        }))
    }

    fn at(mut self, node: &Node, path: &Path<'_>) -> Self {
        let e = &mut *self.0;
        if e.span.is_none() {
            e.span = Some(node.span);
            e.path = path.render();
            if let Some(exp) = e.expected.take().map(|x| plain_expected(&x)) {
                e.message = format!("expected {exp}, found {}", node.describe());
                e.hint = e.hint.take().or_else(|| type_hint(&exp, node, path));
            }
        }
        self
    }

    fn into_diagnostic(self, fallback: Span) -> Diagnostic {
        let e = *self.0;
        let path = e.path.clone();
        let mut message = e.message;
        if !path.is_empty() && !message.contains(&format!("`{path}`")) {
            message = format!("{message} at `{path}`");
        }
        let mut d = Diagnostic::error(message, e.span.unwrap_or(fallback)).with_path(path);
        d.label = e.label;
        d.hint = e.hint;
        d
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::new(msg.to_string())
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let mut e = Error::new(format!("expected {exp}, found {unexp}"));
        e.0.expected = Some(exp.to_string());
        e
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Error::new(format!("invalid value {unexp}: expected {exp}"))
    }

    fn missing_field(field: &'static str) -> Self {
        let mut e = Error::new(format!("missing required key `{field}`"));
        e.0.label = Some(format!("`{field}` is required here"));
        e
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        unknown_value(variant, expected)
    }
}

/// serde's words for what it expected, in the words of YAML users.
fn plain_expected(e: &str) -> String {
    match e {
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        _ => match e.strip_prefix("struct ") {
            Some(name) => format!("a mapping ({name})"),
            None => e.to_string(),
        },
    }
}

fn unknown_value(value: &str, expected: &[&str]) -> Error {
    let mut e = Error::new(format!("unknown value `{value}`"));
    e.0.label =
        did_you_mean(value, expected.iter().copied()).map(|s| format!("did you mean `{s}`?"));
    e.0.hint = Some(format!("expected {}", one_of(expected)));
    e
}

fn type_hint(expected: &str, node: &Node, path: &Path<'_>) -> Option<String> {
    let key = path.last_key().unwrap_or("value");
    if node.rendered {
        return Some(format!(
            "this is what the template renders; `{key}` needs {expected}"
        ));
    }
    match (&node.value, expected) {
        (Value::Str(s), exp) if exp.contains("sequence") || exp.contains("list") => {
            let words: Vec<&str> = s.split_whitespace().collect();
            let shown = words
                .iter()
                .map(|w| yaml_word(w))
                .collect::<Vec<_>>()
                .join(", ");
            Some(format!("write it as a list of strings: `{key}: [{shown}]`"))
        }
        (Value::Int(i), exp) if key == "memory" && exp.contains("quantity") => Some(format!(
            "a plain number is bytes: write `memory: \"{i}Mi\"` for mebibytes (or `\"{i}\"` for bytes)"
        )),
        (Value::Int(_) | Value::Float(_) | Value::Bool(_), exp) if exp.contains("string") => {
            Some(match path.seg {
                Seg::Index(_) => {
                    format!("quote it to make it a string: `\"{}\"`", scalar_text(node))
                }
                _ => format!(
                    "quote it to make it a string: `{key}: \"{}\"`",
                    scalar_text(node)
                ),
            })
        }
        (Value::Str(_), exp)
            if exp.contains("integer")
                || exp.contains("i64")
                || exp.contains("i32")
                || exp.contains("u64") =>
        {
            Some("write a number without quotes".to_string())
        }
        (Value::Null, _) => Some(format!("give `{key}` a value or remove the key")),
        (Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_), exp)
            if exp.contains("mapping")
                && path.parent.and_then(|p| p.last_key()) == Some("params") =>
        {
            Some(format!(
                "a param is a mapping: write `{key}: {{value: {}}}`",
                scalar_text(node)
            ))
        }
        _ => None,
    }
}

fn yaml_word(w: &str) -> String {
    if w.chars()
        .all(|c| c.is_alphanumeric() || "-_./=".contains(c))
        && !w.is_empty()
    {
        w.to_string()
    } else {
        format!("{w:?}")
    }
}

fn scalar_text(node: &Node) -> String {
    match &node.value {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Str(s) => s.clone(),
        _ => String::new(),
    }
}

/// Displays what a visitor expects.
struct ExpectedText<'a, V>(&'a V);

impl<'de, V: Visitor<'de>> fmt::Display for ExpectedText<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }
}

// ---- the deserializer ----------------------------------------------------------------------

#[derive(Clone, Copy)]
struct De<'n, 'p> {
    node: &'n Node,
    path: &'p Path<'p>,
    cx: &'n Ctx,
    /// A key to leave out of a struct's map (the `kind` tag of a tagged enum's variant).
    skip_key: Option<&'static str>,
    tag_key: &'static str,
}

impl<'n, 'p> De<'n, 'p> {
    fn loc<T>(&self, r: Result<T, Error>) -> Result<T, Error> {
        r.map_err(|e| e.at(self.node, self.path))
    }

    fn is_template(&self) -> bool {
        self.cx.lenient_templates && matches!(&self.node.value, Value::Str(s) if is_template(s))
    }

    fn type_error(&self, expected: &str) -> Error {
        let mut e = Error::new("");
        e.0.expected = Some(expected.to_string());
        e.at(self.node, self.path)
    }

    /// A type error phrased with what the reading visitor expects.
    fn expected_by<'de, V: Visitor<'de>>(&self, visitor: &V) -> Error {
        self.type_error(&ExpectedText(visitor).to_string())
    }

    fn int(&self) -> Result<i64, Error> {
        match &self.node.value {
            Value::Int(i) => Ok(*i),
            Value::Str(s) if self.node.rendered => {
                s.trim().parse().map_err(|_| self.type_error("an integer"))
            }
            _ if self.is_template() => Ok(0),
            _ => Err(self.type_error("an integer")),
        }
    }

    fn float(&self) -> Result<f64, Error> {
        match &self.node.value {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(f) => Ok(*f),
            Value::Str(s) if self.node.rendered => match resolve_plain(s.trim()) {
                Value::Int(i) => Ok(i as f64),
                Value::Float(f) => Ok(f),
                _ => Err(self.type_error("a number")),
            },
            _ if self.is_template() => Ok(0.0),
            _ => Err(self.type_error("a number")),
        }
    }
}

macro_rules! forward_int {
    ($($method:ident => $visit:ident : $ty:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let i = self.int()?;
            let v = <$ty>::try_from(i).map_err(|_| {
                Error::new(format!("{i} is out of range for this field")).at(self.node, self.path)
            })?;
            self.loc(visitor.$visit(v))
        }
    )*};
}

impl<'de, 'n, 'p> de::Deserializer<'de> for De<'n, 'p> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) if self.node.rendered => match resolve_plain(s) {
                Value::Int(i) => visitor.visit_i64(i),
                Value::Float(f) => visitor.visit_f64(f),
                Value::Bool(b) => visitor.visit_bool(b),
                _ => visitor.visit_str(s),
            },
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqAcc {
                items,
                idx: 0,
                de: self,
            }),
            Value::Map(entries) => visitor.visit_map(MapAcc {
                entries: entries.iter().collect(),
                idx: 0,
                de: self,
                value: None,
            }),
        };
        self.loc(r)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let b = match &self.node.value {
            Value::Bool(b) => *b,
            Value::Str(s) if self.node.rendered => match resolve_plain(s.trim()) {
                Value::Bool(b) => b,
                _ => return Err(self.type_error("a boolean")),
            },
            _ if self.is_template() => false,
            _ => return Err(self.type_error("a boolean")),
        };
        self.loc(visitor.visit_bool(b))
    }

    forward_int!(
        deserialize_i8 => visit_i8: i8, deserialize_i16 => visit_i16: i16, deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64, deserialize_u8 => visit_u8: u8, deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32, deserialize_u64 => visit_u64: u64
    );

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let f = self.float()?;
        self.loc(visitor.visit_f32(f as f32))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let f = self.float()?;
        self.loc(visitor.visit_f64(f))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Str(s) => self.loc(visitor.visit_str(s)),
            _ => Err(self.expected_by(&visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // A template stands in for any type: its inner reader decides (see `is_template`).
        if self.node.is_null() {
            self.loc(visitor.visit_none())
        } else {
            self.loc(visitor.visit_some(self))
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Null => self.loc(visitor.visit_unit()),
            _ => Err(self.type_error("null")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.loc(visitor.visit_newtype_struct(self))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Seq(items) => self.loc(visitor.visit_seq(SeqAcc {
                items,
                idx: 0,
                de: self,
            })),
            _ if self.is_template() => self.loc(visitor.visit_seq(SeqAcc {
                items: &[],
                idx: 0,
                de: self,
            })),
            _ => Err(self.expected_by(&visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Map(entries) => self.loc(visitor.visit_map(MapAcc {
                entries: entries.iter().collect(),
                idx: 0,
                de: self,
                value: None,
            })),
            _ if self.is_template() => self.loc(visitor.visit_map(MapAcc {
                entries: vec![],
                idx: 0,
                de: self,
                value: None,
            })),
            _ => Err(self.expected_by(&visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let entries = match &self.node.value {
            Value::Map(entries) => entries,
            _ if self.is_template() => {
                return self.loc(visitor.visit_map(MapAcc {
                    entries: vec![],
                    idx: 0,
                    de: self,
                    value: None,
                }));
            }
            _ => return Err(self.expected_by(&visitor)),
        };
        let mut kept = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = entry.0.key_text();
            if Some(key.as_str()) == self.skip_key {
                continue;
            }
            if !fields.is_empty() && !fields.contains(&key.as_str()) {
                self.cx
                    .unknown
                    .borrow_mut()
                    .push(unknown_key(&key, &entry.0, fields, self.path));
                continue;
            }
            kept.push(entry);
        }
        self.loc(visitor.visit_map(MapAcc {
            entries: kept,
            idx: 0,
            de: self,
            value: None,
        }))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Str(s) => {
                if self.is_template() {
                    let first = variants.first().copied().unwrap_or_default();
                    return self.loc(visitor.visit_enum(first.into_deserializer()));
                }
                if !variants.contains(&s.as_str()) {
                    return Err(unknown_value(s, variants).at(self.node, self.path));
                }
                self.loc(visitor.visit_enum(s.as_str().into_deserializer()))
            }
            Value::Map(_) => {
                let tag = self.tag_key;
                let Some(kind) = self.node.get(tag) else {
                    let mut e = Error::new(format!("missing required key `{tag}`"));
                    e.0.hint = Some(format!("set `{tag}` to {}", one_of(variants)));
                    return Err(e.at(self.node, self.path));
                };
                let kind_path = Path {
                    parent: Some(self.path),
                    seg: Seg::Key(tag),
                };
                let Some(name) = kind.as_str() else {
                    return Err(
                        Error::new(format!("`{tag}` must be a string")).at(kind, &kind_path)
                    );
                };
                if !variants.contains(&name) {
                    return Err(unknown_value(name, variants).at(kind, &kind_path));
                }
                let inner = De {
                    skip_key: Some(tag),
                    ..self
                };
                self.loc(visitor.visit_enum(TaggedEnum { name, de: inner }))
            }
            _ if self.is_template() => {
                let first = variants.first().copied().unwrap_or_default();
                self.loc(visitor.visit_enum(first.into_deserializer()))
            }
            _ => Err(self.type_error(&format!("one of {}", one_of(variants)))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.loc(visitor.visit_str(&self.node.key_text()))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.loc(visitor.visit_unit())
    }
}

fn unknown_key(key: &str, key_node: &Node, fields: &[&str], path: &Path<'_>) -> Diagnostic {
    let at = path.render();
    let place = if at.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in `{at}`")
    };
    let mut d = Diagnostic::error(format!("unknown key `{key}` {place}"), key_node.span).with_path(
        if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        },
    );
    match did_you_mean(key, fields.iter().copied()) {
        Some(s) => d = d.with_label(format!("did you mean `{s}`?")),
        None if fields.len() <= 12 => {
            d = d.with_hint(format!("valid keys here: {}", one_of(fields)))
        }
        None => {}
    }
    d
}

struct SeqAcc<'n, 'p> {
    items: &'n [Node],
    idx: usize,
    de: De<'n, 'p>,
}

impl<'de> de::SeqAccess<'de> for SeqAcc<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(item) = self.items.get(self.idx) else {
            return Ok(None);
        };
        let path = Path {
            parent: Some(self.de.path),
            seg: Seg::Index(self.idx),
        };
        self.idx += 1;
        let de = De {
            node: item,
            path: &path,
            cx: self.de.cx,
            skip_key: None,
            tag_key: self.de.tag_key,
        };
        seed.deserialize(de)
            .map(Some)
            .map_err(|e| e.at(item, &path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.idx)
    }
}

struct MapAcc<'n, 'p> {
    entries: Vec<&'n (Node, Node)>,
    idx: usize,
    de: De<'n, 'p>,
    value: Option<&'n (Node, Node)>,
}

impl<'de> de::MapAccess<'de> for MapAcc<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(entry) = self.entries.get(self.idx).copied() else {
            return Ok(None);
        };
        self.idx += 1;
        self.value = Some(entry);
        let key = KeyDe { node: &entry.0 };
        seed.deserialize(key)
            .map(Some)
            .map_err(|e| e.at(&entry.0, self.de.path))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let entry = self
            .value
            .take()
            .ok_or_else(|| Error::new("value requested before key"))?;
        let key = entry.0.key_text();
        let path = Path {
            parent: Some(self.de.path),
            seg: Seg::Key(&key),
        };
        let de = De {
            node: &entry.1,
            path: &path,
            cx: self.de.cx,
            skip_key: None,
            tag_key: self.de.tag_key,
        };
        seed.deserialize(de).map_err(|e| e.at(&entry.1, &path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.idx)
    }
}

/// Map keys: always read as their text, whatever scalar type YAML gave them.
struct KeyDe<'n> {
    node: &'n Node,
}

impl<'de> de::Deserializer<'de> for KeyDe<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_string(self.node.key_text())
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct TaggedEnum<'n, 'p> {
    name: &'n str,
    de: De<'n, 'p>,
}

impl<'de, 'n, 'p> de::EnumAccess<'de> for TaggedEnum<'n, 'p> {
    type Error = Error;
    type Variant = De<'n, 'p>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, De<'n, 'p>), Error> {
        let v = seed.deserialize(self.name.into_deserializer())?;
        Ok((v, self.de))
    }
}

impl<'de> de::VariantAccess<'de> for De<'_, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}
