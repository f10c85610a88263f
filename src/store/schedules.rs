//! Provides the `schedules` table: its row type, the conversion to and from the domain's
//! `ScheduleSpec`, and the queries on it.
//!
//! Text columns map to domain enums in exactly one place (`TryFrom<ScheduleRow>`); a row
//! that does not parse is `Corrupt`, never silently defaulted.

use std::collections::{HashMap, HashSet};

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

/// A schedule to insert with [`insert_batch`], and whether its owner (another node) is to
/// be told in the same transaction.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub record: ScheduleRecord,
    pub notify_owner: bool,
}

/// Inserts new schedules, each durable when this returns `Ok` in its slot (results come
/// back in `batch` order). All of them go in ONE transaction (one statement for the
/// schedules and their stats rows, [`Unnested`], and one `pg_notify` statement for the
/// owners to tell): one commit for many creates. If that transaction fails, nothing of it was written, and
/// each schedule is inserted again in a transaction of its own, in order, so a row that
/// cannot go in (a taken name) fails alone, with the error [`insert`] gives it, and the
/// others are written.
pub fn insert_batch(conn: &mut PgConnection, batch: &[NewSchedule]) -> Vec<Result<(), StoreError>> {
    if batch.len() > 1 {
        let together = conn.transaction(|conn| {
            Unnested::of(batch.iter().map(|n| n.record.to_row()), batch.len()).execute(conn)?;
            let owners: Vec<&str> = batch
                .iter()
                .filter(|n| n.notify_owner)
                .map(|n| n.record.id.as_str())
                .collect();
            super::partitions::notify_each(conn, &owners)
        });
        match together {
            Ok(()) => return batch.iter().map(|_| Ok(())).collect(),
            Err(e) => tracing::debug!(
                error = %e,
                size = batch.len(),
                "batch of creates failed; writing them one by one"
            ),
        }
    }
    batch
        .iter()
        .map(|n| {
            if !n.notify_owner {
                return insert(conn, &n.record);
            }
            conn.transaction(|conn| {
                insert(conn, &n.record)?;
                super::partitions::notify(conn, &n.record.id)
            })
        })
        .collect()
}

/// Declares [`Unnested`]: one array per column of `schedules` (`column: SQL type => Rust
/// type`, in `ScheduleRow`'s order).
macro_rules! unnested {
    ($($col:ident: $st:ty => $rt:ty),+ $(,)?) => {
        /// `WITH s AS (INSERT INTO schedules (…) SELECT * FROM unnest($1, …, $32) RETURNING
        /// id) INSERT INTO schedule_stats (schedule_id) SELECT id FROM s`: many schedules and
        /// their zero counters in one statement whose text is the same for any number of
        /// rows, so diesel prepares it once per connection (a static query id) and
        /// PostgreSQL parses and plans it once. A `None` is NULL, as `DEFAULT` would be:
        /// no nullable column of `schedules` has another default.
        struct Unnested {
            $($col: Vec<$rt>,)+
        }

        impl Unnested {
            fn of(rows: impl Iterator<Item = ScheduleRow>, n: usize) -> Unnested {
                let mut u = Unnested {
                    $($col: Vec::with_capacity(n),)+
                };
                for row in rows {
                    // Exhaustive: a column added to `ScheduleRow` but not listed here does
                    // not compile (it would otherwise be left out of batched creates).
                    let ScheduleRow { $($col),+ } = row;
                    $(u.$col.push($col);)+
                }
                u
            }
        }

        impl diesel::query_builder::QueryFragment<Pg> for Unnested {
            fn walk_ast<'b>(
                &'b self,
                mut out: diesel::query_builder::AstPass<'_, 'b, Pg>,
            ) -> QueryResult<()> {
                use diesel::sql_types::*;
                out.push_sql(concat!(
                    "WITH s AS (INSERT INTO schedules (",
                    stringify!($($col),+),
                    ") SELECT * FROM unnest("
                ));
                let mut first = true;
                $(
                    if !first {
                        out.push_sql(", ");
                    }
                    first = false;
                    out.push_bind_param::<Array<$st>, _>(&self.$col)?;
                )+
                let _ = first;
                out.push_sql(
                    ") RETURNING id) INSERT INTO schedule_stats (schedule_id) SELECT id FROM s",
                );
                Ok(())
            }
        }
    };
}

unnested! {
    id: Text => String,
    name: Text => String,
    enabled: Bool => bool,
    timezone: Text => String,
    schedule_kind: Text => String,
    cron_expr: Nullable<Text> => Option<String>,
    every_seconds: Nullable<BigInt> => Option<i64>,
    anchor_at: Nullable<Timestamptz> => Option<DateTime<Utc>>,
    once_at: Nullable<Timestamptz> => Option<DateTime<Utc>>,
    target_kind: Text => String,
    target: Jsonb => serde_json::Value,
    overlap_policy: Text => String,
    misfire_policy: Text => String,
    timeout_seconds: Integer => i32,
    max_concurrency: Integer => i32,
    retry_max_attempts: Integer => i32,
    retry_strategy: Text => String,
    retry_initial_delay_seconds: Integer => i32,
    retry_max_delay_seconds: Integer => i32,
    start_at: Nullable<Timestamptz> => Option<DateTime<Utc>>,
    end_at: Nullable<Timestamptz> => Option<DateTime<Utc>>,
    paused_at: Nullable<Timestamptz> => Option<DateTime<Utc>>,
    next_run_at: Nullable<Timestamptz> => Option<DateTime<Utc>>,
    last_run_at: Nullable<Timestamptz> => Option<DateTime<Utc>>,
    created_at: Timestamptz => DateTime<Utc>,
    updated_at: Timestamptz => DateTime<Utc>,
    labels: Jsonb => serde_json::Value,
    description: Nullable<Text> => Option<String>,
    jitter_seconds: Integer => i32,
    pause_note: Nullable<Text> => Option<String>,
    max_occurrences: Nullable<Integer> => Option<i32>,
    occurrences_remaining: Nullable<Integer> => Option<i32>,
}

impl diesel::query_builder::QueryId for Unnested {
    type QueryId = Unnested;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<PgConnection> for Unnested {}

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
    materialise_due_batch(conn, &[(id.to_string(), now, armed_for)])?
        .pop()
        .unwrap_or(Err(StoreError::NotFound))
}

/// One schedule's wake-up in a batch: `(schedule id, now, the occurrence its actor was
/// armed for)`.
pub type DueRequest = (String, DateTime<Utc>, Option<DateTime<Utc>>);

/// [`materialise_due`] for many schedules in ONE transaction and a fixed number of
/// statements whatever the batch size: the schedule rows locked in id order by one
/// `SELECT … FOR NO KEY UPDATE` (so concurrent batches, and claims, which lock in the same
/// order, never deadlock), every run row in one `INSERT … ON CONFLICT DO NOTHING`, every
/// schedule's progress in one `UPDATE … FROM unnest(…)`. A schedule deleted meanwhile is
/// `Err(NotFound)` in its slot; any other failure rolls the whole batch back and is the
/// outer error (the caller may then retry one by one). Results come back in request order;
/// a schedule asked for twice is planned the second time from the first's outcome.
pub fn materialise_due_batch(
    conn: &mut PgConnection,
    requests: &[DueRequest],
) -> Result<Vec<Result<Materialised, StoreError>>, StoreError> {
    let mut ids: Vec<&str> = requests.iter().map(|r| r.0.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    conn.transaction(|conn| {
        let mut records: HashMap<String, ScheduleRecord> = HashMap::with_capacity(ids.len());
        for row in schedules::table
            .filter(schedules::id.eq_any(&ids))
            .select(ScheduleRow::as_select())
            .order(schedules::id.asc())
            .for_no_key_update()
            .load::<ScheduleRow>(conn)?
        {
            let record: ScheduleRecord = row.try_into()?;
            records.insert(record.id.clone(), record);
        }
        let mut wakes: Vec<Option<Wake>> = Vec::with_capacity(requests.len());
        for (id, now, armed_for) in requests {
            wakes.push(
                records
                    .get_mut(id)
                    .map(|record| Wake::plan(record, *now, *armed_for)),
            );
        }
        let rows: Vec<RunRow> = wakes
            .iter()
            .flatten()
            .flat_map(|w| w.rows.iter().cloned())
            .collect();
        let inserted: HashSet<String> = runs::insert_many_if_absent(conn, &rows)?
            .into_iter()
            .collect();
        let mut stats = StatsDelta::default();
        let mut progress = Progress::default();
        for w in wakes.iter().flatten() {
            for r in &w.rows {
                if r.status == RunStatus::Skipped && inserted.contains(&r.id) {
                    stats.ended(r, RunStatus::Skipped, r.created_at);
                }
            }
            if w.advanced {
                progress.push(&w.record);
            }
            if w.recount {
                set_remaining(conn, &w.record.id, w.record.occurrences_remaining)?;
            }
        }
        progress.write(conn)?;
        stats.apply(conn)?;
        Ok(wakes
            .into_iter()
            .map(|w| match w {
                None => Err(StoreError::NotFound),
                Some(w) => Ok(w.into_materialised(&inserted)),
            })
            .collect())
    })
}

/// One schedule's wake-up, planned from its locked row: the rows to insert and the record
/// as it will be stored.
struct Wake {
    record: ScheduleRecord,
    /// Skipped runs first, then runnable ones, oldest first.
    rows: Vec<RunRow>,
    skipped: usize,
    /// The occurrence it was armed for was already passed by `last_run_at`.
    taken: usize,
    /// `next_run_at`/`last_run_at` moved (something was due).
    advanced: bool,
    /// `occurrences_remaining` changed.
    recount: bool,
}

impl Wake {
    /// Applies the misfire rule to what is due by `now` and advances `record` (the map's
    /// copy, so a second request for the same schedule plans from this one's outcome).
    fn plan(
        record: &mut ScheduleRecord,
        now: DateTime<Utc>,
        armed_for: Option<DateTime<Utc>>,
    ) -> Wake {
        // Armed for an occurrence that is already materialised: another timer got there first.
        let taken =
            usize::from(armed_for.is_some_and(|a| record.last_run_at.is_some_and(|l| l >= a)));
        let Some(due) = record.due_by(now) else {
            return Wake {
                record: record.clone(),
                rows: Vec::new(),
                skipped: 0,
                taken,
                advanced: false,
                recount: false,
            };
        };
        let id = record.id.clone();
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
                ScheduleId(&id),
                ids::occurrence_key(&id, *nominal),
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
        for nominal in &plan.run {
            let key = ids::occurrence_key(&id, *nominal);
            let due_time = jitter::due_time(*nominal, &key, spec.policy.jitter_seconds);
            rows.push(RunRow::new(
                ScheduleId(&id),
                key,
                *nominal,
                due_time,
                RunStatus::Pending,
                1,
                now,
            ));
        }
        let newest = plan.newest().unwrap_or(due);
        record.last_run_at = Some(record.last_run_at.map_or(newest, |l| l.max(newest)));
        record.next_run_at = record.spec.next_after(now.max(newest));
        let recount = record.occurrences_remaining.is_some();
        if let Some(left) = record.occurrences_remaining {
            let held = i32::try_from(held).unwrap_or(i32::MAX);
            record.occurrences_remaining = Some(left.saturating_sub(held).max(0));
        }
        record.limit();
        Wake {
            record: record.clone(),
            rows,
            skipped: plan.skip.len() + plan.unrecorded_skips,
            taken,
            advanced: true,
            recount,
        }
    }

    fn into_materialised(self, inserted: &HashSet<String>) -> Materialised {
        let written = self
            .rows
            .iter()
            .filter(|r| inserted.contains(&r.id))
            .count();
        let conflicts = self.taken + (self.rows.len() - written);
        Materialised {
            record: self.record,
            runnable: self
                .rows
                .into_iter()
                .filter(|r| r.status != RunStatus::Skipped && inserted.contains(&r.id))
                .collect(),
            skipped: self.skipped,
            conflicts,
        }
    }
}

/// Schedules' new `next_run_at`/`last_run_at`, written by one `UPDATE … FROM unnest(…)`.
#[derive(Default)]
struct Progress {
    ids: Vec<String>,
    next: Vec<Option<DateTime<Utc>>>,
    last: Vec<Option<DateTime<Utc>>>,
}

impl Progress {
    fn push(&mut self, record: &ScheduleRecord) {
        self.ids.push(record.id.clone());
        self.next.push(record.next_run_at);
        self.last.push(record.last_run_at);
    }

    fn write(self, conn: &mut PgConnection) -> Result<(), StoreError> {
        use diesel::sql_types::{Array, Nullable, Text, Timestamptz};
        if self.ids.is_empty() {
            return Ok(());
        }
        // The last entry of an id wins, as its wake-up was planned last.
        diesel::sql_query(
            "UPDATE schedules AS s SET next_run_at = u.next_run_at, last_run_at = u.last_run_at \
             FROM (SELECT DISTINCT ON (id) id, next_run_at, last_run_at \
                   FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) \
                   WITH ORDINALITY AS x(id, next_run_at, last_run_at, n) \
                   ORDER BY id, n DESC) AS u \
             WHERE s.id = u.id",
        )
        .bind::<Array<Text>, _>(&self.ids)
        .bind::<Array<Nullable<Timestamptz>>, _>(&self.next)
        .bind::<Array<Nullable<Timestamptz>>, _>(&self.last)
        .execute(conn)?;
        Ok(())
    }
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
