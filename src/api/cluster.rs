//! Provides the `cluster` block of `/v1/status` (API.md, *Status*): the nodes sharing the
//! database as this node sees them, read from the `nodes` table, as typed views that the
//! status handler, the metrics and the console share.
//!
//! Reads only; the heartbeat rows are written by the Supervisor's housekeeping.

use serde::Serialize;

use super::AppState;
use crate::domain::ids::format_instant;
use crate::store::nodes::{self, NodeRow};

/// One node of the cluster.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub node_id: String,
    /// The address it advertises (`WAKEPLANE_ADVERTISE_ADDR`, else where it listens).
    pub http_addr: String,
    /// `alive` (heartbeat within the node TTL) or `dead`.
    #[schema(value_type = String)]
    pub state: &'static str,
    pub version: String,
    pub heartbeat_at: String,
    pub started_at: String,
    /// Schedules whose timers it runs (0 when dead).
    pub owned_schedules: i64,
}

/// `cluster` in `/v1/status`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClusterView {
    /// This node.
    pub node_id: String,
    /// Live nodes first, then by id. Without a database: this node alone.
    pub nodes: Vec<NodeView>,
}

impl ClusterView {
    /// How many nodes are in `state`.
    pub fn count(&self, state: &str) -> usize {
        self.nodes.iter().filter(|n| n.state == state).count()
    }
}

/// The cluster as stored, with this node's own count taken live from its actors; this
/// node alone when the database does not answer.
pub async fn cluster_view(state: &AppState, own_schedules: usize) -> ClusterView {
    let (node_id, http_addr, ttl) = state.scheduler.node();
    let (node_id, http_addr) = (node_id.to_string(), http_addr.to_string());
    let ttl = ttl.as_secs_f64();
    let rows = state.store.run(move |conn| nodes::list(conn, ttl)).await;
    let own = i64::try_from(own_schedules).unwrap_or(i64::MAX);
    let nodes = match rows {
        Ok(rows) => rows
            .into_iter()
            .map(|row| view(row, &node_id, own))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cluster view without the database");
            vec![NodeView {
                node_id: node_id.clone(),
                http_addr,
                state: "alive",
                version: env!("CARGO_PKG_VERSION").to_string(),
                heartbeat_at: format_instant(state.started_at),
                started_at: format_instant(state.started_at),
                owned_schedules: own,
            }]
        }
    };
    ClusterView { node_id, nodes }
}

fn view(row: NodeRow, me: &str, own: i64) -> NodeView {
    let owned = if row.id == me {
        own
    } else if row.alive {
        row.owned_schedules
    } else {
        0
    };
    NodeView {
        state: if row.alive { "alive" } else { "dead" },
        owned_schedules: owned,
        http_addr: row.http_addr,
        version: row.version,
        heartbeat_at: format_instant(row.heartbeat_at),
        started_at: format_instant(row.started_at),
        node_id: row.id,
    }
}
