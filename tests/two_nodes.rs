//! Two nodes, one database: two real `wakeplane serve` processes (different worker ids,
//! same `DATABASE_URL`) share the schedules (each runs the timers of the partitions it
//! holds) against an HTTP target served by this test, which records each request's
//! identity headers itself (the outside witness, `process::witness`).
//!
//! Proves (SEMANTICS.md "Occurrences and runs", "Execution", "Nodes", "Leases and
//! recovery"):
//! - both nodes side by side for `WAKEPLANE_TWO_NODE_SECONDS` (default 60), then a graceful
//!   stop: both nodes executed runs; the target receives each `(occurrence_key, attempt)`
//!   at most once, and exactly the attempts whose run rows `succeeded`, with the run id of
//!   that row; every occurrence up to 2 s before the stop succeeded; each schedule's
//!   occurrences form a gap-free 1 s grid up to the stop;
//! - one node SIGKILLed mid-run (`WAKEPLANE_TWO_NODE_KILL_SECONDS`, default 24, split one
//!   third before the kill, two thirds after): the survivor's lease reaper fails the dead
//!   node's running runs ("worker lease expired during execution") and retries them, the
//!   retries succeed on the survivor, which adopts the victim's schedules after the node
//!   TTL and catches up what they missed (`catch_up`), nothing reaches the target twice,
//!   and the grid goes on to the stop;
//! - after the stop, nothing is `claimed`/`running` and no lease is left.

#[path = "process/mod.rs"]
mod process;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use process::witness::{verify, Target};
use process::{fresh_database, runs_of, status_of, Server, ServerSpec};
use serde_json::json;
use wakeplane::store::leases::LEASE_EXPIRED;
use wakeplane::store::runs::RunRow;

/// Seconds from environment variable `var`, or `default`.
fn seconds_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A node on `url` with worker id `worker`, logging into `dir`.
fn node(dir: &Path, url: &str, name: &str, worker: &str, ttl: &str) -> ServerSpec {
    ServerSpec::new(
        name,
        dir,
        &[
            ("DATABASE_URL", url),
            ("WAKEPLANE_WORKER_ID", worker),
            ("WAKEPLANE_LEASE_TTL_SECONDS", ttl),
            ("WAKEPLANE_NODE_TTL_SECONDS", "3"),
            // Room for every schedule's runs on one node (the survivor runs all twelve,
            // each with 1.5 runs in flight on average).
            ("WAKEPLANE_WORKERS", "32"),
            ("WAKEPLANE_SHUTDOWN_TIMEOUT_SECONDS", "20"),
        ],
    )
}

/// Creates `n` schedules firing every second at the target; returns their ids.
fn create_schedules(
    on: &Server,
    n: usize,
    target: &Target,
    extra: serde_json::Value,
) -> Vec<String> {
    (0..n)
        .map(|i| {
            let mut body = json!({
                "name": format!("two-nodes-{i}"),
                "timezone": "UTC",
                "schedule": {"kind": "interval", "every_seconds": 1},
                "target": {"kind": "http", "method": "POST", "url": target.url,
                           "body": {"schedule": i}}
            });
            if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
                body.extend(extra.clone());
            }
            on.create_schedule(&body)
        })
        .collect()
}

#[test]
fn two_nodes_share_one_database_without_duplicates_or_gaps() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Target::start(Duration::ZERO);
    let url = fresh_database("wp_two_nodes");
    let mut a = node(dir.path(), &url, "node-a", "wrk_a", "5").start_ready(Duration::from_secs(60));
    // Enough schedules that both nodes own some (each lands on either with odds ½).
    let schedule_ids = create_schedules(&a, 12, &target, json!({}));
    let mut b = node(dir.path(), &url, "node-b", "wrk_b", "5").start_ready(Duration::from_secs(60));

    let seconds = seconds_from_env("WAKEPLANE_TWO_NODE_SECONDS", 60);
    println!("both nodes up; running for {seconds} s (WAKEPLANE_TWO_NODE_SECONDS)");
    // Deliberately let both nodes work side by side.
    std::thread::sleep(Duration::from_secs(seconds));
    let stop = Utc::now();
    a.terminate();
    b.terminate();
    for node in [&mut a, &mut b] {
        let status = node.wait_exit(Duration::from_secs(60));
        assert_eq!(status.code(), Some(0), "{} exit: {status}", node.name);
    }

    let outcome = verify(&url, &schedule_ids, &target, stop);
    let succeeded: usize = outcome.succeeded_by_worker.values().sum();
    assert_eq!(
        outcome.received.len(),
        succeeded,
        "with no node dying, the target received exactly the succeeded attempts"
    );
    for worker in ["wrk_a", "wrk_b"] {
        assert!(
            outcome
                .succeeded_by_worker
                .get(worker)
                .is_some_and(|n| *n > 0),
            "{worker} executed nothing the target saw: {:?}",
            outcome.succeeded_by_worker
        );
    }
    println!(
        "two nodes: {} requests received, run rows by status {:?}, succeeded by worker {:?}, \
         {:.1?} wall time",
        outcome.received.len(),
        outcome.statuses,
        outcome.succeeded_by_worker,
        started.elapsed()
    );
}

#[test]
fn the_survivor_recovers_and_retries_a_killed_nodes_runs() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    // Requests last 1.5 s, so a node always has some in flight when it dies.
    let target = Target::start(Duration::from_millis(1500));
    let url = fresh_database("wp_two_nodes_kill");
    let ttl = "2";
    let mut a =
        node(dir.path(), &url, "survivor", "wrk_a", ttl).start_ready(Duration::from_secs(60));
    // Enough schedules that the victim owns some; what they miss while nobody owns them
    // (the node TTL) is caught up by the survivor.
    let schedule_ids = create_schedules(
        &a,
        12,
        &target,
        json!({
            "policy": {"overlap": "allow", "max_concurrency": 5, "misfire": "catch_up"},
            "retry": {"max_attempts": 3, "initial_delay_seconds": 1, "max_delay_seconds": 1}
        }),
    );
    let mut b = node(dir.path(), &url, "victim", "wrk_b", ttl).start_ready(Duration::from_secs(60));

    let seconds = seconds_from_env("WAKEPLANE_TWO_NODE_KILL_SECONDS", 24);
    println!("both nodes up; {seconds} s in all (WAKEPLANE_TWO_NODE_KILL_SECONDS)");
    // Deliberately let both nodes work side by side for a third of the time.
    std::thread::sleep(Duration::from_secs(seconds / 3));
    // Kill the victim while the target holds a request it sent less than 0.5 s ago (so
    // about a second of it is left): that run is running on the victim for sure.
    let victim_runs = |runs: &[RunRow], status: &str| -> HashSet<String> {
        runs.iter()
            .filter(|r| {
                r.claimed_by_worker_id.as_deref() == Some("wrk_b") && status_of(r) == status
            })
            .map(|r| r.id.clone())
            .collect()
    };
    let all_runs = || -> Vec<RunRow> {
        schedule_ids
            .iter()
            .flat_map(|id| runs_of(&url, id))
            .collect()
    };
    process::poll(
        "a request of the victim's at the target",
        Duration::from_secs(60),
        || {
            let fresh = target.in_flight_since(Duration::from_millis(500));
            let running = victim_runs(&all_runs(), "running");
            (!fresh.is_disjoint(&running)).then_some(())
        },
    );
    b.kill();
    let killed_at = Instant::now();
    // Nobody owns the victim's runs now; the survivor's reaper takes them after the TTL.
    let at_kill = all_runs();
    let running_at_kill = victim_runs(&at_kill, "running");
    let claimed_at_kill = victim_runs(&at_kill, "claimed");
    let witnessed: HashSet<String> = target
        .received()
        .into_iter()
        .map(|r| r.run_id)
        .filter(|id| running_at_kill.contains(id))
        .collect();
    assert!(
        !witnessed.is_empty(),
        "the target held a request of a run running on the victim when it was killed"
    );

    // Deliberately let the survivor recover, retry and keep the grid going.
    std::thread::sleep(
        Duration::from_secs(seconds - seconds / 3).saturating_sub(killed_at.elapsed()),
    );
    let stop = Utc::now();
    a.stop_gracefully(Duration::from_secs(60));

    let outcome = verify(&url, &schedule_ids, &target, stop);
    let by_key: HashMap<(&str, i32), &RunRow> = outcome
        .runs
        .iter()
        .map(|r| ((r.occurrence_key.as_str(), r.attempt), r))
        .collect();
    for id in &running_at_kill {
        let row = outcome
            .runs
            .iter()
            .find(|r| &r.id == id)
            .expect("row of a killed run");
        assert_eq!(row.error_text.as_deref(), Some(LEASE_EXPIRED), "{row:#?}");
        if row.attempt < 3 {
            assert_eq!(status_of(row), "failed", "{row:#?}");
            let retry = by_key
                .get(&(row.occurrence_key.as_str(), row.attempt + 1))
                .unwrap_or_else(|| panic!("no retry of the killed run {row:#?}"));
            // A retry that failed again retried again; `verify` saw the occurrence succeed.
            if status_of(retry) == "succeeded" {
                assert_eq!(
                    retry.claimed_by_worker_id.as_deref(),
                    Some("wrk_a"),
                    "{retry:#?}"
                );
            }
        } else {
            assert_eq!(status_of(row), "dead_lettered", "{row:#?}");
        }
    }
    for id in &claimed_at_kill {
        let row = outcome
            .runs
            .iter()
            .find(|r| &r.id == id)
            .expect("row of a claimed run");
        assert_eq!(
            (status_of(row).as_str(), row.claimed_by_worker_id.as_deref()),
            ("succeeded", Some("wrk_a")),
            "a run the victim had only claimed went back to waiting and ran on the survivor: {row:#?}"
        );
    }
    let before_kill = outcome
        .succeeded_by_worker
        .get("wrk_b")
        .copied()
        .unwrap_or(0);
    assert!(
        before_kill > 0,
        "the victim executed nothing before it was killed"
    );
    println!(
        "kill: {} running and {} claimed on the victim at the kill ({} seen at the target), \
         {} requests received, run rows by status {:?}, succeeded by worker {:?}, {:.1?} wall time",
        running_at_kill.len(),
        claimed_at_kill.len(),
        witnessed.len(),
        outcome.received.len(),
        outcome.statuses,
        outcome.succeeded_by_worker,
        started.elapsed()
    );
}

/// Two live processes with one worker id would take each other's leases for a dead
/// previous life's: the second one must refuse to start, and the first one's running
/// work must end as it would have.
#[test]
fn a_second_live_process_with_the_same_worker_id_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database("wp_same_id");
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("WAKEPLANE_WORKER_ID", "wrk_same"),
    ];
    let first = ServerSpec::new("first", dir.path(), &env).start_ready(Duration::from_secs(60));
    let id = first.create_schedule(&json!({
        "name": "sleeper", "timezone": "UTC",
        "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
        "target": {"kind": "workflow", "workflow_id": "builtin.sleep", "input": {"seconds": 4}}
    }));
    let (status, run) = first.post(
        &format!("/v1/schedules/{id}/trigger"),
        &json!({"reason": "same id"}),
    );
    assert_eq!(status, 200, "{run}");
    let run_id = run["run_id"].as_str().expect("run id").to_string();
    process::poll("the run to be running", Duration::from_secs(20), || {
        let (_, r) = first.get(&format!("/v1/runs/{run_id}"));
        (r["status"] == "running").then_some(())
    });

    let mut second = ServerSpec::new("second", dir.path(), &env).start();
    let exit = second.wait_exit(Duration::from_secs(30));
    assert!(!exit.success(), "the second process must not start");
    let log = second.log_tail(40);
    assert!(log.contains("WAKEPLANE_WORKER_ID"), "{log}");

    let done = process::poll("the run to finish", Duration::from_secs(30), || {
        let (_, r) = first.get(&format!("/v1/runs/{run_id}"));
        r["finished_at"].is_string().then_some(r)
    });
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempt"], 1);
}
