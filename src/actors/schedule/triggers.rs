//! Provides the group commit of a schedule's manual triggers: triggers that arrive while a
//! batch is being written wait for the next batch, so a stream of triggers costs one
//! transaction per batch rather than one per trigger. Each caller still gets its own run
//! (or its own error). Queuing only: dispatch stays with the actor.

use actix::prelude::*;
use tokio::sync::oneshot;

use super::ScheduleActor;
use crate::actors::messages::CommandError;
use crate::actors::remote;
use crate::store::runs::RunRow;

/// Most triggers written in one transaction.
const MAX_TRIGGER_BATCH: usize = 64;

/// A trigger waiting for its batch.
pub(super) struct PendingTrigger {
    reason: String,
    reply: oneshot::Sender<Result<RunRow, CommandError>>,
}

impl ScheduleActor {
    /// Records a manual run (with the next batch) and queues it for dispatch; answers once
    /// it is stored.
    pub(super) fn trigger(
        &mut self,
        reason: String,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<RunRow, CommandError>> {
        let (reply, stored) = oneshot::channel();
        self.runs.triggers.push(PendingTrigger { reason, reply });
        self.write_triggers(ctx);
        Box::pin(
            async move {
                stored
                    .await
                    .unwrap_or(Err(CommandError::SchedulerUnavailable))
            }
            .into_actor(self),
        )
    }

    /// Writes the waiting triggers, up to [`MAX_TRIGGER_BATCH`], in one transaction, unless
    /// a batch is being written (its end writes the next). If the batch fails, each
    /// trigger is written on its own, so each caller gets its own answer.
    fn write_triggers(&mut self, ctx: &mut Context<Self>) {
        if self.runs.writing_triggers || self.runs.triggers.is_empty() {
            return;
        }
        let n = self.runs.triggers.len().min(MAX_TRIGGER_BATCH);
        let batch: Vec<PendingTrigger> = self.runs.triggers.drain(..n).collect();
        let reasons: Vec<String> = batch.iter().map(|t| t.reason.clone()).collect();
        self.runs.writing_triggers = true;
        let id = self.id.clone();
        let fut = self
            .deps
            .store
            .run(move |conn| remote::insert_manual_runs(conn, &id, reasons));
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.runs.writing_triggers = false;
            match res {
                Ok(runs) => {
                    for (t, run) in batch.into_iter().zip(runs) {
                        act.triggered(t, Ok(run));
                    }
                    act.dispatch(ctx);
                }
                Err(e) => {
                    tracing::warn!(error = %e, triggers = batch.len(), "writing a batch of triggers failed; writing each alone");
                    for t in batch {
                        act.write_trigger_alone(t, ctx);
                    }
                }
            }
            act.write_triggers(ctx);
            act.publish();
        }));
    }

    fn write_trigger_alone(&mut self, t: PendingTrigger, ctx: &mut Context<Self>) {
        let id = self.id.clone();
        let reason = t.reason.clone();
        let fut = self
            .deps
            .store
            .run(move |conn| remote::insert_manual_run(conn, &id, reason));
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.triggered(t, res.map_err(CommandError::from));
            act.dispatch(ctx);
        }));
    }

    /// Answers one trigger; a stored run joins the waiting runs (the caller dispatches).
    fn triggered(&mut self, t: PendingTrigger, res: Result<RunRow, CommandError>) {
        if let Ok(run) = &res {
            tracing::info!(run_id = %run.id, "manual run triggered");
            self.runs.queue_waiting(run.due_time, run.id.clone());
        }
        // The caller may have gone (a closed connection): the run stays recorded.
        let _ = t.reply.send(res);
    }
}
