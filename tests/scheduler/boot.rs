//! Schedules the Supervisor has no actor for (at boot, or written by another node) get
//! their actors from batched reads: more than one batch of them all start, each from its
//! own row and with its own unfinished runs.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::json;

use crate::helpers::spawn_app;
use crate::support::{count, db, wait_runs};

/// More than one start-up batch (1,000 schedules).
const COPIES: usize = 1500;

#[actix_web::test]
async fn more_than_a_batch_of_new_schedules_all_start_with_their_runs() {
    let app = spawn_app().await;
    let original = app
        .create_schedule(&json!({
            "name": "idle", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": {"kind": "workflow", "workflow_id": "builtin.noop"}
        }))
        .await;
    let original = original["id"].as_str().unwrap();

    // Copies of its row and, in the same transaction, a waiting run for the last copy: the
    // Supervisor sees them all at once, as a node booting with them does.
    let last = format!("sch_copy_{COPIES:05}");
    let mut conn = db(&app);
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        diesel::sql_query(
            "INSERT INTO schedules (id, name, enabled, timezone, schedule_kind, cron_expr,
                every_seconds, anchor_at, once_at, target_kind, target, overlap_policy,
                misfire_policy, timeout_seconds, max_concurrency, retry_max_attempts,
                retry_strategy, retry_initial_delay_seconds, retry_max_delay_seconds, start_at,
                end_at, paused_at, next_run_at, last_run_at, created_at, updated_at)
             SELECT 'sch_copy_' || lpad(g::text, 5, '0'), name || '-' || g, enabled, timezone,
                schedule_kind, cron_expr, every_seconds, anchor_at, once_at, target_kind, target,
                overlap_policy, misfire_policy, timeout_seconds, max_concurrency,
                retry_max_attempts, retry_strategy, retry_initial_delay_seconds,
                retry_max_delay_seconds, start_at, end_at, paused_at, next_run_at, last_run_at,
                now(), now()
             FROM schedules, generate_series(1, $1) g WHERE id = $2",
        )
        .bind::<diesel::sql_types::Integer, _>(COPIES as i32)
        .bind::<diesel::sql_types::Text, _>(original)
        .execute(conn)?;
        diesel::sql_query(
            "INSERT INTO schedule_runs (id, schedule_id, occurrence_key, nominal_time, due_time,
                status, attempt, trigger_reason, created_at, updated_at)
             VALUES ('run_boot', $1, 'manual:run_boot', now(), now(), 'pending', 1,
                'waiting when its actor started', now(), now())",
        )
        .bind::<diesel::sql_types::Text, _>(&last)
        .execute(conn)
    })
    .expect("copies inserted");

    let total = COPIES + 1;
    app.poll("/v1/status", Duration::from_secs(60), |b| {
        b["actors"]["total"] == total
    })
    .await;
    // The last copy's actor read its row: armed for next New Year.
    let view = app
        .poll(
            &format!("/v1/schedules/{last}"),
            Duration::from_secs(30),
            |b| b["actor"]["state"] == "armed",
        )
        .await;
    assert!(
        view["actor"]["next_fire_in_ms"].as_i64().unwrap_or(0) > 0,
        "{view}"
    );
    // Only its actor can hand the waiting run to the pool: it ran, so the actor had it.
    let runs = wait_runs(&app, &last, "the waiting run to succeed", |runs| {
        count(runs, "succeeded") == 1
    })
    .await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["id"], "run_boot");
}
