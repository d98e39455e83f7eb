//! `polyaxon ops execute`: a created run driven here, in the foreground, by its controller
//! (what `polyaxon run` starts in the background, with the run on stdin).

use anyhow::{Context, Result};
use clap::Args;
use polyaxon_server::api::ExecutorKind;

use crate::client::RunRef;
use crate::context::Ctx;
use crate::controller::{self, Outcome};
use crate::error::Reported;

/// `polyaxon ops execute`: runs a created run here, in the foreground.
#[derive(Debug, Args)]
pub struct ExecuteArgs {
    /// Where the job runs: `process` (this machine), `docker` or `kubernetes` (`k8s`).
    #[arg(
        long = "executor",
        visible_alias = "exc",
        value_name = "EXECUTOR",
        default_value = "process",
        value_parser = parse_executor
    )]
    pub executor: ExecutorKind,
    /// Wait for the run on standard input (`OWNER/PROJECT UUID`), the store opened
    /// meanwhile; end-of-file exits quietly (what `polyaxon run` uses).
    #[arg(long, hide = true)]
    pub run_from_stdin: bool,
}

fn parse_executor(s: &str) -> Result<ExecutorKind, String> {
    ExecutorKind::parse(s)
        .ok_or_else(|| format!("`{s}` is not an executor: use process, docker or kubernetes (k8s)"))
}

pub fn execute(ctx: &Ctx, target: &crate::commands::ops::Target, args: ExecuteArgs) -> Result<()> {
    // Controllers nest (a DAG's operation may be a search or a DAG, each polled within its
    // parent's task): the workers get room for deep futures.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(32 << 20)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let r = if args.run_from_stdin {
            // The store opens while `polyaxon run` creates the run (no orphans are looked
            // for: a run being started is not one, and start-up time counts).
            let client = crate::client::Client::connect(&ctx.settings).await?;
            crate::timing::mark("execute: store open");
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the run to execute")?;
            let Some(r) = controller::launch::read_handed(&line)? else {
                return Ok(()); // no run: `polyaxon run` did not get as far as creating one
            };
            return drive(ctx, client, &r, args.executor).await;
        } else {
            match (
                target.project.as_deref().and_then(|p| p.split_once('/')),
                target.uid.as_deref(),
            ) {
                // `OWNER/PROJECT` and a uuid need no lookup.
                (Some((owner, project)), Some(uid)) if !owner.is_empty() && !project.is_empty() => {
                    RunRef {
                        owner: owner.to_string(),
                        project: project.to_string(),
                        uuid: uid.replace('-', ""),
                    }
                }
                _ => {
                    let client = ctx.client().await?;
                    ctx.run(&client, target.project.as_deref(), target.uid.as_deref())
                        .await?
                }
            }
        };
        let client = crate::client::Client::connect(&ctx.settings).await?;
        crate::timing::mark("execute: store open");
        drive(ctx, client, &r, args.executor).await
    })
}

async fn drive(
    ctx: &Ctx,
    client: crate::client::Client,
    r: &RunRef,
    executor: ExecutorKind,
) -> Result<()> {
    // Embedded: this process delivers the notifications and hooks of the runs it ends (and
    // any left pending by a process that died), and waits for them before it exits.
    let outbox = client
        .embedded_app()
        .map(|app| crate::outbox::Delivery::start(app, "supervisor", &ctx.settings));
    let outcome = controller::execute(&ctx.settings, ctx.printer, client, r, executor).await;
    if let Some(o) = outbox {
        o.finish(&ctx.printer).await;
    }
    match outcome? {
        Outcome::Succeeded => Ok(()),
        Outcome::Failed(why) | Outcome::Stopped(why) => {
            ctx.printer.err(&format!("run `{}` ended: {why}", r.uuid));
            Err(Reported(1).into())
        }
    }
}
