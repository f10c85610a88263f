//! A database outage: while PostgreSQL is down every route that needs it answers 503 in the
//! envelope (and `/healthz` stays 200), fast once one round trip has failed; when it comes
//! back the server recovers by itself within a second, and scheduled work runs again (seen
//! by the target itself). Its own binary, because it stops its own cluster.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wakeplane::config::Config;
use wakeplane::executors::WorkflowRegistry;
use wakeplane::pg::PgCluster;
use wakeplane::startup::Application;
use wakeplane::store::{self, Store};

/// Far below the pool's 3 s checkout timeout: a 503 this fast did not wait for it.
const FAST: Duration = Duration::from_secs(1);

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `send`, and how long the answer took.
async fn timed(req: reqwest::RequestBuilder) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (s, b) = send(req).await;
    (s, b, started.elapsed())
}

/// A shell schedule every second that appends its nominal time to `log`: the target's own
/// record of what ran, independent of the server's ledger.
fn witness(log: &std::path::Path) -> Value {
    json!({"name": "witness", "timezone": "UTC",
        "schedule": {"kind": "interval", "every_seconds": 1},
        "target": {"kind": "shell", "command": "/bin/sh",
            "args": ["-c", "printf '%s\\n' \"$WAKEPLANE_NOMINAL_TIME\" >> \"$1\"", "sh", log]}})
}

/// The nominal times the witness target recorded so far.
fn witnessed(log: &std::path::Path) -> Vec<chrono::DateTime<chrono::Utc>> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            chrono::DateTime::parse_from_rfc3339(l)
                .unwrap_or_else(|e| panic!("witness line {l:?}: {e}"))
                .to_utc()
        })
        .collect()
}

fn body(name: &str) -> Value {
    json!({"name": name, "timezone": "UTC",
        "schedule": {"kind": "interval", "every_seconds": 3600},
        "target": {"kind": "workflow", "workflow_id": "builtin.noop"}})
}

#[actix_web::test]
async fn database_outage_gives_503_and_recovers() {
    let cluster = PgCluster::temporary().expect("cluster");
    store::ensure_database(&cluster.url("postgres"), "wakeplane").expect("database");
    let url = cluster.url("wakeplane");
    let cluster = Arc::new(Mutex::new(cluster));
    let store = Store::new(&url, 3);
    store.migrate().expect("migrate");
    let mut config = Config::from_lookup(|_| None).expect("config");
    config.http_addr = "127.0.0.1:0".into();
    config.database_url = Some(url);
    let app = Application::build(&config, store, WorkflowRegistry::with_builtins())
        .await
        .expect("app");
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let (s, created) = send(
        client
            .post(format!("{base}/v1/schedules"))
            .json(&body("before")),
    )
    .await;
    assert_eq!(s, 201);
    let dir = tempfile::tempdir().expect("tempdir");
    // A root server runs shell targets as `nobody`: let whoever runs it write the record.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod the witness directory");
    let log = dir.path().join("witness.log");
    let (s, b) = send(
        client
            .post(format!("{base}/v1/schedules"))
            .json(&witness(&log)),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while witnessed(&log).is_empty() {
        assert!(Instant::now() < deadline, "the witness never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.lock().unwrap().stop().expect("stop"))
        .await
        .unwrap();

    // The first failure may wait for the pool; once a round trip has failed, every probe
    // answers 503 at once. Poll every 100 ms for 3 s after the first one.
    let (s, b, _) = timed(client.get(format!("{base}/readyz"))).await;
    assert_eq!((s, b), (503, json!({"ok": false, "storage": "error"})));
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (s, b, took) = timed(client.get(format!("{base}/readyz"))).await;
        assert_eq!((s, b), (503, json!({"ok": false, "storage": "error"})));
        slowest = slowest.max(took);
    }
    assert!(
        slowest < FAST,
        "a /readyz 503 took {slowest:?} after a round trip had failed"
    );
    let (s, _) = send(client.get(format!("{base}/healthz"))).await;
    assert_eq!(s, 200);
    let id = created["id"].as_str().unwrap();
    for req in [
        client.get(format!("{base}/v1/schedules")),
        client.get(format!("{base}/v1/schedules/{id}")),
        client
            .post(format!("{base}/v1/schedules"))
            .json(&body("during")),
        client
            .post(format!("{base}/v1/schedules/{id}/trigger"))
            .json(&json!({"reason": "x"})),
        client.get(format!("{base}/v1/runs")),
    ] {
        let (s, b, took) = timed(req).await;
        assert_eq!(s, 503, "{b}");
        assert_eq!(b["code"], "unavailable", "{b}");
        assert!(
            took < FAST,
            "a 503 took {took:?} while the database was known down"
        );
    }

    // Status still answers, saying the database is down.
    let (s, b) = send(client.get(format!("{base}/v1/status"))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["database"]["ok"], false);
    assert_eq!(b["runs"]["pending"], Value::Null);
    assert_eq!(b["actors"]["total"], 2);

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.lock().unwrap().restart().expect("restart"))
        .await
        .unwrap();
    // `restart` returns once PostgreSQL accepts connections.
    let back_at = Instant::now();
    let back_at_utc = chrono::Utc::now();
    loop {
        let (s, _) = send(client.get(format!("{base}/readyz"))).await;
        if s == 200 {
            break;
        }
        assert!(
            back_at.elapsed() < Duration::from_secs(1),
            "no /readyz 200 within 1 s of the database's return"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Shown with `--nocapture`: the figures behind the assertions.
    eprintln!(
        "slowest /readyz 503 while down: {slowest:?}; first 200 {:?} after the database returned",
        back_at.elapsed()
    );
    let (s, b) = send(client.get(format!("{base}/v1/schedules"))).await;
    assert_eq!(s, 200, "{b}");
    let names: Vec<&str> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["witness", "before"],
        "the writes before the outage are kept, the refused one is absent"
    );
    let (s, b) = send(
        client
            .post(format!("{base}/v1/schedules"))
            .json(&body("after")),
    )
    .await;
    assert_eq!(s, 201, "{b}");

    // Scheduled work runs again: the target itself records an occurrence due after the
    // database came back (the actor's outage backoff may delay the first one by seconds).
    let deadline = Instant::now() + Duration::from_secs(45);
    while !witnessed(&log).iter().any(|t| *t > back_at_utc) {
        assert!(
            Instant::now() < deadline,
            "no scheduled run after the database came back; witnessed {:?}",
            witnessed(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
