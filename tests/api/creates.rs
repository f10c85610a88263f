//! Many creates at once (the Supervisor writes them in batches, one commit for many): each
//! request gets its own answer — invalid bodies 400, taken names 409, good ones 201 — and
//! every good schedule is stored exactly once, with its actor running.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{schedule_body, spawn_app, wait_for_runs, Reply};

/// What request `i` of the burst sends and should get.
enum Kind {
    /// A unique name: 201.
    Good,
    /// A unique name, firing every second: 201, and its actor runs it.
    Firing,
    /// A cron expression that does not parse: 400 `validation_failed`.
    Invalid,
    /// Not JSON at all: 400 `bad_request`.
    Garbled,
    /// A name created before the burst: 409.
    Taken,
    /// One of two requests in the burst with the same name: one 201, the other 409.
    Twin(usize),
}

fn kind(i: usize) -> Kind {
    match i % 8 {
        1 => Kind::Firing,
        3 => Kind::Invalid,
        4 if i % 16 == 4 => Kind::Garbled,
        5 => Kind::Taken,
        7 => Kind::Twin(i / 16),
        _ => Kind::Good,
    }
}

#[actix_web::test]
async fn a_burst_of_creates_answers_each_and_stores_each_good_one_once() {
    let app = spawn_app().await;
    app.create_schedule(&schedule_body("taken")).await;
    let n = 64;

    let replies: Vec<Reply> = join_all((0..n).map(|i| {
        let app = &app;
        async move {
            let mut body = schedule_body(&format!("burst-{i}"));
            match kind(i) {
                Kind::Good => {}
                Kind::Firing => body["schedule"] = json!({"kind": "interval", "every_seconds": 1}),
                Kind::Invalid => body["schedule"] = json!({"kind": "cron", "expr": "not cron"}),
                Kind::Garbled => {
                    return app
                        .post_raw(
                            "/v1/schedules",
                            Some("application/json"),
                            b"{\"name\": ".to_vec(),
                        )
                        .await
                }
                Kind::Taken => body["name"] = json!("taken"),
                Kind::Twin(pair) => body["name"] = json!(format!("twin-{pair}")),
            }
            app.post("/v1/schedules", &body).await
        }
    }))
    .await;

    let mut created: BTreeMap<String, String> = BTreeMap::new(); // name → id
    let mut firing = Vec::new();
    let mut twins: BTreeMap<usize, Vec<u16>> = BTreeMap::new();
    for (i, r) in replies.iter().enumerate() {
        match kind(i) {
            Kind::Good | Kind::Firing => {
                assert_eq!(r.status, 201, "request {i}: {}", r.body);
                assert_eq!(r.body["name"], format!("burst-{i}"), "request {i}");
                let id = r.body["id"].as_str().expect("an id").to_string();
                if matches!(kind(i), Kind::Firing) {
                    firing.push(id.clone());
                }
                assert!(created.insert(format!("burst-{i}"), id).is_none());
            }
            Kind::Invalid => {
                r.assert_error(400, "validation_failed");
                assert_eq!(r.detail_fields(), ["schedule.expr"], "request {i}");
            }
            Kind::Garbled => {
                r.assert_error(400, "bad_request");
            }
            Kind::Taken => {
                let body = r.assert_error(409, "conflict");
                assert!(
                    body["error"].as_str().unwrap().contains("\"taken\""),
                    "{body}"
                );
            }
            Kind::Twin(pair) => {
                twins.entry(pair).or_default().push(r.status);
                if r.status == 201 {
                    let id = r.body["id"].as_str().expect("an id").to_string();
                    assert!(created.insert(format!("twin-{pair}"), id).is_none());
                } else {
                    r.assert_error(409, "conflict");
                }
            }
        }
    }
    for (pair, statuses) in &twins {
        let mut statuses = statuses.clone();
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "twin-{pair}");
    }

    // Stored exactly once each: the list holds the good ones, the twins' winners and
    // "taken", nothing else, and each under the id its create answered.
    let (items, _) = app.collect_pages("/v1/schedules", 100).await;
    let stored: Vec<(String, String)> = items
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let names: BTreeSet<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), stored.len(), "a name stored twice: {stored:?}");
    let mut expected: BTreeSet<&str> = created.keys().map(String::as_str).collect();
    expected.insert("taken");
    assert_eq!(names, expected);
    for (name, id) in &stored {
        if let Some(answered) = created.get(name) {
            assert_eq!(answered, id, "{name}");
        }
    }

    // Every created schedule has a live actor: armed, with its next fire ahead, and the
    // node counts one actor per stored schedule.
    for (name, id) in &created {
        let r = app.get(&format!("/v1/schedules/{id}")).await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert_eq!(r.body["name"], name.as_str());
        assert!(
            r.body["actor"].is_object(),
            "{name} has no actor: {}",
            r.body
        );
        assert!(r.body["stats"]["succeeded"].is_i64(), "{}", r.body);
    }
    app.poll("/v1/status", Duration::from_secs(10), |s| {
        s["actors"]["total"] == expected.len()
    })
    .await;
    // … and the firing ones run.
    for id in &firing {
        wait_for_runs(&app, id, 1).await;
    }
}

/// A burst with nothing wrong in it (so its batches commit as they are): every stored
/// field reads back exactly as the create answered it, whatever the shape of the body.
#[actix_web::test]
async fn a_burst_of_varied_creates_reads_back_exactly_as_answered() {
    let app = spawn_app().await;
    let replies: Vec<Reply> = join_all((0..48).map(|i| {
        let app = &app;
        async move {
            let mut body = schedule_body(&format!("varied-{i}"));
            match i % 6 {
                0 => {}
                1 => {
                    body["schedule"] = json!({"kind": "interval", "every_seconds": 90,
                        "anchor_at": "2030-01-01T00:00:30Z"});
                    body["description"] = json!(format!("interval {i}"));
                }
                2 => {
                    body["schedule"] = json!({"kind": "once", "at": "2031-06-01T09:00:00Z"});
                    body["labels"] = json!({"team": "a", "n": format!("{i}")});
                }
                3 => {
                    body["enabled"] = json!(false);
                    body["max_occurrences"] = json!(3);
                    body["start_at"] = json!("2030-01-01T00:00:00Z");
                    body["end_at"] = json!("2032-01-01T00:00:00Z");
                }
                4 => {
                    body["timezone"] = json!("Europe/Berlin");
                    body["policy"] = json!({"overlap": "allow", "misfire": "catch_up",
                        "timeout_seconds": 7, "max_concurrency": 2, "jitter_seconds": 5});
                    body["retry"] = json!({"max_attempts": 4, "strategy": "exponential",
                        "initial_delay_seconds": 2, "max_delay_seconds": 60});
                }
                _ => {
                    body["target"] = json!({"kind": "http", "method": "post",
                        "url": "http://127.0.0.1:9/hook", "headers": {"X-N": format!("{i}")},
                        "body": {"k": [1, 2]}});
                }
            }
            app.post("/v1/schedules", &body).await
        }
    }))
    .await;
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.status, 201, "request {i}: {}", r.body);
        let id = r.body["id"].as_str().expect("an id");
        let mut stored = app.get(&format!("/v1/schedules/{id}")).await.body;
        let answered = r.body.as_object().expect("an object");
        let stored = stored.as_object_mut().expect("an object");
        stored.remove("actor");
        assert_eq!(stored, answered, "request {i}");
    }
    let (items, _) = app.collect_pages("/v1/schedules", 100).await;
    assert_eq!(items.len(), 48);
}
