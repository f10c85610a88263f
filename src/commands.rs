//! Provides `Commands`, the thin handle the HTTP API holds to change schedules: every
//! command goes to the Supervisor, which creates schedules and routes the rest to their
//! actor. The vocabulary (messages, typed replies, `CommandError`) lives in
//! `actors::messages`; handlers never mutate schedule state themselves.

use actix::{Addr, Handler};

pub use crate::actors::messages::CommandError;
use crate::actors::messages::{
    BackfillWindow, Backfilled, Delete, Patch, Pause, Replace, Resume, Route, ScheduleCommand,
    Trigger,
};
use crate::actors::supervisor::{CreateSchedule, Supervisor};
use crate::actors::Scheduler;
use crate::domain::backfill::Backfill;
use crate::domain::validation::ScheduleBody;
use crate::store::runs::RunRow;
use crate::store::schedules::ScheduleRecord;

/// Cheap to clone; shared by every HTTP worker.
#[derive(Clone)]
pub struct Commands {
    supervisor: Addr<Supervisor>,
}

impl Commands {
    pub fn new(scheduler: &Scheduler) -> Commands {
        Commands {
            supervisor: scheduler.supervisor(),
        }
    }

    #[tracing::instrument(name = "command", skip_all, fields(command = "create"))]
    pub async fn create(&self, body: ScheduleBody) -> Result<ScheduleRecord, CommandError> {
        let create = CreateSchedule::validated(&body)?;
        self.supervisor
            .send(create)
            .await
            .map_err(|_| CommandError::SchedulerUnavailable)?
    }

    /// Routes `command` to schedule `id`'s actor and waits for its typed reply.
    #[tracing::instrument(name = "command", skip_all, fields(command = C::NAME, schedule_id = %id))]
    async fn route<C>(&self, id: String, command: C) -> Result<C::Reply, CommandError>
    where
        C: ScheduleCommand,
        Supervisor: Handler<Route<C>>,
    {
        self.supervisor
            .send(Route { id, command })
            .await
            .map_err(|_| CommandError::SchedulerUnavailable)?
    }

    /// PUT: the body is a complete definition.
    pub async fn replace(
        &self,
        id: String,
        body: ScheduleBody,
    ) -> Result<ScheduleRecord, CommandError> {
        self.route(id, Replace { body }).await
    }

    /// PATCH: fields present change; policy and retry merge field by field.
    pub async fn patch(
        &self,
        id: String,
        body: ScheduleBody,
    ) -> Result<ScheduleRecord, CommandError> {
        self.route(id, Patch { body }).await
    }

    /// Pauses; `note` (already checked) says why.
    pub async fn pause(
        &self,
        id: String,
        note: Option<String>,
    ) -> Result<ScheduleRecord, CommandError> {
        self.route(id, Pause { note }).await
    }

    pub async fn resume(&self, id: String) -> Result<ScheduleRecord, CommandError> {
        self.route(id, Resume).await
    }

    /// Deletes the schedule: its actor cancels its active runs, then the row (and by
    /// cascade its history) goes.
    pub async fn delete(&self, id: String) -> Result<(), CommandError> {
        self.route(id, Delete).await
    }

    /// Records a `pending` manual run keyed `manual:{run_id}`; the cadence is untouched.
    pub async fn trigger(&self, id: String, reason: String) -> Result<RunRow, CommandError> {
        self.route(id, Trigger { reason }).await
    }

    /// Materialises the cadence's fire times in `[start, end)` through the schedule's
    /// actor.
    pub async fn backfill(
        &self,
        id: String,
        request: Backfill,
    ) -> Result<Backfilled, CommandError> {
        self.route(id, BackfillWindow { request }).await
    }
}
