//! Provides the `nodes` table: each node's heartbeat row (id, advertised HTTP address,
//! version, start, last heartbeat, schedules it owns), written by its housekeeping pass,
//! and the reads `/v1/status` makes of it.
//!
//! Times are the database's clock (`now()`), so nodes with skewed clocks agree on who is
//! dead. Knows nothing about partitions or actors.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Double, Text, Timestamptz};
use diesel::{PgConnection, QueryableByName, RunQueryDsl};

use super::StoreError;

/// How long a dead node's row stays listed before housekeeping deletes it.
pub const FORGET_DEAD_AFTER_HOURS: i64 = 24;

/// What a node says about itself in its heartbeat.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: String,
    pub http_addr: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
}

/// One node as stored, with whether it is alive by the database's clock.
#[derive(Debug, Clone, QueryableByName)]
pub struct NodeRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub http_addr: String,
    #[diesel(sql_type = Text)]
    pub version: String,
    #[diesel(sql_type = Timestamptz)]
    pub started_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub heartbeat_at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub owned_schedules: i64,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub alive: bool,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Writes `node`'s heartbeat (now) and how many schedules it owns; forgets nodes dead for
/// more than [`FORGET_DEAD_AFTER_HOURS`].
pub fn heartbeat(
    conn: &mut PgConnection,
    node: &NodeInfo,
    owned_schedules: i64,
) -> Result<(), StoreError> {
    diesel::sql_query(
        "INSERT INTO nodes (id, http_addr, version, started_at, heartbeat_at, owned_schedules)
         VALUES ($1, $2, $3, $4, now(), $5)
         ON CONFLICT (id) DO UPDATE SET http_addr = EXCLUDED.http_addr,
             version = EXCLUDED.version, started_at = EXCLUDED.started_at,
             heartbeat_at = EXCLUDED.heartbeat_at, owned_schedules = EXCLUDED.owned_schedules,
             left_at = NULL",
    )
    .bind::<Text, _>(&node.id)
    .bind::<Text, _>(&node.http_addr)
    .bind::<Text, _>(&node.version)
    .bind::<Timestamptz, _>(node.started_at)
    .bind::<BigInt, _>(owned_schedules)
    .execute(conn)?;
    diesel::sql_query("DELETE FROM nodes WHERE heartbeat_at < now() - make_interval(hours => $1)")
        .bind::<diesel::sql_types::Integer, _>(FORGET_DEAD_AFTER_HOURS as i32)
        .execute(conn)?;
    Ok(())
}

/// How many nodes heartbeated within `ttl_seconds`.
pub fn live_count(conn: &mut PgConnection, ttl_seconds: f64) -> Result<i64, StoreError> {
    let c: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM nodes
         WHERE left_at IS NULL AND heartbeat_at > now() - make_interval(secs => $1)",
    )
    .bind::<Double, _>(ttl_seconds)
    .get_result(conn)?;
    Ok(c.n)
}

/// Every known node, live ones first, then by id; a node is alive when it heartbeated
/// within `ttl_seconds`.
pub fn list(conn: &mut PgConnection, ttl_seconds: f64) -> Result<Vec<NodeRow>, StoreError> {
    Ok(diesel::sql_query(
        "SELECT id, http_addr, version, started_at, heartbeat_at, owned_schedules,
                (left_at IS NULL AND heartbeat_at > now() - make_interval(secs => $1)) AS alive
         FROM nodes ORDER BY alive DESC, id",
    )
    .bind::<Double, _>(ttl_seconds)
    .load(conn)?)
}

/// Marks `id` gone at once (graceful shutdown): its row stays listed, dead.
pub fn leave(conn: &mut PgConnection, id: &str) -> Result<(), StoreError> {
    diesel::sql_query("UPDATE nodes SET left_at = now(), owned_schedules = 0 WHERE id = $1")
        .bind::<Text, _>(id)
        .execute(conn)?;
    Ok(())
}
