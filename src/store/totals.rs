//! Provides the running totals `/v1/status` and `/v1/metrics` read (`status_totals`): how
//! many schedules exist and are enabled, and how many runs ended in each terminal status.
//!
//! The database's deferred triggers (migration `2026-12-06-000007_status_totals`) keep them
//! in the transactions that change schedules and their stats; this module only sums the 256
//! shard rows, so a read costs the same at 10 schedules as at 1,000,000. It never writes.

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::StoreError;

/// The totals, summed over the shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, QueryableByName)]
pub struct Totals {
    #[diesel(sql_type = BigInt)]
    pub schedules: i64,
    #[diesel(sql_type = BigInt)]
    pub enabled: i64,
    #[diesel(sql_type = BigInt)]
    pub succeeded: i64,
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
    #[diesel(sql_type = BigInt)]
    pub dead_lettered: i64,
    #[diesel(sql_type = BigInt)]
    pub cancelled: i64,
    #[diesel(sql_type = BigInt)]
    pub skipped: i64,
}

/// Sums the shard rows (one index-free scan of 256 rows).
pub fn read(conn: &mut PgConnection) -> Result<Totals, StoreError> {
    Ok(diesel::sql_query(
        "SELECT coalesce(sum(schedules), 0)::bigint AS schedules, \
         coalesce(sum(enabled), 0)::bigint AS enabled, \
         coalesce(sum(succeeded), 0)::bigint AS succeeded, \
         coalesce(sum(failed), 0)::bigint AS failed, \
         coalesce(sum(dead_lettered), 0)::bigint AS dead_lettered, \
         coalesce(sum(cancelled), 0)::bigint AS cancelled, \
         coalesce(sum(skipped), 0)::bigint AS skipped FROM status_totals",
    )
    .get_result(conn)?)
}
