//! Provides the Supervisor's share of the cluster: its membership (the heartbeat pass that
//! renews, hands back and takes partition leases), starting actors for the schedules of
//! partitions it gains and stopping those of partitions it loses, and what the listener's
//! notifications ask of it (reload a schedule, run a pass now, resynchronise).
//!
//! It decides nothing about schedules themselves: actors apply commands; the store's pass
//! decides who holds which partition.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::Supervisor;
use crate::actors::messages::{Disown, Reload};
use crate::domain::partition::partition_of;
use crate::store::nodes::NodeInfo;
use crate::store::partitions::{self, Lease, REBALANCE};

/// This node's place in the cluster, as of its last successful pass.
pub struct Membership {
    pub node: NodeInfo,
    /// A node whose heartbeat is older than this is dead; partition leases last this long.
    pub ttl: Duration,
    /// The partitions this node holds, with the epoch of each: it runs the actors of
    /// their schedules, each fenced by its partition's lease.
    pub held: BTreeMap<u32, i64>,
    /// A pass is being written.
    passing: bool,
    /// A pass was asked for while one was being written.
    again: bool,
}

impl Membership {
    /// Starts with the partitions the first pass (at start-up) took.
    pub fn new(node: NodeInfo, ttl: Duration, held: BTreeMap<u32, i64>) -> Membership {
        Membership {
            node,
            ttl,
            held,
            passing: false,
            again: false,
        }
    }

    /// Whether schedule `id`'s timer belongs on this node.
    pub fn owns(&self, id: &str) -> bool {
        self.held.contains_key(&partition_of(id))
    }

    /// The lease schedule `id`'s actor runs under, when this node holds it.
    pub fn lease_of(&self, id: &str) -> Option<Lease> {
        let partition = partition_of(id);
        self.held
            .get(&partition)
            .map(|&epoch| Lease { partition, epoch })
    }
}

impl Supervisor {
    /// Heartbeats, renews this node's partitions, hands back its surplus and takes its fair
    /// share (one transaction), then starts and stops actors to match. One pass at a time;
    /// a pass asked for meanwhile runs right after.
    pub(super) fn cluster_pass(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        if self.cluster.passing {
            self.cluster.again = true;
            return;
        }
        self.cluster.passing = true;
        let node = self.cluster.node.clone();
        let owned = i64::try_from(self.registry.len()).unwrap_or(i64::MAX);
        let ttl = self.cluster.ttl.as_secs_f64();
        let fut = self
            .store
            .run(move |conn| partitions::pass(conn, &node, owned, ttl));
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.cluster.passing = false;
            match res {
                Ok(pass) => {
                    if pass.released > 0 {
                        tracing::info!(
                            released = pass.released,
                            live_nodes = pass.live_nodes,
                            "handed surplus partitions back"
                        );
                    }
                    act.take_ownership(pass.held, ctx);
                }
                Err(e) => tracing::warn!(error = %e, "cluster heartbeat failed; will retry"),
            }
            if std::mem::take(&mut act.cluster.again) {
                act.cluster_pass(ctx);
            }
        }));
    }

    /// Moves to holding `held`: stops the actors of partitions lost (another node took
    /// them, or they were handed back) and starts those of partitions gained. A partition
    /// held again at a new epoch (lost and taken back between two passes) is both.
    pub(super) fn take_ownership(&mut self, held: BTreeMap<u32, i64>, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let old = &self.cluster.held;
        let lost: BTreeSet<u32> = old
            .iter()
            .filter(|(p, e)| held.get(p) != Some(e))
            .map(|(p, _)| *p)
            .collect();
        let gained: BTreeSet<u32> = held
            .iter()
            .filter(|(p, e)| old.get(p) != Some(e))
            .map(|(p, _)| *p)
            .collect();
        if lost.is_empty() && gained.is_empty() {
            return;
        }
        self.board
            .metrics()
            .ownership_handovers_total
            .inc_by((lost.len() + gained.len()) as u64);
        self.cluster.held = held;
        if !lost.is_empty() {
            let gone: Vec<Arc<str>> = self
                .registry
                .keys()
                .filter(|id| lost.contains(&partition_of(id)))
                .cloned()
                .collect();
            tracing::info!(
                partitions = lost.len(),
                schedules = gone.len(),
                "partitions moved to another node"
            );
            for id in gone {
                if let Some(addr) = self.registry.remove(&*id) {
                    addr.do_send(Disown);
                }
                self.seen.remove(&*id);
                self.restarts.remove(&*id);
            }
            let cluster = &self.cluster;
            self.unstarted.retain(|id| cluster.owns(id));
        }
        if !gained.is_empty() {
            self.adopt(gained, ctx);
        }
    }

    /// Starts the actors of the schedules in `gained` (read in batches by `start_batch`;
    /// each applies its misfire policy to what it missed, as after a restart). If the ids
    /// cannot be read, the partitions are forgotten so that the next pass gains them again.
    fn adopt(&mut self, gained: BTreeSet<u32>, ctx: &mut Context<Self>) {
        let fut = self.store.run(partitions::schedule_ids);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(ids) => {
                let mut adopted = 0usize;
                for id in ids {
                    let p = partition_of(&id);
                    if gained.contains(&p)
                        && act.cluster.held.contains_key(&p)
                        && !act.registry.contains_key(id.as_str())
                    {
                        act.unstarted.insert(id);
                        adopted += 1;
                    }
                }
                tracing::info!(
                    partitions = gained.len(),
                    schedules = adopted,
                    "partitions taken over"
                );
                act.start_batch(ctx);
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the schedules of new partitions failed; will retry");
                for p in gained {
                    act.cluster.held.remove(&p);
                }
            }
        }));
    }

    /// A schedule changed elsewhere: its actor here reloads, or starts if it belongs here.
    fn changed_elsewhere(&mut self, id: String, ctx: &mut Context<Self>) {
        if let Some(addr) = self.registry.get(id.as_str()) {
            addr.do_send(Reload);
        } else if !self.shutting_down && self.cluster.owns(&id) {
            self.unstarted.insert(id);
            self.start_batch(ctx);
        }
    }
}

/// Listener → Supervisor: a notification arrived on `wakeplane_commands`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Notified {
    /// A schedule id, or `rebalance`.
    pub payload: String,
}

impl Handler<Notified> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: Notified, ctx: &mut Self::Context) {
        if msg.payload == REBALANCE {
            self.cluster_pass(ctx);
        } else {
            self.changed_elsewhere(msg.payload, ctx);
        }
    }
}

/// Listener → Supervisor: the listening connection was (re)established; notifications
/// sent since `since` may have been missed, so look for changes from then once.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Resync {
    pub since: DateTime<Utc>,
}

impl Handler<Resync> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: Resync, ctx: &mut Self::Context) {
        self.sync(ctx);
        self.cluster_pass(ctx);
        let fut = self
            .store
            .run(move |conn| partitions::schedules_with_new_runs(conn, msg.since));
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok(ids) => {
                for id in ids {
                    act.changed_elsewhere(id, ctx);
                }
            }
            Err(e) => tracing::warn!(error = %e, "resynchronising runs failed"),
        }));
    }
}
