//! Every error code of API.md's table that the foundation can produce, in the envelope.

use serde_json::json;

use crate::helpers::{schedule_body, spawn_app};

#[actix_web::test]
async fn unknown_routes_are_404_in_the_envelope() {
    let app = spawn_app().await;
    app.get("/nope").await.assert_error(404, "not_found");
    app.get("/v1/schedules/sch_doesnotexist")
        .await
        .assert_error(404, "not_found");
    app.get("/v1/schedules/not-an-id")
        .await
        .assert_error(404, "not_found");
    app.get("/v1/runs/run_doesnotexist")
        .await
        .assert_error(404, "not_found");
    app.get("/v1/runs/run_doesnotexist/receipts")
        .await
        .assert_error(404, "not_found");
    app.delete("/v1/schedules/sch_doesnotexist")
        .await
        .assert_error(404, "not_found");
    app.post("/v1/schedules/sch_doesnotexist/pause", &json!({}))
        .await
        .assert_error(404, "not_found");
    app.post(
        "/v1/schedules/sch_doesnotexist/trigger",
        &json!({"reason": "x"}),
    )
    .await
    .assert_error(404, "not_found");
    app.patch("/v1/schedules/sch_doesnotexist", &json!({"name": "x"}))
        .await
        .assert_error(404, "not_found");
}

#[actix_web::test]
async fn wrong_methods_are_405_in_the_envelope() {
    let app = spawn_app().await;
    app.delete("/v1/runs")
        .await
        .assert_error(405, "method_not_allowed");
    app.post("/healthz", &json!({}))
        .await
        .assert_error(405, "method_not_allowed");
    app.put("/v1/schedules", &json!({}))
        .await
        .assert_error(405, "method_not_allowed");
    app.delete("/v1/schedules/sch_x/pause")
        .await
        .assert_error(405, "method_not_allowed");
}

#[actix_web::test]
async fn malformed_and_mistyped_json_is_400_bad_request() {
    let app = spawn_app().await;
    let r = app
        .post_raw(
            "/v1/schedules",
            Some("application/json"),
            b"{\"name\": ".to_vec(),
        )
        .await;
    r.assert_error(400, "bad_request");
    let mut wrong = schedule_body("x");
    wrong["enabled"] = json!("yes");
    app.post("/v1/schedules", &wrong)
        .await
        .assert_error(400, "bad_request");
    let mut unknown = schedule_body("x");
    unknown["nmae"] = json!("typo");
    let r = app.post("/v1/schedules", &unknown).await;
    r.assert_error(400, "bad_request");
    assert!(
        r.body["error"].as_str().unwrap().contains("nmae"),
        "{}",
        r.body
    );
    app.post_raw("/v1/schedules", Some("application/json"), Vec::new())
        .await
        .assert_error(400, "bad_request");
    app.post("/v1/schedules", &json!([1, 2]))
        .await
        .assert_error(400, "bad_request");
}

#[actix_web::test]
async fn non_json_content_type_is_415() {
    let app = spawn_app().await;
    app.post_raw("/v1/schedules", Some("text/plain"), b"{}".to_vec())
        .await
        .assert_error(415, "unsupported_media_type");
    app.post_raw(
        "/v1/schedules",
        Some("application/x-www-form-urlencoded"),
        b"name=x".to_vec(),
    )
    .await
    .assert_error(415, "unsupported_media_type");
}

#[actix_web::test]
async fn bodies_over_one_mebibyte_are_413() {
    let app = spawn_app().await;
    let mut body = schedule_body("big");
    body["target"]["input"] = json!({"blob": "x".repeat(1024 * 1024 + 10)});
    app.post("/v1/schedules", &body)
        .await
        .assert_error(413, "payload_too_large");
    // Nothing was written.
    let list = app.get("/v1/schedules").await;
    assert_eq!(list.body["items"], json!([]));
}

#[actix_web::test]
async fn target_parts_over_64_kib_are_validation_errors() {
    let app = spawn_app().await;
    let mut body = schedule_body("big-input");
    body["target"]["input"] = json!({"blob": "x".repeat(70 * 1024)});
    let r = app.post("/v1/schedules", &body).await;
    r.assert_error(400, "validation_failed");
    assert_eq!(r.detail_fields(), vec!["target.input"]);
}

#[actix_web::test]
async fn bad_query_parameters_are_400() {
    let app = spawn_app().await;
    app.get("/v1/schedules?enabled=maybe")
        .await
        .assert_error(400, "bad_request");
    app.get("/v1/schedules?cursor=garbage!!")
        .await
        .assert_error(400, "bad_request");
    app.get("/v1/runs?status=done")
        .await
        .assert_error(400, "bad_request");
    app.get("/v1/runs?cursor=bm9wZQ")
        .await
        .assert_error(400, "bad_request");
    let r = app.get("/v1/runs?stauts=failed").await;
    r.assert_error(400, "bad_request");
    assert!(r.body["error"].as_str().unwrap().contains("stauts"));
}

#[actix_web::test]
async fn a_broken_schema_gives_a_500_without_sql() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let app = spawn_app().await;
    let mut conn = diesel::PgConnection::establish(&app.database_url).unwrap();
    conn.batch_execute("ALTER TABLE schedules DROP COLUMN timezone")
        .unwrap();
    let r = app.get("/v1/schedules").await;
    r.assert_error(500, "internal_error");
    let text = r.body.to_string().to_lowercase();
    assert!(
        !text.contains("select") && !text.contains("column"),
        "{text}"
    );
}

#[actix_web::test]
async fn nul_characters_in_bodies_are_400_not_500() {
    // PostgreSQL cannot store U+0000 in text or jsonb; the API must refuse it up front.
    let app = spawn_app().await;
    let mut body = schedule_body("nul");
    body["name"] = json!("n\u{0}l");
    let r = app.post("/v1/schedules", &body).await;
    r.assert_error(400, "bad_request");
    assert!(
        r.body["error"].as_str().unwrap().contains("\"name\""),
        "{}",
        r.body
    );
    let mut body = schedule_body("nul-input");
    body["target"] =
        json!({"kind": "workflow", "workflow_id": "builtin.echo", "input": {"k": ["a\u{0}"]}});
    let r = app.post("/v1/schedules", &body).await;
    r.assert_error(400, "bad_request");
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("target.input.k[0]"),
        "{}",
        r.body
    );
    let created = app.create_schedule(&schedule_body("clean")).await;
    let id = created["id"].as_str().unwrap();
    app.post(
        &format!("/v1/schedules/{id}/trigger"),
        &json!({"reason": "why\u{0}"}),
    )
    .await
    .assert_error(400, "bad_request");
    app.patch(&format!("/v1/schedules/{id}"), &json!({"name": "\u{0}"}))
        .await
        .assert_error(400, "bad_request");
    assert_eq!(
        app.get("/v1/schedules").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[actix_web::test]
async fn arrays_odd_instants_and_out_of_range_cursors_are_400() {
    let app = spawn_app().await;
    // serde would fill a struct from an array by position; the contract wants an object.
    app.post(
        "/v1/schedules",
        &json!(["arr", true, "UTC", {"kind": "interval", "every_seconds": 60}]),
    )
    .await
    .assert_error(400, "bad_request");
    let mut nested = schedule_body("nested-array");
    nested["policy"] = json!(["allow", "skip", 30, 1]);
    let r = app.post("/v1/schedules", &nested).await;
    r.assert_error(400, "bad_request");
    assert!(
        r.body["error"].as_str().unwrap().contains("policy"),
        "{}",
        r.body
    );
    let created = app.create_schedule(&schedule_body("instants")).await;
    let id = created["id"].as_str().unwrap();
    app.post(&format!("/v1/schedules/{id}/trigger"), &json!(["why"]))
        .await
        .assert_error(400, "bad_request");
    for at in [
        "2027-03-03T12:34:60Z",
        "9999-12-31T23:59:59-23:59",
        "0000-01-01T00:00:00+23:59",
    ] {
        let mut body = schedule_body(&format!("at-{at}"));
        body["schedule"] = json!({"kind": "once", "at": at});
        let r = app.post("/v1/schedules", &body).await;
        r.assert_error(400, "validation_failed");
        assert_eq!(r.body["details"][0]["field"], "schedule.at", "{}", r.body);
    }
    // base64url("-8000000000000000000:sch_x"): well formed, outside PostgreSQL's range.
    for path in [
        "/v1/schedules",
        "/v1/runs",
        &format!("/v1/schedules/{id}/runs"),
    ] {
        app.get(&format!(
            "{path}?cursor=LTgwMDAwMDAwMDAwMDAwMDAwMDA6c2NoX3g"
        ))
        .await
        .assert_error(400, "bad_request");
    }
    app.get("/v1/runs?schedule_id=%00")
        .await
        .assert_error(400, "bad_request");
    let r = app.get("/v1/schedules?limit=99999999999999999999").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[actix_web::test]
async fn commands_racing_a_delete_are_404_never_503() {
    let app = spawn_app().await;
    for round in 0..5 {
        let created = app
            .create_schedule(&schedule_body(&format!("race-{round}")))
            .await;
        let id = created["id"].as_str().unwrap().to_string();
        let (one, pause, empty) = (
            format!("/v1/schedules/{id}"),
            format!("/v1/schedules/{id}/pause"),
            json!({}),
        );
        let (a, b, c) =
            futures_util::join!(app.delete(&one), app.post(&pause, &empty), app.delete(&one),);
        for r in [a, b, c] {
            assert!(
                r.status == 200 || r.status == 404,
                "{} {}",
                r.status,
                r.body
            );
        }
    }
}
