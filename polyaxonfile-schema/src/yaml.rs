//! Reading YAML (and JSON, its subset) into a located [`Node`] tree.
//!
//! Scalars resolve the way upstream's PyYAML reads them (YAML 1.1 booleans such as `yes`/`off`,
//! `~` for null), except that `1e-3` is a number, as users mean it. The loader refuses input
//! that would hurt: non-UTF-8 bytes, nesting deeper than [`MAX_DEPTH`], alias expansions past
//! [`MAX_NODES`] ("billion laughs"), duplicate keys, several documents in one file.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span as YSpan, Tag};

use crate::diag::Diagnostic;
use crate::node::{Node, Pos, Span, Value};

/// Largest polyaxonfile accepted, in bytes.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of lists and mappings accepted.
pub const MAX_DEPTH: usize = 128;
/// Most nodes a document may expand to, aliases included.
pub const MAX_NODES: usize = 1_000_000;

/// Turns raw file bytes into text, refusing what is not UTF-8 with the exact place.
pub fn decode(bytes: &[u8], file: u32) -> Result<String, Diagnostic> {
    if bytes.len() > MAX_BYTES {
        return Err(Diagnostic::error(
            format!(
                "the file is {} MiB; polyaxonfiles larger than {} MiB are refused",
                bytes.len() >> 20,
                MAX_BYTES >> 20
            ),
            Span {
                file,
                ..Span::default()
            },
        )
        .with_hint("keep data out of the polyaxonfile: pass large values as files or artifacts"));
    }
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(Diagnostic::error(
            "the file is UTF-16 encoded; polyaxonfiles must be UTF-8",
            point(file, 1, 1),
        )
        .with_hint("re-save the file as UTF-8"));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            // `good` is valid UTF-8 by construction.
            let good = std::str::from_utf8(good).unwrap_or_default();
            let line = good.matches('\n').count() as u32 + 1;
            let col = good.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
            let bad = bytes[e.valid_up_to()];
            Err(Diagnostic::error(
                format!("the file is not valid UTF-8: byte 0x{bad:02x} cannot start a character"),
                point(file, line, col),
            )
            .with_hint("re-save the file as UTF-8"))
        }
    }
}

fn point(file: u32, line: u32, col: u32) -> Span {
    let p = Pos { line, col };
    Span {
        file,
        start: p,
        end: p,
    }
}

fn span_of(file: u32, s: YSpan) -> Span {
    Span {
        file,
        start: pos(s.start),
        end: pos(s.end),
    }
}

fn pos(m: Marker) -> Pos {
    Pos {
        line: m.line() as u32,
        col: m.col() as u32 + 1,
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        span: Span,
        anchor: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        span: Span,
        anchor: usize,
    },
}

/// Parses one YAML document into a node tree. An empty document is an error.
pub fn parse(text: &str, file: u32) -> Result<Node, Diagnostic> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut budget = MAX_NODES;
    let mut docs = 0;

    while let Some(ev) = parser.next_event() {
        let (ev, yspan) = ev.map_err(|e| scan_error(&e, file))?;
        let span = span_of(file, yspan);
        let done: Option<(Node, usize)> = match ev {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => None,
            Event::DocumentStart(_) => {
                docs += 1;
                if docs > 1 {
                    return Err(Diagnostic::error("the file holds more than one YAML document", span)
                        .with_label("a second document starts here")
                        .with_hint("a polyaxonfile is one document: remove the extra `---` or split the file and pass each with `-f`"));
                }
                None
            }
            Event::Alias(id) => {
                let node = anchors
                    .get(&id)
                    .ok_or_else(|| Diagnostic::error("alias to an unknown anchor", span))?;
                let size = node.size();
                budget = budget
                    .checked_sub(size)
                    .ok_or_else(|| too_many_nodes(span))?;
                let mut n = node.clone();
                n.span = span;
                Some((n, 0))
            }
            Event::Scalar(text, style, anchor, tag) => {
                budget = budget.checked_sub(1).ok_or_else(|| too_many_nodes(span))?;
                let value = scalar(&text, style, tag.as_deref(), span)?;
                Some((Node::new(value, span), anchor))
            }
            Event::SequenceStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "seq", span)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(too_deep(span));
                }
                stack.push(Frame::Seq {
                    items: Vec::new(),
                    span,
                    anchor,
                });
                None
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "map", span)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(too_deep(span));
                }
                stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    span,
                    anchor,
                });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq {
                    items,
                    span,
                    anchor,
                }) => {
                    budget = budget.checked_sub(1).ok_or_else(|| too_many_nodes(span))?;
                    Some((Node::new(Value::Seq(items), span), anchor))
                }
                _ => return Err(Diagnostic::error("unbalanced YAML sequence", span)),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    entries,
                    span,
                    anchor,
                    ..
                }) => {
                    budget = budget.checked_sub(1).ok_or_else(|| too_many_nodes(span))?;
                    let entries = apply_merge_keys(entries)?;
                    Some((Node::new(Value::Map(entries), span), anchor))
                }
                _ => return Err(Diagnostic::error("unbalanced YAML mapping", span)),
            },
        };
        let Some((node, anchor)) = done else { continue };
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    if matches!(node.value, Value::Seq(_) | Value::Map(_)) {
                        return Err(Diagnostic::error(
                            "mapping keys must be plain values, not lists or mappings",
                            node.span,
                        ));
                    }
                    if let Some((first, _)) = entries
                        .iter()
                        .find(|(k, _)| k.value == node.value && k.as_str() != Some("<<"))
                    {
                        return Err(Diagnostic::error(
                            format!("duplicate key `{}`", node.key_text()),
                            node.span,
                        )
                        .with_label(format!("first defined at line {}", first.span.start.line))
                        .with_hint("each key may appear once in a mapping; remove one of them"));
                    }
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
    }
    root.ok_or_else(|| {
        Diagnostic::error("the file is empty", point(file, 1, 1)).with_hint(
            "a polyaxonfile starts with `version: 1.1` and `kind: component` or `kind: operation`",
        )
    })
}

fn too_deep(span: Span) -> Diagnostic {
    Diagnostic::error(
        format!("the document nests deeper than {MAX_DEPTH} levels"),
        span,
    )
}

fn too_many_nodes(span: Span) -> Diagnostic {
    Diagnostic::error(
        format!("the document expands to more than {MAX_NODES} values (too many aliases?)"),
        span,
    )
    .with_hint("aliases (`*name`) copy what their anchor holds; nested aliases multiply it")
}

fn scan_error(e: &saphyr_parser::ScanError, file: u32) -> Diagnostic {
    let m = e.marker();
    let info = e.info();
    let at = point(file, m.line() as u32, m.col() as u32 + 1);
    if info.contains("recursion limit") {
        return too_deep(at);
    }
    let mut d = Diagnostic::error(format!("invalid YAML: {info}"), at);
    if info.contains("tab") {
        d = d.with_hint("indent with spaces; YAML does not allow tabs for indentation");
    } else if info.contains("flow sequence") || info.contains("flow mapping") {
        d = d.with_hint("check the brackets and commas of the inline list or mapping that starts before this point");
    }
    d
}

/// `<<: *base` merges the anchored mapping(s) under explicit keys, as YAML 1.1 defines.
fn apply_merge_keys(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, Diagnostic> {
    if !entries.iter().any(|(k, _)| k.as_str() == Some("<<")) {
        return Ok(entries);
    }
    let mut own = Vec::new();
    let mut merged: Vec<(Node, Node)> = Vec::new();
    for (k, v) in entries {
        if k.as_str() != Some("<<") {
            own.push((k, v));
            continue;
        }
        let sources: Vec<Node> = match v.value {
            Value::Map(_) => vec![v],
            Value::Seq(items) => items,
            _ => {
                return Err(Diagnostic::error(
                    "`<<` merges a mapping or a list of mappings",
                    v.span,
                ));
            }
        };
        for src in sources {
            let Value::Map(m) = src.value else {
                return Err(Diagnostic::error(
                    "`<<` merges a mapping or a list of mappings",
                    src.span,
                ));
            };
            for (mk, mv) in m {
                if !merged.iter().any(|(k2, _)| k2.value == mk.value) {
                    merged.push((mk, mv));
                }
            }
        }
    }
    merged.retain(|(mk, _)| !own.iter().any(|(k, _)| k.value == mk.value));
    own.extend(merged);
    Ok(own)
}

fn check_collection_tag(tag: Option<&Tag>, expected: &str, span: Span) -> Result<(), Diagnostic> {
    match tag {
        None => Ok(()),
        Some(t) if t.is_yaml_core_schema() && t.suffix == expected => Ok(()),
        Some(t) => Err(unsupported_tag(t, span)),
    }
}

fn unsupported_tag(t: &Tag, span: Span) -> Diagnostic {
    let shown = if t.is_yaml_core_schema() {
        format!("!!{}", t.suffix)
    } else {
        t.to_string()
    };
    Diagnostic::error(format!("unsupported YAML tag `{shown}`"), span)
        .with_hint("polyaxonfiles use plain YAML: strings, numbers, booleans, lists and mappings")
}

fn scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    span: Span,
) -> Result<Value, Diagnostic> {
    if let Some(t) = tag {
        if !t.is_yaml_core_schema() {
            if t.handle == "!" && t.suffix.is_empty() {
                return Ok(Value::Str(text.to_string()));
            }
            return Err(unsupported_tag(t, span));
        }
        let bad = |what: &str| Diagnostic::error(format!("`{text}` is not a valid {what}"), span);
        return match t.suffix.as_str() {
            "str" => Ok(Value::Str(text.to_string())),
            "int" => parse_int(text)
                .map(Value::Int)
                .ok_or_else(|| bad("integer")),
            "float" => parse_float(text)
                .or_else(|| parse_int(text).map(|i| i as f64))
                .map(Value::Float)
                .ok_or_else(|| bad("number")),
            "bool" => parse_bool(text)
                .map(Value::Bool)
                .ok_or_else(|| bad("boolean")),
            "null" => Ok(Value::Null),
            _ => Err(unsupported_tag(t, span)),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::Str(text.to_string()));
    }
    Ok(resolve_plain(text))
}

/// Resolves an unquoted scalar to its type.
pub fn resolve_plain(text: &str) -> Value {
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Value::Null;
    }
    if let Some(b) = parse_bool(text) {
        return Value::Bool(b);
    }
    if let Some(i) = parse_int(text) {
        return Value::Int(i);
    }
    if let Some(f) = parse_float(text) {
        return Value::Float(f);
    }
    Value::Str(text.to_string())
}

fn parse_bool(t: &str) -> Option<bool> {
    match t {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

fn parse_int(t: &str) -> Option<i64> {
    let (neg, body) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if body.is_empty() || body.starts_with('_') {
        return None;
    }
    let clean: String = body.chars().filter(|c| *c != '_').collect();
    let (radix, digits) = if let Some(h) = clean.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = clean.strip_prefix("0o") {
        (8, o)
    } else if let Some(b) = clean.strip_prefix("0b") {
        (2, b)
    } else {
        (10, clean.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

fn parse_float(t: &str) -> Option<f64> {
    match t {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    // Digits, at most one dot, an optional exponent: `1.5`, `.5`, `1e-3`, `-2.0E+4`.
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mut digits = 0;
    let mut dots = 0;
    for c in mantissa.chars() {
        match c {
            '0'..='9' => digits += 1,
            '.' => dots += 1,
            '_' => {}
            _ => return None,
        }
    }
    if digits == 0 || dots > 1 || (dots == 0 && exp.is_none()) {
        return None;
    }
    if let Some(e) = exp {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        if e.is_empty() || !e.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    t.replace('_', "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(s: &str) -> Result<Node, Diagnostic> {
        parse(s, 0)
    }

    #[test]
    fn resolves_scalars_like_pyyaml() {
        assert_eq!(resolve_plain("yes"), Value::Bool(true));
        assert_eq!(resolve_plain("Off"), Value::Bool(false));
        assert_eq!(resolve_plain("~"), Value::Null);
        assert_eq!(resolve_plain("42"), Value::Int(42));
        assert_eq!(resolve_plain("0x1f"), Value::Int(31));
        assert_eq!(resolve_plain("1_000"), Value::Int(1000));
        assert_eq!(resolve_plain("0.01"), Value::Float(0.01));
        assert_eq!(resolve_plain("1e-3"), Value::Float(0.001));
        assert_eq!(resolve_plain("1.1"), Value::Float(1.1));
        assert_eq!(resolve_plain("1.2.3"), Value::Str("1.2.3".into()));
        assert_eq!(
            resolve_plain("python:3.11"),
            Value::Str("python:3.11".into())
        );
        assert_eq!(resolve_plain("e5"), Value::Str("e5".into()));
        assert_eq!(resolve_plain("-"), Value::Str("-".into()));
    }

    #[test]
    fn keeps_positions() {
        let n = load("version: 1.1\nrun:\n  kind: job\n").unwrap();
        let kind = n.get("run").unwrap().get("kind").unwrap();
        assert_eq!(kind.span.start, Pos { line: 3, col: 9 });
        assert_eq!(kind.as_str(), Some("job"));
    }

    #[test]
    fn rejects_duplicate_keys_with_both_places() {
        let e = load("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(e.message.contains("duplicate key `a`"));
        assert_eq!(e.span.start.line, 3);
        assert!(e.label.unwrap().contains("line 1"));
    }

    #[test]
    fn merge_keys_and_aliases() {
        let n = load("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n").unwrap();
        let o = n.get("other").unwrap();
        assert_eq!(o.get("x").unwrap().value, Value::Int(1));
        assert_eq!(o.get("y").unwrap().value, Value::Int(3));
    }

    #[test]
    fn refuses_alias_bombs() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            s.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let e = load(&s).unwrap_err();
        assert!(e.message.contains("more than"), "{}", e.message);
    }

    #[test]
    fn refuses_deep_nesting() {
        let s = "[".repeat(100_000) + &"]".repeat(100_000);
        let e = load(&s).unwrap_err();
        assert!(e.message.contains("deeper"), "{}", e.message);
    }

    #[test]
    fn reports_bad_utf8_position() {
        let e = decode(b"version: 1.1\nkind: \xff\n", 0).unwrap_err();
        assert_eq!((e.span.start.line, e.span.start.col), (2, 7));
    }

    #[test]
    fn tags() {
        let n = load("a: !!str 12\nb: !!int '7'\n").unwrap();
        assert_eq!(n.get("a").unwrap().value, Value::Str("12".into()));
        assert_eq!(n.get("b").unwrap().value, Value::Int(7));
        assert!(load("a: !!python/object:os.system ls\n").is_err());
    }

    #[test]
    fn rejects_several_documents_and_empty() {
        assert!(load("a: 1\n---\nb: 2\n").is_err());
        assert!(load("").is_err());
        assert!(load("---\na: 1\n...\n").is_ok());
    }
}
