//! Provides the plan: checks manifest names, turns manifests and existing schedules into
//! ordered steps (create, update, unchanged, delete with `--prune`), and renders them.
//! Pure: no I/O; fetching and executing the plan live in `execute`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::diff::{diff, Change};
use super::load::Manifest;
use crate::cli::client::CliError;

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

    pub(super) fn id(&self) -> Option<&str> {
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
