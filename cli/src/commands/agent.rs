//! `polyaxon agent`: start an agent, list the agents, show the queues they serve; and
//! `polyaxon queue`: list, create or change, delete queues.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use polyaxon_server::api::{V1Agent, V1Queue};
use serde_json::Value as J;

use crate::agent;
use crate::commands::OutputArgs;
use crate::context::Ctx;
use crate::error::UserError;
use crate::output::{self, Col, Table};

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Claim queued runs and run them here, until SIGTERM or Ctrl-C (then drain).
    Start(StartArgs),
    /// List the agents: name, version, executor, queues, load, state, last seen.
    Ls(ListArgs),
    /// Show each queue: waiting and running runs, concurrency, the agents serving it.
    Status(ListArgs),
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The queues to serve, comma-separated (upstream's `agent/queue` names work).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "default",
        value_name = "QUEUES"
    )]
    pub queue: Vec<String>,

    /// Where runs run: `process`, `docker` or `kubernetes` (default: as `polyaxon run`).
    #[arg(long, visible_alias = "exc", value_name = "EXECUTOR", value_parser = ["process", "docker", "kubernetes", "k8s"])]
    pub executor: Option<String>,

    /// Runs at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub max_concurrency: usize,

    /// The agent's name (default: HOST-PID); one agent of a name runs at a time.
    #[arg(long)]
    pub name: Option<String>,

    /// On SIGTERM, stop the running runs and queue them again for another agent instead of
    /// letting them finish.
    #[arg(long)]
    pub handoff: bool,

    /// How long a claim lasts without a heartbeat, in seconds: an agent killed outright loses
    /// its runs to the others after this long.
    #[arg(long, default_value_t = 20.0, value_name = "SECONDS")]
    pub lease: f64,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List the queues with what waits and runs in them.
    Ls(ListArgs),
    /// Create a queue, or change one.
    Create(QueueArgs),
    /// Delete a queue that holds no run.
    Delete(QueueName),
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The queue's name.
    pub name: String,
    /// At most this many of its runs at once (default: no limit).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<i64>,
    /// Agents serving several queues claim from higher ones first.
    #[arg(
        long,
        default_value_t = 0,
        allow_hyphen_values = true,
        value_name = "N"
    )]
    pub priority: i64,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct QueueName {
    /// The queue's name.
    pub name: String,
}

pub fn run(ctx: &Ctx, cmd: AgentCommand) -> Result<()> {
    match cmd {
        AgentCommand::Start(a) => start(ctx, a),
        AgentCommand::Ls(a) => ctx.block_on(async {
            let client = ctx.client().await?;
            let list = client.list_agents().await?;
            print_list(ctx, &a.output, &list.results, agents_table(&list.results))?;
            if list.results.is_empty() && a.output.format() == crate::printer::Format::Table {
                ctx.printer
                    .note("no agents; start one with `polyaxon agent start`");
            }
            Ok(())
        }),
        AgentCommand::Status(a) => queue_ls(ctx, a),
    }
}

pub fn run_queue(ctx: &Ctx, cmd: QueueCommand) -> Result<()> {
    match cmd {
        QueueCommand::Ls(a) => queue_ls(ctx, a),
        QueueCommand::Create(a) => ctx.block_on(async {
            let client = ctx.client().await?;
            let q = client
                .put_queue(&V1Queue {
                    name: a.name.clone(),
                    concurrency: a.concurrency,
                    priority: Some(a.priority),
                    ..Default::default()
                })
                .await?;
            let item = serde_json::to_value(&q).unwrap_or(J::Null);
            if args_write(ctx, &a.output, std::slice::from_ref(&item))? {
                return Ok(());
            }
            if a.output.format() == crate::printer::Format::Table {
                ctx.printer.success(&format!(
                    "queue `{}`: {}, priority {}",
                    q.name,
                    q.concurrency
                        .map_or("no concurrency limit".to_string(), |c| format!(
                            "at most {c} at once"
                        )),
                    q.priority.unwrap_or(0)
                ));
                Ok(())
            } else {
                output::detail(&ctx.printer, a.output.format(), &item, &[])?;
                Ok(())
            }
        }),
        QueueCommand::Delete(a) => ctx.block_on(async {
            let client = ctx.client().await?;
            client.delete_queue(&a.name).await?;
            ctx.printer.success(&format!("queue `{}` deleted", a.name));
            Ok(())
        }),
    }
}

fn args_write(ctx: &Ctx, out: &OutputArgs, items: &[J]) -> Result<bool> {
    out.write_file(&ctx.printer, &J::Array(items.to_vec()))
}

fn queue_ls(ctx: &Ctx, a: ListArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let list = client.list_queues().await?;
        print_list(ctx, &a.output, &list.results, queues_table(&list.results))
    })
}

/// A listing: to the `path=` file, or printed as asked.
fn print_list<T: serde::Serialize>(
    ctx: &Ctx,
    out: &OutputArgs,
    items: &[T],
    table: Table,
) -> Result<()> {
    let items: Vec<J> = items
        .iter()
        .map(|i| serde_json::to_value(i).unwrap_or(J::Null))
        .collect();
    if args_write(ctx, out, &items)? {
        return Ok(());
    }
    output::listing(&ctx.printer, out.format(), &items, &table)?;
    Ok(())
}

fn agents_table(agents: &[V1Agent]) -> Table {
    let mut t = Table::new(vec![
        Col::fixed("name"),
        Col::new("state"),
        Col::new("version"),
        Col::new("executor"),
        Col::new("queues"),
        Col::new("running"),
        Col::new("host"),
        Col::new("last seen"),
    ]);
    for a in agents {
        t.push(vec![
            a.name.clone().into(),
            a.state.clone().unwrap_or_default().into(),
            a.version.clone().into(),
            a.executor.clone().into(),
            a.queues.join(", ").into(),
            format!("{}/{}", a.running.unwrap_or(0), a.capacity).into(),
            a.host.clone().unwrap_or_default().into(),
            output::ago(a.last_seen.as_deref()).into(),
        ]);
    }
    t
}

fn queues_table(queues: &[V1Queue]) -> Table {
    let mut t = Table::new(vec![
        Col::fixed("queue"),
        Col::new("priority"),
        Col::new("concurrency"),
        Col::new("queued"),
        Col::new("running"),
        Col::new("agents"),
    ]);
    for q in queues {
        t.push(vec![
            q.name.clone().into(),
            q.priority.unwrap_or(0).to_string().into(),
            q.concurrency
                .map_or("-".to_string(), |c| c.to_string())
                .into(),
            q.queued.unwrap_or(0).to_string().into(),
            q.running.unwrap_or(0).to_string().into(),
            q.agents.clone().unwrap_or_default().join(", ").into(),
        ]);
    }
    t
}

fn start(ctx: &Ctx, a: StartArgs) -> Result<()> {
    if a.max_concurrency == 0 {
        return Err(UserError::new("`--max-concurrency` is at least 1").into());
    }
    if !(2.0..=3600.0).contains(&a.lease) {
        return Err(UserError::new(format!(
            "`--lease {}`: a claim lasts from 2 to 3600 seconds",
            a.lease
        ))
        .into());
    }
    let queues: Vec<String> = a
        .queue
        .iter()
        .map(|q| q.trim())
        .filter(|q| !q.is_empty())
        .map(polyaxon_server::api::queue_name)
        .collect();
    if queues.is_empty() {
        return Err(UserError::new("`--queue` names no queue").into());
    }
    let executor = ctx.settings.executor(a.executor.as_deref())?;
    let opts = agent::Options {
        name: a.name.clone().unwrap_or_else(agent::Options::default_name),
        queues,
        executor,
        capacity: a.max_concurrency,
        handoff: a.handoff,
        lease: Duration::from_secs_f64(a.lease),
        poll: Duration::from_secs(5),
    };
    // Many runs at once: a runtime with a thread per core, with the deep stacks controllers
    // need (as the supervisor's).
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()?
        .block_on(async {
            let client = std::sync::Arc::new(ctx.client().await?);
            agent::serve(ctx.settings.clone(), ctx.printer, client, opts).await
        })
}
