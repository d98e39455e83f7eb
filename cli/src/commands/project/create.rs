//! `polyaxon project create`.

use anyhow::Result;
use clap::Args;
use polyaxon_server::api::V1Project;

use crate::commands::{OutputArgs, split_tags};
use crate::context::Ctx;
use crate::output;
use crate::settings::{self, ProjectCache};

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The project's name, `NAME` or `OWNER/NAME`.
    #[arg(short, long, value_name = "NAME")]
    pub name: String,

    /// What the project is about.
    #[arg(long)]
    pub description: Option<String>,

    /// Tags, comma-separated.
    #[arg(long, value_name = "TAGS")]
    pub tags: Option<String>,

    /// Let everyone on the server see it.
    #[arg(long)]
    pub public: bool,

    /// Also make it this directory's current project (as `polyaxon init`).
    #[arg(long)]
    pub init: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(ctx: &Ctx, args: CreateArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let p = ctx.parse_project(&client, &args.name).await?;
        let created = client
            .create_project(
                &p.owner,
                &V1Project {
                    name: Some(p.name.clone()),
                    description: args.description.clone(),
                    tags: args.tags.as_deref().map(split_tags),
                    is_public: Some(args.public),
                    ..Default::default()
                },
            )
            .await?;
        let json = super::to_json(&created);
        if !args.output.write_file(&ctx.printer, &json)? {
            if args.output.format() == crate::printer::Format::Table {
                ctx.printer.success(&format!("project `{p}` created"));
            }
            output::detail(
                &ctx.printer,
                args.output.format(),
                &json,
                &super::detail_pairs(&created),
            )?;
        }
        if args.init {
            let dir = std::path::Path::new(".polyaxon");
            super::super::init::write_context(
                dir,
                &ProjectCache {
                    owner: p.owner.clone(),
                    name: p.name.clone(),
                    uuid: created.uuid.clone(),
                },
            )?;
            ctx.printer.success(&format!(
                "`{p}` is this directory's project (in `{}`)",
                dir.join(".project").display()
            ));
            let _ = settings::remove_file(&dir.join(".run"));
        }
        Ok(())
    })
}
