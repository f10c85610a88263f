use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::helpers::{schedule_body, spawn_app};

/// The first Monday–Friday 06:30 Europe/Berlin strictly after `after`, computed from the
/// zone's own rules (05:30Z in winter, 04:30Z in summer).
fn next_berlin_weekday_0630(after: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{Datelike, Weekday};
    let berlin = chrono_tz::Europe::Berlin;
    let mut day = after.with_timezone(&berlin).date_naive();
    loop {
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            let local = day.and_hms_opt(6, 30, 0).unwrap();
            // 06:30 is never inside a Berlin DST gap or fold (those are at 02:00–03:00).
            let at = local
                .and_local_timezone(berlin)
                .unwrap()
                .with_timezone(&Utc);
            if at > after {
                return at;
            }
        }
        day = day.succ_opt().unwrap();
    }
}

fn ts(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

#[actix_web::test]
async fn create_fills_every_default_and_computes_next_run() {
    let app = spawn_app().await;
    let body = json!({
        "name": "nightly-sync",
        "timezone": "America/Los_Angeles",
        "schedule": {"kind": "cron", "expr": "0 2 * * *"},
        "target": {"kind": "workflow", "workflow_id": "sync.customers", "input": {"source": "crm"}}
    });
    let s = app.create_schedule(&body).await;
    assert!(s["id"].as_str().unwrap().starts_with("sch_"));
    assert_eq!(s["enabled"], true);
    assert_eq!(s["paused_at"], Value::Null);
    assert_eq!(
        s["policy"],
        json!({"overlap": "forbid", "misfire": "run_once_if_late", "timeout_seconds": 300, "max_concurrency": 1, "jitter_seconds": 0})
    );
    assert_eq!(
        s["retry"],
        json!({"max_attempts": 0, "strategy": "exponential", "initial_delay_seconds": 30, "max_delay_seconds": 900})
    );
    assert_eq!(s["schedule"], json!({"kind": "cron", "expr": "0 2 * * *"}));
    assert_eq!(s["target"], body["target"]);
    assert_eq!(s["last_run_at"], Value::Null);
    // 02:00 in Los Angeles is 09:00 or 10:00 UTC depending on DST, and within a day.
    let next = ts(&s["next_run_at"]);
    assert!(next > Utc::now() && next - Utc::now() <= chrono::Duration::hours(24));
    assert!(s["next_run_at"].as_str().unwrap().ends_with(":00:00Z"));
    assert!(s["created_at"].as_str().unwrap().ends_with('Z'));
    // GET returns the same thing.
    let got = app
        .get(&format!("/v1/schedules/{}", s["id"].as_str().unwrap()))
        .await;
    assert_eq!(got.status, 200);
    let mut without_actor = got.body.clone();
    let actor = without_actor
        .as_object_mut()
        .unwrap()
        .remove("actor")
        .expect("actor block");
    assert_eq!(actor["state"], "armed");
    assert_eq!(without_actor, s);
}

#[actix_web::test]
async fn policy_and_retry_defaults_apply_per_omitted_field() {
    let app = spawn_app().await;
    let mut body = schedule_body("partial");
    body["policy"] = json!({"overlap": "allow"});
    body["retry"] = json!({"max_attempts": 3});
    let s = app.create_schedule(&body).await;
    assert_eq!(
        s["policy"],
        json!({"overlap": "allow", "misfire": "run_once_if_late", "timeout_seconds": 300, "max_concurrency": 1, "jitter_seconds": 0})
    );
    assert_eq!(
        s["retry"],
        json!({"max_attempts": 3, "strategy": "exponential", "initial_delay_seconds": 30, "max_delay_seconds": 900})
    );
}

#[actix_web::test]
async fn disabled_on_create_starts_paused() {
    let app = spawn_app().await;
    let mut body = schedule_body("paused-at-birth");
    body["enabled"] = json!(false);
    let s = app.create_schedule(&body).await;
    assert_eq!(s["enabled"], false);
    assert!(s["paused_at"].is_string());
    assert_eq!(s["next_run_at"], Value::Null);
}

#[actix_web::test]
async fn interval_and_once_cadences() {
    let app = spawn_app().await;
    let mut body = schedule_body("every-5m");
    body["schedule"] = json!({"kind": "interval", "every_seconds": 300});
    let s = app.create_schedule(&body).await;
    let anchor = ts(&s["schedule"]["anchor_at"]);
    let created = ts(&s["created_at"]);
    assert!(anchor <= created && created - anchor < chrono::Duration::seconds(1));
    assert_eq!(
        ts(&s["next_run_at"]),
        anchor + chrono::Duration::seconds(300)
    );

    let mut body = schedule_body("future-anchor");
    body["schedule"] =
        json!({"kind": "interval", "every_seconds": 60, "anchor_at": "2031-01-01T00:00:00+01:00"});
    let s = app.create_schedule(&body).await;
    assert_eq!(s["schedule"]["anchor_at"], "2030-12-31T23:00:00Z");
    assert_eq!(s["next_run_at"], "2030-12-31T23:00:00Z");

    let mut body = schedule_body("once");
    body["schedule"] = json!({"kind": "once", "at": "2031-06-01T09:00:00-07:00"});
    let s = app.create_schedule(&body).await;
    assert_eq!(
        s["schedule"],
        json!({"kind": "once", "at": "2031-06-01T16:00:00Z"})
    );
    assert_eq!(s["next_run_at"], "2031-06-01T16:00:00Z");

    let mut body = schedule_body("once-past");
    body["schedule"] = json!({"kind": "once", "at": "2020-06-01T09:00:00Z"});
    let s = app.create_schedule(&body).await;
    assert_eq!(s["next_run_at"], Value::Null);
}

#[actix_web::test]
async fn validation_reports_every_field_at_once() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/v1/schedules",
            &json!({
                "name": "",
                "timezone": "Mars/Olympus",
                "schedule": {"kind": "cron", "expr": "0 0 30 2 *"},
                "target": {"kind": "http", "method": "FETCH", "url": "not a url"},
                "policy": {"overlap": "sometimes", "misfire": "never", "timeout_seconds": 0, "max_concurrency": 0},
                "retry": {"max_attempts": -1, "strategy": "linear", "initial_delay_seconds": 0},
                "start_at": "2031-01-02T00:00:00Z",
                "end_at": "2031-01-01T00:00:00Z"
            }),
        )
        .await;
    r.assert_error(400, "validation_failed");
    let fields: HashSet<String> = r.detail_fields().into_iter().collect();
    for f in [
        "name",
        "timezone",
        "schedule.expr",
        "target.method",
        "target.url",
        "policy.overlap",
        "policy.misfire",
        "policy.timeout_seconds",
        "policy.max_concurrency",
        "retry.max_attempts",
        "retry.strategy",
        "start_at",
    ] {
        assert!(
            fields.contains(f),
            "{f} missing from {:?}",
            r.body["details"]
        );
    }
    for d in r.body["details"].as_array().unwrap() {
        assert!(d["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Nothing was written.
    assert_eq!(app.get("/v1/schedules").await.body["items"], json!([]));
}

#[actix_web::test]
async fn cadence_specific_validation() {
    let app = spawn_app().await;
    for (schedule, field) in [
        (
            json!({"kind": "interval", "every_seconds": 0}),
            "schedule.every_seconds",
        ),
        (json!({"kind": "interval"}), "schedule.every_seconds"),
        (json!({"kind": "once"}), "schedule.at"),
        (
            json!({"kind": "once", "at": "2031-06-01 09:00"}),
            "schedule.at",
        ),
        (json!({"kind": "weekly"}), "schedule.kind"),
        (
            json!({"kind": "cron", "expr": "* * * * * *"}),
            "schedule.expr",
        ),
        (json!({"kind": "cron", "expr": "@reboot"}), "schedule.expr"),
        (
            json!({"kind": "cron", "expr": "0 0 L * *"}),
            "schedule.expr",
        ),
    ] {
        let mut body = schedule_body("c");
        body["schedule"] = schedule.clone();
        let r = app.post("/v1/schedules", &body).await;
        r.assert_error(400, "validation_failed");
        assert_eq!(r.detail_fields(), vec![field.to_string()], "{schedule}");
    }
    for (target, field) in [
        (json!({"kind": "shell"}), "target.command"),
        (
            json!({"kind": "workflow", "workflow_id": " "}),
            "target.workflow_id",
        ),
        (
            json!({"kind": "http", "method": "GET", "url": "ftp://x/y"}),
            "target.url",
        ),
        (json!({"kind": "carrier-pigeon"}), "target.kind"),
    ] {
        let mut body = schedule_body("t");
        body["target"] = target.clone();
        let r = app.post("/v1/schedules", &body).await;
        r.assert_error(400, "validation_failed");
        assert_eq!(r.detail_fields(), vec![field.to_string()], "{target}");
    }
    let mut body = schedule_body("r");
    body["retry"] = json!({"initial_delay_seconds": 100, "max_delay_seconds": 10});
    let r = app.post("/v1/schedules", &body).await;
    assert_eq!(
        r.detail_fields(),
        vec!["retry.max_delay_seconds".to_string()]
    );
}

#[actix_web::test]
async fn http_methods_are_stored_upper_case() {
    let app = spawn_app().await;
    let mut body = schedule_body("hook");
    body["target"] = json!({"kind": "http", "method": "post", "url": "https://example.invalid/hook",
                             "headers": {"X-Token": "a"}, "body": {"k": [1, 2]}});
    let s = app.create_schedule(&body).await;
    assert_eq!(s["target"]["method"], "POST");
    assert_eq!(s["target"]["headers"], json!({"X-Token": "a"}));
    assert_eq!(s["target"]["body"], json!({"k": [1, 2]}));
}

#[actix_web::test]
async fn duplicate_names_conflict_on_create_put_and_patch() {
    let app = spawn_app().await;
    app.create_schedule(&schedule_body("taken")).await;
    let other = app.create_schedule(&schedule_body("other")).await;
    let id = other["id"].as_str().unwrap();
    app.post("/v1/schedules", &schedule_body("taken"))
        .await
        .assert_error(409, "conflict");
    app.put(&format!("/v1/schedules/{id}"), &schedule_body("taken"))
        .await
        .assert_error(409, "conflict");
    app.patch(&format!("/v1/schedules/{id}"), &json!({"name": "taken"}))
        .await
        .assert_error(409, "conflict");
    // The loser is unchanged.
    let got = app.get(&format!("/v1/schedules/{id}")).await;
    assert_eq!(got.body["name"], "other");
    // Renaming to its own name is fine.
    let r = app
        .patch(&format!("/v1/schedules/{id}"), &json!({"name": "other"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[actix_web::test]
async fn paging_never_repeats_or_skips_and_filters_apply() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let mut body = schedule_body(&format!("page-{i:02}"));
        body["enabled"] = json!(i % 3 != 0);
        ids.push(
            app.create_schedule(&body).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let (items, pages) = app.collect_pages("/v1/schedules", 5).await;
    assert_eq!(pages, 3);
    let got: Vec<&str> = items.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.reverse(); // newest first
    assert_eq!(got, expected);
    // Summary shape.
    let first = &items[0];
    for key in [
        "id",
        "name",
        "enabled",
        "timezone",
        "schedule",
        "target_kind",
        "paused_at",
        "next_run_at",
        "last_run_at",
        "created_at",
        "updated_at",
    ] {
        assert!(first.get(key).is_some(), "summary lacks {key}: {first}");
    }
    assert_eq!(first["target_kind"], "workflow");
    assert!(first.get("target").is_none());

    let (enabled, _) = app.collect_pages("/v1/schedules?enabled=true", 3).await;
    assert_eq!(enabled.len(), 8);
    assert!(enabled.iter().all(|s| s["enabled"] == true));
    let (paused, _) = app.collect_pages("/v1/schedules?enabled=false", 3).await;
    assert_eq!(paused.len(), 4);
    assert!(paused
        .iter()
        .all(|s| s["enabled"] == false && s["paused_at"].is_string()));

    // A page boundary survives inserts at the head.
    let r = app.get("/v1/schedules?limit=4").await;
    let cursor = r.body["next_cursor"].as_str().unwrap().to_string();
    app.create_schedule(&schedule_body("late-arrival")).await;
    let r2 = app
        .get(&format!("/v1/schedules?limit=4&cursor={cursor}"))
        .await;
    assert_eq!(r2.body["items"][0]["id"], expected[4]);

    // Limits clamp rather than fail.
    assert_eq!(
        app.get("/v1/schedules?limit=0").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        13
    );
    assert_eq!(app.get("/v1/schedules?limit=abc").await.status, 200);
    assert_eq!(app.get("/v1/schedules?limit=100000").await.status, 200);
}

#[actix_web::test]
async fn empty_lists_are_empty_arrays() {
    let app = spawn_app().await;
    let r = app.get("/v1/schedules").await;
    assert_eq!(r.body, json!({"items": [], "next_cursor": null}));
    let r = app.get("/v1/runs").await;
    assert_eq!(r.body, json!({"items": [], "next_cursor": null}));
}

#[actix_web::test]
async fn put_replaces_the_whole_definition() {
    let app = spawn_app().await;
    let mut body = schedule_body("replace-me");
    body["policy"] = json!({"overlap": "allow", "timeout_seconds": 10});
    body["start_at"] = json!("2030-01-01T00:00:00Z");
    let s = app.create_schedule(&body).await;
    let id = s["id"].as_str().unwrap();

    let new = json!({
        "name": "replaced",
        "timezone": "Europe/Berlin",
        "schedule": {"kind": "cron", "expr": "30 6 * * MON-FRI"},
        "target": {"kind": "shell", "command": "/bin/echo", "args": ["hi"]}
    });
    let r = app.put(&format!("/v1/schedules/{id}"), &new).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["name"], "replaced");
    assert_eq!(r.body["timezone"], "Europe/Berlin");
    // Omitted policy and bounds go back to their defaults.
    assert_eq!(r.body["policy"]["overlap"], "forbid");
    assert_eq!(r.body["policy"]["timeout_seconds"], 300);
    assert_eq!(r.body["start_at"], Value::Null);
    assert_eq!(
        r.body["target"],
        json!({"kind": "shell", "command": "/bin/echo", "args": ["hi"]})
    );
    assert_eq!(r.body["created_at"], s["created_at"]);
    assert!(ts(&r.body["updated_at"]) > ts(&s["updated_at"]));
    // The next weekday 06:30 in Berlin after the change, whatever the season.
    assert_eq!(
        ts(&r.body["next_run_at"]),
        next_berlin_weekday_0630(ts(&r.body["updated_at"])),
        "{}",
        r.body
    );

    // PUT must carry the whole thing.
    let r = app
        .put(
            &format!("/v1/schedules/{id}"),
            &json!({"name": "only-a-name"}),
        )
        .await;
    r.assert_error(400, "validation_failed");
    let fields = r.detail_fields();
    assert!(
        fields.contains(&"timezone".to_string()) && fields.contains(&"target.kind".to_string())
    );

    // A fetched schedule can be sent back as a PUT unchanged.
    let got = app.get(&format!("/v1/schedules/{id}")).await.body;
    let r = app.put(&format!("/v1/schedules/{id}"), &got).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["next_run_at"], got["next_run_at"]);
}

#[actix_web::test]
async fn patch_changes_only_fields_present() {
    let app = spawn_app().await;
    let mut body = schedule_body("patch-me");
    body["policy"] = json!({"overlap": "allow", "timeout_seconds": 10});
    body["retry"] = json!({"max_attempts": 2});
    body["end_at"] = json!("2040-01-01T00:00:00Z");
    let s = app.create_schedule(&body).await;
    let id = s["id"].as_str().unwrap();
    let path = format!("/v1/schedules/{id}");

    // policy and retry merge field by field.
    let r = app
        .patch(
            &path,
            &json!({"policy": {"max_concurrency": 4}, "retry": {"initial_delay_seconds": 5}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["policy"],
        json!({"overlap": "allow", "misfire": "run_once_if_late", "timeout_seconds": 10, "max_concurrency": 4, "jitter_seconds": 0})
    );
    assert_eq!(r.body["retry"]["max_attempts"], 2);
    assert_eq!(r.body["retry"]["initial_delay_seconds"], 5);
    assert_eq!(r.body["name"], "patch-me");
    assert_eq!(r.body["next_run_at"], s["next_run_at"]);

    // target replaces as a whole; end_at may be cleared.
    let r = app
        .patch(
            &path,
            &json!({"target": {"kind": "workflow", "workflow_id": "builtin.echo"}, "end_at": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["target"],
        json!({"kind": "workflow", "workflow_id": "builtin.echo", "input": null})
    );
    assert_eq!(r.body["end_at"], Value::Null);

    // Changing the cadence recomputes next_run_at.
    let r = app
        .patch(
            &path,
            &json!({"schedule": {"kind": "cron", "expr": "15 * * * *"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let next = ts(&r.body["next_run_at"]);
    assert!(r.body["next_run_at"].as_str().unwrap().contains(":15:00"));
    assert!(next > Utc::now() && next - Utc::now() <= chrono::Duration::hours(1));

    // The merged result is validated like a create.
    let r = app
        .patch(
            &path,
            &json!({"policy": {"timeout_seconds": -5}, "timezone": "Nowhere/City"}),
        )
        .await;
    r.assert_error(400, "validation_failed");
    let mut fields = r.detail_fields();
    fields.sort();
    assert_eq!(fields, vec!["policy.timeout_seconds", "timezone"]);
    let r = app
        .patch(
            &path,
            &json!({"start_at": "2041-01-01T00:00:00Z", "end_at": "2040-01-01T00:00:00Z"}),
        )
        .await;
    r.assert_error(400, "validation_failed");

    // Disabling through PATCH pauses it.
    let r = app.patch(&path, &json!({"enabled": false})).await;
    assert_eq!(r.body["enabled"], false);
    assert!(r.body["paused_at"].is_string());
    assert_eq!(r.body["next_run_at"], Value::Null);
}

#[actix_web::test]
async fn pause_and_resume_are_idempotent() {
    let app = spawn_app().await;
    let s = app.create_schedule(&schedule_body("pausable")).await;
    let id = s["id"].as_str().unwrap();
    let r1 = app
        .post(&format!("/v1/schedules/{id}/pause"), &json!({}))
        .await;
    assert_eq!(r1.status, 200, "{}", r1.body);
    assert_eq!(r1.body["id"], id);
    assert_eq!(r1.body["enabled"], false);
    let first_paused_at = r1.body["paused_at"].clone();
    assert!(first_paused_at.is_string());
    let r2 = app
        .post_raw(&format!("/v1/schedules/{id}/pause"), None, Vec::new())
        .await;
    assert_eq!(r2.status, 200);
    assert_eq!(r2.body["paused_at"], first_paused_at);
    let got = app.get(&format!("/v1/schedules/{id}")).await.body;
    assert_eq!(got["next_run_at"], Value::Null);
    assert_eq!(
        app.get(&format!("/v1/schedules/{id}/upcoming")).await.body,
        json!({"items": []})
    );

    let r3 = app
        .post(&format!("/v1/schedules/{id}/resume"), &json!({}))
        .await;
    assert_eq!(r3.status, 200, "{}", r3.body);
    assert_eq!(r3.body["enabled"], true);
    assert_eq!(r3.body["paused_at"], Value::Null);
    assert!(ts(&r3.body["next_run_at"]) > Utc::now());
    let r4 = app
        .post(&format!("/v1/schedules/{id}/resume"), &json!({}))
        .await;
    assert_eq!(r4.status, 200);
    assert_eq!(r4.body["next_run_at"], r3.body["next_run_at"]);
}

#[actix_web::test]
async fn upcoming_shows_dst_days_and_bounds() {
    let app = spawn_app().await;
    let mut body = schedule_body("ny-0230");
    body["timezone"] = json!("America/New_York");
    body["schedule"] = json!({"kind": "cron", "expr": "30 2 * * *"});
    body["start_at"] = json!("2031-03-07T00:00:00Z");
    body["end_at"] = json!("2031-03-12T00:00:00Z");
    let s = app.create_schedule(&body).await;
    let id = s["id"].as_str().unwrap();
    let r = app.get(&format!("/v1/schedules/{id}/upcoming")).await;
    assert_eq!(r.status, 200);
    // 2031-03-09 is the spring-forward day in New York: 02:30 does not exist.
    assert_eq!(
        r.body["items"],
        json!([
            "2031-03-07T07:30:00Z",
            "2031-03-08T07:30:00Z",
            "2031-03-10T06:30:00Z",
            "2031-03-11T06:30:00Z"
        ])
    );
    let r = app
        .get(&format!("/v1/schedules/{id}/upcoming?count=2"))
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    // `count` clamps like `limit` (issue 11): ≤ 0 or non-numeric → 10, so all four here.
    for bad in ["0", "-3", "lots", ""] {
        let r = app
            .get(&format!("/v1/schedules/{id}/upcoming?count={bad}"))
            .await;
        assert_eq!(r.status, 200, "count={bad}: {}", r.body);
        assert_eq!(r.body["items"].as_array().unwrap().len(), 4, "count={bad}");
    }

    let plain = app.create_schedule(&schedule_body("plain")).await;
    let r = app
        .get(&format!(
            "/v1/schedules/{}/upcoming?count=100",
            plain["id"].as_str().unwrap()
        ))
        .await;
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 100);
    assert_eq!(items[0], plain["next_run_at"]);
    let plain_id = plain["id"].as_str().unwrap();
    for (count, expected) in [
        ("101", 100),
        ("99999999999999999999", 100),
        ("0", 10),
        ("x", 10),
    ] {
        let r = app
            .get(&format!("/v1/schedules/{plain_id}/upcoming?count={count}"))
            .await;
        assert_eq!(r.status, 200, "count={count}: {}", r.body);
        assert_eq!(
            r.body["items"].as_array().unwrap().len(),
            expected,
            "count={count}"
        );
    }
}

#[actix_web::test]
async fn delete_removes_the_schedule_and_its_history() {
    let app = spawn_app().await;
    let s = app.create_schedule(&schedule_body("doomed")).await;
    let id = s["id"].as_str().unwrap();
    let run = app.trigger(id, "before delete").await;
    let r = app.delete(&format!("/v1/schedules/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"deleted": true, "id": id}));
    app.get(&format!("/v1/schedules/{id}"))
        .await
        .assert_error(404, "not_found");
    app.get(&format!("/v1/runs/{}", run["run_id"].as_str().unwrap()))
        .await
        .assert_error(404, "not_found");
    app.delete(&format!("/v1/schedules/{id}"))
        .await
        .assert_error(404, "not_found");
    // The name is free again.
    app.create_schedule(&schedule_body("doomed")).await;
}
