//! Writing JSON values as block-style YAML that reads back to the same values.

use serde_json::Value as J;

use crate::yaml::resolve_plain;

/// The YAML text of a value (a trailing newline included).
pub fn to_yaml(v: &J) -> String {
    let mut out = String::new();
    match v {
        J::Object(m) if !m.is_empty() => map(&mut out, m, 0),
        J::Array(a) if !a.is_empty() => seq(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn map(out: &mut String, m: &serde_json::Map<String, J>, level: usize) {
    for (k, v) in m {
        indent(out, level);
        out.push_str(&key(k));
        out.push(':');
        value(out, v, level);
    }
}

fn seq(out: &mut String, a: &[J], level: usize) {
    for v in a {
        indent(out, level);
        out.push('-');
        match v {
            J::Object(m) if !m.is_empty() => {
                // First entry on the dash's line, the rest aligned under it.
                let mut first = true;
                for (k, x) in m {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        indent(out, level + 2);
                    }
                    out.push_str(&key(k));
                    out.push(':');
                    value(out, x, level + 2);
                }
            }
            _ => value(out, v, level),
        }
    }
}

/// Writes what follows `key:` or `-`: an inline scalar, or a nested block.
fn value(out: &mut String, v: &J, level: usize) {
    match v {
        J::Object(m) if !m.is_empty() => {
            out.push('\n');
            map(out, m, level + 2);
        }
        J::Array(a) if !a.is_empty() => {
            out.push('\n');
            seq(out, a, level + 2);
        }
        J::String(s)
            if s.contains('\n')
                && !s.contains('\r')
                && s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control()) =>
        {
            let keep = if s.ends_with('\n') {
                if s.ends_with("\n\n") { "+" } else { "" }
            } else {
                "-"
            };
            let lead = if s.starts_with(' ') { "2" } else { "" };
            out.push_str(&format!(" |{lead}{keep}\n"));
            for line in s.trim_end_matches('\n').split('\n') {
                if !line.is_empty() {
                    indent(out, level + 2);
                    out.push_str(line);
                }
                out.push('\n');
            }
            if keep == "+" {
                for _ in 0..s.len() - s.trim_end_matches('\n').len() - 1 {
                    out.push('\n');
                }
            }
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn key(k: &str) -> String {
    if plain_ok(k) { k.to_string() } else { quote(k) }
}

fn scalar(v: &J) -> String {
    match v {
        J::Null => "null".into(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => n.to_string(),
        J::String(s) => {
            if plain_ok(s) {
                s.clone()
            } else {
                quote(s)
            }
        }
        J::Array(_) => "[]".into(),
        J::Object(_) => "{}".into(),
    }
}

/// Whether a string can be written unquoted and read back as the same string.
fn plain_ok(s: &str) -> bool {
    if s.is_empty() || s != s.trim() {
        return false;
    }
    if !matches!(resolve_plain(s), crate::node::Value::Str(_)) {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    // A leading indicator makes the text mean something else, except a dash that starts a word
    // (`--flag`, `-x`).
    let dash_word = first == '-' && s.len() > 1 && !s.starts_with("- ") && !s.starts_with("---");
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) && !dash_word {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.contains('\t') {
        return false;
    }
    s.chars().all(|c| !c.is_control())
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(v: J) {
        let text = to_yaml(&v);
        let back = crate::yaml::parse(&text, 0)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
            .to_json();
        assert_eq!(back, v, "\n{text}");
    }

    #[test]
    fn reads_back_what_it_writes() {
        round_trip(json!({
            "version": 1.1, "kind": "operation", "tags": ["a", "b"],
            "tricky": ["true", "1", "null", "", " x", "a: b", "- x", "#x", "yes", "0x1f", "1e3", "~", "-", "--flag=1", "a'b\"c"],
            "multi": "line one\nline two\n", "nested": {"list": [{"a": 1, "b": {"c": [1, 2]}}, [], {}], "empty": {}},
            "n": null, "f": 0.5, "neg": -3, "unicode": "héllo ✓", "ctrl": "a\u{1}b"
        }));
        round_trip(json!([1, "two", {"three": 3}]));
        round_trip(json!("just a string"));
    }
}
