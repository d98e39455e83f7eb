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
/// Most nodes aliases may copy in all. Real polyaxonfiles copy a few (a shared `resources`
/// block, say); a "billion laughs" is refused within milliseconds (copying up to a million
/// first took half a second).
pub const MAX_ALIAS_NODES: usize = 100_000;

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

/// Characters [`pyyaml_forms`] put into one line: (column in the new line, count).
type Edits = Vec<(u32, u32)>;
/// The edits of every line.
type Shift = [Edits];

fn span_of(file: u32, s: YSpan, shift: &Shift) -> Span {
    Span {
        file,
        start: pos(s.start, shift),
        end: pos(s.end, shift),
    }
}

/// A position in the file as written, from one in the text [`pyyaml_forms`] made.
fn pos(m: Marker, shift: &Shift) -> Pos {
    let line = m.line() as u32;
    let mut col = m.col() as u32;
    if let Some(edits) = line.checked_sub(1).and_then(|l| shift.get(l as usize)) {
        let new = col;
        for &(at, n) in edits {
            if new >= at + n {
                col -= n;
            } else if new > at {
                col -= new - at;
            }
        }
    }
    Pos { line, col: col + 1 }
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
///
/// What PyYAML reads and saphyr does not is read as PyYAML does: lines that continue a flow
/// collection or a quoted scalar at the indentation of the key before it (or less), and a
/// lone `-` in a flow collection (`[a, -]`). When the text as written does not parse, it is
/// parsed again with those lines indented (the spaces are not part of any value there) and
/// those dashes quoted, and positions are given as written.
pub fn parse(text: &str, file: u32) -> Result<Node, Diagnostic> {
    match parse_shifted(text, file, &[]) {
        Ok(node) => Ok(node),
        Err(e) => match pyyaml_forms(text) {
            Some((indented, shift)) => parse_shifted(&indented, file, &shift).map_err(|_| e),
            None => Err(e),
        },
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Block,
    Flow,
    Single,
    Double,
}

/// `text` with the lines that continue a flow collection (`[`, `{`) or a quoted scalar
/// indented to one column past the key, dash or value they belong to, and lone dashes in
/// flow collections quoted; with what was added to each line. `None` when nothing was.
fn pyyaml_forms(text: &str) -> Option<(String, Vec<Edits>)> {
    let mut scan = Continuations {
        mode: Mode::Block,
        depth: 0,
        quote_in_flow: false,
        need: 0,
        block_scalar: None,
        node_start: false,
    };
    let mut out = String::with_capacity(text.len() + 256);
    let mut shift = Vec::new();
    let mut changed = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let chars: Vec<char> = body.chars().collect();
        let indent = chars.iter().take_while(|c| **c == ' ').count();
        let blank = chars[indent..].iter().all(|c| c.is_whitespace());
        if let Some(parent) = scan.block_scalar {
            if blank || indent > parent {
                out.push_str(line);
                shift.push(Vec::new());
                continue;
            }
            scan.block_scalar = None;
        }
        let marker = indent == 0 && (body.starts_with("---") || body.starts_with("..."));
        let mut added = 0;
        if scan.mode != Mode::Block && !blank && !marker && indent < scan.need {
            added = scan.need - indent;
            changed = true;
        }
        let dashes = scan.line(&chars, indent);
        let mut edits = Vec::new();
        if added > 0 {
            edits.push((0, added as u32));
        }
        out.extend(std::iter::repeat_n(' ', added));
        if dashes.is_empty() {
            out.push_str(line);
        } else {
            changed = true;
            let mut new_col = added as u32;
            for (j, ch) in chars.iter().enumerate() {
                if dashes.contains(&j) {
                    out.push_str("\"-\"");
                    edits.push((new_col, 1));
                    edits.push((new_col + 2, 1));
                    new_col += 3;
                } else {
                    out.push(*ch);
                    new_col += 1;
                }
            }
            out.push_str(&line[body.len()..]);
        }
        shift.push(edits);
    }
    changed.then_some((out, shift))
}

/// Where a scan of the text is, from one line to the next.
struct Continuations {
    mode: Mode,
    /// Flow collections open.
    depth: usize,
    /// A quoted scalar inside a flow collection (else in block context).
    quote_in_flow: bool,
    /// The indentation continuation lines need.
    need: usize,
    /// In a block scalar (`|`, `>`) whose parent node is at this column.
    block_scalar: Option<usize>,
    /// In a flow collection, whether a node may start here (a quote opens a scalar).
    node_start: bool,
}

impl Continuations {
    /// Scans one line (without its line break) from its first non-space character; returns
    /// where a lone `-` stands in a flow collection.
    fn line(&mut self, c: &[char], mut i: usize) -> Vec<usize> {
        let mut dashes = Vec::new();
        let n = c.len();
        let blank = |j: usize| j >= n || c[j] == ' ' || c[j] == '\t';
        let comment = |j: usize| c[j] == '#' && (j == 0 || c[j - 1] == ' ' || c[j - 1] == '\t');
        // In block context, where a value starts (and the column of its node), and whether
        // the line is past its key already.
        let mut value_at: Option<usize> = None;
        let mut in_value = false;
        let mut token = i;
        if self.mode == Mode::Block {
            let mut node = i;
            while i < n && matches!(c[i], '-' | '?' | ':') && blank(i + 1) {
                node = i;
                i += 1;
                while i < n && c[i] == ' ' {
                    i += 1;
                }
            }
            value_at = Some(node);
        }
        while i < n {
            match self.mode {
                Mode::Block => {
                    if let Some(node) = value_at.take() {
                        loop {
                            while i < n && c[i] == ' ' {
                                i += 1;
                            }
                            if i < n && matches!(c[i], '&' | '!') {
                                while i < n && !blank(i) {
                                    i += 1;
                                }
                                continue;
                            }
                            break;
                        }
                        if i >= n {
                            return dashes;
                        }
                        token = i;
                        match c[i] {
                            '[' | '{' => {
                                self.mode = Mode::Flow;
                                self.depth = 1;
                                self.need = node + 1;
                                self.node_start = true;
                                i += 1;
                                continue;
                            }
                            '"' | '\'' => {
                                self.mode = if c[i] == '"' {
                                    Mode::Double
                                } else {
                                    Mode::Single
                                };
                                self.quote_in_flow = false;
                                self.need = node + 1;
                                i += 1;
                                continue;
                            }
                            '|' | '>' => {
                                self.block_scalar = Some(node);
                                return dashes;
                            }
                            '#' => return dashes,
                            _ => {}
                        }
                    }
                    if comment(i) {
                        return dashes;
                    }
                    if c[i] == ':' && blank(i + 1) && !in_value {
                        in_value = true;
                        value_at = Some(token);
                    }
                    i += 1;
                }
                Mode::Flow => {
                    let ch = c[i];
                    if comment(i) {
                        return dashes;
                    }
                    match ch {
                        '[' | '{' => {
                            self.depth += 1;
                            self.node_start = true;
                        }
                        ']' | '}' => {
                            self.depth = self.depth.saturating_sub(1);
                            if self.depth == 0 {
                                self.mode = Mode::Block;
                                in_value = true;
                            }
                            self.node_start = false;
                        }
                        '-' if self.node_start
                            && i + 1 < n
                            && matches!(c[i + 1], ',' | '[' | ']' | '{' | '}') =>
                        {
                            dashes.push(i);
                            self.node_start = false;
                        }
                        ',' => self.node_start = true,
                        ':' => self.node_start = true,
                        '"' | '\'' if self.node_start => {
                            self.mode = if ch == '"' {
                                Mode::Double
                            } else {
                                Mode::Single
                            };
                            self.quote_in_flow = true;
                        }
                        ' ' | '\t' => {}
                        _ => self.node_start = false,
                    }
                    i += 1;
                }
                Mode::Double | Mode::Single => {
                    let close = if self.mode == Mode::Double { '"' } else { '\'' };
                    if self.mode == Mode::Double && c[i] == '\\' {
                        i += 2;
                        continue;
                    }
                    if c[i] == close {
                        if close == '\'' && i + 1 < n && c[i + 1] == '\'' {
                            i += 2;
                            continue;
                        }
                        self.mode = if self.quote_in_flow {
                            Mode::Flow
                        } else {
                            Mode::Block
                        };
                        self.node_start = false;
                    }
                    i += 1;
                }
            }
        }
        dashes
    }
}

fn parse_shifted(text: &str, file: u32, shift: &Shift) -> Result<Node, Diagnostic> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    // Each anchor's node with its size (counted once, not at every alias).
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut budget = MAX_NODES;
    let mut alias_budget = MAX_ALIAS_NODES;
    let mut docs = 0;

    while let Some(ev) = parser.next_event() {
        let (ev, yspan) = ev.map_err(|e| scan_error(&e, file))?;
        let span = span_of(file, yspan, shift);
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
                let (node, size) = anchors
                    .get(&id)
                    .ok_or_else(|| Diagnostic::error("alias to an unknown anchor", span))?;
                budget = budget
                    .checked_sub(*size)
                    .ok_or_else(|| too_many_nodes(span))?;
                alias_budget = alias_budget
                    .checked_sub(*size)
                    .ok_or_else(|| too_many_copies(span))?;
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
            let size = node.size();
            anchors.insert(anchor, (node.clone(), size));
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

fn too_many_copies(span: Span) -> Diagnostic {
    Diagnostic::error(
        format!("aliases copy more than {MAX_ALIAS_NODES} values (aliases of aliases?)"),
        span,
    )
    .with_hint("aliases (`*name`) copy what their anchor holds; nested aliases multiply it")
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

/// An integer as PyYAML (YAML 1.1) reads one: decimal, `0b` binary, `0x` hex, a leading `0`
/// octal (`017` is 15), base 60 (`1:30` is 90), with `_` separators and a sign.
fn parse_int(t: &str) -> Option<i64> {
    let (neg, body) = split_sign(t);
    let first = body.chars().next()?;
    if !first.is_ascii_digit() {
        return None;
    }
    let clean: String = body.chars().filter(|c| *c != '_').collect();
    let v = if let Some(b) = body.strip_prefix("0b") {
        digits_in(b, 2)?;
        i64::from_str_radix(&clean[2..], 2).ok()?
    } else if let Some(h) = body.strip_prefix("0x") {
        digits_in(h, 16)?;
        i64::from_str_radix(&clean[2..], 16).ok()?
    } else if body.contains(':') {
        sexagesimal(body)?
    } else if body.len() > 1 && first == '0' {
        digits_in(&body[1..], 8)?;
        i64::from_str_radix(&clean, 8).ok()?
    } else {
        digits_in(body, 10)?;
        clean.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

fn split_sign(t: &str) -> (bool, &str) {
    match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    }
}

/// Digits of `radix` and `_`, at least one character.
fn digits_in(s: &str, radix: u32) -> Option<()> {
    (!s.is_empty() && s.chars().all(|c| c == '_' || c.is_digit(radix))).then_some(())
}

/// `1:30:05` (YAML 1.1 base 60): a first part `[1-9][0-9_]*`, the others `[0-5]?[0-9]`.
fn sexagesimal(body: &str) -> Option<i64> {
    let mut parts = body.split(':');
    let head = parts.next()?;
    if head.starts_with(['0', '_']) {
        return None;
    }
    digits_in(head, 10)?;
    let mut v: i64 = head.replace('_', "").parse().ok()?;
    for p in parts {
        let ok = matches!(p.len(), 1 | 2)
            && p.chars().all(|c| c.is_ascii_digit())
            && (p.len() == 1 || p.as_bytes()[0] <= b'5');
        if !ok {
            return None;
        }
        v = v.checked_mul(60)?.checked_add(p.parse::<i64>().ok()?)?;
    }
    Some(v)
}

/// A number with a fraction as PyYAML (YAML 1.1) reads one: `1.5`, `1.`, `.5`, `1_000.5`,
/// `1.5e+3`, `1:30.5` (base 60), `.inf`, `.nan`; and, beyond YAML 1.1, what users write as a
/// number and Python's `float` reads: exponents without a dot or a sign (`1e-3`, `2E5`) and
/// a sign before a leading dot (`-.5`).
fn parse_float(t: &str) -> Option<f64> {
    match t {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let (neg, body) = split_sign(t);
    if body.contains(':') {
        // Base 60 with a fraction: `1:30.5`.
        let (whole, frac) = body.rsplit_once('.')?;
        if !frac.chars().all(|c| c == '_' || c.is_ascii_digit()) {
            return None;
        }
        let v = sexagesimal(whole)? as f64;
        let f: f64 = format!("0.{}", frac.replace('_', "")).parse().ok()?;
        let v = v + f;
        return Some(if neg { -v } else { v });
    }
    // Digits, at most one dot, an optional exponent.
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.chars().all(|c| c == '_' || c.is_ascii_digit());
    if !digits(int_part) || int_part.starts_with('_') || !frac_part.is_none_or(digits) {
        return None;
    }
    let int_digits = int_part.chars().filter(char::is_ascii_digit).count();
    let frac_digits = frac_part.map_or(0, |f| f.chars().filter(char::is_ascii_digit).count());
    if int_digits + frac_digits == 0 || (frac_part.is_none() && exp.is_none()) {
        return None;
    }
    // `.5` takes a digit right after the dot.
    if int_part.is_empty() && frac_part.is_some_and(|f| f.starts_with('_')) {
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
        // YAML 1.1 as PyYAML reads it: octal with a leading 0, base 60; `0o` is not YAML 1.1.
        assert_eq!(resolve_plain("017"), Value::Int(15));
        assert_eq!(resolve_plain("0"), Value::Int(0));
        assert_eq!(resolve_plain("-0b101"), Value::Int(-5));
        assert_eq!(resolve_plain("1:30"), Value::Int(90));
        assert_eq!(resolve_plain("1:30:05"), Value::Int(5405));
        assert_eq!(resolve_plain("1:30.5"), Value::Float(90.5));
        assert_eq!(resolve_plain("0o17"), Value::Str("0o17".into()));
        assert_eq!(resolve_plain("09"), Value::Str("09".into()));
        assert_eq!(resolve_plain("8080:80"), Value::Str("8080:80".into()));
        assert_eq!(resolve_plain("1:60"), Value::Str("1:60".into()));
        assert_eq!(resolve_plain("1."), Value::Float(1.0));
        assert_eq!(resolve_plain(".5"), Value::Float(0.5));
        assert_eq!(resolve_plain("1_000.5"), Value::Float(1000.5));
        assert_eq!(resolve_plain("._5"), Value::Str("._5".into()));
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

    fn json(s: &str) -> serde_json::Value {
        load(s)
            .unwrap_or_else(|e| panic!("{s:?}: {}", e.message))
            .to_json()
    }

    #[test]
    fn flows_and_quotes_continue_at_any_indentation() {
        use serde_json::json;
        // The closing bracket in the key's column, as upstream's examples write `args`.
        let doc = "run:\n    command: [\"python\", \"-u\", \"run.py\"]\n    args: [\n      \"--lr={{ lr }}\",\n      \"--epochs={{ epochs }}\"\n    ]\n    image: x\n";
        assert_eq!(
            json(doc),
            json!({"run": {"command": ["python", "-u", "run.py"], "args": ["--lr={{ lr }}", "--epochs={{ epochs }}"], "image": "x"}})
        );
        assert_eq!(
            json("args: [\n\"a\",\n\"b\"\n]\n"),
            json!({"args": ["a", "b"]})
        );
        assert_eq!(
            json("x:\n  - {a: 1,\n  b: 2}\n"),
            json!({"x": [{"a": 1, "b": 2}]})
        );
        assert_eq!(json("x:\n  - k: [\n 1]\n"), json!({"x": [{"k": [1]}]}));
        assert_eq!(
            json("x: {a: [1, # one\n2], b: \"it's\",\n}\ny: 1\n"),
            json!({"x": {"a": [1, 2], "b": "it's"}, "y": 1})
        );
        assert_eq!(json("x: \"multi\nline\"\n"), json!({"x": "multi line"}));
        assert_eq!(json("x: 'it''s\nhere'\n"), json!({"x": "it's here"}));
        // Brackets inside quotes, plain text and block scalars open nothing.
        assert_eq!(
            json("a: \"[x\"\nb: c [d\nc: |\n  [e\nd: [f,\ng]\n"),
            json!({"a": "[x", "b": "c [d", "c": "[e\n", "d": ["f", "g"]})
        );
        // Positions stay those of the file as written.
        let n = load("args: [\n\"a\",\n  \"b\"\n]\n").unwrap();
        let b = &n.get("args").unwrap().as_seq().unwrap()[1];
        assert_eq!((b.span.start.line, b.span.start.col), (3, 3));
        let a = &n.get("args").unwrap().as_seq().unwrap()[0];
        assert_eq!((a.span.start.line, a.span.start.col), (2, 1));
    }

    #[test]
    fn what_pyyaml_refuses_stays_refused() {
        // A plain scalar continued below its key's column, an unclosed flow, a block mapping
        // indented under a flow.
        assert!(load("a: plain\nmultiline\n").is_err());
        assert!(load("a: [1, 2\nb: 3\n").is_err());
        assert!(load("x: [\n- a]\n").is_err());
    }
}
