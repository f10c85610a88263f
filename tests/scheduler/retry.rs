//! The retry timeline: attempts share the occurrence key, delays follow
//! `min(initial * 2^(attempt-1), max)`, and the last attempt is dead-lettered.

use diesel::prelude::*;
use serde_json::json;

use crate::helpers::spawn_app;
use crate::support::{db, ts, wait_runs};

#[actix_web::test]
async fn failures_retry_with_backoff_then_dead_letter() {
    let app = spawn_app().await;
    let target =
        json!({"kind": "workflow", "workflow_id": "builtin.fail", "input": {"message": "boom"}});
    let s = app
        .create_schedule(&json!({
            "name": "flaky", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": target,
            "retry": {"max_attempts": 3, "initial_delay_seconds": 1, "max_delay_seconds": 10}
        }))
        .await;
    let id = s["id"].as_str().unwrap();
    let first = app.trigger(id, "retry timeline").await;
    let key = first["occurrence_key"].as_str().unwrap().to_string();
    let runs = wait_runs(&app, id, "three attempts", |r| {
        r.iter().any(|r| r["status"] == "dead_lettered")
    })
    .await;
    let mut runs = runs;
    runs.sort_by_key(|r| r["attempt"].as_i64());
    let attempts: Vec<i64> = runs
        .iter()
        .map(|r| r["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    let statuses: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["failed", "failed", "dead_lettered"]);
    assert!(runs.iter().all(|r| r["occurrence_key"] == key.as_str()));

    let mut full = Vec::new();
    for r in &runs {
        full.push(
            app.get(&format!("/v1/runs/{}", r["id"].as_str().unwrap()))
                .await
                .body,
        );
    }
    for (prev, next, delay) in [(&full[0], &full[1], 1), (&full[1], &full[2], 2)] {
        let gap = ts(&next["retry_available_at"]) - ts(&prev["finished_at"]);
        assert_eq!(
            gap.num_milliseconds(),
            delay * 1000,
            "retry delay after attempt {}",
            prev["attempt"]
        );
        assert!(ts(&next["started_at"]) >= ts(&next["retry_available_at"]));
        assert_eq!(prev["error_text"], "boom");
    }
    assert_eq!(full[2]["error_text"], "boom");

    use wakeplane::store::schema::dead_letters::dsl as d;
    let mut conn = db(&app);
    let rows: Vec<(String, String, i32, String, serde_json::Value)> = d::dead_letters
        .select((
            d::run_id,
            d::occurrence_key,
            d::attempt,
            d::reason,
            d::payload,
        ))
        .load(&mut conn)
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, full[2]["id"].as_str().unwrap());
    assert_eq!(rows[0].1, key);
    assert_eq!(rows[0].2, 3);
    assert_eq!(rows[0].3, "boom");
    assert_eq!(rows[0].4, target);
    let status = app.get("/v1/status").await.body;
    assert_eq!(status["runs"]["dead_letter"], 1);
}
