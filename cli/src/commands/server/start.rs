//! `polyaxon server start`: serves the API until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use polyaxon_server::store::{Store, redact_url};
use polyaxon_server::{App, AuthMode, Config};

use crate::env;
use crate::error::UserError;
use crate::printer::Printer;
use crate::settings;

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The database: `postgres://user:password@host/db`, or `sqlite:///path/polyaxon.db`.
    /// Default: SQLite in `$POLYAXON_HOME/polyaxon.db`.
    #[arg(long, env = env::POLYAXON_DATABASE_URL, hide_env_values = true)]
    pub database_url: Option<String>,

    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// The port to listen on (0 picks a free one).
    #[arg(long, short = 'p', default_value_t = 8000)]
    pub port: u16,

    /// Where runs' files are kept. Default: `$POLYAXON_HOME/artifacts`.
    #[arg(long)]
    pub artifacts_root: Option<PathBuf>,

    /// An object store for runs' files: `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix` (`wasb://container@account.blob.core.windows.net/prefix`), with
    /// each cloud's standard credentials (`AWS_*`, `GOOGLE_*`, `AZURE_*`). Checked at start.
    /// Logs and event files stay in `--artifacts-root` while the server takes them in.
    #[arg(long, value_name = "URL", env = env::POLYAXON_ARTIFACTS_STORE)]
    pub artifacts_store: Option<String>,

    /// A setting of the store's client, `KEY=VALUE` (repeatable): `endpoint=http://minio:9000`,
    /// `allow_http=true`, `region=eu-west-1`, … (the `object_store` builders' keys).
    #[arg(
        long = "artifacts-store-option",
        value_name = "KEY=VALUE",
        requires = "artifacts_store"
    )]
    pub artifacts_store_options: Vec<String>,

    /// Accept requests without a token, as the single user `default` (a private machine only).
    #[arg(long)]
    pub open: bool,

    /// Connections to create or update at start: a YAML list of `{name, kind, description,
    /// tags, schema, secret: env:NAME | file:/path}` (those created through the API are kept).
    #[arg(long, value_name = "FILE", env = env::POLYAXON_CONNECTIONS_FILE)]
    pub connections: Option<PathBuf>,

    /// Where the services proxy reaches a Kubernetes run's Service: `{name}` and `{namespace}`
    /// are filled in (a server outside the cluster can point this at a tunnel).
    #[arg(long, value_name = "TEMPLATE", env = env::POLYAXON_K8S_SERVICE_HOST, default_value = "{name}.{namespace}.svc")]
    pub k8s_service_host: String,

    /// Let notifications go to link-local and cloud metadata addresses (169.254.0.0/16,
    /// fe80::/10), refused by default.
    #[arg(long, env = env::POLYAXON_NOTIFY_ALLOW_LINK_LOCAL)]
    pub notify_allow_link_local: bool,
}

/// Opens the artifacts store and checks it (a probe written, read, listed, deleted): a missing
/// bucket or wrong credentials stop the start, naming the store and what it refused.
async fn open_artifacts_store(
    url: &str,
    options: &[String],
) -> Result<polyaxon_server::artifacts::Store> {
    let mut opts = std::collections::BTreeMap::new();
    for o in options {
        let Some((k, v)) = o.split_once('=') else {
            return Err(
                UserError::new(format!("`--artifacts-store-option {o}` has no `=`"))
                    .hint("write it `KEY=VALUE`, e.g. `endpoint=http://127.0.0.1:9000`")
                    .into(),
            );
        };
        opts.insert(k.trim().to_string(), v.to_string());
    }
    let store = polyaxon_server::artifacts::Store::open(url, &opts)
        .map_err(|e| UserError::new(e.to_string()))?;
    store.check().await.map_err(|e| {
        UserError::new(e.to_string()).hint(
            "check the bucket's name and that the server's credentials may read, write, list and delete in it",
        )
    })?;
    tracing::info!(store = %store.url, kind = store.kind.name(), "artifacts store checked");
    Ok(store)
}

pub fn run(args: StartArgs, printer: &Printer) -> Result<()> {
    let settings = settings::ServerSettings::resolve();
    let home = settings.home.clone();
    let url = match args.database_url {
        Some(u) => u,
        None => {
            std::fs::create_dir_all(&home)
                .with_context(|| format!("creating `{}`", home.display()))?;
            format!("sqlite://{}?mode=rwc", home.join("polyaxon.db").display())
        }
    };
    let artifacts = args
        .artifacts_root
        .unwrap_or_else(|| home.join("artifacts"));
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .map_err(|_| {
            UserError::new(format!(
                "`{}:{}` is not an address to listen on",
                args.host, args.port
            ))
            .hint("use `--host 0.0.0.0` to listen on every interface")
        })?;
    init_logging(printer.color, settings.log_filter.as_deref());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store = Store::open(&url).await.map_err(|e| UserError::new(e.to_string()))?;
        let auth = if args.open { AuthMode::Open { user: "default".into() } } else { AuthMode::Tokens };
        let mut config = Config::new(&artifacts, auth);
        let shown_host = if args.host == "0.0.0.0" || args.host == "::" { "localhost" } else { args.host.as_str() };
        config.notify = settings::notify_config(&format!("http://{shown_host}:{}", args.port));
        config.notify.allow_link_local |= args.notify_allow_link_local;
        config.k8s_service_host = args.k8s_service_host.clone();
        if let Some(url) = &args.artifacts_store {
            config.artifacts_store = Some(open_artifacts_store(url, &args.artifacts_store_options).await?);
        }
        let started = App::start(store, config, settings.admin_password.as_deref()).await.map_err(|e| UserError::new(e.to_string()))?;
        if let Some(pw) = &started.generated_password {
            printer.err(&format!(
                "{} created the superuser `root` with the password {}\n  it is shown this once: keep it, or set POLYAXON_ADMIN_PASSWORD before the first start",
                printer.paint("1;33", "note:"),
                printer.paint("1", pw)
            ));
        }
        if let Some(file) = &args.connections {
            let n = crate::connections::sync_file(&started.app.store, file, started.app.config.notify.allow_link_local).await?;
            tracing::info!(file = %file.display(), written = n, "connections loaded");
        }
        if let Some(t) = &settings.agent_token {
            started.app.store.ensure_token("root", "agent", t).await.map_err(|e| UserError::new(format!("{}: {e}", crate::env::POLYAXON_AGENT_TOKEN)))?;
        }
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AddrInUse { "another process uses this port; pick another with `--port`" } else { "check `--host` and `--port`" };
            UserError::new(format!("cannot listen on {addr}: {e}")).hint(hint)
        })?;
        let local = listener.local_addr()?;
        // This server delivers the notifications of the runs whose end it records (and any
        // a server or supervisor that stopped left pending).
        let mut notify = started.app.config.notify.clone();
        if args.port == 0 && crate::env::get(crate::env::POLYAXON_UI_URL).is_none() {
            notify.ui_url = format!("http://{local}");
        }
        let _outbox = polyaxon_server::notify::Worker::new(
            started.app.store.clone(),
            notify,
            crate::outbox::holder("server"),
        )
        .with_hooks(std::sync::Arc::new(crate::outbox::Hooks {
            settings: crate::settings::Settings::resolve()?,
            app: started.app.clone(),
            // A server runs nothing: a hook's run waits in its queue for an agent.
            launch: false,
        }))
        .spawn();
        // Deleted runs' files whose removal failed (the store out of reach), tried again.
        started.app.sweep_removals_forever();
        tracing::info!(address = %local, database = %redact_url(&url), artifacts = %artifacts.display(), auth = if args.open { "open" } else { "tokens" }, "polyaxon server listening");
        printer.err(&format!("polyaxon server listening on http://{local} (stop with Ctrl-C)"));
        polyaxon_server::serve(listener, started.app, polyaxon_server::shutdown_signal()).await?;
        tracing::info!("polyaxon server stopped");
        Ok::<(), anyhow::Error>(())
    })
}

fn init_logging(color: bool, filter: Option<&str>) {
    let filter = filter
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        // A closed stderr (`| head`, a dead log collector) must not take requests down: the
        // default reports write errors with `eprintln!`, which panics then.
        .log_internal_errors(false)
        .try_init();
}
