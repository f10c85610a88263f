//! Provides the process's Prometheus instruments (one registry) and the text rendering of
//! `/v1/metrics`. Counters and histograms are fed by the actors as things happen; gauges of
//! stored state are set from database counts at scrape time.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every instrument, registered once. Cheap to clone (the instruments are `Arc`s inside).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub schedules_total: IntGauge,
    pub schedules_enabled_total: IntGauge,
    pub runs_total: IntGauge,
    pub runs_due: IntGauge,
    pub runs_running: IntGauge,
    pub runs_failed_total: IntGauge,
    pub runs_succeeded_total: IntGauge,
    pub runs_retry_queued: IntGauge,
    pub dead_letters_total: IntGauge,
    pub worker_leases_active: IntGauge,
    pub claimed_but_expired_total: IntGauge,
    pub executor_runs_total: IntCounterVec,
    pub executor_execution_duration_seconds: HistogramVec,
    /// Runs asked for per claim transaction of the pool (how well claims batch).
    pub executor_claim_batch_runs: Histogram,
    /// One claim transaction, from asking for a connection to its answer.
    pub executor_claim_duration_seconds: Histogram,
    pub schedule_actors: IntGaugeVec,
    pub schedule_actor_restarts_total: IntCounter,
    pub schedule_fire_lag_seconds: Histogram,
    pub cluster_nodes: IntGaugeVec,
    pub owned_schedules: IntGauge,
    pub ownership_handovers_total: IntCounter,
    pub materialise_conflicts_total: IntCounter,
    /// Runs deleted by ledger retention (`WAKEPLANE_RUN_RETENTION_DAYS`) on this node.
    pub runs_retention_deleted_total: IntCounter,
    /// Receipts deleted with them.
    pub receipts_retention_deleted_total: IntCounter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
            let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            r.register(Box::new(g.clone()))
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            g
        }
        let executor_runs_total = IntCounterVec::new(
            Opts::new(
                "executor_runs_total",
                "Runs executed, by target kind and final status.",
            ),
            &["executor", "status"],
        )
        .unwrap_or_else(|e| panic!("metric executor_runs_total: {e}"));
        let executor_execution_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "executor_execution_duration_seconds",
                "Time spent executing targets, by target kind.",
            )
            .buckets(vec![
                0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0,
            ]),
            &["executor"],
        )
        .unwrap_or_else(|e| panic!("metric executor_execution_duration_seconds: {e}"));
        let executor_claim_batch_runs = Histogram::with_opts(
            HistogramOpts::new(
                "executor_claim_batch_runs",
                "Runs asked for per claim transaction of the executor pool.",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )
        .unwrap_or_else(|e| panic!("metric executor_claim_batch_runs: {e}"));
        let executor_claim_duration_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "executor_claim_duration_seconds",
                "Claim transactions of the executor pool, waiting for a connection included.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
            ]),
        )
        .unwrap_or_else(|e| panic!("metric executor_claim_duration_seconds: {e}"));
        let schedule_actors = IntGaugeVec::new(
            Opts::new("schedule_actors", "Schedule actors on this node, by state."),
            &["state"],
        )
        .unwrap_or_else(|e| panic!("metric schedule_actors: {e}"));
        let schedule_actor_restarts_total = IntCounter::new(
            "schedule_actor_restarts_total",
            "Schedule actors restarted by the supervisor.",
        )
        .unwrap_or_else(|e| panic!("metric schedule_actor_restarts_total: {e}"));
        let schedule_fire_lag_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "schedule_fire_lag_seconds",
                "Delay between an occurrence's nominal time and its timer firing.",
            )
            .buckets(vec![
                0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
        )
        .unwrap_or_else(|e| panic!("metric schedule_fire_lag_seconds: {e}"));
        let cluster_nodes = IntGaugeVec::new(
            Opts::new(
                "cluster_nodes",
                "Nodes known to the cluster, by state (alive, dead).",
            ),
            &["state"],
        )
        .unwrap_or_else(|e| panic!("metric cluster_nodes: {e}"));
        for state in ["alive", "dead"] {
            cluster_nodes.with_label_values(&[state]);
        }
        let ownership_handovers_total = IntCounter::new(
            "ownership_handovers_total",
            "Partitions this node took over or gave up.",
        )
        .unwrap_or_else(|e| panic!("metric ownership_handovers_total: {e}"));
        let materialise_conflicts_total = IntCounter::new(
            "materialise_conflicts_total",
            "Timer wake-ups whose occurrence was already materialised (a doubled timer).",
        )
        .unwrap_or_else(|e| panic!("metric materialise_conflicts_total: {e}"));
        let runs_retention_deleted_total = IntCounter::new(
            "runs_retention_deleted_total",
            "Ended runs deleted by ledger retention on this node.",
        )
        .unwrap_or_else(|e| panic!("metric runs_retention_deleted_total: {e}"));
        let receipts_retention_deleted_total = IntCounter::new(
            "receipts_retention_deleted_total",
            "Execution receipts deleted with them.",
        )
        .unwrap_or_else(|e| panic!("metric receipts_retention_deleted_total: {e}"));
        // Every executor's series exist from the start, so a fresh server's scrape already
        // carries each family (a vector with no series prints no HELP/TYPE at all).
        for executor in ["http", "shell", "workflow"] {
            executor_execution_duration_seconds.with_label_values(&[executor]);
            for status in ["succeeded", "failed", "dead_lettered", "cancelled"] {
                executor_runs_total.with_label_values(&[executor, status]);
            }
        }
        for c in [
            Box::new(executor_runs_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(executor_execution_duration_seconds.clone()),
            Box::new(executor_claim_batch_runs.clone()),
            Box::new(executor_claim_duration_seconds.clone()),
            Box::new(schedule_actors.clone()),
            Box::new(schedule_actor_restarts_total.clone()),
            Box::new(schedule_fire_lag_seconds.clone()),
            Box::new(cluster_nodes.clone()),
            Box::new(ownership_handovers_total.clone()),
            Box::new(materialise_conflicts_total.clone()),
            Box::new(runs_retention_deleted_total.clone()),
            Box::new(receipts_retention_deleted_total.clone()),
        ] {
            registry
                .register(c)
                .unwrap_or_else(|e| panic!("metric registration: {e}"));
        }
        Metrics {
            schedules_total: gauge(&registry, "schedules_total", "Schedules defined."),
            schedules_enabled_total: gauge(
                &registry,
                "schedules_enabled_total",
                "Schedules not paused.",
            ),
            runs_total: gauge(&registry, "runs_total", "Runs in the ledger."),
            runs_due: gauge(
                &registry,
                "runs_due",
                "Runs pending (due and waiting to be claimed).",
            ),
            runs_running: gauge(&registry, "runs_running", "Runs claimed or running."),
            runs_failed_total: gauge(&registry, "runs_failed_total", "Runs that ended failed."),
            runs_succeeded_total: gauge(
                &registry,
                "runs_succeeded_total",
                "Runs that ended succeeded.",
            ),
            runs_retry_queued: gauge(&registry, "runs_retry_queued", "Runs waiting for a retry."),
            dead_letters_total: gauge(&registry, "dead_letters_total", "Dead-letter rows."),
            worker_leases_active: gauge(
                &registry,
                "worker_leases_active",
                "Leases held by any worker.",
            ),
            claimed_but_expired_total: gauge(
                &registry,
                "claimed_but_expired_total",
                "Leases past their expiry, not yet recovered.",
            ),
            executor_runs_total,
            executor_claim_batch_runs,
            executor_claim_duration_seconds,
            executor_execution_duration_seconds,
            schedule_actors,
            schedule_actor_restarts_total,
            schedule_fire_lag_seconds,
            owned_schedules: gauge(
                &registry,
                "owned_schedules",
                "Schedules whose timers this node runs (the actors it holds).",
            ),
            cluster_nodes,
            ownership_handovers_total,
            materialise_conflicts_total,
            runs_retention_deleted_total,
            receipts_retention_deleted_total,
            registry,
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
