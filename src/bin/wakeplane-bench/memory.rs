//! `memory`: RSS of a `wakeplane` child process holding N idle schedule actors.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use diesel::prelude::*;
use serde_json::{json, Value};
use wakeplane::domain::ids;
use wakeplane::domain::validation::{parse_schedule, ScheduleBody, ValidationContext};
use wakeplane::store::schedules::ScheduleRecord;
use wakeplane::store::schema::schedules;

use crate::env::{
    proc_sample, progress, wait_until_settled, Api, ChildServer, Database, ServerTuning, Settled,
};
use crate::report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// POST /v1/schedules to the running child (actors start as schedules are created).
    Http,
    /// Insert rows with diesel, then boot the child (actors start at boot).
    Insert,
}

#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    /// How many idle schedules.
    #[arg(long)]
    pub schedules: usize,
    /// How the schedules get there (default: http up to 20,000, insert above).
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// Create requests in flight (http method).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

/// A cron far in the future: the actors stay idle.
const IDLE_CRON: &str = "0 0 1 1 *";
/// Rows per INSERT (26 columns each; PostgreSQL allows 65,535 parameters).
const BATCH: usize = 1000;

fn body(i: usize) -> Value {
    json!({
        "name": format!("idle-{i}"),
        "timezone": "UTC",
        "schedule": {"kind": "cron", "expr": IDLE_CRON},
        "target": {"kind": "workflow", "workflow_id": "builtin.noop"},
    })
}

pub async fn run(args: &MemoryArgs, db: &Database, tuning: ServerTuning) -> Result<()> {
    crate::env::server_binary()?;
    let n = args.schedules;
    let method = args.method.unwrap_or(if n <= 20_000 {
        Method::Http
    } else {
        Method::Insert
    });
    let log = log_path();
    progress(format_args!("child server log: {}", log.display()));

    // Baseline: a server with an empty database, settled.
    let mut child = ChildServer::start(&db.url, tuning, &log).await?;
    let before =
        wait_until_settled(child.pid, Duration::from_secs(3), Duration::from_secs(60)).await?;
    if !before.settled {
        progress(format_args!(
            "the empty server's RSS never settled; using its last sample"
        ));
    }

    let (after, boot_note) = match method {
        Method::Http => {
            let api = Api::new(&child.base)?;
            let cpu0 = proc_sample(child.pid)?.cpu;
            let (_, took) = api.create_schedules(n, args.concurrency, body).await?;
            check_total(&api, n).await?;
            let after =
                wait_until_settled(child.pid, Duration::from_secs(2), Duration::from_secs(300))
                    .await?;
            let note = format!(
                "{n} created over HTTP in {} ({}); child CPU {:.1} s from first create to settled",
                report::secs(took),
                report::rate(n, took),
                after.sample.cpu.saturating_sub(cpu0).as_secs_f64()
            );
            (after, note)
        }
        Method::Insert => {
            child.stop();
            let took = insert_rows(db, n)?;
            let mut booted = ChildServer::start(&db.url, tuning, &log).await?;
            let ready = booted.spawned_at.elapsed();
            let api = Api::new(&booted.base)?;
            check_total(&api, n).await?;
            let waiting_from = booted.spawned_at.elapsed();
            let after =
                wait_until_settled(booted.pid, Duration::from_secs(2), Duration::from_secs(300))
                    .await?;
            let note = format!(
                "{n} rows inserted with diesel in {} ({}); boot with them: ready in {}, \
                 RSS settled ≈{} after spawn, child CPU {:.1} s by then",
                report::secs(took),
                report::rate(n, took),
                report::secs(ready),
                report::secs(waiting_from + after.after),
                after.sample.cpu.as_secs_f64()
            );
            booted.stop();
            (after, note)
        }
    };
    child.stop();
    if !after.settled {
        progress(format_args!(
            "the loaded server's RSS never settled; using its last sample"
        ));
    }
    print_results(n, method, before, after, &boot_note);
    Ok(())
}

pub fn log_path() -> PathBuf {
    std::env::temp_dir().join(format!("wakeplane-bench-{}.log", std::process::id()))
}

/// `GET /v1/status` must count `n` schedules.
pub async fn check_total(api: &Api, n: usize) -> Result<()> {
    let (status, body) = api.get("/v1/status").await?;
    let total = body["schedules"]["total"].as_u64();
    if status != 200 || total != Some(n as u64) {
        bail!("/v1/status answered {status} with schedules.total {total:?}, expected {n}");
    }
    Ok(())
}

/// Inserts `n` idle schedules exactly as `POST /v1/schedules` would store them.
pub fn insert_rows(db: &Database, n: usize) -> Result<Duration> {
    let started = Instant::now();
    let mut conn = db.connect()?;
    let now = wakeplane::store::now();
    let ctx = ValidationContext {
        now,
        default_anchor: now,
    };
    let parsed: ScheduleBody =
        serde_json::from_value(body(0)).context("building the schedule body")?;
    let spec = parse_schedule(&parsed, &ctx)
        .map_err(|e| anyhow!("the idle schedule body does not validate: {e:?}"))?;
    let mut done = 0;
    while done < n {
        let rows: Vec<_> = (done..n.min(done + BATCH))
            .map(|i| {
                let mut spec = spec.clone();
                spec.name = format!("idle-{i}");
                ScheduleRecord::create(ids::schedule_id(), spec, now).to_row()
            })
            .collect();
        diesel::insert_into(schedules::table)
            .values(&rows)
            .execute(&mut conn)
            .context("inserting schedules")?;
        done += rows.len();
        if done % 20_000 == 0 && done < n {
            progress(format_args!("inserted {done}/{n} schedules"));
        }
    }
    Ok(started.elapsed())
}

fn print_results(n: usize, method: Method, before: Settled, after: Settled, note: &str) {
    let cpu_before = before.cpu_share;
    let cpu_after = after.cpu_share;
    let (before, after) = (before.sample, after.sample);
    let delta = after.rss_bytes.saturating_sub(before.rss_bytes);
    report::facts(
        "Results",
        &[
            (
                "method".into(),
                match method {
                    Method::Http => "http: created over HTTP against the running child".into(),
                    Method::Insert => {
                        "insert: rows inserted with diesel, then the child booted with them"
                            .to_string()
                    }
                },
            ),
            ("load".into(), note.to_string()),
            (
                "VmRSS before (empty database, idle)".into(),
                report::bytes(before.rss_bytes),
            ),
            (
                format!("VmRSS after ({n} idle schedules)"),
                report::bytes(after.rss_bytes),
            ),
            ("VmHWM (peak) after".into(), report::bytes(after.hwm_bytes)),
            ("delta".into(), report::bytes(delta)),
            (
                "CPU while settled (share of one core)".into(),
                format!(
                    "{:.1}% empty, {:.1}% with {n} schedules",
                    cpu_before * 100.0,
                    cpu_after * 100.0
                ),
            ),
            (
                "bytes per idle schedule actor".into(),
                format!("{:.0}", delta as f64 / n.max(1) as f64),
            ),
        ],
    );
}
