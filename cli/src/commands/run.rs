//! `polyaxon run`: check a polyaxonfile, snapshot the code, create the run, and start it on an
//! executor in the background (`polyaxon ops execute`); with `-l`/`-w`, follow it here.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use http::Method;
use polyaxon_server::api::{V1OperationBody, V1Project, V1Run};
use serde_json::{Map, Value as J, json};

use crate::client::{Client, RunRef};
use crate::commands::check::parse_param;
use crate::commands::ops::logs::{LogsArgs, follow};
use crate::commands::{OutputArgs, split_tags};
use crate::context::{Ctx, ProjectRef};
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

    #[command(flatten)]
    pub output: OutputArgs,
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
    let files = if args.files.is_empty() {
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
    let opts = polyaxonfile::Options {
        params: args.params.clone(),
        presets: args.presets.clone(),
        preset_dirs: settings::preset_dirs(),
        hub_dirs: settings::hub_dirs(),
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
    let result = polyaxonfile::check(&mut session, &files, &opts);
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

/// The operation to store: the checked tree with the `-P` values as its params.
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

fn content(report: &polyaxonfile::Report) -> Result<String> {
    let node = if report.prepared.legacy {
        polyaxonfile::v06::for_output(&report.prepared.node)
    } else {
        report.prepared.node.clone()
    };
    let mut op = node.to_json();
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

/// Starts `polyaxon ops execute` for the run in the background, detached from this terminal
/// (its own process group: Ctrl-C here does not reach it), its own output in a log file.
pub fn spawn_executor(ctx: &Ctx, r: &RunRef, executor: &str) -> Result<()> {
    let pending = Standby::spawn(ctx, executor)?;
    pending.hand(r)
}

/// An executor started before its run exists (`ops execute --run-from-stdin`): it opens the
/// store while this process snapshots the code and creates the run, then gets the run on its
/// stdin ([`Standby::hand`]). Dropped unhanded, it reads end-of-file and exits, and its log
/// is removed.
pub struct Standby {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    log: std::path::PathBuf,
}

impl Standby {
    pub fn spawn(ctx: &Ctx, executor: &str) -> Result<Standby> {
        let exe = std::env::current_exe().context("finding the polyaxon binary")?;
        let logs = ctx.settings.home.join("executors");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating `{}`", logs.display()))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        // Kept apart until named: a small directory to look through for leftovers.
        let pending = logs.join("pending");
        std::fs::create_dir_all(&pending)
            .with_context(|| format!("creating `{}`", pending.display()))?;
        remove_stale_pending(&pending);
        let log_path = pending.join(format!("{}-{nanos}.log", std::process::id()));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating `{}`", log_path.display()))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.args(["ops", "execute", "--run-from-stdin", "--executor", executor])
            .stdin(std::process::Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log);
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().context("starting the executor")?;
        let stdin = child.stdin.take();
        Ok(Standby {
            child,
            stdin,
            log: log_path,
        })
    }

    /// Gives the executor its run: it starts it at once.
    pub fn hand(mut self, r: &RunRef) -> Result<()> {
        use std::io::Write;
        let logs = self
            .log
            .parent()
            .and_then(|p| p.parent())
            .context("the executors' directory")?;
        let named = logs.join(format!("{}.log", r.uuid));
        std::fs::rename(&self.log, &named)
            .with_context(|| format!("naming the executor's log `{}`", named.display()))?;
        self.log = named;
        let mut stdin = self.stdin.take().context("the executor's input")?;
        writeln!(stdin, "{}/{} {}", r.owner, r.project, r.uuid)
            .and_then(|_| stdin.flush())
            .context("handing the run to its executor")?;
        self.log = std::path::PathBuf::new();
        Ok(())
    }
}

/// Logs of standby executors whose `polyaxon run` died before handing them a run.
fn remove_stale_pending(logs: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(logs) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        if self.stdin.take().is_some() {
            // Not handed a run: it exits on end-of-file; its log says nothing worth keeping.
            let _ = self.child.wait();
            let _ = std::fs::remove_file(&self.log);
        }
    }
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
    if let Some(polyaxonfile::spec::Run::Dag(_)) = &compiled.operation.run {
        return Err(
            UserError::new("this operation is a DAG, which this version cannot run yet").into(),
        );
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
        let executor = crate::settings::executor(args.executor.as_deref(), &ctx.settings.client)?;
        let standby = Standby::spawn(ctx, executor)?;
        let p = project_for_run(ctx, &client, args.project.as_deref()).await?;
        crate::timing::mark("run: project");
        // The code snapshot, the run with it, then the snapshot named after the run.
        let upload = args.upload || args.upload_from.is_some() || args.upload_to.is_some();
        let mut meta = json!({"executor_kind": executor, "stdout_metrics": args.stdout_metrics, "upload": upload});
        let code = snapshot::snapshot_unpinned(&code_dir).context("snapshotting the code")?;
        crate::timing::mark("run: snapshot");
        match &code {
            Some(c) => meta["code_ref"] = serde_json::to_value(c)?,
            None => {
                ctx.printer.note(&format!(
                    "`{}` is not in a git repository: no code snapshot; the job runs in it as it is",
                    code_dir.display()
                ));
                meta["cwd"] = J::String(code_dir.display().to_string());
            }
        }
        let meta = match meta {
            J::Object(m) => m,
            _ => Map::new(),
        };
        let created: V1Run = client
            .json(
                Method::POST,
                &format!(
                    "/api/v1/{}/{}/runs",
                    crate::client::seg(&p.owner),
                    crate::client::seg(&p.name)
                ),
                Some(&V1OperationBody {
                    content: Some(content.clone()),
                    is_managed: Some(true),
                    managed_by: Some("cli".into()),
                    name: args.name.clone(),
                    description: args.description.clone(),
                    tags: args.tags.as_deref().map(split_tags),
                    meta_info: Some(meta),
                    pending: None,
                }),
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
                    .json::<J>(
                        Method::POST,
                        &r.api("/statuses"),
                        Some(&json!({"condition": {"type": "failed", "status": "True", "reason": "UploadFailed", "message": format!("{e:#}")}})),
                    )
                    .await;
                return Err(e.context(format!("run `{}` failed: its code could not be uploaded", r.uuid)));
            }
        }
        // The executor first (it queues the run and starts the job); the rest meanwhile.
        standby.hand(&r)?;
        if !client.is_embedded() {
            // Runs of this machine left active by a supervisor that died (the embedded store
            // is looked at whenever it is opened).
            crate::supervisor::reap_remote_orphans(&client, &r.owner, &r.project).await;
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
            ctx.printer.success(&format!(
                "run `{name}` ({}) started in `{}/{}` on the {} executor",
                r.uuid, r.owner, r.project, executor
            ));
        }
        if !args.logs && !args.watch {
            if args.output.format() == Format::Table {
                ctx.printer.note("follow it with `polyaxon logs`, see it with `polyaxon ops get`, stop it with `polyaxon ops stop`");
            }
            return Ok(());
        }
        let search = compiled
            .operation
            .matrix
            .as_ref()
            .map(crate::scheduler::drive::objective);
        follow_run(ctx, &client, &r, &args, search).await
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
    let m = crate::supervisor::dry_run(ctx, content, &r, args.name.as_deref())?;
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
    let spinner = if ctx.printer.interactive {
        let pb = indicatif::ProgressBar::new_spinner().with_message(format!(
            "uploading {} files ({}) to `{}`",
            packed.files,
            crate::commands::ops::artifacts::human_bytes(packed.size),
            to
        ));
        pb.enable_steady_tick(std::time::Duration::from_millis(100));
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let path = crate::client::with_query(
        &format!(
            "/api/v1/{}/{}/runs/{}/artifacts/upload",
            crate::client::seg(&r.owner),
            crate::client::seg(&r.project),
            r.uuid
        ),
        &[
            ("path", to.trim_matches('/').to_string()),
            ("untar", "true".into()),
            ("overwrite", "true".into()),
        ],
    );
    let res = client
        .call(
            Method::POST,
            &path,
            Some((bytes::Bytes::from(packed.bytes), "application/gzip")),
        )
        .await;
    spinner.finish_and_clear();
    res?;
    let skipped = if packed.skipped > 0 {
        format!("; {} links and special files left out", packed.skipped)
    } else {
        String::new()
    };
    ctx.printer.note(&format!(
        "uploaded {} files ({}) to `{}` in the run's artifacts{skipped}",
        packed.files,
        crate::commands::ops::artifacts::human_bytes(packed.size),
        if to.trim_matches('/').is_empty() {
            "/"
        } else {
            to.trim_matches('/')
        }
    ));
    Ok(())
}

/// Follows a started run here: its logs (`-l`) or statuses (`-w`) until it ends. The first
/// Ctrl-C stops the run (and keeps following until it has stopped); a second one leaves.
async fn follow_run(
    ctx: &Ctx,
    client: &Client,
    r: &RunRef,
    args: &RunArgs,
    search: Option<Option<polyaxonfile::spec::OptimizationMetric>>,
) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(4);
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if tx.send(()).await.is_err() {
                break;
            }
        }
    });
    let mut stopping = false;
    let mut cursor = crate::commands::ops::logs::Cursor::default();
    let status = loop {
        let ended = if args.logs {
            let la = LogsArgs {
                run: None,
                no_follow: false,
                hide_time: true,
                all_info: false,
            };
            let f = follow(ctx, client, r, &la, true, &mut cursor, Some(&mut rx)).await?;
            f.ended.then_some(f.status)
        } else if let Some(metric) = &search {
            watch_search(ctx, client, r, metric.as_ref(), &mut rx).await?
        } else {
            watch_statuses(ctx, client, r, &mut rx).await?
        };
        match ended {
            Some(s) => break s,
            None if !stopping => {
                stopping = true;
                ctx.printer.warn(&format!(
                    "stopping run `{}` (Ctrl-C again to leave it stopping in the background)",
                    r.uuid
                ));
                let _ = client.stop_run(r).await;
            }
            None => {
                ctx.printer.note(&format!(
                    "left run `{}` stopping; `polyaxon ops statuses -w` follows it",
                    r.uuid
                ));
                return Err(Reported(130).into());
            }
        }
    };
    let run = client.get_run(r).await?;
    let why = run
        .status_conditions
        .as_ref()
        .and_then(|c| c.last())
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    match status.as_str() {
        "succeeded" => {
            ctx.printer
                .success(&format!("run `{}` succeeded {}", r.uuid, paren(&why)));
            Ok(())
        }
        other => {
            ctx.printer.error(
                &format!("run `{}` {other} {}", r.uuid, paren(&why)),
                Some("`polyaxon ops statuses` shows its history, `polyaxon logs` its output"),
            );
            Err(Reported(1).into())
        }
    }
}

fn paren(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("({s})")
    }
}

/// Prints each new status until the run ends (`Some(status)`) or an interrupt (`None`).
async fn watch_statuses(
    ctx: &Ctx,
    client: &Client,
    r: &RunRef,
    rx: &mut tokio::sync::mpsc::Receiver<()>,
) -> Result<Option<String>> {
    let mut seen = 0usize;
    loop {
        let st = client.statuses(r).await?;
        for c in st.status_conditions.iter().skip(seen) {
            let why = [c.reason.as_deref(), c.message.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            let kind = format!("{:<10}", c.kind);
            let kind = match (
                ctx.printer.color_out(),
                crate::output::status_color(&c.kind),
            ) {
                (true, Some(code)) => format!("\x1b[{code}m{kind}\x1b[0m"),
                _ => kind,
            };
            ctx.printer.out(format!("{kind}  {why}").trim_end())?;
        }
        seen = st.status_conditions.len();
        if crate::commands::ops::is_done(&st.status) {
            return Ok(Some(st.status));
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            got = rx.recv() => if got.is_some() { return Ok(None) },
        }
    }
}

/// A search's trials as they start and end, then all of them, best first. `None` on an
/// interrupt.
async fn watch_search(
    ctx: &Ctx,
    client: &Client,
    r: &RunRef,
    metric: Option<&polyaxonfile::spec::OptimizationMetric>,
    rx: &mut tokio::sync::mpsc::Receiver<()>,
) -> Result<Option<String>> {
    use crate::output::{Cell, Col, Table};
    let mut seen: std::collections::BTreeMap<String, String> = Default::default();
    let q = crate::client::ListQuery {
        query: Some(format!("pipeline: {}", r.uuid)),
        sort: Some("created_at".into()),
        limit: Some(1000),
        ..Default::default()
    };
    let metric_of = |t: &V1Run| {
        metric.and_then(|m| {
            t.outputs
                .as_ref()
                .and_then(|o| o.get(&m.name))
                .and_then(J::as_f64)
        })
    };
    let params_of = |t: &V1Run| {
        t.inputs
            .as_ref()
            .map(|i| {
                i.iter()
                    .map(|(k, v)| format!("{k}={}", crate::output::value_text(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    loop {
        let parent = client.get_run(r).await?;
        let trials = client.list_runs(&r.owner, &r.project, &q).await?.results;
        let mut lines = String::new();
        for t in &trials {
            let uuid = t.uuid.clone().unwrap_or_default();
            let status = t.status.clone().unwrap_or_default();
            if seen.get(&uuid) == Some(&status) {
                continue;
            }
            seen.insert(uuid, status.clone());
            let shown = match (metric, metric_of(t)) {
                (Some(m), Some(v)) => format!("  {}={}", m.name, crate::output::short_float(v)),
                _ => String::new(),
            };
            lines.push_str(&format!(
                "{:<16} {:<10} {}{shown}\n",
                t.name.clone().unwrap_or_default(),
                status,
                params_of(t)
            ));
        }
        if !lines.is_empty() {
            ctx.printer.out(lines.trim_end())?;
        }
        let status = parent.status.clone().unwrap_or_default();
        if crate::commands::ops::is_done(&status) {
            let mut sorted: Vec<&V1Run> = trials.iter().collect();
            if let Some(m) = metric {
                sorted.sort_by(|a, b| {
                    crate::scheduler::tuner::best_first(m, metric_of(a), metric_of(b))
                });
            }
            let mut cols = vec![Col::new("trial"), Col::new("status"), Col::new("params")];
            if let Some(m) = metric {
                cols.push(Col::new(&m.name));
            }
            let mut table = Table::new(cols);
            for t in &sorted {
                let st = t.status.clone().unwrap_or_default();
                let mut row: Vec<Cell> = vec![
                    t.name.clone().unwrap_or_default().into(),
                    Cell::painted(st.clone(), crate::output::status_color(&st)),
                    params_of(t).into(),
                ];
                if metric.is_some() {
                    row.push(
                        metric_of(t)
                            .map(crate::output::short_float)
                            .unwrap_or_default()
                            .into(),
                    );
                }
                table.push(row);
            }
            if !table.rows.is_empty() {
                ctx.printer.out("")?;
                ctx.printer
                    .out(&table.render(crate::output::term_width(), ctx.printer.color_out()))?;
            }
            return Ok(Some(status));
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(300)) => {}
            got = rx.recv() => if got.is_some() { return Ok(None) },
        }
    }
}

/// `polyaxon ops execute`: runs a created run here, in the foreground.
#[derive(Debug, Args)]
pub struct ExecuteArgs {
    /// Where the job runs: `process` (this machine), `docker` or `kubernetes` (`k8s`).
    #[arg(
        long = "executor",
        visible_alias = "exc",
        value_name = "EXECUTOR",
        default_value = "process"
    )]
    pub executor: String,
    /// Wait for the run on standard input (`OWNER/PROJECT UUID`), the store opened
    /// meanwhile; end-of-file exits quietly (what `polyaxon run` uses).
    #[arg(long, hide = true)]
    pub run_from_stdin: bool,
}

pub fn execute(ctx: &Ctx, target: &crate::commands::ops::Target, args: ExecuteArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        if args.run_from_stdin {
            let client = crate::client::Client::connect_with(&ctx.settings, false).await?;
            crate::timing::mark("execute: store open");
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the run to execute")?;
            let Some((project, uuid)) = line.trim().split_once(' ') else {
                return Ok(()); // no run: `polyaxon run` did not get as far as creating one
            };
            let Some((owner, project)) = project.split_once('/') else {
                anyhow::bail!(
                    "expected `OWNER/PROJECT UUID` on standard input, got `{}`",
                    line.trim()
                );
            };
            let r = RunRef {
                owner: owner.to_string(),
                project: project.to_string(),
                uuid: uuid.replace('-', ""),
            };
            return report_outcome(
                ctx,
                &r,
                crate::supervisor::execute(ctx, client, &r, &args.executor).await?,
            );
        }
        // `OWNER/PROJECT` and a uuid (as `polyaxon run` passes them) need no lookup.
        let r = match (
            target.project.as_deref().and_then(|p| p.split_once('/')),
            target.uid.as_deref(),
        ) {
            (Some((owner, project)), Some(uid)) if !owner.is_empty() && !project.is_empty() => {
                RunRef {
                    owner: owner.to_string(),
                    project: project.to_string(),
                    uuid: uid.replace('-', ""),
                }
            }
            _ => {
                let client = ctx.client().await?;
                ctx.run(&client, target.project.as_deref(), target.uid.as_deref())
                    .await?
            }
        };
        let client = crate::client::Client::connect_with(&ctx.settings, false).await?;
        crate::timing::mark("execute: store open");
        report_outcome(
            ctx,
            &r,
            crate::supervisor::execute(ctx, client, &r, &args.executor).await?,
        )
    })
}

fn report_outcome(ctx: &Ctx, r: &RunRef, outcome: crate::supervisor::Outcome) -> Result<()> {
    match outcome {
        crate::supervisor::Outcome::Succeeded => Ok(()),
        crate::supervisor::Outcome::Failed(why) | crate::supervisor::Outcome::Stopped(why) => {
            ctx.printer.err(&format!("run `{}` ended: {why}", r.uuid));
            Err(Reported(1).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_standby_logs_of_dead_runs_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let dead = d.path().join("4194303999-1.log");
        let alive = d.path().join(format!("{}-2.log", std::process::id()));
        let other = d.path().join("notes.txt");
        for f in [&dead, &alive, &other] {
            std::fs::write(f, "x").unwrap();
        }
        remove_stale_pending(d.path());
        assert!(!dead.exists());
        assert!(alive.exists() && other.exists());
    }

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
