//! Provides the node's listener: one dedicated PostgreSQL connection that `LISTEN`s on
//! `wakeplane_commands` and hands every notification to the Supervisor, reconnecting with
//! backoff (and asking the Supervisor to resynchronise once) when the connection drops.
//!
//! It runs on its own OS thread, not an actix event loop, because diesel has no async
//! notification API: `PgConnection::notifications_iter` only reads what has arrived
//! (`PQconsumeInput` is a non-blocking read), so the thread polls it every
//! [`POLL_INTERVAL`] (a local syscall, no round trip). It writes nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use chrono::Utc;
use diesel::connection::SimpleConnection;
use diesel::PgConnection;

use super::supervisor::ownership::{Notified, Resync};
use super::supervisor::Supervisor;
use crate::domain::backoff::Backoff;
use crate::store::partitions::CHANNEL;
use crate::store::Store;

/// How often arrived notifications are read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How often the connection is checked with a round trip (a silent network failure shows
/// no error to a read-only poll).
const KEEPALIVE: Duration = Duration::from_secs(5);
/// Reconnecting: 100 ms after the first failure, doubling, at most 5 s.
const RECONNECT: Backoff = Backoff::doubling(Duration::from_millis(100), Duration::from_secs(5));
/// Notifications sent this long before the connection was last seen working may be missed
/// (it is only proven alive by a round trip every [`KEEPALIVE`]).
const RESYNC_SLACK: chrono::Duration = chrono::Duration::seconds(10);

/// The running listener thread; stops when dropped or [`Listener::stop`]ped, or once the
/// Supervisor is gone (its actor system ended).
pub struct Listener {
    stop: Arc<AtomicBool>,
}

impl Listener {
    /// Starts the thread. It connects with `store`'s URL, outside the pool.
    pub fn start(store: Store, supervisor: Addr<Supervisor>) -> Listener {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("wakeplane-listener".into())
            .spawn(move || listen(&store, &supervisor, &flag));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the notification listener; changes from other nodes arrive with the safety sweep only");
        }
        Listener { stop }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether the thread should end: asked to, or nobody left to hand notifications to.
fn finished(stop: &AtomicBool, supervisor: &Addr<Supervisor>) -> bool {
    stop.load(Ordering::Relaxed) || !supervisor.connected()
}

/// Connects, listens, forwards; on any failure waits and starts again.
fn listen(store: &Store, supervisor: &Addr<Supervisor>, stop: &AtomicBool) {
    let mut failures = 0u32;
    let mut last_good = Utc::now();
    while !finished(stop, supervisor) {
        match store.dedicated_connection() {
            Ok(mut conn) => match conn.batch_execute(&format!("LISTEN {CHANNEL}")) {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!("notification listener reconnected");
                    }
                    failures = 0;
                    // Whatever was sent while nobody listened is found from the database.
                    supervisor.do_send(Resync {
                        since: last_good - RESYNC_SLACK,
                    });
                    let e = forward(&mut conn, supervisor, stop, &mut last_good);
                    if let Some(e) = e {
                        tracing::warn!(error = %e, "notification listener lost its connection; reconnecting");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN failed; retrying");
                }
            },
            Err(e) => tracing::debug!(error = %e, "notification listener cannot connect yet"),
        }
        if finished(stop, supervisor) {
            break;
        }
        failures = failures.saturating_add(1);
        let until = Instant::now() + RECONNECT.delay(failures);
        while Instant::now() < until && !finished(stop, supervisor) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Forwards notifications until the connection fails (`Some(error)`) or `stop` is set.
fn forward(
    conn: &mut PgConnection,
    supervisor: &Addr<Supervisor>,
    stop: &AtomicBool,
    last_good: &mut chrono::DateTime<Utc>,
) -> Option<String> {
    let mut checked = Instant::now();
    while !finished(stop, supervisor) {
        for n in conn.notifications_iter() {
            match n {
                Ok(n) => supervisor.do_send(Notified { payload: n.payload }),
                Err(e) => return Some(e.to_string()),
            }
        }
        if checked.elapsed() >= KEEPALIVE {
            if let Err(e) = conn.batch_execute("SELECT 1") {
                return Some(e.to_string());
            }
            checked = Instant::now();
        }
        *last_good = Utc::now();
        std::thread::sleep(POLL_INTERVAL);
    }
    None
}
