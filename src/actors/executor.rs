//! Provides the run-executor pool: `WAKEPLANE_WORKERS` `RunExecutor` actors behind one
//! `ExecutorPool` that queues runs, claims them for its idle executors and hands each
//! claimed run to one.
//!
//! The pool claims in batches (one transaction claims and starts as many queued runs as it
//! has idle executors; see `leases::claim_and_start`), with up to four batches in flight so
//! executors freed during one claim are refilled by the next without waiting for it; a
//! burst of due runs costs a few transactions rather than two per run. An executor executes the target
//! under timeout and cancellation while renewing the lease every TTL/2 and hands the
//! outcome back; the pool records outcomes in batches too (outcomes, receipts, retry rows
//! or dead letters and lease releases of a batch in one transaction, falling back to one
//! run per transaction if a batch fails), then reports each ending to its schedule actor.
//! Neither decides policy nor touches schedule definitions.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::health::HealthBoard;
use super::messages::{CancelRun, Drain, Execute, RunEnd, RunEnded};
use crate::domain::backoff::Backoff;
use crate::domain::ids::RunId;
use crate::domain::RunStatus;
use crate::executors::{Executors, Outcome, OutcomeStatus, RunIdentity};
use crate::store::leases::{self, Claim, ClaimRequest, Completion, Finished};
use crate::store::partitions;
use crate::store::runs::{ReceiptRow, RunRow};
use crate::store::{self, Store, StoreError};

/// What every executor shares. Set at start-up.
#[derive(Clone)]
pub struct ExecutorDeps {
    pub store: Store,
    pub executors: Executors,
    pub worker_id: String,
    pub lease_ttl: Duration,
    pub board: Arc<HealthBoard>,
}

/// Most runs claimed, or recorded, in one batch.
const MAX_CLAIM_BATCH: usize = 64;
/// Claim batches in flight at once (each for executors reserved when it was cut).
const MAX_CLAIMS_IN_FLIGHT: usize = 4;
/// How far into the queue a further batch looks for runs of schedules not locked by the
/// batches in flight (behind one busy schedule's thousands of runs, a burst's others wait
/// their turn).
const UNLOCKED_SCAN: usize = 256;
/// Recording one outcome through an outage: 100 ms doubling, at most 2 s.
const RECORD_BACKOFF: Backoff =
    Backoff::doubling(Duration::from_millis(100), Duration::from_secs(2));

/// Queues runs, claims them in batches and hands each claimed run to an idle executor.
pub struct ExecutorPool {
    deps: ExecutorDeps,
    size: usize,
    executors: Vec<Addr<RunExecutor>>,
    idle: Vec<usize>,
    queue: VecDeque<Execute>,
    /// run id → executor index, for cancellation.
    running: HashMap<String, usize>,
    /// Runs of the claim batches in flight.
    claiming: HashSet<String>,
    /// Claim batches in flight (at most [`MAX_CLAIMS_IN_FLIGHT`]).
    claims_in_flight: usize,
    /// Schedules whose rows the claims in flight lock. Each is in one batch only: only a
    /// batch cut with none in flight may take a locked schedule's runs.
    locked: HashSet<String>,
    /// Runs asked to stop while their claim was in flight.
    cancelled_while_claiming: HashSet<String>,
    /// Executed runs whose outcome is not recorded yet.
    to_record: Vec<Executed>,
    /// Record batches (or single-run fallbacks) in flight.
    recording: usize,
    /// A [`HandOut`] is queued behind the mailbox.
    hand_out_queued: bool,
    accepting: bool,
    drain_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl ExecutorPool {
    pub fn new(deps: ExecutorDeps, size: usize) -> ExecutorPool {
        ExecutorPool {
            deps,
            size: size.max(1),
            executors: Vec::new(),
            idle: Vec::new(),
            queue: VecDeque::new(),
            running: HashMap::new(),
            claiming: HashSet::new(),
            claims_in_flight: 0,
            locked: HashSet::new(),
            cancelled_while_claiming: HashSet::new(),
            to_record: Vec::new(),
            recording: 0,
            hand_out_queued: false,
            accepting: true,
            drain_waiters: Vec::new(),
        }
    }

    /// Hands out once the messages already in the mailbox are handled: runs queued by a
    /// burst of `Execute`s, or executors freed together, go into one claim batch instead
    /// of a batch of one for the first and a wait for the rest.
    fn hand_out_soon(&mut self, ctx: &mut Context<Self>) {
        if !self.hand_out_queued {
            self.hand_out_queued = true;
            ctx.notify(HandOut);
        }
    }

    /// Claims as many queued runs as there are idle executors, reserving those executors
    /// for the batch (at most [`MAX_CLAIMS_IN_FLIGHT`] batches at a time), then answers
    /// drain waiters once nothing is queued, claiming or running.
    fn hand_out(&mut self, ctx: &mut Context<Self>) {
        let room = self.idle.len().min(MAX_CLAIM_BATCH);
        let jobs: Vec<Execute> = match self.claims_in_flight {
            0 => self.queue.drain(..room.min(self.queue.len())).collect(),
            // Another batch only when it is worth a transaction of its own (a run or two
            // cost as much as a full batch), and only of schedules no batch in flight has
            // locked: their runs would wait for its commit, and their executors with them,
            // instead of joining the next batch.
            n if n < MAX_CLAIMS_IN_FLIGHT => self.take_unlocked(room, (self.size / 8).max(1)),
            _ => Vec::new(),
        };
        if !jobs.is_empty() {
            let batch = jobs.len();
            let reserved: Vec<usize> = self.idle.split_off(self.idle.len() - batch);
            self.claiming.extend(jobs.iter().map(|j| j.run_id.clone()));
            self.locked
                .extend(jobs.iter().map(|j| j.schedule_id.clone()));
            self.claims_in_flight += 1;
            let requests: Vec<ClaimRequest> = jobs
                .iter()
                .map(|j| ClaimRequest {
                    run_id: j.run_id.clone(),
                    schedule_id: j.schedule_id.clone(),
                })
                .collect();
            let ttl = chrono::Duration::from_std(self.deps.lease_ttl).unwrap_or_default();
            let worker = self.deps.worker_id.clone();
            let metrics = self.deps.board.metrics();
            metrics.executor_claim_batch_runs.observe(batch as f64);
            let timer = metrics.executor_claim_duration_seconds.start_timer();
            let fut = self
                .deps
                .store
                .run(move |c| leases::claim_and_start(c, &requests, &worker, ttl, store::now));
            ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
                timer.observe_duration();
                act.claimed(jobs, reserved, res, ctx)
            }));
        }
        self.record_batch(ctx);
        self.deps
            .board
            .set_workers(self.running.len() + self.claiming.len(), self.size);
        if self.running.is_empty()
            && self.queue.is_empty()
            && self.claims_in_flight == 0
            && self.to_record.is_empty()
            && self.recording == 0
        {
            for w in self.drain_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    /// Takes, in queue order, up to `room` queued runs whose schedules no claim in flight
    /// has locked, looking at the first [`UNLOCKED_SCAN`] only; none unless at least `min`.
    fn take_unlocked(&mut self, room: usize, min: usize) -> Vec<Execute> {
        let picked: Vec<usize> = self
            .queue
            .iter()
            .take(UNLOCKED_SCAN)
            .enumerate()
            .filter(|(_, job)| !self.locked.contains(&job.schedule_id))
            .map(|(i, _)| i)
            .take(room)
            .collect();
        if picked.len() < min {
            return Vec::new();
        }
        let mut jobs: Vec<Execute> = picked
            .iter()
            .rev()
            .filter_map(|&i| self.queue.remove(i))
            .collect();
        jobs.reverse();
        jobs
    }

    /// Records the executed runs waiting for it in one transaction (one batch in flight);
    /// if the batch fails, each run is recorded on its own, through outages, as long as its
    /// lease would have lasted.
    fn record_batch(&mut self, ctx: &mut Context<Self>) {
        if self.recording > 0 || self.to_record.is_empty() {
            return;
        }
        let n = self.to_record.len().min(MAX_CLAIM_BATCH);
        let batch: Vec<Executed> = self.to_record.drain(..n).collect();
        let items: Vec<(String, Completion)> = batch
            .iter()
            .map(|e| (e.run_id.clone(), e.completion.clone()))
            .collect();
        let worker = self.deps.worker_id.clone();
        let fut = self
            .deps
            .store
            .run(move |c| leases::finish(c, items, &worker, store::now()));
        self.recording += 1;
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.recording -= 1;
            match res {
                Ok(done) => {
                    for (executed, finished) in batch.into_iter().zip(done) {
                        act.recorded(executed, Ok(finished));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, runs = batch.len(), "recording a batch failed; recording each run alone");
                    for executed in batch {
                        act.recording += 1;
                        let deps = act.deps.clone();
                        let (id, completion) = (executed.run_id.clone(), executed.completion.clone());
                        ctx.spawn(record_alone(deps, id, completion).into_actor(act).map(
                            move |res, act, ctx| {
                                act.recording -= 1;
                                act.recorded(executed, res);
                                act.hand_out(ctx);
                            },
                        ));
                    }
                }
            }
            act.hand_out(ctx);
        }));
    }

    /// Logs, counts and reports one recorded (or unrecordable) ending.
    fn recorded(&mut self, e: Executed, res: Result<Finished, StoreError>) {
        let _span = e.span.enter();
        let end = match res {
            Ok(Finished::Recorded { status, retry }) => {
                tracing::info!(status = %status, retry_run_id = retry.as_ref().map(|r| r.0.as_str()), "run finished");
                if status == RunStatus::DeadLettered {
                    tracing::warn!("run dead-lettered");
                }
                self.deps
                    .board
                    .metrics()
                    .executor_runs_total
                    .with_label_values(&[e.kind, status.as_str()])
                    .inc();
                RunEnd::Finished { status, retry }
            }
            Ok(Finished::Lost) => {
                tracing::warn!("run was recovered elsewhere before its outcome was recorded");
                RunEnd::Gone
            }
            Err(err) => RunEnd::Failed {
                error: err.to_string(),
            },
        };
        if matches!(end, RunEnd::Finished { retry: Some(_), .. }) && !e.report_to.connected() {
            // The schedule moved to another node while this run executed: tell its owner
            // about the retry (nobody else would until a reload).
            let (store, id) = (self.deps.store.clone(), e.schedule_id.clone());
            actix::spawn(async move {
                if let Err(err) = store.run(move |c| partitions::notify(c, &id)).await {
                    tracing::warn!(error = %err, "could not announce a retry to the schedule's owner");
                }
            });
        }
        e.report_to.do_send(RunEnded {
            run_id: e.run_id,
            end,
        });
    }

    /// Hands each run won by a claim batch to one of the executors reserved for it (the
    /// rest are idle again); tells the schedule actors about the others.
    fn claimed(
        &mut self,
        jobs: Vec<Execute>,
        mut reserved: Vec<usize>,
        res: Result<Vec<Claim>, StoreError>,
        ctx: &mut Context<Self>,
    ) {
        self.claims_in_flight -= 1;
        for job in &jobs {
            self.claiming.remove(&job.run_id);
            self.locked.remove(&job.schedule_id);
        }
        // A failed batch leaves every run as it was: waiting, or claimed until recovery.
        let claims: Vec<Result<Claim, String>> = match res {
            Ok(claims) => claims.into_iter().map(Ok).collect(),
            Err(e) => jobs.iter().map(|_| Err(e.to_string())).collect(),
        };
        for (job, claim) in jobs.into_iter().zip(claims) {
            let cancelled = self.cancelled_while_claiming.remove(&job.run_id);
            let end = match claim {
                Ok(Claim::Won(run)) => match reserved.pop() {
                    Some(index) => {
                        self.running.insert(job.run_id.clone(), index);
                        let run_id = job.run_id.clone();
                        self.executors[index].do_send(RunClaimed { job, run: *run });
                        if cancelled {
                            self.executors[index].do_send(CancelRun { run_id });
                        }
                        continue;
                    }
                    // Never: a batch is no larger than the executors reserved for it.
                    None => RunEnd::Failed {
                        error: "no idle executor for a claimed run".into(),
                    },
                },
                // A stopped run that was not claimed is still waiting: it is the actor's.
                _ if cancelled => RunEnd::Gone,
                Ok(Claim::NoCapacity) => RunEnd::NoCapacity,
                Ok(Claim::Gone) => RunEnd::Gone,
                Err(error) => RunEnd::Failed { error },
            };
            job.report_to.do_send(RunEnded {
                run_id: job.run_id,
                end,
            });
        }
        self.idle.append(&mut reserved);
        self.hand_out(ctx);
    }
}

impl Actor for ExecutorPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let pool = ctx.address();
        for index in 0..self.size {
            let exec = RunExecutor {
                index,
                pool: pool.clone(),
                deps: self.deps.clone(),
                current: None,
            };
            self.executors.push(exec.start());
            self.idle.push(index);
        }
    }
}

impl Handler<Execute> for ExecutorPool {
    type Result = ();
    fn handle(&mut self, job: Execute, ctx: &mut Self::Context) {
        if !self.accepting {
            job.report_to.do_send(RunEnded {
                run_id: job.run_id,
                end: RunEnd::ShuttingDown,
            });
            return;
        }
        self.queue.push_back(job);
        self.hand_out_soon(ctx);
    }
}

/// ExecutorPool → itself: hand out now (see [`ExecutorPool::hand_out_soon`]).
#[derive(Message)]
#[rtype(result = "()")]
struct HandOut;

impl Handler<HandOut> for ExecutorPool {
    type Result = ();
    fn handle(&mut self, _: HandOut, ctx: &mut Self::Context) {
        self.hand_out_queued = false;
        self.hand_out(ctx);
    }
}

impl Handler<CancelRun> for ExecutorPool {
    type Result = ();
    fn handle(&mut self, msg: CancelRun, _: &mut Self::Context) {
        if let Some(pos) = self.queue.iter().position(|j| j.run_id == msg.run_id) {
            if let Some(job) = self.queue.remove(pos) {
                // Never claimed: it stays waiting in the database and is the actor's again.
                job.report_to.do_send(RunEnded {
                    run_id: job.run_id,
                    end: RunEnd::Gone,
                });
            }
        } else if let Some(&index) = self.running.get(&msg.run_id) {
            self.executors[index].do_send(msg);
        } else if self.claiming.contains(&msg.run_id) {
            self.cancelled_while_claiming.insert(msg.run_id);
        }
    }
}

/// RunExecutor → ExecutorPool: this run has executed (the executor is free again);
/// record its outcome and report it.
#[derive(Message)]
#[rtype(result = "()")]
struct Executed {
    index: usize,
    run_id: String,
    /// The target kind, for metrics.
    kind: &'static str,
    /// The run's span, for the logs written when it is recorded.
    span: tracing::Span,
    completion: Completion,
    report_to: Recipient<RunEnded>,
    schedule_id: String,
}

impl Handler<Executed> for ExecutorPool {
    type Result = ();
    fn handle(&mut self, msg: Executed, ctx: &mut Self::Context) {
        self.running.remove(&msg.run_id);
        self.idle.push(msg.index);
        self.to_record.push(msg);
        self.hand_out_soon(ctx);
    }
}

impl Handler<Drain> for ExecutorPool {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, msg: Drain, ctx: &mut Self::Context) -> Self::Result {
        self.accepting = false;
        for job in self.queue.drain(..) {
            job.report_to.do_send(RunEnded {
                run_id: job.run_id,
                end: RunEnd::ShuttingDown,
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.drain_waiters.push(tx);
        self.hand_out(ctx);
        let timeout = msg.timeout;
        Box::pin(
            async move { tokio::time::timeout(timeout, rx).await.is_ok() }
                .into_actor(self)
                .then(|drained, act, ctx| {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    if !drained {
                        tracing::warn!(
                            left = act.running.len(),
                            "drain timeout: cancelling runs still executing"
                        );
                        for (run_id, &index) in &act.running {
                            act.executors[index].do_send(CancelRun {
                                run_id: run_id.clone(),
                            });
                        }
                        act.drain_waiters.push(tx);
                        act.hand_out(ctx);
                    } else {
                        let _ = tx.send(());
                    }
                    async move {
                        // Cancelled work gets a bounded moment to record itself.
                        let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
                    }
                    .into_actor(act)
                }),
        )
    }
}

/// Executes one run at a time; its mailbox stays open for cancellation while it works.
pub struct RunExecutor {
    index: usize,
    pool: Addr<ExecutorPool>,
    deps: ExecutorDeps,
    current: Option<(String, CancellationToken)>,
}

impl Actor for RunExecutor {
    type Context = Context<Self>;
}

impl Handler<CancelRun> for RunExecutor {
    type Result = ();
    fn handle(&mut self, msg: CancelRun, _: &mut Self::Context) {
        if let Some((run_id, token)) = &self.current {
            if *run_id == msg.run_id {
                tracing::info!(run_id = %run_id, "cancelling run");
                token.cancel();
            }
        }
    }
}

/// ExecutorPool → RunExecutor: execute this run, claimed and started for you.
#[derive(Message)]
#[rtype(result = "()")]
struct RunClaimed {
    job: Execute,
    run: RunRow,
}

impl Handler<RunClaimed> for RunExecutor {
    type Result = ();
    fn handle(&mut self, RunClaimed { job, run }: RunClaimed, ctx: &mut Self::Context) {
        let token = CancellationToken::new();
        self.current = Some((job.run_id.clone(), token.clone()));
        let deps = self.deps.clone();
        let run_id = job.run_id.clone();
        let renew_every = deps.lease_ttl / 2;
        let renewal = {
            let deps = deps.clone();
            let run_id = run_id.clone();
            let token = token.clone();
            ctx.run_interval(renew_every, move |act, ctx| {
                let deps = deps.clone();
                let run_id = run_id.clone();
                let token = token.clone();
                ctx.spawn(
                    async move {
                        let ttl = chrono::Duration::from_std(deps.lease_ttl).unwrap_or_default();
                        let worker = deps.worker_id.clone();
                        let id = run_id.clone();
                        match deps
                            .store
                            .run(move |c| leases::renew(c, RunId(&id), &worker, ttl, store::now()))
                            .await
                        {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!(run_id = %run_id, "lease lost while executing; stopping the run");
                                token.cancel();
                            }
                            Err(e) => tracing::warn!(run_id = %run_id, error = %e, "lease renewal failed"),
                        }
                    }
                    .into_actor(act),
                );
            })
        };
        let report_to = job.report_to.clone();
        let schedule_id = job.schedule_id.clone();
        let kind = job.target.kind().as_str();
        // Instrumented, never entered across an await: every executor shares one thread.
        let span = tracing::info_span!("run", run_id = %run.id, schedule_id = %run.schedule_id,
            occurrence_key = %run.occurrence_key, attempt = run.attempt);
        ctx.spawn(
            execute_claimed(deps, job, run, token)
                .instrument(span.clone())
                .into_actor(self)
                .map(move |outcome, act, ctx| {
                    ctx.cancel_future(renewal);
                    act.current = None;
                    let completion = completion_of(&run_id, outcome, store::now());
                    act.pool.do_send(Executed {
                        index: act.index,
                        run_id,
                        kind,
                        span,
                        completion,
                        report_to,
                        schedule_id,
                    });
                }),
        );
    }
}

/// Executes a run this node has claimed and started; the pool records the outcome.
async fn execute_claimed(
    deps: ExecutorDeps,
    job: Execute,
    run: RunRow,
    cancel: CancellationToken,
) -> Outcome {
    tracing::info!("run claimed and started");
    if cancel.is_cancelled() {
        return Outcome::cancelled();
    }
    let identity = RunIdentity {
        schedule_id: run.schedule_id.clone(),
        run_id: run.id.clone(),
        occurrence_key: run.occurrence_key.clone(),
        attempt: run.attempt,
        nominal_time: run.nominal_time,
    };
    let started = std::time::Instant::now();
    let outcome = deps
        .executors
        .execute(&job.target, &identity, job.timeout, cancel)
        .await;
    deps.board
        .metrics()
        .executor_execution_duration_seconds
        .with_label_values(&[job.target.kind().as_str()])
        .observe(started.elapsed().as_secs_f64());
    outcome
}

/// Records one run's outcome in its own transaction, retrying through a database outage
/// for as long as the lease would have lasted (after that, recovery owns the run and the
/// write would be refused anyway).
async fn record_alone(
    deps: ExecutorDeps,
    run_id: String,
    completion: Completion,
) -> Result<Finished, StoreError> {
    let deadline = std::time::Instant::now() + deps.lease_ttl;
    let mut failures = 0;
    loop {
        let worker = deps.worker_id.clone();
        let item = vec![(run_id.clone(), completion.clone())];
        let res = deps
            .store
            .run(move |conn| leases::finish(conn, item, &worker, store::now()))
            .await
            .and_then(|mut done| done.pop().ok_or(StoreError::NotFound));
        match res {
            Err(StoreError::Unavailable(e)) if std::time::Instant::now() < deadline => {
                tracing::warn!(run_id = %run_id, error = %e, "database unavailable while recording a run; retrying");
                tokio::time::sleep(RECORD_BACKOFF.delay(failures)).await;
                failures += 1;
            }
            other => return other,
        }
    }
}

fn completion_of(run_id: &str, o: Outcome, now: chrono::DateTime<chrono::Utc>) -> Completion {
    let status = match o.status {
        OutcomeStatus::Succeeded => RunStatus::Succeeded,
        OutcomeStatus::Failed | OutcomeStatus::TimedOut => RunStatus::Failed,
        OutcomeStatus::Cancelled => RunStatus::Cancelled,
    };
    let receipts = o
        .receipts
        .into_iter()
        .enumerate()
        .map(|(i, r)| ReceiptRow {
            id: crate::domain::ids::receipt_id(),
            run_id: run_id.to_string(),
            receipt_kind: r.kind.to_string(),
            content_type: r.content_type,
            body: r.body,
            // Distinct instants keep the receipts' order stable.
            created_at: now + chrono::Duration::microseconds(i as i64),
        })
        .collect();
    Completion {
        status,
        http_status_code: o.http_status_code,
        exit_code: o.exit_code,
        result_json: o.result_json,
        error_text: o.error_text,
        receipts,
    }
}
