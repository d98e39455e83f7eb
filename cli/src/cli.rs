//! The command tree (clap). Raw arguments only: commands resolve them into settings.

use clap::{Parser, Subcommand};

use crate::commands::check::CheckArgs;
use crate::commands::server::ServerCommand;

/// Run, track and compare machine-learning experiments, on a laptop or a Kubernetes cluster.
#[derive(Debug, Parser)]
#[command(
    name = "polyaxon",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Print more detail about what happens.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check polyaxonfiles: syntax, schema, params and templates.
    Check(CheckArgs),
    /// Run the API server.
    #[command(subcommand)]
    Server(ServerCommand),
}
