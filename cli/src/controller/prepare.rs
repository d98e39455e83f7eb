//! Preparing a job: its code (the run's snapshot written out, or the directory it was started
//! from; uploaded to the run for a cluster), and its image (built by the local Engine, pushed
//! to the registry a cluster pulls from). Build and push output goes to the run's logs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use polyaxon_server::api::{RunMeta, RunStatus};
use serde_json::Value as J;
use tokio::sync::mpsc;

use super::plan::Plan;
use super::{Ctl, RunApi, track};
use crate::error::UserError;
use crate::executor::{self, Images};
use crate::registry::{self, Registry};
use crate::settings::Settings;
use crate::snapshot;

/// The directory the job runs in: the run's code snapshot written out into the run directory
/// (kept between attempts and resumes), or the directory the run was started from when there
/// was no repository.
pub fn code(meta: &RunMeta, dir: &Path) -> Result<PathBuf> {
    let code = dir.join("code");
    if let Some(cr) = meta.code_ref.as_ref().filter(|c| !c.snapshot.is_empty()) {
        let snap = &cr.snapshot;
        // Written once; kept for retries and resumes (outputs may live beside it).
        let marker = dir.join(".code-snapshot");
        if std::fs::read_to_string(&marker)
            .ok()
            .as_deref()
            .map(str::trim)
            != Some(snap.as_str())
        {
            snapshot::checkout(Path::new(&cr.repo), snap, &code).with_context(|| {
                format!("writing the run's code (snapshot {snap} of `{}`)", cr.repo)
            })?;
            std::fs::write(&marker, format!("{snap}\n"))?;
        }
        let wd = code.join(&cr.path);
        std::fs::create_dir_all(&wd)?;
        return Ok(wd);
    }
    match meta.cwd.as_deref() {
        Some(cwd) if Path::new(cwd).is_dir() => Ok(PathBuf::from(cwd)),
        _ => {
            std::fs::create_dir_all(&code)?;
            Ok(code)
        }
    }
}

/// Sends the run's code to its artifacts (`code/`), where its pods' init step fetches it.
pub async fn upload_code(api: &RunApi, code_dir: &Path) -> Result<()> {
    let packed = crate::upload::pack(code_dir, None)
        .with_context(|| format!("packing the code in `{}`", code_dir.display()))?;
    api.client
        .upload_artifacts(&api.r, Some("code"), packed.bytes.into())
        .await
        .context("uploading the code for the cluster")?;
    api.log(format!(
        "code uploaded for the cluster: {} files ({} bytes)",
        packed.files, packed.size
    ))
    .await;
    Ok(())
}

/// The image the spec describes, made ready for the executor: built (and pushed for a
/// cluster) into `plan.job.image`, or a note that this executor runs without one.
pub async fn image(
    ctl: &Ctl<'_>,
    op: &polyaxonfile::CompiledOperation,
    code_dir: &Path,
    plan: &mut Plan,
) -> Result<()> {
    let Some(dockerfile) = build_source(op, code_dir)? else {
        return Ok(());
    };
    match ctl.executor.capabilities().images {
        Images::Unused => plan.notes.push(
            "the image described by `init.dockerfile` is built by `--executor docker`; the process executor runs on this machine as it is".into(),
        ),
        Images::Built => {
            plan.job.image = Some(build_image(ctl, &dockerfile, code_dir, op).await?);
        }
        Images::Pushed => {
            // Known before the build, so a missing registry or broken login fails fast.
            let settings = &ctl.settings.registry;
            let target = push_registry(ctl.settings)?;
            let auth = registry::credentials(settings, &target.host)?;
            let socket = registry::engine_socket(settings.docker_host.as_deref())?;
            let local = build_image(ctl, &dockerfile, code_dir, op).await?;
            plan.job.image = Some(push_image(ctl, &local, &target, auth.as_ref(), &socket).await?);
            plan.job.image_built = true;
            if auth.is_some() && ctl.settings.kube.image_pull_secrets.is_empty() {
                plan.notes.push(format!(
                    "the image was pushed with credentials: pods pull it only with a pull secret for {} (POLYAXON_K8S_IMAGE_PULL_SECRETS, `environment.imagePullSecrets`, or the namespace's service account)",
                    target.host
                ));
            }
        }
    }
    Ok(())
}

/// The Dockerfile to build the job's image from: generated from `init: [{dockerfile: …}]`,
/// or the file a `build` section names (`params.dockerfile`).
pub fn build_source(
    op: &polyaxonfile::CompiledOperation,
    code_dir: &Path,
) -> Result<Option<String>> {
    if let Some(d) = init_dockerfile(op) {
        return Ok(Some(crate::build::dockerfile_of(d)));
    }
    if let Some(b) = &op.build {
        let named = b
            .params
            .as_ref()
            .and_then(|p| p.get("dockerfile"))
            .and_then(|p| p.value.as_ref())
            .and_then(J::as_str)
            .map(str::to_string);
        let path = code_dir.join(named.as_deref().unwrap_or("Dockerfile"));
        return match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) => Err(UserError::new(format!(
                "the `build` section's Dockerfile `{}` cannot be read: {e}",
                path.display()
            ))
            .into()),
        };
    }
    Ok(None)
}

/// The image `init: [{dockerfile: …}]` describes, if any.
pub fn init_dockerfile(
    op: &polyaxonfile::CompiledOperation,
) -> Option<&polyaxonfile::spec::init::DockerfileInit> {
    init_steps(op).find_map(|i| i.dockerfile.as_ref())
}

fn init_steps(
    op: &polyaxonfile::CompiledOperation,
) -> impl Iterator<Item = &polyaxonfile::spec::Init> {
    use polyaxonfile::spec::Run;
    let init = match &op.run {
        Some(Run::Job(j)) => j.init.as_ref(),
        Some(Run::Service(s)) => s.init.as_ref(),
        _ => None,
    };
    init.into_iter().flatten()
}

/// Whether `op` describes an image to build (`init.dockerfile` or a `build` section).
pub fn describes_image(op: &polyaxonfile::CompiledOperation) -> bool {
    op.build.is_some() || init_steps(op).any(|i| i.dockerfile.is_some())
}

/// The local name of the image built for `op` (without its tag).
pub fn image_name(op: &polyaxonfile::CompiledOperation) -> String {
    let base: String = op
        .name
        .as_deref()
        .unwrap_or("job")
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("polyaxon/{base}")
}

/// The registry a built image goes to for the cluster (`POLYAXON_K8S_REGISTRY`).
pub fn push_registry(settings: &Settings) -> Result<Registry> {
    use crate::env::{
        POLYAXON_K8S_REGISTRY, POLYAXON_K8S_REGISTRY_PASSWORD, POLYAXON_K8S_REGISTRY_USERNAME,
    };
    Registry::configured(&settings.registry)?.ok_or_else(|| {
        UserError::new(
            "the image `init.dockerfile` (or `build`) describes must go to a registry the cluster pulls from, and none is configured",
        )
        .hint(format!(
            "set {POLYAXON_K8S_REGISTRY} (e.g. `registry.example.com:5000/ml`) and log in with `docker login` or {POLYAXON_K8S_REGISTRY_USERNAME}/{POLYAXON_K8S_REGISTRY_PASSWORD}; or set `run.container.image` to an image the cluster can pull"
        ))
        .into()
    })
}

/// Builds (or finds) the job's image, its output stored as the run's logs.
async fn build_image(
    ctl: &Ctl<'_>,
    dockerfile: &str,
    code_dir: &Path,
    op: &polyaxonfile::CompiledOperation,
) -> Result<String> {
    let spec = crate::build::BuildSpec {
        dockerfile: dockerfile.to_string(),
        context: code_dir.to_path_buf(),
        name: image_name(op),
        no_cache: false,
    };
    build(ctl, &spec, RunStatus::Starting, "building the image").await
}

/// Builds `spec` (or finds it built), the run's status `phase` "ImageBuilding" meanwhile and
/// the build's output as its `build` logs; returns the local image.
pub async fn build(
    ctl: &Ctl<'_>,
    spec: &crate::build::BuildSpec,
    phase: RunStatus,
    message: &str,
) -> Result<String> {
    let api = &ctl.api;
    let docker = executor::docker::Docker::connect().await?;
    api.status(phase, "ImageBuilding", message, None).await?;
    let (tag, fresh) =
        with_build_log(ctl, |tx| async move { docker.build(spec, &tx).await }).await?;
    let msg = if fresh {
        format!("built the image `{tag}`")
    } else {
        format!("the image `{tag}` is up to date (nothing changed since it was built)")
    };
    api.log_as("build", msg).await?;
    Ok(tag)
}

/// Pushes the built image `local` for the cluster; its progress goes to the run's logs.
/// Returns the image by digest.
async fn push_image(
    ctl: &Ctl<'_>,
    local: &str,
    target: &Registry,
    auth: Option<&registry::Auth>,
    socket: &Path,
) -> Result<String> {
    let (repo, tag) = target.target(local);
    push(ctl, local, &repo, &tag, auth, socket, RunStatus::Starting).await
}

/// Pushes `local` as `repo:tag`, the run's status `phase` "ImagePushing" meanwhile and the
/// progress as its `build` logs; returns the image by digest.
pub async fn push(
    ctl: &Ctl<'_>,
    local: &str,
    repo: &str,
    tag: &str,
    auth: Option<&registry::Auth>,
    socket: &Path,
    phase: RunStatus,
) -> Result<String> {
    let api = &ctl.api;
    let docker = executor::docker::Docker::connect().await?;
    let host = repo.split('/').next().unwrap_or(repo);
    api.status(
        phase,
        "ImagePushing",
        &format!("pushing the image to {host}"),
        None,
    )
    .await?;
    api.log(format!(
        "pushing `{repo}:{tag}` ({})",
        auth.map_or("no credentials".to_string(), |a| format!(
            "credentials from {}",
            a.source
        ))
    ))
    .await;
    with_build_log(ctl, |tx| async move {
        registry::push(&docker.api, socket, local, repo, tag, auth, &tx).await
    })
    .await
}

/// Runs `f` with a sender whose lines go to the run's logs as the `build` container's; every
/// line is stored when it returns.
async fn with_build_log<T, F, Fut>(ctl: &Ctl<'_>, f: F) -> T
where
    F: FnOnce(mpsc::Sender<crate::executor::Line>) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let (tx, rx) = mpsc::channel(1024);
    let pump = tokio::spawn(track::pump_logs(
        ctl.api.clone(),
        ctl.printer,
        Some(rx),
        false,
        0,
        Some("build"),
    ));
    // `f` owns the sender: the pump ends once `f` is done with it.
    let out = f(tx).await;
    let _ = pump.await;
    out
}
