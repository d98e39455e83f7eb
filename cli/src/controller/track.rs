//! Tracking a job while it runs: its output lines stored as logs (and, when asked, its
//! `name=value` lines as metrics), its metric event files ingested as they grow, and its CPU
//! and memory sampled. Every batch carries an id, so a retry never stores a point twice, and
//! everything is stored before the run's final status.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use polyaxon_server::api::V1Log;
use serde_json::Value as J;
use tokio::sync::{mpsc, watch};

use super::RunApi;
use super::run_api::SeriesPts;
use crate::executor::{self, EventFiles, Line, Stream};
use crate::printer::Printer;

/// What one `name=value` line holds: a step and named values.
type MetricLine = (Option<i64>, Vec<(String, f64)>);

/// The trackers of one attempt, started with the job and finished after it.
pub struct Tracking {
    pump: tokio::task::JoinHandle<()>,
    files: tokio::task::JoinHandle<()>,
    sampler: Option<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

/// What to track for an attempt.
pub struct Track<'a> {
    pub api: &'a RunApi,
    pub printer: Printer,
    pub lines: Option<mpsc::Receiver<Line>>,
    pub stdout_metrics: bool,
    pub attempt: u32,
    pub event_files: EventFiles,
    /// The run's directory on this machine.
    pub dir: &'a Path,
    /// The job's process here (its group is sampled).
    pub pid: Option<u32>,
}

impl Tracking {
    pub fn start(t: Track<'_>) -> Tracking {
        let pump = tokio::spawn(pump_logs(
            t.api.clone(),
            t.printer,
            t.lines,
            t.stdout_metrics,
            t.attempt,
            None,
        ));
        let (stop, stopped) = watch::channel(false);
        let files = match t.event_files {
            EventFiles::Local => tokio::spawn(tail_events(
                t.api.clone(),
                t.printer,
                t.dir.join("events/metric"),
                stopped.clone(),
            )),
            EventFiles::Server => {
                tokio::spawn(sync_events(t.api.clone(), t.printer, stopped.clone()))
            }
            EventFiles::Unreachable => tokio::spawn(async {}),
        };
        let sampler = t.pid.map(|pid| {
            tokio::spawn(sample_resources(
                pid,
                t.dir.join("resources/metric"),
                stopped,
            ))
        });
        Tracking {
            pump,
            files,
            sampler,
            stop,
        }
    }

    /// Waits for every line and point to be stored (the job has ended).
    pub async fn finish(self) {
        let _ = self.pump.await;
        let _ = self.stop.send(true);
        let _ = self.files.await;
        if let Some(s) = self.sampler {
            let _ = s.await;
        }
    }
}

/// A line without the `[pod/container] ` a cluster run's logs are prefixed with when it has
/// several containers (their metrics count like any other line's).
fn without_source(line: &str) -> &str {
    match line.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((source, rest)) if source.contains('/') && !source.contains(' ') => rest,
        _ => line,
    }
}

/// This process's execution: its pid and start time.
fn execution_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{}.{nanos}", std::process::id())
    })
}

/// Turns `step=3 loss=0.25 acc=0.9` (spaces or commas between pairs) into a step and metrics;
/// `None` unless every token is `name=number`.
pub fn parse_metric_line(line: &str) -> Option<MetricLine> {
    let mut step = None;
    let mut out = Vec::new();
    for tok in line.split([' ', ',', '\t']).filter(|t| !t.is_empty()) {
        let (k, v) = tok.split_once('=')?;
        let k = k.trim();
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
        {
            return None;
        }
        if k == "step" {
            step = Some(v.trim().parse::<i64>().ok()?);
            continue;
        }
        let x: f64 = v.trim().parse().ok()?;
        if !x.is_finite() {
            return None;
        }
        out.push((k.to_string(), x));
    }
    (!out.is_empty()).then_some((step, out))
}

/// Reads new complete lines of the job's metric event files (`events/metric/<name>.plx`)
/// since the last call (`at_end`: the last line without its newline too).
struct PlxTail {
    dir: PathBuf,
    offsets: BTreeMap<String, u64>,
}

impl PlxTail {
    fn read(&mut self, at_end: bool) -> Vec<(String, u64, Vec<super::run_api::Pt>)> {
        let mut out = Vec::new();
        for c in polyaxon_server::eventfiles::read_new(&self.dir, &self.offsets, at_end) {
            self.offsets.insert(c.name.clone(), c.end);
            if !c.points.is_empty() {
                let pts = c
                    .points
                    .into_iter()
                    .map(|(step, ts, v)| (step, J::String(ts), v))
                    .collect();
                out.push((c.name, c.start, pts));
            }
        }
        out
    }
}

/// Retries `call` until it succeeds, 20 times at most, waiting longer each time; the last
/// failure is said (`what` could not be stored).
async fn stored<F, Fut>(printer: Printer, what: impl Fn() -> String, mut call: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for i in 0..20u64 {
        match call().await {
            Ok(()) => return,
            Err(e) if i == 19 => printer.warn(&format!("{} could not be stored: {e:#}", what())),
            Err(_) => tokio::time::sleep(Duration::from_millis(100 * (i + 1))).await,
        }
    }
}

/// For jobs on a cluster: has the server ingest the metric event files the pods write into the
/// artifacts store it shares with them, every 2 s, then once more with the last lines. The
/// server keeps how far it read, so repeated and retried calls never count a point twice.
async fn sync_events(api: RunApi, printer: Printer, mut stop: watch::Receiver<bool>) {
    let mut warned = false;
    loop {
        let at_end = *stop.borrow();
        for i in 0..if at_end { 20 } else { 1 } {
            match api.client.sync_event_files(&api.r, at_end).await {
                Ok(_) => break,
                // Refused (an older server, no permission): asking again will not help.
                Err(e) if e.status().is_some_and(|s| s.is_client_error()) => {
                    printer.warn(&format!(
                        "the run's metric event files are not ingested: {e:#}"
                    ));
                    return;
                }
                Err(e) if !warned || (at_end && i == 19) => {
                    warned = true;
                    printer.warn(&format!(
                        "the run's metric event files could not be ingested: {e:#}"
                    ));
                }
                Err(_) => {}
            }
            if at_end {
                tokio::time::sleep(Duration::from_millis(100 * (i + 1))).await;
            }
        }
        if at_end {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Appends a point to a resource series file in upstream's format.
fn append_resource(dir: &Path, name: &str, value: f64) {
    use std::io::Write;
    let path = dir.join(format!("{name}.plx"));
    let new = !path.exists();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let ts = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%S%.6f+00:00");
        if new {
            let _ = write!(f, "step|timestamp|metric");
        }
        let _ = write!(f, "\n|{ts}|{value}");
    }
}

/// An id for a batch of log lines, unique to this process and to the batch.
pub fn log_batch_id() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("logs-{}-{n}", execution_id())
}

/// Stores the job's output as logs, in small batches (a line shows in `polyaxon logs` within
/// a few tens of milliseconds); with `stdout_metrics`, `name=value` lines become metrics too.
/// `container` names the source of every line (`build`), else stderr lines are marked.
pub async fn pump_logs(
    api: RunApi,
    printer: Printer,
    lines: Option<mpsc::Receiver<Line>>,
    stdout_metrics: bool,
    attempt: u32,
    container: Option<&'static str>,
) {
    let Some(mut rx) = lines else { return };
    let mut batch: Vec<V1Log> = Vec::new();
    let mut metrics: SeriesPts = BTreeMap::new();
    let mut seq = 0u64;
    let mut metric_batch = 0u64;
    let flush_every = Duration::from_millis(20);
    loop {
        let line = tokio::time::timeout(flush_every, rx.recv()).await;
        let closed = matches!(line, Ok(None));
        if let Ok(Some(l)) = line {
            seq += 1;
            if stdout_metrics
                && l.stream == Stream::Stdout
                && let Some((step, pts)) = parse_metric_line(without_source(&l.text))
            {
                let ts = J::from(l.at as f64 / 1e6);
                for (name, v) in pts {
                    metrics.entry(name).or_default().push((step, ts.clone(), v));
                }
            }
            batch.push(V1Log {
                timestamp: Some(polyaxon_server::api::time(l.at)),
                node: None,
                pod: None,
                container: match (container, l.stream) {
                    (Some(c), _) => Some(c.to_string()),
                    (None, Stream::Stderr) => Some("stderr".to_string()),
                    (None, Stream::Stdout) => None,
                },
                // A NUL cannot be stored as text: shown as the replacement character.
                value: if l.text.contains('\0') {
                    l.text.replace('\0', "\u{FFFD}")
                } else {
                    l.text
                },
            });
            if batch.len() < 2000 {
                continue;
            }
        }
        if !batch.is_empty() {
            // Retried until stored: no line is lost to a busy server.
            let n = batch.len();
            // The same across retries of the batch: a retry after a lost answer is not
            // written twice.
            let id = log_batch_id();
            stored(
                printer,
                || format!("{n} log lines"),
                || api.append_logs(&batch, Some(&id)),
            )
            .await;
            batch.clear();
        }
        if !metrics.is_empty() {
            metric_batch += 1;
            // Unique to this execution (a resumed run prints its lines again from the start),
            // the same across retries of the batch.
            let id = format!("stdout-{}-{attempt}-{metric_batch}-{seq}", execution_id());
            stored(
                printer,
                || "stdout metrics".into(),
                || api.ingest(&id, &metrics),
            )
            .await;
            metrics.clear();
        }
        if closed {
            break;
        }
    }
}

/// Ingests the job's metric event files as they grow, and what is left at the end. Each batch
/// is named by file and offset, so a retried batch is never counted twice.
async fn tail_events(api: RunApi, printer: Printer, dir: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut tail = PlxTail {
        dir,
        offsets: BTreeMap::new(),
    };
    loop {
        let at_end = *stop.borrow();
        let found = tail.read(at_end);
        for (name, offset, pts) in found {
            let id = format!("plx-{name}-{offset}");
            let series = BTreeMap::from([(name.clone(), pts)]);
            stored(
                printer,
                || format!("metric `{name}`"),
                || api.ingest(&id, &series),
            )
            .await;
        }
        if at_end {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Samples the job's CPU (percent of one core) and resident memory (bytes) every few
/// seconds, summed over its process group, into `resources/metric/{cpu,memory}.plx`.
async fn sample_resources(pid: u32, dir: PathBuf, mut stop: watch::Receiver<bool>) {
    let ticks = 100.0; // USER_HZ on Linux
    let page = 4096.0;
    let mut last: Option<(Instant, u64)> = None;
    let every = Duration::from_secs(2);
    // The first look after a second: a job that ends sooner has nothing to show, and a look
    // walks every process of the machine.
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        _ = stop.changed() => return,
    }
    loop {
        if let Some(members) = executor::process::group_members(pid) {
            let live: Vec<_> = members.iter().filter(|m| m.state != 'Z').collect();
            if !live.is_empty() {
                let cpu: u64 = live.iter().map(|m| m.cpu_ticks).sum();
                let rss: u64 = live.iter().map(|m| m.rss_pages).sum();
                let now = Instant::now();
                if let Some((t, c)) = last {
                    let secs = now.duration_since(t).as_secs_f64();
                    if secs > 0.0 {
                        let pct = (cpu.saturating_sub(c)) as f64 / ticks / secs * 100.0;
                        append_resource(&dir, "cpu", (pct * 10.0).round() / 10.0);
                    }
                }
                append_resource(&dir, "memory", rss as f64 * page);
                last = Some((now, cpu));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_metric_lines() {
        assert_eq!(
            parse_metric_line("step=3 loss=0.25, acc=0.9"),
            Some((Some(3), vec![("loss".into(), 0.25), ("acc".into(), 0.9)]))
        );
        assert_eq!(
            parse_metric_line("loss=1e-3"),
            Some((None, vec![("loss".into(), 0.001)]))
        );
        assert_eq!(parse_metric_line("epoch 3 loss=0.25"), None);
        // A cluster run's source prefix does not hide a metric line.
        assert_eq!(without_source("[worker-0/pytorch] loss=0.5"), "loss=0.5");
        assert_eq!(without_source("[epoch 3] loss=0.5"), "[epoch 3] loss=0.5");
        assert_eq!(without_source("loss=0.5"), "loss=0.5");
        assert_eq!(parse_metric_line("loss=abc"), None);
        assert_eq!(parse_metric_line("loss=nan"), None);
        assert_eq!(parse_metric_line(""), None);
        assert_eq!(parse_metric_line("step=1"), None);
    }

    #[test]
    fn event_files_are_read_once_and_whole_lines_only() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("loss.plx");
        std::fs::write(&f, "step|timestamp|metric\n0|2026-11-24 01:31:17.054180+00:00|1.0\n1|2026-11-24 01:31:17.1+00:00|0.5").unwrap();
        let mut t = PlxTail {
            dir: d.path().to_path_buf(),
            offsets: BTreeMap::new(),
        };
        let first = t.read(false);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].2.len(), 1, "the last line has no newline yet");
        assert_eq!(first[0].2[0].0, Some(0));
        assert!(t.read(false).is_empty());
        let end = t.read(true);
        assert_eq!(
            end[0].2,
            vec![(
                Some(1),
                J::String("2026-11-24 01:31:17.1+00:00".into()),
                0.5
            )]
        );
        assert!(t.read(true).is_empty());
    }
}
