//! The calls a controller makes about its run, on the typed client, with what it keeps
//! between them (`meta_info.executor` as last written: a patch replaces a key whole).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use polyaxon_server::api::{ExecutorMeta, MetricSeriesIn, MetricsBatch, RunStatus, V1Log, V1Run};
use serde_json::{Map, Value as J};

use crate::client::{Client, RunRef};

/// A point to ingest: step, timestamp (seconds or RFC 3339 text), value.
pub type Pt = (Option<i64>, J, f64);
/// Points of several series.
pub type SeriesPts = BTreeMap<String, Vec<Pt>>;

/// A controller's handle on its run.
#[derive(Clone)]
pub struct RunApi {
    pub client: Arc<Client>,
    pub r: RunRef,
    executor: Arc<Mutex<ExecutorMeta>>,
}

/// `{"attempt": n}`, the meta of an attempt's statuses.
pub fn attempt_meta(attempt: u32) -> Option<Map<String, J>> {
    Some(Map::from_iter([("attempt".to_string(), J::from(attempt))]))
}

impl RunApi {
    pub fn new(client: Arc<Client>, r: RunRef) -> RunApi {
        RunApi {
            client,
            r,
            executor: Default::default(),
        }
    }

    /// The same client, about another run of the project (a search's trial).
    pub fn for_run(&self, uuid: &str) -> RunApi {
        RunApi::new(self.client.clone(), self.r.sibling(uuid))
    }

    /// Adds a status; false when the run may not take it (it was stopped meanwhile).
    pub async fn status(
        &self,
        kind: RunStatus,
        reason: &str,
        message: &str,
        meta: Option<Map<String, J>>,
    ) -> Result<bool> {
        Ok(self
            .client
            .add_status(&self.r, kind, reason, message, meta)
            .await?)
    }

    pub async fn current(&self) -> Result<V1Run> {
        Ok(self.client.get_run(&self.r).await?)
    }

    /// Whether a stop was asked for (from anywhere).
    pub async fn stop_requested(&self) -> Result<bool> {
        Ok(matches!(
            self.current().await?.status,
            Some(RunStatus::Stopping | RunStatus::Stopped)
        ))
    }

    /// Changes `meta_info.executor` and writes it.
    pub async fn record_executor(&self, change: impl FnOnce(&mut ExecutorMeta)) -> Result<()> {
        let all = {
            let mut m = self.executor.lock().expect("not poisoned");
            change(&mut m);
            serde_json::to_value(&*m)?
        };
        self.client
            .patch_meta(&self.r, Map::from_iter([("executor".to_string(), all)]))
            .await?;
        Ok(())
    }

    /// A line of the controller's own in the run's logs (best effort).
    pub async fn log(&self, text: String) {
        let _ = self.log_as("polyaxon", text).await;
    }

    /// A line in the run's logs, as from `container` (`build` for image builds).
    pub async fn log_as(&self, container: &str, text: String) -> Result<()> {
        self.append_logs(
            &[V1Log {
                timestamp: Some(polyaxon_server::api::time(crate::executor::now_micros())),
                node: None,
                pod: None,
                container: Some(container.into()),
                value: text,
            }],
            Some(&super::track::log_batch_id()),
        )
        .await
    }

    /// Appends lines; `id` makes a retried batch land once.
    pub async fn append_logs(&self, logs: &[V1Log], id: Option<&str>) -> Result<()> {
        Ok(self.client.append_logs(&self.r, logs, id).await?)
    }

    /// Stores points of several series as one batch, applied once per `id`.
    pub async fn ingest(&self, id: &str, series: &SeriesPts) -> Result<()> {
        let batch = MetricsBatch {
            id: Some(id.to_string()),
            metrics: series
                .iter()
                .map(|(name, pts)| MetricSeriesIn {
                    name: name.clone(),
                    step: Some(pts.iter().map(|p| p.0).collect()),
                    timestamp: Some(pts.iter().map(|p| p.1.clone()).collect()),
                    value: pts.iter().map(|p| p.2).collect(),
                })
                .collect(),
        };
        self.client.ingest_metrics(&self.r, &batch).await?;
        Ok(())
    }
}
