//! `polyaxon project dashboard`.

use anyhow::Result;
use clap::Args;

use super::ProjectArg;
use crate::commands::dashboard::{OpenArgs, open};
use crate::context::Ctx;

#[derive(Debug, Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub project: ProjectArg,

    #[command(flatten)]
    pub open: OpenArgs,
}

pub fn run(ctx: &Ctx, args: DashboardArgs) -> Result<()> {
    let p = ctx.block_on(async {
        let client = ctx.client().await?;
        ctx.project(&client, args.project.project.as_deref()).await
    })?;
    open(ctx, &format!("/ui/{}/{}", p.owner, p.name), &args.open)
}
