//! A database outage: while PostgreSQL is down every route that needs it answers 503 in the
//! envelope (and `/healthz` stays 200); when it comes back the server recovers by itself.
//! Its own binary, because it stops its own cluster.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wakeplane::config::Config;
use wakeplane::executors::WorkflowRegistry;
use wakeplane::pg::PgCluster;
use wakeplane::startup::Application;
use wakeplane::store::{self, Store};

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
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

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.lock().unwrap().stop().expect("stop"))
        .await
        .unwrap();

    let (s, b) = send(client.get(format!("{base}/readyz"))).await;
    assert_eq!((s, b), (503, json!({"ok": false, "storage": "error"})));
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
        let (s, b) = send(req).await;
        assert_eq!(s, 503, "{b}");
        assert_eq!(b["code"], "unavailable", "{b}");
    }

    // Status still answers, saying the database is down.
    let (s, b) = send(client.get(format!("{base}/v1/status"))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["database"]["ok"], false);
    assert_eq!(b["runs"]["pending"], Value::Null);
    assert_eq!(b["actors"]["total"], 1);

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.lock().unwrap().restart().expect("restart"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, _) = send(client.get(format!("{base}/readyz"))).await;
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "readyz did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
        vec!["before"],
        "the write before the outage is kept, the refused one is absent"
    );
    let (s, b) = send(
        client
            .post(format!("{base}/v1/schedules"))
            .json(&body("after")),
    )
    .await;
    assert_eq!(s, 201, "{b}");
}
