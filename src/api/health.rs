//! Provides the probes (`/healthz`, `/readyz`) and the operator views (`/v1/status`,
//! `/v1/metrics`) built from the store's counts.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use super::AppState;
use crate::domain::ids::format_instant;
use crate::domain::RunStatus;
use crate::store::{runs, schedules};

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

/// Counts shared by status and metrics.
pub struct Counts {
    pub schedules_total: i64,
    pub schedules_enabled: i64,
    pub by_status: Vec<(RunStatus, i64)>,
    pub dead_letters: i64,
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

pub async fn counts(state: &AppState) -> Result<Counts, ApiError> {
    let (schedules_total, schedules_enabled, by_status, dead_letters) = state
        .store
        .run(|conn| {
            let (total, enabled) = schedules::counts(conn)?;
            let (by_status, dead) = runs::counts_by_status(conn)?;
            Ok::<_, crate::store::StoreError>((total, enabled, by_status, dead))
        })
        .await?;
    Ok(Counts {
        schedules_total,
        schedules_enabled,
        by_status,
        dead_letters,
    })
}

pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let c = counts(&state).await?;
    let (size, idle) = state.store.pool_state();
    Ok(HttpResponse::Ok().json(json!({
        "service": "wakeplane",
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": format_instant(state.started_at),
        "node_id": state.node_id,
        "database": {"driver": "postgres", "path": state.store.location(), "ok": true,
                     "pool": {"size": size, "idle": idle}},
        "schedules": {"total": c.schedules_total, "enabled": c.schedules_enabled},
        "runs": {
            "pending": c.of(RunStatus::Pending),
            "running": c.of(RunStatus::Running) + c.of(RunStatus::Claimed),
            "failed": c.of(RunStatus::Failed),
            "retry_queued": c.of(RunStatus::RetryScheduled),
            "dead_letter": c.dead_letters,
        },
    })))
}

pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let c = counts(&state).await?;
    let total: i64 = c.by_status.iter().map(|(_, n)| n).sum();
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: i64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    family(
        "schedules_total",
        "gauge",
        "Schedules defined.",
        c.schedules_total,
    );
    family(
        "schedules_enabled_total",
        "gauge",
        "Schedules not paused.",
        c.schedules_enabled,
    );
    family("runs_total", "gauge", "Runs in the ledger.", total);
    family(
        "runs_due",
        "gauge",
        "Runs pending.",
        c.of(RunStatus::Pending),
    );
    family(
        "runs_running",
        "gauge",
        "Runs claimed or running.",
        c.of(RunStatus::Running) + c.of(RunStatus::Claimed),
    );
    family(
        "runs_failed_total",
        "gauge",
        "Runs that failed.",
        c.of(RunStatus::Failed),
    );
    family(
        "runs_succeeded_total",
        "gauge",
        "Runs that succeeded.",
        c.of(RunStatus::Succeeded),
    );
    family(
        "runs_retry_queued",
        "gauge",
        "Runs waiting for a retry.",
        c.of(RunStatus::RetryScheduled),
    );
    family(
        "dead_letters_total",
        "gauge",
        "Dead-letter rows.",
        c.dead_letters,
    );
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out))
}
