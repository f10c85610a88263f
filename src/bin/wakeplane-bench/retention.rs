//! `retention`: N ended runs, 30 days old, each with one receipt, seeded with SQL; the
//! server starts with `WAKEPLANE_RUN_RETENTION_DAYS` (7 unless `--retention-days`) and
//! this measures how fast it deletes them (polling its own counter).

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use diesel::connection::SimpleConnection;

use crate::env::{progress, Api, Database, InProcessServer, ServerTuning};
use crate::report;
use crate::scrape::Scrape;

#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    /// Old ended runs to seed (each with one receipt).
    #[arg(long, default_value_t = 1_000_000)]
    pub runs: usize,
    /// Longest wait for them all to go, in seconds.
    #[arg(long, default_value_t = 3_600)]
    pub timeout: u64,
}

/// Seeds `n` succeeded runs that ended 30 days ago, spread over 100 paused schedules, with
/// one receipt each (one INSERT … SELECT generate_series per table).
pub fn seed_old_runs(db: &Database, n: usize) -> Result<()> {
    progress(format_args!("seeding {n} old runs with a receipt each"));
    let t0 = Instant::now();
    let mut conn = db.connect()?;
    conn.batch_execute(&format!(
        "INSERT INTO schedules (id, name, enabled, timezone, schedule_kind, cron_expr, target_kind,
             target, overlap_policy, misfire_policy, timeout_seconds, max_concurrency,
             retry_max_attempts, retry_strategy, retry_initial_delay_seconds,
             retry_max_delay_seconds, paused_at, created_at, updated_at)
         SELECT 'sch_old' || lpad(g::text, 23, '0'), 'old-' || g, false, 'UTC', 'cron',
             '0 2 * * *', 'workflow', '{{\"kind\":\"workflow\",\"workflow_id\":\"builtin.noop\",\"input\":{{}}}}',
             'forbid', 'run_once_if_late', 300, 1, 0, 'exponential', 30, 900, now(),
             now() - interval '31 days', now() - interval '31 days'
         FROM generate_series(1, 100) g;
         INSERT INTO schedule_stats (schedule_id, runs_total, succeeded)
         SELECT 'sch_old' || lpad(g::text, 23, '0'), {n} / 100, {n} / 100
         FROM generate_series(1, 100) g;
         INSERT INTO schedule_runs (id, schedule_id, occurrence_key, nominal_time, due_time,
             status, attempt, started_at, finished_at, created_at, updated_at)
         SELECT 'run_old' || lpad(g::text, 23, '0'),
             'sch_old' || lpad((g % 100 + 1)::text, 23, '0'), 'old:' || g,
             now() - interval '30 days', now() - interval '30 days', 'succeeded', 1,
             now() - interval '30 days', now() - interval '30 days',
             now() - interval '30 days' + g * interval '1 ms', now() - interval '30 days'
         FROM generate_series(1, {n}) g;
         INSERT INTO execution_receipts (id, run_id, receipt_kind, content_type, body, created_at)
         SELECT 'rcp_old' || lpad(g::text, 23, '0'), 'run_old' || lpad(g::text, 23, '0'),
             'workflow_result', 'application/json', '{{\"ok\":true}}', now() - interval '30 days'
         FROM generate_series(1, {n}) g;"
    ))
    .context("seeding old runs")?;
    // On its own: several statements sent at once run in one transaction, VACUUM cannot.
    conn.batch_execute("VACUUM ANALYZE")
        .context("vacuuming after the seed")?;
    progress(format_args!(
        "seeded in {:.1} s",
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The server's `runs_retention_deleted_total`.
pub async fn deleted_so_far(api: &Api) -> Result<u64> {
    Scrape::of(api)
        .await?
        .value("runs_retention_deleted_total")
        .map(|v| v as u64)
        .ok_or_else(|| anyhow!("no runs_retention_deleted_total in /v1/metrics"))
}

pub async fn run(args: &RetentionArgs, db: &Database, mut tuning: ServerTuning) -> Result<()> {
    seed_old_runs(db, args.runs)?;
    let days = *tuning.run_retention_days.get_or_insert(7);
    progress(format_args!("starting the server with retention"));
    let t0 = Instant::now();
    let server = InProcessServer::start(&db.url, tuning)?;
    let api = Api::new(&server.base)?;
    let deadline = t0 + Duration::from_secs(args.timeout);
    let mut samples = Vec::new();
    let mut last_report = Instant::now();
    let deleted = loop {
        let deleted = deleted_so_far(&api).await?;
        samples.push((t0.elapsed(), deleted));
        if deleted as usize >= args.runs {
            break deleted;
        }
        if Instant::now() > deadline {
            progress(format_args!("timed out with {deleted} deleted"));
            break deleted;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            progress(format_args!("{deleted} deleted so far"));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took = samples.last().map(|s| s.0).unwrap_or_default();
    server.stop();
    report::facts(
        &format!("Retention over {} old runs (one receipt each)", args.runs),
        &[
            ("WAKEPLANE_RUN_RETENTION_DAYS".into(), days.to_string()),
            ("runs deleted".into(), deleted.to_string()),
            ("time from server start".into(), report::secs(took)),
            (
                "delete rate (runs/s, receipts alike)".into(),
                report::rate(deleted as usize, took),
            ),
        ],
    );
    Ok(())
}
