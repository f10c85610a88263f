//! Provides the scheduler's actor system and a handle to start and stop it.
//!
//! The actors, and where they run:
//! - `Supervisor` (one, on the system arbiter): registry of schedule actors, command
//!   routing, restarts, housekeeping sync of schedules changed by other nodes.
//! - `ScheduleActor` (one per schedule, system arbiter): definition, `next_run_at`, ONE
//!   timer; materialises occurrences, applies misfire and overlap rules, arms retries.
//! - `ExecutorPool` + `RunExecutor` × `WAKEPLANE_WORKERS` (their own arbiter thread):
//!   claim, execute under timeout/cancellation, renew leases, record outcomes.
//! - `Materialiser` (one, system arbiter): writes the occurrences the timers found due,
//!   many schedules per transaction.
//! - `LeaseReaper` (one, system arbiter): recovers expired leases every second.
//! - `Listener` (one OS thread, not an actor): LISTENs on `wakeplane_commands` and hands
//!   notifications (a schedule changed through another node, partitions handed back) to
//!   the Supervisor.
//! - `RetentionSweeper` (one, system arbiter, only with `WAKEPLANE_RUN_RETENTION_DAYS`):
//!   deletes old ended runs in small batches, one node at a time.
//!
//! Nodes share the schedules by partition (`supervisor::ownership`): each node runs only
//! the actors of the partitions it holds; executor pools claim any node's runs.
//!
//! No actor runs a blocking diesel call on its thread: every query goes through
//! `Store::run` on the blocking pool. The database is the truth; any actor can be rebuilt
//! from it.

pub mod executor;
pub mod health;
pub mod listener;
pub mod materialiser;
pub mod messages;
pub mod reaper;
pub mod remote;
pub mod retention;
pub mod schedule;
pub mod supervisor;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::domain::backoff::Backoff;
use crate::metrics::Metrics;
use health::HealthBoard;

use crate::executors::{Executors, WorkflowRegistry};
use crate::store::nodes::NodeInfo;
use crate::store::{self, leases, partitions, Store};
use executor::{ExecutorDeps, ExecutorPool};
use listener::Listener;
use messages::{Drain, StopFiring};
use reaper::LeaseReaper;
use retention::{RetentionSettings, RetentionSweeper, StopSweeper};
use supervisor::Supervisor;

/// What the scheduler needs from the configuration.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub worker_id: String,
    pub workers: usize,
    pub lease_ttl: Duration,
    /// A node whose heartbeat is older is dead and its partitions move.
    pub node_ttl: Duration,
    /// The HTTP address other nodes and the console show for this node.
    pub advertise_addr: String,
    /// What the executors let targets do (resolved at start-up).
    pub targets: crate::security::TargetPolicy,
    /// Ledger retention (None: runs are kept forever).
    pub retention: Option<RetentionSettings>,
}

/// A running scheduler. Cheap to clone. Its actors are private: commands reach them only
/// through `commands::Commands`, reads through the health board.
#[derive(Clone)]
pub struct Scheduler {
    supervisor: Addr<Supervisor>,
    pool: Addr<ExecutorPool>,
    reaper: Addr<LeaseReaper>,
    retention: Option<Addr<RetentionSweeper>>,
    board: Arc<HealthBoard>,
    config: SchedulerConfig,
    listener: Arc<Listener>,
    /// The connection holding this process's worker-id lock; kept open, never used.
    _worker_lock: Arc<std::sync::Mutex<Option<diesel::PgConnection>>>,
}

/// How long start-up waits for a previous life's worker-id lock to go away (a killed
/// process's session ends a moment after it dies).
const WORKER_LOCK_WAIT: Duration = Duration::from_secs(5);
/// The wait between attempts to take the worker-id lock.
const WORKER_LOCK_RETRY: Backoff = Backoff::constant(Duration::from_millis(250));

/// Start-up refused: another live process uses this worker id on this database.
#[derive(Debug, thiserror::Error)]
#[error(
    "WAKEPLANE_WORKER_ID {0:?} is in use by another running wakeplane on this database; \
     give every node its own WAKEPLANE_WORKER_ID"
)]
pub struct WorkerIdInUse(pub String);

/// Takes the worker-id lock, waiting briefly for a dead previous life to let go.
/// `Ok(None)`: the database is unreachable, so nobody can be sure who holds it.
async fn lock_worker_id(
    store: &Store,
    worker_id: &str,
) -> Result<Option<diesel::PgConnection>, WorkerIdInUse> {
    let deadline = std::time::Instant::now() + WORKER_LOCK_WAIT;
    loop {
        let (s, id) = (store.clone(), worker_id.to_string());
        let attempt = tokio::task::spawn_blocking(move || s.lock_worker_id(&id)).await;
        match attempt {
            Ok(Ok(Some(conn))) => return Ok(Some(conn)),
            Ok(Ok(None)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(WORKER_LOCK_RETRY.delay(0)).await;
            }
            Ok(Ok(None)) => return Err(WorkerIdInUse(worker_id.to_string())),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not take the worker-id lock");
                return Ok(None);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not take the worker-id lock");
                return Ok(None);
            }
        }
    }
}

impl Scheduler {
    /// Makes sure no other live process uses this worker id, recovers this node's stale
    /// claims from an earlier life, then starts the actors. Must be called inside an actix
    /// System.
    pub async fn start(
        config: SchedulerConfig,
        store: Store,
        workflows: WorkflowRegistry,
        metrics: Metrics,
    ) -> Result<Scheduler, WorkerIdInUse> {
        let board = Arc::new(HealthBoard::new(metrics));
        let worker_lock = lock_worker_id(&store, &config.worker_id).await?;
        let worker = config.worker_id.clone();
        // Our own leases are a dead previous life's only while we hold the worker-id lock;
        // without it (database down) they are left to expire like anyone else's.
        let own = worker_lock.is_some();
        match store
            .run(move |conn| {
                let mine = own.then_some(worker.as_str());
                leases::recover_expired(conn, mine, store::now(), 500)
            })
            .await
        {
            Ok(recovered) => {
                for r in &recovered {
                    tracing::warn!(run_id = %r.run_id, schedule_id = %r.schedule_id, status = %r.status,
                        "recovered a run left by this node's previous life");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "start-up recovery failed; the lease reaper will retry")
            }
        }
        let deps = ExecutorDeps {
            store: store.clone(),
            executors: Executors::new(workflows, config.targets.clone()),
            worker_id: config.worker_id.clone(),
            lease_ttl: config.lease_ttl,
            board: board.clone(),
        };
        let workers = config.workers;
        let arbiter = Arbiter::new();
        let pool = ExecutorPool::start_in_arbiter(&arbiter.handle(), move |_| {
            ExecutorPool::new(deps, workers)
        });
        let materialiser =
            materialiser::Materialiser::new(store.clone(), config.worker_id.as_str().into())
                .start();
        let node = NodeInfo {
            id: config.worker_id.clone(),
            http_addr: config.advertise_addr.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: store::now(),
        };
        // The first heartbeat and partitions before any actor starts, so a lone node runs
        // every schedule from its first moment; without a database, housekeeping retries.
        let (first, ttl) = (node.clone(), config.node_ttl.as_secs_f64());
        let held = match store
            .run(move |conn| partitions::pass(conn, &first, 0, ttl))
            .await
        {
            Ok(pass) => {
                tracing::info!(
                    partitions = pass.held.len(),
                    live_nodes = pass.live_nodes,
                    "joined the cluster"
                );
                pass.held
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not join the cluster yet; housekeeping retries");
                Default::default()
            }
        };
        let membership = supervisor::ownership::Membership::new(node, config.node_ttl, held);
        let supervisor = Supervisor::new(
            store.clone(),
            pool.clone(),
            materialiser,
            board.clone(),
            membership,
        )
        .start();
        let listener = Arc::new(Listener::start(store.clone(), supervisor.clone()));
        let retention = config.retention.map(|settings| {
            RetentionSweeper::new(store.clone(), board.metrics().clone(), settings).start()
        });
        let reaper = LeaseReaper {
            store,
            supervisor: supervisor.clone(),
        }
        .start();
        Ok(Scheduler {
            supervisor,
            pool,
            reaper,
            retention,
            board,
            config,
            listener,
            _worker_lock: Arc::new(std::sync::Mutex::new(worker_lock)),
        })
    }

    /// The Supervisor's address, for `commands::Commands` alone (the one way commands
    /// enter the actor system).
    pub(crate) fn supervisor(&self) -> Addr<Supervisor> {
        self.supervisor.clone()
    }

    /// The running aggregates the actors keep for status, health and metrics.
    pub fn board(&self) -> &HealthBoard {
        &self.board
    }

    /// This node's id, its advertised HTTP address, and the node TTL (a node whose
    /// heartbeat is older is dead).
    pub fn node(&self) -> (&str, &str, Duration) {
        (
            &self.config.worker_id,
            &self.config.advertise_addr,
            self.config.node_ttl,
        )
    }

    /// The configured executor pool size.
    pub fn workers(&self) -> usize {
        self.config.workers
    }

    /// Graceful shutdown: stop firing, drain running work for up to `drain`, cancel what is
    /// left (recorded `cancelled`, leases released).
    pub async fn shutdown(&self, drain: Duration) {
        tracing::info!(drain_secs = drain.as_secs(), "scheduler shutting down");
        let _ = self.supervisor.send(StopFiring).await;
        let _ = self.pool.send(Drain { timeout: drain }).await;
        let _ = self.reaper.send(StopReaper).await;
        self.listener.stop();
        if let Some(retention) = &self.retention {
            let _ = retention.send(StopSweeper).await;
        }
        tracing::info!("scheduler stopped");
    }
}

/// An actor future that runs inside `span`: every poll enters it, so what the future
/// logs, and the store calls it makes (`Store::run` re-enters the caller's span), carry the
/// span's fields. Actix handlers cannot take `#[tracing::instrument]`; this stands in.
pub(crate) struct InSpan<F> {
    span: tracing::Span,
    inner: std::pin::Pin<Box<F>>,
}

impl<F> InSpan<F> {
    /// Builds the future with `span` entered (so calls made while building it are inside
    /// too), then keeps it entered on every poll.
    pub(crate) fn build(span: tracing::Span, make: impl FnOnce() -> F) -> InSpan<F> {
        let inner = Box::pin(span.in_scope(make));
        InSpan { span, inner }
    }
}

impl<A, F> ActorFuture<A> for InSpan<F>
where
    A: Actor,
    F: ActorFuture<A>,
{
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        act: &mut A,
        ctx: &mut A::Context,
        task: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.get_mut();
        let _entered = this.span.enter();
        this.inner.as_mut().poll(act, ctx, task)
    }
}

/// Stops the reaper.
#[derive(Message)]
#[rtype(result = "()")]
struct StopReaper;

impl Handler<StopReaper> for LeaseReaper {
    type Result = ();
    fn handle(&mut self, _: StopReaper, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
