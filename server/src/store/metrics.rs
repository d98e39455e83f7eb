//! Metrics, the hot path. A series is stored as chunks of points — (step, timestamp, value),
//! 24 bytes each — so a batch of thousands of points is one row write, and reading a series
//! is reading a few blobs. Small batches (live training) fill the series' last chunk until it
//! holds [`SMALL`] points; large ones write chunks of up to [`MAX_CHUNK`] points.
//!
//! A batch may carry an id: a retried batch with the same id is recognised and not applied
//! again. Each chunk also keeps an overview — the first, lowest, highest and last point of
//! every [`GROUP`] points — so a long series downsampled for a chart is read from a sixteenth of
//! its bytes, with its peaks and dips intact.
//!
//! The last value of each series (its point at the highest step, then the latest time) is folded
//! into the run's outputs (as upstream does), so `metrics.loss: <0.2` queries and sorts work on
//! runs.
//!
//! Several writers into one run (a distributed job's workers, the event-file sync beside the
//! tracking client) are safe: a batch takes each of its series' `metric_series` rows in name
//! order before touching that series' chunks, and merges the last values into the outputs in one
//! statement at the end, with a lock that the inserts' foreign-key checks on the run do not
//! conflict with — no read-then-write of the run, no lock order to invert, so no deadlock.

use std::collections::BTreeMap;

use serde_json::{Map, Value as J};
use sqlx::FromRow;

use super::{Dialect, Result, Store, StoreError, now_micros};

/// A chunk below this many points takes the next batch's points.
pub const SMALL: usize = 512;
/// Most points in one chunk.
pub const MAX_CHUNK: usize = 8192;
const POINT: usize = 24;
/// Points summarised by one overview group.
pub const GROUP: usize = 64;
/// A downsampled read uses the overviews when each output point stands for at least this many
/// points (four groups): finer requests read every point.
const OVERVIEW_FROM: usize = 4 * GROUP;
/// Stands for "no step" in a chunk.
const NO_STEP: i64 = i64::MIN;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub step: Option<i64>,
    /// Microseconds since the epoch.
    pub ts: i64,
    pub value: f64,
}

/// Points of one series to add.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
}

/// A series read back.
#[derive(Clone, Debug)]
pub struct SeriesData {
    pub name: String,
    /// Points before downsampling.
    pub total: usize,
    pub points: Vec<Point>,
    /// The lowest, highest and last points of the whole series (exact even when downsampled).
    pub stats: Option<Stats>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub min: Point,
    pub max: Point,
    pub last: Point,
}

impl SeriesData {
    /// A series from all its points (in order), downsampled to `sample` points when given.
    pub fn from_points(name: String, points: Vec<Point>, sample: Option<usize>) -> SeriesData {
        let total = points.len();
        let stats = stats(&points);
        let points = match sample {
            Some(n) if n < total => downsample(&points, n),
            _ => points,
        };
        SeriesData {
            name,
            total,
            points,
            stats,
        }
    }
}

/// The first lowest, first highest and last points.
pub fn stats(points: &[Point]) -> Option<Stats> {
    let first = *points.first()?;
    let (mut min, mut max) = (first, first);
    for p in points {
        if p.value < min.value {
            min = *p;
        }
        if p.value > max.value {
            max = *p;
        }
    }
    Some(Stats {
        min,
        max,
        last: *points.last()?,
    })
}

fn encode(points: &[Point], out: &mut Vec<u8>) {
    out.reserve(points.len() * POINT);
    for p in points {
        out.extend_from_slice(&p.step.unwrap_or(NO_STEP).to_le_bytes());
        out.extend_from_slice(&p.ts.to_le_bytes());
        out.extend_from_slice(&p.value.to_le_bytes());
    }
}

fn decode(data: &[u8], out: &mut Vec<Point>) {
    out.reserve(data.len() / POINT);
    for c in data.chunks_exact(POINT) {
        let step = i64::from_le_bytes(c[0..8].try_into().expect("8 bytes"));
        let ts = i64::from_le_bytes(c[8..16].try_into().expect("8 bytes"));
        let value = f64::from_le_bytes(c[16..24].try_into().expect("8 bytes"));
        out.push(Point {
            step: (step != NO_STEP).then_some(step),
            ts,
            value,
        });
    }
}

/// The first, lowest, highest and last point of each [`GROUP`] points, in order, encoded; `None`
/// when the points are not in step order (such a chunk is always read whole).
fn overview(points: &[Point]) -> Option<Vec<u8>> {
    if !points
        .windows(2)
        .all(|w| order_key(&w[0]) <= order_key(&w[1]))
    {
        return None;
    }
    let mut keep = Vec::with_capacity(points.len() / GROUP * 4 + 4);
    for (g, group) in points.chunks(GROUP).enumerate() {
        let (mut lo, mut hi) = (0, 0);
        for (i, p) in group.iter().enumerate() {
            if p.value < group[lo].value {
                lo = i;
            }
            if p.value > group[hi].value {
                hi = i;
            }
        }
        let mut idx = [0, lo.min(hi), lo.max(hi), group.len() - 1];
        idx.sort_unstable();
        let mut prev = None;
        for i in idx {
            if prev != Some(i) {
                keep.push(points[g * GROUP + i]);
                prev = Some(i);
            }
        }
    }
    let mut out = Vec::new();
    encode(&keep, &mut out);
    Some(out)
}

#[derive(FromRow)]
struct LastChunk {
    seq: i64,
    n: i64,
    data: Vec<u8>,
}

#[derive(FromRow)]
struct ChunkData {
    name: String,
    data: Vec<u8>,
}

#[derive(FromRow)]
struct ChunkOverview {
    name: String,
    n: i64,
    overview: Option<Vec<u8>>,
}

#[derive(FromRow)]
struct LastValue {
    last_value: f64,
}

#[derive(FromRow)]
struct SeriesKey {
    run_id: i64,
    name: String,
}

#[derive(FromRow)]
struct Extrema {
    run_id: i64,
    name: String,
    min_value: Option<f64>,
    max_value: Option<f64>,
}

#[derive(FromRow)]
struct Name {
    name: String,
}

fn bounds(points: &[Point]) -> (Option<i64>, Option<i64>, i64, i64) {
    let steps = points.iter().filter_map(|p| p.step);
    let (smin, smax) = steps.fold((None, None), |(lo, hi): (Option<i64>, Option<i64>), s| {
        (
            Some(lo.map_or(s, |l| l.min(s))),
            Some(hi.map_or(s, |h| h.max(s))),
        )
    });
    let tmin = points.iter().map(|p| p.ts).min().unwrap_or(0);
    let tmax = points.iter().map(|p| p.ts).max().unwrap_or(0);
    (smin, smax, tmin, tmax)
}

/// What keeps a batch of points from being stored twice.
enum Guard<'a> {
    None,
    /// A client's batch id, stored once.
    Batch(&'a str),
    /// The bytes `start..end` of a run's event file `name`: stored only if the file was read
    /// up to `start` (and then it is read up to `end`).
    FileRange {
        name: &'a str,
        start: u64,
        end: u64,
    },
}

impl Store {
    /// Adds points to a run's series. Returns how many points were added, or 0 when the batch
    /// id was seen before (a retry).
    pub async fn ingest(
        &self,
        run_id: i64,
        batch_id: Option<&str>,
        series: Vec<Series>,
    ) -> Result<usize> {
        let guard = batch_id.map_or(Guard::None, Guard::Batch);
        Ok(self
            .ingest_guarded(run_id, guard, series)
            .await?
            .unwrap_or(0))
    }

    /// Adds the points read from bytes `start..end` of the run's event file `name`, unless
    /// that range was stored already or another reader got further (`None` then).
    pub async fn ingest_file_range(
        &self,
        run_id: i64,
        name: &str,
        start: u64,
        end: u64,
        points: Vec<Point>,
    ) -> Result<Option<usize>> {
        let series = vec![Series {
            name: name.to_string(),
            points,
        }];
        self.ingest_guarded(run_id, Guard::FileRange { name, start, end }, series)
            .await
    }

    /// How far each of the run's event files has been ingested.
    pub async fn event_file_offsets(&self, run_id: i64) -> Result<BTreeMap<String, u64>> {
        #[derive(FromRow)]
        struct Row {
            name: String,
            read_to: i64,
        }
        let rows: Vec<Row> = self
            .fetch_all(
                "SELECT name, read_to FROM event_file_offsets WHERE run_id = $1",
                vec![run_id.into()],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.name, r.read_to.max(0) as u64))
            .collect())
    }

    async fn ingest_guarded(
        &self,
        run_id: i64,
        guard: Guard<'_>,
        series: Vec<Series>,
    ) -> Result<Option<usize>> {
        let by_name = by_name(series)?;
        let total: usize = by_name.values().map(Vec::len).sum();
        let mut tx = self.begin().await?;
        if !claim(&mut tx, run_id, &guard, total).await? {
            return Ok(None);
        }
        write_points(&mut tx, run_id, &by_name).await?;
        tx.commit().await?;
        Ok(Some(total))
    }

    /// Adds several batches to one run's series in one transaction (writers of one run
    /// grouped: one commit for all). Each batch is checked apart first (see [`checked`]);
    /// each with an id is applied at most once. Returns the points added per batch, 0 for a
    /// batch seen before.
    pub async fn ingest_batches(
        &self,
        run_id: i64,
        batches: &[(Option<String>, Checked)],
    ) -> Result<Vec<usize>> {
        let mut tx = self.begin().await?;
        let mut added = Vec::with_capacity(batches.len());
        let mut all: BTreeMap<String, Vec<Point>> = BTreeMap::new();
        for (id, Checked(points)) in batches {
            let total: usize = points.values().map(Vec::len).sum();
            let guard = id.as_deref().map_or(Guard::None, Guard::Batch);
            if claim(&mut tx, run_id, &guard, total).await? {
                for (name, p) in points {
                    all.entry(name.clone()).or_default().extend_from_slice(p);
                }
                added.push(total);
            } else {
                added.push(0);
            }
        }
        if !all.is_empty() {
            write_points(&mut tx, run_id, &all).await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    /// The names of a run's series.
    pub async fn metric_names(&self, run_id: i64) -> Result<Vec<String>> {
        let rows: Vec<Name> = self
            .fetch_all(
                "SELECT DISTINCT name FROM metric_chunks WHERE run_id = $1 ORDER BY name",
                vec![run_id.into()],
            )
            .await?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }

    /// Reads series (all when `names` is empty), in step order, downsampled to at most
    /// `sample` points each when given.
    pub async fn series(
        &self,
        run_id: i64,
        names: &[String],
        sample: Option<usize>,
    ) -> Result<Vec<SeriesData>> {
        let mut out = Vec::new();
        let mut whole: Vec<String> = Vec::new();
        let mut read_all = sample.is_none();
        if let Some(n) = sample {
            // Long series: from their overviews, when those are in order end to end.
            let rows: Vec<ChunkOverview> = self
                .fetch_chunks("name, n, overview", run_id, names)
                .await?;
            let mut by_name: BTreeMap<String, (usize, Option<Vec<Point>>)> = BTreeMap::new();
            for r in rows {
                let entry = by_name.entry(r.name).or_insert((0, Some(Vec::new())));
                entry.0 += r.n as usize;
                match (&mut entry.1, r.overview) {
                    (Some(points), Some(data)) => decode(&data, points),
                    (slot, _) => *slot = None,
                }
            }
            for (name, (total, points)) in by_name {
                let usable = points.filter(|p| {
                    total >= n.saturating_mul(OVERVIEW_FROM)
                        && p.windows(2).all(|w| order_key(&w[0]) <= order_key(&w[1]))
                });
                match usable {
                    // The overview holds every group's extremes and the last point: the
                    // series' stats are exact.
                    Some(points) => out.push(SeriesData {
                        name,
                        total,
                        stats: stats(&points),
                        points: downsample(&points, n),
                    }),
                    None => whole.push(name),
                }
            }
            if whole.is_empty() {
                return Ok(out);
            }
        } else {
            whole = names.to_vec();
            read_all = names.is_empty();
        }
        let filter: &[String] = if read_all { &[] } else { &whole };
        let rows: Vec<ChunkData> = self.fetch_chunks("name, data", run_id, filter).await?;
        let mut by_name: BTreeMap<String, Vec<Point>> = BTreeMap::new();
        for r in rows {
            decode(&r.data, by_name.entry(r.name).or_default());
        }
        for (name, mut points) in by_name {
            let sorted = points
                .windows(2)
                .all(|w| order_key(&w[0]) <= order_key(&w[1]));
            if !sorted {
                points.sort_by_key(order_key);
            }
            out.push(SeriesData::from_points(name, points, sample));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `columns` of a run's chunks (of `names`, or all), in series and sequence order.
    /// Computes the lowest and highest values of up to `batch` series written before they were
    /// kept (from their chunks, each series under its row's lock, as writers take it), and
    /// returns how many it did.
    pub async fn backfill_extrema(&self, batch: i64) -> Result<usize> {
        let due: Vec<SeriesKey> = self
            .fetch_all(
                "SELECT run_id, name FROM metric_series WHERE extrema = 0 LIMIT $1",
                vec![batch.into()],
            )
            .await?;
        for k in &due {
            let mut tx = self.begin().await?;
            // The row first: a batch of points into this series waits for this (and this
            // for it), so no point is missed between reading the chunks and writing.
            let locked = tx
                .execute(
                    "UPDATE metric_series SET extrema = 0 WHERE run_id = $1 AND name = $2 AND extrema = 0",
                    vec![k.run_id.into(), k.name.clone().into()],
                )
                .await?;
            if locked == 0 {
                continue;
            }
            let chunks: Vec<ChunkData> = tx
                .fetch_all(
                    "SELECT name, data FROM metric_chunks WHERE run_id = $1 AND name = $2",
                    vec![k.run_id.into(), k.name.clone().into()],
                )
                .await?;
            let mut points = Vec::new();
            let (mut lo, mut hi) = (None::<f64>, None::<f64>);
            for c in chunks {
                points.clear();
                decode(&c.data, &mut points);
                let (l, h) = extrema(&points);
                lo = match (lo, l) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                hi = match (hi, h) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
            tx.execute(
                "UPDATE metric_series SET min_value = $1, max_value = $2, extrema = 1 WHERE run_id = $3 AND name = $4",
                vec![lo.into(), hi.into(), k.run_id.into(), k.name.clone().into()],
            )
            .await?;
            tx.commit().await?;
        }
        Ok(due.len())
    }

    /// The lowest and highest value of series `names` of runs `run_ids`, by (run, name).
    pub async fn extrema(
        &self,
        run_ids: &[i64],
        names: &[String],
    ) -> Result<BTreeMap<(i64, String), (Option<f64>, Option<f64>)>> {
        if run_ids.is_empty() || names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut p = super::pql::Params::new(self.dialect());
        let runs: Vec<String> = run_ids.iter().map(|r| p.push(*r)).collect();
        let ns: Vec<String> = names.iter().map(|n| p.push(n.clone())).collect();
        let rows: Vec<Extrema> = self
            .fetch_all(
                &format!(
                    "SELECT run_id, name, min_value, max_value FROM metric_series WHERE run_id IN ({}) AND name IN ({})",
                    runs.join(", "),
                    ns.join(", ")
                ),
                p.args,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| ((r.run_id, r.name), (r.min_value, r.max_value)))
            .collect())
    }

    async fn fetch_chunks<T>(&self, columns: &str, run_id: i64, names: &[String]) -> Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let mut p = super::pql::Params::new(self.dialect());
        let rid = p.push(run_id);
        let filter = if names.is_empty() {
            String::new()
        } else {
            let ph: Vec<String> = names.iter().map(|n| p.push(n.clone())).collect();
            format!(" AND name IN ({})", ph.join(", "))
        };
        self.fetch_all(
            &format!("SELECT {columns} FROM metric_chunks WHERE run_id = {rid}{filter} ORDER BY name, seq"),
            p.args,
        )
        .await
    }
}

/// The lowest and highest finite values of `points`.
fn extrema(points: &[Point]) -> (Option<f64>, Option<f64>) {
    points
        .iter()
        .map(|p| p.value)
        .filter(|v| v.is_finite())
        .fold((None, None), |(lo, hi): (Option<f64>, Option<f64>), v| {
            (
                Some(lo.map_or(v, |l| l.min(v))),
                Some(hi.map_or(v, |h| h.max(v))),
            )
        })
}

fn order_key(p: &Point) -> (i64, i64) {
    (p.step.unwrap_or(i64::MIN), p.ts)
}

/// Largest-Triangle-Three-Buckets: `n` points that keep the series' visual shape (first and
/// last points kept, and in each bucket the point making the largest triangle with its
/// neighbours, so peaks and dips survive).
pub fn downsample(points: &[Point], n: usize) -> Vec<Point> {
    let len = points.len();
    if n >= len || n < 3 {
        return if n >= len {
            points.to_vec()
        } else {
            points
                .iter()
                .step_by(len.div_ceil(n.max(1)))
                .copied()
                .collect()
        };
    }
    let x = |i: usize| points[i].step.map_or(i as f64, |s| s as f64);
    let y = |i: usize| points[i].value;
    let mut out = Vec::with_capacity(n);
    out.push(points[0]);
    let every = (len - 2) as f64 / (n - 2) as f64;
    let mut a = 0usize;
    for b in 0..n - 2 {
        let start = (b as f64 * every) as usize + 1;
        let end = (((b + 1) as f64 * every) as usize + 1).min(len - 1);
        // Average of the next bucket.
        let next_start = end;
        let next_end = (((b + 2) as f64 * every) as usize + 1).min(len);
        let count = (next_end - next_start).max(1) as f64;
        let (mut ax, mut ay) = (0.0, 0.0);
        for j in next_start..next_end.max(next_start + 1).min(len) {
            ax += x(j);
            ay += y(j);
        }
        ax /= count;
        ay /= count;
        let (px, py) = (x(a), y(a));
        let mut best = start;
        let mut best_area = -1.0;
        for j in start..end.max(start + 1) {
            let area = ((px - ax) * (y(j) - py) - (px - x(j)) * (ay - py)).abs();
            if area > best_area {
                best_area = area;
                best = j;
            }
        }
        out.push(points[best]);
        a = best;
    }
    out.push(points[len - 1]);
    out
}

/// A batch's points by series, checked: names of 1 to 256 characters, finite values.
#[derive(Clone, Debug, Default)]
pub struct Checked(BTreeMap<String, Vec<Point>>);

impl Checked {
    pub fn points(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }
}

/// Checks a batch before it is stored (a bad one is refused alone, not with its group).
pub fn checked(series: Vec<Series>) -> Result<Checked> {
    by_name(series).map(Checked)
}

fn by_name(series: Vec<Series>) -> Result<BTreeMap<String, Vec<Point>>> {
    let mut by_name: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for s in series {
        if s.name.is_empty() || s.name.len() > 256 {
            return Err(StoreError::Invalid(
                "a metric name must have 1 to 256 characters".into(),
            ));
        }
        if let Some(p) = s.points.iter().find(|p| !p.value.is_finite()) {
            return Err(StoreError::Invalid(format!(
                "metric `{}` has a value that is not a finite number ({})",
                s.name, p.value
            )));
        }
        by_name.entry(s.name).or_default().extend(s.points);
    }
    Ok(by_name)
}

/// Takes the batch's guard in the transaction: false when the batch was stored before (its
/// id seen) or the file range is not the next one.
async fn claim(
    tx: &mut super::Tx<'_>,
    run_id: i64,
    guard: &Guard<'_>,
    total: usize,
) -> Result<bool> {
    let claimed = match *guard {
        Guard::None => 1,
        Guard::Batch(id) => tx
            .execute(
                "INSERT INTO metric_batches (run_id, batch_id, points, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                vec![run_id.into(), id.into(), (total as i64).into(), now_micros().into()],
            )
            .await?,
        Guard::FileRange { name, start: 0, end } => tx
            .execute(
                "INSERT INTO event_file_offsets (run_id, name, read_to) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                vec![run_id.into(), name.to_string().into(), (end as i64).into()],
            )
            .await?,
        Guard::FileRange { name, start, end } => tx
            .execute(
                "UPDATE event_file_offsets SET read_to = $1 WHERE run_id = $2 AND name = $3 AND read_to = $4",
                vec![(end as i64).into(), run_id.into(), name.to_string().into(), (start as i64).into()],
            )
            .await?,
    };
    Ok(claimed > 0)
}

/// Writes points into a run's chunks, its series' last values and its outputs.
async fn write_points(
    tx: &mut super::Tx<'_>,
    run_id: i64,
    by_name: &BTreeMap<String, Vec<Point>>,
) -> Result<()> {
    let mut last_values = Map::new();
    for (name, points) in by_name {
        let Some(newest) = points.iter().max_by_key(|p| order_key(p)) else {
            continue;
        };
        let (lo, hi) = extrema(points);
        // The series' row first: writers of one series queue here (in name order, so two
        // batches never wait on each other's series), and the last chunk read below is the
        // one the previous writer left.
        let last_value: LastValue = tx
            .fetch_optional(
                "INSERT INTO metric_series (run_id, name, last_step, last_ts, last_value, min_value, max_value, extrema) VALUES ($1, $2, $3, $4, $5, $6, $7, 1) \
                 ON CONFLICT (run_id, name) DO UPDATE SET \
                 min_value = CASE WHEN metric_series.min_value IS NULL OR excluded.min_value < metric_series.min_value THEN excluded.min_value ELSE metric_series.min_value END, \
                 max_value = CASE WHEN metric_series.max_value IS NULL OR excluded.max_value > metric_series.max_value THEN excluded.max_value ELSE metric_series.max_value END, \
                 last_value = CASE WHEN (excluded.last_step, excluded.last_ts) >= (metric_series.last_step, metric_series.last_ts) THEN excluded.last_value ELSE metric_series.last_value END, \
                 last_step = CASE WHEN (excluded.last_step, excluded.last_ts) >= (metric_series.last_step, metric_series.last_ts) THEN excluded.last_step ELSE metric_series.last_step END, \
                 last_ts = CASE WHEN (excluded.last_step, excluded.last_ts) >= (metric_series.last_step, metric_series.last_ts) THEN excluded.last_ts ELSE metric_series.last_ts END \
                 RETURNING last_value",
                vec![
                    run_id.into(),
                    name.clone().into(),
                    order_key(newest).0.into(),
                    newest.ts.into(),
                    newest.value.into(),
                    lo.into(),
                    hi.into(),
                ],
            )
            .await?
            .ok_or(StoreError::Db(sqlx::Error::RowNotFound))?;
        last_values.insert(
            name.clone(),
            serde_json::Number::from_f64(last_value.last_value)
                .map(J::Number)
                .unwrap_or(J::Null),
        );
        let last: Option<LastChunk> = tx
            .fetch_optional(
                "SELECT seq, n, data FROM metric_chunks WHERE run_id = $1 AND name = $2 ORDER BY seq DESC LIMIT 1",
                vec![run_id.into(), name.clone().into()],
            )
            .await?;
        let mut rest: &[Point] = points;
        let mut next_seq = last.as_ref().map_or(0, |l| l.seq + 1);
        if let Some(l) = last
            && (l.n as usize) < SMALL
        {
            let take = (MAX_CHUNK - l.n as usize).min(rest.len());
            let mut merged = Vec::new();
            decode(&l.data, &mut merged);
            merged.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            let mut data = Vec::new();
            encode(&merged, &mut data);
            let (smin, smax, tmin, tmax) = bounds(&merged);
            tx.execute(
                "UPDATE metric_chunks SET n = $1, step_min = $2, step_max = $3, ts_min = $4, ts_max = $5, data = $6, overview = $7 WHERE run_id = $8 AND name = $9 AND seq = $10",
                vec![
                    (merged.len() as i64).into(),
                    smin.into(),
                    smax.into(),
                    tmin.into(),
                    tmax.into(),
                    super::Arg::Bytes(data),
                    overview(&merged).into(),
                    run_id.into(),
                    name.clone().into(),
                    l.seq.into(),
                ],
            )
            .await?;
        }
        for chunk in rest.chunks(MAX_CHUNK) {
            let mut data = Vec::new();
            encode(chunk, &mut data);
            let (smin, smax, tmin, tmax) = bounds(chunk);
            tx.execute(
                "INSERT INTO metric_chunks (run_id, name, seq, n, step_min, step_max, ts_min, ts_max, data, overview) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                vec![
                    run_id.into(),
                    name.clone().into(),
                    next_seq.into(),
                    (chunk.len() as i64).into(),
                    smin.into(),
                    smax.into(),
                    tmin.into(),
                    tmax.into(),
                    super::Arg::Bytes(data),
                    overview(chunk).into(),
                ],
            )
            .await?;
            next_seq += 1;
        }
    }
    if !last_values.is_empty() {
        // Merged in one statement: no read of the outputs, no lock held longer than this
        // statement's row lock (a key-preserving one, which the inserts' foreign-key checks
        // on the same run do not conflict with).
        let merge = match tx.dialect() {
            Dialect::Postgres => {
                "(CASE WHEN jsonb_typeof(outputs::jsonb) = 'object' THEN outputs::jsonb ELSE '{}'::jsonb END || $1::jsonb)::text"
            }
            Dialect::Sqlite => {
                "json_patch(CASE WHEN json_type(outputs) = 'object' THEN outputs ELSE '{}' END, $1)"
            }
        };
        tx.execute(
            &format!("UPDATE runs SET outputs = {merge}, updated_at = $2 WHERE id = $3"),
            vec![
                J::Object(last_values).to_string().into(),
                now_micros().into(),
                run_id.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Point {
                step: Some(i as i64),
                ts: i as i64,
                value: *v,
            })
            .collect()
    }

    #[test]
    fn encoding_round_trips() {
        let pts = vec![
            Point {
                step: None,
                ts: 5,
                value: 1.5,
            },
            Point {
                step: Some(-3),
                ts: 6,
                value: f64::MAX,
            },
        ];
        let mut buf = Vec::new();
        encode(&pts, &mut buf);
        let mut back = Vec::new();
        decode(&buf, &mut back);
        assert_eq!(back, pts);
    }

    #[test]
    fn overviews_keep_ends_and_extremes() {
        let mut v: Vec<f64> = (0..1000).map(|i| (i % 7) as f64).collect();
        v[500] = 50.0;
        v[501] = -50.0;
        let pts = series(&v);
        let mut ov = Vec::new();
        decode(&overview(&pts).unwrap(), &mut ov);
        // At most four points per group, in order, ends and extremes kept.
        assert!(ov.len() <= 1000_usize.div_ceil(GROUP) * 4);
        assert_eq!(ov.first(), pts.first());
        assert_eq!(ov.last(), pts.last());
        assert!(ov.windows(2).all(|w| w[0].step < w[1].step));
        assert!(ov.iter().any(|p| p.value == 50.0) && ov.iter().any(|p| p.value == -50.0));
        // Out of order: no overview, the chunk is read whole.
        let mut rev = pts.clone();
        rev.reverse();
        assert!(overview(&rev).is_none());
    }

    #[test]
    fn downsampling_keeps_shape() {
        // A flat line with one spike: the spike survives a 100x reduction.
        let mut v = vec![0.0; 100_000];
        v[54_321] = 10.0;
        let d = downsample(&series(&v), 1000);
        assert_eq!(d.len(), 1000);
        assert_eq!(d.first().unwrap().step, Some(0));
        assert_eq!(d.last().unwrap().step, Some(99_999));
        assert!(d.iter().any(|p| p.value == 10.0));
        assert!(d.windows(2).all(|w| w[0].step < w[1].step));
        // Fewer points than asked: all of them.
        assert_eq!(downsample(&series(&[1.0, 2.0]), 10).len(), 2);
    }
}
