//! `polyaxon ops code`: where a run's code came from, and the code itself written out.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use super::Target;
use crate::commands::OutputArgs;
use crate::context::Ctx;
use crate::error::UserError;
use crate::output::{self, Cell};
use crate::snapshot;

#[derive(Debug, Args)]
pub struct CodeArgs {
    /// The run's uuid (default: the last run used).
    #[arg(value_name = "UUID")]
    pub run: Option<String>,

    /// Write the run's code into this directory (new or empty).
    #[arg(long, value_name = "DIR")]
    pub checkout: Option<PathBuf>,

    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(ctx: &Ctx, target: &Target, args: CodeArgs) -> Result<()> {
    let target = Target {
        project: target.project.clone(),
        uid: args.run.clone().or_else(|| target.uid.clone()),
    };
    let (r, run) = ctx.block_on(async {
        let client = ctx.client().await?;
        target.resolve(ctx, &client).await
    })?;
    let Some(code) = run.meta().code_ref else {
        return Err(
            UserError::new(format!("run `{}` has no code snapshot", r.uuid))
                .hint("runs started outside a git repository ran in their directory as it was")
                .into(),
        );
    };
    if let Some(dir) = &args.checkout {
        if dir.exists()
            && std::fs::read_dir(dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
        {
            return Err(UserError::new(format!("`{}` is not empty", dir.display()))
                .hint("give a new or empty directory")
                .into());
        }
        // The snapshot lives in the repository it was taken from; else in the one here.
        let repo = &code.repo;
        let from = if Path::new(repo).join(".git").exists() {
            PathBuf::from(repo)
        } else {
            std::env::current_dir()?
        };
        let n = snapshot::checkout(&from, &code.snapshot, dir).map_err(|e| {
            UserError::new(format!("{e:#}")).hint(format!(
                "the snapshot is in the repository at `{repo}`; run this there, or in a clone that fetched `{}{}`",
                snapshot::REF_PREFIX,
                r.uuid
            ))
        })?;
        ctx.printer.success(&format!(
            "wrote the {n} files of run `{}` into `{}`",
            r.uuid,
            dir.display()
        ));
        return Ok(());
    }
    let json = serde_json::to_value(&code)?;
    if args.output.write_file(&ctx.printer, &json)? {
        return Ok(());
    }
    let mut pairs: Vec<(String, Cell)> = Vec::new();
    for (label, v) in [
        ("commit", code.commit.as_deref().unwrap_or("")),
        ("branch", code.branch.as_deref().unwrap_or("")),
        ("remote", code.url.as_deref().unwrap_or("")),
        ("repository", code.repo.as_str()),
        ("directory", code.path.as_str()),
        ("snapshot", code.snapshot.as_str()),
        ("tree", code.tree.as_str()),
    ] {
        if !v.is_empty() {
            pairs.push((label.into(), v.into()));
        }
    }
    pairs.push((
        "uncommitted".into(),
        if code.is_dirty {
            "yes (in the snapshot)"
        } else {
            "no"
        }
        .into(),
    ));
    pairs.push((
        "restore".into(),
        format!("polyaxon ops code {} --checkout DIR", r.uuid).into(),
    ));
    output::detail(&ctx.printer, args.output.format(), &json, &pairs)
}
