//! `polyaxon hub`: the components `hubRef` and `polyaxon run --hub` find: the project's
//! (`.polyaxon/hub/`), the user's (`$POLYAXON_HOME/hub/`) and the built-in library.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::commands::OutputArgs;
use crate::error::UserError;
use crate::output::{self, Col, Table};
use crate::printer::Printer;
use crate::settings;

#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// List the components: name, tag, where each comes from, what it is.
    Ls(HubListArgs),
    /// Print a component's polyaxonfile (`NAME` or `NAME:TAG`).
    Get(HubGetArgs),
}

#[derive(Debug, Args)]
pub struct HubListArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct HubGetArgs {
    /// `NAME` (its `latest` tag) or `NAME:TAG`, as `hubRef` takes.
    #[arg(value_name = "NAME[:TAG]")]
    pub name: String,
}

pub fn run(cmd: HubCommand, printer: &Printer) -> Result<()> {
    let home = settings::home_dir();
    let dirs = crate::hub::dirs(&home);
    match cmd {
        HubCommand::Ls(a) => {
            let entries = crate::hub::entries(&dirs);
            let items: Vec<serde_json::Value> = entries
                .iter()
                .map(|e| {
                    json!({
                        "name": e.name,
                        "tag": e.tag,
                        "source": e.source,
                        "description": crate::hub::description(&e.path),
                        "path": e.path.display().to_string(),
                    })
                })
                .collect();
            if a.output
                .write_file(printer, &serde_json::Value::Array(items.clone()))?
            {
                return Ok(());
            }
            let mut table = Table::new(vec![
                Col::fixed("name"),
                Col::fixed("tag"),
                Col::fixed("source"),
                Col::new("description"),
            ]);
            for (e, item) in entries.iter().zip(&items) {
                table.push(vec![
                    e.name.clone().into(),
                    e.tag.clone().into(),
                    e.source.into(),
                    item["description"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                        .into(),
                ]);
            }
            output::listing(printer, a.output.format(), &items, &table)?;
            Ok(())
        }
        HubCommand::Get(a) => {
            let only: Vec<_> = dirs.iter().map(|(d, _)| d.clone()).collect();
            let Some(path) = polyaxonfile::load::find_hub(&only, &a.name) else {
                let names: Vec<String> = crate::hub::entries(&dirs)
                    .iter()
                    .map(|e| format!("{}:{}", e.name, e.tag))
                    .collect();
                return Err(UserError::new(format!("no hub component `{}`", a.name))
                    .hint(format!(
                        "`polyaxon hub ls` lists them: {}",
                        names.join(", ")
                    ))
                    .into());
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| UserError::new(format!("cannot read `{}`: {e}", path.display())))?;
            printer.out(&text)?;
            Ok(())
        }
    }
}
