//! Provides the `LeaseReaper`: every second it recovers runs whose lease expired (a dead
//! node, a crash) by SEMANTICS.md's rules, and tells the owning schedule actors to reload.
//!
//! The only periodic scan for work (ledger retention is the other timer-driven job): a dead
//! node cannot announce its expired lease.

use std::time::Duration;

use actix::prelude::*;

use super::messages::Reload;
use super::supervisor::Supervisor;
use crate::store::leases;
use crate::store::{self, Store};

pub const REAP_INTERVAL: Duration = Duration::from_secs(1);

pub struct LeaseReaper {
    pub store: Store,
    pub supervisor: Addr<Supervisor>,
}

impl Actor for LeaseReaper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(REAP_INTERVAL, |act, ctx| {
            let supervisor = act.supervisor.clone();
            let fut = act
                .store
                .run(|conn| leases::recover_expired(conn, None, store::now(), 100));
            ctx.wait(
                async move {
                    match fut.await {
                        Ok(recovered) => {
                            for r in recovered {
                                tracing::warn!(run_id = %r.run_id, schedule_id = %r.schedule_id,
                                    status = %r.status, "recovered a run whose lease expired");
                                supervisor.do_send(ReloadSchedule { id: r.schedule_id });
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "lease reaping skipped"),
                    }
                }
                .into_actor(act),
            );
        });
    }
}

/// → Supervisor: tell one schedule's actor to reload (here, or through its owner).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReloadSchedule {
    pub id: String,
}

impl Handler<ReloadSchedule> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: ReloadSchedule, ctx: &mut Self::Context) {
        match self.actor(&msg.id) {
            Some(addr) => addr.do_send(Reload),
            // Runs here, schedule owned elsewhere: its owner must hear about the retry.
            None => self.notify_owner(msg.id, ctx),
        }
    }
}
