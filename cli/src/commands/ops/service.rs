//! `polyaxon ops service`: reach a running service run. On this machine (process or docker
//! executor) its ports are already local: their addresses are printed or opened. On a cluster,
//! its Service's ports are forwarded to local ones until Ctrl-C.

use anyhow::Result;
use clap::Args;
use polyaxon_server::api::{ExecutorKind, RunStatus};

use super::Target;
use crate::commands::dashboard::{OpenArgs, browse};
use crate::context::Ctx;
use crate::error::UserError;
use crate::executor::kubernetes::{self as k8s, forward};

#[derive(Debug, Args)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub open: OpenArgs,

    /// Accepted for upstream's scripts: services are reached directly or forwarded.
    #[arg(long, hide = true)]
    pub external: bool,

    /// The local port of a forwarded service (default: its own port when free, else any).
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// The local address a forwarded service listens on (also `-add`).
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDRESS")]
    pub address: String,
}

pub fn run(ctx: &Ctx, target: &Target, args: ServiceArgs) -> Result<()> {
    let (r, run) = ctx.block_on(async {
        let client = ctx.client().await?;
        target.resolve(ctx, &client).await
    })?;
    let status = run.status.unwrap_or_default();
    if status != RunStatus::Running {
        return Err(UserError::new(format!(
            "run {} is {status}: a service is reached while it runs",
            r.uuid
        ))
        .hint("`polyaxon ops statuses -w` follows it until it runs")
        .into());
    }
    let executor = run.meta().executor.unwrap_or_default();
    if executor.kind == Some(ExecutorKind::Kubernetes) {
        let namespace = executor.namespace.unwrap_or_else(|| "default".into());
        let context = executor
            .context
            .or_else(|| ctx.settings.kube.context.clone());
        return ctx.block_on(async {
            let (client, _) = k8s::connect(context.as_deref(), Some(&namespace)).await?;
            let name = k8s::manifests::resource_name(&r.uuid);
            let backend = forward::backend(&client, &namespace, &name).await.map_err(|e| {
                match e.downcast::<UserError>() {
                    Ok(u) if u.message.contains("there is no service") => UserError::new(format!(
                        "run {} has no Service on the cluster: it is not a service (`run.kind: service` with `ports`), or it ended",
                        r.uuid
                    ))
                    .into(),
                    Ok(u) => u.into(),
                    Err(e) => e,
                }
            })?;
            let mut listeners = vec![];
            for (i, p) in backend.ports.iter().enumerate() {
                let listener = match (i, args.port) {
                    (0, Some(port)) => forward::bind(&args.address, port).await?,
                    _ => match forward::bind(&args.address, p.port).await {
                        Ok(l) => l,
                        Err(_) => forward::bind(&args.address, 0).await?,
                    },
                };
                let url = format!("http://{}", listener.local_addr()?);
                listeners.push((p.clone(), listener, url));
            }
            if args.open.url {
                for (_, _, url) in &listeners {
                    ctx.printer.out(url)?;
                }
            } else if let Some((_, _, url)) = listeners.first() {
                browse(ctx, url, args.open.yes)?;
            }
            crate::commands::port_forward::forward_until_stopped(ctx, client, backend, listeners)
                .await
        });
    }
    let mut urls: Vec<String> = executor.urls.unwrap_or_default();
    if urls.is_empty() {
        return Err(UserError::new(format!(
            "run {} serves nothing: it is not a service with `ports`",
            r.uuid
        ))
        .hint("a service is `run.kind: service` with `ports: [8888]`; `polyaxon ops get` shows what this run is")
        .into());
    }
    // Through the server, first: it proxies the service under the run's base URL (when it
    // runs where the job does).
    if let Some(host) = ctx.settings.host.as_deref() {
        urls.insert(
            0,
            format!(
                "{}/services/v1/polyaxon/{}/{}/runs/{}/",
                host.trim_end_matches('/'),
                r.owner,
                r.project,
                r.uuid
            ),
        );
    }
    if args.open.url {
        for u in &urls {
            ctx.printer.out(u)?;
        }
        return Ok(());
    }
    browse(ctx, &urls[0], args.open.yes)
}
