//! `polyaxon project get`.

use anyhow::Result;
use clap::Args;

use super::ProjectArg;
use crate::commands::OutputArgs;
use crate::context::{Ctx, project_not_found};
use crate::output;

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub project: ProjectArg,

    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(ctx: &Ctx, args: GetArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let p = ctx
            .project(&client, args.project.project.as_deref())
            .await?;
        let got = client
            .get_project(&p.owner, &p.name)
            .await
            .map_err(|e| project_not_found(e, &p))?;
        let json = super::to_json(&got);
        if !args.output.write_file(&ctx.printer, &json)? {
            output::detail(
                &ctx.printer,
                args.output.format(),
                &json,
                &super::detail_pairs(&got),
            )?;
        }
        Ok(())
    })
}
