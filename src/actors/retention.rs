//! Provides the `RetentionSweeper` (only with `WAKEPLANE_RUN_RETENTION_DAYS`): deletes
//! ended runs and their receipts older than the retention, one small batch per
//! transaction, batch after batch while there is a backlog, then once per interval.
//!
//! It owns no schedule state and tells no actor anything: the rows it deletes are ended
//! and never read by the scheduler again. Which rows may go is `store::retention`'s rule.

use std::time::Duration;

use actix::prelude::*;

use crate::metrics::Metrics;
use crate::store::retention::{self, Swept};
use crate::store::{self, Store};

/// Runs deleted per transaction: small, so each batch holds its row locks briefly and
/// a fire or a claim waiting for a connection waits for one batch at most.
pub const RETENTION_BATCH: i32 = 500;
/// The pause between two full batches while a backlog is being worked off, leaving the
/// pool and PostgreSQL to fires and claims in between.
const BETWEEN_BATCHES: Duration = Duration::from_millis(20);

/// What the sweeper needs: how long ended runs are kept, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    pub keep: Duration,
    pub interval: Duration,
}

pub struct RetentionSweeper {
    store: Store,
    metrics: Metrics,
    settings: RetentionSettings,
    /// The armed timer for the next batch.
    next: Option<SpawnHandle>,
    stopped: bool,
}

impl RetentionSweeper {
    pub fn new(store: Store, metrics: Metrics, settings: RetentionSettings) -> RetentionSweeper {
        RetentionSweeper {
            store,
            metrics,
            settings,
            next: None,
            stopped: false,
        }
    }

    fn arm(&mut self, after: Duration, ctx: &mut Context<Self>) {
        if let Some(h) = self.next.take() {
            ctx.cancel_future(h);
        }
        if !self.stopped {
            self.next = Some(ctx.run_later(after, |act, ctx| act.sweep(ctx)));
        }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        self.next = None;
        let keep = match chrono::Duration::from_std(self.settings.keep) {
            Ok(keep) => keep,
            Err(_) => return,
        };
        let cutoff = store::now() - keep;
        let fut = self
            .store
            .run(move |conn| retention::sweep_batch(conn, cutoff, RETENTION_BATCH));
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| {
            let after = match result {
                Ok(Swept { busy: true, .. }) => {
                    tracing::debug!("another node is applying the retention");
                    act.settings.interval
                }
                Ok(swept) => {
                    act.metrics
                        .runs_retention_deleted_total
                        .inc_by(swept.runs.max(0) as u64);
                    act.metrics
                        .receipts_retention_deleted_total
                        .inc_by(swept.receipts.max(0) as u64);
                    if swept.runs > 0 {
                        tracing::debug!(
                            runs = swept.runs,
                            receipts = swept.receipts,
                            "retention deleted ended runs"
                        );
                    }
                    if swept.runs >= i64::from(RETENTION_BATCH) {
                        BETWEEN_BATCHES
                    } else {
                        act.settings.interval
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention batch failed; trying again later");
                    act.settings.interval
                }
            };
            act.arm(after, ctx);
        }));
    }
}

impl Actor for RetentionSweeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(
            keep_days = self.settings.keep.as_secs() / 86_400,
            "ledger retention on"
        );
        self.arm(Duration::ZERO, ctx);
    }
}

/// Stops the sweeper (shutdown): no batch starts after it; one under way completes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopSweeper;

impl Handler<StopSweeper> for RetentionSweeper {
    type Result = ();
    fn handle(&mut self, _: StopSweeper, ctx: &mut Self::Context) {
        self.stopped = true;
        if let Some(h) = self.next.take() {
            ctx.cancel_future(h);
        }
        ctx.stop();
    }
}
