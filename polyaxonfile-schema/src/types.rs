//! IO types (`int`, `float`, `path`, `List[int]`…): parsing the type names, checking and
//! converting values (from the file or from `-P name=value`), and which types may feed which.

use serde_json::Value as J;

use crate::spec::Validation;
use crate::yaml::resolve_plain;

/// The type of an input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoType {
    Any,
    Int,
    Float,
    Bool,
    Str,
    Dict,
    DictOfDicts,
    List,
    Uri,
    Auth,
    Image,
    Path,
    Metric,
    Metadata,
    Date,
    Datetime,
    Uuid,
    Email,
    Gcs,
    S3,
    Wasb,
    Git,
    Dockerfile,
    File,
    Tensorboard,
    Artifacts,
    Event,
    /// `List[T]`.
    ListOf(Box<IoType>),
    /// `Dict[K, V]` (keys are strings in YAML).
    DictOf(Box<IoType>),
}

/// Every simple type name, for errors and "did you mean".
pub const TYPE_NAMES: &[&str] = &[
    "any",
    "int",
    "float",
    "bool",
    "str",
    "dict",
    "dict_of_dicts",
    "list",
    "uri",
    "auth",
    "image",
    "path",
    "metric",
    "metadata",
    "date",
    "datetime",
    "uuid",
    "email",
    "gcs",
    "s3",
    "wasb",
    "git",
    "dockerfile",
    "file",
    "tensorboard",
    "artifacts",
    "event",
];

impl IoType {
    /// Parses a type name; v0.6 names (`s3_path`, `gcs_path`, `azure_path`) are accepted.
    pub fn parse(s: &str) -> Option<IoType> {
        let t = s.trim();
        let inner = |prefix: &str| -> Option<&str> {
            let rest = t.strip_prefix(prefix)?.trim();
            rest.strip_prefix('[')?.strip_suffix(']')
        };
        if let Some(i) = inner("List").or_else(|| inner("list")) {
            return Some(IoType::ListOf(Box::new(IoType::parse(i)?)));
        }
        if let Some(i) = inner("Dict").or_else(|| inner("dict")) {
            let (k, v) = i.split_once(',')?;
            if !matches!(k.trim(), "str" | "string") {
                return None;
            }
            return Some(IoType::DictOf(Box::new(IoType::parse(v)?)));
        }
        Some(match t {
            "any" | "Any" => IoType::Any,
            "int" | "integer" => IoType::Int,
            "float" | "number" => IoType::Float,
            "bool" | "boolean" => IoType::Bool,
            "str" | "string" => IoType::Str,
            "dict" => IoType::Dict,
            "dict_of_dicts" => IoType::DictOfDicts,
            "list" => IoType::List,
            "uri" => IoType::Uri,
            "auth" => IoType::Auth,
            "image" => IoType::Image,
            "path" => IoType::Path,
            "metric" => IoType::Metric,
            "metadata" => IoType::Metadata,
            "date" => IoType::Date,
            "datetime" => IoType::Datetime,
            "uuid" => IoType::Uuid,
            "email" => IoType::Email,
            "gcs" | "gcs_path" => IoType::Gcs,
            "s3" | "s3_path" => IoType::S3,
            "wasb" | "azure_path" | "wasb_path" => IoType::Wasb,
            "git" => IoType::Git,
            "dockerfile" => IoType::Dockerfile,
            "file" => IoType::File,
            "tensorboard" => IoType::Tensorboard,
            "artifacts" => IoType::Artifacts,
            "event" => IoType::Event,
            _ => return None,
        })
    }

    pub fn name(&self) -> String {
        match self {
            IoType::ListOf(t) => format!("List[{}]", t.name()),
            IoType::DictOf(t) => format!("Dict[str, {}]", t.name()),
            other => {
                let s = format!("{other:?}");
                match other {
                    IoType::DictOfDicts => "dict_of_dicts".into(),
                    _ => s.to_lowercase(),
                }
            }
        }
    }

    /// Whether a value of `self` may feed an input of type `to` (along a DAG edge, say).
    pub fn feeds(&self, to: &IoType) -> bool {
        use IoType::*;
        if self == to || *self == Any || *to == Any {
            return true;
        }
        let pathish = |t: &IoType| {
            matches!(
                t,
                Str | Path | S3 | Gcs | Wasb | Uri | Image | File | Dockerfile
            )
        };
        let numeric = |t: &IoType| matches!(t, Float | Metric);
        match (self, to) {
            (a, b) if pathish(a) && pathish(b) => true,
            (a, b) if numeric(a) && numeric(b) => true,
            (Int, b) if numeric(b) => true,
            (ListOf(_), List) | (List, ListOf(_)) => true,
            (DictOf(_) | DictOfDicts, Dict) | (Dict, DictOf(_) | DictOfDicts) => true,
            (ListOf(a), ListOf(b)) | (DictOf(a), DictOf(b)) => a.feeds(b),
            (Date | Datetime | Uuid | Email | Auth, Str) => true,
            _ => false,
        }
    }
}

/// Checks `value` against the type (each item when `is_list`) and converts what converts
/// losslessly: `"0.01"` for a float, `1` for a float, `"true"` for a bool, numbers for a string.
pub fn coerce(value: &J, ty: &IoType, is_list: bool) -> Result<J, String> {
    if is_list {
        let items = match value {
            J::Array(a) => a.clone(),
            J::String(s) => match parse_structured(s) {
                Some(J::Array(a)) => a,
                _ => s
                    .split(',')
                    .map(|x| J::String(x.trim().to_string()))
                    .collect(),
            },
            other => vec![other.clone()],
        };
        return items
            .iter()
            .enumerate()
            .map(|(i, v)| coerce(v, ty, false).map_err(|e| format!("item {i}: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(J::Array);
    }
    coerce_one(value, ty)
}

/// A value written on the command line (`-P lr=0.01`): read it for the type, then check it.
pub fn coerce_cli(raw: &str, ty: &IoType, is_list: bool) -> Result<J, String> {
    let value = match ty {
        IoType::Str
        | IoType::Path
        | IoType::S3
        | IoType::Gcs
        | IoType::Wasb
        | IoType::Uri
        | IoType::Image
        | IoType::Email
        | IoType::Auth
            if !is_list =>
        {
            J::String(raw.to_string())
        }
        _ => parse_structured(raw).unwrap_or_else(|| scalar_json(raw)),
    };
    coerce(&value, ty, is_list)
}

/// A scalar written without quotes, typed as YAML would type it.
pub fn scalar_json(raw: &str) -> J {
    match resolve_plain(raw) {
        crate::node::Value::Null => J::Null,
        crate::node::Value::Bool(b) => J::Bool(b),
        crate::node::Value::Int(i) => J::from(i),
        crate::node::Value::Float(f) => serde_json::Number::from_f64(f)
            .map(J::Number)
            .unwrap_or(J::String(raw.to_string())),
        _ => J::String(raw.to_string()),
    }
}

/// `[1, 2]`, `{a: 1}` and JSON written inline.
fn parse_structured(raw: &str) -> Option<J> {
    let t = raw.trim();
    if !(t.starts_with('[') || t.starts_with('{')) {
        return None;
    }
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    crate::yaml::parse(t, u32::MAX).ok().map(|n| n.to_json())
}

fn coerce_one(value: &J, ty: &IoType) -> Result<J, String> {
    use IoType::*;
    let found = || describe(value);
    match ty {
        Any => Ok(value.clone()),
        Int => match value {
            J::Number(n) if n.is_i64() || n.is_u64() => Ok(value.clone()),
            J::Number(n)
                if n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15) =>
            {
                Ok(J::from(n.as_f64().unwrap_or_default() as i64))
            }
            J::String(s) => s
                .trim()
                .parse::<i64>()
                .map(J::from)
                .map_err(|_| format!("expected an integer, found {}", found())),
            _ => Err(format!("expected an integer, found {}", found())),
        },
        Float | Metric => match value {
            J::Number(_) => Ok(value.clone()),
            J::String(s) => match scalar_json(s.trim()) {
                J::Number(n) => Ok(J::Number(n)),
                _ => Err(format!("expected a number, found {}", found())),
            },
            _ => Err(format!("expected a number, found {}", found())),
        },
        Bool => match value {
            J::Bool(_) => Ok(value.clone()),
            J::Number(n) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
                Ok(J::Bool(n.as_i64() == Some(1)))
            }
            J::String(s) => match s.trim().to_lowercase().as_str() {
                "true" | "yes" | "on" | "1" | "y" | "t" => Ok(J::Bool(true)),
                "false" | "no" | "off" | "0" | "n" | "f" => Ok(J::Bool(false)),
                _ => Err(format!("expected a boolean, found {}", found())),
            },
            _ => Err(format!("expected a boolean, found {}", found())),
        },
        Str | Image | Auth | Path => match value {
            J::String(_) => Ok(value.clone()),
            J::Number(n) => Ok(J::String(n.to_string())),
            J::Bool(b) => Ok(J::String(b.to_string())),
            _ => Err(format!("expected a string, found {}", found())),
        },
        Uri => string_with(value, "a URI such as `https://host/path`", |s| {
            s.contains("://") || s.starts_with("/")
        }),
        S3 => string_with(value, "an S3 path such as `s3://bucket/key`", |s| {
            s.starts_with("s3://")
        }),
        Gcs => string_with(value, "a GCS path such as `gs://bucket/key`", |s| {
            s.starts_with("gs://")
        }),
        Wasb => string_with(
            value,
            "an Azure path such as `wasbs://container@account.blob.core.windows.net/path`",
            |s| {
                s.starts_with("wasb://")
                    || s.starts_with("wasbs://")
                    || s.starts_with("abfs://")
                    || s.starts_with("abfss://")
            },
        ),
        Uuid => string_with(value, "a UUID", |s| uuid::Uuid::parse_str(s).is_ok()),
        Email => string_with(value, "an email address", |s| {
            s.split_once('@')
                .is_some_and(|(a, b)| !a.is_empty() && b.contains('.') && !s.contains(' '))
        }),
        Date => string_with(value, "a date (YYYY-MM-DD)", |s| {
            s.parse::<jiff::civil::Date>().is_ok()
        }),
        Datetime => string_with(value, "a datetime", |s| {
            crate::spec::misc::parse_datetime(s).is_some()
        }),
        Dict | Metadata => match value {
            J::Object(_) => Ok(value.clone()),
            J::String(s) => match parse_structured(s) {
                Some(v @ J::Object(_)) => Ok(v),
                _ => Err(format!("expected a mapping, found {}", found())),
            },
            _ => Err(format!("expected a mapping, found {}", found())),
        },
        DictOfDicts => match coerce_one(value, &Dict)? {
            J::Object(m) if m.values().all(J::is_object) => Ok(J::Object(m)),
            _ => Err("expected a mapping of mappings".to_string()),
        },
        List => match value {
            J::Array(_) => Ok(value.clone()),
            J::String(s) => match parse_structured(s) {
                Some(v @ J::Array(_)) => Ok(v),
                _ => Ok(J::Array(
                    s.split(',')
                        .map(|x| J::String(x.trim().to_string()))
                        .collect(),
                )),
            },
            _ => Err(format!("expected a list, found {}", found())),
        },
        ListOf(inner) => coerce(value, inner, true),
        DictOf(inner) => match coerce_one(value, &Dict)? {
            J::Object(m) => m
                .into_iter()
                .map(|(k, v)| {
                    coerce(&v, inner, false)
                        .map(|v| (k.clone(), v))
                        .map_err(|e| format!("key `{k}`: {e}"))
                })
                .collect::<Result<serde_json::Map<_, _>, _>>()
                .map(J::Object),
            _ => unreachable_mapping(),
        },
        Git => match value {
            J::String(s) => Ok(serde_json::json!({ "url": s })),
            J::Object(m)
                if m.keys()
                    .all(|k| matches!(k.as_str(), "url" | "revision" | "flags")) =>
            {
                Ok(value.clone())
            }
            _ => Err(format!(
                "expected a git url or {{url, revision, flags}}, found {}",
                found()
            )),
        },
        Artifacts => match value {
            J::Object(m)
                if m.keys()
                    .all(|k| matches!(k.as_str(), "files" | "dirs" | "workers")) =>
            {
                Ok(value.clone())
            }
            _ => Err(format!("expected {{files, dirs}}, found {}", found())),
        },
        Dockerfile | File | Tensorboard | Event => match value {
            J::Object(_) | J::String(_) => Ok(value.clone()),
            _ => Err(format!("expected a mapping, found {}", found())),
        },
    }
}

fn unreachable_mapping() -> Result<J, String> {
    Err("expected a mapping".to_string())
}

fn string_with(value: &J, what: &str, ok: impl Fn(&str) -> bool) -> Result<J, String> {
    match value {
        J::String(s) if ok(s) => Ok(value.clone()),
        _ => Err(format!("expected {what}, found {}", describe(value))),
    }
}

/// A short description of a JSON value for messages.
pub fn describe(v: &J) -> String {
    match v {
        J::Null => "null".into(),
        J::Bool(b) => format!("the boolean `{b}`"),
        J::Number(n) => format!("the number `{n}`"),
        J::String(s) => format!("\"{s}\""),
        J::Array(_) => "a list".into(),
        J::Object(_) => "a mapping".into(),
    }
}

/// Checks an input's `validation` constraints.
pub fn validate(value: &J, v: &Validation) -> Result<(), String> {
    if let Some(items) = value.as_array() {
        if let Some(min) = v.min_items
            && (items.len() as i64) < min
        {
            return Err(format!(
                "has {} items, fewer than the minimum {min}",
                items.len()
            ));
        }
        if let Some(max) = v.max_items
            && (items.len() as i64) > max
        {
            return Err(format!(
                "has {} items, more than the maximum {max}",
                items.len()
            ));
        }
    }
    if let Some(x) = value.as_f64() {
        type Bound = (Option<f64>, fn(f64, f64) -> bool, &'static str);
        let checks: [Bound; 4] = [
            (v.gt, |x, b| x > b, ">"),
            (v.ge, |x, b| x >= b, ">="),
            (v.lt, |x, b| x < b, "<"),
            (v.le, |x, b| x <= b, "<="),
        ];
        for (bound, ok, op) in checks {
            if let Some(b) = bound
                && !ok(x, b)
            {
                return Err(format!("{x} is not {op} {b}"));
            }
        }
        if let Some(m) = v.multiple_of
            && m != 0.0
            && ((x / m).round() * m - x).abs() > 1e-9 * x.abs().max(1.0)
        {
            return Err(format!("{x} is not a multiple of {m}"));
        }
    }
    if let Some(s) = value.as_str() {
        let n = s.chars().count() as i64;
        if let Some(min) = v.min_length
            && n < min
        {
            return Err(format!("is {n} characters long, shorter than {min}"));
        }
        if let Some(max) = v.max_length
            && n > max
        {
            return Err(format!("is {n} characters long, longer than {max}"));
        }
        if let Some(re) = &v.regex
            && !simple_regex_match(re, s)
        {
            return Err(format!("\"{s}\" does not match `{re}`"));
        }
    }
    if let Some(opts) = &v.options
        && !opts.contains(value)
    {
        let shown: Vec<String> = opts.iter().map(|o| o.to_string()).collect();
        return Err(format!(
            "{} is not one of {}",
            describe(value),
            shown.join(", ")
        ));
    }
    if let Some(obj) = value.as_object() {
        if let Some(keys) = &v.keys
            && let Some(k) = obj.keys().find(|k| !keys.contains(k))
        {
            return Err(format!(
                "key `{k}` is not allowed (allowed: {})",
                keys.join(", ")
            ));
        }
        if let Some(keys) = &v.contains_keys
            && let Some(k) = keys.iter().find(|k| !obj.contains_key(*k))
        {
            return Err(format!("key `{k}` is required"));
        }
        if let Some(keys) = &v.excludes_keys
            && let Some(k) = keys.iter().find(|k| obj.contains_key(*k))
        {
            return Err(format!("key `{k}` is not allowed"));
        }
    }
    let contains = |hay: &J, needle: &J| match (hay, needle) {
        (J::Array(a), n) => a.contains(n),
        (J::String(s), J::String(n)) => s.contains(n.as_str()),
        _ => false,
    };
    if let Some(c) = &v.contains
        && !contains(value, c)
    {
        return Err(format!("does not contain {c}"));
    }
    if let Some(c) = &v.excludes
        && contains(value, c)
    {
        return Err(format!("contains {c}"));
    }
    Ok(())
}

/// A small regular-expression matcher (anchors `^ $`, `.`, classes `[a-z]`, `\d \w \s`,
/// quantifiers `* + ?`), enough for validation patterns without a regex engine.
pub fn simple_regex_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    if p.first() == Some(&'^') {
        return match_here(&p[1..], &t);
    }
    (0..=t.len()).any(|i| match_here(&p, &t[i..]))
}

fn atom_len(p: &[char]) -> usize {
    match p.first() {
        Some('\\') => 2.min(p.len()),
        Some('[') => p.iter().position(|c| *c == ']').map_or(p.len(), |i| i + 1),
        Some(_) => 1,
        None => 0,
    }
}

fn atom_matches(atom: &[char], c: char) -> bool {
    match atom {
        ['.'] => true,
        ['\\', 'd'] => c.is_ascii_digit(),
        ['\\', 'w'] => c.is_alphanumeric() || c == '_',
        ['\\', 's'] => c.is_whitespace(),
        ['\\', x] => c == *x,
        ['[', rest @ ..] => {
            let body = &rest[..rest.len().saturating_sub(1)];
            let (neg, body) = match body.first() {
                Some('^') => (true, &body[1..]),
                _ => (false, body),
            };
            let mut i = 0;
            let mut hit = false;
            while i < body.len() {
                if i + 2 < body.len() && body[i + 1] == '-' {
                    hit |= (body[i]..=body[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= body[i] == c;
                    i += 1;
                }
            }
            hit != neg
        }
        [x] => c == *x,
        _ => false,
    }
}

fn match_here(p: &[char], t: &[char]) -> bool {
    if p.is_empty() {
        return true;
    }
    if p == ['$'] {
        return t.is_empty();
    }
    let n = atom_len(p);
    let (atom, rest) = p.split_at(n);
    match rest.first() {
        Some('*') => match_repeat(atom, &rest[1..], t, 0),
        Some('+') => match_repeat(atom, &rest[1..], t, 1),
        Some('?') => {
            (!t.is_empty() && atom_matches(atom, t[0]) && match_here(&rest[1..], &t[1..]))
                || match_here(&rest[1..], t)
        }
        _ => !t.is_empty() && atom_matches(atom, t[0]) && match_here(rest, &t[1..]),
    }
}

fn match_repeat(atom: &[char], rest: &[char], t: &[char], min: usize) -> bool {
    let mut count = 0;
    while count < t.len() && atom_matches(atom, t[count]) {
        count += 1;
    }
    (min..=count).rev().any(|k| match_here(rest, &t[k..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_type_names() {
        assert_eq!(IoType::parse("int"), Some(IoType::Int));
        assert_eq!(
            IoType::parse("List[int]"),
            Some(IoType::ListOf(Box::new(IoType::Int)))
        );
        assert_eq!(
            IoType::parse("Dict[str, float]"),
            Some(IoType::DictOf(Box::new(IoType::Float)))
        );
        assert_eq!(IoType::parse("s3_path"), Some(IoType::S3));
        assert_eq!(IoType::parse("flaot"), None);
    }

    #[test]
    fn coerces_cli_values() {
        assert_eq!(
            coerce_cli("0.01", &IoType::Float, false).unwrap(),
            json!(0.01)
        );
        assert_eq!(coerce_cli("3", &IoType::Float, false).unwrap(), json!(3));
        assert_eq!(
            coerce_cli("false", &IoType::Bool, false).unwrap(),
            json!(false)
        );
        assert_eq!(
            coerce_cli("007", &IoType::Str, false).unwrap(),
            json!("007")
        );
        assert_eq!(
            coerce_cli("[1, 2]", &IoType::Int, true).unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            coerce_cli("a,b", &IoType::Str, true).unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(
            coerce_cli("{a: 1}", &IoType::Dict, false).unwrap(),
            json!({"a": 1})
        );
        assert!(coerce_cli("abc", &IoType::Int, false).is_err());
        assert!(coerce_cli("bucket/key", &IoType::S3, false).is_err());
        assert!(coerce_cli("s3://bucket/key", &IoType::S3, false).is_ok());
        assert!(coerce_cli("1.5", &IoType::Int, false).is_err());
    }

    #[test]
    fn compatible_types() {
        assert!(IoType::Path.feeds(&IoType::S3));
        assert!(IoType::Int.feeds(&IoType::Float));
        assert!(IoType::Metric.feeds(&IoType::Float));
        assert!(!IoType::Float.feeds(&IoType::Int));
        assert!(!IoType::Bool.feeds(&IoType::Path));
    }

    #[test]
    fn validation_constraints() {
        let v = Validation {
            ge: Some(0.0),
            lt: Some(1.0),
            ..Validation::default()
        };
        assert!(validate(&json!(0.5), &v).is_ok());
        assert!(validate(&json!(1.0), &v).is_err());
        let v = Validation {
            regex: Some("^[a-z]+-\\d+$".into()),
            ..Validation::default()
        };
        assert!(validate(&json!("run-12"), &v).is_ok());
        assert!(validate(&json!("Run-12"), &v).is_err());
        let v = Validation {
            options: Some(vec![json!("a"), json!("b")]),
            ..Validation::default()
        };
        assert!(validate(&json!("c"), &v).is_err());
    }
}
