//! The OpenAPI document of the API, generated from the handlers and wire types.

use utoipa::OpenApi;

use crate::api::*;
use crate::routes::{agents, auth, connections, meta, projects, runs, streams};

#[derive(OpenApi)]
#[openapi(
    info(title = "polyaxon", description = "Polyaxon's v1 REST API: projects, runs, statuses, logs, metrics and artifacts."),
    paths(
        meta::healthz, meta::openapi, meta::installation, meta::compatibility,
        auth::login, auth::whoami, auth::list_tokens, auth::create_token, auth::delete_token, auth::create_user,
        projects::list, projects::create, projects::get, projects::patch, projects::put, projects::delete,
        runs::create, runs::list, runs::get, runs::patch, runs::put, runs::delete, runs::delete_many, runs::stop_many,
        runs::statuses, runs::create_status, runs::stop, runs::skip, runs::restart, runs::copy, runs::resume, runs::approve,
        runs::impersonate, runs::create_lineage, runs::lineage, runs::lineage_names, runs::lineage_one, runs::delete_lineage, runs::project_lineage,
        streams::logs, streams::append_logs, streams::events, streams::multi_events, streams::resources, streams::ingest, streams::sync_event_files,
        streams::tree, streams::artifact, streams::artifacts_archive, streams::delete_artifact, streams::delete_artifacts, streams::upload,
        agents::register, agents::list, agents::heartbeat, agents::claim, agents::stop, agents::queues, agents::get_queue,
        agents::put_queue, agents::delete_queue, agents::claim_run, agents::release, agents::claimed,
        connections::list, connections::get, connections::create, connections::delete, connections::deliveries,
    ),
    components(schemas(
        ApiErrorBody, V1Credentials, V1Auth, V1User, V1UserCreate, V1Token, V1ListTokenResponse, V1Project,
        V1ListProjectsResponse, V1StatusCondition, V1Status, V1EntityStatusBodyRequest, V1Cloning, V1Pipeline, V1Run,
        V1ListRunsResponse, V1OperationBody, V1Uuids, V1Log, V1Logs, V1LogsAppend, V1ArtifactTree, V1EventSeries, V1SeriesStats, V1SeriesPoint,
        V1EventsResponse, V1MultiEventsResponse, MetricSeriesIn, MetricsBatch, MetricsBatchResult, EventFilesSynced, V1RunArtifacts,
        V1ListRunArtifactsResponse, V1Version, V1Compatibility, V1Installation, V1Queue, V1ListQueuesResponse, V1Agent,
        V1ListAgentsResponse, V1AgentHeartbeat, V1AgentHeld, V1ClaimRequest, V1ClaimedRun, V1ClaimResponse, V1Release, V1ClaimedOnHost, V1ListClaimedResponse,
        V1Connection, V1ListConnectionsResponse, V1Delivery, V1ListDeliveriesResponse,
    )),
    tags(
        (name = "auth", description = "Login, the calling user, tokens"),
        (name = "projects", description = "Projects"),
        (name = "runs", description = "Runs and their lifecycle"),
        (name = "streams", description = "Logs, events and metrics"),
        (name = "artifacts", description = "A run's files"),
        (name = "meta", description = "Health and versions"),
        (name = "agents", description = "Agents, the queues they serve and the runs they claim"),
        (name = "connections", description = "Notifiers, git servers, registries, buckets and volumes by name"),
    ),
    modifiers(&TokenAuth),
    security(("token" = []))
)]
pub struct ApiDoc;

struct TokenAuth;

impl utoipa::Modify for TokenAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Token <token>`",
            ))),
        );
    }
}

/// Operations anyone may call, without a token.
const PUBLIC: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/installation"),
    ("get", "/api/v1/compatibility/{uuid}/{version}/{service}"),
    ("post", "/api/v1/auth/token"),
];

/// The error answers every operation may give besides its own, documented once here: what
/// any request can meet (a bad parameter, no or a wrong token, what is not yours, a busy
/// database) and what any write can (a body too large, a full disk).
fn common_errors(doc: &mut serde_json::Value) {
    use serde_json::json;
    let error = |what: &str| {
        json!({
            "description": what,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiErrorBody"}}},
        })
    };
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let public = PUBLIC.iter().any(|(m, p)| m == method && p == path);
            let write = matches!(method.as_str(), "post" | "put" | "patch");
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            if public {
                op.insert("security".into(), json!([]));
            }
            let responses = op
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses are a mapping");
            let mut add = |code: &str, what: &str| {
                responses
                    .entry(code.to_string())
                    .or_insert_with(|| error(what));
            };
            add("400", "the request is malformed or a parameter is invalid");
            add(
                "503",
                "the database is busy or out of reach: try again after `Retry-After` seconds",
            );
            if !public {
                add("401", "no token, or one that is invalid or expired");
                add(
                    "403",
                    "the token may not do this (a run's token outside its run, a user's outside their rights)",
                );
                add("404", "not found, or not yours");
            }
            if write {
                add("413", "the body is larger than the server accepts");
                add(
                    "507",
                    "the artifacts filesystem is full: nothing of the request was kept",
                );
            }
        }
    }
}

/// What the types alone do not say: the `default` queue is never deleted; a multi-run read
/// names its runs; a new project has a name; an agent is of the server's release line.
fn parameter_constraints(doc: &mut serde_json::Value) {
    use serde_json::json;
    if let Some(runs) = doc
        .pointer_mut("/paths/~1streams~1v1~1{namespace}~1{owner}~1{project}~1runs~1multi~1events~1{kind}/get/parameters")
        .and_then(|p| p.as_array_mut())
        .and_then(|ps| ps.iter_mut().find(|p| p["name"] == "runs"))
    {
        runs["required"] = true.into();
        runs["schema"] = json!({"type": "string", "minLength": 1});
    }
    if let Some(body) =
        doc.pointer_mut("/paths/~1api~1v1~1{owner}~1projects~1create/post/requestBody/content/application~1json/schema")
    {
        *body = json!({"allOf": [body.take(), {
            "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"}},
        }]});
    }
    // Registering names this start of the agent (listings always show it).
    if let Some(required) = doc
        .pointer_mut("/components/schemas/V1Agent/required")
        .and_then(|r| r.as_array_mut())
        && !required.iter().any(|r| r == "instance")
    {
        required.push("instance".into());
    }
    if let Some(version) = doc.pointer_mut("/components/schemas/V1Agent/properties/version") {
        let line = crate::VERSION
            .rsplit_once('.')
            .map_or(crate::VERSION, |v| v.0);
        version["pattern"] = format!("^v?{}(\\..*)?$", line.replace('.', "\\.")).into();
        version["description"] =
            format!("The agent's version: of this server's release line ({line}.*).").into();
    }
    let name = doc
        .pointer_mut("/paths/~1api~1v1~1admin~1queues~1{name}/delete/parameters")
        .and_then(|p| p.as_array_mut())
        .and_then(|ps| ps.iter_mut().find(|p| p["name"] == "name"));
    if let Some(name) = name {
        name["description"] = "Any queue but `default`, which cannot be deleted (409).".into();
    }
}

/// The document as JSON, with this version.
pub fn document() -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    doc.info.version = crate::VERSION.to_string();
    let mut doc = serde_json::to_value(&doc).unwrap_or_default();
    common_errors(&mut doc);
    parameter_constraints(&mut doc);
    doc
}

/// The document as committed: pretty JSON with a final newline.
pub fn document_text() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}
