//! A run's container logs: each followed from its start, reconnecting when the stream drops
//! while the container runs (from the last line's second, without repeating a line).

use std::time::Duration;

use futures_util::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, LogParams};
use tokio::sync::mpsc;

use crate::executor::{Line, Stream};

/// Whether a container is done (terminated, or its pod gone).
pub(super) async fn container_done(pods: &Api<core::Pod>, pod: &str, container: &str) -> bool {
    let Ok(Some(p)) = pods.get_opt(pod).await else {
        return true;
    };
    let Some(st) = p.status else { return false };
    if matches!(st.phase.as_deref(), Some("Succeeded") | Some("Failed")) {
        return true;
    }
    st.init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .find(|c| c.name == container)
        .is_some_and(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
}

/// Splits `2026-11-24T09:15:19.123456789Z text` into its time and text.
pub fn split_timestamp(line: &str) -> (Option<jiff::Timestamp>, &str) {
    match line.split_once(' ') {
        Some((ts, rest)) => match ts.parse::<jiff::Timestamp>() {
            Ok(t) => (Some(t), rest),
            Err(_) => (None, line),
        },
        None => match line.parse::<jiff::Timestamp>() {
            Ok(t) => (Some(t), ""),
            Err(_) => (None, line),
        },
    }
}

/// Which lines of a reconnected log stream were already sent: a reconnection asks from the
/// last line's second, so lines before that time, and those of that time already sent, are
/// skipped.
#[derive(Default)]
pub(super) struct Dedup {
    last: Option<jiff::Timestamp>,
    /// Lines sent with the time `last` (several lines can share one).
    sent_at_last: usize,
    /// Lines with the time `last` seen in the current stream.
    seen_at_last: usize,
}

impl Dedup {
    fn new_stream(&mut self) {
        self.seen_at_last = 0;
    }

    /// Whether a line with this time is new (and records it).
    fn admit(&mut self, ts: Option<jiff::Timestamp>) -> bool {
        let Some(t) = ts else { return true };
        match self.last {
            Some(l) if t < l => false,
            Some(l) if t == l => {
                self.seen_at_last += 1;
                if self.seen_at_last <= self.sent_at_last {
                    return false;
                }
                self.sent_at_last += 1;
                true
            }
            _ => {
                self.last = Some(t);
                self.sent_at_last = 1;
                self.seen_at_last = 1;
                true
            }
        }
    }
}

/// Reads one log stream into `tx`; false when the receiver is gone.
pub(super) async fn read_stream(
    stream: impl futures_util::AsyncBufRead + Unpin,
    dedup: &mut Dedup,
    prefix: Option<&str>,
    tx: &mpsc::Sender<Line>,
) -> bool {
    dedup.new_stream();
    let mut lines = stream.lines();
    while let Ok(Some(line)) = lines.try_next().await {
        let (ts, text) = split_timestamp(&line);
        if !dedup.admit(ts) {
            continue;
        }
        let at = ts
            .map(|t| t.as_microsecond())
            .unwrap_or_else(crate::executor::now_micros);
        let text = match prefix {
            Some(p) => format!("{p}{text}"),
            None => text.to_string(),
        };
        let line = Line {
            stream: Stream::Stdout,
            text,
            at,
        };
        if tx.send(line).await.is_err() {
            return false;
        }
    }
    true
}

/// Follows one container's log, reconnecting when the stream drops while the container runs
/// (from the last line's second, without repeating a line); ends with the container.
pub async fn follow_logs(
    pods: Api<core::Pod>,
    pod: String,
    container: String,
    prefix: Option<String>,
    tx: mpsc::Sender<Line>,
    since: Option<jiff::Timestamp>,
) {
    // Adopted: what the lost agent stored is not sent again (lines of that very microsecond
    // included).
    let mut dedup = Dedup {
        last: since,
        sent_at_last: if since.is_some() { usize::MAX } else { 0 },
        seen_at_last: 0,
    };
    let mut failures = 0u32;
    loop {
        let lp = LogParams {
            container: Some(container.clone()),
            follow: true,
            timestamps: true,
            since_time: dedup.last,
            ..Default::default()
        };
        match pods.log_stream(&pod, &lp).await {
            Ok(stream) => {
                failures = 0;
                if !read_stream(stream, &mut dedup, prefix.as_deref(), &tx).await {
                    return;
                }
            }
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(_) => {
                failures += 1;
                if failures > 300 {
                    return;
                }
            }
        }
        if container_done(&pods, &pod, &container).await {
            // One last read picks up lines written between the drop and the end.
            if failures == 0 && dedup.last.is_some() {
                let lp = LogParams {
                    container: Some(container.clone()),
                    timestamps: true,
                    since_time: dedup.last,
                    ..Default::default()
                };
                if let Ok(stream) = pods.log_stream(&pod, &lp).await {
                    read_stream(stream, &mut dedup, prefix.as_deref(), &tx).await;
                }
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
