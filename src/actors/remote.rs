//! Provides the store side of each schedule command, shared by the schedule's actor (which
//! then acts on the result itself) and by a Supervisor that does not run the schedule's
//! actor: it makes the same change in one transaction and notifies the owner, whose actor
//! reloads the schedule and re-arms (SEMANTICS.md, "Nodes").
//!
//! The rules are the domain's (`lifecycle`, `validation`); nothing here holds state, arms
//! timers or knows about HTTP.

use chrono::{DateTime, SubsecRound, Utc};
use diesel::{Connection, PgConnection};

use super::messages::{
    BackfillWindow, Backfilled, CommandError, Delete, Patch, Pause, Replace, Resume,
    ScheduleCommand, Trigger,
};
use super::schedule::backfill_runs;
use crate::domain::ids::{self, ScheduleId};
use crate::domain::validation::{
    body_of, merge_patch, parse_schedule, ScheduleBody, ValidationContext,
};
use crate::domain::RunStatus;
use crate::store::partitions;
use crate::store::runs::{self, RunRow, ORIGIN_MANUAL};
use crate::store::schedules::{self, Materialised, ScheduleRecord};
use crate::store::{self, StoreError};

/// What a definition change wrote: what was due under the old definition, the stored
/// schedule, and what the new definition made due at once.
pub type Transitioned = (Materialised, ScheduleRecord, Option<Materialised>);

/// Materialises what was due before the change (under the old definition, so a pause
/// racing a due timer loses nothing; `armed_for` as the live timer was), stores `f`'s
/// result, then materialises what the new definition made due (no grace: no timer was
/// armed for it).
pub fn transition(
    conn: &mut PgConnection,
    id: &str,
    armed_for: Option<DateTime<Utc>>,
    f: impl FnOnce(&ScheduleRecord, DateTime<Utc>) -> Result<ScheduleRecord, CommandError>,
) -> Result<Transitioned, CommandError> {
    let now = store::now();
    let before = schedules::materialise_due(conn, id, now, armed_for)?;
    let record = schedules::update_with(conn, id, |current| f(current, now))?;
    let materialised = match record.due_by(now) {
        Some(_) => Some(schedules::materialise_due(conn, id, now, None)?),
        None => None,
    };
    Ok((before, record, materialised))
}

/// The schedule as PUT/PATCH leave it: the body (built from the locked row) validated, a
/// body carrying `max_occurrences` starting the count again.
pub fn updated(
    current: &ScheduleRecord,
    now: DateTime<Utc>,
    recount: bool,
    body: &ScheduleBody,
) -> Result<ScheduleRecord, CommandError> {
    let ctx = ValidationContext {
        now,
        default_anchor: current.created_at.trunc_subsecs(0),
    };
    let spec = parse_schedule(body, &ctx).map_err(CommandError::Validation)?;
    Ok(current.replaced(spec, now, recount))
}

/// Records a `pending` manual run keyed `manual:{run_id}`, due now.
pub fn insert_manual_run(
    conn: &mut PgConnection,
    id: &str,
    reason: String,
) -> Result<RunRow, StoreError> {
    let run = manual_run(id, reason);
    runs::insert_if_absent(conn, &run)?;
    Ok(run)
}

/// Records one `pending` manual run per reason, in order, with one statement.
pub fn insert_manual_runs(
    conn: &mut PgConnection,
    id: &str,
    reasons: Vec<String>,
) -> Result<Vec<RunRow>, StoreError> {
    let rows: Vec<RunRow> = reasons.into_iter().map(|r| manual_run(id, r)).collect();
    runs::insert_many_if_absent(conn, &rows)?;
    Ok(rows)
}

/// A manual run keyed `manual:{run_id}`, due now (its key is new: it cannot conflict).
fn manual_run(id: &str, reason: String) -> RunRow {
    let now = store::now();
    let mut run = RunRow::new(
        ScheduleId(id),
        String::new(),
        now,
        now,
        RunStatus::Pending,
        1,
        now,
    );
    run.occurrence_key = ids::manual_occurrence_key(&run.id);
    run.trigger_reason = Some(reason);
    run.origin = ORIGIN_MANUAL.to_string();
    run
}

/// A command applied by a node that does not run the schedule's actor.
pub trait ApplyElsewhere: ScheduleCommand + Sized {
    /// Makes the change the actor would make, without its in-memory part.
    fn apply(self, conn: &mut PgConnection, id: &str) -> Result<Self::Reply, CommandError>;
}

/// Applies `command` to schedule `id` and notifies its owner, in one transaction (the
/// notification is delivered on commit, so the owner reads the change).
pub fn apply_elsewhere<C: ApplyElsewhere>(
    conn: &mut PgConnection,
    id: &str,
    command: C,
) -> Result<C::Reply, CommandError> {
    conn.transaction(|conn| {
        let reply = command.apply(conn, id)?;
        partitions::notify(conn, id)?;
        Ok(reply)
    })
}

/// The occurrence a live owner's timer is armed for: the stored `next_run_at`, so a change
/// racing a due timer gets the same on-time grace as on the owner.
fn armed_for(conn: &mut PgConnection, id: &str) -> Result<Option<DateTime<Utc>>, CommandError> {
    Ok(schedules::find(conn, id)?.next_run_at)
}

/// The stored schedule after a transition: the last materialisation's, when there was one.
fn stored((_, record, after): Transitioned) -> ScheduleRecord {
    after.map(|m| m.record).unwrap_or(record)
}

impl ApplyElsewhere for Replace {
    fn apply(self, conn: &mut PgConnection, id: &str) -> Result<ScheduleRecord, CommandError> {
        let recount = self.body.max_occurrences.is_some();
        let armed = armed_for(conn, id)?;
        transition(conn, id, armed, |current, now| {
            updated(current, now, recount, &self.body)
        })
        .map(stored)
    }
}

impl ApplyElsewhere for Patch {
    fn apply(self, conn: &mut PgConnection, id: &str) -> Result<ScheduleRecord, CommandError> {
        let recount = self.body.max_occurrences.is_some();
        let armed = armed_for(conn, id)?;
        transition(conn, id, armed, |current, now| {
            let body = merge_patch(&body_of(&current.spec), &self.body);
            updated(current, now, recount, &body)
        })
        .map(stored)
    }
}

impl ApplyElsewhere for Pause {
    fn apply(self, conn: &mut PgConnection, id: &str) -> Result<ScheduleRecord, CommandError> {
        let armed = armed_for(conn, id)?;
        transition(conn, id, armed, |r, now| Ok(r.paused(now, self.note))).map(stored)
    }
}

impl ApplyElsewhere for Resume {
    fn apply(self, conn: &mut PgConnection, id: &str) -> Result<ScheduleRecord, CommandError> {
        let armed = armed_for(conn, id)?;
        transition(conn, id, armed, |r, now| Ok(r.resumed(now))).map(stored)
    }
}

impl ApplyElsewhere for Trigger {
    fn apply(self, conn: &mut PgConnection, id: &str) -> Result<RunRow, CommandError> {
        // The schedule must exist (a run row for a missing one would fail its foreign key
        // with a less helpful error).
        schedules::find(conn, id)?;
        Ok(insert_manual_run(conn, id, self.reason)?)
    }
}

impl ApplyElsewhere for BackfillWindow {
    fn apply(self, conn: &mut PgConnection, id: &str) -> Result<Backfilled, CommandError> {
        let (created, existing) = backfill_runs(conn, id, &self.request)?;
        Ok(Backfilled {
            run_ids: created.into_iter().map(|r| r.id).collect(),
            existing,
        })
    }
}

impl ApplyElsewhere for Delete {
    fn apply(self, conn: &mut PgConnection, id: &str) -> Result<(), CommandError> {
        if schedules::delete(conn, id)? {
            Ok(())
        } else {
            Err(CommandError::NotFound)
        }
    }
}
