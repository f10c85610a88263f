//! The OpenAPI document: every route of API.md is in it, the enums are complete, and real
//! responses validate against its schemas (a small JSON Schema checker below covers the
//! keywords utoipa emits: $ref, type, properties, required, items, oneOf/allOf/anyOf, enum).

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{schedule_body, spawn_app};

/// Checks `value` against `schema`, resolving `$ref`s in `doc`; returns the problems.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "dangling $ref {r}");
        return check(doc, target, value, at, problems);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(doc, s, value, at, problems);
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            let ok = alts.iter().filter(|s| {
                let mut p = Vec::new();
                check(doc, s, value, at, &mut p);
                p.is_empty()
            });
            let n = ok.count();
            if n == 0 || (key == "oneOf" && n > 1 && !value.is_null()) {
                problems.push(format!("{at}: {n} of the {key} alternatives match {value}"));
            }
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        if !fits {
            problems.push(format!("{at}: {actual} where {types:?} expected"));
            return;
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(value) && !value.is_null() {
            problems.push(format!("{at}: {value} not in {e:?}"));
        }
    }
    if let (Some(props), Some(obj)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let k = req.as_str().unwrap_or_default();
            if !obj.contains_key(k) {
                problems.push(format!("{at}: required {k} missing"));
            }
        }
        for (k, v) in obj {
            match props.get(k) {
                Some(s) => check(doc, s, v, &format!("{at}.{k}"), problems),
                None => problems.push(format!("{at}: {k} is not in the schema")),
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            check(doc, items, v, &format!("{at}[{i}]"), problems);
        }
    }
}

fn response_schema<'a>(doc: &'a Value, path: &str, method: &str, status: &str) -> &'a Value {
    let s =
        &doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"];
    assert!(!s.is_null(), "no schema for {method} {path} {status}");
    s
}

#[track_caller]
fn assert_valid(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let mut problems = Vec::new();
    check(
        doc,
        response_schema(doc, path, method, &status.to_string()),
        body,
        "$",
        &mut problems,
    );
    assert!(
        problems.is_empty(),
        "{method} {path} {status} does not match its schema:\n{}\n{body}",
        problems.join("\n")
    );
}

#[actix_web::test]
async fn the_document_lists_every_route_and_enum() {
    let app = spawn_app().await;
    let r = app.get("/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let routes = [
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/v1/status"),
        ("get", "/v1/metrics"),
        ("post", "/v1/schedules"),
        ("get", "/v1/schedules"),
        ("get", "/v1/schedules/{id}"),
        ("put", "/v1/schedules/{id}"),
        ("patch", "/v1/schedules/{id}"),
        ("delete", "/v1/schedules/{id}"),
        ("post", "/v1/schedules/{id}/pause"),
        ("post", "/v1/schedules/{id}/resume"),
        ("post", "/v1/schedules/{id}/trigger"),
        ("get", "/v1/schedules/{id}/upcoming"),
        ("post", "/v1/schedules/{id}/backfill"),
        ("get", "/v1/schedules/{id}/runs"),
        ("get", "/v1/runs"),
        ("get", "/v1/runs/{id}"),
        ("get", "/v1/runs/{id}/receipts"),
        ("get", "/ui/"),
    ];
    for (method, path) in routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the document"
        );
    }
    let schemas = &doc["components"]["schemas"];
    let enum_of = |name: &str| -> Vec<String> {
        schemas[name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no enum"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(enum_of("RunStatus").len(), 9);
    assert_eq!(
        enum_of("OverlapPolicy"),
        vec!["forbid", "allow", "queue_latest", "replace"]
    );
    assert_eq!(
        enum_of("MisfirePolicy"),
        vec!["skip", "run_once_if_late", "catch_up"]
    );
    assert_eq!(enum_of("RetryStrategy"), vec!["exponential", "none"]);
    assert_eq!(enum_of("ReceiptKind").len(), 5);
    assert_eq!(enum_of("ErrorCode").len(), 11);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Request bodies are documented.
    assert!(!doc["paths"]["/v1/schedules"]["post"]["requestBody"].is_null());
    assert!(!doc["paths"]["/v1/schedules/{id}/trigger"]["post"]["requestBody"].is_null());
    assert!(!doc["paths"]["/v1/schedules/{id}/backfill"]["post"]["requestBody"].is_null());
    assert!(!doc["paths"]["/v1/schedules/{id}/pause"]["post"]["requestBody"].is_null());
    // The controls of issue 11 are in the shapes.
    for (schema, field) in [
        ("ScheduleView", "max_occurrences"),
        ("ScheduleView", "occurrences_remaining"),
        ("ScheduleView", "pause_note"),
        ("Policy", "jitter_seconds"),
        ("PolicyBody", "jitter_seconds"),
        ("ScheduleBody", "max_occurrences"),
        ("PausedView", "pause_note"),
        ("PauseBody", "note"),
        ("BackfillBody", "start"),
        ("BackfillBody", "end"),
        ("BackfillBody", "reason"),
        ("BackfilledView", "run_ids"),
        ("BackfilledView", "existing"),
        ("BackfilledView", "created"),
    ] {
        assert!(
            schemas[schema]["properties"][field].is_object(),
            "{schema}.{field} missing from the document"
        );
    }
}

#[actix_web::test]
async fn real_responses_validate_against_the_document() {
    let app = spawn_app().await;
    let doc = app.get("/v1/openapi.json").await.body;

    let mut body = schedule_body("documented");
    body["target"] = json!({"kind": "workflow", "workflow_id": "builtin.echo", "input": {"a": 1}});
    let created = app.post("/v1/schedules", &body).await;
    assert_valid(&doc, "/v1/schedules", "post", 201, &created.body);
    let id = created.body["id"].as_str().unwrap();
    let mut http = schedule_body("documented-http");
    http["target"] = json!({"kind": "http", "method": "GET", "url": "http://127.0.0.1:9/x"});
    http["schedule"] = json!({"kind": "interval", "every_seconds": 3600});
    let h = app.post("/v1/schedules", &http).await;
    assert_valid(&doc, "/v1/schedules", "post", 201, &h.body);

    assert_valid(
        &doc,
        "/v1/schedules",
        "get",
        200,
        &app.get("/v1/schedules").await.body,
    );
    assert_valid(
        &doc,
        "/v1/schedules/{id}",
        "get",
        200,
        &app.get(&format!("/v1/schedules/{id}")).await.body,
    );
    assert_valid(
        &doc,
        "/v1/schedules/{id}/upcoming",
        "get",
        200,
        &app.get(&format!("/v1/schedules/{id}/upcoming")).await.body,
    );
    let t = app.trigger(id, "schema").await;
    assert_valid(&doc, "/v1/schedules/{id}/trigger", "post", 200, &t);
    let run_id = t["run_id"].as_str().unwrap();
    let run = app
        .poll(
            &format!("/v1/runs/{run_id}"),
            Duration::from_secs(20),
            |r| r["status"] == "succeeded",
        )
        .await;
    assert_valid(&doc, "/v1/runs/{id}", "get", 200, &run);
    assert_valid(
        &doc,
        "/v1/runs",
        "get",
        200,
        &app.get("/v1/runs").await.body,
    );
    assert_valid(
        &doc,
        "/v1/runs/{id}/receipts",
        "get",
        200,
        &app.get(&format!("/v1/runs/{run_id}/receipts")).await.body,
    );
    assert_valid(
        &doc,
        "/v1/schedules/{id}/pause",
        "post",
        200,
        &app.post(&format!("/v1/schedules/{id}/pause"), &json!({}))
            .await
            .body,
    );
    assert_valid(
        &doc,
        "/v1/schedules/{id}/pause",
        "post",
        200,
        &app.post(
            &format!("/v1/schedules/{id}/pause"),
            &json!({"note": "documented"}),
        )
        .await
        .body,
    );
    let window =
        json!({"start": "2021-01-01T00:00:00Z", "end": "2021-01-03T00:00:00Z", "reason": "schema"});
    let backfilled = app
        .post(&format!("/v1/schedules/{id}/backfill"), &window)
        .await;
    assert_eq!(backfilled.status, 200, "{}", backfilled.body);
    assert_valid(
        &doc,
        "/v1/schedules/{id}/backfill",
        "post",
        200,
        &backfilled.body,
    );
    let bad_window = app
        .post(&format!("/v1/schedules/{id}/backfill"), &json!({}))
        .await;
    assert_valid(
        &doc,
        "/v1/schedules/{id}/backfill",
        "post",
        400,
        &bad_window.body,
    );
    assert_valid(
        &doc,
        "/v1/schedules/{id}/resume",
        "post",
        200,
        &app.post(&format!("/v1/schedules/{id}/resume"), &json!({}))
            .await
            .body,
    );
    assert_valid(
        &doc,
        "/v1/status",
        "get",
        200,
        &app.get("/v1/status").await.body,
    );
    assert_valid(&doc, "/readyz", "get", 200, &app.get("/readyz").await.body);

    let bad = app.post("/v1/schedules", &json!({"name": ""})).await;
    assert_valid(&doc, "/v1/schedules", "post", 400, &bad.body);
    let missing = app.get("/v1/schedules/sch_missing").await;
    assert_valid(&doc, "/v1/schedules/{id}", "get", 404, &missing.body);
    assert_valid(
        &doc,
        "/v1/schedules/{id}",
        "delete",
        200,
        &app.delete(&format!("/v1/schedules/{id}")).await.body,
    );

    // The checker itself can fail.
    let mut problems = Vec::new();
    check(
        &doc,
        response_schema(&doc, "/v1/runs/{id}", "get", "200"),
        &json!({"id": 5}),
        "$",
        &mut problems,
    );
    assert!(!problems.is_empty());
}
