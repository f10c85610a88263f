//! Helpers for scheduler tests: an HTTP target that records requests, run listing, and
//! direct database access for rows the API does not show (dead letters, leases).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

use crate::helpers::TestApp;

/// One request the target received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// A tiny HTTP server answering every request with `status`; records what it received.
pub struct Target {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Target {
    pub fn start(status: u16, body: &'static str) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let path = parts.next().unwrap_or("").to_string();
                    let mut headers = HashMap::new();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                        }
                    }
                    let len: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let mut received = vec![0; len];
                    let _ = reader.read_exact(&mut received);
                    log.lock().unwrap().push(Received {
                        method,
                        path,
                        headers,
                        body: String::from_utf8_lossy(&received).into_owned(),
                    });
                    let reason = if status < 300 { "OK" } else { "Error" };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Target { url, received }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Every run of a schedule (newest first), as the API lists them.
pub async fn runs_of(app: &TestApp, schedule_id: &str) -> Vec<Value> {
    app.collect_pages(&format!("/v1/runs?schedule_id={schedule_id}"), 500)
        .await
        .0
}

/// Polls until `pred` holds on the schedule's runs; returns them (newest first).
pub async fn wait_runs(
    app: &TestApp,
    schedule_id: &str,
    what: &str,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    loop {
        let runs = runs_of(app, schedule_id).await;
        if pred(&runs) {
            return runs;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; runs: {}",
                serde_json::to_string_pretty(&runs).unwrap()
            );
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn count(runs: &[Value], status: &str) -> usize {
    runs.iter().filter(|r| r["status"] == status).count()
}

pub fn ts(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

/// `[started_at, finished_at]` of finished runs, to check overlap.
pub fn intervals(runs: &[Value]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut v: Vec<_> = runs
        .iter()
        .filter(|r| r["started_at"].is_string() && r["finished_at"].is_string())
        .map(|r| (ts(&r["started_at"]), ts(&r["finished_at"])))
        .collect();
    v.sort();
    v
}

/// The largest number of runs executing at the same instant.
pub fn max_parallel(runs: &[Value]) -> usize {
    let iv = intervals(runs);
    let mut best = 0;
    for (s, _) in &iv {
        let n = iv.iter().filter(|(a, b)| a <= s && s < b).count();
        best = best.max(n);
    }
    best
}

pub fn db(app: &TestApp) -> PgConnection {
    PgConnection::establish(&app.database_url).expect("test database connection")
}

/// Moves a schedule's clock back as if the server had been down since `down_since`:
/// anchor and next_run_at in the past; the supervisor's sync sees the change and the
/// actor wakes late, exactly as after a restart.
pub fn simulate_downtime(
    app: &TestApp,
    schedule_id: &str,
    anchor: DateTime<Utc>,
    next: DateTime<Utc>,
) {
    use wakeplane::store::schema::schedules::dsl as s;
    let mut conn = db(app);
    diesel::update(s::schedules.find(schedule_id))
        .set((
            s::anchor_at.eq(Some(anchor)),
            s::next_run_at.eq(Some(next)),
            s::created_at.eq(anchor),
            s::updated_at.eq(Utc::now()),
        ))
        .execute(&mut conn)
        .expect("simulate downtime");
}
