//! `polyaxon ops delete`.

use anyhow::Result;
use clap::Args;

use super::Target;
use crate::commands::confirm;
use crate::context::{Ctx, run_not_found};
use crate::settings;

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
}

pub fn run(ctx: &Ctx, target: &Target, args: DeleteArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let (r, run) = target.resolve(ctx, &client).await?;
        let status = run.status.unwrap_or_default();
        let running = if status.is_done() || status == polyaxon_server::api::RunStatus::Created {
            String::new()
        } else {
            format!(" (it is {status}: it will be stopped)")
        };
        confirm(
            &ctx.printer,
            &format!("delete run `{}` and its files{running}?", r.uuid),
            args.yes,
        )?;
        client
            .delete_run(&r)
            .await
            .map_err(|e| run_not_found(e, &r))?;
        if ctx.settings.run_cache()?.is_some_and(|c| c.uuid == r.uuid) {
            settings::remove_file(&ctx.settings.run_path())?;
        }
        ctx.printer.success(&format!("run `{}` deleted", r.uuid));
        Ok(())
    })
}
