//! Finishing: against a server, the files the job wrote on this machine sent to it; then the
//! run's final status, with the exit code and why.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use polyaxon_server::api::RunStatus;
use serde_json::{Map, Value as J};

use super::{Ctl, Outcome, RunApi};
use crate::output::human_bytes;

/// How an attempt ended, beyond its outcome.
pub struct End<'a> {
    /// The reason where the job ran says more than an exit code (`OOMKilled`).
    pub failure_reason: Option<&'a str>,
    pub exit_code: Option<i32>,
    pub attempt: u32,
    pub took: Duration,
    /// Recorded with a success, for the cache.
    pub cache_key: Option<&'a str>,
}

/// Records the run's end: its files sent to a server, then its final status.
pub async fn record(ctl: &Ctl<'_>, dir: &Path, outcome: &Outcome, end: End<'_>) -> Result<()> {
    let took = end.took.as_secs_f64();
    let (kind, reason, msg) = match outcome {
        Outcome::Succeeded => (
            RunStatus::Succeeded,
            "ExecutorSucceeded",
            format!("exit code 0 after {took:.1} s"),
        ),
        Outcome::Failed(why) => (
            RunStatus::Failed,
            end.failure_reason.unwrap_or("ExecutorFailed"),
            why.clone(),
        ),
        Outcome::Stopped(why) => (RunStatus::Stopped, "ExecutorStopped", why.clone()),
    };
    sync_artifacts(&ctl.api, dir).await;
    if *outcome == Outcome::Succeeded
        && let Some(key) = end.cache_key
    {
        let _ = ctl
            .api
            .client
            .patch_meta(
                &ctl.api.r,
                polyaxon_server::api::RunMeta {
                    cache_key: Some(key.to_string()),
                    ..Default::default()
                }
                .to_map(),
            )
            .await;
    }
    let meta = Map::from_iter([
        ("exit_code".to_string(), J::from(end.exit_code)),
        ("attempt".to_string(), J::from(end.attempt)),
    ]);
    ctl.api.status(kind, reason, &msg, Some(meta)).await?;
    Ok(())
}

/// Against a server: the files of the run written on this machine (outputs, assets, system
/// metrics, events) sent to it, in batches, so `ops artifacts` there has them; logs, metrics
/// and the code went by the API already. A failure is said in the run's logs (the files stay
/// here); it does not fail the run.
async fn sync_artifacts(api: &RunApi, dir: &Path) {
    if api.client.is_embedded() {
        return;
    }
    const BATCH: u64 = 64 << 20;
    const LARGEST: u64 = 2 << 30;
    let ignore = crate::upload::Ignore::parse("/code/\n/plxlogs/\n/.code-snapshot\n");
    let files = match tokio::task::block_in_place(|| crate::upload::list_files(dir, &ignore)) {
        Ok((f, _)) => f,
        Err(e) => {
            api.log(format!(
                "the run's files were not sent to the server: {e:#}"
            ))
            .await;
            return;
        }
    };
    let (files, too_big): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| f.size <= LARGEST);
    for f in &too_big {
        api.log(format!(
            "`{}` ({}) is too large to send to the server; it is kept at `{}`",
            f.rel,
            human_bytes(f.size),
            f.path.display()
        ))
        .await;
    }
    let mut batches: Vec<Vec<crate::upload::Found>> = Vec::new();
    let mut size = 0;
    for f in files {
        if batches.is_empty() || size + f.size > BATCH {
            batches.push(Vec::new());
            size = 0;
        }
        size += f.size;
        batches.last_mut().expect("a batch").push(f);
    }
    let (mut sent, mut bytes) = (0usize, 0u64);
    for batch in batches.iter().filter(|b| !b.is_empty()) {
        let res = match tokio::task::block_in_place(|| crate::upload::pack_files(batch)) {
            Ok(p) => api
                .client
                .upload_artifacts(&api.r, None, p.bytes.into())
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            api.log(format!(
                "some of the run's files were not sent to the server ({e:#}); they are kept at `{}`",
                dir.display()
            ))
            .await;
            return;
        }
        sent += batch.len();
        bytes += batch.iter().map(|f| f.size).sum::<u64>();
    }
    if sent > 0 {
        api.log(format!(
            "sent the run's {sent} files ({}) to the server",
            human_bytes(bytes)
        ))
        .await;
    }
}
