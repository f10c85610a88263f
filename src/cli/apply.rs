//! Provides manifests (create bodies read from YAML/JSON files, directories or stdin) and
//! `apply`: the by-name diff between manifests and the server's schedules, and its execution.
//!
//! It must not validate schedules itself (the server does, and its errors are reported as
//! they are) nor touch schedules the manifests do not name unless `--prune` is given.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::client::{segment, CliError, Client};

/// One schedule create body and where it came from.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// `file.yaml`, or `file.yaml (document 2)` when the file holds several.
    pub source: String,
    pub body: Map<String, Value>,
}

impl Manifest {
    /// The trimmed `name` (the server trims it too), if it is a non-blank string.
    pub fn name(&self) -> Option<String> {
        self.body
            .get("name")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
    }
}

/// Reads every manifest from `paths`: files, directories (their `*.yaml`, `*.yml` and
/// `*.json`, not recursive, in name order) or `-` for stdin. Nothing is sent anywhere.
pub fn load(paths: &[String]) -> Result<Vec<Manifest>, CliError> {
    if paths.iter().filter(|p| p.as_str() == "-").count() > 1 {
        return Err(CliError::usage("-f - (stdin) may be given only once"));
    }
    let mut out = Vec::new();
    for p in paths {
        if p == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CliError::usage(format!("could not read stdin: {e}")))?;
            out.extend(parse_documents("<stdin>", &text, false)?);
            continue;
        }
        let path = Path::new(p);
        let meta = std::fs::metadata(path)
            .map_err(|e| CliError::usage(format!("cannot read {p}: {e}")))?;
        if meta.is_dir() {
            let files = manifest_files(path)?;
            if files.is_empty() {
                return Err(CliError::usage(format!(
                    "no manifests (*.yaml, *.yml, *.json) in directory {p}"
                )));
            }
            for f in files {
                out.extend(read_file(&f)?);
            }
        } else {
            out.extend(read_file(path)?);
        }
    }
    if out.is_empty() {
        return Err(CliError::usage("the manifests contain no schedules"));
    }
    Ok(out)
}

fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::usage(format!("cannot read directory {}: {e}", dir.display())))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            CliError::usage(format!("cannot read directory {}: {e}", dir.display()))
        })?;
        let path = entry.path();
        let is_manifest = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json"));
        if is_manifest && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_file(path: &Path) -> Result<Vec<Manifest>, CliError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {label}: {e}")))?;
    let json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse_documents(&label, &text, json)
}

/// Parses one file's text: a stream of JSON values (when `json`, or when the text starts
/// with `{` or `[`) or multi-document YAML. A sequence document holds several bodies; empty
/// documents are skipped; every body must be a mapping.
pub fn parse_documents(label: &str, text: &str, json: bool) -> Result<Vec<Manifest>, CliError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let docs: Vec<Value> = if json || trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::Deserializer::from_str(trimmed)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .map_err(|e| CliError::usage(format!("{label}: invalid JSON: {e}")))?
    } else {
        let mut docs = Vec::new();
        for doc in serde_norway::Deserializer::from_str(text) {
            let v = Value::deserialize(doc)
                .map_err(|e| CliError::usage(format!("{label}: invalid YAML: {e}")))?;
            docs.push(v);
        }
        docs
    };
    let mut bodies = Vec::new();
    for doc in docs {
        match doc {
            Value::Null => {}
            Value::Array(items) => bodies.extend(items),
            other => bodies.push(other),
        }
    }
    let several = bodies.len() > 1;
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let source = if several {
                format!("{label} (document {})", i + 1)
            } else {
                label.to_string()
            };
            match b {
                Value::Object(body) => Ok(Manifest { source, body }),
                other => Err(CliError::usage(format!(
                    "{source}: expected a mapping (a schedule create body), got {}",
                    kind_of(&other)
                ))),
            }
        })
        .collect()
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

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

fn policy_defaults() -> Vec<(&'static str, Value)> {
    vec![
        ("overlap", json!("forbid")),
        ("misfire", json!("run_once_if_late")),
        ("timeout_seconds", json!(300)),
        ("max_concurrency", json!(1)),
    ]
}

fn retry_defaults() -> Vec<(&'static str, Value)> {
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

    // Anything else the manifest says (a newer server field, or a typo the server will
    // reject) is compared as it is.
    let known = [
        "name", "enabled", "timezone", "schedule", "target", "policy", "retry", "start_at",
        "end_at",
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

/// What apply does for one schedule name.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create,
    Update { id: String, changes: Vec<Change> },
    Unchanged { id: String },
    Delete { id: String },
}

impl Action {
    /// `create`, `update`, `unchanged` or `delete`.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update { .. } => "update",
            Action::Unchanged { .. } => "unchanged",
            Action::Delete { .. } => "delete",
        }
    }

    fn id(&self) -> Option<&str> {
        match self {
            Action::Create => None,
            Action::Update { id, .. } | Action::Unchanged { id } | Action::Delete { id } => {
                Some(id)
            }
        }
    }
}

/// One line of the plan.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    /// The manifest (none for a prune).
    pub manifest: Option<Manifest>,
    pub action: Action,
}

/// Names must be present and unique across the manifests.
pub fn check_names(manifests: &[Manifest]) -> Result<(), CliError> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    let mut problems = Vec::new();
    for m in manifests {
        match m.name() {
            None => problems.push(format!(
                "{}: `name` is required (apply matches schedules by name)",
                m.source
            )),
            Some(n) => {
                if let Some(first) = seen.get(&n) {
                    problems.push(format!(
                        "duplicate schedule name {n:?} in {first} and {}",
                        m.source
                    ));
                } else {
                    seen.insert(n, &m.source);
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "invalid manifests, nothing was applied:\n  {}",
            problems.join("\n  ")
        )))
    }
}

/// Builds the plan from the manifests and the server's current schedules (name → full
/// Schedule). Prunes (when asked) come last, in name order.
pub fn plan(manifests: &[Manifest], existing: &BTreeMap<String, Value>, prune: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut wanted = BTreeSet::new();
    for m in manifests {
        let name = m.name().unwrap_or_default();
        wanted.insert(name.clone());
        let action = match existing.get(&name) {
            None => Action::Create,
            Some(current) => {
                let id = current
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let changes = diff(&m.body, current);
                if changes.is_empty() {
                    Action::Unchanged { id }
                } else {
                    Action::Update { id, changes }
                }
            }
        };
        steps.push(Step {
            name,
            manifest: Some(m.clone()),
            action,
        });
    }
    if prune {
        for (name, current) in existing {
            if !wanted.contains(name) {
                let id = current
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                steps.push(Step {
                    name: name.clone(),
                    manifest: None,
                    action: Action::Delete { id },
                });
            }
        }
    }
    steps
}

/// Compact JSON for a diff line, at most 80 characters.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(79).collect::<String>())
    } else {
        s
    }
}

/// The plan as text: `create <name>`, `update <name>` with one indented line per changed
/// field, `unchanged <name>`, `delete <name>`.
pub fn render_plan(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        out.push_str(&format!("{} {}\n", s.action.verb(), s.name));
        if let Action::Update { changes, .. } = &s.action {
            for c in changes {
                out.push_str(&format!(
                    "    {}: {} -> {}\n",
                    c.field,
                    short(&c.from),
                    short(&c.to)
                ));
            }
        }
    }
    out
}

/// The outcome of one executed step.
pub struct Outcome {
    pub step: Step,
    /// The id after the step (a created schedule's new id).
    pub id: Option<String>,
    pub error: Option<CliError>,
}

/// Fetches every existing schedule (all pages), then the full definition of each one a
/// manifest names (summaries lack policy, retry and target details).
pub fn fetch_existing(
    client: &Client,
    manifests: &[Manifest],
    prune: bool,
) -> Result<BTreeMap<String, Value>, CliError> {
    let summaries = client.get_all("/v1/schedules", &[], 500)?;
    let wanted: BTreeSet<String> = manifests.iter().filter_map(Manifest::name).collect();
    let mut existing = BTreeMap::new();
    for s in summaries {
        let (Some(name), Some(id)) = (
            s.get("name").and_then(Value::as_str),
            s.get("id").and_then(Value::as_str),
        ) else {
            return Err(super::client::unexpected("GET /v1/schedules", &s));
        };
        if wanted.contains(name) {
            match client.get(&format!("/v1/schedules/{}", segment(id)), &[]) {
                Ok(full) => {
                    existing.insert(name.to_string(), full);
                }
                // Deleted between the list and the get: it no longer exists.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        } else if prune {
            existing.insert(name.to_string(), s);
        }
    }
    Ok(existing)
}

/// Executes the plan in order. A connection failure stops it (the rest would fail the
/// same way); any other failure is recorded and the next step runs.
pub fn execute(
    client: &Client,
    steps: Vec<Step>,
    mut report: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut stopped = false;
    for step in steps {
        let result = if stopped {
            Err(CliError::Failed("not attempted".into()))
        } else {
            run_step(client, &step)
        };
        let outcome = match result {
            Ok(id) => Outcome {
                step,
                id,
                error: None,
            },
            Err(e) => {
                stopped |= matches!(e, CliError::Connect { .. });
                Outcome {
                    id: step.action.id().map(str::to_string),
                    step,
                    error: Some(e),
                }
            }
        };
        report(&outcome);
        outcomes.push(outcome);
    }
    outcomes
}

fn run_step(client: &Client, step: &Step) -> Result<Option<String>, CliError> {
    let body = || {
        step.manifest
            .as_ref()
            .map(|m| Value::Object(m.body.clone()))
            .unwrap_or(Value::Null)
    };
    match &step.action {
        Action::Create => {
            let created = client.post("/v1/schedules", &body())?;
            Ok(created
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string))
        }
        Action::Update { id, .. } => {
            client.put(&format!("/v1/schedules/{}", segment(id)), &body())?;
            Ok(Some(id.clone()))
        }
        Action::Unchanged { id } => Ok(Some(id.clone())),
        Action::Delete { id } => {
            client.delete(&format!("/v1/schedules/{}", segment(id)))?;
            Ok(Some(id.clone()))
        }
    }
}

/// The plan (and outcomes, when executed) as JSON for `-o json`.
pub fn to_json(steps: &[Step], outcomes: Option<&[Outcome]>, dry_run: bool) -> Value {
    let change_json = |a: &Action| match a {
        Action::Update { changes, .. } => changes
            .iter()
            .map(|c| json!({"field": c.field, "from": c.from, "to": c.to}))
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let actions: Vec<Value> = match outcomes {
        None => steps
            .iter()
            .map(|s| {
                json!({
                    "action": s.action.verb(),
                    "name": s.name,
                    "id": s.action.id(),
                    "source": s.manifest.as_ref().map(|m| m.source.clone()),
                    "changes": change_json(&s.action),
                    "result": "planned",
                })
            })
            .collect(),
        Some(outcomes) => outcomes
            .iter()
            .map(|o| {
                let s = &o.step;
                json!({
                    "action": s.action.verb(),
                    "name": s.name,
                    "id": o.id,
                    "source": s.manifest.as_ref().map(|m| m.source.clone()),
                    "changes": change_json(&s.action),
                    "result": if o.error.is_some() { "failed" } else { "ok" },
                    "error": o.error.as_ref().map(|e| e.to_string()),
                })
            })
            .collect(),
    };
    json!({ "dry_run": dry_run, "actions": actions })
}

/// `1 to create, 0 to update, 2 unchanged, 0 to delete`.
pub fn summary(steps: &[Step]) -> String {
    let count = |verb: &str| steps.iter().filter(|s| s.action.verb() == verb).count();
    format!(
        "{} to create, {} to update, {} unchanged, {} to delete",
        count("create"),
        count("update"),
        count("unchanged"),
        count("delete")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
