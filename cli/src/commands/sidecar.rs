//! `polyaxon sidecar`: sends a run's files to the server from beside its main container (see
//! [`crate::sidecar`]). The Kubernetes executor puts it in each pod; it also runs anywhere a
//! run's artifacts directory is.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::context::Ctx;
use crate::error::UserError;
use crate::sidecar::{self, Options, Sidecar};

#[derive(Debug, Args)]
pub struct SidecarArgs {
    /// The run's artifacts directory (default: `POLYAXON_RUN_ARTIFACTS_PATH`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Seconds between passes.
    #[arg(long, default_value_t = 5.0)]
    pub interval: f64,
    /// A top-level entry of the directory never sent (repeatable; default: `code`, which the
    /// init steps fetched).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Seconds the last pass may take, with its retries, once told to stop (SIGTERM).
    #[arg(long, default_value_t = 20.0)]
    pub final_timeout: f64,
    /// The run's project (default: from `POLYAXON_RUN_INSTANCE`).
    #[arg(short, long)]
    pub project: Option<String>,
    /// The run (default: from `POLYAXON_RUN_INSTANCE`).
    #[arg(long = "uid")]
    pub uid: Option<String>,
}

fn seconds(v: f64, what: &str) -> Result<Duration> {
    if !v.is_finite() || v <= 0.0 || v > 86_400.0 {
        return Err(UserError::new(format!("`--{what}` is {v}"))
            .hint("give a number of seconds above 0 and at most a day")
            .into());
    }
    Ok(Duration::from_secs_f64(v))
}

pub fn run(ctx: &Ctx, args: SidecarArgs) -> Result<()> {
    let interval = seconds(args.interval, "interval")?;
    let final_timeout = seconds(args.final_timeout, "final-timeout")?;
    let dir = match args.dir.or_else(|| ctx.settings.run_artifacts_path.clone()) {
        Some(d) => d,
        None => {
            return Err(UserError::new("the run's artifacts directory is not known")
                .hint("give `--dir`, or set POLYAXON_RUN_ARTIFACTS_PATH (the executors do)")
                .into());
        }
    };
    ctx.block_on(async {
        let client = ctx.client().await?;
        let run = match (&args.uid, &ctx.settings.run_instance) {
            (Some(_), _) | (None, None) => {
                ctx.run(&client, args.project.as_deref(), args.uid.as_deref())
                    .await?
            }
            (None, Some(i)) => sidecar::run_of_instance(i)?,
        };
        let opts = Options {
            dir: dir.clone(),
            interval,
            exclude: if args.exclude.is_empty() {
                Options::default().exclude
            } else {
                args.exclude.clone()
            },
            final_timeout,
            ..Options::default()
        };
        ctx.printer.note(&format!(
            "sending `{}` to run {} every {:.1} s",
            dir.display(),
            run.uuid,
            interval.as_secs_f64()
        ));
        let printer = ctx.printer;
        let mut failing = false;
        let last = Sidecar::new(client, run, opts)
            .run(stopped(), |p| {
                if p.files > 0 {
                    printer.note(&format!("sent {} files ({} bytes)", p.files, p.bytes));
                }
                match &p.error {
                    Some(e) if !failing => {
                        printer.warn(&format!(
                            "{} files wait to be sent (retried every pass): {e}",
                            p.pending
                        ));
                        failing = true;
                    }
                    None if failing => {
                        printer.note("sending again");
                        failing = false;
                    }
                    _ => {}
                }
            })
            .await;
        match last.error {
            None => Ok(()),
            Some(e) => Err(UserError::new(format!(
                "{} files of the run could not be sent before the end: {e}",
                last.pending
            ))
            .hint("they are still in the run's directory: the error says what kept them there")
            .into()),
        }
    })
}

/// Resolves when the process is told to stop (SIGTERM, as Kubernetes does, or Ctrl-C).
async fn stopped() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
