//! Provides the I/O half of apply: fetching the existing schedules a plan is computed from,
//! executing its steps one by one against the API, and the JSON report of what happened.
//! It sends only the steps it is given; it never plans or diffs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::load::Manifest;
use super::plan::{Action, Step};
use crate::cli::client::{segment, CliError, Client};
use crate::domain::labels::{Labels, Selector};

/// The outcome of one executed step.
pub struct Outcome {
    pub step: Step,
    /// The id after the step (a created schedule's new id).
    pub id: Option<String>,
    pub error: Option<CliError>,
}

/// A schedule's (or manifest's) labels; anything else than an object of strings is none.
pub fn labels_of(v: &Value) -> Labels {
    v.get("labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Fetches every existing schedule (all pages), then the full definition of each one a
/// manifest names (summaries lack policy, retry and target details). With `prune`, the
/// others are kept as prune candidates only when `selector` (if any) matches their labels.
pub fn fetch_existing(
    client: &Client,
    manifests: &[Manifest],
    prune: bool,
    selector: Option<&Selector>,
) -> Result<BTreeMap<String, Value>, CliError> {
    let summaries = client.get_all("/v1/schedules", &[], 500)?;
    let wanted: BTreeSet<String> = manifests.iter().filter_map(Manifest::name).collect();
    let mut existing = BTreeMap::new();
    for s in summaries {
        let (Some(name), Some(id)) = (
            s.get("name").and_then(Value::as_str),
            s.get("id").and_then(Value::as_str),
        ) else {
            return Err(crate::cli::client::unexpected("GET /v1/schedules", &s));
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
        } else if prune && selector.map_or(true, |sel| sel.matches(&labels_of(&s))) {
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
