//! Streams: logs (append and read with continuation), events and metrics (read in upstream's
//! shape, downsampled; our batch ingestion), system resources, and artifacts (upload, tree,
//! download, delete) — all under the run's directory, never outside it.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value as J, json};
use tokio::io::AsyncWriteExt;

use super::{ReadRun, RunAccess, WriteRun, run_for};
use crate::App;
use crate::api::*;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::files;
use crate::store::{Point, Series, SeriesData};

type StreamPath = Path<(String, String, String, String)>;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Continue after this file (from a previous read's `last_file`).
    pub last_file: Option<String>,
    /// Continue after this time (from a previous read's `last_time`).
    pub last_time: Option<String>,
    pub force: Option<bool>,
}

/// A run's logs, in order, continuing after `last_file`/`last_time` when given.
#[utoipa::path(get, path = "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/logs", tag = "streams",
    params(("namespace" = String, Path), ("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), LogsQuery),
    responses((status = 200, body = V1Logs), (status = 404, body = ApiErrorBody)))]
pub async fn logs(
    State(app): State<App>,
    RunAccess { run: r, .. }: ReadRun,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Json<V1Logs>> {
    app.fetch_logs(&r.uuid).await?;
    let dir = app.run_dir(&r.uuid);
    let out = tokio::task::spawn_blocking(move || {
        files::read_logs(&dir, q.last_file.as_deref(), q.last_time.as_deref())
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(out))
}

/// Appends log lines to a run (ours; lines without a time get the server's).
#[utoipa::path(post, path = "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/logs", tag = "streams",
    params(("namespace" = String, Path), ("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    request_body = V1LogsAppend, responses((status = 204), (status = 400, body = ApiErrorBody)))]
pub async fn append_logs(
    State(app): State<App>,
    RunAccess { run: r, .. }: WriteRun,
    ApiJson(body): ApiJson<V1LogsAppend>,
) -> ApiResult<StatusCode> {
    app.append_logs(&r.uuid, body.logs, body.id.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Series names, comma-separated (all when absent).
    pub names: Option<String>,
    /// `dict` (default) or `csv`.
    pub orient: Option<String>,
    /// At most this many points per series, chosen to keep the series' shape.
    pub sample: Option<usize>,
    pub force: Option<bool>,
    pub connection: Option<String>,
    pub status: Option<String>,
    /// Runs, comma-separated (multi-run reads).
    pub runs: Option<String>,
}

fn names_of(q: &EventsQuery) -> Vec<String> {
    q.names
        .as_deref()
        .map(|n| {
            n.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn series_json(s: &SeriesData, kind: &str) -> V1EventSeries {
    let steps: Vec<J> = s
        .points
        .iter()
        .map(|p| p.step.map_or(J::Null, J::from))
        .collect();
    let ts: Vec<J> = s.points.iter().map(|p| J::String(time(p.ts))).collect();
    let vals: Vec<J> = s
        .points
        .iter()
        .map(|p| serde_json::Number::from_f64(p.value).map_or(J::Null, J::Number))
        .collect();
    V1EventSeries {
        name: s.name.clone(),
        kind: kind.to_string(),
        data: json!({"step": steps, "timestamp": ts, "metric": vals}),
        total: Some(s.total),
        stats: stats_json(s),
    }
}

fn stats_json(s: &SeriesData) -> Option<V1SeriesStats> {
    let point = |p: &Point| V1SeriesPoint {
        step: p.step,
        timestamp: time(p.ts),
        value: p.value,
    };
    s.stats.map(|st| V1SeriesStats {
        min: point(&st.min),
        max: point(&st.max),
        last: point(&st.last),
    })
}

fn csv_of(s: &SeriesData) -> String {
    let mut out = String::from("step|timestamp|metric");
    for p in &s.points {
        out.push_str(&format!(
            "\n{}|{}|{}",
            p.step.map(|x| x.to_string()).unwrap_or_default(),
            time(p.ts),
            p.value
        ));
    }
    out
}

/// Reads a `.plx` metric file (`step|timestamp|metric`), as `polyaxon.tracking` writes it.
pub fn parse_plx_metrics(text: &str) -> Vec<Point> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let mut cols = line.splitn(3, '|');
        let (Some(step), Some(ts), Some(val)) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        let Ok(value) = val.trim().parse::<f64>() else {
            continue;
        };
        let ts = polyaxonfile::spec::misc::parse_datetime(ts.trim())
            .map(|t| t.as_microsecond())
            .unwrap_or(0);
        out.push(Point {
            step: step.trim().parse().ok(),
            ts,
            value,
        });
    }
    out
}

/// The largest event file read whole for a response.
const EVENT_FILE_AT_MOST: u64 = 64 << 20;

/// The series of one kind for one run: metrics from the store (or the run's event files when
/// the store has none), other kinds from the event files.
async fn run_events(
    app: &App,
    run_id: i64,
    uuid: &str,
    kind: &str,
    names: &[String],
    sample: Option<usize>,
    sub: &str,
) -> ApiResult<Vec<(SeriesData, Option<String>)>> {
    let mut out: Vec<(SeriesData, Option<String>)> = Vec::new();
    if kind == "metric" && sub == "events" {
        for s in app.store.series(run_id, names, sample).await? {
            out.push((s, None));
        }
    }
    let rel = format!("{sub}/{kind}");
    let have: Vec<String> = out.iter().map(|(s, _)| s.name.clone()).collect();
    let wanted: Vec<String> = if names.is_empty() {
        app.run_file_names(uuid, &rel)
            .await?
            .into_iter()
            .filter_map(|f| f.strip_suffix(".plx").map(str::to_string))
            .collect()
    } else {
        names.to_vec()
    };
    for name in wanted {
        if have.contains(&name) || name.contains('/') || name.contains("..") {
            continue;
        }
        // From this disk, or the artifacts store (a pod's sidecar sent it there).
        let Some(bytes) = app
            .read_run_file(uuid, &format!("{rel}/{name}.plx"), EVENT_FILE_AT_MOST)
            .await?
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if kind == "metric" {
            out.push((
                SeriesData::from_points(name, parse_plx_metrics(&text), sample),
                None,
            ));
        } else {
            out.push((SeriesData::from_points(name, vec![], None), Some(text)));
        }
    }
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(out)
}

/// Columns of a JSON-lines event file (`{"timestamp", "step", "text"}` per line).
fn columns(text: &str) -> J {
    let mut cols: BTreeMap<String, Vec<J>> = BTreeMap::new();
    let lines: Vec<serde_json::Map<String, J>> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for l in &lines {
        for k in l.keys() {
            cols.entry(k.clone()).or_default();
        }
    }
    for l in &lines {
        for (k, v) in cols.iter_mut() {
            v.push(l.get(k).cloned().unwrap_or(J::Null));
        }
    }
    json!(cols)
}

fn to_response(
    series: Vec<(SeriesData, Option<String>)>,
    kind: &str,
    csv: bool,
) -> Vec<V1EventSeries> {
    series
        .into_iter()
        .map(|(s, text)| match (text, csv) {
            (Some(t), true) => V1EventSeries {
                name: s.name,
                kind: kind.into(),
                data: J::String(t),
                total: None,
                stats: None,
            },
            (Some(t), false) => V1EventSeries {
                name: s.name,
                kind: kind.into(),
                data: columns(&t),
                total: None,
                stats: None,
            },
            (None, true) => V1EventSeries {
                name: s.name.clone(),
                kind: kind.into(),
                data: J::String(csv_of(&s)),
                total: Some(s.total),
                stats: stats_json(&s),
            },
            (None, false) => series_json(&s, kind),
        })
        .collect()
}

/// A run's events of one kind (`metric`, `text`, `html`, `image`…) in upstream's shape:
/// `{"data": [{"name", "kind", "data": {"step": [], "timestamp": [], "metric": []}}]}`.
#[utoipa::path(get, path = "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/events/{kind}", tag = "streams",
    params(("namespace" = String, Path), ("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), ("kind" = String, Path), EventsQuery),
    responses((status = 200, body = V1EventsResponse), (status = 404, body = ApiErrorBody)))]
pub async fn events(
    State(app): State<App>,
    RunAccess { run: r, .. }: ReadRun,
    Path((_ns, _owner, _project, _uuid, kind)): Path<(String, String, String, String, String)>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<V1EventsResponse>> {
    check_kind(&kind)?;
    let csv = q.orient.as_deref() == Some("csv");
    let series = run_events(
        &app,
        r.id,
        &r.uuid,
        &kind,
        &names_of(&q),
        q.sample,
        "events",
    )
    .await?;
    Ok(Json(V1EventsResponse {
        data: to_response(series, &kind, csv),
    }))
}

fn check_kind(kind: &str) -> ApiResult<()> {
    if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ApiError::BadRequest(format!(
            "`{kind}` is not an event kind"
        )));
    }
    Ok(())
}

/// Events of several runs of a project (`runs=a,b`), keyed by run.
#[utoipa::path(get, path = "/streams/v1/{namespace}/{owner}/{project}/runs/multi/events/{kind}", tag = "streams",
    params(("namespace" = String, Path), ("owner" = String, Path), ("project" = String, Path), ("kind" = String, Path), EventsQuery),
    responses((status = 200, body = V1MultiEventsResponse), (status = 400, body = ApiErrorBody)))]
pub async fn multi_events(
    State(app): State<App>,
    who: Principal,
    Path((_ns, owner, project, kind)): StreamPath,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<V1MultiEventsResponse>> {
    check_kind(&kind)?;
    who.require_user_scope()?;
    let runs: Vec<String> = q
        .runs
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if runs.is_empty() {
        return Err(ApiError::BadRequest(
            "give the runs to read with `runs=uuid1,uuid2`".into(),
        ));
    }
    let csv = q.orient.as_deref() == Some("csv");
    let mut data = BTreeMap::new();
    for u in runs {
        let (_, r) = run_for(&app, &who, &owner, &project, &u, false).await?;
        let series = run_events(
            &app,
            r.id,
            &r.uuid,
            &kind,
            &names_of(&q),
            q.sample,
            "events",
        )
        .await?;
        data.insert(r.uuid.clone(), to_response(series, &kind, csv));
    }
    Ok(Json(V1MultiEventsResponse { data }))
}

/// A run's system metrics (CPU, memory, …) sampled while it ran.
#[utoipa::path(get, path = "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/resources", tag = "streams",
    params(("namespace" = String, Path), ("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), EventsQuery),
    responses((status = 200, body = V1EventsResponse), (status = 404, body = ApiErrorBody)))]
pub async fn resources(
    State(app): State<App>,
    RunAccess { run: r, .. }: ReadRun,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<V1EventsResponse>> {
    let series = run_events(
        &app,
        r.id,
        &r.uuid,
        "metric",
        &names_of(&q),
        q.sample,
        "resources",
    )
    .await?;
    Ok(Json(V1EventsResponse {
        data: to_response(series, "metric", q.orient.as_deref() == Some("csv")),
    }))
}

/// Ingests the run's metric event files in the artifacts store (ours): what jobs write with
/// `polyaxon.tracking` into `events/metric/<name>.plx` on a volume the server shares (pods on
/// a cluster). Each call takes the lines added since the last one; how far each file was read
/// is kept with the batches, so no point is taken twice, across calls and restarts.
#[utoipa::path(post, path = "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/events/sync", tag = "streams",
    params(("namespace" = String, Path), ("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), EventFilesSyncQuery),
    responses((status = 200, body = EventFilesSynced), (status = 404, body = ApiErrorBody)))]
pub async fn sync_event_files(
    State(app): State<App>,
    RunAccess { run: r, .. }: WriteRun,
    Query(q): Query<EventFilesSyncQuery>,
) -> ApiResult<Json<EventFilesSynced>> {
    use crate::eventfiles;
    // One sync of a run at a time here (the offsets' compare-and-set keeps other servers'
    // from storing the same lines).
    let lock = app.sync_lock(&r.uuid);
    let _held = lock.lock().await;
    let offsets = app.store.event_file_offsets(r.id).await?;
    let dir = app.run_dir(&r.uuid).join("events").join("metric");
    let last = q.last.unwrap_or(false);
    let disk_offsets = offsets.clone();
    let mut chunks =
        tokio::task::spawn_blocking(move || eventfiles::read_new(&dir, &disk_offsets, last))
            .await
            .map_err(|e| ApiError::Internal(format!("reading event files: {e}")))?;
    // The files sent to the store (a sidecar's uploads, offloaded): the same offsets, over
    // objects. A file still on the disk (being offloaded) is read there: both hold the same
    // bytes up to the shorter one's end.
    if let Some(store) = &app.config.artifacts_store {
        let on_disk: std::collections::BTreeSet<String> =
            chunks.iter().map(|c| c.name.clone()).collect();
        let prefix = crate::artifacts::join(&r.uuid, "events/metric");
        chunks.extend(eventfiles::read_new_stored(store, &prefix, &offsets, last, &on_disk).await?);
    }
    let now = crate::store::now_micros();
    let mut out = EventFilesSynced::default();
    for c in chunks {
        let points: Vec<Point> = c
            .points
            .iter()
            .map(|(step, ts, value)| Point {
                step: *step,
                ts: parse_time(&J::String(ts.clone())).unwrap_or(now),
                value: *value,
            })
            .collect();
        let n = points.len();
        match app
            .store
            .ingest_file_range(r.id, &c.name, c.start, c.end, points)
            .await
        {
            Ok(Some(added)) if n > 0 => {
                out.points += added;
                out.series.push(c.name);
            }
            Ok(_) => {}
            // One file's problem does not keep the others out.
            Err(crate::store::StoreError::Invalid(why)) => {
                tracing::warn!(run = %r.uuid, file = %c.name, "event file skipped: {why}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(out))
}

/// Adds metric points (ours): many series, many points per request. A batch with an `id` is
/// applied at most once, so a retry after a lost response never doubles a point.
#[utoipa::path(post, path = "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/metrics", tag = "streams",
    params(("namespace" = String, Path), ("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    request_body = MetricsBatch, responses((status = 200, body = MetricsBatchResult), (status = 400, body = ApiErrorBody), (status = 413, body = ApiErrorBody)))]
pub async fn ingest(
    State(app): State<App>,
    RunAccess { run: r, .. }: WriteRun,
    ApiJson(batch): ApiJson<MetricsBatch>,
) -> ApiResult<Json<MetricsBatchResult>> {
    let now = crate::store::now_micros();
    let mut series = Vec::with_capacity(batch.metrics.len());
    for (i, m) in batch.metrics.into_iter().enumerate() {
        let n = m.value.len();
        if m.step.as_ref().is_some_and(|s| s.len() != n)
            || m.timestamp.as_ref().is_some_and(|t| t.len() != n)
        {
            return Err(ApiError::BadRequest(format!(
                "invalid value at `metrics[{i}]`: `step`, `timestamp` and `value` must have the same length"
            )));
        }
        let mut points = Vec::with_capacity(n);
        for (k, value) in m.value.iter().enumerate() {
            let ts = match m.timestamp.as_ref().map(|t| &t[k]) {
                None | Some(J::Null) => now,
                Some(v) => parse_time(v).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "invalid value at `metrics[{i}].timestamp[{k}]`: not a time"
                    ))
                })?,
            };
            points.push(Point {
                step: m.step.as_ref().and_then(|s| s[k]),
                ts,
                value: *value,
            });
        }
        series.push(Series {
            name: m.name,
            points,
        });
    }
    // Grouped with the run's other writers' batches: one transaction for all that wait.
    let checked = crate::store::checked(series)?;
    let has_id = batch.id.is_some();
    let added = crate::ingest::ingest(&app, &r.uuid, r.id, batch.id, checked).await?;
    Ok(Json(MetricsBatchResult {
        points: added,
        duplicate: added == 0 && has_id,
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PathQuery {
    /// A path below the run's directory.
    pub path: Option<String>,
    /// Replace an existing file.
    pub overwrite: Option<bool>,
    /// Download as a stream (the default).
    pub stream: Option<bool>,
    pub connection: Option<String>,
    pub force: Option<bool>,
    /// Uploads: the file is a tar archive (gzip-compressed or not) to unpack into `path`.
    pub untar: Option<bool>,
}

/// The files and directories under a path of a run's artifacts.
#[utoipa::path(get, path = "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/artifacts/tree", tag = "artifacts",
    params(("namespace" = String, Path), ("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), PathQuery),
    responses((status = 200, body = V1ArtifactTree), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn tree(
    State(app): State<App>,
    RunAccess { run: r, .. }: ReadRun,
    Query(q): Query<PathQuery>,
) -> ApiResult<Json<V1ArtifactTree>> {
    let rel = q.path.as_deref().unwrap_or("");
    let local = files::tree(&app.run_dir(&r.uuid), rel);
    let Some(store) = &app.config.artifacts_store else {
        return Ok(Json(local?));
    };
    // The files in the store and those still here (logs, event files): one tree.
    let (dirs, objects) = store
        .list_dir(&crate::artifacts::join(&r.uuid, rel))
        .await?;
    let mut tree = match local {
        Ok(t) => t,
        Err(ApiError::NotFound(_)) if !dirs.is_empty() || !objects.is_empty() => V1ArtifactTree {
            files: Default::default(),
            dirs: vec![],
            is_done: true,
        },
        Err(e) => return Err(e),
    };
    for o in objects {
        tree.files.entry(o.path).or_insert(o.size);
    }
    for d in dirs {
        if !tree.dirs.contains(&d) {
            tree.dirs.push(d);
        }
    }
    tree.dirs.sort();
    Ok(Json(tree))
}

/// Downloads one file of a run's artifacts.
#[utoipa::path(get, path = "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/artifact", tag = "artifacts",
    params(("namespace" = String, Path), ("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), PathQuery),
    responses((status = 200, description = "the file's bytes"), (status = 404, body = ApiErrorBody), (status = 429, description = "too many transfers open for this user", body = ApiErrorBody)))]
pub async fn artifact(
    State(app): State<App>,
    RunAccess { who, run: r, .. }: ReadRun,
    Query(q): Query<PathQuery>,
) -> ApiResult<Response> {
    let rel = q
        .path
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest("give the file with `path=`".into()))?;
    let path = files::safe_join(&app.run_dir(&r.uuid), rel)?;
    let transfer = app.open_transfer(who.user.id)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let headers = |len: u64| {
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", name.replace('"', "")),
            ),
        ]
    };
    let meta = match (
        tokio::fs::metadata(&path).await,
        &app.config.artifacts_store,
    ) {
        (Ok(m), _) => m,
        (Err(_), Some(store)) => {
            // Not here: from the store, streamed as it comes (checked as it ends).
            let d = store.get(&crate::artifacts::join(&r.uuid, rel)).await?;
            let body = transfer.body(d.stream.map(|c| c.map_err(std::io::Error::other)));
            return Ok((headers(d.size), body).into_response());
        }
        (Err(_), None) => return Err(ApiError::NotFound(format!("`{rel}` not found"))),
    };
    if meta.is_dir() {
        return Err(ApiError::BadRequest(format!(
            "`{rel}` is a directory; download it from `/artifacts?path={rel}`"
        )));
    }
    let file = tokio::fs::File::open(&path).await?;
    let body = transfer.body(tokio_util::io::ReaderStream::new(file));
    Ok((headers(meta.len()), body).into_response())
}

/// Downloads a directory of a run's artifacts as a `.tar.gz`.
#[utoipa::path(get, path = "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/artifacts", tag = "artifacts",
    params(("namespace" = String, Path), ("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), PathQuery),
    responses((status = 200, description = "a gzipped tar archive"), (status = 404, body = ApiErrorBody), (status = 429, description = "too many transfers open for this user", body = ApiErrorBody)))]
pub async fn artifacts_archive(
    State(app): State<App>,
    RunAccess { who, run: r, .. }: ReadRun,
    Query(q): Query<PathQuery>,
) -> ApiResult<Response> {
    let rel = q.path.clone().unwrap_or_default();
    let dir = files::safe_join(&app.run_dir(&r.uuid), &rel)?;
    let transfer = app.open_transfer(who.user.id)?;
    // What the store holds under the path, read object by object as the archive is written.
    let mut objects = Vec::new();
    if let Some(store) = &app.config.artifacts_store {
        let base = crate::artifacts::join(&r.uuid, &rel);
        for o in store.list(&base).await? {
            let (store, key) = (store.clone(), crate::artifacts::join(&base, &o.path));
            let rt = tokio::runtime::Handle::current();
            objects.push(files::ArchivedObject {
                path: o.path,
                size: o.size,
                modified: o.modified,
                open: Box::new(move || {
                    let d = rt
                        .block_on(store.get(&key))
                        .map_err(std::io::Error::other)?;
                    let stream = d.stream.map(|c| c.map_err(std::io::Error::other));
                    let reader = tokio_util::io::StreamReader::new(stream);
                    Ok(
                        Box::new(tokio_util::io::SyncIoBridge::new_with_handle(reader, rt))
                            as Box<dyn std::io::Read + Send>,
                    )
                }),
            });
        }
    }
    if !dir.is_dir() && objects.is_empty() {
        return Err(ApiError::NotFound(format!(
            "`{rel}` is not a directory of this run"
        )));
    }
    let name = if rel.trim_matches('/').is_empty() {
        r.uuid.clone()
    } else {
        rel.trim_matches('/').replace('/', "_")
    };
    // Written by a blocking task into the response as it is made: a run of gigabytes streams
    // out in bounded memory. A failure midway ends the body with an error (the client sees an
    // archive cut short, not a complete-looking one).
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let err_tx = tx.clone();
        if let Err(e) = files::tar_gz_to(files::ChannelWriter::new(tx), &dir, objects, &name) {
            tracing::warn!(error = %e, "an archive was cut short");
            let _ = err_tx.blocking_send(Err(e));
        }
    });
    let body = transfer.body(tokio_stream_of(rx));
    Ok(([(header::CONTENT_TYPE, "application/gzip")], body).into_response())
}

/// Deletes a file or directory of a run's artifacts.
#[utoipa::path(delete, path = "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/artifact", tag = "artifacts",
    params(("namespace" = String, Path), ("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), PathQuery),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
pub async fn delete_artifact(
    State(app): State<App>,
    RunAccess { run: r, .. }: WriteRun,
    Query(q): Query<PathQuery>,
) -> ApiResult<StatusCode> {
    // `.`, `./`, `/` are the whole run: not something a delete of a path may name.
    let rel = q
        .path
        .as_deref()
        .filter(|p| p.split('/').any(|seg| !seg.is_empty() && seg != "."))
        .ok_or_else(|| {
            ApiError::BadRequest("give what to delete with `path=` (a path inside the run)".into())
        })?;
    let path = files::safe_join(&app.run_dir(&r.uuid), rel)?;
    let mut found = false;
    if let Some(store) = &app.config.artifacts_store {
        let key = crate::artifacts::join(&r.uuid, rel);
        if store.head(&key).await?.is_some() {
            store.delete(&key).await?;
            found = true;
        }
        found |= store.delete_prefix(&key).await? > 0;
    }
    match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(&path).await?,
        Ok(_) => tokio::fs::remove_file(&path).await?,
        Err(_) if found => {}
        Err(_) => return Err(ApiError::NotFound(format!("`{rel}` not found"))),
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a file or directory of a run's artifacts, as `DELETE …/artifact` does (upstream's
/// path for directories).
#[utoipa::path(delete, path = "/streams/v1/{namespace}/{owner}/{project}/runs/{uuid}/artifacts", tag = "artifacts",
    params(("namespace" = String, Path), ("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), PathQuery),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
pub async fn delete_artifacts(
    app: State<App>,
    access: WriteRun,
    q: Query<PathQuery>,
) -> ApiResult<StatusCode> {
    delete_artifact(app, access, q).await
}

/// The largest refused upload still read to its end before the 413 is sent.
const DRAIN_AT_MOST: u64 = 16 << 20;

/// Reads a refused upload's body when it is modest, so that the client gets the refusal
/// rather than a connection closed under its upload; a huge one is cut off.
async fn drain(req: axum::extract::Request, declared: Option<u64>) {
    if declared.is_some_and(|n| n <= DRAIN_AT_MOST) {
        let mut body = req.into_body().into_data_stream();
        while let Some(Ok(_)) = body.next().await {}
    }
}

/// Uploads a file into a run's artifacts: a multipart form (the file goes into the directory
/// `path`, under its own name) or a raw body (written to `path`).
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/artifacts/upload", tag = "artifacts",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), PathQuery),
    responses((status = 200, description = "the paths written"), (status = 400, body = ApiErrorBody), (status = 409, body = ApiErrorBody), (status = 413, body = ApiErrorBody), (status = 429, description = "too many transfers open for this user", body = ApiErrorBody)))]
pub async fn upload(
    State(app): State<App>,
    RunAccess { who, run: r, .. }: WriteRun,
    Query(q): Query<PathQuery>,
    headers: HeaderMap,
    req: axum::extract::Request,
) -> ApiResult<Json<J>> {
    let base = app.run_dir(&r.uuid);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Held to the end of the handler, when the body has been read and written.
    let _transfer = match app.open_transfer(who.user.id) {
        Ok(t) => t,
        Err(e) => {
            drain(req, declared).await;
            return Err(e);
        }
    };
    let overwrite = q.overwrite.unwrap_or(true);
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/"));
    // The route has no body limit of its own: the upload's is enforced here, as it streams.
    let max = app.config.max_upload as u64;
    let too_large = || {
        ApiError::TooLarge(format!(
            "the upload is larger than the {} MiB this server accepts",
            max >> 20
        ))
    };
    if declared.is_some_and(|n| n > max) {
        drain(req, declared).await;
        return Err(too_large());
    }
    let mut written = Vec::new();
    if q.untar == Some(true) {
        let dir_rel = q
            .path
            .as_deref()
            .unwrap_or("")
            .trim_matches('/')
            .to_string();
        let dir = files::safe_join(&base, &dir_rel)?;
        tokio::fs::create_dir_all(&base).await?;
        let tmp = tempfile::NamedTempFile::new_in(&base)?;
        let mut out = tokio::fs::File::from_std(tmp.reopen()?);
        let mut total: u64 = 0;
        if is_multipart {
            let mut mp = <Multipart as axum::extract::FromRequest<App>>::from_request(req, &app)
                .await
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let mut got = false;
            while let Some(mut field) = mp.next_field().await.map_err(multipart_error)? {
                if field.file_name().is_none() || got {
                    continue;
                }
                got = true;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    total += chunk.len() as u64;
                    if total > max {
                        return Err(too_large());
                    }
                    out.write_all(&chunk).await?;
                }
            }
            if !got {
                return Err(ApiError::BadRequest("the form has no file".into()));
            }
        } else {
            let mut body = req.into_body().into_data_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::BadRequest(format!("the upload was interrupted: {e}"))
                })?;
                total += chunk.len() as u64;
                if total > max {
                    return Err(too_large());
                }
                out.write_all(&chunk).await?;
            }
        }
        out.flush().await?;
        drop(out);
        // Unpacked, a few times the upload limit at most (a small archive can expand a lot).
        let limit = max.saturating_mul(8);
        let written = tokio::task::spawn_blocking(move || {
            files::untar(tmp.path(), &dir, &dir_rel, overwrite, limit)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("unpacking the upload: {e}")))??;
        // `overwrite=false` against the store too: an archive naming a stored file is refused
        // whole, and what it unpacked here removed.
        for rel in &written {
            if let Err(e) = refuse_if_stored(&app, &r.uuid, rel, overwrite).await {
                let base = app.run_dir(&r.uuid);
                for w in &written {
                    let _ = tokio::fs::remove_file(base.join(w)).await;
                }
                return Err(e);
            }
        }
        app.offload(&r.uuid, &written).await?;
        return Ok(Json(json!({"paths": written})));
    }
    if is_multipart {
        let mut mp = <Multipart as axum::extract::FromRequest<App>>::from_request(req, &app)
            .await
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        while let Some(mut field) = mp.next_field().await.map_err(multipart_error)? {
            let Some(file_name) = field.file_name().map(str::to_string) else {
                continue;
            };
            let file_name = std::path::Path::new(&file_name)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if file_name.is_empty() {
                continue;
            }
            let rel = format!(
                "{}/{file_name}",
                q.path.as_deref().unwrap_or("").trim_matches('/')
            );
            let dest = files::safe_join(&base, &rel)?;
            refuse_if_stored(&app, &r.uuid, &rel, overwrite).await?;
            let (part, mut out) = create_dest(&dest, overwrite, &rel).await?;
            let mut total: u64 = 0;
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                total += chunk.len() as u64;
                if total > max {
                    return Err(too_large());
                }
                out.write_all(&chunk).await?;
            }
            out.flush().await?;
            drop(out);
            tokio::task::spawn_blocking(move || part.commit())
                .await
                .map_err(|e| ApiError::Internal(format!("writing the upload: {e}")))??;
            written.push(rel.trim_start_matches('/').to_string());
        }
    } else {
        let rel = q
            .path
            .as_deref()
            .filter(|p| !p.trim_matches('/').is_empty())
            .ok_or_else(|| ApiError::BadRequest("give the destination with `path=`".into()))?;
        let dest = files::safe_join(&base, rel)?;
        let mut body = req.into_body().into_data_stream();
        refuse_if_stored(&app, &r.uuid, rel, overwrite).await?;
        let (part, mut out) = create_dest(&dest, overwrite, rel).await?;
        let mut total: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::BadRequest(format!("the upload was interrupted: {e}")))?;
            total += chunk.len() as u64;
            if total > max {
                return Err(too_large());
            }
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        drop(out);
        tokio::task::spawn_blocking(move || part.commit())
            .await
            .map_err(|e| ApiError::Internal(format!("writing the upload: {e}")))??;
        written.push(rel.trim_start_matches('/').to_string());
    }
    if written.is_empty() {
        return Err(ApiError::BadRequest("the form has no file".into()));
    }
    app.offload(&r.uuid, &written).await?;
    Ok(Json(json!({"paths": written})))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge("the upload is larger than the server accepts".into())
    } else {
        ApiError::BadRequest(format!("cannot read the upload: {e}"))
    }
}

/// `overwrite=false` against the artifacts store too (an offloaded file is no longer here).
async fn refuse_if_stored(app: &App, uuid: &str, rel: &str, overwrite: bool) -> ApiResult<()> {
    if let (false, Some(store)) = (overwrite, &app.config.artifacts_store)
        && store
            .head(&crate::artifacts::join(uuid, rel))
            .await?
            .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "`{rel}` exists; pass `overwrite=true` to replace it"
        )));
    }
    Ok(())
}

/// The file an upload is written to, beside `dest` and renamed onto it once whole (see
/// [`files::PartFile`]): an upload cut short or a full disk leaves nothing under the name.
async fn create_dest(
    dest: &std::path::Path,
    overwrite: bool,
    rel: &str,
) -> ApiResult<(files::PartFile, tokio::fs::File)> {
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    if !overwrite && tokio::fs::try_exists(dest).await.unwrap_or(false) {
        return Err(ApiError::Conflict(format!(
            "`{rel}` exists; pass `overwrite=true` to replace it"
        )));
    }
    let part = files::PartFile::beside(dest)?;
    let out = tokio::fs::File::from_std(part.file().try_clone()?);
    Ok((part, out))
}

/// A channel's receiver as a stream.
fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
