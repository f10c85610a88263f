//! Defines the protocol shared by several actors: run execution requests, cancellation,
//! run endings, schedule commands and shutdown. Private ticks stay in their actor's file.

use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::commands::CommandError;
use crate::domain::backfill::Backfill;
use crate::domain::validation::ScheduleBody;
use crate::domain::{RunStatus, Target};
use crate::store::runs::RunRow;
use crate::store::schedules::ScheduleRecord;

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

/// HTTP → Supervisor → ScheduleActor: a change to one schedule.
#[derive(Debug, Clone)]
pub enum ScheduleCommand {
    Replace(ScheduleBody),
    Patch(ScheduleBody),
    /// Pause; a note says why (shown as `pause_note` until resumed).
    Pause {
        note: Option<String>,
    },
    Resume,
    Trigger {
        reason: String,
    },
    /// Materialise the cadence's fire times in a past window now (API.md, *Backfill*).
    Backfill(Backfill),
    Delete,
}

/// What a command produced.
#[derive(Debug, Clone)]
pub enum CommandReply {
    Schedule(Box<ScheduleRecord>),
    Run(Box<RunRow>),
    /// A backfill: the runs it created (oldest first) and how many occurrences existed.
    Backfilled {
        run_ids: Vec<String>,
        existing: usize,
    },
    Deleted,
}

/// HTTP → Supervisor → ScheduleActor: apply a command to schedule `id`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<CommandReply, CommandError>")]
pub struct Apply {
    pub id: String,
    pub command: ScheduleCommand,
}

/// Supervisor/LeaseReaper → ScheduleActor: its runs or definition changed in the database
/// behind its back (recovery, another node); reload them.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Reload;

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
