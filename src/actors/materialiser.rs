//! Provides the `Materialiser`: one per node, it writes the occurrences that schedule
//! actors' timers found due, many schedules per transaction.
//!
//! A timer's wake-up asks it with `MaterialiseDue` and waits for the answer. Up to
//! `MAX_IN_FLIGHT` batches are written at once (on as many connections); requests that
//! arrive meanwhile wait for the next one, so a burst (every `0 * * * *` schedule at the
//! top of the hour) costs a few transactions instead of one per schedule, and a lone
//! wake-up still goes straight through. It owns no schedule
//! state and decides nothing: `schedules::materialise_due` applies the misfire rule.
//!
//! It fences: a wake-up that names the partition lease its actor was started under is
//! written only while this node still holds that lease at that epoch (checked on the
//! batch's connection just before the batch); otherwise it answers `Fenced`.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::store::partitions::{self, Lease};
use crate::store::schedules::{self, DueRequest, Materialised};
use crate::store::{Store, StoreError};

/// Most schedules materialised in one transaction.
const MAX_BATCH: usize = 256;
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
    /// The lease the actor runs under; `None`: not fenced.
    pub lease: Option<Lease>,
}

type Reply = oneshot::Sender<Result<Materialised, StoreError>>;

pub struct Materialiser {
    store: Store,
    /// This node's id, the holder named in partition leases.
    node_id: Arc<str>,
    waiting: Vec<(DueRequest, Option<Lease>, Reply)>,
    /// Batches being written now.
    writing: usize,
}

impl Materialiser {
    pub fn new(store: Store, node_id: Arc<str>) -> Materialiser {
        Materialiser {
            store,
            node_id,
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
        let mut requests: Vec<DueRequest> = Vec::with_capacity(n);
        let mut fences: Vec<Option<Lease>> = Vec::with_capacity(n);
        let mut replies: Vec<Reply> = Vec::with_capacity(n);
        for (request, lease, reply) in self.waiting.drain(..n) {
            requests.push(request);
            fences.push(lease);
            replies.push(reply);
        }
        self.writing += 1;
        let store = self.store.clone();
        let node_id = self.node_id.clone();
        let fut = async move {
            // The fence first: requests whose lease moved on are answered `Fenced` and
            // left out of the batch.
            let leases: BTreeSet<Lease> = fences.iter().flatten().copied().collect();
            let checked = if leases.is_empty() {
                Ok(BTreeSet::new())
            } else {
                store
                    .run(move |c| partitions::still_held(c, &node_id, &leases))
                    .await
            };
            let held = match checked {
                Ok(held) => held,
                Err(e) => {
                    let e = e.to_string();
                    return requests
                        .iter()
                        .map(|_| Err(StoreError::Unavailable(e.clone().into())))
                        .collect::<Vec<_>>();
                }
            };
            let mut results: Vec<Option<Result<Materialised, StoreError>>> =
                Vec::with_capacity(requests.len());
            let mut requests_kept = Vec::with_capacity(requests.len());
            for (request, lease) in requests.into_iter().zip(&fences) {
                match lease {
                    Some(l) if !held.contains(l) => results.push(Some(Err(StoreError::Fenced {
                        partition: l.partition,
                        epoch: l.epoch,
                    }))),
                    _ => {
                        results.push(None);
                        requests_kept.push(request);
                    }
                }
            }
            let written = write_batch(&store, requests_kept).await;
            let mut written = written.into_iter();
            results
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| {
                        written
                            .next()
                            .unwrap_or_else(|| Err(StoreError::Task("batch result missing".into())))
                    })
                })
                .collect()
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

/// Writes `requests` as one batch; if the batch fails as a whole, each alone.
async fn write_batch(
    store: &Store,
    requests: Vec<DueRequest>,
) -> Vec<Result<Materialised, StoreError>> {
    if requests.is_empty() {
        return Vec::new();
    }
    let batch = requests.clone();
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
}

impl Actor for Materialiser {
    type Context = Context<Self>;
}

impl Handler<MaterialiseDue> for Materialiser {
    type Result = ResponseFuture<Result<Materialised, StoreError>>;
    fn handle(&mut self, msg: MaterialiseDue, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.waiting
            .push(((msg.id, msg.now, msg.armed_for), msg.lease, tx));
        self.flush(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(StoreError::Task("materialiser stopped".into())))
        })
    }
}
