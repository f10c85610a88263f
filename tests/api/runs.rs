use serde_json::{json, Value};

use crate::helpers::{schedule_body, spawn_app};

#[actix_web::test]
async fn trigger_records_a_manual_run() {
    let app = spawn_app().await;
    let s = app.create_schedule(&schedule_body("manual")).await;
    let id = s["id"].as_str().unwrap();
    let t = app.trigger(id, "  operator asked  ").await;
    let run_id = t["run_id"].as_str().unwrap();
    assert!(run_id.starts_with("run_"));
    assert_eq!(t["schedule_id"], id);
    assert_eq!(t["occurrence_key"], format!("manual:{run_id}"));
    assert!(t["status"].is_string());
    assert!(t["created_at"].is_string());

    let run = app.get(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(run.status, 200);
    assert_eq!(run.body["trigger_reason"], "operator asked");
    assert_eq!(run.body["attempt"], 1);
    assert_eq!(run.body["occurrence_key"], t["occurrence_key"]);
    for key in [
        "nominal_time",
        "due_time",
        "claimed_by_worker_id",
        "claim_expires_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "http_status_code",
        "exit_code",
        "result_json",
        "error_text",
        "retry_available_at",
        "created_at",
        "updated_at",
    ] {
        assert!(run.body.get(key).is_some(), "run lacks {key}: {}", run.body);
    }
    // The cadence is untouched.
    let after = app.get(&format!("/v1/schedules/{id}")).await.body;
    assert_eq!(after["next_run_at"], s["next_run_at"]);

    let receipts = app.get(&format!("/v1/runs/{run_id}/receipts")).await;
    assert_eq!(receipts.status, 200);
    assert!(receipts.body["items"].is_array());
}

#[actix_web::test]
async fn trigger_needs_a_non_blank_reason_and_works_while_paused() {
    let app = spawn_app().await;
    let s = app.create_schedule(&schedule_body("reasons")).await;
    let path = format!("/v1/schedules/{}/trigger", s["id"].as_str().unwrap());
    app.post(&path, &json!({"reason": "   "}))
        .await
        .assert_error(400, "bad_request");
    app.post(&path, &json!({}))
        .await
        .assert_error(400, "bad_request");
    app.post_raw(&path, None, Vec::new())
        .await
        .assert_error(400, "bad_request");
    app.post(&path, &json!({"reason": 5}))
        .await
        .assert_error(400, "bad_request");
    app.post(
        &format!("/v1/schedules/{}/pause", s["id"].as_str().unwrap()),
        &json!({}),
    )
    .await;
    let r = app
        .post(&path, &json!({"reason": "paused but needed"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[actix_web::test]
async fn runs_page_and_filter_by_schedule_and_status() {
    let app = spawn_app().await;
    let a = app.create_schedule(&schedule_body("runs-a")).await;
    let b = app.create_schedule(&schedule_body("runs-b")).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let mut a_runs = Vec::new();
    for i in 0..7 {
        a_runs.push(
            app.trigger(a, &format!("a{i}")).await["run_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for i in 0..3 {
        app.trigger(b, &format!("b{i}")).await;
    }
    let (all, pages) = app.collect_pages("/v1/runs", 4).await;
    assert_eq!(all.len(), 10);
    assert_eq!(pages, 3);
    let unique: std::collections::HashSet<&str> =
        all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(unique.len(), 10);
    for key in [
        "id",
        "schedule_id",
        "occurrence_key",
        "nominal_time",
        "status",
        "attempt",
        "started_at",
        "finished_at",
        "duration_ms",
        "created_at",
        "updated_at",
    ] {
        assert!(all[0].get(key).is_some(), "summary lacks {key}");
    }

    let (only_a, _) = app
        .collect_pages(&format!("/v1/runs?schedule_id={a}"), 3)
        .await;
    let got: Vec<&str> = only_a.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut want: Vec<&str> = a_runs.iter().map(String::as_str).collect();
    want.reverse();
    assert_eq!(got, want);
    let (nested, _) = app
        .collect_pages(&format!("/v1/schedules/{a}/runs"), 2)
        .await;
    let nested: Vec<&str> = nested.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(nested, want);

    // Once every run has ended, the status filter partitions them.
    app.poll(
        "/v1/runs?limit=500",
        std::time::Duration::from_secs(20),
        |b| {
            b["items"]
                .as_array()
                .is_some_and(|items| items.iter().all(|r| r["status"] == "succeeded"))
        },
    )
    .await;

    // Status filter: every run listed has that status, and the counts add up.
    let mut total = 0;
    for status in [
        "pending",
        "claimed",
        "running",
        "succeeded",
        "failed",
        "retry_scheduled",
        "dead_lettered",
        "cancelled",
        "skipped",
    ] {
        let (items, _) = app
            .collect_pages(&format!("/v1/runs?status={status}"), 50)
            .await;
        assert!(items.iter().all(|r| r["status"] == status));
        total += items.len();
    }
    assert_eq!(total, 10);
    let (succeeded, _) = app
        .collect_pages(&format!("/v1/runs?schedule_id={a}&status=succeeded"), 5)
        .await;
    assert_eq!(succeeded.len(), 7);
    let (none, _) = app
        .collect_pages(&format!("/v1/runs?schedule_id={b}&status=skipped"), 5)
        .await;
    assert_eq!(none, Vec::<Value>::new());
    app.get("/v1/schedules/sch_missing/runs")
        .await
        .assert_error(404, "not_found");
    app.get(&format!("/v1/schedules/{a}/runs?status=nope"))
        .await
        .assert_error(400, "bad_request");
}
