//! Schedule controls beyond cron (issue 11) as the API shows them: pause notes, limited
//! schedules, jitter and backfill bounds, and a precise field in every validation error.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{schedule_body, spawn_app};

#[actix_web::test]
async fn pause_notes_are_shown_replaced_and_cleared_on_resume() {
    let app = spawn_app().await;
    let s = app.create_schedule(&schedule_body("noted")).await;
    let id = s["id"].as_str().unwrap();
    assert_eq!(s["pause_note"], Value::Null);

    let r = app
        .post(
            &format!("/v1/schedules/{id}/pause"),
            &json!({"note": "  warehouse migration  "}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["pause_note"], "warehouse migration");
    let first_paused_at = r.body["paused_at"].clone();
    let got = app.get(&format!("/v1/schedules/{id}")).await.body;
    assert_eq!(got["pause_note"], "warehouse migration");

    // Pausing again with a note replaces it and keeps the first paused_at; without one
    // it keeps the note.
    let r = app
        .post(
            &format!("/v1/schedules/{id}/pause"),
            &json!({"note": "still migrating"}),
        )
        .await;
    assert_eq!(r.body["pause_note"], "still migrating");
    assert_eq!(r.body["paused_at"], first_paused_at);
    let r = app
        .post_raw(&format!("/v1/schedules/{id}/pause"), None, Vec::new())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["pause_note"], "still migrating");

    let long = "x".repeat(1025);
    let r = app
        .post(&format!("/v1/schedules/{id}/pause"), &json!({"note": long}))
        .await;
    r.assert_error(400, "validation_failed");
    assert_eq!(r.detail_fields(), ["note"]);
    app.post(&format!("/v1/schedules/{id}/pause"), &json!({"nope": 1}))
        .await
        .assert_error(400, "bad_request");

    let r = app
        .post(&format!("/v1/schedules/{id}/resume"), &json!({}))
        .await;
    assert_eq!(r.status, 200);
    let got = app.get(&format!("/v1/schedules/{id}")).await.body;
    assert_eq!(
        got["pause_note"],
        Value::Null,
        "resume clears the note: {got}"
    );
    assert_eq!(got["paused_at"], Value::Null);
}

#[actix_web::test]
async fn each_control_validation_error_names_its_field() {
    let app = spawn_app().await;
    let mut body = schedule_body("bad-controls");
    body["max_occurrences"] = json!(0);
    body["policy"] = json!({"jitter_seconds": 3601});
    let r = app.post("/v1/schedules", &body).await;
    r.assert_error(400, "validation_failed");
    assert_eq!(
        r.detail_fields(),
        ["policy.jitter_seconds", "max_occurrences"]
    );
    body["max_occurrences"] = json!(-1);
    body["policy"] = json!({"jitter_seconds": -1});
    let r = app.post("/v1/schedules", &body).await;
    assert_eq!(
        r.detail_fields(),
        ["policy.jitter_seconds", "max_occurrences"]
    );

    let s = app.create_schedule(&schedule_body("window")).await;
    let path = format!("/v1/schedules/{}/backfill", s["id"].as_str().unwrap());
    let cases: [(Value, &[&str]); 7] = [
        (json!({}), &["start", "end", "reason"]),
        (
            json!({"start": "2021-01-01", "end": "2021-01-02T00:00:00Z", "reason": "r"}),
            &["start"],
        ),
        (
            json!({"start": "2021-01-02T00:00:00Z", "end": "2021-01-02T00:00:00Z", "reason": "r"}),
            &["start"],
        ),
        (
            json!({"start": "2021-01-01T00:00:00Z", "end": "2999-01-01T00:00:00Z", "reason": "r"}),
            &["end"],
        ),
        (
            json!({"start": "2021-01-01T00:00:00Z", "end": "2021-01-02T00:00:00Z", "reason": " "}),
            &["reason"],
        ),
        // Daily at 02:00 over four years: more than 1,000 fire times.
        (
            json!({"start": "2017-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z", "reason": "r"}),
            &["end"],
        ),
        (
            json!({"start": "2021-01-01T00:00:00Z", "reason": "r"}),
            &["end"],
        ),
    ];
    for (body, fields) in cases {
        let r = app.post(&path, &body).await;
        r.assert_error(400, "validation_failed");
        assert_eq!(r.detail_fields(), fields, "{body}");
    }
    app.post(&path, &json!({"start": 5, "end": "x", "reason": "r"}))
        .await
        .assert_error(400, "bad_request");
    app.post(
        "/v1/schedules/sch_01JNOSUCHSCHEDULE000000000/backfill",
        &json!({"start": "2021-01-01T00:00:00Z", "end": "2021-01-02T00:00:00Z", "reason": "r"}),
    )
    .await
    .assert_error(404, "not_found");
    let nothing_created = app
        .get(&format!(
            "/v1/runs?schedule_id={}",
            s["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(nothing_created.body["items"], json!([]));
}

#[actix_web::test]
async fn a_limited_schedule_finishes_and_a_new_limit_starts_the_count_again() {
    let app = spawn_app().await;
    let mut body = schedule_body("three-times");
    body["schedule"] = json!({"kind": "interval", "every_seconds": 1});
    body["max_occurrences"] = json!(3);
    let s = app.create_schedule(&body).await;
    let id = s["id"].as_str().unwrap().to_string();
    assert_eq!(s["max_occurrences"], 3);
    assert_eq!(s["occurrences_remaining"], 3);
    let upcoming = app.get(&format!("/v1/schedules/{id}/upcoming")).await.body;
    assert_eq!(
        upcoming["items"].as_array().unwrap().len(),
        3,
        "no more than are left: {upcoming}"
    );

    let done = app
        .poll(
            &format!("/v1/schedules/{id}"),
            Duration::from_secs(20),
            |s| s["occurrences_remaining"] == 0 && s["actor"]["state"] == "finished",
        )
        .await;
    assert_eq!(done["next_run_at"], Value::Null, "{done}");
    assert_eq!(
        app.get(&format!("/v1/schedules/{id}/upcoming")).await.body["items"],
        json!([])
    );
    // Past the point where a fourth would have fired, there are still three.
    let fourth_would_be = chrono::Utc::now() + chrono::Duration::milliseconds(2500);
    while chrono::Utc::now() < fourth_would_be {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let runs = app.get(&format!("/v1/runs?schedule_id={id}")).await.body;
    assert_eq!(runs["items"].as_array().unwrap().len(), 3, "{runs}");

    // Manual triggers still work and do not count.
    let t = app.trigger(&id, "after the limit").await;
    app.poll(
        &format!("/v1/runs/{}", t["run_id"].as_str().unwrap()),
        Duration::from_secs(20),
        |r| r["status"] == "succeeded",
    )
    .await;
    assert_eq!(
        app.get(&format!("/v1/schedules/{id}")).await.body["occurrences_remaining"],
        0
    );

    // A PATCH that sets max_occurrences starts the count again; one that does not, keeps it.
    let r = app
        .patch(
            &format!("/v1/schedules/{id}"),
            &json!({"description_free": 1}),
        )
        .await;
    r.assert_error(400, "bad_request");
    let r = app
        .patch(
            &format!("/v1/schedules/{id}"),
            &json!({"policy": {"timeout_seconds": 30}}),
        )
        .await;
    assert_eq!(r.body["occurrences_remaining"], 0, "{}", r.body);
    assert_eq!(r.body["next_run_at"], Value::Null);
    let r = app
        .patch(
            &format!("/v1/schedules/{id}"),
            &json!({"max_occurrences": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["occurrences_remaining"], 1);
    assert!(r.body["next_run_at"].is_string(), "{}", r.body);
    app.poll(
        &format!("/v1/schedules/{id}"),
        Duration::from_secs(20),
        |s| s["occurrences_remaining"] == 0 && s["actor"]["state"] == "finished",
    )
    .await;
    let r = app
        .patch(
            &format!("/v1/schedules/{id}"),
            &json!({"max_occurrences": null}),
        )
        .await;
    assert_eq!(r.body["occurrences_remaining"], Value::Null, "{}", r.body);
    assert!(
        r.body["next_run_at"].is_string(),
        "unlimited again: {}",
        r.body
    );
}
