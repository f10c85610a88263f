//! Provides `wakeplane export`: the server's schedules written back as manifests (create
//! bodies with server-owned fields left out and defaults omitted), in name order, so that
//! `apply` of the output reports every schedule `unchanged`.
//!
//! It only reads over HTTP; it must not change anything on the server.

use serde_json::{Map, Value};

use super::apply::{labels_of, policy_defaults, retry_defaults};
use super::client::{segment, CliError, Client};
use crate::domain::labels::Selector;

/// Fields a returned Schedule carries that a create body does not (API.md, *Schedule*).
const RETURNED_ONLY: &[&str] = &[
    "id",
    "paused_at",
    "pause_note",
    "next_run_at",
    "last_run_at",
    "occurrences_remaining",
    "stats",
    "actor",
    "created_at",
    "updated_at",
];

/// The manifests of every schedule `selector` matches, as YAML documents (`---`
/// between them) or, with `json`, one JSON array.
pub fn export(
    client: &Client,
    selector: Option<(&str, &Selector)>,
    json: bool,
) -> Result<String, CliError> {
    let mut query = Vec::new();
    if let Some((text, _)) = selector {
        query.push(("label_selector", text.to_string()));
    }
    let mut summaries = client.get_all("/v1/schedules", &query, 500)?;
    // The server filtered; the same parser says so again, so a server that ignored the
    // parameter cannot widen what is exported.
    if let Some((_, s)) = selector {
        summaries.retain(|v| s.matches(&labels_of(v)));
    }
    let mut manifests = Vec::with_capacity(summaries.len());
    for s in &summaries {
        let Some(id) = s.get("id").and_then(Value::as_str) else {
            return Err(super::client::unexpected("GET /v1/schedules", s));
        };
        match client.get(&format!("/v1/schedules/{}", segment(id)), &[]) {
            Ok(full) => manifests.push(manifest_of(&full)),
            // Deleted between the list and the get.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    manifests.sort_by(|a, b| {
        let name =
            |m: &Map<String, Value>| m.get("name").and_then(Value::as_str).map(str::to_string);
        name(a).cmp(&name(b))
    });
    if json {
        let all = Value::Array(manifests.into_iter().map(Value::Object).collect());
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&all).unwrap_or_else(|_| all.to_string())
        ));
    }
    let mut out = String::new();
    for (i, m) in manifests.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let text = serde_norway::to_string(&Value::Object(m))
            .map_err(|e| CliError::usage(format!("cannot write YAML: {e}")))?;
        out.push_str(&text);
    }
    Ok(out)
}

/// A full Schedule as a create body: returned-only fields, nulls, empty labels, target
/// parts that are empty, and policy and retry fields at their defaults are left out.
pub fn manifest_of(full: &Value) -> Map<String, Value> {
    let mut m = full.as_object().cloned().unwrap_or_default();
    m.retain(|k, v| !RETURNED_ONLY.contains(&k.as_str()) && !v.is_null());
    if m.get("enabled") == Some(&Value::Bool(true)) {
        m.remove("enabled");
    }
    if m.get("labels")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        m.remove("labels");
    }
    if let Some(Value::Object(t)) = m.get_mut("target") {
        t.retain(|k, v| match (k.as_str(), &*v) {
            (_, Value::Null) => false,
            ("headers", Value::Object(h)) => !h.is_empty(),
            ("args", Value::Array(a)) => !a.is_empty(),
            _ => true,
        });
    }
    for (key, defaults) in [("policy", policy_defaults()), ("retry", retry_defaults())] {
        if let Some(Value::Object(o)) = m.get_mut(key) {
            o.retain(|k, v| !defaults.iter().any(|(d, dv)| d == k && dv == v));
            if o.is_empty() {
                m.remove(key);
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_fields_and_defaults_are_left_out() {
        let full = json!({
            "id": "sch_x", "name": "n", "enabled": true, "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 2 * * *"},
            "target": {"kind": "shell", "command": "/bin/true", "args": []},
            "policy": {"overlap": "allow", "misfire": "run_once_if_late", "timeout_seconds": 300, "max_concurrency": 1},
            "retry": {"max_attempts": 0, "strategy": "exponential", "initial_delay_seconds": 30, "max_delay_seconds": 900},
            "start_at": null, "end_at": null, "labels": {}, "description": null,
            "paused_at": null, "next_run_at": "2027-01-01T02:00:00Z", "last_run_at": null,
            "stats": {"runs_total": 0}, "created_at": "…", "updated_at": "…"
        });
        assert_eq!(
            Value::Object(manifest_of(&full)),
            json!({"name": "n", "timezone": "UTC",
                "schedule": {"kind": "cron", "expr": "0 2 * * *"},
                "target": {"kind": "shell", "command": "/bin/true"},
                "policy": {"overlap": "allow"}})
        );
    }
}
