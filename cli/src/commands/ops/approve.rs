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
        ctx.printer.success(&format!("run `{}` approved", r.uuid));
        Ok(())
    })
}
