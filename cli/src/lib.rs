//! The `polyaxon` command line: parses arguments, resolves settings and runs commands.
//!
//! `main.rs` only calls [`main`]; everything here is testable in-process.

pub mod agent;
pub mod build;
pub mod cli;
pub mod client;
pub mod commands;
pub mod connections;
pub mod context;
pub mod controller;
pub mod credentials;
pub mod deploy;
pub mod env;
pub mod error;
pub mod executor;
pub mod hub;
pub mod outbox;
pub mod output;
pub mod plot;
pub mod printer;
pub mod registry;
pub mod scheduler;
pub mod settings;
pub mod sidecar;
pub mod snapshot;
pub mod timing;
pub mod upload;
pub mod urlref;

use clap::Parser;

use crate::error::{Reported, UserError, is_broken_pipe};
use crate::printer::Printer;

/// Runs the CLI and returns its exit code.
pub fn main() -> i32 {
    timing::init();
    let args = match cli::Cli::try_parse_from(cli::normalize_args(std::env::args_os())) {
        Ok(a) => a,
        Err(e) => {
            let code = e.exit_code();
            let _ = e.print();
            return code;
        }
    };
    // One TLS provider for the whole process (reqwest and kube would otherwise disagree).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let printer = Printer::from_env();
    match commands::run(args, &printer) {
        Ok(()) => 0,
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            let code = error::exit_code(&e);
            if e.downcast_ref::<Reported>().is_some() {
                return code;
            }
            if let Some(u) = e.downcast_ref::<UserError>() {
                printer.error(&u.message, u.hint.as_deref());
                return code;
            }
            if let Some(c) = e.downcast_ref::<client::ClientError>() {
                printer.error(&c.to_string(), c.hint().as_deref());
                return code;
            }
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            let hint = (code == 101).then_some(
                "this is a bug in polyaxon: please report it, with the command that failed",
            );
            printer.error(&chain.join(": "), hint);
            code
        }
    }
}
