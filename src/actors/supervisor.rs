//! Provides the `Supervisor`: one per node. It owns the registry `schedule_id →
//! Addr<ScheduleActor>` for the schedules this node owns (`ownership`: the partitions it
//! holds), starts their actors (read in batches, at most `START_BATCHES_IN_FLIGHT` in
//! flight, so 1,000,000 schedules never queue 1,000,000 reads), creates schedules (written
//! in batches, one commit for many: `creates`), routes every other command to the right
//! actor (or, for a schedule owned elsewhere, applies it through the store and notifies the
//! owner), restarts actors that die (counting restarts), and runs housekeeping: the cluster
//! heartbeat every second and a slow safety sweep for changes a notification missed.
//!
//! It never looks for due work: the actors' timers do that.

mod creates;
pub mod ownership;

pub use creates::CreateSchedule;

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::executor::ExecutorPool;
use super::health::HealthBoard;
use super::materialiser::Materialiser;
use super::messages::{CommandError, Reload, Route, ScheduleCommand, StopFiring};
use super::remote::{self, ApplyElsewhere};
use super::schedule::{Loaded, ScheduleActor, ScheduleDeps};
use super::InSpan;
use crate::domain::backoff::Backoff;
use crate::store::partitions;
use crate::store::runs::{self, RunRow};
use crate::store::schedules::{self, ScheduleRecord};
use crate::store::{Store, StoreError};

/// How often housekeeping runs (the cluster heartbeat and partition renewal).
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
/// How often the safety sweep looks for schedules changed elsewhere through the
/// `updated_at` index (changes normally arrive at once as notifications).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);
/// Restarting a failed actor: 200 ms per restart so far, at most 10 s.
const RESTART_BACKOFF: Backoff =
    Backoff::linear(Duration::from_millis(200), Duration::from_secs(10));
/// Changes are looked for this far behind the newest seen, to absorb clock skew.
const SYNC_SLACK: chrono::Duration = chrono::Duration::seconds(5);
/// Schedules read per query when starting their actors.
const START_BATCH: usize = 1000;
/// Batches read at once when starting actors: one batch's rows are turned into actors
/// while the next ones are read, and the pool keeps the rest of its connections for
/// commands and fires.
const START_BATCHES_IN_FLIGHT: usize = 3;

pub struct Supervisor {
    store: Store,
    pool: Addr<ExecutorPool>,
    materialiser: Addr<Materialiser>,
    board: Arc<HealthBoard>,
    /// What every schedule actor shares, built with the first actor: one copy for all of
    /// them (each `Addr` clone allocates, so per-actor copies cost ~0.3 KiB each).
    deps: Option<Arc<ScheduleDeps>>,
    /// Commands forwarded to each actor and not yet answered (its mailbox depth as far as
    /// commands go).
    inflight: HashMap<String, usize>,
    /// Keyed by the actor's own id (see [`Supervisor::shared_id`]), as is `seen`.
    registry: HashMap<Arc<str>, Addr<ScheduleActor>>,
    /// `updated_at` of each schedule as this node last applied it.
    seen: HashMap<Arc<str>, DateTime<Utc>>,
    restarts: HashMap<String, u32>,
    /// The newest `updated_at` seen so far.
    watermark: Option<DateTime<Utc>>,
    /// Schedules found by `sync` whose actors are not started yet (read in batches).
    unstarted: BTreeSet<String>,
    /// Batches of `unstarted` being read.
    starting: usize,
    /// The greatest id a batch in flight took: the next batch takes ids after it. Reset
    /// when no batch is in flight, so ids a failed batch left (or `sync` added below it)
    /// are taken again.
    start_cursor: Option<String>,
    shutting_down: bool,
    syncing: bool,
    /// This node's partitions and heartbeat.
    cluster: ownership::Membership,
    /// Creates waiting for their (batched) transaction.
    creates: creates::Creates,
}

impl Supervisor {
    pub fn new(
        store: Store,
        pool: Addr<ExecutorPool>,
        materialiser: Addr<Materialiser>,
        board: Arc<HealthBoard>,
        cluster: ownership::Membership,
    ) -> Supervisor {
        Supervisor {
            store,
            pool,
            materialiser,
            board,
            deps: None,
            inflight: HashMap::new(),
            registry: HashMap::new(),
            seen: HashMap::new(),
            restarts: HashMap::new(),
            // The first partitions' schedules are all read when they are adopted; the
            // sweep only looks for what changed after.
            watermark: Some(Utc::now()),
            unstarted: BTreeSet::new(),
            starting: 0,
            start_cursor: None,
            shutting_down: false,
            syncing: false,
            cluster,
            creates: creates::Creates::default(),
        }
    }

    /// Starts `id`'s actor, which reads its schedule itself.
    fn spawn_actor(&mut self, id: String, ctx: &mut Context<Self>) -> Addr<ScheduleActor> {
        self.start_actor(id, None, ctx)
    }

    /// Starts `id`'s actor, from what a batch read for it when there is something.
    fn start_actor(
        &mut self,
        id: String,
        loaded: Option<Loaded>,
        ctx: &mut Context<Self>,
    ) -> Addr<ScheduleActor> {
        // Whoever starts it first, a batch still reading it must not start it again.
        self.unstarted.remove(&id);
        let deps = match &self.deps {
            Some(deps) => deps.clone(),
            None => {
                let deps = Arc::new(ScheduleDeps {
                    store: self.store.clone(),
                    pool: self.pool.clone(),
                    materialiser: self.materialiser.clone(),
                    supervisor: ctx.address(),
                    board: self.board.clone(),
                });
                self.deps = Some(deps.clone());
                deps
            }
        };
        let restarts = self.restarts.get(&id).copied().unwrap_or(0);
        let id = self.shared_id(&id);
        let addr = ScheduleActor::new(id.clone(), deps, restarts)
            .with_loaded(loaded)
            .with_lease(self.cluster.lease_of(&id))
            .start();
        self.registry.insert(id, addr.clone());
        addr
    }

    /// Starts actors for schedules created or changed elsewhere; tells actors whose row
    /// changed behind their back to reload. Uses the `updated_at` index, never a full scan.
    fn sync(&mut self, ctx: &mut Context<Self>) {
        if self.syncing {
            return;
        }
        self.syncing = true;
        // Look back SYNC_SLACK from now (never past the newest seen): a row whose commit
        // landed late, or came from a node whose clock is a little behind, is still seen,
        // and quiet periods read nothing.
        let since = self.watermark.map(|w| w.min(Utc::now() - SYNC_SLACK));
        let fut = self
            .store
            .run(move |conn| schedules::changed_since(conn, since));
        // Spawned, not awaited: a slow or absent database must never block commands.
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok(rows) => {
                act.syncing = false;
                for (id, updated_at) in rows {
                    act.watermark = Some(act.watermark.map_or(updated_at, |w| w.max(updated_at)));
                    if act.seen.get(id.as_str()) == Some(&updated_at) {
                        continue;
                    }
                    let shared = act.shared_id(&id);
                    act.seen.insert(shared, updated_at);
                    match act.registry.get(id.as_str()) {
                        Some(addr) => addr.do_send(Reload),
                        None if !act.shutting_down && act.cluster.owns(&id) => {
                            act.unstarted.insert(id);
                        }
                        None => {}
                    }
                }
                act.start_batch(ctx);
            }
            Err(e) => {
                act.syncing = false;
                tracing::warn!(error = %e, "schedule sync failed; will retry");
            }
        }));
    }

    /// Reads the next batches of unstarted schedules (rows and unfinished runs, one query
    /// each) and starts their actors from them, then the next ones. At most
    /// `START_BATCHES_IN_FLIGHT` at a time, so start-up leaves the pool to commands and
    /// fires. On failure the ids stay unstarted and housekeeping tries again.
    fn start_batch(&mut self, ctx: &mut Context<Self>) {
        while self.starting < START_BATCHES_IN_FLIGHT && !self.shutting_down {
            let ids: Vec<String> = match &self.start_cursor {
                Some(after) => self
                    .unstarted
                    .range::<String, _>((Bound::Excluded(after), Bound::Unbounded))
                    .take(START_BATCH)
                    .cloned()
                    .collect(),
                None => self.unstarted.iter().take(START_BATCH).cloned().collect(),
            };
            let Some(last) = ids.last() else {
                return;
            };
            self.start_cursor = Some(last.clone());
            self.starting += 1;
            self.read_batch(ids, ctx);
        }
    }

    /// One batch of [`Self::start_batch`].
    fn read_batch(&mut self, ids: Vec<String>, ctx: &mut Context<Self>) {
        let wanted = ids.clone();
        let fut = self.store.run(move |conn| {
            let records = schedules::find_many(conn, &wanted)?;
            let mut runs_of: HashMap<String, Vec<RunRow>> = HashMap::new();
            for run in runs::unfinished_of_many(conn, &wanted)? {
                runs_of
                    .entry(run.schedule_id.clone())
                    .or_default()
                    .push(run);
            }
            Ok::<_, StoreError>(
                records
                    .into_iter()
                    .map(|record| {
                        let runs = runs_of.remove(&record.id).unwrap_or_default();
                        (record.id.clone(), Loaded { record, runs })
                    })
                    .collect::<HashMap<_, _>>(),
            )
        });
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.starting -= 1;
            if act.starting == 0 {
                act.start_cursor = None;
            }
            match res {
                Ok(mut loaded) => {
                    for id in ids {
                        // Started meanwhile by a command, or the node is draining.
                        if act.shutting_down || !act.unstarted.contains(&id) {
                            continue;
                        }
                        // Not read (gone, or a row that does not convert): the actor reads
                        // it alone and meets whatever is wrong there.
                        let mine = loaded.remove(&id);
                        act.start_actor(id, mine, ctx);
                    }
                    act.start_batch(ctx);
                }
                Err(e) => {
                    tracing::warn!(error = %e, unstarted = act.unstarted.len(), "reading schedules to start failed; will retry");
                }
            }
        }));
    }

    pub(crate) fn actor(&self, id: &str) -> Option<&Addr<ScheduleActor>> {
        self.registry.get(id)
    }

    fn remember(&mut self, record: &ScheduleRecord) {
        let id = self.shared_id(&record.id);
        self.seen.insert(id, record.updated_at);
    }

    /// `id` as the one `Arc<str>` its actor, the health board, `registry` and `seen` share:
    /// the key already held for it, else a new one. (`HashMap::insert` keeps the key it
    /// has, so inserting an equal `Arc` never makes a second copy.)
    fn shared_id(&self, id: &str) -> Arc<str> {
        self.registry
            .get_key_value(id)
            .map(|(k, _)| k)
            .or_else(|| self.seen.get_key_value(id).map(|(k, _)| k))
            .cloned()
            .unwrap_or_else(|| Arc::from(id))
    }

    /// Tells schedule `id`'s owner (another node) that it changed; a lost notification is
    /// found by the owner's safety sweep.
    pub(crate) fn notify_owner(&mut self, id: String, ctx: &mut Context<Self>) {
        let fut = self.store.run(move |conn| partitions::notify(conn, &id));
        ctx.spawn(fut.into_actor(self).map(|res, _, _| {
            if let Err(e) = res {
                tracing::warn!(error = %e, "could not notify a schedule's owner");
            }
        }));
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Start the actors of the partitions taken at start-up.
        let first = std::mem::take(&mut self.cluster.held);
        self.take_ownership(first, ctx);
        ctx.run_interval(HOUSEKEEPING_INTERVAL, |act, ctx| {
            let now = Utc::now();
            let max_mailbox = act.inflight.values().copied().max().unwrap_or(0);
            act.board.set_tick(now, max_mailbox);
            act.board
                .metrics()
                .owned_schedules
                .set(i64::try_from(act.registry.len()).unwrap_or(i64::MAX));
            if !act.shutting_down {
                act.cluster_pass(ctx);
                act.start_batch(ctx);
            }
        });
        ctx.run_interval(SWEEP_INTERVAL, |act, ctx| {
            if !act.shutting_down {
                act.sync(ctx);
            }
        });
    }
}

impl<C> Handler<Route<C>> for Supervisor
where
    C: ScheduleCommand + ApplyElsewhere,
    ScheduleActor: Handler<C>,
{
    type Result = ResponseActFuture<Self, Result<C::Reply, CommandError>>;
    fn handle(&mut self, msg: Route<C>, _: &mut Self::Context) -> Self::Result {
        if self.shutting_down {
            return Box::pin(fut::ready(Err(CommandError::SchedulerUnavailable)));
        }
        if !self.registry.contains_key(msg.id.as_str()) && !self.cluster.owns(&msg.id) {
            return self.apply_elsewhere(msg);
        }
        let known = self.registry.get(msg.id.as_str()).cloned();
        let store = self.store.clone();
        let id = msg.id.clone();
        let span = tracing::info_span!("command", command = C::NAME, schedule_id = %msg.id);
        Box::pin(InSpan::build(span, || {
            async move {
                if known.is_none() {
                    // Created by another node and not synced yet, or gone.
                    store.run(move |conn| schedules::find(conn, &id)).await?;
                }
                Ok::<_, CommandError>(known)
            }
            .into_actor(self)
            .then(move |found, act, ctx| {
                let addr = match found {
                    Ok(Some(addr)) => Ok(addr),
                    Ok(None) => Ok(act.spawn_actor(msg.id.clone(), ctx)),
                    Err(e) => Err(e),
                };
                let id = msg.id.clone();
                if addr.is_ok() {
                    *act.inflight.entry(id.clone()).or_default() += 1;
                }
                let store = act.store.clone();
                async move {
                    let addr = addr?;
                    let target = msg.id;
                    match addr.send(msg.command).await {
                        Ok(reply) => reply,
                        // The actor stopped before it took the command: deleted meanwhile
                        // (a racing DELETE), or restarting. The database says which.
                        Err(_) => match store.run(move |c| schedules::find(c, &target)).await {
                            Err(StoreError::NotFound) => Err(CommandError::NotFound),
                            _ => Err(CommandError::SchedulerUnavailable),
                        },
                    }
                }
                .into_actor(act)
                .map(move |reply, act, _| {
                    if let Some(n) = act.inflight.get_mut(&id) {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            act.inflight.remove(&id);
                        }
                    }
                    if let Some(record) = reply.as_ref().ok().and_then(C::changed) {
                        act.remember(record);
                    }
                    reply
                })
            })
        }))
    }
}

impl Supervisor {
    /// Applies a command for a schedule another node owns: the same change its actor would
    /// make, in one transaction with a notification that makes the owner reload it.
    fn apply_elsewhere<C>(
        &mut self,
        msg: Route<C>,
    ) -> ResponseActFuture<Self, Result<C::Reply, CommandError>>
    where
        C: ScheduleCommand + ApplyElsewhere,
    {
        let span = tracing::info_span!("command", command = C::NAME, schedule_id = %msg.id, owner = "elsewhere");
        let Route { id, command } = msg;
        Box::pin(InSpan::build(span, || {
            self.store
                .run(move |conn| remote::apply_elsewhere(conn, &id, command))
                .into_actor(self)
                .map(|reply, act, _| {
                    if let Some(record) = reply.as_ref().ok().and_then(C::changed) {
                        act.remember(record);
                    }
                    reply
                })
        }))
    }
}

/// ScheduleActor → Supervisor: it stopped (deleted, or failed and should be restarted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ActorStopped {
    pub id: String,
    /// Stopped because its partition lease moved on (fenced): not restarted.
    pub handed_over: Option<Addr<ScheduleActor>>,
    pub deleted: bool,
    pub restarts: u32,
    pub last_error: Option<String>,
}

impl Handler<ActorStopped> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: ActorStopped, ctx: &mut Self::Context) {
        if let Some(addr) = msg.handed_over {
            // Fenced: this node lost the partition; forget the actor unless a newer one
            // has its place already, and learn the new ownership now.
            if self.registry.get(msg.id.as_str()) == Some(&addr) {
                self.registry.remove(msg.id.as_str());
                self.cluster_pass(ctx);
            }
            return;
        }
        self.registry.remove(msg.id.as_str());
        if msg.deleted {
            self.seen.remove(msg.id.as_str());
            self.restarts.remove(&msg.id);
            return;
        }
        if self.shutting_down {
            return;
        }
        let restarts = msg.restarts + 1;
        self.restarts.insert(msg.id.clone(), restarts);
        self.board.record_restart();
        let delay = RESTART_BACKOFF.delay(restarts);
        tracing::warn!(schedule_id = %msg.id, restarts, error = ?msg.last_error, "restarting schedule actor");
        let id = msg.id;
        ctx.run_later(delay, move |act, ctx| {
            if !act.shutting_down
                && !act.registry.contains_key(id.as_str())
                && act.cluster.owns(&id)
            {
                act.spawn_actor(id, ctx);
            }
        });
    }
}

impl Handler<StopFiring> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: StopFiring, _: &mut Self::Context) -> Self::Result {
        self.shutting_down = true;
        // The shared deps hold this supervisor's own address: let it go with the actors.
        self.deps = None;
        let sends: Vec<_> = self.registry.values().map(|a| a.send(StopFiring)).collect();
        let store = self.store.clone();
        let node = self.cluster.node.id.clone();
        Box::pin(
            async move {
                for s in sends {
                    let _ = s.await;
                }
                // Timers are stopped: hand the schedules back at once (not after the TTL).
                match store.run(move |conn| partitions::leave(conn, &node)).await {
                    Ok(()) => tracing::info!("partitions handed back"),
                    Err(e) => tracing::warn!(error = %e, "could not hand partitions back; they move when their leases expire"),
                }
            }
            .into_actor(self),
        )
    }
}
