//! `polyaxon project update`.

use anyhow::Result;
use clap::Args;
use polyaxon_server::api::V1Project;

use super::ProjectArg;
use crate::commands::{OutputArgs, split_tags};
use crate::context::{Ctx, project_not_found};
use crate::error::UserError;
use crate::output;
use crate::settings::{self, ProjectCache};

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub project: ProjectArg,

    /// A new name.
    #[arg(short, long)]
    pub name: Option<String>,

    /// A new description.
    #[arg(long)]
    pub description: Option<String>,

    /// New tags, comma-separated (replacing the old ones).
    #[arg(long, value_name = "TAGS")]
    pub tags: Option<String>,

    /// `true` to make it private, `false` to make it public.
    #[arg(long, value_name = "BOOL", value_parser = parse_bool_arg)]
    pub private: Option<bool>,

    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn parse_bool_arg(s: &str) -> Result<bool, String> {
    settings::parse_bool(s).ok_or_else(|| format!("`{s}` is not true or false"))
}

pub fn run(ctx: &Ctx, args: UpdateArgs) -> Result<()> {
    if args.name.is_none()
        && args.description.is_none()
        && args.tags.is_none()
        && args.private.is_none()
    {
        return Err(UserError::new("nothing to change")
            .hint("pass `--name`, `--description`, `--tags` or `--private`")
            .into());
    }
    ctx.block_on(async {
        let client = ctx.client().await?;
        let p = ctx
            .project(&client, args.project.project.as_deref())
            .await?;
        let patched = client
            .patch_project(
                &p.owner,
                &p.name,
                &V1Project {
                    name: args.name.clone(),
                    description: args.description.clone(),
                    tags: args.tags.as_deref().map(split_tags),
                    is_public: args.private.map(|private| !private),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| project_not_found(e, &p))?;
        // Renaming the context's project keeps the context pointing at it.
        if let Some(new) = &args.name
            && let Ok(Some(c)) = ctx.settings.project_cache()
            && c.owner == p.owner
            && c.name == p.name
        {
            settings::write_json(
                &ctx.settings.project_path(),
                &ProjectCache {
                    name: new.clone(),
                    ..c
                },
            )?;
        }
        let json = super::to_json(&patched);
        if !args.output.write_file(&ctx.printer, &json)? {
            if args.output.format() == crate::printer::Format::Table {
                ctx.printer.success(&format!("project `{p}` updated"));
            }
            output::detail(
                &ctx.printer,
                args.output.format(),
                &json,
                &super::detail_pairs(&patched),
            )?;
        }
        Ok(())
    })
}
