//! One module per command; `run` dispatches.

pub mod check;
pub mod server;

use crate::cli::{Cli, Command};
use crate::printer::Printer;

pub fn run(cli: Cli, printer: &Printer) -> anyhow::Result<()> {
    match cli.command {
        Command::Check(args) => check::run(args, printer),
        Command::Server(cmd) => server::run(cmd, printer),
    }
}
