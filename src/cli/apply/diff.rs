//! Provides the by-name diff between one manifest and the schedule the server returned:
//! defaults filled in, instants compared as instants, server-owned fields ignored.
//! Pure: no I/O; it reports differences and never decides what to do about them.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

/// One field that differs: the server's value and the manifest's (defaults filled in).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub field: String,
    pub from: Value,
    pub to: Value,
}

/// Fields the server owns; ignored in manifests, never compared.
const SERVER_OWNED: &[&str] = &[
    "id",
    "paused_at",
    "next_run_at",
    "last_run_at",
    "created_at",
    "updated_at",
    "actor",
    "stats",
];

/// How two values are compared.
#[derive(Clone, Copy)]
enum Cmp {
    Exact,
    /// Strings compared trimmed (the server trims them).
    Trim,
    /// Trimmed and upper-cased (HTTP methods).
    Upper,
    /// RFC 3339 instants compared as instants.
    Instant,
}

pub fn policy_defaults() -> Vec<(&'static str, Value)> {
    vec![
        ("overlap", json!("forbid")),
        ("misfire", json!("run_once_if_late")),
        ("timeout_seconds", json!(300)),
        ("max_concurrency", json!(1)),
    ]
}

pub fn retry_defaults() -> Vec<(&'static str, Value)> {
    vec![
        ("max_attempts", json!(0)),
        ("strategy", json!("exponential")),
        ("initial_delay_seconds", json!(30)),
        ("max_delay_seconds", json!(900)),
    ]
}

/// What a PUT of `manifest` would change on `current` (a full Schedule from the API).
///
/// The manifest means exactly what it would mean as a create body: omitted `enabled` is
/// true, omitted `policy`/`retry` fields are their defaults, omitted target parts are empty,
/// omitted `start_at`/`end_at` are null. An interval's omitted `anchor_at` is not compared
/// (the server picks it).
pub fn diff(manifest: &Map<String, Value>, current: &Value) -> Vec<Change> {
    let mut d = Differ {
        changes: Vec::new(),
    };
    let have = |k: &str| current.get(k).cloned().unwrap_or(Value::Null);
    let want = |k: &str| manifest.get(k).cloned().unwrap_or(Value::Null);

    let enabled = match want("enabled") {
        Value::Null => json!(true),
        v => v,
    };
    d.cmp("enabled", enabled, have("enabled"), Cmp::Exact);
    d.cmp("timezone", want("timezone"), have("timezone"), Cmp::Trim);

    d.nested(
        "schedule",
        &want("schedule"),
        &have("schedule"),
        |key, present| match key {
            "anchor_at" if !present => None,
            "expr" => Some((Value::Null, Cmp::Trim)),
            "at" | "anchor_at" => Some((Value::Null, Cmp::Instant)),
            _ => Some((Value::Null, Cmp::Exact)),
        },
    );
    d.nested("target", &want("target"), &have("target"), |key, _| {
        Some(match key {
            "method" => (Value::Null, Cmp::Upper),
            "url" | "command" | "workflow_id" => (Value::Null, Cmp::Trim),
            "headers" => (json!({}), Cmp::Exact),
            "args" => (json!([]), Cmp::Exact),
            _ => (Value::Null, Cmp::Exact),
        })
    });
    d.with_defaults(
        "policy",
        &want("policy"),
        &have("policy"),
        policy_defaults(),
    );
    d.with_defaults("retry", &want("retry"), &have("retry"), retry_defaults());
    d.cmp("start_at", want("start_at"), have("start_at"), Cmp::Instant);
    d.cmp("end_at", want("end_at"), have("end_at"), Cmp::Instant);
    let labels = match want("labels") {
        Value::Null => json!({}),
        v => v,
    };
    // A server without labels (an older one) has none.
    let current = match have("labels") {
        Value::Null => json!({}),
        v => v,
    };
    d.cmp("labels", labels, current, Cmp::Exact);
    d.cmp(
        "description",
        want("description"),
        have("description"),
        Cmp::Exact,
    );

    // Anything else the manifest says (a newer server field, or a typo the server will
    // reject) is compared as it is.
    let known = [
        "name",
        "enabled",
        "timezone",
        "schedule",
        "target",
        "policy",
        "retry",
        "start_at",
        "end_at",
        "labels",
        "description",
    ];
    for (k, v) in manifest {
        if !known.contains(&k.as_str()) && !SERVER_OWNED.contains(&k.as_str()) {
            d.cmp(k, v.clone(), have(k), Cmp::Exact);
        }
    }
    d.changes
}

struct Differ {
    changes: Vec<Change>,
}

impl Differ {
    fn cmp(&mut self, field: &str, want: Value, have: Value, how: Cmp) {
        if !equal(&want, &have, how) {
            self.changes.push(Change {
                field: field.to_string(),
                from: have,
                to: want,
            });
        }
    }

    /// A kind-tagged object (`schedule`, `target`): `kind`, then every key either side has.
    /// `rule(key, present_in_manifest)` gives the default for an omitted key and the
    /// comparison, or `None` to skip the key.
    fn nested(
        &mut self,
        name: &str,
        want: &Value,
        have: &Value,
        rule: impl Fn(&str, bool) -> Option<(Value, Cmp)>,
    ) {
        let (Some(w), Some(h)) = (want.as_object(), have.as_object()) else {
            self.cmp(name, want.clone(), have.clone(), Cmp::Exact);
            return;
        };
        let get = |m: &Map<String, Value>, k: &str| m.get(k).cloned().unwrap_or(Value::Null);
        self.cmp(
            &format!("{name}.kind"),
            get(w, "kind"),
            get(h, "kind"),
            Cmp::Trim,
        );
        let keys: BTreeSet<&String> = w.keys().chain(h.keys()).filter(|k| *k != "kind").collect();
        for k in keys {
            let present = w.get(k.as_str()).is_some_and(|v| !v.is_null());
            let Some((default, how)) = rule(k, present) else {
                continue;
            };
            let wanted = match w.get(k.as_str()) {
                Some(v) if !v.is_null() => v.clone(),
                _ => default,
            };
            self.cmp(&format!("{name}.{k}"), wanted, get(h, k), how);
        }
    }

    /// `policy`/`retry`: each field the manifest omits takes its default.
    fn with_defaults(
        &mut self,
        name: &str,
        want: &Value,
        have: &Value,
        defaults: Vec<(&'static str, Value)>,
    ) {
        let empty = Map::new();
        let w = match want {
            Value::Null => &empty,
            Value::Object(m) => m,
            other => {
                self.cmp(name, other.clone(), have.clone(), Cmp::Exact);
                return;
            }
        };
        let h = have.as_object().unwrap_or(&empty);
        for (k, default) in &defaults {
            let wanted = match w.get(*k) {
                Some(v) if !v.is_null() => v.clone(),
                _ => default.clone(),
            };
            let how = if default.is_string() {
                Cmp::Trim
            } else {
                Cmp::Exact
            };
            let had = h.get(*k).cloned().unwrap_or(Value::Null);
            self.cmp(&format!("{name}.{k}"), wanted, had, how);
        }
        for (k, v) in w {
            if !defaults.iter().any(|(d, _)| d == k) {
                let had = h.get(k).cloned().unwrap_or(Value::Null);
                self.cmp(&format!("{name}.{k}"), v.clone(), had, Cmp::Exact);
            }
        }
    }
}

fn equal(a: &Value, b: &Value, how: Cmp) -> bool {
    match (how, a, b) {
        (Cmp::Trim, Value::String(x), Value::String(y)) => x.trim() == y.trim(),
        (Cmp::Upper, Value::String(x), Value::String(y)) => x.trim().eq_ignore_ascii_case(y.trim()),
        (Cmp::Instant, Value::String(x), Value::String(y)) => {
            match (
                chrono::DateTime::parse_from_rfc3339(x.trim()),
                chrono::DateTime::parse_from_rfc3339(y.trim()),
            ) {
                (Ok(x), Ok(y)) => x == y,
                _ => x == y,
            }
        }
        _ => same(a, b),
    }
}

/// JSON equality where `1` and `1.0` are the same number.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
