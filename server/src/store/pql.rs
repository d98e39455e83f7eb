//! Upstream's query language (PQL) for listing runs and projects, turned into SQL.
//!
//! `status: running|failed, metrics.loss: <0.2, tags: baseline, name: %resnet%,
//! created_at: 2024-10-10 .. 2024-12-01, ~kind: dag` — conditions joined by `,` (AND), each
//! `field: operation`; `~` negates. Fields have a kind that decides which operations they take
//! (value, search, scalar, datetime); a wrong operator is an error naming the field.

use crate::store::{Arg, Dialect};

/// What kind of operations a field takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Equality, `a|b`, comparisons, `nil`.
    Value,
    /// Like value, plus `%like%` patterns; no comparisons.
    Search,
    /// Numbers: equality and comparisons; no `|`, no ranges.
    Scalar,
    /// Dates: a day, comparisons, ranges `a .. b`; no `|`.
    Datetime,
}

/// Where a field's value lives.
#[derive(Clone, Debug)]
pub enum Column {
    /// A column expression.
    Plain(&'static str),
    /// A JSON array of strings (tags).
    Array(&'static str),
    /// A key of a JSON object column (`params.lr` → `inputs`, key `lr`).
    Json(&'static str),
    /// A nested key of a JSON object column (`commit` → `meta_info.code_ref.commit`).
    JsonPath(&'static str, &'static [&'static str]),
    /// A column of the run's series of the key's name (`metrics_min.loss` → the lowest loss).
    Series(&'static str),
}

pub struct FieldDef {
    pub names: &'static [&'static str],
    pub kind: Kind,
    pub column: Column,
    /// Takes a `.key` suffix.
    pub keyed: bool,
}

/// The fields of runs (upstream's proxies included: `params`/`in` for inputs, `metrics`/`out`
/// for outputs, `id`/`uid` for uuid).
pub const RUN_FIELDS: &[FieldDef] = &[
    FieldDef {
        names: &["status"],
        kind: Kind::Value,
        column: Column::Plain("r.status"),
        keyed: false,
    },
    FieldDef {
        names: &["kind"],
        kind: Kind::Value,
        column: Column::Plain("r.kind"),
        keyed: false,
    },
    FieldDef {
        names: &["runtime"],
        kind: Kind::Value,
        column: Column::Plain("r.runtime"),
        keyed: false,
    },
    FieldDef {
        names: &["tags"],
        kind: Kind::Value,
        column: Column::Array("r.tags"),
        keyed: false,
    },
    FieldDef {
        names: &["user"],
        kind: Kind::Value,
        column: Column::Plain("u.username"),
        keyed: false,
    },
    FieldDef {
        names: &["project"],
        kind: Kind::Value,
        column: Column::Plain("p.name"),
        keyed: false,
    },
    FieldDef {
        names: &["pipeline"],
        kind: Kind::Value,
        column: Column::Plain("r.pipeline_uuid"),
        keyed: false,
    },
    FieldDef {
        names: &["original"],
        kind: Kind::Value,
        column: Column::Plain("r.original_uuid"),
        keyed: false,
    },
    FieldDef {
        names: &["cloning_kind"],
        kind: Kind::Value,
        column: Column::Plain("r.cloning_kind"),
        keyed: false,
    },
    FieldDef {
        names: &["managed_by"],
        kind: Kind::Value,
        column: Column::Plain("r.managed_by"),
        keyed: false,
    },
    FieldDef {
        names: &["commit"],
        kind: Kind::Value,
        column: Column::JsonPath("r.meta_info", &["code_ref", "commit"]),
        keyed: false,
    },
    FieldDef {
        names: &["cache_key"],
        kind: Kind::Value,
        column: Column::JsonPath("r.meta_info", &["cache_key"]),
        keyed: false,
    },
    FieldDef {
        names: &["name"],
        kind: Kind::Search,
        column: Column::Plain("r.name"),
        keyed: false,
    },
    FieldDef {
        names: &["description"],
        kind: Kind::Search,
        column: Column::Plain("r.description"),
        keyed: false,
    },
    FieldDef {
        names: &["uuid", "id", "uid"],
        kind: Kind::Search,
        column: Column::Plain("r.uuid"),
        keyed: false,
    },
    FieldDef {
        names: &["params", "inputs", "in"],
        kind: Kind::Value,
        column: Column::Json("r.inputs"),
        keyed: true,
    },
    FieldDef {
        names: &["outputs", "out"],
        kind: Kind::Value,
        column: Column::Json("r.outputs"),
        keyed: true,
    },
    FieldDef {
        names: &["metrics"],
        kind: Kind::Scalar,
        column: Column::Json("r.outputs"),
        keyed: true,
    },
    FieldDef {
        names: &["metrics_min"],
        kind: Kind::Scalar,
        column: Column::Series("min_value"),
        keyed: true,
    },
    FieldDef {
        names: &["metrics_max"],
        kind: Kind::Scalar,
        column: Column::Series("max_value"),
        keyed: true,
    },
    FieldDef {
        names: &["meta_info"],
        kind: Kind::Value,
        column: Column::Json("r.meta_info"),
        keyed: true,
    },
    FieldDef {
        names: &["duration"],
        kind: Kind::Scalar,
        column: Column::Plain("r.duration"),
        keyed: false,
    },
    FieldDef {
        names: &["wait_time"],
        kind: Kind::Scalar,
        column: Column::Plain("r.wait_time"),
        keyed: false,
    },
    FieldDef {
        names: &["created_at"],
        kind: Kind::Datetime,
        column: Column::Plain("r.created_at"),
        keyed: false,
    },
    FieldDef {
        names: &["updated_at"],
        kind: Kind::Datetime,
        column: Column::Plain("r.updated_at"),
        keyed: false,
    },
    FieldDef {
        names: &["started_at"],
        kind: Kind::Datetime,
        column: Column::Plain("r.started_at"),
        keyed: false,
    },
    FieldDef {
        names: &["finished_at"],
        kind: Kind::Datetime,
        column: Column::Plain("r.finished_at"),
        keyed: false,
    },
];

/// The fields of projects.
/// The fields of artifacts lineage (upstream's `name`, `kind`, `path`, `state`/`run` for the
/// run that recorded it, `created_at`).
pub const LINEAGE_FIELDS: &[FieldDef] = &[
    FieldDef {
        names: &["name"],
        kind: Kind::Search,
        column: Column::Plain("a.name"),
        keyed: false,
    },
    FieldDef {
        names: &["kind"],
        kind: Kind::Value,
        column: Column::Plain("a.kind"),
        keyed: false,
    },
    FieldDef {
        names: &["path"],
        kind: Kind::Search,
        column: Column::Plain("a.path"),
        keyed: false,
    },
    FieldDef {
        names: &["run", "state", "uuid"],
        kind: Kind::Value,
        column: Column::Plain("r.uuid"),
        keyed: false,
    },
    FieldDef {
        names: &["connection"],
        kind: Kind::Value,
        column: Column::Plain("a.connection"),
        keyed: false,
    },
    FieldDef {
        names: &["created_at"],
        kind: Kind::Datetime,
        column: Column::Plain("a.created_at"),
        keyed: false,
    },
];

pub const PROJECT_FIELDS: &[FieldDef] = &[
    FieldDef {
        names: &["name"],
        kind: Kind::Search,
        column: Column::Plain("p.name"),
        keyed: false,
    },
    FieldDef {
        names: &["description"],
        kind: Kind::Search,
        column: Column::Plain("p.description"),
        keyed: false,
    },
    FieldDef {
        names: &["uuid", "id", "uid"],
        kind: Kind::Search,
        column: Column::Plain("p.uuid"),
        keyed: false,
    },
    FieldDef {
        names: &["owner"],
        kind: Kind::Value,
        column: Column::Plain("p.owner"),
        keyed: false,
    },
    FieldDef {
        names: &["tags"],
        kind: Kind::Value,
        column: Column::Array("p.tags"),
        keyed: false,
    },
    FieldDef {
        names: &["created_at"],
        kind: Kind::Datetime,
        column: Column::Plain("p.created_at"),
        keyed: false,
    },
    FieldDef {
        names: &["updated_at"],
        kind: Kind::Datetime,
        column: Column::Plain("p.updated_at"),
        keyed: false,
    },
];

/// A query the server cannot run; its message names the problem (HTTP 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid query: {0}")]
pub struct PqlError(pub String);

/// Accumulates SQL parameters, numbering placeholders.
pub struct Params {
    pub dialect: Dialect,
    pub args: Vec<Arg>,
}

impl Params {
    pub fn new(dialect: Dialect) -> Self {
        Params {
            dialect,
            args: Vec::new(),
        }
    }

    /// Adds a parameter and returns its placeholder.
    pub fn push(&mut self, a: impl Into<Arg>) -> String {
        self.args.push(a.into());
        format!("${}", self.args.len())
    }
}

fn find<'f>(fields: &'f [FieldDef], name: &str) -> Result<&'f FieldDef, PqlError> {
    fields
        .iter()
        .find(|f| f.names.contains(&name))
        .ok_or_else(|| {
            let all: Vec<&str> = fields
                .iter()
                .flat_map(|f| f.names.iter().copied())
                .collect();
            let hint = polyaxonfile::diag::did_you_mean(name, all.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            PqlError(format!(
                "unknown field `{name}`{hint}; fields: {}",
                all.join(", ")
            ))
        })
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
}

/// A field reference resolved to SQL: the text form and, when numeric, the numeric form.
struct Target {
    text: String,
    number: String,
    kind: Kind,
    array: bool,
}

fn json_text(d: Dialect, col: &str, key: &str, p: &mut Params) -> String {
    match d {
        Dialect::Postgres => {
            let k = p.push(key);
            format!("({col}::jsonb ->> {k})")
        }
        Dialect::Sqlite => {
            let path = p.push(format!("$.\"{key}\""));
            format!(
                "(CASE json_type({col}, {path}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(json_extract({col}, {path}) AS TEXT) END)"
            )
        }
    }
}

fn json_number(d: Dialect, col: &str, key: &str, p: &mut Params) -> String {
    match d {
        Dialect::Postgres => {
            let k = p.push(key);
            format!(
                "(CASE WHEN jsonb_typeof({col}::jsonb -> {k}) = 'number' THEN ({col}::jsonb ->> {k})::float8 END)"
            )
        }
        Dialect::Sqlite => {
            let path = p.push(format!("$.\"{key}\""));
            format!(
                "(CASE WHEN json_type({col}, {path}) IN ('integer', 'real') THEN json_extract({col}, {path}) END)"
            )
        }
    }
}

fn json_path_text(d: Dialect, col: &str, keys: &[&str], p: &mut Params) -> String {
    match d {
        Dialect::Postgres => {
            let arr = p.push(format!("{{{}}}", keys.join(",")));
            format!("({col}::jsonb #>> {arr}::text[])")
        }
        Dialect::Sqlite => {
            let path = p.push(format!(
                "$.{}",
                keys.iter()
                    .map(|k| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(".")
            ));
            format!("CAST(json_extract({col}, {path}) AS TEXT)")
        }
    }
}

fn target(field: &str, fields: &[FieldDef], p: &mut Params) -> Result<Target, PqlError> {
    let (name, key) = match field.split_once('.') {
        Some((n, k)) => (n, Some(k)),
        None => (field, None),
    };
    let def = find(fields, name)?;
    match (def.keyed, key) {
        (true, None) => {
            return Err(PqlError(format!(
                "`{name}` needs a key, e.g. `{name}.loss`"
            )));
        }
        (false, Some(_)) => return Err(PqlError(format!("`{name}` takes no key"))),
        (true, Some(k)) if !valid_key(k) => {
            return Err(PqlError(format!("`{k}` is not a valid key")));
        }
        _ => {}
    }
    let d = p.dialect;
    Ok(match &def.column {
        Column::Plain(c) => Target {
            text: c.to_string(),
            number: c.to_string(),
            kind: def.kind,
            array: false,
        },
        Column::Array(c) => Target {
            text: c.to_string(),
            number: c.to_string(),
            kind: def.kind,
            array: true,
        },
        Column::Json(c) => {
            let k = key.unwrap_or_default();
            Target {
                text: json_text(d, c, k, p),
                number: json_number(d, c, k, p),
                kind: def.kind,
                array: false,
            }
        }
        Column::Series(c) => {
            let k = p.push(key.unwrap_or_default());
            let e = format!(
                "(SELECT ms.{c} FROM metric_series ms WHERE ms.run_id = r.id AND ms.name = {k})"
            );
            Target {
                text: e.clone(),
                number: e,
                kind: def.kind,
                array: false,
            }
        }
        Column::JsonPath(c, keys) => {
            let t = json_path_text(d, c, keys, p);
            Target {
                text: t.clone(),
                number: t,
                kind: def.kind,
                array: false,
            }
        }
    })
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

/// A datetime literal as a range of microseconds `[start, end)`: a date covers its day, a
/// datetime its second.
fn parse_when(s: &str) -> Result<(i64, i64), PqlError> {
    let t = s.trim();
    if let Ok(d) = t.parse::<jiff::civil::Date>() {
        let start = d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|e| PqlError(e.to_string()))?
            .timestamp()
            .as_microsecond();
        return Ok((start, start + 86_400_000_000));
    }
    match polyaxonfile::spec::misc::parse_datetime(t) {
        Some(ts) => {
            let us = ts.as_microsecond();
            Ok((us, us + 1_000_000))
        }
        None => Err(PqlError(format!(
            "`{t}` is not a date or datetime (write `2024-10-10` or `2024-10-10 10:10`)"
        ))),
    }
}

/// Translates one `field: operation` into SQL.
fn condition(
    field: &str,
    op: &str,
    fields: &[FieldDef],
    p: &mut Params,
) -> Result<String, PqlError> {
    let t = target(field, fields, p)?;
    let mut op = op.trim();
    if op.is_empty() {
        return Err(PqlError(format!("`{field}` has no value")));
    }
    let negate = op.starts_with('~');
    if negate {
        op = op[1..].trim_start();
    }
    let sql = match t.kind {
        Kind::Datetime => {
            if op.contains('|') {
                return Err(PqlError(format!("`{field}` is a date: `|` is not allowed")));
            }
            if let Some((a, b)) = op.split_once("..") {
                let (start, _) = parse_when(a)?;
                let (_, end) = parse_when(b)?;
                let (pa, pb) = (p.push(start), p.push(end));
                format!("({c} >= {pa} AND {c} < {pb})", c = t.number)
            } else if let Some((cmp, rest)) = comparison(op) {
                let (start, end) = parse_when(rest)?;
                let v = if matches!(cmp, ">" | "<=") {
                    end
                } else {
                    start
                };
                let pv = p.push(v);
                let cmp = if cmp == "<=" {
                    "<"
                } else if cmp == ">" {
                    ">="
                } else {
                    cmp
                };
                format!("({} {cmp} {pv})", t.number)
            } else if op == "nil" {
                format!("({} IS NULL)", t.number)
            } else {
                let (start, end) = parse_when(op)?;
                let (pa, pb) = (p.push(start), p.push(end));
                format!("({c} >= {pa} AND {c} < {pb})", c = t.number)
            }
        }
        Kind::Scalar => {
            if op.contains('|') {
                return Err(PqlError(format!(
                    "`{field}` is a number: `|` is not allowed"
                )));
            }
            if op.contains("..") {
                return Err(PqlError(format!(
                    "`{field}` is a number: ranges `..` are not allowed; use `>a` and `<b` in two conditions"
                )));
            }
            if op == "nil" {
                format!("({} IS NULL)", t.number)
            } else {
                let (cmp, rest) = comparison(op).unwrap_or(("=", op));
                let n = parse_number(rest)
                    .ok_or_else(|| PqlError(format!("`{rest}` is not a number (for `{field}`)")))?;
                let pv = p.push(n);
                format!("({} {cmp} {pv})", t.number)
            }
        }
        Kind::Value | Kind::Search => {
            if op.contains("..") {
                return Err(PqlError(format!("`{field}` does not take ranges `..`")));
            }
            if op == "nil" {
                if t.array {
                    format!("({c} IS NULL OR {c} = '[]')", c = t.text)
                } else {
                    format!("({} IS NULL)", t.text)
                }
            } else if let Some((cmp, rest)) = comparison(op) {
                if t.kind == Kind::Search {
                    return Err(PqlError(format!("`{field}` does not take comparisons")));
                }
                match parse_number(rest) {
                    Some(n) => {
                        let pv = p.push(n);
                        format!("({} {cmp} {pv})", t.number)
                    }
                    None => {
                        let pv = p.push(rest.trim());
                        format!("({} {cmp} {pv})", t.text)
                    }
                }
            } else if op.contains('%') {
                if t.kind != Kind::Search {
                    return Err(PqlError(format!("`{field}` does not take `%` patterns")));
                }
                let pv = p.push(op);
                match p.dialect {
                    Dialect::Postgres => format!("({} ILIKE {pv})", t.text),
                    Dialect::Sqlite => format!("({} LIKE {pv})", t.text),
                }
            } else {
                let values: Vec<&str> = op
                    .split('|')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .collect();
                if values.is_empty() {
                    return Err(PqlError(format!("`{field}` has no value")));
                }
                let norm = |v: &str| {
                    if field == "uuid" || field == "id" || field == "uid" {
                        v.replace('-', "")
                    } else {
                        v.to_string()
                    }
                };
                if t.array {
                    let alts: Vec<String> = values
                        .iter()
                        .map(|v| {
                            let pv = p.push(norm(v));
                            match p.dialect {
                                // A jsonb array contains a string: 5x faster than unnesting it.
                                Dialect::Postgres => format!("jsonb_exists({}::jsonb, {pv})", t.text),
                                Dialect::Sqlite => format!("EXISTS (SELECT 1 FROM json_each({}) AS tag WHERE tag.value = {pv})", t.text),
                            }
                        })
                        .collect();
                    format!("({})", alts.join(" OR "))
                } else {
                    let alts: Vec<String> = values
                        .iter()
                        .map(|v| match parse_number(v) {
                            // A number equals the value whether it is stored as a number or as text.
                            Some(n) if matches!(t.kind, Kind::Value) && t.text != t.number => {
                                let (pn, ps) = (p.push(n), p.push(norm(v)));
                                format!("({} = {pn} OR {} = {ps})", t.number, t.text)
                            }
                            _ => {
                                let pv = p.push(norm(v));
                                format!("({} = {pv})", t.text)
                            }
                        })
                        .collect();
                    format!("({})", alts.join(" OR "))
                }
            }
        }
    };
    Ok(if negate {
        let base = if t.array { "" } else { &t.text };
        if base.is_empty() {
            format!("(NOT {sql})")
        } else {
            format!("({base} IS NULL OR NOT {sql})")
        }
    } else {
        sql
    })
}

fn comparison(op: &str) -> Option<(&'static str, &str)> {
    for c in ["<=", ">=", "<", ">"] {
        if let Some(rest) = op.strip_prefix(c) {
            return Some((c, rest.trim()));
        }
    }
    None
}

/// Translates a whole query into a SQL condition (`TRUE` when empty).
pub fn where_clause(query: &str, fields: &[FieldDef], p: &mut Params) -> Result<String, PqlError> {
    let mut parts = Vec::new();
    for cond in query.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let (mut field, op) = cond
            .split_once(':')
            .ok_or_else(|| PqlError(format!("`{cond}` is not `field: value`")))?;
        field = field.trim();
        // `~field: x` is accepted as a negation too.
        let (field, op) = match field.strip_prefix('~') {
            Some(f) => (f.trim(), format!("~{}", op.trim())),
            None => (field, op.trim().to_string()),
        };
        parts.push(condition(field, &op, fields, p)?);
    }
    Ok(if parts.is_empty() {
        "1 = 1".to_string()
    } else {
        parts.join(" AND ")
    })
}

/// Columns that are never NULL: their sort needs no `NULLS LAST`.
const NOT_NULL: &[&str] = &[
    "r.created_at",
    "r.updated_at",
    "r.uuid",
    "r.status",
    "p.created_at",
    "p.updated_at",
    "p.name",
    "p.uuid",
];

/// Translates `-created_at,metrics.loss` into an ORDER BY list.
pub fn order_by(
    sort: &str,
    fields: &[FieldDef],
    default: &str,
    p: &mut Params,
    tiebreak: &str,
) -> Result<String, PqlError> {
    let sort = if sort.trim().is_empty() {
        default
    } else {
        sort
    };
    let mut parts = Vec::new();
    for item in sort.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (desc, field) = match item.strip_prefix('-') {
            Some(f) => (true, f.trim()),
            None => (false, item.trim_start_matches('+').trim()),
        };
        let t = target(field, fields, p)?;
        let mut exprs = vec![if matches!(t.kind, Kind::Scalar | Kind::Datetime)
            || field.contains('.')
        {
            t.number
        } else {
            t.text
        }];
        if field.contains('.') && !matches!(t.kind, Kind::Scalar) {
            // Keys of JSON columns sort numerically when numeric, else as text.
            exprs.push(target(field, fields, p)?.text);
        }
        let dir = if desc { "DESC" } else { "ASC" };
        for e in exprs {
            if NOT_NULL.contains(&e.as_str()) {
                // Plain, so that the (project, time) indexes serve the sort.
                parts.push(format!("{e} {dir}"));
            } else {
                parts.push(format!("{e} {dir} NULLS LAST"));
            }
        }
    }
    parts.push(tiebreak.to_string());
    Ok(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(q: &str) -> Result<String, PqlError> {
        let mut p = Params::new(Dialect::Postgres);
        where_clause(q, RUN_FIELDS, &mut p)
    }

    #[test]
    fn translates_the_documented_forms() {
        assert!(
            sql("status: running|failed")
                .unwrap()
                .contains("r.status = $1")
        );
        assert!(sql("~status: running").unwrap().contains("NOT"));
        assert!(sql("status: ~running").unwrap().contains("NOT"));
        assert!(sql("name: %resnet%").unwrap().contains("ILIKE"));
        assert!(sql("metrics.loss: <0.2").unwrap().contains("< $"));
        assert!(sql("params.lr: >0.01, tags: a").unwrap().contains(" AND "));
        assert!(
            sql("created_at: 2024-10-10 10:10 .. 2024-12-01")
                .unwrap()
                .contains(">=")
        );
        assert!(sql("finished_at: nil").unwrap().contains("IS NULL"));
        assert_eq!(sql("").unwrap(), "1 = 1");
    }

    #[test]
    fn rejects_what_upstream_rejects() {
        assert!(
            sql("metrics.loss: 0.1|0.2")
                .unwrap_err()
                .0
                .contains("`|` is not allowed")
        );
        assert!(sql("status: a .. b").is_err());
        assert!(sql("created_at: a|b").is_err());
        assert!(sql("status: %run%").unwrap_err().0.contains("`%`"));
        assert!(sql("name: <3").unwrap_err().0.contains("comparisons"));
        assert!(
            sql("stauts: running")
                .unwrap_err()
                .0
                .contains("did you mean `status`?")
        );
        assert!(sql("params: 1").unwrap_err().0.contains("needs a key"));
        assert!(
            sql("metrics.loss: big")
                .unwrap_err()
                .0
                .contains("not a number")
        );
        assert!(sql("created_at: yesterday").is_err());
        assert!(sql("status").is_err());
    }

    #[test]
    fn sorts() {
        let mut p = Params::new(Dialect::Sqlite);
        let s = order_by(
            "-metrics.loss,name",
            RUN_FIELDS,
            "-updated_at",
            &mut p,
            "r.id DESC",
        )
        .unwrap();
        assert!(
            s.contains("DESC NULLS LAST") && s.ends_with("r.id DESC"),
            "{s}"
        );
        assert!(order_by("-nope", RUN_FIELDS, "", &mut p, "r.id").is_err());
        // Never-null columns sort plainly, so an index serves them.
        let s = order_by("", RUN_FIELDS, "-updated_at", &mut p, "r.id DESC").unwrap();
        assert_eq!(s, "r.updated_at DESC, r.id DESC");
    }
}
