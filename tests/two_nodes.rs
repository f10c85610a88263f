//! Two nodes, one database: two real `wakeplane serve` processes (different worker ids,
//! same `DATABASE_URL`) both run every schedule for `WAKEPLANE_TWO_NODE_SECONDS` (default
//! 60) seconds against an HTTP target served by this test, then stop gracefully.
//!
//! Proves (SEMANTICS.md "Occurrences and runs", "Execution", "Nodes"):
//! - the target receives each `(occurrence_key, attempt)` at most once, and exactly the
//!   attempts whose run rows `succeeded`, with the run id of that row;
//! - the database holds no duplicate `(occurrence_key, attempt)`;
//! - each schedule's materialised occurrences form a gap-free 1 s grid (none lost or
//!   doubled between the nodes);
//! - after both stop, nothing is `claimed`/`running` and no lease is left.
//!
//! How the work split between the two workers (`claimed_by_worker_id`, kept after a run
//! finishes) is printed, not asserted: sharing is a design choice, not a correctness rule.

#[path = "process/mod.rs"]
mod process;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use process::{fresh_database, lease_count, runs_of, ServerSpec};
use serde_json::json;

/// One request as the target saw it.
#[derive(Debug, Clone)]
struct Received {
    occurrence_key: String,
    attempt: i32,
    run_id: String,
}

/// A minimal HTTP/1.1 target on 127.0.0.1: answers every request `200 OK` with an empty
/// body and `Connection: close`, recording the Wakeplane identity headers.
struct Target {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Target {
    fn start() -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind target");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        // Detached: the accept loop ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || serve_one(stream, &sink));
            }
        });
        Target { url, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("target lock").clone()
    }
}

/// Reads one request (headers, then `Content-Length` bytes of body), records it, answers.
fn serve_one(stream: TcpStream, sink: &Mutex<Vec<Received>>) {
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
    sink.lock().expect("target lock").push(Received {
        occurrence_key: header("wakeplane-occurrence-key"),
        attempt: header("wakeplane-attempt").parse().unwrap_or(-1),
        run_id: header("wakeplane-run-id"),
    });
    let mut stream = &stream;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.flush();
}

fn run_seconds() -> u64 {
    std::env::var("WAKEPLANE_TWO_NODE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

#[test]
fn two_nodes_share_one_database_without_duplicates_or_gaps() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Target::start();
    let url = fresh_database("wp_two_nodes");
    let node = |name: &str, worker: &str| {
        ServerSpec::new(
            name,
            dir.path(),
            &[
                ("DATABASE_URL", &url),
                ("WAKEPLANE_WORKER_ID", worker),
                ("WAKEPLANE_LEASE_TTL_SECONDS", "5"),
                ("WAKEPLANE_SHUTDOWN_TIMEOUT_SECONDS", "20"),
            ],
        )
    };
    let mut a = node("node-a", "wrk_a").start_ready(Duration::from_secs(60));
    let schedule_ids: Vec<String> = (0..5)
        .map(|i| {
            a.create_schedule(&json!({
                "name": format!("two-nodes-{i}"),
                "timezone": "UTC",
                "schedule": {"kind": "interval", "every_seconds": 1},
                "target": {"kind": "http", "method": "POST", "url": target.url,
                           "body": {"schedule": i}}
            }))
        })
        .collect();
    let mut b = node("node-b", "wrk_b").start_ready(Duration::from_secs(60));

    let seconds = run_seconds();
    println!("both nodes up; running for {seconds} s (WAKEPLANE_TWO_NODE_SECONDS)");
    // Deliberately let both nodes work side by side.
    std::thread::sleep(Duration::from_secs(seconds));
    a.terminate();
    b.terminate();
    for node in [&mut a, &mut b] {
        let status = node.wait_exit(Duration::from_secs(60));
        assert_eq!(status.code(), Some(0), "{} exit: {status}", node.name);
    }

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

    let mut split: BTreeMap<String, usize> = BTreeMap::new();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut succeeded_total = 0;
    for id in &schedule_ids {
        let runs = runs_of(&url, id);
        let mut keys: HashMap<(&str, i32), usize> = HashMap::new();
        for r in &runs {
            *keys
                .entry((r.occurrence_key.as_str(), r.attempt))
                .or_default() += 1;
            *statuses.entry(r.status.clone()).or_default() += 1;
            let worker = r
                .claimed_by_worker_id
                .as_deref()
                .unwrap_or("(never claimed)");
            *split.entry(worker.to_string()).or_default() += 1;
        }
        let duplicates: Vec<_> = keys.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            duplicates.is_empty(),
            "{id}: duplicate (key, attempt): {duplicates:?}"
        );

        let nominal: Vec<_> = runs
            .iter()
            .filter(|r| r.attempt == 1)
            .map(|r| r.nominal_time)
            .collect();
        process::assert_gap_free(id, &nominal, chrono::Duration::seconds(1));

        for r in &runs {
            let delivered = deliveries.get(&(r.occurrence_key.clone(), r.attempt));
            if r.status == "succeeded" {
                succeeded_total += 1;
                assert_eq!(
                    delivered.map(|ids| ids.as_slice()),
                    Some(std::slice::from_ref(&r.id)),
                    "succeeded run {} ({} attempt {}) was delivered exactly once, as itself",
                    r.id,
                    r.occurrence_key,
                    r.attempt
                );
            }
            assert!(
                r.status != "claimed" && r.status != "running",
                "run left active after both nodes stopped: {r:#?}"
            );
        }
    }
    assert!(succeeded_total > 0, "no run succeeded at all");
    assert_eq!(
        received.len(),
        succeeded_total,
        "the target received exactly the succeeded attempts"
    );
    assert_eq!(lease_count(&url), 0, "leases left after both nodes stopped");

    println!(
        "two nodes: {} requests received, run rows by status {statuses:?}, \
         claimed by worker {split:?}, {:.1?} wall time",
        received.len(),
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
