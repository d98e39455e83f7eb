//! `polyaxon admin deploy|upgrade|teardown`: the server, its database and the executor's RBAC
//! on a cluster, applied by server-side apply from a config (see [`config`]).

pub mod config;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as net;
use k8s_openapi::api::rbac::v1 as rbac;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Value as J, json};

pub use config::Config;

use crate::error::UserError;
use crate::executor::kubernetes::{self as k8s, ObjRef};

/// The API of a default deploy, as the cluster's pods reach it.
pub const IN_CLUSTER_API: &str = "http://polyaxon-api.polyaxon.svc:80";

/// The server's image when the config names none (`scripts/server-image` builds it).
pub fn default_image() -> String {
    format!("polyaxon/polyaxon-rs:{}", env!("CARGO_PKG_VERSION"))
}

/// Secrets of a deploy: given in the config, kept from a previous deploy, or generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secrets {
    pub admin_password: String,
    pub db_password: String,
    /// The agents' token (accepted by the server as root's).
    pub agent_token: String,
}

impl Secrets {
    /// New random ones (32 hexadecimal characters each).
    pub fn generate() -> Secrets {
        let r = || polyaxon_server::store::new_uuid().replace('-', "");
        Secrets {
            admin_password: r(),
            db_password: r(),
            agent_token: format!("plx_agent_{}", r()),
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> J {
    serde_json::to_value(v).expect("manifests serialize")
}

struct Names {
    ns: String,
    rel: String,
}

impl Names {
    fn of(c: &Config) -> Names {
        Names {
            ns: c.namespace(),
            rel: c.release(),
        }
    }
    fn api(&self) -> String {
        format!("{}-api", self.rel)
    }
    fn db(&self) -> String {
        format!("{}-postgresql", self.rel)
    }
    fn secret(&self) -> String {
        format!("{}-secrets", self.rel)
    }
    fn executor(&self) -> String {
        format!("{}-executor", self.rel)
    }
    fn artifacts(&self) -> String {
        format!("{}-artifacts", self.rel)
    }
    fn agent(&self) -> String {
        format!("{}-agent", self.rel)
    }
}

fn labels(c: &Config, component: &str) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = c
        .value("labels")
        .and_then(J::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    l.insert("app.kubernetes.io/name".into(), "polyaxon".into());
    l.insert("app.kubernetes.io/instance".into(), c.release());
    l.insert("app.kubernetes.io/component".into(), component.into());
    l.insert("app.kubernetes.io/managed-by".into(), "polyaxon".into());
    l
}

fn selector(c: &Config, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/instance".to_string(), c.release()),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
    ])
}

fn meta(c: &Config, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(c.namespace()),
        labels: Some(labels(c, component)),
        annotations: c
            .value("annotations")
            .and_then(|a| serde_json::from_value(a.clone()).ok()),
        ..Default::default()
    }
}

fn from<T: serde::de::DeserializeOwned>(c: &Config, path: &str) -> Result<Option<T>> {
    match c.value(path) {
        None => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| UserError::new(format!("`{path}`: {e}")).into()),
    }
}

/// Scheduling of a component: its own, else the config's.
fn pod_scheduling(c: &Config, component: &str, spec: &mut core::PodSpec) -> Result<()> {
    let pick = |key: &str| {
        let own = format!("{component}.{key}");
        if c.value(&own).is_some() {
            own
        } else {
            key.to_string()
        }
    };
    spec.node_selector = from(c, &pick("nodeSelector"))?;
    spec.tolerations = from(c, &pick("tolerations"))?;
    spec.affinity = from(c, &pick("affinity"))?;
    spec.priority_class_name = c.str("priorityClassName");
    spec.image_pull_secrets = c.value("imagePullSecrets").and_then(J::as_array).map(|a| {
        a.iter()
            .filter_map(J::as_str)
            .map(|n| core::LocalObjectReference { name: n.into() })
            .collect()
    });
    if c.bool("securityContext.enabled") == Some(true) {
        spec.security_context = Some(core::PodSecurityContext {
            run_as_user: c.int("securityContext.runAsUser"),
            run_as_group: c.int("securityContext.runAsGroup"),
            fs_group: c.int("securityContext.fsGroup"),
            fs_group_change_policy: c.str("securityContext.fsGroupChangePolicy"),
            run_as_non_root: c.bool("securityContext.runAsNonRoot"),
            ..Default::default()
        });
    }
    Ok(())
}

/// What a component's workload selects its pods by.
fn pod_selector(c: &Config, component: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector(c, component)),
        ..Default::default()
    }
}

/// A component's pods: its labels and `spec`.
fn pod_template(c: &Config, component: &str, spec: core::PodSpec) -> core::PodTemplateSpec {
    core::PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(c, component)),
            ..Default::default()
        }),
        spec: Some(spec),
    }
}

/// A one-volume claim of `size`, written once by one node.
fn claim_spec(size: &str, class: Option<String>) -> core::PersistentVolumeClaimSpec {
    core::PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".into()]),
        storage_class_name: class,
        resources: Some(core::VolumeResourceRequirements {
            requests: Some(BTreeMap::from([(
                "storage".to_string(),
                Quantity(size.to_string()),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The server's `/healthz`, asked every `period` seconds.
fn health(period: i32, delay: Option<i32>) -> core::Probe {
    core::Probe {
        http_get: Some(core::HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::Int(8000),
            ..Default::default()
        }),
        period_seconds: Some(period),
        initial_delay_seconds: delay,
        ..Default::default()
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> core::EnvVar {
    core::EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(core::EnvVarSource {
            secret_key_ref: Some(core::SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: None,
            }),
            ..Default::default()
        }),
    }
}

fn env(name: &str, value: impl Into<String>) -> core::EnvVar {
    core::EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// Every object of a deploy, in the order they are applied.
pub fn manifests(c: &Config, secrets: &Secrets) -> Result<Vec<J>> {
    let n = Names::of(c);
    let mut out = Vec::new();
    out.push(to_json(&core::Namespace {
        metadata: ObjectMeta {
            name: Some(n.ns.clone()),
            labels: Some(labels(c, "namespace")),
            ..Default::default()
        },
        ..Default::default()
    }));
    // The executor's identity: what `polyaxon run --executor kubernetes` may do here.
    if c.bool("rbac.enabled") != Some(false) {
        out.push(to_json(&core::ServiceAccount {
            metadata: meta(c, n.executor(), "executor"),
            ..Default::default()
        }));
        let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| rbac::PolicyRule {
            api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let manage = [
            "get", "list", "watch", "create", "update", "patch", "delete",
        ];
        out.push(to_json(&rbac::Role {
            metadata: meta(c, n.executor(), "executor"),
            rules: Some(vec![
                rule(
                    &[""],
                    &["pods", "pods/log", "services", "secrets", "configmaps"],
                    &manage,
                ),
                rule(&[""], &["pods/portforward"], &["get", "create"]),
                rule(&[""], &["events"], &["get", "list", "watch"]),
                rule(&["batch"], &["jobs"], &manage),
                rule(&["apps"], &["deployments"], &manage),
                rule(
                    &["kubeflow.org"],
                    &["tfjobs", "pytorchjobs", "mpijobs"],
                    &manage,
                ),
            ]),
        }));
        out.push(to_json(&rbac::RoleBinding {
            metadata: meta(c, n.executor(), "executor"),
            role_ref: rbac::RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: n.executor(),
            },
            subjects: Some(vec![rbac::Subject {
                kind: "ServiceAccount".into(),
                name: n.executor(),
                namespace: Some(n.ns.clone()),
                ..Default::default()
            }]),
        }));
    }
    if c.agent_only() {
        // Against a server elsewhere: its address and a superuser's token come with the config.
        let host = match (
            c.str("externalServices.api.host"),
            c.int("externalServices.api.port"),
        ) {
            (Some(h), Some(p)) => format!("{}:{p}", h.trim_end_matches('/')),
            (Some(h), None) => h.trim_end_matches('/').to_string(),
            // Refused by the config's checks.
            (None, _) => String::new(),
        };
        // The token: given here (kept in the deploy's secret), or in a secret made beforehand
        // (see `advice`).
        if let Some(token) = c.str("agent.token") {
            out.push(to_json(&core::Secret {
                metadata: meta(c, n.secret(), "secrets"),
                type_: Some("Opaque".into()),
                string_data: Some(BTreeMap::from([("agent-token".to_string(), token)])),
                ..Default::default()
            }));
        }
        out.push(agent_deployment(c, &n, host)?);
        return Ok(out);
    }

    let admin_password = c
        .str("user.password")
        .unwrap_or_else(|| secrets.admin_password.clone());
    let (db_user, db_name, db_password, db_host, db_port) = if c.internal_db() {
        (
            c.str("postgresql.auth.username")
                .unwrap_or_else(|| "polyaxon".into()),
            c.str("postgresql.auth.database")
                .unwrap_or_else(|| "polyaxon".into()),
            c.str("postgresql.auth.password")
                .unwrap_or_else(|| secrets.db_password.clone()),
            n.db(),
            5432,
        )
    } else {
        (
            c.str("externalServices.postgresql.user")
                .unwrap_or_else(|| "polyaxon".into()),
            c.str("externalServices.postgresql.database")
                .unwrap_or_else(|| "polyaxon".into()),
            c.str("externalServices.postgresql.password")
                .unwrap_or_default(),
            c.str("externalServices.postgresql.host")
                .unwrap_or_default(),
            c.int("externalServices.postgresql.port").unwrap_or(5432),
        )
    };
    let db_host = db_host
        .trim_start_matches("postgres://")
        .trim_start_matches("postgresql://")
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut ssl = String::new();
    if let Some(m) = c.str("externalServices.postgresql.sslMode") {
        ssl = format!("?sslmode={m}");
    }
    let url = format!(
        "postgres://{}:{}@{}:{}/{}{}",
        enc(&db_user),
        enc(&db_password),
        db_host,
        db_port,
        enc(&db_name),
        ssl
    );
    out.push(to_json(&core::Secret {
        metadata: meta(c, n.secret(), "secrets"),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([
            ("admin-password".to_string(), admin_password),
            ("database-password".to_string(), db_password.clone()),
            ("database-url".to_string(), url),
            (
                "agent-token".to_string(),
                c.str("agent.token")
                    .unwrap_or_else(|| secrets.agent_token.clone()),
            ),
        ])),
        ..Default::default()
    }));

    if c.internal_db() {
        let size = c
            .str("postgresql.persistence.size")
            .unwrap_or_else(|| "8Gi".into());
        let mut db_spec = core::PodSpec {
            containers: vec![core::Container {
                name: "postgresql".into(),
                image: Some(format!(
                    "postgres:{}",
                    c.str("postgresql.imageTag").unwrap_or_else(|| "15".into())
                )),
                env: Some(vec![
                    env("POSTGRES_USER", db_user.clone()),
                    env("POSTGRES_DB", db_name.clone()),
                    secret_env("POSTGRES_PASSWORD", &n.secret(), "database-password"),
                    env("PGDATA", "/var/lib/postgresql/data/pgdata"),
                ]),
                ports: Some(vec![core::ContainerPort {
                    name: Some("postgresql".into()),
                    container_port: 5432,
                    ..Default::default()
                }]),
                readiness_probe: Some(core::Probe {
                    exec: Some(core::ExecAction {
                        command: Some(vec![
                            "pg_isready".into(),
                            "-U".into(),
                            db_user.clone(),
                            "-d".into(),
                            db_name.clone(),
                        ]),
                    }),
                    period_seconds: Some(5),
                    ..Default::default()
                }),
                resources: from(c, "postgresql.resources")?,
                volume_mounts: Some(vec![core::VolumeMount {
                    name: "data".into(),
                    mount_path: "/var/lib/postgresql/data".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        };
        pod_scheduling(c, "postgresql", &mut db_spec)?;
        let persist = c.bool("postgresql.persistence.enabled") != Some(false);
        let existing = c.str("postgresql.persistence.existingClaim");
        if !persist || existing.is_some() {
            db_spec.volumes = Some(vec![core::Volume {
                name: "data".into(),
                persistent_volume_claim: existing.map(|e| {
                    core::PersistentVolumeClaimVolumeSource {
                        claim_name: e,
                        read_only: None,
                    }
                }),
                empty_dir: (!persist).then(Default::default),
                ..Default::default()
            }]);
        }
        let claims =
            (persist && c.str("postgresql.persistence.existingClaim").is_none()).then(|| {
                vec![core::PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some("data".into()),
                        labels: Some(labels(c, "database")),
                        ..Default::default()
                    },
                    spec: Some(claim_spec(
                        &size,
                        c.str("postgresql.persistence.storageClass"),
                    )),
                    ..Default::default()
                }]
            });
        out.push(to_json(&core::Service {
            metadata: meta(c, n.db(), "database"),
            spec: Some(core::ServiceSpec {
                selector: Some(selector(c, "database")),
                ports: Some(vec![core::ServicePort {
                    name: Some("postgresql".into()),
                    port: 5432,
                    target_port: Some(IntOrString::Int(5432)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }));
        out.push(to_json(&apps::StatefulSet {
            metadata: meta(c, n.db(), "database"),
            spec: Some(apps::StatefulSetSpec {
                service_name: Some(n.db()),
                replicas: Some(1),
                selector: pod_selector(c, "database"),
                template: pod_template(c, "database", db_spec),
                volume_claim_templates: claims,
                ..Default::default()
            }),
            ..Default::default()
        }));
    }

    // The artifacts store: a volume shared by the server and the runs' pods.
    let (artifacts_volume, artifacts_path) = artifacts_volume(c, &n, &mut out);
    let store_key = gcs_key_file(c);
    let image = match (c.str("gateway.image"), c.str("gateway.imageTag")) {
        (Some(i), Some(t)) if !i.contains(':') => format!("{i}:{t}"),
        (Some(i), _) => i,
        (None, _) => default_image(),
    };
    let mut api_spec = core::PodSpec {
        service_account_name: (c.bool("rbac.enabled") != Some(false)).then(|| n.executor()),
        containers: vec![core::Container {
            name: "api".into(),
            image: Some(image),
            image_pull_policy: c.str("gateway.imagePullPolicy"),
            command: Some(vec!["polyaxon".into()]),
            args: Some(vec![
                "server".into(),
                "start".into(),
                "--host".into(),
                "0.0.0.0".into(),
                "--port".into(),
                "8000".into(),
                "--artifacts-root".into(),
                artifacts_path.clone(),
            ]),
            env: Some(
                vec![
                    secret_env("POLYAXON_DATABASE_URL", &n.secret(), "database-url"),
                    secret_env("POLYAXON_ADMIN_PASSWORD", &n.secret(), "admin-password"),
                    env(
                        "POLYAXON_ENVIRONMENT",
                        c.str("environment").unwrap_or_else(|| "production".into()),
                    ),
                    env(
                        "POLYAXON_LOG_LEVEL",
                        c.str("logLevel").unwrap_or_else(|| "INFO".into()),
                    ),
                    env("TZ", c.str("timezone").unwrap_or_else(|| "UTC".into())),
                    env("POLYAXON_K8S_NAMESPACE", n.ns.clone()),
                    secret_env("POLYAXON_AGENT_TOKEN", &n.secret(), "agent-token"),
                ]
                .into_iter()
                .chain(bucket_url(c).map(|u| env("POLYAXON_ARTIFACTS_STORE", u)))
                .chain(
                    store_key
                        .as_ref()
                        .map(|(_, path)| env("GOOGLE_APPLICATION_CREDENTIALS", path.clone())),
                )
                .collect(),
            ),
            // A bucket's credentials: the keys of `artifactsStore.secret` (a name, or upstream's
            // `{name: …}`) as env (`AWS_*`, `GOOGLE_*`, `AZURE_*`, what each cloud's client
            // reads); a GCS key file mounted instead (`{name, mountPath}`).
            env_from: c
                .str("artifactsStore.secret")
                .or_else(|| c.str("artifactsStore.secret.name"))
                .filter(|_| bucket_url(c).is_some() && store_key.is_none())
                .map(|name| {
                    vec![core::EnvFromSource {
                        secret_ref: Some(core::SecretEnvSource {
                            name,
                            optional: None,
                        }),
                        ..Default::default()
                    }]
                }),
            ports: Some(vec![core::ContainerPort {
                name: Some("http".into()),
                container_port: 8000,
                ..Default::default()
            }]),
            readiness_probe: Some(health(5, None)),
            liveness_probe: Some(health(20, Some(10))),
            resources: from(c, "gateway.resources")?,
            volume_mounts: Some(
                std::iter::once(core::VolumeMount {
                    name: "artifacts".into(),
                    mount_path: artifacts_path,
                    ..Default::default()
                })
                .chain(store_key.as_ref().map(|(_, path)| {
                    core::VolumeMount {
                        name: "artifacts-store-key".into(),
                        mount_path: std::path::Path::new(path)
                            .parent()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| path.clone()),
                        read_only: Some(true),
                        ..Default::default()
                    }
                }))
                .collect(),
            ),
            ..Default::default()
        }],
        volumes: Some(
            std::iter::once(artifacts_volume)
                .chain(store_key.as_ref().map(|(secret, _)| core::Volume {
                    name: "artifacts-store-key".into(),
                    secret: Some(core::SecretVolumeSource {
                        secret_name: Some(secret.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }))
                .collect(),
        ),
        ..Default::default()
    };
    pod_scheduling(c, "gateway", &mut api_spec)?;
    if api_spec.security_context.is_none() {
        // The image's user (scripts/server-image), and volumes it may write.
        api_spec.security_context = Some(core::PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(1000),
            fs_group: Some(1000),
            // Volumes already owned right are not walked again at every start.
            fs_group_change_policy: Some("OnRootMismatch".into()),
            run_as_non_root: Some(true),
            ..Default::default()
        });
    }
    out.push(to_json(&apps::Deployment {
        metadata: meta(c, n.api(), "api"),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(c.int("gateway.replicas").unwrap_or(1) as i32),
            selector: pod_selector(c, "api"),
            template: pod_template(c, "api", api_spec),
            ..Default::default()
        }),
        ..Default::default()
    }));
    let port = c.int("gateway.service.port").unwrap_or(80) as i32;
    let svc_type = c
        .str("gateway.service.type")
        .unwrap_or_else(|| "ClusterIP".into());
    let mut svc_meta = meta(c, n.api(), "api");
    if let Some(a) = from::<BTreeMap<String, String>>(c, "gateway.service.annotations")? {
        svc_meta.annotations.get_or_insert_default().extend(a);
    }
    out.push(to_json(&core::Service {
        metadata: svc_meta,
        spec: Some(core::ServiceSpec {
            type_: Some(svc_type.clone()),
            selector: Some(selector(c, "api")),
            load_balancer_ip: c.str("gateway.service.loadBalancerIP"),
            ports: Some(vec![core::ServicePort {
                name: Some("http".into()),
                port,
                target_port: Some(IntOrString::Int(8000)),
                node_port: c
                    .int("gateway.service.nodePort")
                    .filter(|_| svc_type == "NodePort")
                    .map(|p| p as i32),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }));
    if c.bool("agent.enabled") != Some(false) {
        out.push(agent_deployment(
            c,
            &n,
            format!("http://{}.{}.svc:{port}", n.api(), n.ns),
        )?);
    }
    if c.bool("ingress.enabled") == Some(true) {
        let path = c.str("ingress.path").unwrap_or_else(|| "/".into());
        // `/*` (upstream's GCE style) is a prefix match of `/`.
        let path = path.trim_end_matches('*').to_string();
        let path = if path.is_empty() { "/".into() } else { path };
        let mut im = meta(c, n.api(), "ingress");
        if let Some(a) = from::<BTreeMap<String, String>>(c, "ingress.annotations")? {
            im.annotations.get_or_insert_default().extend(a);
        }
        out.push(to_json(&net::Ingress {
            metadata: im,
            spec: Some(net::IngressSpec {
                ingress_class_name: c.str("ingress.className"),
                tls: from(c, "ingress.tls")?,
                rules: Some(vec![net::IngressRule {
                    host: c.str("ingress.hostName"),
                    http: Some(net::HTTPIngressRuleValue {
                        paths: vec![net::HTTPIngressPath {
                            path: Some(path),
                            path_type: "Prefix".into(),
                            backend: net::IngressBackend {
                                service: Some(net::IngressServiceBackend {
                                    name: n.api(),
                                    port: Some(net::ServiceBackendPort {
                                        number: Some(port),
                                        ..Default::default()
                                    }),
                                }),
                                ..Default::default()
                            },
                        }],
                    }),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }));
    }
    Ok(out)
}

/// The agent: `polyaxon agent start` on the Kubernetes executor, with the executor's
/// identity, the agents' token from the deploy's secret, and the server at `host`.
fn agent_deployment(c: &Config, n: &Names, host: String) -> Result<J> {
    let image = match (
        c.str("agent.image")
            .filter(|i| !i.contains("polyaxon-agent")),
        c.str("agent.imageTag"),
    ) {
        (Some(i), Some(t)) if !i.contains(':') => format!("{i}:{t}"),
        (Some(i), _) => i,
        // Upstream's agent image is another program: ours is this binary, the server's image.
        (None, _) => match (c.str("gateway.image"), c.str("gateway.imageTag")) {
            (Some(i), Some(t)) if !i.contains(':') && !i.contains("polyaxon-streams") => {
                format!("{i}:{t}")
            }
            (Some(i), _) if !i.contains("polyaxon-streams") => i,
            _ => default_image(),
        },
    };
    let name = c
        .str("agent.instance")
        .unwrap_or_else(|| format!("{}-agent", n.ns));
    let mut args = vec![
        "agent".to_string(),
        "start".into(),
        "--executor".into(),
        "kubernetes".into(),
        "--name".into(),
        name,
        "--max-concurrency".into(),
        c.int("agent.maxConcurrency").unwrap_or(50).to_string(),
    ];
    if let Some(q) = c.str("agent.queues") {
        args.extend(["--queue".into(), q]);
    }
    let mut spec = core::PodSpec {
        service_account_name: (c.bool("rbac.enabled") != Some(false)).then(|| n.executor()),
        // Drains on SIGTERM: running runs finish (up to this long) before the pod goes.
        termination_grace_period_seconds: Some(
            c.int("agent.terminationGracePeriodSeconds").unwrap_or(300),
        ),
        containers: vec![core::Container {
            name: "agent".into(),
            image: Some(image.clone()),
            image_pull_policy: c.str("agent.imagePullPolicy"),
            command: Some(vec!["polyaxon".into()]),
            args: Some(args),
            env: Some(vec![
                env("POLYAXON_HOST", host),
                secret_env("POLYAXON_AUTH_TOKEN", &n.secret(), "agent-token"),
                env("POLYAXON_K8S_NAMESPACE", n.ns.clone()),
                // Runs' pods send their files through a sidecar of this same binary: no
                // volume shared with the server (a bucket, or a claim one node mounts).
                env("POLYAXON_K8S_SIDECAR_IMAGE", image),
                env("POLYAXON_HOME", "/tmp/polyaxon"),
                env("TZ", c.str("timezone").unwrap_or_else(|| "UTC".into())),
            ]),
            resources: from(c, "agent.resources")?,
            security_context: Some(core::SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(false),
                run_as_non_root: Some(true),
                run_as_user: Some(1000),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    pod_scheduling(c, "agent", &mut spec)?;
    Ok(to_json(&apps::Deployment {
        metadata: meta(c, n.agent(), "agent"),
        spec: Some(apps::DeploymentSpec {
            // One agent of a name at a time: a new pod replaces the old one.
            replicas: Some(1),
            strategy: Some(apps::DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..Default::default()
            }),
            selector: pod_selector(c, "agent"),
            template: pod_template(c, "agent", spec),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// A GCS bucket's key file, when `artifactsStore.secret` is mounted (`{name, mountPath}`, as
/// upstream writes it): the secret, and the file's path (its first `items` key, else
/// `gc-secret.json`, under `mountPath`), which the server's GCS client reads.
fn gcs_key_file(c: &Config) -> Option<(String, String)> {
    if !bucket_url(c).is_some_and(|u| u.starts_with("gs://")) {
        return None;
    }
    let name = c.str("artifactsStore.secret.name")?;
    let mount = c.str("artifactsStore.secret.mountPath")?;
    let file = c
        .value("artifactsStore.secret.items")
        .and_then(|v| v.as_array())
        .and_then(|a| a.first())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "gc-secret.json".into());
    Some((name, format!("{}/{file}", mount.trim_end_matches('/'))))
}

/// The bucket upstream's `artifactsStore` names (`kind: s3|gcs|wasb`, `schema.bucket`), as the
/// server's `--artifacts-store` URL.
fn bucket_url(c: &Config) -> Option<String> {
    let kind = c.str("artifactsStore.kind").unwrap_or_default();
    let bucket = c.str("artifactsStore.schema.bucket")?;
    let bucket = bucket.trim().trim_end_matches('/');
    let (scheme, rest) = bucket.split_once("://").unwrap_or(("", bucket));
    let scheme = match (kind.as_str(), scheme) {
        (_, s) if !s.is_empty() => s.to_string(),
        ("s3", _) => "s3".into(),
        ("gcs", _) => "gs".into(),
        ("wasb", _) => "wasb".into(),
        _ => return None,
    };
    Some(format!("{scheme}://{rest}"))
}

/// The artifacts store's volume (and the claim to create, if ours) and where it is mounted.
fn artifacts_volume(c: &Config, n: &Names, out: &mut Vec<J>) -> (core::Volume, String) {
    let kind = c.str("artifactsStore.kind").unwrap_or_default();
    let schema = |k: &str| c.str(&format!("artifactsStore.schema.{k}"));
    let mount = schema("mountPath").unwrap_or_else(|| "/plx-context/artifacts".into());
    match kind.as_str() {
        "volume_claim" if schema("volumeClaim").is_some() => (
            core::Volume {
                name: "artifacts".into(),
                persistent_volume_claim: Some(core::PersistentVolumeClaimVolumeSource {
                    claim_name: schema("volumeClaim").unwrap_or_default(),
                    read_only: None,
                }),
                ..Default::default()
            },
            mount,
        ),
        "host_path" if schema("hostPath").is_some() => (
            core::Volume {
                name: "artifacts".into(),
                host_path: Some(core::HostPathVolumeSource {
                    path: schema("hostPath").unwrap_or_default(),
                    type_: Some("DirectoryOrCreate".into()),
                }),
                ..Default::default()
            },
            mount,
        ),
        _ => {
            out.push(to_json(&core::PersistentVolumeClaim {
                metadata: meta(c, n.artifacts(), "artifacts"),
                spec: Some(claim_spec("10Gi", None)),
                ..Default::default()
            }));
            (
                core::Volume {
                    name: "artifacts".into(),
                    persistent_volume_claim: Some(core::PersistentVolumeClaimVolumeSource {
                        claim_name: n.artifacts(),
                        read_only: None,
                    }),
                    ..Default::default()
                },
                "/plx-context/artifacts".into(),
            )
        }
    }
}

/// Warnings about a config beyond its unused keys.
pub fn advice(c: &Config) -> Vec<String> {
    let mut w = c.warnings.clone();
    if let Some(u) = c.str("user.username").filter(|u| u != "root") {
        w.push(format!(
            "`user.username: {u}`: the server's first user is `root`; create `{u}` after the deploy"
        ));
    }
    if c.agent_only() && c.str("agent.token").is_none() {
        w.push(format!(
            "`agent.token` is not set: the agent reads its token (a superuser's on the server) from the secret `{}-secrets`, key `agent-token`; create it before the agent starts: `kubectl -n {} create secret generic {}-secrets --from-literal=agent-token=TOKEN`",
            c.release(),
            c.namespace(),
            c.release()
        ));
    }
    let kind = c.str("artifactsStore.kind").unwrap_or_default();
    if kind == "host_path" && c.bool("securityContext.enabled") != Some(true) {
        w.push(
            "`artifactsStore.kind: host_path`: the server runs as uid 1000 and a host path gets no group ownership from Kubernetes: make the directory writable by uid 1000 on every node, or set `securityContext` (runAsUser/fsGroup)".into(),
        );
    }
    if bucket_url(c).is_some() {
        w.push(format!(
            "`artifactsStore.kind: {kind}`: runs' files go to the bucket (their pods send them through a sidecar and share no volume); the server keeps the logs and event files it takes in on a {}-artifacts claim of 10Gi, which one node mounts (ReadWriteOnce will do)",
            c.release()
        ));
    } else if !kind.is_empty() && kind != "volume_claim" && kind != "host_path" {
        w.push(format!(
            "`artifactsStore.kind: {kind}`: the server keeps artifacts on a volume; a {}-artifacts claim of 10Gi is created instead",
            c.release()
        ));
    }
    w
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The secrets of a previous deploy, kept by upgrades (the database was initialised with them).
pub async fn existing_secrets(client: &kube::Client, c: &Config) -> Result<Option<Secrets>> {
    let n = Names::of(c);
    let api: Api<core::Secret> = Api::namespaced(client.clone(), &n.ns);
    let s = api
        .get_opt(&n.secret())
        .await
        .map_err(|e| k8s::explain(e, "reading the deploy's secrets"))?;
    Ok(s.and_then(|s| {
        let d = s.data?;
        let get = |k: &str| d.get(k).map(|b| String::from_utf8_lossy(&b.0).into_owned());
        Some(Secrets {
            admin_password: get("admin-password")?,
            db_password: get("database-password")?,
            // Deploys from before the agent get one now.
            agent_token: get("agent-token").unwrap_or_else(|| Secrets::generate().agent_token),
        })
    }))
}

/// Applies every object, reporting each; then waits for the rollout.
pub async fn apply_all(
    client: &kube::Client,
    objects: &[J],
    progress: &dyn Fn(&str),
    timeout: Duration,
    poll: Duration,
) -> Result<()> {
    for o in objects {
        let r = ObjRef::of(o)?;
        k8s::apply(client, o).await?;
        progress(&format!("applied {}", r.describe()));
    }
    wait_rollout(client, objects, progress, timeout, poll).await
}

/// Waits until every Deployment and StatefulSet has its replicas ready and up to date.
pub async fn wait_rollout(
    client: &kube::Client,
    objects: &[J],
    progress: &dyn Fn(&str),
    timeout: Duration,
    poll: Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    for o in objects {
        let r = ObjRef::of(o)?;
        if r.kind != "Deployment" && r.kind != "StatefulSet" {
            continue;
        }
        let api = r.api(client)?;
        let mut said = String::new();
        loop {
            let obj = api
                .get(&r.name)
                .await
                .map_err(|e| k8s::explain(e, &format!("reading {}", r.describe())))?;
            let want = obj
                .data
                .pointer("/spec/replicas")
                .and_then(J::as_i64)
                .unwrap_or(1);
            let st = |k: &str| {
                obj.data
                    .pointer(&format!("/status/{k}"))
                    .and_then(J::as_i64)
                    .unwrap_or(0)
            };
            let generation = obj.metadata.generation.unwrap_or(0);
            let observed = st("observedGeneration");
            let (ready, updated) = (st("readyReplicas"), st("updatedReplicas"));
            let msg = format!("{}: {ready}/{want} ready, {updated} updated", r.describe());
            if msg != said {
                progress(&msg);
                said = msg;
            }
            if observed >= generation && ready >= want && updated >= want {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(UserError::new(format!(
                    "{} did not become ready in {} s ({said})",
                    r.describe(),
                    timeout.as_secs()
                ))
                .hint(format!(
                    "`kubectl -n {} describe {} {}` says why (image pull, scheduling, probes)",
                    r.namespace.clone().unwrap_or_default(),
                    r.kind.to_lowercase(),
                    r.name
                ))
                .into());
            }
            tokio::time::sleep(poll).await;
        }
    }
    Ok(())
}

/// Removes a deploy. The database's volumes and the secrets that open it stay unless
/// `delete_volumes` (then the namespace goes too).
pub async fn teardown(
    client: &kube::Client,
    c: &Config,
    delete_volumes: bool,
    progress: &dyn Fn(&str),
) -> Result<()> {
    let n = Names::of(c);
    let objects = manifests(c, &Secrets::generate())?;
    for o in objects.iter().rev() {
        let r = ObjRef::of(o)?;
        let keep = match r.kind.as_str() {
            "Namespace" => !delete_volumes,
            "PersistentVolumeClaim" | "Secret" => !delete_volumes,
            _ => false,
        };
        if keep {
            progress(&format!("kept {}", r.describe()));
            continue;
        }
        if r.kind == "Namespace" {
            continue;
        }
        if k8s::delete(client, &r, None).await? {
            progress(&format!("deleted {}", r.describe()));
        }
    }
    if delete_volumes {
        let pvcs: Api<core::PersistentVolumeClaim> = Api::namespaced(client.clone(), &n.ns);
        let lp = ListParams::default().labels(&format!("app.kubernetes.io/instance={}", n.rel));
        let _ = pvcs
            .delete_collection(&DeleteParams::foreground(), &lp)
            .await
            .map_err(|e| k8s::explain(e, "deleting the database's volumes"))?;
        progress("deleted the database's volumes");
        let ns = ObjRef {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            name: n.ns.clone(),
            namespace: None,
        };
        if k8s::delete(client, &ns, None).await? {
            progress(&format!("deleted Namespace {}", n.ns));
        }
    }
    Ok(())
}

/// The manifests for printing: secrets' values hidden unless asked.
pub fn printable(objects: &[J], show_secrets: bool) -> Vec<J> {
    objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            if !show_secrets
                && o.get("kind").and_then(J::as_str) == Some("Secret")
                && let Some(d) = o.get_mut("stringData").and_then(J::as_object_mut)
            {
                for v in d.values_mut() {
                    *v = json!("<hidden: --show-secrets prints it>");
                }
            }
            o
        })
        .collect()
}

/// Whether a deploy exists (its server Deployment, or for the agent chart its Role).
pub async fn deployed(client: &kube::Client, c: &Config) -> Result<bool> {
    let n = Names::of(c);
    let r = if c.agent_only() {
        ObjRef {
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: "Role".into(),
            name: n.executor(),
            namespace: Some(n.ns.clone()),
        }
    } else {
        ObjRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: n.api(),
            namespace: Some(n.ns.clone()),
        }
    };
    k8s::exists(client, &r)
        .await
        .context("looking for the deploy")
}
