//! The outside witness of the multi-node tests (`two_nodes`, `cluster`): an HTTP target
//! that records each request's Wakeplane identity headers itself, and [`verify`], the
//! checks those tests share once every node has stopped (nothing twice, no gaps, every
//! settled occurrence succeeded, nothing left running).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use wakeplane::store::leases::LEASE_EXPIRED;
use wakeplane::store::runs::RunRow;

use super::{lease_count, runs_of, status_of};

/// One request as the target saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub occurrence_key: String,
    pub attempt: i32,
    pub run_id: String,
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
pub struct Target {
    pub url: String,
    record: Arc<Mutex<Record>>,
}

impl Target {
    pub fn start(hold: Duration) -> Target {
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

    pub fn received(&self) -> Vec<Received> {
        self.record.lock().expect("target lock").received.clone()
    }

    /// Run ids in flight that arrived at most `within` ago.
    pub fn in_flight_since(&self, within: Duration) -> HashSet<String> {
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

/// What [`verify`] found, for the test's own assertions and its printout.
pub struct Outcome {
    pub runs: Vec<RunRow>,
    pub received: Vec<Received>,
    /// Succeeded runs by the worker that claimed them (each one seen by the target).
    pub succeeded_by_worker: BTreeMap<String, usize>,
    pub statuses: BTreeMap<String, usize>,
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
pub fn verify(url: &str, schedule_ids: &[String], target: &Target, stop: DateTime<Utc>) -> Outcome {
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
        super::assert_gap_free(id, &nominal, chrono::Duration::seconds(1));
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
