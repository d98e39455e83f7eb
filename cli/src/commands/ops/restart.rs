//! `polyaxon ops restart [--copy]`.

use anyhow::Result;
use clap::Args;
use polyaxon_server::api::V1Run;

use super::Target;
use crate::commands::{OutputArgs, split_tags};
use crate::context::{Ctx, run_not_found};
use crate::output;

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Start from a copy of the run's files (outputs, checkpoints) instead of none.
    #[arg(short, long)]
    pub copy: bool,

    /// A name for the new run.
    #[arg(long)]
    pub name: Option<String>,

    /// Tags for the new run, comma-separated.
    #[arg(long, value_name = "TAGS")]
    pub tags: Option<String>,

    /// A description for the new run.
    #[arg(long)]
    pub description: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// The executor a run was started on by `polyaxon run` on this machine, if any.
pub fn local_executor(run: &V1Run) -> Option<polyaxon_server::api::ExecutorKind> {
    run.meta().executor_kind
}

/// The overrides given for a new run.
pub fn overrides(
    name: &Option<String>,
    tags: &Option<String>,
    description: &Option<String>,
) -> V1Run {
    V1Run {
        name: name.clone(),
        tags: tags.as_deref().map(split_tags),
        description: description.clone(),
        ..Default::default()
    }
}

pub fn run(ctx: &Ctx, target: &Target, args: RestartArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let (r, original) = target.resolve(ctx, &client).await?;
        let new = client
            .restart_run(
                &r,
                args.copy,
                &overrides(&args.name, &args.tags, &args.description),
            )
            .await
            .map_err(|e| run_not_found(e, &r))?;
        let uuid = new.uuid.clone().unwrap_or_default();
        let new_ref = crate::client::RunRef {
            uuid: uuid.clone(),
            ..r.clone()
        };
        ctx.remember_run(&new_ref, new.name.as_deref());
        // A run that was executed here runs again here, with the same code and params.
        if let Some(kind) = local_executor(&original) {
            crate::controller::launch::spawn(&ctx.settings, &new_ref, kind)?;
        }
        let json = super::to_json(&new);
        if !args.output.write_file(&ctx.printer, &json)? {
            if args.output.format() == crate::printer::Format::Table {
                ctx.printer.success(&format!(
                    "run `{}` {} as `{uuid}`",
                    r.uuid,
                    if args.copy { "copied" } else { "restarted" }
                ));
            }
            output::detail(
                &ctx.printer,
                args.output.format(),
                &json,
                &super::get::detail_pairs(&new),
            )?;
        }
        Ok(())
    })
}
