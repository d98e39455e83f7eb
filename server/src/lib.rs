//! The polyaxon server library: Polyaxon's v1 REST API over a store (PostgreSQL for teams,
//! SQLite for the embedded default), its auth and artifacts. The CLI mounts it in-process for
//! the embedded mode and `polyaxon server start` serves it over HTTP.
//!
//! It depends on `polyaxonfile` for operation specs; it never depends on the CLI.

pub mod api;
pub mod artifacts;
pub mod auth;
pub mod error;
pub mod eventfiles;
pub mod files;
pub mod ingest;
pub mod notify;
pub mod openapi;

pub mod routes;
pub mod store;
pub mod transfers;
pub mod ui;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::store::{Store, User};

/// This server's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Who may call without a token.
#[derive(Clone, Debug)]
pub enum AuthMode {
    /// Anyone is this user (the embedded, single-user default; upstream's CE "default" owner).
    Open { user: String },
    /// Every call needs a token.
    Tokens,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Where runs' files live (`<root>/<run uuid>/…`).
    pub artifacts_root: PathBuf,
    pub auth: AuthMode,
    /// Largest JSON body (bytes).
    pub max_body: usize,
    /// Largest metrics batch body (bytes).
    pub max_metrics_body: usize,
    /// Largest artifact upload (bytes).
    pub max_upload: usize,
    /// Failed logins allowed per username, and per client address, within `login_window`.
    pub login_failures_per_user: usize,
    pub login_failures_per_address: usize,
    pub login_window: std::time::Duration,
    /// How long a run's token keeps working after the run ended.
    pub run_token_grace: std::time::Duration,
    /// How long a client may take to send a request's headers.
    pub header_timeout: std::time::Duration,
    /// How long a request body may pause between chunks.
    pub body_idle_timeout: std::time::Duration,
    /// How long in-flight requests may finish at shutdown.
    pub drain_timeout: std::time::Duration,
    /// Artifact downloads and uploads one user may have open at once (see `transfers`).
    pub max_transfers_per_user: usize,
    /// How notifications and hooks are delivered.
    pub notify: notify::Config,
    /// Where the proxy reaches a Kubernetes run's Service: `{name}` (its resources' name) and
    /// `{namespace}` are filled in (default `{name}.{namespace}.svc`, the cluster's DNS, as a
    /// server deployed in the cluster resolves it).
    pub k8s_service_host: String,
    /// The object store runs' files go to (uploads, outputs, code; logs and event files stay
    /// in `artifacts_root` while the server takes them in): opened and checked by the caller.
    /// `None`: `artifacts_root` holds everything.
    pub artifacts_store: Option<artifacts::Store>,
}

impl Config {
    pub fn new(artifacts_root: impl Into<PathBuf>, auth: AuthMode) -> Self {
        Config {
            artifacts_root: artifacts_root.into(),
            auth,
            max_body: 8 << 20,
            max_metrics_body: 256 << 20,
            max_upload: 4 << 30,
            login_failures_per_user: 10,
            login_failures_per_address: 50,
            login_window: std::time::Duration::from_secs(15 * 60),
            run_token_grace: std::time::Duration::from_secs(10 * 60),
            header_timeout: std::time::Duration::from_secs(30),
            body_idle_timeout: std::time::Duration::from_secs(60),
            drain_timeout: std::time::Duration::from_secs(30),
            max_transfers_per_user: 16,
            notify: notify::Config::default(),
            k8s_service_host: "{name}.{namespace}.svc".into(),
            artifacts_store: None,
        }
    }
}

/// Shared state of the server.
#[derive(Clone)]
pub struct App(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub config: Config,
    /// The user of tokenless calls in open mode.
    pub open_user: Option<User>,
    pub installation_key: String,
    pub tokens: auth::TokenCache,
    pub logins: auth::LoginLimiter,
    log_writers:
        tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<files::LogWriter>>>>>,
    /// Event-file syncs in progress, by run (one at a time per run).
    sync_locks: KeyedLocks,
    /// Metric batches waiting, by run (see `ingest::ingest`).
    pub ingest_groups: ingest::Groups,
    /// Metric transactions in progress at once, over all runs: an eighth of the database
    /// connections (2 of PostgreSQL's 16, 1 on SQLite, whose writes take turns anyway). The
    /// rest, and most of the CPU, stay for reads: under 200 clients reading and writing, a
    /// half gave reads a p99 of 120 ms, an eighth 75-95 ms (bench/load.py). Writes lose
    /// little: a run's batches that come while it waits for a slot are stored as one group.
    pub ingest_slots: Arc<tokio::sync::Semaphore>,
    /// Downloads and uploads open, per user.
    pub transfers: transfers::Transfers,
    /// When lapsed leases were last looked for (microseconds).
    pub last_sweep: std::sync::atomic::AtomicI64,
    /// The task that listens for runs other servers queue (PostgreSQL).
    listener: std::sync::OnceLock<tokio::task::JoinHandle<()>>,
}

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// What starting the app created: the superuser's password when it was generated.
pub struct Started {
    pub app: App,
    pub generated_password: Option<String>,
}

impl App {
    /// Prepares the app over an opened store: the first user is created when there is none
    /// (`root` for a server, with `admin_password` or a generated one; the open-mode user in
    /// open mode).
    pub async fn start(
        store: Store,
        config: Config,
        admin_password: Option<&str>,
    ) -> Result<Started, store::StoreError> {
        if let Some(root) = config.artifacts_store.as_ref().and_then(|s| s.local_root()) {
            // Offloading moves a file from the artifacts root to the store: on one directory
            // (or one inside the other) it would delete the only copy.
            let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            let (store_root, files_root) = (canon(root), canon(&config.artifacts_root));
            if store_root.starts_with(&files_root) || files_root.starts_with(&store_root) {
                return Err(store::StoreError::Invalid(format!(
                    "the artifacts store `{}` and the artifacts root `{}` overlap: give the store a directory of its own",
                    root.display(),
                    config.artifacts_root.display()
                )));
            }
        }
        std::fs::create_dir_all(&config.artifacts_root).map_err(|e| {
            store::StoreError::Invalid(format!(
                "cannot create `{}`: {e}",
                config.artifacts_root.display()
            ))
        })?;
        let (open_user, generated_password) = match &config.auth {
            AuthMode::Open { user } => {
                // No password: nobody logs in as the open-mode user, calls simply are it.
                let u = match store.user_by_name(user).await {
                    Ok(u) => u,
                    Err(store::StoreError::NotFound(_)) => {
                        match store.create_user(user, None, None, true).await {
                            Ok(u) => u,
                            // Another process created it meanwhile.
                            Err(store::StoreError::Conflict(_)) => store.user_by_name(user).await?,
                            Err(e) => return Err(e),
                        }
                    }
                    Err(e) => return Err(e),
                };
                (Some(u), None)
            }
            AuthMode::Tokens => (None, store.ensure_superuser("root", admin_password).await?),
        };
        let key = installation_key(&config.artifacts_root);
        let logins = auth::LoginLimiter::new(
            config.login_failures_per_user,
            config.login_failures_per_address,
            config.login_window,
        );
        let ingest_slots = (store.max_connections() as usize).div_ceil(8);
        let inner = Inner {
            logins,
            store,
            config,
            open_user,
            installation_key: key,
            tokens: auth::TokenCache::default(),
            log_writers: Default::default(),
            sync_locks: Default::default(),
            ingest_groups: Default::default(),
            ingest_slots: Arc::new(tokio::sync::Semaphore::new(ingest_slots)),
            transfers: Default::default(),
            last_sweep: Default::default(),
            listener: Default::default(),
        };
        let app = App(Arc::new(inner));
        // Series written before their extrema were kept get theirs, once, in the background.
        let store = app.store.clone();
        tokio::spawn(async move {
            loop {
                match store.backfill_extrema(200).await {
                    Ok(0) => break,
                    Ok(_) => tokio::task::yield_now().await,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot compute the series' lowest and highest values; trying again in a minute");
                        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    }
                }
            }
        });
        Ok(Started {
            app,
            generated_password,
        })
    }

    /// The router with request logging.
    pub fn router(&self) -> axum::Router {
        use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse};
        routes::router(self.clone()).layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
    }

    /// Starts listening for runs other servers queue, once (agents' long polls wake on them).
    pub fn listen_queued(&self) {
        self.listener.get_or_init(|| {
            let store = self.store.clone();
            tokio::spawn(async move { store.listen_queued().await })
        });
    }

    /// The lock that keeps a run's event-file syncs one at a time.
    pub fn sync_lock(&self, uuid: &str) -> Arc<tokio::sync::Mutex<()>> {
        keyed_lock(&self.sync_locks, uuid)
    }
}

type KeyedLocks = std::sync::Mutex<HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>>;

fn keyed_lock(locks: &KeyedLocks, key: &str) -> Arc<tokio::sync::Mutex<()>> {
    {
        let mut map = locks.lock().expect("not poisoned");
        if let Some(l) = map.get(key).and_then(std::sync::Weak::upgrade) {
            return l;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let l = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.to_string(), Arc::downgrade(&l));
        l
    }
}

impl App {
    pub fn run_dir(&self, uuid: &str) -> PathBuf {
        files::run_dir(&self.config.artifacts_root, uuid)
    }

    /// Moves files just written under a run's directory (`rels`, relative to it) to the
    /// artifacts store, when there is one: answered once the store has them; the local copy
    /// is removed after, and kept if the store fails (nothing is lost; the caller is told).
    pub async fn offload(&self, uuid: &str, rels: &[String]) -> Result<(), ApiError> {
        let Some(store) = &self.config.artifacts_store else {
            return Ok(());
        };
        let dir = self.run_dir(uuid);
        let jobs: Vec<(String, PathBuf)> = rels
            .iter()
            .map(|rel| (artifacts::join(uuid, rel), dir.join(rel)))
            .collect();
        let store = store.clone();
        let app = self.clone();
        let sent: Vec<Result<(), ApiError>> = futures_util::stream::iter(jobs)
            .map(move |(key, path)| {
                let (store, app) = (store.clone(), app.clone());
                async move {
                    use std::os::unix::fs::MetadataExt;
                    // One offload of a path at a time: writers of one path reach the store in
                    // the order their files reached the disk.
                    let lock = keyed_lock(&app.sync_locks, &format!("offload:{key}"));
                    let _held = lock.lock().await;
                    let Ok(before) = tokio::fs::metadata(&path).await else {
                        // Already sent and removed by the offload of a later write to the same
                        // path (it found this file, or the one that replaced it): the store
                        // has a whole file of one of them, the last to reach the disk.
                        return Ok(());
                    };
                    store.put_file(&key, &path).await.map_err(ApiError::from)?;
                    // Removed only if it is still the file sent: an upload to the same path
                    // meanwhile replaced it, and that one is offloaded by its own request.
                    if let Ok(now) = tokio::fs::metadata(&path).await
                        && now.ino() == before.ino()
                        && now.dev() == before.dev()
                        && now.mtime_nsec() == before.mtime_nsec()
                        && now.len() == before.len()
                    {
                        let _ = tokio::fs::remove_file(&path).await;
                    }
                    Ok(())
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        sent.into_iter().collect()
    }

    /// Copies a run's log files to the artifacts store, when there is one (they stay here
    /// too, where they are read first): done as the run ends, so that the store holds its
    /// logs whatever happens to this disk. How many files were copied.
    pub async fn keep_logs(&self, uuid: &str) -> Result<usize, ApiError> {
        let Some(store) = &self.config.artifacts_store else {
            return Ok(0);
        };
        let dir = self.run_dir(uuid).join("plxlogs");
        let names = tokio::task::spawn_blocking(move || files::log_files(&dir))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        // No line appended while the files are read.
        let slot = {
            let mut map = self.log_writers.lock().await;
            map.entry(uuid.to_string()).or_default().clone()
        };
        let _held = slot.lock().await;
        for name in &names {
            let path = self.run_dir(uuid).join("plxlogs").join(name);
            store
                .put_file(&artifacts::join(uuid, &format!("plxlogs/{name}")), &path)
                .await?;
        }
        Ok(names.len())
    }

    /// Brings a run's logs back from the artifacts store when this disk has none of them
    /// (another replica took them in, or the disk was replaced).
    pub async fn fetch_logs(&self, uuid: &str) -> Result<(), ApiError> {
        let Some(store) = &self.config.artifacts_store else {
            return Ok(());
        };
        let dir = self.run_dir(uuid).join("plxlogs");
        if tokio::fs::metadata(&dir).await.is_ok() {
            return Ok(());
        }
        let prefix = artifacts::join(uuid, "plxlogs");
        let (_, objects) = store.list_dir(&prefix).await?;
        for o in objects.iter().filter(|o| o.path.ends_with(".jsonl")) {
            store
                .get_to_file(&artifacts::join(&prefix, &o.path), &dir.join(&o.path))
                .await?;
        }
        Ok(())
    }

    /// Removes the files of a deleted run, here and in the store. Its note in
    /// `file_removals` goes once both are gone; a failure keeps it, for
    /// [`App::sweep_removals`] to try again.
    /// A small file of a run (at most `max` bytes), from this disk or the artifacts store;
    /// none when it is in neither, or larger.
    pub async fn read_run_file(
        &self,
        uuid: &str,
        rel: &str,
        max: u64,
    ) -> Result<Option<bytes::Bytes>, ApiError> {
        let path = files::safe_join(&self.run_dir(uuid), rel)?;
        if let Ok(m) = tokio::fs::metadata(&path).await {
            if !m.is_file() || m.len() > max {
                return Ok(None);
            }
            return Ok(Some(tokio::fs::read(&path).await?.into()));
        }
        let Some(store) = &self.config.artifacts_store else {
            return Ok(None);
        };
        let key = artifacts::join(uuid, rel);
        match store.head(&key).await? {
            Some(e) if e.size <= max => Ok(Some(store.get_bytes(&key).await?)),
            _ => Ok(None),
        }
    }

    /// The names of the files directly in a run's directory `rel`, on this disk or in the
    /// artifacts store, sorted.
    pub async fn run_file_names(&self, uuid: &str, rel: &str) -> Result<Vec<String>, ApiError> {
        let dir = files::safe_join(&self.run_dir(uuid), rel)?;
        let mut names: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(it) => it
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect(),
            Err(_) => Vec::new(),
        };
        if let Some(store) = &self.config.artifacts_store {
            let (_, objects) = store.list_dir(&artifacts::join(uuid, rel)).await?;
            names.extend(objects.into_iter().map(|o| o.path));
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    pub async fn remove_run_files(&self, uuid: &str) {
        let mut failed = None;
        if let Some(store) = &self.config.artifacts_store
            && let Err(e) = store.delete_prefix(uuid).await
        {
            tracing::warn!(run = uuid, error = %e, "cannot remove the run's files from the store (tried again later)");
            failed = Some(e.to_string());
        }
        let dir = self.run_dir(uuid);
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(run = uuid, error = %e, "cannot remove the run's files (tried again later)");
            failed.get_or_insert(e.to_string());
        }
        self.log_writers.lock().await.remove(uuid);
        let noted = match failed {
            None => self.store.removal_done(uuid).await,
            Some(e) => self.store.removal_failed(uuid, &e).await,
        };
        if let Err(e) = noted {
            tracing::warn!(run = uuid, error = %e, "cannot note the removal of the run's files");
        }
    }

    /// Tries again the removals of deleted runs' files that failed (or that a process killed
    /// mid-way left); how many were due.
    pub async fn sweep_removals(&self) -> usize {
        let due = match self.store.due_removals(100).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the removals due");
                return 0;
            }
        };
        for uuid in &due {
            self.remove_run_files(uuid).await;
        }
        due.len()
    }

    /// Sweeps the removals due every minute, in the background (a server's).
    pub fn sweep_removals_forever(&self) {
        let app = self.clone();
        tokio::spawn(async move {
            loop {
                app.sweep_removals().await;
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            }
        });
    }

    pub async fn copy_run_files(&self, from: &str, to: &str) -> Result<(), ApiError> {
        let (src, dst) = (self.run_dir(from), self.run_dir(to));
        tokio::task::spawn_blocking(move || copy_dir(&src, &dst))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
        if let Some(store) = &self.config.artifacts_store {
            store.copy_prefix(from, to).await?;
        }
        Ok(())
    }

    /// Appends log lines to a run, one writer per run at a time.
    pub async fn append_logs(
        &self,
        uuid: &str,
        lines: Vec<api::V1Log>,
        id: Option<&str>,
    ) -> Result<(), ApiError> {
        let slot = {
            let mut map = self.log_writers.lock().await;
            map.entry(uuid.to_string()).or_default().clone()
        };
        let mut guard = slot.lock().await;
        if guard.is_none() {
            *guard = Some(files::LogWriter::open(&self.run_dir(uuid))?);
        }
        let w = guard.as_mut().expect("opened above");
        w.append(&lines, store::now_micros(), id)?;
        Ok(())
    }
}

fn copy_dir(src: &Path, dst: &Path) -> std::io::Result<()> {
    if !src.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dst)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let to = dst.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to)?;
        } else {
            std::fs::copy(e.path(), to)?;
        }
    }
    Ok(())
}

/// A stable id of this installation, kept beside the artifacts.
fn installation_key(root: &Path) -> String {
    let f = root.join(".installation");
    if let Ok(k) = std::fs::read_to_string(&f) {
        return k.trim().to_string();
    }
    let k = store::new_uuid();
    let _ = std::fs::write(&f, &k);
    k
}

/// Serves the app on a listener until `shutdown` resolves, then finishes in-flight requests
/// (for at most `config.drain_timeout`).
///
/// Each connection knows its client's address (for the login limiter), must send a request's
/// headers within `config.header_timeout` (a client trickling them is cut off) and may not
/// pause a body for longer than `config.body_idle_timeout`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use tower::ServiceExt;

    let router = app.router();
    let header_timeout = app.config.header_timeout;
    let body_idle = app.config.body_idle_timeout;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: the listener itself is fine; wait a
                    // little rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |req: http::Request<hyper::body::Incoming>| {
                    let mut req = req.map(|b| {
                        axum::body::Body::new(tower_http::timeout::TimeoutBody::new(body_idle, b))
                    });
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(addr));
                    req
                });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(client = %addr, error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(app.config.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight at shutdown were cut off");
    }
    app.store.close().await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(l) = self.listener.get() {
            l.abort();
        }
    }
}
