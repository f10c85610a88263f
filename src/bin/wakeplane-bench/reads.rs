//! `reads`: the schedule list filtered by a label selector over many schedules, and
//! `/v1/status` over a large run ledger, each against what it replaced.
//!
//! Seeds rows with SQL (not the API) before the stats migration runs, so the migration
//! fills the counters from the ledger as it would on an upgrade; then measures over HTTP.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use diesel::connection::SimpleConnection;
use diesel_migrations::MigrationHarness;
use futures_util::stream::{self, StreamExt};
use wakeplane::store::MIGRATIONS;

use crate::env::{progress, Api, Database, InProcessServer, ServerTuning};
use crate::report::{self, Summary};

#[derive(Debug, Clone, clap::Args)]
pub struct ReadsArgs {
    /// Schedules (paused; labelled team=t0…t49, env=prod for one in three).
    #[arg(long, default_value_t = 100_000)]
    pub schedules: usize,
    /// Ended runs in the ledger (spread over the first 1,000 schedules).
    #[arg(long, default_value_t = 1_000_000)]
    pub runs: usize,
    /// Requests per measurement.
    #[arg(long, default_value_t = 2_000)]
    pub requests: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Measure `/v1/status` only: one at a time and `--concurrency` in flight, next to the
    /// SQL it ran per request before the running totals (no labels, no list requests).
    #[arg(long)]
    pub status_only: bool,
}

/// The first migration this scenario seeds before (labels and stats).
const STATS_MIGRATION: &str = "2026-12-06-000002";

const SELECTOR: &str = "team%3Dt7%2Cenv%3Dprod";

pub async fn run(args: &ReadsArgs, db: &Database, tuning: ServerTuning) -> Result<()> {
    let mut conn = db.connect()?;
    // `Database::start` applied every migration: step back to just before the stats
    // migration, seed, then let it (and the rest) run as on an upgrade.
    let stats_version = STATS_MIGRATION.replace('-', "");
    loop {
        let applied = conn
            .applied_migrations()
            .map_err(|e| anyhow!("listing applied migrations: {e}"))?;
        match applied.iter().map(|v| v.to_string().replace('-', "")).max() {
            Some(newest) if newest >= stats_version => {
                let reverted = conn
                    .revert_last_migration(MIGRATIONS)
                    .map_err(|e| anyhow!("reverting {newest}: {e}"))?;
                progress(format_args!("reverted migration {reverted}"));
            }
            _ => break,
        }
    }
    progress(format_args!(
        "seeding {} schedules and {} runs",
        args.schedules, args.runs
    ));
    conn.batch_execute(&format!(
        "INSERT INTO schedules (id, name, enabled, timezone, schedule_kind, cron_expr, target_kind,
             target, overlap_policy, misfire_policy, timeout_seconds, max_concurrency,
             retry_max_attempts, retry_strategy, retry_initial_delay_seconds,
             retry_max_delay_seconds, paused_at, created_at, updated_at)
         SELECT 'sch_' || lpad(g::text, 26, '0'), 'bench-' || g, false, 'UTC', 'cron',
             '0 2 * * *', 'workflow', '{{\"kind\":\"workflow\",\"workflow_id\":\"builtin.noop\",\"input\":{{}}}}',
             'forbid', 'run_once_if_late', 300, 1, 0, 'exponential', 30, 900, now(),
             now() - g * interval '1 ms', now()
         FROM generate_series(1, {n}) g;
         INSERT INTO schedule_runs (id, schedule_id, occurrence_key, nominal_time, due_time,
             status, attempt, started_at, finished_at, created_at, updated_at)
         SELECT 'run_' || lpad(g::text, 26, '0'), 'sch_' || lpad((g % {k} + 1)::text, 26, '0'),
             'bench:' || g, now(), now(),
             CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'succeeded' END, 1, now(), now(), now(), now()
         FROM generate_series(1, {runs}) g;
         ANALYZE;",
        n = args.schedules,
        k = args.schedules.clamp(1, 1000),
        runs = args.runs,
    ))
    .context("seeding")?;
    let t0 = Instant::now();
    conn.run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow!("the stats migration: {e}"))?;
    let migrated = t0.elapsed();
    if args.status_only {
        return status_only(args, db, &mut conn, tuning, migrated).await;
    }
    conn.batch_execute(
        "UPDATE schedules SET labels = jsonb_build_object('team', 't' || (substr(id, 5)::bigint % 50),
             'env', CASE WHEN substr(id, 5)::bigint % 3 = 0 THEN 'prod' ELSE 'dev' END); ANALYZE;",
    )
    .context("labelling")?;

    let (server, api, booted) = settled_server(db, tuning, args.schedules).await?;
    let list = format!("/v1/schedules?label_selector={SELECTOR}&limit=50");
    let (status, body) = api.get(&list).await?;
    let matched = body["items"].as_array().map_or(0, Vec::len);
    if status != 200 || matched == 0 {
        return Err(anyhow!("the selector list answered {status}: {body}"));
    }
    let mut rows = Vec::new();
    rows.push(
        measure(
            &api,
            "list ?label_selector=team=t7,env=prod (GIN index)",
            &list,
            args,
        )
        .await?,
    );
    rows.push(measure(&api, "list, no filter", "/v1/schedules?limit=50", args).await?);
    rows.push(measure(&api, "/v1/status (counters)", "/v1/status", args).await?);
    // Before: the same list without the GIN index, and the GROUP BY over the whole
    // ledger that /v1/status ran per request.
    conn.batch_execute("DROP INDEX schedules_labels_idx")?;
    rows.push(
        measure(
            &api,
            "list ?label_selector=… without the index",
            &list,
            args,
        )
        .await?,
    );
    let mut old = Vec::new();
    for _ in 0..20.min(args.requests) {
        let t = Instant::now();
        conn.batch_execute(
            "SELECT status, count(*) FROM schedule_runs GROUP BY status; SELECT count(*) FROM dead_letters;",
        )?;
        old.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let s = Summary::of(old);
    let mut cells = vec![
        "before: the ledger GROUP BY /v1/status ran (SQL only)".to_string(),
        "-".into(),
    ];
    cells.extend(Summary::cells(s));
    rows.push(cells);
    server.stop();
    report::table(
        &format!(
            "Reads: {} schedules, {} runs, {} in flight",
            args.schedules, args.runs, args.concurrency
        ),
        &["request", "req/s", "count", "p50 ms", "p99 ms", "max ms"],
        &rows,
    );
    report::facts(
        "Upgrade",
        &[
            (
                "stats migration over the ledger".into(),
                report::secs(migrated),
            ),
            (
                "server start to every actor started (before measuring)".into(),
                report::secs(booted),
            ),
        ],
    );
    Ok(())
}

/// Starts the server in process and waits until every schedule's actor has started (they
/// load in batches at start-up, which would otherwise share the machine with the first
/// measurement).
async fn settled_server(
    db: &Database,
    tuning: ServerTuning,
    schedules: usize,
) -> Result<(InProcessServer, Api, Duration)> {
    progress(format_args!("starting the server"));
    let server = InProcessServer::start(&db.url, tuning)?;
    let api = Api::new(&server.base)?;
    let t0 = Instant::now();
    loop {
        let (_, status) = api.get("/v1/status").await?;
        let started = status["actors"]["total"].as_u64().unwrap_or(0);
        if started >= schedules as u64 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(900) {
            return Err(anyhow!(
                "only {started} of {schedules} actors started after 900 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((server, api, t0.elapsed()))
}

/// The SQL `/v1/status` ran per request before the running totals (migration
/// `2026-12-06-000007`): both schedule counts and the sums over every stats row.
const OLD_STATUS_SQL: &str = "SELECT count(*) FROM schedules; \
    SELECT count(*) FROM schedules WHERE enabled; \
    SELECT sum(succeeded), sum(failed), sum(dead_lettered), sum(cancelled), sum(skipped) \
    FROM schedule_stats;";

/// `--status-only`: `/v1/status` one at a time and `args.concurrency` in flight, then the
/// SQL it replaced, one at a time on one connection.
async fn status_only(
    args: &ReadsArgs,
    db: &Database,
    conn: &mut diesel::PgConnection,
    tuning: ServerTuning,
    migrated: Duration,
) -> Result<()> {
    conn.batch_execute("ANALYZE")?;
    let (server, api, booted) = settled_server(db, tuning, args.schedules).await?;
    let (status, body) = api.get("/v1/status").await?;
    if status != 200 || body["schedules"]["total"].as_u64() != Some(args.schedules as u64) {
        return Err(anyhow!("/v1/status answered {status}: {body}"));
    }
    let one = ReadsArgs {
        concurrency: 1,
        ..args.clone()
    };
    let rows = vec![
        measure(&api, "/v1/status, 1 in flight", "/v1/status", &one).await?,
        measure(
            &api,
            &format!("/v1/status, {} in flight", args.concurrency),
            "/v1/status",
            args,
        )
        .await?,
    ];
    server.stop();
    let mut old = Vec::new();
    for _ in 0..20.min(args.requests) {
        let t = Instant::now();
        conn.batch_execute(OLD_STATUS_SQL)?;
        old.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut rows = rows;
    let mut cells = vec![
        "before: the counts and sums /v1/status ran (SQL only, 1 in flight)".to_string(),
        "-".into(),
    ];
    cells.extend(Summary::cells(Summary::of(old)));
    rows.push(cells);
    report::table(
        &format!(
            "/v1/status: {} schedules, {} runs",
            args.schedules, args.runs
        ),
        &["request", "req/s", "count", "p50 ms", "p99 ms", "max ms"],
        &rows,
    );
    report::facts(
        "Upgrade",
        &[
            (
                "migrations from the stats one on (counters and totals filled)".into(),
                report::secs(migrated),
            ),
            (
                "server start to every actor started (before measuring)".into(),
                report::secs(booted),
            ),
        ],
    );
    Ok(())
}

/// `args.requests` GETs of `path`, `args.concurrency` in flight: rate and latencies.
async fn measure(api: &Api, label: &str, path: &str, args: &ReadsArgs) -> Result<Vec<String>> {
    progress(format_args!("measuring {label}"));
    let t0 = Instant::now();
    let latencies: Vec<Result<f64>> = stream::iter((0..args.requests).map(|_| async move {
        let t = Instant::now();
        let (status, body) = api.get(path).await?;
        if status != 200 {
            return Err(anyhow!("{path} answered {status}: {body}"));
        }
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    }))
    .buffer_unordered(args.concurrency.max(1))
    .collect()
    .await;
    let elapsed = t0.elapsed().max(Duration::from_micros(1));
    let latencies = latencies.into_iter().collect::<Result<Vec<f64>>>()?;
    let mut row = vec![label.to_string(), report::rate(latencies.len(), elapsed)];
    row.extend(Summary::cells(Summary::of(latencies)));
    Ok(row)
}
