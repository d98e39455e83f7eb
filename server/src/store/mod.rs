//! The store: users, tokens, projects, runs, statuses, metrics — one schema on two backends,
//! PostgreSQL (teams) and SQLite in WAL mode (the embedded default), through sqlx's `Any`
//! driver. SQL is written once with `$n` placeholders; [`Store::sql`] adapts it for SQLite.
//!
//! Handlers never see SQL: they call methods here, which return typed errors. The raw query
//! helpers are private to this module and its children; PQL's SQL builder lives here too.

mod metrics;
pub mod outbox;
pub mod pql;
mod projects;
pub mod queues;
mod runs;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::query::{Query, QueryAs};
use sqlx::{Any, AnyPool, ConnectOptions, Executor, FromRow};

pub use metrics::{Checked, Point, Series, SeriesData, Stats, checked, downsample};
pub use projects::{NewProject, ProjectPatch, ProjectRow};
pub use runs::{ClaimedRun, LineageScope, NewRun, RunPatch, RunRow, StatusRow};
pub use users::{TokenRow, TokenScope, User, random_secret as random_secret_pub};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The SQL dialect in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// A value bound to a query.
#[derive(Clone, Debug)]
pub enum Arg {
    I(i64),
    F(f64),
    S(String),
    B(bool),
    Bytes(Vec<u8>),
    OptI(Option<i64>),
    OptS(Option<String>),
    OptF(Option<f64>),
    OptB(Option<bool>),
    OptBytes(Option<Vec<u8>>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::I(v)
    }
}
impl From<f64> for Arg {
    fn from(v: f64) -> Self {
        Arg::F(v)
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::S(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::S(v.to_string())
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::B(v)
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::OptS(v)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::OptI(v)
    }
}
impl From<Option<bool>> for Arg {
    fn from(v: Option<bool>) -> Self {
        Arg::OptB(v)
    }
}
impl From<Option<Vec<u8>>> for Arg {
    fn from(v: Option<Vec<u8>>) -> Self {
        Arg::OptBytes(v)
    }
}
impl From<Option<f64>> for Arg {
    fn from(v: Option<f64>) -> Self {
        Arg::OptF(v)
    }
}

fn bind_all<'q>(
    mut q: Query<'q, Any, AnyArguments>,
    args: Vec<Arg>,
) -> Query<'q, Any, AnyArguments> {
    for a in args {
        q = match a {
            Arg::I(v) => q.bind(v),
            Arg::F(v) => q.bind(v),
            Arg::S(v) => q.bind(v),
            Arg::B(v) => q.bind(v),
            Arg::Bytes(v) => q.bind(v),
            Arg::OptI(v) => q.bind(v),
            Arg::OptS(v) => q.bind(v),
            Arg::OptF(v) => bind_opt_f64!(q, v),
            Arg::OptB(v) => q.bind(v),
            Arg::OptBytes(v) => q.bind(v),
        };
    }
    q
}

/// Binds an `Option<f64>`. sqlx's `Any` bridge sends a NULL double to PostgreSQL as a
/// FLOAT4 (and a NULL real as FLOAT8), so a statement first prepared with a NULL would then
/// reject 8-byte doubles; a NULL `f32` comes out as a FLOAT8 NULL, matching real values.
macro_rules! bind_opt_f64 {
    ($q:expr, $v:expr) => {
        match $v {
            Some(x) => $q.bind(x),
            None => $q.bind(Option::<f32>::None),
        }
    };
}
use bind_opt_f64;

fn bind_all_as<'q, O>(
    mut q: QueryAs<'q, Any, O, AnyArguments>,
    args: Vec<Arg>,
) -> QueryAs<'q, Any, O, AnyArguments> {
    for a in args {
        q = match a {
            Arg::I(v) => q.bind(v),
            Arg::F(v) => q.bind(v),
            Arg::S(v) => q.bind(v),
            Arg::B(v) => q.bind(v),
            Arg::Bytes(v) => q.bind(v),
            Arg::OptI(v) => q.bind(v),
            Arg::OptS(v) => q.bind(v),
            Arg::OptF(v) => bind_opt_f64!(q, v),
            Arg::OptB(v) => q.bind(v),
            Arg::OptBytes(v) => q.bind(v),
        };
    }
    q
}

/// The store, cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite has one writer at a time: this process's writers take turns here rather than
    /// in SQLite's busy handler, which sleeps in growing steps (a crowd of writers — a DAG's
    /// operations starting together — waited tens of milliseconds each).
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Woken when a run is queued by this process (agents' claims wait on it; other
    /// processes' queued runs arrive through PostgreSQL's `NOTIFY`, or are polled for).
    pub queued: std::sync::Arc<tokio::sync::Notify>,
    /// Woken when a run's end wrote outbox rows in this process (its workers send them).
    pub outbox_wake: std::sync::Arc<tokio::sync::Notify>,
    /// The runs whose end wrote outbox rows in this process (a supervisor waits for them),
    /// kept only when `track_fired` (a server does not wait: it would only grow).
    pub fired: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<i64>>>,
    pub track_fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
    url: std::sync::Arc<str>,
}

/// Why the store could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "`{0}` is not a database URL; use `postgres://user:password@host/db` or `sqlite:///path/to/polyaxon.db`"
    )]
    BadUrl(String),
    #[error("cannot connect to the database at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error(
        "the database schema is newer than this server (it has migration {0}, which this version does not know); upgrade polyaxon, or point it at another database"
    )]
    SchemaNewer(i64),
    #[error("cannot update the database schema: {0}")]
    Migrate(sqlx::migrate::MigrateError),
}

/// A database URL with any password hidden, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The database file of a `sqlite:` URL (none for in-memory ones).
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| std::path::PathBuf::from(path))
}

impl Store {
    /// Connects and brings the schema up to date (migrations are embedded, append-only).
    pub async fn open(url: &str) -> Result<Store, OpenError> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            return Err(OpenError::BadUrl(redact_url(url)));
        };
        let connect = |e| OpenError::Connect {
            url: redact_url(url),
            source: e,
        };
        let mut options = AnyConnectOptions::from_str(url).map_err(connect)?;
        // One direct connection first: an unreachable or misconfigured database fails at once
        // with its real reason, not after the pool's acquire timeout.
        let probe = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options)
            .await
            .map_err(connect)?;
        let _ = sqlx::Connection::close(probe).await;
        options = options
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(2));
        let pool = AnyPoolOptions::new()
            .max_connections(if dialect == Dialect::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            // sqlx tests a connection by a round trip when it is returned to the pool, and by
            // default again when it is taken out: a third of every query's round trips. It is
            // tested on the way out only when it sat idle for a while (a database restarted
            // meanwhile); one that broke in use is closed when it comes back.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > Duration::from_secs(1) {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;")
                            .await?;
                    } else {
                        // The store's queries are short: compiling them costs more than it saves
                        // (a 100,000-run count went from 95 ms to 300 ms with JIT).
                        conn.execute("SET jit = off").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(connect)?;
        let migrator = match dialect {
            Dialect::Postgres => sqlx::migrate!("migrations/postgres"),
            Dialect::Sqlite => sqlx::migrate!("migrations/sqlite"),
        };
        // SQLite has no lock of its own for migrations (PostgreSQL's is an advisory lock):
        // processes opening a fresh store at once would each create the tables. A lock file
        // beside the database makes them take turns.
        let lock_file = match dialect {
            Dialect::Sqlite => sqlite_path(url).and_then(|db| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(db.with_extension("migrate.lock"))
                    .ok()
            }),
            Dialect::Postgres => None,
        };
        let _migrating = match lock_file {
            Some(f) => tokio::task::spawn_blocking(move || f.lock().map(|()| f))
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        migrator.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::VersionMissing(v) => OpenError::SchemaNewer(v),
            other => OpenError::Migrate(other),
        })?;
        Ok(Store {
            pool,
            dialect,
            writer: Default::default(),
            queued: Default::default(),
            outbox_wake: Default::default(),
            fired: Default::default(),
            track_fired: Default::default(),
            url: url.into(),
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The most database connections this store opens.
    pub fn max_connections(&self) -> u32 {
        self.pool.options().get_max_connections()
    }

    /// Adapts `$n` placeholders to the dialect (`?n` for SQLite).
    fn sql(&self, sql: &str) -> String {
        match self.dialect {
            Dialect::Postgres => sql.to_string(),
            Dialect::Sqlite => sql.replace('$', "?"),
        }
    }

    async fn execute(&self, sql: &str, args: Vec<Arg>) -> Result<u64> {
        let sql = self.sql(sql);
        let _turn = self.write_turn().await;
        Ok(bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), args)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// This process's turn to write (SQLite); none needed on PostgreSQL.
    async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self.dialect {
            Dialect::Sqlite => Some(self.writer.clone().lock_owned().await),
            Dialect::Postgres => None,
        }
    }

    async fn fetch_all<T>(&self, sql: &str, args: Vec<Arg>) -> Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let sql = self.sql(sql);
        Ok(
            bind_all_as(sqlx::query_as::<Any, T>(sqlx::AssertSqlSafe(sql)), args)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn fetch_optional<T>(&self, sql: &str, args: Vec<Arg>) -> Result<Option<T>>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let sql = self.sql(sql);
        Ok(
            bind_all_as(sqlx::query_as::<Any, T>(sqlx::AssertSqlSafe(sql)), args)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn fetch_one<T>(&self, sql: &str, args: Vec<Arg>) -> Result<T>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let sql = self.sql(sql);
        Ok(
            bind_all_as(sqlx::query_as::<Any, T>(sqlx::AssertSqlSafe(sql)), args)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Runs `f` in a transaction.
    async fn begin(&self) -> Result<Tx<'_>> {
        // SQLite: take the write lock up front. A deferred transaction that reads, then
        // writes after another connection wrote, fails at once with "database is locked"
        // (the busy timeout cannot help it); an immediate one waits its turn.
        let turn = self.write_turn().await;
        let tx = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        };
        Ok(Tx {
            tx,
            store: self,
            _turn: turn,
        })
    }

    /// Whether the database answers (health checks).
    pub async fn ping(&self) -> Result<()> {
        self.fetch_one::<Count>("SELECT COUNT(*) AS n FROM users", vec![])
            .await
            .map(|_| ())
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A transaction with the same helpers as the store.
pub struct Tx<'s> {
    tx: sqlx::Transaction<'static, Any>,
    store: &'s Store,
    /// Held until the transaction ends (SQLite).
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Tx<'_> {
    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64> {
        let sql = self.store.sql(sql);
        Ok(bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), args)
            .execute(&mut *self.tx)
            .await?
            .rows_affected())
    }

    async fn fetch_all<T>(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let sql = self.store.sql(sql);
        Ok(
            bind_all_as(sqlx::query_as::<Any, T>(sqlx::AssertSqlSafe(sql)), args)
                .fetch_all(&mut *self.tx)
                .await?,
        )
    }

    async fn fetch_optional<T>(&mut self, sql: &str, args: Vec<Arg>) -> Result<Option<T>>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let sql = self.store.sql(sql);
        Ok(
            bind_all_as(sqlx::query_as::<Any, T>(sqlx::AssertSqlSafe(sql)), args)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    pub async fn commit(self) -> Result<()> {
        Ok(self.tx.commit().await?)
    }

    pub fn dialect(&self) -> Dialect {
        self.store.dialect
    }
}

/// Microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// A new uuid as upstream writes them: 32 hex characters.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A boolean column: PostgreSQL's `BOOLEAN`, SQLite's `INTEGER` 0/1 (the `Any` driver reads
/// SQLite booleans only as integers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flag(pub bool);

impl sqlx::Type<Any> for Flag {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <bool as sqlx::Type<Any>>::type_info()
    }

    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        <bool as sqlx::Type<Any>>::compatible(ty)
            || <i64 as sqlx::Type<Any>>::compatible(ty)
            || <i32 as sqlx::Type<Any>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Any> for Flag {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        match <bool as sqlx::Decode<Any>>::decode(value.clone()) {
            Ok(b) => Ok(Flag(b)),
            Err(_) => match <i64 as sqlx::Decode<Any>>::decode(value.clone()) {
                Ok(i) => Ok(Flag(i != 0)),
                Err(_) => <i32 as sqlx::Decode<Any>>::decode(value).map(|i| Flag(i != 0)),
            },
        }
    }
}

/// One integer column (counts, ids).
#[derive(Debug, FromRow)]
pub struct Count {
    pub n: i64,
}

impl Store {
    /// Runs one statement on a database without opening it as a store (creating and dropping
    /// test databases, or tampering with one in tests).
    pub async fn raw_execute(url: &str, sql: &str) -> Result<()> {
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await?;
        conn.execute(sqlx::AssertSqlSafe(sql.to_string())).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
