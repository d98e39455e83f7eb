//! `polyaxon connections`: the catalogue of named connections — notifiers (`slack`,
//! `webhook`, `discord`, `mattermost`, `pagerduty`, `teams`) and what operations name in
//! `connections:` (git, registry, bucket, volume, host path). Their secrets are never stored:
//! a connection names where the process that sends reads it (`env:NAME`, `file:/path`).

use anyhow::Result;
use clap::{Args, Subcommand};
use polyaxon_server::api::V1Connection;
use serde_json::{Map, Value as J};

use crate::commands::OutputArgs;
use crate::context::Ctx;
use crate::error::UserError;
use crate::output::{self, Cell, Col, Table};

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// List the connections: name, kind, where they point, whether they have a secret.
    Ls(ConnectionsListArgs),
    /// Show a connection.
    Get(ConnectionGetArgs),
    /// Create a connection (superusers).
    Create(Box<ConnectionCreateArgs>),
    /// Delete connections by name (superusers).
    Delete(ConnectionDeleteArgs),
}

#[derive(Debug, Args)]
pub struct ConnectionsListArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ConnectionGetArgs {
    /// The connection's name.
    pub name: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ConnectionCreateArgs {
    /// Its name, as hooks, notifications and operations name it.
    #[arg(long)]
    pub name: String,
    /// `slack`, `webhook`, `discord`, `mattermost`, `pagerduty`, `teams`, `git`, `registry`,
    /// `bucket`, `s3`, `gcs`, `wasb`, `volume_claim`, `host_path` or `custom`.
    #[arg(long)]
    pub kind: String,
    /// Where a notifier sends (a webhook's URL; Slack's and the others' URLs are credentials:
    /// give them with `--secret` instead).
    #[arg(long)]
    pub url: Option<String>,
    /// More of its non-secret part, `KEY=VALUE` (repeatable; JSON values are read as JSON):
    /// `method=GET`, `channel=#ml`, `timeout=5`, `bucket=s3://data`…
    #[arg(long = "schema", short = 's', value_name = "KEY=VALUE")]
    pub schema: Vec<String>,
    /// Where its secret is read by the process that sends: `env:NAME` or `file:/path`. A
    /// webhook's is its signing key; PagerDuty's its service key; the others' their URL; a
    /// JSON object may give `url`, `signing_key` and `service_key`.
    #[arg(long, value_name = "env:NAME|file:PATH")]
    pub secret: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Comma-separated tags.
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ConnectionDeleteArgs {
    /// The connections' names.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

fn summary(c: &V1Connection) -> String {
    let s = |k: &str| c.schema.get(k).and_then(J::as_str).map(str::to_string);
    s("url")
        .map(|u| match reqwest::Url::parse(&u) {
            Ok(p) => polyaxon_server::notify::redact(&p),
            Err(_) => u,
        })
        .or_else(|| s("bucket"))
        .or_else(|| s("claimName").or_else(|| s("claim_name")))
        .or_else(|| s("hostPath").or_else(|| s("host_path")))
        .or_else(|| s("url"))
        .unwrap_or_default()
}

fn pairs(c: &V1Connection) -> Vec<(String, Cell)> {
    let mut p: Vec<(String, Cell)> = vec![
        ("name".into(), c.name.clone().into()),
        ("kind".into(), c.kind.clone().into()),
    ];
    if let Some(d) = &c.description {
        p.push(("description".into(), d.clone().into()));
    }
    if !c.tags.is_empty() {
        p.push(("tags".into(), c.tags.join(", ").into()));
    }
    for (k, v) in &c.schema {
        let text = match v {
            J::String(s) => s.clone(),
            other => other.to_string(),
        };
        p.push((k.clone(), text.into()));
    }
    let secret = match (&c.secret, c.has_secret) {
        (Some(s), _) => s.clone(),
        (None, Some(true)) => "set (where: superusers only)".into(),
        _ => "none".into(),
    };
    p.push(("secret".into(), secret.into()));
    p
}

/// `KEY=VALUE` pairs as a schema object (values that read as JSON are JSON).
fn schema(url: Option<&str>, items: &[String]) -> Result<Map<String, J>> {
    let mut m = Map::new();
    if let Some(u) = url {
        m.insert("url".into(), J::from(u));
    }
    for it in items {
        let (k, v) = it.split_once('=').ok_or_else(|| {
            UserError::new(format!("`{it}` is not KEY=VALUE")).hint("e.g. `--schema channel=#ml`")
        })?;
        let v = serde_json::from_str::<J>(v).unwrap_or_else(|_| J::from(v));
        m.insert(k.trim().to_string(), v);
    }
    Ok(m)
}

pub fn run(ctx: &Ctx, cmd: ConnectionsCommand) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        match cmd {
            ConnectionsCommand::Ls(a) => {
                let list = client.list_connections().await?;
                let items: Vec<J> = list
                    .results
                    .iter()
                    .map(|c| serde_json::to_value(c).unwrap_or(J::Null))
                    .collect();
                if a.output.write_file(&ctx.printer, &J::Array(items.clone()))? {
                    return Ok(());
                }
                let mut table = Table::new(vec![
                    Col::fixed("name"),
                    Col::fixed("kind"),
                    Col::new("points at"),
                    Col::fixed("secret"),
                    Col::new("description"),
                ]);
                for c in &list.results {
                    table.push(vec![
                        c.name.clone().into(),
                        c.kind.clone().into(),
                        summary(c).into(),
                        if c.has_secret == Some(true) { "yes" } else { "no" }.into(),
                        c.description.clone().unwrap_or_default().into(),
                    ]);
                }
                output::listing(&ctx.printer, a.output.format(), &items, &table)?;
                if list.results.is_empty() && a.output.format() == crate::printer::Format::Table
                {
                    ctx.printer.note(
                        "no connections; create one with `polyaxon connections create --name NAME --kind webhook --url URL`",
                    );
                }
                Ok(())
            }
            ConnectionsCommand::Get(a) => {
                let c = client.get_connection(&a.name).await.map_err(|e| {
                    if e.status() == Some(http::StatusCode::NOT_FOUND) {
                        UserError::new(format!("no connection is named `{}`", a.name))
                            .hint("`polyaxon connections ls` lists them")
                            .into()
                    } else {
                        anyhow::Error::from(e)
                    }
                })?;
                let item = serde_json::to_value(&c)?;
                if a.output.write_file(&ctx.printer, &item)? {
                    return Ok(());
                }
                output::detail(&ctx.printer, a.output.format(), &item, &pairs(&c))
            }
            ConnectionsCommand::Create(a) => {
                let c = V1Connection {
                    name: a.name.clone(),
                    kind: a.kind.clone(),
                    description: a.description.clone(),
                    tags: a.tags.clone(),
                    schema: schema(a.url.as_deref(), &a.schema)?,
                    secret: a.secret.clone(),
                    ..Default::default()
                };
                let created = client.create_connection(&c).await?;
                let item = serde_json::to_value(&created)?;
                if a.output.write_file(&ctx.printer, &item)? {
                    return Ok(());
                }
                if a.output.format() != crate::printer::Format::Table {
                    return output::detail(&ctx.printer, a.output.format(), &item, &[]);
                }
                ctx.printer
                    .success(&format!("connection `{}` created", created.name));
                if a.kind == "webhook" && a.secret.is_none() {
                    ctx.printer.warn(
                        "this webhook has no signing key: its receiver cannot tell a delivery from a forgery (give one with `--secret env:NAME`)",
                    );
                }
                Ok(())
            }
            ConnectionsCommand::Delete(a) => {
                let mut failed = Vec::new();
                for n in &a.names {
                    match client.delete_connection(n).await {
                        Ok(()) => ctx.printer.success(&format!("connection `{n}` deleted")),
                        Err(e) => failed.push(format!("{n}: {e:#}")),
                    }
                }
                if failed.is_empty() {
                    Ok(())
                } else {
                    Err(UserError::new(format!("not deleted:\n  {}", failed.join("\n  ")))
                        .hint("`polyaxon connections ls` lists them")
                        .into())
                }
            }
        }
    })
}
