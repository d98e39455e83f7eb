//! `polyaxon project delete`.

use anyhow::Result;
use clap::Args;

use super::ProjectArg;
use crate::commands::confirm;
use crate::context::{Ctx, project_not_found};
use crate::settings;

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub project: ProjectArg,

    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
}

pub fn run(ctx: &Ctx, args: DeleteArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let p = ctx
            .project(&client, args.project.project.as_deref())
            .await?;
        // Fails early (with a hint) when there is no such project, before asking.
        client
            .get_project(&p.owner, &p.name)
            .await
            .map_err(|e| project_not_found(e, &p))?;
        confirm(
            &ctx.printer,
            &format!("delete project `{p}` with all its runs and their files?"),
            args.yes,
        )?;
        client
            .delete_project(&p.owner, &p.name)
            .await
            .map_err(|e| project_not_found(e, &p))?;
        if let Ok(Some(c)) = ctx.settings.project_cache()
            && c.owner == p.owner
            && c.name == p.name
        {
            settings::remove_file(&ctx.settings.project_path())?;
            settings::remove_file(&ctx.settings.run_path())?;
        }
        ctx.printer.success(&format!("project `{p}` deleted"));
        Ok(())
    })
}
