//! Provides hand-written statements of fixed text that diesel prepares once per connection
//! and reuses (they are cached by their text, whereas `sql_query` opts out of the cache
//! because its text may change between calls): the claim path's two statements, which run
//! for every batch of runs. Builds SQL and binds; decides nothing.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, Text, Timestamptz, Untyped};
use diesel::{PgConnection, QueryResult, RunQueryDsl};

use super::status::literal_in;
use crate::domain::RunStatus;

/// Pushes `sql` with each `$n` replaced by bind `n` (1-based), pushed by `bind`: diesel
/// numbers the placeholders itself, so a parameter used twice is bound twice.
fn walk_with_binds<'b>(
    sql: &'static str,
    out: &mut AstPass<'_, 'b, Pg>,
    mut bind: impl FnMut(usize, &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>,
) -> QueryResult<()> {
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_sql(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        let n: usize = rest[at + 1..at + 1 + digits].parse().unwrap_or(0);
        bind(n, out)?;
        rest = &rest[at + 1 + digits..];
    }
    out.push_sql(rest);
    Ok(())
}

fn no_such_bind(n: usize) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(format!("no bind parameter ${n}").into())
}

/// `r` is waiting, as a test the planner can only apply to rows it has found, never use to
/// find them: the runs of a claim are looked up by primary key. On the bare column the
/// planner may prove the partial `schedule_runs_waiting_idx` usable and, with statistics
/// from before a burst (few waiting runs then), walk every waiting run of the table through
/// it and the status index, then hash-join the few requested (4–7 ms at 2,000 waiting runs,
/// seen in `auto_explain` during the 10,000-run burst, custom plans as well as generic).
fn waiting_per_row() -> String {
    literal_in("(r.status || '')", &RunStatus::WAITING)
}

/// Declares the diesel plumbing of a fixed-text statement `$name` with SQL `$sql`.
macro_rules! fixed_statement {
    ($name:ident, $sql:expr) => {
        impl QueryId for $name<'_> {
            type QueryId = ();
            // Not static: the cache keys the prepared statement on its text instead.
            const HAS_STATIC_QUERY_ID: bool = false;
        }
        impl Query for $name<'_> {
            type SqlType = Untyped;
        }
        impl RunQueryDsl<PgConnection> for $name<'_> {}
        impl $name<'_> {
            fn sql() -> &'static str {
                static SQL: LazyLock<String> = LazyLock::new(|| $sql);
                &SQL
            }
        }
    };
}

/// Each schedule's active runs (`kind` `active`, `key` the schedule id, `n` the count) and
/// the requested runs still waiting and due (`kind` `due`, `key` the run id), in one round
/// trip. The active count names its statuses literally so the plan can use the partial
/// index `schedule_runs_active_idx`. The runs are joined from `unnest` of their ids and
/// tested with [`waiting_per_row`], so that each is looked up by primary key.
pub struct Admission<'a> {
    pub schedule_ids: &'a [&'a str],
    pub run_ids: &'a [&'a str],
    pub now: DateTime<Utc>,
}

fixed_statement!(
    Admission,
    format!(
        "SELECT 'active' AS kind, schedule_id AS key, count(*) AS n FROM schedule_runs \
         WHERE schedule_id = ANY($1) AND {} GROUP BY schedule_id \
         UNION ALL \
         SELECT 'due', r.id, 0 FROM unnest($2::text[]) AS u(id) \
         JOIN schedule_runs r ON r.id = u.id WHERE {} AND r.due_time <= $3",
        literal_in("status", &RunStatus::ACTIVE),
        waiting_per_row(),
    )
);

impl QueryFragment<Pg> for Admission<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        walk_with_binds(Self::sql(), &mut out, |n, out| match n {
            1 => out.push_bind_param::<Array<Text>, _>(self.schedule_ids),
            2 => out.push_bind_param::<Array<Text>, _>(self.run_ids),
            3 => out.push_bind_param::<Timestamptz, _>(&self.now),
            n => Err(no_such_bind(n)),
        })
    }
}

/// Moves the admitted runs still waiting and due to `running` (claimed by the worker,
/// started now) and inserts or takes over their leases, returning the runs as they are now.
/// Joined from `unnest` of the ids, by primary key, for the reason given at [`Admission`].
pub struct StartWithLeases<'a> {
    pub run_ids: &'a [&'a str],
    pub worker_id: &'a str,
    pub now: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

fixed_statement!(
    StartWithLeases,
    format!(
        "WITH started AS (UPDATE schedule_runs AS r SET status = '{running}', \
         claimed_by_worker_id = $2, claim_expires_at = $4, started_at = $3, updated_at = $3 \
         FROM unnest($1::text[]) AS u(id) \
         WHERE r.id = u.id AND {waiting} AND r.due_time <= $3 RETURNING r.*), \
         leases AS (INSERT INTO worker_leases (run_id, worker_id, acquired_at, renewed_at, \
         expires_at) SELECT id, $2, $3, $3, $4 FROM started \
         ON CONFLICT (run_id) DO UPDATE SET worker_id = excluded.worker_id, \
         renewed_at = excluded.renewed_at, expires_at = excluded.expires_at) \
         SELECT * FROM started",
        running = RunStatus::Running.as_str(),
        waiting = waiting_per_row(),
    )
);

impl QueryFragment<Pg> for StartWithLeases<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        walk_with_binds(Self::sql(), &mut out, |n, out| match n {
            1 => out.push_bind_param::<Array<Text>, _>(self.run_ids),
            2 => out.push_bind_param::<Text, _>(self.worker_id),
            3 => out.push_bind_param::<Timestamptz, _>(&self.now),
            4 => out.push_bind_param::<Timestamptz, _>(&self.expires),
            n => Err(no_such_bind(n)),
        })
    }
}
