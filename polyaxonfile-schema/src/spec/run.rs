//! `run`: what the component executes — a job, a service, a DAG, or a distributed job.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;

use super::init::Init;
use super::k8s::{Container, Environment, Resources};
use super::matrix::EarlyStopping;
use super::ops::{Component, Operation};

tagged! {
    /// The run section, selected by its `kind`.
    pub enum Run {
        "job" => Job(Job),
        "service" => Service(Service),
        "dag" => Dag(Dag),
        "tfjob" => TfJob(TfJob),
        "pytorchjob" => PytorchJob(PytorchJob),
        "mpijob" => MpiJob(MpiJob),
        "raycluster" => RayCluster(RayCluster),
        "daskcluster" => DaskCluster(DaskCluster),
    }
}

impl Run {
    /// The main container, for single-pod kinds.
    pub fn container(&self) -> Option<&Container> {
        match self {
            Run::Job(j) => j.container.as_ref(),
            Run::Service(s) => s.container.as_ref(),
            _ => None,
        }
    }

    pub fn init(&self) -> &[Init] {
        match self {
            Run::Job(j) => j.init.as_deref().unwrap_or_default(),
            Run::Service(s) => s.init.as_deref().unwrap_or_default(),
            _ => &[],
        }
    }

    pub fn environment(&self) -> Option<&Environment> {
        match self {
            Run::Job(j) => j.environment.as_ref(),
            Run::Service(s) => s.environment.as_ref(),
            Run::Dag(d) => d.environment.as_ref(),
            _ => None,
        }
    }

    /// Every replica of a distributed run, with its role name.
    pub fn replicas(&self) -> Vec<(String, ReplicaRef<'_>)> {
        fn named<'a>(pairs: Vec<(&str, &'a Option<Replica>)>) -> Vec<(String, ReplicaRef<'a>)> {
            pairs
                .into_iter()
                .filter_map(|(n, r)| r.as_ref().map(|r| (n.to_string(), ReplicaRef::from(r))))
                .collect()
        }
        match self {
            Run::TfJob(t) => named(vec![
                ("chief", &t.chief),
                ("worker", &t.worker),
                ("ps", &t.ps),
                ("evaluator", &t.evaluator),
            ]),
            Run::PytorchJob(p) => named(vec![("master", &p.master), ("worker", &p.worker)]),
            Run::MpiJob(m) => named(vec![("launcher", &m.launcher), ("worker", &m.worker)]),
            Run::DaskCluster(d) => named(vec![("scheduler", &d.scheduler), ("worker", &d.worker)]),
            Run::RayCluster(r) => {
                let mut out: Vec<(String, ReplicaRef<'_>)> = r
                    .head
                    .iter()
                    .map(|h| ("head".to_string(), ReplicaRef::from(h)))
                    .collect();
                if let Some(w) = &r.workers {
                    out.extend(w.iter().map(|(n, rep)| (n.clone(), ReplicaRef::from(rep))));
                }
                out
            }
            _ => Vec::new(),
        }
    }
}

/// The parts every kind of replica has.
#[derive(Clone, Copy, Debug)]
pub struct ReplicaRef<'a> {
    pub replicas: Option<i32>,
    pub environment: Option<&'a Environment>,
    pub init: Option<&'a [Init]>,
    pub sidecars: Option<&'a [Container]>,
    pub container: Option<&'a Container>,
}

impl<'a> From<&'a Replica> for ReplicaRef<'a> {
    fn from(r: &'a Replica) -> Self {
        ReplicaRef {
            replicas: r.replicas,
            environment: r.environment.as_ref(),
            init: r.init.as_deref(),
            sidecars: r.sidecars.as_deref(),
            container: r.container.as_ref(),
        }
    }
}

impl<'a> From<&'a RayReplica> for ReplicaRef<'a> {
    fn from(r: &'a RayReplica) -> Self {
        ReplicaRef {
            replicas: r.replicas,
            environment: r.environment.as_ref(),
            init: r.init.as_deref(),
            sidecars: r.sidecars.as_deref(),
            container: r.container.as_ref(),
        }
    }
}

spec! {
    /// A batch job: runs its container to completion.
    pub struct Job {
        pub environment: Option<Environment>,
        pub connections: Option<Vec<String>>,
        pub volumes: Option<Vec<core::Volume>>,
        pub init: Option<Vec<Init>>,
        pub sidecars: Option<Vec<Container>>,
        pub container: Option<Container>,
    }
}

spec! {
    /// A long-running service (a notebook, a dashboard, an API) reachable on its ports.
    pub struct Service {
        pub environment: Option<Environment>,
        pub connections: Option<Vec<String>>,
        pub volumes: Option<Vec<core::Volume>>,
        pub init: Option<Vec<Init>>,
        pub sidecars: Option<Vec<Container>>,
        pub container: Option<Container>,
        pub ports: Option<Vec<i32>>,
        pub rewrite_path: Option<bool>,
        pub is_external: Option<bool>,
        pub replicas: Option<i32>,
    }
}

spec! {
    /// A pipeline of operations with dependencies.
    pub struct Dag {
        pub operations: Option<Vec<Operation>>,
        pub components: Option<Vec<Component>>,
        pub environment: Option<Environment>,
        pub connections: Option<Vec<String>>,
        pub volumes: Option<Vec<core::Volume>>,
        pub concurrency: Option<i64>,
        pub early_stopping: Option<Vec<EarlyStopping>>,
    }
}

spec! {
    /// One role of a distributed job (chief, worker, master, …).
    pub struct Replica {
        pub replicas: Option<i32>,
        pub environment: Option<Environment>,
        pub connections: Option<Vec<String>>,
        pub volumes: Option<Vec<core::Volume>>,
        pub init: Option<Vec<Init>>,
        pub sidecars: Option<Vec<Container>>,
        pub container: Option<Container>,
    }
}

str_enum! {
    pub enum CleanPodPolicy {
        #[serde(rename = "All")] All,
        #[serde(rename = "Running")] Running,
        #[serde(rename = "None")] None,
    }
}

spec! {
    pub struct SchedulingPolicy {
        pub min_available: Option<i32>,
        pub queue: Option<String>,
        pub min_resources: Option<BTreeMap<String, super::k8s::Quantity>>,
        pub priority_class: Option<String>,
        pub schedule_timeout_seconds: Option<i32>,
    }
}

spec! {
    /// A Kubeflow TFJob.
    pub struct TfJob {
        pub clean_pod_policy: Option<CleanPodPolicy>,
        pub scheduling_policy: Option<SchedulingPolicy>,
        pub enable_dynamic_worker: Option<bool>,
        pub success_policy: Option<String>,
        pub chief: Option<Replica>,
        pub ps: Option<Replica>,
        pub worker: Option<Replica>,
        pub evaluator: Option<Replica>,
    }
}

spec! {
    pub struct PytorchElasticPolicy {
        pub min_replicas: Option<i32>,
        pub max_replicas: Option<i32>,
        pub rdzv_backend: Option<String>,
        pub rdzv_port: Option<i32>,
        pub rdzv_host: Option<String>,
        pub rdzv_id: Option<String>,
        pub rdzv_conf: Option<Vec<BTreeMap<String, String>>>,
        pub standalone: Option<bool>,
        pub n_proc_per_node: Option<i32>,
        pub max_restarts: Option<i32>,
        pub metrics: Option<Vec<serde_json::Value>>,
    }
}

spec! {
    /// A Kubeflow PyTorchJob.
    pub struct PytorchJob {
        pub clean_pod_policy: Option<CleanPodPolicy>,
        pub scheduling_policy: Option<SchedulingPolicy>,
        pub elastic_policy: Option<PytorchElasticPolicy>,
        pub n_proc_per_node: Option<i32>,
        pub master: Option<Replica>,
        pub worker: Option<Replica>,
    }
}

spec! {
    /// A Kubeflow MPIJob.
    pub struct MpiJob {
        pub clean_pod_policy: Option<CleanPodPolicy>,
        pub scheduling_policy: Option<SchedulingPolicy>,
        pub slots_per_worker: Option<i32>,
        pub launcher: Option<Replica>,
        pub worker: Option<Replica>,
    }
}

spec! {
    /// A Ray cluster (KubeRay), optionally running an entrypoint.
    pub struct RayCluster {
        pub entrypoint: Option<String>,
        pub runtime_env: Option<BTreeMap<String, serde_json::Value>>,
        pub metadata: Option<BTreeMap<String, String>>,
        pub ray_version: Option<String>,
        pub head: Option<RayReplica>,
        pub workers: Option<BTreeMap<String, RayReplica>>,
        pub enable_in_tree_autoscaling: Option<bool>,
        pub autoscaler_options: Option<RayAutoscalerOptions>,
    }
}

spec! {
    /// The head or a worker group of a Ray cluster.
    pub struct RayReplica {
        pub replicas: Option<i32>,
        pub min_replicas: Option<i32>,
        pub max_replicas: Option<i32>,
        pub ray_start_params: Option<BTreeMap<String, String>>,
        pub environment: Option<Environment>,
        pub connections: Option<Vec<String>>,
        pub volumes: Option<Vec<core::Volume>>,
        pub init: Option<Vec<Init>>,
        pub sidecars: Option<Vec<Container>>,
        pub container: Option<Container>,
    }
}

spec! {
    pub struct RayAutoscalerOptions {
        pub upscaling_mode: Option<String>,
        pub idle_timeout_seconds: Option<i32>,
        pub image: Option<String>,
        pub image_pull_policy: Option<String>,
        pub resources: Option<Resources>,
        pub env: Option<Vec<core::EnvVar>>,
        pub env_from: Option<Vec<core::EnvFromSource>>,
        pub security_context: Option<core::SecurityContext>,
        pub volume_mounts: Option<Vec<core::VolumeMount>>,
    }
}

spec! {
    /// A Dask cluster (dask-kubernetes operator): a scheduler and workers.
    pub struct DaskCluster {
        pub worker: Option<Replica>,
        pub scheduler: Option<Replica>,
        pub min_replicas: Option<i32>,
        pub max_replicas: Option<i32>,
    }
}
