//! `polyaxon config show|get|set|purge`.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Value as J, json};

use crate::commands::OutputArgs;
use crate::commands::project::update::parse_bool_arg;
use crate::context::Ctx;
use crate::credentials;
use crate::error::UserError;
use crate::output::{self, Cell};
use crate::settings::{self, ClientConfig};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Show the configuration and where it comes from.
    Show(OutputArgs),
    /// Print configuration values, one per line.
    Get(GetArgs),
    /// Change configuration values.
    Set(SetArgs),
    /// Reset the configuration, credentials and caches (never the runs kept here).
    Purge(PurgeArgs),
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Keys: host, verify_ssl, timeout, owner, no_api, debug, home.
    #[arg(required = true, value_name = "KEY")]
    pub keys: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The server, e.g. `http://localhost:8000`; `""` goes back to the embedded store.
    #[arg(long, value_name = "URL")]
    pub host: Option<String>,

    /// Whether to check the server's TLS certificate.
    #[arg(long, value_name = "BOOL", value_parser = parse_bool_arg)]
    pub verify_ssl: Option<bool>,

    /// Seconds before a call to the server gives up.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,

    /// The owner of projects named without one (default: you).
    #[arg(long)]
    pub owner: Option<String>,

    /// Make no calls to the server (kept for upstream's scripts).
    #[arg(long, value_name = "BOOL", value_parser = parse_bool_arg)]
    pub no_api: Option<bool>,

    /// Print more detail about calls.
    #[arg(long, value_name = "BOOL", value_parser = parse_bool_arg)]
    pub debug: Option<bool>,

    /// Keep the CLI's files (and the embedded store) in this directory from now on.
    #[arg(long, value_name = "DIR")]
    pub home: Option<std::path::PathBuf>,

    /// The executor of `polyaxon run` without `--executor`: `process`, `docker` or
    /// `kubernetes` (`k8s`); `""` goes back to `process`.
    #[arg(long, value_name = "EXECUTOR")]
    pub executor: Option<String>,

    /// Accepted for upstream's scripts; nothing is ever reported.
    #[arg(long, value_name = "BOOL", value_parser = parse_bool_arg)]
    pub disable_errors_reporting: Option<bool>,

    /// Keep the cached user when the host changes.
    #[arg(long)]
    pub no_purge: bool,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Only the caches (current project, last run, user), not the configuration.
    #[arg(long)]
    pub cache_only: bool,
}

pub fn run(ctx: &Ctx, cmd: ConfigCommand) -> Result<()> {
    match cmd {
        ConfigCommand::Show(o) => show(ctx, o),
        ConfigCommand::Get(a) => get(ctx, a),
        ConfigCommand::Set(a) => set(ctx, a),
        ConfigCommand::Purge(a) => purge(ctx, a),
    }
}

const KEYS: &[&str] = &[
    "host",
    "verify_ssl",
    "timeout",
    "owner",
    "no_api",
    "debug",
    "home",
    "executor",
    "disable_errors_reporting",
];

fn value(ctx: &Ctx, key: &str) -> Option<J> {
    let s = &ctx.settings;
    Some(match key {
        "host" => s.host.clone().map_or(J::Null, J::from),
        "verify_ssl" => J::from(s.verify_ssl),
        "timeout" => json!(s.timeout.as_secs_f64()),
        "owner" => s.client.owner.clone().map_or(J::Null, J::from),
        "no_api" => J::from(s.client.no_api.unwrap_or(false)),
        "debug" => J::from(s.client.debug.unwrap_or(false)),
        "home" => J::from(s.home.display().to_string()),
        "executor" => J::from(s.executor(None).map(|e| e.as_str()).unwrap_or("process")),
        "disable_errors_reporting" => J::from(s.client.disable_errors_reporting.unwrap_or(true)),
        _ => return None,
    })
}

fn show(ctx: &Ctx, out: OutputArgs) -> Result<()> {
    let s = &ctx.settings;
    let project = s.project_cache()?;
    let run = s.run_cache()?;
    let user = s.user()?;
    let token_set = credentials::token(s).ok().flatten().is_some();
    let creds = if s.env_token.is_some() {
        "POLYAXON_AUTH_TOKEN".to_string()
    } else if s.is_embedded() {
        "none needed (embedded)".to_string()
    } else {
        match credentials::store(s) {
            Ok(store) => format!(
                "{}{}",
                store.describe(),
                if token_set { "" } else { " (not logged in)" }
            ),
            Err(e) => e.to_string(),
        }
    };
    let json = json!({
        "host": s.host,
        "mode": if s.is_embedded() { "embedded" } else { "remote" },
        "verify_ssl": s.verify_ssl,
        "timeout": s.timeout.as_secs_f64(),
        "owner": s.client.owner,
        "executor": s.executor(None).map(|e| e.as_str()).unwrap_or("process"),
        "home": s.home.display().to_string(),
        "context": s.context.display().to_string(),
        "project": project.as_ref().map(|p| format!("{}/{}", p.owner, p.name)),
        "last_run": run.as_ref().map(|r| r.uuid.clone()),
        "user": user.as_ref().map(|u| u.username.clone()),
        "logged_in": token_set,
        "credentials": creds,
    });
    if out.write_file(&ctx.printer, &json)? {
        return Ok(());
    }
    let mut pairs: Vec<(String, Cell)> = vec![(
        "host".into(),
        match &s.host {
            Some(h) => h.clone().into(),
            None => format!("none: the embedded store in `{}`", s.home.display()).into(),
        },
    )];
    if !s.is_embedded() {
        pairs.push(("verify ssl".into(), s.verify_ssl.to_string().into()));
        pairs.push((
            "user".into(),
            user.map(|u| u.username).unwrap_or_default().into(),
        ));
        pairs.push(("credentials".into(), creds.into()));
    }
    pairs.push((
        "timeout".into(),
        format!("{} s", s.timeout.as_secs_f64()).into(),
    ));
    if let Some(o) = &s.client.owner {
        pairs.push(("owner".into(), o.as_str().into()));
    }
    if let Ok(e) = s.executor(None)
        && e != polyaxon_server::api::ExecutorKind::Process
    {
        pairs.push(("executor".into(), e.as_str().into()));
    }
    pairs.push(("home".into(), s.home.display().to_string().into()));
    pairs.push((
        "project".into(),
        project
            .map(|p| {
                format!(
                    "{}/{} (from `{}`)",
                    p.owner,
                    p.name,
                    s.project_path().display()
                )
            })
            .unwrap_or_else(|| "none (`polyaxon init -p PROJECT` sets one)".into())
            .into(),
    ));
    if let Some(r) = run {
        pairs.push(("last run".into(), r.uuid.into()));
    }
    output::detail(&ctx.printer, out.format(), &json, &pairs)
}

fn get(ctx: &Ctx, args: GetArgs) -> Result<()> {
    let mut out = String::new();
    for k in &args.keys {
        let key = k.trim().replace('-', "_");
        match value(ctx, &key) {
            Some(v) => {
                out.push_str(&output::value_text(&v));
                out.push('\n');
            }
            None => {
                let mut e = UserError::new(format!("`{k}` is not a configuration key"));
                e = match polyaxonfile::diag::did_you_mean(&key, KEYS.iter().copied()) {
                    Some(m) => e.hint(format!("did you mean `{m}`? keys: {}", KEYS.join(", "))),
                    None => e.hint(format!("keys: {}", KEYS.join(", "))),
                };
                return Err(e.into());
            }
        }
    }
    ctx.printer.out(&out)?;
    Ok(())
}

fn set(ctx: &Ctx, args: SetArgs) -> Result<()> {
    let s = &ctx.settings;
    let mut c: ClientConfig = s.client.clone();
    let mut changed = Vec::new();
    if let Some(h) = &args.host {
        let new = if h.trim().is_empty() {
            None
        } else {
            Some(settings::normalize_host(h)?)
        };
        if new != c.host {
            if !args.no_purge {
                settings::remove_file(&s.user_path())?;
            }
            c.host = new;
        }
        changed.push(match &c.host {
            Some(h) => format!("host = {h}"),
            None => "host = none (the embedded store)".to_string(),
        });
    }
    if let Some(v) = args.verify_ssl {
        c.verify_ssl = Some(v);
        changed.push(format!("verify_ssl = {v}"));
    }
    if let Some(t) = args.timeout {
        if !(t > 0.0 && t.is_finite()) {
            return Err(UserError::new(format!(
                "`--timeout {t}` must be a positive number of seconds"
            ))
            .into());
        }
        c.timeout = Some(t);
        changed.push(format!("timeout = {t}"));
    }
    if let Some(o) = &args.owner {
        c.owner = Some(o.trim().to_string()).filter(|o| !o.is_empty());
        changed.push(format!("owner = {}", c.owner.as_deref().unwrap_or("(you)")));
    }
    if let Some(v) = args.no_api {
        c.no_api = Some(v);
        changed.push(format!("no_api = {v}"));
    }
    if let Some(v) = args.debug {
        c.debug = Some(v);
        changed.push(format!("debug = {v}"));
    }
    if let Some(v) = args.disable_errors_reporting {
        c.disable_errors_reporting = Some(v);
        changed.push(format!("disable_errors_reporting = {v}"));
    }
    if let Some(e) = &args.executor {
        c.executor = if e.trim().is_empty() {
            None
        } else {
            Some(
                polyaxon_server::api::ExecutorKind::parse(e)
                    .map(|k| k.as_str())
                    .ok_or_else(|| {
                        UserError::new(format!("`--executor {e}` is not an executor"))
                            .hint("use `process`, `docker` or `kubernetes` (`k8s`)")
                    })?
                    .to_string(),
            )
        };
        changed.push(format!(
            "executor = {}",
            c.executor.as_deref().unwrap_or("process")
        ));
    }
    if let Some(h) = &args.home {
        let abs = std::path::absolute(h)?;
        let pointer = s.user_home.join(".polyaxon").join(".home");
        settings::write_private(&pointer, format!("{}\n", abs.display()).as_bytes())?;
        changed.push(format!("home = {}", abs.display()));
        if s.home_from_env {
            ctx.printer
                .warn("POLYAXON_HOME is set and takes precedence while it is");
        }
    }
    if changed.is_empty() {
        return Err(UserError::new("nothing to set")
            .hint("e.g. `polyaxon config set --host http://localhost:8000`; `polyaxon config set --help` lists the keys")
            .into());
    }
    if c != s.client {
        settings::write_json(&s.client_path(), &c)?;
    }
    for line in changed {
        ctx.printer.success(&line);
    }
    if args.host.is_some()
        && c.host.is_some()
        && credentials::token(&settings::Settings {
            host: c.host.clone(),
            ..s.clone()
        })?
        .is_none()
    {
        ctx.printer.note("log in to it with `polyaxon login`");
    }
    Ok(())
}

fn purge(ctx: &Ctx, args: PurgeArgs) -> Result<()> {
    let s = &ctx.settings;
    let mut removed = Vec::new();
    let mut files = vec![
        s.user_path(),
        s.home.join(".project"),
        s.home.join(".run"),
        s.home.join(".cli"),
    ];
    if s.context != s.home {
        files.push(s.project_path());
        files.push(s.run_path());
    }
    if !args.cache_only {
        if let Some(h) = &s.host
            && let Ok(store) = credentials::store(s)
            && store.delete(h).unwrap_or(false)
        {
            removed.push(format!("the credentials for {h}"));
        }
        files.push(s.client_path());
        files.push(s.home.join(".auth"));
    }
    for f in files {
        if settings::remove_file(&f)? {
            removed.push(format!("`{}`", f.display()));
        }
    }
    if removed.is_empty() {
        ctx.printer.note("nothing to purge");
    } else {
        ctx.printer
            .success(&format!("removed {}", removed.join(", ")));
    }
    Ok(())
}
