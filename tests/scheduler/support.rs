//! Helpers for scheduler tests: an HTTP target that records requests (the outside
//! witness: what it got, how many it held at once, which calls were aborted), run listing, and
//! direct database access for rows the API does not show (dead letters, leases).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
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
    /// The client closed the connection while the target held the request (an aborted
    /// call), so it was never answered.
    pub aborted: bool,
}

/// What the target saw, in its own words: requests, and how many it held at once.
#[derive(Default)]
struct Log {
    received: Vec<Received>,
    in_flight: usize,
    max_in_flight: usize,
}

/// A tiny HTTP server answering every request with `status`, after holding it for
/// `hold` (watching for the client to give up); records what it received. The outside
/// witness for what the scheduler really executed and when, independent of the server's
/// own timestamps.
pub struct Target {
    pub url: String,
    log: Arc<Mutex<Log>>,
}

impl Target {
    pub fn start(status: u16, body: &'static str) -> Target {
        Target::holding(status, body, Duration::ZERO)
    }

    pub fn holding(status: u16, body: &'static str, hold: Duration) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Log::default()));
        let shared = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = shared.clone();
                std::thread::spawn(move || serve_one(stream, &log, status, body, hold));
            }
        });
        Target { url, log }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().received.clone()
    }

    /// The most requests held at the same instant (arrived, not yet answered).
    pub fn max_in_flight(&self) -> usize {
        self.log.lock().unwrap().max_in_flight
    }
}

fn serve_one(mut stream: TcpStream, log: &Mutex<Log>, status: u16, body: &str, hold: Duration) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
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
    let index = {
        let mut log = log.lock().unwrap();
        log.in_flight += 1;
        log.max_in_flight = log.max_in_flight.max(log.in_flight);
        log.received.push(Received {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&received).into_owned(),
            aborted: false,
        });
        log.received.len() - 1
    };
    let aborted = hold_unless_closed(&mut stream, hold);
    {
        // Out of flight before answering: the next request the answer lets through
        // must not count as overlapping this one.
        let mut log = log.lock().unwrap();
        log.in_flight -= 1;
        log.received[index].aborted = aborted;
    }
    if aborted {
        return;
    }
    let reason = if status < 300 { "OK" } else { "Error" };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Waits `hold`, watching the connection; true if the client closed it meanwhile.
fn hold_unless_closed(stream: &mut TcpStream, hold: Duration) -> bool {
    let deadline = std::time::Instant::now() + hold;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 1];
    while std::time::Instant::now() < deadline {
        match stream.peek(&mut buf) {
            Ok(0) => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
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
    announce(&mut conn, schedule_id);
}

/// Announces a change written behind the actors' backs the way another node does (a
/// notification on `wakeplane_commands`), so the schedule's owner reloads it at once.
pub fn announce(conn: &mut diesel::PgConnection, schedule_id: &str) {
    wakeplane::store::partitions::notify(conn, schedule_id).expect("notify the owner");
}
