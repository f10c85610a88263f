//! `throughput`: N manual triggers; how fast do they become durable, succeeded runs?

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use wakeplane::store::schema::schedule_runs;

use crate::env::{progress, Api, Database, InProcessServer, ServerTuning};
use crate::report::{self, Summary};
use crate::sink::{Sink, TargetKind};

#[derive(Debug, clap::Args)]
pub struct ThroughputArgs {
    /// Manual triggers to send.
    #[arg(long, default_value_t = 5000)]
    pub runs: usize,
    /// Trigger requests in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Schedules to spread the triggers over, round robin (claims serialise on each
    /// schedule's row lock).
    #[arg(long, default_value_t = 1)]
    pub schedules: usize,
    /// Longest wait for every run to succeed, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// What the schedules run.
    #[arg(long, value_enum, default_value = "noop")]
    pub target: TargetKind,
}

/// status, created_at, started_at, finished_at of one run.
type RunTimes = (
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// The highest `policy.max_concurrency` validation accepts (src/domain/validation.rs).
const MAX_CONCURRENCY: i64 = 10_000;

fn manual_runs() -> schedule_runs::BoxedQuery<'static, diesel::pg::Pg> {
    schedule_runs::table
        .filter(schedule_runs::occurrence_key.like("manual:%"))
        .into_boxed()
}

pub async fn run(args: &ThroughputArgs, db: &Database, tuning: ServerTuning) -> Result<()> {
    let n = args.runs;
    let k = args.schedules.max(1);
    let sink = Sink::start(args.target)?;
    let server = InProcessServer::start(&db.url, tuning)?;
    let api = Api::new(&server.base)?;
    let (ids, _) = api
        .create_schedules(k, 8, |i| {
            json!({
                "name": format!("tp-{i}"),
                "timezone": "UTC",
                // Never fires during the benchmark: only manual runs.
                "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
                "target": sink.target(),
                "policy": {"overlap": "allow", "max_concurrency": MAX_CONCURRENCY},
            })
        })
        .await?;

    progress(format_args!(
        "triggering {n} runs over {k} schedule(s), {} in flight",
        args.concurrency
    ));
    let mut conn = db.connect()?;
    let t0 = Instant::now();
    let mut replies = stream::iter((0..n).map(|i| {
        let path = format!("/v1/schedules/{}/trigger", ids[i % k]);
        let api = &api;
        async move {
            api.post(&path, &json!({"reason": format!("bench {i}")}))
                .await
        }
    }))
    .buffer_unordered(args.concurrency.max(1));
    let mut refused = 0usize;
    let mut first_refusal = None;
    while let Some(reply) = replies.next().await {
        let (status, body) = reply?;
        if status != 200 {
            refused += 1;
            first_refusal.get_or_insert(format!("{status}: {body}"));
        }
    }
    let accepted_in = t0.elapsed();
    let accepted = n - refused;
    if accepted == 0 {
        bail!(
            "every trigger was refused; first: {}",
            first_refusal.unwrap_or_default()
        );
    }
    let done_at_accept = count(&mut conn, &["succeeded"])?;

    let deadline = t0 + Duration::from_secs(args.timeout);
    let mut last_report = Instant::now();
    let all_done = loop {
        let finished = count(&mut conn, &["succeeded", "failed", "dead_lettered"])?;
        if finished >= accepted as i64 {
            break t0.elapsed();
        }
        if Instant::now() > deadline {
            server.stop();
            bail!(
                "only {finished} of {accepted} runs finished within {} s",
                args.timeout
            );
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            progress(format_args!(
                "{finished}/{accepted} finished after {:.0} s",
                t0.elapsed().as_secs_f64()
            ));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let claims = crate::scrape::claim_profile(&api).await?;
    server.stop();

    let rows: Vec<RunTimes> = manual_runs()
        .select((
            schedule_runs::status,
            schedule_runs::created_at,
            schedule_runs::started_at,
            schedule_runs::finished_at,
        ))
        .load(&mut conn)
        .context("reading the runs")?;
    let succeeded = rows.iter().filter(|r| r.0 == "succeeded").count();
    let ms = |a: DateTime<Utc>, b: DateTime<Utc>| {
        (b - a).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
    };
    let to_start = Summary::of(
        rows.iter()
            .filter_map(|r| r.2.map(|s| ms(r.1, s)))
            .collect(),
    );
    let to_finish = Summary::of(
        rows.iter()
            .filter_map(|r| r.3.map(|f| ms(r.1, f)))
            .collect(),
    );
    let first_created = rows.iter().map(|r| r.1).min();
    let last_finished = rows.iter().filter_map(|r| r.3).max();
    let db_span = match (first_created, last_finished) {
        (Some(a), Some(b)) => (b - a)
            .to_std()
            .map_err(|_| anyhow!("clock went backwards"))?,
        _ => Duration::ZERO,
    };

    report::facts(
        "Results",
        &[
            (
                "set-up".into(),
                format!(
                    "{n} manual triggers over {k} schedule(s) ({}, overlap allow, \
                     max_concurrency {MAX_CONCURRENCY}), {} in flight",
                    sink.describe(),
                    args.concurrency
                ),
            ),
            (
                "trigger accept".into(),
                format!(
                    "{accepted} accepted ({refused} refused) in {} = {}",
                    report::secs(accepted_in),
                    report::rate(accepted, accepted_in)
                ),
            ),
            (
                "succeeded when the last trigger returned".into(),
                done_at_accept.to_string(),
            ),
            (
                "durable runs end to end".into(),
                format!(
                    "{succeeded} succeeded in {} = {} (first trigger sent .. all succeeded)",
                    report::secs(all_done),
                    report::rate(succeeded, all_done)
                ),
            ),
            (
                "same, from the database clock".into(),
                format!(
                    "{} (first created_at .. last finished_at = {})",
                    report::rate(succeeded, db_span),
                    report::secs(db_span)
                ),
            ),
            claims,
        ]
        .into_iter()
        .chain(sink.witness(succeeded))
        .collect::<Vec<_>>(),
    );
    let mut table = Vec::new();
    for (label, s) in [
        ("created_at -> started_at", to_start),
        ("created_at -> finished_at", to_finish),
    ] {
        let mut row = vec![label.to_string()];
        row.extend(Summary::cells(s));
        table.push(row);
    }
    report::table(
        "Per-run latency (ms)",
        &["", "count", "p50", "p99", "max"],
        &table,
    );
    if let Some(r) = first_refusal {
        println!("\nfirst refused trigger: {r}");
    }
    Ok(())
}

fn count(conn: &mut PgConnection, statuses: &[&str]) -> Result<i64> {
    manual_runs()
        .filter(
            schedule_runs::status
                .eq_any(statuses.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        )
        .count()
        .get_result(conn)
        .context("counting runs")
}
