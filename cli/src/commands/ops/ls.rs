//! `polyaxon ops ls`.

use anyhow::Result;
use clap::Args;
use polyaxon_server::api::V1Run;
use serde_json::Value as J;

use super::Target;
use crate::client::ListQuery;
use crate::commands::OutputArgs;
use crate::context::{Ctx, project_not_found};
use crate::error::UserError;
use crate::output::{self, Cell, Col, Table};
use crate::printer::Format;

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only runs matching this query, e.g. `status: running|failed, metrics.loss: <0.2`.
    #[arg(short, long)]
    pub query: Option<String>,

    /// Order, e.g. `-created_at` or `metrics.loss` (default: last changed first).
    #[arg(short, long, allow_hyphen_values = true)]
    pub sort: Option<String>,

    /// At most this many.
    #[arg(short, long, default_value_t = 20)]
    pub limit: i64,

    /// Skip this many (also `-off`).
    #[arg(long, default_value_t = 0)]
    pub offset: i64,

    /// Columns to show, comma-separated: `uuid, name, status, kind, user, tags, created,
    /// started, finished, duration, description, params.NAME, metrics.NAME, …`.
    #[arg(short, long, value_delimiter = ',', value_name = "COLUMNS")]
    pub columns: Vec<String>,

    /// Show inputs and outputs (params and last metric values) as columns.
    #[arg(long)]
    pub io: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

const DEFAULT_COLUMNS: &[&str] = &[
    "uuid", "name", "status", "kind", "created", "duration", "tags",
];

/// A column of the runs table: what it shows and how to get it from a run.
/// Gets a column's cell from a run.
type Getter = Box<dyn Fn(&V1Run) -> Cell>;

fn column(name: &str) -> Result<(Col, Getter)> {
    let key = name.trim();
    let (prefix, field) = match key.split_once('.') {
        Some((p, f)) => (p, Some(f.to_string())),
        None => (key, None),
    };
    let text =
        |f: fn(&V1Run) -> String| -> Box<dyn Fn(&V1Run) -> Cell> { Box::new(move |r| f(r).into()) };
    Ok(match (prefix, field) {
        ("uuid" | "id" | "uid", None) => (
            Col::fixed("uuid"),
            text(|r| r.uuid.clone().unwrap_or_default()),
        ),
        ("name", None) => (
            Col::new("name"),
            text(|r| r.name.clone().unwrap_or_default()),
        ),
        ("status", None) => (
            Col::new("status"),
            Box::new(|r: &V1Run| super::status_cell(r.status)),
        ),
        ("kind", None) => (
            Col::new("kind"),
            text(|r| r.kind.clone().unwrap_or_default()),
        ),
        ("runtime", None) => (
            Col::new("runtime"),
            text(|r| r.runtime.clone().unwrap_or_default()),
        ),
        ("user", None) => (
            Col::new("user"),
            text(|r| r.user.clone().unwrap_or_default()),
        ),
        ("project", None) => (
            Col::new("project"),
            text(|r| r.project.clone().unwrap_or_default()),
        ),
        ("tags", None) => (
            Col::new("tags"),
            text(|r| r.tags.clone().unwrap_or_default().join(", ")),
        ),
        ("description", None) => (
            Col::new("description"),
            text(|r| r.description.clone().unwrap_or_default()),
        ),
        ("created" | "created_at", None) => (
            Col::new("created"),
            text(|r| output::ago(r.created_at.as_deref())),
        ),
        ("updated" | "updated_at", None) => (
            Col::new("updated"),
            text(|r| output::ago(r.updated_at.as_deref())),
        ),
        ("started" | "started_at", None) => (
            Col::new("started"),
            text(|r| output::ago(r.started_at.as_deref())),
        ),
        ("finished" | "finished_at", None) => (
            Col::new("finished"),
            text(|r| output::ago(r.finished_at.as_deref())),
        ),
        ("duration", None) => (Col::new("duration"), text(|r| output::duration(r.duration))),
        ("wait_time", None) => (Col::new("wait"), text(|r| output::duration(r.wait_time))),
        ("managed_by", None) => (
            Col::new("managed by"),
            text(|r| r.managed_by.clone().unwrap_or_default()),
        ),
        ("pipeline", None) => (
            Col::new("pipeline"),
            text(|r| {
                r.pipeline
                    .as_ref()
                    .map(|p| p.uuid.clone())
                    .unwrap_or_default()
            }),
        ),
        ("original", None) => (
            Col::new("original"),
            text(|r| {
                r.original
                    .as_ref()
                    .map(|p| p.uuid.clone())
                    .unwrap_or_default()
            }),
        ),
        ("params" | "inputs" | "in", Some(k)) if !k.is_empty() => {
            let header = format!("params.{k}");
            (
                Col::new(&header),
                Box::new(move |r: &V1Run| value(r.inputs.as_ref(), &k)),
            )
        }
        ("metrics" | "outputs" | "out", Some(k)) if !k.is_empty() => {
            let header = format!("metrics.{k}");
            (
                Col::new(&header),
                Box::new(move |r: &V1Run| value(r.outputs.as_ref(), &k)),
            )
        }
        ("meta" | "meta_info", Some(k)) if !k.is_empty() => {
            let header = format!("meta.{k}");
            (
                Col::new(&header),
                Box::new(move |r: &V1Run| value(r.meta_info.as_ref(), &k)),
            )
        }
        _ => {
            return Err(UserError::new(format!("`{key}` is not a column"))
                .hint("use uuid, name, status, kind, user, tags, created, started, finished, duration, description, params.NAME or metrics.NAME")
                .into());
        }
    })
}

fn value(m: Option<&serde_json::Map<String, J>>, k: &str) -> Cell {
    m.and_then(|m| m.get(k))
        .map(output::value_text)
        .unwrap_or_default()
        .into()
}

/// The runs table with the given columns (default ones when empty; with `io`, every input
/// and output key seen on the page too).
pub fn table(runs: &[V1Run], columns: &[String], io: bool) -> Result<Table> {
    let mut names: Vec<String> = if columns.is_empty() {
        DEFAULT_COLUMNS.iter().map(|s| s.to_string()).collect()
    } else {
        columns
            .iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    if io {
        let mut keys = std::collections::BTreeSet::new();
        let mut outs = std::collections::BTreeSet::new();
        for r in runs {
            keys.extend(r.inputs.iter().flat_map(|m| m.keys().cloned()));
            outs.extend(r.outputs.iter().flat_map(|m| m.keys().cloned()));
        }
        names.retain(|n| !matches!(n.as_str(), "kind" | "tags" | "created" | "duration"));
        names.extend(keys.into_iter().map(|k| format!("params.{k}")));
        names.extend(outs.into_iter().map(|k| format!("metrics.{k}")));
    }
    let cols: Vec<_> = names.iter().map(|n| column(n)).collect::<Result<_>>()?;
    let mut t = Table::new(cols.iter().map(|(c, _)| c.clone()).collect());
    for r in runs {
        t.push(cols.iter().map(|(_, f)| f(r)).collect());
    }
    Ok(t)
}

pub fn run(ctx: &Ctx, target: &Target, args: LsArgs) -> Result<()> {
    // Bad columns fail before any call.
    table(&[], &args.columns, false)?;
    ctx.block_on(async {
        let client = ctx.client().await?;
        let p = ctx.project(&client, target.project.as_deref()).await?;
        let page = client
            .list_runs(
                &p.owner,
                &p.name,
                &ListQuery {
                    query: args.query.clone(),
                    sort: args.sort.clone(),
                    limit: Some(args.limit),
                    offset: Some(args.offset),
                },
            )
            .await
            .map_err(|e| project_not_found(e, &p))?;
        let items: Vec<J> = page.results.iter().map(super::to_json).collect();
        if args
            .output
            .write_file(&ctx.printer, &J::Array(items.clone()))?
        {
            return Ok(());
        }
        let t = table(&page.results, &args.columns, args.io)?;
        output::listing(&ctx.printer, args.output.format(), &items, &t)?;
        if args.output.format() == Format::Table {
            let shown = page.results.len() as i64;
            if page.count == 0 {
                ctx.printer.note(&if args.query.is_some() {
                    format!("no runs in `{p}` match the query")
                } else {
                    format!(
                        "no runs in `{p}` yet; start one with `polyaxon run -f polyaxonfile.yml`"
                    )
                });
            } else if shown < page.count {
                ctx.printer.note(&format!(
                    "{}–{} of {} runs in `{p}`; more with `--offset {}`",
                    args.offset + 1,
                    args.offset + shown,
                    page.count,
                    args.offset + shown
                ));
            }
        }
        Ok(())
    })
}
