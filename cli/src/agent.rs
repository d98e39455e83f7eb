//! The agent (`polyaxon agent start`): claims queued runs from a server (or the embedded
//! store) and drives each through the run controller on its executor, many at once.
//!
//! It registers, then loops: claim up to its free capacity with a long poll (the server
//! answers as soon as a run is queued), start a controller task per run. A heartbeat renews
//! its claims (leases) every quarter lease; a run the server says it no longer holds (its
//! lease lapsed and another agent took it) is stopped here. SIGTERM or Ctrl-C drains: no more
//! claims; running runs finish (or, with `--handoff`, are stopped and queued again for
//! another agent); claimed runs that had not started go back to their queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use polyaxon_server::api::{ExecutorKind, V1Agent, V1AgentHeartbeat, V1ClaimRequest, V1Run};
use tokio::sync::{Mutex, watch};

use crate::client::{Client, RunRef};
use crate::controller;
use crate::error::UserError;
use crate::printer::Printer;
use crate::settings::Settings;

/// How an agent runs.
#[derive(Clone, Debug)]
pub struct Options {
    pub name: String,
    pub queues: Vec<String>,
    pub executor: ExecutorKind,
    /// Runs driven at once.
    pub capacity: usize,
    /// On SIGTERM, stop running runs and queue them again instead of letting them finish.
    pub handoff: bool,
    /// How long a claim lasts unless renewed.
    pub lease: Duration,
    /// How long one claim call waits for a run (the long poll).
    pub poll: Duration,
}

impl Options {
    pub fn default_name() -> String {
        format!("{}-{}", controller::orphans::hostname(), std::process::id())
    }
}

/// What the agent drives now, by uuid.
type Running = Arc<Mutex<HashMap<String, (RunRef, tokio::task::JoinHandle<()>)>>>;

/// Serves until SIGTERM or Ctrl-C, then drains. `settings.agent` is set to the agent's name.
pub async fn serve(
    mut settings: Settings,
    printer: Printer,
    client: Arc<Client>,
    opts: Options,
) -> Result<()> {
    settings.agent = Some(opts.name.clone());
    let settings = Arc::new(settings);
    // On the embedded store the agent delivers notifications too (a server does otherwise).
    let outbox = client
        .embedded_app()
        .map(|app| crate::outbox::Delivery::start(app, "agent", &settings));
    let instance = format!(
        "{}-{}-{}",
        controller::orphans::hostname(),
        std::process::id(),
        polyaxon_server::store::now_micros()
    );
    let registered = client
        .register_agent(&V1Agent {
            name: opts.name.clone(),
            instance: instance.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            executor: opts.executor.as_str().to_string(),
            queues: opts.queues.clone(),
            capacity: opts.capacity as i64,
            host: Some(controller::orphans::hostname()),
            ..Default::default()
        })
        .await
        .map_err(|e| UserError::new(format!("the agent could not register: {e}")))?;
    printer.success(&format!(
        "agent `{}` serving {} on the {} executor, {} at once, against {}",
        registered.name,
        opts.queues
            .iter()
            .map(|q| format!("`{q}`"))
            .collect::<Vec<_>>()
            .join(", "),
        opts.executor,
        opts.capacity,
        client.describe()
    ));
    let running: Running = Arc::default();
    let (ended_tx, mut ended_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (state_tx, state_rx) = watch::channel("running");
    let (orphaned_tx, mut orphaned_rx) = tokio::sync::mpsc::unbounded_channel::<RunRef>();
    let heartbeat = tokio::spawn(heartbeats(
        client.clone(),
        printer,
        opts.clone(),
        instance.clone(),
        running.clone(),
        state_rx,
        orphaned_tx,
    ));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut backoff = Duration::from_millis(250);
    loop {
        while let Ok(uuid) = ended_rx.try_recv() {
            running.lock().await.remove(&uuid);
        }
        // Held by this agent and driven by nothing: a claim whose answer was lost (started
        // now), or a run whose controller here ended before the run did (a failure it could
        // not record): adopted, so that it is followed to its end or failed with the reason.
        while let Ok(r) = orphaned_rx.try_recv() {
            if running.lock().await.contains_key(&r.uuid) {
                continue;
            }
            let run = match client.get_run(&r).await {
                Ok(run) if run.is_done() => continue,
                Ok(run) => run,
                // Asked again at the next heartbeat.
                Err(_) => continue,
            };
            let started = !run.status.unwrap_or_default().is_startable();
            if started && opts.executor != ExecutorKind::Kubernetes {
                // Its job, here, cannot be followed again: ended, and the run failed.
                printer.warn(&format!(
                    "run {}: its controller here ended before the run did; ending its job and failing it",
                    r.uuid
                ));
                controller::orphans::end_abandoned(&client, &r, &run).await;
                continue;
            }
            let mut map = running.lock().await;
            if map.contains_key(&r.uuid) {
                continue;
            }
            printer.warn(&if started {
                format!(
                    "run {}: its controller here ended before the run did: following its job again",
                    r.uuid
                )
            } else {
                format!(
                    "run {} was claimed for this agent but the answer was lost: starting it now",
                    r.uuid
                )
            });
            let task = drive(
                settings.clone(),
                printer,
                client.clone(),
                r.clone(),
                opts.executor,
                started,
                ended_tx.clone(),
            );
            map.insert(r.uuid.clone(), (r, task));
        }
        let free = opts.capacity.saturating_sub(running.lock().await.len());
        if free == 0 {
            tokio::select! {
                Some(uuid) = ended_rx.recv() => { running.lock().await.remove(&uuid); continue; }
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
        }
        let ask = V1ClaimRequest {
            instance: instance.clone(),
            queues: opts.queues.clone(),
            max: free as i64,
            lease_seconds: opts.lease.as_secs_f64(),
            wait_ms: Some(opts.poll.as_millis() as u64),
        };
        let claim = client.claim_runs(&opts.name, &ask);
        // A signal does not drop a claim in flight (its runs would wait out their lease):
        // the claim ends within the poll, then the agent drains and hands back what it got.
        tokio::pin!(claim);
        let mut stopping = false;
        let got = loop {
            tokio::select! {
                got = &mut claim => break got,
                _ = sigterm.recv(), if !stopping => stopping = true,
                _ = sigint.recv(), if !stopping => stopping = true,
            }
        };
        match got {
            Ok(c) => {
                backoff = Duration::from_millis(250);
                for run in c.runs {
                    let r = RunRef {
                        owner: run.owner,
                        project: run.project,
                        uuid: run.uuid,
                    };
                    if stopping {
                        hand_back(&client, printer, &opts.name, &r, "the agent is stopping").await;
                        continue;
                    }
                    printer.note(&format!(
                        "{} run {} of `{}/{}`",
                        if run.adopt { "adopting" } else { "starting" },
                        r.uuid,
                        r.owner,
                        r.project
                    ));
                    let task = drive(
                        settings.clone(),
                        printer,
                        client.clone(),
                        r.clone(),
                        opts.executor,
                        run.adopt,
                        ended_tx.clone(),
                    );
                    running.lock().await.insert(r.uuid.clone(), (r, task));
                }
            }
            Err(e) if e.status() == Some(http::StatusCode::CONFLICT) => {
                let _ = state_tx.send("stopped");
                heartbeat.abort();
                return Err(UserError::new(format!(
                    "agent `{}` lost its registration: {e}",
                    opts.name
                ))
                .into());
            }
            Err(e) => {
                printer.warn(&format!(
                    "claiming runs: {e}; trying again in {:.1} s",
                    backoff.as_secs_f64()
                ));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = sigterm.recv() => stopping = true,
                    _ = sigint.recv() => stopping = true,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
        if stopping {
            break;
        }
    }
    // Draining.
    let _ = state_tx.send("draining");
    let n = running.lock().await.len();
    printer.note(&format!(
        "agent `{}` draining: {n} run{} {}",
        opts.name,
        if n == 1 { "" } else { "s" },
        if opts.handoff {
            "handed back to the queue"
        } else {
            "finishing (send SIGTERM again, or Ctrl-C, to hand them back)"
        }
    ));
    let mut handoff = opts.handoff;
    loop {
        if handoff {
            let refs: Vec<RunRef> = running
                .lock()
                .await
                .values()
                .map(|(r, _)| r.clone())
                .collect();
            for r in &refs {
                let _ = client.stop_run(r).await;
            }
        }
        if running.lock().await.is_empty() {
            break;
        }
        tokio::select! {
            Some(uuid) = ended_rx.recv() => {
                let gone = running.lock().await.remove(&uuid);
                if let (true, Some((r, _))) = (handoff, gone) {
                    // Stopped for the handoff: resumed from its queue by another agent.
                    let _ = client.resume_run(&r, &V1Run::default()).await;
                }
            }
            _ = sigterm.recv(), if !handoff => handoff = true,
            _ = sigint.recv(), if !handoff => handoff = true,
        }
    }
    let _ = state_tx.send("stopped");
    heartbeat.abort();
    if let Some(o) = outbox {
        o.finish(&printer).await;
    }
    let _ = client.agent_stopped(&opts.name).await;
    printer.success(&format!("agent `{}` stopped", opts.name));
    Ok(())
}

/// One run's controller, as a task of the agent.
fn drive(
    settings: Arc<Settings>,
    printer: Printer,
    client: Arc<Client>,
    r: RunRef,
    kind: ExecutorKind,
    adopt: bool,
    ended: tokio::sync::mpsc::UnboundedSender<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let uuid = r.uuid.clone();
        let run: std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<controller::Outcome>> + Send>,
        > = Box::pin({
            let client = client.clone();
            let r = r.clone();
            async move {
                if adopt {
                    controller::adopt(&settings, printer, client, &r, kind).await
                } else {
                    controller::execute_shared(&settings, printer, client, &r, kind, Vec::new())
                        .await
                }
            }
        });
        match run.await {
            Ok(o) => printer.note(&format!("run {uuid} ended: {}", describe(&o))),
            Err(e) => printer.warn(&format!("run {uuid}: {e:#}")),
        }
        let _ = ended.send(uuid);
    })
}

fn describe(o: &controller::Outcome) -> String {
    match o {
        controller::Outcome::Succeeded => "succeeded".into(),
        controller::Outcome::Failed(m) => format!("failed ({m})"),
        controller::Outcome::Stopped(m) => format!("stopped ({m})"),
    }
}

/// The heartbeat: renews the claims, and stops here what the server says is no longer ours.
async fn heartbeats(
    client: Arc<Client>,
    printer: Printer,
    opts: Options,
    instance: String,
    running: Running,
    state: watch::Receiver<&'static str>,
    orphaned: tokio::sync::mpsc::UnboundedSender<RunRef>,
) {
    let every = opts.lease / 4;
    // Held here but driven by nothing, at the last heartbeat: a claim whose answer was lost
    // (a timeout while the server, slow, claimed for us).
    let mut unowned: std::collections::HashSet<String> = Default::default();
    loop {
        tokio::time::sleep(every).await;
        // Runs of this machine whose supervisor died (another agent killed outright, a
        // `polyaxon run` whose supervisor was): their jobs ended, their runs failed.
        controller::orphans::reap_host(&client).await;
        let n = running.lock().await.len() as i64;
        let beat = V1AgentHeartbeat {
            instance: instance.clone(),
            running: n,
            state: state.borrow().to_string(),
            lease_seconds: opts.lease.as_secs_f64(),
        };
        match client.agent_heartbeat(&opts.name, &beat).await {
            Ok(held) => {
                let mut map = running.lock().await;
                let held_uuids: Vec<&String> = held.runs.iter().map(|r| &r.uuid).collect();
                let lost: Vec<String> = map
                    .keys()
                    .filter(|u| !held_uuids.contains(u))
                    .cloned()
                    .collect();
                // Twice in a row held and not driven: drive it (an answer in flight would
                // have arrived within a heartbeat).
                let mut still = std::collections::HashSet::new();
                for c in &held.runs {
                    if map.contains_key(&c.uuid) {
                        continue;
                    }
                    if unowned.contains(&c.uuid) {
                        let _ = orphaned.send(RunRef {
                            owner: c.owner.clone(),
                            project: c.project.clone(),
                            uuid: c.uuid.clone(),
                        });
                    } else {
                        still.insert(c.uuid.clone());
                    }
                }
                unowned = still;
                for u in lost {
                    // Ended meanwhile (its claim went with its end), or taken from us.
                    let Some((r, t)) = map.get(&u) else { continue };
                    if t.is_finished() {
                        continue;
                    }
                    if let Ok(run) = client.get_run(r).await
                        && !run.is_done()
                    {
                        printer.warn(&format!(
                            "run {u}: this agent's claim on it lapsed and it went on elsewhere; letting it go here"
                        ));
                        t.abort();
                        map.remove(&u);
                    }
                }
            }
            Err(e) => printer.warn(&format!(
                "heartbeat: {e} (claims lapse after {} s without one)",
                opts.lease.as_secs()
            )),
        }
    }
}

/// A claimed run that was not started goes back to its queue.
async fn hand_back(client: &Client, printer: Printer, agent: &str, r: &RunRef, why: &str) {
    if let Err(e) = client.release_run(agent, r, why).await {
        printer.warn(&format!(
            "handing run {} back to its queue: {e} (it goes back when its claim lapses)",
            r.uuid
        ));
    }
}
