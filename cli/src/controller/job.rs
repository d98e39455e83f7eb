//! The job controller: a job or a service, driven through the phases — its code prepared,
//! its job planned for the executor, its image made ready, the API it reports to, the env
//! contract, then attempts until one ends the run.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use polyaxon_server::api::V1Run;

use super::plan::{self, RunSpec};
use super::{Ctl, Outcome, attempt, prepare};
use crate::error::UserError;
use crate::executor::Place;

/// Runs the job of `spec` to its end; `dir` is the run's directory here.
pub async fn drive(
    ctl: &Ctl<'_>,
    run: &V1Run,
    spec: &RunSpec,
    dir: &Path,
    claim: tokio::task::JoinHandle<Result<()>>,
) -> Result<Outcome> {
    let r = &ctl.api.r;
    let caps = ctl.executor.capabilities();
    let op = &spec.compiled.operation;
    let meta = run.meta();
    if let Some(req) = super::builder::request(op)? {
        return super::builder::drive(ctl, run, spec, dir, claim, req).await;
    }
    let mut claim = Some(claim);
    if ctl.adopt.is_none() && super::cache::enabled(spec, &meta) {
        // The claim first: a cache hit ends the run, after its `queued`.
        if let Some(c) = claim.take() {
            c.await.context("claiming the run")??;
        }
        if let Some(o) = super::cache::lookup(ctl, run, spec).await? {
            return Ok(o);
        }
    }
    // The code: the snapshot written out, or the directory the run was started from.
    let code_dir = prepare::code(&meta, dir)?;
    crate::timing::mark("execute: code written");
    let job_code_dir = if caps.in_image() {
        match code_dir.strip_prefix(dir) {
            Ok(rel) => spec.job_dir.join(rel),
            // Run from its directory (no git): the container sees it mounted at `code/`.
            Err(_) => spec.job_dir.join("code"),
        }
    } else {
        code_dir.clone()
    };
    let mut plan = plan::plan(op, r, &job_code_dir, dir, caps)?;
    plan.job.spec = Some(Arc::new(op.clone()));
    plan.job.owner = r.owner.clone();
    plan.job.project = r.project.clone();
    plan.job.name = run.name.clone();
    if caps.retries_itself {
        // Where the job runs retries it (backoffLimit) and enforces the deadline
        // (activeDeadlineSeconds).
        plan.max_retries = 0;
        plan.timeout = None;
    }
    if caps.place == Place::Container {
        plan.job
            .mounts
            .push((dir.to_path_buf(), spec.job_dir.clone()));
        if !code_dir.starts_with(dir) {
            plan.job
                .mounts
                .push((code_dir.clone(), spec.job_dir.join("code")));
        }
        plan.job.user = Some(format!(
            "{}:{}",
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw()
        ));
    }
    prepare::image(ctl, op, &code_dir, &mut plan).await?;
    if meta.stdout_metrics == Some(true) {
        plan.stdout_metrics = true;
    }

    let host = api_host(ctl, caps.place).await?;
    crate::timing::mark("execute: api served");
    let token = ctl.api.client.run_token(r).await?;
    let mut env = plan::contract_env(
        r,
        &host,
        Some(&token),
        &spec.job_root,
        &spec.job_dir,
        &spec.compiled,
    );
    if caps.place == Place::Cluster {
        // The manifests carry the container's own env (with its `valueFrom`s) after these.
        plan.job.env = env;
        // An adopted job has its code already.
        if ctl.adopt.is_none() && (code_dir.starts_with(dir) || meta.cwd.is_some()) {
            prepare::upload_code(&ctl.api, &code_dir).await?;
            plan.job.uploaded_code = true;
        }
    } else {
        // What the user set wins over the contract, as in a container.
        let user_keys: Vec<String> = plan.job.env.iter().map(|(k, _)| k.clone()).collect();
        env.retain(|(k, _)| !user_keys.contains(k));
        env.append(&mut plan.job.env);
        plan.job.env = env;
    }

    for n in &plan.notes {
        ctl.printer.err(&format!("note: {n}"));
    }
    if let Some(c) = claim.take() {
        c.await.context("claiming the run")??;
    }
    crate::timing::mark("execute: claimed");
    // Init steps on this machine (a cluster runs them as init containers).
    if caps.place != Place::Cluster && ctl.adopt.is_none() {
        let dirs = super::init::Dirs {
            host: dir,
            job: &spec.job_dir,
            on_host: caps.place == Place::Host,
        };
        for n in super::init::run(&ctl.api, op, &dirs).await? {
            ctl.printer.err(&format!("note: {n}"));
        }
    }
    plan.cache_key = Some(super::cache::key(spec, &meta));
    attempt::run(ctl, &plan, dir).await
}

/// The API the job reports to: the server itself (remote; for a cluster, as its pods reach
/// it), or this process serving the embedded store on a local port.
async fn api_host(ctl: &Ctl<'_>, place: Place) -> Result<String> {
    let on_cluster = place == Place::Cluster;
    let kube_host = on_cluster
        .then(|| ctl.settings.kube.api_host.clone())
        .flatten();
    if on_cluster && kube_host.is_none() && ctl.settings.host.is_none() {
        return Err(UserError::new(
            "the kubernetes executor needs a server its pods can reach; this CLI uses the embedded store",
        )
        .hint("deploy one (`polyaxon admin deploy`) and `polyaxon config set --host URL`, or set POLYAXON_K8S_API_HOST")
        .into());
    }
    match (
        kube_host.as_ref().or(ctl.settings.host.as_ref()),
        ctl.api.client.embedded_app(),
    ) {
        (Some(h), _) => Ok(h.clone()),
        (None, Some(app)) => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("opening a local port for the job's API")?;
            let addr = listener.local_addr()?;
            let app = app.clone();
            tokio::spawn(async move {
                let _ = polyaxon_server::serve(listener, app, std::future::pending()).await;
            });
            Ok(format!("http://{addr}"))
        }
        (None, None) => anyhow::bail!("the embedded store is not open"),
    }
}
