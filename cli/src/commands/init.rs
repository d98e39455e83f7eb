//! `polyaxon init`: the current project of a directory, kept in `./.polyaxon/`.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use polyaxon_server::api::V1Project;

use crate::commands::confirm;
use crate::context::Ctx;
use crate::error::UserError;
use crate::settings::{self, ProjectCache};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project, `NAME` or `OWNER/NAME`.
    #[arg(short, long, value_name = "PROJECT")]
    pub project: String,

    /// Also write a starter `polyaxonfile.yml` (never over an existing one).
    #[arg(long)]
    pub polyaxonfile: bool,

    /// Also write a `.polyaxonignore` (files left out of code snapshots).
    #[arg(long)]
    pub polyaxonignore: bool,

    /// Answer yes to questions (create a missing project, replace another one set here).
    #[arg(short, long)]
    pub yes: bool,
}

/// Writes `.polyaxon/.project` (and a `.gitignore` keeping the CLI's state out of git).
pub fn write_context(dir: &Path, p: &ProjectCache) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    settings::write_json(&dir.join(".project"), p)?;
    let gi = dir.join(".gitignore");
    if !gi.exists() {
        std::fs::write(
            &gi,
            "# The polyaxon CLI's state for this directory.\n.project\n.run\n.*.tmp*\n",
        )
        .with_context(|| format!("writing `{}`", gi.display()))?;
    }
    Ok(())
}

const POLYAXONFILE: &str = "\
version: 1.1
kind: component
name: train
inputs:
  - {name: lr, type: float, value: 0.01, isOptional: true}
run:
  kind: job
  container:
    image: python:3.11-slim
    command: [python3, -u, train.py]
    args: [\"--lr={{ lr }}\"]
";

const POLYAXONIGNORE: &str = "\
# Files left out of code snapshots (gitignore syntax).
.polyaxon/
__pycache__/
*.pyc
.venv/
venv/
data/
*.ckpt
";

pub fn run(ctx: &Ctx, args: InitArgs) -> Result<()> {
    let dir = Path::new(".polyaxon");
    let (p, project) = ctx.block_on(async {
        let client = ctx.client().await?;
        let p = ctx.parse_project(&client, &args.project).await?;
        let project = match client.get_project(&p.owner, &p.name).await {
            Ok(project) => project,
            Err(e) if e.is_not_found() => {
                if !args.yes && !ctx.printer.interactive {
                    return Err(UserError::new(format!("project `{p}` does not exist"))
                        .hint(format!("create it with `polyaxon project create -n {p}`, or pass `--yes` to create it now"))
                        .into());
                }
                confirm(&ctx.printer, &format!("project `{p}` does not exist: create it?"), args.yes)?;
                let created = client
                    .create_project(
                        &p.owner,
                        &V1Project {
                            name: Some(p.name.clone()),
                            ..Default::default()
                        },
                    )
                    .await?;
                ctx.printer.success(&format!("project `{p}` created"));
                created
            }
            Err(e) => return Err(e.into()),
        };
        Ok((p, project))
    })?;
    if let Ok(Some(old)) = settings::read_json::<ProjectCache>(&dir.join(".project"))
        && (old.owner != p.owner || old.name != p.name)
    {
        confirm(
            &ctx.printer,
            &format!(
                "this directory's project is `{}/{}`: replace it with `{p}`?",
                old.owner, old.name
            ),
            args.yes,
        )?;
        settings::remove_file(&dir.join(".run"))?;
    }
    write_context(
        dir,
        &ProjectCache {
            owner: p.owner.clone(),
            name: p.name.clone(),
            uuid: project.uuid,
        },
    )?;
    ctx.printer.success(&format!(
        "`{p}` is this directory's project (in `{}`)",
        dir.join(".project").display()
    ));
    for (flag, name, text) in [
        (args.polyaxonfile, "polyaxonfile.yml", POLYAXONFILE),
        (args.polyaxonignore, ".polyaxonignore", POLYAXONIGNORE),
    ] {
        if !flag {
            continue;
        }
        let path = Path::new(name);
        if path.exists() {
            ctx.printer.note(&format!("`{name}` exists: left as it is"));
        } else {
            std::fs::write(path, text).with_context(|| format!("writing `{name}`"))?;
            ctx.printer.success(&format!("wrote `{name}`"));
        }
    }
    Ok(())
}
