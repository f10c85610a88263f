//! The executor pool's batch transactions against a real database: a claim batch
//! (`leases::claim_and_start`) never exceeds a schedule's capacity, never claims what is
//! not due or not waiting, and starts exactly what it won; a finish batch
//! (`leases::finish`) records each ending with its retry row or dead letter, releases
//! every lease, and never touches a run that is not this worker's; a materialise batch
//! (`schedules::materialise_due_batch`) answers each schedule in request order.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use serde_json::json;
use wakeplane::domain::ids::ScheduleId;
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
            ScheduleId(&schedule_id),
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
    // Nor does anyone win a run that is already running: it is no longer waiting, so it
    // is `Gone` (whatever the capacity), never `NoCapacity`, which would tell the claimant
    // to keep it queued for a later slot.
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
    assert!(matches!(same[..], [Claim::Gone]), "{same:?}");
    app.delete(&format!("/v1/schedules/{schedule_id}")).await;
}

#[actix_web::test]
async fn a_finish_batch_records_each_ending_with_its_retry_or_dead_letter() {
    use wakeplane::store::leases::{Completion, Finished};
    use wakeplane::store::schema::dead_letters;
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for (name, attempts) in [("ok", 0), ("retried", 3), ("dead", 0)] {
        let s = app
            .create_schedule(&json!({
                "name": name, "timezone": "UTC",
                "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
                "target": {"kind": "workflow", "workflow_id": "builtin.noop"},
                "retry": {"max_attempts": attempts, "initial_delay_seconds": 60}
            }))
            .await;
        ids.push(s["id"].as_str().unwrap().to_string());
    }
    let mut conn = db(&app);
    let now = Utc::now() - Duration::seconds(1);
    let rows: Vec<RunRow> = ids
        .iter()
        .map(|id| {
            RunRow::new(
                ScheduleId(id),
                format!("{id}:batch"),
                now,
                now,
                RunStatus::Pending,
                1,
                now,
            )
        })
        .collect();
    runs::insert_many_if_absent(&mut conn, &rows).unwrap();
    let requests: Vec<ClaimRequest> = rows
        .iter()
        .map(|r| ClaimRequest {
            run_id: r.id.clone(),
            schedule_id: r.schedule_id.clone(),
        })
        .collect();
    let claims = leases::claim_and_start(
        &mut conn,
        &requests,
        "wrk_fin",
        Duration::seconds(30),
        Utc::now,
    )
    .unwrap();
    assert!(
        claims.iter().all(|c| matches!(c, Claim::Won(_))),
        "{claims:?}"
    );
    let ending = |status, error: Option<&str>| Completion {
        status,
        http_status_code: None,
        exit_code: None,
        result_json: None,
        error_text: error.map(str::to_string),
        receipts: Vec::new(),
    };
    let items = vec![
        (rows[0].id.clone(), ending(RunStatus::Succeeded, None)),
        (rows[1].id.clone(), ending(RunStatus::Failed, Some("boom"))),
        (
            rows[2].id.clone(),
            ending(RunStatus::Failed, Some("gone for good")),
        ),
        (
            "run_not_ours".to_string(),
            ending(RunStatus::Succeeded, None),
        ),
    ];
    let done = leases::finish(&mut conn, items, "wrk_fin", Utc::now()).unwrap();
    assert!(
        matches!(
            done[0],
            Finished::Recorded {
                status: RunStatus::Succeeded,
                retry: None
            }
        ),
        "{done:?}"
    );
    assert!(
        matches!(
            &done[1],
            Finished::Recorded {
                status: RunStatus::Failed,
                retry: Some(_)
            }
        ),
        "{done:?}"
    );
    assert!(
        matches!(
            done[2],
            Finished::Recorded {
                status: RunStatus::DeadLettered,
                retry: None
            }
        ),
        "{done:?}"
    );
    assert_eq!(done[3], Finished::Lost);
    let retries: Vec<(String, i32)> = schedule_runs::table
        .filter(schedule_runs::occurrence_key.eq(&rows[1].occurrence_key))
        .select((schedule_runs::status, schedule_runs::attempt))
        .order(schedule_runs::attempt.asc())
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        retries,
        [
            ("failed".to_string(), 1),
            ("retry_scheduled".to_string(), 2)
        ]
    );
    let dead: i64 = dead_letters::table
        .filter(dead_letters::run_id.eq(&rows[2].id))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(dead, 1);
    let leases_left: i64 = worker_leases::table.count().get_result(&mut conn).unwrap();
    assert_eq!(leases_left, 0, "the batch released every lease");
    // A second recording of the same runs writes nothing.
    let again = leases::finish(
        &mut conn,
        vec![(rows[0].id.clone(), ending(RunStatus::Failed, None))],
        "wrk_fin",
        Utc::now(),
    )
    .unwrap();
    assert_eq!(again, [Finished::Lost]);
}

#[actix_web::test]
async fn a_materialise_batch_answers_each_schedule_in_request_order() {
    use chrono::{Datelike, TimeZone};
    use wakeplane::store::schedules;
    use wakeplane::store::schema::schedules as sch;
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["zz-late", "aa-late"] {
        let s = app
            .create_schedule(&json!({
                "name": name, "timezone": "UTC",
                "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
                "target": {"kind": "workflow", "workflow_id": "builtin.noop"}
            }))
            .await;
        ids.push(s["id"].as_str().unwrap().to_string());
    }
    let mut conn = db(&app);
    // The newest New Year at or before now: what `0 0 1 1 *` last fired for.
    let missed = Utc
        .with_ymd_and_hms(Utc::now().year(), 1, 1, 0, 0, 0)
        .unwrap();
    // Due since New Year, behind the actors' backs (updated_at untouched: no reload).
    diesel::update(sch::table.filter(sch::id.eq_any(&ids)))
        .set(sch::next_run_at.eq(Some(missed)))
        .execute(&mut conn)
        .unwrap();
    let now = Utc::now();
    let requests = vec![
        (ids[0].clone(), now, None),
        ("sch_missing".to_string(), now, None),
        (ids[1].clone(), now, None),
    ];
    let results = schedules::materialise_due_batch(&mut conn, &requests).unwrap();
    assert_eq!(results.len(), 3);
    for (i, r) in [(0, &results[0]), (2, &results[2])] {
        let m = r.as_ref().unwrap_or_else(|e| panic!("{i}: {e}"));
        assert_eq!(
            m.record.id, requests[i].0,
            "answers follow the request order"
        );
        assert_eq!(m.runnable.len(), 1, "the newest missed occurrence runs");
        assert_eq!(m.runnable[0].nominal_time, missed);
        assert!(m.record.next_run_at.unwrap() > now);
    }
    assert!(matches!(
        results[1],
        Err(wakeplane::store::StoreError::NotFound)
    ));
    // The batch's one UPDATE stored each schedule's progress as answered.
    for (i, r) in [(0, &results[0]), (2, &results[2])] {
        let stored: Option<chrono::DateTime<Utc>> = sch::table
            .find(&requests[i].0)
            .select(sch::next_run_at)
            .first(&mut conn)
            .unwrap();
        assert_eq!(stored, r.as_ref().unwrap().record.next_run_at);
    }
    // Idempotent: a second wake-up finds nothing due.
    let again = schedules::materialise_due_batch(&mut conn, &requests[..1]).unwrap();
    assert!(again[0].as_ref().unwrap().runnable.is_empty());

    // One schedule asked for twice in one batch: the second request is planned from the
    // first's outcome, so the occurrence is written once.
    diesel::update(sch::table.filter(sch::id.eq_any(&ids)))
        .set(sch::next_run_at.eq(Some(missed)))
        .execute(&mut conn)
        .unwrap();
    diesel::delete(schedule_runs::table.filter(schedule_runs::schedule_id.eq(&ids[1])))
        .execute(&mut conn)
        .unwrap();
    let twice = vec![(ids[1].clone(), now, None), (ids[1].clone(), now, None)];
    let results = schedules::materialise_due_batch(&mut conn, &twice).unwrap();
    let runnable: Vec<usize> = results
        .iter()
        .map(|r| r.as_ref().unwrap().runnable.len())
        .collect();
    assert_eq!(runnable, [1, 0], "the occurrence runs once");
}
