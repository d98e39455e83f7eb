//! Runs, their status history (append-only conditions with legal transitions only), clones
//! (restart, copy), and listing with the query language.

use serde_json::{Map, Value as J};
use sqlx::FromRow;

use super::pql::{self, Params, RUN_FIELDS};
use super::{Count, Flag, Result, Store, StoreError, User, new_uuid, now_micros};
use crate::api::RunStatus;

#[derive(Clone, Debug, FromRow)]
pub struct RunRow {
    pub id: i64,
    pub uuid: String,
    pub project_id: i64,
    pub owner: String,
    pub project: String,
    pub username: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: String,
    pub kind: Option<String>,
    pub runtime: Option<String>,
    pub status: String,
    pub content: Option<String>,
    pub raw_content: Option<String>,
    pub inputs: Option<String>,
    pub outputs: Option<String>,
    pub meta_info: Option<String>,
    pub managed_by: Option<String>,
    pub is_managed: Flag,
    pub is_approved: Flag,
    pub pending: Option<String>,
    pub original_uuid: Option<String>,
    pub cloning_kind: Option<String>,
    pub pipeline_uuid: Option<String>,
    pub pipeline_kind: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub wait_time: Option<f64>,
    pub duration: Option<f64>,
    /// The queue it waits in or ran from (top-level managed runs).
    pub queue: Option<String>,
    pub priority: i64,
    /// Who drives it while it is claimed: an agent's name, or a local supervisor's.
    pub agent: Option<String>,
    /// When the claim lapses unless renewed (microseconds); none for a local supervisor.
    pub lease_until: Option<i64>,
}

fn obj(s: &Option<String>) -> Map<String, J> {
    s.as_deref()
        .and_then(|t| serde_json::from_str::<Map<String, J>>(t).ok())
        .unwrap_or_default()
}

impl RunRow {
    pub fn tags(&self) -> Vec<String> {
        serde_json::from_str(&self.tags).unwrap_or_default()
    }
    pub fn inputs(&self) -> Map<String, J> {
        obj(&self.inputs)
    }
    pub fn outputs(&self) -> Map<String, J> {
        obj(&self.outputs)
    }
    pub fn meta_info(&self) -> Map<String, J> {
        obj(&self.meta_info)
    }
    /// The status (a row only ever holds one the store accepted).
    pub fn status(&self) -> RunStatus {
        RunStatus::parse(&self.status).unwrap_or(RunStatus::Unknown)
    }
    /// What the platform keeps in `meta_info`.
    pub fn meta(&self) -> crate::api::RunMeta {
        crate::api::RunMeta::from_map(&self.meta_info())
    }
}

/// A run some executor claimed, and where.
#[derive(Clone, Debug)]
pub struct ClaimedRun {
    pub uuid: String,
    pub owner: String,
    pub project: String,
    pub status: RunStatus,
    pub executor: crate::api::ExecutorMeta,
}

#[derive(Clone, Debug, FromRow)]
pub struct StatusRow {
    #[sqlx(rename = "type")]
    pub kind: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub meta_info: Option<String>,
    pub created_at: i64,
}

#[derive(Clone, Debug, Default)]
pub struct NewRun {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub kind: Option<String>,
    pub runtime: Option<String>,
    pub content: Option<String>,
    pub raw_content: Option<String>,
    pub inputs: Map<String, J>,
    pub outputs: Map<String, J>,
    pub meta_info: Map<String, J>,
    pub managed_by: Option<String>,
    pub is_managed: bool,
    pub pending: Option<String>,
    pub original: Option<(String, String)>,
    pub pipeline: Option<(String, String)>,
    /// Held until `approve` (upstream's `isApproved: false`).
    pub needs_approval: bool,
    /// The queue (top-level managed runs; the store checks it exists).
    pub queue: Option<String>,
    pub priority: i64,
    /// Who drives it from the start (a local supervisor, a controller): it is never queued
    /// for an agent.
    pub agent: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct RunPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub inputs: Option<Map<String, J>>,
    pub outputs: Option<Map<String, J>>,
    pub meta_info: Option<Map<String, J>>,
    pub content: Option<String>,
    pub merge: bool,
}

impl RunPatch {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.tags.is_none()
            && self.inputs.is_none()
            && self.outputs.is_none()
            && self.meta_info.is_none()
            && self.content.is_none()
    }
}

const SELECT: &str = "SELECT r.id, r.uuid, r.project_id, p.owner AS owner, p.name AS project, u.username AS username, r.name, r.description, \
    r.tags, r.kind, r.runtime, r.status, r.content, r.raw_content, r.inputs, r.outputs, r.meta_info, r.managed_by, r.is_managed, \
    r.is_approved, r.pending, r.original_uuid, r.cloning_kind, r.pipeline_uuid, r.pipeline_kind, r.created_at, r.updated_at, \
    r.started_at, r.finished_at, r.wait_time, r.duration, r.queue, r.priority, r.agent, r.lease_until \
    FROM runs r JOIN projects p ON p.id = r.project_id LEFT JOIN users u ON u.id = r.user_id";

/// The same columns without the (possibly large) specs, for listings.
const SELECT_LIGHT: &str = "SELECT r.id, r.uuid, r.project_id, p.owner AS owner, p.name AS project, u.username AS username, r.name, r.description, \
    r.tags, r.kind, r.runtime, r.status, NULL AS content, NULL AS raw_content, r.inputs, r.outputs, r.meta_info, r.managed_by, r.is_managed, \
    r.is_approved, r.pending, r.original_uuid, r.cloning_kind, r.pipeline_uuid, r.pipeline_kind, r.created_at, r.updated_at, \
    r.started_at, r.finished_at, r.wait_time, r.duration, r.queue, r.priority, r.agent, r.lease_until \
    FROM runs r JOIN projects p ON p.id = r.project_id LEFT JOIN users u ON u.id = r.user_id";

#[derive(FromRow)]
struct RunId {
    id: i64,
}

/// Whether SQL text refers to table alias `alias` (as `alias.column`).
fn mentions(sql: &str, alias: &str) -> bool {
    let pat = format!("{alias}.");
    sql.match_indices(&pat).any(|(i, _)| {
        sql[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

fn json_text(m: &Map<String, J>) -> Option<String> {
    (!m.is_empty()).then(|| J::Object(m.clone()).to_string())
}

impl Store {
    /// Creates a run. A top-level managed run with a spec, approved and driven by no one yet,
    /// goes straight to its queue (`queued`), where agents claim it; one that names its
    /// `agent` (a local supervisor), a pipeline's child, a tracking record or a run waiting
    /// for approval stays `created`.
    pub async fn create_run(&self, project_id: i64, user: &User, new: NewRun) -> Result<RunRow> {
        let uuid = new_uuid();
        let now = now_micros();
        let queued = new.agent.is_none()
            && new.pipeline.is_none()
            && new.is_managed
            && new.content.is_some()
            && !new.needs_approval
            && new.pending.is_none();
        let queue = match (&new.queue, new.pipeline.is_none() && new.is_managed) {
            (Some(q), true) => Some(q.clone()),
            (None, true) => Some(super::queues::DEFAULT_QUEUE.to_string()),
            (_, false) => None,
        };
        let mut tx = self.begin().await?;
        if let Some(q) = &queue {
            tx.known_queue(q).await?;
        }
        tx.execute(
            "INSERT INTO runs (uuid, project_id, user_id, name, description, tags, kind, runtime, status, content, raw_content, inputs, outputs, \
             meta_info, managed_by, is_managed, pending, original_uuid, cloning_kind, pipeline_uuid, pipeline_kind, created_at, updated_at, \
             is_approved, queue, priority, agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $22, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $21, $23, $24, $25, $26)",
            vec![
                uuid.clone().into(),
                project_id.into(),
                user.id.into(),
                new.name.into(),
                new.description.into(),
                serde_json::to_string(&new.tags).unwrap_or_else(|_| "[]".into()).into(),
                new.kind.into(),
                new.runtime.into(),
                new.content.into(),
                new.raw_content.into(),
                json_text(&new.inputs).into(),
                json_text(&new.outputs).into(),
                json_text(&new.meta_info).into(),
                new.managed_by.into(),
                new.is_managed.into(),
                new.pending.into(),
                new.original.as_ref().map(|o| o.0.clone()).into(),
                new.original.map(|o| o.1).into(),
                new.pipeline.as_ref().map(|p| p.0.clone()).into(),
                new.pipeline.map(|p| p.1).into(),
                now.into(),
                if queued { "queued" } else { "created" }.into(),
                (!new.needs_approval).into(),
                queue.clone().into(),
                new.priority.into(),
                new.agent.into(),
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO statuses (run_id, type, status, reason, message, created_at) SELECT id, 'created', 'True', 'PolyaxonRunCreated', 'Run is created', $2 FROM runs WHERE uuid = $1",
            vec![uuid.clone().into(), now.into()],
        )
        .await?;
        if queued {
            tx.execute(
                "INSERT INTO statuses (run_id, type, status, reason, message, created_at) SELECT id, 'queued', 'True', 'PolyaxonRunQueued', $2, $3 FROM runs WHERE uuid = $1",
                vec![
                    uuid.clone().into(),
                    format!("waiting for an agent on queue `{}`", queue.as_deref().unwrap_or_default()).into(),
                    now.into(),
                ],
            )
            .await?;
            tx.notify_queued().await?;
        }
        tx.commit().await?;
        if queued {
            self.queued.notify_waiters();
        }
        self.run_by_uuid(&uuid).await
    }

    /// A run by uuid, whoever may see it (callers check access through its project).
    pub async fn run_by_id(&self, id: i64) -> Result<RunRow> {
        self.fetch_optional(&format!("{SELECT} WHERE r.id = $1"), vec![id.into()])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("run #{id}")))
    }

    /// The run a hook's delivery made (its `meta_info.hook.delivery`), if one was.
    pub async fn hook_run_of(&self, project_id: i64, delivery: &str) -> Result<Option<RunRow>> {
        let needle: String = delivery.chars().filter(char::is_ascii_hexdigit).collect();
        self.fetch_optional(
            &format!(
                "{SELECT} WHERE r.project_id = $1 AND r.meta_info LIKE $2 ORDER BY r.id LIMIT 1"
            ),
            vec![
                project_id.into(),
                format!("%\"delivery\":\"{needle}\"%").into(),
            ],
        )
        .await
    }

    pub async fn run_by_uuid(&self, uuid: &str) -> Result<RunRow> {
        let uuid = uuid.replace('-', "");
        self.fetch_optional(
            &format!("{SELECT} WHERE r.uuid = $1"),
            vec![uuid.clone().into()],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("run `{uuid}`")))
    }

    /// Runs an executor claimed ([`RunStatus::is_claimed`]), across projects,
    /// with their status and what `meta_info` says of their executor: what is checked for
    /// executors that died. With `host`, only those claimed on that machine.
    pub async fn claimed_runs(&self, host: Option<&str>) -> Result<Vec<ClaimedRun>> {
        #[derive(FromRow)]
        struct Active {
            uuid: String,
            owner: String,
            project: String,
            status: String,
            meta_info: Option<String>,
        }
        let mut p = Params::new(self.dialect());
        let active: Vec<String> = RunStatus::ALL
            .iter()
            .filter(|s| s.is_claimed())
            .map(|s| p.push(s.as_str()))
            .collect();
        let rows: Vec<Active> = self
            .fetch_all(
                &format!(
                    "SELECT r.uuid, p.owner AS owner, p.name AS project, r.status, r.meta_info FROM runs r \
                     JOIN projects p ON p.id = r.project_id WHERE r.status IN ({})",
                    active.join(", ")
                ),
                p.args,
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let m: Map<String, J> = serde_json::from_str(r.meta_info.as_deref()?).ok()?;
                let executor = crate::api::RunMeta::from_map(&m).executor?;
                if host.is_some_and(|h| executor.host.as_deref() != Some(h)) {
                    return None;
                }
                Some(ClaimedRun {
                    uuid: r.uuid,
                    owner: r.owner,
                    project: r.project,
                    status: RunStatus::parse(&r.status)?,
                    executor,
                })
            })
            .collect())
    }

    /// The children of a pipeline (a search, a DAG) that have not started, by uuid.
    pub async fn unstarted_children(&self, pipeline_uuid: &str) -> Result<Vec<String>> {
        #[derive(FromRow)]
        struct U {
            uuid: String,
        }
        let mut p = Params::new(self.dialect());
        let parent = p.push(pipeline_uuid);
        let states: Vec<String> = RunStatus::ALL
            .iter()
            .filter(|s| s.is_not_started())
            .map(|s| p.push(s.as_str()))
            .collect();
        let rows: Vec<U> = self
            .fetch_all(
                &format!(
                    "SELECT uuid FROM runs WHERE pipeline_uuid = {parent} AND status IN ({})",
                    states.join(", ")
                ),
                p.args,
            )
            .await?;
        Ok(rows.into_iter().map(|u| u.uuid).collect())
    }

    /// A page of a project's runs matching a PQL query, and how many match in all.
    pub async fn list_runs(
        &self,
        project_id: i64,
        query: &str,
        sort: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<RunRow>)> {
        let mut p = Params::new(self.dialect());
        let pid = p.push(project_id);
        let cond = pql::where_clause(query, RUN_FIELDS, &mut p)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let count_args = p.args.clone();
        let order = pql::order_by(sort, RUN_FIELDS, "-updated_at", &mut p, "r.id DESC")
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let where_ = format!("WHERE r.project_id = {pid} AND {cond}");
        let joins = if mentions(&cond, "u")
            || mentions(&cond, "p")
            || mentions(&order, "u")
            || mentions(&order, "p")
        {
            " JOIN projects p ON p.id = r.project_id LEFT JOIN users u ON u.id = r.user_id"
        } else {
            ""
        };
        let count_sql = format!("SELECT COUNT(*) AS n FROM runs r{joins} {where_}");
        let (pl, po) = (p.push(limit), p.push(offset));
        // The page's ids first (an index-only walk, even deep in), then their rows; the count
        // runs meanwhile on another connection.
        let ids_sql = format!(
            "SELECT r.id FROM runs r{joins} {where_} ORDER BY {order} LIMIT {pl} OFFSET {po}"
        );
        let page = async {
            let ids: Vec<RunId> = self.fetch_all(&ids_sql, p.args).await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut q = Params::new(self.dialect());
            let ph: Vec<String> = ids.iter().map(|i| q.push(i.id)).collect();
            let mut rows: Vec<RunRow> = self
                .fetch_all(
                    &format!("{SELECT_LIGHT} WHERE r.id IN ({})", ph.join(", ")),
                    q.args,
                )
                .await?;
            let at: std::collections::HashMap<i64, usize> =
                ids.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
            rows.sort_by_key(|r| at.get(&r.id).copied().unwrap_or(usize::MAX));
            Ok::<_, StoreError>(rows)
        };
        let (count, rows) =
            tokio::try_join!(self.fetch_one::<Count>(&count_sql, count_args), page)?;
        Ok((count.n, rows))
    }

    /// Changes a run's fields; with `merge`, mappings are merged key by key and tags added.
    pub async fn patch_run(&self, uuid: &str, patch: RunPatch) -> Result<RunRow> {
        let mut tx = self.begin().await?;
        let lock = if tx.dialect() == super::Dialect::Postgres {
            " FOR NO KEY UPDATE OF r"
        } else {
            ""
        };
        let run: RunRow = tx
            .fetch_optional(
                &format!("{SELECT} WHERE r.uuid = $1{lock}"),
                vec![uuid.into()],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("run `{uuid}`")))?;
        let combine = |old: Map<String, J>, new: Option<Map<String, J>>| -> Option<String> {
            let new = new?;
            let merged = if patch.merge {
                let mut m = old;
                m.extend(new);
                m
            } else {
                new
            };
            Some(J::Object(merged).to_string())
        };
        let tags = patch.tags.map(|t| {
            let all = if patch.merge {
                let mut all = run.tags();
                for x in t {
                    if !all.contains(&x) {
                        all.push(x);
                    }
                }
                all
            } else {
                t
            };
            serde_json::to_string(&all).unwrap_or_else(|_| "[]".into())
        });
        tx.execute(
            "UPDATE runs SET name = COALESCE($1, name), description = COALESCE($2, description), tags = COALESCE($3, tags), \
             inputs = COALESCE($4, inputs), outputs = COALESCE($5, outputs), meta_info = COALESCE($6, meta_info), \
             content = COALESCE($7, content), updated_at = $8 WHERE id = $9",
            vec![
                patch.name.into(),
                patch.description.into(),
                tags.into(),
                combine(run.inputs(), patch.inputs).into(),
                combine(run.outputs(), patch.outputs).into(),
                combine(run.meta_info(), patch.meta_info).into(),
                patch.content.into(),
                now_micros().into(),
                run.id.into(),
            ],
        )
        .await?;
        tx.commit().await?;
        self.run_by_uuid(uuid).await
    }

    /// Sets the spec of a run that has not started (a DAG's operation once its upstream values
    /// are known): its content, and the kind, runtime and inputs read from it. A run that
    /// started keeps its spec (a conflict): restarting it runs another.
    pub async fn set_spec(
        &self,
        uuid: &str,
        content: &str,
        kind: Option<String>,
        runtime: Option<String>,
        inputs: &Map<String, J>,
    ) -> Result<RunRow> {
        let mut tx = self.begin().await?;
        let lock = if tx.dialect() == super::Dialect::Postgres {
            " FOR NO KEY UPDATE OF r"
        } else {
            ""
        };
        let run: RunRow = tx
            .fetch_optional(
                &format!("{SELECT} WHERE r.uuid = $1{lock}"),
                vec![uuid.into()],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("run `{uuid}`")))?;
        if !run.status().is_not_started() {
            return Err(StoreError::Conflict(format!(
                "run `{uuid}` is {}: a run's spec can change only before it starts (restart it to run another)",
                run.status
            )));
        }
        tx.execute(
            "UPDATE runs SET content = $1, kind = $2, runtime = $3, inputs = $4, updated_at = $5 WHERE id = $6",
            vec![
                content.into(),
                kind.into(),
                runtime.into(),
                json_text(inputs).into(),
                now_micros().into(),
                run.id.into(),
            ],
        )
        .await?;
        tx.commit().await?;
        self.run_by_uuid(uuid).await
    }

    /// Appends a status condition. Returns false when the run already had that status.
    /// An illegal transition is a conflict, unless `force`.
    pub async fn add_status(
        &self,
        uuid: &str,
        kind: RunStatus,
        reason: Option<&str>,
        message: Option<&str>,
        meta: Option<&Map<String, J>>,
        force: bool,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let lock = if tx.dialect() == super::Dialect::Postgres {
            " FOR NO KEY UPDATE OF r"
        } else {
            ""
        };
        let run: RunRow = tx
            .fetch_optional(
                &format!("{SELECT} WHERE r.uuid = $1{lock}"),
                vec![uuid.into()],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("run `{uuid}`")))?;
        if run.status() == kind {
            return Ok(false);
        }
        if !force && !run.status().can_transition(kind) {
            return Err(StoreError::Conflict(format!(
                "a run cannot go from `{}` to `{kind}`",
                run.status
            )));
        }
        let now = now_micros();
        let started = if kind == RunStatus::Running && run.started_at.is_none() {
            Some(now)
        } else {
            run.started_at
        };
        let finished = if kind.is_done() {
            Some(now)
        } else if kind == RunStatus::Resuming {
            None
        } else {
            run.finished_at
        };
        let wait = started.map(|s| (s - run.created_at) as f64 / 1e6);
        let duration = match (started, finished) {
            (Some(s), Some(f)) => Some((f - s) as f64 / 1e6),
            _ => run.duration,
        };
        // An ended run holds no claim: its queue's slot is free again.
        tx.execute(
            "UPDATE runs SET status = $1, updated_at = $2, started_at = $3, finished_at = $4, wait_time = $5, duration = $6, \
             agent = CASE WHEN $8 THEN NULL ELSE agent END, lease_until = CASE WHEN $8 THEN NULL ELSE lease_until END WHERE id = $7",
            vec![kind.as_str().into(), now.into(), started.into(), finished.into(), wait.into(), duration.into(), run.id.into(), kind.is_done().into()],
        )
        .await?;
        tx.execute(
            "INSERT INTO statuses (run_id, type, status, reason, message, meta_info, created_at) VALUES ($1, $2, 'True', $3, $4, $5, $6)",
            vec![
                run.id.into(),
                kind.as_str().into(),
                reason.map(str::to_string).into(),
                message.map(str::to_string).into(),
                meta.and_then(json_text).into(),
                now.into(),
            ],
        )
        .await?;
        // A run's end fires once: a forced move from one final status to another does not.
        let fired = if kind.is_done() && !run.status().is_done() {
            super::outbox::fire(&mut tx, run.id, uuid, run.content.as_deref(), kind, now).await?
        } else {
            0
        };
        tx.commit().await?;
        if fired > 0 {
            if self.track_fired.load(std::sync::atomic::Ordering::Relaxed) {
                self.fired.lock().expect("not poisoned").insert(run.id);
            }
            self.outbox_wake.notify_one();
        }
        Ok(true)
    }

    pub async fn statuses(&self, run_id: i64) -> Result<Vec<StatusRow>> {
        self.fetch_all(
            "SELECT type, status, reason, message, meta_info, created_at FROM statuses WHERE run_id = $1 ORDER BY id",
            vec![run_id.into()],
        )
        .await
    }

    /// Stops a run: at once if it has not started, else by asking its executor (`stopping`).
    pub async fn stop_run(&self, uuid: &str) -> Result<RunStatus> {
        let run = self.run_by_uuid(uuid).await?;
        if run.status().is_done() {
            return Err(StoreError::Conflict(format!(
                "the run already ended ({})",
                run.status
            )));
        }
        let to = if run.status().is_not_started() {
            RunStatus::Stopped
        } else {
            RunStatus::Stopping
        };
        self.add_status(
            uuid,
            to,
            Some("PolyaxonRunStopped"),
            Some("Stop requested"),
            None,
            false,
        )
        .await?;
        Ok(to)
    }

    /// Skips a run that has not started. One that started is a conflict: stop it instead.
    pub async fn skip_run(&self, uuid: &str) -> Result<()> {
        let run = self.run_by_uuid(uuid).await?;
        if !run.status().is_not_started() {
            return Err(StoreError::Conflict(format!(
                "the run is {}: only a run that has not started can be skipped (stop it instead)",
                run.status
            )));
        }
        self.add_status(
            uuid,
            RunStatus::Skipped,
            Some("PolyaxonRunSkipped"),
            Some("Skip requested"),
            None,
            false,
        )
        .await?;
        Ok(())
    }

    /// Approves a run that waits for approval.
    pub async fn approve_run(&self, run_id: i64) -> Result<()> {
        self.execute(
            "UPDATE runs SET is_approved = $1, pending = NULL WHERE id = $2",
            vec![true.into(), run_id.into()],
        )
        .await?;
        Ok(())
    }

    /// A new run from an existing one (`restart` or `copy`), optionally with another spec.
    pub async fn clone_run(
        &self,
        source: &RunRow,
        user: &User,
        kind: &str,
        content: Option<String>,
        overrides: RunPatch,
        agent: Option<String>,
    ) -> Result<RunRow> {
        let new = NewRun {
            name: overrides.name.or_else(|| source.name.clone()),
            description: overrides.description.or_else(|| source.description.clone()),
            tags: overrides.tags.unwrap_or_else(|| source.tags()),
            kind: source.kind.clone(),
            runtime: source.runtime.clone(),
            content: content.or_else(|| source.content.clone()),
            raw_content: source.raw_content.clone(),
            inputs: overrides.inputs.unwrap_or_else(|| source.inputs()),
            outputs: if kind == "copy" {
                source.outputs()
            } else {
                Map::new()
            },
            meta_info: {
                let mut m = source.meta_info();
                // Where the original ran is not where the copy will.
                m.remove("executor");
                m.extend(overrides.meta_info.unwrap_or_default());
                m
            },
            managed_by: source.managed_by.clone(),
            is_managed: source.is_managed.0,
            pending: None,
            original: Some((source.uuid.clone(), kind.to_string())),
            pipeline: source
                .pipeline_uuid
                .clone()
                .zip(source.pipeline_kind.clone()),
            needs_approval: false,
            queue: source.queue.clone(),
            priority: source.priority,
            agent,
        };
        self.create_run(source.project_id, user, new).await
    }

    pub async fn delete_runs(&self, project_id: i64, uuids: &[String]) -> Result<Vec<String>> {
        let mut deleted = Vec::new();
        for u in uuids {
            let u = u.replace('-', "");
            // The run and the note that its files are to remove, at once.
            let mut tx = self.begin().await?;
            let n = tx
                .execute(
                    "DELETE FROM runs WHERE project_id = $1 AND uuid = $2",
                    vec![project_id.into(), u.clone().into()],
                )
                .await?;
            if n > 0 {
                note_removal(&mut tx, &u).await?;
            }
            tx.commit().await?;
            if n > 0 {
                deleted.push(u);
            }
        }
        Ok(deleted)
    }

    /// Runs whose files are still to remove, due now (at most `limit`).
    pub async fn due_removals(&self, limit: i64) -> Result<Vec<String>> {
        #[derive(FromRow)]
        struct U {
            uuid: String,
        }
        let rows: Vec<U> = self
            .fetch_all(
                "SELECT uuid FROM file_removals WHERE next_at <= $1 ORDER BY next_at LIMIT $2",
                vec![now_micros().into(), limit.into()],
            )
            .await?;
        Ok(rows.into_iter().map(|u| u.uuid).collect())
    }

    /// Notes that the files of the run `uuid` are to remove (a deletion does it itself).
    pub async fn note_removal_of(&self, uuid: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        note_removal(&mut tx, uuid).await?;
        tx.commit().await
    }

    /// The files of `uuid` are gone.
    pub async fn removal_done(&self, uuid: &str) -> Result<()> {
        self.execute(
            "DELETE FROM file_removals WHERE uuid = $1",
            vec![uuid.to_string().into()],
        )
        .await?;
        Ok(())
    }

    /// Removing the files of `uuid` failed: tried again later (a minute, doubling to an hour).
    pub async fn removal_failed(&self, uuid: &str, error: &str) -> Result<()> {
        #[derive(FromRow)]
        struct T {
            tries: i32,
        }
        let tries = self
            .fetch_optional::<T>(
                "SELECT tries FROM file_removals WHERE uuid = $1",
                vec![uuid.to_string().into()],
            )
            .await?
            .map_or(0, |t| t.tries);
        let wait_s = (60i64 << tries.clamp(0, 6)).min(3600);
        self.execute(
            "UPDATE file_removals SET tries = tries + 1, last_error = $2, next_at = $3 WHERE uuid = $1",
            vec![
                uuid.to_string().into(),
                error.chars().take(500).collect::<String>().into(),
                (now_micros() + wait_s * 1_000_000).into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Records lineage artifacts (`polyaxon.tracking` posts them as a run logs references).
    pub async fn upsert_artifacts(&self, run_id: i64, artifacts: &[J]) -> Result<()> {
        let mut tx = self.begin().await?;
        for a in artifacts {
            let s = |k: &str| a.get(k).and_then(J::as_str).map(str::to_string);
            let Some(name) = s("name") else {
                return Err(StoreError::Invalid("an artifact needs a `name`".into()));
            };
            let j = |k: &str| a.get(k).filter(|v| !v.is_null()).map(|v| v.to_string());
            tx.execute(
                "DELETE FROM run_artifacts WHERE run_id = $1 AND name = $2",
                vec![run_id.into(), name.clone().into()],
            )
            .await?;
            tx.execute(
                "INSERT INTO run_artifacts (run_id, name, kind, path, summary, meta_info, is_input, connection, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                vec![
                    run_id.into(),
                    name.into(),
                    s("kind").into(),
                    s("path").into(),
                    j("summary").into(),
                    j("meta_info").into(),
                    a.get("is_input").and_then(J::as_bool).unwrap_or(false).into(),
                    s("connection").into(),
                    now_micros().into(),
                ],
            )
            .await?;
        }
        tx.commit().await
    }

    /// Artifacts lineage matching a PQL query (`name: %model%, kind: model|data`), sorted
    /// (`-created_at` by default, else by name), with how many match in all: one run's, or
    /// every run's of a project.
    pub async fn lineage(
        &self,
        scope: LineageScope,
        query: &str,
        sort: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<J>)> {
        use crate::store::pql::LINEAGE_FIELDS;
        #[derive(FromRow)]
        struct A {
            name: String,
            kind: Option<String>,
            path: Option<String>,
            summary: Option<String>,
            meta_info: Option<String>,
            is_input: Flag,
            connection: Option<String>,
            created_at: i64,
            run_uuid: String,
        }
        #[derive(FromRow)]
        struct N {
            n: i64,
        }
        let mut p = Params::new(self.dialect());
        let scope_sql = match scope {
            LineageScope::Run(id) => format!("a.run_id = {}", p.push(id)),
            LineageScope::Project(id) => format!("r.project_id = {}", p.push(id)),
        };
        let cond = pql::where_clause(query, LINEAGE_FIELDS, &mut p)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let count_args = p.args.clone();
        let default_sort = match scope {
            LineageScope::Run(_) => "name",
            LineageScope::Project(_) => "-created_at",
        };
        let order = pql::order_by(
            sort,
            LINEAGE_FIELDS,
            default_sort,
            &mut p,
            "a.run_id, a.name",
        )
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let from = format!(
            "FROM run_artifacts a JOIN runs r ON r.id = a.run_id WHERE {scope_sql} AND {cond}"
        );
        let (pl, po) = (p.push(limit), p.push(offset));
        let rows: Vec<A> = self
            .fetch_all(
                &format!("SELECT a.name, a.kind, a.path, a.summary, a.meta_info, a.is_input, a.connection, a.created_at, r.uuid AS run_uuid {from} ORDER BY {order} LIMIT {pl} OFFSET {po}"),
                p.args,
            )
            .await?;
        let count: N = self
            .fetch_one(&format!("SELECT COUNT(*) AS n {from}"), count_args)
            .await?;
        let parse = |s: Option<String>| s.and_then(|t| serde_json::from_str::<J>(&t).ok());
        let results = rows
            .into_iter()
            .map(|a| {
                serde_json::json!({
                    "name": a.name, "kind": a.kind, "path": a.path, "summary": parse(a.summary),
                    "meta_info": parse(a.meta_info), "is_input": a.is_input.0, "connection": a.connection,
                    "run": a.run_uuid, "created_at": crate::api::time(a.created_at),
                })
            })
            .collect();
        Ok((count.n, results))
    }

    /// Deletes one artifact's lineage; whether it was there.
    pub async fn delete_lineage(&self, run_id: i64, name: &str) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM run_artifacts WHERE run_id = $1 AND name = $2",
                vec![run_id.into(), name.to_string().into()],
            )
            .await?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_table_aliases() {
        use super::mentions;
        assert!(mentions("(u.username = $2)", "u"));
        assert!(mentions("p.name ASC", "p"));
        assert!(!mentions("jsonb_exists(r.tags::jsonb, $2)", "u"));
        assert!(!mentions("tag.value = ?2", "g"));
        assert!(!mentions("r.status.x", "s"));
    }
}

/// Whose artifacts lineage is listed.
#[derive(Clone, Copy, Debug)]
pub enum LineageScope {
    Run(i64),
    Project(i64),
}

/// Notes in `tx` that the files of the run `uuid` are to remove.
pub(crate) async fn note_removal(tx: &mut super::Tx<'_>, uuid: &str) -> Result<()> {
    let now = now_micros();
    tx.execute(
        "INSERT INTO file_removals (uuid, created_at, next_at) VALUES ($1, $2, $2) ON CONFLICT (uuid) DO NOTHING",
        vec![uuid.to_string().into(), now.into()],
    )
    .await?;
    Ok(())
}
