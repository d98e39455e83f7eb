//! `polyaxon ops statuses [--watch]`.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use polyaxon_server::api::V1StatusCondition;
use serde_json::Value as J;

use super::Target;
use crate::commands::OutputArgs;
use crate::context::{Ctx, run_not_found};
use crate::output::{self, Cell, Col, Table};
use crate::printer::Format;

#[derive(Debug, Args)]
pub struct StatusesArgs {
    /// Keep printing new statuses until the run ends.
    #[arg(short, long)]
    pub watch: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

fn row(c: &V1StatusCondition) -> Vec<Cell> {
    vec![
        super::status_cell(Some(c.kind)),
        c.reason.clone().unwrap_or_default().into(),
        c.message.clone().unwrap_or_default().into(),
        output::when(c.last_transition_time.as_deref()).into(),
    ]
}

fn table(conds: &[V1StatusCondition]) -> Table {
    let mut t = Table::new(vec![
        Col::new("status"),
        Col::new("reason"),
        Col::new("message"),
        Col::new("since"),
    ]);
    for c in conds {
        t.push(row(c));
    }
    t
}

pub fn run(ctx: &Ctx, target: &Target, args: StatusesArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let (r, _) = target.resolve(ctx, &client).await?;
        let st = client
            .statuses(&r)
            .await
            .map_err(|e| run_not_found(e, &r))?;
        let items: Vec<J> = st
            .status_conditions
            .iter()
            .map(|c| serde_json::to_value(c).unwrap_or(J::Null))
            .collect();
        if !args.watch || args.output.format() != Format::Table {
            if !args
                .output
                .write_file(&ctx.printer, &J::Array(items.clone()))?
            {
                output::listing(
                    &ctx.printer,
                    args.output.format(),
                    &items,
                    &table(&st.status_conditions),
                )?;
            }
            if args.watch {
                ctx.printer
                    .warn("`--watch` shows tables only; printed the statuses so far");
            }
            return Ok(());
        }
        // Watch: one line per new status, until the run is done.
        let mut seen = st.status_conditions.len();
        let mut status = st.status;
        for c in &st.status_conditions {
            print_line(ctx, c)?;
        }
        while !status.is_done() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let st = client
                .statuses(&r)
                .await
                .map_err(|e| run_not_found(e, &r))?;
            for c in st.status_conditions.iter().skip(seen) {
                print_line(ctx, c)?;
            }
            seen = st.status_conditions.len();
            status = st.status;
        }
        Ok(())
    })
}

fn print_line(ctx: &Ctx, c: &V1StatusCondition) -> Result<()> {
    let time = c
        .last_transition_time
        .as_deref()
        .and_then(output::parse_time)
        .map(|t| t.strftime("%H:%M:%S").to_string())
        .unwrap_or_default();
    let status = output::status_text(c.kind, 10, ctx.printer.color_out());
    let why = [c.reason.as_deref(), c.message.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    ctx.printer
        .out(format!("{time}  {status}  {why}").trim_end())?;
    Ok(())
}
