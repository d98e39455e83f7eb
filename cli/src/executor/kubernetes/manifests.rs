//! A run as Kubernetes objects: a `job` becomes a batch/v1 Job, a `service` a Deployment and
//! a Service, `tfjob`/`pytorchjob`/`mpijob` the Kubeflow training operator's resources. Pure:
//! the same input gives the same manifests, for `polyaxon run --dry-run` and for submission.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use polyaxonfile::CompiledOperation;
use polyaxonfile::spec::{self, Container, Environment, Init, Run};
use serde_json::{Value as J, json};

use crate::error::UserError;

/// Where the run's context is mounted in its pods (upstream's `/plx-context`).
pub const CONTEXT_ROOT: &str = "/plx-context";
/// The name of the main container of `job` and `service` pods.
pub const MAIN_CONTAINER: &str = "polyaxon-main";
/// The name of the container that sends a pod's files (`polyaxon sidecar`).
pub const SIDECAR_CONTAINER: &str = "polyaxon-sidecar";
/// The key of the run's token in its Secret.
pub const TOKEN_KEY: &str = "token";

/// What the manifests depend on besides the spec.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    pub op: &'a CompiledOperation,
    pub uuid: &'a str,
    pub name: Option<&'a str>,
    pub owner: &'a str,
    pub project: &'a str,
    pub namespace: &'a str,
    /// The env contract (`POLYAXON_*`), without the token (it comes from the run's Secret).
    pub env: &'a [(String, String)],
    /// The image built for this run, which replaces the main container's.
    pub image: Option<&'a str>,
    /// The token to put in the run's Secret (`None`: a placeholder, for `--dry-run`).
    pub token: Option<&'a str>,
    /// The code uploaded to the run's artifacts (`code/`), fetched by an init container.
    pub uploaded_code: bool,
    pub settings: &'a Settings,
}

/// Cluster-side settings of the executor.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The image of init containers: a shell, `git`, `wget` and `tar` (Alpine's git image has
    /// them all).
    pub init_image: String,
    /// A PersistentVolumeClaim holding the artifacts store (shared with the server); without
    /// one the run's artifacts live in an emptyDir and only what the job sends is kept.
    pub artifacts_claim: Option<String>,
    /// The image of `polyaxon sidecar` (this binary): without a shared claim, each pod gets
    /// one, which sends the run's files to the server (its artifacts store).
    pub sidecar_image: Option<String>,
    /// Pull secrets every run's pods get, besides their spec's (`POLYAXON_K8S_IMAGE_PULL_SECRETS`,
    /// comma-separated): the credentials of the registry images are pushed to.
    pub image_pull_secrets: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            init_image: "alpine/git:2.49.1".into(),
            artifacts_claim: None,
            sidecar_image: None,
            image_pull_secrets: Vec::new(),
        }
    }
}

/// The manifests of a run, in the order they are applied.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    pub objects: Vec<J>,
    /// What the cluster cannot honour, said once to the user.
    pub notes: Vec<String>,
    /// The workload stays when the run ends (its `termination.ttl` removes it).
    pub keep_after_end: bool,
}

impl Manifests {
    /// The YAML stream of every object (`---` between them).
    pub fn to_yaml(&self) -> String {
        self.objects
            .iter()
            .map(polyaxonfile::emit::to_yaml)
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

/// `plx-operation-<uuid>`: the name of everything a run creates.
pub fn resource_name(uuid: &str) -> String {
    polyaxon_server::api::k8s_resource_name(uuid)
}

/// The labels that select everything of a run.
pub fn selector(uuid: &str) -> String {
    format!("app.kubernetes.io/instance={uuid}")
}

/// A label value as Kubernetes accepts it: at most 63 characters of `[A-Za-z0-9._-]`, starting
/// and ending with an alphanumeric character.
pub fn label_value(s: &str) -> String {
    let mut v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    v.truncate(63);
    let trimmed = v.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    trimmed.to_string()
}

/// The run's kind as upstream names it.
pub fn kind_name(run: &Run) -> &'static str {
    match run {
        Run::Job(_) => "job",
        Run::Service(_) => "service",
        Run::Dag(_) => "dag",
        Run::TfJob(_) => "tfjob",
        Run::PytorchJob(_) => "pytorchjob",
        Run::MpiJob(_) => "mpijob",
        Run::RayCluster(_) => "raycluster",
        Run::DaskCluster(_) => "daskcluster",
    }
}

/// Builds the manifests of a run.
pub fn build(input: &Input<'_>) -> Result<Manifests> {
    let run = input
        .op
        .run
        .as_ref()
        .ok_or_else(|| UserError::new("the run's spec has no `run` section"))?;
    let mut out = Manifests::default();
    let b = Builder { input, run };
    out.objects.push(b.secret());
    match run {
        Run::Job(j) => {
            let pod = b.pod(
                &PodParts {
                    container: j.container.as_ref(),
                    environment: j.environment.as_ref(),
                    init: j.init.as_deref().unwrap_or_default(),
                    sidecars: j.sidecars.as_deref().unwrap_or_default(),
                    volumes: j.volumes.as_deref().unwrap_or_default(),
                    main_name: MAIN_CONTAINER,
                    ports: &[],
                },
                &mut out.notes,
            )?;
            out.objects.push(b.batch_job(pod)?);
            out.keep_after_end = b.termination().2.is_some();
        }
        Run::Service(s) => {
            let ports: Vec<i32> = s.ports.clone().unwrap_or_default();
            let pod = b.pod(
                &PodParts {
                    container: s.container.as_ref(),
                    environment: s.environment.as_ref(),
                    init: s.init.as_deref().unwrap_or_default(),
                    sidecars: s.sidecars.as_deref().unwrap_or_default(),
                    volumes: s.volumes.as_deref().unwrap_or_default(),
                    main_name: MAIN_CONTAINER,
                    ports: &ports,
                },
                &mut out.notes,
            )?;
            let (deployment, service) = b.service(pod, s, &ports)?;
            out.objects.push(deployment);
            if let Some(svc) = service {
                out.objects.push(svc);
            }
        }
        Run::TfJob(_) | Run::PytorchJob(_) | Run::MpiJob(_) => {
            out.objects.push(b.training_job(&mut out.notes)?);
        }
        other => {
            return Err(UserError::new(format!(
                "`run.kind: {}` has no Kubernetes form here",
                kind_name(other)
            ))
            .hint(match other {
                Run::Dag(_) => "a dag's operations run one by one: run each as its own job",
                _ => "the kubernetes executor runs job, service, tfjob, pytorchjob and mpijob",
            })
            .into());
        }
    }
    Ok(out)
}

struct Builder<'a> {
    input: &'a Input<'a>,
    run: &'a Run,
}

struct PodParts<'a> {
    container: Option<&'a Container>,
    environment: Option<&'a Environment>,
    init: &'a [Init],
    sidecars: &'a [Container],
    volumes: &'a [core::Volume],
    main_name: &'a str,
    ports: &'a [i32],
}

fn to_json<T: serde::Serialize>(v: &T) -> J {
    serde_json::to_value(v).expect("manifests serialize")
}

/// Reads one of our spec's Kubernetes-shaped sections as the Kubernetes type it mirrors.
fn convert<T: serde::de::DeserializeOwned>(v: J, what: &str) -> Result<T> {
    let text = v.to_string();
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text)).map_err(|e| {
        UserError::new(format!(
            "{what} is not valid for Kubernetes at `{}`: {}",
            e.path(),
            e.inner()
        ))
        .into()
    })
}

impl Builder<'_> {
    fn name(&self) -> String {
        resource_name(self.input.uuid)
    }

    fn job_dir(&self) -> String {
        format!("{CONTEXT_ROOT}/artifacts/{}", self.input.uuid)
    }

    fn labels(&self, environment: Option<&Environment>) -> BTreeMap<String, String> {
        let i = self.input;
        let mut l = BTreeMap::new();
        // The user's first: ours select the run's objects and may not be replaced.
        if let Some(user) = environment.and_then(|e| e.labels.as_ref()) {
            l.extend(user.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        for (k, v) in [
            ("app.kubernetes.io/instance", i.uuid.to_string()),
            ("app.kubernetes.io/name", "plx-operation".into()),
            ("app.kubernetes.io/part-of", "polyaxon-runs".into()),
            ("app.kubernetes.io/managed-by", "polyaxon".into()),
            ("operation.polyaxon.com/uuid", i.uuid.to_string()),
            ("operation.polyaxon.com/owner", label_value(i.owner)),
            ("operation.polyaxon.com/project", label_value(i.project)),
            ("operation.polyaxon.com/kind", kind_name(self.run).into()),
        ] {
            l.insert(k.into(), v);
        }
        if let Some(n) = i.name.map(label_value).filter(|n| !n.is_empty()) {
            l.insert("operation.polyaxon.com/name".into(), n);
        }
        l
    }

    fn meta(&self, name: String, environment: Option<&Environment>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.input.namespace.to_string()),
            labels: Some(self.labels(environment)),
            annotations: environment.and_then(|e| e.annotations.clone()),
            ..Default::default()
        }
    }

    /// The run's token, for its pods' `POLYAXON_AUTH_TOKEN`.
    fn secret(&self) -> J {
        let token = self
            .input
            .token
            .unwrap_or("<issued when the run is submitted>");
        let s = core::Secret {
            metadata: self.meta(self.name(), None),
            type_: Some("Opaque".into()),
            string_data: Some(BTreeMap::from([(TOKEN_KEY.to_string(), token.to_string())])),
            ..Default::default()
        };
        with_kind(to_json(&s), "v1", "Secret")
    }

    /// The env of a run's containers: the contract, the token from the Secret, then the
    /// user's (which win, with their `valueFrom`s).
    fn env(
        &self,
        user: Option<&Vec<core::EnvVar>>,
        extra: &[(String, String)],
    ) -> Vec<core::EnvVar> {
        let user = user.cloned().unwrap_or_default();
        let taken = |k: &str| user.iter().any(|e| e.name == k);
        let mut out: Vec<core::EnvVar> = Vec::new();
        for (k, v) in self.input.env.iter().chain(extra) {
            if !taken(k) && !out.iter().any(|e| &e.name == k) {
                out.push(core::EnvVar {
                    name: k.clone(),
                    value: Some(v.clone()),
                    value_from: None,
                });
            }
        }
        if !taken("POLYAXON_AUTH_TOKEN") {
            out.push(core::EnvVar {
                name: "POLYAXON_AUTH_TOKEN".into(),
                value: None,
                value_from: Some(core::EnvVarSource {
                    secret_key_ref: Some(core::SecretKeySelector {
                        name: self.name(),
                        key: TOKEN_KEY.into(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            });
        }
        out.extend(user);
        out
    }

    /// Inputs and outputs with `toEnv`, as the job's env.
    fn io_env(&self) -> Vec<(String, String)> {
        let op = self.input.op;
        op.inputs
            .iter()
            .flatten()
            .chain(op.outputs.iter().flatten())
            .filter_map(|io| {
                let (var, v) = (io.to_env.as_ref()?, io.value.as_ref()?);
                let text = match v {
                    J::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Some((var.clone(), text))
            })
            .collect()
    }

    fn context_volume(&self) -> (Vec<core::Volume>, Vec<core::VolumeMount>) {
        let mut volumes = vec![core::Volume {
            name: "plx-context".into(),
            empty_dir: Some(Default::default()),
            ..Default::default()
        }];
        let mut mounts = vec![core::VolumeMount {
            name: "plx-context".into(),
            mount_path: CONTEXT_ROOT.into(),
            ..Default::default()
        }];
        if let Some(claim) = &self.input.settings.artifacts_claim {
            volumes.push(core::Volume {
                name: "plx-artifacts".into(),
                persistent_volume_claim: Some(core::PersistentVolumeClaimVolumeSource {
                    claim_name: claim.clone(),
                    read_only: None,
                }),
                ..Default::default()
            });
            mounts.push(core::VolumeMount {
                name: "plx-artifacts".into(),
                mount_path: format!("{CONTEXT_ROOT}/artifacts"),
                ..Default::default()
            });
        }
        (volumes, mounts)
    }

    /// A container of ours from the spec's (k8s-shaped) one.
    fn container(&self, c: &Container, name: &str, what: &str) -> Result<core::Container> {
        let mut v = to_json(c);
        let m = v.as_object_mut().expect("a container is an object");
        m.insert("name".into(), J::String(name.into()));
        // Ours only, not Kubernetes'.
        m.remove("restartPolicy");
        convert(v, what)
    }

    fn pod(&self, p: &PodParts<'_>, notes: &mut Vec<String>) -> Result<core::PodTemplateSpec> {
        let i = self.input;
        let c = p.container.ok_or_else(|| {
            UserError::new("the run's spec has no container")
                .hint("add `run.container` with an `image`")
        })?;
        let mut main = self.container(c, p.main_name, "`run.container`")?;
        if let Some(img) = i.image {
            main.image = Some(img.to_string());
        }
        if main.image.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return Err(
                UserError::new("the container has no `image`: a cluster runs images")
                    .hint(
                        "set `run.container.image`, or describe one with `init: [{dockerfile: …}]`",
                    )
                    .into(),
            );
        }
        let (mut volumes, ctx_mounts) = self.context_volume();
        let code_dir = format!("{}/code", self.job_dir());
        // A spec that clones its code from git gets that, not this machine's.
        let git = p.init.iter().any(|s| s.git.is_some());
        let upload = i.uploaded_code && !git;
        let has_code = upload || git;
        if main.working_dir.is_none() && has_code {
            main.working_dir = Some(code_dir.clone());
        }
        main.env = Some(self.env(main.env.as_ref(), &self.io_env()));
        let mut mounts = ctx_mounts.clone();
        mounts.extend(main.volume_mounts.take().unwrap_or_default());
        main.volume_mounts = Some(mounts);
        if !p.ports.is_empty() && main.ports.is_none() {
            main.ports = Some(
                p.ports
                    .iter()
                    .map(|port| core::ContainerPort {
                        container_port: *port,
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    })
                    .collect(),
            );
        }
        let env = p.environment;
        let (pod_sc, container_sc) = security_contexts(env);
        if let Some(sc) = container_sc {
            main.security_context = Some(merge_sc(sc, main.security_context.take()));
        }

        // Init steps: the uploaded code, then each of the spec's, in order.
        let mut inits = Vec::new();
        if upload {
            inits.push(self.init_sh(
                "plx-init-code",
                "set -eu; mkdir -p \"$DEST\"; wget -q -O - --header \"Authorization: token $POLYAXON_AUTH_TOKEN\" \"$POLYAXON_HOST/streams/v1/default/$OWNER/$PROJECT/runs/$UUID/artifacts?path=code\" | tar -xzf - -C \"$DEST/..\"",
                vec![("DEST".into(), code_dir.clone())],
                &ctx_mounts,
            ));
        }
        for (n, step) in p.init.iter().enumerate() {
            if let Some(c) = self.init_step(step, n, &ctx_mounts, notes)? {
                inits.push(c);
            }
        }
        // Last of the init steps, and running beside the main container to its end.
        if let Some(c) = self.files_sidecar(&ctx_mounts)? {
            inits.push(c);
        }
        let mut sidecars = Vec::new();
        for (n, s) in p.sidecars.iter().enumerate() {
            let name = s.name.clone().unwrap_or_else(|| format!("plx-sidecar-{n}"));
            let mut sc = self.container(s, &name, "a sidecar")?;
            let mut m = ctx_mounts.clone();
            m.extend(sc.volume_mounts.take().unwrap_or_default());
            sc.volume_mounts = Some(m);
            sidecars.push(sc);
        }
        volumes.extend(p.volumes.iter().cloned());

        let restart = match env.and_then(|e| e.restart_policy.as_ref()) {
            None => None,
            Some(spec::RestartPolicy::Always) => Some("Always"),
            Some(spec::RestartPolicy::OnFailure) => Some("OnFailure"),
            Some(spec::RestartPolicy::Never) => Some("Never"),
            Some(spec::RestartPolicy::ExitCode) => {
                notes.push("`restartPolicy: ExitCode` is for the training operator's replicas; the pod uses Never".into());
                Some("Never")
            }
        };
        let spec = core::PodSpec {
            containers: std::iter::once(main).chain(sidecars).collect(),
            init_containers: (!inits.is_empty()).then_some(inits),
            volumes: Some(volumes),
            restart_policy: restart.map(str::to_string),
            node_selector: env.and_then(|e| e.node_selector.clone()),
            affinity: env.and_then(|e| e.affinity.clone()),
            tolerations: env.and_then(|e| e.tolerations.clone()),
            node_name: env.and_then(|e| e.node_name.clone()),
            service_account_name: env.and_then(|e| e.service_account_name.clone()),
            host_aliases: env.and_then(|e| e.host_aliases.clone()),
            security_context: pod_sc,
            image_pull_secrets: {
                // The spec's, then the executor's defaults (POLYAXON_K8S_IMAGE_PULL_SECRETS).
                let mut names: Vec<String> = env
                    .and_then(|e| e.image_pull_secrets.clone())
                    .unwrap_or_default();
                for n in &self.input.settings.image_pull_secrets {
                    if !names.contains(n) {
                        names.push(n.clone());
                    }
                }
                (!names.is_empty()).then(|| {
                    names
                        .into_iter()
                        .map(|name| core::LocalObjectReference { name })
                        .collect()
                })
            },
            host_network: env.and_then(|e| e.host_network),
            host_pid: env.and_then(|e| e.host_pid),
            dns_policy: env.and_then(|e| e.dns_policy.clone()),
            dns_config: env.and_then(|e| e.dns_config.clone()),
            scheduler_name: env.and_then(|e| e.scheduler_name.clone()),
            priority_class_name: env.and_then(|e| e.priority_class_name.clone()),
            priority: env.and_then(|e| e.priority),
            ..Default::default()
        };
        Ok(core::PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(self.labels(env)),
                annotations: env.and_then(|e| e.annotations.clone()),
                ..Default::default()
            }),
            spec: Some(spec),
        })
    }

    /// A shell step of the init image, with the run's coordinates in its env.
    fn init_sh(
        &self,
        name: &str,
        script: &str,
        mut env: Vec<(String, String)>,
        mounts: &[core::VolumeMount],
    ) -> core::Container {
        let i = self.input;
        env.extend([
            ("OWNER".to_string(), i.owner.to_string()),
            ("PROJECT".into(), i.project.to_string()),
            ("UUID".into(), i.uuid.to_string()),
        ]);
        core::Container {
            name: name.into(),
            image: Some(i.settings.init_image.clone()),
            command: Some(vec!["/bin/sh".into(), "-c".into()]),
            args: Some(vec![script.into()]),
            env: Some(self.env(None, &env)),
            volume_mounts: Some(mounts.to_vec()),
            ..Default::default()
        }
    }

    /// `polyaxon sidecar` as a native sidecar (an init container that restarts always: it
    /// starts before the main container, and the kubelet stops it with SIGTERM once the main
    /// container ended, which is when it sends the files one last time). None when the pods
    /// share the server's volume, when no image is configured, or with
    /// `plugins.collectArtifacts: false`.
    fn files_sidecar(&self, mounts: &[core::VolumeMount]) -> Result<Option<core::Container>> {
        let i = self.input;
        let plugins = i.op.plugins.as_ref();
        let Some(image) = i.settings.sidecar_image.as_ref() else {
            return Ok(None);
        };
        if i.settings.artifacts_claim.is_some()
            || plugins.and_then(|p| p.collect_artifacts) == Some(false)
        {
            return Ok(None);
        }
        let conf = plugins.and_then(|p| p.sidecar.as_ref());
        let interval = conf
            .and_then(|c| c.sync_interval)
            .filter(|s| *s > 0)
            .unwrap_or(5)
            .min(3600);
        let resources = match conf.and_then(|c| c.resources.as_ref()) {
            Some(r) => convert(to_json(r), "`plugins.sidecar.resources`")?,
            None => convert(
                json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}),
                "the sidecar's resources",
            )?,
        };
        let extra = [("POLYAXON_HOME".to_string(), "/tmp/polyaxon".to_string())];
        Ok(Some(core::Container {
            name: SIDECAR_CONTAINER.into(),
            image: Some(image.clone()),
            image_pull_policy: conf.and_then(|c| c.image_pull_policy.clone()),
            command: Some(vec!["polyaxon".into()]),
            args: Some(vec![
                "sidecar".into(),
                "--dir".into(),
                self.job_dir(),
                "--interval".into(),
                interval.to_string(),
            ]),
            env: Some(self.env(None, &extra)),
            volume_mounts: Some(mounts.to_vec()),
            resources: Some(resources),
            restart_policy: Some("Always".into()),
            ..Default::default()
        }))
    }

    fn init_step(
        &self,
        step: &Init,
        n: usize,
        mounts: &[core::VolumeMount],
        notes: &mut Vec<String>,
    ) -> Result<Option<core::Container>> {
        let dir = self.job_dir();
        let dest = |default: &str| match step.path.as_deref() {
            Some(p) if p.starts_with('/') => p.to_string(),
            Some(p) => format!("{dir}/{p}"),
            None => format!("{dir}/{default}"),
        };
        if let Some(g) = &step.git {
            let mut env = vec![
                ("DEST".to_string(), dest("code")),
                ("REVISION".into(), g.revision.clone().unwrap_or_default()),
                (
                    "FLAGS".into(),
                    g.flags.clone().unwrap_or_default().join(" "),
                ),
            ];
            let mut c = self.init_sh(
                &format!("plx-init-git-{n}"),
                "set -eu; rm -rf \"$DEST\"; git clone $FLAGS -- \"$GIT_URL\" \"$DEST\"; if [ -n \"$REVISION\" ]; then git -C \"$DEST\" checkout -q \"$REVISION\"; fi",
                std::mem::take(&mut env),
                mounts,
            );
            let url_var = match (&g.url, &step.connection) {
                (Some(u), _) => core::EnvVar {
                    name: "GIT_URL".into(),
                    value: Some(u.clone()),
                    value_from: None,
                },
                (None, Some(conn)) => core::EnvVar {
                    // A connection is a Secret of the namespace with the repository's `url`.
                    name: "GIT_URL".into(),
                    value: None,
                    value_from: Some(core::EnvVarSource {
                        secret_key_ref: Some(core::SecretKeySelector {
                            name: label_value(conn),
                            key: "url".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                },
                (None, None) => {
                    return Err(UserError::new(format!("init step {} clones git without a `url`", n + 1))
                        .hint("set `git.url`, or a `connection` (a Secret of the namespace with the repository's `url`)")
                        .into());
                }
            };
            c.env.get_or_insert_default().push(url_var);
            return Ok(Some(c));
        }
        if let Some(f) = &step.file {
            let filename = f.filename.clone().unwrap_or_else(|| "file".into());
            if filename.contains('/') || filename == ".." {
                return Err(UserError::new(format!(
                    "init step {}: `file.filename` `{filename}` must be a plain name",
                    n + 1
                ))
                .hint("put the directory in the step's `path`")
                .into());
            }
            return Ok(Some(self.init_sh(
                &format!("plx-init-file-{n}"),
                "set -eu; mkdir -p \"$DEST\"; printf '%s' \"$CONTENT\" > \"$DEST/$FILENAME\"; if [ -n \"$CHMOD\" ]; then chmod \"$CHMOD\" \"$DEST/$FILENAME\"; fi",
                vec![
                    ("DEST".into(), dest("")),
                    ("FILENAME".into(), filename),
                    ("CONTENT".into(), f.content.clone().unwrap_or_default()),
                    ("CHMOD".into(), f.chmod.clone().unwrap_or_default()),
                ],
                mounts,
            )));
        }
        if let Some(a) = &step.artifacts {
            // Paths of the artifacts store: `<run uuid>/<path in that run>`.
            let mut lines = Vec::new();
            let pair = |p: &spec::PathOrPair| match p {
                spec::PathOrPair::Path(s) => (s.clone(), s.clone()),
                spec::PathOrPair::Pair(v) => (v[0].clone(), v[1].clone()),
            };
            for (kind, list) in [("file", &a.files), ("dir", &a.dirs)] {
                for p in list.iter().flatten() {
                    let (from, to) = pair(p);
                    let (run, rest) = from
                        .trim_start_matches('/')
                        .split_once('/')
                        .unwrap_or((from.as_str(), ""));
                    let to = to.trim_start_matches('/');
                    let url = format!(
                        "$POLYAXON_HOST/streams/v1/default/$OWNER/$PROJECT/runs/{}/{}?path={}",
                        shell_word(run),
                        if kind == "file" {
                            "artifact"
                        } else {
                            "artifacts"
                        },
                        shell_word(rest)
                    );
                    lines.push(if kind == "file" {
                        format!(
                            "mkdir -p \"$(dirname \"$DEST/{to}\")\"; wget -q --header \"Authorization: token $POLYAXON_AUTH_TOKEN\" -O \"$DEST/{to}\" \"{url}\"",
                            to = shell_word(to)
                        )
                    } else {
                        format!(
                            "mkdir -p \"$DEST/{to}\"; wget -q -O - --header \"Authorization: token $POLYAXON_AUTH_TOKEN\" \"{url}\" | tar -xzf - -C \"$DEST/{to}\" --strip-components=1",
                            to = shell_word(to)
                        )
                    });
                }
            }
            if lines.is_empty() {
                return Ok(None);
            }
            return Ok(Some(self.init_sh(
                &format!("plx-init-artifacts-{n}"),
                &format!("set -eu; {}", lines.join("; ")),
                vec![("DEST".into(), dest(""))],
                mounts,
            )));
        }
        if step.dockerfile.is_some() {
            notes.push("`init.dockerfile` is built into the run's image before submission".into());
            return Ok(None);
        }
        if let Some(c) = &step.container {
            let name = c.name.clone().unwrap_or_else(|| format!("plx-init-{n}"));
            let mut ic = self.container(c, &name, "an init container")?;
            let mut m = mounts.to_vec();
            m.extend(ic.volume_mounts.take().unwrap_or_default());
            ic.volume_mounts = Some(m);
            ic.env = Some(self.env(ic.env.as_ref(), &[]));
            return Ok(Some(ic));
        }
        let kinds = step.sources();
        Err(UserError::new(format!(
            "init step {} ({}) cannot run on a cluster here",
            n + 1,
            if kinds.is_empty() { "empty".into() } else { kinds.join(", ") }
        ))
        .hint("the kubernetes executor runs git, file, artifacts, dockerfile and container init steps")
        .into())
    }

    fn termination(&self) -> (Option<i32>, Option<i64>, Option<i32>) {
        let t = self.input.op.termination.as_ref();
        let retries = t
            .and_then(|t| t.max_retries)
            .map(|r| r.clamp(0, 1000) as i32);
        let timeout = t.and_then(|t| t.timeout).filter(|t| *t > 0);
        let ttl = t
            .and_then(|t| t.ttl)
            .filter(|t| *t >= 0)
            .map(|t| t.min(i32::MAX as i64) as i32);
        (retries, timeout, ttl)
    }

    fn batch_job(&self, mut pod: core::PodTemplateSpec) -> Result<J> {
        let spec = pod.spec.as_mut().expect("a pod spec");
        match spec.restart_policy.as_deref() {
            None => spec.restart_policy = Some("Never".into()),
            Some("Always") => {
                return Err(UserError::new("`environment.restartPolicy: Always` never lets a job end")
                    .hint("use Never (the default) or OnFailure, or `kind: service` for a long-running process")
                    .into());
            }
            _ => {}
        }
        let (retries, timeout, ttl) = self.termination();
        let job = batch::Job {
            metadata: self.meta(self.name(), self.run.environment()),
            spec: Some(batch::JobSpec {
                backoff_limit: Some(retries.unwrap_or(0)),
                active_deadline_seconds: timeout,
                ttl_seconds_after_finished: ttl,
                pod_failure_policy: self
                    .input
                    .op
                    .termination
                    .as_ref()
                    .and_then(|t| t.pod_failure_policy.clone()),
                template: pod,
                ..Default::default()
            }),
            status: None,
        };
        Ok(with_kind(to_json(&job), "batch/v1", "Job"))
    }

    fn service(
        &self,
        mut pod: core::PodTemplateSpec,
        s: &spec::Service,
        ports: &[i32],
    ) -> Result<(J, Option<J>)> {
        let spec = pod.spec.as_mut().expect("a pod spec");
        match spec.restart_policy.as_deref() {
            None | Some("Always") => spec.restart_policy = Some("Always".into()),
            Some(other) => {
                return Err(UserError::new(format!(
                    "`environment.restartPolicy: {other}`: a service's pods always restart"
                ))
                .hint("remove it, or use `kind: job` for a process that ends")
                .into());
            }
        }
        let sel = BTreeMap::from([(
            "app.kubernetes.io/instance".to_string(),
            self.input.uuid.to_string(),
        )]);
        let d = apps::Deployment {
            metadata: self.meta(self.name(), s.environment.as_ref()),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(s.replicas.unwrap_or(1).max(0)),
                selector: LabelSelector {
                    match_labels: Some(sel.clone()),
                    match_expressions: None,
                },
                template: pod,
                ..Default::default()
            }),
            status: None,
        };
        let svc = (!ports.is_empty()).then(|| {
            let svc = core::Service {
                metadata: self.meta(self.name(), s.environment.as_ref()),
                spec: Some(core::ServiceSpec {
                    type_: Some(
                        if s.is_external == Some(true) {
                            "LoadBalancer"
                        } else {
                            "ClusterIP"
                        }
                        .into(),
                    ),
                    selector: Some(sel),
                    ports: Some(
                        ports
                            .iter()
                            .map(|p| core::ServicePort {
                                name: Some(format!("port-{p}")),
                                port: *p,
                                target_port: Some(IntOrString::Int(*p)),
                                protocol: Some("TCP".into()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }),
                status: None,
            };
            with_kind(to_json(&svc), "v1", "Service")
        });
        Ok((with_kind(to_json(&d), "apps/v1", "Deployment"), svc))
    }

    /// A Kubeflow training-operator job (kubeflow.org/v1).
    fn training_job(&self, notes: &mut Vec<String>) -> Result<J> {
        let (kind, specs_key, container, roles, clean, sched): TrainingParts<'_> = match self.run {
            Run::TfJob(t) => (
                "TFJob",
                "tfReplicaSpecs",
                "tensorflow",
                vec![
                    ("Chief", t.chief.as_ref()),
                    ("PS", t.ps.as_ref()),
                    ("Worker", t.worker.as_ref()),
                    ("Evaluator", t.evaluator.as_ref()),
                ],
                t.clean_pod_policy.as_ref(),
                t.scheduling_policy.as_ref(),
            ),
            Run::PytorchJob(p) => (
                "PyTorchJob",
                "pytorchReplicaSpecs",
                "pytorch",
                vec![("Master", p.master.as_ref()), ("Worker", p.worker.as_ref())],
                p.clean_pod_policy.as_ref(),
                p.scheduling_policy.as_ref(),
            ),
            Run::MpiJob(m) => (
                "MPIJob",
                "mpiReplicaSpecs",
                "mpi",
                vec![
                    ("Launcher", m.launcher.as_ref()),
                    ("Worker", m.worker.as_ref()),
                ],
                m.clean_pod_policy.as_ref(),
                m.scheduling_policy.as_ref(),
            ),
            _ => unreachable!("training kinds only"),
        };
        let mut specs = serde_json::Map::new();
        for (role, replica) in roles {
            let Some(r) = replica else { continue };
            let mut pod = self
                .pod(
                    &PodParts {
                        container: r.container.as_ref(),
                        environment: r.environment.as_ref(),
                        init: r.init.as_deref().unwrap_or_default(),
                        sidecars: r.sidecars.as_deref().unwrap_or_default(),
                        volumes: r.volumes.as_deref().unwrap_or_default(),
                        main_name: container,
                        ports: &[],
                    },
                    notes,
                )
                .with_context(|| format!("the `{}` replica", role.to_lowercase()))?;
            let pod_spec = pod.spec.as_mut().expect("a pod spec");
            // The operator restarts replicas itself: the pod's policy is the replica's.
            let restart = match r
                .environment
                .as_ref()
                .and_then(|e| e.restart_policy.as_ref())
            {
                Some(spec::RestartPolicy::Always) => "Always",
                Some(spec::RestartPolicy::OnFailure) => "OnFailure",
                Some(spec::RestartPolicy::ExitCode) => "ExitCode",
                _ => "Never",
            };
            pod_spec.restart_policy = None;
            pod.metadata
                .get_or_insert_default()
                .labels
                .get_or_insert_default()
                .insert("operation.polyaxon.com/replica".into(), role.to_lowercase());
            specs.insert(
                role.into(),
                json!({
                    "replicas": r.replicas.unwrap_or(1).max(0),
                    "restartPolicy": restart,
                    "template": to_json(&pod),
                }),
            );
        }
        if specs.is_empty() {
            return Err(UserError::new(format!("the {} has no replicas", kind_name(self.run)))
                .hint("describe at least one role (e.g. `worker:` with `replicas` and a `container`)")
                .into());
        }
        let (retries, timeout, ttl) = self.termination();
        let mut run_policy = serde_json::Map::new();
        if let Some(c) = clean {
            run_policy.insert("cleanPodPolicy".into(), to_json(c));
        }
        if let Some(r) = retries {
            run_policy.insert("backoffLimit".into(), json!(r));
        }
        if let Some(t) = timeout {
            run_policy.insert("activeDeadlineSeconds".into(), json!(t));
        }
        if let Some(t) = ttl {
            run_policy.insert("ttlSecondsAfterFinished".into(), json!(t));
        }
        if let Some(s) = sched {
            let s = polyaxonfile::to_clean_json(s);
            run_policy.insert("schedulingPolicy".into(), s);
        }
        let mut spec = serde_json::Map::new();
        spec.insert("runPolicy".into(), J::Object(run_policy));
        spec.insert(specs_key.into(), J::Object(specs));
        match self.run {
            Run::MpiJob(m) => {
                if let Some(s) = m.slots_per_worker {
                    spec.insert("slotsPerWorker".into(), json!(s));
                }
            }
            Run::PytorchJob(p) => {
                if let Some(e) = &p.elastic_policy {
                    spec.insert("elasticPolicy".into(), polyaxonfile::to_clean_json(e));
                }
                if let Some(n) = p.n_proc_per_node {
                    spec.insert("nprocPerNode".into(), json!(n.to_string()));
                }
            }
            Run::TfJob(t) => {
                if let Some(b) = t.enable_dynamic_worker {
                    spec.insert("enableDynamicWorker".into(), json!(b));
                }
                if let Some(s) = &t.success_policy {
                    spec.insert("successPolicy".into(), json!(s));
                }
            }
            _ => {}
        }
        let meta = to_json(&self.meta(self.name(), None));
        Ok(json!({
            "apiVersion": "kubeflow.org/v1",
            "kind": kind,
            "metadata": meta,
            "spec": spec,
        }))
    }
}

/// A training job's kind, replica specs key, container name, roles, clean pod policy and
/// scheduling policy.
type TrainingParts<'a> = (
    &'static str,
    &'static str,
    &'static str,
    Vec<(&'static str, Option<&'a spec::Replica>)>,
    Option<&'a spec::CleanPodPolicy>,
    Option<&'a spec::SchedulingPolicy>,
);

/// Splits the spec's one security context into the pod's and the containers' parts.
fn security_contexts(
    env: Option<&Environment>,
) -> (
    Option<core::PodSecurityContext>,
    Option<core::SecurityContext>,
) {
    let Some(sc) = env.and_then(|e| e.security_context.as_ref()) else {
        return (None, None);
    };
    let pod = core::PodSecurityContext {
        run_as_user: sc.run_as_user,
        run_as_group: sc.run_as_group,
        run_as_non_root: sc.run_as_non_root,
        fs_group: sc.fs_group,
        fs_group_change_policy: sc.fs_group_change_policy.clone(),
        supplemental_groups: sc.supplemental_groups.clone(),
        supplemental_groups_policy: sc.supplemental_groups_policy.clone(),
        sysctls: sc.sysctls.clone(),
        se_linux_options: sc.se_linux_options.clone(),
        se_linux_change_policy: sc.se_linux_change_policy.clone(),
        seccomp_profile: sc.seccomp_profile.clone(),
        app_armor_profile: sc.app_armor_profile.clone(),
        windows_options: sc.windows_options.clone(),
    };
    let container = core::SecurityContext {
        privileged: sc.privileged,
        allow_privilege_escalation: sc.allow_privilege_escalation,
        read_only_root_filesystem: sc.read_only_root_filesystem,
        capabilities: sc.capabilities.clone(),
        proc_mount: sc.proc_mount.clone(),
        ..Default::default()
    };
    let has_container = container != core::SecurityContext::default();
    let has_pod = pod != core::PodSecurityContext::default();
    (has_pod.then_some(pod), has_container.then_some(container))
}

/// The container's own fields win over the environment's.
fn merge_sc(
    env: core::SecurityContext,
    own: Option<core::SecurityContext>,
) -> core::SecurityContext {
    let Some(own) = own else { return env };
    core::SecurityContext {
        privileged: own.privileged.or(env.privileged),
        allow_privilege_escalation: own
            .allow_privilege_escalation
            .or(env.allow_privilege_escalation),
        read_only_root_filesystem: own
            .read_only_root_filesystem
            .or(env.read_only_root_filesystem),
        capabilities: own.capabilities.or(env.capabilities),
        proc_mount: own.proc_mount.or(env.proc_mount),
        ..own
    }
}

/// Puts `apiVersion` and `kind` first, as `kubectl` prints them.
pub fn with_kind(v: J, api_version: &str, kind: &str) -> J {
    let mut m = serde_json::Map::new();
    m.insert("apiVersion".into(), J::String(api_version.into()));
    m.insert("kind".into(), J::String(kind.into()));
    if let J::Object(rest) = v {
        for (k, v) in rest {
            if k != "apiVersion" && k != "kind" {
                m.insert(k, v);
            }
        }
    }
    J::Object(m)
}

/// Text safe inside double quotes of a POSIX shell.
fn shell_word(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "\\$")
        .replace('`', "\\`")
}
