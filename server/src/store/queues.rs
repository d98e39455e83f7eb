//! Queues, agents and the claims agents hold on runs.
//!
//! A top-level managed run waits in its queue (`queued`, no `agent`) until an agent claims it:
//! one `UPDATE … WHERE id IN (SELECT … FOR NO KEY UPDATE SKIP LOCKED) RETURNING` on PostgreSQL (under
//! SQLite's write lock there), so a run is never handed to two agents. A queue with a
//! `concurrency` is locked while it is claimed from, so that its running runs never exceed it.
//! Claims are leases: the agent renews them with its heartbeat; a lease that lapses hands its
//! run on ([`Store::expire_leases`]): back to the queue if it had not started, to be adopted
//! if it runs on a cluster, failed with the reason otherwise.

use serde_json::{Map, Value as J};
use sqlx::FromRow;

use super::pql::Params;
use super::{Count, Dialect, Result, Store, StoreError, Tx, now_micros};
use crate::api::{ExecutorKind, RunMeta, RunStatus};

/// The queue every run goes to unless its spec, its project or the call names another.
pub const DEFAULT_QUEUE: &str = "default";

/// The channel PostgreSQL notifies when a run is queued.
pub const QUEUED_CHANNEL: &str = "polyaxon_queued";

#[derive(Clone, Debug, FromRow)]
pub struct QueueRow {
    pub name: String,
    pub concurrency: Option<i64>,
    pub priority: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A queue with what is in it now.
#[derive(Clone, Debug)]
pub struct QueueState {
    pub queue: QueueRow,
    /// Waiting for an agent.
    pub queued: i64,
    /// Claimed and not ended.
    pub running: i64,
}

#[derive(Clone, Debug, FromRow)]
pub struct AgentRow {
    pub name: String,
    pub instance: String,
    pub version: String,
    pub executor: String,
    pub queues: String,
    pub capacity: i64,
    pub running: i64,
    pub host: Option<String>,
    pub state: String,
    pub started_at: i64,
    pub last_seen: i64,
}

impl AgentRow {
    pub fn queues(&self) -> Vec<String> {
        serde_json::from_str(&self.queues).unwrap_or_default()
    }
}

/// A run an agent claimed.
#[derive(Clone, Debug, FromRow)]
pub struct Claimed {
    pub uuid: String,
    pub owner: String,
    pub project: String,
    /// 1 when the run was already running (a cluster job whose agent was lost): the agent
    /// follows it instead of starting it.
    pub adopt: i64,
}

/// What became of a run whose lease lapsed.
#[derive(Clone, Debug, PartialEq)]
pub enum Lapsed {
    /// It had not started: back in its queue.
    Requeued(String),
    /// It runs on a cluster: the next agent of its queue adopts it.
    Adoptable(String),
    /// It ran on the lost agent's machine: failed with the reason.
    Failed(String),
}

/// How long after its last heartbeat an agent counts as gone.
pub const AGENT_GONE_MICROS: i64 = 30_000_000;

/// Statuses of a run that started (its job may be running somewhere).
const STARTED: &[RunStatus] = &[
    RunStatus::Starting,
    RunStatus::Running,
    RunStatus::Processing,
    RunStatus::Stopping,
    RunStatus::Warning,
    RunStatus::Unknown,
    RunStatus::Retrying,
];

impl Tx<'_> {
    /// Fails unless queue `name` exists (400 naming the known ones).
    pub(super) async fn known_queue(&mut self, name: &str) -> Result<()> {
        let found: Option<Count> = self
            .fetch_optional(
                "SELECT COUNT(*) AS n FROM queues WHERE name = $1",
                vec![name.into()],
            )
            .await?;
        if found.is_some_and(|c| c.n > 0) {
            return Ok(());
        }
        #[derive(FromRow)]
        struct N {
            name: String,
        }
        let all: Vec<N> = self
            .fetch_all("SELECT name FROM queues ORDER BY name", vec![])
            .await?;
        let names: Vec<String> = all.into_iter().map(|n| format!("`{}`", n.name)).collect();
        Err(StoreError::NotFound(format!(
            "unknown queue `{name}`: the queues are {}; an administrator creates one with `polyaxon queue create {name}`",
            names.join(", ")
        )))
    }

    /// Tells other servers' waiting agents that a run was queued (PostgreSQL; sent when the
    /// transaction commits).
    pub(super) async fn notify_queued(&mut self) -> Result<()> {
        if self.dialect() == Dialect::Postgres {
            self.execute(&format!("NOTIFY {QUEUED_CHANNEL}"), vec![])
                .await?;
        }
        Ok(())
    }
}

impl Store {
    pub async fn queues(&self) -> Result<Vec<QueueState>> {
        let queues: Vec<QueueRow> = self
            .fetch_all(
                "SELECT name, concurrency, priority, created_at, updated_at FROM queues ORDER BY priority DESC, name",
                vec![],
            )
            .await?;
        #[derive(FromRow)]
        struct Counts {
            queue: Option<String>,
            queued: i64,
            running: i64,
        }
        let counts: Vec<Counts> = self
            .fetch_all(
                "SELECT queue, SUM(CASE WHEN agent IS NULL THEN 1 ELSE 0 END) AS queued, SUM(CASE WHEN agent IS NULL THEN 0 ELSE 1 END) AS running \
                 FROM runs WHERE pipeline_uuid IS NULL AND ((status = 'queued' AND agent IS NULL) OR agent IS NOT NULL) GROUP BY queue",
                vec![],
            )
            .await?;
        Ok(queues
            .into_iter()
            .map(|q| {
                let c = counts.iter().find(|c| c.queue.as_deref() == Some(&q.name));
                QueueState {
                    queued: c.map_or(0, |c| c.queued),
                    running: c.map_or(0, |c| c.running),
                    queue: q,
                }
            })
            .collect())
    }

    pub async fn queue(&self, name: &str) -> Result<QueueState> {
        self.queues()
            .await?
            .into_iter()
            .find(|q| q.queue.name == name)
            .ok_or_else(|| StoreError::NotFound(format!("queue `{name}`")))
    }

    /// Creates or changes a queue.
    pub async fn put_queue(
        &self,
        name: &str,
        concurrency: Option<i64>,
        priority: i64,
    ) -> Result<QueueState> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(StoreError::Invalid(format!(
                "`{name}` is not a queue name: use letters, digits, `-`, `_` and `.`"
            )));
        }
        if concurrency.is_some_and(|c| c < 1) {
            return Err(StoreError::Invalid(
                "a queue's concurrency is at least 1 (leave it out for no limit)".into(),
            ));
        }
        let now = now_micros();
        self.execute(
            "INSERT INTO queues (name, concurrency, priority, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (name) DO UPDATE SET concurrency = $2, priority = $3, updated_at = $4",
            vec![name.into(), concurrency.into(), priority.into(), now.into()],
        )
        .await?;
        // A larger concurrency may let waiting runs go.
        self.queued.notify_waiters();
        self.queue(name).await
    }

    /// Deletes a queue that holds no waiting or running run (never `default`).
    pub async fn delete_queue(&self, name: &str) -> Result<()> {
        if name == DEFAULT_QUEUE {
            return Err(StoreError::Conflict(
                "the `default` queue cannot be deleted".into(),
            ));
        }
        let q = self.queue(name).await?;
        if q.queued + q.running > 0 {
            return Err(StoreError::Conflict(format!(
                "queue `{name}` holds {} waiting and {} running runs: stop them or let them end first",
                q.queued, q.running
            )));
        }
        self.execute("DELETE FROM queues WHERE name = $1", vec![name.into()])
            .await?;
        Ok(())
    }

    /// Records an agent starting (or starting again). Refused while another instance of the
    /// same name is alive.
    pub async fn register_agent(&self, a: &AgentRow) -> Result<AgentRow> {
        let now = now_micros();
        let mut tx = self.begin().await?;
        let old: Option<AgentRow> = tx
            .fetch_optional(
                "SELECT name, instance, version, executor, queues, capacity, running, host, state, started_at, last_seen FROM agents WHERE name = $1",
                vec![a.name.clone().into()],
            )
            .await?;
        if let Some(o) = &old
            && o.instance != a.instance
            && o.state != "stopped"
            && now - o.last_seen < AGENT_GONE_MICROS
        {
            return Err(StoreError::Conflict(format!(
                "an agent named `{}` is running on {} (last seen {} s ago): give this one another `--name`, or stop that one",
                a.name,
                o.host.as_deref().unwrap_or("another machine"),
                (now - o.last_seen) / 1_000_000
            )));
        }
        for q in a.queues() {
            tx.known_queue(&q).await?;
        }
        tx.execute(
            "INSERT INTO agents (name, instance, version, executor, queues, capacity, running, host, state, started_at, last_seen) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, 'running', $8, $8) \
             ON CONFLICT (name) DO UPDATE SET instance = $2, version = $3, executor = $4, queues = $5, capacity = $6, running = 0, \
             host = $7, state = 'running', started_at = $8, last_seen = $8",
            vec![
                a.name.clone().into(),
                a.instance.clone().into(),
                a.version.clone().into(),
                a.executor.clone().into(),
                a.queues.clone().into(),
                a.capacity.into(),
                a.host.clone().into(),
                now.into(),
            ],
        )
        .await?;
        tx.commit().await?;
        self.agent(&a.name).await
    }

    pub async fn agent(&self, name: &str) -> Result<AgentRow> {
        self.fetch_optional(
            "SELECT name, instance, version, executor, queues, capacity, running, host, state, started_at, last_seen FROM agents WHERE name = $1",
            vec![name.into()],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("agent `{name}`")))
    }

    pub async fn agents(&self) -> Result<Vec<AgentRow>> {
        self.fetch_all(
            "SELECT name, instance, version, executor, queues, capacity, running, host, state, started_at, last_seen FROM agents ORDER BY name",
            vec![],
        )
        .await
    }

    /// The agents alive now (seen lately, not stopped) that serve `queue`.
    pub async fn agents_serving(&self, queue: &str) -> Result<Vec<AgentRow>> {
        let now = now_micros();
        Ok(self
            .agents()
            .await?
            .into_iter()
            .filter(|a| {
                a.state == "running"
                    && now - a.last_seen < AGENT_GONE_MICROS
                    && a.queues().iter().any(|q| q == queue)
            })
            .collect())
    }

    /// An agent's heartbeat: it is alive, runs `running` runs, and is `state` (`running`,
    /// `draining`, `stopped`); its leases are renewed until `lease_until`. Returns the runs it
    /// holds (one it thinks it holds and is not here was taken from it: it must let it go).
    /// A conflict when another instance took the name over.
    pub async fn heartbeat(
        &self,
        name: &str,
        instance: &str,
        running: i64,
        state: &str,
        lease_until: i64,
    ) -> Result<Vec<Claimed>> {
        let now = now_micros();
        let n = self
            .execute(
                "UPDATE agents SET last_seen = $1, running = $2, state = $3 WHERE name = $4 AND instance = $5",
                vec![
                    now.into(),
                    running.into(),
                    state.into(),
                    name.into(),
                    instance.into(),
                ],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "agent `{name}` is not registered as this instance (another agent took the name, or it was never registered): register again"
            )));
        }
        self.execute(
            "UPDATE runs SET lease_until = $1 WHERE agent = $2 AND lease_until IS NOT NULL",
            vec![lease_until.into(), name.into()],
        )
        .await?;
        self.fetch_all(
            "SELECT r.uuid, p.owner AS owner, p.name AS project, 0 AS adopt FROM runs r \
             JOIN projects p ON p.id = r.project_id WHERE r.agent = $1",
            vec![name.into()],
        )
        .await
    }

    /// Claims up to `max` runs of `queues` for agent `agent` (queues by their priority, then
    /// runs by theirs, oldest first), leased until `lease_until`. A queue with a concurrency
    /// gives no more than its free slots. Runs whose agent was lost and that run on a cluster
    /// are claimed first, to be adopted.
    pub async fn claim(
        &self,
        agent: &str,
        queues: &[String],
        max: i64,
        lease_until: i64,
    ) -> Result<Vec<Claimed>> {
        if max <= 0 || queues.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_micros();
        let mut tx = self.begin().await?;
        let pg = tx.dialect() == Dialect::Postgres;
        // The queues in their order, locked when they limit concurrency (claims from one
        // such queue take turns; others do not wait).
        let mut p = Params::new(tx.dialect());
        let names: Vec<String> = queues.iter().map(|q| p.push(q.as_str())).collect();
        let rows: Vec<QueueRow> = tx
            .fetch_all(
                &format!(
                    "SELECT name, concurrency, priority, created_at, updated_at FROM queues WHERE name IN ({}) ORDER BY priority DESC, name",
                    names.join(", ")
                ),
                p.args,
            )
            .await?;
        let mut ids: Vec<i64> = Vec::new();
        let mut left = max;
        for q in rows {
            if left <= 0 {
                break;
            }
            let mut take = left;
            if let Some(c) = q.concurrency {
                if pg {
                    tx.execute(
                        "SELECT name FROM queues WHERE name = $1 FOR UPDATE",
                        vec![q.name.clone().into()],
                    )
                    .await?;
                }
                let held: Option<Count> = tx
                    .fetch_optional(
                        "SELECT COUNT(*) AS n FROM runs WHERE queue = $1 AND agent IS NOT NULL AND pipeline_uuid IS NULL",
                        vec![q.name.clone().into()],
                    )
                    .await?;
                take = take.min(c - held.map_or(0, |h| h.n));
            }
            if take <= 0 {
                continue;
            }
            let skip = if pg {
                " FOR NO KEY UPDATE SKIP LOCKED"
            } else {
                ""
            };
            #[derive(FromRow)]
            struct Id {
                id: i64,
            }
            let mut p = Params::new(tx.dialect());
            let (a, until, at, queue, limit) = (
                p.push(agent),
                p.push(lease_until),
                p.push(now),
                p.push(q.name.as_str()),
                p.push(take),
            );
            let mut started = Vec::new();
            for s in STARTED {
                started.push(p.push(s.as_str()));
            }
            let started = started.join(", ");
            // The adoptable first (a lost agent's cluster jobs), then the waiting.
            let adopted: Vec<Id> = tx
                .fetch_all(
                    &format!(
                        "UPDATE runs SET agent = {a}, lease_until = {until}, updated_at = {at} WHERE id IN (\
                         SELECT id FROM runs WHERE queue = {queue} AND agent IS NULL AND pipeline_uuid IS NULL AND lease_until = -1 \
                         AND status IN ({started}) ORDER BY priority DESC, created_at, id LIMIT {limit}{skip}) RETURNING id"
                    ),
                    p.args.clone(),
                )
                .await?;
            let got: Vec<Id> = if (adopted.len() as i64) < take {
                let mut p2 = Params::new(tx.dialect());
                let (a, until, at, queue, limit) = (
                    p2.push(agent),
                    p2.push(lease_until),
                    p2.push(now),
                    p2.push(q.name.as_str()),
                    p2.push(take - adopted.len() as i64),
                );
                tx.fetch_all(
                    &format!(
                        "UPDATE runs SET agent = {a}, lease_until = {until}, status = 'scheduled', updated_at = {at} WHERE id IN (\
                         SELECT id FROM runs WHERE queue = {queue} AND status = 'queued' AND agent IS NULL AND pipeline_uuid IS NULL \
                         ORDER BY priority DESC, created_at, id LIMIT {limit}{skip}) RETURNING id"
                    ),
                    p2.args,
                )
                .await?
            } else {
                Vec::new()
            };
            if !got.is_empty() {
                let mut p = Params::new(tx.dialect());
                let (msg, at) = (p.push(format!("claimed by agent `{agent}`")), p.push(now));
                let ph: Vec<String> = got.iter().map(|i| p.push(i.id)).collect();
                tx.execute(
                    &format!(
                        "INSERT INTO statuses (run_id, type, status, reason, message, created_at) \
                         SELECT id, 'scheduled', 'True', 'PolyaxonRunScheduled', {msg}, {at} FROM runs WHERE id IN ({})",
                        ph.join(", ")
                    ),
                    p.args,
                )
                .await?;
            }
            left -= (adopted.len() + got.len()) as i64;
            ids.extend(adopted.iter().map(|i| i.id));
            ids.extend(got.iter().map(|i| i.id));
        }
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let mut p = Params::new(tx.dialect());
        let ph: Vec<String> = ids.iter().map(|i| p.push(*i)).collect();
        let claimed: Vec<Claimed> = tx
            .fetch_all(
                &format!(
                    "SELECT r.uuid, p.owner AS owner, p.name AS project, \
                     CASE WHEN r.status = 'scheduled' THEN 0 ELSE 1 END AS adopt \
                     FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id IN ({}) ORDER BY r.priority DESC, r.created_at, r.id",
                    ph.join(", ")
                ),
                p.args,
            )
            .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Claims one run by uuid for `holder` (`polyaxon ops execute` of a queued run): a
    /// conflict naming the holder when someone else drives it.
    pub async fn claim_run(
        &self,
        uuid: &str,
        holder: &str,
        lease_until: Option<i64>,
    ) -> Result<()> {
        let n = self
            .execute(
                "UPDATE runs SET agent = $1, lease_until = $2 WHERE uuid = $3 AND (agent IS NULL OR agent = $1)",
                vec![holder.into(), lease_until.into(), uuid.into()],
            )
            .await?;
        if n == 1 {
            return Ok(());
        }
        let run = self.run_by_uuid(uuid).await?;
        Err(StoreError::Conflict(format!(
            "run `{uuid}` is driven by `{}`",
            run.agent.as_deref().unwrap_or("another process")
        )))
    }

    /// Puts a run in its queue for an agent (`why`: "approved", "resumed").
    pub async fn queue_run(&self, uuid: &str, why: &str) -> Result<()> {
        let run = self.run_by_uuid(uuid).await?;
        self.add_status(
            uuid,
            RunStatus::Queued,
            Some("PolyaxonRunQueued"),
            Some(&format!(
                "{why}: waiting for an agent on queue `{}`",
                run.queue.as_deref().unwrap_or(DEFAULT_QUEUE)
            )),
            None,
            false,
        )
        .await?;
        if self.dialect == Dialect::Postgres {
            self.execute(&format!("NOTIFY {QUEUED_CHANNEL}"), vec![])
                .await?;
        }
        self.queued.notify_waiters();
        Ok(())
    }

    /// Hands a claimed run that has not started back to its queue (an agent draining with
    /// `--handoff`, or one that cannot run it now).
    pub async fn release_run(&self, uuid: &str, agent: &str, why: &str) -> Result<bool> {
        let run = self.run_by_uuid(uuid).await?;
        if run.agent.as_deref() != Some(agent) || !run.status().is_not_started() {
            return Ok(false);
        }
        self.execute(
            "UPDATE runs SET agent = NULL, lease_until = NULL WHERE id = $1 AND agent = $2",
            vec![run.id.into(), agent.into()],
        )
        .await?;
        self.add_status(
            uuid,
            RunStatus::Queued,
            Some("PolyaxonRunReleased"),
            Some(why),
            None,
            true,
        )
        .await?;
        self.queued.notify_waiters();
        Ok(true)
    }

    /// Hands on the runs whose lease lapsed before `now` (their agent stopped renewing it):
    /// a run that had not started goes back to its queue; one running on a cluster waits for
    /// the next agent of its queue to adopt it; one that ran on the lost agent's machine fails
    /// with the reason, and so do its pipeline's children that started (those that had not
    /// are stopped).
    pub async fn expire_leases(&self, now: i64) -> Result<Vec<(String, Lapsed)>> {
        #[derive(FromRow)]
        struct L {
            id: i64,
            uuid: String,
            status: String,
            agent: Option<String>,
            meta_info: Option<String>,
        }
        let lapsed: Vec<L> = self
            .fetch_all(
                "SELECT id, uuid, status, agent, meta_info FROM runs WHERE agent IS NOT NULL AND lease_until IS NOT NULL AND lease_until >= 0 AND lease_until < $1",
                vec![now.into()],
            )
            .await?;
        let mut out = Vec::new();
        for l in lapsed {
            let agent = l.agent.unwrap_or_default();
            let status = RunStatus::parse(&l.status).unwrap_or(RunStatus::Unknown);
            let meta: Map<String, J> = l
                .meta_info
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or_default();
            let ex = RunMeta::from_map(&meta).executor.unwrap_or_default();
            let host = ex.host.clone().unwrap_or_else(|| "its machine".into());
            let outcome = if status.is_not_started() {
                Lapsed::Requeued(format!(
                    "agent `{agent}` stopped renewing its claim before starting the run: queued again"
                ))
            } else if ex.kind == Some(ExecutorKind::Kubernetes) {
                Lapsed::Adoptable(format!(
                    "agent `{agent}` stopped renewing its claim: the run's cluster job goes on, and the next agent of its queue follows it"
                ))
            } else {
                Lapsed::Failed(format!(
                    "agent `{agent}` stopped renewing its claim while the run was {status}: its {} job on {host} cannot be followed from elsewhere",
                    ex.kind.map(|k| k.as_str()).unwrap_or("local")
                ))
            };
            // Only if still lapsed (a late renewal keeps it). An adoptable run is marked by a
            // lease of -1 with no agent, which claims look for.
            let mark: Option<i64> = matches!(outcome, Lapsed::Adoptable(_)).then_some(-1);
            let n = self
                .execute(
                    "UPDATE runs SET agent = NULL, lease_until = $1 WHERE id = $2 AND agent = $3 AND lease_until < $4",
                    vec![mark.into(), l.id.into(), agent.clone().into(), now.into()],
                )
                .await?;
            if n == 0 {
                continue;
            }
            match &outcome {
                Lapsed::Requeued(m) => {
                    self.add_status(
                        &l.uuid,
                        RunStatus::Queued,
                        Some("AgentLost"),
                        Some(m),
                        None,
                        true,
                    )
                    .await?;
                    self.queued.notify_waiters();
                }
                Lapsed::Adoptable(m) => {
                    self.add_status(
                        &l.uuid,
                        RunStatus::Warning,
                        Some("AgentLost"),
                        Some(m),
                        None,
                        true,
                    )
                    .await?;
                    self.queued.notify_waiters();
                }
                Lapsed::Failed(m) => {
                    let to = if status == RunStatus::Stopping {
                        RunStatus::Stopped
                    } else {
                        RunStatus::Failed
                    };
                    self.add_status(&l.uuid, to, Some("AgentLost"), Some(m), None, true)
                        .await?;
                    self.end_children(&l.uuid, &agent).await?;
                }
            }
            out.push((l.uuid, outcome));
        }
        Ok(out)
    }

    /// The children (and theirs) of a pipeline whose agent was lost: the unstarted stopped,
    /// the started failed.
    async fn end_children(&self, pipeline: &str, agent: &str) -> Result<()> {
        let mut parents = vec![pipeline.to_string()];
        while let Some(parent) = parents.pop() {
            #[derive(FromRow)]
            struct C {
                uuid: String,
                status: String,
            }
            let children: Vec<C> = self
                .fetch_all(
                    "SELECT uuid, status FROM runs WHERE pipeline_uuid = $1",
                    vec![parent.clone().into()],
                )
                .await?;
            for c in children {
                let status = RunStatus::parse(&c.status).unwrap_or(RunStatus::Unknown);
                if status.is_done() {
                    continue;
                }
                let (to, msg) = if status.is_not_started() {
                    (
                        RunStatus::Stopped,
                        format!(
                            "the run controlling it ({parent}) was lost with agent `{agent}` before starting it"
                        ),
                    )
                } else {
                    (
                        RunStatus::Failed,
                        format!("the run controlling it ({parent}) was lost with agent `{agent}`"),
                    )
                };
                self.add_status(&c.uuid, to, Some("PipelineLost"), Some(&msg), None, true)
                    .await?;
                parents.push(c.uuid);
            }
        }
        Ok(())
    }
}

impl Store {
    /// Wakes this process's waiting claims whenever another process queues a run
    /// (PostgreSQL's `LISTEN`; reconnects after a lost connection). Returns at once on SQLite,
    /// where claims poll.
    pub async fn listen_queued(&self) {
        if self.dialect != Dialect::Postgres {
            return;
        }
        loop {
            match sqlx::postgres::PgListener::connect(&self.url).await {
                Ok(mut l) => {
                    if l.listen(QUEUED_CHANNEL).await.is_ok() {
                        while l.recv().await.is_ok() {
                            self.queued.notify_waiters();
                        }
                    }
                }
                Err(e) => tracing::warn!("cannot listen for queued runs: {e}"),
            }
            // Whatever was queued meanwhile is found by the waiting claims' own polls.
            self.queued.notify_waiters();
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}
