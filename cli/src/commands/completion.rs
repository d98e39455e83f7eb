//! `polyaxon completion SHELL`, and the generator of the committed completions and man pages.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::printer::Printer;

#[derive(Debug, Args)]
#[command(after_help = "Install:
  bash        polyaxon completion bash > ~/.local/share/bash-completion/completions/polyaxon
  zsh         polyaxon completion zsh > \"${fpath[1]}/_polyaxon\"   (then restart zsh)
  fish        polyaxon completion fish > ~/.config/fish/completions/polyaxon.fish
  powershell  polyaxon completion powershell >> $PROFILE
  elvish      polyaxon completion elvish >> ~/.config/elvish/rc.elv")]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: CompletionArgs, printer: &Printer) -> Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "polyaxon", &mut out);
    printer.out(&String::from_utf8_lossy(&out))?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The repository's root: writes `completions/` and `man/` in it.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
}

pub fn generate(args: GenerateArgs, printer: &Printer) -> Result<()> {
    let files = generated_files()?;
    for (rel, bytes) in &files {
        let path = args.out.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing `{}`", path.display()))?;
    }
    printer.success(&format!(
        "wrote {} files under `{}`",
        files.len(),
        args.out.display()
    ));
    Ok(())
}

/// Every generated file, by path relative to the repository root: a completion script per
/// shell and a man page per command.
pub fn generated_files() -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    for shell in Shell::value_variants() {
        let name = match shell {
            Shell::Bash => "polyaxon.bash",
            Shell::Zsh => "_polyaxon",
            Shell::Fish => "polyaxon.fish",
            Shell::PowerShell => "_polyaxon.ps1",
            Shell::Elvish => "polyaxon.elv",
            _ => continue,
        };
        let mut buf = Vec::new();
        clap_complete::generate(*shell, &mut Cli::command(), "polyaxon", &mut buf);
        out.push((Path::new("completions").join(name), buf));
    }
    let mut cmd = Cli::command();
    cmd.build();
    man_pages(&cmd, "polyaxon", &mut out)?;
    Ok(out)
}

fn man_pages(cmd: &clap::Command, name: &str, out: &mut Vec<(PathBuf, Vec<u8>)>) -> Result<()> {
    if cmd.is_hide_set() {
        return Ok(());
    }
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone().name(name.to_string()))
        .render(&mut buf)
        .context("rendering a man page")?;
    out.push((Path::new("man").join(format!("{name}.1")), buf));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        man_pages(sub, &format!("{name}-{}", sub.get_name()), out)?;
    }
    Ok(())
}
