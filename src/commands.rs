//! Provides `Commands`, the handle the HTTP API uses to change schedules: every command
//! goes to the Supervisor, which creates schedules and routes the rest to their actor.
//!
//! Handlers never mutate schedule state themselves.

use actix::Addr;

use crate::actors::messages::{Apply, CommandReply, ScheduleCommand};
use crate::actors::supervisor::{CreateSchedule, Supervisor};
use crate::domain::backfill::Backfill;
use crate::domain::validation::{FieldError, ScheduleBody};
use crate::store::runs::RunRow;
use crate::store::schedules::ScheduleRecord;
use crate::store::StoreError;

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("a schedule named {0:?} already exists")]
    NameTaken(String),
    #[error("schedule not found")]
    NotFound,
    /// The actor system did not answer (shutting down); the change may or may not have
    /// happened: read the schedule back.
    #[error("the scheduler is not accepting commands")]
    SchedulerUnavailable,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => CommandError::NotFound,
            other => CommandError::Store(other),
        }
    }
}

impl From<diesel::result::Error> for CommandError {
    fn from(e: diesel::result::Error) -> Self {
        StoreError::from(e).into()
    }
}

/// Cheap to clone; shared by every HTTP worker.
#[derive(Clone)]
pub struct Commands {
    supervisor: Addr<Supervisor>,
}

impl Commands {
    pub fn new(supervisor: Addr<Supervisor>) -> Commands {
        Commands { supervisor }
    }

    pub async fn create(&self, body: ScheduleBody) -> Result<ScheduleRecord, CommandError> {
        self.supervisor
            .send(CreateSchedule { body })
            .await
            .map_err(|_| CommandError::SchedulerUnavailable)?
    }

    async fn apply(
        &self,
        id: String,
        command: ScheduleCommand,
    ) -> Result<CommandReply, CommandError> {
        self.supervisor
            .send(Apply { id, command })
            .await
            .map_err(|_| CommandError::SchedulerUnavailable)?
    }

    async fn schedule(
        &self,
        id: String,
        command: ScheduleCommand,
    ) -> Result<ScheduleRecord, CommandError> {
        match self.apply(id, command).await? {
            CommandReply::Schedule(r) => Ok(*r),
            _ => Err(CommandError::SchedulerUnavailable),
        }
    }

    /// PUT: the body is a complete definition.
    pub async fn replace(
        &self,
        id: String,
        body: ScheduleBody,
    ) -> Result<ScheduleRecord, CommandError> {
        self.schedule(id, ScheduleCommand::Replace(body)).await
    }

    /// PATCH: fields present change; policy and retry merge field by field.
    pub async fn patch(
        &self,
        id: String,
        patch: ScheduleBody,
    ) -> Result<ScheduleRecord, CommandError> {
        self.schedule(id, ScheduleCommand::Patch(patch)).await
    }

    /// Pauses; `note` (already checked) says why.
    pub async fn pause(
        &self,
        id: String,
        note: Option<String>,
    ) -> Result<ScheduleRecord, CommandError> {
        self.schedule(id, ScheduleCommand::Pause { note }).await
    }

    pub async fn resume(&self, id: String) -> Result<ScheduleRecord, CommandError> {
        self.schedule(id, ScheduleCommand::Resume).await
    }

    /// Deletes the schedule: its actor cancels its active runs, then the row (and by
    /// cascade its history) goes.
    pub async fn delete(&self, id: String) -> Result<(), CommandError> {
        match self.apply(id, ScheduleCommand::Delete).await? {
            CommandReply::Deleted => Ok(()),
            _ => Err(CommandError::SchedulerUnavailable),
        }
    }

    /// Records a `pending` manual run keyed `manual:{run_id}`; the cadence is untouched.
    pub async fn trigger(&self, id: String, reason: String) -> Result<RunRow, CommandError> {
        match self.apply(id, ScheduleCommand::Trigger { reason }).await? {
            CommandReply::Run(r) => Ok(*r),
            _ => Err(CommandError::SchedulerUnavailable),
        }
    }

    /// Materialises the cadence's fire times in `[start, end)` through the schedule's
    /// actor: `(created run ids, existing occurrences)`.
    pub async fn backfill(
        &self,
        id: String,
        backfill: Backfill,
    ) -> Result<(Vec<String>, usize), CommandError> {
        match self.apply(id, ScheduleCommand::Backfill(backfill)).await? {
            CommandReply::Backfilled { run_ids, existing } => Ok((run_ids, existing)),
            _ => Err(CommandError::SchedulerUnavailable),
        }
    }
}
