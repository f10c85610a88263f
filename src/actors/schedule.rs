//! Provides `ScheduleActor`: one per schedule, holding its definition, `next_run_at` and ONE
//! timer armed for the next fire, plus its waiting and active runs.
//!
//! On fire it materialises due occurrences in one transaction (misfire rule applied in the
//! store), re-arms, then dispatches by overlap policy and `max_concurrency`. It arms retry
//! timers, applies commands routed by the Supervisor, and can be killed and rebuilt from
//! the database at any instant: its memory is a cache of rows plus its timers.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, SubsecRound, Utc};

use super::executor::ExecutorPool;
use super::health::{HealthBoard, Live};
use super::materialiser::{MaterialiseDue, Materialiser};
use super::messages::{
    BackfillWindow, Backfilled, CancelRun, CommandError, Delete, Disown, Execute, Patch, Pause,
    Reload, Replace, Resume, RunEnd, RunEnded, ScheduleCommand, StopFiring, Trigger,
};
use super::remote;
use super::supervisor::{ActorStopped, Supervisor};
use super::InSpan;
use crate::domain::backfill::{self, Backfill};
use crate::domain::backoff::Backoff;
use crate::domain::ids::{self, ScheduleId};
use crate::domain::validation::{body_of, merge_patch, ScheduleBody};
use crate::domain::{Policy, RunStatus, Target};
use crate::store::partitions::Lease;
use crate::store::runs::{self, RunRow, ORIGIN_BACKFILL};
use crate::store::schedules::{self, Materialised, ScheduleRecord};
use crate::store::{self, Store, StoreError};

mod in_flight;
mod triggers;
use in_flight::Runs;

/// Longest single timer sleep; a later fire re-arms on waking.
const MAX_TIMER: Duration = Duration::from_secs(3600);
/// A longer sleep ends this long before its occurrence and re-arms for the rest from the
/// wall clock. Occurrences are wall-clock instants but timers sleep on the monotonic clock,
/// and the two drift apart while NTP slews the wall clock (chrony slews at up to 8 %):
/// measuring the last second afresh keeps the drift to that second's share.
const FINAL_APPROACH: Duration = Duration::from_secs(1);
/// Wait before retrying a claim refused for capacity held elsewhere (another node).
const CAPACITY_RETRY: Duration = Duration::from_secs(1);
/// Database trouble: after n failures in a row, 0.5 s · 2^n, at most 30 s.
const DB_BACKOFF: Backoff = Backoff::doubling(Duration::from_millis(500), Duration::from_secs(30));

/// What an actor is doing, for health views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorState {
    Armed,
    Firing,
    Paused,
    Finished,
    Restarting,
}

impl ActorState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorState::Armed => "armed",
            ActorState::Firing => "firing",
            ActorState::Paused => "paused",
            ActorState::Finished => "finished",
            ActorState::Restarting => "restarting",
        }
    }
}

/// What every schedule actor shares. Set at start-up.
#[derive(Clone)]
pub struct ScheduleDeps {
    pub store: Store,
    pub pool: Addr<ExecutorPool>,
    pub materialiser: Addr<Materialiser>,
    pub supervisor: Addr<Supervisor>,
    pub board: Arc<HealthBoard>,
}

/// What an actor keeps of its schedule: enough to arm its timer and dispatch. The cadence
/// stays in the database; the store evaluates it inside the fire transaction. Keeping the
/// parsed cron out of every idle actor is most of what an idle actor costs in memory.
struct Cached {
    name: Box<str>,
    /// Enabled and not paused.
    active: bool,
    next_run_at: Option<DateTime<Utc>>,
    policy: Policy,
    target: Target,
}

impl From<&ScheduleRecord> for Cached {
    fn from(r: &ScheduleRecord) -> Cached {
        Cached {
            name: r.spec.name.as_str().into(),
            active: r.is_live(),
            next_run_at: r.next_run_at,
            policy: r.spec.policy,
            target: r.spec.target.clone(),
        }
    }
}

/// What an actor reads at start-up, when the Supervisor read it for a batch of actors.
pub struct Loaded {
    pub record: ScheduleRecord,
    /// The schedule's unfinished runs, oldest due first.
    pub runs: Vec<RunRow>,
}

/// One schedule's live state.
pub struct ScheduleActor {
    /// Shared with the health board's entry and the Supervisor's registry and `seen` map
    /// (one allocation per schedule, not five).
    id: Arc<str>,
    /// Shared by every actor on the node (see `Supervisor`).
    deps: Arc<ScheduleDeps>,
    /// Read for it before it started (boot batches); taken by `started`.
    loaded: Option<Box<Loaded>>,
    /// The partition lease it runs under: its fires are written only while this node
    /// holds it at that epoch.
    lease: Option<Lease>,
    record: Option<Cached>,
    timer: Option<SpawnHandle>,
    /// The occurrence this actor has been awaiting, live, since it computed it: only a
    /// late wake-up for it gets the misfire grace (`misfire::grace`; start-up and resume
    /// get none).
    armed_for: Option<DateTime<Utc>>,
    /// Its runs in flight; nothing allocated while it has none (an idle actor).
    runs: Runs,
    capacity_retry: Option<SpawnHandle>,
    firing_allowed: bool,
    deleted: bool,
    /// Its partition moved to another node: stopped for good here.
    handed_over: bool,
    db_failures: u32,
    state: ActorState,
    restarts: u32,
    last_fire_at: Option<DateTime<Utc>>,
    last_fire_lag_ms: Option<f64>,
    last_error: Option<String>,
}

impl ScheduleActor {
    pub fn new(id: Arc<str>, deps: Arc<ScheduleDeps>, restarts: u32) -> ScheduleActor {
        ScheduleActor {
            id,
            deps,
            loaded: None,
            lease: None,
            record: None,
            timer: None,
            armed_for: None,
            runs: Runs::default(),
            capacity_retry: None,
            firing_allowed: true,
            deleted: false,
            handed_over: false,
            db_failures: 0,
            state: if restarts > 0 {
                ActorState::Restarting
            } else {
                ActorState::Armed
            },
            restarts,
            last_fire_at: None,
            last_fire_lag_ms: None,
            last_error: None,
        }
    }

    /// Starts from `loaded` instead of reading the schedule itself.
    pub fn with_loaded(mut self, loaded: Option<Loaded>) -> ScheduleActor {
        self.loaded = loaded.map(Box::new);
        self
    }

    /// Runs under `lease` (fenced fires).
    pub fn with_lease(mut self, lease: Option<Lease>) -> ScheduleActor {
        self.lease = lease;
        self
    }

    /// Moves to `state` and tells the health board.
    fn set_state(&mut self, state: ActorState) {
        self.state = state;
        let (name, next) = match &self.record {
            Some(r) => (r.name.as_ref(), r.next_run_at),
            None => ("", None),
        };
        self.deps
            .board
            .set_state(&self.id, name, state, next, self.restarts);
        self.publish();
    }

    /// Tells the health board what `GET /v1/schedules/{id}` shows of this actor. Called
    /// wherever the queues, the last fire or the last error may have changed.
    fn publish(&mut self) {
        self.runs.tidy();
        if self.record.is_none() {
            return; // still loading: there is nothing true to show yet
        }
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.deps.board.publish(
            &self.id,
            Live {
                next_run_at: self.record.as_ref().and_then(|r| r.next_run_at),
                active_runs: count(self.runs.active.len()),
                queued_runs: count(self.runs.waiting.len() + self.runs.retry_timers.len()),
                last_fire_at: self.last_fire_at,
                last_fire_lag_ms: self.last_fire_lag_ms,
                last_error: self.last_error.as_deref().map(Box::from),
            },
        );
    }

    /// The wait before retrying after database trouble ([`DB_BACKOFF`]).
    fn db_backoff(&mut self) -> Duration {
        self.db_failures = self.db_failures.saturating_add(1);
        DB_BACKOFF.delay(self.db_failures)
    }

    /// A span naming this schedule and what its actor is doing (`step`): log lines inside
    /// it carry the schedule id without repeating it.
    fn span(&self, step: &'static str) -> tracing::Span {
        tracing::info_span!("schedule", schedule_id = %self.id, step)
    }

    /// Runs a command's future inside a span naming the command.
    fn command<C: ScheduleCommand>(
        &mut self,
        f: impl FnOnce(&mut Self) -> ResponseActFuture<Self, Result<C::Reply, CommandError>>,
    ) -> ResponseActFuture<Self, Result<C::Reply, CommandError>> {
        Box::pin(InSpan::build(self.span(C::NAME), || f(self)))
    }

    /// Loads the schedule and its unfinished runs, then wakes up. The mailbox waits.
    fn load(&mut self, ctx: &mut Context<Self>) {
        let loading = InSpan::build(self.span("load"), || {
            let id = self.id.clone();
            let fut = self.deps.store.run(move |conn| {
                let record = schedules::find(conn, &id)?;
                let runs = runs::unfinished_of(conn, &id)?;
                Ok::<_, StoreError>((record, runs))
            });
            fut.into_actor(self).map(|res, act, ctx| match res {
                Ok((record, runs)) => act.start_from(record, runs, ctx),
                Err(e) => act.store_failed(e, ctx, |act, ctx| act.load(ctx)),
            })
        });
        ctx.wait(loading);
    }

    /// Adopts what was read, then wakes up.
    fn start_from(&mut self, record: ScheduleRecord, runs: Vec<RunRow>, ctx: &mut Context<Self>) {
        self.db_failures = 0;
        self.adopt(record, runs, ctx);
        self.wake(ctx);
        self.dispatch(ctx);
    }

    /// Handles a store error: deleted → stop; outage → retry `again` later; else restart.
    fn store_failed(
        &mut self,
        e: StoreError,
        ctx: &mut Context<Self>,
        again: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        match e {
            StoreError::NotFound => {
                // Deleted (possibly through another node): what runs here stops too.
                for run_id in &self.runs.active {
                    self.deps.pool.do_send(CancelRun {
                        run_id: run_id.clone(),
                    });
                }
                self.deleted = true;
                ctx.stop();
            }
            StoreError::Fenced { partition, epoch } => {
                tracing::info!(
                    partition,
                    epoch,
                    "partition taken over by another node; stopping"
                );
                self.handed_over = true;
                ctx.stop();
            }
            StoreError::Unavailable(cause) => {
                let delay = self.db_backoff();
                tracing::warn!(%cause, retry_in_ms = delay.as_millis() as u64, "database unavailable");
                self.last_error = Some(format!("database unavailable: {cause}"));
                self.publish();
                self.set_timer(ctx, delay, again);
            }
            other => {
                tracing::error!(error = %other, "schedule actor failed; restarting");
                self.last_error = Some(other.to_string());
                ctx.stop();
            }
        }
    }

    /// Replaces cached state with the database's.
    fn adopt(&mut self, record: ScheduleRecord, runs: Vec<RunRow>, ctx: &mut Context<Self>) {
        self.record = Some(Cached::from(&record));
        let now = store::now();
        self.runs.waiting.clear();
        for run in runs {
            if run.origin == ORIGIN_BACKFILL {
                self.runs.backfilled.insert(run.id.clone());
            }
            if self.runs.active.contains(&run.id) {
                continue;
            }
            match run.status {
                // Jittered: not due yet, so not waiting yet.
                RunStatus::Pending if run.due_time > now => {
                    self.arm_retry(run.id, run.due_time, now, ctx)
                }
                RunStatus::Pending => self.runs.waiting.push((run.due_time, run.id)),
                RunStatus::RetryScheduled => self.arm_retry(run.id, run.due_time, now, ctx),
                _ => {} // claimed/running elsewhere: the database counts them at claim time
            }
        }
        self.runs.waiting.sort();
    }

    fn set_timer(
        &mut self,
        ctx: &mut Context<Self>,
        delay: Duration,
        f: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        if let Some(old) = self.timer.take() {
            ctx.cancel_future(old);
        }
        self.timer = Some(ctx.run_later(delay, move |act, ctx| {
            act.timer = None;
            f(act, ctx)
        }));
    }

    /// Arms the cadence timer, or fires now if the next occurrence is due.
    fn wake(&mut self, ctx: &mut Context<Self>) {
        if let Some(old) = self.timer.take() {
            ctx.cancel_future(old);
        }
        let Some(record) = &self.record else { return };
        if !record.active {
            self.armed_for = None;
            self.set_state(ActorState::Paused);
            return;
        }
        let Some(next) = record.next_run_at else {
            self.set_state(ActorState::Finished);
            return;
        };
        if !self.firing_allowed {
            return;
        }
        self.set_state(ActorState::Armed);
        let now = Utc::now();
        if next <= now {
            self.fire(ctx);
        } else {
            let until = (next - now).to_std().unwrap_or_default();
            let delay = if until > 2 * FINAL_APPROACH {
                (until - FINAL_APPROACH).min(MAX_TIMER)
            } else {
                until
            };
            self.armed_for = Some(next);
            self.set_timer(ctx, delay, |act, ctx| act.fire(ctx));
        }
    }

    /// Materialises what is due, re-arms and dispatches.
    fn fire(&mut self, ctx: &mut Context<Self>) {
        let Some(record) = &self.record else { return };
        let Some(nominal) = record.next_run_at else {
            return;
        };
        let woke_at = Utc::now();
        if nominal > woke_at {
            // Woke early (a capped timer, or the final approach): sleep again.
            return self.wake(ctx);
        }
        self.set_state(ActorState::Firing);
        let span = tracing::info_span!("schedule", schedule_id = %self.id, step = "fire", nominal = %nominal);
        let id = self.id.to_string();
        let now = store::now();
        let asked = self.deps.materialiser.send(MaterialiseDue {
            id,
            now,
            armed_for: self.armed_for,
            lease: self.lease,
        });
        let fut = async move {
            asked
                .await
                .unwrap_or_else(|e| Err(StoreError::Task(Box::new(e))))
        };
        let fired = fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(m) => {
                act.db_failures = 0;
                act.last_fire_at = Some(woke_at.trunc_subsecs(6));
                let lag = (woke_at - nominal).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                act.last_fire_lag_ms = Some(lag);
                act.deps.board.record_fire_lag(lag);
                let taken = m.conflicts > 0;
                if taken {
                    tracing::warn!(
                        conflicts = m.conflicts,
                        "occurrence already materialised (another timer for this schedule)"
                    );
                    act.deps.board.record_conflicts(m.conflicts);
                }
                act.materialised(m, ctx);
                if taken {
                    // Another node's actor (a hand-over) wrote runs this one has not seen;
                    // they wait for a dispatch only this actor can give now.
                    ctx.notify(Reload);
                }
            }
            Err(e) => act.store_failed(e, ctx, |act, ctx| act.fire(ctx)),
        });
        ctx.wait(InSpan::build(span, || fired));
    }

    /// Queues freshly materialised runs (oldest first) for dispatch; a jittered one joins
    /// the queue at its due time.
    fn enqueue(&mut self, m: &Materialised, ctx: &mut Context<Self>) {
        let now = store::now();
        for run in &m.runnable {
            tracing::info!(run_id = %run.id, occurrence_key = %run.occurrence_key,
                attempt = run.attempt, due_time = %run.due_time, "occurrence materialised");
            if run.due_time > now {
                self.arm_retry(run.id.clone(), run.due_time, now, ctx);
            } else {
                self.runs.waiting.push((run.due_time, run.id.clone()));
            }
        }
        if m.skipped > 0 {
            tracing::info!(
                skipped = m.skipped,
                "overdue occurrences skipped by the misfire policy"
            );
        }
        self.runs.waiting.sort();
    }

    fn materialised(&mut self, m: Materialised, ctx: &mut Context<Self>) {
        self.enqueue(&m, ctx);
        self.record = Some(Cached::from(&m.record));
        // This actor computed the next occurrence and stays live for it.
        self.armed_for = m.record.next_run_at;
        self.wake(ctx);
        self.dispatch(ctx);
    }

    fn arm_retry(
        &mut self,
        run_id: String,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        ctx: &mut Context<Self>,
    ) {
        if let Some(old) = self.runs.retry_timers.remove(&run_id) {
            ctx.cancel_future(old);
        }
        if !self.firing_allowed {
            return;
        }
        let delay = (due - now).to_std().unwrap_or_default();
        let id = run_id.clone();
        let handle = ctx.run_later(delay, move |act, ctx| {
            act.runs.retry_timers.remove(&id);
            let _span = act.span("retry").entered();
            tracing::info!(run_id = %id, "run due");
            act.runs.queue_waiting(due, id);
            act.dispatch(ctx);
        });
        self.runs.retry_timers.insert(run_id, handle);
    }

    /// Applies the overlap policy and hands runs to the pool, then publishes the result.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        self.dispatch_waiting(ctx);
        self.publish();
    }

    fn dispatch_waiting(&mut self, ctx: &mut Context<Self>) {
        if self.capacity_retry.is_some() || self.runs.waiting.is_empty() {
            // Nothing waits: no policy has anything to start, skip or cancel.
            return;
        }
        let Some(record) = &self.record else { return };
        let target = record.target.clone();
        let timeout =
            Duration::from_secs(u64::try_from(record.policy.timeout_seconds).unwrap_or(300));
        let waiting_ids: Vec<String> = self.runs.waiting.iter().map(|(_, id)| id.clone()).collect();
        let plan = backfill::plan_dispatch(
            record.policy.overlap,
            usize::try_from(record.policy.max_concurrency).unwrap_or(1),
            &self.runs.active,
            &self.runs.cancelling,
            &waiting_ids,
            |id| self.runs.backfilled.contains(id),
        );
        for run_id in &plan.cancel {
            tracing::info!(run_id = %run_id, "cancelling active run (overlap replace)");
            self.runs.cancelling.push(run_id.clone());
            self.deps.pool.do_send(CancelRun {
                run_id: run_id.clone(),
            });
        }
        if !plan.skip.is_empty() {
            self.skip(plan.skip, ctx);
        }
        if !self.firing_allowed {
            return;
        }
        for run_id in plan.start {
            self.runs.waiting.retain(|(_, id)| *id != run_id);
            self.runs.active.push(run_id.clone());
            self.deps.pool.do_send(Execute {
                run_id,
                schedule_id: self.id.to_string(),
                target: target.clone(),
                timeout,
                report_to: ctx.address().recipient(),
            });
        }
    }

    /// Records waiting runs `skipped` because a newer run became due (overlap policy).
    fn skip(&mut self, ids: Vec<String>, ctx: &mut Context<Self>) {
        let Some(overlap) = self.record.as_ref().map(|r| r.policy.overlap) else {
            return;
        };
        self.runs.waiting.retain(|(_, id)| !ids.contains(id));
        self.publish();
        let reason = format!("skipped: a newer run became due (overlap policy {overlap})");
        let fut = self
            .deps
            .store
            .run(move |conn| runs::skip_waiting(conn, &ids, &reason, store::now()));
        let skipping = fut.into_actor(self).map(|res, act, ctx| {
            if let Err(e) = res {
                act.store_failed(e, ctx, |_, ctx| ctx.notify(Reload));
            }
        });
        ctx.spawn(InSpan::build(tracing::Span::current(), || skipping));
    }

    /// Cancels this schedule's runs on this node, deletes the row, then stops.
    fn delete(&mut self) -> ResponseActFuture<Self, Result<(), CommandError>> {
        for run_id in self
            .runs
            .active
            .iter()
            .chain(self.runs.waiting.iter().map(|(_, id)| id))
        {
            self.deps.pool.do_send(CancelRun {
                run_id: run_id.clone(),
            });
        }
        let id = self.id.clone();
        let fut = self
            .deps
            .store
            .run(move |conn| schedules::delete(conn, &id));
        Box::pin(fut.into_actor(self).map(|res, act, ctx| {
            if !res? {
                return Err(CommandError::NotFound);
            }
            act.deleted = true;
            ctx.stop();
            Ok(())
        }))
    }

    /// PUT/PATCH: validates the new body against the locked row and stores it. A body that
    /// carries `max_occurrences` starts the count again.
    fn update(
        &mut self,
        recount: bool,
        make_body: impl FnOnce(&ScheduleRecord) -> ScheduleBody + Send + 'static,
    ) -> ResponseActFuture<Self, Result<ScheduleRecord, CommandError>> {
        self.transition_with(move |current, now| {
            remote::updated(current, now, recount, &make_body(current))
        })
    }

    /// Inserts the window's occurrences (one transaction, idempotent on the ordinary keys),
    /// then queues the new runs oldest first. The cadence, paused or not, is left alone.
    fn backfill(
        &mut self,
        request: Backfill,
    ) -> ResponseActFuture<Self, Result<Backfilled, CommandError>> {
        let id = self.id.clone();
        let fut = self
            .deps
            .store
            .run(move |conn| backfill_runs(conn, &id, &request));
        Box::pin(fut.into_actor(self).map(|res, act, ctx| {
            let (created, existing) = res?;
            tracing::info!(created = created.len(), existing, "backfill materialised");
            let mut run_ids = Vec::with_capacity(created.len());
            for run in created {
                act.runs.backfilled.insert(run.id.clone());
                act.runs.waiting.push((run.due_time, run.id.clone()));
                run_ids.push(run.id);
            }
            act.runs.waiting.sort();
            act.dispatch(ctx);
            Ok(Backfilled { run_ids, existing })
        }))
    }

    fn transition(
        &mut self,
        f: impl FnOnce(&ScheduleRecord, DateTime<Utc>) -> ScheduleRecord + Send + 'static,
    ) -> ResponseActFuture<Self, Result<ScheduleRecord, CommandError>> {
        self.transition_with(move |r, now| Ok(f(r, now)))
    }

    /// Materialises what was due before the command (under the old definition, so a pause
    /// racing a due timer loses nothing), stores the new definition (one transaction), then
    /// materialises anything it made due (a resume after missed occurrences, no grace)
    /// before answering, so the reply is current.
    fn transition_with(
        &mut self,
        f: impl FnOnce(&ScheduleRecord, DateTime<Utc>) -> Result<ScheduleRecord, CommandError>
            + Send
            + 'static,
    ) -> ResponseActFuture<Self, Result<ScheduleRecord, CommandError>> {
        let id = self.id.clone();
        let armed_for = self.armed_for;
        let fut = self
            .deps
            .store
            .run(move |conn| remote::transition(conn, &id, armed_for, f));
        Box::pin(fut.into_actor(self).map(|res, act, ctx| {
            let (before, record, materialised) = res?;
            act.enqueue(&before, ctx);
            match materialised {
                Some(m) => {
                    let record = m.record.clone();
                    act.materialised(m, ctx);
                    Ok(record)
                }
                None => {
                    act.record = Some(Cached::from(&record));
                    act.wake(ctx);
                    act.dispatch(ctx);
                    Ok(record)
                }
            }
        }))
    }
}

impl Actor for ScheduleActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.set_state(self.state);
        match self.loaded.take() {
            Some(l) => self.start_from(l.record, l.runs, ctx),
            None => self.load(ctx),
        }
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        if self.handed_over {
            // Disowned (the Supervisor forgot it already) or fenced (it must forget it).
            self.deps.board.remove(&self.id);
            self.deps.supervisor.do_send(ActorStopped {
                id: self.id.to_string(),
                handed_over: Some(ctx.address()),
                deleted: false,
                restarts: self.restarts,
                last_error: None,
            });
            return;
        }
        if self.deleted {
            self.deps.board.remove(&self.id);
        } else {
            self.set_state(ActorState::Restarting);
        }
        self.deps.supervisor.do_send(ActorStopped {
            id: self.id.to_string(),
            handed_over: None,
            deleted: self.deleted,
            restarts: self.restarts,
            last_error: self.last_error.clone(),
        });
    }
}

impl Handler<Replace> for ScheduleActor {
    type Result = ResponseActFuture<Self, Result<ScheduleRecord, CommandError>>;
    fn handle(&mut self, msg: Replace, _: &mut Self::Context) -> Self::Result {
        let recount = msg.body.max_occurrences.is_some();
        self.command::<Replace>(|act| act.update(recount, move |_| msg.body))
    }
}

impl Handler<Patch> for ScheduleActor {
    type Result = ResponseActFuture<Self, Result<ScheduleRecord, CommandError>>;
    fn handle(&mut self, msg: Patch, _: &mut Self::Context) -> Self::Result {
        let recount = msg.body.max_occurrences.is_some();
        self.command::<Patch>(|act| {
            act.update(recount, move |current| {
                merge_patch(&body_of(&current.spec), &msg.body)
            })
        })
    }
}

impl Handler<Pause> for ScheduleActor {
    type Result = ResponseActFuture<Self, Result<ScheduleRecord, CommandError>>;
    fn handle(&mut self, msg: Pause, _: &mut Self::Context) -> Self::Result {
        self.command::<Pause>(|act| act.transition(move |r, now| r.paused(now, msg.note)))
    }
}

impl Handler<Resume> for ScheduleActor {
    type Result = ResponseActFuture<Self, Result<ScheduleRecord, CommandError>>;
    fn handle(&mut self, _: Resume, _: &mut Self::Context) -> Self::Result {
        self.command::<Resume>(|act| act.transition(|r, now| r.resumed(now)))
    }
}

impl Handler<Trigger> for ScheduleActor {
    type Result = ResponseActFuture<Self, Result<RunRow, CommandError>>;
    fn handle(&mut self, msg: Trigger, ctx: &mut Self::Context) -> Self::Result {
        self.command::<Trigger>(|act| act.trigger(msg.reason, ctx))
    }
}

impl Handler<BackfillWindow> for ScheduleActor {
    type Result = ResponseActFuture<Self, Result<Backfilled, CommandError>>;
    fn handle(&mut self, msg: BackfillWindow, _: &mut Self::Context) -> Self::Result {
        self.command::<BackfillWindow>(|act| act.backfill(msg.request))
    }
}

impl Handler<Delete> for ScheduleActor {
    type Result = ResponseActFuture<Self, Result<(), CommandError>>;
    fn handle(&mut self, _: Delete, _: &mut Self::Context) -> Self::Result {
        self.command::<Delete>(|act| act.delete())
    }
}

impl Handler<RunEnded> for ScheduleActor {
    type Result = ();
    fn handle(&mut self, msg: RunEnded, ctx: &mut Self::Context) {
        let _span = self.span("run_ended").entered();
        let was_cancelling = self.runs.cancelling.contains(&msg.run_id);
        let was_backfilled = match msg.end {
            RunEnd::Finished { .. } | RunEnd::Gone => self.runs.backfilled.remove(&msg.run_id),
            _ => self.runs.backfilled.contains(&msg.run_id),
        };
        self.runs.active.retain(|id| *id != msg.run_id);
        self.runs.cancelling.retain(|id| *id != msg.run_id);
        match msg.end {
            RunEnd::Finished { status, retry } => {
                self.deps.board.record_run_end(&self.id, status);
                if status == RunStatus::Failed || status == RunStatus::DeadLettered {
                    self.last_error = Some(format!("run {} ended {status}", msg.run_id));
                }
                if let Some((retry_id, due)) = retry {
                    if was_backfilled {
                        self.runs.backfilled.insert(retry_id.clone());
                    }
                    tracing::info!(run_id = %retry_id, due = %due, "retry scheduled");
                    self.arm_retry(retry_id, due, store::now(), ctx);
                }
            }
            RunEnd::NoCapacity => {
                self.runs.queue_waiting(store::now(), msg.run_id);
                if self.capacity_retry.is_none() {
                    self.capacity_retry = Some(ctx.run_later(CAPACITY_RETRY, |act, ctx| {
                        act.capacity_retry = None;
                        let _span = act.span("capacity_retry").entered();
                        act.dispatch(ctx);
                    }));
                }
            }
            RunEnd::Gone if was_cancelling => {
                // Replaced before any executor claimed it: it is still waiting in the
                // database, so record it skipped like any other replaced waiting run.
                self.skip(vec![msg.run_id], ctx);
            }
            RunEnd::Gone | RunEnd::ShuttingDown => {}
            RunEnd::Failed { error } => {
                tracing::warn!(run_id = %msg.run_id, %error, "run could not be processed; reloading");
                self.last_error = Some(error);
                ctx.run_later(Duration::from_secs(1), |_, ctx| ctx.notify(Reload));
            }
        }
        self.dispatch(ctx);
    }
}

impl Handler<Reload> for ScheduleActor {
    type Result = ();
    fn handle(&mut self, _: Reload, ctx: &mut Self::Context) {
        self.load(ctx);
    }
}

impl Handler<Disown> for ScheduleActor {
    type Result = ();
    fn handle(&mut self, _: Disown, ctx: &mut Self::Context) {
        self.handed_over = true;
        ctx.stop();
    }
}

impl Handler<StopFiring> for ScheduleActor {
    type Result = ();
    fn handle(&mut self, _: StopFiring, ctx: &mut Self::Context) {
        self.firing_allowed = false;
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        for (_, t) in self.runs.retry_timers.drain() {
            ctx.cancel_future(t);
        }
        self.publish();
    }
}

/// What one actor shows of itself (`GET /v1/schedules/{id}`'s `actor`), as the health
/// board holds it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ActorSnapshot {
    /// armed, firing, paused, finished or restarting.
    #[schema(value_type = String)]
    pub state: &'static str,
    pub next_fire_in_ms: Option<i64>,
    pub active_runs: usize,
    pub queued_runs: usize,
    pub last_fire_at: Option<DateTime<Utc>>,
    pub last_fire_lag_ms: Option<f64>,
    pub restarts: u32,
    pub last_error: Option<String>,
}

/// The store work of a backfill, in one transaction: the window's fire times by the
/// schedule's own cadence and zone, inserted unless their key exists. Returns the created
/// runs (oldest first) and how many already existed.
pub(crate) fn backfill_runs(
    conn: &mut diesel::PgConnection,
    id: &str,
    request: &Backfill,
) -> Result<(Vec<RunRow>, usize), CommandError> {
    // One read and one multi-row insert: nothing to keep atomic beyond that statement.
    let record = schedules::find(conn, id)?;
    let times = backfill::fire_times(
        &record.spec.cadence,
        record.spec.timezone,
        request.start,
        request.end,
    )
    .map_err(|e| CommandError::Validation(vec![e]))?;
    let now = store::now();
    let rows: Vec<RunRow> = times
        .iter()
        .map(|nominal| {
            let key = ids::occurrence_key(id, *nominal);
            let mut run = RunRow::new(
                ScheduleId(id),
                key,
                *nominal,
                *nominal,
                RunStatus::Pending,
                1,
                now,
            );
            run.trigger_reason = Some(request.reason.clone());
            run.origin = ORIGIN_BACKFILL.to_string();
            run
        })
        .collect();
    let inserted = runs::insert_many_if_absent(conn, &rows)?;
    let existing = rows.len() - inserted.len();
    let created = rows
        .into_iter()
        .filter(|r| inserted.contains(&r.id))
        .collect();
    Ok((created, existing))
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use actix::dev::ContextFut;

    /// What an idle actor's parts weigh inline (heap parts are in benches/README.md).
    #[test]
    fn an_idle_actor_stays_small() {
        let sizes = [
            ("ScheduleActor", std::mem::size_of::<ScheduleActor>()),
            ("Cached", std::mem::size_of::<Cached>()),
            ("Target", std::mem::size_of::<Target>()),
            ("ScheduleDeps", std::mem::size_of::<ScheduleDeps>()),
            ("Store", std::mem::size_of::<Store>()),
            (
                "Addr<ScheduleActor>",
                std::mem::size_of::<Addr<ScheduleActor>>(),
            ),
            (
                "Context<ScheduleActor>",
                std::mem::size_of::<Context<ScheduleActor>>(),
            ),
            (
                "ContextFut<ScheduleActor>",
                std::mem::size_of::<ContextFut<ScheduleActor, Context<ScheduleActor>>>(),
            ),
            (
                "TimerFunc<ScheduleActor>",
                std::mem::size_of::<actix::utils::TimerFunc<ScheduleActor>>(),
            ),
            ("ScheduleRecord", std::mem::size_of::<ScheduleRecord>()),
            ("Option<Lease>", std::mem::size_of::<Option<Lease>>()),
            ("Runs", std::mem::size_of::<Runs>()),
            (
                "InFlight (boxed when busy)",
                std::mem::size_of::<super::in_flight::InFlight>(),
            ),
        ];
        for (name, size) in sizes {
            eprintln!("size_of {name}: {size}");
        }
        // Was 632 with the deps and the run collections inline.
        assert!(std::mem::size_of::<ScheduleActor>() <= 400);
    }
}
