//! `polyaxon ops notifications`: a run's deliveries (notifications and hooks), each with its
//! state, tries and last error.

use anyhow::Result;
use clap::Args;
use polyaxon_server::api::V1Delivery;
use serde_json::Value as J;

use super::Target;
use crate::commands::OutputArgs;
use crate::context::{Ctx, run_not_found};
use crate::output::{self, Cell, Col, Table};
use crate::printer::Format;

#[derive(Debug, Args)]
pub struct NotificationsArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

fn state_cell(d: &V1Delivery) -> Cell {
    let color = match d.state.as_str() {
        "delivered" => "32",
        "failed" => "31",
        "pending" => "33",
        _ => "2",
    };
    Cell {
        text: d.state.clone(),
        color: Some(color),
    }
}

pub fn run(ctx: &Ctx, target: &Target, args: NotificationsArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let (r, _) = target.resolve(ctx, &client).await?;
        let list = client
            .deliveries(&r)
            .await
            .map_err(|e| run_not_found(e, &r))?;
        let items: Vec<J> = list
            .results
            .iter()
            .map(|d| serde_json::to_value(d).unwrap_or(J::Null))
            .collect();
        if args
            .output
            .write_file(&ctx.printer, &J::Array(items.clone()))?
        {
            return Ok(());
        }
        let mut table = Table::new(vec![
            Col::fixed("id"),
            Col::fixed("source"),
            Col::fixed("trigger"),
            Col::fixed("connection"),
            Col::fixed("state"),
            Col::fixed("tries"),
            Col::fixed("when"),
            Col::new("last error"),
        ]);
        for d in &list.results {
            let when = match d.state.as_str() {
                "pending" => d
                    .next_at
                    .as_deref()
                    .map(|t| format!("next {}", output::when(Some(t)))),
                _ => d
                    .delivered_at
                    .as_deref()
                    .map(|t| output::ago(Some(t)))
                    .or_else(|| Some(output::ago(Some(&d.created_at)))),
            };
            table.push(vec![
                d.id.chars().take(8).collect::<String>().into(),
                d.source.clone().into(),
                format!("{} ({})", d.trigger, d.status).into(),
                d.connection
                    .clone()
                    .or_else(|| d.hook_run.clone())
                    .unwrap_or_default()
                    .into(),
                state_cell(d),
                d.tries.to_string().into(),
                when.unwrap_or_default().into(),
                d.last_error.clone().unwrap_or_default().into(),
            ]);
        }
        output::listing(&ctx.printer, args.output.format(), &items, &table)?;
        if list.results.is_empty() && args.output.format() == Format::Table {
            ctx.printer.note(&format!(
                "run `{}` has no notifications or hooks (yet: they are written when it ends)",
                r.uuid
            ));
        }
        Ok(())
    })
}
