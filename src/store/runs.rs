//! Provides the run ledger: `schedule_runs`, `execution_receipts` and `dead_letters` rows
//! and their queries.
//!
//! Materialisation is idempotent on `(occurrence_key, attempt)`: inserting a run that
//! already exists does nothing and says so. Terminal runs are never updated here.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;

use super::paging::{page_from, Cursor, Page};
use super::schema::{dead_letters, execution_receipts, schedule_runs};
use super::StoreError;
use crate::domain::ids::{self, ScheduleId};
use crate::domain::RunStatus;

/// One row of `schedule_runs`.
#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = schedule_runs, check_for_backend(Pg))]
pub struct RunRow {
    pub id: String,
    pub schedule_id: String,
    pub occurrence_key: String,
    pub nominal_time: DateTime<Utc>,
    pub due_time: DateTime<Utc>,
    pub status: RunStatus,
    pub attempt: i32,
    pub claimed_by_worker_id: Option<String>,
    pub claim_expires_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub http_status_code: Option<i32>,
    pub exit_code: Option<i32>,
    pub result_json: Option<serde_json::Value>,
    pub error_text: Option<String>,
    pub retry_available_at: Option<DateTime<Utc>>,
    pub trigger_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Where the occurrence came from: `schedule`, `manual` or `backfill` (retries keep
    /// their first attempt's). Backfilled runs wait for capacity and are never skipped or
    /// cancelled by the overlap policy.
    pub origin: String,
}

/// `origin` of a run a timer materialised.
pub const ORIGIN_SCHEDULE: &str = "schedule";
/// `origin` of a manual trigger.
pub const ORIGIN_MANUAL: &str = "manual";
/// `origin` of a backfilled occurrence.
pub const ORIGIN_BACKFILL: &str = "backfill";

impl RunRow {
    /// A new run row in `status`, due at `due_time`; everything else empty.
    pub fn new(
        schedule_id: ScheduleId<'_>,
        occurrence_key: String,
        nominal_time: DateTime<Utc>,
        due_time: DateTime<Utc>,
        status: RunStatus,
        attempt: i32,
        now: DateTime<Utc>,
    ) -> RunRow {
        RunRow {
            id: ids::run_id(),
            schedule_id: schedule_id.as_str().to_string(),
            occurrence_key,
            nominal_time,
            due_time,
            status,
            attempt,
            claimed_by_worker_id: None,
            claim_expires_at: None,
            started_at: None,
            finished_at: None,
            http_status_code: None,
            exit_code: None,
            result_json: None,
            error_text: None,
            retry_available_at: None,
            trigger_reason: None,
            created_at: now,
            updated_at: now,
            origin: ORIGIN_SCHEDULE.to_string(),
        }
    }
}

/// One row of `execution_receipts`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = execution_receipts, check_for_backend(Pg))]
pub struct ReceiptRow {
    pub id: String,
    pub run_id: String,
    pub receipt_kind: String,
    pub content_type: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// One row of `dead_letters`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = dead_letters, check_for_backend(Pg))]
pub struct DeadLetterRow {
    pub id: String,
    pub run_id: String,
    pub schedule_id: String,
    pub occurrence_key: String,
    pub attempt: i32,
    pub reason: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// Inserts the run unless `(occurrence_key, attempt)` exists; `true` when inserted.
pub fn insert_if_absent(conn: &mut PgConnection, run: &RunRow) -> Result<bool, StoreError> {
    let n = diesel::insert_into(schedule_runs::table)
        .values(run)
        .on_conflict((schedule_runs::occurrence_key, schedule_runs::attempt))
        .do_nothing()
        .execute(conn)?;
    Ok(n == 1)
}

pub fn find(conn: &mut PgConnection, id: &str) -> Result<RunRow, StoreError> {
    Ok(schedule_runs::table
        .find(id)
        .select(RunRow::as_select())
        .first(conn)?)
}

/// One page of runs, newest first, optionally for one schedule and/or status.
pub fn list(
    conn: &mut PgConnection,
    schedule_id: Option<&str>,
    status: Option<RunStatus>,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<Page<RunRow>, StoreError> {
    let mut q = schedule_runs::table
        .select(RunRow::as_select())
        .into_boxed();
    if let Some(s) = schedule_id {
        q = q.filter(schedule_runs::schedule_id.eq(s.to_string()));
    }
    if let Some(s) = status {
        q = q.filter(schedule_runs::status.eq(s));
    }
    if let Some(c) = cursor {
        q = q.filter(
            schedule_runs::created_at
                .lt(c.created_at)
                .or(schedule_runs::created_at
                    .eq(c.created_at)
                    .and(schedule_runs::id.lt(c.id.clone()))),
        );
    }
    let rows = q
        .order((schedule_runs::created_at.desc(), schedule_runs::id.desc()))
        .limit(limit + 1)
        .load(conn)?;
    Ok(page_from(rows, limit, |r| Cursor {
        created_at: r.created_at,
        id: r.id.clone(),
    }))
}

/// A run's receipts, oldest first.
pub fn receipts(conn: &mut PgConnection, run_id: &str) -> Result<Vec<ReceiptRow>, StoreError> {
    Ok(execution_receipts::table
        .filter(execution_receipts::run_id.eq(run_id))
        .select(ReceiptRow::as_select())
        .order((
            execution_receipts::created_at.asc(),
            execution_receipts::id.asc(),
        ))
        .load(conn)?)
}

pub fn insert_receipts(conn: &mut PgConnection, rows: &[ReceiptRow]) -> Result<(), StoreError> {
    if !rows.is_empty() {
        diesel::insert_into(execution_receipts::table)
            .values(rows)
            .execute(conn)?;
    }
    Ok(())
}

/// A schedule's dead letters, newest first.
pub fn dead_letters_of(
    conn: &mut PgConnection,
    schedule_id: &str,
) -> Result<Vec<DeadLetterRow>, StoreError> {
    Ok(dead_letters::table
        .filter(dead_letters::schedule_id.eq(schedule_id))
        .select(DeadLetterRow::as_select())
        .order(dead_letters::created_at.desc())
        .load(conn)?)
}

pub fn insert_dead_letter(conn: &mut PgConnection, row: &DeadLetterRow) -> Result<(), StoreError> {
    diesel::insert_into(dead_letters::table)
        .values(row)
        .on_conflict(dead_letters::run_id)
        .do_nothing()
        .execute(conn)?;
    Ok(())
}

/// Inserts many runs, skipping those whose `(occurrence_key, attempt)` exists; returns the
/// ids actually inserted.
pub fn insert_many_if_absent(
    conn: &mut PgConnection,
    rows: &[RunRow],
) -> Result<Vec<String>, StoreError> {
    let mut inserted = Vec::new();
    for chunk in rows.chunks(500) {
        let ids: Vec<String> = diesel::insert_into(schedule_runs::table)
            .values(chunk)
            .on_conflict((schedule_runs::occurrence_key, schedule_runs::attempt))
            .do_nothing()
            .returning(schedule_runs::id)
            .get_results(conn)?;
        inserted.extend(ids);
    }
    Ok(inserted)
}

/// A schedule's runs that still have to happen or are under way, oldest due first.
pub fn unfinished_of(
    conn: &mut PgConnection,
    schedule_id: &str,
) -> Result<Vec<RunRow>, StoreError> {
    unfinished_of_many(conn, &[schedule_id.to_string()])
}

/// The unfinished runs of every schedule in `schedule_ids`, in one query, each schedule's
/// oldest due first.
pub fn unfinished_of_many(
    conn: &mut PgConnection,
    schedule_ids: &[String],
) -> Result<Vec<RunRow>, StoreError> {
    Ok(schedule_runs::table
        .filter(schedule_runs::schedule_id.eq_any(schedule_ids))
        .filter(schedule_runs::status.eq_any(RunStatus::UNFINISHED))
        .select(RunRow::as_select())
        .order((
            schedule_runs::schedule_id.asc(),
            schedule_runs::due_time.asc(),
            schedule_runs::id.asc(),
        ))
        .load(conn)?)
}

/// Marks waiting runs `skipped` (overlap policy), counting them in the schedules' stats in
/// the same transaction; returns the ids actually skipped.
pub fn skip_waiting(
    conn: &mut PgConnection,
    run_ids: &[String],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    if run_ids.is_empty() {
        return Ok(Vec::new());
    }
    conn.transaction(|conn| {
        let skipped: Vec<RunRow> = diesel::update(
            schedule_runs::table
                .filter(schedule_runs::id.eq_any(run_ids))
                .filter(schedule_runs::status.eq_any(RunStatus::WAITING)),
        )
        .set((
            schedule_runs::status.eq(RunStatus::Skipped),
            schedule_runs::finished_at.eq(now),
            schedule_runs::error_text.eq(reason),
            schedule_runs::updated_at.eq(now),
        ))
        .returning(RunRow::as_returning())
        .get_results(conn)?;
        let mut stats = super::stats::StatsDelta::default();
        for run in &skipped {
            stats.ended(run, RunStatus::Skipped, now);
        }
        stats.apply(conn)?;
        Ok(skipped.into_iter().map(|r| r.id).collect())
    })
}
