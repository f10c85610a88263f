//! Provides per-schedule run statistics (`schedule_stats`): running counters that each
//! transaction ending runs adds to, and the run counts `/v1/status` and metrics read.
//!
//! Callers collect what a transaction ended in a [`StatsDelta`] and call
//! [`StatsDelta::apply`] as the transaction's LAST write: the rows are then locked in
//! schedule id order by a transaction that waits for nothing else afterwards, so these
//! locks never close a deadlock cycle. Nothing here ever scans the run ledger.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};

use super::runs::RunRow;
use super::schema::{schedule_runs, schedule_stats};
use super::StoreError;
use crate::domain::RunStatus;

/// One schedule's counters, as stored.
#[derive(Debug, Clone, Default, PartialEq, Queryable, Selectable)]
#[diesel(table_name = schedule_stats, check_for_backend(Pg))]
pub struct StatsRow {
    pub schedule_id: String,
    pub runs_total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub dead_lettered: i64,
    pub cancelled: i64,
    pub skipped: i64,
    pub last_status: Option<String>,
    pub last_run_id: Option<String>,
    pub last_finished_at: Option<DateTime<Utc>>,
    pub last_duration_ms: Option<i64>,
}

/// The run that most recently ended (other than skipped) in a delta.
#[derive(Debug, Clone)]
struct Last {
    status: RunStatus,
    run_id: String,
    finished_at: DateTime<Utc>,
    duration_ms: Option<i64>,
}

#[derive(Debug, Clone, Default)]
struct Counts {
    by_status: [i64; 5],
    last: Option<Last>,
}

const COUNTED: [RunStatus; 5] = [
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::DeadLettered,
    RunStatus::Cancelled,
    RunStatus::Skipped,
];

/// What one transaction added to each schedule's counters.
#[derive(Debug, Clone, Default)]
pub struct StatsDelta {
    by_schedule: BTreeMap<String, Counts>,
}

impl StatsDelta {
    /// Counts `run` as having ended `status` at `finished_at`. Non-terminal statuses are
    /// ignored.
    pub fn ended(&mut self, run: &RunRow, status: RunStatus, finished_at: DateTime<Utc>) {
        let Some(slot) = COUNTED.iter().position(|s| *s == status) else {
            return;
        };
        let c = self.by_schedule.entry(run.schedule_id.clone()).or_default();
        c.by_status[slot] += 1;
        if status == RunStatus::Skipped {
            return;
        }
        // The newest end wins; among ends at the same instant, the greater (later) id.
        if c.last
            .as_ref()
            .is_some_and(|l| (l.finished_at, l.run_id.as_str()) > (finished_at, run.id.as_str()))
        {
            return;
        }
        c.last = Some(Last {
            status,
            run_id: run.id.clone(),
            finished_at,
            duration_ms: run
                .started_at
                .map(|s| (finished_at - s).num_milliseconds().max(0)),
        });
    }

    /// Adds the delta to the stored counters (creating a schedule's row on first use), in
    /// schedule id order, with one statement of one shape whatever the number of
    /// schedules. Part of the caller's transaction, as its last write.
    pub fn apply(&self, conn: &mut PgConnection) -> Result<(), StoreError> {
        use diesel::sql_types::Array;
        if self.by_schedule.is_empty() {
            return Ok(());
        }
        let n = self.by_schedule.len();
        let mut ids: Vec<&str> = Vec::with_capacity(n);
        let mut columns: [Vec<i64>; 6] = Default::default();
        let mut last_status: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut last_run_id: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut last_finished_at: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
        let mut last_duration_ms: Vec<Option<i64>> = Vec::with_capacity(n);
        // A BTreeMap: ids come in order, so the rows are locked in schedule id order.
        for (schedule_id, c) in &self.by_schedule {
            ids.push(schedule_id);
            columns[0].push(c.by_status.iter().sum::<i64>());
            for (column, n) in columns[1..].iter_mut().zip(c.by_status) {
                column.push(n);
            }
            let last = c.last.as_ref();
            last_status.push(last.map(|l| l.status.as_str()));
            last_run_id.push(last.map(|l| l.run_id.as_str()));
            last_finished_at.push(last.map(|l| l.finished_at));
            last_duration_ms.push(last.and_then(|l| l.duration_ms));
        }
        let [runs_total, succeeded, failed, dead_lettered, cancelled, skipped] = columns;
        diesel::sql_query(
            "INSERT INTO schedule_stats AS s (schedule_id, runs_total, succeeded, failed, \
             dead_lettered, cancelled, skipped, last_status, last_run_id, last_finished_at, \
             last_duration_ms) \
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], \
             $6::int8[], $7::int8[], $8::text[], $9::text[], $10::timestamptz[], $11::int8[]) \
             ORDER BY 1 \
             ON CONFLICT (schedule_id) DO UPDATE SET \
             runs_total = s.runs_total + excluded.runs_total, \
             succeeded = s.succeeded + excluded.succeeded, \
             failed = s.failed + excluded.failed, \
             dead_lettered = s.dead_lettered + excluded.dead_lettered, \
             cancelled = s.cancelled + excluded.cancelled, \
             skipped = s.skipped + excluded.skipped, \
             (last_status, last_run_id, last_finished_at, last_duration_ms) = \
             (SELECT CASE WHEN newer THEN excluded.last_status ELSE s.last_status END, \
                     CASE WHEN newer THEN excluded.last_run_id ELSE s.last_run_id END, \
                     CASE WHEN newer THEN excluded.last_finished_at ELSE s.last_finished_at END, \
                     CASE WHEN newer THEN excluded.last_duration_ms ELSE s.last_duration_ms END \
              FROM (SELECT excluded.last_finished_at IS NOT NULL AND \
                    (s.last_finished_at IS NULL OR (excluded.last_finished_at, excluded.last_run_id) \
                    > (s.last_finished_at, s.last_run_id)) \
                    AS newer) n)",
        )
        .bind::<Array<Text>, _>(&ids)
        .bind::<Array<BigInt>, _>(&runs_total)
        .bind::<Array<BigInt>, _>(&succeeded)
        .bind::<Array<BigInt>, _>(&failed)
        .bind::<Array<BigInt>, _>(&dead_lettered)
        .bind::<Array<BigInt>, _>(&cancelled)
        .bind::<Array<BigInt>, _>(&skipped)
        .bind::<Array<Nullable<Text>>, _>(&last_status)
        .bind::<Array<Nullable<Text>>, _>(&last_run_id)
        .bind::<Array<Nullable<Timestamptz>>, _>(&last_finished_at)
        .bind::<Array<Nullable<BigInt>>, _>(&last_duration_ms)
        .execute(conn)?;
        Ok(())
    }
}

/// The counters of `schedule_ids` (a schedule without a row has zeros).
pub fn of(
    conn: &mut PgConnection,
    schedule_ids: &[&str],
) -> Result<HashMap<String, StatsRow>, StoreError> {
    if schedule_ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(schedule_stats::table
        .filter(schedule_stats::schedule_id.eq_any(schedule_ids))
        .select(StatsRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|r| (r.schedule_id.clone(), r))
        .collect())
}

/// One schedule's counters.
pub fn one(conn: &mut PgConnection, schedule_id: &str) -> Result<StatsRow, StoreError> {
    Ok(of(conn, &[schedule_id])?
        .remove(schedule_id)
        .unwrap_or_else(|| StatsRow {
            schedule_id: schedule_id.to_string(),
            ..Default::default()
        }))
}

/// A schedule and its counters in one query (one round trip: `GET /v1/schedules/{id}`).
pub fn schedule_with_stats(
    conn: &mut PgConnection,
    schedule_id: &str,
) -> Result<(super::schedules::ScheduleRecord, StatsRow), StoreError> {
    use super::schedules::ScheduleRow;
    use super::schema::schedules;
    let (row, stats): (ScheduleRow, Option<StatsRow>) = schedules::table
        .left_join(schedule_stats::table)
        .filter(schedules::id.eq(schedule_id))
        .select((ScheduleRow::as_select(), Option::<StatsRow>::as_select()))
        .first(conn)?;
    let stats = stats.unwrap_or_else(|| StatsRow {
        schedule_id: schedule_id.to_string(),
        ..Default::default()
    });
    Ok((row.try_into()?, stats))
}

/// Run counts by status, plus the number of dead-letter rows, without a scan of the
/// ledger: active runs are counted through the partial index that holds only them, ended
/// runs come from the running totals (`store::totals`, 256 rows whatever the size).
pub fn run_counts(
    conn: &mut PgConnection,
    totals: &super::totals::Totals,
) -> Result<(Vec<(RunStatus, i64)>, i64), StoreError> {
    let active: Vec<(String, i64)> = schedule_runs::table
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "status IN ('pending', 'retry_scheduled', 'claimed', 'running')",
        ))
        .group_by(schedule_runs::status)
        .select((schedule_runs::status, diesel::dsl::count_star()))
        .load(conn)?;
    let mut out = Vec::with_capacity(9);
    for (s, n) in active {
        if let Ok(status) = s.parse() {
            out.push((status, n));
        }
    }
    let ended = [
        totals.succeeded,
        totals.failed,
        totals.dead_lettered,
        totals.cancelled,
        totals.skipped,
    ];
    for (status, n) in COUNTED.iter().zip(ended) {
        out.push((*status, n));
    }
    // A dead-lettered run and its dead-letter row are written together, and both go with
    // their schedule, so the counter is the number of dead-letter rows.
    Ok((out, totals.dead_lettered))
}
