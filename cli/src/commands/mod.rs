//! One module per command (a folder per group); `run` dispatches.

pub mod admin;
pub mod agent;
pub mod check;
pub mod completion;
pub mod config;
pub mod connections;
pub mod dashboard;
pub mod hub;
pub mod init;
pub mod login;
pub mod ops;
pub mod port_forward;
pub mod project;
pub mod run;
pub mod server;
pub mod sidecar;
pub mod token;
pub mod version;
pub mod whoami;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::context::Ctx;
use crate::error::{Reported, UserError};
use crate::printer::{Format, Printer};

pub fn run(cli: Cli, printer: &Printer) -> Result<()> {
    match cli.command {
        Command::Check(args) => check::run(args, printer),
        Command::Hub(cmd) => hub::run(cmd, printer),
        Command::Server(cmd) => server::run(cmd, printer),
        Command::Completion(args) => completion::run(args, printer),
        Command::GenerateDocs(args) => completion::generate(args, printer),
        other => {
            let ctx = Ctx::new(*printer)?;
            match other {
                Command::Run(args) => run::run(&ctx, *args),
                Command::Project(cmd) => project::run(&ctx, cmd),
                Command::Ops(args) => ops::run(&ctx, args),
                Command::Logs(args) => ops::logs::run(&ctx, &args.target, args.logs),
                Command::Config(cmd) => config::run(&ctx, cmd),
                Command::Login(args) => login::run(&ctx, args),
                Command::Logout => login::logout(&ctx),
                Command::Whoami(args) => whoami::run(&ctx, args),
                Command::Version(args) => version::run(&ctx, args),
                Command::Init(args) => init::run(&ctx, args),
                Command::Dashboard(args) => dashboard::run(&ctx, args),
                Command::Admin(cmd) => admin::run(&ctx, cmd),
                Command::PortForward(args) => port_forward::run(&ctx, args),
                Command::Agent(cmd) => agent::run(&ctx, cmd),
                Command::Queue(cmd) => agent::run_queue(&ctx, cmd),
                Command::Token(cmd) => token::run(&ctx, cmd),
                Command::Connections(cmd) => connections::run(&ctx, cmd),
                Command::Sidecar(args) => sidecar::run(&ctx, args),
                Command::Check(_)
                | Command::Hub(_)
                | Command::Server(_)
                | Command::Completion(_)
                | Command::GenerateDocs(_) => unreachable!("dispatched above"),
            }
        }
    }
}

/// `-o table|json|yaml|csv`, or upstream's `-o path=FILE` (JSON written to a file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub format: Format,
    pub path: Option<std::path::PathBuf>,
}

impl Default for Output {
    fn default() -> Self {
        Output {
            format: Format::Table,
            path: None,
        }
    }
}

pub fn parse_output(s: &str) -> Result<Output, String> {
    if let Some(p) = s.strip_prefix("path=") {
        if p.trim().is_empty() {
            return Err("`path=` needs a file name".into());
        }
        return Ok(Output {
            format: Format::Json,
            path: Some(p.into()),
        });
    }
    let format = match s.to_ascii_lowercase().as_str() {
        "table" => Format::Table,
        "json" => Format::Json,
        "yaml" | "yml" => Format::Yaml,
        "csv" => Format::Csv,
        _ => {
            return Err(format!(
                "`{s}` is not an output: use table, json, yaml, csv or path=FILE"
            ));
        }
    };
    Ok(Output { format, path: None })
}

/// The `-o` argument every listing and get takes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct OutputArgs {
    /// Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file.
    #[arg(short, long, value_name = "FORMAT", default_value = "table", value_parser = parse_output)]
    pub output: Output,
}

impl OutputArgs {
    pub fn format(&self) -> Format {
        self.output.format
    }

    /// Writes `value` as JSON to the `path=` file, if one was asked for; true when done.
    pub fn write_file(&self, printer: &Printer, value: &serde_json::Value) -> Result<bool> {
        let Some(p) = &self.output.path else {
            return Ok(false);
        };
        let text = serde_json::to_string_pretty(value)? + "\n";
        std::fs::write(p, text)
            .map_err(|e| UserError::new(format!("cannot write `{}`: {e}", p.display())))?;
        printer.success(&format!("written to `{}`", p.display()));
        Ok(true)
    }
}

/// Asks before doing something that cannot be undone. `--yes` skips; without a terminal and
/// without `--yes`, refuses.
pub fn confirm(printer: &Printer, question: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !printer.interactive {
        return Err(UserError::new(format!("{question} — not confirmed"))
            .hint("there is no terminal to ask at: pass `--yes` (`-y`) to go ahead")
            .into());
    }
    let ok = dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| UserError::new(format!("cannot ask for confirmation: {e}")))?;
    if ok {
        Ok(())
    } else {
        printer.err("cancelled: nothing was changed");
        Err(Reported(1).into())
    }
}

/// Splits `a, b,c` into tags.
pub fn split_tags(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse() {
        assert_eq!(parse_output("json").unwrap().format, Format::Json);
        let o = parse_output("path=./x.json").unwrap();
        assert_eq!(o.path.unwrap(), std::path::PathBuf::from("./x.json"));
        assert!(parse_output("xml").unwrap_err().contains("table, json"));
        assert_eq!(split_tags(" a, b,,c "), ["a", "b", "c"]);
    }
}
