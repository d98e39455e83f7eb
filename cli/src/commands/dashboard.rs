//! `polyaxon dashboard` (and the `dashboard` of projects and runs): the web pages of a server,
//! opened in a browser. In the embedded mode there is no server running, so the command serves
//! the pages itself on this machine until Ctrl-C.

use std::process::Stdio;

use anyhow::Result;
use clap::Args;

use crate::context::Ctx;
use crate::error::UserError;

#[derive(Debug, Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub open: OpenArgs,
}

#[derive(Clone, Debug, Default, Args)]
pub struct OpenArgs {
    /// Open the browser without asking.
    #[arg(short, long)]
    pub yes: bool,

    /// Print the address instead of opening a browser.
    #[arg(long)]
    pub url: bool,
}

pub fn run(ctx: &Ctx, args: DashboardArgs) -> Result<()> {
    open(ctx, "/ui", &args.open)
}

/// Opens `path` of the dashboard.
pub fn open(ctx: &Ctx, path: &str, args: &OpenArgs) -> Result<()> {
    match &ctx.settings.host {
        Some(host) => {
            let url = format!("{}{path}", host.trim_end_matches('/'));
            if args.url {
                ctx.printer.out(&url)?;
                return Ok(());
            }
            browse(ctx, &url, args.yes)?;
            Ok(())
        }
        None => serve_embedded(ctx, path, args),
    }
}

/// Opens `url` in the browser (asking first at a terminal unless `yes`), or says where it is.
pub fn browse(ctx: &Ctx, url: &str, yes: bool) -> Result<()> {
    if !yes && ctx.printer.interactive {
        let go = dialoguer::Confirm::new()
            .with_prompt(format!("open {url} in your browser?"))
            .default(true)
            .interact()
            .unwrap_or(false);
        if !go {
            ctx.printer.out(url)?;
            return Ok(());
        }
    }
    let opener = ctx.settings.browser.clone().unwrap_or_else(|| {
        if cfg!(target_os = "macos") {
            "open".into()
        } else if cfg!(windows) {
            "explorer".into()
        } else {
            "xdg-open".into()
        }
    });
    let started = std::process::Command::new(&opener)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match started {
        Ok(_) => ctx.printer.success(&format!("opened {url}")),
        Err(_) => {
            ctx.printer.note(&format!(
                "no browser to open here (`{opener}`): visit {url}"
            ));
        }
    }
    Ok(())
}

fn serve_embedded(ctx: &Ctx, path: &str, args: &OpenArgs) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(async {
            let embedded = crate::client::transport::Embedded::open(&ctx.settings.home)
                .await
                .map_err(crate::client::ClientError::from)?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| {
                UserError::new(format!("cannot listen on 127.0.0.1: {e}"))
            })?;
            let url = format!("http://{}{path}", listener.local_addr()?);
            if args.url {
                ctx.printer.out(&url)?;
            } else {
                browse(ctx, &url, args.yes)?;
            }
            ctx.printer.note(&format!(
                "serving the dashboard of the embedded store at {url} (only to this machine); Ctrl-C stops"
            ));
            polyaxon_server::serve(listener, embedded.app, polyaxon_server::shutdown_signal()).await?;
            Ok(())
        })
}
