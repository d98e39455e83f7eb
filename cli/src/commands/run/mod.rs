//! `polyaxon run`: check a polyaxonfile, snapshot the code, create the run, and start its
//! supervisor in the background (`polyaxon ops execute`, see [`crate::controller`]); with
//! `-l`/`-w`, follow it here ([`follow`]). `polyaxon ops execute` itself is [`execute`].

mod execute;
mod follow;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use polyaxon_server::api::{RunMeta, RunStatus, V1OperationBody, V1Project};
use serde_json::{Map, Value as J, json};

pub use execute::{ExecuteArgs, execute};

use crate::client::{Client, RunRef};
use crate::commands::check::parse_param;
use crate::commands::{OutputArgs, split_tags};
use crate::context::{Ctx, ProjectRef};
use crate::controller::{self, launch::Standby};
use crate::error::{Reported, UserError};
use crate::printer::Format;
use crate::settings;
use crate::snapshot;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The polyaxonfile(s); later files patch earlier ones. Default: `polyaxonfile.yml` and
    /// the other names upstream looks for, here.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Run a component of the hub, `NAME` or `NAME:TAG` (`polyaxon hub ls` lists them): as an
    /// operation with `hubRef: NAME[:TAG]`; `-f` files after it patch it.
    #[arg(long, value_name = "NAME[:TAG]")]
    pub hub: Option<String>,

    /// A value for an input: `-P lr=0.01` (repeatable).
    #[arg(short = 'P', long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// A searched param, `NAME=KIND:VALUE`: `-HP lr=choice:[0.1,0.01]`, `-HP bs=range:16:128:16`,
    /// `-HP lr=loguniform:-9:-2` (any matrix param kind); makes the run a search (repeatable).
    #[arg(long = "hparam", value_name = "NAME=KIND:VALUE", value_parser = parse_param)]
    pub hparams: Vec<(String, String)>,

    /// The search's kind with `-HP`: grid (the default), random, mapping or hyperband.
    #[arg(long, value_name = "KIND", requires = "hparams")]
    pub matrix_kind: Option<String>,

    /// Trials at once with `-HP` (default 1).
    #[arg(long, value_name = "N", requires = "hparams")]
    pub matrix_concurrency: Option<u32>,

    /// How many trials with `-HP` (random: required; grid: a cap).
    #[arg(long, value_name = "N", requires = "hparams")]
    pub matrix_num_runs: Option<u32>,

    /// The project, `NAME` or `OWNER/NAME` (default: the directory's, else `default`).
    #[arg(short, long, value_name = "PROJECT")]
    pub project: Option<String>,

    /// A name for the run.
    #[arg(short, long)]
    pub name: Option<String>,

    /// Tags, comma-separated.
    #[arg(long, value_name = "TAGS")]
    pub tags: Option<String>,

    /// A description.
    #[arg(long)]
    pub description: Option<String>,

    /// Follow the run's statuses until it ends.
    #[arg(short, long)]
    pub watch: bool,

    /// Follow the run's logs until it ends (Ctrl-C stops the run).
    #[arg(short = 'l', long = "logs", visible_alias = "log")]
    pub logs: bool,

    /// Where the job runs: `process` (this machine, the default), `docker`, or `kubernetes`
    /// (`k8s`: the cluster of the kubeconfig's context; `POLYAXON_K8S_CONTEXT`,
    /// `POLYAXON_K8S_NAMESPACE` choose). Default: POLYAXON_EXECUTOR, else `config set
    /// --executor`.
    #[arg(long = "executor", visible_alias = "exc", value_name = "EXECUTOR", value_parser = ["process", "docker", "kubernetes", "k8s"])]
    pub executor: Option<String>,

    /// Print the Kubernetes manifests the run becomes (`-o yaml`, the default, or `-o json`)
    /// instead of running it. Needs no cluster.
    #[arg(long)]
    pub dry_run: bool,

    /// Named presets to apply, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub presets: Vec<String>,

    /// Read `name=value` lines the job prints as metrics (also: `POLYAXON_STDOUT_METRICS=true`
    /// in the container's env).
    #[arg(long)]
    pub stdout_metrics: bool,

    /// Reuse the results of a run with the same component, inputs and code that succeeded,
    /// instead of running again (default: when the spec has a `cache` section, and for a DAG's
    /// operations).
    #[arg(long, conflicts_with = "nocache")]
    pub cache: bool,

    /// Run even when an equal run succeeded before (the cache off).
    #[arg(long)]
    pub nocache: bool,

    /// Upload the code to the run's artifacts (`uploads/`) before it starts: in a git
    /// repository the files of the run's code snapshot, elsewhere the directory's files less
    /// what `.polyaxonignore` excludes. The job finds them under its artifacts path.
    #[arg(short = 'u', long)]
    pub upload: bool,

    /// The directory to upload (implies `-u`; default: the directory the code runs from).
    #[arg(long = "upload-from", visible_alias = "u-from", value_name = "PATH")]
    pub upload_from: Option<PathBuf>,

    /// Where in the run's artifacts the upload goes (implies `-u`; `/` for the root).
    #[arg(long = "upload-to", visible_alias = "u-to", value_name = "PATH")]
    pub upload_to: Option<String>,

    /// The queue the run waits in for an agent (upstream's `agent/queue` names work; default:
    /// the spec's `queue`, else the project's, else `default`).
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,

    /// Its priority in the queue: higher runs are claimed first (default 0).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub priority: Option<i64>,

    /// Run it on this machine even when an agent serves its queue.
    #[arg(long)]
    pub local: bool,

    /// `--approved false` holds the run until `polyaxon ops approve` (as `isApproved: false`).
    #[arg(long, value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub approved: Option<bool>,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Who runs a run `polyaxon run` creates.
enum Driver {
    /// A supervisor started here.
    Here,
    /// The agents serving its queue.
    Agents(Vec<String>),
    /// Nobody until it is approved.
    Approval,
}

/// The queue a run goes to: `--queue`, the spec's, the project's, else `default`.
fn queue_of(flag: Option<&str>, spec: Option<&str>, project: &V1Project) -> String {
    use polyaxon_server::api::{project_queue, queue_name};
    flag.or(spec)
        .map(queue_name)
        .or_else(|| project.settings.as_ref().and_then(project_queue))
        .unwrap_or_else(|| "default".into())
}

/// Whether agents serve `queue` (an unknown queue is an error naming it).
pub async fn serving_agents(client: &Client, queue: &str) -> Result<Vec<String>> {
    match client.get_queue(queue).await {
        Ok(q) => Ok(q.agents.unwrap_or_default()),
        Err(e) if e.is_not_found() => Err(UserError::new(format!("unknown queue `{queue}`"))
            .hint("`polyaxon queue ls` lists the queues; `polyaxon queue create NAME` adds one")
            .into()),
        Err(e) => Err(e.into()),
    }
}

/// The project a run goes to: `-p`, the directory's, else (embedded) `default/default`.
async fn project_for_run(ctx: &Ctx, client: &Client, flag: Option<&str>) -> Result<ProjectRef> {
    if flag.is_some() || ctx.settings.project_cache()?.is_some() {
        let p = ctx.project(client, flag).await?;
        if let Err(e) = client.get_project(&p.owner, &p.name).await {
            return Err(crate::context::project_not_found(e, &p));
        }
        return Ok(p);
    }
    if !client.is_embedded() {
        return Err(UserError::new("no project given, and none set up here")
            .hint("pass `-p PROJECT`, or run `polyaxon init -p PROJECT` in this directory")
            .into());
    }
    let p = ProjectRef {
        owner: crate::client::EMBEDDED_USER.into(),
        name: "default".into(),
    };
    if client.get_project(&p.owner, &p.name).await.is_err() {
        let _ = client
            .create_project(
                &p.owner,
                &V1Project {
                    name: Some(p.name.clone()),
                    description: Some("Runs started without a project".into()),
                    ..Default::default()
                },
            )
            .await;
        ctx.printer.note("runs without a project go to `default/default`; choose one with `-p` or `polyaxon init -p PROJECT`");
    }
    Ok(p)
}

/// Compiles the files as `polyaxon check` would; on errors prints them and fails.
fn compile(ctx: &Ctx, args: &RunArgs) -> Result<(Vec<PathBuf>, polyaxonfile::Report)> {
    // `--hub`: an operation that refers to the component, first of the files.
    let _hub_dir;
    let files = if let Some(name) = &args.hub {
        let dir = tempfile::tempdir().context("a temporary directory")?;
        let op = dir
            .path()
            .join(format!("hub {}.yml", name.replace(['/', ':'], "-")));
        let quoted = serde_json::to_string(name)?;
        std::fs::write(
            &op,
            format!("version: 1.1\nkind: operation\nhubRef: {quoted}\n"),
        )
        .context("writing the hub operation")?;
        _hub_dir = dir;
        std::iter::once(op)
            .chain(args.files.iter().cloned())
            .collect()
    } else if args.files.is_empty() {
        match settings::default_file() {
            Some(f) => vec![f],
            None => {
                return Err(UserError::new("no polyaxonfile given and none found here")
                    .hint(format!(
                        "pass one with `-f FILE`, or name it {}",
                        settings::DEFAULT_FILES[..3].join(", ")
                    ))
                    .into());
            }
        }
    } else {
        args.files.clone()
    };
    let mut seen = std::collections::BTreeSet::new();
    for (name, _) in &args.params {
        if !seen.insert(name) {
            return Err(UserError::new(format!("`-P {name}` is given more than once")).into());
        }
    }
    // The connections' catalogue, when a file names connections: templates see it, and the
    // names the spec gives are checked against it.
    let names_connections = files
        .iter()
        .any(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("connection")))
        || args.hub.is_some();
    let catalogue = if names_connections {
        ctx.block_on(async {
            let client = ctx.client().await?;
            Ok::<_, anyhow::Error>(client.list_connections().await?.results)
        })
        .map_err(|e| {
            ctx.printer
                .warn(&format!("the connections cannot be read: {e:#}"));
        })
        .ok()
    } else {
        None
    };
    let opts = polyaxonfile::Options {
        params: args.params.clone(),
        presets: args.presets.clone(),
        preset_dirs: ctx.settings.preset_dirs(),
        hub_dirs: ctx.settings.hub_dirs(),
        url_fetcher: Some(crate::urlref::fetcher(&ctx.settings.home)),
        connections: catalogue
            .as_deref()
            .map(crate::connections::template_context)
            .unwrap_or_default(),
        ..Default::default()
    };
    // `-HP`: the search as a preset over the files.
    let _hp_dir;
    let mut files = files;
    if !args.hparams.is_empty() {
        let dir = tempfile::tempdir().context("a temporary directory")?;
        let preset = dir.path().join("search (from -HP).yml");
        std::fs::write(&preset, hp_preset(args)?).context("writing the search preset")?;
        files.push(preset);
        _hp_dir = dir;
    }
    let mut session = polyaxonfile::Session::new();
    let result = polyaxonfile::check(&mut session, &files, &opts).and_then(|report| {
        // The connections it names, against the catalogue (read only when it names some).
        crate::connections::check_report(report, catalogue.as_deref(), &mut session)
    });
    let warnings = polyaxonfile::Diagnostics(session.warnings.clone());
    if !warnings.is_empty() {
        ctx.printer
            .err(&warnings.render(&session.sources, ctx.printer.color));
    }
    match result {
        Ok(report) => Ok((files, report)),
        Err(diags) => {
            ctx.printer
                .err(&diags.render(&session.sources, ctx.printer.color));
            let shown: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            ctx.printer.err(&format!(
                "{} {} is not valid: nothing was run",
                ctx.printer.paint("1;31", "✗"),
                shown.join(" + ")
            ));
            Err(Reported(1).into())
        }
    }
}

/// The preset `-HP` and the `--matrix-*` flags make: an operation with just a `matrix`.
fn hp_preset(args: &RunArgs) -> Result<String> {
    let mut params = String::new();
    for (name, spec) in &args.hparams {
        let Some((kind, value)) = spec.split_once(':') else {
            return Err(UserError::new(format!("`-HP {name}={spec}` has no kind"))
                .hint("write `-HP NAME=KIND:VALUE`, e.g. `-HP lr=choice:[0.1,0.01]` or `-HP bs=range:16:128:16`")
                .into());
        };
        let value = value.trim();
        let value = if value.starts_with('[') {
            value.to_string()
        } else {
            serde_json::to_string(value)?
        };
        params.push_str(&format!(
            "    {}: {{kind: {}, value: {value}}}\n",
            serde_json::to_string(name)?,
            serde_json::to_string(kind.trim())?
        ));
    }
    let mut text = format!(
        "version: 1.1\nkind: operation\nisPreset: true\nmatrix:\n  kind: {}\n",
        serde_json::to_string(args.matrix_kind.as_deref().unwrap_or("grid"))?
    );
    if let Some(c) = args.matrix_concurrency {
        text.push_str(&format!("  concurrency: {c}\n"));
    }
    if let Some(n) = args.matrix_num_runs {
        text.push_str(&format!("  numRuns: {n}\n"));
    }
    text.push_str("  params:\n");
    text.push_str(&params);
    Ok(text)
}

/// The operation to store: the checked tree with the `-P` values as its params.
fn content(report: &polyaxonfile::Report) -> Result<String> {
    let mut op = controller::plan::operation_json(&report.prepared);
    let compiled = report.compiled.as_ref().context("compiled")?;
    if let Some(obj) = op.as_object_mut() {
        let params = obj.entry("params").or_insert_with(|| J::Object(Map::new()));
        if let Some(params) = params.as_object_mut() {
            for v in compiled
                .values
                .iter()
                .filter(|v| v.source == polyaxonfile::compile::ValueSource::Cli)
            {
                params.insert(v.name.clone(), json!({"value": v.value}));
            }
        }
    }
    Ok(serde_json::to_string(&op)?)
}

pub fn run(ctx: &Ctx, args: RunArgs) -> Result<()> {
    crate::timing::mark("run: start");
    let (_files, report) = compile(ctx, &args)?;
    crate::timing::mark("run: compiled");
    let compiled = report.compiled.as_ref().context("compiled")?;
    if let Some(m) = &compiled.operation.matrix {
        // Unsupported kinds are refused before anything is created.
        if let Err(e) = crate::scheduler::tuner::check(m) {
            return Err(UserError::new(e)
                .hint("run one trial by removing `matrix` and passing values with `-P`")
                .into());
        }
    }
    let content = content(&report)?;
    if args.dry_run {
        return dry_run(ctx, &args, &content);
    }
    let cwd = std::env::current_dir().context("the current directory")?;
    let code_dir = report.prepared.dir.clone();
    let code_dir = if code_dir.as_os_str().is_empty() {
        cwd.clone()
    } else {
        std::path::absolute(&code_dir).unwrap_or(code_dir)
    };
    ctx.block_on(async {
        let client = ctx.client().await?;
        crate::timing::mark("run: store open");
        // The executor starts now (the store is open and up to date) and gets ready while
        // the code is snapshot and the run created.
        let executor = ctx.settings.executor(args.executor.as_deref())?;
        let p = project_for_run(ctx, &client, args.project.as_deref()).await?;
        crate::timing::mark("run: project");
        let project = client.get_project(&p.owner, &p.name).await.unwrap_or_default();
        let queue = queue_of(args.queue.as_deref(), compiled.operation.queue.as_deref(), &project);
        let approval = args.approved.or(compiled.operation.is_approved) == Some(false);
        let driver = if approval {
            Driver::Approval
        } else if args.local {
            Driver::Here
        } else {
            match serving_agents(&client, &queue).await? {
                a if a.is_empty() => Driver::Here,
                a => Driver::Agents(a),
            }
        };
        crate::timing::mark("run: queue");
        let standby = match driver {
            Driver::Here => Some(Standby::spawn(&ctx.settings, executor)?),
            _ => None,
        };
        // The code snapshot, the run with it, then the snapshot named after the run.
        let upload = args.upload || args.upload_from.is_some() || args.upload_to.is_some();
        let mut meta = RunMeta {
            executor_kind: Some(executor),
            stdout_metrics: Some(args.stdout_metrics),
            upload: Some(upload),
            cache: match (args.cache, args.nocache) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            ..Default::default()
        };
        let code = snapshot::snapshot_unpinned(&code_dir, &ctx.settings.home)
            .context("snapshotting the code")?;
        crate::timing::mark("run: snapshot");
        match &code {
            Some(c) => meta.code_ref = Some(c.clone()),
            None => {
                ctx.printer.note(&format!(
                    "`{}` is not in a git repository: no code snapshot; the job runs in it as it is",
                    code_dir.display()
                ));
                meta.cwd = Some(code_dir.display().to_string());
            }
        }
        let created = client
            .create_run(
                &p.owner,
                &p.name,
                &V1OperationBody {
                    content: Some(content.clone()),
                    is_managed: Some(true),
                    managed_by: Some("cli".into()),
                    name: args.name.clone(),
                    description: args.description.clone(),
                    tags: args.tags.as_deref().map(split_tags),
                    meta_info: Some(meta.to_map()),
                    pending: None,
                    is_approved: approval.then_some(false),
                    queue: Some(queue.clone()),
                    priority: args.priority,
                    agent: standby.is_some().then(controller::local_holder),
                },
            )
            .await
            .map_err(|e| crate::context::project_not_found(e, &p))?;
        let r = RunRef {
            owner: p.owner.clone(),
            project: p.name.clone(),
            uuid: created.uuid.clone().unwrap_or_default(),
        };
        crate::timing::mark("run: created");
        if upload {
            let from = args.upload_from.clone().unwrap_or_else(|| code_dir.clone());
            let to = args.upload_to.clone().unwrap_or_else(|| "uploads".into());
            if let Err(e) = upload_code(ctx, &client, &r, &from, &to, code.as_ref()).await {
                let _ = client
                    .add_status(&r, RunStatus::Failed, "UploadFailed", &format!("{e:#}"), None)
                    .await;
                return Err(e.context(format!("run `{}` failed: its code could not be uploaded", r.uuid)));
            }
        }
        // The executor first (it queues the run and starts the job); the rest meanwhile.
        if let Some(standby) = standby {
            standby.hand(&r)?;
        }
        if !client.is_embedded() {
            // Runs of this machine left active by a supervisor that died (the embedded store
            // is looked at whenever it is opened).
            controller::orphans::reap_remote(&client, &r.owner, &r.project).await;
        }
        crate::timing::mark("run: executor spawned");
        ctx.remember_run(&r, created.name.as_deref());
        if let Some(c) = &code {
            snapshot::pin(c, &r.uuid).context("naming the code snapshot")?;
        }
        let name = created.name.clone().unwrap_or_else(|| "run".into());
        if args.output.format() != Format::Table {
            let run = client.get_run(&r).await?;
            if !args.output.write_file(&ctx.printer, &crate::commands::ops::to_json(&run))? {
                crate::output::detail(&ctx.printer, args.output.format(), &crate::commands::ops::to_json(&run), &[])?;
            }
        } else {
            match &driver {
                Driver::Here => {
                    if !client.is_embedded() && !args.local {
                        ctx.printer.note(&format!(
                            "no agent serves queue `{queue}`: the run runs here"
                        ));
                    }
                    ctx.printer.success(&format!(
                        "run `{name}` ({}) started in `{}/{}` on the {} executor",
                        r.uuid, r.owner, r.project, executor
                    ));
                }
                Driver::Agents(a) => ctx.printer.success(&format!(
                    "run `{name}` ({}) queued on `{queue}` in `{}/{}`, for {} ({})",
                    r.uuid,
                    r.owner,
                    r.project,
                    if a.len() == 1 { "its agent" } else { "its agents" },
                    a.join(", ")
                )),
                Driver::Approval => ctx.printer.success(&format!(
                    "run `{name}` ({}) created in `{}/{}`: it waits for approval (`polyaxon ops approve --uid {}`)",
                    r.uuid, r.owner, r.project, r.uuid
                )),
            }
        }
        if !args.logs && !args.watch {
            if args.output.format() == Format::Table {
                ctx.printer.note("follow it with `polyaxon logs`, see it with `polyaxon ops get`, stop it with `polyaxon ops stop`");
            }
            return Ok(());
        }
        let op = &compiled.operation;
        let watch = match (&op.schedule, &op.matrix, &op.run) {
            (Some(_), _, _) => follow::Watch::Children,
            (None, Some(m), _) => follow::Watch::Search(controller::search::objective(m)),
            (None, None, Some(polyaxonfile::spec::Run::Dag(_))) => follow::Watch::Children,
            _ => follow::Watch::Statuses,
        };
        follow::follow_run(ctx, &client, &r, &args, watch).await
    })
}

/// `polyaxon run --dry-run`: the manifests of the run, printed.
fn dry_run(ctx: &Ctx, args: &RunArgs, content: &str) -> Result<()> {
    let (owner, project) = match args.project.as_deref() {
        Some(p) => match p.split_once('/') {
            Some((o, n)) => (o.to_string(), n.to_string()),
            None => (
                ctx.settings
                    .client
                    .owner
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                p.to_string(),
            ),
        },
        None => match ctx.settings.project_cache()? {
            Some(c) => (c.owner, c.name),
            None => ("default".into(), "default".into()),
        },
    };
    let r = RunRef {
        owner,
        project,
        uuid: polyaxon_server::store::new_uuid(),
    };
    let m = controller::dry_run::manifests(&ctx.settings, content, &r, args.name.as_deref())?;
    for n in &m.notes {
        ctx.printer.warn(&format!("note: {n}"));
    }
    match args.output.format() {
        Format::Json => ctx
            .printer
            .out(&serde_json::to_string_pretty(&J::Array(m.objects.clone()))?)?,
        _ => ctx.printer.out(m.to_yaml().trim_end())?,
    }
    Ok(())
}

/// `polyaxon run -u`: packs `from` and unpacks it into the run's artifacts at `to`.
async fn upload_code(
    ctx: &Ctx,
    client: &Client,
    r: &RunRef,
    from: &std::path::Path,
    to: &str,
    code: Option<&snapshot::CodeRef>,
) -> Result<()> {
    let packed = crate::upload::pack(from, code)?;
    let size = crate::output::human_bytes(packed.size);
    let spinner = ctx.printer.spinner(format!(
        "uploading {} files ({size}) to `{to}`",
        packed.files
    ));
    let res = client
        .upload_artifacts(r, Some(to.trim_matches('/')), packed.bytes.into())
        .await;
    spinner.finish_and_clear();
    res?;
    let skipped = if packed.skipped > 0 {
        format!("; {} links and special files left out", packed.skipped)
    } else {
        String::new()
    };
    ctx.printer.note(&format!(
        "uploaded {} files ({size}) to `{}` in the run's artifacts{skipped}",
        packed.files,
        if to.trim_matches('/').is_empty() {
            "/"
        } else {
            to.trim_matches('/')
        }
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hp_flags_make_a_search_preset() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            run: RunArgs,
        }
        let t = T::parse_from([
            "t",
            "--hparam",
            "lr=loguniform:-9:-2",
            "--hparam",
            "act=choice:[relu,tanh]",
            "--matrix-kind",
            "random",
            "--matrix-num-runs",
            "5",
        ]);
        let text = hp_preset(&t.run).unwrap();
        assert!(text.contains("kind: \"random\""), "{text}");
        assert!(text.contains("numRuns: 5"), "{text}");
        assert!(
            text.contains("\"lr\": {kind: \"loguniform\", value: \"-9:-2\"}"),
            "{text}"
        );
        assert!(
            text.contains("\"act\": {kind: \"choice\", value: [relu,tanh]}"),
            "{text}"
        );
        let bad = T::parse_from(["t", "--hparam", "lr=0.1"]);
        assert!(hp_preset(&bad.run).is_err());
    }
}
