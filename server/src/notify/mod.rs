//! Delivering the outbox: notifications (`plugins.notifications`), notifier hooks and, where a
//! [`HookRunner`] is given, hooks that run a component.
//!
//! A [`Worker`] claims due rows under a lease, renders each entry's `conditions` over the
//! finished run, sends the backend's payload (webhooks signed with the connection's key:
//! `X-Polyaxon-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`), and
//! records the reply in one update that only the lease's holder can make. Failures retry
//! with exponential backoff (5xx, 429, timeouts, connection errors) up to `max_tries`; a
//! refused or misconfigured delivery fails at once with the reason. A delivery never changes
//! its run's status.
//!
//! URLs are checked before every send: http(s) only, and never a link-local or cloud
//! metadata address unless allowed (a notification's URL is user input; without this a
//! connection could make the server read its cloud credentials). The address checked is the
//! address connected to, and redirects are not followed.

pub mod payload;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value as J, json};
use sha2::Digest;

use crate::api::RunStatus;
use crate::store::outbox::{Attempt, ConnectionRow, NOTIFIERS, OutboxRow, SecretRef};
use crate::store::{NewRun, RunRow, Store, StoreError};

pub use payload::{Message, Shape};

/// How notifications are delivered.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a receiver may take to answer (a connection's `timeout` overrides it).
    pub timeout: Duration,
    /// Tries before a delivery is marked failed.
    pub max_tries: u32,
    /// The first retry's delay; each next one doubles it (up to a minute).
    pub retry_base: Duration,
    /// Whether URLs may point at link-local and metadata addresses.
    pub allow_link_local: bool,
    /// Deliveries wait (maintenance): rows stay pending until a worker that is not paused.
    pub paused: bool,
    /// The dashboard's address, for the links notifications carry.
    pub ui_url: String,
    /// How long a claimed row is held before another worker may take it.
    pub lease: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: Duration::from_secs(10),
            max_tries: 5,
            retry_base: Duration::from_secs(1),
            allow_link_local: false,
            paused: false,
            ui_url: "http://localhost:8000".into(),
            // Longer than a try can take (a connection's timeout is at most 60 s, plus
            // connecting): a lease never lapses while its holder still sends.
            lease: Duration::from_secs(180),
        }
    }
}

/// Runs a hook that names a component (not a notifier): creates its run and starts it.
/// Returns the hook run's uuid.
pub trait HookRunner: Send + Sync {
    /// `delivery`: the outbox row's id, the same on every try: a run already made for it is
    /// returned (started if it had not been) rather than made again.
    fn run<'a>(
        &'a self,
        source: &'a RunRow,
        hook: &'a Map<String, J>,
        params: Map<String, J>,
        delivery: &'a str,
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// Claims and delivers outbox rows.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    config: Arc<Config>,
    holder: String,
    runner: Option<Arc<dyn HookRunner>>,
    clients: Arc<Clients>,
    /// Deliveries in flight at once.
    slots: Arc<tokio::sync::Semaphore>,
    /// Woken when a delivery ends.
    ended: Arc<tokio::sync::Notify>,
    /// One claim at a time per worker (its loop and a drain share it): the slots counted
    /// before a claim are there when its rows start.
    claiming: Arc<tokio::sync::Mutex<()>>,
}

/// Deliveries one worker has in flight at once.
const IN_FLIGHT: usize = 32;

impl Worker {
    /// A worker named `holder` (unique per process: it is the lease's holder).
    pub fn new(store: Store, config: Config, holder: impl Into<String>) -> Self {
        Worker {
            store,
            config: Arc::new(config),
            holder: holder.into(),
            runner: None,
            clients: Arc::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)),
            ended: Arc::default(),
            claiming: Arc::default(),
        }
    }

    /// Also runs hooks that name a component, with `runner`.
    pub fn with_hooks(mut self, runner: Arc<dyn HookRunner>) -> Self {
        self.runner = Some(runner);
        self
    }

    fn sources(&self) -> &'static [&'static str] {
        if self.runner.is_some() {
            &["notification", "hook", "hook_run"]
        } else {
            &["notification", "hook"]
        }
    }

    /// Delivers forever: due rows as soon as this process writes them (or within a second
    /// when another process does), retries when they are due.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let n = match self.run_once().await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!("outbox: {e}");
                        0
                    }
                };
                if n > 0 {
                    continue;
                }
                let mut wait = Duration::from_secs(1);
                if !self.config.paused
                    && let Ok(Some(due)) = self.store.outbox_next_due().await
                {
                    let until = (due - crate::store::now_micros()).max(0) as u64;
                    // Never a busy loop: a row due now that another worker holds, say.
                    wait = wait.min(Duration::from_micros(until).max(Duration::from_millis(20)));
                }
                let _ = tokio::time::timeout(wait, self.store.outbox_wake.notified()).await;
            }
        })
    }

    /// Claims the rows due now, as many as there are free slots, and starts delivering each
    /// (without waiting for them). Returns how many it claimed.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        if self.config.paused {
            return Ok(0);
        }
        let _claiming = self.claiming.lock().await;
        let free = self.slots.available_permits();
        if free == 0 {
            // All slots busy: wait for one to be given back (the semaphore's own queue: no
            // wake-up is missed between looking and waiting).
            drop(_claiming);
            let _ = tokio::time::timeout(Duration::from_secs(1), self.slots.acquire()).await;
            return Ok(0);
        }
        let lease = crate::store::now_micros() + self.config.lease.as_micros() as i64;
        let rows = self
            .store
            .claim_outbox(&self.holder, free as i64, lease, self.sources())
            .await?;
        let n = rows.len();
        for row in rows {
            // Free: only this claim takes slots (deliveries give them back); should a
            // finishing `settle` have taken one meanwhile, the row is delivered all the same.
            let permit = self.slots.clone().try_acquire_owned().ok();
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.deliver(row).await {
                    tracing::warn!("outbox: {e}");
                }
                drop(permit);
                me.ended.notify_waiters();
            });
        }
        Ok(n)
    }

    /// Delivers until the runs whose end fired in this process have nothing pending, or
    /// `within` has passed. Returns the rows still pending.
    pub async fn drain_fired(&self, within: Duration) -> Result<i64, StoreError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let runs: Vec<i64> = self
                .store
                .fired
                .lock()
                .expect("not poisoned")
                .iter()
                .copied()
                .collect();
            let mut pending = 0;
            for id in runs {
                let n = self.store.outbox_pending(id).await?;
                if n == 0 {
                    self.store.fired.lock().expect("not poisoned").remove(&id);
                }
                pending += n;
            }
            if pending == 0 || self.config.paused || tokio::time::Instant::now() >= deadline {
                return Ok(pending);
            }
            if self.run_once().await? == 0 {
                let _ = tokio::time::timeout_at(
                    deadline.min(tokio::time::Instant::now() + Duration::from_millis(200)),
                    async {
                        tokio::select! {
                            _ = self.store.outbox_wake.notified() => {}
                            _ = self.ended.notified() => {}
                        }
                    },
                )
                .await;
            }
        }
    }

    /// Waits (up to `within`) for the deliveries this worker has started to end.
    pub async fn settle(&self, within: Duration) {
        let _ = tokio::time::timeout(within, self.slots.acquire_many(IN_FLIGHT as u32)).await;
    }

    async fn deliver(&self, row: OutboxRow) -> Result<(), StoreError> {
        let tries = row.tries as u32 + 1;
        let attempt = match self.attempt(&row).await {
            Ok(a) => a,
            Err(Fail::Permanent(e)) => Attempt::Failed {
                error: e,
                code: None,
                retry_at: None,
            },
            // The store was out of reach, or this process cannot read the secret (another
            // one may): tried again, as a send that failed is.
            Err(Fail::Transient(e)) => Attempt::Failed {
                error: format!("try {tries} of {}: {e}", self.config.max_tries),
                code: None,
                retry_at: (tries < self.config.max_tries)
                    .then(|| crate::store::now_micros() + backoff(&self.config, tries)),
            },
        };
        let recorded = self
            .store
            .record_attempt(row.id, &self.holder, &attempt)
            .await?;
        if !recorded {
            tracing::warn!(
                "outbox: the lease of delivery {} lapsed before its reply was recorded",
                row.id
            );
            return Ok(());
        }
        if row.source == "hook" {
            self.record_hook_run(&row, &attempt).await;
        }
        Ok(())
    }

    /// One try of a row: what happened.
    async fn attempt(&self, row: &OutboxRow) -> Result<Attempt, Fail> {
        let run = self
            .store
            .run_by_id(row.run_id)
            .await
            .map_err(Fail::store)?;
        let entry = row.entry();
        let statuses = self.store.statuses(run.id).await.map_err(Fail::store)?;
        // The end it fired on (the run may have been resumed since).
        let end = statuses
            .iter()
            .rev()
            .find(|s| s.kind == row.status)
            .or(statuses.last());
        let mut defaults = default_context(&run, end);
        defaults.insert("status".into(), J::from(row.status.clone()));
        // As v1.1 renders: a name that is not defined is an error, said in the delivery.
        let tmpl = polyaxonfile::template::Templates::new(true);
        let ctx = condition_context(&run, &defaults);
        if let Some(cond) = entry.get("conditions").and_then(J::as_str) {
            let ok = tmpl.condition(cond, &minijinja_value(&ctx)).map_err(|e| {
                Fail::Permanent(format!("the conditions `{cond}` cannot be evaluated: {e}"))
            })?;
            if !ok {
                return Ok(Attempt::Skipped {
                    why: format!("the conditions `{cond}` are false"),
                });
            }
        }
        let mut context = if entry
            .get("disableDefaults")
            .or_else(|| entry.get("disable_defaults"))
            .and_then(J::as_bool)
            .unwrap_or(false)
        {
            Map::new()
        } else {
            defaults.clone()
        };
        for (k, p) in entry
            .get("params")
            .and_then(J::as_object)
            .into_iter()
            .flatten()
        {
            let v = p.get("value").cloned().unwrap_or(J::Null);
            let v = match &v {
                J::String(s) if s.contains("{{") => tmpl
                    .render(s, &minijinja_value(&ctx))
                    .map(J::String)
                    .map_err(|e| Fail::Permanent(format!("param `{k}` of the hook: {e}")))?,
                _ => v,
            };
            context.insert(k.clone(), v);
        }
        if row.source == "hook_run" {
            let runner = self
                .runner
                .as_ref()
                .ok_or_else(|| Fail::Permanent("no hook runner".into()))?;
            let uuid = match &row.hook_run {
                Some(u) => u.clone(),
                None => runner
                    .run(&run, &entry, context, &delivery_id(&row.key))
                    .await
                    .map_err(Fail::Permanent)?,
            };
            let _ = self.store.set_hook_run(row.id, &self.holder, &uuid).await;
            return Ok(Attempt::Delivered { code: None });
        }
        let name = row
            .connection
            .as_deref()
            .ok_or_else(|| Fail::Permanent("a notifier hook needs a `connection`".into()))?;
        let conn = match self.store.connection(name).await {
            Ok(c) => c,
            Err(StoreError::NotFound(_)) => {
                let known: Vec<String> = self
                    .store
                    .connections()
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| NOTIFIERS.contains(&c.kind.as_str()))
                    .map(|c| c.name)
                    .collect();
                return Err(Fail::Permanent(format!(
                    "no connection is named `{name}` (notifier connections: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            Err(e) => return Err(Fail::store(e)),
        };
        if !NOTIFIERS.contains(&conn.kind.as_str()) {
            return Err(Fail::Permanent(format!(
                "connection `{name}` is a `{}` connection, not a notifier ({})",
                conn.kind,
                NOTIFIERS.join(", ")
            )));
        }
        let backend = if row.source == "hook" {
            let hub = entry.get("hubRef").and_then(J::as_str).unwrap_or_default();
            hub.split(':').next().unwrap_or_default().to_string()
        } else {
            conn.kind.clone()
        };
        let target = Target::of(&conn, &backend)?;
        let message = Message {
            owner: run.owner.clone(),
            project: run.project.clone(),
            uuid: run.uuid.clone(),
            name: run.name.clone().unwrap_or_else(|| run.uuid.clone()),
            kind: run.kind.clone(),
            status: row.status.clone(),
            trigger: row.trigger.clone(),
            url: format!(
                "{}/ui/{}/{}/runs/{}",
                self.config.ui_url.trim_end_matches('/'),
                run.owner,
                run.project,
                run.uuid
            ),
            finished_at: run.finished_at.and_then(|t| {
                jiff::Timestamp::from_microsecond(t)
                    .ok()
                    .map(|t| t.to_string())
            }),
            context,
            delivery: delivery_id(&row.key),
        };
        let timeout = conn
            .spec()
            .get("timeout")
            .and_then(J::as_f64)
            .filter(|t| *t > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(self.config.timeout);
        let sent = send(
            &self.clients,
            &target,
            &backend,
            &message,
            timeout,
            &self.config,
        )
        .await;
        let tries = row.tries as u32 + 1;
        Ok(match sent {
            Sent::Ok(code) => Attempt::Delivered {
                code: Some(code as i64),
            },
            Sent::Refused(e) => Attempt::Failed {
                error: e,
                code: None,
                retry_at: None,
            },
            Sent::Retry(error, code) => Attempt::Failed {
                error: format!("try {tries} of {}: {error}", self.config.max_tries),
                code: code.map(i64::from),
                retry_at: (tries < self.config.max_tries)
                    .then(|| crate::store::now_micros() + backoff(&self.config, tries)),
            },
            Sent::Rejected(error, code) => Attempt::Failed {
                error,
                code: Some(code as i64),
                retry_at: None,
            },
        })
    }

    /// A notifier hook is a run too: a `notifier` run beside its source, with the
    /// delivery's outcome as its status and the source in its meta (lineage).
    async fn record_hook_run(&self, row: &OutboxRow, attempt: &Attempt) {
        let (status, reason, msg) = match attempt {
            Attempt::Delivered { code } => (
                RunStatus::Succeeded,
                "NotificationDelivered",
                format!("delivered (HTTP {})", code.unwrap_or_default()),
            ),
            Attempt::Failed {
                retry_at: Some(_), ..
            } => return,
            Attempt::Failed { error, .. } => {
                (RunStatus::Failed, "NotificationFailed", error.clone())
            }
            Attempt::Skipped { why } => (RunStatus::Skipped, "ConditionsFalse", why.clone()),
        };
        let res: Result<(), StoreError> = async {
            let source = self.store.run_by_id(row.run_id).await?;
            let user = match &source.username {
                Some(u) => self.store.user_by_name(u).await?,
                None => return Ok(()),
            };
            let entry = row.entry();
            let hub = entry.get("hubRef").and_then(J::as_str).unwrap_or_default();
            let meta = Map::from_iter([
                ("is_hook".to_string(), J::Bool(true)),
                (
                    "hook".to_string(),
                    json!({"source": source.uuid, "trigger": row.trigger, "connection": row.connection, "hub_ref": hub, "delivery": delivery_id(&row.key)}),
                ),
            ]);
            let new = NewRun {
                name: Some(format!(
                    "{}-{}",
                    source.name.as_deref().unwrap_or("run"),
                    hub.split(':').next().unwrap_or("hook")
                )),
                kind: Some("notifier".into()),
                meta_info: meta,
                is_managed: false,
                inputs: entry
                    .get("params")
                    .and_then(J::as_object)
                    .map(|p| {
                        p.iter()
                            .map(|(k, v)| (k.clone(), v.get("value").cloned().unwrap_or(J::Null)))
                            .collect()
                    })
                    .unwrap_or_default(),
                ..Default::default()
            };
            let hook = self.store.create_run(source.project_id, &user, new).await?;
            self.store.set_hook_run_done(row.id, &hook.uuid).await?;
            self.store
                .add_status(&hook.uuid, RunStatus::Running, None, None, None, true)
                .await?;
            self.store
                .add_status(&hook.uuid, status, Some(reason), Some(&msg), None, true)
                .await?;
            Ok(())
        }
        .await;
        if let Err(e) = res {
            tracing::warn!("outbox: recording the hook run of delivery {}: {e}", row.id);
        }
    }
}

/// Why a try did not get as far as a reply.
enum Fail {
    /// Trying again will not help (a spec or a connection to fix).
    Permanent(String),
    /// It may work next time (the store out of reach; a secret this process cannot read).
    Transient(String),
}

impl Fail {
    fn store(e: StoreError) -> Fail {
        match e {
            StoreError::Db(_) => Fail::Transient(e.to_string()),
            other => Fail::Permanent(other.to_string()),
        }
    }
}

impl From<TargetError> for Fail {
    fn from(e: TargetError) -> Fail {
        match e {
            TargetError::Secret(m) => Fail::Transient(m),
            TargetError::Invalid(m) => Fail::Permanent(m),
        }
    }
}

/// Why a connection cannot be sent to.
#[derive(Debug)]
pub enum TargetError {
    /// Its secret cannot be read here.
    Secret(String),
    /// It is not a notifier, or lacks what one needs.
    Invalid(String),
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::Secret(m) | TargetError::Invalid(m) => f.write_str(m),
        }
    }
}

/// Where and how one connection is sent to.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: String,
    pub method: reqwest::Method,
    pub signing_key: Option<String>,
    pub shape: Shape,
}

impl Target {
    /// Reads a notifier connection: its spec (`url`, `method`, `channel`, `icon_url`) and its
    /// secret, read now. A secret that is a JSON object gives any of `url`, `signing_key`,
    /// `service_key`; a plain one is the webhook's signing key, PagerDuty's service key, or
    /// the URL of the others (Slack's, Discord's, Mattermost's and Teams' URLs are
    /// credentials).
    pub fn of(conn: &ConnectionRow, backend: &str) -> Result<Target, TargetError> {
        if !NOTIFIERS.contains(&backend) {
            return Err(TargetError::Invalid(format!(
                "`{backend}` is not a notifier (notifiers: {})",
                NOTIFIERS.join(", ")
            )));
        }
        let spec = conn.spec();
        let s = |k: &str| spec.get(k).and_then(J::as_str).map(str::to_string);
        let (mut url, mut signing_key, mut service_key) = (s("url"), None, s("service_key"));
        if let Some(secret) = conn.secret() {
            let value = secret.read().map_err(|e| {
                TargetError::Secret(format!(
                    "the secret of connection `{}` cannot be read: {e}",
                    conn.name
                ))
            })?;
            match serde_json::from_str::<Map<String, J>>(&value) {
                Ok(obj) => {
                    let g = |k: &str| obj.get(k).and_then(J::as_str).map(str::to_string);
                    url = g("url").or(url);
                    signing_key = g("signing_key");
                    service_key = g("service_key").or(service_key);
                }
                Err(_) => match conn.kind.as_str() {
                    "webhook" => signing_key = Some(value),
                    "pagerduty" => service_key = Some(value),
                    _ => url = Some(value),
                },
            }
        }
        let url = match (url, backend) {
            (Some(u), _) => u,
            (None, "pagerduty") => {
                "https://events.pagerduty.com/generic/2010-04-15/create_event.json".into()
            }
            (None, _) => {
                return Err(TargetError::Invalid(format!(
                    "connection `{}` has no URL: give `url` in its spec, or a secret holding it",
                    conn.name
                )));
            }
        };
        let method = match s("method").map(|m| m.to_ascii_uppercase()).as_deref() {
            None | Some("POST") => reqwest::Method::POST,
            Some("GET") if backend == "webhook" => reqwest::Method::GET,
            Some(other) => {
                return Err(TargetError::Invalid(format!(
                    "connection `{}`: method `{other}` is not supported (POST, or GET for a webhook)",
                    conn.name
                )));
            }
        };
        Ok(Target {
            url,
            method,
            signing_key,
            shape: Shape {
                channel: s("channel"),
                icon_url: s("icon_url"),
                service_key,
            },
        })
    }
}

enum Sent {
    Ok(u16),
    /// Worth another try: a 5xx, a 429, a timeout, no connection.
    Retry(String, Option<u16>),
    /// The receiver said no (a 4xx): trying again will not help.
    Rejected(String, u16),
    /// Not sent: the URL is refused.
    Refused(String),
}

/// HTTP clients by host and the addresses checked for it: a client (its TLS roots, its
/// connections) is made once per host and reused, and only ever connects to the addresses
/// [`guard`] checked (a host that resolves elsewhere later gets a new client).
#[derive(Default)]
pub struct Clients(
    std::sync::Mutex<std::collections::HashMap<(String, Vec<SocketAddr>), reqwest::Client>>,
);

impl Clients {
    fn get(
        &self,
        url: &reqwest::Url,
        addrs: &[SocketAddr],
    ) -> Result<reqwest::Client, reqwest::Error> {
        let host = url.host_str().unwrap_or_default().to_string();
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok();
        let mut sorted = if literal { Vec::new() } else { addrs.to_vec() };
        sorted.sort();
        let key = (host.clone(), sorted);
        let mut map = self.0.lock().expect("not poisoned");
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("polyaxon/", env!("CARGO_PKG_VERSION")));
        if !literal {
            builder = builder.resolve_to_addrs(&host, addrs);
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = builder.build()?;
        // Hosts that moved leave old entries: kept small.
        if map.len() >= 256 {
            map.clear();
        }
        map.insert(key, client.clone());
        Ok(client)
    }
}

async fn send(
    clients: &Clients,
    t: &Target,
    backend: &str,
    m: &Message,
    timeout: Duration,
    config: &Config,
) -> Sent {
    let (url, addrs) = match guard(&t.url, config.allow_link_local).await {
        Ok(v) => v,
        Err(GuardError::Refused(e)) => return Sent::Refused(e),
        Err(GuardError::Unresolved(e)) => return Sent::Retry(e, None),
    };
    let client = match clients.get(&url, &addrs) {
        Ok(c) => c,
        Err(e) => return Sent::Retry(format!("cannot make an HTTP client: {e}"), None),
    };
    let body = payload::body(backend, m, &t.shape);
    let text = body.to_string();
    // What is signed is what the receiver gets: the body, or a GET's whole query string.
    let (mut req, signed) = if t.method == reqwest::Method::GET {
        let mut with_query = url.clone();
        with_query.query_pairs_mut().extend_pairs(payload::query(m));
        let q = with_query.query().unwrap_or_default().to_string();
        (client.get(with_query).timeout(timeout), q)
    } else {
        (
            client
                .post(url.clone())
                .timeout(timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(text.clone()),
            text,
        )
    };
    if let Some(key) = &t.signing_key {
        let ts = jiff::Timestamp::now().as_second();
        req = req.header("X-Polyaxon-Signature", signature(key, ts, &signed));
    }
    req = req
        .header("X-Polyaxon-Delivery", &m.delivery)
        .header("X-Polyaxon-Event", format!("run.{}", m.status));
    match req.send().await {
        Ok(resp) => {
            let code = resp.status();
            if code.is_success() {
                Sent::Ok(code.as_u16())
            } else {
                // At most the first KiB of the answer, without the URL's path (a receiver's
                // error page may echo it, and it may be a credential).
                let mut resp = resp;
                let mut head = Vec::new();
                while head.len() < 1024 {
                    match resp.chunk().await {
                        Ok(Some(c)) => head.extend_from_slice(&c[..c.len().min(1024 - head.len())]),
                        _ => break,
                    }
                }
                let mut text = String::from_utf8_lossy(&head).into_owned();
                if url.path().len() > 1 {
                    text = text.replace(url.path(), "/…");
                }
                let text: String = text.chars().take(200).collect();
                let msg = format!(
                    "{} answered {code}{}",
                    redact(&url),
                    if text.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", text.trim())
                    }
                );
                if code.is_server_error() || code == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    Sent::Retry(msg, Some(code.as_u16()))
                } else if code.is_redirection() {
                    Sent::Rejected(
                        format!("{msg} (redirects are not followed: give the final URL)"),
                        code.as_u16(),
                    )
                } else {
                    Sent::Rejected(msg, code.as_u16())
                }
            }
        }
        Err(e) => {
            let why = if e.is_timeout() {
                format!("no answer from {} within {:?}", redact(&url), timeout)
            } else {
                let mut msg = format!("cannot reach {}", redact(&url));
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg = format!("{msg}: {s}");
                    src = s.source();
                }
                msg
            };
            Sent::Retry(why, None)
        }
    }
}

/// A URL for messages: scheme, host and port only (the path of a Slack or Discord webhook is
/// its credential).
pub fn redact(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}/…", url.scheme()),
        (Some(h), None) => format!("{}://{h}/…", url.scheme()),
        _ => url.scheme().to_string(),
    }
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`.
pub fn signature(key: &str, ts: i64, body: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key");
    mac.update(format!("{ts}.{body}").as_bytes());
    let sig = mac.finalize().into_bytes();
    let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={ts},v1={hex}")
}

/// Checks a signature header against a body, as a receiver does: the HMAC matches and the
/// time is within `tolerance` of now (an older one is a replay).
pub fn verify(key: &str, header: &str, body: &str, tolerance: Duration) -> Result<(), String> {
    let mut ts = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => ts = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_string()),
            _ => {}
        }
    }
    let ts = ts.ok_or("no timestamp")?;
    let now = jiff::Timestamp::now().as_second();
    if (now - ts).unsigned_abs() > tolerance.as_secs() {
        return Err(format!("the signature is {} s old", now - ts));
    }
    let want = signature(key, ts, body);
    let want = want.rsplit_once("v1=").map(|(_, s)| s).unwrap_or_default();
    if sigs
        .iter()
        .any(|s| constant_time_eq(s.as_bytes(), want.as_bytes()))
    {
        Ok(())
    } else {
        Err("the signature does not match".into())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A delivery's id: the same on every try of it.
pub fn delivery_id(key: &str) -> String {
    let d = sha2::Sha256::digest(key.as_bytes());
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn backoff(config: &Config, tries: u32) -> i64 {
    let base = config.retry_base.as_micros() as i64;
    let d = base
        .saturating_mul(1i64 << (tries - 1).min(16))
        .min(60_000_000);
    // Up to a fifth more, so that the retries of many deliveries spread out.
    let jitter = (crate::store::now_micros().rem_euclid(1000) * d / 5000).max(0);
    d + jitter
}

/// Why a URL is not sent to.
#[derive(Debug)]
pub enum GuardError {
    Refused(String),
    /// Its host does not resolve now (may later).
    Unresolved(String),
}

/// Checks a notification URL before it is sent to: http(s) only; none of its addresses
/// link-local or a cloud metadata service's unless `allow_link_local`. Returns the URL and the
/// addresses to connect to (exactly those checked).
pub async fn guard(
    url: &str,
    allow_link_local: bool,
) -> Result<(reqwest::Url, Vec<SocketAddr>), GuardError> {
    let parsed = check_url(url, allow_link_local).map_err(GuardError::Refused)?;
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), port)).await {
        Ok(a) => a.collect(),
        Err(e) => {
            return Err(GuardError::Unresolved(format!(
                "cannot resolve `{host}`: {e}"
            )));
        }
    };
    if !allow_link_local && let Some(bad) = addrs.iter().find(|a| is_link_local(a.ip())) {
        return Err(GuardError::Refused(format!(
            "{} resolves to {}, a link-local address (where cloud metadata services answer); \
             notifications are not sent there unless the server allows it (`--notify-allow-link-local`)",
            redact(&parsed),
            bad.ip()
        )));
    }
    Ok((parsed, addrs))
}

/// The checks a URL can have without resolving it (also when a connection is created).
pub fn check_url(url: &str, allow_link_local: bool) -> Result<reqwest::Url, String> {
    // Never echoed: a Slack or Discord URL is a credential.
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("the URL is not valid: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "only http and https URLs are sent to, not `{}:`",
            parsed.scheme()
        ));
    }
    let host = parsed.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err("the URL has no host".to_string());
    }
    if !allow_link_local {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let metadata = ["metadata.google.internal", "metadata", "instance-data"]
            .contains(&bare.to_ascii_lowercase().trim_end_matches('.'));
        if metadata || bare.parse::<IpAddr>().is_ok_and(is_link_local) {
            return Err(format!(
                "`{host}` is a link-local or cloud metadata address; notifications are not sent there \
                 unless the server allows it (`--notify-allow-link-local`)"
            ));
        }
    }
    Ok(parsed)
}

fn is_link_local(ip: IpAddr) -> bool {
    // 169.254.0.0/16 (AWS, GCP, Azure metadata live at 169.254.169.254) and Alibaba's
    // 100.100.100.200.
    let v4_bad = |v4: std::net::Ipv4Addr| {
        v4.is_link_local() || v4 == std::net::Ipv4Addr::new(100, 100, 100, 200)
    };
    match ip {
        IpAddr::V4(v4) => v4_bad(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let o = v6.octets();
            let tail = std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]);
            // An IPv4 address carried in IPv6: mapped (::ffff:a.b.c.d), compatible
            // (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d), 6to4 (2002:aabb:ccdd::).
            let carries_v4 = v6.to_ipv4_mapped().is_some()
                || s[..6] == [0; 6]
                || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            let embedded = if carries_v4 {
                Some(tail)
            } else if s[0] == 0x2002 {
                Some(std::net::Ipv4Addr::new(o[2], o[3], o[4], o[5]))
            } else {
                None
            };
            if embedded.is_some_and(v4_bad) {
                return true;
            }
            // fe80::/10, and AWS's IPv6 metadata address fd00:ec2::254.
            (s[0] & 0xffc0) == 0xfe80
                || v6
                    == "fd00:ec2::254"
                        .parse::<std::net::Ipv6Addr>()
                        .expect("literal")
        }
    }
}

/// Upstream's default context of a hook: uuid, name, kind, status, runtime, wait_time,
/// duration, inputs, outputs and condition (the run's last status condition).
pub fn default_context(run: &RunRow, last: Option<&crate::store::StatusRow>) -> Map<String, J> {
    let condition = last.map(|s| {
        json!({
            "type": s.kind,
            "status": s.status,
            "reason": s.reason,
            "message": s.message,
            "last_transition_time": jiff::Timestamp::from_microsecond(s.created_at).ok().map(|t| t.to_string()),
        })
    });
    Map::from_iter([
        ("uuid".to_string(), J::from(run.uuid.clone())),
        ("name".to_string(), J::from(run.name.clone())),
        ("kind".to_string(), J::from(run.kind.clone())),
        ("status".to_string(), J::from(run.status.clone())),
        ("runtime".to_string(), J::from(run.runtime.clone())),
        ("wait_time".to_string(), J::from(run.wait_time)),
        ("duration".to_string(), J::from(run.duration)),
        ("inputs".to_string(), J::Object(run.inputs())),
        ("outputs".to_string(), J::Object(run.outputs())),
        ("condition".to_string(), condition.unwrap_or(J::Null)),
    ])
}

/// What `conditions` and a hook's param templates see: the run's inputs and outputs by name,
/// the default context's names, and `globals`.
fn condition_context(run: &RunRow, defaults: &Map<String, J>) -> J {
    let mut root = Map::new();
    for (k, v) in run.inputs().into_iter().chain(run.outputs()) {
        root.insert(k, v);
    }
    for (k, v) in defaults {
        root.insert(k.clone(), v.clone());
    }
    root.insert(
        "globals".into(),
        json!({
            "uuid": run.uuid, "name": run.name, "status": run.status,
            "owner_name": run.owner, "project_name": run.project,
        }),
    );
    J::Object(root)
}

fn minijinja_value(v: &J) -> minijinja::Value {
    minijinja::Value::from_serialize(v)
}

/// The connections as templates see them (`connections['name']`): the non-secret part —
/// the schema's keys, `kind`, `name`, `schema`, `description`, `tags`.
pub fn template_connections(rows: &[ConnectionRow]) -> Map<String, J> {
    rows.iter()
        .map(|c| {
            let spec = c.spec();
            let mut m = spec.clone();
            m.insert("kind".into(), c.kind.clone().into());
            m.insert("name".into(), c.name.clone().into());
            m.insert("schema".into(), J::Object(spec));
            if let Some(d) = &c.description {
                m.insert("description".into(), d.clone().into());
            }
            m.insert("tags".into(), json!(c.tags()));
            (c.name.clone(), J::Object(m))
        })
        .collect()
}

/// The secret reference of a connection as given to the API: `env:NAME` or `file:PATH`.
pub fn parse_secret_ref(s: &str) -> Result<SecretRef, String> {
    match s.split_once(':') {
        Some(("env", n))
            if !n.is_empty()
                && !n.starts_with(|c: char| c.is_ascii_digit())
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Ok(SecretRef::Env(n.to_string()))
        }
        Some(("file", p)) if p.starts_with('/') => Ok(SecretRef::File(p.to_string())),
        // The value is not echoed: it may be the secret itself, pasted.
        _ => Err(
            "`secret` says where the secret is read, not what it is: give `env:NAME` (an environment variable of the process that sends: letters, digits and `_`) or `file:/absolute/path` (a file on its machine)"
                .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_expire() {
        let now = jiff::Timestamp::now().as_second();
        let h = signature("k", now, "{\"a\":1}");
        assert!(verify("k", &h, "{\"a\":1}", Duration::from_secs(300)).is_ok());
        assert!(verify("k", &h, "{\"a\":2}", Duration::from_secs(300)).is_err());
        assert!(verify("other", &h, "{\"a\":1}", Duration::from_secs(300)).is_err());
        let old = signature("k", now - 3600, "{}");
        let e = verify("k", &old, "{}", Duration::from_secs(300)).unwrap_err();
        assert!(e.contains("old"), "{e}");
    }

    #[test]
    fn urls_refused() {
        for bad in [
            "ftp://example.com/x",
            "file:///etc/passwd",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://[::ffff:169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://100.100.100.200/latest/meta-data/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://169.254.169.254/", true).is_ok());
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/x", false).is_ok());
    }

    #[tokio::test]
    async fn resolved_link_local_refused() {
        // `localhost` resolves to loopback: allowed; a literal link-local is refused before
        // resolving.
        assert!(guard("http://localhost:1/", false).await.is_ok());
        assert!(matches!(
            guard("http://169.254.1.1/", false).await,
            Err(GuardError::Refused(_))
        ));
    }

    #[test]
    fn secret_refs() {
        assert_eq!(parse_secret_ref("env:X"), Ok(SecretRef::Env("X".into())));
        assert!(parse_secret_ref("hunter2").is_err());
    }
}
