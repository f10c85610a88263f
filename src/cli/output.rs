//! Provides the CLI's human-readable output: an aligned-column table helper and the
//! renderings of schedules, runs, receipts and status as text.
//!
//! Pure formatting of API JSON into strings; it must not talk to the server or exit, and it
//! tolerates missing or unexpected fields (rendered as `-`) instead of panicking.

use serde_json::{Map, Value};

/// Columns separated by two spaces, each padded to its widest cell (by characters).
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The header and every row, each line ending in `\n`; no trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().take(columns).enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                text.push_str(cell);
                if i + 1 < columns {
                    let pad = width - cell.chars().count() + 2;
                    text.extend(std::iter::repeat(' ').take(pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&self.headers);
        for row in &self.rows {
            line(row);
        }
        out
    }
}

/// Key/value lines with the keys aligned (`key:  value`).
pub fn key_values(pairs: &[(String, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let pad = width - k.chars().count();
        out.push_str(&format!("{k}:{}  {v}", " ".repeat(pad)));
        out.push('\n');
    }
    out
}

/// A scalar as text; `-` for null or missing; compact JSON for arrays and objects.
pub fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) if s.is_empty() => "\"\"".into(),
        Some(Value::String(s)) => one_line(s),
        Some(other) => other.to_string(),
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn field(v: &Value, key: &str) -> String {
    text(v.get(key))
}

/// `cron 0 2 * * *`, `every 30s`, `once 2027-06-01T16:00:00Z`.
pub fn cadence(s: Option<&Value>) -> String {
    let Some(s) = s.filter(|s| s.is_object()) else {
        return "-".into();
    };
    match s.get("kind").and_then(Value::as_str) {
        Some("cron") => format!("cron {}", field(s, "expr")),
        Some("interval") => match s.get("every_seconds").and_then(Value::as_i64) {
            Some(n) => format!("every {}", seconds(n)),
            None => "interval".into(),
        },
        Some("once") => format!("once {}", field(s, "at")),
        Some(other) => other.to_string(),
        None => text(Some(s)),
    }
}

/// `90` → `1m30s`, `86400` → `1d`.
pub fn seconds(n: i64) -> String {
    if n <= 0 {
        return format!("{n}s");
    }
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut rest = n;
    let mut out = String::new();
    for (size, unit) in units {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

fn target(t: Option<&Value>) -> String {
    let Some(t) = t.filter(|t| t.is_object()) else {
        return "-".into();
    };
    match t.get("kind").and_then(Value::as_str) {
        Some("http") => format!("http {} {}", field(t, "method"), field(t, "url")),
        Some("shell") => {
            let mut parts = vec![field(t, "command")];
            if let Some(args) = t.get("args").and_then(Value::as_array) {
                parts.extend(args.iter().map(|a| match a {
                    Value::String(s) if !s.contains(' ') && !s.is_empty() => one_line(s),
                    other => text(Some(other)),
                }));
            }
            format!("shell {}", parts.join(" "))
        }
        Some("workflow") => format!("workflow {}", field(t, "workflow_id")),
        _ => text(Some(t)),
    }
}

fn items(page: &Value) -> &[Value] {
    page.get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// `schedule list`.
pub fn schedule_table(list: &[Value]) -> String {
    if list.is_empty() {
        return "No schedules.\n".into();
    }
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "ENABLED",
        "CADENCE",
        "TIMEZONE",
        "TARGET",
        "LABELS",
        "NEXT RUN",
        "LAST RUN",
        "LAST STATUS",
        "OK/TOTAL",
    ]);
    for s in list {
        let stats = s.get("stats");
        let count = |k: &str| text(stats.and_then(|st| st.get(k)));
        t.row(vec![
            field(s, "id"),
            field(s, "name"),
            field(s, "enabled"),
            cadence(s.get("schedule")),
            field(s, "timezone"),
            field(s, "target_kind"),
            labels(s.get("labels")),
            field(s, "next_run_at"),
            field(s, "last_run_at"),
            text(stats.and_then(|st| st.get("last_status"))),
            format!("{}/{}", count("succeeded"), count("runs_total")),
        ]);
    }
    t.render()
}

/// Labels as `k=v,k2=v2` (sorted by key, as the server returns them), `-` for none.
pub fn labels(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(","),
        _ => "-".into(),
    }
}

/// One schedule (`schedule get`, `schedule create`).
pub fn schedule_detail(s: &Value) -> String {
    let mut pairs: Vec<(String, String)> = ["id", "name", "enabled", "timezone"]
        .iter()
        .map(|k| (k.to_string(), field(s, k)))
        .collect();
    pairs.push(("schedule".into(), cadence(s.get("schedule"))));
    if let Some(anchor) = s.pointer("/schedule/anchor_at").filter(|v| !v.is_null()) {
        pairs.push(("anchor_at".into(), text(Some(anchor))));
    }
    pairs.push(("target".into(), target(s.get("target"))));
    if let Some(t) = s.get("target").and_then(Value::as_object) {
        for key in ["headers", "body", "input"] {
            if let Some(v) = t.get(key).filter(|v| !is_empty_json(v)) {
                pairs.push((format!("target.{key}"), text(Some(v))));
            }
        }
    }
    pairs.push(("policy".into(), inline_object(s.get("policy"))));
    pairs.push(("retry".into(), inline_object(s.get("retry"))));
    for k in [
        "start_at",
        "end_at",
        "paused_at",
        "pause_note",
        "next_run_at",
        "last_run_at",
        "max_occurrences",
        "occurrences_remaining",
        "created_at",
        "updated_at",
    ] {
        pairs.push((k.to_string(), field(s, k)));
    }
    if let Some(actor) = s.get("actor").filter(|a| a.is_object()) {
        pairs.push(("actor".into(), inline_object(Some(actor))));
    }
    key_values(&pairs)
}

fn is_empty_json(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// `overlap=forbid misfire=run_once_if_late …`.
fn inline_object(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", text(Some(v))))
            .collect::<Vec<_>>()
            .join(" "),
        _ => text(v),
    }
}

/// `run list`.
pub fn run_table(list: &[Value]) -> String {
    if list.is_empty() {
        return "No runs.\n".into();
    }
    let mut t = Table::new(&[
        "ID", "SCHEDULE", "STATUS", "ATTEMPT", "NOMINAL", "STARTED", "DURATION",
    ]);
    for r in list {
        t.row(vec![
            field(r, "id"),
            field(r, "schedule_id"),
            field(r, "status"),
            field(r, "attempt"),
            field(r, "nominal_time"),
            field(r, "started_at"),
            r.get("duration_ms")
                .and_then(Value::as_i64)
                .map(|ms| format!("{ms}ms"))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    t.render()
}

/// The order `run get` shows a run's fields in; any others follow alphabetically.
const RUN_FIELDS: &[&str] = &[
    "id",
    "schedule_id",
    "status",
    "attempt",
    "trigger_reason",
    "occurrence_key",
    "nominal_time",
    "due_time",
    "started_at",
    "finished_at",
    "duration_ms",
    "http_status_code",
    "exit_code",
    "error_text",
    "result_json",
    "retry_available_at",
    "claimed_by_worker_id",
    "claim_expires_at",
    "created_at",
    "updated_at",
];

/// One run (`run get`): every field the API returned, the important ones first.
pub fn run_detail(r: &Value) -> String {
    let Some(m) = r.as_object() else {
        return format!("{}\n", text(Some(r)));
    };
    let mut pairs: Vec<(String, String)> = RUN_FIELDS
        .iter()
        .filter_map(|k| m.get(*k).map(|v| (k.to_string(), text(Some(v)))))
        .collect();
    for (k, v) in m {
        if !RUN_FIELDS.contains(&k.as_str()) {
            pairs.push((k.clone(), text(Some(v))));
        }
    }
    key_values(&pairs)
}

/// `run receipts`: a header line per receipt, then its body.
pub fn receipts(page: &Value) -> String {
    let list = items(page);
    if list.is_empty() {
        return "No receipts.\n".into();
    }
    let mut out = String::new();
    for (i, r) in list.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "== {} {} ({}) {}\n",
            field(r, "receipt_kind"),
            field(r, "id"),
            field(r, "content_type"),
            field(r, "created_at"),
        ));
        let body = r.get("body").and_then(Value::as_str).unwrap_or("");
        out.push_str(body);
        if !body.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// `status`: every scalar as `section.key: value`; arrays of objects as small tables.
pub fn status(s: &Value) -> String {
    let mut pairs = Vec::new();
    let mut tables = Vec::new();
    match s.as_object() {
        Some(m) => flatten("", m, &mut pairs, &mut tables),
        None => return format!("{}\n", text(Some(s))),
    }
    let mut out = key_values(&pairs);
    for (name, rows) in tables {
        out.push_str(&format!("\n{name}:\n"));
        let mut headers: Vec<String> = Vec::new();
        for r in &rows {
            if let Some(o) = r.as_object() {
                for k in o.keys() {
                    if !headers.contains(k) {
                        headers.push(k.clone());
                    }
                }
            }
        }
        let upper: Vec<String> = headers.iter().map(|h| h.to_uppercase()).collect();
        let mut t = Table::new(&upper.iter().map(String::as_str).collect::<Vec<_>>());
        for r in &rows {
            t.row(headers.iter().map(|h| field(r, h)).collect());
        }
        out.push_str(&t.render());
    }
    out
}

type Tables = Vec<(String, Vec<Value>)>;

fn flatten(
    prefix: &str,
    m: &Map<String, Value>,
    pairs: &mut Vec<(String, String)>,
    tables: &mut Tables,
) {
    // Scalars first, then the sections (`service` before `actors.…`).
    let nested = |v: &Value| matches!(v, Value::Object(o) if !o.is_empty());
    let ordered = m
        .iter()
        .filter(|(_, v)| !nested(v))
        .chain(m.iter().filter(|(_, v)| nested(v)));
    for (k, v) in ordered {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) if !inner.is_empty() => flatten(&key, inner, pairs, tables),
            Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object) => {
                pairs.push((key.clone(), format!("{} (below)", a.len())));
                tables.push((key, a.clone()));
            }
            other => pairs.push((key, text(Some(other)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_aligns_columns_without_trailing_spaces() {
        let mut t = Table::new(&["ID", "NAME", "X"]);
        t.row(vec!["a".into(), "longer-name".into(), "".into()]);
        t.row(vec!["bbbb".into(), "n".into(), "1".into()]);
        assert_eq!(
            t.render(),
            "ID    NAME         X\na     longer-name\nbbbb  n            1\n"
        );
    }

    #[test]
    fn table_counts_characters_not_bytes() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["ü".into(), "x".into()]);
        assert_eq!(t.render(), "A  B\nü  x\n");
    }

    #[test]
    fn cadences_read_naturally() {
        assert_eq!(
            cadence(Some(&json!({"kind": "cron", "expr": "0 2 * * *"}))),
            "cron 0 2 * * *"
        );
        assert_eq!(
            cadence(Some(&json!({"kind": "interval", "every_seconds": 90}))),
            "every 1m30s"
        );
        assert_eq!(cadence(None), "-");
        assert_eq!(seconds(86_400), "1d");
    }

    #[test]
    fn status_flattens_and_tabulates() {
        let s = status(&json!({"service": "wakeplane", "runs": {"pending": 0},
            "actors": {"unhealthy": [{"name": "x", "state": "restarting"}]}}));
        assert!(s.contains("service:"), "{s}");
        assert!(s.contains("runs.pending:"), "{s}");
        assert!(s.contains("NAME  STATE"), "{s}");
    }

    #[test]
    fn status_shows_the_nodes() {
        let s = status(&json!({"cluster": {"node_id": "wrk_a", "nodes": [
            {"node_id": "wrk_a", "state": "alive", "owned_schedules": 3},
            {"node_id": "wrk_b", "state": "dead", "owned_schedules": 0}]}}));
        assert!(s.contains("cluster.node_id:"), "{s}");
        assert!(s.contains("NODE_ID  OWNED_SCHEDULES  STATE"), "{s}");
        assert!(s.contains("wrk_b    0                dead"), "{s}");
    }

    #[test]
    fn odd_shapes_do_not_panic() {
        schedule_table(&[json!(1), json!({"schedule": 3})]);
        schedule_detail(&json!("x"));
        run_table(&[json!(null)]);
        run_detail(&json!([]));
        receipts(&json!({"items": [{"body": 5}]}));
        status(&json!(null));
    }
}
