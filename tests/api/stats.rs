//! Per-schedule stats (API.md, *Schedule*, `stats`) after successes, failures, dead
//! letters and skips, checked against the run ledger and /v1/status.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{schedule_body, spawn_app, TestApp};

async fn runs_of(app: &TestApp, id: &str) -> Vec<Value> {
    let (items, _) = app
        .collect_pages(&format!("/v1/runs?schedule_id={id}"), 500)
        .await;
    items
}

fn count(runs: &[Value], status: &str) -> i64 {
    runs.iter().filter(|r| r["status"] == status).count() as i64
}

#[actix_web::test]
async fn a_new_schedule_starts_at_zeros_and_nulls() {
    let app = spawn_app().await;
    let created = app.create_schedule(&schedule_body("fresh")).await;
    let zero = json!({"runs_total": 0, "succeeded": 0, "failed": 0, "dead_lettered": 0,
        "cancelled": 0, "skipped": 0, "last_status": null, "last_run_id": null,
        "last_finished_at": null, "last_duration_ms": null});
    assert_eq!(created["stats"], zero);
    let list = app.get("/v1/schedules").await.body;
    assert_eq!(list["items"][0]["stats"], zero);
}

#[actix_web::test]
async fn successes_are_counted_and_the_last_one_described() {
    let app = spawn_app().await;
    let mut body = schedule_body("ok");
    body["target"] =
        json!({"kind": "workflow", "workflow_id": "builtin.sleep", "input": {"seconds": 0.05}});
    body["policy"] = json!({"overlap": "allow", "max_concurrency": 3});
    let id = app.create_schedule(&body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..3 {
        app.trigger(&id, &format!("run {i}")).await;
    }
    let s = app
        .poll(
            &format!("/v1/schedules/{id}"),
            Duration::from_secs(30),
            |b| b["stats"]["succeeded"] == 3,
        )
        .await["stats"]
        .clone();
    let runs = runs_of(&app, &id).await;
    assert_eq!(count(&runs, "succeeded"), 3, "the ledger agrees");
    assert_eq!(s["runs_total"], 3);
    assert_eq!(s["failed"], 0);
    assert_eq!(s["last_status"], "succeeded");
    let newest = runs
        .iter()
        .max_by_key(|r| {
            // The newest end; among ends at the same instant, the greater id.
            (
                r["finished_at"].as_str().unwrap_or_default().to_string(),
                r["id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .unwrap();
    assert_eq!(s["last_run_id"], newest["id"]);
    assert_eq!(s["last_finished_at"], newest["finished_at"]);
    assert_eq!(s["last_duration_ms"], newest["duration_ms"]);
    assert!(s["last_duration_ms"].as_i64().unwrap() >= 50, "{s}");
    let status = app.get("/v1/status").await.body;
    assert_eq!(status["runs"]["failed"], 0);
    let metrics = app.get("/v1/metrics").await.body;
    let text = metrics.as_str().unwrap();
    assert!(
        text.lines().any(|l| l == "runs_succeeded_total 3"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "runs_total 3"), "{text}");
}

#[actix_web::test]
async fn failures_then_a_dead_letter_are_counted_with_the_status_counts() {
    let app = spawn_app().await;
    let mut body = schedule_body("bad");
    body["target"] =
        json!({"kind": "workflow", "workflow_id": "builtin.fail", "input": {"message": "boom"}});
    body["retry"] = json!({"max_attempts": 2, "initial_delay_seconds": 1, "max_delay_seconds": 1});
    let id = app.create_schedule(&body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.trigger(&id, "fail twice").await;
    let s = app
        .poll(
            &format!("/v1/schedules/{id}"),
            Duration::from_secs(30),
            |b| b["stats"]["dead_lettered"] == 1,
        )
        .await["stats"]
        .clone();
    let runs = runs_of(&app, &id).await;
    assert_eq!(count(&runs, "failed"), 1);
    assert_eq!(count(&runs, "dead_lettered"), 1);
    assert_eq!(s["runs_total"], 2);
    assert_eq!(s["failed"], 1);
    assert_eq!(s["succeeded"], 0);
    assert_eq!(s["last_status"], "dead_lettered");
    let last = runs
        .iter()
        .find(|r| r["status"] == "dead_lettered")
        .unwrap();
    assert_eq!(s["last_run_id"], last["id"]);
    let status = app.get("/v1/status").await.body;
    assert_eq!(status["runs"]["failed"], 1);
    assert_eq!(status["runs"]["dead_letter"], 1);
    // Deleting the schedule takes its counts (and its dead letters) with it.
    app.delete(&format!("/v1/schedules/{id}")).await;
    let status = app.get("/v1/status").await.body;
    assert_eq!(status["runs"]["failed"], 0);
    assert_eq!(status["runs"]["dead_letter"], 0);
}

#[actix_web::test]
async fn skips_by_the_overlap_policy_and_by_misfire_are_counted_but_never_last() {
    let app = spawn_app().await;
    // queue_latest: while the first run sleeps, a second waits and a third skips it.
    let mut body = schedule_body("queue");
    body["target"] =
        json!({"kind": "workflow", "workflow_id": "builtin.sleep", "input": {"seconds": 1}});
    body["policy"] = json!({"overlap": "queue_latest"});
    let id = app.create_schedule(&body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.trigger(&id, "first").await;
    app.poll(
        &format!("/v1/runs?schedule_id={id}&status=running"),
        Duration::from_secs(10),
        |b| b["items"].as_array().is_some_and(|i| !i.is_empty()),
    )
    .await;
    app.trigger(&id, "second").await;
    app.trigger(&id, "third").await;
    let s = app
        .poll(
            &format!("/v1/schedules/{id}"),
            Duration::from_secs(30),
            |b| b["stats"]["succeeded"] == 2,
        )
        .await["stats"]
        .clone();
    let runs = runs_of(&app, &id).await;
    assert_eq!(count(&runs, "skipped"), 1, "{runs:?}");
    assert_eq!(s["skipped"], 1);
    assert_eq!(s["runs_total"], 3);
    assert_eq!(
        s["last_status"], "succeeded",
        "a skip is never the last run"
    );

    // misfire skip: an interval schedule resumed after missing occurrences records them.
    let mut body = schedule_body("missed");
    body["schedule"] = json!({"kind": "interval", "every_seconds": 1});
    body["policy"] = json!({"misfire": "skip"});
    body["enabled"] = json!(false);
    let id = app.create_schedule(&body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(&format!("/v1/schedules/{id}/resume"), &json!({}))
        .await;
    app.poll(
        &format!("/v1/schedules/{id}"),
        Duration::from_secs(10),
        |b| b["stats"]["succeeded"].as_i64().unwrap_or(0) >= 1,
    )
    .await;
    app.post(&format!("/v1/schedules/{id}/pause"), &json!({}))
        .await;
    let before = app.get(&format!("/v1/schedules/{id}")).await.body["stats"].clone();
    actix_web::rt::time::sleep(Duration::from_millis(3500)).await;
    app.post(&format!("/v1/schedules/{id}/resume"), &json!({}))
        .await;
    app.poll(
        &format!("/v1/schedules/{id}"),
        Duration::from_secs(10),
        |b| b["stats"]["skipped"].as_i64().unwrap_or(0) > before["skipped"].as_i64().unwrap_or(0),
    )
    .await;
    app.post(&format!("/v1/schedules/{id}/pause"), &json!({}))
        .await;
    // Paused: wait until every run in the ledger has ended, then stats and ledger agree.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ledger = loop {
        let runs = runs_of(&app, &id).await;
        let ended = [
            "succeeded",
            "failed",
            "dead_lettered",
            "cancelled",
            "skipped",
        ];
        if runs.iter().all(|r| ended.iter().any(|e| r["status"] == *e)) {
            break runs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "runs never ended: {runs:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    let s = app.get(&format!("/v1/schedules/{id}")).await.body["stats"].clone();
    assert!(count(&ledger, "skipped") >= 2, "{ledger:?}");
    assert_eq!(s["skipped"].as_i64().unwrap(), count(&ledger, "skipped"));
    assert_eq!(
        s["succeeded"].as_i64().unwrap(),
        count(&ledger, "succeeded")
    );
    assert_eq!(s["runs_total"].as_i64().unwrap(), ledger.len() as i64);
    assert_eq!(s["last_status"], "succeeded");
}
