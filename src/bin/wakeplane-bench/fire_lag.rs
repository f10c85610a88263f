//! `fire-lag`: N schedules fire on their own; how late do their runs start?

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use diesel::prelude::*;
use serde_json::json;
use wakeplane::domain::ids::format_instant;
use wakeplane::store::schema::{schedule_runs, schedules};

use crate::env::{progress, Api, Database, InProcessServer, ServerTuning};
use crate::report::{self, Summary};
use crate::sink::{Sink, TargetKind};

#[derive(Debug, clap::Args)]
pub struct FireLagArgs {
    /// How many schedules.
    #[arg(long)]
    pub schedules: usize,
    /// Interval cadence: fire every S seconds (the default, with S = 1).
    #[arg(long, conflicts_with = "cron")]
    pub every_seconds: Option<i64>,
    /// Cron cadence `* * * * *` instead of an interval.
    #[arg(long)]
    pub cron: bool,
    /// Interval schedules only: stagger their anchors evenly over one period, the steady
    /// load of many independent schedules, instead of all firing in the same instant.
    #[arg(long, conflicts_with = "cron")]
    pub spread: bool,
    /// Measurement window in seconds (default 70 for cron, 30 for intervals).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Seconds from the start of creation to the first fire (`start_at`), so creation is not
    /// slowed by firing. Default: 10 + 4 ms per schedule.
    #[arg(long)]
    pub start_delay: Option<u64>,
    /// Create requests in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seed this many ended runs (30 days old, one receipt each) before the server starts,
    /// e.g. with `--retention-days 7` to measure fire lag while retention deletes them.
    #[arg(long, default_value_t = 0)]
    pub old_runs: usize,
    /// Longest wait for the window's runs to finish after it closes, in seconds.
    #[arg(long, default_value_t = 120)]
    pub drain_timeout: u64,
    /// What the schedules run.
    #[arg(long, value_enum, default_value = "noop")]
    pub target: TargetKind,
}

/// One run of the window, as read back.
struct Row {
    status: String,
    nominal: DateTime<Utc>,
    created: DateTime<Utc>,
    started: Option<DateTime<Utc>>,
    finished: Option<DateTime<Utc>>,
}

fn ms_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

pub async fn run(args: &FireLagArgs, db: &Database, tuning: ServerTuning) -> Result<()> {
    let n = args.schedules;
    let every_seconds = args.every_seconds.unwrap_or(1);
    let window = Duration::from_secs(args.duration.unwrap_or(if args.cron { 70 } else { 30 }));
    let delay = Duration::from_secs(
        args.start_delay
            .unwrap_or(10 + (n as u64 * 4).div_ceil(1000)),
    );
    if args.old_runs > 0 {
        crate::retention::seed_old_runs(db, args.old_runs)?;
    }
    let sink = Sink::start(args.target)?;
    let server = InProcessServer::start(&db.url, tuning)?;
    let api = Api::new(&server.base)?;

    // Whole seconds, so interval occurrences (anchored at creation, truncated) line up.
    let start_at =
        (Utc::now() + TimeDelta::from_std(delay)?).duration_trunc(TimeDelta::seconds(1))?;
    let end_at = start_at + TimeDelta::from_std(window)? - TimeDelta::milliseconds(1);
    progress(format_args!(
        "creating {n} schedules; they fire from {} to {}",
        format_instant(start_at),
        format_instant(end_at)
    ));
    let (_, creation) = api
        .create_schedules(n, args.concurrency, |i| {
            let cadence = if args.cron {
                json!({"kind": "cron", "expr": "* * * * *"})
            } else if args.spread {
                // i-th of n evenly spaced offsets within one period, from start_at.
                let offset_ms = (i as i64) * every_seconds * 1000 / (n.max(1) as i64);
                json!({"kind": "interval", "every_seconds": every_seconds,
                       "anchor_at": format_instant(start_at + TimeDelta::milliseconds(offset_ms))})
            } else {
                json!({"kind": "interval", "every_seconds": every_seconds})
            };
            json!({
                "name": format!("lag-{i}"),
                "timezone": "UTC",
                "schedule": cadence,
                "target": sink.target(),
                "policy": {"overlap": "allow"},
                "start_at": format_instant(start_at),
                "end_at": format_instant(end_at),
            })
        })
        .await?;
    let created_at = Utc::now();
    let window_start = start_at.max(created_at);
    if created_at > start_at {
        progress(format_args!(
            "creation overran start_at by {:.1} s: the window starts when creation ended \
             (raise --start-delay)",
            ms_between(start_at, created_at) / 1000.0
        ));
    } else {
        progress(format_args!(
            "created in {:.1} s; waiting {:.1} s for the window",
            creation.as_secs_f64(),
            ms_between(created_at, start_at) / 1000.0
        ));
    }

    let wait = (end_at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    let drained = drain(db, window_start, end_at, args.drain_timeout).await?;
    if args.old_runs > 0 {
        let deleted = crate::retention::deleted_so_far(&api).await?;
        progress(format_args!(
            "retention deleted {deleted} of {} old runs by the end of the window",
            args.old_runs
        ));
    }
    let claims = crate::scrape::claim_profile(&api).await?;
    server.stop();

    let mut conn = db.connect()?;
    let rows: Vec<Row> = schedule_runs::table
        .filter(schedule_runs::nominal_time.ge(window_start))
        .filter(schedule_runs::nominal_time.le(end_at))
        .filter(schedule_runs::occurrence_key.not_like("manual:%"))
        .select((
            schedule_runs::status,
            schedule_runs::nominal_time,
            schedule_runs::created_at,
            schedule_runs::started_at,
            schedule_runs::finished_at,
        ))
        .load::<(
            String,
            DateTime<Utc>,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        )>(&mut conn)
        .context("reading the window's runs")?
        .into_iter()
        .map(|(status, nominal, created, started, finished)| Row {
            status,
            nominal,
            created,
            started,
            finished,
        })
        .collect();

    let expected = expected_occurrences(args, n, window_start, end_at);
    let ok: Vec<&Row> = rows.iter().filter(|r| r.status == "succeeded").collect();
    let lag =
        |f: &dyn Fn(&Row) -> Option<f64>| Summary::of(ok.iter().filter_map(|r| f(r)).collect());
    let materialise = lag(&|r| Some(ms_between(r.nominal, r.created)));
    let to_start = lag(&|r| r.started.map(|s| ms_between(r.created, s)));
    let fire = lag(&|r| r.started.map(|s| ms_between(r.nominal, s)));
    let finish = lag(&|r| r.finished.map(|f| ms_between(r.nominal, f)));

    let cadence_text = if args.cron {
        "cron `* * * * *`".to_string()
    } else {
        format!(
            "every {} s{}",
            args.every_seconds.unwrap_or(1),
            if args.spread {
                ", anchors spread evenly over the period"
            } else {
                ", all in phase"
            }
        )
    };
    report::facts(
        "Set-up",
        &[
            (
                "schedules".into(),
                format!("{n} ({cadence_text}, {}, overlap allow)", sink.describe()),
            ),
            (
                "creation".into(),
                format!(
                    "{} for {n} over HTTP, {} in flight = {}",
                    report::secs(creation),
                    args.concurrency,
                    report::rate(n, creation)
                ),
            ),
            (
                "window".into(),
                format!(
                    "{} .. {} ({:.1} s)",
                    format_instant(window_start),
                    format_instant(end_at),
                    ms_between(window_start, end_at) / 1000.0
                ),
            ),
            (
                "occurrences".into(),
                format!(
                    "{} materialised of {expected} expected; {} succeeded{}",
                    rows.len(),
                    ok.len(),
                    if drained {
                        ""
                    } else {
                        " (drain timed out: backlog left)"
                    }
                ),
            ),
            ("by status".into(), status_counts(&rows)),
            claims,
        ]
        .into_iter()
        .chain(sink.witness(ok.len()))
        .collect::<Vec<_>>(),
    );
    let mut table = Vec::new();
    for (label, s) in [
        ("fire lag: started_at - nominal_time", fire),
        ("  materialisation: created_at - nominal_time", materialise),
        ("  dispatch+claim+start: started_at - created_at", to_start),
        ("finished_at - nominal_time", finish),
    ] {
        let mut row = vec![label.to_string()];
        row.extend(Summary::cells(s));
        table.push(row);
    }
    report::table(
        "Lag of succeeded scheduled runs (ms)",
        &["", "count", "p50", "p99", "max"],
        &table,
    );
    over_time(&ok, window_start);
    Ok(())
}

/// How many occurrences the window should hold if nothing is skipped.
fn expected_occurrences(
    args: &FireLagArgs,
    n: usize,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> usize {
    let step = if args.cron {
        60
    } else {
        args.every_seconds.unwrap_or(1).max(1)
    };
    // Occurrences of interval schedules sit on whole seconds (anchor truncated) and, for
    // S > 1, on a per-schedule phase; count multiples of `step` in the window.
    let a = from.timestamp() + i64::from(from.timestamp_subsec_nanos() > 0);
    let b = to.timestamp();
    if b < a {
        return 0;
    }
    let per = if args.cron {
        (b.div_euclid(step) - (a - 1).div_euclid(step)) as usize
    } else {
        ((b - a + 1) / step) as usize
    };
    per * n
}

/// Waits until every schedule has materialised the window and its runs have ended.
async fn drain(
    db: &Database,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    timeout: u64,
) -> Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut conn = db.connect()?;
    loop {
        let behind: i64 = schedules::table
            .filter(schedules::next_run_at.le(to))
            .count()
            .get_result(&mut conn)?;
        let open: i64 = schedule_runs::table
            .filter(schedule_runs::nominal_time.ge(from))
            .filter(schedule_runs::nominal_time.le(to))
            .filter(schedule_runs::status.eq_any([
                "pending",
                "claimed",
                "running",
                "retry_scheduled",
            ]))
            .count()
            .get_result(&mut conn)?;
        if behind == 0 && open == 0 {
            return Ok(true);
        }
        if Instant::now() > deadline {
            progress(format_args!(
                "drain timed out: {behind} schedules not yet materialised, {open} runs unfinished"
            ));
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn status_counts(rows: &[Row]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in rows {
        *counts.entry(r.status.as_str()).or_default() += 1;
    }
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(s, c)| format!("{s} {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fire lag by nominal time in 10-second buckets: a growing lag means a backlog.
fn over_time(ok: &[&Row], from: DateTime<Utc>) {
    let mut buckets: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for r in ok {
        if let Some(s) = r.started {
            let b = (r.nominal - from).num_seconds().div_euclid(10);
            buckets.entry(b).or_default().push(ms_between(r.nominal, s));
        }
    }
    let rows: Vec<Vec<String>> = buckets
        .into_iter()
        .map(|(b, v)| {
            let mut row = vec![format!("+{}..{} s", b * 10, b * 10 + 10)];
            row.extend(Summary::cells(Summary::of(v)));
            row
        })
        .collect();
    report::table(
        "Fire lag by nominal time (ms)",
        &["window offset", "count", "p50", "p99", "max"],
        &rows,
    );
}
