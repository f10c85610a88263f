//! Provides schedule deletes for the Supervisor, with group commit: a schedule actor that
//! is deleting its schedule sends `DeleteRow`; the Supervisor sends it to the database at
//! once while fewer than [`DELETE_BATCHES_IN_FLIGHT`] statements are in flight, and
//! otherwise queues it, so deletes that arrive while the database is busy go together in
//! the next statement (at most [`DELETE_BATCH_MAX`] rows each, one commit).
//!
//! Each delete is answered only after its batch is committed. It decides nothing about the
//! actor (the actor stops itself once answered); the SQL, and the fallback to one row per
//! transaction when a batch fails, belong to the store.

use std::collections::VecDeque;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::Supervisor;
use crate::store::schedules;
use crate::store::StoreError;

/// Most deletes in one statement. Bounds the time a batch holds its row locks (each row's
/// cascade to its runs, receipts and dead letters) and what one failing row sends back to
/// one-row transactions.
pub const DELETE_BATCH_MAX: usize = 64;
/// Delete statements in flight at once. More than one: a delete is cheap for PostgreSQL
/// (one index lookup per child table), so one statement at a time left the database idle
/// while each batch's answers travelled back and the next deletes arrived (measured: fewer
/// deletes per second than one statement per delete). Concurrent batches cannot deadlock
/// one another: each locks its schedule rows in index (id) order.
pub const DELETE_BATCHES_IN_FLIGHT: usize = 4;

/// How an answer gets back to a delete's actor: whether the row existed.
type Reply = oneshot::Sender<Result<bool, StoreError>>;

/// The deletes waiting for their statement.
#[derive(Default)]
pub struct Deletes {
    queue: VecDeque<(String, Reply)>,
    /// Batches being deleted; at [`DELETE_BATCHES_IN_FLIGHT`], new deletes wait.
    in_flight: usize,
}

/// ScheduleActor → Supervisor: delete this schedule's row (and by cascade its history),
/// answering whether it existed. Sent after the actor cancelled its runs on this node.
#[derive(Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct DeleteRow {
    pub id: String,
}

impl Handler<DeleteRow> for Supervisor {
    type Result = ResponseFuture<Result<bool, StoreError>>;
    fn handle(&mut self, msg: DeleteRow, ctx: &mut Self::Context) -> Self::Result {
        // Not refused while shutting down: the actor took the command before the drain.
        let (reply, answer) = oneshot::channel();
        self.deletes.queue.push_back((msg.id, reply));
        self.write_deletes(ctx);
        Box::pin(async move {
            // Dropped unanswered only if the Supervisor stopped with the delete queued.
            answer.await.unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "the scheduler stopped before the delete was written".into(),
                ))
            })
        })
    }
}

impl Supervisor {
    /// Deletes the next batch of queued rows, unless enough batches are in flight (the
    /// completion of one calls this again).
    fn write_deletes(&mut self, ctx: &mut Context<Self>) {
        if self.deletes.in_flight >= DELETE_BATCHES_IN_FLIGHT || self.deletes.queue.is_empty() {
            return;
        }
        self.deletes.in_flight += 1;
        let n = self.deletes.queue.len().min(DELETE_BATCH_MAX);
        let (ids, replies): (Vec<String>, Vec<Reply>) = self.deletes.queue.drain(..n).unzip();
        let fut = self
            .store
            .run(move |conn| Ok::<_, StoreError>(schedules::delete_batch(conn, &ids)));
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.deletes.in_flight -= 1;
            match res {
                Ok(results) => {
                    for (result, reply) in results.into_iter().zip(replies) {
                        // The actor may have gone (stopped meanwhile); the row is gone too.
                        let _ = reply.send(result);
                    }
                }
                // Never reached the database (circuit open, no connection): nothing deleted.
                Err(e) => {
                    let again = e.to_string();
                    let mut first = Some(e);
                    for reply in replies {
                        let e = first
                            .take()
                            .unwrap_or_else(|| StoreError::Unavailable(again.clone().into()));
                        let _ = reply.send(Err(e));
                    }
                }
            }
            act.write_deletes(ctx);
        }));
    }
}
