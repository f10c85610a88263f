//! Tests the diff, the plan and manifest parsing with literal server answers; no I/O.

use super::*;
use crate::cli::client::CliError;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

fn body(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn server(v: Value) -> Value {
    // What the API returns for the manifest below, defaults filled in.
    let mut base = json!({
        "id": "sch_x", "name": "n", "enabled": true, "timezone": "UTC",
        "schedule": {"kind": "interval", "every_seconds": 30, "anchor_at": "2026-01-01T00:00:00Z"},
        "target": {"kind": "http", "method": "GET", "url": "http://h/x", "headers": {}, "body": null},
        "policy": {"overlap": "forbid", "misfire": "run_once_if_late", "timeout_seconds": 300, "max_concurrency": 1},
        "retry": {"max_attempts": 0, "strategy": "exponential", "initial_delay_seconds": 30, "max_delay_seconds": 900},
        "start_at": null, "end_at": null, "paused_at": null, "next_run_at": "2026-01-01T00:00:30Z",
        "last_run_at": null, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
    });
    if let (Some(b), Some(o)) = (base.as_object_mut(), v.as_object()) {
        for (k, v) in o {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

fn manifest() -> Value {
    json!({"name": "n", "timezone": "UTC",
           "schedule": {"kind": "interval", "every_seconds": 30},
           "target": {"kind": "http", "method": "get", "url": "http://h/x"}})
}

fn fields(c: &[Change]) -> Vec<&str> {
    c.iter().map(|c| c.field.as_str()).collect()
}

#[test]
fn defaults_and_normalisation_are_unchanged() {
    assert_eq!(diff(&body(manifest()), &server(json!({}))), vec![]);
}

#[test]
fn omitted_policy_against_a_non_default_policy_is_a_change() {
    let cur = server(
        json!({"policy": {"overlap": "queue_latest", "misfire": "run_once_if_late",
        "timeout_seconds": 300, "max_concurrency": 1}}),
    );
    let c = diff(&body(manifest()), &cur);
    assert_eq!(fields(&c), vec!["policy.overlap"]);
    assert_eq!(c[0].from, json!("queue_latest"));
    assert_eq!(c[0].to, json!("forbid"));
}

#[test]
fn partial_policy_compares_each_field_with_defaults() {
    let mut m = manifest();
    m["policy"] = json!({"timeout_seconds": 60});
    m["retry"] = json!({"max_attempts": 3});
    let c = diff(&body(m), &server(json!({})));
    assert_eq!(
        fields(&c),
        vec!["policy.timeout_seconds", "retry.max_attempts"]
    );
}

#[test]
fn a_paused_schedule_differs_from_a_manifest_without_enabled() {
    let c = diff(&body(manifest()), &server(json!({"enabled": false})));
    assert_eq!(fields(&c), vec!["enabled"]);
}

#[test]
fn target_parts_omitted_mean_empty() {
    let cur = server(
        json!({"target": {"kind": "http", "method": "GET", "url": "http://h/x",
        "headers": {"a": "b"}, "body": {"x": 1}}}),
    );
    let c = diff(&body(manifest()), &cur);
    assert_eq!(fields(&c), vec!["target.body", "target.headers"]);
}

#[test]
fn instants_compare_as_instants_and_cron_is_trimmed() {
    let m = json!({"name": "n", "timezone": "UTC", "end_at": "2027-01-01T01:00:00+01:00",
        "schedule": {"kind": "cron", "expr": " 0 2 * * * "},
        "target": {"kind": "workflow", "workflow_id": "w"}});
    let cur = server(json!({"end_at": "2027-01-01T00:00:00Z",
        "schedule": {"kind": "cron", "expr": "0 2 * * *"},
        "target": {"kind": "workflow", "workflow_id": "w", "input": null}}));
    assert_eq!(diff(&body(m), &cur), vec![]);
}

#[test]
fn kind_changes_and_unknown_fields_are_reported() {
    let mut m = manifest();
    m["schedule"] = json!({"kind": "cron", "expr": "* * * * *"});
    m["timezon"] = json!("UTC");
    let c = diff(&body(m), &server(json!({})));
    assert_eq!(
        fields(&c),
        vec![
            "schedule.kind",
            "schedule.every_seconds",
            "schedule.expr",
            "timezon"
        ]
    );
}

#[test]
fn names_must_be_unique_and_present() {
    let a = parse_documents(
        "a.yaml",
        "name: x\n---\nname: ' x '\n---\ntimezone: UTC\n",
        false,
    )
    .unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a[1].source, "a.yaml (document 2)");
    let e = check_names(&a).unwrap_err().to_string();
    assert!(e.contains("duplicate schedule name \"x\""), "{e}");
    assert!(e.contains("(document 3): `name` is required"), "{e}");
}

#[test]
fn documents_json_streams_sequences_and_bad_shapes() {
    assert_eq!(
        parse_documents("x", "{\"a\":1}\n{\"b\":2}", true)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        parse_documents("x", "[{\"a\":1},{\"b\":2}]", false)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        parse_documents("x", "---\n---\na: 1\n", false)
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        parse_documents("x", "- 1\n", false),
        Err(CliError::Usage(_))
    ));
    assert!(matches!(
        parse_documents("x", "a: [", false),
        Err(CliError::Usage(_))
    ));
    assert!(matches!(
        parse_documents("x", "{", true),
        Err(CliError::Usage(_))
    ));
}

#[test]
fn plan_orders_creates_updates_then_prunes() {
    let ms = parse_documents("m", &format!("{}\n{}", json!([manifest()]), ""), true).unwrap();
    let mut existing = BTreeMap::new();
    existing.insert(
        "n".to_string(),
        server(json!({"timezone": "Europe/Berlin"})),
    );
    existing.insert("old".to_string(), json!({"id": "sch_old", "name": "old"}));
    let steps = plan(&ms, &existing, true);
    let text = render_plan(&steps);
    assert_eq!(
        text,
        "update n\n    timezone: \"Europe/Berlin\" -> \"UTC\"\ndelete old\n"
    );
    assert_eq!(plan(&ms, &existing, false).len(), 1);
    assert_eq!(
        summary(&steps),
        "0 to create, 1 to update, 0 unchanged, 1 to delete"
    );
}
