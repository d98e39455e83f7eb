//! `polyaxon server`: run the API server for a team.

pub mod start;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Serve the API (PostgreSQL with `--database-url`, else SQLite under `POLYAXON_HOME`).
    Start(start::StartArgs),
}

pub fn run(cmd: ServerCommand, printer: &crate::printer::Printer) -> anyhow::Result<()> {
    match cmd {
        ServerCommand::Start(args) => start::run(args, printer),
    }
}
