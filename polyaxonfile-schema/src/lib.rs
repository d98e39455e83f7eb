//! The polyaxonfile specification: the v1.1 model, parsing with located diagnostics,
//! validation, params and templating, matrix spaces, DAG checks, the v0.6 upgrade and the JSON
//! Schema of the format.
//!
//! Pure: no I/O beyond reading the files it is pointed at, no async, no network.
//!
//! ```no_run
//! use polyaxonfile::{Options, Session, check};
//! let mut session = Session::new();
//! match check(&mut session, &["polyaxonfile.yml".into()], &Options::default()) {
//!     Ok(report) => println!("{}", report.summary.kind),
//!     Err(diags) => eprintln!("{}", diags.render(&session.sources, false)),
//! }
//! ```

// `path![..]` builds owned paths, also where a slice would do.
#![allow(clippy::useless_vec)]

#[macro_use]
mod macros;

pub mod compile;
pub mod de;
pub mod diag;
pub mod emit;
pub mod load;
pub mod node;
pub mod schema;
pub mod space;
pub mod spec;
pub mod template;
pub mod types;
pub mod v06;
pub mod validate;
pub mod yaml;

mod summary;

use std::path::PathBuf;

pub use compile::{
    Compiled, CompiledOperation, Fetched, Input, Options, Prepared, UrlFetcher, compile,
    placeholder_globals, prepare, prepare_inputs,
};
pub use diag::{Diagnostic, Diagnostics, Severity, SourceMap};
pub use load::Session;
pub use node::{Node, PathSeg, Pos, Span, Value};
pub use summary::Summary;

/// A checked polyaxonfile.
#[derive(Clone, Debug)]
pub struct Report {
    pub prepared: Prepared,
    /// Absent with `lint`.
    pub compiled: Option<Compiled>,
    pub summary: Summary,
}

/// Reads, validates and (unless `opts.lint`) compiles the files: what `polyaxon check` does.
/// Warnings are left in `session.warnings`.
pub fn check(
    session: &mut Session,
    files: &[PathBuf],
    opts: &Options,
) -> Result<Report, Diagnostics> {
    let prepared = prepare(session, files, opts)?;
    let compiled = if opts.lint {
        None
    } else {
        Some(compile(session, &prepared, opts)?)
    };
    let summary = Summary::new(&prepared, compiled.as_ref());
    Ok(Report {
        prepared,
        compiled,
        summary,
    })
}

/// Checks and compiles a polyaxonfile given as text (an API body, a stored spec).
pub fn check_text(
    session: &mut Session,
    name: &str,
    text: &str,
    opts: &Options,
) -> Result<Report, Diagnostics> {
    let input = Input::Text {
        name: name.to_string(),
        text: text.to_string(),
        dir: PathBuf::from("."),
    };
    let prepared = prepare_inputs(session, std::slice::from_ref(&input), opts)?;
    let compiled = if opts.lint {
        None
    } else {
        Some(compile(session, &prepared, opts)?)
    };
    let summary = Summary::new(&prepared, compiled.as_ref());
    Ok(Report {
        prepared,
        compiled,
        summary,
    })
}

/// Serializes to JSON without `null` fields, the form written to users and stored by servers.
pub fn to_clean_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    strip_nulls(&mut v);
    v
}

fn strip_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
