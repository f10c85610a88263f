//! The batch claim (`leases::claim_and_start`) against a real database: one batch never
//! exceeds a schedule's capacity, never claims what is not due or not waiting, and starts
//! exactly what it won.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use serde_json::json;
use wakeplane::domain::RunStatus;
use wakeplane::store::leases::{self, Claim, ClaimRequest};
use wakeplane::store::runs::{self, RunRow};
use wakeplane::store::schema::{schedule_runs, worker_leases};

use crate::helpers::spawn_app;
use crate::support::db;

#[actix_web::test]
async fn a_batch_claims_within_capacity_and_only_due_waiting_runs() {
    let app = spawn_app().await;
    let s = app
        .create_schedule(&json!({
            "name": "batch", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": {"kind": "workflow", "workflow_id": "builtin.noop"},
            "policy": {"overlap": "allow", "max_concurrency": 2}
        }))
        .await;
    let schedule_id = s["id"].as_str().unwrap().to_string();
    let mut conn = db(&app);
    let now = Utc::now();
    // Four due runs, one due in an hour. Inserted behind the actor's back, so only this
    // test claims them.
    let mut rows = Vec::new();
    for k in 0..5 {
        let due = if k == 4 {
            now + Duration::hours(1)
        } else {
            now - Duration::seconds(1)
        };
        rows.push(RunRow::new(
            &schedule_id,
            format!("{schedule_id}:test-{k}"),
            due,
            due,
            RunStatus::Pending,
            1,
            now,
        ));
    }
    runs::insert_many_if_absent(&mut conn, &rows).unwrap();
    let request = |r: &RunRow| ClaimRequest {
        run_id: r.id.clone(),
        schedule_id: schedule_id.clone(),
    };
    let mut batch: Vec<ClaimRequest> = rows.iter().map(request).collect();
    batch.push(ClaimRequest {
        run_id: "run_missing".into(),
        schedule_id: "sch_missing".into(),
    });
    // The future one first: not due, so it must not take a capacity slot from the others.
    batch.rotate_right(2);
    let claims = leases::claim_and_start(
        &mut conn,
        &batch,
        "wrk_batch",
        Duration::seconds(30),
        Utc::now,
    )
    .unwrap();
    let kinds: Vec<&str> = claims
        .iter()
        .map(|c| match c {
            Claim::Won(run) => {
                assert_eq!(run.status, "running");
                assert!(run.started_at.is_some());
                "won"
            }
            Claim::NoCapacity => "full",
            Claim::Gone => "gone",
        })
        .collect();
    // batch order: run 4 (future), sch_missing, runs 0..3.
    assert_eq!(
        kinds,
        ["gone", "gone", "won", "won", "full", "full"],
        "{claims:?}"
    );

    let running: Vec<(String, Option<String>)> = schedule_runs::table
        .filter(schedule_runs::status.eq("running"))
        .select((schedule_runs::id, schedule_runs::claimed_by_worker_id))
        .load(&mut conn)
        .unwrap();
    assert_eq!(running.len(), 2);
    assert!(running
        .iter()
        .all(|(_, w)| w.as_deref() == Some("wrk_batch")));
    let leased: i64 = worker_leases::table
        .filter(worker_leases::worker_id.eq("wrk_batch"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(leased, 2, "one lease per won run");

    // Capacity is taken now: a second claimant gets nothing.
    let again = leases::claim_and_start(
        &mut conn,
        &[request(&rows[2]), request(&rows[3])],
        "wrk_other",
        Duration::seconds(30),
        Utc::now,
    )
    .unwrap();
    assert!(
        again.iter().all(|c| matches!(c, Claim::NoCapacity)),
        "{again:?}"
    );
    // Nor does anyone win a run that is already running.
    let won_id = running[0].0.clone();
    let same = leases::claim_and_start(
        &mut conn,
        &[ClaimRequest {
            run_id: won_id,
            schedule_id: schedule_id.clone(),
        }],
        "wrk_other",
        Duration::seconds(30),
        Utc::now,
    )
    .unwrap();
    assert!(
        matches!(same[..], [Claim::NoCapacity] | [Claim::Gone]),
        "{same:?}"
    );
    app.delete(&format!("/v1/schedules/{schedule_id}")).await;
}
