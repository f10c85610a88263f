//! Labels, description and the schedule list's filters: every selector form and its
//! errors, `target_kind`, `workflow_id`, combined with `enabled` and cursor paging.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::helpers::{schedule_body, spawn_app, TestApp};

fn labelled(name: &str, labels: Value) -> Value {
    let mut b = schedule_body(name);
    b["labels"] = labels;
    b
}

fn names(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|i| i["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn select(app: &TestApp, selector: &str) -> BTreeSet<String> {
    let q: String = url_escape(selector);
    let (items, _) = app
        .collect_pages(&format!("/v1/schedules?label_selector={q}"), 500)
        .await;
    names(&items)
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[actix_web::test]
async fn labels_and_description_round_trip_and_patch_replaces_labels() {
    let app = spawn_app().await;
    let mut body = labelled(
        "lab-1",
        json!({"team": "data", "example.com/env": "prod", "empty": ""}),
    );
    body["description"] = json!("Nightly CRM sync");
    let created = app.create_schedule(&body).await;
    assert_eq!(
        created["labels"],
        json!({"team": "data", "example.com/env": "prod", "empty": ""})
    );
    assert_eq!(created["description"], "Nightly CRM sync");
    let id = created["id"].as_str().unwrap();
    let got = app.get(&format!("/v1/schedules/{id}")).await.body;
    assert_eq!(got["labels"], created["labels"]);
    assert_eq!(got["description"], "Nightly CRM sync");
    let list = app.get("/v1/schedules").await.body;
    assert_eq!(list["items"][0]["labels"], created["labels"]);

    let patched = app
        .patch(
            &format!("/v1/schedules/{id}"),
            &json!({"labels": {"team": "ml"}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(
        patched.body["labels"],
        json!({"team": "ml"}),
        "labels replace as a whole"
    );
    assert_eq!(patched.body["description"], "Nightly CRM sync");
    // A fetched schedule goes back as a PUT unchanged (stats and all).
    let fetched = app.get(&format!("/v1/schedules/{id}")).await.body;
    let put = app.put(&format!("/v1/schedules/{id}"), &fetched).await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["labels"], json!({"team": "ml"}));
    // Omitted labels in a PUT mean none; null description clears it.
    let mut bare = schedule_body("lab-1");
    bare["description"] = Value::Null;
    let put = app.put(&format!("/v1/schedules/{id}"), &bare).await;
    assert_eq!(put.body["labels"], json!({}));
    assert_eq!(put.body["description"], Value::Null);
}

#[actix_web::test]
async fn bad_labels_and_descriptions_are_named_field_by_field() {
    let app = spawn_app().await;
    let mut body = labelled(
        "lab-bad",
        json!({"-team": "x", "env": "-prod", "ok": "fine", "Bad_Prefix/x": "y", "long": "a".repeat(64)}),
    );
    body["description"] = json!("d".repeat(1025));
    let r = app.post("/v1/schedules", &body).await;
    r.assert_error(400, "validation_failed");
    let mut fields = r.detail_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "description",
            "labels.-team",
            "labels.Bad_Prefix/x",
            "labels.env",
            "labels.long"
        ]
    );
    let too_many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let r = app
        .post(
            "/v1/schedules",
            &labelled("lab-many", Value::Object(too_many)),
        )
        .await;
    r.assert_error(400, "validation_failed");
    assert_eq!(r.detail_fields(), ["labels"]);
    // A value that is not a string is a wrong JSON type.
    let r = app
        .post("/v1/schedules", &labelled("lab-type", json!({"team": 3})))
        .await;
    r.assert_error(400, "bad_request");
    // 1,024 characters and 64 labels are fine.
    let mut ok = labelled(
        "lab-max",
        Value::Object((0..64).map(|i| (format!("k{i}"), json!("v"))).collect()),
    );
    ok["description"] = json!("é".repeat(1024));
    app.create_schedule(&ok).await;
}

#[actix_web::test]
async fn every_selector_form_selects_exactly_what_kubernetes_would() {
    let app = spawn_app().await;
    app.create_schedule(&labelled("a", json!({"team": "data", "env": "prod"})))
        .await;
    app.create_schedule(&labelled("b", json!({"team": "data", "env": "dev"})))
        .await;
    app.create_schedule(&labelled(
        "c",
        json!({"team": "ml", "env": "prod", "gpu": ""}),
    ))
    .await;
    app.create_schedule(&labelled("d", json!({}))).await;

    assert_eq!(select(&app, "team=data").await, set(&["a", "b"]));
    assert_eq!(select(&app, "team==data").await, set(&["a", "b"]));
    assert_eq!(
        select(&app, "team!=data").await,
        set(&["c", "d"]),
        "absent key counts"
    );
    assert_eq!(
        select(&app, "env in (prod, dev)").await,
        set(&["a", "b", "c"])
    );
    assert_eq!(
        select(&app, "env notin (prod)").await,
        set(&["b", "d"]),
        "absent key counts"
    );
    assert_eq!(select(&app, "gpu").await, set(&["c"]));
    assert_eq!(select(&app, "!gpu").await, set(&["a", "b", "d"]));
    assert_eq!(select(&app, "gpu=").await, set(&["c"]));
    assert_eq!(select(&app, "team=data,env=prod").await, set(&["a"]));
    assert_eq!(
        select(&app, "env=prod,!gpu,team in (data,ml)").await,
        set(&["a"])
    );
    assert_eq!(select(&app, "team=nobody").await, set(&[]));
    assert_eq!(select(&app, "").await, set(&["a", "b", "c", "d"]));
}

#[actix_web::test]
async fn malformed_selectors_are_bad_requests_that_say_why() {
    let app = spawn_app().await;
    for (selector, message) in [
        ("team=data,", "label_selector: expected a requirement after ',' at the end"),
        ("team in data", "label_selector: expected '(' to open a set of values at position 9 (found 'd')"),
        ("team in (a,b", "label_selector: expected ',' or ')' in a set of values at the end"),
        ("team like x", "label_selector: expected an operator ('=', '==', '!=', 'in' or 'notin') at position 6 (found 'l')"),
        ("=x", "label_selector: expected a label key at position 1 (found '=')"),
        ("a=b c=d", "label_selector: expected ',' between requirements at position 5 (found 'c')"),
    ] {
        let r = app
            .get(&format!("/v1/schedules?label_selector={}", url_escape(selector)))
            .await;
        let body = r.assert_error(400, "bad_request");
        assert_eq!(body["error"], message, "selector {selector:?}");
    }
    let r = app.get("/v1/schedules?label_selector=team%3D-x").await;
    let body = r.assert_error(400, "bad_request");
    assert!(
        body["error"].as_str().unwrap().contains("value \"-x\""),
        "{body}"
    );
    let r = app.get("/v1/schedules?target_kind=cron").await;
    let body = r.assert_error(400, "bad_request");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("http, shell, workflow"),
        "{body}"
    );
}

#[actix_web::test]
async fn filters_combine_with_enabled_and_page_without_repeats_or_skips() {
    let app = spawn_app().await;
    let mut expected = BTreeSet::new();
    for i in 0..24 {
        let mut body = labelled(
            &format!("s{i:02}"),
            json!({"team": if i % 2 == 0 { "data" } else { "ml" }, "tier": format!("t{}", i % 3)}),
        );
        body["enabled"] = json!(i % 4 != 3);
        body["target"] = match i % 3 {
            0 => json!({"kind": "workflow", "workflow_id": "builtin.echo"}),
            1 => json!({"kind": "workflow", "workflow_id": "builtin.noop"}),
            _ => json!({"kind": "shell", "command": "/bin/true"}),
        };
        app.create_schedule(&body).await;
        if i % 2 == 0 && i % 4 != 3 && i % 3 != 2 {
            expected.insert(format!("s{i:02}"));
        }
    }
    let (items, pages) = app
        .collect_pages(
            "/v1/schedules?label_selector=team%3Ddata&enabled=true&target_kind=workflow",
            3,
        )
        .await;
    assert_eq!(items.len(), expected.len(), "no repeats");
    assert_eq!(names(&items), expected);
    assert!(pages >= 3);
    assert!(items
        .iter()
        .all(|i| i["target_kind"] == "workflow" && i["enabled"] == true));

    let (items, _) = app
        .collect_pages(
            "/v1/schedules?workflow_id=builtin.echo&label_selector=tier%20notin%20(t1)",
            2,
        )
        .await;
    let want: BTreeSet<String> = (0..24)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("s{i:02}"))
        .collect();
    assert_eq!(names(&items), want);
    assert_eq!(items.len(), want.len());
    let (items, _) = app
        .collect_pages("/v1/schedules?target_kind=shell&enabled=false", 2)
        .await;
    let want: BTreeSet<String> = (0..24)
        .filter(|i| i % 3 == 2 && i % 4 == 3)
        .map(|i| format!("s{i:02}"))
        .collect();
    assert_eq!(names(&items), want);
}
