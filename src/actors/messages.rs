//! Defines the protocol shared by several actors: run execution requests, cancellation,
//! run endings, the schedule commands (each with its typed reply, and `CommandError`) and
//! shutdown. Private ticks stay in their actor's file; nothing here knows about HTTP.

use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::domain::backfill::Backfill;
use crate::domain::validation::{FieldError, ScheduleBody};
use crate::domain::{RunStatus, Target};
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

/// A transaction around command work (`remote::apply_elsewhere`) fails with diesel's error.
impl From<diesel::result::Error> for CommandError {
    fn from(e: diesel::result::Error) -> Self {
        CommandError::from(StoreError::from(e))
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => CommandError::NotFound,
            StoreError::NameTaken(name) => CommandError::NameTaken(name),
            other => CommandError::Store(other),
        }
    }
}

/// ScheduleActor → ExecutorPool: claim this waiting run and execute it.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Execute {
    pub run_id: String,
    pub schedule_id: String,
    pub target: Target,
    pub timeout: Duration,
    /// Where the ending is reported.
    pub report_to: Recipient<RunEnded>,
}

/// ScheduleActor or Supervisor → ExecutorPool: stop this run if it is queued or executing
/// on this node (HTTP request aborted, process group killed, handler signalled).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CancelRun {
    pub run_id: String,
}

/// How a run handed to the pool ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// Executed and recorded with this final status; `retry` is the new attempt's run id
    /// and due time, if one was scheduled.
    Finished {
        status: RunStatus,
        retry: Option<(String, DateTime<Utc>)>,
    },
    /// Not claimed: the schedule's capacity is taken (possibly by another node).
    NoCapacity,
    /// Not claimed: the run is no longer waiting (claimed elsewhere, skipped, deleted).
    Gone,
    /// The pool is draining for shutdown; the run stays `pending` for the next start.
    ShuttingDown,
    /// The database failed; the run stays as it was and recovery takes it from there.
    Failed { error: String },
}

/// ExecutorPool → ScheduleActor: a run handed over by `Execute` has ended.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RunEnded {
    pub run_id: String,
    pub end: RunEnd,
}

/// A change to one schedule, sent HTTP → Supervisor (wrapped in [`Route`]) →
/// ScheduleActor, answered with its own typed `Reply`.
pub trait ScheduleCommand:
    Message<Result = Result<Self::Reply, CommandError>> + Send + std::fmt::Debug + 'static
{
    type Reply: Send + 'static;
    /// What the command is called in spans and logs.
    const NAME: &'static str;

    /// The schedule as stored after the command, when the command changes it.
    fn changed(_reply: &Self::Reply) -> Option<&ScheduleRecord> {
        None
    }
}

/// PUT: the body is a complete definition.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<ScheduleRecord, CommandError>")]
pub struct Replace {
    pub body: ScheduleBody,
}

/// PATCH: fields present change; policy and retry merge field by field.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<ScheduleRecord, CommandError>")]
pub struct Patch {
    pub body: ScheduleBody,
}

/// Stop the timer (idempotent); a note says why (shown as `pause_note` until resumed).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<ScheduleRecord, CommandError>")]
pub struct Pause {
    pub note: Option<String>,
}

/// Re-arm the timer; occurrences missed while paused follow the misfire rule.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<ScheduleRecord, CommandError>")]
pub struct Resume;

/// The commands answered with the schedule as stored after them.
macro_rules! schedule_changes {
    ($($command:ty => $name:literal),* $(,)?) => {$(
        impl ScheduleCommand for $command {
            type Reply = ScheduleRecord;
            const NAME: &'static str = $name;
            fn changed(reply: &ScheduleRecord) -> Option<&ScheduleRecord> {
                Some(reply)
            }
        }
    )*};
}

schedule_changes!(Replace => "replace", Patch => "patch", Pause => "pause", Resume => "resume");

/// Record a `pending` manual run keyed `manual:{run_id}`; the cadence is untouched.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<RunRow, CommandError>")]
pub struct Trigger {
    pub reason: String,
}

impl ScheduleCommand for Trigger {
    type Reply = RunRow;
    const NAME: &'static str = "trigger";
}

/// Materialise the cadence's fire times in a past window now (API.md, *Backfill*).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Backfilled, CommandError>")]
pub struct BackfillWindow {
    pub request: Backfill,
}

/// What a backfill did: the runs it created (oldest first) and how many occurrences of
/// the window existed already.
#[derive(Debug, Clone)]
pub struct Backfilled {
    pub run_ids: Vec<String>,
    pub existing: usize,
}

impl ScheduleCommand for BackfillWindow {
    type Reply = Backfilled;
    const NAME: &'static str = "backfill";
}

/// Delete the schedule: its active runs are cancelled, then the row (and by cascade its
/// history) goes.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), CommandError>")]
pub struct Delete;

impl ScheduleCommand for Delete {
    type Reply = ();
    const NAME: &'static str = "delete";
}

/// HTTP → Supervisor: route `command` to the actor of schedule `id`.
#[derive(Debug, Clone)]
pub struct Route<C> {
    pub id: String,
    pub command: C,
}

impl<C: ScheduleCommand> Message for Route<C> {
    type Result = Result<C::Reply, CommandError>;
}

/// Supervisor/LeaseReaper → ScheduleActor: its runs or definition changed in the database
/// behind its back (recovery, another node); reload them.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Reload;

/// Supervisor → ScheduleActor: the schedule's partition moved to another node; stop the
/// timers and stop, without a restart (runs in flight carry on; the new owner adopts them).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Disown;

/// Shutdown coordinator → Supervisor: stop firing timers (runs in flight carry on).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct StopFiring;

/// Shutdown coordinator → ExecutorPool: stop claiming, let running work finish within
/// `timeout`, then cancel what is left; answers when every executor is idle.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Drain {
    pub timeout: Duration,
}
