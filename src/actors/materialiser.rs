//! Provides the `Materialiser`: one per node, it writes the occurrences that schedule
//! actors' timers found due, many schedules per transaction.
//!
//! A timer's wake-up asks it with `MaterialiseDue` and waits for the answer. Up to
//! `MAX_IN_FLIGHT` batches are written at once (on as many connections); requests that
//! arrive meanwhile wait for the next one, so a burst (every `0 * * * *` schedule at the
//! top of the hour) costs a few transactions instead of one per schedule, and a lone
//! wake-up still goes straight through. It owns no schedule
//! state and decides nothing: `schedules::materialise_due` applies the misfire rule.

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::store::schedules::{self, DueRequest, Materialised};
use crate::store::{Store, StoreError};

/// Most schedules materialised in one transaction.
const MAX_BATCH: usize = 64;
/// Most batches written at once.
const MAX_IN_FLIGHT: usize = 4;

/// ScheduleActor → Materialiser: materialise what is due for schedule `id` at `now`, the
/// actor having been armed for `armed_for`, as `schedules::materialise_due` would.
#[derive(Message)]
#[rtype(result = "Result<Materialised, StoreError>")]
pub struct MaterialiseDue {
    pub id: String,
    pub now: chrono::DateTime<chrono::Utc>,
    pub armed_for: Option<chrono::DateTime<chrono::Utc>>,
}

type Reply = oneshot::Sender<Result<Materialised, StoreError>>;

pub struct Materialiser {
    store: Store,
    waiting: Vec<(DueRequest, Reply)>,
    /// Batches being written now.
    writing: usize,
}

impl Materialiser {
    pub fn new(store: Store) -> Materialiser {
        Materialiser {
            store,
            waiting: Vec::new(),
            writing: 0,
        }
    }

    /// Writes the waiting requests as one batch, unless `MAX_IN_FLIGHT` batches are being
    /// written. If a batch fails as a whole, each of its requests is retried alone so that
    /// one bad schedule cannot fail the others.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing >= MAX_IN_FLIGHT || self.waiting.is_empty() {
            return;
        }
        let n = self.waiting.len().min(MAX_BATCH);
        let (requests, replies): (Vec<DueRequest>, Vec<Reply>) = self.waiting.drain(..n).unzip();
        self.writing += 1;
        let store = self.store.clone();
        let batch = requests.clone();
        let fut = async move {
            match store
                .run(move |c| schedules::materialise_due_batch(c, &batch))
                .await
            {
                Ok(results) => results,
                Err(e) => {
                    tracing::warn!(error = %e, schedules = requests.len(), "materialising a batch failed; one by one");
                    let mut results = Vec::with_capacity(requests.len());
                    for (id, now, armed_for) in requests {
                        results.push(
                            store
                                .run(move |c| schedules::materialise_due(c, &id, now, armed_for))
                                .await,
                        );
                    }
                    results
                }
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |results, act, ctx| {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
            act.writing -= 1;
            act.flush(ctx);
        }));
    }
}

impl Actor for Materialiser {
    type Context = Context<Self>;
}

impl Handler<MaterialiseDue> for Materialiser {
    type Result = ResponseFuture<Result<Materialised, StoreError>>;
    fn handle(&mut self, msg: MaterialiseDue, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.waiting.push(((msg.id, msg.now, msg.armed_for), tx));
        self.flush(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(StoreError::Task("materialiser stopped".into())))
        })
    }
}
