//! `polyaxon ops`: runs (operations).

pub mod approve;
pub mod artifacts;
pub mod code;
pub mod dashboard;
pub mod delete;
pub mod get;
pub mod logs;
pub mod ls;
pub mod metrics;
pub mod notifications;
pub mod restart;
pub mod resume;
pub mod service;
pub mod skip;
pub mod statuses;
pub mod stop;
pub mod update;

use anyhow::Result;
use clap::{Args, Subcommand};
use polyaxon_server::api::{RunStatus, V1Run};
use serde_json::Value as J;

use crate::client::{Client, RunRef};
use crate::context::Ctx;
use crate::output::{self, Cell};

#[derive(Debug, Args)]
pub struct OpsArgs {
    #[command(flatten)]
    pub target: Target,

    #[command(subcommand)]
    pub command: OpsCommand,
}

/// Which run: `-p` and `--uid`, accepted before or after the subcommand.
#[derive(Clone, Debug, Default, Args)]
pub struct Target {
    /// The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`).
    #[arg(short, long, global = true, value_name = "PROJECT")]
    pub project: Option<String>,

    /// The run's uuid (default: the last run used); also `--uuid`, `-uid`, `-id`.
    #[arg(
        long = "uid",
        visible_alias = "uuid",
        global = true,
        value_name = "UUID"
    )]
    pub uid: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// List a project's runs.
    Ls(ls::LsArgs),
    /// Show a run.
    Get(get::GetArgs),
    /// Show a run's status history, or follow it with `--watch`.
    Statuses(statuses::StatusesArgs),
    /// Show a run's notifications and hooks: each delivery's state, tries and last error.
    Notifications(notifications::NotificationsArgs),
    /// Show a run's logs, following it while it runs.
    Logs(logs::LogsArgs),
    /// Show a run's metrics: last values, or the series (`--plot` draws them).
    Metrics(metrics::MetricsArgs),
    /// Download a run's files.
    Artifacts(artifacts::ArtifactsArgs),
    /// Show where a run's code came from, or write it out (`--checkout DIR`).
    Code(code::CodeArgs),
    /// Stop a run.
    Stop(stop::StopArgs),
    /// Skip a run that has not started (an operation of a DAG).
    Skip(skip::SkipArgs),
    /// Delete a run and its files.
    Delete(delete::DeleteArgs),
    /// Run a run again as a new run (`--copy` starts from a copy of its files).
    Restart(restart::RestartArgs),
    /// Continue a finished run in place, with its files.
    Resume(resume::ResumeArgs),
    /// Change a run's name, description or tags.
    Update(update::UpdateArgs),
    /// Approve a run waiting for approval.
    Approve,
    /// Open a run in the web dashboard.
    Dashboard(dashboard::DashboardArgs),
    /// Reach a running service: its address here, or its ports forwarded from the cluster.
    Service(service::ServiceArgs),
    /// Execute a created run on this machine, in the foreground (what `polyaxon run` starts
    /// in the background).
    Execute(crate::commands::run::ExecuteArgs),
}

pub fn run(ctx: &Ctx, args: OpsArgs) -> Result<()> {
    let t = args.target;
    match args.command {
        OpsCommand::Ls(a) => ls::run(ctx, &t, a),
        OpsCommand::Get(a) => get::run(ctx, &t, a),
        OpsCommand::Statuses(a) => statuses::run(ctx, &t, a),
        OpsCommand::Notifications(a) => notifications::run(ctx, &t, a),
        OpsCommand::Logs(a) => logs::run(ctx, &t, a),
        OpsCommand::Metrics(a) => metrics::run(ctx, &t, a),
        OpsCommand::Artifacts(a) => artifacts::run(ctx, &t, a),
        OpsCommand::Code(a) => code::run(ctx, &t, a),
        OpsCommand::Stop(a) => stop::run(ctx, &t, a),
        OpsCommand::Skip(a) => skip::run(ctx, &t, a),
        OpsCommand::Delete(a) => delete::run(ctx, &t, a),
        OpsCommand::Restart(a) => restart::run(ctx, &t, a),
        OpsCommand::Resume(a) => resume::run(ctx, &t, a),
        OpsCommand::Update(a) => update::run(ctx, &t, a),
        OpsCommand::Approve => approve::run(ctx, &t),
        OpsCommand::Dashboard(a) => dashboard::run(ctx, &t, a),
        OpsCommand::Service(a) => service::run(ctx, &t, a),
        OpsCommand::Execute(a) => crate::commands::run::execute(ctx, &t, a),
    }
}

impl Target {
    /// The run these flags name, checked to exist; remembered as the last run used.
    pub async fn resolve(&self, ctx: &Ctx, client: &Client) -> Result<(RunRef, V1Run)> {
        let r = ctx
            .run(client, self.project.as_deref(), self.uid.as_deref())
            .await?;
        let run = client
            .get_run(&r)
            .await
            .map_err(|e| crate::context::run_not_found(e, &r))?;
        ctx.remember_run(&r, run.name.as_deref());
        Ok((r, run))
    }
}

pub fn to_json(r: &V1Run) -> J {
    serde_json::to_value(r).unwrap_or(J::Null)
}

pub fn status_cell(status: Option<RunStatus>) -> Cell {
    match status {
        Some(s) => Cell::painted(s.as_str(), output::status_color(s)),
        None => Cell::default(),
    }
}
