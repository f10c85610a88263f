//! Provides ledger retention: deleting terminal runs (and their receipts) that ended
//! before a cutoff, one small batch per transaction, under a transaction-scoped advisory
//! lock so that only one node deletes at a time.
//!
//! It never deletes a run a dead letter still points at (nor any attempt of that
//! occurrence), an attempt whose retry chain is still under way, or a run that has not
//! ended; and it never touches `schedule_stats` (running counters, not a count of rows).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Timestamptz};
use diesel::PgConnection;

use super::status::literal_in;
use super::StoreError;
use crate::domain::RunStatus;

/// The advisory-lock class of retention (the second key is [`RETENTION_LOCK_KEY`]); the
/// worker-id locks use another class, so they never collide.
pub const RETENTION_LOCK_CLASS: i32 = 0x7772; // "wr"
/// The second key of the retention lock.
pub const RETENTION_LOCK_KEY: i32 = 1;

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Swept {
    /// Another node held the retention lock: nothing was looked at.
    pub busy: bool,
    pub runs: i64,
    pub receipts: i64,
}

#[derive(QueryableByName)]
struct LockRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    runs: i64,
    #[diesel(sql_type = BigInt)]
    receipts: i64,
}

/// The statement of one batch: picks at most `$2` terminal runs created and ended before
/// `$1` (oldest first, through the `created_at` listing index; rows another transaction
/// holds are passed over), deletes their receipts set-based, then the runs (their
/// receipts are gone, so the cascade finds nothing; terminal runs hold no lease, and runs
/// with a dead letter are never picked).
fn batch_sql() -> String {
    let terminal = literal_in("r.status", &RunStatus::TERMINAL);
    let unfinished = literal_in("n.status", &RunStatus::UNFINISHED);
    format!(
        "WITH doomed AS (
             SELECT r.id FROM schedule_runs r
             WHERE r.created_at < $1
               AND {terminal}
               AND coalesce(r.finished_at, r.updated_at) < $1
               AND NOT EXISTS (SELECT 1 FROM dead_letters d
                               WHERE d.schedule_id = r.schedule_id
                                 AND d.occurrence_key = r.occurrence_key)
               AND NOT EXISTS (SELECT 1 FROM schedule_runs n
                               WHERE n.occurrence_key = r.occurrence_key
                                 AND n.attempt > r.attempt
                                 AND {unfinished})
             ORDER BY r.created_at
             LIMIT $2
             FOR UPDATE OF r SKIP LOCKED
         ),
         receipts AS (
             DELETE FROM execution_receipts e USING doomed WHERE e.run_id = doomed.id
             RETURNING 1
         ),
         runs AS (
             DELETE FROM schedule_runs r USING doomed WHERE r.id = doomed.id
             RETURNING 1
         )
         SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM receipts) AS receipts"
    )
}

/// Deletes one batch of at most `batch` runs ended before `cutoff`, in one transaction
/// that first takes `pg_try_advisory_xact_lock` (released at commit or rollback, so a
/// pooled connection never keeps it); `busy` when another node holds it.
pub fn sweep_batch(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    batch: i32,
) -> Result<Swept, StoreError> {
    conn.transaction(|conn| {
        let lock: LockRow = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1, $2) AS locked")
            .bind::<Integer, _>(RETENTION_LOCK_CLASS)
            .bind::<Integer, _>(RETENTION_LOCK_KEY)
            .get_result(conn)?;
        if !lock.locked {
            return Ok(Swept {
                busy: true,
                ..Swept::default()
            });
        }
        let counts: Counts = diesel::sql_query(batch_sql())
            .bind::<Timestamptz, _>(cutoff)
            .bind::<Integer, _>(batch)
            .get_result(conn)?;
        Ok(Swept {
            busy: false,
            runs: counts.runs,
            receipts: counts.receipts,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::batch_sql;

    #[test]
    fn the_batch_names_every_status_literally() {
        let sql = batch_sql();
        assert!(sql.contains(
            "r.status IN ('succeeded', 'failed', 'dead_lettered', 'cancelled', 'skipped')"
        ));
        assert!(sql.contains("n.status IN ('pending', 'retry_scheduled', 'claimed', 'running')"));
    }
}
