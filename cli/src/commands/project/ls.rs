//! `polyaxon project ls`.

use anyhow::Result;
use clap::Args;

use crate::client::ListQuery;
use crate::commands::OutputArgs;
use crate::context::Ctx;
use crate::output;
use crate::printer::Format;

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Whose projects (default: yours).
    #[arg(long)]
    pub owner: Option<String>,

    /// Only projects matching this query, e.g. `tags: vision, name: %mnist%`.
    #[arg(short, long)]
    pub query: Option<String>,

    /// Order, e.g. `-created_at` or `name`.
    #[arg(short, long)]
    pub sort: Option<String>,

    /// At most this many.
    #[arg(short, long, default_value_t = 20)]
    pub limit: i64,

    /// Skip this many.
    #[arg(long, default_value_t = 0)]
    pub offset: i64,

    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(ctx: &Ctx, args: LsArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let owner = match args.owner {
            Some(o) => o,
            None => ctx.default_owner(&client).await?,
        };
        let page = client
            .list_projects(
                &owner,
                &ListQuery {
                    query: args.query.clone(),
                    sort: args.sort.clone(),
                    limit: Some(args.limit),
                    offset: Some(args.offset),
                },
            )
            .await?;
        let items: Vec<serde_json::Value> = page.results.iter().map(super::to_json).collect();
        if args
            .output
            .write_file(&ctx.printer, &serde_json::Value::Array(items.clone()))?
        {
            return Ok(());
        }
        output::listing(
            &ctx.printer,
            args.output.format(),
            &items,
            &super::table(&page.results),
        )?;
        if args.output.format() == Format::Table {
            let shown = page.results.len() as i64;
            if page.count == 0 {
                ctx.printer.note(&format!(
                    "no projects{}; create one with `polyaxon project create -n NAME`",
                    if args.query.is_some() { " match" } else { "" }
                ));
            } else if shown < page.count {
                ctx.printer.note(&format!(
                    "{}–{} of {} projects; more with `--offset {}`",
                    args.offset + 1,
                    args.offset + shown,
                    page.count,
                    args.offset + shown
                ));
            }
        }
        Ok(())
    })
}
