//! `polyaxon project`: projects.

pub mod create;
pub mod dashboard;
pub mod delete;
pub mod get;
pub mod ls;
pub mod update;

use anyhow::Result;
use clap::Subcommand;
use polyaxon_server::api::V1Project;
use serde_json::Value as J;

use crate::context::Ctx;
use crate::output::{self, Cell, Col, Table};

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project.
    Create(create::CreateArgs),
    /// List projects.
    Ls(ls::LsArgs),
    /// Show a project.
    Get(get::GetArgs),
    /// Change a project's name, description, tags or visibility.
    Update(update::UpdateArgs),
    /// Delete a project with its runs and their files.
    Delete(delete::DeleteArgs),
    /// Open a project in the web dashboard.
    Dashboard(dashboard::DashboardArgs),
}

pub fn run(ctx: &Ctx, cmd: ProjectCommand) -> Result<()> {
    match cmd {
        ProjectCommand::Create(a) => create::run(ctx, a),
        ProjectCommand::Ls(a) => ls::run(ctx, a),
        ProjectCommand::Get(a) => get::run(ctx, a),
        ProjectCommand::Update(a) => update::run(ctx, a),
        ProjectCommand::Delete(a) => delete::run(ctx, a),
        ProjectCommand::Dashboard(a) => dashboard::run(ctx, a),
    }
}

/// The `-p` every project command takes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ProjectArg {
    /// The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`).
    #[arg(short, long, value_name = "PROJECT")]
    pub project: Option<String>,
}

/// A project as `key  value` lines.
pub fn detail_pairs(p: &V1Project) -> Vec<(String, Cell)> {
    let mut v: Vec<(String, Cell)> = vec![
        (
            "name".into(),
            format!(
                "{}/{}",
                p.owner.as_deref().unwrap_or("?"),
                p.name.as_deref().unwrap_or("?")
            )
            .into(),
        ),
        ("uuid".into(), p.uuid.clone().unwrap_or_default().into()),
    ];
    if let Some(d) = p.description.as_deref().filter(|d| !d.is_empty()) {
        v.push(("description".into(), d.into()));
    }
    if let Some(t) = p.tags.as_ref().filter(|t| !t.is_empty()) {
        v.push(("tags".into(), t.join(", ").into()));
    }
    v.push((
        "visibility".into(),
        if p.is_public == Some(true) {
            "public"
        } else {
            "private"
        }
        .into(),
    ));
    if let Some(u) = &p.user {
        v.push(("created by".into(), u.as_str().into()));
    }
    v.push((
        "created".into(),
        output::when(p.created_at.as_deref()).into(),
    ));
    v.push((
        "updated".into(),
        output::when(p.updated_at.as_deref()).into(),
    ));
    v
}

/// Projects as a table.
pub fn table(items: &[V1Project]) -> Table {
    let mut t = Table::new(vec![
        Col::new("name"),
        Col::new("description"),
        Col::new("tags"),
        Col::new("visibility"),
        Col::new("created"),
        Col::new("updated"),
    ]);
    for p in items {
        t.push(vec![
            format!(
                "{}/{}",
                p.owner.as_deref().unwrap_or("?"),
                p.name.as_deref().unwrap_or("?")
            )
            .into(),
            p.description.clone().unwrap_or_default().into(),
            p.tags.clone().unwrap_or_default().join(", ").into(),
            if p.is_public == Some(true) {
                "public"
            } else {
                "private"
            }
            .into(),
            output::ago(p.created_at.as_deref()).into(),
            output::ago(p.updated_at.as_deref()).into(),
        ]);
    }
    t
}

pub fn to_json(p: &V1Project) -> J {
    serde_json::to_value(p).unwrap_or(J::Null)
}
