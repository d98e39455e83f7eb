//! A runs query and sort as `?query=` and `?sort=` carry them, translated to SQL for both
//! stores. Values never reach the SQL text: only placeholders and the translator's own
//! literals do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use polyaxon_server::store::Dialect;
use polyaxon_server::store::pql::{Params, RUN_FIELDS, order_by, where_clause};

/// The string literals the translator writes itself.
const OWN_LITERALS: &[&str] = &[
    "'true'",
    "'false'",
    "'number'",
    "'integer'",
    "'real'",
    "'[]'",
];

fn check_sql(sql: &str, p: &Params) {
    let mut rest = sql.to_string();
    for lit in OWN_LITERALS {
        rest = rest.replace(lit, "");
    }
    assert!(
        !rest.contains('\'') && !rest.contains(';') && !rest.contains("--") && !rest.contains("/*"),
        "input reached the SQL text: {sql}"
    );
    // Every placeholder names a bound value.
    let mut chars = rest.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '$' {
            let mut n = String::new();
            while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
                n.push(d);
                chars.next();
            }
            let n: usize = n.parse().expect("a placeholder is numbered");
            assert!(
                n >= 1 && n <= p.args.len(),
                "${n} of {} values in {sql}",
                p.args.len()
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `query` and `sort` apart at the first newline, as two parameters of one request.
    let (query, sort) = text.split_once('\n').unwrap_or((text, ""));
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        let mut p = Params::new(dialect);
        if let Ok(sql) = where_clause(query, RUN_FIELDS, &mut p) {
            check_sql(&sql, &p);
        }
        if let Ok(sql) = order_by(sort, RUN_FIELDS, "-updated_at", &mut p, "r.id DESC") {
            check_sql(&sql, &p);
        }
    }
});
