//! `polyaxon ops approve`.

use anyhow::Result;

use super::Target;
use crate::context::{Ctx, run_not_found};

pub fn run(ctx: &Ctx, target: &Target) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let (r, run) = target.resolve(ctx, &client).await?;
        if run.is_approved != Some(false) {
            ctx.printer
                .note(&format!("run `{}` needs no approval", r.uuid));
            return Ok(());
        }
        client
            .approve_run(&r)
            .await
            .map_err(|e| run_not_found(e, &r))?;
        // No agent serves its queue: it runs here, as `polyaxon run` would have run it.
        if let Some(q) = run.queue.as_deref().filter(|_| run.pipeline.is_none())
            && crate::commands::run::serving_agents(&client, q).await?.is_empty()
        {
            let kind = ctx.settings.executor(None)?;
            client
                .claim_run(&r, &crate::controller::local_holder())
                .await?;
            crate::controller::launch::spawn(&ctx.settings, &r, kind)?;
            ctx.printer.success(&format!(
                "run `{}` approved: no agent serves queue `{q}`, so it runs here on the {kind} executor",
                r.uuid
            ));
            return Ok(());
        }
        ctx.printer.success(&format!("run `{}` approved and queued", r.uuid));
        Ok(())
    })
}
