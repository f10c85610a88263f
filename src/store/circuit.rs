//! Provides the store's circuit breaker: once a round trip to PostgreSQL has failed, every
//! [`Store::run`](super::Store::run) fails at once with `Unavailable` until a background
//! probe reaches the database again, so nobody waits out the pool's checkout timeout.
//!
//! It owns only the open/closed flag and the probe thread; it runs no caller's query.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use super::{discard_if_dead, PgPool};

/// How often the probe tries to reach the database while the circuit is open.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// How long one probe may take to connect (libpq's `connect_timeout`, whole seconds).
const PROBE_CONNECT_TIMEOUT_SECONDS: u32 = 2;

/// Open (database unreachable) or closed, plus what the probe needs. Shared by every clone
/// of a `Store`; the probe holds it weakly and ends when the last clone is gone.
pub(crate) struct Circuit {
    open: AtomicBool,
    /// The database URL with a connect timeout, so a probe never hangs on a dead host.
    probe_url: String,
    pool: PgPool,
}

impl Circuit {
    pub(crate) fn new(database_url: &str, pool: PgPool) -> Arc<Circuit> {
        Arc::new(Circuit {
            open: AtomicBool::new(false),
            probe_url: with_connect_timeout(database_url, PROBE_CONNECT_TIMEOUT_SECONDS),
            pool,
        })
    }

    /// `true` while the database is known to be unreachable.
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// A round trip failed: fail fast from now on, and start the probe unless one runs.
    pub(crate) fn trip(self: &Arc<Self>, cause: &str) {
        if self.open.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(%cause, probe_every_ms = PROBE_INTERVAL.as_millis() as u64,
            "database unreachable; failing fast until it answers again");
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("wakeplane-db-probe".into())
            .spawn(move || probe(weak));
        if let Err(e) = spawned {
            // Without a probe nothing would close it again: keep waiting on the pool instead.
            tracing::error!(error = %e, "cannot start the database probe; not failing fast");
            self.open.store(false, Ordering::Release);
        }
    }
}

/// Tries the database every [`PROBE_INTERVAL`] until it answers, then drops the pool's dead
/// idle connections and closes the circuit. Ends early when every `Store` is gone.
fn probe(circuit: Weak<Circuit>) {
    loop {
        std::thread::sleep(PROBE_INTERVAL);
        let Some(circuit) = circuit.upgrade() else {
            return;
        };
        if reachable(&circuit.probe_url) {
            discard_dead_idle(&circuit.pool);
            circuit.open.store(false, Ordering::Release);
            tracing::info!("database reachable again");
            return;
        }
    }
}

/// One fresh connection and one round trip.
fn reachable(url: &str) -> bool {
    PgConnection::establish(url)
        .map(|mut conn| conn.batch_execute("SELECT 1").is_ok())
        .unwrap_or(false)
}

/// Pings every idle pooled connection (they outlived the outage and are probably dead) and
/// marks the dead ones broken, so that r2d2 drops them instead of handing them out: the
/// first requests after recovery then meet live connections, not one failure each.
fn discard_dead_idle(pool: &PgPool) {
    let idle: Vec<_> = std::iter::from_fn(|| pool.try_get())
        .take(pool.max_size() as usize)
        .collect();
    for mut conn in idle {
        discard_if_dead(&mut conn);
    }
}

/// `url` with libpq's `connect_timeout` added, in URI or `key=value` form, unless it sets one.
fn with_connect_timeout(url: &str, seconds: u32) -> String {
    if url.contains("connect_timeout") {
        url.to_string()
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}connect_timeout={seconds}")
    } else {
        format!("{url} connect_timeout={seconds}")
    }
}

#[cfg(test)]
mod tests {
    use super::with_connect_timeout;

    #[test]
    fn probe_url_gets_a_connect_timeout() {
        assert_eq!(
            with_connect_timeout("postgres://u@db:5432/w", 2),
            "postgres://u@db:5432/w?connect_timeout=2"
        );
        assert_eq!(
            with_connect_timeout("postgres:///w?host=/tmp/s", 2),
            "postgres:///w?host=/tmp/s&connect_timeout=2"
        );
        assert_eq!(
            with_connect_timeout("host=/tmp/s dbname=w", 2),
            "host=/tmp/s dbname=w connect_timeout=2"
        );
        assert_eq!(
            with_connect_timeout("postgres://db/w?connect_timeout=9", 2),
            "postgres://db/w?connect_timeout=9"
        );
    }
}
