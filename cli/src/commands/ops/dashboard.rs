//! `polyaxon ops dashboard`.

use anyhow::Result;
use clap::Args;

use super::Target;
use crate::commands::dashboard::{OpenArgs, open};
use crate::context::Ctx;

#[derive(Debug, Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub open: OpenArgs,
}

pub fn run(ctx: &Ctx, target: &Target, args: DashboardArgs) -> Result<()> {
    let r = ctx.block_on(async {
        let client = ctx.client().await?;
        Ok(target.resolve(ctx, &client).await?.0)
    })?;
    open(
        ctx,
        &format!("/ui/{}/{}/runs/{}", r.owner, r.project, r.uuid),
        &args.open,
    )
}
