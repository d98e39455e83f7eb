//! `polyaxon ops stop`.

use anyhow::Result;
use clap::Args;

use super::Target;
use crate::commands::confirm;
use crate::context::{Ctx, run_not_found};

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
}

pub fn run(ctx: &Ctx, target: &Target, args: StopArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let (r, run) = target.resolve(ctx, &client).await?;
        let status = run.status.unwrap_or_default();
        if status.is_done() {
            ctx.printer
                .note(&format!("run `{}` has already ended ({status})", r.uuid));
            return Ok(());
        }
        confirm(&ctx.printer, &format!("stop run `{}`?", r.uuid), args.yes)?;
        client
            .stop_run(&r)
            .await
            .map_err(|e| run_not_found(e, &r))?;
        let after = client.get_run(&r).await.map_err(|e| run_not_found(e, &r))?;
        let now = after.status.unwrap_or_default();
        if now == polyaxon_server::api::RunStatus::Stopping {
            ctx.printer.success(&format!(
                "run `{}` is stopping; `polyaxon ops statuses --watch` follows it",
                r.uuid
            ));
        } else {
            ctx.printer.success(&format!("run `{}` {now}", r.uuid));
        }
        Ok(())
    })
}
