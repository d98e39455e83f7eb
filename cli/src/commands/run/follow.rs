//! Following a started run from `polyaxon run -l` / `-w`: its logs or its statuses (a
//! search's trials) until it ends; the first Ctrl-C stops it.

use anyhow::Result;
use polyaxon_server::api::{RunStatus, V1Run};
use serde_json::Value as J;

use crate::client::{Client, RunRef};
use crate::commands::ops::logs::{LogsArgs, follow};
use crate::context::Ctx;
use crate::error::Reported;

/// What `-w` shows of a run while it goes.
pub enum Watch {
    /// Its statuses.
    Statuses,
    /// A search's trials, with the metric it optimizes.
    Search(Option<polyaxonfile::spec::OptimizationMetric>),
    /// A DAG's operations, a schedule's runs.
    Children,
}

/// Follows a started run here: its logs (`-l`) or statuses (`-w`) until it ends. The first
/// Ctrl-C stops the run (and keeps following until it has stopped); a second one leaves.
pub(super) async fn follow_run(
    ctx: &Ctx,
    client: &Client,
    r: &RunRef,
    args: &super::RunArgs,
    watch: Watch,
) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(4);
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if tx.send(()).await.is_err() {
                break;
            }
        }
    });
    let mut stopping = false;
    let mut cursor = crate::commands::ops::logs::Cursor::default();
    let status = loop {
        let ended = if args.logs {
            let la = LogsArgs {
                run: None,
                no_follow: false,
                hide_time: true,
                all_info: false,
            };
            let f = follow(ctx, client, r, &la, true, &mut cursor, Some(&mut rx)).await?;
            f.status.filter(|_| f.ended)
        } else {
            match &watch {
                Watch::Search(metric) => {
                    watch_search(ctx, client, r, metric.as_ref(), &mut rx).await?
                }
                Watch::Children => watch_children(ctx, client, r, &mut rx).await?,
                Watch::Statuses => watch_statuses(ctx, client, r, &mut rx).await?,
            }
        };
        match ended {
            Some(s) => break s,
            None if !stopping => {
                stopping = true;
                ctx.printer.warn(&format!(
                    "stopping run `{}` (Ctrl-C again to leave it stopping in the background)",
                    r.uuid
                ));
                let _ = client.stop_run(r).await;
            }
            None => {
                ctx.printer.note(&format!(
                    "left run `{}` stopping; `polyaxon ops statuses -w` follows it",
                    r.uuid
                ));
                return Err(Reported(130).into());
            }
        }
    };
    let run = client.get_run(r).await?;
    let why = run
        .status_conditions
        .as_ref()
        .and_then(|c| c.last())
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    match status {
        RunStatus::Succeeded => {
            ctx.printer
                .success(&format!("run `{}` succeeded {}", r.uuid, paren(&why)));
            Ok(())
        }
        other => {
            ctx.printer.error(
                &format!("run `{}` {other} {}", r.uuid, paren(&why)),
                Some("`polyaxon ops statuses` shows its history, `polyaxon logs` its output"),
            );
            Err(Reported(1).into())
        }
    }
}

fn paren(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("({s})")
    }
}

/// Prints each new status until the run ends (`Some(status)`) or an interrupt (`None`).
async fn watch_statuses(
    ctx: &Ctx,
    client: &Client,
    r: &RunRef,
    rx: &mut tokio::sync::mpsc::Receiver<()>,
) -> Result<Option<RunStatus>> {
    let mut seen = 0usize;
    let mut watchdog = crate::controller::orphans::Watchdog::default();
    loop {
        watchdog.tick(client, r).await;
        let st = client.statuses(r).await?;
        for c in st.status_conditions.iter().skip(seen) {
            let why = [c.reason.as_deref(), c.message.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            let kind = crate::output::status_text(c.kind, 10, ctx.printer.color_out());
            ctx.printer.out(format!("{kind}  {why}").trim_end())?;
        }
        seen = st.status_conditions.len();
        if st.status.is_done() {
            return Ok(Some(st.status));
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            got = rx.recv() => if got.is_some() { return Ok(None) },
        }
    }
}

/// A search's trials as they start and end, then all of them, best first. `None` on an
/// interrupt.
async fn watch_search(
    ctx: &Ctx,
    client: &Client,
    r: &RunRef,
    metric: Option<&polyaxonfile::spec::OptimizationMetric>,
    rx: &mut tokio::sync::mpsc::Receiver<()>,
) -> Result<Option<RunStatus>> {
    use crate::output::{Cell, Col, Table};
    let mut seen: std::collections::BTreeMap<String, RunStatus> = Default::default();
    let q = crate::client::ListQuery {
        query: Some(format!("pipeline: {}", r.uuid)),
        sort: Some("created_at".into()),
        limit: Some(1000),
        ..Default::default()
    };
    let metric_of = |t: &V1Run| {
        metric.and_then(|m| {
            t.outputs
                .as_ref()
                .and_then(|o| o.get(&m.name))
                .and_then(J::as_f64)
        })
    };
    let params_of = |t: &V1Run| {
        t.inputs
            .as_ref()
            .map(|i| {
                i.iter()
                    .map(|(k, v)| format!("{k}={}", crate::output::value_text(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let mut watchdog = crate::controller::orphans::Watchdog::default();
    loop {
        watchdog.tick(client, r).await;
        let parent = client.get_run(r).await?;
        let trials = client.list_runs(&r.owner, &r.project, &q).await?.results;
        let mut lines = String::new();
        for t in &trials {
            let uuid = t.uuid.clone().unwrap_or_default();
            let status = t.status.unwrap_or_default();
            if seen.get(&uuid) == Some(&status) {
                continue;
            }
            seen.insert(uuid, status);
            let shown = match (metric, metric_of(t)) {
                (Some(m), Some(v)) => format!("  {}={}", m.name, crate::output::short_float(v)),
                _ => String::new(),
            };
            lines.push_str(&format!(
                "{:<16} {:<10} {}{shown}\n",
                t.name.clone().unwrap_or_default(),
                status,
                params_of(t)
            ));
        }
        if !lines.is_empty() {
            ctx.printer.out(lines.trim_end())?;
        }
        let status = parent.status.unwrap_or_default();
        if status.is_done() {
            let mut sorted: Vec<&V1Run> = trials.iter().collect();
            if let Some(m) = metric {
                sorted.sort_by(|a, b| {
                    crate::scheduler::tuner::best_first(m, metric_of(a), metric_of(b))
                });
            }
            let mut cols = vec![Col::new("trial"), Col::new("status"), Col::new("params")];
            if let Some(m) = metric {
                cols.push(Col::new(&m.name));
            }
            let mut table = Table::new(cols);
            for t in &sorted {
                let mut row: Vec<Cell> = vec![
                    t.name.clone().unwrap_or_default().into(),
                    crate::commands::ops::status_cell(t.status),
                    params_of(t).into(),
                ];
                if metric.is_some() {
                    row.push(
                        metric_of(t)
                            .map(crate::output::short_float)
                            .unwrap_or_default()
                            .into(),
                    );
                }
                table.push(row);
            }
            if !table.rows.is_empty() {
                ctx.printer.out("")?;
                ctx.printer
                    .out(&table.render(crate::output::term_width(), ctx.printer.color_out()))?;
            }
            return Ok(Some(status));
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(300)) => {}
            got = rx.recv() => if got.is_some() { return Ok(None) },
        }
    }
}

/// A DAG's operations (a schedule's runs) as their statuses change (name, status, how long it
/// took), then all of them in the DAG's order. `None` on an interrupt.
async fn watch_children(
    ctx: &Ctx,
    client: &Client,
    r: &RunRef,
    rx: &mut tokio::sync::mpsc::Receiver<()>,
) -> Result<Option<RunStatus>> {
    use crate::output::{Col, Table};
    let mut seen: std::collections::BTreeMap<String, RunStatus> = Default::default();
    let q = crate::client::ListQuery {
        query: Some(format!("pipeline: {}", r.uuid)),
        sort: Some("created_at".into()),
        limit: Some(1000),
        ..Default::default()
    };
    let width = |ops: &[V1Run]| {
        ops.iter()
            .filter_map(|o| o.name.as_deref())
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(2)
            .max(2)
    };
    let mut watchdog = crate::controller::orphans::Watchdog::default();
    loop {
        watchdog.tick(client, r).await;
        let dag = client.get_run(r).await?;
        let mut ops = client.list_runs(&r.owner, &r.project, &q).await?.results;
        // In the DAG's order.
        if let Some(meta) = dag.meta().dag {
            let at = |o: &V1Run| {
                meta.ops
                    .iter()
                    .position(|m| Some(&m.uuid) == o.uuid.as_ref())
                    .unwrap_or(usize::MAX)
            };
            ops.sort_by_key(at);
        }
        let w = width(&ops);
        let mut lines = String::new();
        for op in &ops {
            let uuid = op.uuid.clone().unwrap_or_default();
            let status = op.status.unwrap_or_default();
            if seen.get(&uuid) == Some(&status) {
                continue;
            }
            seen.insert(uuid, status);
            let took = match crate::output::duration(op.duration) {
                d if d.is_empty() => d,
                d => format!("  {d}"),
            };
            lines.push_str(&format!(
                "{:<w$}  {}{took}\n",
                op.name.as_deref().unwrap_or(""),
                crate::output::status_text(status, 15, ctx.printer.color_out()).trim_end()
            ));
        }
        if !lines.is_empty() {
            ctx.printer.out(lines.trim_end())?;
        }
        let status = dag.status.unwrap_or_default();
        if status.is_done() {
            let mut table = Table::new(vec![
                Col::new(if dag.kind.as_deref() == Some("schedule") {
                    "run"
                } else {
                    "op"
                }),
                Col::new("status"),
                Col::new("duration"),
                Col::fixed("uuid"),
            ]);
            for op in &ops {
                table.push(vec![
                    op.name.clone().unwrap_or_default().into(),
                    crate::commands::ops::status_cell(op.status),
                    crate::output::duration(op.duration).into(),
                    op.uuid.clone().unwrap_or_default().into(),
                ]);
            }
            if !table.rows.is_empty() {
                ctx.printer.out("")?;
                ctx.printer
                    .out(&table.render(crate::output::term_width(), ctx.printer.color_out()))?;
            }
            return Ok(Some(status));
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            got = rx.recv() => if got.is_some() { return Ok(None) },
        }
    }
}
