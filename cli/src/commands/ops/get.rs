//! `polyaxon ops get`.

use anyhow::Result;
use clap::Args;
use polyaxon_server::api::V1Run;
use serde_json::Value as J;

use super::Target;
use crate::commands::OutputArgs;
use crate::context::Ctx;
use crate::output::{self, Cell};

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

/// A run as `key  value` lines.
pub fn detail_pairs(r: &V1Run) -> Vec<(String, Cell)> {
    let mut v: Vec<(String, Cell)> = Vec::new();
    let mut put = |k: &str, c: Cell| {
        if !c.text.is_empty() {
            v.push((k.to_string(), c));
        }
    };
    put("uuid", r.uuid.clone().unwrap_or_default().into());
    put("name", r.name.clone().unwrap_or_default().into());
    put(
        "project",
        format!(
            "{}/{}",
            r.owner.as_deref().unwrap_or("?"),
            r.project.as_deref().unwrap_or("?")
        )
        .into(),
    );
    put("status", super::status_cell(r.status));
    if let Some(last) = r
        .status_conditions
        .as_ref()
        .and_then(|c| c.last())
        .filter(|c| c.reason.is_some() || c.message.is_some())
    {
        let why = [last.reason.as_deref(), last.message.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        put("reason", why.into());
    }
    put("kind", r.kind.clone().unwrap_or_default().into());
    put("user", r.user.clone().unwrap_or_default().into());
    put(
        "description",
        r.description.clone().unwrap_or_default().into(),
    );
    put("tags", r.tags.clone().unwrap_or_default().join(", ").into());
    put("created", output::when(r.created_at.as_deref()).into());
    put("started", output::when(r.started_at.as_deref()).into());
    put("finished", output::when(r.finished_at.as_deref()).into());
    put("duration", output::duration(r.duration).into());
    put(
        "managed by",
        r.managed_by.clone().unwrap_or_default().into(),
    );
    if let Some(o) = &r.original {
        put(
            "copied from",
            format!("{} ({})", o.uuid, o.kind.as_deref().unwrap_or("copy")).into(),
        );
    }
    if let Some(p) = &r.pipeline {
        put(
            "pipeline",
            format!("{} ({})", p.uuid, p.kind.as_deref().unwrap_or("pipeline")).into(),
        );
    }
    if let Some(code) = &r.meta().code_ref {
        put("code", code_ref_text(code).into());
    }
    put("inputs", mapping_text(r.inputs.as_ref()).into());
    put("outputs", mapping_text(r.outputs.as_ref()).into());
    v
}

fn code_ref_text(c: &polyaxon_server::api::CodeRef) -> String {
    let mut s = c
        .commit
        .as_deref()
        .unwrap_or("")
        .chars()
        .take(12)
        .collect::<String>();
    if let Some(b) = c.branch.as_deref().filter(|b| !b.is_empty()) {
        s.push_str(&format!(" on {b}"));
    }
    if c.is_dirty {
        s.push_str(" (with uncommitted changes)");
    }
    if let Some(u) = c.url.as_deref().filter(|u| !u.is_empty()) {
        s.push_str(&format!(" — {u}"));
    }
    s
}

/// `k = v` lines.
fn mapping_text(m: Option<&serde_json::Map<String, J>>) -> String {
    let Some(m) = m.filter(|m| !m.is_empty()) else {
        return String::new();
    };
    let w = m.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    m.iter()
        .map(|(k, v)| format!("{k:w$} = {}", output::value_text(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn run(ctx: &Ctx, target: &Target, args: GetArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let (r, run) = target.resolve(ctx, &client).await?;
        let json = super::to_json(&run);
        if !args.output.write_file(&ctx.printer, &json)? {
            output::detail(
                &ctx.printer,
                args.output.format(),
                &json,
                &detail_pairs(&run),
            )?;
            if args.output.format() == crate::printer::Format::Table
                && let Some(dag) = run.meta().dag
            {
                dag_table(ctx, &client, &r, &dag).await?;
            }
        }
        Ok(())
    })
}

/// A DAG's operations: status, what each waits for, how long it took.
async fn dag_table(
    ctx: &Ctx,
    client: &crate::client::Client,
    r: &crate::client::RunRef,
    dag: &polyaxon_server::api::DagMeta,
) -> Result<()> {
    use crate::output::{Col, Table};
    let q = crate::client::ListQuery {
        query: Some(format!("pipeline: {}", r.uuid)),
        limit: Some(1000),
        ..Default::default()
    };
    let runs: std::collections::BTreeMap<String, V1Run> = client
        .list_runs(&r.owner, &r.project, &q)
        .await?
        .results
        .into_iter()
        .map(|run| (run.uuid.clone().unwrap_or_default(), run))
        .collect();
    let mut table = Table::new(vec![
        Col::new("op"),
        Col::new("status"),
        Col::new("after"),
        Col::new("duration"),
        Col::fixed("uuid"),
    ]);
    for op in &dag.ops {
        let run = runs.get(&op.uuid);
        let after: Vec<&str> = dag
            .edges
            .iter()
            .filter(|(_, down)| *down == op.name)
            .map(|(up, _)| up.as_str())
            .collect();
        table.push(vec![
            op.name.clone().into(),
            super::status_cell(run.and_then(|r| r.status)),
            after.join(", ").into(),
            output::duration(run.and_then(|r| r.duration)).into(),
            op.uuid.clone().into(),
        ]);
    }
    ctx.printer.out("")?;
    ctx.printer
        .out(&table.render(output::term_width(), ctx.printer.color_out()))?;
    Ok(())
}
