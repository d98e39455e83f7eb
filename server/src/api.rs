//! The wire types: Polyaxon's v1 JSON shapes (snake_case), serde only. The CLI's client uses
//! these same types.

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
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub is_superuser: bool,
}

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(rename = "type")]
    pub kind: String,
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
    pub status: String,
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
    pub status: Option<String>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<J>,
    /// With a patch: merge mappings and tags instead of replacing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<bool>,
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
