//! The wire types: Polyaxon's v1 JSON shapes (snake_case), serde only. The CLI's client uses
//! these same types. Beside them, the run contract both sides keep: [`RunStatus`] and its
//! lifecycle, [`RunMeta`] (what the platform keeps in a run's `meta_info`), [`CodeRef`] and
//! [`ExecutorKind`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as J};
use utoipa::ToSchema;

/// Times on the wire: RFC 3339 with microseconds, UTC.
pub fn time(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

/// Reads a time given as RFC 3339 text or as seconds since the epoch.
pub fn parse_time(v: &J) -> Option<i64> {
    match v {
        J::Number(n) => n.as_f64().map(|s| (s * 1e6) as i64),
        J::String(s) => polyaxonfile::spec::misc::parse_datetime(s).map(|t| t.as_microsecond()),
        _ => None,
    }
}

/// The name of a run's Kubernetes resources (its Job, Deployment, Service): upstream's.
pub fn k8s_resource_name(uuid: &str) -> String {
    format!("plx-operation-{}", uuid.replace('-', ""))
}

/// A run's status and the lifecycle rules (`is_done`, `is_startable`, `can_transition`…).
pub use polyaxonfile::spec::Status as RunStatus;

/// A status as a client names it; an unknown one says which there are.
fn run_status<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RunStatus, D::Error> {
    let s = String::deserialize(d)?;
    RunStatus::parse(&s).ok_or_else(|| {
        let all: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
        serde::de::Error::custom(format!(
            "`{s}` is not a run status (use one of {})",
            all.join(", ")
        ))
    })
}

/// Where a run's job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// This machine's processes.
    #[serde(alias = "local")]
    Process,
    /// Containers of a Docker Engine.
    Docker,
    /// Pods of a Kubernetes cluster.
    #[serde(alias = "k8s")]
    Kubernetes,
}

impl ExecutorKind {
    pub const ALL: [ExecutorKind; 3] = [
        ExecutorKind::Process,
        ExecutorKind::Docker,
        ExecutorKind::Kubernetes,
    ];

    /// A name as users write it: `process` (or `local`), `docker`, `kubernetes` (or `k8s`).
    pub fn parse(name: &str) -> Option<ExecutorKind> {
        match name.trim().to_ascii_lowercase().as_str() {
            "process" | "local" => Some(ExecutorKind::Process),
            "docker" => Some(ExecutorKind::Docker),
            "kubernetes" | "k8s" => Some(ExecutorKind::Kubernetes),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ExecutorKind::Process => "process",
            ExecutorKind::Docker => "docker",
            ExecutorKind::Kubernetes => "kubernetes",
        }
    }
}

impl std::fmt::Display for ExecutorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a run's code came from, as kept in its `meta_info.code_ref`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CodeRef {
    /// The commit checked out (none in a repository without commits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Uncommitted changes or untracked files went into the snapshot.
    #[serde(default)]
    pub is_dirty: bool,
    /// The `origin` remote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The snapshot commit, on `refs/polyaxon/snapshots/<uuid>`.
    #[serde(default)]
    pub snapshot: String,
    /// Its tree (equal trees mean equal code).
    #[serde(default)]
    pub tree: String,
    /// The repository's working directory.
    #[serde(default)]
    pub repo: String,
    /// Where, in the repository, the snapshot was taken from (the job runs there).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Files in the snapshot.
    #[serde(default)]
    pub files: usize,
}

/// What the platform keeps in a run's `meta_info`. Keys it does not know (a user's own, sent
/// through the API) are kept as they came in `other`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The code snapshot the run executes (`polyaxon run` in a git repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_ref: Option<CodeRef>,
    /// The directory the run was started from, outside git: the job runs in it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The executor the run was started on (a restart runs there again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_kind: Option<ExecutorKind>,
    /// `name=value` lines on the job's stdout are metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_metrics: Option<bool>,
    /// The code was uploaded to the run's artifacts (`polyaxon run -u`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<bool>,
    /// The run this one belongs to (a search's trials), as creators name it…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// …and as the server records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_uuid: Option<String>,
    /// What the parent is (`matrix`, `dag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_kind: Option<String>,
    /// A search's trial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<u64>,
    /// An `iterative` search's tuner run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuner: Option<bool>,
    /// A DAG's operation: its name in the DAG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// A DAG: its operations' runs and the edges between them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dag: Option<DagMeta>,
    /// A DAG restarted from one of its operations (`ops restart --downstream`): that
    /// operation and what depends on it run again, the others' results are reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_from: Option<DagRestart>,
    /// The run whose results this one reuses (a DAG operation not rerun by a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
    /// A schedule's run: the tick it is for (`globals.schedule_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_at: Option<String>,
    /// `polyaxon run --cache` (true) or `--nocache` (false): whether a run with the same
    /// component, inputs and code may stand for this one (default: the spec's `cache`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    /// What the run's results depend on, hashed: equal keys, equal results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// Who executes the run, so that one that died is noticed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorMeta>,
    #[serde(flatten)]
    pub other: Map<String, J>,
}

impl RunMeta {
    /// Reads `meta_info`; keys of the wrong shape (written by hand through the API) are kept
    /// in `other` rather than failing the whole read.
    pub fn from_map(m: &Map<String, J>) -> RunMeta {
        match serde_json::from_value::<RunMeta>(J::Object(m.clone())) {
            Ok(meta) => meta,
            Err(_) => {
                let mut meta = RunMeta::default();
                for (k, v) in m {
                    let one = serde_json::from_value::<RunMeta>(serde_json::json!({ k: v }));
                    match one {
                        Ok(o) => meta.merge(o),
                        Err(_) => {
                            meta.other.insert(k.clone(), v.clone());
                        }
                    }
                }
                meta
            }
        }
    }

    pub fn to_map(&self) -> Map<String, J> {
        match serde_json::to_value(self) {
            Ok(J::Object(m)) => m,
            _ => Map::new(),
        }
    }

    fn merge(&mut self, o: RunMeta) {
        macro_rules! take {
            ($($f:ident),*) => { $( if o.$f.is_some() { self.$f = o.$f; } )* };
        }
        take!(
            code_ref,
            cwd,
            executor_kind,
            stdout_metrics,
            upload,
            pipeline,
            pipeline_uuid,
            pipeline_kind,
            trial,
            tuner,
            op,
            dag,
            restart_from,
            reused_from,
            schedule_at,
            cache,
            cache_key,
            executor
        );
        self.other.extend(o.other);
    }

    /// The parent's uuid, as recorded or as named by the creator.
    pub fn parent(&self) -> Option<&str> {
        self.pipeline.as_deref().or(self.pipeline_uuid.as_deref())
    }
}

/// `meta_info.dag` of a DAG run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DagMeta {
    /// Each operation's run, by operation name, in the DAG's order.
    pub ops: Vec<DagOpRun>,
    /// `[upstream, downstream]` operation names.
    pub edges: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DagOpRun {
    pub name: String,
    pub uuid: String,
}

/// Where a restarted DAG starts again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DagRestart {
    /// The DAG run restarted.
    pub run: String,
    /// The operation that runs again, with everything downstream of it.
    pub op: String,
}

/// `meta_info.executor`: the process supervising the run and what it started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutorMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ExecutorKind>,
    /// The machine the supervisor runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The agent driving it (its claim is a lease: when the agent dies, the lease decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The supervisor's pid, boot and start time (a pid alone is reused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    /// Where the job runs (`pid 1234`, `container 3f2a…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The job's process on the supervisor's machine, to end it if the supervisor dies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_boot_id: Option<String>,
    /// A service's addresses on the supervisor's machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// A cluster run's namespace and kubeconfig context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, J>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Auth {
    pub token: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1User {
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A new user (superusers only).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct V1UserCreate {
    /// Letters, digits, `-`, `_` and `.`.
    #[schema(pattern = "^[A-Za-z0-9._-]+$")]
    pub username: String,
    /// From 8 to 1,024 characters.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub is_superuser: bool,
}

/// A mapping, or nothing (`null` or absent): `settings` are never a list or a scalar.
fn mapping_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<J>, D::Error> {
    match Option::<J>::deserialize(d)? {
        None | Some(J::Null) => Ok(None),
        Some(v @ J::Object(_)) => Ok(Some(v)),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a mapping, not `{other}`"
        ))),
    }
}

/// The longest life of a token: ten years of 366 days (the schema of `expiration` says it too).
pub const MAX_TOKEN_SECONDS: i64 = 10 * 366 * 24 * 3600;

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Token {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// The token's life in seconds, up to ten years (none: until revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 316_224_000)]
    pub expiration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1ListTokenResponse {
    pub count: i64,
    pub results: Vec<V1Token>,
    pub previous: Option<String>,
    pub next: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Project {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Letters, digits, `-`, `_` and `.`, at most 128.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_public: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookmarked: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "mapping_or_null"
    )]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<J>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1ListProjectsResponse {
    pub count: i64,
    pub results: Vec<V1Project>,
    pub previous: Option<String>,
    pub next: Option<String>,
}

/// A run's status condition.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1StatusCondition {
    #[serde(rename = "type", deserialize_with = "run_status")]
    pub kind: RunStatus,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub status: Option<J>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub last_update_time: Option<String>,
    #[serde(default)]
    pub last_transition_time: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub meta_info: Option<Map<String, J>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Status {
    pub uuid: String,
    pub status: RunStatus,
    pub status_conditions: Vec<V1StatusCondition>,
}

/// A request to add a status.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1EntityStatusBodyRequest {
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub uuid: Option<String>,
    pub condition: V1StatusCondition,
    #[serde(default)]
    pub force: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Cloning {
    pub uuid: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Pipeline {
    pub uuid: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

/// A run as the API returns it, and as patches send it (every field optional).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Run {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_managed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_approved: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub meta_info: Option<Map<String, J>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub inputs: Option<Map<String, J>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub outputs: Option<Map<String, J>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<V1Cloning>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<V1Pipeline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_conditions: Option<Vec<V1StatusCondition>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "mapping_or_null"
    )]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<J>,
    /// With a patch: merge mappings and tags instead of replacing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<bool>,
    /// The queue it waits in or ran from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Its priority within the queue (higher first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Who drives it while it is claimed (an agent, or a local supervisor). In a restart,
    /// copy or resume body: the caller drives the new run itself (it is not queued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

impl V1Run {
    /// What the platform keeps in the run's `meta_info`.
    pub fn meta(&self) -> RunMeta {
        self.meta_info
            .as_ref()
            .map(RunMeta::from_map)
            .unwrap_or_default()
    }

    /// Whether the run has ended.
    pub fn is_done(&self) -> bool {
        self.status.is_some_and(|s| s.is_done())
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1ListRunsResponse {
    pub count: i64,
    pub results: Vec<V1Run>,
    pub previous: Option<String>,
    pub next: Option<String>,
}

/// A run to create: `content` is the operation (JSON or YAML text).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1OperationBody {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub is_managed: Option<bool>,
    #[serde(default)]
    pub managed_by: Option<String>,
    #[serde(default)]
    pub pending: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub meta_info: Option<Map<String, J>>,
    /// Hold the run until it is approved (upstream's `isApproved: false`); the spec's
    /// `isApproved` counts too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_approved: Option<bool>,
    /// The queue (default: the spec's `queue`, else the project's, else `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Priority within the queue (higher first; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Who drives the run from the start (a local supervisor): it is not queued for agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// The queue a name designates: upstream's `agent/queue` names keep the queue.
pub fn queue_name(q: &str) -> String {
    q.rsplit('/').next().unwrap_or(q).to_string()
}

/// The queue a project's settings name (`queue: NAME` or `queue: {name: NAME}`), if any.
pub fn project_queue(settings: &J) -> Option<String> {
    match settings.get("queue")? {
        J::String(q) if !q.is_empty() => Some(queue_name(q)),
        J::Object(o) => o.get("name")?.as_str().map(queue_name),
        _ => None,
    }
}

/// A queue runs wait in for agents.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Queue {
    /// Letters, digits, `-`, `_` and `.`.
    #[schema(pattern = "^[A-Za-z0-9._-]+$")]
    pub name: String,
    /// At most this many of its runs at once (none: no limit).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub concurrency: Option<i64>,
    /// Agents serving several queues claim from higher ones first.
    #[serde(default)]
    pub priority: Option<i64>,
    /// Runs waiting for an agent (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<i64>,
    /// Runs claimed and not ended (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<i64>,
    /// Live agents serving it (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1ListQueuesResponse {
    pub count: i64,
    pub results: Vec<V1Queue>,
}

/// An agent, as it registers and as it is listed.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Agent {
    #[schema(min_length = 1)]
    pub name: String,
    /// This start of it (a new one each start): a heartbeat of another instance is refused.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub instance: String,
    pub version: String,
    pub executor: String,
    #[schema(min_items = 1)]
    pub queues: Vec<String>,
    /// Runs it drives at once.
    #[schema(minimum = 1)]
    pub capacity: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `running`, `draining`, `stopped`; `gone` when not heard from lately (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1ListAgentsResponse {
    pub count: i64,
    pub results: Vec<V1Agent>,
}

/// An agent's heartbeat.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1AgentHeartbeat {
    pub instance: String,
    pub running: i64,
    /// `running`, `draining` or `stopped`.
    #[schema(pattern = "^(running|draining|stopped)$")]
    pub state: String,
    /// How long its claims last from now, in seconds.
    #[schema(minimum = 1, maximum = 3600)]
    pub lease_seconds: f64,
}

/// The runs an agent holds (one it drives and is not listed was taken from it).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1AgentHeld {
    pub runs: Vec<V1ClaimedRun>,
}

/// An agent asks for work.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1ClaimRequest {
    pub instance: String,
    pub queues: Vec<String>,
    /// At most this many runs.
    pub max: i64,
    /// How long the claims last unless renewed, in seconds.
    #[schema(minimum = 1, maximum = 3600)]
    pub lease_seconds: f64,
    /// Wait up to this long for a run when none is waiting (long poll), in milliseconds.
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// A run handed to an agent.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1ClaimedRun {
    pub owner: String,
    pub project: String,
    pub uuid: String,
    /// Already running on a cluster (its agent was lost): follow it, do not start it.
    pub adopt: bool,
}

/// A run claimed on a machine (what a machine's agent checks for supervisors that died).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1ClaimedOnHost {
    pub owner: String,
    pub project: String,
    pub uuid: String,
    pub status: RunStatus,
    /// `meta_info.executor`: the supervising process and its job.
    #[schema(value_type = Object)]
    pub executor: ExecutorMeta,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1ListClaimedResponse {
    pub results: Vec<V1ClaimedOnHost>,
}

/// A claimed run handed back to its queue before it started.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Release {
    pub uuid: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1ClaimResponse {
    pub runs: Vec<V1ClaimedRun>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Uuids {
    pub uuids: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Log {
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default)]
    pub value: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Logs {
    pub logs: Vec<V1Log>,
    pub last_time: Option<String>,
    pub last_file: Option<String>,
    pub files: Vec<String>,
}

/// Log lines to append.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1LogsAppend {
    pub logs: Vec<V1Log>,
    /// Makes the append safe to retry: a batch whose id was written lately is not written
    /// again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1ArtifactTree {
    pub files: BTreeMap<String, u64>,
    pub dirs: Vec<String>,
    pub is_done: bool,
}

/// One series of a run's events.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1EventSeries {
    pub name: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub data: J,
    /// Points in the series before downsampling (ours; upstream has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<usize>,
    /// The series' lowest, highest and last points, exact even when downsampled (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<V1SeriesStats>,
}

impl V1EventSeries {
    /// The points of a metric series: (step, or index when it has none; value).
    pub fn xy(&self) -> Vec<(f64, f64)> {
        let values = self
            .data
            .get("metric")
            .and_then(J::as_array)
            .cloned()
            .unwrap_or_default();
        let steps = self
            .data
            .get("step")
            .and_then(J::as_array)
            .cloned()
            .unwrap_or_default();
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = steps.get(i).and_then(J::as_f64).unwrap_or(i as f64);
                (x, v.as_f64().unwrap_or(f64::NAN))
            })
            .collect()
    }
}

/// Where a series peaks and ends.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1SeriesStats {
    pub min: V1SeriesPoint,
    pub max: V1SeriesPoint,
    pub last: V1SeriesPoint,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1SeriesPoint {
    pub step: Option<i64>,
    pub timestamp: String,
    pub value: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1EventsResponse {
    pub data: Vec<V1EventSeries>,
}

/// Events of several runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1MultiEventsResponse {
    #[schema(value_type = Object)]
    pub data: BTreeMap<String, Vec<V1EventSeries>>,
}

/// One series in a metrics batch: parallel lists; `step` and `timestamp` optional.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricSeriesIn {
    pub name: String,
    #[serde(default)]
    pub step: Option<Vec<Option<i64>>>,
    /// Seconds since the epoch, or RFC 3339 text.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub timestamp: Option<Vec<J>>,
    pub value: Vec<f64>,
}

/// Our batch ingestion request: many points of many series of one run, applied at most once
/// per `id`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsBatch {
    /// An id chosen by the sender; a batch retried with the same id is not applied twice.
    #[serde(default)]
    pub id: Option<String>,
    pub metrics: Vec<MetricSeriesIn>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct MetricsBatchResult {
    /// Points added (0 for a retried batch).
    pub points: usize,
    /// This batch id had been applied before.
    pub duplicate: bool,
}

/// What `events/sync` did.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct EventFilesSynced {
    /// Points added from the run's metric event files.
    pub points: usize,
    /// The series they went to.
    pub series: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilesSyncQuery {
    /// The job has ended: a last line without its newline counts too.
    #[serde(default)]
    pub last: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1RunArtifacts {
    #[schema(value_type = Vec<Object>)]
    pub artifacts: Vec<J>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1ListRunArtifactsResponse {
    pub count: i64,
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<J>,
    pub previous: Option<String>,
    pub next: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Version {
    pub min: String,
    pub latest: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Compatibility {
    pub cli: V1Version,
    pub platform: V1Version,
    pub agent: V1Version,
    pub ui: V1Version,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Installation {
    pub key: String,
    pub version: String,
    pub dist: String,
    pub mode: String,
    pub auth: Vec<String>,
}

/// An error response.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ApiErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// A stable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `payload_too_large`, `internal`.
    pub code: String,
}

/// A connection: a named thing notifications and operations use (a notifier, a git server, a
/// registry, a bucket, a volume, a host path).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Connection {
    /// Letters, digits, `-`, `_` and `.`.
    #[schema(pattern = "^[A-Za-z0-9._-]+$")]
    pub name: String,
    /// `slack`, `webhook`, `discord`, `mattermost`, `pagerduty`, `teams`, or `git`,
    /// `registry`, `bucket`, `s3`, `gcs`, `wasb`, `volume_claim`, `host_path`, `custom`.
    #[schema(
        pattern = "^(slack|webhook|discord|mattermost|pagerduty|teams|git|registry|bucket|s3|gcs|wasb|volume_claim|host_path|custom)$"
    )]
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The non-secret part (a notifier's `url`, `method`, `channel`, `icon_url`, `timeout`;
    /// a bucket's `bucket`; a volume's `claimName` and `mountPath`…): templates see it as
    /// `connections['name']`.
    #[serde(default)]
    pub schema: Map<String, J>,
    /// Where the secret is read, by the process that sends (`env:NAME` or `file:/path`):
    /// never a secret's value. Shown to superusers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(env:[A-Za-z_][A-Za-z0-9_]*|file:/.+)$")]
    pub secret: Option<String>,
    /// Whether it has a secret (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_secret: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1ListConnectionsResponse {
    pub count: i64,
    pub results: Vec<V1Connection>,
}

/// One delivery of a run's end: a notification, a notifier hook, or a hook that runs a
/// component.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1Delivery {
    /// The same on every try (receivers get it as `X-Polyaxon-Delivery`).
    pub id: String,
    /// `notification`, `hook` (a notifier hook) or `hook_run`.
    pub source: String,
    /// The trigger as the spec wrote it.
    pub trigger: String,
    /// The status the run ended with.
    pub status: String,
    #[serde(default)]
    pub connection: Option<String>,
    /// `pending`, `delivered`, `failed` or `skipped`.
    pub state: String,
    pub tries: i64,
    #[serde(default)]
    pub last_error: Option<String>,
    /// The receiver's last HTTP status.
    #[serde(default)]
    pub response_code: Option<i64>,
    /// The run the hook became.
    #[serde(default)]
    pub hook_run: Option<String>,
    /// When a pending delivery is tried next.
    #[serde(default)]
    pub next_at: Option<String>,
    pub created_at: String,
    #[serde(default)]
    pub delivered_at: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct V1ListDeliveriesResponse {
    pub count: i64,
    pub results: Vec<V1Delivery>,
}
