//! `polyaxon admin deploy|upgrade|teardown`: the server on a cluster.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::Value as J;

use crate::context::Ctx;
use crate::deploy;
use crate::error::UserError;
use crate::executor::kubernetes as k8s;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Deploy the server, its database and the executor's RBAC to a cluster.
    Deploy(DeployArgs),
    /// Apply a changed config to a deploy (its generated secrets are kept).
    Upgrade(DeployArgs),
    /// Remove a deploy; the database's volume stays unless `--delete-volumes`.
    Teardown(TeardownArgs),
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The deployment config (upstream's keys where they apply; see the README).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,

    /// The kubeconfig context (default: the current one).
    #[arg(long, value_name = "NAME", env = "POLYAXON_K8S_CONTEXT")]
    pub context: Option<String>,

    /// Accepted for upstream's scripts: the deploy is always Kubernetes manifests.
    #[arg(
        short = 't',
        long = "deployment-type",
        value_name = "TYPE",
        hide = true
    )]
    pub deployment_type: Option<String>,

    /// Accepted for upstream's scripts (there is no chart).
    #[arg(long = "manager-path", value_name = "PATH", hide = true)]
    pub manager_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Check the config and the cluster's access; change nothing.
    #[arg(long)]
    pub check: bool,

    /// Print the manifests (`-o yaml`, the default, or `-o json`); change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// With `--dry-run`: print secrets' values too.
    #[arg(long, requires = "dry_run")]
    pub show_secrets: bool,

    /// How long to wait for the rollout, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub timeout: u64,

    /// `yaml` or `json` (with `--dry-run`).
    #[arg(short, long, value_name = "FORMAT", default_value = "yaml", value_parser = ["yaml", "json"])]
    pub output: String,
}

#[derive(Debug, Args)]
pub struct TeardownArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Also delete the database's volume, the secrets and the namespace (data is lost).
    #[arg(long)]
    pub delete_volumes: bool,

    /// Do not ask.
    #[arg(short, long)]
    pub yes: bool,
}

fn read_config(ctx: &Ctx, path: &PathBuf) -> Result<deploy::Config> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UserError::new(format!("cannot read `{}`: {e}", path.display())))?;
    let c = deploy::config::parse(&text).map_err(|e| UserError {
        message: format!("{}: {}", path.display(), e.message),
        ..e
    })?;
    for w in deploy::advice(&c) {
        ctx.printer.warn(&w);
    }
    Ok(c)
}

pub fn run(ctx: &Ctx, cmd: AdminCommand) -> Result<()> {
    match cmd {
        AdminCommand::Deploy(a) => deploy_cmd(ctx, a, false),
        AdminCommand::Upgrade(a) => deploy_cmd(ctx, a, true),
        AdminCommand::Teardown(a) => teardown_cmd(ctx, a),
    }
}

fn progress(ctx: &Ctx) -> impl Fn(&str) + '_ {
    move |m: &str| ctx.printer.err(&format!("  {m}"))
}

fn deploy_cmd(ctx: &Ctx, a: DeployArgs, upgrade: bool) -> Result<()> {
    let c = read_config(ctx, &a.cluster.file)?;
    if a.dry_run {
        let objects = deploy::manifests(&c, &deploy::Secrets::generate())?;
        let objects = deploy::printable(&objects, a.show_secrets);
        if a.output == "json" {
            ctx.printer
                .out(&serde_json::to_string_pretty(&J::Array(objects))?)?;
        } else {
            let docs: Vec<String> = objects.iter().map(polyaxonfile::emit::to_yaml).collect();
            ctx.printer.out(docs.join("---\n").trim_end())?;
        }
        return Ok(());
    }
    ctx.block_on(async {
        let (client, _) = k8s::connect(a.cluster.context.as_deref(), None).await?;
        if a.check {
            return check(ctx, &client, &c).await;
        }
        let exists = deploy::deployed(&client, &c).await?;
        match (upgrade, exists) {
            (true, false) => {
                return Err(UserError::new(format!("nothing is deployed in namespace `{}` to upgrade", c.namespace()))
                    .hint("`polyaxon admin deploy -f FILE` deploys it")
                    .into());
            }
            (false, true) => {
                return Err(UserError::new(format!("a deploy already runs in namespace `{}`", c.namespace()))
                    .hint("`polyaxon admin upgrade -f FILE` applies a changed config to it")
                    .into());
            }
            _ => {}
        }
        let secrets = match deploy::existing_secrets(&client, &c).await? {
            Some(s) => s,
            None => deploy::Secrets::generate(),
        };
        let objects = deploy::manifests(&c, &secrets)?;
        ctx.printer.err(&format!(
            "{} {} objects to namespace `{}`",
            if upgrade { "upgrading:" } else { "deploying:" },
            objects.len(),
            c.namespace()
        ));
        deploy::apply_all(&client, &objects, &progress(ctx), Duration::from_secs(a.timeout), Duration::from_secs(2)).await?;
        ctx.printer.success(&format!("{} in namespace `{}`", if upgrade { "upgraded" } else { "deployed" }, c.namespace()));
        if !c.agent_only() {
            ctx.printer.err(&format!(
                "  the API: `polyaxon port-forward -n {ns} -r {rel}` (it listens on 127.0.0.1:8000), then `polyaxon config set --host http://127.0.0.1:8000`\n  root's password: `kubectl -n {ns} get secret {rel}-secrets -o jsonpath='{{.data.admin-password}}' | base64 -d`\n  runs on this cluster: `export POLYAXON_K8S_NAMESPACE={ns} POLYAXON_K8S_API_HOST=http://{rel}-api.{ns}.svc:{port} POLYAXON_K8S_ARTIFACTS_CLAIM={rel}-artifacts`, then `polyaxon run --executor kubernetes`",
                ns = c.namespace(),
                rel = c.release(),
                port = c.int("gateway.service.port").unwrap_or(80),
            ));
        }
        Ok(())
    })
}

async fn check(ctx: &Ctx, client: &kube::Client, c: &deploy::Config) -> Result<()> {
    let v = client.apiserver_version().await.map_err(|e| {
        UserError::new(format!("the cluster does not answer: {e}"))
            .hint("check KUBECONFIG and the context (`--context`)")
    })?;
    ctx.printer.success(&format!(
        "config: valid ({} objects)",
        deploy::manifests(c, &deploy::Secrets::generate())?.len()
    ));
    ctx.printer.success(&format!(
        "cluster: Kubernetes {}.{} ({})",
        v.major, v.minor, v.git_version
    ));
    let ns = k8s::ObjRef {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        name: c.namespace(),
        namespace: None,
    };
    let found = k8s::exists(client, &ns).await?;
    ctx.printer.success(&format!(
        "namespace `{}`: {}",
        c.namespace(),
        if found { "exists" } else { "will be created" }
    ));
    let deployed = deploy::deployed(client, c).await?;
    ctx.printer.success(&format!(
        "deploy: {}",
        if deployed {
            "present (`admin upgrade` applies changes)"
        } else {
            "none yet (`admin deploy` creates it)"
        }
    ));
    Ok(())
}

fn teardown_cmd(ctx: &Ctx, a: TeardownArgs) -> Result<()> {
    let c = read_config(ctx, &a.cluster.file)?;
    let what = if a.delete_volumes {
        format!(
            "delete the deploy in namespace `{}`, its database volume and the namespace (the data is lost)",
            c.namespace()
        )
    } else {
        format!(
            "delete the deploy in namespace `{}` (the database volume and its secrets stay)",
            c.namespace()
        )
    };
    crate::commands::confirm(&ctx.printer, &format!("{what}?"), a.yes)?;
    ctx.block_on(async {
        let (client, _) = k8s::connect(a.cluster.context.as_deref(), None).await?;
        deploy::teardown(&client, &c, a.delete_volumes, &progress(ctx)).await?;
        ctx.printer
            .success(&format!("torn down in namespace `{}`", c.namespace()));
        Ok(())
    })
}
