//! Delivering a store's outbox from a CLI process that uses the embedded store: a run's
//! supervisor and an agent deliver the notifications and hooks of the runs they end (and any
//! that a process that died left pending); a supervisor waits for its own before it exits.

use std::time::Duration;

use polyaxon_server::App;
use polyaxon_server::notify::Worker;

use crate::printer::Printer;

/// The longest a supervisor waits for its runs' deliveries after the run ended: their
/// retries (1 + 2 + 4 + 8 s by default) and timeouts fit.
const DRAIN: Duration = Duration::from_secs(120);

/// A worker delivering in the background.
pub struct Delivery {
    worker: Worker,
    task: tokio::task::JoinHandle<()>,
}

impl Delivery {
    /// Starts delivering (`role` names this process in the leases it holds).
    pub fn start(app: &App, role: &str) -> Delivery {
        let worker = Worker::new(app.store.clone(), app.config.notify.clone(), holder(role));
        let task = worker.clone().spawn();
        Delivery { worker, task }
    }

    /// Waits for the deliveries of the runs this process ended, then stops delivering.
    pub async fn finish(self, printer: &Printer) {
        match self.worker.drain_fired(DRAIN).await {
            Ok(0) => {}
            Ok(n) => printer.warn(&format!(
                "{n} notification(s) of this run are still to be delivered; the next polyaxon process that delivers (a run, an agent, a server on this store) sends them"
            )),
            Err(e) => printer.warn(&format!("the run's notifications: {e}")),
        }
        self.task.abort();
    }
}

/// Who holds a lease: unique per process.
pub fn holder(role: &str) -> String {
    format!(
        "{role}:{}:{}:{}",
        crate::controller::orphans::hostname(),
        std::process::id(),
        polyaxon_server::store::new_uuid()
    )
}
