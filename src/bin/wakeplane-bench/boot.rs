//! `boot`: how long a `wakeplane` child takes from process start to serving N schedules
//! with every actor loaded and armed.
//!
//! Rows are inserted with diesel first (as `memory --method insert` does), then the child
//! boots with them; nothing is created over HTTP.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use diesel::prelude::*;
use futures_util::future::join_all;
use serde_json::Value;
use wakeplane::store::schema::schedules;

use crate::env::{proc_sample, progress, Api, ChildServer, Database, ServerTuning};
use crate::memory::{check_total, insert_rows, log_path};
use crate::report;

#[derive(Debug, clap::Args)]
pub struct BootArgs {
    /// How many idle schedules the server boots with.
    #[arg(long, default_value_t = 100_000)]
    pub schedules: usize,
    /// Schedules whose actors are asked for their live view until all answer: the ones
    /// with the greatest ids (started last when batches go in id order) and random others.
    #[arg(long, default_value_t = 64)]
    pub sample: usize,
    /// The server binary to boot (default: `wakeplane` next to this binary), e.g. an
    /// older build to compare with.
    #[arg(long)]
    pub server_binary: Option<PathBuf>,
    /// Give up after this many seconds from spawn.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
}

/// Log lines of a store call that gave up on the database (checkout timeout, outage).
const UNAVAILABLE_MARKERS: [&str; 2] = ["database unavailable", "unreachable"];

pub async fn run(args: &BootArgs, db: &Database, tuning: ServerTuning) -> Result<()> {
    let bin = match &args.server_binary {
        Some(b) => b.clone(),
        None => crate::env::server_binary()?,
    };
    let n = args.schedules;
    progress(format_args!("inserting {n} schedules"));
    let inserted = insert_rows(db, n)?;
    let sample = sample_ids(db, args.sample)?;
    let log = log_path();
    progress(format_args!(
        "booting {} (log: {})",
        bin.display(),
        log.display()
    ));
    let mut child = ChildServer::start_binary(&bin, &db.url, tuning, &log).await?;
    let deadline = child.spawned_at + Duration::from_secs(args.timeout);
    let ready = child.spawned_at.elapsed();
    let api = Api::new(&child.base)?;
    check_total(&api, n).await?;

    let actors_started = loop {
        let (_, body) = api.get("/v1/status").await?;
        if body["actors"]["total"].as_u64() == Some(n as u64) {
            break child.spawned_at.elapsed();
        }
        if Instant::now() > deadline {
            bail!("/v1/status never counted {n} actors: {}", body["actors"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    progress(format_args!(
        "{n} actors started; waiting for sampled actors to load"
    ));

    let mut waiting = sample.clone();
    let api = &api;
    let armed = loop {
        let replies =
            join_all(waiting.iter().map(|id| async move {
                (id.clone(), api.get(&format!("/v1/schedules/{id}")).await)
            }))
            .await;
        waiting = replies
            .into_iter()
            .filter(|(_, reply)| !armed_view(reply))
            .map(|(id, _)| id)
            .collect();
        if waiting.is_empty() {
            break child.spawned_at.elapsed();
        }
        if Instant::now() > deadline {
            bail!(
                "{} sampled actors never showed an armed live view",
                waiting.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sampled = proc_sample(child.pid)?;
    child.stop();
    let gave_up = std::fs::read_to_string(&log)
        .with_context(|| format!("reading {}", log.display()))?
        .lines()
        .filter(|l| UNAVAILABLE_MARKERS.iter().any(|m| l.contains(m)))
        .count();

    report::facts(
        "Results",
        &[
            (
                "schedules".into(),
                format!(
                    "{n} idle (cron `0 0 1 1 *`), inserted with diesel in {} before boot",
                    report::secs(inserted)
                ),
            ),
            ("server binary".into(), bin.display().to_string()),
            ("spawn → /readyz 200".into(), report::secs(ready)),
            (
                format!("spawn → /v1/status actors.total = {n}"),
                report::secs(actors_started),
            ),
            (
                format!(
                    "spawn → all {} sampled actors armed (live view)",
                    sample.len()
                ),
                report::secs(armed),
            ),
            (
                "child CPU by then".into(),
                format!("{:.1} s", sampled.cpu.as_secs_f64()),
            ),
            (
                "VmHWM (peak RSS) by then".into(),
                report::bytes(sampled.hwm_bytes),
            ),
            (
                "log lines: store call gave up (database unavailable)".into(),
                gave_up.to_string(),
            ),
        ],
    );
    Ok(())
}

/// `GET /v1/schedules/{id}` answered with the actor's live view, armed: the actor has read
/// its schedule (an actor still reading answers `"actor": null`).
fn armed_view(reply: &Result<(u16, Value)>) -> bool {
    matches!(reply, Ok((200, body)) if body["actor"]["state"] == "armed")
}

/// The `k / 8` greatest schedule ids and random others, `k` in all.
fn sample_ids(db: &Database, k: usize) -> Result<Vec<String>> {
    let mut conn = db.connect()?;
    let last = (k / 8).max(1) as i64;
    let mut ids: Vec<String> = schedules::table
        .select(schedules::id)
        .order(schedules::id.desc())
        .limit(last)
        .load(&mut conn)
        .context("reading the last schedule ids")?;
    let random: Vec<String> = schedules::table
        .select(schedules::id)
        .order(diesel::dsl::sql::<diesel::sql_types::Double>("random()"))
        .limit(k as i64)
        .load(&mut conn)
        .context("reading random schedule ids")?;
    for id in random {
        if ids.len() >= k {
            break;
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}
