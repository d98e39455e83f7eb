//! The command tree (clap). Raw arguments only: commands resolve them into settings.
//!
//! Names and flags follow upstream Polyaxon 2.x so habits and scripts carry over, including
//! its multi-letter short flags (`-uid`, `-nf`, `-off`), which [`normalize_args`] rewrites to
//! their long forms before parsing.

use clap::{Parser, Subcommand};

use crate::commands;

/// Run, track and compare machine-learning experiments, on a laptop or a Kubernetes cluster.
///
/// With nothing configured everything is kept on this machine (in `~/.polyaxon`); point it
/// at a team's server with `polyaxon config set --host URL` and `polyaxon login`.
#[derive(Debug, Parser)]
#[command(
    name = "polyaxon",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Docs: `polyaxon COMMAND --help`; shell completion: `polyaxon completion --help`."
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
    /// Run a polyaxonfile: check it, snapshot the code, start the job.
    Run(Box<commands::run::RunArgs>),
    /// Check polyaxonfiles: syntax, schema, params and templates.
    Check(commands::check::CheckArgs),
    /// The component hub: the components `hubRef` and `run --hub` find (list, print).
    #[command(subcommand)]
    Hub(commands::hub::HubCommand),
    /// Projects: create, list, show, change, delete.
    #[command(subcommand, visible_alias = "projects")]
    Project(commands::project::ProjectCommand),
    /// Runs (operations): list, inspect, follow, stop, restart, download.
    Ops(commands::ops::OpsArgs),
    /// Show a run's logs (the last run used, or `--uid`), following it while it runs.
    Logs(commands::ops::logs::TopLogsArgs),
    /// Show, set and reset the CLI's configuration.
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Log in to a server (the embedded default needs no login).
    Login(commands::login::LoginArgs),
    /// Forget the credentials of the configured server.
    Logout,
    /// Show who you are on the configured server.
    Whoami(commands::whoami::WhoamiArgs),
    /// Your personal tokens on the server: list, create, revoke.
    #[command(subcommand, visible_alias = "tokens")]
    Token(commands::token::TokenCommand),
    /// Show the CLI's version and the server's.
    Version(commands::version::VersionArgs),
    /// Set the current project for this directory (kept in `./.polyaxon/`).
    Init(commands::init::InitArgs),
    /// Open the web dashboard.
    Dashboard(commands::dashboard::DashboardArgs),
    /// Print a shell completion script.
    Completion(commands::completion::CompletionArgs),
    /// Deploy, upgrade and tear down the server on a Kubernetes cluster.
    #[command(subcommand)]
    Admin(commands::admin::AdminCommand),
    /// Agents: claim queued runs and run them (`agent start`), list them, show their queues.
    #[command(subcommand)]
    Agent(commands::agent::AgentCommand),
    /// Connections: notifiers (Slack, webhooks, …) and what operations name in `connections:`.
    #[command(subcommand, visible_alias = "connection")]
    Connections(commands::connections::ConnectionsCommand),
    /// Queues runs wait in for agents: list, create or change, delete.
    #[command(subcommand, visible_alias = "queues")]
    Queue(commands::agent::QueueCommand),
    /// Forward the deployed server (or another Service) to a local port, until Ctrl-C.
    PortForward(commands::port_forward::PortForwardArgs),
    /// Run the API server.
    #[command(subcommand)]
    Server(commands::server::ServerCommand),
    /// Send a run's files to the server from beside its job (the Kubernetes executor puts it
    /// in each pod), every few seconds and once more when told to stop.
    Sidecar(commands::sidecar::SidecarArgs),
    /// Write the shell completions and man pages (for packagers; the repository keeps them).
    #[command(hide = true)]
    GenerateDocs(commands::completion::GenerateArgs),
}

/// Upstream's multi-letter short flags and the long flags they stand for.
const MULTI_LETTER_SHORTS: &[(&str, &str)] = &[
    ("-uid", "--uid"),
    ("-id", "--uid"),
    ("-nf", "--no-follow"),
    ("-off", "--offset"),
    ("-io", "--io"),
    ("-exc", "--executor"),
    ("-HP", "--hparam"),
    ("-pm", "--python-module"),
    ("-ns", "--namespace"),
    ("-to", "--to-project"),
    ("-cmd", "--command"),
    ("-add", "--address"),
];

/// Rewrites upstream's multi-letter short flags (`-uid X`, `-uid=X`) to long ones, up to `--`.
pub fn normalize_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut rest = false;
    for a in args {
        if rest {
            out.push(a);
            continue;
        }
        let Some(s) = a.to_str() else {
            out.push(a);
            continue;
        };
        if s == "--" {
            rest = true;
            out.push(a);
            continue;
        }
        let (flag, value) = match s.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (s, None),
        };
        match MULTI_LETTER_SHORTS.iter().find(|(short, _)| *short == flag) {
            Some((_, long)) => out.push(match value {
                Some(v) => format!("{long}={v}").into(),
                None => (*long).into(),
            }),
            None => out.push(a),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn multi_letter_shorts_become_long() {
        let args = [
            "polyaxon", "ops", "get", "-uid", "abc", "-off=3", "--", "-uid",
        ];
        let out: Vec<String> = normalize_args(args.iter().map(std::ffi::OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            out,
            [
                "polyaxon",
                "ops",
                "get",
                "--uid",
                "abc",
                "--offset=3",
                "--",
                "-uid"
            ]
        );
    }
}
