//! Provides wakeplane's PostgreSQL store: the diesel schema, row types, queries, the r2d2
//! pool and the embedded migrations.
//!
//! Queries are small functions on `&mut PgConnection` next to their rows, so callers pick
//! the transaction. Every blocking call runs through [`Store::run`] on the blocking pool,
//! never on an actix event loop, at most pool-size calls at a time, failing fast while the
//! database is known to be down. This module knows nothing about HTTP or actors.

mod circuit;
pub mod filters;
pub mod leases;
pub mod nodes;
pub mod paging;
pub mod partitions;
pub mod retention;
pub mod runs;
pub mod schedules;
pub mod schema;
mod statements;
pub mod stats;
pub(crate) mod status;
pub mod totals;

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::PgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use tokio::sync::Semaphore;

use circuit::Circuit;
pub use circuit::PROBE_INTERVAL;

pub type PgPool = Pool<ConnectionManager<PgConnection>>;

/// The migrations in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Serialises concurrent migration runs from several nodes.
const MIGRATION_LOCK_KEY: i64 = 0x7761_6b65_706c_616e; // "wakeplan"

/// The current instant at the database's precision (microseconds), so what an API call
/// returns equals what a later read returns.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

/// The error underneath a [`StoreError`], kept whole (not stringified) so callers can walk
/// the chain; a plain message converts into it with `.into()`.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the store layer. `Unavailable` means "retry later, nothing was written".
/// Each keeps its cause as its `source`; the message also shows it, so a log line of the
/// error alone stays complete.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Cause),
    #[error("not found")]
    NotFound,
    /// A schedule with this name exists already (`schedules_name_key`).
    #[error("a schedule named {0:?} already exists")]
    NameTaken(String),
    #[error("unique constraint {0} violated")]
    Conflict(String),
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
    #[error("query failed: {0}")]
    Query(#[source] DieselError),
    #[error("migration failed: {0}")]
    Migration(#[source] Cause),
    #[error("blocking task failed: {0}")]
    Task(#[source] Cause),
    /// The write was for a partition lease this node no longer holds at that epoch: another
    /// node owns the schedule now. Nothing was written.
    #[error("partition {partition} is no longer held at epoch {epoch}")]
    Fenced { partition: u32, epoch: i64 },
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => StoreError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StoreError::Conflict(info.constraint_name().unwrap_or("unknown").to_string())
            }
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => StoreError::Unavailable(info.message().into()),
            DieselError::DatabaseError(kind, info) if is_connection_message(info.message()) => {
                let _ = kind;
                StoreError::Unavailable(info.message().into())
            }
            // The transaction lost a race (a deadlock victim, a serialization failure) and
            // was rolled back whole: nothing was written, and trying again will do.
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, info) => {
                StoreError::Unavailable(info.message().into())
            }
            DieselError::DatabaseError(_, info) if info.message().contains("deadlock detected") => {
                StoreError::Unavailable(info.message().into())
            }
            DieselError::BrokenTransactionManager => {
                StoreError::Unavailable("connection lost inside a transaction".into())
            }
            other => StoreError::Query(other),
        }
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Unavailable(Box::new(e))
    }
}

fn is_connection_message(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    [
        "server closed the connection",
        "terminating connection",
        "no connection to the server",
        "connection refused",
        "could not connect",
        "the database system is shutting down",
        "the database system is starting up",
        "could not receive data",
        "could not send data",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// Sets per-connection limits when r2d2 opens a connection.
#[derive(Debug)]
struct ConnectionSetup;

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for ConnectionSetup {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(
            "SET statement_timeout = '30s'; SET application_name = 'wakeplane'; SET TIME ZONE 'UTC';",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// How long a call may wait for a pooled connection before `Unavailable`.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(3);

/// The connection pool plus where the data lives (for `/v1/status`). Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    /// One permit per pooled connection: calls beyond the pool's size wait here, in order,
    /// instead of each holding a blocking thread while it waits for a connection.
    permits: Arc<Semaphore>,
    circuit: Arc<Circuit>,
    url: Arc<str>,
    location: String,
}

impl Store {
    /// Builds the pool without connecting, so a server can start while the database is
    /// still coming up; `pool_size` connections at most, 3 s to get one before `Unavailable`.
    pub fn new(database_url: &str, pool_size: u32) -> Store {
        let manager = ConnectionManager::<PgConnection>::new(database_url);
        let size = pool_size.max(1);
        let pool = Pool::builder()
            .max_size(size)
            .min_idle(Some(0))
            .connection_timeout(CHECKOUT_TIMEOUT)
            // No round trip per checkout: a connection is checked after a failure instead
            // (see `checked`), which is when a dead one shows itself.
            .test_on_check_out(false)
            .connection_customizer(Box::new(ConnectionSetup))
            .build_unchecked(manager);
        Store {
            permits: Arc::new(Semaphore::new(size as usize)),
            circuit: Circuit::new(database_url, pool.clone()),
            pool,
            url: database_url.into(),
            location: redact_url(database_url),
        }
    }

    /// Where the data lives, never with a password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// `(size, idle)` of the pool: its configured size, and the open connections idle now.
    pub fn pool_state(&self) -> (u32, u32) {
        (self.pool.max_size(), self.pool.state().idle_connections)
    }

    /// Runs blocking database work on the blocking pool, in the caller's span. The
    /// closure's error type only needs to absorb `StoreError` (pool and task failures).
    ///
    /// At most pool-size calls are in flight (the others wait their turn without a thread),
    /// and while the circuit is open (a round trip failed and the probe has not reached the
    /// database since) it answers `Unavailable` at once, without queueing.
    pub fn run<T, E, F>(&self, f: F) -> impl std::future::Future<Output = Result<T, E>> + 'static
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (pool, permits, circuit) = (
            self.pool.clone(),
            self.permits.clone(),
            self.circuit.clone(),
        );
        let span = tracing::Span::current();
        async move {
            if circuit.is_open() {
                return Err(E::from(unreachable()));
            }
            let permit = permits
                .acquire_owned()
                .await
                .map_err(|e| E::from(StoreError::Task(Box::new(e))))?;
            // The database may have gone away while this call waited its turn.
            if circuit.is_open() {
                return Err(E::from(unreachable()));
            }
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let _entered = span.enter();
                let mut conn = match pool.get() {
                    Ok(conn) => conn,
                    Err(e) => {
                        circuit.trip(&e.to_string());
                        return Err(E::from(StoreError::from(e)));
                    }
                };
                let (result, dead) = checked(&mut conn, f);
                if dead {
                    circuit.trip("a connection died during a query");
                }
                result
            })
            .await
            .map_err(|e| E::from(StoreError::Task(Box::new(e))))?
        }
    }

    /// Blocking variant for code that is already off the event loop (CLI `migrate`, tests).
    pub fn run_blocking<T>(
        &self,
        f: impl FnOnce(&mut PgConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.get()?;
        checked(&mut conn, f).0
    }

    /// Applies pending migrations under an advisory lock (safe with several nodes).
    pub fn migrate(&self) -> Result<usize, StoreError> {
        self.run_blocking(run_migrations)
    }

    /// Takes the session advisory lock that says "a live process is `worker_id`", on a
    /// connection of its own that the caller keeps open for as long as it runs; `None`
    /// when another live process holds it. Blocking.
    pub fn lock_worker_id(&self, worker_id: &str) -> Result<Option<PgConnection>, StoreError> {
        use diesel::Connection;
        use diesel::RunQueryDsl;
        let mut conn =
            PgConnection::establish(&self.url).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let row: LockRow =
            diesel::sql_query("SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked")
                .bind::<diesel::sql_types::Integer, _>(WORKER_LOCK_CLASS)
                .bind::<diesel::sql_types::Text, _>(worker_id)
                .get_result(&mut conn)?;
        Ok(row.locked.then_some(conn))
    }

    /// A connection of its own, outside the pool, for a caller that keeps it (the
    /// notification listener, on its own thread). Blocking.
    pub fn dedicated_connection(&self) -> Result<PgConnection, StoreError> {
        use diesel::Connection;
        let mut conn =
            PgConnection::establish(&self.url).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        conn.batch_execute("SET application_name = 'wakeplane-listener'")?;
        Ok(conn)
    }

    /// `true` when a trivial query succeeds.
    pub async fn ping(&self) -> bool {
        self.run(|conn| conn.batch_execute("SELECT 1").map_err(StoreError::from))
            .await
            .is_ok()
    }
}

/// What `Store::run` answers while the circuit is open.
fn unreachable() -> StoreError {
    StoreError::Unavailable("the database is unreachable; waiting for it to answer again".into())
}

/// Runs `f`; if it failed, checks the connection with [`discard_if_dead`], and says
/// whether it was dead (`true`). A pool without a checkout test relies on this to recover
/// by itself after an outage.
fn checked<T, E>(
    conn: &mut PgConnection,
    f: impl FnOnce(&mut PgConnection) -> Result<T, E>,
) -> (Result<T, E>, bool) {
    let result = f(conn);
    let dead = result.is_err() && discard_if_dead(conn);
    (result, dead)
}

/// Pings the connection; if that fails (the server went away) marks it broken so that
/// r2d2 drops it instead of handing it out again, and returns `true`.
fn discard_if_dead(conn: &mut PgConnection) -> bool {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let dead = conn.batch_execute("SELECT 1").is_err();
    if dead {
        AnsiTransactionManager::transaction_manager_status_mut(conn).set_in_error();
    }
    dead
}

/// Applies pending migrations on one connection under an advisory lock.
pub fn run_migrations(conn: &mut PgConnection) -> Result<usize, StoreError> {
    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
    let result = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|applied| applied.len())
        .map_err(StoreError::Migration);
    conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
    result
}

/// Strips the password from a URL for display.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}@{host}")
        }
        None => authority.to_string(),
    };
    let tail = tail
        .split('&')
        .map(|part| {
            if part.trim_start_matches('?').starts_with("password=") {
                let q = if part.starts_with('?') { "?" } else { "" };
                format!("{q}password=***")
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_shown() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/wakeplane"),
            "postgres://app@db:5432/wakeplane"
        );
        assert_eq!(
            redact_url("postgres://db/w?user=a&password=x"),
            "postgres://db/w?user=a&password=***"
        );
        assert_eq!(
            redact_url("postgres:///w?host=/tmp/s"),
            "postgres:///w?host=/tmp/s"
        );
    }
}

/// Creates database `name` on the server at `admin_url` unless it exists.
pub fn ensure_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    use diesel::Connection;
    use diesel::RunQueryDsl;
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StoreError::Migration(
            format!("invalid database name {name:?}").into(),
        ));
    }
    let mut conn =
        PgConnection::establish(admin_url).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
    let exists: i64 = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM pg_database WHERE datname = '{name}'"
    ))
    .get_result::<CountRow>(&mut conn)?
    .n;
    if exists == 0 {
        conn.batch_execute(&format!("CREATE DATABASE {name}"))?;
    }
    Ok(())
}

/// The advisory-lock class of worker ids (the second key is the id's hash).
const WORKER_LOCK_CLASS: i32 = 0x7770; // "wp"

#[derive(diesel::QueryableByName)]
struct LockRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

#[derive(diesel::QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}
