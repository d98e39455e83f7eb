//! Delivering a store's outbox from a CLI process that uses the embedded store: a run's
//! supervisor and an agent deliver the notifications and hooks of the runs they end (and any
//! that a process that died left pending); a supervisor waits for its own before it exits.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use polyaxon_server::App;
use polyaxon_server::api::{ExecutorKind, RunMeta};
use polyaxon_server::notify::{HookRunner, Worker};
use polyaxon_server::store::RunRow;
use serde_json::{Map, Value as J, json};

use crate::client::RunRef;
use crate::printer::Printer;
use crate::settings::Settings;

/// The longest a supervisor waits for its runs' deliveries after the run ended: their
/// retries (1 + 2 + 4 + 8 s by default) and timeouts fit.
const DRAIN: Duration = Duration::from_secs(120);

/// A worker delivering in the background.
pub struct Delivery {
    worker: Worker,
    task: tokio::task::JoinHandle<()>,
    /// How long [`Delivery::finish`] waits.
    drain: Duration,
}

impl Delivery {
    /// Starts delivering (`role` names this process in the leases it holds); hooks that run a
    /// component are created and started with `settings`.
    pub fn start(app: &App, role: &str, settings: &Settings) -> Delivery {
        let runner = Arc::new(Hooks {
            settings: settings.clone(),
            app: app.clone(),
            launch: role != "agent",
        });
        let worker = Worker::new(app.store.clone(), app.config.notify.clone(), holder(role))
            .with_hooks(runner);
        app.store
            .track_fired
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let task = worker.clone().spawn();
        // A command (one that ended orphaned runs) waits less than a run's supervisor.
        let drain = if role == "cli" {
            Duration::from_secs(15)
        } else {
            DRAIN
        };
        Delivery {
            worker,
            task,
            drain,
        }
    }

    /// Waits for the deliveries of the runs this process ended, then stops delivering.
    pub async fn finish(self, printer: &Printer) {
        match self.worker.drain_fired(self.drain).await {
            Ok(0) => {}
            Ok(n) => printer.warn(&format!(
                "{n} notification(s) of this run are still to be delivered; the next polyaxon process that delivers (a run, an agent, a server on this store) sends them"
            )),
            Err(e) => printer.warn(&format!("the run's notifications: {e}")),
        }
        self.task.abort();
        // Deliveries already sent wait for their replies to be recorded (else they would be
        // sent again once their lease lapses).
        self.worker.settle(Duration::from_secs(75)).await;
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

/// Runs the hooks that name a component: the hub component with the hook's params (and those
/// of upstream's default context it declares as inputs), created as a run of the source's
/// project (`meta_info.hook` links it to its source) and started on the source's executor.
pub struct Hooks {
    pub settings: Settings,
    pub app: App,
    /// Start each hook's run here (a supervisor); else it is queued for an agent.
    pub launch: bool,
}

impl HookRunner for Hooks {
    fn run<'a>(
        &'a self,
        source: &'a RunRow,
        hook: &'a Map<String, J>,
        params: Map<String, J>,
        delivery: &'a str,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            // Made by an earlier try (its process died before noting it): that run, started
            // if it had not been.
            if let Some(made) = self
                .app
                .store
                .hook_run_of(source.project_id, delivery)
                .await
                .map_err(|e| e.to_string())?
            {
                if self.launch && made.status().is_not_started() {
                    let r = RunRef {
                        owner: source.owner.clone(),
                        project: source.project.clone(),
                        uuid: made.uuid.clone(),
                    };
                    let kind = made.meta().executor_kind.unwrap_or(ExecutorKind::Process);
                    crate::controller::launch::spawn(&self.settings, &r, kind)
                        .map_err(|e| format!("starting the hook's run `{}`: {e:#}", made.uuid))?;
                }
                return Ok(made.uuid);
            }
            let hub = hook
                .get("hubRef")
                .and_then(J::as_str)
                .ok_or("a hook needs a `hubRef`")?;
            // Which params the component takes: the hook's own, and the defaults it declares.
            let probe = json!({"version": 1.1, "kind": "operation", "hubRef": hub});
            let opts = polyaxonfile::Options {
                lint: true,
                hub_dirs: self.settings.hub_dirs(),
                preset_dirs: self.settings.preset_dirs(),
                url_fetcher: Some(crate::urlref::fetcher(&self.settings.home)),
                ..Default::default()
            };
            let mut session = polyaxonfile::Session::new();
            let declared: Vec<String> =
                match polyaxonfile::check_text(&mut session, "the hook", &probe.to_string(), &opts)
                {
                    Ok(r) => r
                        .prepared
                        .component
                        .inputs
                        .iter()
                        .flatten()
                        .map(|i| i.name.clone())
                        .collect(),
                    Err(d) => {
                        return Err(format!(
                            "the hook's component `{hub}` cannot be read:\n{}",
                            d.render(&session.sources, false)
                        ));
                    }
                };
            let own: Vec<&String> = hook
                .get("params")
                .and_then(J::as_object)
                .map(|p| p.keys().collect())
                .unwrap_or_default();
            let values: Map<String, J> = params
                .into_iter()
                .filter(|(k, _)| own.contains(&k) || declared.contains(k))
                .map(|(k, v)| (k, json!({"value": v})))
                .collect();
            let mut op =
                json!({"version": 1.1, "kind": "operation", "hubRef": hub, "params": values});
            // The hook's presets patch its component as an operation's do.
            if let Some(p) = hook.get("presets").filter(|p| p.is_array()) {
                op["presets"] = p.clone();
            }
            let report = crate::controller::plan::compile(
                &self.settings,
                "the hook",
                &format!("the hook `{hub}` cannot run"),
                &op.to_string(),
                polyaxonfile::placeholder_globals(None),
                Default::default(),
            )
            .map_err(|e| crate::error::said(&e))?;
            let content = crate::controller::plan::operation_json(&report.prepared).to_string();
            let kind = source.meta().executor_kind.unwrap_or(ExecutorKind::Process);
            let base = hub.split([':', '/']).next().unwrap_or("hook");
            let meta = RunMeta {
                executor_kind: Some(kind),
                ..Default::default()
            };
            let mut meta = meta.to_map();
            meta.insert("is_hook".into(), J::Bool(true));
            meta.insert(
                "hook".into(),
                json!({"source": source.uuid, "hub_ref": hub, "trigger": hook.get("trigger"), "delivery": delivery}),
            );
            let app = &self.app;
            let run_kind = report
                .prepared
                .component
                .run
                .as_ref()
                .map(|r| r.kind().to_string());
            let user = match &source.username {
                Some(u) => app.store.user_by_name(u).await.map_err(|e| e.to_string())?,
                None => return Err("the run has no user to run its hook as".into()),
            };
            let new = polyaxon_server::store::NewRun {
                name: Some(format!(
                    "{}-{base}",
                    source.name.as_deref().unwrap_or("run")
                )),
                kind: run_kind.clone(),
                runtime: run_kind,
                inputs: report
                    .compiled
                    .iter()
                    .flat_map(|c| c.values.iter())
                    .filter(|v| !v.is_output && !v.value.is_null())
                    .map(|v| (v.name.clone(), v.value.clone()))
                    .collect(),
                content: Some(content),
                meta_info: meta,
                managed_by: Some("cli".into()),
                is_managed: true,
                queue: Some(
                    hook.get("queue")
                        .and_then(J::as_str)
                        .unwrap_or(polyaxon_server::store::queues::DEFAULT_QUEUE)
                        .to_string(),
                ),
                // Started here, or left queued for the agents.
                agent: self.launch.then(crate::controller::local_holder),
                ..Default::default()
            };
            let created = app
                .store
                .create_run(source.project_id, &user, new)
                .await
                .map_err(|e| format!("creating the hook's run: {e}"))?;
            let uuid = created.uuid.clone();
            if self.launch {
                let r = RunRef {
                    owner: source.owner.clone(),
                    project: source.project.clone(),
                    uuid: uuid.clone(),
                };
                crate::controller::launch::spawn(&self.settings, &r, kind)
                    .map_err(|e| format!("starting the hook's run `{uuid}`: {e:#}"))?;
            }
            Ok(uuid)
        })
    }
}
