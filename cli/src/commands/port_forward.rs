//! `polyaxon port-forward`: the deployed server (or another Service of the deploy) on a local
//! port, through the API server, until Ctrl-C. Also what `polyaxon ops service` uses for
//! services that run on a cluster.

use anyhow::Result;
use clap::Args;

use crate::context::Ctx;
use crate::error::UserError;
use crate::executor::kubernetes::{self as k8s, forward};

#[derive(Debug, Args)]
pub struct PortForwardArgs {
    /// The local port.
    #[arg(short, long, default_value_t = 8000, value_name = "PORT")]
    pub port: u16,

    /// The namespace of the deploy.
    #[arg(short, long, default_value = "polyaxon", value_name = "NAME")]
    pub namespace: String,

    /// The release name of the deploy (`admin deploy`'s).
    #[arg(
        short,
        long = "release-name",
        default_value = "polyaxon",
        value_name = "NAME"
    )]
    pub release_name: String,

    /// The service: `gateway` or `api` (the server, the default), or a Service's name.
    #[arg(short, long, default_value = "gateway", value_name = "NAME")]
    pub service: String,

    /// The local address to listen on (also `-add`).
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDRESS")]
    pub address: String,

    /// The kubeconfig context (default: the current one).
    #[arg(long, value_name = "NAME", env = "POLYAXON_K8S_CONTEXT")]
    pub context: Option<String>,

    /// Accepted for upstream's scripts: the deploy is always Kubernetes.
    #[arg(
        short = 't',
        long = "deployment-type",
        value_name = "TYPE",
        hide = true
    )]
    pub deployment_type: Option<String>,
}

/// The Service `-s` names: upstream's `gateway` (and `api`) is the server, `{release}-api`.
pub fn service_name(service: &str, release: &str) -> String {
    match service {
        "gateway" | "api" | "" => format!("{release}-api"),
        other => other.to_string(),
    }
}

pub fn run(ctx: &Ctx, args: PortForwardArgs) -> Result<()> {
    let service = service_name(&args.service, &args.release_name);
    ctx.block_on(async {
        let (client, _) = k8s::connect(args.context.as_deref(), Some(&args.namespace)).await?;
        let backend = forward::backend(&client, &args.namespace, &service).await?;
        let port = backend.ports[0].clone();
        let listener = forward::bind(&args.address, args.port).await?;
        let url = format!("http://{}", listener.local_addr()?);
        forward_until_stopped(ctx, client, backend, vec![(port, listener, url)]).await
    })
}

/// Serves each listener until Ctrl-C, saying where.
pub async fn forward_until_stopped(
    ctx: &Ctx,
    client: kube::Client,
    backend: forward::Backend,
    listeners: Vec<(forward::ServicePort, tokio::net::TcpListener, String)>,
) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (port, listener, url) in listeners {
        ctx.printer.success(&format!(
            "forwarding {url} to service {} port {} in namespace {}",
            backend.service, port.port, backend.namespace
        ));
        let printer = ctx.printer;
        let dial = forward::dialer(client.clone(), backend.clone(), port);
        tasks.spawn(forward::serve(listener, dial, move |m| printer.warn(&m)));
    }
    ctx.printer.note("Ctrl-C stops");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        Some(r) = tasks.join_next() => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(UserError::new(format!("the forward stopped: {e}")).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn upstreams_service_names_are_the_server() {
        assert_eq!(super::service_name("gateway", "plx"), "plx-api");
        assert_eq!(super::service_name("api", "polyaxon"), "polyaxon-api");
        assert_eq!(super::service_name("plx-db", "plx"), "plx-db");
    }
}
