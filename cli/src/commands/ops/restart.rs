//! `polyaxon ops restart [--copy]`.

use anyhow::Result;
use clap::Args;
use polyaxon_server::api::{DagRestart, RunMeta, V1Run};

use super::Target;
use crate::commands::{OutputArgs, split_tags};
use crate::context::{Ctx, run_not_found};
use crate::error::UserError;
use crate::output;

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Start from a copy of the run's files (outputs, checkpoints) instead of none.
    #[arg(short, long)]
    pub copy: bool,

    /// With an operation of a DAG: run its DAG again from this operation — it and everything
    /// that depends on it run again, the other operations' results are reused.
    #[arg(long, conflicts_with = "copy")]
    pub downstream: bool,

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

/// Where a run started again goes: here (on the executor it ran on) when it was run from this
/// CLI and no agent serves its queue; else to its queue, for the agents.
pub async fn runs_here(
    client: &crate::client::Client,
    run: &V1Run,
) -> Result<Option<polyaxon_server::api::ExecutorKind>> {
    let Some(kind) = local_executor(run) else {
        return Ok(None);
    };
    match run.queue.as_deref().filter(|_| run.pipeline.is_none()) {
        Some(q)
            if !crate::commands::run::serving_agents(client, q)
                .await?
                .is_empty() =>
        {
            Ok(None)
        }
        _ => Ok(Some(kind)),
    }
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
        let mut body = overrides(&args.name, &args.tags, &args.description);
        // `--downstream`: the DAG restarts, told where from.
        let (r, original) = if args.downstream {
            let meta = original.meta();
            let (Some(dag), Some(op)) = (
                meta.parent().filter(|_| meta.pipeline_kind.as_deref() == Some("dag")),
                meta.op.clone(),
            ) else {
                return Err(UserError::new(format!(
                    "run `{}` is not an operation of a DAG: `--downstream` restarts a DAG from one of its operations",
                    r.uuid
                ))
                .hint("without `--downstream`, `polyaxon ops restart` runs this run again alone")
                .into());
            };
            let dag = r.sibling(&dag.replace('-', ""));
            body.meta_info = Some(
                RunMeta {
                    restart_from: Some(DagRestart {
                        run: dag.uuid.clone(),
                        op,
                    }),
                    ..Default::default()
                }
                .to_map(),
            );
            let dag_run = client.get_run(&dag).await.map_err(|e| run_not_found(e, &dag))?;
            (dag, dag_run)
        } else {
            (r, original)
        };
        let here = runs_here(&client, &original).await?;
        if here.is_some() {
            body.agent = Some(crate::controller::local_holder());
        }
        let new = client
            .restart_run(&r, args.copy, &body)
            .await
            .map_err(|e| run_not_found(e, &r))?;
        let uuid = new.uuid.clone().unwrap_or_default();
        let new_ref = crate::client::RunRef {
            uuid: uuid.clone(),
            ..r.clone()
        };
        ctx.remember_run(&new_ref, new.name.as_deref());
        // A run that was executed here runs again here, with the same code and params.
        if let Some(kind) = here {
            crate::controller::launch::spawn(&ctx.settings, &new_ref, kind)?;
        }
        let json = super::to_json(&new);
        if !args.output.write_file(&ctx.printer, &json)? {
            if args.output.format() == crate::printer::Format::Table {
                ctx.printer.success(&format!(
                    "run `{}` {} as `{uuid}`",
                    r.uuid,
                    if args.copy {
                        "copied"
                    } else if args.downstream {
                        "restarted from that operation"
                    } else {
                        "restarted"
                    }
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
