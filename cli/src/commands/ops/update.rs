//! `polyaxon ops update`.

use anyhow::Result;
use clap::Args;

use super::Target;
use crate::commands::OutputArgs;
use crate::context::{Ctx, run_not_found};
use crate::error::UserError;
use crate::output;

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// A new name.
    #[arg(short, long)]
    pub name: Option<String>,

    /// A new description.
    #[arg(long)]
    pub description: Option<String>,

    /// Tags to add, comma-separated.
    #[arg(long, value_name = "TAGS")]
    pub tags: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(ctx: &Ctx, target: &Target, args: UpdateArgs) -> Result<()> {
    if args.name.is_none() && args.description.is_none() && args.tags.is_none() {
        return Err(UserError::new("nothing to change")
            .hint("pass `--name`, `--description` or `--tags`")
            .into());
    }
    ctx.block_on(async {
        let client = ctx.client().await?;
        let (r, _) = target.resolve(ctx, &client).await?;
        let mut patch = super::restart::overrides(&args.name, &args.tags, &args.description);
        // Tags are added to the run's, as upstream does.
        patch.merge = Some(true);
        let run = client
            .patch_run(&r, &patch)
            .await
            .map_err(|e| run_not_found(e, &r))?;
        let json = super::to_json(&run);
        if !args.output.write_file(&ctx.printer, &json)? {
            if args.output.format() == crate::printer::Format::Table {
                ctx.printer.success(&format!("run `{}` updated", r.uuid));
            }
            output::detail(
                &ctx.printer,
                args.output.format(),
                &json,
                &super::get::detail_pairs(&run),
            )?;
        }
        Ok(())
    })
}
