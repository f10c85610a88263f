//! Provides the probes (`/healthz`, `/readyz`) and the operator views (`/v1/status`,
//! `/v1/metrics`) built from the store's counts.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::actors::supervisor::HOUSEKEEPING_INTERVAL;
use crate::domain::ids::format_instant;
use crate::domain::RunStatus;
use crate::store::{self, leases, runs, schedules, StoreError};

/// Liveness: never touches the database.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"ok": true}))
}

/// Readiness: 503 while the database is unreachable.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.store.ping().await {
        HttpResponse::Ok().json(json!({"ok": true, "storage": "ok"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"ok": false, "storage": "error"}))
    }
}

/// Stored-state counts shared by status and metrics.
pub struct Counts {
    pub schedules_total: i64,
    pub schedules_enabled: i64,
    pub by_status: Vec<(RunStatus, i64)>,
    pub dead_letters: i64,
    pub leases_active: i64,
    pub leases_expired: i64,
}

impl Counts {
    pub fn of(&self, status: RunStatus) -> i64 {
        self.by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }
}

pub async fn counts(state: &AppState) -> Result<Counts, StoreError> {
    state
        .store
        .run(|conn| {
            let (schedules_total, schedules_enabled) = schedules::counts(conn)?;
            let (by_status, dead_letters) = runs::counts_by_status(conn)?;
            let (leases_active, leases_expired) = leases::lease_counts(conn, store::now())?;
            Ok(Counts {
                schedules_total,
                schedules_enabled,
                by_status,
                dead_letters,
                leases_active,
                leases_expired,
            })
        })
        .await
}

/// `/v1/status`: answers even while the database is down (`database.ok: false`, stored
/// counts null), because that is when operators need it most.
pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    let counts = counts(&state).await;
    if let Err(e) = &counts {
        tracing::warn!(error = %e, "status without database counts");
    }
    let counts = counts.ok();
    let (size, idle) = state.store.pool_state();
    let view = state.scheduler.board.view(chrono::Utc::now());
    let c = counts.as_ref();
    let n = |f: &dyn Fn(&Counts) -> i64| c.map(f);
    HttpResponse::Ok().json(json!({
        "service": "wakeplane",
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": format_instant(state.started_at),
        "node_id": state.node_id,
        "database": {"driver": "postgres", "path": state.store.location(), "ok": counts.is_some(),
                     "pool": {"size": size, "idle": idle}},
        "scheduler": {
            "mode": "timers",
            "last_tick_at": view.last_tick_at.map(format_instant),
            "loop_interval_seconds": HOUSEKEEPING_INTERVAL.as_secs(),
            "due_runs": n(&|c| c.of(RunStatus::Pending)),
            "next_due_schedule_id": view.next_due.as_ref().map(|(id, _)| id.clone()),
            "next_due_run_at": view.next_due.as_ref().map(|(_, at)| format_instant(*at)),
        },
        "workers": {
            "active": view.workers_active,
            "capacity": view.workers_capacity.max(state.scheduler.config.workers),
            "claimed_but_expired": n(&|c| c.leases_expired),
        },
        "schedules": {"total": n(&|c| c.schedules_total), "enabled": n(&|c| c.schedules_enabled)},
        "runs": {
            "pending": n(&|c| c.of(RunStatus::Pending)),
            "running": n(&|c| c.of(RunStatus::Running) + c.of(RunStatus::Claimed)),
            "failed": n(&|c| c.of(RunStatus::Failed)),
            "retry_queued": n(&|c| c.of(RunStatus::RetryScheduled)),
            "dead_letter": n(&|c| c.dead_letters),
        },
        "actors": view.actors,
    }))
}

/// `/v1/metrics`: Prometheus text. Stored-state gauges are refreshed from the database
/// first; if it is down they keep their last values and the live ones still answer.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let m = state.scheduler.board.metrics();
    match counts(&state).await {
        Ok(c) => {
            let total: i64 = c.by_status.iter().map(|(_, n)| n).sum();
            m.schedules_total.set(c.schedules_total);
            m.schedules_enabled_total.set(c.schedules_enabled);
            m.runs_total.set(total);
            m.runs_due.set(c.of(RunStatus::Pending));
            m.runs_running
                .set(c.of(RunStatus::Running) + c.of(RunStatus::Claimed));
            m.runs_failed_total.set(c.of(RunStatus::Failed));
            m.runs_succeeded_total.set(c.of(RunStatus::Succeeded));
            m.runs_retry_queued.set(c.of(RunStatus::RetryScheduled));
            m.dead_letters_total.set(c.dead_letters);
            m.worker_leases_active.set(c.leases_active);
            m.claimed_but_expired_total.set(c.leases_expired);
        }
        Err(e) => tracing::warn!(error = %e, "metrics without fresh database counts"),
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(m.render())
}
