//! `polyaxon ops skip`: a run that has not started is skipped (a DAG's operation: what depends
//! on it decides as for a skipped upstream).

use anyhow::Result;
use clap::Args;

use super::Target;
use crate::commands::confirm;
use crate::context::{Ctx, run_not_found};
use crate::error::UserError;

#[derive(Debug, Args)]
pub struct SkipArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
}

pub fn run(ctx: &Ctx, target: &Target, args: SkipArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let (r, run) = target.resolve(ctx, &client).await?;
        let status = run.status.unwrap_or_default();
        if !status.is_not_started() {
            return Err(UserError::new(format!(
                "run `{}` is {status}: only a run that has not started can be skipped",
                r.uuid
            ))
            .hint("`polyaxon ops stop` stops a run that goes")
            .into());
        }
        confirm(&ctx.printer, &format!("skip run `{}`?", r.uuid), args.yes)?;
        client
            .skip_run(&r)
            .await
            .map_err(|e| run_not_found(e, &r))?;
        ctx.printer.success(&format!("run `{}` skipped", r.uuid));
        Ok(())
    })
}
