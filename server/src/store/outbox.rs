//! Connections (the catalogue notifications and operations name) and the outbox: the side
//! effects of a run's end, written in the transaction that records the status they fire on
//! ([`fire`]), then claimed under a lease, delivered and marked by whichever process runs a
//! [`crate::notify::Worker`].
//!
//! A row's `key` is unique (the run, the end it fired on, the entry), so a run's end fires
//! each of its notifications and hooks once; a delivery is marked in the transaction that
//! records its reply, and only by the holder of its lease, so a worker that lost its lease to
//! another cannot mark it twice.

use serde_json::{Map, Value as J};
use sqlx::FromRow;

use super::{Count, Dialect, Result, Store, StoreError, Tx, now_micros};
use crate::api::RunStatus;

/// The notifier backends, by the name a connection's `kind` and a hook's `hubRef` give them.
pub const NOTIFIERS: [&str; 6] = [
    "slack",
    "webhook",
    "discord",
    "mattermost",
    "pagerduty",
    "teams",
];

/// The other kinds of connection operations name in `connections:`.
pub const OTHER_KINDS: [&str; 9] = [
    "git",
    "registry",
    "bucket",
    "s3",
    "gcs",
    "wasb",
    "volume_claim",
    "host_path",
    "custom",
];

#[derive(Clone, Debug, FromRow)]
pub struct ConnectionRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub description: Option<String>,
    pub tags: String,
    /// The non-secret part (JSON object).
    pub spec: String,
    /// Where the secret is read from (JSON `{"env": …}` or `{"file": …}`), never its value.
    pub secret: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ConnectionRow {
    pub fn spec(&self) -> Map<String, J> {
        serde_json::from_str(&self.spec).unwrap_or_default()
    }
    pub fn secret(&self) -> Option<SecretRef> {
        self.secret
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
    }
    pub fn tags(&self) -> Vec<String> {
        serde_json::from_str(&self.tags).unwrap_or_default()
    }
}

/// Where a connection's secret is read from, by the process that uses it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretRef {
    /// An environment variable of that process.
    Env(String),
    /// A file on its machine (a mounted Kubernetes secret, say).
    File(String),
}

impl SecretRef {
    /// Reads the secret's value. The error names where it looked, never a value.
    pub fn read(&self) -> Result<String, String> {
        match self {
            SecretRef::Env(name) => std::env::var(name).map_err(|_| {
                format!("the environment variable `{name}` is not set in this process")
            }),
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("cannot read `{path}`: {e}")),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct NewConnection {
    pub name: String,
    pub kind: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub spec: Map<String, J>,
    pub secret: Option<SecretRef>,
}

/// One side effect of a run's end.
#[derive(Clone, Debug, FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub run_id: i64,
    pub key: String,
    /// `notification` (`plugins.notifications`), `hook` (a notifier hook) or `hook_run` (a
    /// hook that runs a component).
    pub source: String,
    /// The trigger as written (`succeeded`, `done`, …).
    pub trigger: String,
    /// The status the run ended with.
    pub status: String,
    pub connection: Option<String>,
    /// The entry as the spec wrote it (JSON).
    pub entry: String,
    /// `pending`, `delivered`, `failed` or `skipped`.
    pub state: String,
    pub tries: i64,
    pub last_error: Option<String>,
    pub response_code: Option<i64>,
    pub next_at: i64,
    pub holder: Option<String>,
    pub lease_until: Option<i64>,
    pub hook_run: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
}

impl OutboxRow {
    pub fn entry(&self) -> Map<String, J> {
        serde_json::from_str(&self.entry).unwrap_or_default()
    }
}

/// What one entry of a spec asks for when its run ends.
#[derive(Clone, Debug, PartialEq)]
pub struct Intent {
    pub source: &'static str,
    pub index: usize,
    pub trigger: String,
    pub connection: Option<String>,
    pub entry: Map<String, J>,
}

/// The notifications and hooks of a stored operation (or component): the operation's own
/// hooks, then its component's; `plugins.notifications` of the component (or the operation's
/// `runPatch`), one intent per connection.
pub fn intents(content: &J) -> Vec<Intent> {
    let mut out = Vec::new();
    let component = content.get("component").filter(|c| c.is_object());
    let hooks = content
        .get("hooks")
        .and_then(J::as_array)
        .into_iter()
        .chain(component.and_then(|c| c.get("hooks")).and_then(J::as_array))
        .flatten();
    for (i, h) in hooks.enumerate() {
        let Some(h) = h.as_object() else { continue };
        let hub = h.get("hubRef").and_then(J::as_str).unwrap_or_default();
        let base = hub.split(':').next().unwrap_or_default();
        out.push(Intent {
            // A notifier hook is a delivery; any other hook runs a component.
            source: if NOTIFIERS.contains(&base) {
                "hook"
            } else {
                "hook_run"
            },
            index: i,
            trigger: trigger_of(h),
            connection: h.get("connection").and_then(J::as_str).map(str::to_string),
            entry: h.clone(),
        });
    }
    // The operation's own notifications win over its run patch's and its component's.
    let plugins = [
        content.get("plugins"),
        content.get("runPatch").and_then(|p| p.get("plugins")),
        component.and_then(|c| c.get("plugins")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.get("notifications").is_some());
    let notifications = plugins
        .and_then(|p| p.get("notifications"))
        .and_then(J::as_array)
        .into_iter()
        .flatten();
    let mut n = 0;
    // Once per (trigger, connection), however often the spec names the pair.
    let mut seen = std::collections::BTreeSet::new();
    for entry in notifications {
        let Some(e) = entry.as_object() else { continue };
        let trigger = trigger_of(e);
        for c in e
            .get("connections")
            .and_then(J::as_array)
            .into_iter()
            .flatten()
            .filter_map(J::as_str)
        {
            if !seen.insert((trigger.clone(), c.to_string())) {
                continue;
            }
            out.push(Intent {
                source: "notification",
                index: n,
                trigger: trigger.clone(),
                connection: Some(c.to_string()),
                entry: e.clone(),
            });
            n += 1;
        }
    }
    out
}

fn trigger_of(entry: &Map<String, J>) -> String {
    entry
        .get("trigger")
        .and_then(J::as_str)
        .map(|t| t.to_ascii_lowercase())
        .unwrap_or_else(|| "done".into())
}

/// Whether a trigger fires on a run ending with `status`.
pub fn matches(trigger: &str, status: RunStatus) -> bool {
    status.is_done() && (trigger == "done" || trigger == status.as_str())
}

/// Writes the outbox rows a run's end fires, in the transaction that records the end.
/// Returns how many it wrote.
pub(super) async fn fire(
    tx: &mut Tx<'_>,
    run_id: i64,
    uuid: &str,
    content: Option<&str>,
    status: RunStatus,
    now: i64,
) -> Result<usize> {
    // Stored as JSON by the CLI; as YAML (as given) by some API clients.
    let Some(content) = content.and_then(|c| {
        serde_json::from_str::<J>(c)
            .ok()
            .or_else(|| polyaxonfile::yaml::parse(c, 0).ok().map(|n| n.to_json()))
    }) else {
        return Ok(0);
    };
    let mut n = 0;
    for it in intents(&content)
        .into_iter()
        .filter(|i| matches(&i.trigger, status))
    {
        let key = format!(
            "{uuid}:{now}:{}{}:{}",
            it.source,
            it.index,
            it.connection.as_deref().unwrap_or("")
        );
        tx.execute(
            "INSERT INTO outbox (run_id, key, source, trigger, status, connection, entry, state, tries, next_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8, $8)",
            vec![
                run_id.into(),
                key.into(),
                it.source.into(),
                it.trigger.into(),
                status.as_str().into(),
                it.connection.into(),
                J::Object(it.entry).to_string().into(),
                now.into(),
            ],
        )
        .await?;
        n += 1;
    }
    Ok(n)
}

const OUTBOX_COLS: &str = "id, run_id, key, source, trigger, status, connection, entry, state, tries, last_error, response_code, \
    next_at, holder, lease_until, hook_run, created_at, updated_at, delivered_at";

/// How a delivery attempt ended, as the worker records it.
#[derive(Clone, Debug)]
pub enum Attempt {
    /// Delivered: the receiver's answer.
    Delivered { code: Option<i64> },
    /// Not delivered; tried again at `retry_at`, or given up (`None`).
    Failed {
        error: String,
        code: Option<i64>,
        retry_at: Option<i64>,
    },
    /// Nothing to send (`conditions` false).
    Skipped { why: String },
}

impl Store {
    pub async fn create_connection(&self, new: NewConnection) -> Result<ConnectionRow> {
        let now = now_micros();
        let res = self
            .execute(
                "INSERT INTO connections (name, kind, description, tags, spec, secret, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                vec![
                    new.name.clone().into(),
                    new.kind.into(),
                    new.description.into(),
                    J::from(new.tags).to_string().into(),
                    J::Object(new.spec).to_string().into(),
                    new.secret
                        .map(|s| serde_json::to_string(&s).expect("serialisable"))
                        .into(),
                    now.into(),
                ],
            )
            .await;
        match res {
            Ok(_) => self.connection(&new.name).await,
            Err(StoreError::Db(e)) if is_unique_violation(&e) => Err(StoreError::Conflict(
                format!("a connection named `{}` already exists", new.name),
            )),
            Err(e) => Err(e),
        }
    }

    /// Creates or replaces the connections of a config file (those the API created are left
    /// alone unless the file names them too). Returns how many it wrote; an unchanged one is
    /// not written.
    pub async fn sync_connections(&self, list: Vec<NewConnection>) -> Result<usize> {
        let existing = self.connections().await?;
        let mut n = 0;
        for c in list {
            let spec = J::Object(c.spec.clone()).to_string();
            let secret = c
                .secret
                .as_ref()
                .map(|s| serde_json::to_string(s).expect("serialisable"));
            let tags = J::from(c.tags.clone()).to_string();
            match existing.iter().find(|e| e.name == c.name) {
                Some(e)
                    if e.kind == c.kind
                        && e.spec() == c.spec
                        && e.secret == secret
                        && e.description == c.description
                        && e.tags == tags => {}
                Some(_) => {
                    self.execute(
                        "UPDATE connections SET kind = $1, description = $2, tags = $3, spec = $4, secret = $5, updated_at = $6 WHERE name = $7",
                        vec![
                            c.kind.into(),
                            c.description.into(),
                            tags.into(),
                            spec.into(),
                            secret.into(),
                            now_micros().into(),
                            c.name.into(),
                        ],
                    )
                    .await?;
                    n += 1;
                }
                None => {
                    match self.create_connection(c).await {
                        // Another process of this store wrote it meanwhile.
                        Ok(_) | Err(StoreError::Conflict(_)) => {}
                        Err(e) => return Err(e),
                    }
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    pub async fn connection(&self, name: &str) -> Result<ConnectionRow> {
        self.fetch_optional(
            "SELECT id, name, kind, description, tags, spec, secret, created_at, updated_at FROM connections WHERE name = $1",
            vec![name.into()],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("connection `{name}`")))
    }

    pub async fn connections(&self) -> Result<Vec<ConnectionRow>> {
        self.fetch_all(
            "SELECT id, name, kind, description, tags, spec, secret, created_at, updated_at FROM connections ORDER BY name",
            vec![],
        )
        .await
    }

    pub async fn delete_connection(&self, name: &str) -> Result<()> {
        let n = self
            .execute("DELETE FROM connections WHERE name = $1", vec![name.into()])
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("connection `{name}`")));
        }
        Ok(())
    }

    /// Claims up to `limit` due rows for `holder` until `lease_until`: pending rows whose
    /// time has come and whose lease (if any) lapsed. `sources` limits what this worker
    /// delivers (a server does not run hooks that need an executor).
    pub async fn claim_outbox(
        &self,
        holder: &str,
        limit: i64,
        lease_until: i64,
        sources: &[&str],
    ) -> Result<Vec<OutboxRow>> {
        let now = now_micros();
        let in_sources = sources
            .iter()
            .map(|s| format!("'{}'", s.replace('\'', "")))
            .collect::<Vec<_>>()
            .join(", ");
        let lock = if self.dialect == Dialect::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        // One statement: the rows picked (skipping those another claimer has locked) are
        // leased and returned.
        let _turn = self.write_turn().await;
        let sql = self.sql(&format!(
            "UPDATE outbox SET holder = $1, lease_until = $2, updated_at = $3 WHERE id IN (\
             SELECT id FROM outbox WHERE state = 'pending' AND next_at <= $3 AND (lease_until IS NULL OR lease_until < $3) \
             AND source IN ({in_sources}) ORDER BY next_at, id LIMIT $4{lock}) RETURNING {OUTBOX_COLS}"
        ));
        let rows = super::bind_all_as(
            sqlx::query_as::<sqlx::Any, OutboxRow>(sqlx::AssertSqlSafe(sql)),
            vec![holder.into(), lease_until.into(), now.into(), limit.into()],
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Records an attempt of a row `holder` holds. False when the lease was lost (another
    /// worker has the row now): nothing is recorded.
    pub async fn record_attempt(&self, id: i64, holder: &str, attempt: &Attempt) -> Result<bool> {
        let now = now_micros();
        let (state, error, code, next_at, delivered, tried) = match attempt {
            Attempt::Delivered { code } => ("delivered", None, *code, None, Some(now), 1),
            Attempt::Failed {
                error,
                code,
                retry_at: Some(at),
            } => ("pending", Some(error.clone()), *code, Some(*at), None, 1),
            Attempt::Failed {
                error,
                code,
                retry_at: None,
            } => ("failed", Some(error.clone()), *code, None, None, 1),
            Attempt::Skipped { why } => ("skipped", Some(why.clone()), None, None, None, 0),
        };
        let n = self
            .execute(
                "UPDATE outbox SET state = $1, last_error = COALESCE($2, last_error), response_code = COALESCE($3, response_code), \
                 next_at = COALESCE($4, next_at), delivered_at = $5, tries = tries + $6, holder = NULL, lease_until = NULL, updated_at = $7 \
                 WHERE id = $8 AND holder = $9 AND state = 'pending'",
                vec![
                    state.into(),
                    error.into(),
                    code.into(),
                    next_at.into(),
                    delivered.into(),
                    (tried as i64).into(),
                    now.into(),
                    id.into(),
                    holder.into(),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Notes the run a hook row created, so that a later try reuses it.
    pub async fn set_hook_run(&self, id: i64, holder: &str, run_uuid: &str) -> Result<()> {
        self.execute(
            "UPDATE outbox SET hook_run = $1 WHERE id = $2 AND holder = $3",
            vec![run_uuid.into(), id.into(), holder.into()],
        )
        .await?;
        Ok(())
    }

    /// Notes the run an ended delivery's hook was recorded as.
    pub async fn set_hook_run_done(&self, id: i64, run_uuid: &str) -> Result<()> {
        self.execute(
            "UPDATE outbox SET hook_run = $1 WHERE id = $2",
            vec![run_uuid.into(), id.into()],
        )
        .await?;
        Ok(())
    }

    /// The outbox rows of a run, oldest first.
    pub async fn outbox_of_run(&self, run_id: i64) -> Result<Vec<OutboxRow>> {
        self.fetch_all(
            &format!("SELECT {OUTBOX_COLS} FROM outbox WHERE run_id = $1 ORDER BY id"),
            vec![run_id.into()],
        )
        .await
    }

    /// How many rows of a run are still to be delivered (of `sources`).
    pub async fn outbox_pending(&self, run_id: i64) -> Result<i64> {
        Ok(self
            .fetch_one::<Count>(
                "SELECT COUNT(*) AS n FROM outbox WHERE run_id = $1 AND state = 'pending'",
                vec![run_id.into()],
            )
            .await?
            .n)
    }

    /// When the next pending row is due (microseconds), if any.
    pub async fn outbox_next_due(&self) -> Result<Option<i64>> {
        #[derive(FromRow)]
        struct Due {
            n: Option<i64>,
        }
        Ok(self
            .fetch_one::<Due>(
                "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_at THEN lease_until ELSE next_at END) AS n \
                 FROM outbox WHERE state = 'pending'",
                vec![],
            )
            .await?
            .n)
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| {
        d.is_unique_violation() || d.message().contains("UNIQUE constraint failed")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn intents_of_hooks_and_notifications() {
        let content = json!({
            "kind": "operation",
            "hooks": [{"hubRef": "slack", "connection": "team", "trigger": "failed"}],
            "component": {
                "hooks": [{"hubRef": "webhook", "connection": "ci"}],
                "plugins": {"notifications": [
                    {"connections": ["a", "b"], "trigger": "succeeded"},
                    {"connections": ["a"], "trigger": "succeeded"},
                ]},
            }
        });
        let got = intents(&content);
        assert_eq!(got.len(), 4);
        assert_eq!((got[0].source, got[0].trigger.as_str()), ("hook", "failed"));
        assert_eq!(got[1].trigger, "done", "a hook's trigger defaults to done");
        assert_eq!(got[2].connection.as_deref(), Some("a"));
        assert_eq!(got[3].connection.as_deref(), Some("b"));
        assert_ne!(got[2].index, got[3].index);
    }

    #[test]
    fn triggers() {
        assert!(matches("done", RunStatus::Stopped));
        assert!(matches("succeeded", RunStatus::Succeeded));
        assert!(!matches("succeeded", RunStatus::Failed));
        assert!(!matches("done", RunStatus::Running));
        assert!(matches("upstream_failed", RunStatus::UpstreamFailed));
    }
}
