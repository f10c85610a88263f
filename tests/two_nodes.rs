//! Two nodes, one database: two real `wakeplane serve` processes (different worker ids,
//! same `DATABASE_URL`) run every schedule against an HTTP target served by this test,
//! which records each request's identity headers itself (the outside witness).
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
//!   retries succeed on the survivor, nothing reaches the target twice, and the grid goes
//!   on to the stop;
//! - after the stop, nothing is `claimed`/`running` and no lease is left.

#[path = "process/mod.rs"]
mod process;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use process::{fresh_database, lease_count, runs_of, status_of, Server, ServerSpec};
use serde_json::json;
use wakeplane::store::leases::LEASE_EXPIRED;
use wakeplane::store::runs::RunRow;

/// One request as the target saw it.
#[derive(Debug, Clone)]
struct Received {
    occurrence_key: String,
    attempt: i32,
    run_id: String,
}

#[derive(Default)]
struct Record {
    received: Vec<Received>,
    /// Requests read but not answered yet: run id → when it arrived.
    in_flight: HashMap<String, Instant>,
}

/// A minimal HTTP/1.1 target on 127.0.0.1: holds each request for `hold`, then answers
/// `200 OK` with an empty body and `Connection: close`, recording the Wakeplane identity
/// headers on arrival.
struct Target {
    url: String,
    record: Arc<Mutex<Record>>,
}

impl Target {
    fn start(hold: Duration) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind target");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let record = Arc::new(Mutex::new(Record::default()));
        let sink = record.clone();
        // Detached: the accept loop ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || serve_one(stream, &sink, hold));
            }
        });
        Target { url, record }
    }

    fn received(&self) -> Vec<Received> {
        self.record.lock().expect("target lock").received.clone()
    }

    /// Run ids in flight that arrived at most `within` ago.
    fn in_flight_since(&self, within: Duration) -> HashSet<String> {
        let record = self.record.lock().expect("target lock");
        record
            .in_flight
            .iter()
            .filter(|(_, at)| at.elapsed() <= within)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Reads one request (headers, then `Content-Length` bytes of body), records it, holds
/// it, answers.
fn serve_one(stream: TcpStream, sink: &Mutex<Record>, hold: Duration) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut headers = HashMap::new();
    let mut line = String::new();
    let mut first = true;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if first {
            first = false;
            continue; // request line
        }
        if let Some((name, value)) = l.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let header = |name: &str| headers.get(name).cloned().unwrap_or_default();
    let run_id = header("wakeplane-run-id");
    {
        let mut record = sink.lock().expect("target lock");
        record.received.push(Received {
            occurrence_key: header("wakeplane-occurrence-key"),
            attempt: header("wakeplane-attempt").parse().unwrap_or(-1),
            run_id: run_id.clone(),
        });
        record.in_flight.insert(run_id.clone(), Instant::now());
    }
    std::thread::sleep(hold);
    let mut stream = &stream;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.flush();
    sink.lock().expect("target lock").in_flight.remove(&run_id);
}

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

/// What [`verify`] found, for the test's own assertions and its printout.
struct Outcome {
    runs: Vec<RunRow>,
    received: Vec<Received>,
    /// Succeeded runs by the worker that claimed them (each one seen by the target).
    succeeded_by_worker: BTreeMap<String, usize>,
    statuses: BTreeMap<String, usize>,
}

/// The checks both scenarios share, once every node has stopped at `stop` (when the last
/// one was signalled):
/// - no `(occurrence_key, attempt)` twice, neither at the target nor in the database;
/// - each schedule's attempt-1 occurrences are a gap-free 1 s grid reaching `stop - 2 s`;
/// - every occurrence up to `stop - 2 s` has a succeeded attempt;
/// - each succeeded run reached the target exactly once, as itself; every request the
///   target got belongs to a run row with that identity, which succeeded or was running
///   on a node that died (failed with the lease text);
/// - nothing is left `claimed`/`running`, no lease is left.
fn verify(url: &str, schedule_ids: &[String], target: &Target, stop: DateTime<Utc>) -> Outcome {
    let received = target.received();
    let mut deliveries: HashMap<(String, i32), Vec<String>> = HashMap::new();
    for r in &received {
        deliveries
            .entry((r.occurrence_key.clone(), r.attempt))
            .or_default()
            .push(r.run_id.clone());
    }
    for ((key, attempt), run_ids) in &deliveries {
        assert_eq!(
            run_ids.len(),
            1,
            "attempt {attempt} of {key} reached the target {} times (runs {run_ids:?})",
            run_ids.len()
        );
    }

    let settled = stop - chrono::Duration::seconds(2);
    let mut all_runs = Vec::new();
    let mut outcome = Outcome {
        runs: Vec::new(),
        received: received.clone(),
        succeeded_by_worker: BTreeMap::new(),
        statuses: BTreeMap::new(),
    };
    for id in schedule_ids {
        let runs = runs_of(url, id);
        let mut keys: HashMap<(&str, i32), usize> = HashMap::new();
        for r in &runs {
            *keys
                .entry((r.occurrence_key.as_str(), r.attempt))
                .or_default() += 1;
            *outcome.statuses.entry(status_of(r)).or_default() += 1;
        }
        let duplicates: Vec<_> = keys.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            duplicates.is_empty(),
            "{id}: duplicate (key, attempt): {duplicates:?}"
        );

        let first_attempts: Vec<&RunRow> = runs.iter().filter(|r| r.attempt == 1).collect();
        let nominal: Vec<_> = first_attempts.iter().map(|r| r.nominal_time).collect();
        process::assert_gap_free(id, &nominal, chrono::Duration::seconds(1));
        let last = *nominal.last().expect("assert_gap_free saw occurrences");
        assert!(
            last >= settled,
            "{id}: the grid stops at {last}, before {settled} (2 s before the stop)"
        );
        let succeeded_keys: HashSet<&str> = runs
            .iter()
            .filter(|r| status_of(r) == "succeeded")
            .map(|r| r.occurrence_key.as_str())
            .collect();
        for r in first_attempts.iter().filter(|r| r.nominal_time <= settled) {
            assert!(
                succeeded_keys.contains(r.occurrence_key.as_str()),
                "{id}: occurrence {} (2 s or more before the stop) never succeeded; its rows: {:#?}",
                r.occurrence_key,
                runs.iter()
                    .filter(|o| o.occurrence_key == r.occurrence_key)
                    .collect::<Vec<_>>()
            );
        }

        for r in &runs {
            let status = status_of(r);
            assert!(
                status != "claimed" && status != "running",
                "run left active after every node stopped: {r:#?}"
            );
            if status != "succeeded" {
                continue;
            }
            let delivered = deliveries.get(&(r.occurrence_key.clone(), r.attempt));
            assert_eq!(
                delivered.map(|ids| ids.as_slice()),
                Some(std::slice::from_ref(&r.id)),
                "succeeded run {} ({} attempt {}) was delivered exactly once, as itself",
                r.id,
                r.occurrence_key,
                r.attempt
            );
            let worker = r.claimed_by_worker_id.clone().unwrap_or_default();
            *outcome.succeeded_by_worker.entry(worker).or_default() += 1;
        }
        all_runs.extend(runs);
    }

    let by_id: HashMap<&str, &RunRow> = all_runs.iter().map(|r| (r.id.as_str(), r)).collect();
    for r in &received {
        let row = by_id
            .get(r.run_id.as_str())
            .unwrap_or_else(|| panic!("the target got run {} which has no row", r.run_id));
        assert_eq!(
            (row.occurrence_key.as_str(), row.attempt),
            (r.occurrence_key.as_str(), r.attempt),
            "the identity headers match the run row"
        );
        let status = status_of(row);
        assert!(
            status == "succeeded"
                || (matches!(status.as_str(), "failed" | "dead_lettered")
                    && row.error_text.as_deref() == Some(LEASE_EXPIRED)),
            "the target got a run that neither succeeded nor died with its node: {row:#?}"
        );
    }
    assert_eq!(lease_count(url), 0, "leases left after every node stopped");
    outcome.runs = all_runs;
    outcome
}

#[test]
fn two_nodes_share_one_database_without_duplicates_or_gaps() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Target::start(Duration::ZERO);
    let url = fresh_database("wp_two_nodes");
    let mut a = node(dir.path(), &url, "node-a", "wrk_a", "5").start_ready(Duration::from_secs(60));
    let schedule_ids = create_schedules(&a, 5, &target, json!({}));
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
    let schedule_ids = create_schedules(
        &a,
        3,
        &target,
        json!({
            "policy": {"overlap": "allow", "max_concurrency": 5},
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
