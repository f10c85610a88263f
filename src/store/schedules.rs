//! Provides the `schedules` table: its row type, the conversion to and from the domain's
//! `ScheduleSpec`, and the queries on it.
//!
//! Text columns map to domain enums in exactly one place (`TryFrom<ScheduleRow>`); a row
//! that does not parse is `Corrupt`, never silently defaulted.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;

pub use super::filters::ScheduleFilter;
use super::paging::{page_from, Cursor, Page};
use super::runs::{self, RunRow};
use super::schema::schedules;
use super::stats::StatsDelta;
use super::StoreError;
use crate::domain::ids::{self, ScheduleId};
use crate::domain::{jitter, limited, misfire, RunStatus};
use crate::domain::{Cadence, CronExpr, Policy, RetryPolicy, ScheduleSpec, Target};

pub use crate::domain::lifecycle::ScheduleRecord;

/// One row of `schedules`, exactly as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = schedules, check_for_backend(Pg), treat_none_as_null = true)]
pub struct ScheduleRow {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub timezone: String,
    pub schedule_kind: String,
    pub cron_expr: Option<String>,
    pub every_seconds: Option<i64>,
    pub anchor_at: Option<DateTime<Utc>>,
    pub once_at: Option<DateTime<Utc>>,
    pub target_kind: String,
    pub target: serde_json::Value,
    pub overlap_policy: String,
    pub misfire_policy: String,
    pub timeout_seconds: i32,
    pub max_concurrency: i32,
    pub retry_max_attempts: i32,
    pub retry_strategy: String,
    pub retry_initial_delay_seconds: i32,
    pub retry_max_delay_seconds: i32,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub paused_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub labels: serde_json::Value,
    pub description: Option<String>,
    pub jitter_seconds: i32,
    pub pause_note: Option<String>,
    pub max_occurrences: Option<i32>,
    pub occurrences_remaining: Option<i32>,
}

impl ScheduleRecord {
    /// The row that stores this record.
    pub fn to_row(&self) -> ScheduleRow {
        let spec = &self.spec;
        let (cron_expr, every_seconds, anchor_at, once_at) = match &spec.cadence {
            Cadence::Cron(e) => (Some(e.as_str().to_string()), None, None, None),
            Cadence::Interval {
                every_seconds,
                anchor_at,
            } => (None, Some(*every_seconds), Some(*anchor_at), None),
            Cadence::Once { at } => (None, None, None, Some(*at)),
        };
        ScheduleRow {
            id: self.id.clone(),
            name: spec.name.clone(),
            enabled: spec.enabled,
            timezone: spec.timezone.name().to_string(),
            schedule_kind: spec.cadence.kind().to_string(),
            cron_expr,
            every_seconds,
            anchor_at,
            once_at,
            target_kind: spec.target.kind().as_str().to_string(),
            target: serde_json::to_value(&spec.target).unwrap_or(serde_json::Value::Null),
            overlap_policy: spec.policy.overlap.as_str().to_string(),
            misfire_policy: spec.policy.misfire.as_str().to_string(),
            timeout_seconds: spec.policy.timeout_seconds,
            max_concurrency: spec.policy.max_concurrency,
            retry_max_attempts: spec.retry.max_attempts,
            retry_strategy: spec.retry.strategy.as_str().to_string(),
            retry_initial_delay_seconds: spec.retry.initial_delay_seconds,
            retry_max_delay_seconds: spec.retry.max_delay_seconds,
            start_at: spec.start_at,
            end_at: spec.end_at,
            paused_at: self.paused_at,
            next_run_at: self.next_run_at,
            last_run_at: self.last_run_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            labels: serde_json::to_value(&spec.labels)
                .unwrap_or_else(|_| serde_json::Value::Object(Default::default())),
            description: spec.description.clone(),
            jitter_seconds: spec.policy.jitter_seconds,
            pause_note: self.pause_note.clone(),
            max_occurrences: spec.max_occurrences,
            occurrences_remaining: self.occurrences_remaining,
        }
    }
}

fn corrupt(id: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("schedule {id}: {what}"))
}

impl TryFrom<ScheduleRow> for ScheduleRecord {
    type Error = StoreError;

    fn try_from(r: ScheduleRow) -> Result<Self, StoreError> {
        let id = r.id.clone();
        let cadence = match (
            r.schedule_kind.as_str(),
            r.cron_expr,
            r.every_seconds,
            r.anchor_at,
            r.once_at,
        ) {
            ("cron", Some(expr), ..) => {
                Cadence::Cron(CronExpr::parse(&expr).map_err(|e| corrupt(&id, e))?)
            }
            ("interval", _, Some(every_seconds), Some(anchor_at), _) => Cadence::Interval {
                every_seconds,
                anchor_at,
            },
            ("once", _, _, _, Some(at)) => Cadence::Once { at },
            (kind, ..) => return Err(corrupt(&id, format!("bad cadence of kind {kind:?}"))),
        };
        let target: Target = serde_json::from_value(r.target).map_err(|e| corrupt(&id, e))?;
        let spec = ScheduleSpec {
            name: r.name,
            enabled: r.enabled,
            timezone: r.timezone.parse().map_err(|e| corrupt(&id, e))?,
            cadence,
            target,
            policy: Policy {
                overlap: r.overlap_policy.parse().map_err(|e| corrupt(&id, e))?,
                misfire: r.misfire_policy.parse().map_err(|e| corrupt(&id, e))?,
                timeout_seconds: r.timeout_seconds,
                max_concurrency: r.max_concurrency,
                jitter_seconds: r.jitter_seconds,
            },
            retry: RetryPolicy {
                max_attempts: r.retry_max_attempts,
                strategy: r.retry_strategy.parse().map_err(|e| corrupt(&id, e))?,
                initial_delay_seconds: r.retry_initial_delay_seconds,
                max_delay_seconds: r.retry_max_delay_seconds,
            },
            start_at: r.start_at,
            end_at: r.end_at,
            labels: serde_json::from_value(r.labels).map_err(|e| corrupt(&id, e))?,
            description: r.description,
            max_occurrences: r.max_occurrences,
        };
        Ok(ScheduleRecord {
            id: r.id,
            spec,
            paused_at: r.paused_at,
            pause_note: r.pause_note,
            next_run_at: r.next_run_at,
            last_run_at: r.last_run_at,
            occurrences_remaining: r.occurrences_remaining,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The unique index on schedule names.
const NAME_KEY: &str = "schedules_name_key";

/// A write of `record` refused because its name is taken becomes `NameTaken`.
fn name_taken(record: &ScheduleRecord) -> impl FnOnce(diesel::result::Error) -> StoreError + '_ {
    move |e| match StoreError::from(e) {
        StoreError::Conflict(c) if c == NAME_KEY => StoreError::NameTaken(record.spec.name.clone()),
        other => other,
    }
}

/// Inserts a new schedule; a taken name is `NameTaken`.
pub fn insert(conn: &mut PgConnection, record: &ScheduleRecord) -> Result<(), StoreError> {
    // Its stats row exists from the start, so ending a run only ever updates it (an
    // insert's foreign-key check would lock the schedule row and could deadlock a DELETE).
    // Both rows go in one statement: one round trip, one commit.
    WithStatsRow(diesel::insert_into(schedules::table).values(record.to_row()))
        .execute(conn)
        .map_err(name_taken(record))?;
    Ok(())
}

/// `WITH s AS (<insert into schedules> RETURNING id) INSERT INTO schedule_stats
/// (schedule_id) SELECT id FROM s`: a schedule and its zero counters in one statement.
struct WithStatsRow<I>(I);

impl<I: diesel::query_builder::QueryFragment<Pg>> diesel::query_builder::QueryFragment<Pg>
    for WithStatsRow<I>
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, Pg>,
    ) -> QueryResult<()> {
        out.push_sql("WITH s AS (");
        self.0.walk_ast(out.reborrow())?;
        out.push_sql(" RETURNING id) INSERT INTO schedule_stats (schedule_id) SELECT id FROM s");
        Ok(())
    }
}

impl<I> diesel::query_builder::QueryId for WithStatsRow<I> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<I> RunQueryDsl<PgConnection> for WithStatsRow<I> {}

/// Writes every column of `record` over the stored row; a taken name is `NameTaken`.
pub fn update(conn: &mut PgConnection, record: &ScheduleRecord) -> Result<(), StoreError> {
    let n = diesel::update(schedules::table.find(&record.id))
        .set(record.to_row())
        .execute(conn)
        .map_err(name_taken(record))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub fn find(conn: &mut PgConnection, id: &str) -> Result<ScheduleRecord, StoreError> {
    schedules::table
        .find(id)
        .select(ScheduleRow::as_select())
        .first(conn)?
        .try_into()
}

/// The schedules among `ids` that exist, in one query; a row that does not convert is left
/// out (so that the caller reads it alone and meets its error there).
pub fn find_many(
    conn: &mut PgConnection,
    ids: &[String],
) -> Result<Vec<ScheduleRecord>, StoreError> {
    Ok(schedules::table
        .filter(schedules::id.eq_any(ids))
        .select(ScheduleRow::as_select())
        .load(conn)?
        .into_iter()
        .filter_map(|row| ScheduleRecord::try_from(row).ok())
        .collect())
}

/// Locks the row for the rest of the transaction (`FOR NO KEY UPDATE`: other writers of
/// the schedule wait, inserts of its runs, whose foreign key only needs a share lock, do
/// not; a DELETE still waits for it).
pub fn find_for_update(conn: &mut PgConnection, id: &str) -> Result<ScheduleRecord, StoreError> {
    schedules::table
        .find(id)
        .select(ScheduleRow::as_select())
        .for_no_key_update()
        .first(conn)?
        .try_into()
}

/// `(id, updated_at)` of every schedule changed after `since` (all of them without it),
/// through the `updated_at` index: how a node notices schedules changed by others.
pub fn changed_since(
    conn: &mut PgConnection,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
    let q = schedules::table
        .select((schedules::id, schedules::updated_at))
        .into_boxed();
    let q = match since {
        Some(w) => q.filter(schedules::updated_at.gt(w)),
        None => q,
    };
    Ok(q.load(conn)?)
}

/// Every schedule (start-up of the actor system).
pub fn all(conn: &mut PgConnection) -> Result<Vec<ScheduleRecord>, StoreError> {
    schedules::table
        .select(ScheduleRow::as_select())
        .order(schedules::created_at.asc())
        .load(conn)?
        .into_iter()
        .map(ScheduleRecord::try_from)
        .collect()
}

/// One page, newest first, of the schedules `filter` selects.
pub fn list(
    conn: &mut PgConnection,
    filter: &ScheduleFilter,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<Page<ScheduleRecord>, StoreError> {
    let mut q = filter.apply(
        schedules::table
            .select(ScheduleRow::as_select())
            .into_boxed(),
    );
    if let Some(c) = cursor {
        q = q.filter(
            schedules::created_at
                .lt(c.created_at)
                .or(schedules::created_at
                    .eq(c.created_at)
                    .and(schedules::id.lt(c.id.clone()))),
        );
    }
    let rows = q
        .order((schedules::created_at.desc(), schedules::id.desc()))
        .limit(limit + 1)
        .load(conn)?
        .into_iter()
        .map(ScheduleRecord::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page_from(rows, limit, |r| Cursor {
        created_at: r.created_at,
        id: r.id.clone(),
    }))
}

/// Deletes the schedule and (by cascade) its runs, leases, receipts and dead letters.
pub fn delete(conn: &mut PgConnection, id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(schedules::table.find(id)).execute(conn)? > 0)
}

/// Records cadence progress: the next fire and the newest materialised occurrence.
pub fn set_progress(
    conn: &mut PgConnection,
    id: &str,
    next_run_at: Option<DateTime<Utc>>,
    last_run_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    diesel::update(schedules::table.find(id))
        .set((
            schedules::next_run_at.eq(next_run_at),
            schedules::last_run_at.eq(last_run_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records how many scheduled occurrences a limited schedule has left.
fn set_remaining(
    conn: &mut PgConnection,
    id: &str,
    remaining: Option<i32>,
) -> Result<(), StoreError> {
    diesel::update(schedules::table.find(id))
        .set(schedules::occurrences_remaining.eq(remaining))
        .execute(conn)?;
    Ok(())
}

/// What one wake-up of a schedule materialised.
#[derive(Debug, Clone)]
pub struct Materialised {
    /// The schedule as stored after the wake-up (possibly changed by another node).
    pub record: ScheduleRecord,
    /// Runnable runs inserted now, oldest first.
    pub runnable: Vec<RunRow>,
    /// Occurrences recorded as `skipped`.
    pub skipped: usize,
    /// Occurrences this wake-up found already written (by another node's timer for the
    /// same schedule, or an earlier wake-up): the occurrence it was armed for, already
    /// passed by `last_run_at`, and rows whose `(occurrence_key, attempt)` existed.
    pub conflicts: usize,
}

/// Materialises every occurrence due by `now` in ONE transaction: locks the schedule row,
/// applies the misfire rule to `[next_run_at, now]`, inserts runnable and skipped runs
/// idempotently on `(occurrence_key, attempt)`, and advances `next_run_at`/`last_run_at`.
/// If another node already advanced the schedule, nothing is inserted twice.
pub fn materialise_due(
    conn: &mut PgConnection,
    id: &str,
    now: DateTime<Utc>,
    armed_for: Option<DateTime<Utc>>,
) -> Result<Materialised, StoreError> {
    conn.transaction(|conn| {
        let mut stats = StatsDelta::default();
        let m = materialise_due_within(conn, id, now, armed_for, &mut stats)?;
        stats.apply(conn)?;
        Ok(m)
    })
}

/// One schedule's wake-up in a batch: `(schedule id, now, the occurrence its actor was
/// armed for)`.
pub type DueRequest = (String, DateTime<Utc>, Option<DateTime<Utc>>);

/// [`materialise_due`] for many schedules in ONE transaction, in schedule id order (so
/// concurrent batches, and claims, which lock in the same order, never deadlock). A
/// schedule deleted meanwhile is `Err(NotFound)` in its slot; any other failure rolls the
/// whole batch back and is the outer error (the caller may then retry one by one).
/// Results come back in request order.
pub fn materialise_due_batch(
    conn: &mut PgConnection,
    requests: &[DueRequest],
) -> Result<Vec<Result<Materialised, StoreError>>, StoreError> {
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by(|&a, &b| requests[a].0.cmp(&requests[b].0));
    conn.transaction(|conn| {
        let mut out: Vec<Option<Result<Materialised, StoreError>>> =
            (0..requests.len()).map(|_| None).collect();
        let mut stats = StatsDelta::default();
        for i in order {
            let (id, now, armed_for) = &requests[i];
            out[i] = Some(
                match materialise_due_within(conn, id, *now, *armed_for, &mut stats) {
                    Err(StoreError::NotFound) => Err(StoreError::NotFound),
                    Err(e) => return Err(e),
                    Ok(m) => Ok(m),
                },
            );
        }
        stats.apply(conn)?;
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or(Err(StoreError::NotFound)))
            .collect())
    })
}

/// The body of [`materialise_due`], inside the caller's transaction; the skipped runs it
/// inserts are counted in `stats`, which the caller applies last.
fn materialise_due_within(
    conn: &mut PgConnection,
    id: &str,
    now: DateTime<Utc>,
    armed_for: Option<DateTime<Utc>>,
    stats: &mut StatsDelta,
) -> Result<Materialised, StoreError> {
    let mut record = find_for_update(conn, id)?;
    // Armed for an occurrence that is already materialised: another timer got there first.
    let taken = usize::from(armed_for.is_some_and(|a| record.last_run_at.is_some_and(|l| l >= a)));
    let due = match record.due_by(now) {
        Some(next) => next,
        None => {
            return Ok(Materialised {
                record,
                runnable: Vec::new(),
                skipped: 0,
                conflicts: taken,
            })
        }
    };
    let spec = &record.spec;
    let plan = misfire::plan(
        spec.policy.misfire,
        &spec.cadence,
        spec.timezone,
        &spec.bounds(),
        due - chrono::Duration::microseconds(1),
        now,
        misfire::grace(armed_for, due),
    );
    let (plan, held) = limited::cap(plan, record.occurrences_remaining);
    let mut rows = Vec::with_capacity(plan.run.len() + plan.skip.len());
    for (i, nominal) in plan.skip.iter().enumerate() {
        let mut r = RunRow::new(
            ScheduleId(id),
            ids::occurrence_key(id, *nominal),
            *nominal,
            *nominal,
            RunStatus::Skipped,
            1,
            now,
        );
        r.finished_at = Some(now);
        let mut reason = format!(
            "missed: overdue when the schedule woke up (misfire policy {})",
            spec.policy.misfire
        );
        if i == 0 && plan.unrecorded_skips > 0 {
            reason.push_str(&format!(
                "; {} older missed occurrences were not recorded",
                plan.unrecorded_skips
            ));
        }
        r.error_text = Some(reason);
        rows.push(r);
    }
    let runnable_rows: Vec<RunRow> = plan
        .run
        .iter()
        .map(|nominal| {
            let key = ids::occurrence_key(id, *nominal);
            let due_time = jitter::due_time(*nominal, &key, spec.policy.jitter_seconds);
            RunRow::new(
                ScheduleId(id),
                key,
                *nominal,
                due_time,
                RunStatus::Pending,
                1,
                now,
            )
        })
        .collect();
    rows.extend(runnable_rows.iter().cloned());
    let inserted = runs::insert_many_if_absent(conn, &rows)?;
    for r in rows.iter().filter(|r| r.status == RunStatus::Skipped) {
        if inserted.contains(&r.id) {
            stats.ended(r, RunStatus::Skipped, now);
        }
    }
    let runnable: Vec<RunRow> = runnable_rows
        .into_iter()
        .filter(|r| inserted.contains(&r.id))
        .collect();
    let newest = plan.newest().unwrap_or(due);
    record.last_run_at = Some(record.last_run_at.map_or(newest, |l| l.max(newest)));
    record.next_run_at = record.spec.next_after(now.max(newest));
    if let Some(left) = record.occurrences_remaining {
        let held = i32::try_from(held).unwrap_or(i32::MAX);
        record.occurrences_remaining = Some(left.saturating_sub(held).max(0));
        set_remaining(conn, id, record.occurrences_remaining)?;
    }
    let record = record.limited();
    set_progress(conn, id, record.next_run_at, record.last_run_at)?;
    Ok(Materialised {
        record,
        runnable,
        skipped: plan.skip.len() + plan.unrecorded_skips,
        conflicts: taken + (rows.len() - inserted.len()),
    })
}

/// Locks the schedule, applies `f` to it and stores the result: one transaction. `f` may
/// refuse with its own error (the transaction is then rolled back).
pub fn update_with<E>(
    conn: &mut PgConnection,
    id: &str,
    f: impl FnOnce(&ScheduleRecord) -> Result<ScheduleRecord, E>,
) -> Result<ScheduleRecord, E>
where
    E: From<StoreError>,
{
    /// Why the transaction rolled back: the store, or `f`.
    enum Abort<E> {
        Store(StoreError),
        Refused(E),
    }
    impl<E> From<diesel::result::Error> for Abort<E> {
        fn from(e: diesel::result::Error) -> Self {
            Abort::Store(e.into())
        }
    }
    conn.transaction(|conn| {
        let current = find_for_update(conn, id).map_err(Abort::Store)?;
        let next = f(&current).map_err(Abort::Refused)?;
        if next != current {
            update(conn, &next).map_err(Abort::Store)?;
        }
        Ok(next)
    })
    .map_err(|abort| match abort {
        Abort::Store(e) => E::from(e),
        Abort::Refused(e) => e,
    })
}
