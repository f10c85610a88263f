//! Provides the probes (`/healthz`, `/readyz`) and the operator views (`/v1/status`,
//! `/v1/metrics`) built from the store's counts.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::cluster::{cluster_view, ClusterView};
use super::AppState;
use crate::actors::health::ActorsView;
use crate::actors::supervisor::HOUSEKEEPING_INTERVAL;
use crate::domain::ids::format_instant;
use crate::domain::RunStatus;
use crate::store::{self, leases, stats, totals, StoreError};

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub ok: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    pub ok: bool,
    /// `ok` or `error`.
    pub storage: &'static str,
}

/// Liveness: never touches the database.
#[utoipa::path(get, path = "/healthz", tag = "probes", security(()),
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { ok: true })
}

/// Readiness: 503 while the database is unreachable.
#[utoipa::path(get, path = "/readyz", tag = "probes", security(()),
    responses((status = 200, description = "Ready", body = Ready),
              (status = 503, description = "The database is unreachable", body = Ready)))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.store.ping().await {
        HttpResponse::Ok().json(Ready {
            ok: true,
            storage: "ok",
        })
    } else {
        HttpResponse::ServiceUnavailable().json(Ready {
            ok: false,
            storage: "error",
        })
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
            let totals = totals::read(conn)?;
            let (by_status, dead_letters) = stats::run_counts(conn, &totals)?;
            let (leases_active, leases_expired) = leases::lease_counts(conn, store::now())?;
            Ok(Counts {
                schedules_total: totals.schedules,
                schedules_enabled: totals.enabled,
                by_status,
                dead_letters,
                leases_active,
                leases_expired,
            })
        })
        .await
}

#[utoipa::path(get, path = "/v1/status", tag = "operations",
    responses((status = 200, description = "Service, database, scheduler, workers, runs and actors", body = StatusView)))]
/// `/v1/status`: answers even while the database is down (`database.ok: false`, stored
/// counts null), because that is when operators need it most.
pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(status_view(&state).await)
}

/// What `/v1/status` shows (the console's overview renders the same).
pub async fn status_view(state: &AppState) -> StatusView {
    let counts = counts(state).await;
    if let Err(e) = &counts {
        tracing::warn!(error = %e, "status without database counts");
    }
    let counts = counts.ok();
    let (size, idle) = state.store.pool_state();
    let view = state.scheduler.board().view(chrono::Utc::now());
    let cluster = cluster_view(state, view.actors.total).await;
    let c = counts.as_ref();
    let n = |f: &dyn Fn(&Counts) -> i64| c.map(f);
    StatusView {
        service: "wakeplane",
        version: env!("CARGO_PKG_VERSION"),
        started_at: format_instant(state.started_at),
        node_id: state.node_id.clone(),
        database: DatabaseStatus {
            driver: "postgres",
            path: state.store.location().to_string(),
            ok: counts.is_some(),
            pool: PoolStatus { size, idle },
        },
        scheduler: SchedulerStatus {
            mode: "timers",
            last_tick_at: view.last_tick_at.map(format_instant),
            loop_interval_seconds: HOUSEKEEPING_INTERVAL.as_secs(),
            due_runs: n(&|c| c.of(RunStatus::Pending)),
            next_due_schedule_id: view.next_due.as_ref().map(|(id, _)| id.clone()),
            next_due_run_at: view.next_due.as_ref().map(|(_, at)| format_instant(*at)),
        },
        workers: WorkersStatus {
            active: view.workers_active,
            capacity: view.workers_capacity.max(state.scheduler.workers()),
            claimed_but_expired: n(&|c| c.leases_expired),
        },
        schedules: ScheduleCounts {
            total: n(&|c| c.schedules_total),
            enabled: n(&|c| c.schedules_enabled),
        },
        runs: RunCounts {
            pending: n(&|c| c.of(RunStatus::Pending)),
            running: n(&|c| c.of(RunStatus::Running) + c.of(RunStatus::Claimed)),
            failed: n(&|c| c.of(RunStatus::Failed)),
            retry_queued: n(&|c| c.of(RunStatus::RetryScheduled)),
            dead_letter: n(&|c| c.dead_letters),
        },
        actors: view.actors,
        cluster,
    }
}

/// `GET /v1/status`. Stored counts are null while the database is down.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StatusView {
    #[schema(value_type = String)]
    pub service: &'static str,
    #[schema(value_type = String)]
    pub version: &'static str,
    pub started_at: String,
    pub node_id: String,
    pub database: DatabaseStatus,
    pub scheduler: SchedulerStatus,
    pub workers: WorkersStatus,
    pub schedules: ScheduleCounts,
    pub runs: RunCounts,
    pub actors: ActorsView,
    /// The nodes sharing the database; `actors` counts this node's alone.
    pub cluster: ClusterView,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DatabaseStatus {
    #[schema(value_type = String)]
    pub driver: &'static str,
    /// Where the data lives (URL or socket directory), never with a password.
    pub path: String,
    pub ok: bool,
    pub pool: PoolStatus,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PoolStatus {
    pub size: u32,
    pub idle: u32,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SchedulerStatus {
    #[schema(value_type = String)]
    pub mode: &'static str,
    pub last_tick_at: Option<String>,
    pub loop_interval_seconds: u64,
    pub due_runs: Option<i64>,
    pub next_due_schedule_id: Option<String>,
    pub next_due_run_at: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkersStatus {
    pub active: usize,
    pub capacity: usize,
    pub claimed_but_expired: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ScheduleCounts {
    pub total: Option<i64>,
    pub enabled: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunCounts {
    pub pending: Option<i64>,
    pub running: Option<i64>,
    pub failed: Option<i64>,
    pub retry_queued: Option<i64>,
    pub dead_letter: Option<i64>,
}

#[utoipa::path(get, path = "/v1/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain; version=0.0.4")))]
/// `/v1/metrics`: Prometheus text. Stored-state gauges are refreshed from the database
/// first; if it is down they keep their last values and the live ones still answer.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let m = state.scheduler.board().metrics();
    let own = usize::try_from(m.owned_schedules.get()).unwrap_or(0);
    let cluster = cluster_view(&state, own).await;
    for s in ["alive", "dead"] {
        m.cluster_nodes
            .with_label_values(&[s])
            .set(cluster.count(s) as i64);
    }
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
