//! Provides schedule creation for the Supervisor, with group commit: `CreateSchedule`
//! carries a new record validated on the caller's thread; the Supervisor queues it and
//! writes the queue one batch at a time, so creates that arrive while a batch's transaction
//! is in flight go together in the next one (at most [`CREATE_BATCH_MAX`] per transaction,
//! one commit for all of them).
//!
//! Each create is answered only after its row is committed and its actor started from the
//! inserted record (or, owned elsewhere, its owner told in the same transaction). The SQL,
//! and the fallback to one row per transaction when a batch fails, belong to the store.

use std::collections::VecDeque;

use actix::prelude::*;
use chrono::SubsecRound;
use tokio::sync::oneshot;

use super::Supervisor;
use crate::actors::messages::CommandError;
use crate::actors::schedule::Loaded;
use crate::domain::ids;
use crate::domain::validation::{parse_schedule, ScheduleBody, ValidationContext};
use crate::store::schedules::{self, NewSchedule, ScheduleRecord};
use crate::store::{self, StoreError};

/// Most creates written in one transaction. Bounds a batch's statement (its bind
/// parameters and the time it holds its locks) and what one failing row sends back to
/// one-row transactions.
pub const CREATE_BATCH_MAX: usize = 64;

/// How an answer gets back to a create's caller.
type Reply = oneshot::Sender<Result<ScheduleRecord, CommandError>>;

/// The creates waiting for their transaction.
#[derive(Default)]
pub struct Creates {
    queue: VecDeque<(ScheduleRecord, Reply)>,
    /// A batch is being written: new creates wait for the next one.
    writing: bool,
}

/// HTTP → Supervisor: store this new schedule and start its actor. Built by
/// [`CreateSchedule::validated`] on the caller's thread, so the Supervisor (one thread for
/// the whole node) only queues the write.
#[derive(Message)]
#[rtype(result = "Result<ScheduleRecord, CommandError>")]
pub struct CreateSchedule {
    record: ScheduleRecord,
}

impl CreateSchedule {
    /// The new schedule `body` defines, with a fresh id: `Validation` with every problem
    /// of the body otherwise.
    pub fn validated(body: &ScheduleBody) -> Result<CreateSchedule, CommandError> {
        let now = store::now();
        let ctx = ValidationContext {
            now,
            default_anchor: now.trunc_subsecs(0),
        };
        let spec = parse_schedule(body, &ctx).map_err(CommandError::Validation)?;
        Ok(CreateSchedule {
            record: ScheduleRecord::create(ids::schedule_id(), spec, now),
        })
    }
}

impl Handler<CreateSchedule> for Supervisor {
    type Result = ResponseFuture<Result<ScheduleRecord, CommandError>>;
    fn handle(&mut self, msg: CreateSchedule, ctx: &mut Self::Context) -> Self::Result {
        if self.shutting_down {
            // Draining: a new actor would arm timers nobody will honour. 503, retry later.
            return Box::pin(async { Err(CommandError::SchedulerUnavailable) });
        }
        let (reply, answer) = oneshot::channel();
        self.creates.queue.push_back((msg.record, reply));
        self.write_creates(ctx);
        Box::pin(async move {
            // Dropped unanswered only if the Supervisor stopped with the create queued.
            answer
                .await
                .unwrap_or(Err(CommandError::SchedulerUnavailable))
        })
    }
}

impl Supervisor {
    /// Writes the next batch of queued creates, unless one is being written (its
    /// completion calls this again).
    fn write_creates(&mut self, ctx: &mut Context<Self>) {
        if self.creates.writing || self.creates.queue.is_empty() {
            return;
        }
        self.creates.writing = true;
        let n = self.creates.queue.len().min(CREATE_BATCH_MAX);
        let cluster = &self.cluster;
        let (batch, replies): (Vec<NewSchedule>, Vec<Reply>) = self
            .creates
            .queue
            .drain(..n)
            .map(|(record, reply)| {
                let notify_owner = !cluster.owns(&record.id);
                (
                    NewSchedule {
                        record,
                        notify_owner,
                    },
                    reply,
                )
            })
            .unzip();
        let fut = self.store.run(move |conn| {
            let results = schedules::insert_batch(conn, &batch);
            Ok::<_, StoreError>((batch, results))
        });
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.creates.writing = false;
            match res {
                Ok((batch, results)) => {
                    for ((new, result), reply) in batch.into_iter().zip(results).zip(replies) {
                        let answer = match result {
                            Ok(()) => Ok(act.created(new, ctx)),
                            Err(e) => Err(CommandError::from(e)),
                        };
                        // The caller may have gone (a dropped request); the row stays.
                        let _ = reply.send(answer);
                    }
                }
                // Never reached the database (circuit open, no connection): nothing written.
                Err(e) => {
                    let again = e.to_string();
                    let mut first = Some(e);
                    for reply in replies {
                        let e = first
                            .take()
                            .unwrap_or_else(|| StoreError::Unavailable(again.clone().into()));
                        let _ = reply.send(Err(CommandError::from(e)));
                    }
                }
            }
            act.write_creates(ctx);
        }));
    }

    /// After `new`'s commit: starts its actor from the inserted record when this node owns
    /// it; otherwise its owner was told in the transaction, unless ownership moved while it
    /// was written, in which case it is told now.
    fn created(&mut self, new: NewSchedule, ctx: &mut Context<Self>) -> ScheduleRecord {
        let NewSchedule {
            record,
            notify_owner,
        } = new;
        self.remember(&record);
        if self.cluster.owns(&record.id) {
            // A new schedule has no runs: its actor starts from the record, without a read.
            let loaded = Loaded {
                record: record.clone(),
                runs: Vec::new(),
            };
            self.start_actor(record.id.clone(), Some(loaded), ctx);
        } else if !notify_owner {
            self.notify_owner(record.id.clone(), ctx);
        }
        record
    }
}
