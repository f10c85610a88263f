//! Provides the partition leases: one row per partition (`owner`, `expires_at`, `epoch`),
//! and the housekeeping pass that heartbeats a node, renews what it holds, hands back its
//! surplus and takes free or expired partitions up to its fair share, in one transaction.
//! Also the `wakeplane_commands` notification channel.
//!
//! Times are the database's clock. Knows nothing about actors: the Supervisor turns the
//! partitions a pass returns into running actors.

use std::collections::{BTreeMap, BTreeSet};

use diesel::sql_types::{Array, BigInt, Double, Integer, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};

use super::nodes::{self, NodeInfo};
use super::StoreError;
use crate::domain::partition::fair_share;

/// The channel every node LISTENs on: a payload is a schedule id whose row or runs changed
/// (its owner reloads it), or [`REBALANCE`].
pub const CHANNEL: &str = "wakeplane_commands";
/// The payload that says "partitions were handed back: run a pass now".
pub const REBALANCE: &str = "rebalance";

#[derive(QueryableByName)]
struct Held {
    #[diesel(sql_type = Integer)]
    partition: i32,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
}

/// A partition lease as its holder knows it: the partition and the epoch it was taken at.
/// Writes made for the holder's schedules name it, so a holder that lost the lease (the
/// epoch moved on) cannot write for them any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lease {
    pub partition: u32,
    pub epoch: i64,
}

/// What one pass ended with.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// The partitions this node holds now, with the epoch of each.
    pub held: BTreeMap<u32, i64>,
    /// Live nodes, this one included.
    pub live_nodes: i64,
    /// Partitions handed back (surplus over the fair share).
    pub released: usize,
}

/// One housekeeping pass for `node` (one transaction): heartbeat, renew every partition it
/// holds for `ttl_seconds`, hand back the surplus over its fair share among the live
/// nodes, take free or expired partitions up to it. A partition changes `epoch` whenever it
/// changes owner. Hand-backs are announced with [`REBALANCE`] (delivered on commit).
pub fn pass(
    conn: &mut PgConnection,
    node: &NodeInfo,
    owned_schedules: i64,
    ttl_seconds: f64,
) -> Result<Pass, StoreError> {
    conn.transaction(|conn| {
        nodes::heartbeat(conn, node, owned_schedules)?;
        let live = nodes::live_count(conn, ttl_seconds)?.max(1);
        let share = fair_share(usize::try_from(live).unwrap_or(1));
        let mut held: Vec<Held> = diesel::sql_query(
            "UPDATE partitions SET expires_at = now() + make_interval(secs => $2)
             WHERE owner = $1 RETURNING partition, epoch",
        )
        .bind::<Text, _>(&node.id)
        .bind::<Double, _>(ttl_seconds)
        .load::<Held>(conn)?;
        held.sort_unstable_by_key(|h| h.partition);
        let mut released = 0;
        if held.len() > share {
            let surplus: Vec<i32> = held.split_off(share).iter().map(|h| h.partition).collect();
            released = surplus.len();
            diesel::sql_query(
                "UPDATE partitions SET owner = NULL, expires_at = '-infinity', epoch = epoch + 1
                 WHERE owner = $1 AND partition = ANY($2)",
            )
            .bind::<Text, _>(&node.id)
            .bind::<Array<Integer>, _>(&surplus)
            .execute(conn)?;
            notify(conn, REBALANCE)?;
        } else if held.len() < share {
            let wanted = i64::try_from(share - held.len()).unwrap_or(0);
            let taken: Vec<Held> = diesel::sql_query(
                "UPDATE partitions SET owner = $1, epoch = epoch + 1,
                     expires_at = now() + make_interval(secs => $2)
                 WHERE partition IN (
                     SELECT partition FROM partitions
                     WHERE owner IS NULL OR expires_at < now()
                     ORDER BY partition
                     LIMIT $3 FOR UPDATE SKIP LOCKED)
                 RETURNING partition, epoch",
            )
            .bind::<Text, _>(&node.id)
            .bind::<Double, _>(ttl_seconds)
            .bind::<BigInt, _>(wanted)
            .load(conn)?;
            held.extend(taken);
        }
        Ok(Pass {
            held: held
                .into_iter()
                .filter_map(|h| Some((u32::try_from(h.partition).ok()?, h.epoch)))
                .collect(),
            live_nodes: live,
            released,
        })
    })
}

/// Hands back every partition `node_id` holds and marks the node gone (graceful shutdown),
/// announcing it so the others take them at once instead of after the TTL.
pub fn leave(conn: &mut PgConnection, node_id: &str) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        diesel::sql_query(
            "UPDATE partitions SET owner = NULL, expires_at = '-infinity', epoch = epoch + 1
             WHERE owner = $1",
        )
        .bind::<Text, _>(node_id)
        .execute(conn)?;
        nodes::leave(conn, node_id)?;
        notify(conn, REBALANCE)
    })
}

/// Sends `payload` on [`CHANNEL`]; inside a transaction it is delivered on commit.
pub fn notify(conn: &mut PgConnection, payload: &str) -> Result<(), StoreError> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(CHANNEL)
        .bind::<Text, _>(payload)
        .execute(conn)?;
    Ok(())
}

/// Sends each of `payloads` on [`CHANNEL`] in one statement; inside a transaction they are
/// delivered on commit.
pub fn notify_each(conn: &mut PgConnection, payloads: &[&str]) -> Result<(), StoreError> {
    if payloads.is_empty() {
        return Ok(());
    }
    diesel::sql_query("SELECT pg_notify($1, p) FROM unnest($2) AS p")
        .bind::<Text, _>(CHANNEL)
        .bind::<Array<Text>, _>(payloads)
        .execute(conn)?;
    Ok(())
}

/// The ids of every schedule (the caller keeps those in its partitions).
pub fn schedule_ids(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    use super::schema::schedules;
    use diesel::QueryDsl;
    Ok(schedules::table.select(schedules::id).load(conn)?)
}

/// Schedules with runs created after `since` that still wait (`pending`,
/// `retry_scheduled`): what a listener that was disconnected may not have heard about.
pub fn schedules_with_new_runs(
    conn: &mut PgConnection,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>, StoreError> {
    use super::schema::schedule_runs as r;
    use diesel::{ExpressionMethods, QueryDsl};
    Ok(r::table
        .filter(r::created_at.gt(since))
        .filter(r::status.eq_any(["pending", "retry_scheduled"]))
        .select(r::schedule_id)
        .distinct()
        .load(conn)?)
}

/// Of `leases`, the ones `node_id` still holds at that epoch (not necessarily unexpired:
/// an expired lease nobody took is still its holder's, and its next pass renews it).
pub fn still_held(
    conn: &mut PgConnection,
    node_id: &str,
    leases: &BTreeSet<Lease>,
) -> Result<BTreeSet<Lease>, StoreError> {
    if leases.is_empty() {
        return Ok(BTreeSet::new());
    }
    let wanted: Vec<i32> = leases
        .iter()
        .filter_map(|l| i32::try_from(l.partition).ok())
        .collect();
    let rows: Vec<Held> = diesel::sql_query(
        "SELECT partition, epoch FROM partitions WHERE owner = $1 AND partition = ANY($2)",
    )
    .bind::<Text, _>(node_id)
    .bind::<Array<Integer>, _>(&wanted)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|h| {
            Some(Lease {
                partition: u32::try_from(h.partition).ok()?,
                epoch: h.epoch,
            })
        })
        .filter(|l| leases.contains(l))
        .collect())
}
