//! `polyaxon run --dry-run`: the manifests `--executor kubernetes` would submit for a spec,
//! without a cluster or a run (the token is a placeholder, the code an upload).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use polyaxon_server::api::V1Run;

use super::{plan, prepare};
use crate::client::RunRef;
use crate::error::UserError;
use crate::executor::Job;
use crate::executor::kubernetes as k8s;
use crate::settings::Settings;

/// The tag a dry run shows for an image built when the run starts.
pub const DRY_RUN_TAG: &str = "built-when-the-run-starts";

/// The manifests of `content` as run `r` named `name`.
pub fn manifests(
    settings: &Settings,
    content: &str,
    r: &RunRef,
    name: Option<&str>,
) -> Result<k8s::manifests::Manifests> {
    let job_root = PathBuf::from(k8s::manifests::CONTEXT_ROOT);
    let job_dir = job_root.join("artifacts").join(&r.uuid);
    let run = V1Run {
        uuid: Some(r.uuid.clone()),
        name: name.map(str::to_string),
        created_at: Some(polyaxon_server::api::time(crate::executor::now_micros())),
        ..Default::default()
    };
    let report = plan::compile(
        settings,
        "the polyaxonfile",
        "the spec does not compile",
        content,
        plan::globals(r, &run, &job_root, &job_dir),
        Default::default(),
    )?;
    let compiled = report.compiled.context("compiled")?;
    if compiled.operation.matrix.is_some() {
        return Err(UserError::new(
            "a search has no manifests of its own: each trial gets its own when it starts",
        )
        .hint("print one trial's: remove `matrix` and pass its values with `-P`")
        .into());
    }
    if let Some(polyaxonfile::spec::Run::Dag(_)) = &compiled.operation.run {
        return Err(UserError::new(
            "this operation is a DAG: it has no manifests of its own, each of its operations gets its own when it starts",
        )
        .hint("print one operation's: run its component alone with `--dry-run`")
        .into());
    }
    let manifest_settings = k8s::manifests::Settings::of(&settings.kube);
    let plan = plan::plan(
        &compiled.operation,
        r,
        &job_dir.join("code"),
        &job_dir,
        k8s::capabilities(&manifest_settings),
    )?;
    let host = settings
        .kube
        .api_host
        .clone()
        .or_else(|| settings.host.clone())
        .unwrap_or_else(|| crate::deploy::IN_CLUSTER_API.to_string());
    let env = plan::contract_env(r, &host, None, &job_root, &job_dir, &compiled);
    let namespace = settings
        .kube
        .namespace
        .clone()
        .or_else(k8s::kubeconfig_namespace)
        .unwrap_or_else(|| "default".into());
    let mut job = Job {
        uuid: r.uuid.clone(),
        spec: Some(Arc::new(compiled.operation.clone())),
        name: name
            .map(str::to_string)
            .or_else(|| compiled.operation.name.clone()),
        owner: r.owner.clone(),
        project: r.project.clone(),
        env,
        uploaded_code: true,
        ..plan.job
    };
    let mut notes = vec![];
    if prepare::describes_image(&compiled.operation) {
        let registry = prepare::push_registry(settings)?;
        let (repo, _) = registry.target(&prepare::image_name(&compiled.operation));
        job.image = Some(format!("{repo}:{DRY_RUN_TAG}"));
        job.image_built = true;
        notes.push(format!(
            "the image is built and pushed to `{}` when the run starts; pods run it by digest, tagged with a hash of the build's inputs",
            registry.host
        ));
    }
    let mut m = k8s::build_manifests(&job, &namespace, &manifest_settings, false)?;
    m.notes.extend(notes);
    m.notes.extend(
        plan.notes
            .into_iter()
            .filter(|n| !n.contains("secret or config map")),
    );
    Ok(m)
}
