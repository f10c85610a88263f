//! `cluster`: `wakeplane` children (three by default) on one database. Measures how long a
//! command sent to a node that does not own the schedule takes to reach the owner's actor
//! (pause and resume, seen in the owner's `actor.state`), each node's RSS and, with
//! `--fire-for`, its timers' fire lag, and how long the survivors take to own every
//! schedule after one node is SIGKILLed.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::env::{proc_sample, progress, server_binary, Api, ChildServer, Database, ServerTuning};
use crate::memory::log_path;
use crate::report::{self, Summary};

#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Hourly schedules shared by the three nodes.
    #[arg(long, default_value_t = 3000)]
    pub schedules: usize,
    /// Commands sent to a non-owner (alternately pause and resume).
    #[arg(long, default_value_t = 200)]
    pub commands: usize,
    /// The nodes' WAKEPLANE_NODE_TTL_SECONDS.
    #[arg(long, default_value_t = 10)]
    pub node_ttl: u64,
    /// How many nodes (1–5); commands and the hand-over need at least two.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nodes: u8,
    /// The schedules' interval (3600: idle; e.g. 10 to measure fire lag).
    #[arg(long, default_value_t = 3600)]
    pub every_seconds: u64,
    /// Let the timers fire this many seconds, then print each node's fire lag.
    #[arg(long, default_value_t = 0)]
    pub fire_for: u64,
}

const WORKERS: [&str; 5] = ["wrk_a", "wrk_b", "wrk_c", "wrk_d", "wrk_e"];

/// How often the owner's view is read while waiting for a command to arrive.
const WATCH_EVERY: Duration = Duration::from_micros(500);

pub async fn run(args: &ClusterArgs, db: &Database, tuning: ServerTuning) -> Result<()> {
    let bin = server_binary()?;
    let log = log_path();
    let ttl = args.node_ttl.to_string();
    let env = [("WAKEPLANE_NODE_TTL_SECONDS", ttl.as_str())];
    let mut nodes = Vec::new();
    for worker in &WORKERS[..usize::from(args.nodes)] {
        progress(format_args!("starting {worker} (log: {})", log.display()));
        nodes.push(ChildServer::start_node(&bin, &db.url, tuning, &log, worker, &env).await?);
    }
    let apis: Vec<Api> = nodes
        .iter()
        .map(|n| Api::new(&n.base))
        .collect::<Result<_>>()?;
    let n = args.schedules;
    let every = args.every_seconds;
    progress(format_args!("creating {n} schedules"));
    let (ids, _) = apis[0]
        .create_schedules(n, 16, |i| {
            json!({"name": format!("cluster-{i}"), "timezone": "UTC",
                   "schedule": {"kind": "interval", "every_seconds": every},
                   "target": {"kind": "workflow", "workflow_id": "builtin.noop"}})
        })
        .await?;
    let shares = wait_for_total(&apis, n, Duration::from_secs(120)).await?;
    progress(format_args!("shares {shares:?}"));

    if args.fire_for > 0 {
        progress(format_args!(
            "letting the timers fire for {} s",
            args.fire_for
        ));
        tokio::time::sleep(Duration::from_secs(args.fire_for)).await;
        let mut rows = Vec::new();
        for (i, api) in apis.iter().enumerate() {
            let (_, s) = api.get("/v1/status").await?;
            let lag = &s["actors"]["fire_lag_ms"];
            let cell = |k: &str| lag[k].as_f64().map_or("-".into(), report::ms);
            rows.push(vec![
                WORKERS[i].to_string(),
                shares[i].to_string(),
                cell("p50"),
                cell("p99"),
                cell("max"),
            ]);
        }
        report::table(
            &format!(
                "Fire lag per node (last 4,096 fires; {n} schedules every {every} s, {} node(s))",
                args.nodes
            ),
            &["node", "actors", "p50 ms", "p99 ms", "max ms"],
            &rows,
        );
    }
    if apis.len() < 2 {
        let sample = proc_sample(nodes[0].pid)?;
        report::table(
            "Per node",
            &["node", "actors", "RSS"],
            &[vec![
                WORKERS[0].into(),
                shares[0].to_string(),
                report::bytes(sample.rss_bytes),
            ]],
        );
        for mut node in nodes {
            node.stop();
        }
        return Ok(());
    }
    // Commands to a non-owner: time from sending until the owner's actor shows the effect,
    // and from the answer until then.
    let mut sent_to_effect = Vec::new();
    let mut answer_to_effect = Vec::new();
    let mut answer = Vec::new();
    for k in 0..args.commands {
        let id = &ids[(k / 2) % ids.len()];
        let owner = owner_of(&apis, id).await?;
        let other = &apis[(owner + 1) % apis.len()];
        let (path, state) = if k % 2 == 0 {
            (format!("/v1/schedules/{id}/pause"), "paused")
        } else {
            (format!("/v1/schedules/{id}/resume"), "armed")
        };
        let sent = Instant::now();
        let (status, body) = other.post(&path, &json!({})).await?;
        let answered = Instant::now();
        if status != 200 {
            bail!("{path} answered {status}: {body}");
        }
        let view = format!("/v1/schedules/{id}");
        loop {
            let (_, v) = apis[owner].get(&view).await?;
            if v["actor"]["state"] == state {
                break;
            }
            if sent.elapsed() > Duration::from_secs(10) {
                bail!(
                    "{id}: the owner's actor never became {state}: {}",
                    v["actor"]
                );
            }
            tokio::time::sleep(WATCH_EVERY).await;
        }
        let seen = Instant::now();
        sent_to_effect.push((seen - sent).as_secs_f64() * 1000.0);
        answer_to_effect.push((seen - answered).as_secs_f64() * 1000.0);
        answer.push((answered - sent).as_secs_f64() * 1000.0);
    }
    report::table(
        &format!(
            "Commands sent to a non-owner ({} pause/resume, {} nodes, {n} schedules)",
            args.commands, args.nodes
        ),
        &["ms", "count", "p50", "p99", "max"],
        &[
            row("sent → owner's actor acted", sent_to_effect),
            row("answer → owner's actor acted", answer_to_effect),
            row("sent → answer", answer),
        ],
    );

    let mut rss_rows = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let sample = proc_sample(node.pid)?;
        rss_rows.push(vec![
            WORKERS[i].to_string(),
            shares[i].to_string(),
            report::bytes(sample.rss_bytes),
        ]);
    }
    report::table("Per node", &["node", "actors", "RSS"], &rss_rows);

    // SIGKILL the node owning the most; wait for the survivors to own everything.
    let victim = shares
        .iter()
        .enumerate()
        .max_by_key(|(_, s)| **s)
        .map(|(i, _)| i)
        .context("no nodes")?;
    progress(format_args!("killing node {victim}"));
    nodes[victim].kill();
    let killed = Instant::now();
    let survivors: Vec<Api> = apis
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, a)| a.clone())
        .collect();
    let adopted = wait_for_total(&survivors, n, Duration::from_secs(args.node_ttl + 60)).await?;
    let handover = killed.elapsed();
    report::table(
        "Hand-over after SIGKILL",
        &["", "value"],
        &[
            vec!["node TTL".into(), format!("{} s", args.node_ttl)],
            vec![
                "schedules of the killed node".into(),
                shares[victim].to_string(),
            ],
            vec!["kill → survivors own all".into(), report::secs(handover)],
            vec!["survivors' shares".into(), format!("{adopted:?}")],
        ],
    );
    for mut node in nodes {
        node.stop();
    }
    Ok(())
}

fn row(name: &str, values: Vec<f64>) -> Vec<String> {
    let mut r = vec![name.to_string()];
    r.extend(Summary::cells(Summary::of(values)));
    r
}

/// Polls every node's `actors.total` until they add up to `n`; returns them.
async fn wait_for_total(apis: &[Api], n: usize, within: Duration) -> Result<Vec<u64>> {
    let deadline = Instant::now() + within;
    loop {
        let mut totals = Vec::new();
        for api in apis {
            let (_, s) = api.get("/v1/status").await?;
            totals.push(s["actors"]["total"].as_u64().unwrap_or(0));
        }
        if totals.iter().sum::<u64>() == n as u64 {
            return Ok(totals);
        }
        if Instant::now() > deadline {
            bail!("the nodes' actors never added up to {n}: {totals:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The node whose `GET /v1/schedules/{id}` carries an actor.
async fn owner_of(apis: &[Api], id: &str) -> Result<usize> {
    for (i, api) in apis.iter().enumerate() {
        let (_, v): (u16, Value) = api.get(&format!("/v1/schedules/{id}")).await?;
        if !v["actor"].is_null() {
            return Ok(i);
        }
    }
    bail!("no node runs {id}")
}
