//! `crud`: creates per second with C concurrent clients, `GET /v1/schedules/{id}` per
//! second and its latency with R concurrent readers, and deletes per second, over HTTP
//! against the in-process server (idle schedules: a daily cron, so nothing fires).

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use futures_util::stream::{self, StreamExt};
use serde_json::json;

use crate::env::{progress, Api, CpuSplit, Database, InProcessServer, ServerTuning};
use crate::report::{self, Summary};

#[derive(Debug, clap::Args)]
pub struct CrudArgs {
    /// Schedules created (then read, then deleted).
    #[arg(long, default_value_t = 5_000)]
    pub schedules: usize,
    /// Creates and deletes in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// GETs of one schedule by id.
    #[arg(long, default_value_t = 20_000)]
    pub reads: usize,
    /// GETs in flight.
    #[arg(long, default_value_t = 32)]
    pub readers: usize,
}

pub async fn run(args: &CrudArgs, db: &Database, tuning: ServerTuning) -> Result<()> {
    progress(format_args!("starting the server"));
    let server = InProcessServer::start(&db.url, tuning)?;
    let api = Api::new(&server.base)?;
    let n = args.schedules.max(1);

    progress(format_args!(
        "creating {n} schedules, {} in flight",
        args.concurrency
    ));
    let cpu0 = CpuSplit::sample(db);
    let t0 = Instant::now();
    let created: Vec<Result<(String, f64)>> = stream::iter((0..n).map(|i| {
        let api = &api;
        async move {
            let body = json!({
                "name": format!("crud-{i}"),
                "timezone": "UTC",
                "schedule": {"kind": "cron", "expr": "0 2 * * *"},
                "target": {"kind": "workflow", "workflow_id": "builtin.noop", "input": {}},
            });
            let t = Instant::now();
            let (status, body) = api.post("/v1/schedules", &body).await?;
            if status != 201 {
                return Err(anyhow!("create answered {status}: {body}"));
            }
            let id = body["id"]
                .as_str()
                .ok_or_else(|| anyhow!("create reply has no id: {body}"))?
                .to_string();
            Ok((id, t.elapsed().as_secs_f64() * 1000.0))
        }
    }))
    .buffer_unordered(args.concurrency.max(1))
    .collect()
    .await;
    let create_time = t0.elapsed();
    let cpu1 = CpuSplit::sample(db);
    let created = created.into_iter().collect::<Result<Vec<_>>>()?;
    let ids: Vec<String> = created.iter().map(|(id, _)| id.clone()).collect();
    let mut rows = vec![row(
        &format!("POST /v1/schedules ({} in flight)", args.concurrency),
        created.iter().map(|(_, ms)| *ms).collect(),
        create_time,
    )];

    progress(format_args!(
        "reading {} times by id, {} in flight",
        args.reads, args.readers
    ));
    let t0 = Instant::now();
    let reads: Vec<Result<f64>> = stream::iter((0..args.reads).map(|i| {
        let (api, id) = (&api, &ids[(i * 7919) % ids.len()]);
        async move {
            let t = Instant::now();
            let (status, body) = api.get(&format!("/v1/schedules/{id}")).await?;
            if status != 200 {
                return Err(anyhow!("GET answered {status}: {body}"));
            }
            Ok(t.elapsed().as_secs_f64() * 1000.0)
        }
    }))
    .buffer_unordered(args.readers.max(1))
    .collect()
    .await;
    let read_time = t0.elapsed();
    let cpu2 = CpuSplit::sample(db);
    rows.push(row(
        &format!("GET /v1/schedules/{{id}} ({} in flight)", args.readers),
        reads.into_iter().collect::<Result<Vec<_>>>()?,
        read_time,
    ));

    progress(format_args!(
        "deleting {n} schedules, {} in flight",
        args.concurrency
    ));
    let t0 = Instant::now();
    let deletes: Vec<Result<f64>> = stream::iter(ids.iter().map(|id| {
        let api = &api;
        async move {
            let t = Instant::now();
            let status = api.delete(&format!("/v1/schedules/{id}")).await?;
            if !(200..300).contains(&status) {
                return Err(anyhow!("DELETE {id} answered {status}"));
            }
            Ok(t.elapsed().as_secs_f64() * 1000.0)
        }
    }))
    .buffer_unordered(args.concurrency.max(1))
    .collect()
    .await;
    let delete_time = t0.elapsed();
    let cpu3 = CpuSplit::sample(db);
    rows.push(row(
        &format!(
            "DELETE /v1/schedules/{{id}} ({} in flight)",
            args.concurrency
        ),
        deletes.into_iter().collect::<Result<Vec<_>>>()?,
        delete_time,
    ));
    server.stop();
    report::table(
        &format!("Creates, reads by id, deletes: {n} schedules"),
        &["request", "req/s", "count", "p50 ms", "p99 ms", "max ms"],
        &rows,
    );
    report::facts("CPU per create", &cpu1.per_request(&cpu0, n));
    report::facts("CPU per read", &cpu2.per_request(&cpu1, args.reads));
    report::facts("CPU per delete", &cpu3.per_request(&cpu2, n));
    Ok(())
}

fn row(label: &str, latencies: Vec<f64>, elapsed: Duration) -> Vec<String> {
    let mut row = vec![
        label.to_string(),
        report::rate(latencies.len(), elapsed.max(Duration::from_micros(1))),
    ];
    row.extend(Summary::cells(Summary::of(latencies)));
    row
}
