//! `polyaxon ops resume`.

use anyhow::Result;
use clap::Args;

use super::Target;
use crate::commands::OutputArgs;
use crate::context::{Ctx, run_not_found};
use crate::output;

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// A new name for the run.
    #[arg(long)]
    pub name: Option<String>,

    /// New tags, comma-separated.
    #[arg(long, value_name = "TAGS")]
    pub tags: Option<String>,

    /// A new description.
    #[arg(long)]
    pub description: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(ctx: &Ctx, target: &Target, args: ResumeArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let (r, original) = target.resolve(ctx, &client).await?;
        let here = super::restart::runs_here(&client, &original).await?;
        let mut body = super::restart::overrides(&args.name, &args.tags, &args.description);
        if here.is_some() {
            body.agent = Some(crate::controller::local_holder());
        }
        let run = client
            .resume_run(&r, &body)
            .await
            .map_err(|e| run_not_found(e, &r))?;
        if let Some(kind) = here {
            crate::controller::launch::spawn(&ctx.settings, &r, kind)?;
        }
        let json = super::to_json(&run);
        if !args.output.write_file(&ctx.printer, &json)? {
            if args.output.format() == crate::printer::Format::Table {
                ctx.printer
                    .success(&format!("run `{}` is resuming", r.uuid));
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
