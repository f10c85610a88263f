//! Misfire policies when a schedule wakes late (after downtime, or on resume).

use chrono::{Duration, SubsecRound, Utc};
use diesel::prelude::*;
use serde_json::json;

use crate::helpers::{spawn_app, TestApp};
use crate::support::{announce, count, db, simulate_downtime, ts, wait_runs};

async fn hourly_ish(app: &TestApp, name: &str, misfire: &str) -> String {
    let s = app
        .create_schedule(&json!({
            "name": name, "timezone": "UTC",
            "schedule": {"kind": "interval", "every_seconds": 60},
            "target": {"kind": "workflow", "workflow_id": "builtin.noop"},
            "policy": {"misfire": misfire, "overlap": "allow", "max_concurrency": 20}
        }))
        .await;
    s["id"].as_str().unwrap().to_string()
}

/// Ten occurrences missed: anchor 10.5 minutes ago, minute grid, next one due 30 s ahead.
async fn after_downtime(
    app: &TestApp,
    misfire: &str,
) -> (String, Vec<serde_json::Value>, chrono::DateTime<Utc>) {
    let id = hourly_ish(app, misfire, misfire).await;
    let anchor = Utc::now().trunc_subsecs(0) - Duration::seconds(630);
    simulate_downtime(app, &id, anchor, anchor + Duration::seconds(60));
    let runs = wait_runs(app, &id, "the missed occurrences", |r| {
        r.len() >= 10
            && r.iter()
                .all(|r| r["status"] == "succeeded" || r["status"] == "skipped")
    })
    .await;
    (id, runs, anchor)
}

#[actix_web::test]
async fn skip_records_every_missed_occurrence_as_skipped() {
    let app = spawn_app().await;
    let (id, runs, anchor) = after_downtime(&app, "skip").await;
    assert_eq!(runs.len(), 10);
    assert_eq!(count(&runs, "skipped"), 10);
    let sched = app.get(&format!("/v1/schedules/{id}")).await.body;
    assert_eq!(ts(&sched["next_run_at"]), anchor + Duration::seconds(660));
    assert_eq!(ts(&sched["last_run_at"]), anchor + Duration::seconds(600));
    let one = app
        .get(&format!("/v1/runs/{}", runs[0]["id"].as_str().unwrap()))
        .await
        .body;
    assert!(
        one["error_text"].as_str().unwrap().contains("missed"),
        "{one}"
    );
    assert!(one["finished_at"].is_string());
}

#[actix_web::test]
async fn run_once_if_late_runs_only_the_newest_missed_occurrence() {
    let app = spawn_app().await;
    let (_, runs, anchor) = after_downtime(&app, "run_once_if_late").await;
    assert_eq!(runs.len(), 10);
    assert_eq!(count(&runs, "skipped"), 9);
    let ran: Vec<_> = runs.iter().filter(|r| r["status"] == "succeeded").collect();
    assert_eq!(ran.len(), 1);
    assert_eq!(ts(&ran[0]["nominal_time"]), anchor + Duration::seconds(600));
}

#[actix_web::test]
async fn catch_up_runs_every_missed_occurrence() {
    let app = spawn_app().await;
    let (_, runs, anchor) = after_downtime(&app, "catch_up").await;
    assert_eq!(runs.len(), 10);
    assert_eq!(count(&runs, "succeeded"), 10);
    let mut nominal: Vec<_> = runs.iter().map(|r| ts(&r["nominal_time"])).collect();
    nominal.sort();
    let expected: Vec<_> = (1..=10)
        .map(|k| anchor + Duration::seconds(60 * k))
        .collect();
    assert_eq!(nominal, expected);
}

#[actix_web::test]
async fn resume_applies_the_misfire_rule_to_occurrences_missed_while_paused() {
    let app = spawn_app().await;
    let id = hourly_ish(&app, "paused-for-a-while", "run_once_if_late").await;
    app.post(&format!("/v1/schedules/{id}/pause"), &json!({}))
        .await;
    // As if created 10.5 minutes ago and paused 5 minutes and 10 seconds ago.
    let anchor = Utc::now().trunc_subsecs(0) - Duration::seconds(630);
    let paused_at = Utc::now() - Duration::seconds(310);
    {
        use wakeplane::store::schema::schedules::dsl as s;
        let mut conn = db(&app);
        diesel::update(s::schedules.find(&id))
            .set((
                s::anchor_at.eq(Some(anchor)),
                s::created_at.eq(anchor),
                s::paused_at.eq(Some(paused_at)),
                s::updated_at.eq(Utc::now()),
            ))
            .execute(&mut conn)
            .unwrap();
        announce(&mut conn, &id);
    }
    // Let the actor pick the change up before resuming.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = app
        .post(&format!("/v1/schedules/{id}/resume"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        ts(&r.body["next_run_at"]),
        anchor + Duration::seconds(660),
        "resume answers with the next future fire"
    );
    let runs = wait_runs(&app, &id, "missed occurrences", |r| {
        r.len() >= 5
            && r.iter()
                .all(|r| r["status"] == "succeeded" || r["status"] == "skipped")
    })
    .await;
    // Occurrences after the pause: minutes 6..10 of the grid.
    assert_eq!(runs.len(), 5);
    assert_eq!(count(&runs, "succeeded"), 1);
    assert_eq!(count(&runs, "skipped"), 4);
    let mut nominal: Vec<_> = runs.iter().map(|r| ts(&r["nominal_time"])).collect();
    nominal.sort();
    assert_eq!(nominal[0], anchor + Duration::seconds(360));
}

#[actix_web::test]
async fn skip_on_resume_skips_even_the_most_recent_missed_occurrences() {
    // The on-time grace is for a busy timer, never for time spent paused: with `skip`, a
    // one-second schedule paused for 3.5 s records every occurrence of the pause skipped.
    let app = spawn_app().await;
    let s = app
        .create_schedule(&json!({
            "name": "every-second-skip", "timezone": "UTC",
            "schedule": {"kind": "interval", "every_seconds": 1},
            "target": {"kind": "workflow", "workflow_id": "builtin.noop"},
            "policy": {"misfire": "skip", "overlap": "allow", "max_concurrency": 20}
        }))
        .await;
    let id = s["id"].as_str().unwrap().to_string();
    wait_runs(&app, &id, "a first run", |r| count(r, "succeeded") >= 1).await;
    let paused = app
        .post(&format!("/v1/schedules/{id}/pause"), &json!({}))
        .await;
    let paused_at = ts(&paused.body["paused_at"]);
    actix_web::rt::time::sleep(std::time::Duration::from_millis(3500)).await;
    let resumed = app
        .post(&format!("/v1/schedules/{id}/resume"), &json!({}))
        .await;
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    let resumed_at = Utc::now();
    let runs = wait_runs(&app, &id, "two runs after the resume", |r| {
        r.iter()
            .filter(|r| r["status"] == "succeeded" && ts(&r["nominal_time"]) > resumed_at)
            .count()
            >= 2
    })
    .await;
    let missed: Vec<_> = runs
        .iter()
        .filter(|r| {
            let n = ts(&r["nominal_time"]);
            n > paused_at && n <= resumed_at - Duration::milliseconds(100)
        })
        .collect();
    assert!(missed.len() >= 3, "{missed:?}");
    for r in &missed {
        assert_eq!(r["status"], "skipped", "missed while paused: {r}");
    }
}
